//! Differential tests: the same bundle and probe under runc (the oracle) and under the
//! built-in runtime; what the container sees must match. They need root, runc and
//! busybox-static; a test that cannot run here says why and returns.

#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use oci_spec::runtime::{PosixRlimitBuilder, PosixRlimitType, Spec, UserBuilder};
use runtime::spec::{docker_default_spec, Bundle};
use runtime::{Container, CreateOptions, Stdio};

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    )
}

/// Why this host cannot run the tests, if it cannot.
fn missing() -> Option<&'static str> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root");
    }
    if !Path::new("/bin/busybox").exists() {
        return Some("needs busybox-static (/bin/busybox)");
    }
    if Command::new("runc").arg("--version").output().is_err() {
        return Some("needs runc");
    }
    None
}

/// The `berth` binary for tests that run `berth runtime …` as a command (in `$CARGO_TARGET_DIR` or the
/// workspace's `target/`). `scripts/test.sh` builds it before the tests run; the test fails without it.
fn berth_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let berth = target.join("debug/berth");
    assert!(
        berth.exists(),
        "{} is missing: build it first (cargo build -p berth; scripts/test.sh does)",
        berth.display()
    );
    berth
}

/// Fails the test when the host lacks what every differential test needs (root, busybox-static, runc:
/// `.ci/run` installs them): a test that cannot run must not pass.
macro_rules! require_host {
    () => {
        if let Some(why) = missing() {
            panic!("this host cannot run the differential tests: {why}");
        }
    };
}

/// A bundle: busybox with its applet links as rootfs, and `spec` as config.json.
struct TestBundle {
    dir: tempfile::TempDir,
}

impl TestBundle {
    fn new(spec: &Spec) -> TestBundle {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
        let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
            }
        }
        std::fs::write(bin.join("not-executable"), "#!/bin/sh\n").unwrap();
        std::fs::create_dir_all(dir.path().join("rootfs/etc")).unwrap();
        spec.save(dir.path().join("config.json")).unwrap();
        TestBundle { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

/// Runs the bundle under runc; returns (exit code, stdout+stderr).
fn run_runc(b: &TestBundle) -> (i32, String) {
    let out = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(b.path())
        .arg(unique("runc"))
        .output()
        .unwrap();
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), s)
}

/// Runs the bundle with the built-in runtime (the library, as the shim will); returns
/// (exit code, stdout+stderr of the container, or the error text).
fn run_berth(b: &TestBundle, cache: &Path) -> (i32, String) {
    let bundle = Bundle::load(&b.path()).unwrap();
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid array for pipe2.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    use std::os::fd::FromRawFd;
    // SAFETY: fresh descriptors from pipe2.
    let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let stdio = Stdio {
        stdin: None,
        stdout: Some(w.try_clone().unwrap()),
        stderr: Some(w),
    };
    let opts = CreateOptions {
        seccomp_cache: Some(cache.to_path_buf()),
        no_cgroups: false,
        start_fifo: None,
    };
    let id = unique("berth");
    let mut c = match Container::create(&id, &bundle, stdio, &opts) {
        Ok(c) => c,
        Err(e) => return (-1, format!("create: {e}")),
    };
    let started = c.start();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    let status = c.wait().unwrap();
    c.delete().unwrap();
    if let Err(e) = started {
        out.push_str(&format!("start: {e}"));
    }
    (status.code(), out)
}

fn spec_with(args: &[&str], f: impl FnOnce(&mut Spec)) -> Spec {
    let mut s = docker_default_spec(args).unwrap();
    f(&mut s);
    s
}

/// Gives the spec's process a terminal of `rows` x `cols`.
fn with_terminal(s: &mut Spec, rows: u64, cols: u64) {
    let mut p = s.process().clone().unwrap();
    p.set_terminal(Some(true));
    p.set_console_size(Some(
        oci_spec::runtime::BoxBuilder::default()
            .height(rows)
            .width(cols)
            .build()
            .unwrap(),
    ));
    s.set_process(Some(p));
}

fn both(spec: &Spec) -> ((i32, String), (i32, String)) {
    let b = TestBundle::new(spec);
    let cache = tempfile::tempdir().unwrap();
    (run_runc(&b), run_berth(&b, cache.path()))
}

