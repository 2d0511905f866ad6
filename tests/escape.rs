//! Container escape probes, driven by the real docker CLI against `berth daemon`: a default container must not
//! see host processes, mount, open block devices, reach the berth binary, write masked or read-only kernel
//! interfaces, or make syscalls Docker's seccomp profile denies. Each probe has a control (`--privileged`,
//! `--pid host`, `--cap-add`, `seccomp=unconfined`, …) showing that the probe itself detects the
//! protection's absence, so a test fails if the protection goes away rather than passing vacuously.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::Daemon;
use common::{err, ok, out};

fn all(o: &Output) -> String {
    format!("{}{}", out(o), err(o))
}

fn daemon() -> Daemon {
    common::docker_daemon()
}

/// Whether scripts/test.sh runs this suite with every daemon remapped (`--userns-remap`).
fn remapped() -> bool {
    std::env::var_os("BERTH_TEST_USERNS_REMAP").is_some_and(|v| !v.is_empty())
}

/// `docker run --rm [OPTS…] busybox sh -c SCRIPT`. Under remapping, the controls that need the host's user
/// namespace (`--privileged`, `--pid host`) ask for it with `--userns host`, as dockerd requires.
fn sh(d: &Daemon, opts: &[&str], script: &str) -> Output {
    let mut args = vec!["run", "--rm"];
    let needs_host_userns =
        opts.contains(&"--privileged") || opts.windows(2).any(|w| w == ["--pid", "host"]);
    if remapped() && needs_host_userns {
        args.extend_from_slice(&["--userns", "host"]);
    }
    args.extend_from_slice(opts);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    d.docker(&args)
}

/// A host process killed on drop.
struct HostProcess(Child);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What identifies a file's content changing: inode, size, mtime and ctime.
fn file_identity(p: &Path) -> (u64, u64, i64, i64, i64, i64) {
    let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    )
}

// 1. Host processes -------------------------------------------------------------------------------------------

#[test]
fn host_processes_are_invisible() {
    let d = daemon();
    let sleeper = HostProcess(
        Command::new("sleep")
            .arg("300")
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sleep"),
    );
    let host_pid = sleeper.0.id();
    assert!(host_pid > 10, "host pid {host_pid} too small to tell apart");
    let script = format!(
        "echo self=$$; ls -d /proc/[0-9]*; ps -o pid,comm; \
         if [ -e /proc/{host_pid} ]; then echo HOSTPID-VISIBLE; fi"
    );

    let o = ok(&sh(&d, &[], &script));
    assert!(o.contains("self=1\n"), "the command is pid 1: {o}");
    assert!(!o.contains("HOSTPID-VISIBLE"), "host pid visible: {o}");
    assert!(!o.contains("sleep"), "host sleep visible by name: {o}");
    let pids: Vec<u32> = o
        .lines()
        .filter_map(|l| l.strip_prefix("/proc/"))
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(pids.contains(&1), "{o}");
    assert!(
        pids.len() <= 3 && pids.iter().all(|&p| p < 10),
        "only sh and its children are visible: {pids:?}\n{o}"
    );
    let ps: Vec<&str> = o
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("PID"))
        .skip(1)
        .filter(|l| !l.starts_with("self=") && !l.starts_with("/proc/"))
        .collect();
    assert!(
        ps.iter()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "sh"]),
        "pid 1 is the container's command: {o}"
    );
    assert!(
        ps.iter()
            .all(|l| matches!(l.split_whitespace().nth(1), Some("sh" | "ps"))),
        "only the container's own processes: {o}"
    );

    // Control: sharing the host's pid namespace, the same probe does see the host's sleep.
    let o = ok(&sh(&d, &["--pid", "host"], &script));
    assert!(o.contains("HOSTPID-VISIBLE"), "control: {o}");
    assert!(o.contains("sleep"), "control: {o}");
    drop(sleeper);
}

// 2. mount ----------------------------------------------------------------------------------------------------

