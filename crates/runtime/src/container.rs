//! A container's lifecycle: create (clone the init, set up cgroups and id maps, let the init
//! build the container up to the exec), start (let it exec), wait, kill, delete.
//!
//! The runner must be single-threaded when [`Container::create`] clones (the `berth runtime`
//! command is; the daemon runs containers through a shim process for this reason): the init is
//! a fork-like clone that only makes system calls on data prepared before the clone.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

use crate::cgroups::{self, Cgroup};
use crate::error::{Error, Result};
use crate::init::{Failure, InitContext, Stage};
use crate::namespaces::{self, NamespacePlan};
use crate::process::ProcessPlan;
use crate::rootfs::{CgroupMount, RootfsPlan};
use crate::seccomp;
use crate::spec::Bundle;
use crate::sys;

/// The container's standard streams; `None` inherits the runner's.
#[derive(Debug, Default)]
pub struct Stdio {
    /// Becomes fd 0.
    pub stdin: Option<OwnedFd>,
    /// Becomes fd 1.
    pub stdout: Option<OwnedFd>,
    /// Becomes fd 2.
    pub stderr: Option<OwnedFd>,
}

/// How the container's init ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// exit(code).
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

impl ExitStatus {
    /// The shell's convention (and runc's): the exit code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
        }
    }
}

/// What the runner gets back from a successful create: pid, report pipe, start pipe,
/// `args[0]`, pty master.
type Created = (libc::pid_t, OwnedFd, OwnedFd, String, Option<OwnedFd>);

/// Knobs of [`Container::create`] that are not in the spec.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Where compiled seccomp programs are cached (default [`seccomp::default_cache_dir`]).
    pub seccomp_cache: Option<PathBuf>,
    /// Skip cgroup setup entirely (for runners without a writable cgroupfs).
    pub no_cgroups: bool,
    /// A FIFO the init waits on for `start` instead of a pipe, so that another process can
    /// start the container (`berth runtime create` then `start`, as runc does).
    pub start_fifo: Option<PathBuf>,
}

/// A created or running container.
#[derive(Debug)]
pub struct Container {
    id: String,
    pid: libc::pid_t,
    cgroup: Option<Cgroup>,
    report_r: OwnedFd,
    start_w: Option<OwnedFd>,
    program: String,
    exited: Option<ExitStatus>,
    console: Option<OwnedFd>,
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is a valid 2-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(Error::last_os("pipe2"));
    }
    // SAFETY: pipe2 returned two fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

impl Container {
    /// Creates the container `id` from a loaded bundle: everything up to the exec of the
    /// process is done when this returns (the init then waits for [`Container::start`]).
    pub fn create(
        id: &str,
        bundle: &Bundle,
        stdio: Stdio,
        opts: &CreateOptions,
    ) -> Result<Container> {
        let spec = &bundle.spec;
        let unsupported = crate::spec::unsupported_fields(spec);
        if !unsupported.is_empty() {
            eprintln!(
                "berth runtime: {id}: not supported yet, ignored: {}",
                unsupported.join(", ")
            );
        }
        let linux = spec.linux().as_ref();
        let ns: NamespacePlan = namespaces::plan(linux)?;
        if !ns.has_mount_ns() {
            return Err(Error::InvalidSpec("a mount namespace is required".into()));
        }
        let cgroup = if opts.no_cgroups {
            None
        } else {
            let path = cgroups::path_for(linux.and_then(|l| l.cgroups_path().as_deref()), id);
            let cg = Cgroup::open(&path)?;
            if let Some(res) = linux.and_then(|l| l.resources().as_ref()) {
                if let Err(e) = cg.apply(res) {
                    remove_cgroup(&cg, id);
                    return Err(e);
                }
            }
            Some(cg)
        };
        let result = Self::create_in(id, bundle, stdio, opts, &ns, cgroup.as_ref());
        match result {
            Ok((pid, report_r, start_w, program, console)) => Ok(Container {
                id: id.to_string(),
                pid,
                cgroup,
                report_r,
                start_w: Some(start_w),
                program,
                exited: None,
                console,
            }),
            Err(e) => {
                if let Some(cg) = &cgroup {
                    remove_cgroup(cg, id);
                }
                Err(e)
            }
        }
    }

