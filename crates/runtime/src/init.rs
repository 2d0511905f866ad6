//! The container's init: the code between clone and execve, in order. It runs in a child of a
//! single-threaded runner, touches only data prepared before clone, makes system calls, and
//! reports the first failure to the runner as a fixed-size message on a pipe.

use std::os::fd::RawFd;

use crate::namespaces::NamespacePlan;
use crate::process::ProcessPlan;
use crate::rootfs::RootfsPlan;
use crate::seccomp::Program;
use crate::sys::{self, Errno};

/// The step of the init that failed (sent to the runner as a number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Stage {
    /// Not a failure: setup is done and the init waits for `start`.
    Ready = 0,
    /// Waiting for the runner to finish the cgroup and id maps.
    Sync,
    /// Becoming root in the new user namespace.
    UserNsRoot,
    /// setns into a namespace given by path.
    Setns,
    /// unshare(CLONE_NEWCGROUP).
    CgroupNs,
    /// sethostname/setdomainname.
    Hostname,
    /// dup2 of the container's stdio.
    Stdio,
    /// Propagation of `/`.
    RootPropagation,
    /// Binding the rootfs onto itself.
    BindRootfs,
    /// One of the spec's mounts.
    Mount,
    /// A device node or /dev link.
    Device,
    /// pivot_root and detaching the old root.
    PivotRoot,
    /// Writing a sysctl.
    Sysctl,
    /// A masked path.
    Mask,
    /// A read-only path.
    Readonly,
    /// Remounting the root read-only.
    RootReadonly,
    /// /proc/self/oom_score_adj.
    OomScoreAdj,
    /// setrlimit.
    Rlimit,
    /// Creating or entering the working directory.
    Cwd,
    /// setgroups/setresgid/setresuid.
    User,
    /// Bounding set, capset or ambient capabilities.
    Capabilities,
    /// prctl(PR_SET_NO_NEW_PRIVS).
    NoNewPrivs,
    /// Installing the seccomp filter.
    Seccomp,
    /// execve of the process.
    Exec,
    /// Creating the pty and passing its master to the runner.
    Console,
}

impl Stage {
    const ALL: [Stage; 25] = [
        Stage::Ready,
        Stage::Sync,
        Stage::UserNsRoot,
        Stage::Setns,
        Stage::CgroupNs,
        Stage::Hostname,
        Stage::Stdio,
        Stage::RootPropagation,
        Stage::BindRootfs,
        Stage::Mount,
        Stage::Device,
        Stage::PivotRoot,
        Stage::Sysctl,
        Stage::Mask,
        Stage::Readonly,
        Stage::RootReadonly,
        Stage::OomScoreAdj,
        Stage::Rlimit,
        Stage::Cwd,
        Stage::User,
        Stage::Capabilities,
        Stage::NoNewPrivs,
        Stage::Seccomp,
        Stage::Exec,
        Stage::Console,
    ];

    /// Decodes a stage number from the init.
    pub fn from_u32(v: u32) -> Option<Stage> {
        Stage::ALL.get(v as usize).copied()
    }

    /// A short description for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Ready => "ready",
            Stage::Sync => "wait for runner",
            Stage::UserNsRoot => "become root in user namespace",
            Stage::Setns => "join namespace",
            Stage::CgroupNs => "unshare cgroup namespace",
            Stage::Hostname => "set hostname",
            Stage::Stdio => "set up stdio",
            Stage::RootPropagation => "set root propagation",
            Stage::BindRootfs => "bind rootfs",
            Stage::Mount => "mount",
            Stage::Device => "create device",
            Stage::PivotRoot => "pivot_root",
            Stage::Sysctl => "write sysctl",
            Stage::Mask => "mask path",
            Stage::Readonly => "make path read-only",
            Stage::RootReadonly => "make root read-only",
            Stage::OomScoreAdj => "set oom_score_adj",
            Stage::Rlimit => "set rlimit",
            Stage::Cwd => "working directory",
            Stage::User => "set user",
            Stage::Capabilities => "set capabilities",
            Stage::NoNewPrivs => "set no_new_privs",
            Stage::Seccomp => "install seccomp filter",
            Stage::Exec => "exec",
            Stage::Console => "set up terminal",
        }
    }
}

/// A failed init step: what, on which item (mount index...), and the errno.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The step.
    pub stage: Stage,
    /// The item within the step (e.g. the mount's index), or 0.
    pub index: u32,
    /// The errno.
    pub errno: Errno,
}

