//! Pull, push and login through Berth against Debian's `docker-registry` (distribution 2.8), driven by
//! the real docker CLI and by the berth CLI. The registry runs inside the test daemon's network
//! namespace (the daemon reaches it on 127.0.0.1, insecure by default as in dockerd); the CLIs talk to
//! the daemon's unix socket from the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
/// The registry crate's test harness: its token server (RS256 JWTs the registry trusts).
#[path = "../crates/registry/tests/harness/mod.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::registry::{Registry, PASSWORD, PORT, USER};
use common::{docker_daemon, err, ok, out, Daemon};

/// `127.0.0.1:5000/<name>`.
fn at(name: &str) -> String {
    format!("127.0.0.1:{PORT}/{name}")
}

/// A registry that trusts tokens from the registry crate's test token server.
fn start_token(d: &Daemon, realm: &str, signer_cert: &Path) -> Registry {
    Registry::start_with_auth(
        d,
        format!(
            "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
            harness::SERVICE,
            harness::ISSUER,
            signer_cert.display()
        ),
    )
}

fn inspect(d: &Daemon, name: &str) -> serde_json::Value {
    let o = d.docker(&["image", "inspect", name]);
    let v: serde_json::Value = serde_json::from_str(&ok(&o)).expect("inspect JSON");
    v[0].clone()
}

/// The `sha256:…` of the `<tag>: digest: sha256:… size: N` line of a push.
fn pushed_digest(push_output: &str, tag: &str) -> String {
    let line = push_output
        .lines()
        .find(|l| l.starts_with(&format!("{tag}: digest: sha256:")))
        .unwrap_or_else(|| panic!("no digest line in push output:\n{push_output}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    assert!(
        words.len() == 5
            && words[2].len() == 71
            && words[3] == "size:"
            && words[4].parse::<u64>().is_ok(),
        "{line}"
    );
    words[2].to_string()
}

/// The store holds no half-made content: no ingest files, no temp snapshots.
fn assert_store_clean(d: &Daemon) {
    let image = d.data_root().join("image");
    let ingest: Vec<_> = std::fs::read_dir(image.join("ingest"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(ingest.is_empty(), "ingest files left: {ingest:?}");
    let tmp: Vec<_> = std::fs::read_dir(image.join("snapshots"))
        .map(|r| {
            r.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("tmp"))
                })
                .collect()
        })
        .unwrap_or_default();
    assert!(tmp.is_empty(), "temp snapshots left: {tmp:?}");
}

