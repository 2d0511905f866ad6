//! Image API end to end: load, inspect, history, tag, remove, prune, save, import and disk usage.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{urlencode, Daemon};
use serde_json::Value;

const WEBAPP_ID: &str = "sha256:577d8034c8e21de40e24ea4b7edef267879a8020c636d9def665075be53de13a";

fn fixture_inspect() -> Value {
    let raw =
        std::fs::read(common::fixtures_dir().join("dockerd-webapp/webapp-image-inspect.json"))
            .unwrap();
    let v: Value = serde_json::from_slice(&raw).unwrap();
    v[0].clone()
}

#[test]
fn load_reproduces_the_image_dockerd_saved() {
    let d = Daemon::start();
    let r = d.request_file("POST", "/images/load", &common::webapp_fixture());
    assert_eq!(r.status, 200);
    let lines = r.json_lines();
    assert!(
        lines.iter().any(|l| l["status"] == "Loading layer"),
        "progress shown without quiet"
    );
    assert!(lines
        .iter()
        .any(|l| l["stream"] == "Loaded image: fixture/webapp:1.0\n"));

    let want = fixture_inspect();
    let got = d.get_json("/images/fixture/webapp:1.0/json");
    assert_eq!(got["Id"], WEBAPP_ID);
    assert_eq!(got["Id"], want["Id"]);
    assert_eq!(got["RootFS"], want["RootFS"]);
    assert_eq!(got["RepoTags"], want["RepoTags"]);
    assert_eq!(
        got["Size"], want["Size"],
        "Docker's size: file sizes, hard links once"
    );
    assert_eq!(got["Created"], want["Created"]);
    assert_eq!(got["Architecture"], want["Architecture"]);
    assert_eq!(got["Os"], want["Os"]);
    for field in [
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
        assert_eq!(
            got["Config"][field], want["Config"][field],
            "Config.{field}"
        );
    }
    // The same image by short ID, full ID and full reference.
    for name in ["577d8034c8e2", WEBAPP_ID, "docker.io/fixture/webapp:1.0"] {
        assert_eq!(
            d.get_json(&format!("/images/{name}/json"))["Id"],
            WEBAPP_ID,
            "{name}"
        );
    }
}