#[test]
fn status_caps_seccomp_and_no_new_privs_match_runc() {
    require_host!();
    let probe = "grep -E '^(Cap|Seccomp|NoNewPrivs|SigBlk|SigIgn)' /proc/self/status";
    let s = spec_with(&["sh", "-c", probe], |_| {});
    let (runc, berth) = both(&s);
    assert_eq!(runc.0, 0, "runc: {}", runc.1);
    assert_eq!(berth, (runc.0, without_signal_32(&runc.1)));
    assert!(berth.1.contains("Seccomp:\t2"), "{}", berth.1);
    assert!(berth.1.contains("CapBnd:\t00000000a80425fb"), "{}", berth.1);
    // The same with no_new_privs set (seccomp is then installed last).
    let s = spec_with(&["sh", "-c", probe], |s| {
        let mut p = s.process().clone().unwrap();
        p.set_no_new_privileges(Some(true));
        s.set_process(Some(p));
    });
    let (runc, berth) = both(&s);
    assert_eq!(berth, (runc.0, without_signal_32(&runc.1)));
    assert!(berth.1.contains("NoNewPrivs:\t1"), "{}", berth.1);
}

/// Clears signal 32 from a `SigIgn:` line. glibc reserves it (thread cancellation); runc
/// passes on an ignored disposition of it from its own parent (seen in the cgroup2 VM), while
/// the built-in init resets every signal to its default.
fn without_signal_32(status: &str) -> String {
    status
        .lines()
        .map(|l| {
            match l
                .strip_prefix("SigIgn:\t")
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            {
                Some(v) => format!("SigIgn:\t{:016x}\n", v & !(1 << 31)),
                None => format!("{l}\n"),
            }
        })
        .collect()
}

/// Mount point, per-mount options, fs type and super options of the mounts Docker sets up.
fn mount_summary(mountinfo: &str) -> Vec<String> {
    let interesting = [
        "/",
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys/fs/cgroup",
    ];
    mountinfo
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let mp = *f.get(4)?;
            let opts = *f.get(5)?;
            let masked_or_ro = mp.starts_with("/proc/") || mp.starts_with("/sys/firmware");
            (interesting.contains(&mp) || masked_or_ro).then(|| format!("{mp} {opts} - {post}"))
        })
        .collect()
}

#[test]
fn mounts_and_their_options_match_runc() {
    require_host!();
    let s = spec_with(&["cat", "/proc/self/mountinfo"], |_| {});
    let (runc, berth) = both(&s);
    assert_eq!(runc.0, 0, "runc: {}", runc.1);
    assert_eq!(berth.0, 0, "berth: {}", berth.1);
    let (r, b) = (mount_summary(&runc.1), mount_summary(&berth.1));
    assert!(r.iter().any(|m| m.starts_with("/dev/pts ")), "{r:?}");
    assert_eq!(b, r);
}

#[test]
fn masked_paths_are_unreadable_like_runc() {
    require_host!();
    let probe = "exec 2>&1; cat /proc/kcore | wc -c; ls -A /sys/firmware | wc -l; \
                 echo x > /proc/sysrq-trigger 2>/dev/null || echo ro; \
                 echo 1 > /proc/sys/kernel/ns_last_pid 2>/dev/null || echo ro-sys";
    let s = spec_with(&["sh", "-c", probe], |_| {});
    let (runc, berth) = both(&s);
    assert_eq!(berth, runc);
    let answers: Vec<&str> = berth.1.lines().filter(|l| !l.contains(':')).collect();
    assert_eq!(answers, ["0", "0", "ro", "ro-sys"], "{}", berth.1);
}

#[test]
fn user_groups_hostname_env_cwd_and_rlimits_match_runc() {
    require_host!();
    let probe = "id; hostname; echo $FOO; pwd; ulimit -Sn; ulimit -Hn; ls -ld /dev/shm /dev/null";
    let s = spec_with(&["sh", "-c", probe], |s| {
        let mut p = s.process().clone().unwrap();
        p.set_user(
            UserBuilder::default()
                .uid(1000u32)
                .gid(1000u32)
                .additional_gids(vec![10u32, 20])
                .build()
                .unwrap(),
        );
        let mut env = p.env().clone().unwrap();
        env.push("FOO=bar baz".into());
        p.set_env(Some(env));
        p.set_cwd("/".into());
        p.set_rlimits(Some(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(1024u64)
            .hard(4096u64)
            .build()
            .unwrap()]));
        s.set_process(Some(p));
        s.set_hostname(Some("probe-host".into()));
    });
    let (runc, berth) = both(&s);
    assert_eq!(runc.0, 0, "runc: {}", runc.1);
    assert_eq!(berth, runc);
    assert!(
        berth.1.contains("uid=1000 gid=1000 groups=10,20"),
        "{}",
        berth.1
    );
}

