//! Container stdio under load, end to end with the real docker CLI, the berth CLI and raw hijacked
//! connections: a container that writes as fast as it can is still killed, stopped, removed, exec'd
//! into and attached to, its json-file log held to max-size × max-file; stdin of any size reaches
//! containers and exec sessions, with and without a TTY, and its end is the process's EOF.
//!
//! Every command runs under a time limit: these are the bugs that used to hang.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{ok, Daemon};
use sha2::{Digest, Sha256};

/// What any one command may take here, far above what it needs.
const LIMIT: Duration = Duration::from_secs(30);
/// For commands that carry 100 MB.
const BIG_LIMIT: Duration = Duration::from_secs(180);

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
        // A rotation removes the old `.1` before it renames the live file to it: read again if it
        // fell between.
        let last = (0..100)
            .find_map(|_| {
                let r = std::fs::read_to_string(format!("{log}.1")).ok();
                if r.is_none() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                r
            })
            .expect("the rotated log");
        let entry: serde_json::Value = serde_json::from_str(last.lines().last().unwrap()).unwrap();
        assert_eq!(entry["stream"], "stdout", "{entry}");
        let line = if tty { "y\r\n" } else { "y\n" };
        assert_eq!(entry["log"], line, "{entry}");
    }

    // kill returns, and the container has stopped by then.
    ok(&d.docker_within(&["kill", "flood"], None, LIMIT));
    assert_eq!(state(&d, "flood"), "exited 137");
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

