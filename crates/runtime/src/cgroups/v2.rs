//! cgroup v2: one directory in the unified hierarchy.
//!
//! Device rules (`linux.resources.devices`) become an eBPF program attached to the cgroup
//! (see [`super::v2_devices`]).

use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxResources;

use super::v1::DEFAULT_ALLOWED_DEVICES;
use super::v2_devices::{self, Rule};
use super::{keyed, nest, read, read_u64, write, Stats};
use crate::error::{Error, Result};

/// A container's cgroup on the unified hierarchy.
#[derive(Debug, Clone)]
pub struct CgroupV2 {
    /// The hierarchy's mount point (`/sys/fs/cgroup`, or a fake tree in tests).
    pub mount: PathBuf,
    /// The cgroup's directory.
    pub dir: PathBuf,
}

/// The runner's own cgroup on v2, from `/proc/self/cgroup` (`0::/path`).
fn own_cgroup() -> String {
    std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        })
        .unwrap_or_else(|| "/".to_string())
}

/// runc's mapping of v1 cpu.shares (2..262144) onto v2 cpu.weight (1..10000).
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

/// runc's mapping of v1 blkio.weight (10..1000) onto v2 io.weight (1..10000).
pub fn blkio_to_io_weight(w: u16) -> u64 {
    1 + (u64::from(w).clamp(10, 1000) - 10) * 9999 / 990
}

impl CgroupV2 {
    /// Creates the cgroup `path` (relative ones under the runner's own cgroup) under `mount`,
    /// enabling the available controllers in each ancestor's `cgroup.subtree_control`.
    pub fn open(mount: &Path, path: &Path) -> Result<CgroupV2> {
        Self::open_under(mount, &own_cgroup(), path)
    }

    /// As [`CgroupV2::open`], with the runner's cgroup given (for tests).
    pub fn open_under(mount: &Path, own: &str, path: &Path) -> Result<CgroupV2> {
        let rel = nest(own, path);
        let mut dir = mount.to_path_buf();
        let comps: Vec<_> = rel.components().skip(1).collect();
        for c in comps {
            enable_controllers(&dir);
            dir.push(c);
            if !dir.is_dir() {
                std::fs::create_dir(&dir).map_err(|source| Error::Cgroup {
                    path: dir.clone(),
                    source,
                })?;
            }
        }
        Ok(CgroupV2 {
            mount: mount.to_path_buf(),
            dir,
        })
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Moves a process into the cgroup.
    pub fn add_task(&self, pid: libc::pid_t) -> Result<()> {
        write(&self.file("cgroup.procs"), &pid.to_string())
    }

    /// Applies memory, cpu, cpuset, pids and io limits.
    pub fn apply(&self, res: &LinuxResources) -> Result<()> {
        if let Some(m) = res.memory() {
            if let Some(l) = m.limit() {
                write(&self.file("memory.max"), &limit(l))?;
            }
            if let Some(r) = m.reservation() {
                write(&self.file("memory.low"), &limit(r))?;
            }
            if let Some(s) = m.swap() {
                // OCI's swap is memory+swap (the v1 meaning); v2's swap.max is swap alone.
                let v = match (s, m.limit()) {
                    (s, _) if s < 0 => "max".to_string(),
                    (s, Some(l)) if l > 0 => (s.saturating_sub(l)).max(0).to_string(),
                    (s, _) => s.to_string(),
                };
                write(&self.file("memory.swap.max"), &v)?;
            }
        }
        if let Some(c) = res.cpu() {
            if let Some(s) = c.shares() {
                if s > 0 {
                    write(&self.file("cpu.weight"), &shares_to_weight(s).to_string())?;
                }
            }
            if c.quota().is_some() || c.period().is_some() {
                let q = match c.quota() {
                    Some(q) if q > 0 => q.to_string(),
                    _ => "max".to_string(),
                };
                let p = c.period().unwrap_or(100_000);
                write(&self.file("cpu.max"), &format!("{q} {p}"))?;
            }
            if let Some(cpus) = c.cpus() {
                write(&self.file("cpuset.cpus"), cpus)?;
            }
            if let Some(mems) = c.mems() {
                write(&self.file("cpuset.mems"), mems)?;
            }
        }
        if let Some(p) = res.pids() {
            write(&self.file("pids.max"), &limit(p.limit()))?;
        }
        if let Some(b) = res.block_io() {
            if let Some(w) = b.weight() {
                write(
                    &self.file("io.weight"),
                    &format!("default {}", blkio_to_io_weight(w)),
                )?;
            }
            for d in b.weight_device().iter().flatten() {
                if let Some(w) = d.weight() {
                    let line = format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(w));
                    write(&self.file("io.weight"), &line)?;
                }
            }
            for line in io_max_lines(b) {
                write(&self.file("io.max"), &line)?;
            }
        }
        for h in res.hugepage_limits().iter().flatten() {
            let file = format!("hugetlb.{}.max", h.page_size());
            write(&self.file(&file), &limit(h.limit()))?;
        }
        if let Some(devs) = res.devices().as_ref().filter(|d| !d.is_empty()) {
            // The same list as on v1: the spec's rules, then the devices every container gets.
            let mut rules: Vec<Rule> = devs.iter().map(Rule::from_oci).collect();
            rules.extend(
                DEFAULT_ALLOWED_DEVICES
                    .iter()
                    .filter_map(|l| Rule::parse_v1(l, true)),
            );
            v2_devices::attach(&self.dir, &rules)?;
        }
        Ok(())
    }

