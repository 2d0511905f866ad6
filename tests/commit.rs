//! `docker commit`: a container's changes (files added, changed and deleted) become a layer on its image, with
//! `--change` instructions applied to the config, the container's config filling the rest, dockerd's history
//! entry, and the container's `commit` event.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{err, ok};

#[test]
fn commit_makes_an_image_of_a_containers_changes() {
    let d = common::docker_daemon();
    ok(&d.docker(&[
        "run",
        "--name",
        "src",
        "-e",
        "KEEP=1",
        "-w",
        "/data",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /data && echo made > /data/f && rm /bin/ls && echo changed > /etc/motd",
    ]));
    let id = ok(&d.docker(&[
        "commit",
        "-m",
        "a message",
        "-a",
        "someone",
        "-c",
        "CMD [\"cat\", \"/data/f\"]",
        "-c",
        "ENV ADDED=2",
        "src",
        "committed:1",
    ]));
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    // The changed CMD runs; the container's env and workdir were kept, the change's env added.
    assert_eq!(ok(&d.docker(&["run", "--rm", "committed:1"])), "made\n");
    let env = ok(&d.docker(&[
        "run",
        "--rm",
        "committed:1",
        "sh",
        "-c",
        "echo $KEEP$ADDED; pwd",
    ]));
    assert_eq!(env, "12\n/data\n");
    // A deletion is a whiteout in the new layer: the file is gone in containers of the image.
    let o = d.docker(&["run", "--rm", "committed:1", "ls", "/"]);
    assert_ne!(o.status.code(), Some(0), "{}", err(&o));
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "committed:1", "cat", "/etc/motd"])),
        "changed\n"
    );
    // The runtime's mount points are not part of it.
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["image", "inspect", "committed:1"]))).unwrap();
    let img = &inspect[0];
    let base: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["image", "inspect", "busybox"]))).unwrap();
    assert_eq!(img["Parent"], base[0]["Id"]);
    assert_eq!(img["Comment"], "a message");
    assert_eq!(img["Author"], "someone");
    assert_eq!(
        img["RootFS"]["Layers"].as_array().unwrap().len(),
        base[0]["RootFS"]["Layers"].as_array().unwrap().len() + 1
    );
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["cat", "/data/f"]));
    let history = ok(&d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "committed:1",
    ]));
    assert!(
        history.starts_with("sh -c mkdir -p /data && echo made > /data/f && rm /bin/ls && echo changed > /etc/motd|a message\n"),
        "{history}"
    );

    // A container that changed nothing gives an image without a new layer.
    ok(&d.docker(&["create", "--name", "quiet", "busybox", "true"]));
    let same = ok(&d.docker(&["commit", "quiet", "quiet:1"]));
    let layers =
        |r: &str| ok(&d.docker(&["image", "inspect", "--format", "{{len .RootFS.Layers}}", r]));
    assert_eq!(layers(same.trim()), layers("busybox"));

    // A running container is paused for the commit and keeps running.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "live",
        "busybox",
        "sh",
        "-c",
        "echo x > /x; sleep 1000",
    ]));
    ok(&d.docker(&["commit", "live", "live:1"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "--format", "{{.State.Status}}", "live"])).trim(),
        "running"
    );
    let events = ok(&d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &(std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 1)
        .to_string(),
        "--filter",
        "container=live",
        "--format",
        "{{.Action}}",
    ]));
    let actions: Vec<&str> = events.lines().collect();
    let at = actions
        .iter()
        .position(|a| *a == "commit")
        .unwrap_or_else(|| panic!("a commit event in {actions:?}"));
    assert!(
        actions[..at].contains(&"pause") && actions[..at].contains(&"unpause"),
        "{actions:?}"
    );

    // Errors as Docker's.
    let o = d.docker(&["commit", "nosuch"]);
    assert!(err(&o).contains("No such container: nosuch"), "{}", err(&o));
    ok(&d.docker(&["rm", "-f", "live"]));
}

#[test]
fn berth_commit_takes_dockers_flags() {
    let d = common::docker_daemon();
    ok(&d.berth(&[
        "run",
        "--name",
        "bsrc",
        "busybox",
        "sh",
        "-c",
        "echo b > /b",
    ]));
    let id = ok(&d.berth(&[
        "commit",
        "-a",
        "me",
        "-m",
        "msg",
        "-c",
        "CMD [\"cat\", \"/b\"]",
        "-p=false",
        "bsrc",
        "localhost:5000/team/b:2",
    ]));
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "localhost:5000/team/b:2"])),
        "b\n"
    );
    let meta = ok(&d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{.Author}}|{{.Comment}}|{{index .RepoTags 0}}",
        id.trim(),
    ]));
    assert_eq!(meta.trim(), "me|msg|localhost:5000/team/b:2");
    // Without a name: an untagged image, its ID printed.
    let id2 = ok(&d.berth(&["container", "commit", "bsrc"]));
    assert!(id2.trim().starts_with("sha256:"), "{id2}");
}