/// A file of `len` pseudo-random bytes (xorshift: no pattern a pipe could mangle unnoticed), printable
/// ones with `printable` (a terminal's detach keys are control characters); returns its sha256 in hex.
fn random_file(path: &Path, len: usize, printable: bool) -> String {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hash = Sha256::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        for chunk in block[..n].chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
        }
        if printable {
            for b in &mut block[..n] {
                *b = b'!' + *b % 94;
            }
        }
        hash.update(&block[..n]);
        f.write_all(&block[..n]).unwrap();
        left -= n;
    }
    f.flush().unwrap();
    hex(&hash.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn stdin_of_any_size_reaches_exec_and_run_and_its_end_is_eof() {
    let d = daemon();
    ok(&d.docker_within(
        &["run", "-d", "--name", "sink", "busybox", "sleep", "1000"],
        None,
        LIMIT,
    ));
    // Just over a pipe's capacity (where it used to hang), and 100 MB.
    for len in [65_537, 100 << 20] {
        let input = d.dir.path().join(format!("input-{len}"));
        let digest = random_file(&input, len, false);
        let want = format!("{digest}  -\n");
        let runs = [
            (
                "docker exec -i",
                true,
                vec!["exec", "-i", "sink", "sha256sum"],
            ),
            (
                "docker run -i",
                true,
                vec!["run", "-i", "--rm", "busybox", "sha256sum"],
            ),
            (
                "berth exec -i",
                false,
                vec!["exec", "-i", "sink", "sha256sum"],
            ),
            (
                "berth run -i",
                false,
                vec!["run", "-i", "--rm", "busybox", "sha256sum"],
            ),
        ];
        for (what, docker, args) in runs {
            let o = if docker {
                d.docker_within(&args, Some(&input), BIG_LIMIT)
            } else {
                d.berth_within(&args, Some(&input), BIG_LIMIT)
            };
            assert_eq!(ok(&o), want, "{what} with {len} bytes");
        }
        std::fs::remove_file(&input).unwrap();
    }
}

/// POSTs `path` asking for a hijacked connection (`Upgrade: tcp`, as the docker CLI does) and returns
/// the connection after the `101` head.
fn hijack(d: &Daemon, path: &str, body: &str) -> UnixStream {
    let mut s = UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(LIMIT)).unwrap();
    s.set_write_timeout(Some(LIMIT)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Feeds `data` into a TTY session on `s` once it shows READY (its terminal is raw by then), and
/// returns everything it printed until it closed.
fn feed_tty(mut s: UnixStream, data: Vec<u8>) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while !String::from_utf8_lossy(&seen).contains("READY") {
        let n = s.read(&mut buf).expect("output before READY");
        assert!(
            n > 0,
            "closed before READY: {:?}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let mut w = s.try_clone().unwrap();
    let feeder = std::thread::spawn(move || w.write_all(&data));
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "reading the session: {e}: {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
    feeder.join().unwrap().unwrap();
    seen
}

#[test]
fn stdin_through_a_tty_reaches_exec_and_attach_in_full() {
    let d = daemon();
    const LEN: usize = 4 << 20;
    let input = d.dir.path().join("tty-input");
    let digest = random_file(&input, LEN, true);
    let data = std::fs::read(&input).unwrap();
    // Raw mode and no echo: the terminal passes every byte as it is.
    let script = format!("stty raw -echo; echo READY; head -c {LEN} | sha256sum");

    ok(&d.docker_within(
        &["run", "-d", "--name", "ttysink", "busybox", "sleep", "1000"],
        None,
        LIMIT,
    ));
    let create = serde_json::json!({
        "AttachStdin": true, "AttachStdout": true, "AttachStderr": true, "Tty": true,
        "Cmd": ["sh", "-c", script],
    });
    let r = d.request(
        "POST",
        "/containers/ttysink/exec",
        create.to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["Id"].as_str().unwrap().to_owned();
    let s = hijack(
        &d,
        &format!("/exec/{id}/start"),
        r#"{"Detach":false,"Tty":true}"#,
    );
    let seen = feed_tty(s, data.clone());
    assert!(
        String::from_utf8_lossy(&seen).contains(&format!("{digest}  -")),
        "exec: {:?}",
        String::from_utf8_lossy(&seen)
    );

    // The container's own terminal, through attach (as `docker run -it` does it).
    let create = serde_json::json!({
        "Image": "busybox", "Cmd": ["sh", "-c", script], "Tty": true, "OpenStdin": true,
        "AttachStdin": true, "AttachStdout": true, "AttachStderr": true,
    });
    let r = d.request(
        "POST",
        "/containers/create?name=ttyrun",
        create.to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let s = hijack(
        &d,
        "/containers/ttyrun/attach?stream=1&stdin=1&stdout=1&stderr=1",
        "",
    );
    let r = d.request("POST", "/containers/ttyrun/start", b"");
    assert_eq!(r.status, 204, "{}", r.text());
    let seen = feed_tty(s, data);
    assert!(
        String::from_utf8_lossy(&seen).contains(&format!("{digest}  -")),
        "attach: {:?}",
        String::from_utf8_lossy(&seen)
    );
}

#[test]
fn exec_output_waits_for_a_slow_reader_instead_of_being_lost() {
    let d = daemon();
    ok(&d.docker_within(
        &["run", "-d", "--name", "slow", "busybox", "sleep", "1000"],
        None,
        LIMIT,
    ));
    const LEN: usize = 50_000_000;
    let script = format!("yes | head -c {LEN}; echo END");
    let mut child = d
        .docker_command(&["exec", "slow", "sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Nothing read for a while: far more than any buffer on the way piles up behind the reader.
        std::thread::sleep(Duration::from_secs(3));
        let mut all = Vec::with_capacity(LEN + 4);
        let _ = stdout.read_to_end(&mut all);
        let _ = tx.send(all);
    });
    let all = rx.recv_timeout(BIG_LIMIT);
    if all.is_err() {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let all = all.unwrap_or_else(|_| panic!("the exec did not end within {BIG_LIMIT:?}"));
    assert!(status.success(), "exit {status:?}");
    assert_eq!(all.len(), LEN + 4, "bytes lost");
    assert!(all.ends_with(b"y\nEND\n"));
}
