//! Log drivers through the real docker CLI: `none`, `local` (rotated, compressed, read back by `docker
//! logs` with its filters and `-f` across rotations), `syslog` (unix stream and datagram sockets made by
//! the test, TCP and UDP on the daemon's loopback), `journald` (a datagram socket the test binds, named
//! to the daemon by its test-only `BERTH_TEST_JOURNAL_SOCKET`), option checks with dockerd's words, and
//! the daemon's defaults from `--log-driver`/`--log-opt` and daemon.json.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::PathBuf;
use std::time::Duration;

use common::{err, ok, out, Daemon};

fn container_dir(d: &Daemon, name: &str) -> PathBuf {
    let id = ok(&d.docker(&["inspect", "-f", "{{.Id}}", name]));
    d.data_root().join("containers").join(id.trim())
}

fn log_config(d: &Daemon, name: &str) -> serde_json::Value {
    let out = ok(&d.docker(&["inspect", "-f", "{{json .HostConfig.LogConfig}}", name]));
    serde_json::from_str(out.trim()).unwrap()
}

fn wait_exited(d: &Daemon, name: &str) {
    ok(&d.docker(&["wait", name]));
}

/// The files under `dir`, recursively, relative to it.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(p) = todo.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path().strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

const NOT_READABLE: &str =
    "Error response from daemon: configured logging driver does not support reading";

#[test]
fn none_logs_nothing_and_docker_logs_says_so_while_attach_works() {
    let d = common::docker_daemon();
    // Attached, the output still reaches the client.
    let o = d.docker(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ]);
    assert_eq!(out(&o), "out\n", "{}", err(&o));
    assert!(err(&o).contains("err"), "{}", err(&o));
    let o = d.docker(&["logs", "quiet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains(NOT_READABLE), "{}", err(&o));
    assert_eq!(log_config(&d, "quiet")["Type"], "none");
    let dir = container_dir(&d, "quiet");
    assert!(
        !files_under(&dir).iter().any(|f| f.contains("log")),
        "no log file: {:?}",
        files_under(&dir)
    );
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.LogPath}}", "quiet"])).trim(),
        ""
    );
}

#[test]
fn unknown_drivers_and_bad_options_are_refused_with_dockers_words() {
    let d = common::docker_daemon();
    for (args, want) in [
        (
            &["--log-driver", "x"][..],
            "logger: no log driver named 'x' is registered",
        ),
        (
            &["--log-driver", "local", "--log-opt", "max-size=0"],
            "failed to initialize logging driver: max-size must be a positive number",
        ),
        (
            &["--log-driver", "local", "--log-opt", "max-size=-1"],
            "failed to initialize logging driver: invalid value for max-size: -1: invalid size: '-1'",
        ),
        (
            &["--log-driver", "local", "--log-opt", "max-file=0"],
            "failed to initialize logging driver: max-file cannot be less than 1",
        ),
        (
            &["--log-driver", "local", "--log-opt", "max-file=-3"],
            "failed to initialize logging driver: max-file must not be negative",
        ),
        (
            &["--log-driver", "local", "--log-opt", "max-file=1"],
            "failed to initialize logging driver: compression cannot be enabled when max file count is 1",
        ),
        (
            &["--log-driver", "local", "--log-opt", "bogus=1"],
            "unknown log opt 'bogus' for log driver local",
        ),
        (
            &["--log-driver", "syslog", "--log-opt", "max-size=1m"],
            "unknown log opt 'max-size' for syslog log driver",
        ),
        (
            &[
                "--log-driver",
                "syslog",
                "--log-opt",
                "syslog-address=ftp://x",
            ],
            "unsupported scheme: 'ftp'",
        ),
        (
            &[
                "--log-driver",
                "syslog",
                "--log-opt",
                "syslog-facility=bogus",
            ],
            "invalid syslog facility",
        ),
        (
            &["--log-driver", "syslog", "--log-opt", "syslog-format=rfc1"],
            "Invalid syslog format",
        ),
        (
            &["--log-driver", "journald", "--log-opt", "max-file=2"],
            "unknown log opt 'max-file' for journald log driver",
        ),
        (
            &["--log-opt", "max-size=0"],
            "max-size must be a positive number",
        ),
    ] {
        let mut a = vec!["run", "--rm"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["busybox", "true"]);
        let o = d.docker(&a);
        assert_eq!(o.status.code(), Some(125), "{args:?}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("Error response from daemon: {want}")),
            "{args:?}: {}",
            err(&o)
        );
    }
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "", "nothing was created");
}

