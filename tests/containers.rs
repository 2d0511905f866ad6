//! Containers end to end, driven by the real docker CLI against `berth daemon`: run, exit codes, the
//! detached lifecycle, logs, wait, kill, rename, rm, stdin, confinement, and live restore.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::Daemon;
use common::{err, ok, out};

fn daemon() -> Daemon {
    common::docker_daemon()
}

#[test]
fn run_prints_output_and_rm_removes_the_container() {
    let d = daemon();
    let o = d.docker(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_eq!(ok(&o), "hello\n");
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
}

#[test]
fn exit_codes_come_back_as_docker_gives_them() {
    let d = daemon();
    let o = d.docker(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    let o = d.docker(&["run", "--rm", "busybox", "nosuchcommand"]);
    assert_eq!(o.status.code(), Some(127), "{}", err(&o));
    assert!(
        err(&o).contains("executable file not found in $PATH"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", err(&o));
    assert!(err(&o).contains("permission denied"), "{}", err(&o));
    let o = d.docker(&["run", "--rm", "nosuchimage"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert_eq!(
        ok(&d.docker(&["ps", "-aq"])),
        "",
        "failed --rm runs leave nothing"
    );
}

#[test]
fn detached_container_lifecycle() {
    let d = daemon();
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]));
    let id = id.trim();
    assert_eq!(id.len(), 64);
    let ps = ok(&d.docker(&["ps"]));
    let row = ps.lines().nth(1).unwrap();
    assert!(row.starts_with(&id[..12]), "{ps}");
    assert!(row.contains("Up "), "{ps}");
    assert!(row.ends_with("web"), "{ps}");

    let state = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Running}} {{.State.Pid}} {{.Name}}",
        "web",
    ]));
    let parts: Vec<&str> = state.split_whitespace().collect();
    assert_eq!(parts[..2], ["running", "true"]);
    let pid: u32 = parts[2].parse().unwrap();
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the init runs on the host"
    );
    assert_eq!(parts[3], "/web");

    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(ok(&d.docker(&["logs", "web"])), "started\n");
    ok(&d.docker(&["rename", "web", "web2"]));
    let o = d.docker(&["rm", "web2"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("container is running"), "{}", err(&o));

    ok(&d.docker(&["stop", "-t", "1", "web2"]));
    let state = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "web2",
    ]));
    assert_eq!(
        state.trim(),
        "exited 137",
        "sleep as pid 1 ignores SIGTERM, so stop kills it"
    );
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
    let ps = ok(&d.docker(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]));
    assert!(ps.starts_with("web2 Exited (137)"), "{ps}");

    ok(&d.docker(&["start", "web2"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", "web2"])).trim(),
        "running"
    );
    ok(&d.docker(&["rm", "-f", "web2"]));
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
}

#[test]
fn wait_and_kill_report_exit_codes() {
    let d = daemon();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "waiter",
        "busybox",
        "sh",
        "-c",
        "sleep 0.3; exit 42",
    ]));
    assert_eq!(ok(&d.docker(&["wait", "waiter"])).trim(), "42");
    // A pid-1 process gets only the signals it handles (as under Docker): this one traps USR1.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "killer",
        "busybox",
        "sh",
        "-c",
        "trap 'exit 7' USR1; while true; do sleep 0.1; done",
    ]));
    std::thread::sleep(Duration::from_millis(300));
    ok(&d.docker(&["kill", "-s", "USR1", "killer"]));
    assert_eq!(ok(&d.docker(&["wait", "killer"])).trim(), "7");
    let o = d.docker(&["kill", "killer"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("is not running"), "{}", err(&o));
}