#[test]
fn missing_cwd_is_created_as_docker_does() {
    require_host!();
    let s = spec_with(&["pwd"], |s| {
        let mut p = s.process().clone().unwrap();
        p.set_cwd("/work/dir".into());
        s.set_process(Some(p));
    });
    let b = TestBundle::new(&s);
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(run_berth(&b, cache.path()), (0, "/work/dir\n".to_string()));
}

#[test]
fn rlimits_above_the_callers_hard_limit_are_clamped_not_fatal() {
    require_host!();
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    let s = spec_with(&["sh", "-c", "ulimit -Hn"], |s| {
        let mut p = s.process().clone().unwrap();
        p.set_rlimits(Some(vec![PosixRlimitBuilder::default()
            .typ(PosixRlimitType::RlimitNofile)
            .soft(u64::MAX / 2)
            .hard(u64::MAX / 2)
            .build()
            .unwrap()]));
        s.set_process(Some(p));
    });
    let b = TestBundle::new(&s);
    let cache = tempfile::tempdir().unwrap();
    let (code, out) = run_berth(&b, cache.path());
    assert_eq!(code, 0, "{out}");
    let shown = if cur.rlim_max == libc::RLIM_INFINITY {
        "unlimited".to_string()
    } else {
        cur.rlim_max.to_string()
    };
    assert_eq!(out.trim(), shown);
}

#[test]
fn exit_codes_follow_the_process_and_docker_conventions() {
    require_host!();
    for (args, want) in [(vec!["true"], 0), (vec!["sh", "-c", "exit 3"], 3)] {
        let s = spec_with(&args, |_| {});
        let (runc, berth) = both(&s);
        assert_eq!(berth.0, want, "{args:?}: {}", berth.1);
        assert_eq!(runc.0, want, "runc {args:?}: {}", runc.1);
    }
    // Docker's convention for a process that cannot be executed: 127 not found, 126 not
    // executable. (runc itself exits 1 for both and prints the error.)
    for (args, want) in [
        (vec!["no-such-command"], 127),
        (vec!["/bin/not-executable"], 126),
    ] {
        let s = spec_with(&args, |_| {});
        let b = TestBundle::new(&s);
        let cache = tempfile::tempdir().unwrap();
        let (code, out) = run_berth(&b, cache.path());
        assert_eq!(code, want, "{args:?}: {out}");
        assert!(out.contains("exec: "), "{out}");
    }
}

#[test]
fn seccomp_denies_what_docker_denies() {
    require_host!();
    // unshare(CLONE_NEWNS) needs CAP_SYS_ADMIN, which Docker's profile gates.
    let s = spec_with(
        &["sh", "-c", "exec 2>&1; unshare -m true; echo rc=$?"],
        |_| {},
    );
    let (runc, berth) = both(&s);
    assert_eq!(berth, runc);
    assert!(berth.1.contains("rc=1"), "{}", berth.1);
}

#[test]
fn seccomp_program_is_cached_by_content_hash() {
    require_host!();
    let s = spec_with(&["true"], |_| {});
    let b = TestBundle::new(&s);
    let cache = tempfile::tempdir().unwrap();
    assert_eq!(run_berth(&b, cache.path()).0, 0);
    let files: Vec<_> = std::fs::read_dir(cache.path()).unwrap().collect();
    assert_eq!(files.len(), 1);
    let key = runtime::seccomp::cache_key(s.linux().as_ref().unwrap().seccomp().as_ref().unwrap())
        .unwrap();
    assert!(cache.path().join(format!("{key}.bpf")).exists());
    assert_eq!(run_berth(&b, cache.path()).0, 0);
}

#[test]
fn sigterm_to_the_runner_reaches_the_container() {
    require_host!();
    let berth = berth_binary();
    let s = spec_with(
        &["sh", "-c", "trap 'exit 42' TERM; sleep 30 & wait"],
        |_| {},
    );
    let b = TestBundle::new(&s);
    let cache = tempfile::tempdir().unwrap();
    let mut child = Command::new(&berth)
        .args(["runtime", "run", "--seccomp-cache"])
        .arg(cache.path())
        .arg("--bundle")
        .arg(b.path())
        .arg(unique("sig"))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    // SAFETY: plain kill of our child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
}

