//! The container process: hostname, sysctls, rlimits, user and groups, capabilities,
//! no_new_privs, oom_score_adj, cwd, env and exec with a PATH lookup in the container.
//!
//! [`ProcessPlan::prepare`] runs in the runner; the `pub(crate)` methods run in the init
//! between clone and exec and make only system calls on prepared data.
//!
//! AppArmor and SELinux: this kernel has neither LSM enabled, so `process.apparmorProfile`
//! and `selinuxLabel` are ignored with a log line (see [`ProcessPlan::prepare`]).

use std::ffi::{c_char, CString};
use std::str::FromStr;

use oci_spec::runtime::{Capabilities, PosixRlimitType, Spec};

use crate::error::{Error, Result};
use crate::init::{Failure, Stage};
use crate::sys::{self, Errno};

/// The five capability sets as bitmasks (bit N = capability N).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSets {
    /// Bounding set.
    pub bounding: u64,
    /// Effective set.
    pub effective: u64,
    /// Permitted set.
    pub permitted: u64,
    /// Inheritable set.
    pub inheritable: u64,
    /// Ambient set.
    pub ambient: u64,
}

/// Converts a set of OCI capability names into a bitmask; names this host's `caps` crate does
/// not know are skipped with a log line.
pub fn cap_mask(set: Option<&Capabilities>) -> u64 {
    let mut mask = 0u64;
    for c in set.into_iter().flatten() {
        let name = serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        match caps::Capability::from_str(&name) {
            Ok(cap) => mask |= 1u64 << cap.index(),
            Err(_) => eprintln!("berth runtime: unknown capability {name}, skipped"),
        }
    }
    mask
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Lowers a requested limit to the runner's hard limit: raising it needs CAP_SYS_RESOURCE,
/// which this runner may lack (and Docker-in-Docker style hosts cap NOFILE).
pub fn clamp_rlimit(soft: u64, hard: u64, current_hard: u64) -> (u64, u64) {
    let hard = hard.min(current_hard);
    (soft.min(hard), hard)
}

/// The process part of the spec, prepared for the init.
#[derive(Debug)]
pub struct ProcessPlan {
    /// `args[0]`, for messages.
    pub program: String,
    argv: Vec<CString>,
    argv_ptrs: Vec<*const c_char>,
    envp: Vec<CString>,
    envp_ptrs: Vec<*const c_char>,
    exec_candidates: Vec<CString>,
    cwd: CString,
    uid: libc::uid_t,
    gid: libc::gid_t,
    groups: Vec<libc::gid_t>,
    umask: libc::mode_t,
    caps: Option<CapSets>,
    last_cap: u32,
    rlimits: Vec<(libc::__rlimit_resource_t, libc::rlimit)>,
    no_new_privs: bool,
    oom_score_adj: Option<CString>,
    hostname: Option<CString>,
    domainname: Option<CString>,
    sysctls: Vec<(CString, CString)>,
    terminal: bool,
    console_size: Option<(u16, u16)>,
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidSpec(format!("NUL byte in {s:?}")))
}

fn null_terminated(v: &[CString]) -> Vec<*const c_char> {
    v.iter()
        .map(|c| c.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// The paths `execvp` would try for `program` with this `PATH`, in order.
pub fn exec_candidates(program: &str, path_var: Option<&str>) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_string()];
    }
    path_var
        .unwrap_or(DEFAULT_PATH)
        .split(':')
        .map(|d| if d.is_empty() { "." } else { d })
        .map(|d| format!("{}/{program}", d.trim_end_matches('/')))
        .collect()
}

