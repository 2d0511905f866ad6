//! Archives exchanged with other OCI tools: skopeo and umoci read what `berth save` writes, and Berth loads
//! what skopeo writes (`docker-archive:` and `oci-archive:`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::Daemon;

const WEBAPP_ID: &str = "sha256:577d8034c8e21de40e24ea4b7edef267879a8020c636d9def665075be53de13a";

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn saved_fixture(d: &Daemon) -> std::path::PathBuf {
    d.load_fixture();
    let r = d.request("GET", "/images/fixture/webapp:1.0/get", &[]);
    assert_eq!(r.status, 200);
    let file = d.dir.path().join("berth-save.tar");
    std::fs::write(&file, &r.body).unwrap();
    file
}

fn untar(file: &Path, dest: &Path) {
    std::fs::create_dir_all(dest).unwrap();
    tar::Archive::new(std::fs::File::open(file).unwrap())
        .unpack(dest)
        .unwrap();
}

#[test]
fn skopeo_reads_berth_save_as_docker_archive_and_oci_layout() {
    common::require("skopeo", "skopeo");
    let d = Daemon::start();
    let file = saved_fixture(&d);
    let v: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("docker-archive:{}", file.display()))))
    .unwrap();
    assert_eq!(v["config"]["digest"], WEBAPP_ID, "{v}");
    assert_eq!(v["layers"].as_array().unwrap().len(), 5);

    let layout = d.dir.path().join("layout");
    untar(&file, &layout);
    let v: serde_json::Value = serde_json::from_str(&run(Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:1.0", layout.display()))))
    .unwrap();
    assert_eq!(v["config"]["digest"], WEBAPP_ID, "{v}");
    // skopeo can also copy it out again, verifying every blob's digest on the way.
    let out = d.dir.path().join("copy");
    run(Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:1.0", layout.display()))
        .arg(format!("oci:{}:x", out.display())));
}

#[test]
fn umoci_reads_and_unpacks_berth_save() {
    common::require("umoci", "umoci");
    let d = Daemon::start();
    let file = saved_fixture(&d);
    let layout = d.dir.path().join("layout");
    untar(&file, &layout);
    let tags = run(Command::new("umoci").args(["ls", "--layout"]).arg(&layout));
    assert_eq!(tags.trim(), "1.0");
    let bundle = d.dir.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:1.0", layout.display()))
        .arg(&bundle));
    assert!(bundle.join("rootfs/srv/app/site/index.html").is_file());
    assert!(bundle.join("rootfs/bin/busybox").is_file());
}

#[test]
fn berth_loads_skopeo_docker_archive_and_oci_archive() {
    common::require("skopeo", "skopeo");
    let d = Daemon::start();
    let src = format!("docker-archive:{}", common::webapp_fixture().display());
    let da = d.dir.path().join("skopeo-docker.tar");
    run(Command::new("skopeo")
        .args(["copy", "-q", &src])
        .arg(format!("docker-archive:{}:skopeo/webapp:da", da.display())));
    let r = d.request_file("POST", "/images/load?quiet=1", &da);
    assert!(
        r.text().contains("Loaded image: skopeo/webapp:da"),
        "{}",
        r.text()
    );
    assert_eq!(d.get_json("/images/skopeo/webapp:da/json")["Id"], WEBAPP_ID);

    let oa = d.dir.path().join("skopeo-oci.tar");
    run(Command::new("skopeo")
        .args(["copy", "-q", &src])
        .arg(format!("oci-archive:{}:v1", oa.display())));
    let r = d.request_file("POST", "/images/load?quiet=1", &oa);
    let text = r.text();
    assert!(!text.contains("error"), "{text}");
    // skopeo's oci-archive names only the tag (`v1`), not the repository, so the image loads untagged, as in Docker.
    let id = d
        .get_json("/images/json?all=1")
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["Id"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert!(!id.is_empty(), "{text}");
    // skopeo converts the config to OCI media types, but the layers' content is the same: the DiffIDs match.
    let layers_of =
        |name: &str| d.get_json(&format!("/images/{name}/json"))["RootFS"]["Layers"].clone();
    for i in &id {
        assert_eq!(layers_of(i), layers_of(WEBAPP_ID));
    }
}

#[test]
fn berth_loads_gzip_and_zstd_oci_archives() {
    common::require("skopeo", "skopeo");
    let d = Daemon::start();
    let src = format!("docker-archive:{}", common::webapp_fixture().display());
    for algo in ["gzip", "zstd"] {
        let oa = d.dir.path().join(format!("{algo}.tar"));
        run(Command::new("skopeo")
            .args(["copy", "-q", "--dest-compress-format", algo, &src])
            .arg(format!("oci-archive:{}:{algo}", oa.display())));
        let r = d.request_file("POST", "/images/load?quiet=1", &oa);
        assert!(
            r.text().contains("Loaded image ID: sha256:"),
            "{algo}: {}",
            r.text()
        );
    }
    let images = d.get_json("/images/json");
    for img in images.as_array().unwrap() {
        let layers = d.get_json(&format!("/images/{}/json", img["Id"].as_str().unwrap()))["RootFS"]
            ["Layers"]
            .clone();
        assert_eq!(
            layers.as_array().unwrap().len(),
            5,
            "DiffIDs are of the uncompressed layers"
        );
        assert_eq!(
            layers[0],
            "sha256:f1a1b3de8ef238c5fda871061b9e9927cf3639b81f25077fcb14f5c6afbc230e"
        );
    }
}
