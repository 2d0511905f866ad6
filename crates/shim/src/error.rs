//! The shim's error type. Its text is what the shim answers (`err MESSAGE`) and what the engine shows the
//! user, so a start or exec failure keeps Docker's wording, from which the engine and the docker CLI read
//! the exit code (126, 127).

/// Every way a shim operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file, pipe or socket operation of the shim failed.
    #[error("{context}: {source}")]
    Io {
        /// What the shim was doing, and on what.
        context: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The built-in runtime failed.
    #[error(transparent)]
    Runtime(#[from] runtime::Error),
    /// The container's process, or an exec's, could not be started; `message` is in Docker's words.
    #[error("{message}")]
    Start {
        /// What the user sees, e.g. `exec: "nope": executable file not found in $PATH`.
        message: String,
        /// The runtime's error behind it.
        #[source]
        source: runtime::Error,
    },
    /// An external OCI runtime failed: the error it logged, or how its command ended.
    #[error("{0}")]
    External(String),
    /// `RUNTIME create` failed (an external runtime).
    #[error("OCI runtime create failed: {0}")]
    ExternalCreate(#[source] Box<Error>),
    /// The request does not fit the container's state (deleted, exited, an unknown exec session).
    #[error("{0}")]
    State(String),
    /// An exec request whose process is not a valid OCI process.
    #[error("exec process: {0}")]
    ProcessJson(#[from] serde_json::Error),
}

impl Error {
    /// An io failure with what was being done.
    pub fn io(context: impl Into<String>, source: impl Into<std::io::Error>) -> Error {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// The shim's result type.
pub type Result<T> = std::result::Result<T, Error>;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn io_errors_say_what_failed_and_keep_the_cause() {
        let e = Error::io("creating state dir", rustix::io::Errno::ACCESS);
        assert_eq!(
            e.to_string(),
            "creating state dir: Permission denied (os error 13)"
        );
        assert!(e.source().is_some());
    }

    #[test]
    fn an_external_create_failure_is_prefixed_as_dockerd_does() {
        let e = Error::ExternalCreate(Box::new(Error::External(
            "container_linux.go:380: starting container process caused: exec: \"nope\"".into(),
        )));
        assert!(e
            .to_string()
            .starts_with("OCI runtime create failed: container_linux.go"));
        assert!(e.source().is_some());
    }
}