    fn create_in(
        _id: &str,
        bundle: &Bundle,
        stdio: Stdio,
        opts: &CreateOptions,
        ns: &NamespacePlan,
        cgroup: Option<&Cgroup>,
    ) -> Result<Created> {
        let spec = &bundle.spec;
        let view = cgroup.map_or(CgroupMount::V1(Vec::new()), Cgroup::mount_view);
        let rootfs =
            RootfsPlan::prepare(spec, &bundle.rootfs, &bundle.dir, ns.new_userns(), &view)?;
        let mut process = ProcessPlan::prepare(spec)?;
        process.set_default_home(&bundle.rootfs);
        let runner_oom_score_adj = if ns.new_userns() {
            process.take_oom_score_adj()
        } else {
            None
        };
        let program = seccomp::program_for(spec, opts.seccomp_cache.as_deref())?;
        let (sync_r, sync_w) = pipe()?;
        let (report_r, report_w) = pipe()?;
        let (start_r, start_w) = match &opts.start_fifo {
            None => pipe()?,
            Some(fifo) => {
                // The init holds the FIFO read-write, so it never sees EOF when writers come
                // and go: it blocks until someone writes the start byte.
                let open = |flags| {
                    std::fs::OpenOptions::new()
                        .read(flags & 1 != 0)
                        .write(true)
                        .custom_flags(if flags & 1 != 0 { 0 } else { libc::O_NONBLOCK })
                        .open(fifo)
                        .map(OwnedFd::from)
                        .map_err(|e| Error::io("open", fifo, e))
                };
                let r = open(1)?;
                (r, open(0)?)
            }
        };
        let console = if process.terminal() {
            Some(crate::tty::socketpair()?)
        } else {
            None
        };
        let raw = |f: &Option<OwnedFd>| f.as_ref().map_or(-1, |f| f.as_raw_fd());
        let ctx = InitContext {
            ns,
            rootfs: &rootfs,
            process: &process,
            seccomp: program.as_ref(),
            sync_r: sync_r.as_raw_fd(),
            cgroup_early: ns.new_cgroupns || rootfs.mounts_cgroup2(),
            report_w: report_w.as_raw_fd(),
            start_r: start_r.as_raw_fd(),
            stdio: [raw(&stdio.stdin), raw(&stdio.stdout), raw(&stdio.stderr)],
            console_w: console.as_ref().map_or(-1, |(_, w)| w.as_raw_fd()),
            runner_fds: [
                sync_w.as_raw_fd(),
                report_r.as_raw_fd(),
                start_w.as_raw_fd(),
                console.as_ref().map_or(-1, |(r, _)| r.as_raw_fd()),
            ],
        };
        namespaces::join_pid_for_children(ns)?;
        // On v2 the init is born in its cgroup (clone3 CLONE_INTO_CGROUP): no migration.
        let cgroup_dir = match cgroup {
            Some(Cgroup::V2(c)) => std::fs::File::open(&c.dir).ok().map(OwnedFd::from),
            _ => None,
        };
        let (pid, in_cgroup) =
            clone_init(ns.clone_flags, cgroup_dir.as_ref().map(|f| f.as_raw_fd()))?;
        if pid == 0 {
            crate::init::run(&ctx);
        }
        let console_r = console.map(|(r, _w)| r);
        drop((sync_r, report_w, start_r, stdio, cgroup_dir));
        let release = |what: &'static str| {
            sys::write_all(sync_w.as_raw_fd(), b"1").map_err(|e| Error::Syscall {
                call: what,
                source: std::io::Error::from_raw_os_error(e),
            })
        };
        let released = (|| -> Result<()> {
            namespaces::write_id_maps(pid, ns)?;
            if let Some(v) = &runner_oom_score_adj {
                let path = format!("/proc/{pid}/oom_score_adj");
                std::fs::write(&path, v.as_bytes()).map_err(|e| Error::io("write", path, e))?;
            }
            release("release init")?;
            if let (Some(cg), false) = (cgroup, in_cgroup) {
                cg.add_task(pid)?;
            }
            release("release init to its cgroup")
        })();
        drop(sync_w);
        // If the init failed meanwhile, the release hits a closed pipe: its report says why.
        let outcome = match released {
            Ok(()) => read_report(&report_r),
            Err(e) => match read_report(&report_r) {
                Ok(Some(f)) if f.stage != Stage::Ready => Ok(Some(f)),
                _ => Err(e),
            },
        };
        match outcome {
            Ok(Some(f)) if f.stage == Stage::Ready => {
                // The init sent the pty master before reporting ready.
                let master = match &console_r {
                    Some(sock) => match crate::tty::recv_master(sock) {
                        Ok(m) => Some(m),
                        Err(e) => {
                            // SAFETY: plain kill of our own child.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                            reap_killed(pid);
                            return Err(e);
                        }
                    },
                    None => None,
                };
                Ok((pid, report_r, start_w, process.program.clone(), master))
            }
            other => {
                // SAFETY: plain kill of our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                reap_killed(pid);
                Err(match other {
                    Err(e) => e,
                    Ok(Some(f)) => failure_error(f, &rootfs, &process),
                    Ok(None) => Error::Init {
                        stage: "init",
                        detail: String::new(),
                        source: std::io::Error::other("exited during setup"),
                    },
                })
            }
        }
    }

    /// Lets the init exec the process. Fails (with [`Error::Exec`]) if the exec fails; the
    /// init has then exited 127 (not found) or 126 (not executable), as a shell would.
    pub fn start(&mut self) -> Result<()> {
        let Some(w) = self.start_w.take() else {
            return Err(Error::InvalidSpec(format!(
                "container {} already started",
                self.id
            )));
        };
        sys::write_all(w.as_raw_fd(), b"1").map_err(|e| Error::Syscall {
            call: "start init",
            source: std::io::Error::from_raw_os_error(e),
        })?;
        drop(w);
        match read_report(&self.report_r)? {
            None => Ok(()),
            Some(f) if f.stage == Stage::Exec => Err(Error::Exec {
                program: self.program.clone(),
                source: std::io::Error::from_raw_os_error(f.errno),
            }),
            Some(f) => Err(Error::Init {
                stage: f.stage.describe(),
                detail: String::new(),
                source: std::io::Error::from_raw_os_error(f.errno),
            }),
        }
    }

    /// Starts a new process in the running container: `spec` is the container's with the exec's
    /// process (see [`crate::exec::exec`]).
    pub fn exec(
        &self,
        spec: &oci_spec::runtime::Spec,
        stdio: Stdio,
        seccomp_cache: Option<&std::path::Path>,
    ) -> Result<crate::exec::ExecProcess> {
        crate::exec::exec(self.pid, self.cgroup.as_ref(), spec, stdio, seccomp_cache)
    }

    /// Takes the pty master of a container whose process has a terminal; the caller relays
    /// it (see [`crate::tty::relay`]). `None` without a terminal, or once taken.
    pub fn take_console(&mut self) -> Option<OwnedFd> {
        self.console.take()
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The init's pid, in the runner's PID namespace.
    pub fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// The container's cgroup, if it has one.
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup.as_ref()
    }

    /// Waits for the init to exit (reaping it) and returns how it ended.
    pub fn wait(&mut self) -> Result<ExitStatus> {
        if let Some(s) = self.exited {
            return Ok(s);
        }
        let s = wait_pid(self.pid)?;
        self.exited = Some(s);
        Ok(s)
    }

    /// Sends a signal to the init.
    pub fn kill(&self, sig: i32) -> Result<()> {
        if self.exited.is_some() {
            return Err(Error::Syscall {
                call: "kill",
                source: std::io::Error::from_raw_os_error(libc::ESRCH),
            });
        }
        // SAFETY: kill with a pid of our own (unreaped) child.
        if unsafe { libc::kill(self.pid, sig) } < 0 {
            return Err(Error::last_os("kill"));
        }
        Ok(())
    }

    /// Removes what the container leaves behind (its cgroup). Kills and reaps the init if it
    /// is still running.
    pub fn delete(mut self) -> Result<()> {
        if self.exited.is_none() {
            // It may have exited on its own meanwhile: the wait below reaps it either way.
            if let Err(e) = self.kill(libc::SIGKILL) {
                tracing::debug!(pid = self.pid, error = %e, "killing the init to delete the container");
            }
            self.wait()?;
        }
        if let Some(cg) = &self.cgroup {
            cg.remove()?;
        }
        Ok(())
    }
}

