//! What runs the container: the built-in runtime (a library call), or an external OCI runtime binary
//! (`runc`, `crun`, `youki`) driven through its command line on the same bundle, as containerd's runc
//! shim drives it.
//!
//! With an external runtime the shim is a child subreaper: `RUNTIME create` exits once the container's
//! init waits for `start`, and the init (and every `exec --detach` process after it) is re-parented to the
//! shim, which then reaps it as it reaps the built-in runtime's children. The container's stdio are the
//! shim's pipes, passed through the runtime; a terminal's pty master comes back over `--console-socket`.
//! The runtime's own errors are read from its `--log` file (JSON lines), since its stderr is the
//! container's.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio as ProcStdio};
use std::time::{Duration, Instant};

use runtime::{Container, ExitStatus, Stdio};

use crate::error::{Error, Result};

/// A process the backend started in the container (`exec`).
pub struct Started {
    /// Its pid; the shim is its parent (or subreaper) and reaps it.
    pub pid: libc::pid_t,
    /// The pty master, with a terminal.
    pub console: Option<OwnedFd>,
}

/// The container under the shim.
pub enum Backend {
    /// Berth's own runtime.
    Builtin(Container),
    /// An OCI runtime binary.
    External(External),
    /// Deleted already (after the exit).
    Deleted,
}

/// A container run by an external OCI runtime.
pub struct External {
    binary: PathBuf,
    /// Console sockets go next to the shim's own socket: unix socket paths are limited to 107 bytes.
    socket_base: PathBuf,
    root: PathBuf,
    id: String,
    bundle: PathBuf,
    pid: libc::pid_t,
    console: Option<OwnedFd>,
    exited: Option<ExitStatus>,
    /// The container's cgroup as the runtime made it (for the OOM-kill count).
    cgroup: Option<runtime::cgroups::Cgroup>,
}

/// How long a runtime command may take before the shim gives up on it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

impl Backend {
    /// The container init's pid.
    pub fn pid(&self) -> libc::pid_t {
        match self {
            Backend::Builtin(c) => c.pid(),
            Backend::External(e) => e.pid,
            Backend::Deleted => 0,
        }
    }

    /// Lets the init execute the container's process.
    pub fn start(&mut self) -> Result<()> {
        match self {
            Backend::Builtin(c) => c.start().map_err(|e| Error::Start {
                message: crate::supervisor::start_error(&e),
                source: e,
            }),
            Backend::External(e) => e.run(&["start", &e.id.clone()], None).map(|_| ()),
            Backend::Deleted => Err(Error::State("the container is deleted".into())),
        }
    }

    /// Reaps the init (it must have exited, or this blocks).
    pub fn wait(&mut self) -> Result<ExitStatus> {
        match self {
            Backend::Builtin(c) => Ok(c.wait()?),
            Backend::External(e) => {
                if let Some(s) = e.exited {
                    return Ok(s);
                }
                let s = wait_pid(e.pid, 0)
                    .ok_or_else(|| Error::State("waitpid: no such child".into()))?;
                e.exited = Some(s);
                Ok(s)
            }
            Backend::Deleted => Err(Error::State("the container is deleted".into())),
        }
    }

    /// Sends a signal to the init.
    pub fn kill(&self, sig: i32) -> Result<()> {
        let gone = || Error::io("kill", std::io::Error::from_raw_os_error(libc::ESRCH));
        match self {
            Backend::Builtin(c) => Ok(c.kill(sig)?),
            Backend::External(e) => {
                if e.exited.is_some() {
                    return Err(gone());
                }
                // SAFETY: kill with the pid of our own (re-parented, unreaped) child.
                if unsafe { libc::kill(e.pid, sig) } < 0 {
                    return Err(Error::io("kill", std::io::Error::last_os_error()));
                }
                Ok(())
            }
            Backend::Deleted => Err(gone()),
        }
    }

    /// Removes the container (its cgroup, the runtime's state), killing it if it still runs.
    pub fn delete(self) -> Result<()> {
        match self {
            Backend::Builtin(c) => Ok(c.delete()?),
            Backend::External(mut e) => {
                let r = e
                    .run(&["delete", "--force", &e.id.clone()], None)
                    .map(|_| ());
                if e.exited.is_none() {
                    e.exited = wait_pid(e.pid, 0);
                }
                r
            }
            Backend::Deleted => Ok(()),
        }
    }

    /// How many processes of the container the OOM killer has killed.
    pub fn oom_kills(&self) -> u64 {
        let cg = match self {
            Backend::Builtin(c) => c.cgroup(),
            Backend::External(e) => e.cgroup.as_ref(),
            Backend::Deleted => None,
        };
        cg.and_then(|c| c.stats().ok()).map_or(0, |s| s.oom_kills)
    }