/// Pushes busybox as `127.0.0.1:5000/<name>:1` and answers the image ID and manifest digest.
fn push_busybox(d: &Daemon, name: &str) -> (String, String) {
    let target = at(&format!("{name}:1"));
    ok(&d.docker(&["tag", "busybox", &target]));
    let id = inspect(d, "busybox")["Id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let o = d.docker(&["push", &target]);
    let text = ok(&o);
    assert!(
        text.contains(&format!("The push refers to repository [{}]", at(name))),
        "{text}"
    );
    assert!(text.contains("Pushed"), "{text}");
    (id, pushed_digest(&text, "1"))
}

#[test]
fn docker_push_rmi_pull_gives_back_the_same_image_and_digest() {
    let d = docker_daemon();
    let _reg = Registry::start(&d, false);
    let (id, digest) = push_busybox(&d, "x");
    let target = at("x:1");
    assert_eq!(
        inspect(&d, &target)["RepoDigests"],
        serde_json::json!([format!("{}@{digest}", at("x"))])
    );
    // Pushing again finds every layer there.
    let again = ok(&d.docker(&["push", &target]));
    assert!(again.contains("Layer already exists"), "{again}");
    assert_eq!(pushed_digest(&again, "1"), digest);

    ok(&d.docker(&["rmi", "busybox", &target]));
    assert!(!d.docker(&["image", "inspect", &target]).status.success());
    let o = d.docker(&["pull", &target]);
    let text = ok(&o);
    assert!(text.contains("1: Pulling from x"), "{text}");
    assert!(text.contains("Pull complete"), "{text}");
    assert!(text.contains(&format!("Digest: {digest}")), "{text}");
    assert!(
        text.contains(&format!("Status: Downloaded newer image for {target}")),
        "{text}"
    );
    let img = inspect(&d, &target);
    assert_eq!(img["Id"], id.as_str());
    assert_eq!(
        img["RepoDigests"],
        serde_json::json!([format!("{}@{digest}", at("x"))])
    );
    assert_store_clean(&d);

    let o = d.docker(&["pull", &target]);
    assert!(
        ok(&o).contains(&format!("Status: Image is up to date for {target}")),
        "{}",
        out(&o)
    );
    // By digest too.
    let by_digest = format!("{}@{digest}", at("x"));
    let o = d.docker(&["pull", &by_digest]);
    assert!(ok(&o).contains(&format!("Digest: {digest}")), "{}", out(&o));
    assert_eq!(inspect(&d, &by_digest)["Id"], id.as_str());

    // A single-platform image pulled for another platform: dockerd's refusal.
    let o = d.docker(&["pull", "--platform", "linux/arm64", &target]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!(
            "image with reference {target} was found but does not match the specified platform: wanted linux/arm64/v8, actual: linux/amd64"
        )),
        "{}",
        err(&o)
    );

    let run = d.docker(&["run", "--rm", &target, "echo", "pulled-and-ran"]);
    assert_eq!(ok(&run).trim(), "pulled-and-ran");

    // Another repository of the same registry gets the layer by a cross-repository mount.
    let other = at("y:2");
    ok(&d.docker(&["tag", &target, &other]));
    let o = d.docker(&["push", &other]);
    let text = ok(&o);
    assert!(text.contains("Mounted from x"), "{text}");
    assert_eq!(pushed_digest(&text, "2"), digest);

    // --all-tags: every tag of the repository.
    ok(&d.docker(&["tag", &target, &at("y:3")]));
    ok(&d.docker(&["push", &at("y:3")]));
    ok(&d.docker(&["rmi", "-f", &id]));
    let o = d.docker(&["pull", "--all-tags", &at("y")]);
    let text = ok(&o);
    assert!(
        text.contains("2: Pulling from y") && text.contains("3: Pulling from y"),
        "{text}"
    );
    assert_eq!(inspect(&d, &at("y:2"))["Id"], id.as_str());
    assert_eq!(inspect(&d, &at("y:3"))["Id"], id.as_str());

    let o = d.docker(&["push", &at("nope:1")]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!(
            "An image does not exist locally with the tag: {}",
            at("nope")
        )),
        "{}",
        err(&o)
    );

    // distribution has no search endpoint: Docker's words for that.
    let o = d.docker(&["search", &at("x")]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("Unexpected status code 404"),
        "{}",
        err(&o)
    );

    // A name the registry does not have: dockerd's words, as an error response.
    let o = d.docker(&["pull", &at("x:nope")]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!(
            "Error response from daemon: manifest for {} not found: manifest unknown",
            at("x:nope")
        )),
        "{}",
        err(&o)
    );
}

#[test]
fn docker_run_pulls_a_missing_image_and_pull_never_refuses() {
    let d = docker_daemon();
    let _reg = Registry::start(&d, false);
    let (id, _) = push_busybox(&d, "auto");
    let target = at("auto:1");
    ok(&d.docker(&["rmi", "busybox", &target]));

    let o = d.docker(&["run", "--rm", "--pull", "never", &target, "true"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!("No such image: {target}")),
        "{}",
        err(&o)
    );

    let o = d.docker(&["run", "--rm", &target, "echo", "hi"]);
    assert_eq!(ok(&o).trim(), "hi");
    assert!(
        err(&o).contains(&format!("Unable to find image '{target}' locally")),
        "{}",
        err(&o)
    );
    assert_eq!(inspect(&d, &target)["Id"], id.as_str());

    // The berth CLI does the same: a missing image is pulled, `--pull never` refuses.
    ok(&d.docker(&["rmi", &target]));
    let o = d.berth(&["run", "--rm", "--pull", "never", &target, "true"]);
    assert_eq!(o.status.code(), Some(125), "{}", err(&o));
    assert!(
        err(&o).contains(&format!("No such image: {target}")),
        "{}",
        err(&o)
    );
    let o = d.berth(&["run", "--rm", &target, "echo", "hi"]);
    assert_eq!(ok(&o).trim(), "hi");
    assert!(
        err(&o).contains(&format!("Unable to find image '{target}' locally")),
        "{}",
        err(&o)
    );
    assert!(
        err(&o).contains(&format!("Status: Downloaded newer image for {target}")),
        "{}",
        err(&o)
    );
}

