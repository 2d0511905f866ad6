//! Containers: records and their lifecycle (create, start, stop, kill, wait, remove), logs, the output
//! hub behind attach, OCI spec generation, and recovery after a daemon restart.

mod create;
mod etc;
pub mod hub;
mod lifecycle;
mod logs;
mod mounts;
mod names;
pub mod record;
mod rootfs;
mod shim_client;
mod spec;
pub mod stats;
pub mod store;
mod user;
mod views;

pub(crate) use create::random_id;
pub use create::CreateRequest;
pub use lifecycle::{parse_signal, AttachTarget, WaitCondition};
pub use logs::LogOptions;
pub use views::ContainerListOptions;

/// A lifecycle change, broadcast to waiters.
#[derive(Debug, Clone)]
pub enum StateChange {
    /// The container started.
    Started(String),
    /// The container exited with this code.
    Exited(String, i64),
    /// The container was removed.
    Removed(String),
}