#[test]
fn a_container_killed_by_a_signal_exits_128_plus_the_signal() {
    require_host!();
    let s = spec_with(&["sleep", "30"], |_| {});
    let b = TestBundle::new(&s);
    let cache = tempfile::tempdir().unwrap();
    let bundle = Bundle::load(&b.path()).unwrap();
    let opts = CreateOptions {
        seccomp_cache: Some(cache.path().to_path_buf()),
        no_cgroups: false,
        start_fifo: None,
    };
    let mut c = Container::create(&unique("kill"), &bundle, Stdio::default(), &opts).unwrap();
    c.start().unwrap();
    let stats = c.cgroup().unwrap().stats().unwrap();
    assert_eq!(stats.pids_current, 1);
    c.kill(libc::SIGKILL).unwrap();
    assert_eq!(c.wait().unwrap().code(), 137);
    c.delete().unwrap();
}

#[test]
fn user_namespace_container_matches_runc() {
    require_host!();
    let probe = "exec 2>&1; id; cat /proc/self/uid_map; ls -ln /dev/null; \
                 grep -E '^Cap(Eff|Bnd)' /proc/self/status; \
                 grep -E ' /(proc|sys|dev|dev/pts|dev/shm|dev/mqueue|sys/fs/cgroup) ' \
                 /proc/self/mountinfo | cut -d' ' -f5,6,9-";
    let s = spec_with(&["sh", "-c", probe], |s| {
        let mut linux = s.linux().clone().unwrap();
        let mut ns = linux.namespaces().clone().unwrap();
        ns.push(
            oci_spec::runtime::LinuxNamespaceBuilder::default()
                .typ(oci_spec::runtime::LinuxNamespaceType::User)
                .build()
                .unwrap(),
        );
        linux.set_namespaces(Some(ns));
        let map = oci_spec::runtime::LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(100_000u32)
            .size(65_536u32)
            .build()
            .unwrap();
        linux.set_uid_mappings(Some(vec![map]));
        linux.set_gid_mappings(Some(vec![map]));
        s.set_linux(Some(linux));
    });
    let b = TestBundle::new(&s);
    // The namespace's root must own the rootfs to create mount points in it.
    let st = Command::new("chown")
        .args(["-R", "-h", "100000:100000"])
        .arg(b.path().join("rootfs"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::set_permissions(
        b.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let runc = run_runc(&b);
    let berth = run_berth(&b, cache.path());
    assert_eq!(runc.0, 0, "runc: {}", runc.1);
    assert_eq!(berth, runc);
    assert!(berth.1.contains("0     100000      65536"), "{}", berth.1);
}

#[test]
fn sysctls_oom_score_readonly_root_and_cgroup_limits_match_runc() {
    require_host!();
    let v1 = !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let limits = if v1 {
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
         /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us"
    } else {
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max /sys/fs/cgroup/cpu.max"
    };
    let probe = format!(
        "exec 2>&1; cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj; \
         touch /newfile || echo ro-root; {limits}"
    );
    let s = spec_with(&["sh", "-c", &probe], |s| {
        let mut linux = s.linux().clone().unwrap();
        linux.set_sysctl(Some(
            [("net.ipv4.ip_forward".to_string(), "1".to_string())].into(),
        ));
        let res: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 67108864},
            "pids": {"limit": 33},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000}
        }))
        .unwrap();
        linux.set_resources(Some(res));
        s.set_linux(Some(linux));
        let mut p = s.process().clone().unwrap();
        p.set_oom_score_adj(Some(300));
        s.set_process(Some(p));
        let mut root = s.root().clone().unwrap();
        root.set_readonly(Some(true));
        s.set_root(Some(root));
    });
    let (runc, berth) = both(&s);
    assert_eq!(runc.0, 0, "runc: {}", runc.1);
    assert_eq!(berth, runc);
    assert!(berth.1.starts_with("1\n300\n"), "{}", berth.1);
    assert!(
        berth.1.contains("ro-root") && berth.1.contains("67108864"),
        "{}",
        berth.1
    );
}