#[test]
fn kill_returns_once_the_container_has_exited() {
    let d = daemon();
    let limit = Duration::from_secs(30);
    // Straight through the API, so nothing between the kill and the inspect gives the exit time to
    // be recorded anyway; a few rounds, as the exit races the answer.
    for i in 0..5 {
        let name = format!("killed{i}");
        ok(&d.docker_within(
            &["run", "-d", "--name", &name, "busybox", "sleep", "1000"],
            None,
            limit,
        ));
        let r = d.request("POST", &format!("/containers/{name}/kill"), b"");
        assert_eq!(r.status, 204, "{}", r.text());
        let state = d.get_json(&format!("/containers/{name}/json"))["State"].clone();
        assert_eq!(state["Status"], "exited", "{state}");
        assert_eq!(state["ExitCode"], 137, "{state}");
        // Removable without force at once.
        let r = d.request("DELETE", &format!("/containers/{name}"), b"");
        assert_eq!(r.status, 204, "{}", r.text());
    }
    // Another signal does not wait (as dockerd): the container is told, and goes on if it traps it.
    ok(&d.docker_within(
        &[
            "run",
            "-d",
            "--name",
            "trapper",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got' USR1; while true; do sleep 0.1; done",
        ],
        None,
        limit,
    ));
    ok(&d.docker_within(&["kill", "-s", "USR1", "trapper"], None, limit));
    ok(&d.docker_within(&["kill", "trapper"], None, limit));
    assert_eq!(
        ok(&d.docker_within(
            &[
                "inspect",
                "-f",
                "{{.State.Status}} {{.State.ExitCode}}",
                "trapper"
            ],
            None,
            limit
        ))
        .trim(),
        "exited 137"
    );
}

#[test]
fn stdin_reaches_the_container() {
    let d = daemon();
    let input = d.dir.path().join("input.txt");
    std::fs::write(&input, "line one\nline two\n").unwrap();
    let o = d.docker_stdin(&["run", "-i", "--rm", "busybox", "cat"], Some(&input));
    assert_eq!(ok(&o), "line one\nline two\n");
}

#[test]
fn containers_get_dockers_confinement() {
    let d = daemon();
    let status = ok(&d.docker(&["run", "--rm", "busybox", "cat", "/proc/self/status"]));
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    // Docker's 14 default capabilities.
    assert_eq!(field("CapEff:"), "00000000a80425fb");
    assert_eq!(field("CapBnd:"), "00000000a80425fb");
    assert_eq!(field("Seccomp:"), "2", "the default seccomp profile is on");
    let privileged = ok(&d.docker(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "cat",
        "/proc/self/status",
    ]));
    assert!(privileged.contains("Seccomp:\t0"), "{privileged}");
    // Masked paths and the hostname.
    let o = d.docker(&["run", "--rm", "busybox", "cat", "/proc/kcore"]);
    assert!(out(&o).is_empty());
    let host = ok(&d.docker(&[
        "run", "--rm", "--name", "named", "-h", "myhost", "busybox", "hostname",
    ]));
    assert_eq!(host.trim(), "myhost");
    let mounts = ok(&d.docker(&[
        "run",
        "--rm",
        "--read-only",
        "busybox",
        "sh",
        "-c",
        "touch /x 2>&1; echo $?",
    ]));
    assert!(mounts.contains("Read-only file system"), "{mounts}");
}

#[test]
fn env_user_and_workdir_are_applied() {
    let d = daemon();
    let o = ok(&d.docker(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hi",
        "-w",
        "/tmp/work",
        "-u",
        "1234:5678",
        "busybox",
        "sh",
        "-c",
        "echo $GREETING $(pwd) $(id -u) $(id -g)",
    ]));
    assert_eq!(o.trim(), "hi /tmp/work 1234 5678");
}