#[test]
fn docker_login_then_push_and_pull_with_basic_auth() {
    let d = docker_daemon();
    let _reg = Registry::start(&d, true);
    let server = at("").trim_end_matches('/').to_string();
    let target = at("secret:1");
    ok(&d.docker(&["tag", "busybox", &target]));

    // Without a login the registry refuses.
    let o = d.docker(&["push", &target]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(
        format!("{}{}", out(&o), err(&o)).contains("no basic auth credentials"),
        "{}{}",
        out(&o),
        err(&o)
    );

    let o = d.docker(&["login", "-u", USER, "-p", "wrong", &server]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!(
            "Error response from daemon: login attempt to http://{server}/v2/ failed with status: 401 Unauthorized"
        )),
        "{}",
        err(&o)
    );

    let o = d.docker(&["login", "-u", USER, "-p", PASSWORD, &server]);
    assert!(ok(&o).contains("Login Succeeded"), "{}", out(&o));
    let pushed = ok(&d.docker(&["push", &target]));
    let digest = pushed_digest(&pushed, "1");
    ok(&d.docker(&["rmi", &target]));
    let pulled = ok(&d.docker(&["pull", &target]));
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");

    // The berth CLI reads the login the docker CLI stored, and pulls with it.
    ok(&d.docker(&["rmi", &target]));
    let o = berth_with_config(&d, &["pull", &target], None);
    let text = ok(&o);
    assert!(text.contains(&format!("Digest: {digest}")), "{text}");
    assert!(text.ends_with(&format!("{target}\n")), "{text}");

    // berth logout removes it; then the registry refuses again.
    let o = berth_with_config(&d, &["logout", &server], None);
    assert!(
        ok(&o).contains(&format!("Removing login credentials for {server}")),
        "{}",
        out(&o)
    );
    let o = berth_with_config(&d, &["push", &target], None);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(err(&o).contains("no basic auth credentials"), "{}", err(&o));

    // berth login stores what the docker CLI then uses.
    let pw = d.dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).expect("write password");
    let o = berth_with_config(
        &d,
        &["login", "-u", USER, "--password-stdin", &server],
        Some(&pw),
    );
    assert!(ok(&o).contains("Login Succeeded"), "{}", out(&o));
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(d.dir.path().join("docker-config/config.json")).expect("config.json"),
    )
    .expect("config JSON");
    assert!(
        config["auths"][server.as_str()]["auth"].is_string(),
        "{config}"
    );
    let o = berth_with_config(&d, &["push", &target], None);
    assert!(ok(&o).contains("1: digest: sha256:"), "{}", out(&o));
    ok(&d.docker(&["pull", &target]));
}

/// Runs the berth CLI with the docker CLI's config dir of this daemon (shared logins).
fn berth_with_config(d: &Daemon, args: &[&str], stdin: Option<&Path>) -> Output {
    let mut cmd = Command::new(common::berth_bin());
    cmd.arg("-H")
        .arg(d.host())
        .args(args)
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"));
    cmd.stdin(match stdin {
        Some(p) => Stdio::from(std::fs::File::open(p).expect("stdin file")),
        None => Stdio::null(),
    });
    cmd.output().expect("run berth")
}

/// An image with one big layer of random bytes (so a pull takes long enough to be cut), pushed.
fn push_big_image(d: &Daemon, name: &str) -> String {
    let dir = d.dir.path().join("big");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut data = vec![0u8; 48 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in data.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    let tar_path = dir.join("rootfs.tar");
    {
        let f = std::fs::File::create(&tar_path).expect("tar file");
        let mut b = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, "random.bin", &data[..])
            .expect("tar append");
        b.finish().expect("tar finish");
    }
    let target = at(&format!("{name}:1"));
    ok(&d.docker_stdin(&["import", "-", &target], Some(&tar_path)));
    ok(&d.docker(&["push", &target]));
    target
}

