//! `exec`: a new process in a running container — its namespaces, its cgroup, and a process of
//! its own (args, env, user, cwd, capabilities, rlimits, no_new_privs, seccomp, terminal).
//!
//! The runner (the shim, or `berth runtime exec`) must be single-threaded, as for create. It
//! joins the container's PID namespace for its next child only (and goes back to its own right
//! after the clone), clones a child into the container's cgroup, and the child joins the other
//! namespaces that differ from the runner's (user first, mount last), sets the process up and
//! executes it. As with create, a fixed-size failure report on a CLOEXEC pipe tells the runner
//! why a setup or the exec failed; EOF means the process runs.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;

use oci_spec::runtime::Spec;

use crate::cgroups::Cgroup;
use crate::container::{clone_init, pipe, read_report, wait_pid, ExitStatus, Stdio};
use crate::error::{Error, Result};
use crate::init::{Failure, Stage};
use crate::namespaces::NamespacePlan;
use crate::process::ProcessPlan;
use crate::seccomp::{self, Program};
use crate::sys;

/// A process started by [`exec`].
#[derive(Debug)]
pub struct ExecProcess {
    /// Its pid, in the runner's PID namespace (the runner is its parent and reaps it).
    pub pid: libc::pid_t,
    /// The pty master, when the process has a terminal.
    pub console: Option<OwnedFd>,
}

impl ExecProcess {
    /// Waits for the process to exit (reaping it).
    pub fn wait(&self) -> Result<ExitStatus> {
        wait_pid(self.pid)
    }
}

/// The namespaces, in join order, that an exec enters when the container's differ from ours.
/// PID is handled apart (it applies to children); the mount namespace comes last, since after it
/// the runner's paths no longer resolve.
const NAMESPACES: [(&str, libc::c_int); 6] = [
    ("user", libc::CLONE_NEWUSER),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("mnt", libc::CLONE_NEWNS),
];

fn same_namespace(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// The container's namespaces (those of `target`, its init) that differ from the runner's.
fn namespaces_of(target: libc::pid_t) -> Result<NamespacePlan> {
    let mut plan = NamespacePlan::default();
    let open = |pid: &str, name: &str| {
        let path = format!("/proc/{pid}/ns/{name}");
        std::fs::File::open(&path)
            .map_err(|e| Error::io("open namespace", &path, e))
            .and_then(|f| {
                let meta = f.metadata().map_err(|e| Error::io("stat", &path, e))?;
                Ok((OwnedFd::from(f), meta))
            })
    };
    let target = target.to_string();
    for (name, flag) in NAMESPACES {
        let (fd, theirs) = open(&target, name)?;
        let (_, ours) = open("self", name)?;
        if !same_namespace(&theirs, &ours) {
            if flag == libc::CLONE_NEWUSER {
                plan.user_join = Some(fd);
            } else {
                plan.joins.push((fd, flag));
            }
        }
    }
    let (fd, theirs) = open(&target, "pid")?;
    let (_, ours) = open("self", "pid")?;
    if !same_namespace(&theirs, &ours) {
        plan.pid_join = Some(fd);
    }
    Ok(plan)
}

/// Everything the exec'd child uses, borrowed from the runner's memory (copied by clone).
struct ExecContext<'a> {
    ns: &'a NamespacePlan,
    process: &'a ProcessPlan,
    seccomp: Option<&'a Program>,
    sync_r: RawFd,
    report_w: RawFd,
    stdio: [RawFd; 3],
    console_w: RawFd,
    runner_fds: [RawFd; 3],
}

