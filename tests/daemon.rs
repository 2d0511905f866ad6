//! `berth daemon` as a process: one daemon per data root, restarts after crashes, clean shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;

#[test]
fn second_daemon_on_the_same_root_fails_clearly() {
    let d = Daemon::start();
    let out = d
        .daemon_command()
        .arg("--pidfile")
        .arg(d.dir.path().join("other.pid"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another berth daemon is already using data root"),
        "{err}"
    );
    // The first daemon is untouched.
    assert_eq!(d.request("GET", "/_ping", &[]).status, 200);
}

#[test]
fn stale_pidfile_and_socket_of_a_crashed_daemon_do_not_block_a_restart() {
    let mut d = Daemon::start();
    let pidfile = d.exec_root().join("berth.pid");
    let old_pid = std::fs::read_to_string(&pidfile).unwrap();
    d.kill();
    assert!(pidfile.exists(), "a SIGKILLed daemon leaves its pidfile");
    assert!(d.socket().exists(), "and its socket");
    d.spawn();
    let new_pid = std::fs::read_to_string(&pidfile).unwrap();
    assert_ne!(old_pid, new_pid);
    assert_eq!(new_pid.trim(), d.child.as_ref().unwrap().id().to_string());
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut d = Daemon::start();
    let status = d.stop();
    assert!(status.success(), "{status}");
    assert!(!d.socket().exists(), "socket removed");
    assert!(!d.exec_root().join("berth.pid").exists(), "pidfile removed");
    assert!(d.log().contains("daemon stopped"));
}