#[test]
fn mount_needs_cap_sys_admin() {
    let d = daemon();
    let script = "mkdir -p /mnt; mount -t tmpfs none /mnt; echo rc=$?; grep ' /mnt ' /proc/mounts";
    let o = sh(&d, &[], script);
    assert!(out(&o).contains("rc=1"), "{}", all(&o));
    assert!(
        err(&o).contains("permission denied") || err(&o).contains("Operation not permitted"),
        "{}",
        all(&o)
    );
    assert!(!out(&o).contains("tmpfs"), "{}", all(&o));

    // Control: with --privileged the same mount works.
    let o = ok(&sh(&d, &["--privileged"], script));
    assert!(o.contains("rc=0") && o.contains("none /mnt tmpfs"), "{o}");
}

// 3. Block devices --------------------------------------------------------------------------------------------

/// `major:minor` of the host's root filesystem, from `/proc/self/mountinfo`.
fn host_root_device() -> Option<(u32, u32)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let line = info
        .lines()
        .find(|l| l.split_whitespace().nth(4) == Some("/"))?;
    let (maj, min) = line.split_whitespace().nth(2)?.split_once(':')?;
    Some((maj.parse().ok()?, min.parse().ok()?))
}

/// Whether the test process itself can open block device `maj:min` for reading (through a node in `dir`).
fn host_can_open(dir: &Path, maj: u32, min: u32) -> bool {
    let node = dir.join(format!("blk-{maj}-{min}"));
    let made = Command::new("mknod")
        .arg(&node)
        .arg("b")
        .arg(maj.to_string())
        .arg(min.to_string())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let opened = made && std::fs::File::open(&node).is_ok();
    let _ = std::fs::remove_file(&node);
    opened
}

#[test]
fn block_devices_cannot_be_opened_through_mknod() {
    let d = daemon();
    // The host root disk, and loop0 (7:0); the control needs one the host itself may open.
    let mut devices = Vec::new();
    if let Some(root) = host_root_device().filter(|(maj, _)| *maj != 0) {
        devices.push(root);
    }
    devices.push((7, 0));
    let mut controlled = 0;
    for (maj, min) in devices {
        let script = format!(
            "mknod /tmp/blk b {maj} {min}; echo mknod=$?; head -c 1 /tmp/blk >/dev/null; echo read=$?"
        );
        let o = sh(&d, &[], &script);
        let text = all(&o);
        if remapped() {
            // In a user namespace the kernel refuses to make a device node at all (as under dockerd).
            assert!(text.contains("mknod=1"), "{maj}:{min}: {text}");
        } else {
            // CAP_MKNOD is in Docker's default set: the node may be made, but not opened.
            assert!(text.contains("mknod=0"), "{maj}:{min}: {text}");
        }
        assert!(text.contains("read=1"), "{maj}:{min}: {text}");
        assert!(
            err(&o).contains("Operation not permitted"),
            "{maj}:{min}: the device cgroup refuses the open: {text}"
        );
        // Control: --privileged allows every device, so the same open works, if the host allows it at all.
        if host_can_open(d.dir.path(), maj, min) {
            let o = sh(&d, &["--privileged"], &script);
            let text = all(&o);
            assert!(text.contains("read=0"), "control {maj}:{min}: {text}");
            assert!(!text.contains("Operation not permitted"), "{text}");
            controlled += 1;
        } else {
            eprintln!("note: the host itself cannot open {maj}:{min}; no control for it");
        }
    }
    assert!(
        controlled > 0,
        "no block device the host can open for a control"
    );
}

// 4. The berth binary (CVE-2019-5736 class) -------------------------------------------------------------------

/// The executable of a running process, as the kernel sees it (survives the path being replaced).
fn proc_exe(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/exe"))
}

/// Host pids whose pid namespace is `ns` (a `/proc/PID/ns/pid` link text).
fn pids_in_pid_namespace(ns: &str) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .map(|l| l.to_string_lossy() == ns)
                .unwrap_or(false)
        })
        .collect()
}