    /// Takes the pty master of a container with a terminal.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        match self {
            Backend::Builtin(c) => c.take_console(),
            Backend::External(e) => e.console.take(),
            Backend::Deleted => None,
        }
    }

    /// Starts `spec.process` in the container. The error is worded as runc words it.
    pub fn exec(
        &self,
        bundle: &Path,
        process: oci_spec::runtime::Process,
        stdio: Stdio,
        seccomp_cache: Option<&Path>,
    ) -> std::result::Result<Started, runtime::Error> {
        match self {
            Backend::Builtin(c) => {
                let mut spec = runtime::spec::Bundle::load(bundle)?.spec;
                spec.set_process(Some(process));
                let p = c.exec(&spec, stdio, seccomp_cache)?;
                Ok(Started {
                    pid: p.pid,
                    console: p.console,
                })
            }
            Backend::External(e) => e.exec(process, stdio).map_err(|msg| runtime::Error::Init {
                stage: "exec",
                detail: msg.to_string(),
                source: std::io::Error::other("failed"),
            }),
            Backend::Deleted => Err(runtime::Error::InvalidSpec(
                "the container is deleted".into(),
            )),
        }
    }
}

impl External {
    /// `RUNTIME create` of the bundle with `stdio` passed through (or a console socket for a terminal).
    /// Returns once the init waits for `start`.
    pub fn create(
        binary: &Path,
        socket_base: &Path,
        state_dir: &Path,
        id: &str,
        bundle: &Path,
        stdio: Stdio,
        terminal: bool,
    ) -> Result<External> {
        // SAFETY: prctl with integer arguments; makes orphaned descendants ours to reap.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } < 0 {
            return Err(Error::io(
                "becoming a subreaper",
                std::io::Error::last_os_error(),
            ));
        }
        let mut e = External {
            binary: binary.to_owned(),
            socket_base: socket_base.to_owned(),
            root: state_dir.join("runtime"),
            id: id.to_owned(),
            bundle: bundle.to_owned(),
            pid: 0,
            console: None,
            exited: None,
            cgroup: None,
        };
        let pid_file = state_dir.join("runtime-init.pid");
        crate::cleanup::remove_file(&pid_file, "a stale runtime pid file");
        let mut args: Vec<String> = vec![
            "create".into(),
            "--bundle".into(),
            bundle.display().to_string(),
            "--pid-file".into(),
            pid_file.display().to_string(),
        ];
        let console = if terminal {
            Some(ConsoleSocket::new(&socket_base.with_extension("console"))?)
        } else {
            None
        };
        if let Some(c) = &console {
            args.push("--console-socket".into());
            args.push(c.path.display().to_string());
        }
        args.push(id.to_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        e.console = e.run_with_console(&args, Some(stdio), console.as_ref())?;
        e.pid = read_pid(&pid_file)?;
        // A relative cgroupsPath nests under the caller's cgroup for runc as for the built-in runtime.
        if let Ok(b) = runtime::spec::Bundle::load(bundle) {
            let linux = b.spec.linux().as_ref();
            let path =
                runtime::cgroups::path_for(linux.and_then(|l| l.cgroups_path().as_deref()), id);
            // Opening creates what is missing: keep it only if the init is in it.
            if let Ok(cg) = runtime::cgroups::Cgroup::open(&path) {
                let holds_init = cg.dirs().first().is_some_and(|d| {
                    std::fs::read_to_string(d.join("cgroup.procs"))
                        .unwrap_or_default()
                        .lines()
                        .any(|l| l.trim() == e.pid.to_string())
                });
                if holds_init {
                    e.cgroup = Some(cg);
                } else {
                    if let Err(err) = cg.remove() {
                        tracing::warn!(id, error = %err, "removing a cgroup the runtime did not use");
                    }
                }
            }
        }
        Ok(e)
    }

    fn exec(&self, process: oci_spec::runtime::Process, stdio: Stdio) -> Result<Started> {
        let dir = self.root.join("exec");
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let terminal = process.terminal().unwrap_or(false);
        let process_file = dir.join(format!("{n}.json"));
        let pid_file = dir.join(format!("{n}.pid"));
        let json = serde_json::to_vec(&process)?;
        std::fs::write(&process_file, json).map_err(|e| Error::io("exec process", e))?;
        let console = if terminal {
            Some(ConsoleSocket::new(
                &self
                    .socket_base
                    .with_extension(format!("{}", n % 1_000_000_000)),
            )?)
        } else {
            None
        };
        let mut args: Vec<String> = vec![
            "exec".into(),
            "--detach".into(),
            "--pid-file".into(),
            pid_file.display().to_string(),
            "--process".into(),
            process_file.display().to_string(),
        ];
        if let Some(c) = &console {
            args.push("--console-socket".into());
            args.push(c.path.display().to_string());
        }
        args.push(self.id.clone());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let result = self.run_with_console(&args, Some(stdio), console.as_ref());
        crate::cleanup::remove_file(&process_file, "an exec's process file");
        let console = result?;
        let pid = read_pid(&pid_file);
        crate::cleanup::remove_file(&pid_file, "an exec's pid file");
        Ok(Started { pid: pid?, console })
    }