impl ProcessPlan {
    /// Prepares `process` (and hostname, domainname, sysctls) of the spec.
    pub fn prepare(spec: &Spec) -> Result<ProcessPlan> {
        let p = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("process is missing".into()))?;
        let args = p.args().clone().unwrap_or_default();
        let program = args.first().cloned().unwrap_or_default();
        let argv = args.iter().map(|a| cstr(a)).collect::<Result<Vec<_>>>()?;
        let env = p.env().clone().unwrap_or_default();
        let envp = env.iter().map(|e| cstr(e)).collect::<Result<Vec<_>>>()?;
        let path_var = env.iter().rev().find_map(|e| e.strip_prefix("PATH="));
        let exec_candidates = exec_candidates(&program, path_var)
            .iter()
            .map(|c| cstr(c))
            .collect::<Result<Vec<_>>>()?;
        let mut rlimits = Vec::new();
        for r in p.rlimits().iter().flatten() {
            let res = rlimit_resource(r.typ());
            let mut cur = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: `cur` is a valid out-pointer.
            if unsafe { libc::getrlimit(res, &mut cur) } < 0 {
                return Err(Error::last_os("getrlimit"));
            }
            let (soft, hard) = clamp_rlimit(r.soft(), r.hard(), cur.rlim_max);
            if hard != r.hard() || soft != r.soft() {
                eprintln!(
                    "berth runtime: {:?} {}/{} lowered to {soft}/{hard}, the runner's hard limit",
                    r.typ(),
                    r.soft(),
                    r.hard()
                );
            }
            rlimits.push((
                res,
                libc::rlimit {
                    rlim_cur: soft,
                    rlim_max: hard,
                },
            ));
        }
        let caps = p.capabilities().as_ref().map(|c| CapSets {
            bounding: cap_mask(c.bounding().as_ref()),
            effective: cap_mask(c.effective().as_ref()),
            permitted: cap_mask(c.permitted().as_ref()),
            inheritable: cap_mask(c.inheritable().as_ref()),
            // The kernel only lets a capability be ambient if it is permitted and inheritable;
            // others (runc's default spec lists ambient caps without inheritable) are left out.
            ambient: cap_mask(c.ambient().as_ref())
                & cap_mask(c.permitted().as_ref())
                & cap_mask(c.inheritable().as_ref()),
        });
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        if p.apparmor_profile()
            .as_deref()
            .is_some_and(|s| !s.is_empty())
            || p.selinux_label().as_deref().is_some_and(|s| !s.is_empty())
        {
            eprintln!(
                "berth runtime: apparmorProfile/selinuxLabel ignored: no AppArmor or SELinux \
                 on this kernel"
            );
        }
        let mut sysctls = Vec::new();
        let linux = spec.linux().as_ref();
        for (k, v) in linux
            .and_then(|l| l.sysctl().as_ref())
            .into_iter()
            .flatten()
        {
            if k.contains("..") || k.contains('/') {
                return Err(Error::InvalidSpec(format!("sysctl {k:?}")));
            }
            sysctls.push((
                cstr(&format!("/proc/sys/{}", k.replace('.', "/")))?,
                cstr(v)?,
            ));
        }
        sysctls.sort();
        let user = p.user();
        let mut plan = ProcessPlan {
            program,
            argv_ptrs: Vec::new(),
            argv,
            envp_ptrs: Vec::new(),
            envp,
            exec_candidates,
            cwd: cstr(&p.cwd().to_string_lossy())?,
            uid: user.uid(),
            gid: user.gid(),
            groups: user.additional_gids().clone().unwrap_or_default(),
            umask: user.umask().unwrap_or(0o022),
            caps,
            last_cap,
            rlimits,
            no_new_privs: p.no_new_privileges().unwrap_or(false),
            oom_score_adj: p
                .oom_score_adj()
                .map(|v| cstr(&v.to_string()))
                .transpose()?,
            hostname: spec.hostname().as_deref().map(cstr).transpose()?,
            domainname: spec.domainname().as_deref().map(cstr).transpose()?,
            sysctls,
            terminal: p.terminal().unwrap_or(false),
            console_size: p.console_size().map(|b| {
                (
                    b.height().min(u16::MAX as u64) as u16,
                    b.width().min(u16::MAX as u64) as u16,
                )
            }),
        };
        plan.argv_ptrs = null_terminated(&plan.argv);
        plan.envp_ptrs = null_terminated(&plan.envp);
        Ok(plan)
    }

    /// Sets `HOME`, when the spec's env lacks it, to the user's home from `/etc/passwd` under
    /// `root` (read without leaving it), or `/` — as runc does for create and exec alike.
    pub fn set_default_home(&mut self, root: &std::path::Path) {
        if self.envp.iter().any(|e| e.as_bytes().starts_with(b"HOME=")) {
            return;
        }
        let home = passwd_home(root, self.uid).unwrap_or_else(|| "/".to_owned());
        if let Ok(c) = cstr(&format!("HOME={home}")) {
            self.envp.push(c);
            self.envp_ptrs = null_terminated(&self.envp);
        }
    }

    /// Whether the process gets a pty (`process.terminal`).
    pub fn terminal(&self) -> bool {
        self.terminal
    }

    /// `process.consoleSize` as (rows, columns).
    pub fn console_size(&self) -> Option<(u16, u16)> {
        self.console_size
    }

    /// Whether no_new_privs is set (then seccomp goes in last, right before exec).
    pub fn no_new_privs(&self) -> bool {
        self.no_new_privs
    }

    /// A sysctl's key path, for messages.
    pub fn sysctl_name(&self, i: u32) -> String {
        self.sysctls
            .get(i as usize)
            .map(|(k, _)| k.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Sets hostname and domainname (in the container's UTS namespace).
    pub(crate) fn set_names(&self) -> std::result::Result<(), Failure> {
        if let Some(h) = &self.hostname {
            // SAFETY: `h` is a valid buffer of the given length.
            let rc = unsafe { libc::sethostname(h.as_ptr(), h.as_bytes().len()) };
            sys::check(rc.into()).map_err(|e| Failure::new(Stage::Hostname, 0, e))?;
        }
        if let Some(d) = &self.domainname {
            // SAFETY: as above.
            let rc = unsafe { libc::setdomainname(d.as_ptr(), d.as_bytes().len()) };
            sys::check(rc.into()).map_err(|e| Failure::new(Stage::Hostname, 1, e))?;
        }
        Ok(())
    }

    /// Writes the sysctls (after pivot_root, into the container's /proc/sys).
    pub(crate) fn write_sysctls(&self) -> std::result::Result<(), Failure> {
        for (i, (k, v)) in self.sysctls.iter().enumerate() {
            sys::write_file(k.as_ptr(), v.as_bytes())
                .map_err(|e| Failure::new(Stage::Sysctl, i as u32, e))?;
        }
        Ok(())
    }

    /// Takes oom_score_adj out of what the init sets itself, for the runner to write instead: in a new
    /// user namespace the init, once its ids are the mapped ones, may not write its own
    /// `/proc/self/oom_score_adj` (a process that changed its ids is not dumpable, so its proc files
    /// stay the host root's), and runc writes it from outside too.
    pub fn take_oom_score_adj(&mut self) -> Option<CString> {
        self.oom_score_adj.take()
    }

    /// oom_score_adj, rlimits, umask, and the working directory created if missing.
    pub(crate) fn prepare_self(&self) -> std::result::Result<(), Failure> {
        if let Some(v) = &self.oom_score_adj {
            sys::write_file(c"/proc/self/oom_score_adj".as_ptr(), v.as_bytes())
                .map_err(|e| Failure::new(Stage::OomScoreAdj, 0, e))?;
        }
        for (i, (res, lim)) in self.rlimits.iter().enumerate() {
            // SAFETY: `lim` is a valid rlimit.
            let rc = unsafe { libc::setrlimit(*res, lim) };
            sys::check(rc.into()).map_err(|e| Failure::new(Stage::Rlimit, i as u32, e))?;
        }
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(self.umask) };
        // Docker creates a missing working directory; do it as root, before dropping privileges.
        // SAFETY: "/" is NUL-terminated; the fd is closed below.
        let root = unsafe {
            libc::open(
                c"/".as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if root < 0 {
            return Err(Failure::new(Stage::Cwd, 0, sys::errno()));
        }
        let r = sys::mkdir_all_in_root(root, &self.cwd, false);
        sys::close(root);
        match r {
            Ok(fd) => sys::close(fd),
            Err(e) => return Err(Failure::new(Stage::Cwd, 0, e)),
        }
        Ok(())
    }

    /// For an exec: oom_score_adj, rlimits and umask. The working directory must exist (as with
    /// runc exec); [`ProcessPlan::become_user`] enters it.
    pub(crate) fn prepare_exec_self(&self) -> std::result::Result<(), Failure> {
        if let Some(v) = &self.oom_score_adj {
            sys::write_file(c"/proc/self/oom_score_adj".as_ptr(), v.as_bytes())
                .map_err(|e| Failure::new(Stage::OomScoreAdj, 0, e))?;
        }
        for (i, (res, lim)) in self.rlimits.iter().enumerate() {
            // SAFETY: `lim` is a valid rlimit.
            let rc = unsafe { libc::setrlimit(*res, lim) };
            sys::check(rc.into()).map_err(|e| Failure::new(Stage::Rlimit, i as u32, e))?;
        }
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(self.umask) };
        Ok(())
    }

    /// Drops the bounding set, switches to the user, sets the capability sets and chdirs.
    pub(crate) fn become_user(&self) -> std::result::Result<(), Failure> {
        let fail = |i| move |e| Failure::new(Stage::User, i, e);
        if let Some(c) = &self.caps {
            for cap in 0..=self.last_cap.min(63) {
                if c.bounding & (1u64 << cap) == 0 {
                    // SAFETY: prctl with integer arguments.
                    let rc = unsafe {
                        libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0)
                    };
                    if rc < 0 && sys::errno() != libc::EINVAL {
                        return Err(Failure::new(Stage::Capabilities, 0, sys::errno()));
                    }
                }
            }
        }
        // Keep the permitted set across the uid change; the sets are set explicitly after.
        // SAFETY: prctl with integer arguments.
        sys::check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) }.into())
            .map_err(fail(0))?;
        // SAFETY: `groups` is a valid array of the given length.
        let rc = unsafe { libc::setgroups(self.groups.len(), self.groups.as_ptr()) };
        sys::check(rc.into()).map_err(fail(1))?;
        // SAFETY: plain id arguments.
        sys::check(unsafe { libc::setresgid(self.gid, self.gid, self.gid) }.into())
            .map_err(fail(2))?;
        // SAFETY: plain id arguments.
        sys::check(unsafe { libc::setresuid(self.uid, self.uid, self.uid) }.into())
            .map_err(fail(3))?;
        // SAFETY: prctl with integer arguments.
        sys::check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) }.into())
            .map_err(fail(0))?;
        if let Some(c) = &self.caps {
            set_caps(c).map_err(|e| Failure::new(Stage::Capabilities, 1, e))?;
        }
        // SAFETY: `cwd` is NUL-terminated.
        sys::check(unsafe { libc::chdir(self.cwd.as_ptr()) }.into())
            .map_err(|e| Failure::new(Stage::Cwd, 1, e))?;
        Ok(())
    }

    /// Sets no_new_privs if the spec asks for it.
    pub(crate) fn set_no_new_privs(&self) -> std::result::Result<(), Failure> {
        if self.no_new_privs {
            // SAFETY: prctl with integer arguments.
            let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            sys::check(rc.into()).map_err(|e| Failure::new(Stage::NoNewPrivs, 0, e))?;
        }
        Ok(())
    }

    /// Executes the process, trying each PATH candidate as execvp does. Returns only on
    /// failure, with EACCES if some candidate existed but could not be run, else the last errno.
    pub(crate) fn exec(&self) -> Errno {
        let mut saw_eacces = false;
        let mut last = libc::ENOENT;
        for c in &self.exec_candidates {
            // SAFETY: all three are NUL-terminated; the pointer arrays are null-terminated and
            // point into `argv`/`envp`, which live as long as `self`.
            unsafe { libc::execve(c.as_ptr(), self.argv_ptrs.as_ptr(), self.envp_ptrs.as_ptr()) };
            last = sys::errno();
            match last {
                libc::EACCES => saw_eacces = true,
                libc::ENOENT | libc::ENOTDIR => {}
                _ => return last,
            }
        }
        if saw_eacces {
            libc::EACCES
        } else {
            last
        }
    }
}

