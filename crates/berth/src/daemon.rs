//! `berth daemon`: opens the engine on its data root and serves the Docker Engine API.

/// Flags of `berth daemon`, named as dockerd names them.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(_args: DaemonArgs) -> anyhow::Result<()> {
    anyhow::bail!("not yet")
}