    /// Reads usage from memory.current, memory.max, memory.stat, cpu.stat and pids.current.
    pub fn stats(&self) -> Result<Stats> {
        let mem_stat = read(&self.file("memory.stat")).unwrap_or_default();
        let cpu_stat = read(&self.file("cpu.stat"))?;
        Ok(Stats {
            memory_usage: read_u64(&self.file("memory.current")).unwrap_or(0),
            memory_limit: read_u64(&self.file("memory.max")).unwrap_or(u64::MAX),
            memory_cache: keyed(&mem_stat, "file").unwrap_or(0),
            cpu_total_ns: keyed(&cpu_stat, "usage_usec").unwrap_or(0) * 1000,
            cpu_percpu_ns: Vec::new(),
            cpu_system_ns: keyed(&cpu_stat, "system_usec").unwrap_or(0) * 1000,
            cpu_user_ns: keyed(&cpu_stat, "user_usec").unwrap_or(0) * 1000,
            pids_current: read_u64(&self.file("pids.current")).unwrap_or(0),
            oom_kills: keyed(
                &read(&self.file("memory.events")).unwrap_or_default(),
                "oom_kill",
            )
            .unwrap_or(0),
        })
    }

    /// Freezes or thaws through `cgroup.freeze`, waiting until `cgroup.events` agrees.
    pub fn set_frozen(&self, frozen: bool) -> Result<()> {
        write(&self.file("cgroup.freeze"), if frozen { "1" } else { "0" })?;
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        for _ in 0..1000 {
            match read(&self.file("cgroup.events")) {
                Ok(ev) if !ev.lines().any(|l| l.starts_with("frozen ")) => return Ok(()),
                Ok(ev) if ev.lines().any(|l| l == want) => return Ok(()),
                Err(_) => return Ok(()),
                _ => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
        Err(Error::Cgroup {
            path: self.file("cgroup.events"),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "freezer did not settle"),
        })
    }

    /// Removes the cgroup directory.
    pub fn remove(&self) -> Result<()> {
        match std::fs::remove_dir(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Cgroup {
                path: self.dir.clone(),
                source,
            }),
        }
    }
}

/// `io.max` lines ("8:0 rbps=1048576 wiops=100") for the v1-style throttle lists, one per
/// device, in device order.
pub fn io_max_lines(b: &oci_spec::runtime::LinuxBlockIo) -> Vec<String> {
    let mut per_dev: std::collections::BTreeMap<(i64, i64), Vec<String>> = Default::default();
    for (key, list) in [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ] {
        for d in list.iter().flatten() {
            per_dev
                .entry((d.major(), d.minor()))
                .or_default()
                .push(format!("{key}={}", d.rate()));
        }
    }
    per_dev
        .into_iter()
        .map(|((maj, min), kv)| format!("{maj}:{min} {}", kv.join(" ")))
        .collect()
}

