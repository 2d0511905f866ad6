//! `berth runtime ...`: the built-in runtime as a command, runc-style.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};

use crate::container::{Container, CreateOptions, Stdio};
use crate::error::Error;
use crate::spec::Bundle;
use crate::state::State;

/// One `berth runtime …` invocation, as the binary parsed it from its flags.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Directory for the state of created containers (default: `$BERTH_RUNTIME_ROOT` or /run/berth/runtime).
    pub root: Option<PathBuf>,
    /// What to do.
    pub command: Command,
}

/// The subcommands of `berth runtime`, runc-style.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run an OCI bundle in the foreground and exit with the container's exit code.
    Run {
        /// The bundle directory (holding config.json).
        bundle: PathBuf,
        /// Directory for cached seccomp programs.
        seccomp_cache: Option<PathBuf>,
        /// Do not create a cgroup for the container.
        no_cgroups: bool,
        /// The container id.
        id: String,
    },
    /// Create a container from a bundle; its process waits for `start`.
    Create {
        /// The bundle directory (holding config.json).
        bundle: PathBuf,
        /// Directory for cached seccomp programs.
        seccomp_cache: Option<PathBuf>,
        /// Do not create a cgroup for the container.
        no_cgroups: bool,
        /// Write the container's pid to this file.
        pid_file: Option<PathBuf>,
        /// With a terminal: send the pty master to the unix socket at this path (SCM_RIGHTS).
        console_socket: Option<PathBuf>,
        /// The container id.
        id: String,
    },
    /// Start the process of a created container.
    Start {
        /// The container id.
        id: String,
    },
    /// Run a new process in a running container (runc exec); exits with its exit code.
    Exec {
        /// A JSON file with the OCI process to run (else the container's, with `command` as args).
        process: Option<PathBuf>,
        /// Directory for cached seccomp programs.
        seccomp_cache: Option<PathBuf>,
        /// The container id.
        id: String,
        /// The command and its arguments.
        command: Vec<String>,
    },
    /// Print a container's state as JSON.
    State {
        /// The container id.
        id: String,
    },
    /// Send a signal to a container's init.
    Kill {
        /// The container id.
        id: String,
        /// Signal name (TERM, SIGKILL) or number.
        signal: String,
    },
    /// Delete a stopped container (with `force`, kill it first).
    Delete {
        /// Kill the container if it is not stopped.
        force: bool,
        /// The container id.
        id: String,
    },
    /// Print a config.json with Docker's defaults (capabilities, mounts, masked paths, seccomp).
    Spec {
        /// Leave out the seccomp profile.
        no_seccomp: bool,
        /// The process to run.
        args: Vec<String>,
    },
}

/// The init's pid, for the signal handler (0: none yet).
static INIT_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward(sig: libc::c_int) {
    let pid = INIT_PID.load(Ordering::Relaxed);
    if pid > 0 {
        // SAFETY: kill is async-signal-safe; `pid` is our child.
        unsafe { libc::kill(pid, sig) };
    }
}

/// Forwards the signals a foreground runner gets (Ctrl-C, `kill`) to the container's init.
fn forward_signals(pid: libc::pid_t) {
    INIT_PID.store(pid, Ordering::Relaxed);
    for sig in [
        libc::SIGTERM,
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
    ] {
        // SAFETY: an all-zero sigaction is valid; we fill the handler and flags.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = forward as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa` is initialised and `forward` only calls async-signal-safe kill.
        unsafe { libc::sigaction(sig, &sa, std::ptr::null_mut()) };
    }
}

/// Runs `berth runtime ...`; returns the process exit code.
pub fn run(args: Invocation) -> i32 {
    match args.command {
        Command::Run {
            bundle,
            seccomp_cache,
            no_cgroups,
            id,
        } => {
            let opts = CreateOptions {
                seccomp_cache,
                no_cgroups,
                start_fifo: None,
            };
            run_bundle(&bundle, &id, &opts)
        }
        Command::Create {
            bundle,
            seccomp_cache,
            no_cgroups,
            pid_file,
            console_socket,
            id,
        } => {
            let root = args.root.unwrap_or_else(crate::state::default_root);
            let opts = CreateOptions {
                seccomp_cache,
                no_cgroups,
                start_fifo: Some(State::fifo(&root, &id)),
            };
            report(crate::lifecycle::create(
                &root,
                &bundle,
                &id,
                &opts,
                pid_file.as_deref(),
                console_socket.as_deref(),
            ))
        }
        Command::Start { id } => report(crate::lifecycle::start(
            &args.root.unwrap_or_else(crate::state::default_root),
            &id,
        )),
        Command::Exec {
            process,
            seccomp_cache,
            id,
            command,
        } => {
            let root = args.root.unwrap_or_else(crate::state::default_root);
            exec_in(
                &root,
                &id,
                process.as_deref(),
                &command,
                seccomp_cache.as_deref(),
            )
        }
        Command::State { id } => {
            let root = args.root.unwrap_or_else(crate::state::default_root);
            match State::load(&root, &id) {
                Ok(st) => {
                    println!("{:#}", st.to_oci_json(&root));
                    0
                }
                Err(e) => report(Err(e)),
            }
        }
        Command::Kill { id, signal } => {
            let root = args.root.unwrap_or_else(crate::state::default_root);
            report(crate::lifecycle::kill(&root, &id, &signal))
        }
        Command::Delete { force, id } => {
            let root = args.root.unwrap_or_else(crate::state::default_root);
            report(crate::lifecycle::delete(&root, &id, force))
        }
        Command::Spec { no_seccomp, args } => print_spec(no_seccomp, &args),
    }
}

