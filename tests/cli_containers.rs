//! The `berth` CLI's container commands against `berth daemon`: run, exit codes, the detached
//! lifecycle (`run -d`, `ps`, `logs`, `stop`, `rm`), compared with the real docker CLI where it is installed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{err, Daemon};

fn text(out: &std::process::Output) -> (String, String, Option<i32>) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

/// The same result with berth's program name in place of docker's (`docker: …`, `'docker run --help'`).
fn as_docker(t: (String, String, Option<i32>)) -> (String, String, Option<i32>) {
    let stderr =
        t.1.replace("berth: ", "docker: ")
            .replace("'berth run --help'", "'docker run --help'")
            .replace("Usage:  berth run", "Usage:  docker run");
    (t.0, stderr, t.2)
}

fn ok(out: &std::process::Output) -> String {
    let (stdout, stderr, code) = text(out);
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    stdout
}

fn daemon() -> Daemon {
    Daemon::with_busybox()
}

#[test]
fn run_rm_prints_output_and_leaves_nothing_behind() {
    let d = daemon();
    let out = d.berth(&["run", "--rm", "busybox", "echo", "hello"]);
    assert_eq!(ok(&out), "hello\n");
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), "");
}

#[test]
fn run_separates_stdout_from_stderr_and_feeds_stdin() {
    let d = daemon();
    let out = d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    let (stdout, stderr, code) = text(&out);
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), code),
        ("out\n", "err\n", Some(0))
    );
    let input = d.dir.path().join("input.txt");
    std::fs::write(&input, "piped\n").unwrap();
    let out = d.berth_stdin(&["run", "-i", "--rm", "busybox", "cat"], Some(&input));
    assert_eq!(ok(&out), "piped\n");
}

#[test]
fn exit_codes_are_dockers() {
    let d = daemon();
    let out = d.berth(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let out = d.berth(&["run", "--rm", "busybox", "nosuchcommand"]);
    let (_, stderr, code) = text(&out);
    assert_eq!(code, Some(127), "{stderr}");
    assert!(stderr.contains("executable file not found"), "{stderr}");
    let out = d.berth(&["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(out.status.code(), Some(126), "{}", text(&out).1);
    let out = d.berth(&["run", "--rm", "nosuchimage"]);
    let (_, stderr, code) = text(&out);
    assert_eq!(code, Some(125));
    assert!(
        stderr.starts_with("Unable to find image 'nosuchimage:latest' locally\n"),
        "{stderr}"
    );
    let out = d.berth(&["run", "--bogus", "busybox"]);
    assert_eq!(out.status.code(), Some(125));
    {
        for args in [
            &["run", "--rm", "busybox", "sh", "-c", "echo x; exit 3"][..],
            &["run", "--rm", "busybox", "nosuchcommand"],
            &["run", "--rm", "busybox", "/etc/passwd"],
            &["run", "--rm", "nosuchimage"],
        ] {
            assert_eq!(
                as_docker(text(&d.berth(args))),
                text(&d.docker(args)),
                "berth {args:?} differs from docker"
            );
        }
    }
}

#[test]
fn detached_lifecycle_run_ps_logs_stop_rm() {
    let d = daemon();
    let id = ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; echo warn >&2; exec sleep 300",
    ]));
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "{id}");
    // The log lines arrive once the shell has run.
    let mut logs = (String::new(), String::new(), None);
    for _ in 0..50 {
        logs = text(&d.berth(&["logs", "web"]));
        if !logs.1.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        logs,
        ("started\n".to_string(), "warn\n".to_string(), Some(0))
    );
    let ps = ok(&d.berth(&["ps"]));
    let mut lines = ps.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("CONTAINER ID   IMAGE     COMMAND                  CREATED"),
        "{ps}"
    );
    let row = lines.next().unwrap();
    assert!(row.starts_with(&id[..12]), "{ps}");
    assert!(row.contains("\"sh -c 'echo started…\""), "{ps}");
    assert!(row.ends_with("web"), "{ps}");
    assert_eq!(ok(&d.berth(&["ps", "-q"])), format!("{}\n", &id[..12]));
    {
        for args in [
            // CREATED and STATUS are left out: they tick between the two runs.
            &[
                "ps",
                "--format",
                "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.Ports}}\t{{.Names}}",
            ][..],
            &[
                "ps",
                "-a",
                "--no-trunc",
                "--format",
                "{{.ID}} {{.Command}} {{.Labels}} {{.Networks}} {{.Size}} {{.CreatedAt}}",
            ],
            &[
                "ps",
                "-a",
                "--filter",
                "name=web",
                "--format",
                "{{.Names}} {{.State}}",
            ],
            &["logs", "web"],
            &["logs", "--tail", "1", "web"],
            &["top", "web"],
            &["inspect", "-f", "{{.Name}} {{.State.Status}}", "web"],
            &["stop", "nosuch"],
            &["rm", "nosuch"],
        ] {
            assert_eq!(
                text(&d.berth(args)),
                text(&d.docker(args)),
                "berth {args:?} differs from docker"
            );
        }
    }
    assert_eq!(ok(&d.berth(&["stop", "-t", "1", "web"])), "web\n");
    let status = ok(&d.berth(&["ps", "-a", "--format", "{{.Status}}"]));
    assert!(status.starts_with("Exited ("), "{status}");
    assert_eq!(ok(&d.berth(&["rm", "web"])), "web\n");
    assert_eq!(ok(&d.berth(&["ps", "-aq"])), "");
}