#[test]
fn bind_mounts_of_dirs_and_files_with_ro_and_propagation_match_runc() {
    require_host!();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("data.txt"), "hello\n").unwrap();
    let probe = "exec 2>&1; cat /mnt/ro/data.txt /etc/one.txt; touch /mnt/ro/x || echo ro-ok; \
                 touch /mnt/rw/y && echo rw-ok; \
                 grep -E ' /(mnt/ro|mnt/rw|etc/one.txt) ' /proc/self/mountinfo | cut -d' ' -f5,6,7,9-";
    let src = host.path().to_string_lossy().into_owned();
    let file = format!("{src}/data.txt");
    let s = spec_with(&["sh", "-c", probe], |s| {
        let mut mounts = s.mounts().clone().unwrap();
        let extra: Vec<oci_spec::runtime::Mount> = serde_json::from_value(serde_json::json!([
            {"destination": "/mnt/ro", "type": "bind", "source": src,
             "options": ["rbind", "ro", "nosuid", "nodev", "rprivate"]},
            {"destination": "/mnt/rw", "type": "bind", "source": src,
             "options": ["bind", "rslave"]},
            {"destination": "/etc/one.txt", "type": "bind", "source": file,
             "options": ["rbind", "ro"]}
        ]))
        .unwrap();
        mounts.extend(extra);
        s.set_mounts(Some(mounts));
    });
    let (runc, berth) = both(&s);
    assert_eq!(runc.0, 0, "runc: {}", runc.1);
    assert_eq!(berth, runc);
    assert!(
        berth.1.contains("ro-ok") && berth.1.contains("rw-ok"),
        "{}",
        berth.1
    );
}

#[test]
fn terminal_gives_the_process_a_pty_of_the_requested_size() {
    require_host!();
    let s = spec_with(&["sh", "-c", "tty; stty size; exit 4"], |s| {
        with_terminal(s, 30, 100)
    });
    let b = TestBundle::new(&s);
    let cache = tempfile::tempdir().unwrap();
    let bundle = Bundle::load(&b.path()).unwrap();
    let opts = CreateOptions {
        seccomp_cache: Some(cache.path().to_path_buf()),
        no_cgroups: false,
        start_fifo: None,
    };
    let mut c = Container::create(&unique("tty"), &bundle, Stdio::default(), &opts).unwrap();
    let master = c.take_console().expect("a pty master");
    c.start().unwrap();
    let mut out = Vec::new();
    // Reading the master ends with EIO once the container's side is closed.
    let _ = std::fs::File::from(master).read_to_end(&mut out);
    assert_eq!(c.wait().unwrap().code(), 4);
    c.delete().unwrap();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(out, "/dev/pts/0\r\n30 100\r\n");
}

#[test]
fn cgroup_freeze_thaw_stats_and_removal_on_this_host() {
    require_host!();
    let s = spec_with(&["sh", "-c", "while :; do :; done"], |s| {
        let mut linux = s.linux().clone().unwrap();
        let res: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": {"limit": 67108864},
            "pids": {"limit": 10}
        }))
        .unwrap();
        linux.set_resources(Some(res));
        s.set_linux(Some(linux));
    });
    let b = TestBundle::new(&s);
    let cache = tempfile::tempdir().unwrap();
    let bundle = Bundle::load(&b.path()).unwrap();
    let opts = CreateOptions {
        seccomp_cache: Some(cache.path().to_path_buf()),
        no_cgroups: false,
        start_fifo: None,
    };
    let mut c = Container::create(&unique("freeze"), &bundle, Stdio::default(), &opts).unwrap();
    c.start().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let cg = c.cgroup().unwrap();
    cg.freeze().unwrap();
    let s1 = cg.stats().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let s2 = cg.stats().unwrap();
    // Frozen: no CPU time accrues.
    assert_eq!(s1.cpu_total_ns, s2.cpu_total_ns);
    cg.thaw().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let s3 = cg.stats().unwrap();
    assert!(s3.cpu_total_ns > s2.cpu_total_ns);
    assert_eq!(s3.memory_limit, 67108864);
    assert_eq!(s3.pids_current, 1);
    assert!(s3.memory_usage > 0);
    c.kill(libc::SIGKILL).unwrap();
    assert_eq!(c.wait().unwrap().code(), 137);
    let dirs: Vec<PathBuf> = match c.cgroup().unwrap() {
        runtime::cgroups::Cgroup::V1(v1) => v1.hierarchies.iter().map(|h| h.dir.clone()).collect(),
        runtime::cgroups::Cgroup::V2(v2) => vec![v2.dir.clone()],
    };
    assert!(dirs.iter().all(|d| d.exists()));
    c.delete().unwrap();
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
}