/// Starts `spec.process` in the running container whose init is `target`, in `cgroup`. The spec
/// is the container's (its `linux.seccomp` applies to the new process too) with the process
/// replaced by the exec's. Returns once the process has been executed, or with why it could not
/// be ([`Error::Exec`] when the program cannot be run: the caller's exit codes 126/127).
pub fn exec(
    target: libc::pid_t,
    cgroup: Option<&Cgroup>,
    spec: &Spec,
    stdio: Stdio,
    seccomp_cache: Option<&std::path::Path>,
) -> Result<ExecProcess> {
    let ns = namespaces_of(target)?;
    let mut process = ProcessPlan::prepare(spec)?;
    process.set_default_home(std::path::Path::new(&format!("/proc/{target}/root")));
    let program = seccomp::program_for(spec, seccomp_cache)?;
    let (sync_r, sync_w) = pipe()?;
    let (report_r, report_w) = pipe()?;
    let console = if process.terminal() {
        Some(crate::tty::socketpair()?)
    } else {
        None
    };
    let raw = |f: &Option<OwnedFd>| f.as_ref().map_or(-1, |f| f.as_raw_fd());
    let ctx = ExecContext {
        ns: &ns,
        process: &process,
        seccomp: program.as_ref(),
        sync_r: sync_r.as_raw_fd(),
        report_w: report_w.as_raw_fd(),
        stdio: [raw(&stdio.stdin), raw(&stdio.stdout), raw(&stdio.stderr)],
        console_w: console.as_ref().map_or(-1, |(_, w)| w.as_raw_fd()),
        runner_fds: [
            sync_w.as_raw_fd(),
            report_r.as_raw_fd(),
            console.as_ref().map_or(-1, |(r, _)| r.as_raw_fd()),
        ],
    };
    let cgroup_dir = match cgroup {
        Some(Cgroup::V2(c)) => std::fs::File::open(&c.dir).ok().map(OwnedFd::from),
        _ => None,
    };
    // The PID namespace applies to the runner's next child: join it for the clone, then go back.
    let own_pidns = match &ns.pid_join {
        Some(_) => Some(
            std::fs::File::open("/proc/self/ns/pid")
                .map(OwnedFd::from)
                .map_err(|e| Error::io("open namespace", "/proc/self/ns/pid", e))?,
        ),
        None => None,
    };
    crate::namespaces::join_pid_for_children(&ns)?;
    let cloned = clone_init(0, cgroup_dir.as_ref().map(|f| f.as_raw_fd()));
    if let Ok((0, _)) = cloned {
        run(&ctx);
    }
    if let Some(fd) = &own_pidns {
        // SAFETY: `fd` is our own PID namespace, which setns always accepts.
        unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) };
    }
    let (pid, in_cgroup) = cloned?;
    let console_r = console.map(|(r, _w)| r);
    drop((sync_r, report_w, stdio, cgroup_dir));
    let released = (|| -> Result<()> {
        if let (Some(cg), false) = (cgroup, in_cgroup) {
            cg.add_task(pid)?;
        }
        sys::write_all(sync_w.as_raw_fd(), b"1").map_err(|e| Error::Syscall {
            call: "release exec",
            source: std::io::Error::from_raw_os_error(e),
        })
    })();
    drop(sync_w);
    let outcome = match released {
        Ok(()) => read_report(&report_r),
        Err(e) => match read_report(&report_r) {
            Ok(Some(f)) => Ok(Some(f)),
            _ => Err(e),
        },
    };
    let fail = |e: Error| {
        // SAFETY: plain kill of our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        crate::container::reap_killed(pid);
        Err(e)
    };
    match outcome {
        Ok(None) => {}
        Err(e) => return fail(e),
        Ok(Some(f)) => {
            // The child exits after a report; reap it.
            crate::container::reap_killed(pid);
            return Err(match f.stage {
                Stage::Exec => Error::Exec {
                    program: process.program.clone(),
                    source: std::io::Error::from_raw_os_error(f.errno),
                },
                Stage::Cwd => Error::Init {
                    stage: "chdir to cwd",
                    detail: String::new(),
                    source: std::io::Error::from_raw_os_error(f.errno),
                },
                stage => Error::Init {
                    stage: stage.describe(),
                    detail: String::new(),
                    source: std::io::Error::from_raw_os_error(f.errno),
                },
            });
        }
    }
    // The child sent the pty master before it executed the process.
    let console = match &console_r {
        Some(sock) => match crate::tty::recv_master(sock) {
            Ok(m) => Some(m),
            Err(e) => return fail(e),
        },
        None => None,
    };
    Ok(ExecProcess { pid, console })
}

/// The child: joins, sets up and executes; never returns.
fn run(ctx: &ExecContext) -> ! {
    crate::init::finish(setup(ctx), ctx.process, ctx.report_w)
}

fn setup(ctx: &ExecContext) -> std::result::Result<(), Failure> {
    crate::init::leave_runner(&ctx.runner_fds);
    crate::init::wait_byte(ctx.sync_r, Stage::Sync)?;
    sys::close(ctx.sync_r);
    crate::namespaces::join(ctx.ns).map_err(|(i, e)| Failure::new(Stage::Setns, i, e))?;
    crate::namespaces::join_user(ctx.ns)
        .map_err(|e| Failure::new(Stage::Setns, ctx.ns.joins.len() as u32, e))?;
    if ctx.console_w >= 0 {
        crate::tty::setup_in_init(ctx.console_w, ctx.process.console_size())?;
        sys::close(ctx.console_w);
    } else {
        for (i, fd) in ctx.stdio.iter().enumerate() {
            if *fd >= 0 {
                // SAFETY: dup2 onto 0..2 of descriptors the runner passed in.
                let rc = unsafe { libc::dup2(*fd, i as RawFd) };
                sys::check(rc.into()).map_err(|e| Failure::new(Stage::Stdio, i as u32, e))?;
            }
        }
    }
    ctx.process.prepare_exec_self()?;
    let nnp = ctx.process.no_new_privs();
    if let (Some(p), false) = (ctx.seccomp, nnp) {
        p.install()
            .map_err(|e| Failure::new(Stage::Seccomp, 0, e.raw_os_error().unwrap_or(0)))?;
    }
    ctx.process.become_user()?;
    ctx.process.set_no_new_privs()?;
    if let (Some(p), true) = (ctx.seccomp, nnp) {
        p.install()
            .map_err(|e| Failure::new(Stage::Seccomp, 0, e.raw_os_error().unwrap_or(0)))?;
    }
    Ok(())
}
