//! `exec` end to end: the real docker CLI, the berth CLI and the raw API against `berth daemon` — output,
//! stdin, exit codes, user/env/workdir, TTY in a real terminal, detached execs, inspect, events, and exec
//! into a container found again after a daemon restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ok, out};
use common::{Daemon, Terminal};

fn running(d: &Daemon, name: &str) {
    ok(&d.docker(&["run", "-d", "--name", name, "busybox", "sleep", "1000"]));
}

#[test]
fn exec_runs_in_the_container_and_returns_exit_codes() {
    let d = common::docker_daemon();
    running(&d, "web");
    assert_eq!(ok(&d.docker(&["exec", "web", "echo", "hello"])), "hello\n");
    // The container's PID namespace: its init is pid 1, and the exec is a sibling of it.
    let ps = ok(&d.docker(&["exec", "web", "ps", "-o", "pid,comm"]));
    assert!(ps.contains("    1 sleep"), "{ps}");
    let host = ok(&d.docker(&["exec", "web", "hostname"]));
    let id = ok(&d.docker(&["inspect", "-f", "{{.Id}}", "web"]));
    assert_eq!(host.trim(), &id[..12]);

    let o = d.docker(&["exec", "web", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(out(&o), "out\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");

    let o = d.docker(&["exec", "web", "no-such-program"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        out(&o).contains(
            "OCI runtime exec failed: exec failed: unable to start container process: \
             exec: \"no-such-program\": executable file not found in $PATH: unknown"
        ),
        "{}",
        out(&o)
    );
    let o = d.docker(&["exec", "-w", "/no/such/dir", "web", "true"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        out(&o).contains(
            "chdir to cwd (\"/no/such/dir\") set in config.json failed: no such file or directory"
        ),
        "{}",
        out(&o)
    );
    let o = d.docker(&["exec", "web", "/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", out(&o));

    // User, group, env (the container's, overridden), workdir; HOME "/" for a user without a passwd
    // entry (root's comes from the image's /etc/passwd).
    assert_eq!(
        ok(&d.docker(&["exec", "web", "sh", "-c", "echo $HOME"])),
        "/root\n"
    );
    let o = d.docker(&["exec", "-u", "nosuchuser", "web", "true"]);
    assert_eq!(o.status.code(), Some(126));
    assert!(
        out(&o).contains("unable to find user nosuchuser: no matching entries in passwd file"),
        "{}",
        out(&o)
    );
    let o = ok(&d.docker(&[
        "exec",
        "-u",
        "1000:1000",
        "-w",
        "/tmp",
        "-e",
        "A=1",
        "web",
        "sh",
        "-c",
        "echo $(id -u) $(pwd) $A $HOME",
    ]));
    assert_eq!(o, "1000 /tmp 1 /\n");
    // stdin with -i; none without.
    let input = d.dir.path().join("input");
    std::fs::write(&input, "line one\nline two\n").unwrap();
    assert_eq!(
        ok(&d.docker_stdin(
            &["exec", "-i", "web", "sh", "-c", "cat; echo end"],
            Some(&input)
        )),
        "line one\nline two\nend\n"
    );
    assert_eq!(
        ok(&d.docker_stdin(&["exec", "web", "sh", "-c", "cat; echo end"], Some(&input))),
        "end\n"
    );
    // Capabilities: the container's by default, all of the daemon's with --privileged.
    let caps = |args: &[&str]| {
        let mut a = vec!["exec"];
        a.extend_from_slice(args);
        a.extend_from_slice(&["web", "grep", "CapEff", "/proc/self/status"]);
        ok(&d.docker(&a))
    };
    assert_eq!(caps(&[]), "CapEff:\t00000000a80425fb\n");
    assert_ne!(caps(&["--privileged"]), caps(&[]));
}

#[test]
fn detached_execs_inspect_and_events() {
    let d = common::docker_daemon();
    running(&d, "host");
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    ok(&d.docker(&[
        "exec",
        "-d",
        "host",
        "sh",
        "-c",
        "echo $$ >/tmp/pid; exec sleep 30",
    ]));
    let ps = ok(&d.docker(&["top", "host"]));
    assert!(ps.contains("sleep 30"), "{ps}");
    let ids = ok(&d.docker(&["inspect", "-f", "{{json .ExecIDs}}", "host"]));
    let ids: Vec<String> = serde_json::from_str(ids.trim()).unwrap();
    assert_eq!(ids.len(), 1);
    let info = d.get_json(&format!("/exec/{}/json", ids[0]));
    assert_eq!(info["Running"], true);
    assert!(info["Pid"].as_i64().unwrap() > 0);
    assert_eq!(info["ProcessConfig"]["entrypoint"], "sh");
    assert_eq!(
        info["ProcessConfig"]["arguments"][1],
        "echo $$ >/tmp/pid; exec sleep 30"
    );
    assert_eq!(info["ExitCode"], serde_json::Value::Null);
    ok(&d.docker(&["exec", "host", "sh", "-c", "kill $(cat /tmp/pid)"]));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let info = d.get_json(&format!("/exec/{}/json", ids[0]));
        if info["Running"] == false {
            assert_eq!(info["ExitCode"], 143);
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{info}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{json .ExecIDs}}", "host"])).trim(),
        "null"
    );
    let until = since + 30;
    let ev = ok(&d.docker(&[
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1)
        .to_string(),
        "--filter",
        "container=host",
        "--format",
        "{{.Action}} {{index .Actor.Attributes \"execID\"}}",
    ]));
    let _ = until;
    for want in [
        format!(
            "exec_create: sh -c echo $$ >/tmp/pid; exec sleep 30 {}",
            ids[0]
        ),
        format!(
            "exec_start: sh -c echo $$ >/tmp/pid; exec sleep 30 {}",
            ids[0]
        ),
        format!("exec_die {}", ids[0]),
    ] {
        assert!(ev.lines().any(|l| l == want), "{want:?} missing from\n{ev}");
    }
    // Not running, paused: refused as Docker refuses them.
    ok(&d.docker(&["pause", "host"]));
    let o = d.docker(&["exec", "host", "true"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is paused, unpause the container before exec")
    );
    ok(&d.docker(&["unpause", "host"]));
    ok(&d.docker(&["kill", "host"]));
    ok(&d.docker(&["wait", "host"]));
    let o = d.docker(&["exec", "host", "true"]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("is not running"),
        "{o:?}"
    );
    let r = d.request("GET", "/exec/0123456789ab/json", b"");
    assert_eq!(r.status, 404);
}

#[test]
fn berth_exec_matches_docker_exec() {
    let d = common::docker_daemon();
    running(&d, "both");
    let script = "echo out; echo err >&2; exit 3";
    let a = d.docker(&["exec", "-e", "X=y", "both", "sh", "-c", script]);
    let b = d.berth(&["exec", "-e", "X=y", "both", "sh", "-c", script]);
    assert_eq!(a.status.code(), b.status.code());
    assert_eq!(a.stdout, b.stdout);
    assert_eq!(a.stderr, b.stderr);
    let a = d.docker(&["exec", "both", "no-such-program"]);
    let b = d.berth(&["exec", "both", "no-such-program"]);
    assert_eq!((a.status.code(), out(&a)), (b.status.code(), out(&b)));
    let input = d.dir.path().join("input");
    std::fs::write(&input, "piped\n").unwrap();
    assert_eq!(
        ok(&d.berth_stdin(&["exec", "-i", "both", "cat"], Some(&input))),
        "piped\n"
    );
    ok(&d.berth(&["exec", "-d", "both", "sleep", "20"]));
    assert!(ok(&d.docker(&["top", "both"])).contains("sleep 20"));
}

#[test]
fn exec_with_a_tty_has_the_terminal_modes_of_run_t() {
    let d = common::docker_daemon();
    running(&d, "modes");
    let limit = std::time::Duration::from_secs(30);
    // `stty -g`: every termios flag; the output goes through the pty's ONLCR, as under Docker.
    let script = "echo a; echo b; stty -g";
    let run_t = ok(&d.docker_within(
        &["run", "--rm", "-t", "busybox", "sh", "-c", script],
        None,
        limit,
    ));
    assert!(run_t.starts_with("a\r\nb\r\n"), "{run_t:?}");
    let exec_t = ok(&d.docker_within(&["exec", "-t", "modes", "sh", "-c", script], None, limit));
    assert_eq!(exec_t, run_t);
    let berth_t = ok(&d.berth_within(&["exec", "-t", "modes", "sh", "-c", script], None, limit));
    assert_eq!(berth_t, run_t);

    // A command that does not exist: dockerd >= 28 keeps the 127 its start error maps to (before
    // moby c866a7e5 it overwrote every failed exec start with 126), terminal or not.
    for tty in [true, false] {
        let mut args = vec!["exec"];
        if tty {
            args.push("-t");
        }
        args.extend(["modes", "no-such-program"]);
        let o = d.docker_within(&args, None, limit);
        assert_eq!(o.status.code(), Some(127), "tty {tty}: {}", out(&o));
        assert!(
            out(&o).contains("OCI runtime exec failed: exec failed: unable to start container process: exec: \"no-such-program\": executable file not found in $PATH: unknown"),
            "tty {tty}: {}",
            out(&o)
        );
    }
}

#[test]
fn exec_with_a_tty_in_a_real_terminal() {
    let d = common::docker_daemon();
    running(&d, "term");
    let env = format!(
        "DOCKER_HOST={} DOCKER_CONFIG={}",
        d.host(),
        d.dir.path().join("docker-config").display()
    );
    for (i, client) in [
        format!("{env} {}", common::docker_bin().display()),
        format!("{} -H {}", common::berth_bin().display(), d.host()),
    ]
    .into_iter()
    .enumerate()
    {
        let t = Terminal::start(
            &format!("exec{i}"),
            &format!("{client} exec -it term sh; echo EXITED $?; sleep 30"),
        );
        t.wait_for("/ #");
        t.type_line("echo typed-$((40+2)); tty; stty size");
        let s = t.wait_for("30 100");
        assert!(s.contains("typed-42"), "{s}");
        assert!(s.contains("/dev/pts/"), "{s}");
        t.type_line("exit 4");
        t.wait_for("EXITED 4");
    }
}

#[test]
fn exec_works_in_a_container_found_again_after_a_daemon_kill() {
    let mut d = common::docker_daemon();
    running(&d, "kept");
    d.kill();
    d.spawn();
    assert_eq!(
        ok(&d.docker(&["exec", "kept", "echo", "still here"])),
        "still here\n"
    );
}
