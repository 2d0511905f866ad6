//! `berth`: the Docker-compatible CLI (crate `cli`), and `berth daemon`, the engine behind it.

mod daemon;
mod daemon_config;
mod listen;
mod runtime_args;
mod shim_args;

use clap::Parser;

/// The C library's `pow`, defined here so that the binary needs nothing from glibc's `libm.so`.
///
/// Its one user is tokio's multi-thread scheduler (`f64::powf` in its task poll-time average). Loading
/// `libm.so` for that runs its IFUNC resolvers over the whole library at start, which left 0.5 MB of
/// libm resident in every daemon and shim. The `libm` crate (the Rust project's port of musl's libm)
/// computes the same function in a few kilobytes; with no symbol left to take from `libm.so`, the
/// linker's `--as-needed` drops it from a dynamically linked build's needed libraries (`BERTH_PIE=1`; the
/// default build is static, see `build.rs`, and takes nothing of glibc's libm either).
#[no_mangle]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

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
    Daemon(Box<daemon::DaemonArgs>),
    /// Run OCI bundles with the built-in runtime
    Runtime(runtime_args::RuntimeArgs),
    /// Supervise one container (started by the daemon)
    #[command(hide = true)]
    Shim(shim_args::ShimArgs),
    /// Generate the autocompletion script for the specified shell
    Completion(CompletionArgs),
    #[command(flatten)]
    Cli(cli::Command),
}

/// `berth completion SHELL`.
#[derive(Debug, clap::Args)]
struct CompletionArgs {
    /// The shell to complete in (bash, zsh, fish, powershell, elvish)
    shell: clap_complete::Shell,
}

/// Prints the completion script of the whole command tree (every subcommand and flag) for `shell`.
fn completion(shell: clap_complete::Shell) -> std::process::ExitCode {
    use clap::CommandFactory;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Top::command(), "berth", &mut script);
    let mut out = std::io::stdout().lock();
    match std::io::Write::write_all(&mut out, &script)
        .and_then(|()| std::io::Write::flush(&mut out))
    {
        // A closed pipe (`berth completion bash | head`) is not an error, as for every command.
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("writing the completion script: {e}");
            std::process::ExitCode::from(1)
        }
        _ => std::process::ExitCode::SUCCESS,
    }
}

// `berth shim …` alone: how the daemon starts every shim.
#[derive(Debug, Parser)]
#[command(
    name = "berth shim",
    bin_name = "berth shim",
    about = "Supervise one container (started by the daemon)"
)]
struct ShimOnly {
    #[command(flatten)]
    args: shim_args::ShimArgs,
}

// `berth daemon …` alone: building the whole command tree maps in code (every client command's
// generated parser) that the daemon then keeps resident, about 1.6 MB of its 12.7 MB idle RSS.
#[derive(Debug, Parser)]
#[command(
    name = "berth daemon",
    bin_name = "berth daemon",
    version,
    about = "Run the Berth daemon"
)]
struct DaemonOnly {
    #[command(flatten)]
    args: daemon::DaemonArgs,
}

fn main() -> std::process::ExitCode {
    // A shim is on the path of every container start: building the whole command tree (every
    // client command and flag) to parse its arguments costs about 1 ms, so its line is parsed alone.
    if std::env::args_os().nth(1).is_some_and(|a| a == "shim") {
        return match ShimOnly::try_parse_from(std::env::args_os().skip(1)) {
            Ok(s) => {
                init_stderr_log();
                shim::run(s.args.into())
            }
            Err(e) => cli::exit_for_parse_error(&e),
        };
    }
    if std::env::args_os().nth(1).is_some_and(|a| a == "daemon") {
        return match DaemonOnly::try_parse_from(std::env::args_os().skip(1)) {
            Ok(d) => run_daemon(d.args),
            Err(e) => cli::exit_for_parse_error(&e),
        };
    }
    let top = match Top::try_parse() {
        Ok(t) => t,
        Err(e) => return cli::exit_for_parse_error(&e),
    };
    match top.command {
        TopCommand::Daemon(args) => run_daemon(*args),
        TopCommand::Shim(args) => {
            init_stderr_log();
            shim::run(args.into())
        }
        TopCommand::Runtime(args) => {
            init_stderr_log();
            std::process::ExitCode::from(runtime::cli::run(args.into()) as u8)
        }
        TopCommand::Completion(args) => completion(args.shell),
        TopCommand::Cli(cmd) => cli::run(top.global, cmd),
    }
}

/// Warnings of the shim and of `berth runtime` (cleanup that failed) go to stderr: a shim's is its log file
/// in the container's state directory.
fn init_stderr_log() {
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}

fn run_daemon(args: daemon::DaemonArgs) -> std::process::ExitCode {
    match daemon::run(args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("berth daemon: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