#[test]
fn a_killed_daemon_leaves_containers_running_and_finds_them_again() {
    let mut d = daemon();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "survivor",
        "busybox",
        "sh",
        "-c",
        "echo before; sleep 0.7; echo during; exec sleep 1000",
    ]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "quitter",
        "busybox",
        "sh",
        "-c",
        "sleep 1; exit 5",
    ]));
    let pid = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", "survivor"]))
        .trim()
        .to_owned();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !ok(&d.docker(&["logs", "survivor"])).starts_with("before\n") {
        assert!(
            std::time::Instant::now() < deadline,
            "no output before the kill"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    d.kill();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "the container outlives the daemon"
    );
    d.spawn();
    let state = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.Pid}}",
        "survivor",
    ]));
    assert_eq!(state.trim(), format!("running {pid}"));
    let quitter = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "quitter",
    ]));
    assert_eq!(
        quitter.trim(),
        "exited 5",
        "an exit while the daemon was down is recorded"
    );
    // The shim kept logging while the daemon was gone.
    assert_eq!(ok(&d.docker(&["logs", "survivor"])), "before\nduring\n");
    ok(&d.docker(&["kill", "survivor"]));
    assert_eq!(ok(&d.docker(&["wait", "survivor"])).trim(), "137");
}

#[test]
fn inspect_has_dockers_shape() {
    let d = daemon();
    ok(&d.docker(&["create", "--name", "shape", "busybox", "true"]));
    let got: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["inspect", "shape"]))).unwrap();
    let want: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            common::fixtures_dir().join("docker-cli-output/api/container-inspect-httpd.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    for k in keys(&want) {
        assert!(got[0].get(&k).is_some(), "inspect lacks {k}");
    }
    for k in keys(&want["State"]) {
        assert!(got[0]["State"].get(&k).is_some(), "State lacks {k}");
    }
    assert_eq!(got[0]["State"]["Status"], "created");
    assert_eq!(got[0]["State"]["FinishedAt"], "0001-01-01T00:00:00Z");
    assert_eq!(got[0]["Config"]["Cmd"], serde_json::json!(["true"]));
    assert_eq!(got[0]["HostConfig"]["LogConfig"]["Type"], "json-file");
    assert_eq!(got[0]["Name"], "/shape");
}

