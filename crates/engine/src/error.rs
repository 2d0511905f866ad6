//! The engine's error type: what failed, in words a Docker user recognises, and the class the API maps to a status.

/// Every way an engine operation can fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The named object does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The request is malformed or names something invalid (400).
    #[error("{0}")]
    InvalidParameter(String),
    /// Credentials are missing or refused (401), e.g. a failed `docker login`.
    #[error("{0}")]
    Unauthorized(String),
    /// The operation is not allowed on this object (403), e.g. removing a pre-defined network.
    #[error("{0}")]
    Forbidden(String),
    /// The operation conflicts with the current state (409).
    #[error("{0}")]
    Conflict(String),
    /// Nothing to do: already in the requested state (304).
    #[error("")]
    NotModified,
    /// The feature exists in Docker but not (yet) in Berth (501).
    #[error("{0}")]
    NotImplemented(String),
    /// Anything else: the daemon's own failure (500).
    #[error("{0}")]
    System(String),
}

/// The engine's result type.
pub type Result<T> = std::result::Result<T, Error>;

impl From<image::Error> for Error {
    fn from(e: image::Error) -> Self {
        use image::Error as E;
        match e {
            E::NotFound(_) => Error::NotFound(e.to_string()),
            E::InvalidReference(_) => Error::InvalidParameter(e.to_string()),
            E::Conflict(_) => Error::Conflict(format!("conflict: {e}")),
            E::InvalidArchive(_)
            | E::UnsafePath { .. }
            | E::DigestMismatch { .. }
            | E::InvalidChange(_)
            | E::InvalidArgument(_)
            | E::Json { .. } => Error::InvalidParameter(e.to_string()),
            E::Unsupported(_) => Error::NotImplemented(e.to_string()),
            _ => Error::System(e.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::System(format!("internal task failed: {e}"))
    }
}