#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Fork-like clone of the init with `ns_flags`, into the cgroup directory `cgroup_dir` when
/// given and the kernel can (5.7+). Returns (pid, whether it was born in the cgroup); the pid
/// is 0 in the child.
pub(crate) fn clone_init(
    ns_flags: libc::c_int,
    cgroup_dir: Option<RawFd>,
) -> Result<(libc::pid_t, bool)> {
    if let Some(fd) = cgroup_dir {
        let args = CloneArgs {
            flags: ns_flags as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: fd as u64,
            ..CloneArgs::default()
        };
        // SAFETY: as for clone below: no new stack (the child runs on a copy of ours), the
        // runner is single-threaded and the child only runs `init::run`.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        if pid >= 0 {
            return Ok((pid as libc::pid_t, true));
        }
        // Older kernels (ENOSYS, E2BIG, EINVAL): fall back to clone and a cgroup.procs write.
    }
    let flags = ns_flags as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a fork-like clone (no new stack: the child runs on a copy of ours). The runner is
    // single-threaded, and the child only runs `init::run`, which makes system calls on memory
    // prepared before the clone and never returns.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    if pid < 0 {
        return Err(Error::last_os("clone"));
    }
    Ok((pid as libc::pid_t, false))
}

/// Reads one report: `None` on EOF (the init exec'd or died), else the message.
pub(crate) fn read_report(fd: &OwnedFd) -> Result<Option<Failure>> {
    let mut buf = [0u8; 12];
    let n = sys::read_full(fd.as_raw_fd(), &mut buf).map_err(|e| Error::Syscall {
        call: "read init report",
        source: std::io::Error::from_raw_os_error(e),
    })?;
    match n {
        0 => Ok(None),
        12 => Failure::decode(&buf)
            .map(Some)
            .ok_or_else(|| Error::Syscall {
                call: "read init report",
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "bad stage"),
            }),
        _ => Err(Error::Syscall {
            call: "read init report",
            source: std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "short report"),
        }),
    }
}

