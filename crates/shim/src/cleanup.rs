//! Cleanup whose failure the shim cannot act on, only report: its stderr is the shim's log in the
//! container's state directory.

use std::path::Path;

/// Removes a file that may already be gone (a stale socket, a runtime's pid file); other failures are
/// logged with `what` the file is.
pub(crate) fn remove_file(path: &Path, what: &str) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "removing {what}");
        }
        _ => {}
    }
}
