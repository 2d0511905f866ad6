//! Shows a daemon progress stream (`load`, `import`, `pull`, `push`) as the docker CLI does: `stream` text as
//! is, `status` lines, and on a terminal one line per layer ID redrawn in place with cursor movements
//! (the same bytes as the docker CLI's, so scripts that record a terminal see the same); an
//! `error`/`errorDetail` inside the stream is a failure.

use std::collections::HashMap;

use serde_json::Value;

use crate::client::JsonStream;
use crate::error::CliError;
use crate::format::size::human_size_4;
use crate::output::print;

/// Consumes `stream`, printing what Docker prints; returns the `status` of the last message (import's ID).
pub async fn display(mut stream: JsonStream, terminal: bool) -> Result<Option<String>, CliError> {
    // The docker CLI asks the terminal for its width (a bar needs more than 110 columns), else assumes 200.
    let width = if terminal {
        stdio::terminal::size(1).map_or(200, |(_, cols)| cols)
    } else {
        200
    };
    let mut screen = Screen::default();
    let mut last_status = None;
    while let Some(item) = stream.next().await {
        let (msg, _) = item?;
        if let Some(err) = stream_error(&msg) {
            return Err(CliError::Stream(err));
        }
        if msg.get("aux").is_some() {
            continue;
        }
        print(&screen.message(&msg, terminal, width, now_unix()))?;
        if let Some(status) = msg.get("status").and_then(Value::as_str) {
            last_status = Some(status.to_string());
        }
    }
    Ok(last_status)
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Which line (counted from the first) each layer ID is drawn on, since the last message that was not
/// progress.
#[derive(Default)]
struct Screen {
    lines: HashMap<String, usize>,
}

impl Screen {
    /// The bytes one message adds to the output.
    fn message(&mut self, msg: &Value, terminal: bool, width: u16, now: f64) -> String {
        let id = msg.get("id").and_then(Value::as_str).unwrap_or("");
        let progress = msg.get("progressDetail").filter(|p| p.is_object());
        let mut out = String::new();
        let mut diff = 0;
        if !id.is_empty() && progress.is_some() {
            let count = self.lines.len();
            let line = *self.lines.entry(id.to_string()).or_insert_with(|| {
                if terminal {
                    out.push('\n');
                }
                count
            });
            diff = self.lines.len() - line;
            if terminal && diff > 0 {
                out.push_str(&format!("\x1b[{diff}A"));
            }
        } else {
            // Anything else ends the block of lines being redrawn.
            self.lines.clear();
        }
        out.push_str(&render(msg, progress, terminal, width, now));
        if !id.is_empty() && terminal && diff > 0 {
            out.push_str(&format!("\x1b[{diff}B"));
        }
        out
    }
}

/// One message as the docker CLI's jsonmessage displays it.
fn render(msg: &Value, progress: Option<&Value>, terminal: bool, width: u16, now: f64) -> String {
    let id = msg.get("id").and_then(Value::as_str).unwrap_or("");
    let status = msg.get("status").and_then(Value::as_str).unwrap_or("");
    let text = msg.get("stream").and_then(Value::as_str).unwrap_or("");
    let num = |k: &str| {
        progress
            .and_then(|p| p.get(k))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let (current, total) = (num("current"), num("total"));
    let mut out = String::new();
    let mut endl = "";
    if terminal && text.is_empty() && progress.is_some() {
        out.push_str("\x1b[2K\r");
        endl = "\r";
    } else if progress.is_some() && (current > 0 || total > 0) {
        // Progress is not shown off a terminal.
        return out;
    }
    if !id.is_empty() {
        out.push_str(id);
        out.push_str(": ");
    }
    if let (Some(p), true) = (progress, terminal) {
        let units = p.get("units").and_then(Value::as_str).unwrap_or("");
        let start = p.get("start").and_then(Value::as_i64).unwrap_or(0);
        let hide = p
            .get("hidecounts")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let bar = bar(current, total, units, start, hide, width, now);
        out.push_str(&format!("{status} {bar}{endl}"));
    } else if !text.is_empty() {
        out.push_str(text);
        out.push_str(endl);
    } else {
        out.push_str(&format!("{status}{endl}\n"));
    }
    out
}

/// The docker CLI's progress text: `[=====>    ] ` when the terminal is wider than 110 columns, then
/// `current/total` (sizes right-aligned to 8), then the time left when it fits.
fn bar(
    current: i64,
    total: i64,
    units: &str,
    start: i64,
    hide: bool,
    width: u16,
    now: f64,
) -> String {
    if current <= 0 && total <= 0 {
        return String::new();
    }
    let size = |n: i64| human_size_4(n as f64);
    if total <= 0 {
        return if units.is_empty() {
            format!("{:>8}", size(current))
        } else {
            format!("{current} {units}")
        };
    }
    let percentage = ((current as f64 / total as f64 * 100.0) as i64 / 2).min(50);
    let mut out = String::new();
    if width > 110 {
        let filled = usize::try_from(percentage).unwrap_or(0);
        out.push_str(&format!(
            "[{}>{}] ",
            "=".repeat(filled),
            " ".repeat(50usize.saturating_sub(filled))
        ));
    }
    if !hide {
        if units.is_empty() {
            if current > total {
                out.push_str(&format!("{:>8}", size(current)));
            } else {
                out.push_str(&format!("{:>8}/{}", size(current), size(total)));
            }
        } else if current > total {
            out.push_str(&format!("{current} {units}"));
        } else {
            out.push_str(&format!("{current}/{total} {units}"));
        }
    }
    if width > 50 && current > 0 && start > 0 && percentage < 50 {
        let per_entry = (now - start as f64).max(0.0) / current as f64;
        let left = ((total - current) as f64 * per_entry).round() as u64;
        out.push(' ');
        out.push_str(&go_duration(left));
    }
    out
}

/// Go's `time.Duration.String` for whole seconds: `0s`, `45s`, `2m5s`, `1h0m3s`.
fn go_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// The error message carried by a stream message, if it is an error.
pub fn stream_error(msg: &Value) -> Option<String> {
    if let Some(m) = msg
        .get("errorDetail")
        .and_then(|d| d.get("message"))
        .and_then(Value::as_str)
    {
        return Some(m.to_string());
    }
    msg.get("error").and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn terminal_output_is_the_docker_clis_bytes() {
        // Recorded from `docker load` (28.2) on a terminal that reports no width.
        let mut screen = Screen::default();
        let msgs = [
            json!({"status": "Loading layer", "progressDetail": {"current": 331, "total": 331}, "id": "e7d543ea1e8a"}),
            json!({"status": "Loading layer", "progressDetail": {"current": 400, "total": 400}, "id": "e88a8c844a4e"}),
            json!({"stream": "Loaded image: busybox:latest\n"}),
        ];
        let out: String = msgs
            .iter()
            .map(|m| screen.message(m, true, 0, 0.0))
            .collect();
        assert_eq!(
            out,
            "\n\x1b[1A\x1b[2K\re7d543ea1e8a: Loading layer     331B/331B\r\x1b[1B\n\x1b[1A\x1b[2K\re88a8c844a4e: Loading layer     400B/400B\r\x1b[1BLoaded image: busybox:latest\n"
        );
    }

    #[test]
    fn wide_terminals_get_a_bar_and_pipes_get_no_progress() {
        assert_eq!(
            bar(50, 100, "", 0, false, 200, 0.0),
            format!("[{}>{}] {:>8}/100B", "=".repeat(25), " ".repeat(25), "50B")
        );
        assert_eq!(
            bar(10, 100, "", 100, false, 80, 110.0),
            "     10B/100B 1m30s"
        );
        let mut screen = Screen::default();
        let m = json!({"status": "Loading layer", "progressDetail": {"current": 3, "total": 9}, "id": "a"});
        assert_eq!(screen.message(&m, false, 200, 0.0), "");
        let m = json!({"status": "Waiting", "progressDetail": {}, "id": "a"});
        assert_eq!(screen.message(&m, false, 200, 0.0), "a: Waiting\n");
    }

    #[test]
    fn error_detail_and_error_fields_are_stream_errors() {
        assert_eq!(
            stream_error(&json!({"errorDetail": {"message": "bad tar"}, "error": "x"})).as_deref(),
            Some("bad tar")
        );
        assert_eq!(stream_error(&json!({"error": "e"})).as_deref(), Some("e"));
        assert_eq!(stream_error(&json!({"stream": "Loaded image: a\n"})), None);
    }
}