#[test]
fn top_stats_pause_and_unpause() {
    let d = daemon();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "busy",
        "busybox",
        "sh",
        "-c",
        "while true; do sleep 0.2; done",
    ]));
    std::thread::sleep(Duration::from_millis(300));
    let top = ok(&d.docker(&["top", "busy"]));
    let mut lines = top.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    );
    assert!(
        top.contains("sh -c while true; do sleep 0.2; done"),
        "{top}"
    );
    let stats = ok(&d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}} {{.PIDs}} {{.MemUsage}}",
        "busy",
    ]));
    let parts: Vec<&str> = stats.split_whitespace().collect();
    assert_eq!(parts[0], "busy");
    assert!(parts[1].parse::<u32>().unwrap() >= 1, "{stats}");
    assert!(!parts[2].starts_with("0B"), "memory is accounted: {stats}");

    ok(&d.docker(&["pause", "busy"]));
    let info = ok(&d.docker(&[
        "info",
        "--format",
        "{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}}",
    ]));
    assert_eq!(info.trim(), "1 0 1 0", "info counts containers by state");
    let df = ok(&d.docker(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]));
    assert!(
        df.contains("Images 1 1"),
        "the image in use is active: {df}"
    );
    assert!(df.contains("Containers 1 1"), "{df}");
    assert_eq!(
        ok(&d.docker(&[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.Paused}}",
            "busy"
        ]))
        .trim(),
        "paused true"
    );
    let ps = ok(&d.docker(&["ps", "--format", "{{.Status}}"]));
    assert!(ps.trim().ends_with("(Paused)"), "{ps}");
    ok(&d.docker(&["unpause", "busy"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", "busy"])).trim(),
        "running"
    );
    let o = d.docker(&["unpause", "busy"]);
    assert!(!o.status.success());
    // A paused container can be stopped (it is thawed after the signal, as Docker does).
    ok(&d.docker(&["pause", "busy"]));
    ok(&d.docker(&["stop", "-t", "1", "busy"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", "busy"])).trim(),
        "exited"
    );
}

#[test]
fn events_report_the_container_lifecycle() {
    let d = daemon();
    let since = chrono_now();
    ok(&d.docker(&["run", "--rm", "--name", "evented", "busybox", "true"]));
    let until = chrono_now() + 1;
    let ev = ok(&d.docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &until.to_string(),
        "--filter",
        "type=container",
        "--format",
        "{{.Action}}",
    ]));
    let actions: Vec<&str> = ev.lines().collect();
    for want in ["create", "attach", "start", "die", "destroy"] {
        assert!(actions.contains(&want), "{want} missing from {actions:?}");
    }
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn interactive_tty_echoes_what_is_typed() {
    let d = daemon();
    let cmd = format!(
        "DOCKER_HOST={} DOCKER_CONFIG={} {} run -it --rm busybox sh; echo EXITED $?; sleep 30",
        d.host(),
        d.dir.path().join("docker-config").display(),
        common::docker_bin().display()
    );
    let t = common::Terminal::start("tty", &cmd);
    t.wait_for("/ #");
    t.type_line("echo typed-$((40+2)); stty size");
    // The size line comes after the echo: waiting for it means both are on screen.
    let s = t.wait_for("30 100");
    assert!(s.contains("typed-42"), "what was typed ran:\n{s}");
    t.type_line("exit 4");
    t.wait_for("EXITED 4");
}

#[test]
fn bind_mounts_and_tmpfs_mounts() {
    let d = daemon();
    let host = d.dir.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from the host\n").unwrap();
    let bind = format!("{}:/data", host.display());
    let o = ok(&d.docker(&[
        "run",
        "--rm",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "cat /data/in.txt; echo back > /data/out.txt",
    ]));
    assert_eq!(o, "from the host\n");
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).unwrap(),
        "back\n"
    );

    let ro = format!("{}:/data:ro", host.display());
    let o = d.docker(&[
        "run",
        "--rm",
        "-v",
        &ro,
        "busybox",
        "sh",
        "-c",
        "echo x > /data/nope; echo rc=$?",
    ]);
    assert_eq!(out(&o).trim(), "rc=1");
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));
    assert!(!host.join("nope").exists());

    let made = d.dir.path().join("made-by-v");
    ok(&d.docker(&[
        "create",
        "--name",
        "withbind",
        "-v",
        &format!("{}:/m:ro", made.display()),
        "busybox",
        "true",
    ]));
    assert!(
        made.is_dir(),
        "-v creates a missing host directory, as Docker does"
    );
    let mounts: serde_json::Value = serde_json::from_str(&ok(&d.docker(&[
        "inspect",
        "-f",
        "{{json .Mounts}}",
        "withbind",
    ])))
    .unwrap();
    assert_eq!(mounts[0]["Type"], "bind");
    assert_eq!(mounts[0]["Destination"], "/m");
    assert_eq!(mounts[0]["RW"], false);
    assert_eq!(mounts[0]["Propagation"], "rprivate");

    let missing = format!("type=bind,source={}/nope,target=/x", d.dir.path().display());
    let o = d.docker(&["run", "--rm", "--mount", &missing, "busybox", "true"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("bind source path does not exist"),
        "{}",
        err(&o)
    );

    let o = ok(&d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=tmpfs,target=/scratch",
        "busybox",
        "sh",
        "-c",
        "grep ' /scratch ' /proc/mounts",
    ]));
    assert!(o.contains("tmpfs /scratch tmpfs"), "{o}");
}

/// A tmpfs mounted on the host below a bind's source, unmounted when dropped.
struct Submount(std::path::PathBuf);

impl Submount {
    fn new(at: &std::path::Path) -> Submount {
        std::fs::create_dir_all(at).unwrap();
        std::fs::write(at.join("under"), "under the mount\n").unwrap();
        let o = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "berth-test-sub"])
            .arg(at)
            .output()
            .unwrap();
        assert!(o.status.success(), "mount tmpfs: {}", err(&o));
        std::fs::write(at.join("on-tmpfs"), "on the submount\n").unwrap();
        Submount(at.to_owned())
    }
}

