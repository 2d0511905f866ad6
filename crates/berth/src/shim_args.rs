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
    /// The log driver and its settings, as JSON ([`shim::LogDriver`]).
    #[arg(long, value_parser = parse_log_driver)]
    log_driver: shim::LogDriver,
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
            log: a.log_driver,
            stdin: a.stdin,
            seccomp_cache: a.seccomp_cache,
            runtime: a.runtime,
        }
    }
}

fn parse_log_driver(s: &str) -> Result<shim::LogDriver, String> {
    serde_json::from_str(s).map_err(|e| format!("--log-driver {s}: {e}"))
}
