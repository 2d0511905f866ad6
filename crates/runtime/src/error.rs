//! The runtime's one error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while loading, creating, running or cleaning up a container.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `config.json` could not be read or parsed.
    #[error("load spec {path}: {source}")]
    Spec {
        /// The file that failed.
        path: PathBuf,
        /// Why.
        source: oci_spec::OciSpecError,
    },
    /// The spec is well-formed but asks for something this runtime cannot do.
    #[error("invalid spec: {0}")]
    InvalidSpec(String),
    /// The container is not in a state that allows the operation (exists, running...).
    #[error("{0}")]
    State(String),
    /// A file or directory operation failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// The operation ("open", "write", "mkdir"...).
        what: &'static str,
        /// The path it was done on.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// A system call failed in the runner (not in the container's init).
    #[error("{call}: {source}")]
    Syscall {
        /// The call, with its subject where useful.
        call: &'static str,
        /// The errno.
        source: io::Error,
    },
    /// Setting up the container's init failed before it could exec the process.
    #[error("container init: {stage}{detail}: {source}")]
    Init {
        /// The step that failed.
        stage: &'static str,
        /// The object it failed on (e.g. " /proc"), or empty.
        detail: String,
        /// The errno.
        source: io::Error,
    },
    /// The process could not be executed (exit codes 126/127 follow from this). Worded as
    /// runc words it, which Docker users see in `docker run` errors.
    #[error("exec: {program:?}: {}", exec_reason(.program, .source))]
    Exec {
        /// `args[0]`.
        program: String,
        /// The errno of the last attempt.
        source: io::Error,
    },
    /// Compiling or loading a seccomp filter failed.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// A cgroup operation failed.
    #[error("cgroup {path}: {source}")]
    Cgroup {
        /// The cgroup file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

fn exec_reason(program: &str, e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOENT) && !program.contains('/') {
        "executable file not found in $PATH".to_string()
    } else {
        e.to_string()
    }
}

/// The runtime's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Wraps an I/O error with the operation and path it happened on.
    pub(crate) fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            what,
            path: path.into(),
            source,
        }
    }

    /// Wraps the current errno of a failed system call.
    pub(crate) fn last_os(call: &'static str) -> Self {
        Error::Syscall {
            call,
            source: io::Error::last_os_error(),
        }
    }
}

/// An OS error as Go prints it ("no such file or directory"): Rust's text, lower-cased, without "(os
/// error N)". Docker's and runc's messages embed Go's wording, and clients match on it (exit codes
/// 126/127).
pub fn go_errno_text(e: &io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or("").to_owned();
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_errors_read_like_runcs() {
        let e = |p: &str, errno| Error::Exec {
            program: p.into(),
            source: io::Error::from_raw_os_error(errno),
        };
        assert_eq!(
            e("nope", libc::ENOENT).to_string(),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert!(e("/bin/x", libc::EACCES)
            .to_string()
            .starts_with("exec: \"/bin/x\": Permission denied"));
    }
}
