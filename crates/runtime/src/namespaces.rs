//! Namespaces: which to create at clone time, which to join by path, and the user
//! namespace's uid/gid maps (written by the runner while the init waits).

use std::fmt::Write as _;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

use crate::error::{Error, Result};
use crate::sys::{self, Errno};

/// What the container's namespaces need, prepared before `clone`.
#[derive(Debug, Default)]
pub struct NamespacePlan {
    /// `CLONE_NEW*` flags for the clone that creates the init.
    pub clone_flags: libc::c_int,
    /// Unshare the cgroup namespace in the init once the runner has put it in its cgroup,
    /// so that the namespace's root is the container's cgroup.
    pub new_cgroupns: bool,
    /// Namespaces to join, opened from their paths (the user namespace apart).
    pub joins: Vec<(OwnedFd, libc::c_int)>,
    /// A user namespace to join (a container sharing a remapped donor's namespaces). It is joined last,
    /// once the process no longer needs the host's privileges: the namespaces the init makes itself
    /// belong to the host's user namespace, and its mounts and hostname need root there.
    pub user_join: Option<OwnedFd>,
    /// A PID namespace to join: done by the runner before clone (it applies to children).
    pub pid_join: Option<OwnedFd>,
    /// `uid_map` contents, if a new user namespace is created.
    pub uid_map: Option<String>,
    /// `gid_map` contents, if a new user namespace is created.
    pub gid_map: Option<String>,
}

impl NamespacePlan {
    /// Whether the container gets a mount namespace (new or joined).
    pub fn has_mount_ns(&self) -> bool {
        self.clone_flags & libc::CLONE_NEWNS != 0
            || self.joins.iter().any(|(_, t)| *t == libc::CLONE_NEWNS)
    }

    /// Whether the container runs in a new user namespace.
    pub fn new_userns(&self) -> bool {
        self.clone_flags & libc::CLONE_NEWUSER != 0
    }

    /// Whether the container gets its own UTS namespace (so setting the hostname is allowed).
    pub fn has_uts_ns(&self) -> bool {
        self.clone_flags & libc::CLONE_NEWUTS != 0
            || self.joins.iter().any(|(_, t)| *t == libc::CLONE_NEWUTS)
    }
}

fn flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }
}

fn id_map(maps: &[LinuxIdMapping]) -> String {
    let mut s = String::new();
    for m in maps {
        let _ = writeln!(s, "{} {} {}", m.container_id(), m.host_id(), m.size());
    }
    s
}

/// Works out the namespaces of `linux.namespaces`, opening the paths to join.
pub fn plan(linux: Option<&Linux>) -> Result<NamespacePlan> {
    let mut p = NamespacePlan::default();
    let Some(linux) = linux else {
        return Ok(p);
    };
    for ns in linux.namespaces().iter().flatten() {
        let f = flag(ns.typ());
        match ns.path() {
            None => {
                if f == libc::CLONE_NEWCGROUP {
                    p.new_cgroupns = true;
                } else {
                    p.clone_flags |= f;
                }
            }
            Some(path) => {
                let fd = open_ns(path)?;
                if f == libc::CLONE_NEWPID {
                    p.pid_join = Some(fd);
                } else if f == libc::CLONE_NEWUSER {
                    p.user_join = Some(fd);
                } else {
                    p.joins.push((fd, f));
                }
            }
        }
    }
    if p.new_userns() {
        p.uid_map = Some(id_map(linux.uid_mappings().as_deref().unwrap_or(&[])));
        p.gid_map = Some(id_map(linux.gid_mappings().as_deref().unwrap_or(&[])));
    }
    Ok(p)
}

fn open_ns(path: &Path) -> Result<OwnedFd> {
    std::fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|e| Error::io("open namespace", path, e))
}

/// Joins the PID namespace given by path, for the runner's next child (done before clone).
pub fn join_pid_for_children(plan: &NamespacePlan) -> Result<()> {
    if let Some(fd) = &plan.pid_join {
        // SAFETY: `fd` is an open namespace file descriptor.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWPID) } < 0 {
            return Err(Error::last_os("setns pid"));
        }
    }
    Ok(())
}

/// Writes the uid/gid maps of the init's new user namespace (runner side).
pub fn write_id_maps(pid: libc::pid_t, plan: &NamespacePlan) -> Result<()> {
    for (file, map) in [("uid_map", &plan.uid_map), ("gid_map", &plan.gid_map)] {
        if let Some(map) = map {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, map).map_err(|e| Error::io("write", path, e))?;
        }
    }
    Ok(())
}

/// Joins the user namespace given by path, if any: the last join, after everything that needs the
/// host's root (init and exec side).
pub(crate) fn join_user(plan: &NamespacePlan) -> std::result::Result<(), Errno> {
    if let Some(fd) = &plan.user_join {
        // SAFETY: `fd` is an open namespace file descriptor; the caller is single-threaded.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWUSER) } < 0 {
            return Err(sys::errno());
        }
    }
    Ok(())
}

/// Joins the namespaces given by path (init side). Returns the index of the failing join.
pub(crate) fn join(plan: &NamespacePlan) -> std::result::Result<(), (u32, Errno)> {
    for (i, (fd, t)) in plan.joins.iter().enumerate() {
        // SAFETY: `fd` is an open namespace file descriptor.
        if unsafe { libc::setns(fd.as_raw_fd(), *t) } < 0 {
            return Err((i as u32, sys::errno()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder};

    #[test]
    fn plan_turns_types_into_clone_flags_and_defers_cgroupns() {
        let ns = [
            LinuxNamespaceType::Pid,
            LinuxNamespaceType::Mount,
            LinuxNamespaceType::Cgroup,
        ]
        .into_iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build().unwrap())
        .collect::<Vec<_>>();
        let linux = LinuxBuilder::default().namespaces(ns).build().unwrap();
        let p = plan(Some(&linux)).unwrap();
        assert_eq!(p.clone_flags, libc::CLONE_NEWPID | libc::CLONE_NEWNS);
        assert!(p.new_cgroupns);
        assert!(p.has_mount_ns());
        assert!(!p.new_userns());
    }

    #[test]
    fn plan_opens_paths_to_join() {
        let ns = LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Uts)
            .path("/proc/self/ns/uts")
            .build()
            .unwrap();
        let linux = LinuxBuilder::default()
            .namespaces(vec![ns])
            .build()
            .unwrap();
        let p = plan(Some(&linux)).unwrap();
        assert_eq!(p.clone_flags, 0);
        assert_eq!(p.joins.len(), 1);
        assert!(p.has_uts_ns());
    }
}
