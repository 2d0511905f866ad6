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
