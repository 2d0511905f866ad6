//! docker-py (the Docker SDK for Python) against `berth daemon`; the checks live in
//! `tests/compat/docker_py_*.py`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::Daemon;

/// Runs `tests/compat/SCRIPT` with DOCKER_HOST pointing at `d` and `env`; fails with its output.
/// Fails when the docker Python SDK is not installed (`.ci/run` installs it).
fn run_script(d: &Daemon, script: &str, env: &[(&str, &std::ffi::OsStr)]) {
    let probe = Command::new("python3")
        .args(["-c", "import docker"])
        .status();
    assert!(
        probe.map(|s| s.success()).unwrap_or(false),
        "the docker Python SDK is not installed: .ci/run installs it (pip install docker==7.1.0)"
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/compat")
        .join(script);
    let mut cmd = Command::new("python3");
    cmd.arg(path)
        .env("DOCKER_HOST", d.host())
        .envs(env.iter().copied());
    // Inside the daemon's network namespace, so 127.0.0.1 reaches its published ports.
    d.netns_command(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn docker_py_images_list_get_load_save_tag_remove() {
    let d = Daemon::start();
    let fixture = common::webapp_fixture();
    run_script(
        &d,
        "docker_py_images.py",
        &[("FIXTURE", fixture.as_os_str())],
    );
}

#[test]
fn docker_py_containers_run_logs_top_stats_stop_attach_remove() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(
        &d,
        "docker_py_containers.py",
        &[("ROOTFS", rootfs.as_os_str())],
    );
}

#[test]
fn docker_py_log_drivers_local_none_and_bad_options() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(
        &d,
        "docker_py_logdrivers.py",
        &[("ROOTFS", rootfs.as_os_str())],
    );
}

#[test]
fn docker_py_exec_run_and_low_level_exec_streams() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(&d, "docker_py_exec.py", &[("ROOTFS", rootfs.as_os_str())]);
}

#[test]
fn docker_py_volumes_create_list_get_remove_prune_and_mount() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(
        &d,
        "docker_py_volumes.py",
        &[("ROOTFS", rootfs.as_os_str())],
    );
}

#[test]
fn docker_py_health_status_filters_and_detach_keys() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(&d, "docker_py_health.py", &[("ROOTFS", rootfs.as_os_str())]);
}

#[test]
fn docker_py_restart_policy_update_and_init() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(
        &d,
        "docker_py_restart.py",
        &[("ROOTFS", rootfs.as_os_str())],
    );
}

#[test]
fn docker_py_networks_create_get_list_remove_connect_and_ports() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(
        &d,
        "docker_py_networks.py",
        &[("ROOTFS", rootfs.as_os_str())],
    );
}

#[test]
fn docker_py_ipv6_network_fixed_address_aux_addresses_and_port_on_ipv6_loopback() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(&d, "docker_py_ipv6.py", &[("ROOTFS", rootfs.as_os_str())]);
}

#[test]
fn docker_py_legacy_links_and_links_on_user_networks() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(&d, "docker_py_links.py", &[("ROOTFS", rootfs.as_os_str())]);
}

#[test]
fn docker_py_builds_and_commits() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(&d, "docker_py_build.py", &[("ROOTFS", rootfs.as_os_str())]);
}

#[test]
fn docker_py_builds_from_urls_and_git_repositories() {
    common::require("git", "git");
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(
        &d,
        "docker_py_build_remote.py",
        &[("ROOTFS", rootfs.as_os_str())],
    );
}

#[test]
fn docker_py_info_version_df_and_prunes() {
    let d = Daemon::start();
    let rootfs = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&rootfs);
    run_script(&d, "docker_py_system.py", &[("ROOTFS", rootfs.as_os_str())]);
}
