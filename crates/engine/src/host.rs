//! Facts about the host that `info` and `version` report: kernel, OS, CPUs, memory, cgroup layout.

use std::path::Path;

use crate::error::Context;

/// What the daemon learned about its host at start.
#[derive(Debug, Clone)]
pub struct HostInfo {
    /// `uname -r`.
    pub kernel_version: String,
    /// PRETTY_NAME from os-release.
    pub operating_system: String,
    /// VERSION_ID from os-release.
    pub os_version: String,
    /// `uname -m`.
    pub architecture: String,
    /// Go's name for the architecture (`amd64`), as image configs and `version` use it.
    pub go_arch: &'static str,
    /// Online CPUs.
    pub ncpu: usize,
    /// Physical memory in bytes.
    pub mem_total: u64,
    /// The host's name.
    pub hostname: String,
    /// `1` on a v1 or hybrid cgroup layout, `2` on a pure unified one.
    pub cgroup_version: &'static str,
}

impl HostInfo {
    /// Reads the host's facts; missing files give empty strings, never an error.
    pub fn probe() -> HostInfo {
        let uts = rustix::system::uname();
        let os_release = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        let field = |key: &str| {
            os_release
                .lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(|v| v.trim_matches('"').to_owned())
                .unwrap_or_default()
        };
        let architecture = uts.machine().to_string_lossy().into_owned();
        HostInfo {
            kernel_version: uts.release().to_string_lossy().into_owned(),
            operating_system: field("PRETTY_NAME"),
            os_version: field("VERSION_ID"),
            go_arch: go_arch(&architecture),
            architecture,
            ncpu: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            mem_total: mem_total(),
            hostname: uts.nodename().to_string_lossy().into_owned(),
            cgroup_version: cgroup_version(Path::new("/sys/fs/cgroup")),
        }
    }
}

/// Takes an exclusive, non-blocking `flock` on `path` (made if missing) for as long as the returned file
/// stays open, and writes `holder` into it for whoever finds it taken. If another process holds it, the
/// inner error is what that process wrote there (trimmed). The daemon's data-root lock and the bridge
/// lock are both this.
pub fn lock_exclusive(
    path: &Path,
    holder: &str,
) -> std::io::Result<std::result::Result<std::fs::File, String>> {
    use std::io::{Read, Seek, Write};
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    if rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        let mut taken_by = String::new();
        // What the holder wrote is only for the message; an unreadable file leaves it empty.
        if let Err(e) = file.read_to_string(&mut taken_by) {
            tracing::debug!(path = %path.display(), error = %e, "reading a lock's holder");
        }
        return Ok(Err(taken_by.trim().to_owned()));
    }
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(holder.as_bytes())?;
    Ok(Ok(file))
}

/// Maps `uname -m` to Go's GOARCH names, which image configs and the API use.
pub fn go_arch(machine: &str) -> &'static str {
    match machine {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "armv7l" | "armv6l" => "arm",
        "i686" | "i386" => "386",
        "ppc64le" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        _ => "unknown",
    }
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// A pure v2 host mounts cgroup2 itself at the cgroup root; a hybrid one mounts tmpfs there.
pub(crate) fn cgroup_version(root: &Path) -> &'static str {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    match rustix::fs::statfs(root) {
        Ok(st) if st.f_type as i64 /* f_type is i64 here, u32 on some arches */ == CGROUP2_SUPER_MAGIC => {
            "2"
        }
        _ => "1",
    }
}

/// True when `path` is the root of a mount. `statx` says so directly (Linux 5.8+); reading mountinfo,
/// the fallback, costs time in proportion to the host's mounts (one per running container).
pub(crate) fn is_mount_point(path: &Path) -> bool {
    use rustix::fs::{statx, AtFlags, StatxAttributes, StatxFlags, CWD};
    if let Ok(st) = statx(
        CWD,
        path,
        AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::empty(),
    ) {
        if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
            return st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
        }
    }
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
}

/// Gives the data root mode 0710 and the exec root 0700, owned by the daemon's user and root's group, at
/// every start (so modes an older version left are tightened). Below the data root lie container file
/// systems, where a setuid-root binary made inside a container would otherwise run as root for any host user
/// (Docker's CVE-2021-41091), and records with containers' environments; below the exec root, bundles and
/// shim sockets. Other users get no search permission on either, so nothing below is reachable for them.
///
/// With `exec_root_group` (the API socket's group, when the socket lies in the exec root), the exec root is
/// 0710 in that group instead, so that the group's members reach the socket. They gain nothing else: the
/// socket already gives them everything the daemon can do.
///
/// With `--userns-remap`, the data root's group is the remapped root's (`data_root_group`), as dockerd makes
/// it: containers' root must search its way to their file systems and mounts, and nobody else may.
pub(crate) fn confine_roots(
    data_root: &Path,
    exec_root: &Path,
    exec_root_group: Option<u32>,
    data_root_group: Option<u32>,
) -> crate::Result<()> {
    let exec = match exec_root_group {
        Some(gid) => (exec_root, 0o710, rustix::fs::Gid::from_raw(gid)),
        None => (exec_root, 0o700, rustix::fs::Gid::ROOT),
    };
    let data_gid = data_root_group.map_or(rustix::fs::Gid::ROOT, rustix::fs::Gid::from_raw);
    for (dir, mode, gid) in [(data_root, 0o710, data_gid), exec] {
        confine(dir, mode, gid)?;
    }
    Ok(())
}

/// Whether `uid:gid` may search the directory `dir` by its mode bits (dockerd's `canAccess`: other, owner or
/// group execute permission; supplementary groups are not considered).
pub(crate) fn can_search(dir: &Path, uid: u32, gid: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = std::fs::metadata(dir) else {
        return false;
    };
    let mode = m.mode();
    mode & 0o001 != 0
        || (m.uid() == uid && mode & 0o100 != 0)
        || (m.gid() == gid && mode & 0o010 != 0)
}

/// Makes `dir` the daemon's, in group `gid`, with `mode`.
pub(crate) fn confine(dir: &Path, mode: u32, gid: rustix::fs::Gid) -> crate::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let uid = rustix::process::geteuid();
    // Group root, as dockerd: with mode 0710, only root's group may search the directory.
    rustix::fs::chown(dir, Some(uid), Some(gid))
        .or_else(|e| {
            // Without CAP_CHOWN (tests as an ordinary user), the mode alone keeps others out.
            if e == rustix::io::Errno::PERM {
                Ok(())
            } else {
                Err(e)
            }
        })
        .with_context(|| format!("chown {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_told_from_plain_directories() {
        assert!(is_mount_point(Path::new("/proc")));
        assert!(is_mount_point(Path::new("/")));
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(!is_mount_point(&sub));
        assert!(!is_mount_point(&dir.path().join("missing")));
    }

    #[test]
    fn probe_reads_real_figures() {
        let h = HostInfo::probe();
        assert!(!h.kernel_version.is_empty());
        assert!(h.ncpu >= 1);
        assert!(h.mem_total > 0);
        assert_eq!(go_arch("x86_64"), "amd64");
    }
}
