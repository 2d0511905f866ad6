//! The `berth` CLI against `berth daemon`: its output must be what the real docker CLI prints against the
//! same daemon, and its commands must round-trip images.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;

fn text(out: &std::process::Output) -> (String, String, Option<i32>) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

fn loaded_daemon() -> Daemon {
    let d = Daemon::start();
    let out = d.berth(&["load", "-i", common::webapp_fixture().to_str().unwrap()]);
    let (stdout, stderr, code) = text(&out);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("Loaded image: fixture/webapp:1.0"),
        "{stdout}"
    );
    let tar = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&tar);
    let out = d.berth_stdin(
        &["import", "-c", r#"CMD ["sh"]"#, "-", "busybox:latest"],
        Some(&tar),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    d
}

#[test]
fn berth_prints_what_docker_prints() {
    common::docker_bin();
    let d = loaded_daemon();
    let cases: &[&[&str]] = &[
        &["images"],
        &["images", "-a", "--digests", "--no-trunc"],
        &["images", "-q"],
        &["images", "--format", "{{json .}}"],
        &[
            "images",
            "--format",
            "table {{.Repository}}\t{{.ID}}\t{{.Size}}",
        ],
        &["images", "--filter", "reference=fixture/*"],
        &["history", "fixture/webapp:1.0"],
        &["history", "--no-trunc", "fixture/webapp:1.0"],
        &["image", "inspect", "fixture/webapp:1.0"],
        &["inspect", "-f", "{{.Id}} {{json .Config.Cmd}}", "busybox"],
        &["system", "df"],
        &["image", "inspect", "nosuch"],
        &["rmi", "nosuch:1"],
        &["tag", "nosuch", "x"],
    ];
    for args in cases {
        // The busybox image was made just now, so "CREATED" ticks ("Less than a second ago", "1 second ago"):
        // berth runs before and after docker, and docker's output must equal one of the two.
        let before = text(&d.berth(args));
        let docker = text(&d.docker(args));
        let after = text(&d.berth(args));
        if before != docker {
            assert_eq!(after, docker, "berth {args:?} differs from docker");
        }
    }
}

#[test]
fn berth_image_round_trip_save_load_tag_rmi() {
    let d = loaded_daemon();
    let file = d.dir.path().join("out.tar");
    let out = d.berth(&[
        "save",
        "-o",
        file.to_str().unwrap(),
        "fixture/webapp:1.0",
        "busybox",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out).1);
    assert!(std::fs::metadata(&file).unwrap().len() > 1_000_000);

    let (stdout, _, code) = text(&d.berth(&["tag", "busybox", "mine/bb:1"]));
    assert_eq!((stdout.as_str(), code), ("", Some(0)));
    let (stdout, _, _) = text(&d.berth(&["rmi", "mine/bb:1", "busybox", "fixture/webapp:1.0"]));
    assert!(
        stdout.starts_with("Untagged: mine/bb:1\nUntagged: busybox:latest\nDeleted: sha256:"),
        "{stdout}"
    );
    let (stdout, _, _) = text(&d.berth(&["images", "-q"]));
    assert_eq!(stdout, "");

    let out = d.berth_stdin(&["load"], Some(&file));
    let (stdout, stderr, code) = text(&out);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.contains("Loaded image: fixture/webapp:1.0"),
        "{stdout}"
    );
    assert!(stdout.contains("Loaded image: busybox:latest"), "{stdout}");
}

#[test]
fn berth_without_a_daemon_says_so() {
    let out = std::process::Command::new(common::berth_bin())
        .args(["-H", "unix:///nonexistent/berth.sock", "images"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Cannot connect to the Berth daemon at unix:///nonexistent/berth.sock"),
        "{err}"
    );
}

#[test]
fn berth_flag_errors_exit_125() {
    let out = std::process::Command::new(common::berth_bin())
        .args(["images", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(125));
}
