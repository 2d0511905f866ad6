//! `berth shim`: one small synchronous process per container. It creates the container through the runtime,
//! holds its stdio, writes its log (through the driver the engine chose), serves attach/start/wait/kill on a unix socket, reaps the
//! exit status and records it. It runs in its own session, so the daemon can die and come back while the
//! container keeps running (see [`protocol`]).

mod backend;
mod buffers;
mod cleanup;
pub mod drivers;
mod error;
mod logfile;
pub mod protocol;
mod supervisor;

pub use drivers::LogDriver;
pub use error::{Error, Result};
pub use logfile::{JsonLog, Stream};
pub use supervisor::ShimConfig;

/// Runs the shim; its stdout (a pipe from the daemon) gets `ok PID` once the container is created, or
/// `err MESSAGE`.
pub fn run(args: ShimConfig) -> std::process::ExitCode {
    supervisor::run(args)
}
