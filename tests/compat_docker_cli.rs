//! The real docker CLI (`/usr/local/bin/docker`, 28.x, API 1.50) against `berth daemon`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ok;
use common::Daemon;

const WEBAPP_ID: &str = "sha256:577d8034c8e21de40e24ea4b7edef267879a8020c636d9def665075be53de13a";

#[test]
fn docker_version_shows_the_berth_engine() {
    common::docker_bin();
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
    common::docker_bin();
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
    common::docker_bin();
    let d = Daemon::start();
    let out = ok(&d.docker(&["load", "-i", common::webapp_fixture().to_str().unwrap()]));
    assert!(out.contains("Loaded image: fixture/webapp:1.0"), "{out}");
    let got: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["image", "inspect", "fixture/webapp:1.0"]))).unwrap();
    let want: serde_json::Value = serde_json::from_slice(
        &std::fs::read(common::fixtures_dir().join("dockerd-webapp/webapp-image-inspect.json"))
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
    common::docker_bin();
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
    common::docker_bin();
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
    common::docker_bin();
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
    common::docker_bin();
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

#[test]
fn images_that_containers_use_are_never_deleted_under_them() {
    let d = common::docker_daemon();
    let id = ok(&d.docker(&["image", "inspect", "--format", "{{.Id}}", "busybox"]));
    let short = &id.trim()["sha256:".len().."sha256:".len() + 12];
    let ctr = ok(&d.docker(&["create", "--name", "user", "busybox", "echo", "still here"]));
    let ctr12 = &ctr.trim()[..12];

    // The image's last name: a conflict naming the container, unless forced.
    let o = d.docker(&["rmi", "busybox"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).trim(),
        format!(
            "Error response from daemon: conflict: unable to remove repository reference \"busybox\" \
             (must force) - container {ctr12} is using its referenced image {short}"
        )
    );
    // By ID: a stopped user means "must be forced".
    let o = d.docker(&["rmi", short]);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(&format!(
            "conflict: unable to delete {short} (must be forced) - image is being used by stopped container {ctr12}"
        )),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Prune, even of every image, leaves it.
    ok(&d.docker(&["image", "prune", "-a", "-f"]));
    assert_eq!(ok(&d.docker(&["images", "-q"])).trim(), short);

    // Forced: untagged only, and the container still starts from it.
    assert_eq!(
        ok(&d.docker(&["rmi", "-f", "busybox"])).trim(),
        "Untagged: busybox:latest"
    );
    assert_eq!(ok(&d.docker(&["start", "-a", "user"])), "still here\n");
    ok(&d.docker(&["image", "prune", "-a", "-f"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "--format", "{{.Image}}", "user"])).trim(),
        id.trim()
    );
    assert_eq!(ok(&d.docker(&["start", "-a", "user"])), "still here\n");

    // A running user cannot be forced away by ID.
    ok(&d.docker(&["run", "-d", "--name", "runner", id.trim(), "sleep", "100"]));
    let o = d.docker(&["rmi", "-f", short]);
    assert!(
        String::from_utf8_lossy(&o.stderr)
            .contains("(cannot be forced) - image is being used by running container"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Once no container uses it, it goes.
    ok(&d.docker(&["rm", "-f", "runner", "user"]));
    let out = ok(&d.docker(&["rmi", short]));
    assert!(out.starts_with(&format!("Deleted: {}", id.trim())), "{out}");
    assert_eq!(ok(&d.docker(&["images", "-q"])), "");
}
