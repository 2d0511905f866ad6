//! `berth`: the Docker-compatible CLI (crate `cli`), and `berth daemon`, the engine behind it.

mod daemon;

use clap::Parser;

/// The whole command line: the client's global flags, and either `daemon` or a client command.
#[derive(Debug, Parser)]
#[command(
    name = "berth",
    version,
    about = "A Docker-compatible container engine"
)]
struct Top {
    #[command(flatten)]
    global: cli::GlobalArgs,
    #[command(subcommand)]
    command: TopCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TopCommand {
    /// Run the Berth daemon
    Daemon(daemon::DaemonArgs),
    /// Run OCI bundles with the built-in runtime
    Runtime(runtime::cli::RuntimeArgs),
    /// Supervise one container (started by the daemon)
    #[command(hide = true)]
    Shim(shim::ShimArgs),
    #[command(flatten)]
    Cli(cli::Command),
}

fn main() -> std::process::ExitCode {
    let top = match Top::try_parse() {
        Ok(t) => t,
        Err(e) => return cli::exit_for_parse_error(&e),
    };
    match top.command {
        TopCommand::Daemon(args) => match daemon::run(args) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("berth daemon: {e:#}");
                std::process::ExitCode::from(1)
            }
        },
        TopCommand::Shim(args) => shim::run(args),
        TopCommand::Runtime(args) => std::process::ExitCode::from(runtime::cli::run(args) as u8),
        TopCommand::Cli(cmd) => cli::run(top.global, cmd),
    }
}
