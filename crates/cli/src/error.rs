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
    /// A usage error found after flag parsing (exit status 125, as Docker).
    #[error("{0}")]
    Usage(String),
    /// A message Docker prints with an `Error: ` prefix (`Error: No such image: x`).
    #[error("Error: {0}")]
    Prefixed(String),
    /// A message printed as is, with the exit status Docker uses for it (`run`'s 125/126/127).
    #[error("{0}")]
    WithStatus(String, u8),
    /// Exit with this status and print nothing (a container's own exit status).
    #[error("")]
    Exit(u8),
    /// Failure already printed (for commands that report several errors themselves).
    #[error("")]
    Reported,
}

impl CliError {
    /// The process exit status Docker uses for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 125,
            CliError::WithStatus(_, status) | CliError::Exit(status) => *status,
            _ => 1,
        }
    }
}

/// An OS error as Go words it ("no such file or directory"): Rust's text, lower-cased, without "(os error N)".
pub fn os_error_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => text.as_str(),
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::Io(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_errors_are_worded_like_go() {
        let e = std::io::Error::from_raw_os_error(2);
        assert_eq!(os_error_text(&e), "no such file or directory");
    }

    #[test]
    fn connect_error_names_the_host_and_usage_errors_exit_125() {
        let e = CliError::Connect {
            host: "unix:///run/berth/berth.sock".into(),
        };
        assert_eq!(
            e.to_string(),
            "Cannot connect to the Berth daemon at unix:///run/berth/berth.sock. Is the berth daemon running?"
        );
        assert_eq!(e.exit_code(), 1);
        assert_eq!(CliError::Usage("x".into()).exit_code(), 125);
    }
}
