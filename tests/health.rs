//! Healthchecks, detach keys and `top` with ps options, end to end: the real docker CLI, the berth CLI and
//! the raw API against `berth daemon`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::ok;
use common::Daemon;
use serde_json::Value;

fn health(d: &Daemon, name: &str) -> Value {
    d.get_json(&format!("/containers/{name}/json"))["State"]["Health"].clone()
}

/// Waits (15 s at most) until the container's health satisfies `pred`; returns it.
#[track_caller]
fn wait_health(d: &Daemon, name: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let h = health(d, name);
        if pred(&h) {
            return h;
        }
        assert!(Instant::now() < deadline, "health never matched: {h}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn status(h: &Value) -> &str {
    h["Status"].as_str().unwrap_or("")
}

fn ps_names(d: &Daemon, filter: &str) -> String {
    ok(&d.docker(&["ps", "--filter", filter, "--format", "{{.Names}}"]))
}

#[test]
fn a_passing_check_makes_the_container_healthy_in_inspect_ps_and_events() {
    let d = common::docker_daemon();
    let since = unix_now().to_string();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "fine",
        "--health-cmd",
        "echo ok-$((40+2)); echo err >&2",
        "--health-interval",
        "200ms",
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "waiting",
        "--health-cmd",
        "true",
        "--health-interval",
        "1h",
        "busybox",
        "sleep",
        "1000",
    ]));
    // Until the first probe: starting, with an empty log (a list, not null).
    let h = health(&d, "waiting");
    assert_eq!(status(&h), "starting", "{h}");
    assert_eq!(h["FailingStreak"], 0);
    assert_eq!(h["Log"], serde_json::json!([]));
    let ps = ok(&d.docker(&["ps", "--filter", "name=waiting", "--format", "{{.Status}}"]));
    assert!(ps.trim_end().ends_with("(health: starting)"), "{ps}");
    assert!(ps_names(&d, "health=starting")
        .lines()
        .any(|l| l == "waiting"));

    let h = wait_health(&d, "fine", |h| status(h) == "healthy");
    let entry = &h["Log"][0];
    assert_eq!(entry["ExitCode"], 0, "{h}");
    let output = entry["Output"].as_str().unwrap();
    assert!(
        output.contains("ok-42\n") && output.contains("err\n"),
        "{h}"
    );
    assert!(entry["Start"].as_str().unwrap() <= entry["End"].as_str().unwrap());
    let cfg = d.get_json("/containers/fine/json")["Config"]["Healthcheck"].clone();
    assert_eq!(cfg["Test"][0], "CMD-SHELL");
    assert_eq!(cfg["Interval"], 200_000_000);

    let ps = ok(&d.docker(&["ps", "--filter", "name=fine", "--format", "{{.Status}}"]));
    assert!(ps.trim_end().ends_with("(healthy)"), "{ps}");
    assert_eq!(ps_names(&d, "health=healthy"), "fine\n");
    assert_eq!(ps_names(&d, "health=starting"), "waiting\n");
    assert_eq!(ps_names(&d, "health=none"), "");
    let bad = d.docker(&["ps", "--filter", "health=great"]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr)
            .contains("Unrecognised filter value for health: great"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );

    // The log keeps the last five results.
    let h = wait_health(&d, "fine", |h| {
        h["Log"].as_array().is_some_and(|l| l.len() == 5)
    });
    std::thread::sleep(Duration::from_millis(500));
    let later = health(&d, "fine");
    assert_eq!(later["Log"].as_array().unwrap().len(), 5);
    assert_ne!(later["Log"][0]["Start"], h["Log"][0]["Start"]);

    let until = (unix_now() + 1).to_string();
    let events = ok(&d.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{.Action}}",
    ]));
    let lines: Vec<&str> = events.lines().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| **l == "health_status: healthy")
            .count(),
        1,
        "{events}"
    );
    assert!(
        lines.contains(&"exec_create: /bin/sh -c echo ok-$((40+2)); echo err >&2"),
        "{events}"
    );
    assert!(lines.contains(&"exec_die"), "{events}");
}