    /// Runs `RUNTIME --root R --log L ARGS`; the container's stdio are passed through when given (else
    /// /dev/null). Returns the error the runtime logged when it fails.
    fn run(&self, args: &[&str], stdio: Option<Stdio>) -> Result<Option<OwnedFd>> {
        self.run_with_console(args, stdio, None)
    }

    fn run_with_console(
        &self,
        args: &[&str],
        stdio: Option<Stdio>,
        console: Option<&ConsoleSocket>,
    ) -> Result<Option<OwnedFd>> {
        std::fs::create_dir_all(&self.root)
            .map_err(|e| Error::io(format!("creating {}", self.root.display()), e))?;
        let log = self.root.join("log.json");
        crate::cleanup::remove_file(&log, "the runtime's previous log");
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--log")
            .arg(&log)
            .arg("--log-format")
            .arg("json")
            .args(args)
            .current_dir(&self.bundle);
        let io = |fd: Option<OwnedFd>| fd.map_or_else(ProcStdio::null, ProcStdio::from);
        match stdio {
            Some(s) => {
                cmd.stdin(io(s.stdin))
                    .stdout(io(s.stdout))
                    .stderr(io(s.stderr));
            }
            None => {
                cmd.stdin(ProcStdio::null())
                    .stdout(ProcStdio::null())
                    .stderr(ProcStdio::null());
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("running {}", self.binary.display()), e))?;
        drop(cmd);
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut master = None;
        let status = loop {
            if let (Some(c), None) = (console, &master) {
                master = c.try_receive();
            }
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() > deadline => {
                    if let Err(e) = child.kill() {
                        tracing::warn!(binary = %self.binary.display(), error = %e, "killing a runtime command that timed out");
                    }
                    if let Err(e) = child.wait() {
                        tracing::warn!(binary = %self.binary.display(), error = %e, "reaping a runtime command that timed out");
                    }
                    return Err(Error::External(format!(
                        "{} {}: timed out",
                        self.binary.display(),
                        args[0]
                    )));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(1)),
                Err(e) => {
                    return Err(Error::io(
                        format!("waiting for {}", self.binary.display()),
                        e,
                    ))
                }
            }
        };
        if let (Some(c), None) = (console, &master) {
            master = c.try_receive();
        }
        if !status.success() {
            return Err(Error::External(logged_error(&log).unwrap_or_else(|| {
                format!("{} {} failed: {status}", self.binary.display(), args[0])
            })));
        }
        if console.is_some() && master.is_none() {
            return Err(Error::External("the runtime sent no console".into()));
        }
        Ok(master)
    }
}

/// The last error a runtime wrote to its JSON log (`{"level":"error","msg":…}`).
fn logged_error(log: &Path) -> Option<String> {
    let mut text = String::new();
    std::fs::File::open(log)
        .ok()?
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    text.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["level"] == "error").then(|| v["msg"].as_str().unwrap_or("").to_owned())
    })
}

fn read_pid(path: &Path) -> Result<libc::pid_t> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| Error::External(format!("the runtime wrote no pid to {}", path.display())))
}

/// `waitpid` with `flags`; `None` when there is nothing (more) to reap.
pub fn wait_pid(pid: libc::pid_t, flags: i32) -> Option<ExitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: waitpid with a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            continue;
        }
        return None;
    }
    Some(if libc::WIFSIGNALED(status) {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    })
}

/// The listening end of `--console-socket`: the runtime connects and sends the pty master.
struct ConsoleSocket {
    path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    fn new(path: &Path) -> Result<ConsoleSocket> {
        crate::cleanup::remove_file(path, "a stale console socket");
        let listener = UnixListener::bind(path)
            .map_err(|e| Error::io(format!("binding {}", path.display()), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io("console socket", e))?;
        Ok(ConsoleSocket {
            path: path.to_owned(),
            listener,
        })
    }

    /// The master, if the runtime has connected (and sent it).
    fn try_receive(&self) -> Option<OwnedFd> {
        let (stream, _) = self.listener.accept().ok()?;
        stream.set_nonblocking(false).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let fd = OwnedFd::from(stream);
        runtime::tty::recv_master(&fd).ok()
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        crate::cleanup::remove_file(&self.path, "a console socket");
    }
}