impl Drop for Submount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Docker 25's recursive read-only binds: `:ro` and `bind-recursive=readonly` make a submount of the source
/// read-only too (mount_setattr), `bind-recursive=writable` leaves it writable under a read-only top, and
/// `bind-recursive=disabled` does not carry it at all. Needs Linux 5.12 (scripts/test.sh names the
/// requirement).
#[test]
fn recursive_read_only_binds_reach_submounts() {
    let d = daemon();
    let src = d.dir.path().join("tree");
    let _sub = Submount::new(&src.join("sub"));
    let probe = "touch /data/top; echo top=$?; touch /data/sub/x; echo sub=$?; cat /data/sub/on-tmpfs /data/sub/under 2>/dev/null; true";
    let run = |how: &[&str]| -> String {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(how);
        args.extend_from_slice(&["busybox", "sh", "-c", probe]);
        ok(&d.docker(&args))
    };
    let bind = |extra: &str| format!("type=bind,source={},target=/data{extra}", src.display());

    // The default for read-only binds: all the way down.
    let o = run(&["-v", &format!("{}:/data:ro", src.display())]);
    assert!(o.contains("top=1") && o.contains("sub=1"), "{o}");
    assert!(
        o.contains("on the submount"),
        "an rbind carries the submount: {o}"
    );
    let o = run(&["--mount", &bind(",readonly")]);
    assert!(o.contains("top=1") && o.contains("sub=1"), "{o}");

    // Forced: the same, and refused where the kernel cannot (not here).
    let o = run(&[
        "--mount",
        &bind(",readonly,bind-recursive=readonly,bind-propagation=rprivate"),
    ]);
    assert!(o.contains("top=1") && o.contains("sub=1"), "{o}");

    // Writable submounts under a read-only top, as before Docker 25.
    let o = run(&["--mount", &bind(",readonly,bind-recursive=writable")]);
    assert!(o.contains("top=1") && o.contains("sub=0"), "{o}");
    assert!(src.join("sub/x").exists());

    // Not recursive: the submount is not there, the directory under it is.
    let o = run(&["--mount", &bind(",readonly,bind-recursive=disabled")]);
    assert!(o.contains("top=1"), "{o}");
    assert!(
        o.contains("under the mount") && !o.contains("on the submount"),
        "{o}"
    );

    // A read-write bind stays read-write all the way down.
    let o = run(&["-v", &format!("{}:/data", src.display())]);
    assert!(o.contains("top=0") && o.contains("sub=0"), "{o}");

    // The CLIs check the combinations as the docker CLI does, and the daemon refuses conflicts sent to it.
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        &bind(",bind-recursive=readonly"),
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("option 'bind-recursive=readonly' requires 'readonly'"),
        "{}",
        err(&o)
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--mount",
        &bind(",readonly,bind-recursive=readonly"),
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("requires 'bind-propagation=rprivate'"),
        "{}",
        err(&o)
    );
    let o = d.berth(&[
        "run",
        "--rm",
        "--mount",
        &bind(",readonly,bind-recursive=readonly,bind-propagation=rprivate"),
        "busybox",
        "sh",
        "-c",
        probe,
    ]);
    let o = ok(&o);
    assert!(o.contains("top=1") && o.contains("sub=1"), "{o}");
    // Clients older than API 1.44 keep the old behaviour, as dockerd gives it them: read-only at the top
    // only, and no way to insist on recursion.
    let mut old = d.docker_command(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/data:ro", src.display()),
        "busybox",
        "sh",
        "-c",
        probe,
    ]);
    old.env("DOCKER_API_VERSION", "1.43");
    let o = ok(&common::output_within(old, None, Duration::from_secs(60)));
    assert!(o.contains("top=1") && o.contains("sub=0"), "{o}");
    let forced = serde_json::json!({
        "Image": "busybox",
        "HostConfig": {"Mounts": [{
            "Type": "bind", "Source": src.display().to_string(), "Target": "/data", "ReadOnly": true,
            "BindOptions": {"ReadOnlyForceRecursive": true}
        }]}
    });
    let r = d.request(
        "POST",
        "/v1.43/containers/create",
        forced.to_string().as_bytes(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer"
    );

    let body = serde_json::json!({
        "Image": "busybox",
        "HostConfig": {"Mounts": [{
            "Type": "bind", "Source": src.display().to_string(), "Target": "/data",
            "BindOptions": {"ReadOnlyForceRecursive": true}
        }]}
    });
    let r = d.request("POST", "/containers/create", body.to_string().as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("options conflict: Writable && ReadOnlyForceRecursive"),
        "{}",
        r.text()
    );
}