/// The busybox rootfs plus an `/evil` script whose interpreter is `/proc/self/exe`: run as the entrypoint,
/// it would re-execute the runtime's own binary inside the container if that binary were reachable there.
fn evil_image(d: &Daemon) {
    let base = d.dir.path().join("rootfs.tar");
    let evil = d.dir.path().join("evil.tar");
    let mut input = tar::Archive::new(std::fs::File::open(&base).unwrap());
    let mut b = tar::Builder::new(std::fs::File::create(&evil).unwrap());
    for entry in input.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header().clone();
        b.append(&header, &mut entry).unwrap();
    }
    let script = b"#!/proc/self/exe\n";
    let mut h = tar::Header::new_gnu();
    h.set_size(script.len() as u64);
    h.set_mode(0o755);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "evil", &script[..]).unwrap();
    b.finish().unwrap();
    drop(b);
    ok(&d.docker_stdin(&["import", "-", "evil:latest"], Some(&evil)));
}

#[test]
fn the_berth_binary_is_out_of_reach() {
    let d = daemon();
    let daemon_pid = d.child.as_ref().unwrap().id();
    // The file the daemon (and the shims, the same binary) runs, by inode even if cargo relinks the path.
    let berth_exe = proc_exe(daemon_pid);
    let before = file_identity(&berth_exe);
    let berth_path = std::fs::read_link(&berth_exe).unwrap();

    // Inside: every process's exe is a container path, and /proc/1/exe cannot be opened for writing.
    let o = sh(
        &d,
        &[],
        "sleep 30 & sleep 0.2; for p in /proc/[0-9]*; do echo \"exe $p $(readlink $p/exe)\"; done; \
         echo x >> /proc/1/exe; echo w1=$?; echo x >> /proc/self/exe; echo wself=$?; kill %1",
    );
    let text = all(&o);
    let exes: Vec<&str> = text.lines().filter(|l| l.starts_with("exe ")).collect();
    assert!(exes.len() >= 2, "{text}");
    for l in &exes {
        assert!(
            l.ends_with(" /bin/busybox"),
            "a process inside the container runs something other than the image's busybox: {l}\n{text}"
        );
        assert!(!l.contains("berth"), "{l}");
    }
    assert!(text.contains("w1=1") && text.contains("wself=1"), "{text}");

    // From the host: nothing in a running container's pid namespace executes the berth binary.
    let id = ok(&d.docker(&["run", "-d", "busybox", "sh", "-c", "sleep 30 & sleep 30"]));
    let id = id.trim();
    let pid: u32 = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", id]))
        .trim()
        .parse()
        .unwrap();
    let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    let ns = ns.to_string_lossy().into_owned();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let members = pids_in_pid_namespace(&ns);
    assert!(members.len() >= 2, "{members:?}");
    for p in &members {
        let exe = std::fs::read_link(proc_exe(*p)).unwrap_or_default();
        assert!(
            !exe.to_string_lossy().contains("berth") && exe != berth_path,
            "pid {p} in the container runs {}",
            exe.display()
        );
        assert_ne!(
            std::fs::metadata(proc_exe(*p)).map(|m| m.ino()).ok(),
            Some(before.0),
            "pid {p} in the container runs the berth binary"
        );
    }
    // Control for the probe: the container's parent (the shim) outside its namespace does run berth.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ppid: u32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(!members.contains(&ppid));
    assert_eq!(
        std::fs::metadata(proc_exe(ppid)).unwrap().ino(),
        before.0,
        "control: the shim is the berth binary, seen from the host"
    );
    ok(&d.docker(&["rm", "-f", id]));

    // A `#!/proc/self/exe` entrypoint must not get the runtime binary executed inside the container.
    evil_image(&d);
    let o = d.docker(&["run", "--rm", "evil:latest", "/evil", "--help"]);
    let text = all(&o);
    assert!(
        !text.contains("Usage: berth") && !text.contains("A Docker-compatible container engine"),
        "the berth binary ran inside the container: {text}"
    );

    assert_eq!(
        file_identity(&berth_exe),
        before,
        "the berth binary changed after the containers ran"
    );
    let o = d.docker(&["version"]);
    assert!(o.status.success(), "daemon still serves: {}", all(&o));
}

