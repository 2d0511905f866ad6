//! The real docker CLI (`/usr/local/bin/docker`, 28.x, API 1.50) against `berth daemon`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ok;
use common::{shared_dir, Daemon};

const WEBAPP_ID: &str = "sha256:577d8034c8e21de40e24ea4b7edef267879a8020c636d9def665075be53de13a";

fn docker_available() -> bool {
    if common::docker_bin().exists() {
        return true;
    }
    eprintln!("SKIP: no docker CLI at {}", common::docker_bin().display());
    false
}

#[test]
fn docker_version_shows_the_berth_engine() {
    if !docker_available() {
        return;
    }
    let d = Daemon::start();
    let out = ok(&d.docker(&["version"]));
    assert!(out.contains("Server: Berth Engine"), "{out}");
    assert!(
        out.contains("API version:      1.50 (minimum version 1.24)"),
        "{out}"
    );
    let v = ok(&d.docker(&["version", "--format", "{{.Server.APIVersion}}"]));
    assert_eq!(v.trim(), "1.50");
}

#[test]
fn docker_info_reads_berths_figures() {
    if !docker_available() {
        return;
    }
    let d = Daemon::start();
    let out = ok(&d.docker(&["info"]));
    assert!(out.contains(" Images: 0"), "{out}");
    assert!(
        out.contains(&format!(" Docker Root Dir: {}", d.data_root().display())),
        "{out}"
    );
    assert!(out.contains(" Cgroup Driver: cgroupfs"), "{out}");
}

#[test]
fn docker_load_then_inspect_matches_dockerd() {
    if !docker_available() {
        return;
    }
    let d = Daemon::start();
    let out = ok(&d.docker(&["load", "-i", common::webapp_fixture().to_str().unwrap()]));
    assert!(out.contains("Loaded image: fixture/webapp:1.0"), "{out}");
    let got: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["image", "inspect", "fixture/webapp:1.0"]))).unwrap();
    let want: serde_json::Value = serde_json::from_slice(
        &std::fs::read(shared_dir().join("fixtures/dockerd-webapp/webapp-image-inspect.json"))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(got[0]["Id"], want[0]["Id"]);
    assert_eq!(got[0]["RootFS"]["Layers"], want[0]["RootFS"]["Layers"]);
    for f in [
        "Env",
        "Cmd",
        "Entrypoint",
        "ExposedPorts",
        "Volumes",
        "User",
        "WorkingDir",
        "Healthcheck",
        "Labels",
    ] {
        assert_eq!(got[0]["Config"][f], want[0]["Config"][f], "Config.{f}");
    }
    let id = ok(&d.docker(&["image", "inspect", "-f", "{{.Id}}", "fixture/webapp:1.0"]));
    assert_eq!(id.trim(), WEBAPP_ID);
}

#[test]
fn docker_images_history_tag_rmi() {
    if !docker_available() {
        return;
    }
    let d = Daemon::start();
    ok(&d.docker(&[
        "load",
        "-q",
        "-i",
        common::webapp_fixture().to_str().unwrap(),
    ]));
    let images = ok(&d.docker(&["images"]));
    let mut lines = images.lines();
    assert_eq!(
        lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
        ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    );
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["fixture/webapp", "1.0", "577d8034c8e2"]);
    assert_eq!(*row.last().unwrap(), "1.99MB");

    let history = ok(&d.docker(&["history", "fixture/webapp:1.0"]));
    assert!(history.starts_with("IMAGE          CREATED"), "{history}");
    assert!(
        history.lines().nth(1).unwrap().starts_with("577d8034c8e2"),
        "{history}"
    );
    assert!(history.contains("<missing>"));

    ok(&d.docker(&["tag", "fixture/webapp:1.0", "mine/app:2"]));
    let q = ok(&d.docker(&["images", "-q", "--no-trunc"]));
    assert_eq!(q.lines().filter(|l| *l == WEBAPP_ID).count(), 2, "{q}");

    let err = d.docker(&["rmi", "577d8034c8e2"]);
    assert!(!err.status.success());
    assert!(String::from_utf8_lossy(&err.stderr).contains("must be forced"));

    let out = ok(&d.docker(&["rmi", "mine/app:2"]));
    assert_eq!(out.trim(), "Untagged: mine/app:2");
    let out = ok(&d.docker(&["rmi", "fixture/webapp:1.0"]));
    assert!(
        out.starts_with("Untagged: fixture/webapp:1.0\nDeleted: sha256:577d8034c8e2"),
        "{out}"
    );
    let out = d.docker(&["rmi", "fixture/webapp:1.0"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "Error response from daemon: No such image: fixture/webapp:1.0"
    );
}

#[test]
fn docker_save_pipe_load_keeps_ids() {
    if !docker_available() {
        return;
    }
    let a = Daemon::start();
    ok(&a.docker(&[
        "load",
        "-q",
        "-i",
        common::webapp_fixture().to_str().unwrap(),
    ]));
    let file = a.dir.path().join("saved.tar");
    ok(&a.docker(&["save", "-o", file.to_str().unwrap(), "fixture/webapp:1.0"]));
    let b = Daemon::start();
    let out = ok(&b.docker_stdin(&["load"], Some(&file)));
    assert!(out.contains("Loaded image: fixture/webapp:1.0"), "{out}");
    let ids = |d: &Daemon| {
        ok(&d.docker(&[
            "image",
            "inspect",
            "-f",
            "{{.Id}} {{.RootFS.Layers}}",
            "fixture/webapp:1.0",
        ]))
    };
    assert_eq!(ids(&a), ids(&b));
}

#[test]
fn docker_import_with_changes() {
    if !docker_available() {
        return;
    }
    let d = Daemon::start();
    let tar = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&tar);
    let out = ok(&d.docker_stdin(
        &[
            "import",
            "-c",
            r#"CMD ["sh"]"#,
            "-c",
            "ENV A=1",
            "-",
            "busybox:latest",
        ],
        Some(&tar),
    ));
    assert!(out.trim().starts_with("sha256:"), "{out}");
    let cfg = ok(&d.docker(&[
        "image",
        "inspect",
        "-f",
        "{{json .Config.Cmd}} {{json .Config.Env}}",
        "busybox",
    ]));
    assert_eq!(cfg.trim(), r#"["sh"] ["A=1"]"#);
    let images = ok(&d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert_eq!(images.trim(), "busybox:latest");
}

#[test]
fn docker_system_df_and_image_prune() {
    if !docker_available() {
        return;
    }
    let d = Daemon::start();
    ok(&d.docker(&[
        "load",
        "-q",
        "-i",
        common::webapp_fixture().to_str().unwrap(),
    ]));
    let df = ok(&d.docker(&["system", "df"]));
    assert!(
        df.lines()
            .any(|l| l.starts_with("Images") && l.contains("1.986MB")),
        "{df}"
    );
    ok(&d.docker(&["tag", "fixture/webapp:1.0", "x:1"]));
    ok(&d.docker(&["rmi", "fixture/webapp:1.0"]));
    let out = ok(&d.docker(&["image", "prune", "-a", "-f"]));
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(ok(&d.docker(&["images", "-q"])).trim(), "");
}