impl Failure {
    /// A failure of `stage` on item `index`.
    pub fn new(stage: Stage, index: u32, errno: Errno) -> Failure {
        Failure {
            stage,
            index,
            errno,
        }
    }

    /// The 12-byte wire form.
    pub fn encode(&self) -> [u8; 12] {
        let mut b = [0u8; 12];
        b[0..4].copy_from_slice(&(self.stage as u32).to_le_bytes());
        b[4..8].copy_from_slice(&self.index.to_le_bytes());
        b[8..12].copy_from_slice(&self.errno.to_le_bytes());
        b
    }

    /// Decodes the wire form.
    pub fn decode(b: &[u8; 12]) -> Option<Failure> {
        let w = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        Some(Failure {
            stage: Stage::from_u32(u32::from_le_bytes(w(0)))?,
            index: u32::from_le_bytes(w(4)),
            errno: i32::from_le_bytes(w(8)),
        })
    }
}

/// Everything the init uses, borrowed from the runner's memory (copied by clone).
pub(crate) struct InitContext<'a> {
    pub ns: &'a NamespacePlan,
    pub rootfs: &'a RootfsPlan,
    pub process: &'a ProcessPlan,
    pub seccomp: Option<&'a Program>,
    /// Read end: one byte when the runner has written the id maps, a second one when the init
    /// is in its cgroup.
    pub sync_r: RawFd,
    /// Wait for the cgroup before the namespaces and mounts (a cgroup namespace or a cgroup2
    /// mount needs it); otherwise the mounts overlap with the runner's cgroup join, whose
    /// first v1 write costs an RCU grace period (~4 ms here).
    pub cgroup_early: bool,
    /// Write end for [`Failure`] messages (CLOEXEC: EOF at exec means success).
    pub report_w: RawFd,
    /// Read end: one byte when the container should start.
    pub start_r: RawFd,
    /// Descriptors to become 0, 1, 2 (`-1`: keep the inherited one).
    pub stdio: [RawFd; 3],
    /// With `process.terminal`: the socket to send the pty master on (else -1).
    pub console_w: RawFd,
    /// The runner's ends of the pipes (the clone got copies): closed first, so that the init sees EOF
    /// — and gives up — if the runner dies before starting it (-1: none).
    pub runner_fds: [RawFd; 4],
}

/// Runs the init; never returns.
pub(crate) fn run(ctx: &InitContext) -> ! {
    finish(setup(ctx), ctx.process, ctx.report_w)
}

/// Ends a child of the runner (the init, or an exec'd process) after its setup: executes the process, or
/// reports why it could not and exits — 127 (not found) or 126 (not executable) as a shell would, 1 for a
/// failed setup. Never returns.
pub(crate) fn finish(setup: Result<(), Failure>, process: &ProcessPlan, report_w: RawFd) -> ! {
    let report = |f: Failure| {
        // The child between clone and exec cannot log; if the parent has gone there is no one to tell.
        let _ = sys::write_all(report_w, &f.encode());
    };
    let code = match setup {
        Ok(()) => {
            let errno = process.exec();
            report(Failure::new(Stage::Exec, 0, errno));
            if errno == libc::ENOENT {
                127
            } else {
                126
            }
        }
        Err(f) => {
            report(f);
            1
        }
    };
    // SAFETY: _exit is async-signal-safe and ends the process without running Rust or libc
    // cleanup that belongs to the runner.
    unsafe { libc::_exit(code) }
}

/// First thing in a child of the runner: closes the runner's ends of the pipes (so that the child sees
/// EOF, and gives up, if the runner dies), marks every other inherited descriptor close-on-exec, and resets
/// the signal dispositions.
pub(crate) fn leave_runner(runner_fds: &[RawFd]) {
    for &fd in runner_fds {
        if fd >= 0 {
            sys::close(fd);
        }
    }
    // Nothing of the runner's but the pipes and stdio may reach the process.
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only marks descriptors.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    reset_signals();
}

pub(crate) fn wait_byte(fd: RawFd, stage: Stage) -> Result<(), Failure> {
    let mut b = [0u8; 1];
    match sys::read_full(fd, &mut b) {
        Ok(1) => Ok(()),
        // The runner went away: nothing to run for.
        Ok(_) => Err(Failure::new(stage, 0, libc::EPIPE)),
        Err(e) => Err(Failure::new(stage, 0, e)),
    }
}

