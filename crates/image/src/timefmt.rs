//! Go's `time.RFC3339Nano` formatting, which the Docker API uses for every timestamp.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, SecondsFormat, Utc};

/// Formats `t` like Go's RFC3339Nano in UTC: fractional seconds with trailing zeros trimmed, `Z` suffix.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let dt: DateTime<Utc> = t.into();
    let s = dt.to_rfc3339_opts(SecondsFormat::Nanos, true);
    // chrono always prints 9 digits; Go trims trailing zeros (and the dot when all are zero).
    match s.rfind('.') {
        Some(dot) => {
            let frac = s[dot + 1..s.len() - 1].trim_end_matches('0');
            if frac.is_empty() {
                format!("{}Z", &s[..dot])
            } else {
                format!("{}.{}Z", &s[..dot], frac)
            }
        }
        None => s,
    }
}

/// Parses an RFC 3339 timestamp (any offset, any fraction length).
pub fn parse(s: &str) -> Option<SystemTime> {
    let dt = DateTime::parse_from_rfc3339(s).ok()?;
    let secs = dt.timestamp();
    let nanos = dt.timestamp_subsec_nanos();
    if secs >= 0 {
        Some(UNIX_EPOCH + Duration::new(secs as u64, nanos))
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(secs.unsigned_abs()))?
            .checked_add(Duration::from_nanos(nanos.into()))
    }
}

/// Unix seconds of an RFC 3339 timestamp, 0 when unparsable.
pub fn unix_seconds(s: &str) -> i64 {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.timestamp())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_nano_trims_trailing_zeros_like_go() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20.12Z");
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 0);
        assert_eq!(rfc3339_nano(t), "2023-11-14T22:13:20Z");
        let back = parse("2026-11-29T23:11:51.861358047Z").map(rfc3339_nano);
        assert_eq!(back.as_deref(), Some("2026-11-29T23:11:51.861358047Z"));
    }
}