/// The home directory of `uid` in `root`'s `/etc/passwd`, opened with `root` as `/`.
fn passwd_home(root: &std::path::Path, uid: libc::uid_t) -> Option<String> {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd};
    let dir = std::fs::File::open(root).ok()?;
    let fd = sys::open_in_root(dir.as_raw_fd(), c"/etc/passwd".as_ptr(), libc::O_RDONLY).ok()?;
    // SAFETY: open_in_root returned a fresh descriptor that nothing else owns.
    let mut f = unsafe { std::fs::File::from_raw_fd(fd) };
    let mut text = String::new();
    f.by_ref().take(1 << 20).read_to_string(&mut text).ok()?;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() >= 6 && f[2].parse::<libc::uid_t>().ok() == Some(uid) && !f[5].is_empty())
            .then(|| f[5].to_owned())
    })
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn set_caps(c: &CapSets) -> std::result::Result<(), Errno> {
    let hdr = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [
        CapData {
            effective: c.effective as u32,
            permitted: c.permitted as u32,
            inheritable: c.inheritable as u32,
        },
        CapData {
            effective: (c.effective >> 32) as u32,
            permitted: (c.permitted >> 32) as u32,
            inheritable: (c.inheritable >> 32) as u32,
        },
    ];
    // SAFETY: header and two data structs, as capset(2) version 3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const CapHeader, data.as_ptr()) };
    sys::check(rc)?;
    sys::check(
        // SAFETY: prctl with integer arguments.
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        }
        .into(),
    )?;
    for cap in 0..64u64 {
        if c.ambient & (1 << cap) != 0 {
            // SAFETY: prctl with integer arguments.
            let rc = unsafe {
                libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    cap as libc::c_ulong,
                    0,
                    0,
                )
            };
            sys::check(rc.into())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimits_are_clamped_to_the_callers_hard_limit() {
        assert_eq!(clamp_rlimit(1_048_576, 1_048_576, 20_000), (20_000, 20_000));
        assert_eq!(clamp_rlimit(1024, 4096, 20_000), (1024, 4096));
        assert_eq!(clamp_rlimit(30_000, 10_000, 20_000), (10_000, 10_000));
    }

    #[test]
    fn exec_candidates_follow_path_like_execvp() {
        assert_eq!(exec_candidates("/bin/sh", None), vec!["/bin/sh"]);
        assert_eq!(exec_candidates("./x", Some("/a")), vec!["./x"]);
        assert_eq!(
            exec_candidates("ls", Some("/a:/b/:")),
            vec!["/a/ls", "/b/ls", "./ls"]
        );
    }

    #[test]
    fn cap_mask_sets_the_capability_bits() {
        use oci_spec::runtime::Capability;
        let set: Capabilities = [Capability::Chown, Capability::SysAdmin]
            .into_iter()
            .collect();
        assert_eq!(cap_mask(Some(&set)), (1 << 0) | (1 << 21));
    }
}
