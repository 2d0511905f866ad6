//! Container stdio under load, end to end with the real docker CLI, the berth CLI and raw hijacked
//! connections: a container that writes as fast as it can is still killed, stopped, removed, exec'd
//! into and attached to, its json-file log held to max-size × max-file; stdin of any size reaches
//! containers and exec sessions, with and without a TTY, and its end is the process's EOF.
//!
//! Every command runs under a time limit: these are the bugs that used to hang.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{ok, Daemon};

/// What any one command may take here, far above what it needs.
const LIMIT: Duration = Duration::from_secs(30);

fn daemon() -> Daemon {
    assert!(
        common::docker_bin().exists(),
        "these tests drive the real docker CLI; there is none at {} (BERTH_TEST_DOCKER)",
        common::docker_bin().display()
    );
    Daemon::with_busybox()
}

fn state(d: &Daemon, name: &str) -> String {
    let o = d.docker_within(
        &[
            "inspect",
            "-f",
            "{{.State.Status}} {{.State.ExitCode}}",
            name,
        ],
        None,
        LIMIT,
    );
    ok(&o).trim().to_owned()
}

/// Waits until the json-file log of `name` has been rotated once: the flood is well under way.
fn wait_for_rotation(d: &Daemon, name: &str) -> String {
    let path = ok(&d.docker_within(&["inspect", "-f", "{{.LogPath}}", name], None, LIMIT))
        .trim()
        .to_owned();
    let deadline = Instant::now() + LIMIT;
    while !Path::new(&format!("{path}.1")).exists() {
        assert!(Instant::now() < deadline, "{name}: the log never rotated");
        std::thread::sleep(Duration::from_millis(50));
    }
    path
}

/// `docker attach` to a flooding container gets its output (1 MiB of it, within the limit).
fn attach_gets_output(d: &Daemon, name: &str) {
    let mut child = d
        .docker_command(&["attach", "--no-stdin", name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let (mut total, mut ys) = (0usize, 0usize);
        while total < 1 << 20 {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n;
                    ys += buf[..n].iter().filter(|&&b| b == b'y').count();
                }
            }
        }
        let _ = tx.send((total, ys));
    });
    let got = rx.recv_timeout(LIMIT);
    let _ = child.kill();
    let _ = child.wait();
    let (total, ys) = got.unwrap_or_else(|_| panic!("{name}: attach gave no output in {LIMIT:?}"));
    assert!(total >= 1 << 20, "{name}: attach ended after {total} bytes");
    assert!(
        ys > total / 4,
        "{name}: not `yes` output: {ys} y in {total} bytes"
    );
}

#[test]
fn a_container_flooding_its_output_can_be_execed_attached_killed_stopped_and_removed() {
    let d = daemon();
    for (name, tty) in [("flood", false), ("floodtty", true)] {
        let mut args = vec![
            "run",
            "-d",
            "--name",
            name,
            "--log-opt",
            "max-size=1m",
            "--log-opt",
            "max-file=2",
        ];
        if tty {
            args.push("-t");
        }
        // The shell stays pid 1 (the reported case): `yes` is its child.
        args.extend(["busybox", "sh", "-c", "yes; true"]);
        ok(&d.docker_within(&args, None, LIMIT));
        let log = wait_for_rotation(&d, name);

        assert_eq!(
            ok(&d.docker_within(&["exec", name, "echo", "alive"], None, LIMIT)),
            "alive\n",
            "{name}"
        );
        attach_gets_output(&d, name);

        // The log stays within max-size × max-file however fast it comes.
        for f in [log.clone(), format!("{log}.1")] {
            let len = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
            assert!(len <= 1 << 20, "{f}: {len} bytes, over max-size");
        }
        assert!(
            !Path::new(&format!("{log}.2")).exists(),
            "more than max-file"
        );
        let last = std::fs::read_to_string(format!("{log}.1")).unwrap();
        let entry: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        assert_eq!(entry["stream"], "stdout", "{entry}");
        let line = if tty { "y\r\n" } else { "y\n" };
        assert_eq!(entry["log"], line, "{entry}");
    }

    // kill is answered.
    ok(&d.docker_within(&["kill", "flood"], None, LIMIT));
    assert_eq!(
        ok(&d.docker_within(&["wait", "flood"], None, LIMIT)).trim(),
        "137"
    );
    // stop: the shell as pid 1 ignores SIGTERM, so the SIGKILL after the timeout ends it.
    ok(&d.docker_within(&["start", "flood"], None, LIMIT));
    std::thread::sleep(Duration::from_millis(500));
    ok(&d.docker_within(&["stop", "-t", "1", "flood"], None, LIMIT));
    assert_eq!(state(&d, "flood"), "exited 137");
    // rm -f of one that floods through a terminal.
    ok(&d.docker_within(&["rm", "-f", "floodtty"], None, LIMIT));
    let o = d.docker_within(&["inspect", "floodtty"], None, LIMIT);
    assert!(!o.status.success(), "floodtty still there");
}
