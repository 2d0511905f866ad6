//! docker-py (the Docker SDK for Python) against `berth daemon`; the checks live in
//! `tests/compat/docker_py_images.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::Daemon;

#[test]
fn docker_py_images_list_get_load_save_tag_remove() {
    let probe = Command::new("python3")
        .args(["-c", "import docker"])
        .status();
    if !probe.map(|s| s.success()).unwrap_or(false) {
        eprintln!("SKIP: the docker Python SDK is not installed (pip install docker)");
        return;
    }
    let d = Daemon::start();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/compat/docker_py_images.py");
    let out = Command::new("python3")
        .arg(script)
        .env("DOCKER_HOST", d.host())
        .env("FIXTURE", common::webapp_fixture())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_py_containers_run_logs_top_stats_stop_attach_remove() {
    let probe = Command::new("python3")
        .args(["-c", "import docker"])
        .status();
    if !probe.map(|s| s.success()).unwrap_or(false) {
        eprintln!("SKIP: the docker Python SDK is not installed (pip install docker)");
        return;
    }
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/compat/docker_py_containers.py");
    let out = Command::new("python3")
        .arg(script)
        .env("DOCKER_HOST", d.host())
        .env("ROOTFS", &rootfs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