// 5. Masked and read-only paths -------------------------------------------------------------------------------

/// Docker's masked files that exist on this host (a kernel may lack some, e.g. `/proc/kcore`).
fn masked_files_on_host() -> Vec<&'static str> {
    [
        "/proc/kcore",
        "/proc/keys",
        "/proc/timer_list",
        "/proc/interrupts",
        "/proc/latency_stats",
        "/proc/sched_debug",
    ]
    .into_iter()
    .filter(|p| Path::new(p).is_file())
    .collect()
}

#[test]
fn masked_paths_read_nothing() {
    let d = daemon();
    let files = masked_files_on_host();
    assert!(
        !files.is_empty(),
        "no masked /proc file exists on this host"
    );
    let script: String = files
        .iter()
        .map(|f| format!("echo \"{f} $(head -c 4096 {f} 2>/dev/null | wc -c)\"; "))
        .collect();
    let o = ok(&sh(&d, &[], &script));
    for f in &files {
        assert!(o.contains(&format!("{f} 0\n")), "{f} is not masked: {o}");
    }
    // Control: --privileged drops the masks, and at least /proc/interrupts or /proc/timer_list has content.
    let o = ok(&sh(&d, &["--privileged"], &script));
    assert!(
        files
            .iter()
            .any(|f| !o.contains(&format!("{f} 0\n")) && o.contains(&format!("{f} "))),
        "control: {o}"
    );
}

#[test]
fn kernel_interfaces_are_read_only() {
    let d = daemon();
    let script = "echo probe > /proc/sys/kernel/hostname; echo hostname=$?; hostname; \
                  touch /sys/escape-probe; echo sys=$?; \
                  grep -E '^[^ ]+ (/sys|/proc/sys|/proc/sysrq-trigger) ' /proc/mounts; \
                  if [ -e /proc/sysrq-trigger ]; then echo > /proc/sysrq-trigger; echo sysrq=$?; fi";
    let o = sh(&d, &["--hostname", "before"], script);
    let text = all(&o);
    assert!(text.contains("hostname=1"), "{text}");
    assert!(
        text.contains("before\n") && !text.contains("probe\n"),
        "{text}"
    );
    assert!(text.contains("sys=1"), "{text}");
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(text.contains("sysfs /sys sysfs ro,"), "{text}");
    assert!(text.contains("proc /proc/sys proc ro,"), "{text}");
    if Path::new("/proc/sysrq-trigger").exists() {
        // An empty write is a no-op even if it got through; the ro mount is what protects it.
        assert!(text.contains("sysrq=1"), "{text}");
        assert!(text.contains(" /proc/sysrq-trigger proc ro,"), "{text}");
    } else {
        eprintln!("note: this kernel has no /proc/sysrq-trigger; its check is skipped");
    }

    // Control: --privileged leaves /proc/sys and /sys writable; the hostname write then takes effect (in the
    // container's own UTS namespace). No sysrq write here: it would reach the host kernel.
    let o = sh(
        &d,
        &["--privileged", "--hostname", "before"],
        "echo probe > /proc/sys/kernel/hostname; echo hostname=$?; hostname; \
         grep -E '^[^ ]+ /sys ' /proc/mounts",
    );
    let text = all(&o);
    assert!(
        text.contains("hostname=0") && text.contains("probe\n"),
        "control: {text}"
    );
    assert!(text.contains("sysfs /sys sysfs rw,"), "control: {text}");
}