#[test]
fn create_start_attach_and_wait() {
    let d = daemon();
    let id = ok(&d.berth(&[
        "create",
        "--name",
        "cc",
        "busybox",
        "sh",
        "-c",
        "echo hi; exit 4",
    ]));
    assert_eq!(id.trim().len(), 64);
    let out = d.berth(&["start", "-a", "cc"]);
    let (stdout, _, code) = text(&out);
    assert_eq!((stdout.as_str(), code), ("hi\n", Some(4)));
    assert_eq!(ok(&d.berth(&["wait", "cc"])), "4\n");
    assert_eq!(ok(&d.berth(&["rm", "cc"])), "cc\n");
}

#[test]
fn run_mounts_env_files_runtime_and_pull_flags_act_as_dockers() {
    let d = daemon();
    common::docker_bin();
    let host = d.dir.path().join("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f"), "from the host\n").unwrap();
    let env_file = d.dir.path().join("env");
    std::fs::write(&env_file, "A=1\n# comment\nB=two words\n").unwrap();
    let h = host.display().to_string();
    let e = env_file.display().to_string();
    let bind_ro = format!("{h}:/h:ro");
    let mount_ro = format!("type=bind,src={h},dst=/h,readonly");
    let cases: Vec<Vec<&str>> = vec![
        vec![
            "run",
            "--rm",
            "-v",
            &bind_ro,
            "busybox",
            "sh",
            "-c",
            "cat /h/f; touch /h/x",
        ],
        vec![
            "run",
            "--rm",
            "--mount",
            &mount_ro,
            "busybox",
            "sh",
            "-c",
            "cat /h/f; touch /h/x",
        ],
        vec![
            "run",
            "--rm",
            "--mount",
            "type=tmpfs,dst=/t,tmpfs-size=1m",
            "busybox",
            "sh",
            "-c",
            "df -k /t | tail -1",
        ],
        vec![
            "run",
            "--rm",
            "--env-file",
            &e,
            "-e",
            "B=flag",
            "busybox",
            "sh",
            "-c",
            "echo $A $B",
        ],
        vec![
            "run",
            "--rm",
            "-v",
            "/anon",
            "busybox",
            "sh",
            "-c",
            "grep -c ' /anon ' /proc/mounts",
        ],
        vec!["run", "--rm", "--pull", "never", "busybox", "echo", "local"],
        vec![
            "run",
            "--rm",
            "--mount",
            "type=bind,bogus=1,dst=/x",
            "busybox",
            "true",
        ],
        vec!["run", "--rm", "--pull", "sometimes", "busybox", "true"],
    ];
    for args in cases {
        let ours = as_docker(text(&d.berth(&args)));
        let theirs = text(&d.docker(&args));
        assert_eq!(ours, theirs, "{args:?}");
    }
    // A named volume written by one container is read by the next, whichever CLI made it.
    ok(&d.berth(&[
        "run",
        "--rm",
        "-v",
        "shared:/d",
        "busybox",
        "sh",
        "-c",
        "echo kept > /d/x",
    ]));
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "-v", "shared:/d", "busybox", "cat", "/d/x"])),
        "kept\n"
    );
    if common::have("runc") {
        assert_eq!(
            ok(&d.berth(&[
                "run",
                "--rm",
                "--runtime",
                "runc",
                "busybox",
                "echo",
                "runc"
            ])),
            "runc\n"
        );
    }
}