/// Temp snapshots a pull is unpacking into, and its ingest files.
fn in_flight(image: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(image.join("ingest"))
        .map(|r| r.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.extend(
        std::fs::read_dir(image.join("snapshots"))
            .map(|r| {
                r.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("tmp"))
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    v
}

/// Waits until a pull has started writing a layer: a blob in the ingest area (a compressed layer)
/// or a file in a temp snapshot (an uncompressed one, kept only as its snapshot).
fn wait_for_layer_bytes(image: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let busy = in_flight(image).iter().any(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.len() > 0)
                || std::fs::read_dir(p.join("fs")).is_ok_and(|r| {
                    r.flatten()
                        .any(|e| e.metadata().is_ok_and(|m| m.is_file() && m.len() > 0))
                })
        });
        if busy {
            return;
        }
        assert!(Instant::now() < deadline, "the pull never started a layer");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_corrupted_blob_a_cancelled_pull_or_a_registry_or_daemon_killed_mid_pull_leave_the_store_consistent(
) {
    let mut d = docker_daemon();
    let mut reg = Registry::start(&d, false);
    let (_, _) = push_busybox(&d, "bad");
    let target = at("bad:1");
    let layer = inspect(&d, &target)["RootFS"]["Layers"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    // busybox's layer is stored uncompressed, so its blob digest is its diff ID.
    let file = reg.blob_file(&layer);
    let good = std::fs::read(&file).expect("blob in registry storage");
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0xff;
    std::fs::write(&file, &bad).expect("corrupt blob");
    ok(&d.docker(&["rmi", "busybox", &target]));

    let o = d.docker(&["pull", &target]);
    assert!(!o.status.success(), "{}", out(&o));
    let text = format!("{}{}", out(&o), err(&o));
    assert!(
        text.contains(&format!(
            "filesystem layer verification failed for digest {layer}"
        )),
        "{text}"
    );
    assert!(!d.docker(&["image", "inspect", &target]).status.success());
    assert_store_clean(&d);
    std::fs::write(&file, &good).expect("restore blob");
    let o = d.docker(&["pull", &target]);
    assert!(ok(&o).contains("Pull complete"), "{}", out(&o));

    // A registry killed while a big layer streams: the pull fails, nothing is left half-made, and
    // the next pull (registry back) works.
    let big = push_big_image(&d, "big");
    ok(&d.docker(&["rmi", &big]));
    let image = d.data_root().join("image");
    let mut pull = Command::new(common::docker_bin());
    pull.args(["pull", &big])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The client going away (Ctrl-C) cancels the pull, which leaves nothing behind.
    let mut child = pull.spawn().expect("docker pull");
    wait_for_layer_bytes(&image);
    child.kill().expect("kill docker pull");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !in_flight(&image).is_empty() {
        assert!(Instant::now() < deadline, "the cancelled pull kept writing");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!d.docker(&["image", "inspect", &big]).status.success());
    assert_store_clean(&d);

    let child = pull.spawn().expect("docker pull");
    wait_for_layer_bytes(&image);
    reg.kill();
    let o = child.wait_with_output().expect("docker pull output");
    assert!(
        !o.status.success(),
        "the pull finished although the registry died: {}",
        out(&o)
    );
    assert!(!d.docker(&["image", "inspect", &big]).status.success());
    assert_store_clean(&d);
    reg.spawn(&d);

    // The daemon killed mid-pull: after its restart nothing half-made is left and a pull works.
    let child = pull.spawn().expect("docker pull");
    wait_for_layer_bytes(&image);
    d.kill();
    let _ = child.wait_with_output();
    d.spawn();
    assert!(!d.docker(&["image", "inspect", &big]).status.success());
    assert_store_clean(&d);

    let o = d.docker(&["pull", &big]);
    assert!(ok(&o).contains("Pull complete"), "{}", out(&o));
    assert_eq!(inspect(&d, &big)["Size"], 48 << 20);
}

fn sha256(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(data))
}

/// Writes a blob into an OCI layout; answers its descriptor (without media type).
fn put_blob(layout: &Path, data: &[u8]) -> serde_json::Value {
    let d = sha256(data);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&d[7..]), data).unwrap();
    serde_json::json!({"digest": d, "size": data.len()})
}

fn with_type(mut desc: serde_json::Value, media_type: &str) -> serde_json::Value {
    desc["mediaType"] = media_type.into();
    desc
}

