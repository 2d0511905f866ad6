//! The image crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong in the image store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No image matches what the user typed.
    #[error("No such image: {0}")]
    NotFound(String),
    /// A reference that does not follow Docker's grammar.
    #[error("invalid reference format{}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    InvalidReference(String),
    /// The operation conflicts with the store's state (e.g. an image referenced by several tags).
    #[error("{0}")]
    Conflict(String),
    /// The archive is malformed or inconsistent.
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    /// A layer entry would write outside its snapshot or is not allowed.
    #[error("unsafe path {path:?} in layer: {reason}")]
    UnsafePath {
        /// The entry path as written in the tar.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// Content did not hash to the digest it was named by.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified.
        what: String,
        /// The expected digest.
        expected: String,
        /// The computed digest.
        actual: String,
    },
    /// A syscall or file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document could not be parsed or written.
    #[error("{what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A `docker import --change` value that Docker does not accept.
    #[error("{0}")]
    InvalidChange(String),
    /// An invalid argument.
    #[error("{0}")]
    InvalidArgument(String),
    /// Not implemented (yet).
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// Result alias for the image crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an [`Error::Io`] for `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// Builds an [`Error::UnsafePath`].
    pub fn unsafe_path(path: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::UnsafePath {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Json`].
    pub fn json(what: impl Into<String>, source: serde_json::Error) -> Error {
        Error::Json {
            what: what.into(),
            source,
        }
    }
}

/// Adds a path and operation to `io::Result`s.
#[allow(dead_code)]
pub(crate) trait IoContext<T> {
    /// Maps the error into [`Error::Io`].
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(op, path, e))
    }
}
