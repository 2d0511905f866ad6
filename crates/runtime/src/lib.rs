//! Berth's built-in OCI runtime.
//!
//! It runs an OCI bundle (`config.json` + rootfs) the way runc does: namespaces, mounts with
//! propagation, `/dev`, pivot_root, masked and read-only paths, hostname, sysctls, rlimits,
//! user and groups, capabilities, no_new_privs, seccomp (compiled once and cached), and
//! cgroups v1 or v2. See `docs/runtime.md` for the process model.

#![deny(missing_docs)]
// Tests may unwrap: a panic there is a test failure with a message, which is what we want.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod cgroups;
pub mod cli;
pub mod container;
pub mod error;
pub mod exec;
pub mod init;
pub mod lifecycle;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
mod sys;
mod syscall_table;
pub mod tty;

pub use container::{Container, CreateOptions, ExitStatus, Stdio};
pub use error::{Error, Result};
