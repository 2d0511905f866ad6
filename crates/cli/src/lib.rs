//! Berth's Docker-compatible command line, as a library: a pure client of the Docker Engine API.
//!
//! The `berth` binary flattens [`GlobalArgs`] and [`Command`] into its own parser and calls [`run`].
//! Flag errors: clap exits with status 2 by default, Docker with 125. Parse with `try_parse()` and hand
//! a failure to [`exit_for_parse_error`], which prints clap's message and returns Docker's status.

// Tests assert on known-good recorded data; a panic there is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod client;
mod commands;
pub mod context;
pub mod error;
pub mod format;
mod output;
pub mod transport;

use std::process::ExitCode;

pub use commands::archive::{CpArgs, DiffArgs, ExportArgs};
pub use commands::attach::AttachArgs;
pub use commands::build::BuildArgs;
pub use commands::commit::CommitArgs;
pub use commands::containers::{
    ContainersArgs, KillArgs, LogsArgs, PsArgs, RenameArgs, RmArgs, StatsArgs, StopArgs, TopArgs,
};
pub use commands::distribution::{LoginArgs, LogoutArgs, PullArgs, PushArgs};
pub use commands::events::EventsArgs;
pub use commands::exec::ExecArgs;
pub use commands::image_ops::{
    HistoryArgs, ImportArgs, LoadArgs, PruneArgs, RmiArgs, SaveArgs, TagArgs,
};
pub use commands::images::ImagesArgs;
pub use commands::inspect::{ContainerInspectArgs, ImageInspectArgs, InspectArgs};
pub use commands::network::{NetworkArgs, NetworkCommand, PortArgs};
pub use commands::prune::{
    BuilderArgs, BuilderCommand, BuilderPruneArgs, ContainerPruneArgs, SystemPruneArgs,
};
pub use commands::run::{ContainerOptions, CreateArgs, RunArgs, StartArgs};
pub use commands::system::{DfArgs, InfoArgs, VersionArgs};
pub use commands::update::UpdateArgs;
pub use commands::volumes::{VolumeArgs, VolumeCommand};
pub use error::CliError;

/// The daemon address used when neither `-H`, `BERTH_HOST`, `DOCKER_HOST` nor a context names one.
pub const DEFAULT_HOST: &str = "unix:///run/berth/berth.sock";

/// Options that apply to every client command (placed before the command name).
#[derive(Debug, clap::Args)]
pub struct GlobalArgs {
    /// Daemon socket to connect to
    #[arg(short = 'H', long = "host", value_name = "list")]
    pub host: Option<String>,
    /// Name of the context to use to connect to the daemon (overrides DOCKER_HOST env var and default
    /// context set with "docker context use")
    #[arg(short = 'c', long = "context", value_name = "string")]
    pub context: Option<String>,
    /// Location of client config files
    #[arg(long = "config", value_name = "string")]
    pub config: Option<std::path::PathBuf>,
    /// TLS for `tcp://` hosts.
    #[command(flatten)]
    pub tls: transport::TlsArgs,
}

