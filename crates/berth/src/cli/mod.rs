//! The `berth` command line: Docker's commands, flags and output.

use std::process::ExitCode;

/// Top-level command line.
#[derive(Debug, clap::Parser)]
#[command(name = "berth", version, about = "A Docker-compatible container engine")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Every `berth` subcommand.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the Berth daemon
    Daemon(crate::daemon::DaemonArgs),
}

/// Runs one command and turns its outcome into the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Daemon(args) => crate::daemon::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::from(1)
        }
    }
}