#[test]
fn images_list_shows_docker_fields_and_filters() {
    let d = Daemon::start();
    d.load_fixture();
    let list = d.get_json("/images/json");
    let img = &list[0];
    assert_eq!(img["Id"], WEBAPP_ID);
    assert_eq!(img["RepoTags"], serde_json::json!(["fixture/webapp:1.0"]));
    assert_eq!(img["Size"], fixture_inspect()["Size"]);
    assert_eq!(
        img["Labels"]["org.example.purpose"],
        "berth developer fixture"
    );
    assert!(img["Created"].as_i64().unwrap() > 1_700_000_000);
    assert!(
        img.get("VirtualSize").is_none_or(Value::is_null),
        "gone since 1.44"
    );
    assert_eq!(
        d.get_json("/v1.41/images/json")[0]["VirtualSize"],
        img["Size"]
    );

    let q = |f: &str| {
        d.get_json(&format!("/images/json?filters={}", urlencode(f)))
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(q(r#"{"reference":["fixture/*"]}"#), 1);
    assert_eq!(q(r#"{"reference":["busybox"]}"#), 0);
    assert_eq!(q(r#"{"dangling":["true"]}"#), 0);
    assert_eq!(q(r#"{"dangling":["false"]}"#), 1);
    assert_eq!(q(r#"{"label":["org.example.purpose"]}"#), 1);
    assert_eq!(q(r#"{"label":["org.example.purpose=other"]}"#), 0);
    let bad = d.request(
        "GET",
        &format!("/images/json?filters={}", urlencode(r#"{"nope":["x"]}"#)),
        &[],
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["message"], "invalid filter 'nope'");
}

#[test]
fn history_lists_layers_newest_first() {
    let d = Daemon::start();
    d.load_fixture();
    let h = d.get_json("/images/fixture/webapp:1.0/history");
    let rows = h.as_array().unwrap();
    assert_eq!(rows[0]["Id"], WEBAPP_ID);
    assert_eq!(rows[0]["Tags"], serde_json::json!(["fixture/webapp:1.0"]));
    assert!(rows[1..].iter().all(|r| r["Id"] == "<missing>"));
    let sizes: i64 = rows.iter().map(|r| r["Size"].as_i64().unwrap()).sum();
    assert_eq!(sizes, fixture_inspect()["Size"].as_i64().unwrap());
    assert!(rows[0]["CreatedBy"].as_str().unwrap().contains("CMD"));
}

#[test]
fn tag_and_remove_follow_dockers_rules() {
    let d = Daemon::start();
    d.load_fixture();
    assert_eq!(
        d.request(
            "POST",
            "/images/fixture/webapp:1.0/tag?repo=other/app&tag=2",
            &[]
        )
        .status,
        201
    );
    let tags = d.get_json(&format!("/images/{WEBAPP_ID}/json"))["RepoTags"].clone();
    assert_eq!(tags.as_array().unwrap().len(), 2, "{tags}");

    // By ID with two tags: conflict unless forced.
    let r = d.request("DELETE", "/images/577d8034c8e2", &[]);
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("must be forced"),
        "{}",
        r.text()
    );

    // By one tag: only untagged.
    let r = d.request("DELETE", "/images/other/app:2", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!([{"Untagged": "other/app:2"}]));

    // The last tag: untagged and deleted.
    let r = d.request("DELETE", "/images/fixture/webapp:1.0", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let items = r.json();
    assert_eq!(
        items[0],
        serde_json::json!({"Untagged": "fixture/webapp:1.0"})
    );
    assert_eq!(items[1], serde_json::json!({"Deleted": WEBAPP_ID}));
    assert_eq!(
        d.request("GET", "/images/fixture/webapp:1.0/json", &[])
            .status,
        404
    );
    assert_eq!(d.get_json("/images/json").as_array().unwrap().len(), 0);
    let r = d.request("DELETE", "/images/fixture/webapp:1.0", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such image: fixture/webapp:1.0");
}

#[test]
fn save_then_load_round_trips_ids_and_digests() {
    let a = Daemon::start();
    a.load_fixture();
    let saved = a.request("GET", "/images/get?names=fixture%2Fwebapp%3A1.0", &[]);
    assert_eq!(saved.status, 200);
    assert_eq!(saved.header("Content-Type"), Some("application/x-tar"));
    let names = tar_names(&saved.body);
    for must in ["index.json", "oci-layout", "manifest.json", "repositories"] {
        assert!(names.iter().any(|n| n == must), "{must} in {names:?}");
    }
    let b = Daemon::start();
    let r = b.request("POST", "/images/load?quiet=1", &saved.body);
    assert!(
        r.text().contains("Loaded image: fixture/webapp:1.0"),
        "{}",
        r.text()
    );
    let (ia, ib) = (
        a.get_json("/images/fixture/webapp:1.0/json"),
        b.get_json("/images/fixture/webapp:1.0/json"),
    );
    assert_eq!(ia["Id"], ib["Id"]);
    assert_eq!(ia["RootFS"], ib["RootFS"]);
    assert_eq!(ia["Size"], ib["Size"]);
    // A second save from the reloaded image is byte-identical (same manifest and blobs).
    let again = b.request("GET", "/images/fixture/webapp:1.0/get", &[]);
    assert_eq!(manifest_digests(&saved.body), manifest_digests(&again.body));
}

#[test]
fn save_of_a_missing_image_is_404() {
    let d = Daemon::start();
    let r = d.request("GET", "/images/get?names=nosuch", &[]);
    assert_eq!(r.status, 404);
}

#[test]
fn import_makes_an_image_with_changes() {
    let d = Daemon::start();
    let tar = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&tar);
    let changes = [
        r#"CMD ["sh"]"#,
        "ENV FOO=bar",
        "WORKDIR /srv",
        "EXPOSE 80/tcp",
        "LABEL a=b",
    ];
    let q: String = changes
        .iter()
        .map(|c| format!("&changes={}", urlencode(c)))
        .collect();
    let r = d.request_file(
        "POST",
        &format!("/images/create?fromSrc=-&repo=busybox&tag=latest{q}"),
        &tar,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json_lines()[0]["status"].as_str().unwrap().to_owned();
    assert!(id.starts_with("sha256:"), "{id}");
    let img = d.get_json("/images/busybox/json");
    assert_eq!(img["Id"], id);
    assert_eq!(img["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(img["Config"]["Env"], serde_json::json!(["FOO=bar"]));
    assert_eq!(img["Config"]["WorkingDir"], "/srv");
    assert_eq!(
        img["Config"]["ExposedPorts"],
        serde_json::json!({"80/tcp": {}})
    );
    assert_eq!(img["Config"]["Labels"]["a"], "b");
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 1);
    let busybox_size = std::fs::metadata("/bin/busybox")
        .map(|m| m.len())
        .unwrap_or(0);
    assert!(img["Size"].as_u64().unwrap() >= busybox_size);

    let bad = d.request_file("POST", "/images/create?fromSrc=-&changes=FROB%20x", &tar);
    assert_eq!(bad.status, 400);
    assert!(
        bad.text()
            .to_lowercase()
            .contains("frob is not a valid change command"),
        "{}",
        bad.text()
    );
}

#[test]
fn prune_removes_dangling_images_and_reports_space() {
    let d = Daemon::start();
    let tar = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&tar);
    let r = d.request_file("POST", "/images/create?fromSrc=-", &tar);
    let id = r.json_lines()[0]["status"].as_str().unwrap().to_owned();
    d.load_fixture();
    let p = d.request("POST", "/images/prune", &[]);
    assert_eq!(p.status, 200);
    let report = p.json();
    assert_eq!(report["ImagesDeleted"][0]["Deleted"], id.as_str());
    assert!(report["SpaceReclaimed"].as_u64().unwrap() > 0);
    assert_eq!(
        d.get_json("/images/json").as_array().unwrap().len(),
        1,
        "tagged image kept"
    );
    let all = d.request(
        "POST",
        &format!(
            "/images/prune?filters={}",
            urlencode(r#"{"dangling":["false"]}"#)
        ),
        &[],
    );
    assert_eq!(all.status, 200);
    assert_eq!(d.get_json("/images/json").as_array().unwrap().len(), 0);
}

#[test]
fn system_df_counts_images() {
    let d = Daemon::start();
    d.load_fixture();
    let df = d.get_json("/system/df");
    assert_eq!(df["Images"].as_array().unwrap().len(), 1);
    assert_eq!(df["LayersSize"], fixture_inspect()["Size"]);
}

fn tar_names(bytes: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(bytes);
    a.entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

fn manifest_digests(bytes: &[u8]) -> Value {
    let mut a = tar::Archive::new(bytes);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path().unwrap().to_str() == Some("index.json") {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            let v: Value = serde_json::from_str(&s).unwrap();
            return v["manifests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["digest"].clone())
                .collect();
        }
    }
    panic!("no index.json");
}