/// The client commands, named and flagged as Docker's.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// List images
    Images(ImagesArgs),
    /// Manage images
    Image(ImageArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
    /// Authenticate to a registry
    Login(LoginArgs),
    /// Log out from a registry
    Logout(LogoutArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Build an image from a Dockerfile
    Build(Box<BuildArgs>),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Return low-level information on Docker objects
    Inspect(InspectArgs),
    /// Show the Docker version information
    Version(VersionArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Manage Docker
    System(SystemArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// Create a new container
    Create(Box<CreateArgs>),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// List containers
    Ps(PsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Update configuration of one or more containers
    Update(Box<UpdateArgs>),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Manage containers
    Container(Box<ContainerArgs>),
    /// Manage networks
    Network(NetworkArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Manage volumes
    Volume(VolumeArgs),
    /// Manage contexts
    Context(context::ContextArgs),
    /// Manage builds
    Builder(BuilderArgs),
}

/// `container` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct ContainerArgs {
    /// The container subcommand to run.
    #[command(subcommand)]
    pub command: ContainerCommand,
}

/// The subcommands of `container`.
#[derive(Debug, clap::Subcommand)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(Box<RunArgs>),
    /// Create a new container
    Create(Box<CreateArgs>),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// List containers
    #[command(visible_aliases = ["list", "ps"])]
    Ls(PsArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArgs),
    /// Rename a container
    Rename(RenameArgs),
    /// Update configuration of one or more containers
    Update(Box<UpdateArgs>),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Display detailed information on one or more containers
    Inspect(ContainerInspectArgs),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(CpArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(DiffArgs),
    /// Create a new image from a container's changes
    Commit(CommitArgs),
    /// Export a container's filesystem as a tar archive
    Export(ExportArgs),
    /// Remove all stopped containers
    Prune(ContainerPruneArgs),
}

/// `image` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct ImageArgs {
    /// The image subcommand to run.
    #[command(subcommand)]
    pub command: ImageCommand,
}

/// The subcommands of `image`.
#[derive(Debug, clap::Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove", alias = "rmi")]
    Rm(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Build an image from a Dockerfile
    Build(Box<BuildArgs>),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Display detailed information on one or more images
    Inspect(ImageInspectArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
}

/// `system` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct SystemArgs {
    /// The system subcommand to run.
    #[command(subcommand)]
    pub command: SystemCommand,
}

/// The subcommands of `system`.
#[derive(Debug, clap::Subcommand)]
pub enum SystemCommand {
    /// Show docker disk usage
    Df(DfArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Remove unused data
    Prune(SystemPruneArgs),
    /// Proxy the stdio stream to the daemon connection. Should not be invoked manually.
    #[command(hide = true)]
    DialStdio,
}

/// Runs one client command against the daemon at `global.host`; errors are printed on stderr as Docker
/// prints them, and the returned status is Docker's (0 ok, 1 failure, 125 usage error).
pub fn run(global: GlobalArgs, command: Command) -> ExitCode {
    if let Some(dir) = &global.config {
        // Every reader of the config directory (contexts, credentials, TLS defaults) looks at
        // DOCKER_CONFIG, as the docker CLI's --config sets it; no other thread runs yet.
        std::env::set_var("DOCKER_CONFIG", dir);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("failed to start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(commands::dispatch(&global, command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Reported) => ExitCode::from(1),
        Err(CliError::Exit(status)) => ExitCode::from(status),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Prints a clap parse failure and returns Docker's status for it (clap itself would exit 2):
/// 0 for `--help`/`--version` output, 1 for a wrong number of arguments (Docker's "requires at least
/// 1 argument"), 125 for an unknown or invalid flag.
pub fn exit_for_parse_error(err: &clap::Error) -> ExitCode {
    let _ = err.print();
    ExitCode::from(parse_error_status(err))
}

/// The status [`exit_for_parse_error`] returns for `err`, for callers that print errors themselves.
pub fn parse_error_status(err: &clap::Error) -> u8 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !err.use_stderr() {
        return 0;
    }
    match err.kind() {
        ErrorKind::MissingRequiredArgument
        | ErrorKind::TooFewValues
        | ErrorKind::WrongNumberOfValues => 1,
        ErrorKind::UnknownArgument => match err.get(ContextKind::InvalidArg) {
            // An extra positional argument is an argument-count error in Docker, not a flag error.
            Some(ContextValue::String(arg)) if !arg.starts_with('-') => 1,
            _ => 125,
        },
        _ => 125,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    #[command(name = "berth")]
    struct Top {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        cmd: Command,
    }

    fn status(args: &[&str]) -> u8 {
        match Top::try_parse_from(args) {
            Ok(_) => 255,
            Err(e) => parse_error_status(&e),
        }
    }

    #[test]
    fn unknown_flag_exits_125_like_docker() {
        assert_eq!(status(&["berth", "images", "--bogus"]), 125);
    }

    #[test]
    fn missing_or_extra_arguments_exit_1_like_docker() {
        assert_eq!(status(&["berth", "rmi"]), 1);
        assert_eq!(status(&["berth", "tag", "a", "b", "c"]), 1);
    }

    /// The shape the `berth` binary uses: client commands flattened next to `daemon`.
    #[derive(Parser)]
    #[command(name = "berth")]
    struct BinaryTop {
        #[command(flatten)]
        global: GlobalArgs,
        #[command(subcommand)]
        cmd: BinaryCmd,
    }

    #[derive(clap::Subcommand)]
    enum BinaryCmd {
        Daemon,
        #[command(flatten)]
        Cli(Command),
    }

    #[test]
    fn commands_flatten_into_the_binary_next_to_daemon() {
        use clap::CommandFactory;
        BinaryTop::command().debug_assert();
        let top =
            BinaryTop::try_parse_from(["berth", "-H", "unix:///s", "rmi", "-f", "a", "b"]).unwrap();
        assert_eq!(top.global.host.as_deref(), Some("unix:///s"));
        assert!(
            matches!(top.cmd, BinaryCmd::Cli(Command::Rmi(ref r)) if r.force && r.images.len() == 2)
        );
        let top = BinaryTop::try_parse_from(["berth", "daemon"]).unwrap();
        assert!(matches!(top.cmd, BinaryCmd::Daemon));
    }

    #[test]
    fn help_exits_0() {
        assert_eq!(status(&["berth", "images", "--help"]), 0);
    }

    #[test]
    fn host_defaults_to_berth_socket_and_history_human_takes_equals_value() {
        let top = Top::try_parse_from(["berth", "history", "-H=false", "img"]).unwrap();
        assert_eq!(top.global.host, None);
        match top.cmd {
            Command::History(h) => assert!(!h.human),
            _ => panic!("parsed as another command"),
        }
        let top = Top::try_parse_from(["berth", "-H", "unix:///x.sock", "image", "list"]).unwrap();
        assert_eq!(top.global.host.as_deref(), Some("unix:///x.sock"));
    }
}