fn limit(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// Enables every available controller for the children of `dir`. Best effort: a cgroup with
/// processes of its own cannot delegate (EBUSY), and then limits below it are not enforced.
fn enable_controllers(dir: &Path) {
    let Ok(avail) = std::fs::read_to_string(dir.join("cgroup.controllers")) else {
        return;
    };
    let enabled = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    let want: Vec<String> = avail
        .split_whitespace()
        .filter(|c| !enabled.split_whitespace().any(|e| e == *c))
        .map(|c| format!("+{c}"))
        .collect();
    if want.is_empty() {
        return;
    }
    if let Err(e) = std::fs::write(dir.join("cgroup.subtree_control"), want.join(" ")) {
        eprintln!(
            "berth runtime: enable controllers in {}: {e}",
            dir.join("cgroup.subtree_control").display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder,
        LinuxResourcesBuilder,
    };

    /// A fake unified hierarchy: the root offers controllers, files are plain files.
    fn fake_tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(
            t.path().join("cgroup.controllers"),
            "cpuset cpu io memory pids\n",
        )
        .unwrap();
        std::fs::write(t.path().join("cgroup.subtree_control"), "").unwrap();
        t
    }

    fn resources() -> LinuxResources {
        LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(64 << 20)
                    .reservation(32 << 20)
                    .swap(128 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .shares(1024u64)
                    .quota(50_000i64)
                    .period(100_000u64)
                    .cpus("0")
                    .mems("0")
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(42).build().unwrap())
            .hugepage_limits(vec![oci_spec::runtime::LinuxHugepageLimitBuilder::default(
            )
            .page_size("2MB")
            .limit(4_194_304i64)
            .build()
            .unwrap()])
            .block_io(
                LinuxBlockIoBuilder::default()
                    .weight(500u16)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn open_nests_relative_paths_and_enables_controllers() {
        let t = fake_tree();
        let cg = CgroupV2::open_under(t.path(), "/daemon", Path::new("berth/c1")).unwrap();
        assert_eq!(cg.dir, t.path().join("daemon/berth/c1"));
        assert!(cg.dir.is_dir());
        let sc = std::fs::read_to_string(t.path().join("cgroup.subtree_control")).unwrap();
        assert_eq!(sc, "+cpuset +cpu +io +memory +pids");
    }

    #[test]
    fn apply_writes_v2_files_with_v1_values_converted() {
        let t = fake_tree();
        let cg = CgroupV2::open_under(t.path(), "/", Path::new("c1")).unwrap();
        cg.apply(&resources()).unwrap();
        let r = |f: &str| std::fs::read_to_string(cg.dir.join(f)).unwrap();
        assert_eq!(r("memory.max"), (64u64 << 20).to_string());
        assert_eq!(r("memory.low"), (32u64 << 20).to_string());
        assert_eq!(r("memory.swap.max"), (64u64 << 20).to_string());
        assert_eq!(r("cpu.weight"), "39");
        assert_eq!(r("cpu.max"), "50000 100000");
        assert_eq!(r("cpuset.cpus"), "0");
        assert_eq!(r("pids.max"), "42");
        assert_eq!(r("hugetlb.2MB.max"), "4194304");
        assert_eq!(
            r("io.weight"),
            format!("default {}", blkio_to_io_weight(500))
        );
    }

    #[test]
    fn stats_reads_usage_files() {
        let t = fake_tree();
        let cg = CgroupV2::open_under(t.path(), "/", Path::new("c1")).unwrap();
        let w = |f: &str, v: &str| std::fs::write(cg.dir.join(f), v).unwrap();
        w("memory.current", "1000\n");
        w("memory.max", "max\n");
        w("memory.stat", "anon 10\nfile 300\n");
        w("memory.events", "low 0\nhigh 0\nmax 4\noom 2\noom_kill 1\n");
        w("cpu.stat", "usage_usec 5\nuser_usec 3\nsystem_usec 2\n");
        w("pids.current", "4\n");
        let s = cg.stats().unwrap();
        assert_eq!(s.memory_usage, 1000);
        assert_eq!(s.memory_limit, u64::MAX);
        assert_eq!(s.memory_cache, 300);
        assert_eq!(s.oom_kills, 1);
        assert_eq!(
            (s.cpu_total_ns, s.cpu_user_ns, s.cpu_system_ns),
            (5000, 3000, 2000)
        );
        assert_eq!(s.pids_current, 4);
    }

    #[test]
    fn throttle_lists_become_one_io_max_line_per_device() {
        let b: oci_spec::runtime::LinuxBlockIo = serde_json::from_value(serde_json::json!({
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
            "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 100},
                                        {"major": 8, "minor": 16, "rate": 5}]
        }))
        .unwrap();
        assert_eq!(
            io_max_lines(&b),
            vec!["8:0 rbps=1048576 wiops=100", "8:16 wiops=5"]
        );
    }

    #[test]
    fn conversions_match_runc() {
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(blkio_to_io_weight(10), 1);
        assert_eq!(blkio_to_io_weight(1000), 10_000);
    }

    /// Runs only on a real v2 host (the cgroup2 VM): limits land and a process can join.
    #[test]
    fn cgroup_v2_real_hierarchy_applies_limits_and_removes() {
        // Hosts without a pure v2 hierarchy leave this test out (scripts/test.sh, host requirement
        // cgroup-v2) and run it in the cgroup v2 VM (crates/runtime/tests/cgroup2_vm.sh).
        assert!(
            super::super::is_v2(),
            "/sys/fs/cgroup is not cgroup2 on this host (host requirement: cgroup-v2)"
        );
        let cg = CgroupV2::open(Path::new("/sys/fs/cgroup"), Path::new("berth-test/c1")).unwrap();
        cg.apply(&resources()).unwrap();
        assert_eq!(read_u64(&cg.dir.join("memory.max")).unwrap(), 64 << 20);
        assert_eq!(
            read(&cg.dir.join("cpu.max")).unwrap().trim(),
            "50000 100000"
        );
        assert_eq!(read_u64(&cg.dir.join("pids.max")).unwrap(), 42);
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        cg.add_task(child.id() as i32).unwrap();
        assert_eq!(cg.stats().unwrap().pids_current, 1);
        cg.set_frozen(true).unwrap();
        cg.set_frozen(false).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        cg.remove().unwrap();
        assert!(!cg.dir.exists());
        let _ = std::fs::remove_dir("/sys/fs/cgroup/berth-test");
    }
}