fn failure_error(f: Failure, rootfs: &RootfsPlan, process: &ProcessPlan) -> Error {
    let detail = match f.stage {
        Stage::Mount | Stage::Mask | Stage::Readonly | Stage::Device => {
            format!(" {}", rootfs.path_name(f.stage, f.index))
        }
        Stage::Sysctl => format!(" {}", process.sysctl_name(f.index)),
        _ => String::new(),
    };
    Error::Init {
        stage: f.stage.describe(),
        detail,
        source: std::io::Error::from_raw_os_error(f.errno),
    }
}

/// Reaps a child this process has just killed, after a failed setup; a failure is logged (the setup's
/// error is what the caller reports).
pub(crate) fn reap_killed(pid: libc::pid_t) {
    if let Err(e) = wait_pid(pid) {
        tracing::warn!(pid, error = %e, "reaping a child killed after a failed setup");
    }
}

/// Removes the cgroup of a container whose creation failed, logging when that fails too.
fn remove_cgroup(cg: &Cgroup, id: &str) {
    if let Err(e) = cg.remove() {
        tracing::warn!(id, error = %e, "removing the cgroup of a container that failed to start");
    }
}

pub(crate) fn wait_pid(pid: libc::pid_t) -> Result<ExitStatus> {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Syscall {
                call: "waitpid",
                source: e,
            });
        }
    }
    Ok(if libc::WIFSIGNALED(status) {
        ExitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        ExitStatus::Exited(libc::WEXITSTATUS(status))
    })
}
