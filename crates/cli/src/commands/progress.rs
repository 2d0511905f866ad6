//! Shows a daemon progress stream (`load`, `import`): `stream` text as is, `status` lines as progress
//! bars on a terminal, and an `error`/`errorDetail` inside the stream as a failure.

use std::collections::HashMap;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

use crate::client::JsonStream;
use crate::error::CliError;
use crate::output::print;

/// Consumes `stream`, printing what Docker prints; returns the `status` of the last message (import's ID).
pub async fn display(mut stream: JsonStream, terminal: bool) -> Result<Option<String>, CliError> {
    let multi = MultiProgress::with_draw_target(if terminal {
        ProgressDrawTarget::stdout()
    } else {
        ProgressDrawTarget::hidden()
    });
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    let mut last_status = None;
    while let Some(item) = stream.next().await {
        let (msg, _) = item?;
        if let Some(err) = stream_error(&msg) {
            finish(&bars);
            return Err(CliError::Stream(err));
        }
        if let Some(text) = msg.get("stream").and_then(Value::as_str) {
            if terminal {
                multi.suspend(|| print(text))?;
            } else {
                print(text)?;
            }
            continue;
        }
        let Some(status) = msg.get("status").and_then(Value::as_str) else {
            continue;
        };
        let id = msg.get("id").and_then(Value::as_str).unwrap_or("");
        let detail = msg.get("progressDetail");
        let current = detail
            .and_then(|d| d.get("current"))
            .and_then(Value::as_u64);
        let total = detail.and_then(|d| d.get("total")).and_then(Value::as_u64);
        if !terminal {
            // Docker prints only messages without progress when output is not a terminal.
            if current.is_none() {
                if id.is_empty() {
                    print(&format!("{status}\n"))?;
                } else {
                    print(&format!("{id}: {status}\n"))?;
                }
            }
            last_status = Some(status.to_string());
            continue;
        }
        let bar = bars.entry(id.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{prefix}: {msg} [{bar:50}] {bytes}/{total_bytes}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_prefix(id.to_string());
            bar
        });
        bar.set_message(status.to_string());
        if let Some(total) = total {
            bar.set_length(total);
        }
        if let Some(current) = current {
            bar.set_position(current);
        } else if id.is_empty() {
            bar.finish_and_clear();
            multi.suspend(|| print(&format!("{status}\n")))?;
        }
        last_status = Some(status.to_string());
    }
    finish(&bars);
    Ok(last_status)
}

fn finish(bars: &HashMap<String, ProgressBar>) {
    for bar in bars.values() {
        bar.finish();
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
    use super::stream_error;
    use serde_json::json;

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
