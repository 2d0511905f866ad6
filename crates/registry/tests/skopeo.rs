//! Interoperability with another client: what this crate pushes, skopeo reads; what skopeo pushes
//! (docker schema2 with gzip layers, OCI with zstd layers, a manifest list of two platforms), this
//! crate pulls and verifies.

mod harness;

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use harness::{Auth, Registry};
use registry::manifest::{self, Manifest};
use registry::{AuthConfig, Client, PlatformSpec, Session, UploadMode};

fn skopeo() -> PathBuf {
    let p = Path::new("/usr/bin/skopeo");
    assert!(
        p.exists(),
        "skopeo (Debian package skopeo) is not installed: the interoperability tests need it"
    );
    p.to_path_buf()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha(data: &[u8]) -> String {
    registry::digest::sha256(data)
}

fn write_blob(layout: &Path, data: &[u8]) -> serde_json::Value {
    let d = sha(data);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.join(&d[7..]), data).unwrap_or_else(|e| panic!("{e}"));
    serde_json::json!({"digest": d, "size": data.len()})
}

/// A real gzip'd tar layer (made with tar and gzip, as any image builder would), its diff ID and
/// the tar itself.
fn layer(work: &Path, name: &str, content: &str) -> (Vec<u8>, String, Vec<u8>) {
    let root = work.join(format!("{name}-root"));
    std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(root.join(format!("{name}.txt")), content).unwrap_or_else(|e| panic!("{e}"));
    let tar = work.join(format!("{name}.tar"));
    run(Command::new("tar")
        .arg("--sort=name")
        .arg("--mtime=@0")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    let raw = std::fs::read(&tar).unwrap_or_else(|e| panic!("{e}"));
    run(Command::new("gzip").arg("-n").arg("-k").arg(&tar));
    let gz = std::fs::read(work.join(format!("{name}.tar.gz"))).unwrap_or_else(|e| panic!("{e}"));
    (gz, sha(&raw), raw)
}

/// Writes an OCI image manifest (config + one layer, gzip or zstd) into the layout; answers its
/// descriptor and the layer blob.
fn oci_image(layout: &Path, work: &Path, arch: &str, zstd: bool) -> (serde_json::Value, Vec<u8>) {
    let name = if zstd {
        format!("{arch}-zstd")
    } else {
        arch.to_string()
    };
    let (gz, diff_id, raw) = layer(work, &name, &format!("hello from {arch}\n"));
    let (blob, media_type) = if zstd {
        let z = zstd::encode_all(raw.as_slice(), 3).unwrap_or_else(|e| panic!("zstd: {e}"));
        (z, manifest::OCI_LAYER_ZSTD)
    } else {
        (gz, manifest::OCI_LAYER_GZIP)
    };
    let mut l = write_blob(layout, &blob);
    l["mediaType"] = media_type.into();
    let config = serde_json::json!({
        "architecture": arch, "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string();
    let mut c = write_blob(layout, config.as_bytes());
    c["mediaType"] = manifest::OCI_CONFIG.into();
    let m = serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST, "config": c, "layers": [l],
    })
    .to_string();
    let mut d = write_blob(layout, m.as_bytes());
    d["mediaType"] = manifest::OCI_MANIFEST.into();
    (d, blob)
}

fn copy(args: &[&str]) {
    run(Command::new(skopeo())
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ])
        .args(["--src-tls-verify=false"])
        .args(args));
}

async fn pull_image(s: &Session, repo: &str, digest: &str) -> (String, Vec<(String, Bytes)>) {
    let m = s
        .get_manifest(repo, digest)
        .await
        .unwrap_or_else(|e| panic!("manifest {repo}@{digest}: {e}"));
    let Manifest::Image(im) = m.manifest else {
        panic!("expected an image manifest at {digest}")
    };
    let mut layers = Vec::new();
    for l in &im.layers {
        let b = s
            .fetch_blob_bytes(repo, &l.digest, Some(l.size))
            .await
            .unwrap_or_else(|e| panic!("layer {}: {e}", l.digest));
        layers.push((l.media_type.clone(), b));
    }
    (m.media_type, layers)
}

