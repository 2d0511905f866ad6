//! cgroup v1: one directory per mounted hierarchy (`cpu,cpuacct`, `memory`, `name=systemd`...).
//! The unified v2 mount of a "hybrid" host (`/sys/fs/cgroup/unified`) is not joined.

use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType, LinuxResources};

use super::{keyed, nest, read, read_u64, write, Stats};
use crate::error::{Error, Result};
use crate::rootfs::CgroupV1Bind;

/// One v1 hierarchy and the container's directory in it.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// The mount point's name under /sys/fs/cgroup (`cpu,cpuacct`).
    pub name: String,
    /// Controllers (and `name=` for named hierarchies) from the mount's options.
    pub controllers: Vec<String>,
    /// The container's cgroup directory.
    pub dir: PathBuf,
}

/// A container's cgroup on v1.
#[derive(Debug, Clone)]
pub struct CgroupV1 {
    /// The hierarchies the container belongs to.
    pub hierarchies: Vec<Hierarchy>,
}

/// v1 hierarchies mounted on this host: (mount point, root, controllers). `own` is the runner's
/// [`own_cgroups`], which its callers need as well.
fn mounted_hierarchies(own: &[(String, String)]) -> Result<Vec<(PathBuf, String, Vec<String>)>> {
    if let Some(found) = standard_hierarchies(own) {
        return Ok(found);
    }
    let info = read(Path::new("/proc/self/mountinfo"))?;
    Ok(parse_mountinfo(&info))
}

/// The hierarchies where systemd (and every distribution) mounts them: `/sys/fs/cgroup/<controllers>`,
/// each with its root at `/`. Reading mountinfo costs the kernel time in proportion to the host's
/// mounts (one overlay per container), about 1 ms a start with a hundred containers, so the usual layout
/// is checked directly. It holds when every hierarchy the runner belongs to is a cgroup filesystem at
/// that place and shows the runner's own cgroup; anything else (`None`) goes to mountinfo.
fn standard_hierarchies(own: &[(String, String)]) -> Option<Vec<(PathBuf, String, Vec<String>)>> {
    let mut out = Vec::with_capacity(own.len());
    for (ctrls, path) in own {
        let name = ctrls.strip_prefix("name=").unwrap_or(ctrls);
        let mnt = Path::new("/sys/fs/cgroup").join(name);
        let statfs = rustix::fs::statfs(&mnt).ok()?;
        if statfs.f_type != libc::CGROUP_SUPER_MAGIC {
            return None;
        }
        if !mnt.join(path.trim_start_matches('/')).is_dir() {
            return None;
        }
        let controllers = ctrls.split(',').map(str::to_string).collect();
        out.push((mnt, "/".to_string(), controllers));
    }
    (!out.is_empty()).then_some(out)
}

fn parse_mountinfo(info: &str) -> Vec<(PathBuf, String, Vec<String>)> {
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        if post.first() != Some(&"cgroup") || pre.len() < 5 {
            continue;
        }
        let ctrls = post
            .get(2)
            .map(|o| {
                o.split(',')
                    .filter(|c| {
                        !matches!(
                            *c,
                            "rw" | "ro"
                                | "xattr"
                                | "noprefix"
                                | "clone_children"
                                | "cpuset_v2_mode"
                        ) && !c.starts_with("release_agent")
                    })
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        out.push((PathBuf::from(pre[4]), pre[3].to_string(), ctrls));
    }
    out
}

/// The cgroup.procs file of the runner's own cgroup in one v1 hierarchy.
pub(super) fn own_procs_file() -> Option<PathBuf> {
    let own = own_cgroups();
    let (mnt, root, ctrls) = mounted_hierarchies(&own).ok()?.into_iter().next()?;
    let key = ctrls.join(",");
    let mine = own.iter().find(|(c, _)| *c == key)?.1.as_str();
    let mine = mine.strip_prefix(root.as_str()).unwrap_or(mine);
    Some(mnt.join(mine.trim_start_matches('/')).join("cgroup.procs"))
}

/// The runner's own cgroup in each v1 hierarchy, keyed by controller list (`cpu,cpuacct`).
fn own_cgroups() -> Vec<(String, String)> {
    std::fs::read_to_string("/proc/self/cgroup")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            let _id = it.next()?;
            let ctrls = it.next()?;
            let path = it.next()?;
            (!ctrls.is_empty()).then(|| (ctrls.to_string(), path.to_string()))
        })
        .collect()
}

