//! The CLI's error type; its `Display` is exactly what Docker prints on stderr.

/// Everything that can make a command fail.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon's socket could not be reached.
    #[error("Cannot connect to the Berth daemon at {host}. Is the berth daemon running?")]
    Connect {
        /// The `-H` address that was tried.
        host: String,
    },
    /// The daemon answered with a non-2xx status; `message` is its `{"message": …}`.
    #[error("Error response from daemon: {message}")]
    Daemon {
        /// HTTP status code of the answer.
        status: u16,
        /// The daemon's message.
        message: String,
    },
    /// An error reported inside a 200 progress stream (`errorDetail` / `error`).
    #[error("{0}")]
    Stream(String),
    /// The HTTP exchange itself failed mid-way.
    #[error("error during connect: {0}")]
    Http(String),
    /// The daemon's answer was not the JSON expected.
    #[error("error decoding daemon response: {0}")]
    Decode(String),
    /// A local file or terminal operation failed.
    #[error("{0}")]
    Io(String),
    /// A `--format` template failed to parse or run.
    #[error("{0}")]
    Template(String),
    /// A usage error found after flag parsing (exit status 125 in Docker... but reported as 1 here when noted).
    #[error("{0}")]
    Usage(String),
    /// A message Docker prints with an `Error: ` prefix (`Error: No such image: x`).
    #[error("Error: {0}")]
    Prefixed(String),
    /// Failure already printed (for commands that report several errors themselves).
    #[error("")]
    Reported,
}

impl CliError {
    /// The process exit status Docker uses for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 125,
            _ => 1,
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Io(e.to_string())
    }
}
