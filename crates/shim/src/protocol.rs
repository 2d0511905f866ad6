//! The shim's control protocol on its unix socket (`--socket`): a client sends one text command per line and
//! reads one reply line.
//!
//! - `attach [stdin] [stdout] [stderr]` → `ok`; the connection then carries the container's output as
//!   Docker's multiplexed frames (`[stream, 0, 0, 0, len_be32] payload`, stream 1 = stdout, 2 = stderr) and,
//!   with `stdin`, the bytes the client sends become the container's stdin (EOF closes it). The connection
//!   ends when the container's output does.
//! - `start` → `ok` or `err MESSAGE` (the process could not be executed; MESSAGE says why).
//! - `wait` → `exit CODE OOM` once the container's init has exited (at once if it already has).
//! - `kill SIGNAL [EXEC_ID]` → `ok` or `err MESSAGE` (the container's init, or a running exec session's
//!   process).
//! - `resize ROWS COLS [EXEC_ID]` → `ok` or `err MESSAGE` (the pty's window size: the container's, or an
//!   exec session's).
//! - `exec EXEC_ID STDIN JSON` (STDIN `1` or `0`; JSON the OCI process on one line) → `ok PID` or `err
//!   MESSAGE`; the process runs in the container (its namespaces, cgroup and seccomp). The connection
//!   then carries the process's output as multiplexed frames (stream 1 only with a terminal), the
//!   client's bytes become its stdin (EOF closes it), and last comes a [`CONTROL`] frame `exit CODE`
//!   once the process has exited and its output is drained; then the shim closes the connection.
//!   Exec output is not logged. Sessions end (killed) with the container.
//!
//! With a terminal the pty master carries the container's output (as stream 1) and its input.
//!
//! Flow control: a client's stdin bytes are read only while the shim holds less than 256 KiB for that
//! stdin (the client waits in its socket); an exec's output is read only while its client has less than
//! 256 KiB waiting; an attach client more than 16 MiB behind misses whole frames until it catches up (the
//! log keeps everything).
//!
//! The shim also writes `exit.json` ([`ExitRecord`]) in its state dir when the container exits, so a daemon
//! that was down at the time learns the outcome on restart, and `started` ([`STARTED_FILE`]) once `start`
//! has succeeded.

use serde::{Deserialize, Serialize};

/// Name of the exit record in the state dir.
pub const EXIT_FILE: &str = "exit.json";
/// Name of the file holding the container init's host pid.
pub const PID_FILE: &str = "init.pid";
/// Name of the (empty) file the shim writes once `start` has executed the container's process: a daemon
/// restarted after a crash tells by it a started container from one whose init still waits for `start`.
pub const STARTED_FILE: &str = "started";

/// How a container ended, as recorded by its shim.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitRecord {
    /// Exit code, or 128 + signal.
    pub exit_code: i32,
    /// Whether the OOM killer ended it.
    pub oom_killed: bool,
    /// RFC 3339 time of the exit.
    pub finished_at: String,
}

/// Docker's stream numbers in multiplexed frames (the shim frames exec output as Docker does).
pub use stdio::frame::{STDERR, STDOUT};
/// A shim-to-engine control frame (not Docker's): `exit CODE` ends an exec session.
pub const CONTROL: u8 = 0xff;
