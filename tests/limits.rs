//! Limits that cannot be switched off by mistake: values that would mean "unlimited" further down (a zero or
//! negative log size, no log files, a negative memory limit) are refused at create and update with dockerd's
//! words, through the docker CLI and the API alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{err, ok};

#[test]
fn log_and_memory_limits_cannot_be_switched_off() {
    let d = common::docker_daemon();
    for (opt, want) in [
        ("max-size=0", "max-size must be a positive number"),
        ("max-size=-1", "invalid size: '-1'"),
        ("max-file=0", "max-file cannot be less than 1"),
        ("nope=1", "unknown log opt 'nope' for json-file log driver"),
    ] {
        let o = d.docker(&["run", "--rm", "--log-opt", opt, "busybox", "true"]);
        assert_eq!(o.status.code(), Some(125), "{opt}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("Error response from daemon: {want}")),
            "{opt}: {}",
            err(&o)
        );
    }
    // Within bounds, the options hold.
    ok(&d.docker(&[
        "run",
        "--rm",
        "--log-opt",
        "max-size=1m",
        "--log-opt",
        "max-file=2",
        "busybox",
        "true",
    ]));

    // The API with a negative memory limit (the docker CLI refuses to send one).
    let body = br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":-1}}"#;
    let r = d.request("POST", "/containers/create", body);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("Minimum memory limit allowed is 6MB"));
    let body =
        br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":67108864,"MemorySwap":-7}}"#;
    let r = d.request("POST", "/containers/create", body);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "", "nothing was created");

    // Update checks the same values.
    ok(&d.docker(&["create", "--name", "upd", "-m", "64m", "busybox", "true"]));
    let r = d.request("POST", "/containers/upd/update", br#"{"Memory":-1}"#);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("Minimum memory limit allowed is 6MB"));
}

#[test]
fn a_huge_json_body_is_refused_with_413_and_costs_no_memory() {
    let d = common::Daemon::start();
    common::require("curl", "curl");
    let big = d.dir.path().join("big.json");
    // 100 MB of JSON: one environment variable.
    let mut body = br#"{"Image":"busybox","Env":["X="#.to_vec();
    body.resize(body.len() + (100 << 20), b'a');
    body.extend_from_slice(br#""]}"#);
    std::fs::write(&big, &body).unwrap();
    let o = std::process::Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(d.socket())
        .args([
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
        ])
        .arg(format!("@{}", big.display()))
        .args(["-w", "\n%{http_code}", "http://berth/containers/create"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.ends_with("\n413"), "{text}");
    assert!(
        text.contains("request body too large: JSON bodies are limited to 8 MiB"),
        "{text}"
    );
    // The daemon read at most the limit: its peak resident size stays far below the body's size.
    let pid = d.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(hwm_kb < 64 * 1024, "peak RSS {hwm_kb} kB");
    assert_eq!(d.request("GET", "/_ping", &[]).status, 200);
}

/// What dockerd (or runc, at start) refuses is refused at create and update, with a 400 and the same words,
/// through the docker CLI and the API; nothing is recorded.
#[test]
fn settings_dockerd_refuses_are_refused_at_create_and_update() {
    let d = common::docker_daemon();
    // Through the docker CLI, which sends these as they are (it checks none of them itself).
    for (args, want) in [
        (
            &["--cpuset-cpus", "4095"][..],
            "Requested CPUs are not available - requested 4095, available: 0",
        ),
        (
            &["--cpuset-cpus", "1-0"][..],
            "Invalid value 1-0 for cpuset cpus: invalid format: 1-0",
        ),
        (
            &["--oom-score-adj", "1001"][..],
            "Invalid value 1001, range for oom score adj is [-1000, 1000]",
        ),
        (
            &["--net", "host", "--sysctl", "net.ipv4.ip_forward=1"][..],
            "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace",
        ),
        (
            &["-w", "rel"][..],
            "the working directory 'rel' is invalid, it needs to be an absolute path",
        ),
        (
            &["-m", "64m", "--memory-swap", "32m"][..],
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
    ] {
        let mut argv = vec!["create"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["busybox", "true"]);
        let o = d.docker(&argv);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("Error response from daemon: {want}")),
            "{args:?}: {}",
            err(&o)
        );
    }
    // Through the API, for what the docker CLI would refuse before sending.
    for (host, want) in [
        (r#"{"ShmSize":-1}"#, "SHM size can not be less than 0"),
        (
            r#"{"Ulimits":[{"Name":"nofiles","Soft":1,"Hard":1}]}"#,
            "invalid ulimit type: nofiles",
        ),
        (
            r#"{"Ulimits":[{"Name":"nofile","Soft":20,"Hard":10}]}"#,
            "ulimit soft limit must be less than or equal to hard limit: 20 > 10",
        ),
        (
            r#"{"Sysctls":{"kernel.panic":"1"}}"#,
            "sysctl 'kernel.panic=1' is not allowed",
        ),
    ] {
        let body = format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{host}}}"#);
        let r = d.request("POST", "/containers/create", body.as_bytes());
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 400, "{host}: {text}");
        assert!(text.contains(want), "{host}: {text}");
    }
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "", "nothing was created");

    // `docker update` checks the cpuset and the memory values as create does.
    ok(&d.docker(&["create", "--name", "upd", "busybox", "true"]));
    for (args, want) in [
        (
            &["--cpuset-cpus", "4095"][..],
            "Requested CPUs are not available - requested 4095, available: 0",
        ),
        (
            &["--cpuset-mems", "x"][..],
            "Invalid value x for cpuset mems: invalid format: x",
        ),
        (
            &["--memory-reservation", "1k"][..],
            "Minimum memory reservation allowed is 6MB",
        ),
    ] {
        let mut argv = vec!["update"];
        argv.extend_from_slice(args);
        argv.push("upd");
        let o = d.docker(&argv);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(want), "{args:?}: {}", err(&o));
    }
    let cpus = ok(&d.docker(&["inspect", "-f", "{{.HostConfig.CpusetCpus}}", "upd"]));
    assert_eq!(cpus.trim(), "", "a refused update changed nothing");
}
