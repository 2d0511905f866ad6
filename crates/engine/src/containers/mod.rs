//! Containers: records and their lifecycle (create, start, stop, kill, wait, remove), logs, the output
//! hub behind attach, OCI spec generation, and recovery after a daemon restart.

mod archive;
mod blkio;
mod changes;
mod commit;
mod create;
mod devices;
mod etc;
pub mod exec;
pub(crate) mod health;
pub mod hub;
mod init;
mod inroot;
mod lifecycle;
mod limits;
mod links;
pub mod logdriver;
mod logs;
pub(crate) mod mounts;
mod names;
pub mod record;
pub(crate) mod restart;
pub(crate) mod rootfs;
mod shim_client;
mod spec;
pub mod stats;
mod stdin;
pub mod store;
mod top;
mod update;
mod user;
mod views;

pub use archive::{ArchiveJob, ExtractRequest, PathStat};
pub use changes::{Change, ChangeKind};
pub use commit::CommitRequest;
pub(crate) use commit::{commit_upper, layer_pipe};
pub(crate) use create::fill_random;
pub(crate) use create::random_id;
pub use create::{
    check_host_config, create_host_config, fill_host_defaults, isolation_error, merge_config,
    CreateRequest,
};
pub use exec::{check_exec_config, ExecConfig, ExecInstance, ExecIo, ExecStartConfig};
pub use lifecycle::{parse_signal, AttachTarget, WaitCondition};
pub(crate) use links::parse_link;
pub use logs::LogOptions;
pub use restart::check_raw_policy;
pub use spec::resources;
pub use stdin::Stdin;
pub use update::check_update;
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
