//! Terminal and stream plumbing that the daemon and the CLI share, so that both sides read it alike:
//! Docker's multiplexed stream framing (written by the api and the shim, read by the engine and the CLI);
//! Docker's detach keys (`--detach-keys`, `detachKeys=`): their syntax and the watch for them in a TTY
//! session's input; and the terminal's raw mode and size. It depends on no other Berth crate (the CLI and the
//! runtime may use it).

pub mod detach;
pub mod frame;
pub mod terminal;
