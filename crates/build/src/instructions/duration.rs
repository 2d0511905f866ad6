//! Go `time.ParseDuration` syntax, with Go's error texts (Docker passes them through): for
//! `HEALTHCHECK --interval=1m30s` here, and for the daemon's and the CLI's `until=24h`, `--since 10m` and
//! `--health-interval` (one parser for all, through [`crate::go_duration_nanos`]). Written here because the
//! Rust duration crates (humantime, ...) accept a different syntax (`1min`, spaces) and refuse Go's (`1.5h`,
//! `µs`).

use std::time::Duration;

/// Parses a Go duration string (`300ms`, `1.5h`, `2h45m`); negative durations are refused.
pub(crate) fn parse_go_duration(s: &str) -> Result<Duration, String> {
    match go_duration_nanos(s)? {
        n if n < 0 => Err(format!("negative duration {s}")), // Docker's word for a negative one.
        n => Ok(Duration::from_nanos(n as u64)),
    }
}

/// Parses a Go duration string, signed (`-2m`), into nanoseconds.
pub fn go_duration_nanos(s: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", crate::quote::go_quote(s));
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(invalid());
        }
        let num: f64 = rest[..num_len].parse().map_err(|_| invalid())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let nanos_per: f64 = match unit {
            "" => {
                return Err(format!(
                    "time: missing unit in duration {}",
                    crate::quote::go_quote(s)
                ))
            }
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            other => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    crate::quote::go_quote(other),
                    crate::quote::go_quote(s)
                ))
            }
        };
        total += num * nanos_per;
    }
    if total > i64::MAX as f64 {
        return Err(invalid());
    }
    let nanos = total.round() as i64;
    Ok(if negative { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_nanoseconds() {
        assert_eq!(go_duration_nanos("1.5s"), Ok(1_500_000_000));
        assert_eq!(go_duration_nanos("-2m"), Ok(-120_000_000_000));
        assert_eq!(go_duration_nanos("+1h2m3.5s"), Ok(3_723_500_000_000));
        assert_eq!(go_duration_nanos("1µs1us"), Ok(2_000));
        assert!(go_duration_nanos("10").is_err());
        assert!(go_duration_nanos("h").is_err());
        assert!(go_duration_nanos("").is_err());
        assert_eq!(
            parse_go_duration("-2s").unwrap_err(),
            "negative duration -2s"
        );
    }

    #[test]
    fn go_duration_syntax() {
        assert_eq!(parse_go_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_go_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_go_duration("5").unwrap_err(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_go_duration("5x").unwrap_err(),
            "time: unknown unit \"x\" in duration \"5x\""
        );
        assert_eq!(
            parse_go_duration("abc").unwrap_err(),
            "time: invalid duration \"abc\""
        );
    }
}
