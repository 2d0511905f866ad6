//! The archive crate's error type. Each refusal of a hostile entry has its own variant, so callers can
//! word it as their API does (a layer's "unsafe path", `cp`'s "is outside of").

use std::io;

/// Everything that can go wrong reading, writing or extracting a tar.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tar stream itself is malformed (bad header, checksum, truncated data, bad PAX record).
    #[error("reading the archive: {0}")]
    Read(#[source] io::Error),
    /// An entry name or hard-link target that the extraction's policy refuses outright (strict mode:
    /// absolute, `..`, through a symlink, hard link to something that is not an earlier entry).
    #[error("unsafe path {path:?}: {reason}")]
    Unsafe {
        /// The entry name as written in the tar.
        path: String,
        /// Why it was refused.
        reason: String,
    },
    /// A name (or hard-link target) whose `..` components climb above the destination (Docker's wording).
    #[error("{name:?} is outside of {dest:?}")]
    Outside {
        /// The entry name (after renaming).
        name: String,
        /// The destination as the caller named it.
        dest: String,
    },
    /// A relative symlink target that climbs above the destination (Docker's wording).
    #[error("invalid symlink {path:?} -> {target:?}")]
    SymlinkEscape {
        /// The symlink's full path.
        path: String,
        /// Its target.
        target: String,
    },
    /// A device node where the extraction does not allow them.
    #[error("{path}: device nodes are not allowed")]
    Device {
        /// The entry name as written in the tar.
        path: String,
    },
    /// `no-overwrite-dir-non-dir`: a non-directory entry would replace a directory (Docker's wording).
    #[error("cannot overwrite directory {path:?} with non-directory {dest:?}")]
    OverwriteDir {
        /// The full path of the existing directory.
        path: String,
        /// The destination as the caller named it.
        dest: String,
    },
    /// `no-overwrite-dir-non-dir`: a directory entry would replace a non-directory (Docker's wording).
    #[error("cannot overwrite non-directory {path:?} with directory {dest:?}")]
    OverwriteNonDir {
        /// The full path of the existing non-directory.
        path: String,
        /// The destination as the caller named it.
        dest: String,
    },
    /// A syscall failed on a path below the destination.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what path.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(
        op: &'static str,
        path: impl Into<String>,
        source: impl Into<io::Error>,
    ) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source: source.into(),
        }
    }

    pub(crate) fn unsafe_path(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Unsafe {
            path: path.into(),
            reason: reason.into(),
        }
    }

    /// The OS error number behind an [`Error::Io`], for callers that word some of them specially
    /// (`EROFS` as "read-only").
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True for the refusals of a hostile or disallowed entry (as opposed to I/O failures).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::Unsafe { .. }
                | Error::Outside { .. }
                | Error::SymlinkEscape { .. }
                | Error::Device { .. }
                | Error::OverwriteDir { .. }
                | Error::OverwriteNonDir { .. }
        )
    }
}

/// Result alias for the archive crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