#[test]
fn failures_make_it_unhealthy_after_the_retries_but_not_during_the_start_period() {
    let d = common::docker_daemon();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "sick",
        "--health-cmd",
        "echo no; exit 3",
        "--health-interval",
        "100ms",
        "--health-retries",
        "3",
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "slow",
        "--health-cmd",
        "exit 1",
        "--health-interval",
        "30s",
        "--health-start-period",
        "20s",
        "--health-start-interval",
        "100ms",
        "busybox",
        "sleep",
        "1000",
    ]));
    let h = wait_health(&d, "sick", |h| status(h) == "unhealthy");
    assert!(h["FailingStreak"].as_i64().unwrap() >= 3, "{h}");
    assert_eq!(h["Log"][0]["ExitCode"], 3);
    assert_eq!(h["Log"][0]["Output"], "no\n");
    assert_eq!(ps_names(&d, "health=unhealthy"), "sick\n");
    let ps = ok(&d.docker(&["ps", "--filter", "name=sick", "--format", "{{.Status}}"]));
    assert!(ps.trim_end().ends_with("(unhealthy)"), "{ps}");

    // Within the start period, failures are logged (every start interval) but do not count.
    let h = wait_health(&d, "slow", |h| {
        h["Log"].as_array().is_some_and(|l| l.len() >= 4)
    });
    assert_eq!(status(&h), "starting", "{h}");
    assert_eq!(h["FailingStreak"], 0, "{h}");
    assert_eq!(ps_names(&d, "health=starting"), "slow\n");

    // A check that outlives its timeout is killed and fails.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "hung",
        "--health-cmd",
        "echo begun; sleep 60",
        "--health-timeout",
        "300ms",
        "--health-interval",
        "100ms",
        "--health-retries",
        "1",
        "busybox",
        "sleep",
        "1000",
    ]));
    let h = wait_health(&d, "hung", |h| status(h) == "unhealthy");
    assert_eq!(h["Log"][0]["ExitCode"], -1, "{h}");
    assert_eq!(
        h["Log"][0]["Output"],
        "Health check exceeded timeout (300ms): begun\n"
    );
    // The killed probes are gone from the container.
    std::thread::sleep(Duration::from_millis(200));
    let top = ok(&d.docker(&["top", "hung", "-o", "pid,args"]));
    assert!(
        top.matches("sleep 60").count() <= 1,
        "killed probes pile up:\n{top}"
    );

    // Output is cut at 4096 bytes.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "--health-cmd",
        "yes 0123456789 | head -c 5000",
        "--health-interval",
        "100ms",
        "busybox",
        "sleep",
        "1000",
    ]));
    let h = wait_health(&d, "chatty", |h| status(h) == "healthy");
    let output = h["Log"][0]["Output"].as_str().unwrap();
    assert_eq!(output.len(), 4096 + 3);
    assert!(output.ends_with("..."));
}

#[test]
fn none_and_no_healthcheck_leave_no_health_state_and_bad_values_are_refused() {
    let d = common::docker_daemon();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--no-healthcheck",
        "busybox",
        "sleep",
        "1000",
    ]));
    let c = d.get_json("/containers/plain/json");
    assert_eq!(
        c["Config"]["Healthcheck"]["Test"],
        serde_json::json!(["NONE"])
    );
    assert!(c["State"].get("Health").is_none(), "{}", c["State"]);
    assert_eq!(ps_names(&d, "health=none"), "plain\n");
    let ps = ok(&d.docker(&["ps", "--format", "{{.Status}}"]));
    assert!(!ps.contains('('), "{ps}");

    // The berth CLI sends what the docker CLI sends.
    let flags = [
        "--health-cmd",
        "true",
        "--health-interval",
        "1m30s",
        "--health-timeout",
        "2s",
        "--health-retries",
        "4",
        "--health-start-period",
        "1.5s",
        "--health-start-interval",
        "250ms",
    ];
    let mut docker_args = vec!["create", "--name", "hc-docker"];
    docker_args.extend(flags);
    docker_args.push("busybox");
    ok(&d.docker(&docker_args));
    let mut berth_args = vec!["create", "--name", "hc-berth"];
    berth_args.extend(flags);
    berth_args.push("busybox");
    ok(&d.berth(&berth_args));
    let hc =
        |n: &str| d.get_json(&format!("/containers/{n}/json"))["Config"]["Healthcheck"].clone();
    assert_eq!(hc("hc-docker"), hc("hc-berth"));
    assert_eq!(hc("hc-berth")["StartInterval"], 250_000_000);
    let e = d.berth(&[
        "run",
        "--no-healthcheck",
        "--health-retries",
        "2",
        "busybox",
    ]);
    assert_eq!(e.status.code(), Some(125));
    assert!(
        String::from_utf8_lossy(&e.stderr)
            .contains("--no-healthcheck conflicts with --health-* options"),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );

    let r = d.request(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox","Healthcheck":{"Test":["CMD","true"],"Interval":10}}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "Interval in Healthcheck cannot be less than 1ms"
    );
    let r = d.request(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox","Healthcheck":{"Test":["CMD","true"],"Retries":-1}}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "Retries in Healthcheck cannot be negative"
    );
}

#[test]
fn checks_stop_with_the_container_and_resume_after_a_restart_and_a_daemon_kill() {
    let mut d = common::docker_daemon();
    // `CMD` form: executed directly, no shell.
    let r = d.request(
        "POST",
        "/containers/create?name=svc",
        br#"{"Image":"busybox","Cmd":["sleep","1000"],"Healthcheck":{"Test":["CMD","test","-d","/proc/1"],"Interval":100000000}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    ok(&d.docker(&["start", "svc"]));
    wait_health(&d, "svc", |h| status(h) == "healthy");
    ok(&d.docker(&["stop", "-t", "1", "svc"]));
    let stopped = health(&d, "svc");
    assert_eq!(status(&stopped), "unhealthy", "{stopped}");
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        health(&d, "svc")["Log"],
        stopped["Log"],
        "checks ran on a stopped container"
    );

    ok(&d.docker(&["start", "svc"]));
    wait_health(&d, "svc", |h| status(h) == "healthy");

    // Paused: no checks (and unhealthy, as dockerd shows it); unpaused: checks again.
    ok(&d.docker(&["pause", "svc"]));
    let paused = health(&d, "svc");
    assert_eq!(status(&paused), "unhealthy");
    ok(&d.docker(&["unpause", "svc"]));
    wait_health(&d, "svc", |h| status(h) == "healthy");

    // Live restore: the checks resume for the running container.
    d.kill();
    d.spawn();
    let before = health(&d, "svc")["Log"]
        .as_array()
        .map(|l| l.last().cloned());
    let h = wait_health(&d, "svc", |h| {
        status(h) == "healthy" && h["Log"].as_array().map(|l| l.last().cloned()) != before
    });
    assert_eq!(h["FailingStreak"], 0);
}