#[tokio::test]
async fn skopeo_reads_our_pushes_and_we_pull_skopeos() {
    let reg = Registry::start(Auth::None, None);
    let host = reg.host();
    let work = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let layout = work.path().join("layout");
    std::fs::create_dir_all(&layout).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (amd, amd_gz) = oci_image(&layout, work.path(), "amd64", false);
    let (arm, arm_gz) = oci_image(&layout, work.path(), "arm64", false);
    let (zst, zst_blob) = oci_image(&layout, work.path(), "amd64", true);
    let with_platform = |d: &serde_json::Value, arch: &str| {
        let mut d = d.clone();
        d["platform"] = serde_json::json!({"architecture": arch, "os": "linux"});
        d
    };
    let nested = serde_json::json!({
        "schemaVersion": 2, "mediaType": manifest::OCI_INDEX,
        "manifests": [with_platform(&amd, "amd64"), with_platform(&arm, "arm64")],
    })
    .to_string();
    let mut nested_d = write_blob(&layout, nested.as_bytes());
    nested_d["mediaType"] = manifest::OCI_INDEX.into();
    let named = |d: &serde_json::Value, name: &str| {
        let mut d = d.clone();
        d["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": name});
        d
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [named(&amd, "single"), named(&nested_d, "multi"), named(&zst, "zstd")],
    });
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap_or_else(|e| panic!("{e}"));
    let oci = |name: &str| format!("oci:{}:{name}", layout.display());

    let client = Client::new(harness::client_config());
    let s = client
        .push_session(&host, AuthConfig::default())
        .await
        .unwrap_or_else(|e| panic!("session: {e}"));

    // skopeo pushes a docker schema2 image: we pull it, gzip layer byte for byte.
    copy(&[
        "--format",
        "v2s2",
        &oci("single"),
        &format!("docker://{host}/from/skopeo:v2s2"),
    ]);
    let top = s
        .resolve("from/skopeo", "v2s2")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(top.media_type, manifest::DOCKER_MANIFEST);
    let (mt, layers) = pull_image(&s, "from/skopeo", &top.digest).await;
    assert_eq!(mt, manifest::DOCKER_MANIFEST);
    assert_eq!(layers.len(), 1);
    assert_eq!(layers[0].0, manifest::DOCKER_LAYER_GZIP);
    assert_eq!(sha(&layers[0].1), sha(&amd_gz));

    // OCI with zstd layers.
    copy(&[
        "--format",
        "oci",
        &oci("zstd"),
        &format!("docker://{host}/from/zstd:v1"),
    ]);
    let top = s
        .resolve("from/zstd", "v1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (mt, layers) = pull_image(&s, "from/zstd", &top.digest).await;
    assert_eq!(mt, manifest::OCI_MANIFEST);
    assert_eq!(layers[0].0, manifest::OCI_LAYER_ZSTD);
    assert_eq!(sha(&layers[0].1), sha(&zst_blob));
    assert_eq!(&layers[0].1[..4], &[0x28, 0xb5, 0x2f, 0xfd], "a zstd frame");

    // A manifest list of two platforms: the client picks each.
    copy(&[
        "--all",
        "--format",
        "v2s2",
        &oci("multi"),
        &format!("docker://{host}/from/skopeo:multi"),
    ]);
    let list = s
        .get_manifest("from/skopeo", "multi")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(list.media_type, manifest::DOCKER_MANIFEST_LIST);
    let Manifest::Index(idx) = &list.manifest else {
        panic!("expected a manifest list")
    };
    for (platform, gz) in [("linux/amd64", &amd_gz), ("linux/arm64", &arm_gz)] {
        let p = PlatformSpec::parse(platform).unwrap_or_else(|e| panic!("{e}"));
        let d = p.select(idx).unwrap_or_else(|e| panic!("{e}"));
        let (_, layers) = pull_image(&s, "from/skopeo", &d.digest).await;
        assert_eq!(sha(&layers[0].1), sha(gz), "{platform}");
    }

    // We push (blobs chunked, an OCI manifest); skopeo copies it out and finds the same bytes.
    let manifest_bytes = std::fs::read(
        layout
            .join("blobs/sha256")
            .join(&amd["digest"].as_str().unwrap_or_default()[7..]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let parsed: registry::ImageManifest =
        serde_json::from_slice(&manifest_bytes).unwrap_or_else(|e| panic!("{e}"));
    for d in std::iter::once(&parsed.config).chain(&parsed.layers) {
        let path = layout.join("blobs/sha256").join(&d.digest[7..]);
        s.push_blob(
            "ours/img",
            &d.digest,
            d.size,
            None,
            UploadMode::Chunked(64),
            move |off| {
                let path = path.clone();
                async move {
                    use tokio::io::AsyncSeekExt;
                    let mut f = tokio::fs::File::open(path).await?;
                    f.seek(std::io::SeekFrom::Start(off)).await?;
                    Ok(f)
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("push {}: {e}", d.digest));
    }
    s.put_manifest(
        "ours/img",
        "v1",
        manifest::OCI_MANIFEST,
        Bytes::from(manifest_bytes.clone()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let out = work.path().join("out");
    copy(&[
        &format!("docker://{host}/ours/img:v1"),
        &format!("dir:{}", out.display()),
    ]);
    let got = std::fs::read(out.join("manifest.json")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sha(&got), sha(&manifest_bytes));
    let layer =
        std::fs::read(out.join(&parsed.layers[0].digest[7..])).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sha(&layer), sha(&amd_gz));
}
