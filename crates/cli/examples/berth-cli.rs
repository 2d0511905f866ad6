//! Runs the client commands standalone, parsed as the `berth` binary parses them (for manual testing).

use clap::Parser;

#[derive(Parser)]
#[command(name = "berth")]
struct Top {
    #[command(flatten)]
    global: cli::GlobalArgs,
    #[command(subcommand)]
    cmd: cli::Command,
}

fn main() -> std::process::ExitCode {
    match Top::try_parse() {
        Ok(top) => cli::run(top.global, top.cmd),
        Err(e) => cli::exit_for_parse_error(&e),
    }
}
