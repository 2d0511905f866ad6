//! `berth`: the Docker-compatible CLI, and `berth daemon`, the engine behind it.

mod cli;
mod daemon;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = cli::Cli::parse();
    cli::run(args)
}