/// A tar of one file.
fn file_tar(name: &str, content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    b.append_data(&mut h, name, content).unwrap();
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// An OCI layout holding a two-platform index (linux/amd64 and linux/arm64) tagged `1`: busybox
/// under a layer naming the platform (`/arch.txt`); amd64's layers in zstd when `zstd_amd64`.
fn two_platform_layout(dir: &Path, busybox_tar: &[u8], zstd_amd64: bool) {
    let mut manifests = Vec::new();
    for arch in ["amd64", "arm64"] {
        let top = file_tar("arch.txt", format!("{arch}\n").as_bytes());
        let raws = [busybox_tar.to_vec(), top];
        let zstd = zstd_amd64 && arch == "amd64";
        let layers: Vec<serde_json::Value> = raws
            .iter()
            .map(|raw| {
                if zstd {
                    let z = zstd::encode_all(&raw[..], 3).unwrap();
                    with_type(
                        put_blob(dir, &z),
                        "application/vnd.oci.image.layer.v1.tar+zstd",
                    )
                } else {
                    with_type(
                        put_blob(dir, &gzip(raw)),
                        "application/vnd.oci.image.layer.v1.tar+gzip",
                    )
                }
            })
            .collect();
        let config = serde_json::json!({
            "architecture": arch, "os": "linux",
            "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": raws.iter().map(|r| sha256(r)).collect::<Vec<_>>()},
        });
        let config = with_type(
            put_blob(dir, &serde_json::to_vec(&config).unwrap()),
            "application/vnd.oci.image.config.v1+json",
        );
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config, "layers": layers,
        });
        let mut desc = with_type(
            put_blob(dir, &serde_json::to_vec(&manifest).unwrap()),
            "application/vnd.oci.image.manifest.v1+json",
        );
        desc["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
        manifests.push(desc);
    }
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    let mut desc = with_type(
        put_blob(dir, &serde_json::to_vec(&index).unwrap()),
        "application/vnd.oci.image.index.v1+json",
    );
    desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "1"});
    let top = serde_json::json!({"schemaVersion": 2, "manifests": [desc]});
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
}

/// `skopeo copy --all` from an OCI layout into the registry (run in the daemon's namespace).
fn skopeo_copy(d: &Daemon, layout: &Path, dest: &str, extra: &[&str]) {
    common::require("skopeo", "skopeo");
    let mut cmd = Command::new("skopeo");
    cmd.args([
        "--insecure-policy",
        "copy",
        "--all",
        "--dest-tls-verify=false",
    ])
    .args(extra)
    .arg(format!("oci:{}:1", layout.display()))
    .arg(format!("docker://{dest}"));
    d.netns_command(&mut cmd);
    let o = cmd.output().expect("run skopeo");
    assert!(o.status.success(), "skopeo copy: {}", err(&o));
}

