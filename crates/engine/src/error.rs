//! The engine's error type: what failed, in words a Docker user recognises, and the class the API maps to a status.
//!
//! A failure of the daemon itself keeps the error that caused it ([`Error::Failed`], made with [`Context`]), so
//! logs and callers can walk `source()` down to the io, kernel, image or runtime error; its text stays
//! "context: cause", the words Docker users see.

/// A lower-level error kept as the cause of an [`Error`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

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
    /// The service the operation needs is not available on this daemon (503), e.g. swarm mode.
    #[error("{0}")]
    Unavailable(String),
    /// The daemon's own failure with nothing underneath it to report (500).
    #[error("{0}")]
    System(String),
    /// The daemon's own failure (500) caused by a lower-level error (io, kernel, image store, runtime,
    /// network), which `source()` returns. Shown as "context: cause", or the cause alone without a context.
    #[error("{}", joined(context, source))]
    Failed {
        /// What the engine was doing, and on what ("creating /var/lib/berth/containers/…").
        context: String,
        /// The error that made it fail.
        #[source]
        source: BoxError,
    },
}

/// The class of an [`Error`], which the API maps to an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 404.
    NotFound,
    /// 400.
    InvalidParameter,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 409.
    Conflict,
    /// 304.
    NotModified,
    /// 501.
    NotImplemented,
    /// 503.
    Unavailable,
    /// 500.
    System,
}

fn joined(context: &str, source: &BoxError) -> String {
    if context.is_empty() {
        source.to_string()
    } else {
        format!("{context}: {source}")
    }
}

impl Error {
    /// A failure of the daemon caused by `source`, shown as "context: source".
    pub fn system(
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Error {
        Error::Failed {
            context: context.into(),
            source: Box::new(source),
        }
    }

    /// This error with `context` put in front of its text ("context: text"), its kind and source kept.
    pub fn prefixed(self, context: &str) -> Error {
        let p = |m: String| format!("{context}: {m}");
        match self {
            Error::NotFound(m) => Error::NotFound(p(m)),
            Error::InvalidParameter(m) => Error::InvalidParameter(p(m)),
            Error::Unauthorized(m) => Error::Unauthorized(p(m)),
            Error::Forbidden(m) => Error::Forbidden(p(m)),
            Error::Conflict(m) => Error::Conflict(p(m)),
            Error::NotModified => Error::NotModified,
            Error::NotImplemented(m) => Error::NotImplemented(p(m)),
            Error::Unavailable(m) => Error::Unavailable(p(m)),
            Error::System(m) => Error::System(p(m)),
            Error::Failed { context: c, source } if c.is_empty() => Error::Failed {
                context: context.to_owned(),
                source,
            },
            Error::Failed { context: c, source } => Error::Failed {
                context: p(c),
                source,
            },
        }
    }

    /// The class of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::InvalidParameter(_) => ErrorKind::InvalidParameter,
            Error::Unauthorized(_) => ErrorKind::Unauthorized,
            Error::Forbidden(_) => ErrorKind::Forbidden,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::NotModified => ErrorKind::NotModified,
            Error::NotImplemented(_) => ErrorKind::NotImplemented,
            Error::Unavailable(_) => ErrorKind::Unavailable,
            Error::System(_) | Error::Failed { .. } => ErrorKind::System,
        }
    }
}

/// Turns a lower-level failure into an [`Error::Failed`] that keeps it as its source: the engine's
/// `.context("…")`. It is implemented for the errors of the layers below the engine only, not for the
/// engine's own [`Error`]: wrapping that would turn a 404 or a 409 into a 500.
pub trait Context<T> {
    /// Fails with "`context`: cause".
    fn context(self, context: impl Into<String>) -> Result<T>;
    /// Like [`Context::context`], building the context only on failure.
    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T>;
}

/// The errors [`Context`] wraps.
pub trait Cause: std::error::Error + Send + Sync + 'static {}

macro_rules! causes {
    ($($t:ty),* $(,)?) => { $(impl Cause for $t {})* };
}

causes!(
    std::io::Error,
    rustix::io::Errno,
    serde_json::Error,
    std::ffi::NulError,
    std::num::ParseIntError,
    std::num::TryFromIntError,
    tokio::task::JoinError,
    image::Error,
    runtime::Error,
    network::Error,
    archive::Error,
    oci_spec::OciSpecError,
);

impl<T, E: Cause> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl Into<String>) -> Result<T> {
        self.map_err(|e| Error::system(context, e))
    }

    fn with_context<C: Into<String>>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| Error::system(context(), e))
    }
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
            _ => Error::system("", e),
        }
    }
}

impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::system("internal task failed", e)
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn not_there() -> std::io::Result<()> {
        std::fs::read("/nonexistent/berth-error-test").map(drop)
    }

    #[test]
    fn context_keeps_the_cause_as_source_and_in_the_text() {
        let e = not_there()
            .context("reading /nonexistent/berth-error-test")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::System);
        assert_eq!(
            e.to_string(),
            "reading /nonexistent/berth-error-test: No such file or directory (os error 2)"
        );
        let source = e.source().expect("a sourced error has a source");
        let io = source
            .downcast_ref::<std::io::Error>()
            .expect("the source is the io error itself");
        assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn with_context_builds_the_text_only_on_failure() {
        let mut built = 0;
        let ok: std::result::Result<u8, std::io::Error> = Ok(1);
        assert_eq!(
            ok.with_context(|| {
                built += 1;
                "never"
            })
            .unwrap(),
            1
        );
        assert_eq!(built, 0);
        let e = not_there()
            .with_context(|| format!("step {}", 2))
            .unwrap_err();
        assert!(e.to_string().starts_with("step 2: "), "{e}");
    }

    #[test]
    fn a_cause_without_context_shows_alone() {
        let e = Error::system("", std::io::Error::other("disk on fire"));
        assert_eq!(e.to_string(), "disk on fire");
        assert_eq!(e.source().unwrap().to_string(), "disk on fire");
    }

    #[test]
    fn messages_without_a_cause_have_no_source() {
        let e = Error::System("the daemon is shutting down".into());
        assert!(e.source().is_none());
        assert_eq!(e.kind(), ErrorKind::System);
        assert_eq!(
            Error::Unavailable("no swarm".into()).kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            Error::NotFound("No such container: x".into()).kind(),
            ErrorKind::NotFound
        );
    }

    #[test]
    fn prefixed_keeps_kind_and_source() {
        let e = Error::system("mount a:b", std::io::Error::other("EINVAL")).prefixed("volume v");
        assert_eq!(e.to_string(), "volume v: mount a:b: EINVAL");
        assert!(e.source().is_some());
        let e = Error::Conflict("in use".into()).prefixed("remove v");
        assert_eq!(
            (e.kind(), e.to_string().as_str()),
            (ErrorKind::Conflict, "remove v: in use")
        );
    }

    #[test]
    fn image_store_failures_keep_their_source() {
        let e = Error::from(image::Error::Io {
            op: "read",
            path: "/blobs/sha256/x".into(),
            source: std::io::Error::other("short read"),
        });
        assert_eq!(e.to_string(), "read /blobs/sha256/x: short read");
        assert_eq!(e.kind(), ErrorKind::System);
        assert!(e.source().is_some());
    }
}