#[test]
fn container_prune_removes_stopped_containers_only() {
    let d = daemon();
    ok(&d.docker(&["create", "--name", "made", "busybox", "true"]));
    ok(&d.docker(&["run", "--name", "ran", "busybox", "true"]));
    ok(&d.docker(&["run", "-d", "--name", "alive", "busybox", "sleep", "1000"]));
    ok(&d.docker(&[
        "create", "--name", "kept", "--label", "keep=yes", "busybox", "true",
    ]));
    let out = ok(&d.docker(&["container", "prune", "-f", "--filter", "label!=keep"]));
    assert!(out.contains("Deleted Containers:"), "{out}");
    let left = ok(&d.docker(&["ps", "-a", "--format", "{{.Names}}"]));
    let mut left: Vec<&str> = left.lines().collect();
    left.sort();
    assert_eq!(left, ["alive", "kept"]);
}

#[test]
fn a_running_containers_inspect_has_dockers_shape_throughout() {
    let d = daemon();
    let host = d.dir.path().join("bound");
    std::fs::create_dir_all(&host).unwrap();
    let bind = format!("{}:/srv:ro", host.display());
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "127.0.0.1:8080:80",
        "-v",
        &bind,
        "busybox",
        "sh",
        "-c",
        "mkdir -p /var/www && exec httpd -f -p 80 -h /var/www",
    ]));
    let got: serde_json::Value = serde_json::from_str(&ok(&d.docker(&["inspect", "web"]))).unwrap();
    let got = &got[0];
    let want: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            common::fixtures_dir().join("docker-cli-output/api/container-inspect-httpd.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // Every key dockerd shows is there, at every level the reference has (a running container with a
    // published port on the default bridge).
    fn missing_keys(
        want: &serde_json::Value,
        got: &serde_json::Value,
        path: &str,
        out: &mut Vec<String>,
    ) {
        if let (Some(w), Some(g)) = (want.as_object(), got.as_object()) {
            for (k, wv) in w {
                // Maps keyed by data (ports, labels, graph driver data) differ by content.
                let data_keyed = ["Ports", "PortBindings", "ExposedPorts", "Labels", "Data"];
                match g.get(k) {
                    None => out.push(format!("{path}.{k}")),
                    Some(gv) if !data_keyed.contains(&k.as_str()) => {
                        missing_keys(wv, gv, &format!("{path}.{k}"), out)
                    }
                    Some(_) => {}
                }
            }
        }
    }
    let mut missing = Vec::new();
    missing_keys(&want, got, "", &mut missing);
    assert!(missing.is_empty(), "missing from inspect: {missing:?}");
    assert_eq!(got["State"]["Status"], "running");
    assert_eq!(
        got["NetworkSettings"]["Ports"]["80/tcp"],
        serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}])
    );
    assert_eq!(
        got["HostConfig"]["PortBindings"]["80/tcp"],
        serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}])
    );
    let bridge = &got["NetworkSettings"]["Networks"]["bridge"];
    assert!(
        bridge["IPAddress"].as_str().unwrap().starts_with("172."),
        "{bridge}"
    );
    assert_eq!(bridge["IPAddress"], got["NetworkSettings"]["IPAddress"]);
    let mounts = got["Mounts"].as_array().unwrap();
    assert_eq!(mounts.len(), 1);
    for k in ["Type", "Source", "Destination", "Mode", "RW", "Propagation"] {
        assert!(
            mounts[0].get(k).is_some(),
            "Mounts[0].{k} is missing: {}",
            mounts[0]
        );
    }
    assert_eq!(mounts[0]["RW"], false);
}