// The cgroup hierarchies a container sees under /sys/fs/cgroup are read-only: it cannot make cgroups or change
// its limits. (On a v1 host the tmpfs holding them is writable, exactly as runc 1.1.5 leaves it — the
// differential tests in crates/runtime compare this mount with runc's — but nothing under it reaches the host.)
#[test]
fn cgroup_hierarchies_are_read_only() {
    let d = daemon();
    let o = sh(
        &d,
        &[],
        "for h in /sys/fs/cgroup/memory /sys/fs/cgroup/pids /sys/fs/cgroup; do \
           [ -d $h ] || continue; mkdir $h/escape-probe 2>/dev/null; echo $h=$?; done; \
           grep -E ' /sys/fs/cgroup(/memory|/pids)? ' /proc/mounts",
    );
    let text = all(&o);
    let mounts: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" /sys/fs/cgroup"))
        .collect();
    assert!(!mounts.is_empty(), "{text}");
    for l in mounts
        .iter()
        .filter(|l| l.split_whitespace().nth(2) != Some("tmpfs"))
    {
        assert!(
            l.split_whitespace().nth(3).unwrap().starts_with("ro"),
            "{l}"
        );
    }
    for h in ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"] {
        if text.contains(&format!("{h}=")) {
            assert!(
                !text.contains(&format!("{h}=0")),
                "a cgroup was made under {h}: {text}"
            );
        }
    }
    // Control: a privileged container can make a cgroup there.
    let o = sh(
        &d,
        &["--privileged"],
        "for h in /sys/fs/cgroup/pids /sys/fs/cgroup; do [ -d $h ] && mkdir $h/escape-probe && echo made && rmdir $h/escape-probe && break; done",
    );
    assert!(all(&o).contains("made"), "control: {}", all(&o));
}

// 6. no-new-privileges ----------------------------------------------------------------------------------------

#[test]
fn no_new_privileges_is_set_when_asked() {
    let d = daemon();
    let field = |opts: &[&str]| {
        let o = ok(&sh(&d, opts, "cat /proc/self/status"));
        o.lines()
            .find_map(|l| l.strip_prefix("NoNewPrivs:"))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no NoNewPrivs in {o}"))
    };
    assert_eq!(field(&["--security-opt", "no-new-privileges"]), "1");
    assert_eq!(field(&["--security-opt", "no-new-privileges:true"]), "1");
    // Control: not asked, not set (as with Docker's default).
    assert_eq!(field(&[]), "0");
    assert_eq!(field(&["--security-opt", "no-new-privileges:false"]), "0");
}

// 7. seccomp --------------------------------------------------------------------------------------------------

#[test]
fn seccomp_denies_what_dockers_profile_denies() {
    let d = daemon();
    let probe = "grep '^Seccomp:' /proc/self/status; unshare -U true; echo userns=$?; \
                 unshare -m true; echo mntns=$?";

    // Default: the filter is on; unshare(CLONE_NEWUSER) needs no capability but is denied by the profile
    // (EPERM), and unshare(CLONE_NEWNS) is denied too.
    let o = sh(&d, &[], probe);
    let text = all(&o);
    assert!(text.contains("Seccomp:\t2"), "{text}");
    assert!(text.contains("userns=1"), "{text}");
    assert!(
        text.contains("unshare(0x10000000): Operation not permitted"),
        "{text}"
    );
    assert!(text.contains("mntns=1"), "{text}");

    // Control: without the filter the user namespace is created (so it was seccomp that refused it), while the
    // mount namespace still needs CAP_SYS_ADMIN.
    let o = sh(&d, &["--security-opt", "seccomp=unconfined"], probe);
    let text = all(&o);
    assert!(text.contains("Seccomp:\t0"), "{text}");
    assert!(text.contains("userns=0"), "control: {text}");
    assert!(text.contains("mntns=1"), "{text}");

    // Docker's profile allows the namespace syscalls to holders of CAP_SYS_ADMIN.
    let o = sh(&d, &["--cap-add", "SYS_ADMIN"], probe);
    let text = all(&o);
    assert!(text.contains("Seccomp:\t2"), "{text}");
    assert!(
        text.contains("userns=0") && text.contains("mntns=0"),
        "{text}"
    );
}