#[test]
fn local_rotates_compresses_and_reads_back_with_docker_logs_filters() {
    let d = common::docker_daemon();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "loc",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done; echo last >&2",
    ]));
    wait_exited(&d, "loc");
    let lc = log_config(&d, "loc");
    assert_eq!(lc["Type"], "local");
    assert_eq!(lc["Config"]["max-size"], "10k");
    let dir = container_dir(&d, "loc");
    // The compression of the newest rotated file runs after the rotation; the container's end waits
    // for it.
    assert_eq!(
        files_under(&dir.join("local-logs")),
        ["container.log", "container.log.1.gz", "container.log.2.gz"]
    );
    // Rotated files are real gzip files with the entries in Docker's framing.
    let mut one = Vec::new();
    flate2::read::GzDecoder::new(
        std::fs::File::open(dir.join("local-logs/container.log.1.gz")).unwrap(),
    )
    .read_to_end(&mut one)
    .unwrap();
    let len = u32::from_be_bytes(one[..4].try_into().unwrap()) as usize;
    assert_eq!(&one[len + 4..len + 8], &one[..4], "length, entry, length");
    assert!(one.len() >= 10_000, "rotated once 10k was reached");

    let all = ok(&d.docker(&["logs", "loc"]));
    let lines: Vec<&str> = all.lines().collect();
    assert_eq!(*lines.last().unwrap(), "line 2999");
    let first: usize = lines[0].strip_prefix("line ").unwrap().parse().unwrap();
    assert!(first > 0, "the oldest lines were rotated away");
    let want: Vec<String> = (first..3000).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, want, "what is kept is contiguous and in order");
    // stderr on its own stream.
    let o = d.docker(&["logs", "loc"]);
    assert_eq!(err(&o), "last\n");
    // The tail counts both streams' entries, as dockerd's does.
    let o = d.docker(&["logs", "--tail", "3", "loc"]);
    assert_eq!(ok(&o), "line 2998\nline 2999\n");
    assert_eq!(err(&o), "last\n");
    let ts = ok(&d.docker(&["logs", "--timestamps", "--tail", "2", "loc"]));
    let (time, rest) = ts.split_once(' ').unwrap();
    assert_eq!(rest, "line 2999\n");
    assert_eq!(time.len(), "2026-01-02T03:04:05.123456789Z".len(), "{time}");
    assert!(time.ends_with('Z'));
    assert_eq!(
        ok(&d.docker(&["logs", "--since", "2099-01-01T00:00:00Z", "loc"])),
        ""
    );
    assert_eq!(
        ok(&d.docker(&["logs", "--until", "2000-01-01T00:00:00Z", "loc"])),
        ""
    );
    // --until at the last line's time includes it, as dockerd does.
    assert_eq!(ok(&d.docker(&["logs", "--until", time, "loc"])), all);
}

#[test]
fn local_logs_follow_across_rotations() {
    let d = common::docker_daemon();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "fol",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=2k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        "sleep 1; i=1; while [ $i -le 400 ]; do echo f$i; i=$((i+1)); usleep 2000; done",
    ]));
    let o = d.docker_within(&["logs", "-f", "fol"], None, Duration::from_secs(60));
    let got = ok(&o);
    let want: String = (1..=400).map(|i| format!("f{i}\n")).collect();
    assert_eq!(got, want, "every line once, in order, across the rotations");
    assert!(
        std::fs::metadata(container_dir(&d, "fol").join("local-logs/container.log.1.gz")).is_ok(),
        "it did rotate"
    );
}