fn setup(ctx: &InitContext) -> Result<(), Failure> {
    leave_runner(&ctx.runner_fds);
    wait_byte(ctx.sync_r, Stage::Sync)?;
    if ctx.ns.new_userns() {
        // SAFETY: plain id arguments.
        let rc = unsafe { libc::setresgid(0, 0, 0) };
        sys::check(rc.into()).map_err(|e| Failure::new(Stage::UserNsRoot, 0, e))?;
        // SAFETY: plain id arguments.
        let rc = unsafe { libc::setresuid(0, 0, 0) };
        sys::check(rc.into()).map_err(|e| Failure::new(Stage::UserNsRoot, 1, e))?;
    }
    crate::namespaces::join(ctx.ns).map_err(|(i, e)| Failure::new(Stage::Setns, i, e))?;
    if ctx.cgroup_early {
        wait_byte(ctx.sync_r, Stage::Sync)?;
        sys::close(ctx.sync_r);
    }
    if ctx.ns.new_cgroupns {
        // SAFETY: unshare with a flag constant.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWCGROUP) };
        sys::check(rc.into()).map_err(|e| Failure::new(Stage::CgroupNs, 0, e))?;
    }
    if ctx.ns.has_uts_ns() {
        ctx.process.set_names()?;
    }
    for (i, fd) in ctx.stdio.iter().enumerate() {
        if *fd >= 0 && ctx.console_w < 0 {
            // SAFETY: dup2 onto 0..2 of descriptors the runner passed in.
            let rc = unsafe { libc::dup2(*fd, i as RawFd) };
            sys::check(rc.into()).map_err(|e| Failure::new(Stage::Stdio, i as u32, e))?;
        }
    }
    ctx.rootfs.setup()?;
    ctx.process.write_sysctls()?;
    ctx.rootfs.finish()?;
    if ctx.console_w >= 0 {
        crate::tty::setup_in_init(ctx.console_w, ctx.process.console_size())?;
        sys::close(ctx.console_w);
    }
    ctx.process.prepare_self()?;
    if !ctx.cgroup_early {
        wait_byte(ctx.sync_r, Stage::Sync)?;
        sys::close(ctx.sync_r);
    }
    crate::namespaces::join_user(ctx.ns)
        .map_err(|e| Failure::new(Stage::Setns, ctx.ns.joins.len() as u32, e))?;
    let nnp = ctx.process.no_new_privs();
    if let (Some(p), false) = (ctx.seccomp, nnp) {
        // Without no_new_privs the filter needs CAP_SYS_ADMIN, so it goes in before the
        // capabilities are dropped; the calls after it must then be allowed by the profile.
        p.install().map_err(|e| seccomp_failure(&e))?;
    }
    ctx.process.become_user()?;
    // As above: no one to tell if the parent has gone, and the child cannot log.
    let _ = sys::write_all(ctx.report_w, &Failure::new(Stage::Ready, 0, 0).encode());
    wait_byte(ctx.start_r, Stage::Sync)?;
    sys::close(ctx.start_r);
    ctx.process.set_no_new_privs()?;
    if let (Some(p), true) = (ctx.seccomp, nnp) {
        p.install().map_err(|e| seccomp_failure(&e))?;
    }
    Ok(())
}

/// Gives the process default signal dispositions and an empty mask. Ignored signals survive
/// execve, and the Rust runtime ignores SIGPIPE in the runner: without this, `yes | head` in a
/// container would never end.
fn reset_signals() {
    /// The kernel's `struct sigaction` on x86_64 (glibc's `signal()` refuses signals 32 and 33,
    /// which it reserves, so the raw call is used for all of them).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: u64,
        restorer: usize,
        mask: u64,
    }
    let dfl = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    for sig in 1..=64 {
        if sig != libc::SIGKILL && sig != libc::SIGSTOP {
            // SAFETY: rt_sigaction with a valid action and the kernel's sigset size (8).
            unsafe {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    sig,
                    &dfl as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    8usize,
                )
            };
        }
    }
    let empty: u64 = 0;
    // SAFETY: rt_sigprocmask with a valid 8-byte set.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

fn seccomp_failure(e: &std::io::Error) -> Failure {
    Failure::new(Stage::Seccomp, 0, e.raw_os_error().unwrap_or(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_round_trips_through_its_wire_form() {
        let f = Failure::new(Stage::Mount, 7, libc::EPERM);
        assert_eq!(Failure::decode(&f.encode()), Some(f));
        for (i, s) in Stage::ALL.iter().enumerate() {
            assert_eq!(*s as usize, i);
        }
    }
}