#[test]
fn create_start_state_kill_delete_across_processes() {
    require_host!();
    let berth = berth_binary();
    let s = spec_with(&["sleep", "30"], |_| {});
    let b = TestBundle::new(&s);
    let root = tempfile::tempdir().unwrap();
    let id = unique("life");
    let cmd = |args: &[&str]| {
        let out = Command::new(&berth)
            .args(["runtime", "--root"])
            .arg(root.path())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), text)
    };
    let status = |id: &str| -> String {
        let (_, out) = cmd(&["state", id]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        v["status"].as_str().unwrap_or("").to_string()
    };
    // The container's stdio must not be this test's pipes (output() would wait for them).
    let out = Command::new(&berth)
        .args(["runtime", "--root"])
        .arg(root.path())
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(out.success());
    assert_eq!(status(&id), "created");
    assert_eq!(
        cmd(&["create", "--bundle", &b.path().to_string_lossy(), &id]).0,
        1
    );
    assert_eq!(cmd(&["start", &id]).0, 0);
    assert_eq!(status(&id), "running");
    let (code, out) = cmd(&["delete", &id]);
    assert_eq!(code, 1);
    assert!(out.contains("is not stopped: running"), "{out}");
    assert_eq!(cmd(&["kill", &id, "KILL"]).0, 0);
    for _ in 0..100 {
        if status(&id) == "stopped" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(status(&id), "stopped");
    assert_eq!(cmd(&["delete", &id]).0, 0);
    assert!(!root.path().join(&id).exists());
    // delete --force on a created container.
    let id2 = unique("life");
    Command::new(&berth)
        .args(["runtime", "--root"])
        .arg(root.path())
        .args(["create", "--bundle"])
        .arg(b.path())
        .arg(&id2)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert_eq!(status(&id2), "created");
    assert_eq!(cmd(&["delete", "--force", &id2]).0, 0);
    assert!(!root.path().join(&id2).exists());
}

/// `major:minor` of a real block device (not loop/ram/zram), if any.
fn block_device() -> Option<(i64, i64)> {
    for e in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if ["loop", "ram", "zram"].iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let dev = std::fs::read_to_string(e.path().join("dev")).ok()?;
        let (a, b) = dev.trim().split_once(':')?;
        return Some((a.parse().ok()?, b.parse().ok()?));
    }
    None
}

#[test]
fn io_throttle_swappiness_and_oom_settings_match_runc() {
    require_host!();
    // A host without a block device runs this test not at all: scripts/test.sh leaves it out and names it.
    let (maj, min) =
        block_device().expect("a block device to throttle (host requirement: block-device)");
    let v1 = !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let probe = if v1 {
        "cat /sys/fs/cgroup/blkio/blkio.throttle.read_bps_device \
         /sys/fs/cgroup/blkio/blkio.throttle.write_iops_device \
         /sys/fs/cgroup/memory/memory.swappiness; grep oom_kill_disable /sys/fs/cgroup/memory/memory.oom_control"
    } else {
        "cat /sys/fs/cgroup/io.max"
    };
    let s = spec_with(&["sh", "-c", probe], |s| {
        let mut linux = s.linux().clone().unwrap();
        let mut memory = serde_json::json!({"limit": 67108864});
        if v1 {
            memory["swappiness"] = 10.into();
            memory["disableOOMKiller"] = true.into();
        }
        let res: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({
            "devices": [{"allow": false, "access": "rwm"}],
            "memory": memory,
            "blockIO": {
                "throttleReadBpsDevice": [{"major": maj, "minor": min, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": maj, "minor": min, "rate": 100}]
            }
        }))
        .unwrap();
        linux.set_resources(Some(res));
        s.set_linux(Some(linux));
    });
    let (runc, berth) = both(&s);
    assert_eq!(runc.0, 0, "runc: {}", runc.1);
    assert_eq!(berth, runc);
    assert!(
        berth.1.contains(&format!("{maj}:{min} 1048576")) || berth.1.contains("rbps=1048576"),
        "{}",
        berth.1
    );
}

#[test]
fn mount_targets_cannot_escape_the_rootfs_through_symlinks() {
    require_host!();
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("victim");
    let s = spec_with(
        &[
            "sh",
            "-c",
            "ls -d /escape/sub && grep ' /escape/sub ' /proc/self/mountinfo | cut -d' ' -f5",
        ],
        |s| {
            let mut mounts = s.mounts().clone().unwrap();
            mounts.push(
            serde_json::from_value(serde_json::json!(
                {"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid"]}
            ))
            .unwrap(),
        );
            s.set_mounts(Some(mounts));
        },
    );
    let b = TestBundle::new(&s);
    // An absolute symlink in the image pointing at a host path, and a relative one climbing out.
    std::os::unix::fs::symlink(&target, b.path().join("rootfs/escape")).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let (code, out) = run_berth(&b, cache.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        !target.exists(),
        "the host path was created through the symlink"
    );
    // The symlink was resolved inside the rootfs instead.
    assert!(b
        .path()
        .join("rootfs")
        .join(target.strip_prefix("/").unwrap())
        .join("sub")
        .is_dir());

    std::fs::remove_file(b.path().join("rootfs/escape")).unwrap();
    std::os::unix::fs::symlink(
        "../../../../../../../../..".to_string() + &target.to_string_lossy(),
        b.path().join("rootfs/escape"),
    )
    .unwrap();
    let (code, out) = run_berth(&b, cache.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        !target.exists(),
        "the host path was created through a ../ symlink"
    );
}

