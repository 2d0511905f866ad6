//! The log drivers the shim writes with: Docker's `none`, `json-file`, `local`, `syslog` and `journald`.
//! The engine picks one per container ([`LogDriver`], passed as `berth shim --log-driver JSON`); the shim
//! is the only writer, so logging goes on while the daemon is down.

mod journald;
mod lines;
pub mod local;
mod syslog;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::logfile::{JsonLog, Stream};
pub use syslog::{SyslogAddress, SyslogFormat};

/// Which driver a container's output goes to, with everything the shim needs to write it (the engine has
/// validated the options and resolved defaults, the tag and the addresses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "driver", rename_all = "kebab-case")]
pub enum LogDriver {
    /// Nothing is logged (attach still works).
    None,
    /// Docker's json-file: one JSON object per line.
    JsonFile {
        /// The current file; rotated ones get `.1`, `.2`, ….
        path: PathBuf,
        /// Rotate at this size (bytes; 0 = never).
        max_size: u64,
        /// Keep at most this many files.
        max_files: u32,
        /// Extra attributes of every entry (`--log-opt labels/env…`), sorted by key.
        #[serde(default)]
        attrs: Vec<(String, String)>,
    },
    /// Docker's local driver: length-framed protobuf entries, rotated and gzip-compressed (see [`local`]).
    Local {
        /// The current file (`…/local-logs/container.log`).
        path: PathBuf,
        /// Rotate once the file has reached this size (bytes).
        max_size: u64,
        /// Keep at most this many files.
        max_files: u32,
        /// gzip rotated files (`container.log.1.gz`).
        compress: bool,
        /// Extra attributes of every entry (`--log-opt labels/env/tag`), sorted by key.
        #[serde(default)]
        attrs: Vec<(String, String)>,
    },
    /// Each line as a syslog message.
    Syslog {
        /// Where to send.
        address: SyslogAddress,
        /// The syslog facility number (0-23; `daemon` is 3).
        facility: u8,
        /// The message format.
        format: SyslogFormat,
        /// The tag (APP-NAME), rendered from the `tag` option.
        tag: String,
    },
    /// Each line as a journal entry over the journal's native protocol.
    Journald {
        /// The journal's datagram socket (`/run/systemd/journal/socket`).
        socket: PathBuf,
        /// Fields sent with every entry (`CONTAINER_ID`, `CONTAINER_NAME`, …).
        fields: Vec<(String, String)>,
    },
}

/// A part of a line longer than the 16 KiB Docker splits at: which part, and whether it ends the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partial {
    /// The same for every part of one line.
    pub id: String,
    /// 1 for the first part.
    pub ordinal: u32,
    /// The part that ends the line (with its newline).
    pub last: bool,
}

/// An open driver.
pub(crate) enum Logger {
    None,
    Json(JsonLog),
    Local(local::LocalLog),
    Syslog(syslog::SyslogLog),
    Journald(journald::JournalLog),
}

impl Logger {
    /// Opens the driver: creates the file, or connects to the syslog server or journal. An error is the
    /// container's start failing, as dockerd's "failed to initialize logging driver".
    pub(crate) fn open(driver: &LogDriver) -> std::io::Result<Logger> {
        Ok(match driver {
            LogDriver::None => Logger::None,
            LogDriver::JsonFile {
                path,
                max_size,
                max_files,
                attrs,
            } => Logger::Json(JsonLog::open(path, *max_size, *max_files)?.with_attrs(attrs)),
            LogDriver::Local {
                path,
                max_size,
                max_files,
                compress,
                attrs,
            } => Logger::Local(
                local::LocalLog::open(path, *max_size, *max_files, *compress)?.with_attrs(attrs),
            ),
            LogDriver::Syslog {
                address,
                facility,
                format,
                tag,
            } => Logger::Syslog(syslog::SyslogLog::open(
                address.clone(),
                *facility,
                *format,
                tag.clone(),
            )?),
            LogDriver::Journald { socket, fields } => {
                Logger::Journald(journald::JournalLog::open(socket, fields)?)
            }
        })
    }

    /// Logs a chunk of a stream's output.
    pub(crate) fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        match self {
            Logger::None => Ok(()),
            Logger::Json(l) => l.write(stream, data),
            Logger::Local(l) => l.write(stream, data),
            Logger::Syslog(l) => l.write(stream, data),
            Logger::Journald(l) => l.write(stream, data),
        }
    }

    /// Logs what is left of unfinished lines (the output has ended), and waits for background work (a
    /// rotated file being compressed).
    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        match self {
            Logger::None => Ok(()),
            Logger::Json(l) => l.flush_partial(),
            Logger::Local(l) => l.finish(),
            Logger::Syslog(l) => l.flush_partial(),
            Logger::Journald(l) => l.flush_partial(),
        }
    }
}

/// Nanoseconds since the epoch, now.
fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}