/// `--pid container:X` and `--ipc container:X` join X's namespaces (and, for IPC, its /dev/shm), as
/// dockerd does; the donor must be running, and for IPC it must be shareable.
#[test]
fn pid_and_ipc_namespaces_of_another_container_can_be_joined() {
    let d = daemon();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "donor",
        "--ipc",
        "shareable",
        "busybox",
        "sh",
        "-c",
        "echo shared > /dev/shm/marker; exec sleep 1000",
    ]));
    let ns = |args: &[&str]| out(&d.docker(args)).trim().to_owned();
    let donor_pid = ns(&["exec", "donor", "readlink", "/proc/self/ns/pid"]);
    let donor_ipc = ns(&["exec", "donor", "readlink", "/proc/self/ns/ipc"]);
    // Wait for the donor's marker (written right after its start).
    for _ in 0..100 {
        if d.docker(&["exec", "donor", "test", "-f", "/dev/shm/marker"])
            .status
            .success()
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    let o = ok(&d.docker(&[
        "run",
        "--rm",
        "--pid",
        "container:donor",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/pid; ps -o args",
    ]));
    assert!(o.starts_with(&donor_pid), "{o} vs {donor_pid}");
    assert!(
        o.contains("sleep 1000"),
        "the donor's processes are seen: {o}"
    );
    let o = ok(&d.docker(&[
        "run",
        "--rm",
        "--ipc",
        "container:donor",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/ipc; cat /dev/shm/marker",
    ]));
    assert_eq!(o, format!("{donor_ipc}\nshared\n"));
    // Control: a container of its own has other namespaces and an empty /dev/shm.
    let o = out(&d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "readlink /proc/self/ns/pid /proc/self/ns/ipc; ls /dev/shm",
    ]));
    assert!(
        !o.contains(&donor_pid) && !o.contains(&donor_ipc) && !o.contains("marker"),
        "{o}"
    );

    // A private IPC namespace is not shared; a stopped donor has nothing to join.
    ok(&d.docker(&["run", "-d", "--name", "private", "busybox", "sleep", "1000"]));
    let o = d.docker(&[
        "run",
        "--rm",
        "--ipc",
        "container:private",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("non-shareable IPC (hint: use IpcMode:shareable for the donor container)"),
        "{}",
        err(&o)
    );
    ok(&d.docker(&["kill", "private"]));
    let o = d.docker(&[
        "run",
        "--rm",
        "--pid",
        "container:private",
        "busybox",
        "true",
    ]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("cannot join PID of a non running container"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["run", "--rm", "--uts", "container:donor", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));

    // The donor's /dev/shm is a host mount while it runs, and goes with it.
    let id = ns(&["inspect", "-f", "{{.Id}}", "donor"]);
    let shm_mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(&format!("{id}/shm "))
    };
    assert!(shm_mounted());
    ok(&d.docker(&["rm", "-f", "donor"]));
    assert!(!shm_mounted(), "the shareable /dev/shm is left mounted");
}