/// `--security-opt seccomp=FILE`: both CLIs send the file's JSON, the daemon evaluates it like the default
/// profile, and a profile that does not parse is refused at create.
#[test]
fn a_custom_seccomp_profile_replaces_the_default() {
    let d = daemon();
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [
                {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
                {"name": "symlink", "action": "SCMP_ACT_ERRNO"},
                {"name": "symlinkat", "action": "SCMP_ACT_ERRNO"}
            ]
        }"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let probe = "grep '^Seccomp:' /proc/self/status; mkdir /tmp/x; echo mkdir=$?; \
                 ln -s a /tmp/l; echo ln=$?";
    let docker = d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "sh",
        "-c",
        probe,
    ]);
    let mut berth_args = vec!["run", "--rm", "--security-opt", &opt];
    berth_args.extend_from_slice(&["busybox", "sh", "-c", probe]);
    let berth = d.berth(&berth_args);
    for (cli, o) in [("docker", docker), ("berth", berth)] {
        let text = all(&o);
        assert!(text.contains("Seccomp:\t2"), "{cli}: {text}");
        assert!(text.contains("mkdir=1"), "{cli}: mkdir is denied: {text}");
        assert!(text.contains("Operation not permitted"), "{cli}: {text}");
        // The older `name` form is read like `names`: symlink gets ERRNO's default, EPERM.
        assert!(text.contains("ln=1"), "{cli}: {text}");
    }
    // Control: the default profile lets mkdir through.
    let text = all(&sh(
        &d,
        &[],
        "mkdir /tmp/x; echo mkdir=$?; ln -s a /tmp/l; echo ln=$?",
    ));
    assert!(text.contains("mkdir=0") && text.contains("ln=0"), "{text}");

    // Both CLIs send the same compacted JSON, and inspect shows it as dockerd does.
    let a = out(&d.docker(&["create", "--security-opt", &opt, "busybox"]));
    let b = out(&d.berth(&["create", "--security-opt", &opt, "busybox"]));
    let sec = |id: &str| {
        out(&d.docker(&[
            "inspect",
            "-f",
            "{{json .HostConfig.SecurityOpt}}",
            id.trim(),
        ]))
    };
    assert_eq!(sec(&a), sec(&b));
    assert!(
        sec(&a).starts_with(r#"["seccomp={\"defaultAction\":\"SCMP_ACT_ALLOW\",\"architectures\""#),
        "{}",
        sec(&a)
    );

    // A profile that does not parse fails the create with a 400.
    let r = d.request(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox","HostConfig":{"SecurityOpt":["seccomp={\"defaultAction\":1}"]}}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("decoding seccomp profile failed"),
        "{}",
        r.text()
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=/nonexistent.json",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        err(&o).contains("opening seccomp profile (/nonexistent.json) failed"),
        "{}",
        err(&o)
    );
}

#[test]
fn devices_open_only_what_the_device_cgroup_allows() {
    let d = daemon();
    // /dev/loop-control (10:237) is not in Docker's default allow list: a node made with mknod cannot be
    // opened, unless --device-cgroup-rule allows it (the control) or --device brings it in.
    let probe = "mknod /dev/lc c 10 237 && : < /dev/lc && echo opened";
    let denied = sh(&d, &[], probe);
    assert!(
        all(&denied).contains("Operation not permitted"),
        "{}",
        all(&denied)
    );
    assert!(!out(&denied).contains("opened"));
    assert_eq!(
        ok(&sh(&d, &["--device-cgroup-rule", "c 10:237 rwm"], probe)),
        "opened\n"
    );
    if Path::new("/dev/loop-control").exists() {
        let o = ok(&sh(
            &d,
            &["--device", "/dev/loop-control:/dev/lctl"],
            "stat -c '%t:%T' /dev/lctl; : < /dev/lctl && echo opened",
        ));
        assert_eq!(o, "a:ed\nopened\n");
    }
    // --privileged gives the host's device nodes, as Docker does; a default container has none of them.
    if Path::new("/dev/loop-control").exists() {
        assert_eq!(
            ok(&sh(
                &d,
                &["--privileged"],
                "test -c /dev/loop-control && echo present"
            )),
            "present\n"
        );
        assert_eq!(
            ok(&sh(&d, &[], "test -e /dev/loop-control || echo absent")),
            "absent\n"
        );
    }
    // Only device nodes: a file or a missing path is refused with dockerd's words.
    let o = sh(&d, &["--device", "/etc/passwd"], "true");
    assert!(err(&o).contains(
        "error gathering device information while adding custom device \"/etc/passwd\": not a device node"
    ), "{}", err(&o));
    let o = sh(&d, &["--device", "/dev/no-such-device"], "true");
    assert!(err(&o).contains("no such file or directory"), "{}", err(&o));
}

