//! The flags of `berth runtime …` (runc-style); the runtime crate gets them as a plain [`Invocation`].

use std::path::PathBuf;

use runtime::cli::{Command, Invocation};

/// Arguments of `berth runtime`.
#[derive(Debug, clap::Args)]
pub struct RuntimeArgs {
    /// Directory for the state of created containers [default: $BERTH_RUNTIME_ROOT or /run/berth/runtime]
    #[arg(long, global = true)]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: RuntimeCommand,
}

#[derive(Debug, clap::Subcommand)]
enum RuntimeCommand {
    /// Run an OCI bundle in the foreground and exit with the container's exit code
    Run {
        /// The bundle directory (holding config.json)
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Directory for cached seccomp programs [default: $BERTH_SECCOMP_CACHE or /run/berth/seccomp]
        #[arg(long)]
        seccomp_cache: Option<PathBuf>,
        /// Do not create a cgroup for the container
        #[arg(long)]
        no_cgroups: bool,
        /// The container id
        id: String,
    },
    /// Create a container from a bundle; its process waits for `start`
    Create {
        /// The bundle directory (holding config.json)
        #[arg(short, long, default_value = ".")]
        bundle: PathBuf,
        /// Directory for cached seccomp programs
        #[arg(long)]
        seccomp_cache: Option<PathBuf>,
        /// Do not create a cgroup for the container
        #[arg(long)]
        no_cgroups: bool,
        /// Write the container's pid to this file
        #[arg(long)]
        pid_file: Option<PathBuf>,
        /// With a terminal: send the pty master to the unix socket at this path (SCM_RIGHTS)
        #[arg(long)]
        console_socket: Option<PathBuf>,
        /// The container id
        id: String,
    },
    /// Start the process of a created container
    Start {
        /// The container id
        id: String,
    },
    /// Run a new process in a running container (runc exec); exits with its exit code
    Exec {
        /// A JSON file with the OCI process to run (else the container's, with COMMAND as args)
        #[arg(short, long)]
        process: Option<PathBuf>,
        /// Directory for cached seccomp programs
        #[arg(long)]
        seccomp_cache: Option<PathBuf>,
        /// The container id
        id: String,
        /// The command and its arguments
        #[arg(trailing_var_arg = true)]
        command: Vec<String>,
    },
    /// Print a container's state as JSON
    State {
        /// The container id
        id: String,
    },
    /// Send a signal to a container's init (default SIGTERM)
    Kill {
        /// The container id
        id: String,
        /// Signal name (TERM, SIGKILL) or number
        #[arg(default_value = "TERM")]
        signal: String,
    },
    /// Delete a stopped container (with --force, kill it first)
    Delete {
        /// Kill the container if it is not stopped
        #[arg(short, long)]
        force: bool,
        /// The container id
        id: String,
    },
    /// Print a config.json with Docker's defaults (capabilities, mounts, masked paths, seccomp)
    Spec {
        /// Leave out the seccomp profile
        #[arg(long)]
        no_seccomp: bool,
        /// The process to run
        #[arg(trailing_var_arg = true, default_value = "sh")]
        args: Vec<String>,
    },
}

impl From<RuntimeArgs> for Invocation {
    fn from(a: RuntimeArgs) -> Invocation {
        let command = match a.command {
            RuntimeCommand::Run {
                bundle,
                seccomp_cache,
                no_cgroups,
                id,
            } => Command::Run {
                bundle,
                seccomp_cache,
                no_cgroups,
                id,
            },
            RuntimeCommand::Create {
                bundle,
                seccomp_cache,
                no_cgroups,
                pid_file,
                console_socket,
                id,
            } => Command::Create {
                bundle,
                seccomp_cache,
                no_cgroups,
                pid_file,
                console_socket,
                id,
            },
            RuntimeCommand::Start { id } => Command::Start { id },
            RuntimeCommand::Exec {
                process,
                seccomp_cache,
                id,
                command,
            } => Command::Exec {
                process,
                seccomp_cache,
                id,
                command,
            },
            RuntimeCommand::State { id } => Command::State { id },
            RuntimeCommand::Kill { id, signal } => Command::Kill { id, signal },
            RuntimeCommand::Delete { force, id } => Command::Delete { force, id },
            RuntimeCommand::Spec { no_seccomp, args } => Command::Spec { no_seccomp, args },
        };
        Invocation {
            root: a.root,
            command,
        }
    }
}