#[test]
fn skopeo_made_indexes_and_lists_pull_with_platform_selection() {
    let d = docker_daemon();
    let _reg = Registry::start(&d, false);
    let work = d.dir.path().join("layouts");
    let rootfs = work.join("busybox.tar");
    std::fs::create_dir_all(&work).unwrap();
    common::busybox_rootfs_tar(&rootfs);
    let busybox = std::fs::read(&rootfs).unwrap();

    // An OCI index: amd64 in zstd, arm64 in gzip.
    let oci = work.join("oci");
    two_platform_layout(&oci, &busybox, true);
    skopeo_copy(&d, &oci, &at("multi:oci"), &[]);
    let target = at("multi:oci");
    let o = d.docker(&["pull", &target]);
    let text = ok(&o);
    assert!(text.contains("Pull complete"), "{text}");
    let digest = text
        .lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest line: {text}"))
        .to_string();
    let img = inspect(&d, &target);
    assert_eq!(img["Architecture"], "amd64");
    assert_eq!(
        img["RepoDigests"],
        serde_json::json!([format!("{}@{digest}", at("multi"))])
    );
    let o = d.docker(&["run", "--rm", &target, "cat", "/arch.txt"]);
    assert_eq!(ok(&o).trim(), "amd64");
    // GET /distribution/{name}/json answers the index and its platforms.
    let v = d.get_json(&format!("/distribution/{target}/json"));
    assert_eq!(v["Descriptor"]["digest"], digest.as_str());
    assert_eq!(
        v["Descriptor"]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let archs: Vec<&str> = v["Platforms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["architecture"].as_str())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);

    // --platform picks the other one; its busybox layer (gzip, another blob) is fetched too.
    let o = d.docker(&["pull", "--platform", "linux/arm64", &target]);
    assert!(ok(&o).contains(&format!("Digest: {digest}")), "{}", out(&o));
    assert_eq!(inspect(&d, &target)["Architecture"], "arm64");
    let o = d.docker(&["pull", "--platform", "linux/s390x", &target]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("no matching manifest for linux/s390x in the manifest list entries"),
        "{}",
        err(&o)
    );

    // A docker schema2 manifest list (gzip layers), converted by skopeo.
    let v2 = work.join("v2s2");
    two_platform_layout(&v2, &busybox, false);
    skopeo_copy(&d, &v2, &at("multi:v2s2"), &["--format", "v2s2"]);
    let target = at("multi:v2s2");
    let o = d.docker(&["pull", &target]);
    let text = ok(&o);
    assert!(text.contains("Status: Downloaded newer image"), "{text}");
    // Its busybox layer is the gzip blob the arm64 pull brought: not fetched again.
    assert_eq!(text.matches(": Already exists").count(), 1, "{text}");
    assert_eq!(text.matches(": Pull complete").count(), 1, "{text}");
    let o = d.docker(&["run", "--rm", &target, "cat", "/arch.txt"]);
    assert_eq!(ok(&o).trim(), "amd64");
    assert_store_clean(&d);

    // A pulled image (gzip layers, a schema2 manifest) saves and loads back.
    let id = inspect(&d, &target)["Id"].as_str().unwrap().to_string();
    let archive = work.join("saved.tar");
    ok(&d.docker(&["save", "-o", archive.to_str().unwrap(), &target]));
    ok(&d.docker(&["rmi", &target]));
    let o = d.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        ok(&o).contains(&format!("Loaded image: {target}")),
        "{}",
        out(&o)
    );
    assert_eq!(inspect(&d, &target)["Id"], id.as_str());
    let o = d.docker(&["run", "--rm", &target, "cat", "/arch.txt"]);
    assert_eq!(ok(&o).trim(), "amd64");
}

#[test]
fn docker_py_login_push_pull() {
    let d = docker_daemon();
    let _reg = Registry::start(&d, true);
    let probe = Command::new("python3")
        .args(["-c", "import docker"])
        .status();
    assert!(
        probe.map(|s| s.success()).unwrap_or(false),
        "the docker Python SDK is not installed: .ci/run installs it (pip install docker==7.1.0)"
    );
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/compat/docker_py_registry.py");
    let o = Command::new("python3")
        .arg(script)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("REGISTRY", at("").trim_end_matches('/'))
        .env("REG_USER", USER)
        .env("REG_PASSWORD", PASSWORD)
        .output()
        .expect("python3");
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        out(&o),
        err(&o)
    );
}

/// Runs openssl; fails the test with its stderr.
fn openssl(args: &[&str], dir: &Path) {
    common::require("openssl", "openssl");
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "openssl {args:?}: {}", err(&o));
}

#[test]
fn tls_registry_is_trusted_through_the_certs_dir() {
    // 172.17.0.1 is the default bridge's address in the daemon's namespace: not loopback, so not
    // insecure by default, and the certificate must verify.
    const HOST: &str = "172.17.0.1:5443";
    let mut d = docker_daemon();
    let certs = d.dir.path().join("certs.d");
    std::fs::create_dir_all(&certs).unwrap();
    d.args.push("--registry-certs-dir".into());
    d.args.push(certs.display().to_string());
    d.stop();
    d.spawn();
    let pki = d.dir.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=berth test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
        &pki,
    );
    std::fs::write(
        pki.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:172.17.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=172.17.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
        &pki,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
        &pki,
    );
    let _reg = Registry::start_at(
        &d,
        false,
        HOST,
        Some((pki.join("server.crt"), pki.join("server.key"))),
    );
    let target = format!("{HOST}/tls:1");
    ok(&d.docker(&["tag", "busybox", &target]));

    // Without the CA the certificate is refused.
    let o = d.docker(&["push", &target]);
    assert!(!o.status.success(), "{}", out(&o));
    let text = format!("{}{}", out(&o), err(&o));
    assert!(text.contains("certificate"), "{text}");

    std::fs::create_dir_all(certs.join(HOST)).unwrap();
    std::fs::copy(pki.join("ca.crt"), certs.join(HOST).join("ca.crt")).unwrap();
    let pushed = ok(&d.docker(&["push", &target]));
    let digest = pushed_digest(&pushed, "1");
    ok(&d.docker(&["rmi", "busybox", &target]));
    let pulled = ok(&d.docker(&["pull", &target]));
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    let o = d.docker(&["run", "--rm", &target, "echo", "over-tls"]);
    assert_eq!(ok(&o).trim(), "over-tls");
}