fn report(r: crate::Result<()>) -> i32 {
    match r {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth runtime: {e}");
            1
        }
    }
}

fn print_spec(no_seccomp: bool, args: &[String]) -> i32 {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut spec = match crate::spec::docker_default_spec(&args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("berth runtime: {e}");
            return 1;
        }
    };
    if no_seccomp {
        if let Some(mut linux) = spec.linux().clone() {
            linux.set_seccomp(None);
            spec.set_linux(Some(linux));
        }
    }
    match serde_json::to_string_pretty(&spec) {
        Ok(s) => {
            println!("{s}");
            0
        }
        Err(e) => {
            eprintln!("berth runtime: {e}");
            1
        }
    }
}

fn run_bundle(bundle: &std::path::Path, id: &str, opts: &CreateOptions) -> i32 {
    let b = match Bundle::load(bundle) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("berth runtime: {e}");
            return 1;
        }
    };
    let mut c = match Container::create(id, &b, Stdio::default(), opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("berth runtime: create {id}: {e}");
            return 1;
        }
    };
    forward_signals(c.pid());
    let console = c.take_console();
    let started = c.start();
    if let (Some(master), Ok(())) = (&console, &started) {
        crate::tty::relay(master);
    }
    drop(console);
    let status = c.wait();
    INIT_PID.store(0, Ordering::Relaxed);
    let code = match (&started, status) {
        (Err(e @ Error::Exec { .. }), _) => {
            eprintln!("berth runtime: {e}");
            status_code(c.wait()).unwrap_or(127)
        }
        (Err(e), _) => {
            eprintln!("berth runtime: start {id}: {e}");
            1
        }
        (Ok(()), Ok(s)) => s.code(),
        (Ok(()), Err(e)) => {
            eprintln!("berth runtime: wait {id}: {e}");
            1
        }
    };
    if let Err(e) = c.delete() {
        eprintln!("berth runtime: delete {id}: {e}");
    }
    code
}

/// `berth runtime exec`: the process runs in the foreground with our stdio (or a relayed pty);
/// returns its exit code.
fn exec_in(
    root: &std::path::Path,
    id: &str,
    process: Option<&std::path::Path>,
    command: &[String],
    seccomp_cache: Option<&std::path::Path>,
) -> i32 {
    let prepared = (|| -> crate::Result<(State, oci_spec::runtime::Spec)> {
        let st = State::load(root, id)?;
        if !st.alive() {
            return Err(Error::State(format!("container {id} is not running")));
        }
        let mut spec = Bundle::load(&st.bundle)?.spec;
        let mut p = match process {
            Some(path) => {
                let data = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
                serde_json::from_slice(&data)
                    .map_err(|e| Error::io("parse", path, std::io::Error::other(e)))?
            }
            None => spec.process().clone().unwrap_or_default(),
        };
        if !command.is_empty() {
            p.set_args(Some(command.to_vec()));
        }
        spec.set_process(Some(p));
        Ok((st, spec))
    })();
    let (st, spec) = match prepared {
        Ok(v) => v,
        Err(e) => {
            eprintln!("berth runtime: exec {id}: {e}");
            return 1;
        }
    };
    let cgroup = if st.cgroup_dirs.is_empty() {
        None
    } else {
        let linux = spec.linux().as_ref();
        let path = crate::cgroups::path_for(linux.and_then(|l| l.cgroups_path().as_deref()), id);
        crate::cgroups::Cgroup::open(&path).ok()
    };
    let proc = match crate::exec::exec(
        st.pid,
        cgroup.as_ref(),
        &spec,
        Stdio::default(),
        seccomp_cache,
    ) {
        Ok(p) => p,
        Err(e @ Error::Exec { .. }) => {
            eprintln!("berth runtime: {e}");
            return 127;
        }
        Err(e) => {
            eprintln!("berth runtime: exec {id}: {e}");
            return 1;
        }
    };
    forward_signals(proc.pid);
    if let Some(master) = &proc.console {
        crate::tty::relay(master);
    }
    let status = proc.wait();
    INIT_PID.store(0, Ordering::Relaxed);
    status_code(status).unwrap_or(1)
}

fn status_code(s: crate::Result<crate::ExitStatus>) -> Option<i32> {
    s.ok().map(|s| s.code())
}