/// Receives `n` datagrams.
fn recv_n(s: &UnixDatagram, n: usize) -> Vec<String> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = vec![0u8; 65536];
    (0..n)
        .map(|_| {
            let k = s.recv(&mut buf).expect("a message");
            String::from_utf8_lossy(&buf[..k]).into_owned()
        })
        .collect()
}

#[test]
fn syslog_to_unix_sockets_with_facility_format_and_tag() {
    let d = common::docker_daemon();
    let dir = tempfile::tempdir().unwrap();
    let gram = dir.path().join("gram.sock");
    let server = UnixDatagram::bind(&gram).unwrap();
    ok(&d.docker(&[
        "run",
        "--name",
        "sl",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=unixgram://{}", gram.display()),
        "--log-opt",
        "syslog-facility=local0",
        "--log-opt",
        "syslog-format=rfc5424micro",
        "--log-opt",
        "tag={{.Name}}/{{.ImageName}}/{{.ID}}",
        "busybox",
        "sh",
        "-c",
        "echo out; sleep 0.2; echo err >&2",
    ]));
    let id = ok(&d.docker(&["inspect", "-f", "{{.Id}}", "sl"]));
    let tag = format!("sl/busybox/{}", &id[..12]);
    let got = recv_n(&server, 2);
    // local0 (16) * 8 + info (6) / err (3); RFC 5424: VERSION TIMESTAMP HOST APP PROCID MSGID - MSG.
    let check = |m: &str, pri: u32, text: &str| {
        assert!(m.starts_with(&format!("<{pri}>1 ")), "{m:?}");
        let f: Vec<&str> = m.splitn(8, ' ').collect();
        assert_eq!(f[1].len(), "2026-01-02T03:04:05.123456Z".len(), "{m:?}");
        assert_eq!(
            (f[3], f[5], f[6]),
            (tag.as_str(), tag.as_str(), "-"),
            "{m:?}"
        );
        assert!(f[4].parse::<u32>().is_ok(), "{m:?}");
        assert_eq!(f[7], format!("{text}\n"));
    };
    check(&got[0], 134, "out");
    check(&got[1], 131, "err");
    let o = d.docker(&["logs", "sl"]);
    assert!(err(&o).contains(NOT_READABLE), "{}", err(&o));

    // A stream socket, RFC 3164 (with the host name), the default tag: the short ID.
    let stream = dir.path().join("stream.sock");
    let listener = UnixListener::bind(&stream).unwrap();
    ok(&d.docker(&[
        "run",
        "--name",
        "sl2",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=unix://{}", stream.display()),
        "--log-opt",
        "syslog-format=rfc3164",
        "busybox",
        "sh",
        "-c",
        "echo one; echo two",
    ]));
    let id = ok(&d.docker(&["inspect", "-f", "{{.Id}}", "sl2"]));
    let (mut conn, _) = listener.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    for (line, msg) in lines.iter().zip(["one", "two"]) {
        // <daemon.info = 30>Mmm dd hh:mm:ss HOST TAG[PID]: MSG
        assert!(line.starts_with("<30>"), "{line}");
        let after_time = &line[4 + "Jan _2 15:04:05 ".len()..];
        let want = format!("{} {}[", host.trim(), &id[..12]);
        assert!(after_time.starts_with(&want), "{line} / {want}");
        assert!(line.ends_with(&format!("]: {msg}")), "{line}");
    }
}

