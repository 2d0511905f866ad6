//! Text as dockerd prints it: Go's `%q` and `%v` of the values in history comments, Go's
//! duration and time formats, short IDs and tag references.

use crate::image_config::HealthConfig;
use crate::quote::go_quote;

/// Go's `fmt.Sprintf("%q", []string)`: `["a" "b"]`.
pub fn quote_list(items: &[String]) -> String {
    crate::quote::go_quote_list(items)
}

/// Go's `fmt.Sprintf("%v", []string)`: `[a b]`.
pub fn plain_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// Go's `%q` of an integer: the character literal of that code point (`'\x00'`, `'\x03'`).
fn quote_rune(n: i64) -> String {
    let c = u32::try_from(n)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{fffd}');
    match c {
        '\'' => "'\\''".to_string(),
        '"' => "'\"'".to_string(),
        c => {
            let q = go_quote(&c.to_string());
            format!("'{}'", &q[1..q.len() - 1])
        }
    }
}

/// Go's `time.Duration.String()` of `ns` nanoseconds: `0s`, `1.5s`, `1m30s`, `1h0m0s`, `500ms`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_string();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let sign = if neg { "-" } else { "" };
    if u < 1_000_000_000 {
        let (unit, div) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(u, div));
    }
    let secs = u / 1_000_000_000;
    let frac = u % 1_000_000_000;
    let mut s = String::new();
    let (h, m, sec) = (secs / 3600, (secs / 60) % 60, secs % 60);
    if h > 0 {
        s.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        s.push_str(&format!("{m}m"));
    }
    s.push_str(&fraction(sec * 1_000_000_000 + frac, 1_000_000_000));
    format!("{sign}{s}s")
}

// `v / div` with its fraction, trailing zeros dropped.
fn fraction(v: u64, div: u64) -> String {
    let whole = v / div;
    let rest = v % div;
    if rest == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Go's `%q` of a `*HealthConfig` as dockerd 20.10 writes it in HEALTHCHECK's history:
/// `&{["CMD-SHELL" "x"] "5s" "0s" "0s" '\x00'}`. A start interval (newer engines) is shown
/// only when set, so configs dockerd 20.10 could make keep its text.
pub fn healthcheck_comment(h: &HealthConfig) -> String {
    let mut parts = vec![
        quote_list(&h.test),
        go_quote(&go_duration(h.interval)),
        go_quote(&go_duration(h.timeout)),
        go_quote(&go_duration(h.start_period)),
    ];
    if h.start_interval != 0 {
        parts.push(go_quote(&go_duration(h.start_interval)));
    }
    parts.push(quote_rune(h.retries));
    format!("&{{{}}}", parts.join(" "))
}

/// Now in Go's `RFC3339Nano` (trailing zeros of the fraction dropped), as image times are.
pub fn now() -> String {
    let t = chrono::Utc::now();
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// The 12-digit form of an ID (`sha256:` dropped), as dockerd's `TruncateID`.
pub fn short_id(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    hex.get(..12).unwrap_or(hex)
}

/// A tag as `Successfully tagged` prints it: `:latest` added when no tag or digest is given.
pub fn tag_reference(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go() {
        for (ns, want) in [
            (0, "0s"),
            (5_000_000_000, "5s"),
            (1_500_000_000, "1.5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (500_000_000, "500ms"),
            (1_500, "1.5µs"),
            (7, "7ns"),
        ] {
            assert_eq!(go_duration(ns), want);
        }
    }

    #[test]
    fn healthcheck_comment_is_dockerds() {
        let h = HealthConfig {
            test: vec![
                "CMD-SHELL".into(),
                "test -f /srv/app/site/index.html".into(),
            ],
            interval: 5_000_000_000,
            ..Default::default()
        };
        assert_eq!(
            healthcheck_comment(&h),
            r#"&{["CMD-SHELL" "test -f /srv/app/site/index.html"] "5s" "0s" "0s" '\x00'}"#
        );
        let h = HealthConfig {
            test: vec!["NONE".into()],
            retries: 3,
            ..Default::default()
        };
        assert_eq!(
            healthcheck_comment(&h),
            r#"&{["NONE"] "0s" "0s" "0s" '\x03'}"#
        );
    }

    #[test]
    fn ids_tags_and_times() {
        assert_eq!(short_id("sha256:5bc555f7f779ca3ac3c2"), "5bc555f7f779");
        assert_eq!(tag_reference("bench/build10"), "bench/build10:latest");
        assert_eq!(tag_reference("localhost:5000/a"), "localhost:5000/a:latest");
        assert_eq!(tag_reference("a:1"), "a:1");
        let t = now();
        assert!(chrono::DateTime::parse_from_rfc3339(&t).is_ok(), "{t}");
        assert!(
            t.ends_with('Z') && !(t.contains('.') && t.ends_with("0Z")),
            "{t}"
        );
    }
}