impl CgroupV1 {
    /// Creates the cgroup `path` in every mounted v1 hierarchy (relative paths under the
    /// runner's own cgroup in that hierarchy).
    pub fn open(path: &Path) -> Result<CgroupV1> {
        let own = own_cgroups();
        let mut hierarchies = Vec::new();
        for (mnt, root, ctrls) in mounted_hierarchies(&own)? {
            let key = ctrls.join(",");
            let mine = own
                .iter()
                .find(|(c, _)| *c == key)
                .map(|(_, p)| p.as_str())
                .unwrap_or("/");
            // Our cgroup as seen from this mount's root (usually "/").
            let mine = mine.strip_prefix(root.as_str()).unwrap_or(mine);
            let rel = nest(mine, path);
            let dir = mnt.join(rel.strip_prefix("/").unwrap_or(&rel));
            create_dir(&mnt, &dir, ctrls.iter().any(|c| c == "cpuset"))?;
            let name = mnt
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            hierarchies.push(Hierarchy {
                name,
                controllers: ctrls,
                dir,
            });
        }
        Ok(CgroupV1 { hierarchies })
    }

    fn dir_of(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.controllers.iter().any(|c| c == controller))
            .map(|h| h.dir.as_path())
    }

    fn set(&self, controller: &str, file: &str, value: &str) -> Result<()> {
        match self.dir_of(controller) {
            Some(d) => write(&d.join(file), value),
            None => Ok(()),
        }
    }

    /// Moves a process into the cgroup in every hierarchy.
    pub fn add_task(&self, pid: libc::pid_t) -> Result<()> {
        for h in &self.hierarchies {
            write(&h.dir.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// Applies memory, cpu, cpuset, pids, blkio and devices settings.
    pub fn apply(&self, res: &LinuxResources) -> Result<()> {
        if let Some(m) = res.memory() {
            let limit = m.limit().map(v1_limit);
            let swap = m.swap().map(v1_limit);
            // memsw must stay >= limit at every step, so the order depends on the direction.
            let set_limit = || match &limit {
                Some(l) => self.set("memory", "memory.limit_in_bytes", l),
                None => Ok(()),
            };
            let set_swap = || match &swap {
                Some(s) => self.set("memory", "memory.memsw.limit_in_bytes", s),
                None => Ok(()),
            };
            if set_limit().is_err() {
                set_swap()?;
                set_limit()?;
            } else if let Err(e) = set_swap() {
                // Kernels booted without swap accounting have no memsw files.
                if self
                    .dir_of("memory")
                    .is_some_and(|d| d.join("memory.memsw.limit_in_bytes").exists())
                {
                    return Err(e);
                }
            }
            if let Some(r) = m.reservation() {
                self.set("memory", "memory.soft_limit_in_bytes", &v1_limit(r))?;
            }
            if let Some(sw) = m.swappiness() {
                if sw <= 100 {
                    self.set("memory", "memory.swappiness", &sw.to_string())?;
                }
            }
            if m.disable_oom_killer() == Some(true) {
                self.set("memory", "memory.oom_control", "1")?;
            }
        }
        if let Some(c) = res.cpu() {
            if let Some(s) = c.shares() {
                if s > 0 {
                    self.set("cpu", "cpu.shares", &s.to_string())?;
                }
            }
            if let Some(p) = c.period() {
                self.set("cpu", "cpu.cfs_period_us", &p.to_string())?;
            }
            if let Some(q) = c.quota() {
                self.set("cpu", "cpu.cfs_quota_us", &q.to_string())?;
            }
            if let Some(cpus) = c.cpus() {
                self.set("cpuset", "cpuset.cpus", cpus)?;
            }
            if let Some(mems) = c.mems() {
                self.set("cpuset", "cpuset.mems", mems)?;
            }
        }
        if let Some(p) = res.pids() {
            let v = if p.limit() > 0 {
                p.limit().to_string()
            } else {
                "max".into()
            };
            self.set("pids", "pids.max", &v)?;
        }
        if let Some(w) = res.block_io().as_ref().and_then(|b| b.weight()) {
            let file = match self.dir_of("blkio") {
                Some(d) if !d.join("blkio.weight").exists() => "blkio.bfq.weight",
                _ => "blkio.weight",
            };
            self.set("blkio", file, &w.to_string())?;
        }
        if let Some(b) = res.block_io() {
            // As for the weight: BFQ names the file its own way, and CFQ's is gone from newer kernels.
            let file = match self.dir_of("blkio") {
                Some(d) if !d.join("blkio.weight_device").exists() => "blkio.bfq.weight_device",
                _ => "blkio.weight_device",
            };
            for d in b.weight_device().iter().flatten() {
                if let Some(w) = d.weight() {
                    let line = format!("{}:{} {w}", d.major(), d.minor());
                    self.set("blkio", file, &line)?;
                }
            }
            for (file, list) in [
                (
                    "blkio.throttle.read_bps_device",
                    b.throttle_read_bps_device(),
                ),
                (
                    "blkio.throttle.write_bps_device",
                    b.throttle_write_bps_device(),
                ),
                (
                    "blkio.throttle.read_iops_device",
                    b.throttle_read_iops_device(),
                ),
                (
                    "blkio.throttle.write_iops_device",
                    b.throttle_write_iops_device(),
                ),
            ] {
                for d in list.iter().flatten() {
                    let line = format!("{}:{} {}", d.major(), d.minor(), d.rate());
                    self.set("blkio", file, &line)?;
                }
            }
        }
        for h in res.hugepage_limits().iter().flatten() {
            let file = format!("hugetlb.{}.limit_in_bytes", h.page_size());
            self.set("hugetlb", &file, &h.limit().to_string())?;
        }
        if let Some(devs) = res.devices() {
            for d in devs {
                let file = if d.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                self.set("devices", file, &device_rule(d))?;
            }
            // As runc does, the devices every container gets (and mknod of any node) are
            // allowed after the spec's rules, which usually start with "deny all".
            for rule in DEFAULT_ALLOWED_DEVICES {
                self.set("devices", "devices.allow", rule)?;
            }
        }
        Ok(())
    }

    /// Reads memory, cpuacct and pids usage.
    pub fn stats(&self) -> Result<Stats> {
        let mut s = Stats::default();
        if let Some(d) = self.dir_of("memory") {
            s.memory_usage = read_u64(&d.join("memory.usage_in_bytes")).unwrap_or(0);
            s.memory_limit = read_u64(&d.join("memory.limit_in_bytes")).unwrap_or(u64::MAX);
            let stat = read(&d.join("memory.stat")).unwrap_or_default();
            s.memory_cache = keyed(&stat, "total_cache")
                .or_else(|| keyed(&stat, "cache"))
                .unwrap_or(0);
            let oom = read(&d.join("memory.oom_control")).unwrap_or_default();
            s.oom_kills = keyed(&oom, "oom_kill").unwrap_or(0);
        }
        if let Some(d) = self.dir_of("cpuacct") {
            s.cpu_total_ns = read_u64(&d.join("cpuacct.usage"))?;
            s.cpu_percpu_ns = read(&d.join("cpuacct.usage_percpu"))?
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let stat = read(&d.join("cpuacct.stat")).unwrap_or_default();
            // SAFETY: sysconf has no memory-safety preconditions.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            s.cpu_user_ns = keyed(&stat, "user").unwrap_or(0) * 1_000_000_000 / hz;
            s.cpu_system_ns = keyed(&stat, "system").unwrap_or(0) * 1_000_000_000 / hz;
        }
        if let Some(d) = self.dir_of("pids") {
            s.pids_current = read_u64(&d.join("pids.current")).unwrap_or(0);
        }
        Ok(s)
    }

    /// Freezes or thaws through the freezer hierarchy.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        let Some(d) = self.dir_of("freezer") else {
            return Err(Error::Cgroup {
                path: PathBuf::from("/sys/fs/cgroup/freezer"),
                source: std::io::Error::from_raw_os_error(libc::ENODEV),
            });
        };
        let want = if frozen { "FROZEN" } else { "THAWED" };
        for _ in 0..1000 {
            write(&d.join("freezer.state"), want)?;
            if read(&d.join("freezer.state"))?.trim() == want {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Err(Error::Cgroup {
            path: d.join("freezer.state"),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "freezer did not settle"),
        })
    }

    /// Removes the cgroup's directory in every hierarchy.
    pub fn remove(&self) -> Result<()> {
        for h in &self.hierarchies {
            match std::fs::remove_dir(&h.dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(Error::Cgroup {
                        path: h.dir.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// The read-only binds a `cgroup` mount in the container shows.
    pub fn binds(&self) -> Vec<CgroupV1Bind> {
        self.hierarchies
            .iter()
            .map(|h| CgroupV1Bind {
                name: h.name.clone(),
                host_dir: h.dir.clone(),
            })
            .collect()
    }
}

/// Device rules every container gets: mknod of anything, and the standard /dev nodes.
pub const DEFAULT_ALLOWED_DEVICES: [&str; 11] = [
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",   // null
    "c 1:5 rwm",   // zero
    "c 1:7 rwm",   // full
    "c 1:8 rwm",   // random
    "c 1:9 rwm",   // urandom
    "c 5:0 rwm",   // tty
    "c 5:1 rwm",   // console
    "c 5:2 rwm",   // ptmx
    "c 136:* rwm", // pts
];

fn v1_limit(v: i64) -> String {
    if v < 0 {
        "-1".into()
    } else {
        v.to_string()
    }
}

/// A devices.allow/deny line: `c 1:3 rwm`, with `*` for a missing number.
pub fn device_rule(d: &LinuxDeviceCgroup) -> String {
    let t = match d.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => 'p',
    };
    let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
    let access = d.access().clone().unwrap_or_else(|| "rwm".to_string());
    format!("{t} {}:{} {access}", n(d.major()), n(d.minor()))
}

/// Creates `dir` and its parents below `mnt`; new cpuset cgroups get their parent's cpus and
/// mems, without which no task could join them.
fn create_dir(mnt: &Path, dir: &Path, cpuset: bool) -> Result<()> {
    let rel = dir.strip_prefix(mnt).unwrap_or(dir);
    let mut cur = mnt.to_path_buf();
    for c in rel.components() {
        let parent = cur.clone();
        cur.push(c);
        if cur.is_dir() {
            continue;
        }
        std::fs::create_dir(&cur).map_err(|source| Error::Cgroup {
            path: cur.clone(),
            source,
        })?;
        if cpuset {
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if read(&cur.join(f))?.trim().is_empty() {
                    write(&cur.join(f), read(&parent.join(f))?.trim())?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    #[test]
    fn parse_mountinfo_finds_v1_hierarchies_only() {
        let info = "\
35 25 0:30 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
36 25 0:31 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
40 25 0:35 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
";
        let h = parse_mountinfo(info);
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].0, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(h[1].2, vec!["cpu", "cpuacct"]);
        assert_eq!(h[0].2, vec!["name=systemd"]);
    }

    #[test]
    fn the_standard_layout_matches_what_mountinfo_says() {
        // Pure v2 hosts leave this test out (scripts/test.sh, host requirement cgroup-v1).
        assert!(
            !super::super::is_v2(),
            "this host has no v1 hierarchies (host requirement: cgroup-v1)"
        );
        let mut fast = standard_hierarchies(&own_cgroups())
            .expect("the v1 hierarchies are at /sys/fs/cgroup/<controllers> on a v1 host");
        let info = read(Path::new("/proc/self/mountinfo")).unwrap();
        let mut slow: Vec<_> = parse_mountinfo(&info)
            .into_iter()
            .filter(|(m, _, _)| m.starts_with("/sys/fs/cgroup"))
            .collect();
        fast.sort();
        slow.sort();
        assert_eq!(fast, slow);
    }

    #[test]
    fn device_rule_uses_stars_for_missing_numbers() {
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        assert_eq!(device_rule(&d), "a *:* rwm");
        let d = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(1)
            .minor(3)
            .access("rw")
            .build()
            .unwrap();
        assert_eq!(device_rule(&d), "c 1:3 rw");
    }
}