#[test]
fn syslog_over_tcp_and_udp_on_loopback() {
    let d = common::docker_daemon();
    // The shim runs in the daemon's network namespace: the servers listen on its loopback.
    let (tcp, udp) = d.in_netns(|| {
        (
            std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
            std::net::UdpSocket::bind("127.0.0.1:0").unwrap(),
        )
    });
    let tcp_port = tcp.local_addr().unwrap().port();
    let udp_port = udp.local_addr().unwrap().port();
    ok(&d.docker(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=tcp://127.0.0.1:{tcp_port}"),
        "--log-opt",
        "tag=web",
        "busybox",
        "sh",
        "-c",
        "echo hello; echo oops >&2",
    ]));
    let (mut conn, _) = tcp.accept().unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    conn.read_to_string(&mut text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    // The default format: <PRI>Mmm dd hh:mm:ss TAG[PID]: MSG, daemon facility.
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<30>") && l.contains(" web[") && l.ends_with("]: hello")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<27>") && l.ends_with("]: oops")),
        "{lines:?}"
    );

    ok(&d.docker(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=udp://127.0.0.1:{udp_port}"),
        "--log-opt",
        "syslog-format=rfc5424",
        "--log-opt",
        "tag={{.FullID}}",
        "busybox",
        "echo",
        "via udp",
    ]));
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = [0u8; 4096];
    let n = udp.recv(&mut buf).unwrap();
    let m = String::from_utf8_lossy(&buf[..n]).into_owned();
    let f: Vec<&str> = m.splitn(8, ' ').collect();
    assert_eq!(f[0], "<30>1");
    assert_eq!(f[3].len(), 64, "the full ID as the tag: {m:?}");
    assert_eq!(f[7], "via udp\n");

    // Nothing listening: the start fails as dockerd's does.
    let closed = {
        let l = d.in_netns(|| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        l.local_addr().unwrap().port()
    };
    let o = d.docker(&[
        "run",
        "--rm",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=tcp://127.0.0.1:{closed}"),
        "busybox",
        "true",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        err(&o).contains(&format!(
            "failed to initialize logging driver: dial tcp 127.0.0.1:{closed}: connect: connection refused"
        )),
        "{}",
        err(&o)
    );
}

#[test]
fn journald_entries_carry_dockers_fields() {
    let mut d = common::docker_daemon();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("journal.sock");
    let journal = UnixDatagram::bind(&sock).unwrap();
    // The daemon again, told where the journal is.
    d.stop();
    let log = std::fs::File::create(d.dir.path().join("daemon-journal.log")).unwrap();
    let child = d
        .daemon_command()
        .env("BERTH_TEST_JOURNAL_SOCKET", &sock)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    d.child = Some(child);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !d
        .try_request("GET", "/_ping", &[])
        .is_ok_and(|r| r.status == 200)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "daemon did not come back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    ok(&d.docker(&[
        "run",
        "--name",
        "jd",
        "--log-driver",
        "journald",
        "--log-opt",
        "tag=app-{{.Name}}",
        "--label",
        "com.example.tier=front",
        "--log-opt",
        "labels=com.example.tier",
        "-e",
        "REGION=eu",
        "--log-opt",
        "env=REGION",
        "busybox",
        "sh",
        "-c",
        "echo to-out; sleep 0.2; echo to-err >&2",
    ]));
    let id = ok(&d.docker(&["inspect", "-f", "{{.Id}}", "jd"]));
    let id = id.trim();
    let got = recv_n(&journal, 2);
    let field = |m: &str, k: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(str::to_owned)
    };
    for (m, msg, pri) in [(&got[0], "to-out", "6"), (&got[1], "to-err", "3")] {
        assert_eq!(field(m, "MESSAGE").as_deref(), Some(msg), "{m}");
        assert_eq!(field(m, "PRIORITY").as_deref(), Some(pri), "{m}");
        assert_eq!(field(m, "CONTAINER_ID").as_deref(), Some(&id[..12]), "{m}");
        assert_eq!(field(m, "CONTAINER_ID_FULL").as_deref(), Some(id), "{m}");
        assert_eq!(field(m, "CONTAINER_NAME").as_deref(), Some("jd"), "{m}");
        assert_eq!(field(m, "CONTAINER_TAG").as_deref(), Some("app-jd"), "{m}");
        assert_eq!(
            field(m, "SYSLOG_IDENTIFIER").as_deref(),
            Some("app-jd"),
            "{m}"
        );
        assert_eq!(field(m, "IMAGE_NAME").as_deref(), Some("busybox"), "{m}");
        // Labels and variables the options name, as journal field names.
        assert_eq!(
            field(m, "COM_EXAMPLE_TIER").as_deref(),
            Some("front"),
            "{m}"
        );
        assert_eq!(field(m, "REGION").as_deref(), Some("eu"), "{m}");
    }
    let o = d.docker(&["logs", "jd"]);
    assert!(err(&o).contains(NOT_READABLE), "{}", err(&o));

    // No journal listening: the container does not start, with dockerd's words.
    drop(journal);
    std::fs::remove_file(&sock).unwrap();
    let o = d.docker(&["run", "--rm", "--log-driver", "journald", "busybox", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        err(&o)
            .contains("failed to initialize logging driver: journald is not enabled on this host"),
        "{}",
        err(&o)
    );
}