/// Runs `argv` as the unprivileged host user `nobody` (no supplementary groups), through a shell that runs as
/// that user (setpriv's own exec of its argument still resolves the path with root's search permission).
fn as_nobody(argv: &[&str]) -> Output {
    common::require("setpriv", "util-linux");
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .args(["sh", "-c", "\"$@\"", "sh"])
        .args(argv)
        .output()
        .unwrap()
}

#[test]
fn host_users_reach_no_container_file_or_record() {
    use std::os::unix::fs::PermissionsExt;
    let mut d = common::docker_daemon();
    // The test's own root is private (a tempdir is 0700): open it, so that only the daemon's modes stand
    // between the host user and the data root.
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "-e",
        "SECRET=hunter2",
        "busybox",
        "sleep",
        "1000",
    ]));
    let id = id.trim();
    // A setuid-root binary made inside the container: the host's coreutils `id` (busybox drops its
    // privileges), copied in and made setuid there.
    ok(&d.docker(&["cp", "/usr/bin/id", &format!("{id}:/suid-id")]));
    ok(&d.docker(&["exec", id, "chmod", "4755", "/suid-id"]));
    // Below `<uid>.<gid>` under remapping, as dockerd keeps it.
    let state_root = std::path::PathBuf::from(
        d.get_json("/info")["DockerRootDir"]
            .as_str()
            .expect("DockerRootDir"),
    );
    let dir = state_root.join("containers").join(id);
    let suid = dir.join("rootfs/suid-id");
    assert_eq!(std::fs::metadata(&suid).unwrap().mode() & 0o7777, 0o4755);
    // Control: the host user reaches the test's root, and the setuid binary would make it root.
    let o = as_nobody(&["ls", d.dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", all(&o));
    let copy = d.dir.path().join("suid-id");
    std::fs::copy(&suid, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o4755)).unwrap();
    assert_eq!(ok(&as_nobody(&[copy.to_str().unwrap(), "-u"])), "0\n");

    // The data root is closed to it: neither the setuid binary nor the record (with the environment).
    let o = as_nobody(&[suid.to_str().unwrap(), "-u"]);
    assert!(!o.status.success(), "{}", all(&o));
    assert!(all(&o).contains("Permission denied"), "{}", all(&o));
    let record = dir.join("container.json");
    assert!(std::fs::read_to_string(&record)
        .unwrap()
        .contains("hunter2"));
    let o = as_nobody(&["cat", record.to_str().unwrap()]);
    assert!(all(&o).contains("Permission denied"), "{}", all(&o));
    let mode = |p: &Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&d.data_root()), 0o710);
    assert_eq!(mode(&d.exec_root()), 0o700);
    assert_eq!(mode(&record), 0o600);

    // Modes an older version left are tightened at the next start.
    d.kill();
    std::fs::set_permissions(d.data_root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.exec_root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&record, std::fs::Permissions::from_mode(0o644)).unwrap();
    d.spawn();
    assert_eq!(mode(&d.data_root()), 0o710);
    assert_eq!(mode(&d.exec_root()), 0o700);
    assert_eq!(mode(&record), 0o600);
    let o = as_nobody(&[suid.to_str().unwrap(), "-u"]);
    assert!(all(&o).contains("Permission denied"), "{}", all(&o));
    ok(&d.docker(&["rm", "-f", id]));
}