#[test]
fn stats_without_no_stream_redraws_the_table() {
    let d = daemon();
    ok(&d.berth(&["run", "-d", "--name", "live", "busybox", "sleep", "100"]));
    let out = std::process::Command::new("timeout")
        .args(["1.4"])
        .arg(common::berth_bin())
        .args(["-H", &d.host(), "stats", "live"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let frames = text.matches("\x1b[H").count();
    assert!(frames >= 2, "{frames} frames: {text:?}");
    assert!(text.contains("CONTAINER ID"), "{text:?}");
    assert!(text.contains("live"), "{text:?}");
    ok(&d.berth(&["rm", "-f", "live"]));
}

#[test]
fn signals_to_a_foreground_run_reach_the_container_unless_sig_proxy_is_off() {
    let d = daemon();
    let script = "trap 'echo got-term; exit 7' TERM; echo ready; while true; do sleep 0.1; done";
    let run = |extra: &[&str], name: &str| {
        let mut cmd = std::process::Command::new(common::berth_bin());
        cmd.args(["-H", &d.host(), "run", "--name", name])
            .args(extra)
            .args(["busybox", "sh", "-c", script])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        cmd.spawn().unwrap()
    };
    let wait_ready = |name: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !text(&d.berth(&["logs", name])).0.contains("ready") {
            assert!(std::time::Instant::now() < deadline, "{name} never started");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    // Proxied: the CLI's SIGTERM goes to the container, whose trap ends it with 7.
    let child = run(&[], "proxied");
    wait_ready("proxied");
    // SAFETY: kill of our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ready\ngot-term\n");
    // Not proxied: the CLI dies of the signal and the container runs on.
    let child = run(&["--sig-proxy=false"], "unproxied");
    wait_ready("unproxied");
    // SAFETY: as above.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_ne!(out.status.code(), Some(7));
    assert_eq!(
        ok(&d.berth(&["inspect", "-f", "{{.State.Status}}", "unproxied"])).trim(),
        "running"
    );
    ok(&d.berth(&["rm", "-f", "unproxied", "proxied"]));
}

/// The namespace, device, log, resource and label flags reach the daemon from the berth CLI as they do
/// from the docker CLI: both create a container with the same flags, and inspect shows the same values.
#[test]
fn run_flags_reach_the_daemon_as_the_docker_clis_do() {
    common::docker_bin();
    let d = daemon();
    let labels = d.dir.path().join("labels");
    std::fs::write(&labels, "# a comment\ncolour=blue\n\nteam\n").unwrap();
    let labels = labels.display().to_string();
    let flags = [
        "--pid=host",
        "--ipc=shareable",
        "--uts=host",
        "--cgroupns=private",
        "--cgroup-parent=berth-flags-test",
        "--shm-size=128m",
        "--sysctl=net.ipv4.ip_forward=1",
        "--group-add=1234",
        "--device=/dev/null:/dev/mynull:rw",
        "--device=/dev/zero",
        "--device-cgroup-rule=c 1:3 r",
        "--log-driver=json-file",
        "--log-opt=max-size=1m",
        "--oom-score-adj=100",
        "--oom-kill-disable",
        "--memory-swappiness=10",
        "--cpu-period=100000",
        "--cpu-quota=50000",
        "--cpuset-mems=0",
        "--blkio-weight=300",
        "--domainname=example.org",
    ];
    let create = |cli: &str| {
        let mut args = vec!["create"];
        args.extend(flags);
        args.extend(["--label-file", &labels, "busybox", "true"]);
        let o = if cli == "docker" {
            d.docker(&args)
        } else {
            d.berth(&args)
        };
        ok(&o).trim().to_owned()
    };
    let fields = "{{json .HostConfig.PidMode}} {{json .HostConfig.IpcMode}} {{json .HostConfig.UTSMode}} \
        {{json .HostConfig.CgroupnsMode}} {{json .HostConfig.CgroupParent}} {{json .HostConfig.ShmSize}} \
        {{json .HostConfig.Sysctls}} {{json .HostConfig.GroupAdd}} {{json .HostConfig.Devices}} \
        {{json .HostConfig.DeviceCgroupRules}} {{json .HostConfig.LogConfig}} {{json .HostConfig.OomScoreAdj}} \
        {{json .HostConfig.OomKillDisable}} {{json .HostConfig.MemorySwappiness}} {{json .HostConfig.CpuPeriod}} \
        {{json .HostConfig.CpuQuota}} {{json .HostConfig.CpusetMems}} {{json .HostConfig.BlkioWeight}} \
        {{json .Config.Domainname}} {{json .Config.Labels}}";
    let inspect = |id: &str| ok(&d.docker(&["inspect", "-f", fields, id]));
    let (by_docker, by_berth) = (inspect(&create("docker")), inspect(&create("berth")));
    assert_eq!(by_berth, by_docker);
    // And the values are the flags' (not two CLIs agreeing on leaving them out).
    // dockerd discards a weight the host's cgroups cannot hold (v1 without the CFQ or BFQ files).
    let weight_held = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .unwrap()
            .split_whitespace()
            .any(|c| c == "io")
    } else {
        ["blkio.weight", "blkio.bfq.weight"].iter().any(|f| {
            std::path::Path::new("/sys/fs/cgroup/blkio")
                .join(f)
                .exists()
        })
    };
    let resources = format!(
        "[\"c 1:3 r\"] {{\"Config\":{{\"max-size\":\"1m\"}},\"Type\":\"json-file\"}} 100 true 10 100000 50000 \"0\" {}",
        if weight_held { 300 } else { 0 }
    );
    for part in [
        "\"host\" \"shareable\" \"host\" \"private\" \"berth-flags-test\" 134217728",
        "{\"net.ipv4.ip_forward\":\"1\"} [\"1234\"]",
        "{\"CgroupPermissions\":\"rw\",\"PathInContainer\":\"/dev/mynull\",\"PathOnHost\":\"/dev/null\"}",
        "{\"CgroupPermissions\":\"rwm\",\"PathInContainer\":\"/dev/zero\",\"PathOnHost\":\"/dev/zero\"}",
        resources.as_str(),
        "\"example.org\" {\"colour\":\"blue\"}",
    ] {
        assert!(by_berth.contains(part), "{part} not in {by_berth}");
    }
}

/// `--cidfile` writes the new container's ID, and refuses a file that is already there, as the docker CLI.
#[test]
fn cidfile_gets_the_id_and_is_never_overwritten() {
    common::docker_bin();
    let d = daemon();
    let (a, b) = (d.dir.path().join("a.cid"), d.dir.path().join("b.cid"));
    let (a, b) = (a.display().to_string(), b.display().to_string());
    let berth = ok(&d.berth(&[
        "run",
        "-d",
        "-q",
        "--cidfile",
        &a,
        "busybox",
        "sleep",
        "100",
    ]));
    let docker = ok(&d.docker(&[
        "run",
        "-d",
        "-q",
        "--cidfile",
        &b,
        "busybox",
        "sleep",
        "100",
    ]));
    assert_eq!(std::fs::read_to_string(&a).unwrap(), berth.trim());
    assert_eq!(std::fs::read_to_string(&b).unwrap(), docker.trim());
    let by_berth = text(&d.berth(&["run", "--cidfile", &a, "busybox", "true"]));
    let by_docker = text(&d.docker(&["run", "--cidfile", &a, "busybox", "true"]));
    assert_eq!(by_berth.2, Some(125), "{by_berth:?}");
    assert!(
        by_berth.1.contains(&format!(
            "container ID file found, make sure the other container isn't running or delete {a}"
        )),
        "{by_berth:?}"
    );
    assert_eq!(by_docker.2, by_berth.2);
    assert!(
        by_docker.1.contains("container ID file found"),
        "{by_docker:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&a).unwrap(),
        berth.trim(),
        "the file was left as it was"
    );
}

/// An unknown flag before the image is a usage error, as in the docker CLI (not an image named "--x"):
/// the same words and usage line (with the CLI's own name), and status 125, for run and create.
#[test]
fn an_unknown_flag_before_the_image_is_a_usage_error_as_in_the_docker_cli() {
    common::docker_bin();
    let d = daemon();
    for command in ["run", "create"] {
        for (flag, words) in [
            ("--bogus", "unknown flag: --bogus"),
            ("--bogus=1", "unknown flag: --bogus"),
            ("-Z", "unknown shorthand flag: 'Z' in -Z"),
        ] {
            let by_docker = d.docker(&[command, flag, "busybox", "true"]);
            let by_berth = d.berth(&[command, flag, "busybox", "true"]);
            assert_eq!(by_docker.status.code(), Some(125), "{}", err(&by_docker));
            assert!(err(&by_docker).starts_with(words), "{}", err(&by_docker));
            assert_eq!(
                err(&by_berth).replace("berth ", "docker "),
                err(&by_docker),
                "{command} {flag}"
            );
            assert_eq!(by_berth.status.code(), Some(125), "{command} {flag}");
        }
    }
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "", "nothing was created");
}