#[test]
fn daemon_defaults_apply_to_containers_that_name_no_driver() {
    // From the flags.
    let d = Daemon::start_with(&["--log-driver", "local", "--log-opt", "max-size=5k"]);
    d.import_busybox();
    let info = d.get_json("/info");
    assert_eq!(info["LoggingDriver"], "local");
    let plugins: Vec<&str> = info["Plugins"]["Log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for driver in ["journald", "json-file", "local", "syslog"] {
        assert!(plugins.contains(&driver), "{plugins:?}");
    }
    ok(&d.docker(&[
        "run",
        "--name",
        "dflt",
        "--log-opt",
        "max-file=2",
        "busybox",
        "echo",
        "hi",
    ]));
    let lc = log_config(&d, "dflt");
    assert_eq!(lc["Type"], "local");
    assert_eq!(lc["Config"]["max-size"], "5k", "the default's option");
    assert_eq!(lc["Config"]["max-file"], "2", "the container's own");
    assert_eq!(ok(&d.docker(&["logs", "dflt"])), "hi\n");
    assert!(container_dir(&d, "dflt")
        .join("local-logs/container.log")
        .exists());
    // A container naming another driver keeps its own options only.
    ok(&d.docker(&[
        "create",
        "--name",
        "own",
        "--log-driver",
        "json-file",
        "busybox",
        "true",
    ]));
    let lc = log_config(&d, "own");
    assert_eq!(lc["Type"], "json-file");
    assert_eq!(lc["Config"], serde_json::json!({}));
    drop(d);

    // From daemon.json.
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("daemon.json");
    std::fs::write(&file, r#"{"log-driver": "none", "log-opts": {}}"#).unwrap();
    let d = Daemon::start_with(&["--config-file", file.to_str().unwrap()]);
    d.import_busybox();
    assert_eq!(d.get_json("/info")["LoggingDriver"], "none");
    ok(&d.docker(&["run", "--name", "nn", "busybox", "true"]));
    assert_eq!(log_config(&d, "nn")["Type"], "none");
    let o = d.docker(&["logs", "nn"]);
    assert!(err(&o).contains(NOT_READABLE), "{}", err(&o));
    drop(d);

    // Given both ways, or invalid, the daemon does not start.
    let mut bad = Daemon::start();
    bad.stop();
    for (args, want) in [
        (
            vec![
                "--config-file",
                file.to_str().unwrap(),
                "--log-driver",
                "local",
            ],
            "log-driver: (from flag: local, from file: none)",
        ),
        (
            vec!["--log-driver", "nope"],
            "failed to set log opts: logger: no log driver named 'nope' is registered",
        ),
    ] {
        let mut cmd = bad.daemon_command();
        cmd.args(&args);
        let o = common::output_within(cmd, None, Duration::from_secs(30));
        assert!(!o.status.success());
        assert!(err(&o).contains(want), "{args:?}: {}", err(&o));
    }
}

#[test]
fn drivers_keep_logging_while_the_daemon_is_down() {
    let mut d = common::docker_daemon();
    let dir = tempfile::tempdir().unwrap();
    let gram = dir.path().join("gram.sock");
    let server = UnixDatagram::bind(&gram).unwrap();
    // Each writes "before", then (once the daemon has been killed) "during".
    let script =
        "echo before; while [ ! -e /tmp/go ]; do usleep 20000; done; echo during; exec sleep 1000";
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "loc",
        "--log-driver",
        "local",
        "busybox",
        "sh",
        "-c",
        script,
    ]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "sys",
        "--log-driver",
        "syslog",
        "--log-opt",
        &format!("syslog-address=unixgram://{}", gram.display()),
        "busybox",
        "sh",
        "-c",
        script,
    ]));
    assert!(recv_n(&server, 1)[0].ends_with(": before\n"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while ok(&d.docker(&["logs", "loc"])) != "before\n" {
        assert!(
            std::time::Instant::now() < deadline,
            "no output before the kill"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The go-ahead goes into the containers' /tmp through their rootfs while no daemon runs.
    let roots: Vec<PathBuf> = ["loc", "sys"]
        .iter()
        .map(|n| {
            let pid = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", n]));
            PathBuf::from(format!("/proc/{}/root/tmp/go", pid.trim()))
        })
        .collect();
    d.kill();
    for r in &roots {
        std::fs::write(r, b"").unwrap();
    }
    assert!(
        recv_n(&server, 1)[0].ends_with(": during\n"),
        "syslog while the daemon is down"
    );
    std::thread::sleep(Duration::from_millis(300));
    d.spawn();
    assert_eq!(ok(&d.docker(&["logs", "loc"])), "before\nduring\n");
    ok(&d.docker(&["rm", "-f", "loc", "sys"]));
}

#[test]
fn labels_env_and_tag_are_kept_with_entries_and_shown_by_logs_details() {
    let d = common::docker_daemon();
    for (name, driver, want) in [
        ("det-local", "local", "app=shop,tag=det-local hello\n"),
        ("det-json", "json-file", "app=shop,tag=det-json hello\n"),
    ] {
        ok(&d.docker(&[
            "run",
            "--name",
            name,
            "--log-driver",
            driver,
            "--label",
            "app=shop",
            "--log-opt",
            "labels=app",
            "--log-opt",
            "tag={{.Name}}",
            "busybox",
            "echo",
            "hello",
        ]));
        assert_eq!(
            ok(&d.docker(&["logs", "--details", name])),
            want,
            "{driver}"
        );
        assert_eq!(ok(&d.docker(&["logs", name])), "hello\n", "{driver}");
    }
    // Without attributes, --details prints the space alone, as dockerd.
    ok(&d.docker(&[
        "run",
        "--name",
        "det-none",
        "--log-driver",
        "local",
        "busybox",
        "echo",
        "hi",
    ]));
    assert_eq!(ok(&d.docker(&["logs", "--details", "det-none"])), " hi\n");
}

#[test]
fn a_tag_that_cannot_be_rendered_fails_the_start_before_anything_is_mounted() {
    let d = common::docker_daemon();
    let o = d.docker(&[
        "run",
        "--name",
        "badtag",
        "--log-driver",
        "syslog",
        "--log-opt",
        "tag={{.Nope}}",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    // dockerd's words, to the column.
    assert!(
        err(&o).contains(
            "Error response from daemon: failed to initialize logging driver: template: log-tag:1:2: executing \"log-tag\" at <.Nope>: can't evaluate field Nope in type *logger.Info"
        ),
        "{}",
        err(&o)
    );
    let dir = container_dir(&d, "badtag");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(dir.to_str().unwrap()),
        "nothing of the container is mounted"
    );
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", "badtag"])).trim(),
        "created"
    );
    ok(&d.docker(&["rm", "badtag"]));
}
