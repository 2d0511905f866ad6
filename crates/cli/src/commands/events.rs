//! `events`: streams the daemon's events as Docker prints them.

use bollard_stubs::models::EventMessage;
use hyper::Method;

use crate::client::{filters_json, query, Client, JsonStream, ReqBody};
use crate::error::CliError;
use crate::format::json_indent::compact;
use crate::format::template::Renderer;
use crate::output::print;

/// Flags of `events`.
#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('json' or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    pub until: Option<String>,
}

/// Streams events until the daemon closes the stream (or `--until` passes).
pub async fn run(client: &Client, args: EventsArgs) -> Result<(), CliError> {
    let now = chrono::Utc::now();
    let since = args
        .since
        .as_deref()
        .map(|s| timestamp(s, now))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| timestamp(s, now))
        .transpose()?;
    let filters = filters_json(&args.filter)?;
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(s) = &since {
        params.push(("since", s));
    }
    if let Some(u) = &until {
        params.push(("until", u));
    }
    if let Some(f) = &filters {
        params.push(("filters", f));
    }
    let renderer = match args.format.as_deref() {
        None | Some("") | Some("json") => None,
        Some(f) => Some(Renderer::new(f)?),
    };
    let json_lines = args.format.as_deref() == Some("json");
    let resp = client
        .request(
            Method::GET,
            &format!("/events{}", query(&params)),
            ReqBody::Empty,
            None,
        )
        .await?;
    crate::output::end_when_stdout_reader_goes();
    let mut stream = JsonStream::new(resp);
    while let Some(item) = stream.next().await {
        let (value, raw) = item?;
        let line = if json_lines {
            // The daemon's own bytes keep Docker's field order (status, id, from, Type, …).
            compact(&raw)
        } else if let Some(r) = &renderer {
            r.render(&value)?
        } else {
            let event: EventMessage =
                serde_json::from_value(value).map_err(|e| CliError::Decode(e.to_string()))?;
            pretty(&event)
        };
        print(&format!("{line}\n"))?;
    }
    Ok(())
}

/// Docker's event line: `<time> <type> <action> <id> (k=v, …)` with attributes sorted by key.
pub fn pretty(e: &EventMessage) -> String {
    let mut out = String::new();
    let nanos = e.time_nano.unwrap_or(0);
    let nanos = if nanos != 0 {
        nanos
    } else {
        e.time.unwrap_or(0).saturating_mul(1_000_000_000)
    };
    if nanos != 0 {
        out.push_str(&rfc3339_nano_fixed(nanos));
        out.push(' ');
    }
    let kind = e.typ.map(|t| t.to_string()).unwrap_or_default();
    let actor = e.actor.as_ref();
    out.push_str(&format!(
        "{} {} {}",
        kind,
        e.action.as_deref().unwrap_or(""),
        actor.and_then(|a| a.id.as_deref()).unwrap_or("")
    ));
    if let Some(attrs) = actor.and_then(|a| a.attributes.as_ref()) {
        if !attrs.is_empty() {
            let mut keys: Vec<&String> = attrs.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}={}", attrs.get(*k).map_or("", String::as_str)))
                .collect();
            out.push_str(&format!(" ({})", parts.join(", ")));
        }
    }
    out
}

/// Go's `2006-01-02T15:04:05.000000000Z07:00` for a unix time in nanoseconds, local time.
fn rfc3339_nano_fixed(nanos: i64) -> String {
    use chrono::TimeZone;
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000) as u32;
    match chrono::Local.timestamp_opt(secs, sub).single() {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        None => nanos.to_string(),
    }
}

/// Turns a `--since`/`--until` value into the API's `seconds[.nanos]`: a Go duration ("10m") counts back
/// from `now`; RFC 3339 dates and dates without zone are converted; plain numbers pass through.
pub fn timestamp(value: &str, now: chrono::DateTime<chrono::Utc>) -> Result<String, CliError> {
    if value.parse::<f64>().is_ok() {
        return Ok(value.to_string());
    }
    if let Ok(d) = build::go_duration_nanos(value).map(chrono::Duration::nanoseconds) {
        let t = now - d;
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(value) {
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    for layout in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(value, layout) {
            let t = t.and_utc();
            return Ok(format!(
                "{}.{:09}",
                t.timestamp(),
                t.timestamp_subsec_nanos()
            ));
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        if let Some(t) = d.and_hms_opt(0, 0, 0) {
            return Ok(format!("{}.000000000", t.and_utc().timestamp()));
        }
    }
    Err(CliError::WithStatus(
        format!("failed to parse value as time or duration: \"{value}\""),
        1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_prints_docker_event_line_with_sorted_attributes() {
        let e: EventMessage = serde_json::from_str(
            r#"{"Type":"image","Action":"tag","Actor":{"ID":"sha256:aa","Attributes":{"name":"fixture/webapp:1.0","b":"2"}},"scope":"local","time":1795997511,"timeNano":1795997511869534038}"#,
        )
        .unwrap();
        let line = pretty(&e);
        assert!(
            line.ends_with(" image tag sha256:aa (b=2, name=fixture/webapp:1.0)"),
            "{line}"
        );
        assert!(line.starts_with("2026-"));
        assert!(line.contains(".869534038"));
    }

    #[test]
    fn relative_since_counts_back_from_now() {
        let now = chrono::DateTime::from_timestamp(1000, 0).unwrap();
        assert_eq!(timestamp("10m", now).unwrap(), "400.000000000");
        assert_eq!(timestamp("1h1s", now).unwrap(), "-2601.000000000");
        assert_eq!(timestamp("1700000000", now).unwrap(), "1700000000");
        assert_eq!(
            timestamp("1970-01-01T00:01:00Z", now).unwrap(),
            "60.000000000"
        );
        assert!(timestamp("yesterday", now).is_err());
    }
}