/// A credential helper for the test: keeps one credential in `$BERTH_TEST_CREDS`, speaking the
/// docker-credential-helpers protocol (`store`/`get`/`erase`, JSON and server URL on stdin).
const HELPER: &str = r#"#!/bin/sh
f="$BERTH_TEST_CREDS"
case "$1" in
store) cat > "$f" ;;
get)
    read -r server
    if [ -f "$f" ] && grep -q "\"ServerURL\":\"$server\"" "$f"; then cat "$f"; else
        echo "credentials not found in native keychain"; exit 1; fi ;;
erase) rm -f "$f" ;;
*) exit 2 ;;
esac
"#;

#[test]
fn credential_helpers_keep_logins_for_both_clis() {
    use std::os::unix::fs::PermissionsExt;
    let d = docker_daemon();
    let _reg = Registry::start(&d, true);
    let server = at("").trim_end_matches('/').to_string();
    let bin = d.dir.path().join("helper-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-berthtest");
    std::fs::write(&helper, HELPER).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config_dir = d.dir.path().join("helper-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        r#"{"credsStore": "berthtest"}"#,
    )
    .unwrap();
    let creds = d.dir.path().join("creds.json");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cli = |program: PathBuf, args: &[&str], stdin: Option<&Path>| {
        let mut cmd = Command::new(program);
        if cmd.get_program() == common::berth_bin().as_os_str() {
            cmd.arg("-H").arg(d.host());
        }
        cmd.args(args)
            .env("DOCKER_HOST", d.host())
            .env("DOCKER_CONFIG", &config_dir)
            .env("PATH", &path)
            .env("BERTH_TEST_CREDS", &creds)
            .stdin(match stdin {
                Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
                None => Stdio::null(),
            });
        cmd.output().unwrap()
    };
    let target = at("helped:1");
    ok(&d.docker(&["tag", "busybox", &target]));

    let pw = d.dir.path().join("pw");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let o = cli(
        common::berth_bin(),
        &["login", "-u", USER, "--password-stdin", &server],
        Some(&pw),
    );
    assert!(ok(&o).contains("Login Succeeded"), "{}", err(&o));
    let stored = std::fs::read_to_string(&creds).expect("the helper stored the credentials");
    assert!(
        stored.contains(USER) && stored.contains(PASSWORD),
        "{stored}"
    );
    let config = std::fs::read_to_string(config_dir.join("config.json")).unwrap();
    assert!(
        !config.contains("\"auth\""),
        "secret in config.json: {config}"
    );

    let o = cli(common::berth_bin(), &["push", &target], None);
    assert!(ok(&o).contains("1: digest: sha256:"), "{}", out(&o));
    ok(&d.docker(&["rmi", &target]));
    // The docker CLI finds the same login through the helper.
    let o = cli(common::docker_bin(), &["pull", &target], None);
    assert!(
        ok(&o).contains(&format!("Status: Downloaded newer image for {target}")),
        "{}",
        out(&o)
    );

    let o = cli(common::berth_bin(), &["logout", &server], None);
    assert!(ok(&o).contains("Removing login credentials"), "{}", out(&o));
    assert!(!creds.exists());
    let o = cli(common::berth_bin(), &["push", &target], None);
    assert!(!o.status.success());
    assert!(err(&o).contains("no basic auth credentials"), "{}", err(&o));
}