#[test]
fn top_runs_ps_with_the_given_options_and_keeps_the_container_processes() {
    let d = common::docker_daemon();
    ok(&d.docker(&["run", "-d", "--name", "topc", "busybox", "sleep", "1000"]));
    let aux = ok(&d.docker(&["top", "topc", "aux"]));
    let mut lines = aux.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("USER") && header.contains("PID") && header.contains("%CPU"),
        "{aux}"
    );
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{aux}");
    assert!(rows[0].ends_with("sleep 1000"), "{aux}");

    let o = ok(&d.docker(&["top", "topc", "-o", "pid,comm"]));
    let pid = d.get_json("/containers/topc/json")["State"]["Pid"]
        .as_i64()
        .unwrap();
    let mut lines = o.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["PID", "COMMAND"]
    );
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        [pid.to_string().as_str(), "sleep"]
    );

    let r = d.request("GET", "/containers/topc/top?ps_args=-o%20comm", &[]);
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["message"], "Couldn't find PID field in ps output");
    let e = d.docker(&["top", "topc", "-o", "comm"]);
    assert!(!e.status.success());
    assert_eq!(
        String::from_utf8_lossy(&e.stderr),
        "Error response from daemon: Couldn't find PID field in ps output\n"
    );
    // The berth CLI passes the options too.
    let b = ok(&d.berth(&["top", "topc", "-o", "pid,comm"]));
    assert!(b.contains("sleep"), "{b}");
}

fn is_running(d: &Daemon, name: &str) -> bool {
    d.get_json(&format!("/containers/{name}/json"))["State"]["Running"] == true
}

/// Types the detach keys one at a time, as a user does.
fn detach(t: &common::Terminal, keys: &[&str]) {
    for k in keys {
        t.keys(k);
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn detach_keys_leave_the_container_running_in_a_real_terminal() {
    let d = common::docker_daemon();
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
        let name = format!("shell{i}");
        let t = common::Terminal::start(&format!("detach{i}"), "sh");
        t.type_line(&format!(
            "{client} run -it --name {name} busybox sh; echo RUN-EXITED $?"
        ));
        t.wait_for("/ #");
        t.type_line("echo typed-$((40+2)); stty size");
        let s = t.wait_for("typed-42");
        assert!(t.wait_for("30 100").contains("typed-42"), "{s}");
        detach(&t, &["C-p", "C-q"]);
        t.wait_for("RUN-EXITED 0");
        assert!(is_running(&d, &name), "detaching stopped the container");

        // Attach again: the same shell; the detach keys end `attach` with Docker's message and status 1.
        t.type_line(&format!("{client} attach {name}; echo ATTACH-EXITED $?"));
        std::thread::sleep(Duration::from_millis(500));
        t.type_line("echo again-$((1+1))");
        t.wait_for("again-2");
        detach(&t, &["C-p", "C-q"]);
        let s = t.wait_for("ATTACH-EXITED 1");
        assert!(s.contains("read escape sequence"), "{s}");
        assert!(is_running(&d, &name));

        // Other keys with --detach-keys; Ctrl-P alone then passes through.
        t.type_line(&format!(
            "{client} attach --detach-keys ctrl-x,x {name}; echo CUSTOM-EXITED $?"
        ));
        std::thread::sleep(Duration::from_millis(500));
        detach(&t, &["C-p", "C-q"]);
        t.type_line("echo still-$((2+1))");
        t.wait_for("still-3");
        detach(&t, &["C-x", "x"]);
        t.wait_for("CUSTOM-EXITED 1");
        assert!(is_running(&d, &name));

        // exec -it detaches the same way; the process goes on.
        t.type_line(&format!(
            "{client} exec -it {name} sh -c 'echo in-exec; exec sleep 555'; echo EXEC-EXITED $?"
        ));
        t.wait_for("in-exec");
        detach(&t, &["C-p", "C-q"]);
        t.wait_for("EXEC-EXITED 1");
        let top = ok(&d.docker(&["top", &name, "-o", "pid,args"]));
        assert!(top.contains("sleep 555"), "{top}");

        // The shell still ends the container when it exits.
        t.type_line(&format!("{client} start -ai {name}; echo START-EXITED $?"));
        std::thread::sleep(Duration::from_millis(500));
        t.type_line("exit 5");
        t.wait_for("START-EXITED 5");
        assert!(!is_running(&d, &name));
    }
}