/// `--annotation` reaches the OCI runtime's spec as dockerd 24+ passes it, and shows in inspect and (API
/// 1.46+) in the list; a client older than API 1.43 cannot set it, as dockerd drops it.
#[test]
fn annotations_reach_the_runtime_spec_and_inspect() {
    let d = daemon();
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--annotation",
        "org.example.colour=blue",
        "--annotation",
        "team=ops",
        "busybox",
        "sleep",
        "60",
    ]))
    .trim()
    .to_owned();
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            d.exec_root()
                .join("containers")
                .join(&id)
                .join("config.json"),
        )
        .expect("the running container's config.json"),
    )
    .unwrap();
    assert_eq!(
        spec["annotations"],
        serde_json::json!({"org.example.colour": "blue", "team": "ops"})
    );
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{json .HostConfig.Annotations}}", &id])).trim(),
        r#"{"org.example.colour":"blue","team":"ops"}"#
    );
    let listed = |version: &str| {
        let list = d.get_json(&format!("/{version}/containers/json"));
        list[0]["HostConfig"]["Annotations"].clone()
    };
    assert_eq!(listed("v1.46")["team"], "ops");
    assert_eq!(listed("v1.45"), serde_json::Value::Null);
    ok(&d.docker(&["rm", "-f", &id]));

    // Without annotations the spec has none (not oci-spec's example ones).
    let plain = ok(&d.docker(&["run", "-d", "busybox", "sleep", "60"]))
        .trim()
        .to_owned();
    let spec: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            d.exec_root()
                .join("containers")
                .join(&plain)
                .join("config.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(spec.get("annotations"), None, "{spec}");
    ok(&d.docker(&["rm", "-f", &plain]));

    let body = br#"{"Image":"busybox","HostConfig":{"Annotations":{"a":"b"}}}"#;
    let r = d.request("POST", "/v1.42/containers/create", body);
    assert_eq!(r.status, 201, "{}", r.text());
    let old = r.json()["Id"].as_str().unwrap().to_owned();
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{json .HostConfig.Annotations}}", &old])).trim(),
        "null"
    );
}

/// `--platform` at create takes the local image only when it is for that platform (dockerd's 404 and
/// words otherwise, which the docker CLI prints under `--pull never`); clients older than API 1.41
/// cannot ask.
#[test]
fn create_with_a_platform_the_image_is_not_for_is_refused_as_dockerd_refuses_it() {
    let d = daemon();
    let arch = ok(&d.docker(&[
        "image",
        "inspect",
        "-f",
        "{{.Os}}/{{.Architecture}}",
        "busybox",
    ]))
    .trim()
    .to_owned();
    assert_eq!(arch, "linux/amd64", "the test's busybox is an amd64 image");
    assert_eq!(
        ok(&d.docker(&[
            "run",
            "--rm",
            "--pull",
            "never",
            "--platform",
            "linux/amd64",
            "busybox",
            "echo",
            "same"
        ])),
        "same\n"
    );
    let o = d.docker(&[
        "run",
        "--rm",
        "--pull",
        "never",
        "--platform",
        "linux/arm64",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains("Error response from daemon: image with reference busybox was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64"),
        "{}",
        err(&o)
    );
    let body = br#"{"Image":"busybox"}"#;
    let r = d.request("POST", "/containers/create?platform=linux/arm/v7", body);
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(
        r.text()
            .contains("wanted linux/arm/v7, actual: linux/amd64"),
        "{}",
        r.text()
    );
    let r = d.request("POST", "/containers/create?platform=linux/x/y/z", body);
    assert_eq!(r.status, 400, "{}", r.text());
    // API 1.40 has no platform: it is not read.
    let r = d.request(
        "POST",
        "/v1.40/containers/create?platform=linux/arm64",
        body,
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

/// Isolation other than the default is Windows': refused with dockerd's words, at create.
#[test]
fn isolation_other_than_default_is_refused_as_dockerd_refuses_it() {
    let d = daemon();
    for value in ["hyperv", "process", "bogus"] {
        let o = d.docker(&["create", "--isolation", value, "busybox", "true"]);
        assert_eq!(o.status.code(), Some(1), "{value}: {}", err(&o));
        assert!(
            err(&o).contains(&format!(
                "Error response from daemon: Invalid isolation: \"{value}\" - linux only supports 'default'"
            )),
            "{value}: {}",
            err(&o)
        );
    }
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "", "nothing was created");
    let id = ok(&d.docker(&["create", "--isolation", "default", "busybox", "true"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.HostConfig.Isolation}}", id.trim()])).trim(),
        "default"
    );
}