/// A container created and started by a runtime command (`runc` or `berth runtime`), for exec.
fn started(cmd: &mut dyn FnMut(&[&str]) -> Command, bundle: &Path, id: &str) {
    let mut c = cmd(&["create", "--bundle", &bundle.to_string_lossy(), id]);
    let ok = c
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "create {id}");
    assert!(
        cmd(&["start", id]).status().unwrap().success(),
        "start {id}"
    );
}

fn output(mut c: Command) -> (i32, String) {
    let out = c.stdin(std::process::Stdio::null()).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

const NS_PROBE: &str = "for n in ipc mnt net pid uts cgroup; do \
    [ \"$(readlink /proc/1/ns/$n)\" = \"$(readlink /proc/self/ns/$n)\" ] && echo same-$n; done; \
    [ \"$(cat /proc/1/cgroup)\" = \"$(cat /proc/self/cgroup)\" ] && echo same-cgroup";

#[test]
fn exec_joins_the_container_and_sets_its_process_up_like_runc() {
    require_host!();
    let berth = berth_binary();
    let s = spec_with(&["sleep", "60"], |_| {});
    let b = TestBundle::new(&s);
    std::fs::create_dir_all(b.path().join("rootfs/tmp/work")).unwrap();
    // The exec's own process: another user and groups, env, cwd, fewer capabilities, an rlimit; and the
    // container's processes it sees, less this shell and its children (whether the pipeline's later
    // processes exist yet when `ps` reads /proc is a race: it made the count differ from runc's at times).
    let mut p = s.process().clone().unwrap();
    p.set_args(Some(
        [
            "sh",
            "-c",
            "grep -E '^(Cap|Seccomp|NoNewPrivs|Uid|Gid|Groups)' /proc/self/status; pwd; \
             env | sort; ulimit -n; hostname; \
             ps -o pid,ppid | awk -v me=$$ 'NR > 1 && $1 != me && $2 != me' | wc -l",
        ]
        .map(String::from)
        .to_vec(),
    ));
    p.set_env(Some(vec!["PATH=/bin".into(), "PROBE=exec".into()]));
    p.set_cwd("/tmp/work".into());
    p.set_user(
        UserBuilder::default()
            .uid(1000u32)
            .gid(1000u32)
            .additional_gids(vec![44u32])
            .build()
            .unwrap(),
    );
    p.set_no_new_privileges(Some(true));
    p.set_rlimits(Some(vec![PosixRlimitBuilder::default()
        .typ(PosixRlimitType::RlimitNofile)
        .soft(321u64)
        .hard(321u64)
        .build()
        .unwrap()]));
    let mut caps = p.capabilities().clone().unwrap();
    let few: oci_spec::runtime::Capabilities =
        [oci_spec::runtime::Capability::Chown].into_iter().collect();
    caps.set_bounding(Some(few.clone()));
    caps.set_effective(Some(few.clone()));
    caps.set_permitted(Some(few));
    p.set_capabilities(Some(caps));
    let process = b.path().join("process.json");
    std::fs::write(&process, serde_json::to_vec(&p).unwrap()).unwrap();
    let missing_cwd = b.path().join("missing-cwd.json");
    p.set_cwd("/no/such/dir".into());
    std::fs::write(&missing_cwd, serde_json::to_vec(&p).unwrap()).unwrap();

    let root = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut runc = |args: &[&str]| {
        let mut c = Command::new("runc");
        c.args(args);
        c
    };
    let berth_root = root.path().to_path_buf();
    let cache_dir = cache.path().to_path_buf();
    let berth_bin = berth.clone();
    let mut ours = move |args: &[&str]| {
        let mut c = Command::new(&berth_bin);
        c.args(["runtime", "--root"]).arg(&berth_root).args(args);
        if args[0] == "exec" {
            c.arg("--seccomp-cache").arg(&cache_dir);
        }
        c
    };
    let (rid, bid) = (unique("rexec"), unique("bexec"));
    started(&mut runc, &b.path(), &rid);
    started(&mut ours, &b.path(), &bid);
    let exec = |mut c: Command, file: &Path, id: &str| {
        c.arg("--process").arg(file).arg(id);
        output(c)
    };
    let r = exec(runc(&["exec"]), &process, &rid);
    let o = exec(ours(&["exec"]), &process, &bid);
    let rm = |mut c: Command| {
        let _ = c.output();
    };
    let results = (
        r,
        o,
        exec(runc(&["exec"]), &missing_cwd, &rid).0,
        exec(ours(&["exec"]), &missing_cwd, &bid).0,
        output({
            let mut c = runc(&["exec", &rid, "no-such-program"]);
            c.arg("x");
            c
        })
        .0,
        output(ours(&["exec", &bid, "no-such-program"])).0,
        output(ours(&["exec", &bid, "sh", "-c", "exit 9"])).0,
        // As root (the container's own process): the same namespaces and cgroup as the init.
        output(ours(&["exec", &bid, "sh", "-c", NS_PROBE])).1,
    );
    rm(runc(&["delete", "--force", &rid]));
    rm(ours(&["delete", "--force", &bid]));
    let (r, o, r_cwd, o_cwd, r_missing, o_missing, o_code, ns) = results;
    assert_eq!(r.0, 0, "runc exec: {}", r.1);
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.starts_with("HOSTNAME=") && !l.starts_with("PWD=/"))
            .map(|l| l.to_string() + "\n")
            .collect::<String>()
    };
    assert_eq!(strip(&o.1), strip(&r.1), "exec probe differs from runc");
    assert_eq!(o.0, 0);
    for n in ["ipc", "mnt", "net", "pid", "uts", "cgroup"] {
        assert!(ns.contains(&format!("same-{n}")), "{n}: {ns}");
    }
    assert!(ns.contains("same-cgroup"), "{ns}");
    assert!(o.1.contains("Uid:\t1000\t1000\t1000\t1000"), "{}", o.1);
    assert!(o.1.contains("\n321\n"), "{}", o.1);
    // A missing cwd is an error for exec (runc exits 255 there, Berth 1); a missing program is 127.
    assert_ne!(r_cwd, 0);
    assert_ne!(o_cwd, 0);
    assert_ne!(r_missing, 0);
    assert_eq!(o_missing, 127);
    assert_eq!(o_code, 9);
}