#[test]
fn token_auth_login_gives_an_identity_token_used_for_push_and_pull() {
    let d = docker_daemon();
    let keys = tempfile::tempdir().unwrap();
    let key = harness::signing_key(keys.path());
    let cert = key.cert_pem.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // Bound inside the daemon's namespace, where the daemon fetches its tokens.
    let tokens = d.in_netns(|| rt.block_on(harness::TokenServer::start(key)));
    let _reg = start_token(&d, &tokens.url, &cert);
    let server = at("").trim_end_matches('/').to_string();
    let target = at("tok:1");
    ok(&d.docker(&["tag", "busybox", &target]));

    let o = d.docker(&["login", "-u", harness::USER, "-p", "wrong", &server]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("incorrect username or password"),
        "{}",
        err(&o)
    );
    let o = d.docker(&[
        "login",
        "-u",
        harness::USER,
        "-p",
        harness::PASSWORD,
        &server,
    ]);
    assert!(ok(&o).contains("Login Succeeded"), "{}", err(&o));
    // The docker CLI keeps the identity token (the refresh token) instead of the password.
    let config = std::fs::read_to_string(d.dir.path().join("docker-config/config.json")).unwrap();
    assert!(config.contains(harness::REFRESH_TOKEN), "{config}");
    assert!(!config.contains(harness::PASSWORD), "{config}");

    let pushed = ok(&d.docker(&["push", &target]));
    let digest = pushed_digest(&pushed, "1");
    ok(&d.docker(&["rmi", "busybox", &target]));
    let pulled = ok(&d.docker(&["pull", &target]));
    assert!(pulled.contains(&format!("Digest: {digest}")), "{pulled}");
    assert!(
        tokens.posts.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the OAuth2 refresh-token flow was not used"
    );
    drop(tokens);
    drop(rt);
}

#[test]
fn many_layers_are_fetched_at_once_and_the_rest_wait() {
    let d = docker_daemon();
    let _reg = Registry::start(&d, false);
    let work = d.dir.path().join("many");
    let layout = work.join("layout");
    std::fs::create_dir_all(&layout).unwrap();
    let rootfs = work.join("busybox.tar");
    common::busybox_rootfs_tar(&rootfs);
    let mut raws = vec![std::fs::read(&rootfs).unwrap()];
    for i in 1..10 {
        raws.push(file_tar(
            &format!("layer{i}.txt"),
            format!("{i}\n").as_bytes(),
        ));
    }
    let layers: Vec<serde_json::Value> = raws
        .iter()
        .map(|r| {
            with_type(
                put_blob(&layout, &gzip(r)),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        })
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": raws.iter().map(|r| sha256(r)).collect::<Vec<_>>()},
    });
    let config = with_type(
        put_blob(&layout, &serde_json::to_vec(&config).unwrap()),
        "application/vnd.oci.image.config.v1+json",
    );
    let manifest = serde_json::json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": layers});
    let mut desc = with_type(
        put_blob(&layout, &serde_json::to_vec(&manifest).unwrap()),
        "application/vnd.oci.image.manifest.v1+json",
    );
    desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": "1"});
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [desc]})).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    skopeo_copy(&d, &layout, &at("many:1"), &[]);

    let target = at("many:1");
    let text = ok(&d.docker(&["pull", &target]));
    assert_eq!(text.matches(": Pull complete").count(), 10, "{text}");
    assert_eq!(text.matches(": Pulling fs layer").count(), 10, "{text}");
    // Six at a time: the last four are announced as waiting.
    assert_eq!(text.matches(": Waiting").count(), 4, "{text}");
    let o = d.docker(&["run", "--rm", &target, "cat", "/layer1.txt", "/layer9.txt"]);
    assert_eq!(ok(&o), "1\n9\n");
}

#[test]
fn a_build_pulls_its_missing_base_image() {
    let d = docker_daemon();
    let _reg = Registry::start(&d, false);
    let (id, _) = push_busybox(&d, "base");
    let base = at("base:1");
    ok(&d.docker(&["rmi", "busybox", &base]));
    let ctx = d.context(
        "ctx",
        format!("FROM {base}\nRUN echo built > /b\nCMD [\"cat\", \"/b\"]\n"),
    );
    let o = d.berth(&["build", "-t", "pulled:1", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert_eq!(inspect(&d, &base)["Id"], id.as_str());
    assert_eq!(ok(&d.docker(&["run", "--rm", "pulled:1"])), "built\n");
    // A base that no registry has fails the build with the pull's error.
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {}\n", at("nope:1"))).unwrap();
    let o = d.berth(&["build", ctx.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("nope"), "{}", err(&o));
}
