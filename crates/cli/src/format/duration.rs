//! Elapsed time as Docker prints it (go-units' `HumanDuration`).

/// Describes a duration of `seconds` in Docker's words: "Less than a second", "About a minute", "3 weeks".
pub fn human_duration(seconds: f64) -> String {
    let secs = seconds as i64;
    if secs < 1 {
        return "Less than a second".to_string();
    }
    if secs == 1 {
        return "1 second".to_string();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let minutes = secs / 60;
    if minutes == 1 {
        return "About a minute".to_string();
    }
    if minutes < 60 {
        return format!("{minutes} minutes");
    }
    // Docker rounds hours to the nearest one before choosing the unit.
    let hours = (seconds / 3600.0 + 0.5) as i64;
    if hours == 1 {
        return "About an hour".to_string();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    if hours < 24 * 7 * 2 {
        return format!("{} days", hours / 24);
    }
    if hours < 24 * 30 * 2 {
        return format!("{} weeks", hours / 24 / 7);
    }
    if hours < 24 * 365 * 2 {
        return format!("{} months", hours / 24 / 30);
    }
    format!("{} years", (seconds / 3600.0) as i64 / 24 / 365)
}

/// "N units ago" for a unix timestamp, measured from now, as Docker's CREATED columns print it.
pub fn ago(unix_seconds: i64) -> String {
    let now = chrono::Utc::now().timestamp_millis() as f64 / 1000.0;
    format!("{} ago", human_duration(now - unix_seconds as f64))
}

#[cfg(test)]
mod tests {
    use super::human_duration;

    #[test]
    fn human_duration_matches_docker_wording_at_each_threshold() {
        assert_eq!(human_duration(0.4), "Less than a second");
        assert_eq!(human_duration(1.0), "1 second");
        assert_eq!(human_duration(5.0), "5 seconds");
        assert_eq!(human_duration(60.0), "About a minute");
        assert_eq!(human_duration(119.0), "About a minute");
        assert_eq!(human_duration(300.0), "5 minutes");
        assert_eq!(human_duration(3600.0), "About an hour");
        assert_eq!(human_duration(2.0 * 3600.0), "2 hours");
        assert_eq!(human_duration(47.0 * 3600.0), "47 hours");
        assert_eq!(human_duration(2.0 * 86400.0), "2 days");
        assert_eq!(human_duration(21.0 * 86400.0), "3 weeks");
        assert_eq!(human_duration(150.0 * 86400.0), "5 months");
        assert_eq!(human_duration(800.0 * 86400.0), "2 years");
    }
}
