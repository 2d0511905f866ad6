//! The flags of `berth shim` (the daemon passes them; not meant for people); the shim crate gets them as a
//! plain [`shim::ShimConfig`].

use std::path::PathBuf;

/// Flags of `berth shim`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShimArgs {
    /// Container ID.
    #[arg(long)]
    id: String,
    /// OCI bundle directory (config.json).
    #[arg(long)]
    bundle: PathBuf,
    /// Directory for the pid and exit files.
    #[arg(long)]
    state_dir: PathBuf,
    /// The control socket (kept short: unix socket paths are limited to 107 bytes).
    #[arg(long)]
    socket: PathBuf,
    /// json-file log path.
    #[arg(long)]
    log_path: PathBuf,
    /// Rotate the log at this size (bytes; 0 = never).
    #[arg(long, default_value_t = 10 * 1024 * 1024)]
    log_max_size: u64,
    /// Keep at most this many log files.
    #[arg(long, default_value_t = 3)]
    log_max_files: u32,
    /// Give the container a stdin pipe (`-i`).
    #[arg(long)]
    stdin: bool,
    /// Where compiled seccomp filters are cached.
    #[arg(long)]
    seccomp_cache: Option<PathBuf>,
    /// Run the container with this OCI runtime binary (runc, crun, youki) instead of the built-in one.
    #[arg(long)]
    runtime: Option<PathBuf>,
}

impl From<ShimArgs> for shim::ShimConfig {
    fn from(a: ShimArgs) -> shim::ShimConfig {
        shim::ShimConfig {
            id: a.id,
            bundle: a.bundle,
            state_dir: a.state_dir,
            socket: a.socket,
            log_path: a.log_path,
            log_max_size: a.log_max_size,
            log_max_files: a.log_max_files,
            stdin: a.stdin,
            seccomp_cache: a.seccomp_cache,
            runtime: a.runtime,
        }
    }
}