/// `create --console-socket`: the pty master arrives on the socket, the process sees the terminal
/// with the spec's size once started — under runc and the built-in runtime alike.
#[test]
fn create_with_a_console_socket_hands_over_the_pty_master_like_runc() {
    require_host!();
    let berth = berth_binary();
    let s = spec_with(&["sh", "-c", "tty; stty size; echo done"], |s| {
        with_terminal(s, 33, 77)
    });
    let b = TestBundle::new(&s);
    let root = tempfile::tempdir().unwrap();
    let run = |prog: &Path, prefix: &[&str], id: &str| -> String {
        let sock_path = root.path().join(format!("{id}.sock"));
        let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
        let mut create = Command::new(prog);
        create
            .args(prefix)
            .args(["create", "--bundle"])
            .arg(b.path())
            .arg("--console-socket")
            .arg(&sock_path)
            .arg(id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let child = create.spawn().unwrap();
        let (conn, _) = listener.accept().unwrap();
        let master = runtime::tty::recv_master(&OwnedFd::from(conn)).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut start = Command::new(prog);
        assert!(start
            .args(prefix)
            .args(["start", id])
            .status()
            .unwrap()
            .success());
        let mut text = Vec::new();
        let mut f = std::fs::File::from(master);
        let mut buf = [0u8; 4096];
        // Read until EIO (the slave side closed when the process exited).
        while let Ok(n) = f.read(&mut buf) {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&text).contains("done") {
                break;
            }
        }
        let mut del = Command::new(prog);
        let _ = del.args(prefix).args(["delete", "--force", id]).output();
        String::from_utf8_lossy(&text).into_owned()
    };
    let runc_root = root.path().join("runc").display().to_string();
    let berth_root = root.path().join("berth").display().to_string();
    let theirs = run(Path::new("runc"), &["--root", &runc_root], &unique("rcon"));
    let ours = run(&berth, &["runtime", "--root", &berth_root], &unique("bcon"));
    assert!(
        theirs.contains("/dev/pts/0\r\n33 77\r\ndone"),
        "runc: {theirs:?}"
    );
    assert_eq!(ours, theirs);
    // Without a socket a terminal cannot be handed over: refused, as runc refuses it.
    let out = Command::new(&berth)
        .args(["runtime", "--root", &berth_root, "create", "--bundle"])
        .arg(b.path())
        .arg(unique("nocon"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("console socket"));
}
