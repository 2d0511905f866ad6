//! `docker save`: writes the layout Docker ≥ 25 writes — OCI `index.json`, `oci-layout` and
//! `blobs/sha256/*`, plus the legacy `manifest.json` and `repositories` — as one tar stream.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, Read, Write};

use ::archive::{EntryHeader, EntryType, WriteOptions};
use serde_json::json;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::compress::BUF_SIZE;
use crate::manifest::{self, Descriptor, Index};
use crate::reference::Reference;
use crate::store::ImageStore;
use crate::Image;

/// Writes the archive for `names` to `out`.
pub(crate) fn save(store: &ImageStore, names: &[String], out: &mut dyn Write) -> Result<()> {
    // Resolve everything first so a bad name fails before any byte is written.
    let mut images: Vec<(Image, Vec<Reference>)> = Vec::new();
    for n in names {
        let (img, r) = store.resolve(n)?;
        let pos = match images.iter().position(|(i, _)| i.id == img.id) {
            Some(p) => p,
            None => {
                images.push((img, Vec::new()));
                images.len() - 1
            }
        };
        if let Some(r) = r {
            if !images[pos].1.contains(&r) {
                images[pos].1.push(r);
            }
        }
    }
    // Hold the GC lock shared so no blob disappears mid-stream.
    let _gc = store
        .gc_lock
        .read()
        .map_err(|_| Error::Conflict("image store lock poisoned".into()))?;
    let mut tar = Tar::new(
        io::BufWriter::with_capacity(BUF_SIZE, out),
        WriteOptions::default(),
    );
    dir(&mut tar, "blobs/")?;
    dir(&mut tar, "blobs/sha256/")?;
    let mut written = BTreeSet::new();
    let mut buf = vec![0u8; BUF_SIZE];
    for (img, _) in &images {
        for d in crate::store::blobs_of(img) {
            if written.insert(d.clone()) {
                let kept_as_snapshot = img
                    .layers
                    .iter()
                    .find(|l| l.blob == d)
                    .filter(|_| !store.content.exists(&d));
                match kept_as_snapshot {
                    Some(l) => write_layer_from_snapshot(store, &mut tar, l, &mut buf)?,
                    None => write_blob(store, &mut tar, &d, &mut buf)?,
                }
            }
        }
    }
    let mut index = Index {
        schema_version: 2,
        media_type: Some(manifest::OCI_INDEX.into()),
        manifests: Vec::new(),
        annotations: None,
    };
    let mut legacy = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (img, tags) in &images {
        let size = store.content.size(&img.manifest_digest)?;
        let media_type = store
            .content
            .read(&img.manifest_digest)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| {
                v.get("mediaType")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| manifest::OCI_MANIFEST.to_string());
        let desc = |ann: Option<BTreeMap<String, String>>| Descriptor {
            media_type: media_type.clone(),
            digest: img.manifest_digest.clone(),
            size,
            annotations: ann,
            platform: None,
        };
        if tags.is_empty() {
            index.manifests.push(desc(None));
        }
        for t in tags {
            let mut ann = BTreeMap::new();
            ann.insert(manifest::ANNOTATION_IMAGE_NAME.to_string(), t.to_string());
            if let Some(tag) = t.tag() {
                ann.insert(manifest::ANNOTATION_REF_NAME.to_string(), tag.to_string());
                if let Some(top) = img.layers.last() {
                    repositories
                        .entry(t.familiar_name())
                        .or_default()
                        .insert(tag.to_string(), top.diff_id.hex().to_string());
                }
            }
            index.manifests.push(desc(Some(ann)));
        }
        legacy.push(json!({
            "Config": blob_path(&img.id),
            "RepoTags": tags.iter().map(Reference::familiar).collect::<Vec<_>>(),
            "Layers": img.layers.iter().map(|l| blob_path(&l.blob)).collect::<Vec<_>>(),
        }));
    }
    file(&mut tar, "index.json", &to_json(&index)?)?;
    file(&mut tar, "manifest.json", &to_json(&legacy)?)?;
    file(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    if !repositories.is_empty() {
        file(&mut tar, "repositories", &to_json(&repositories)?)?;
    }
    tar.finish().map(drop).map_err(write_error)
}

/// The archive's writer: every entry root's, at the epoch, so that the same images save to the same bytes.
type Tar<W> = ::archive::Writer<io::BufWriter<W>>;

fn write_error(e: ::archive::Error) -> Error {
    match e {
        ::archive::Error::Io { op, path, source } => Error::io(op, path, source),
        other => Error::io("write", "archive", io::Error::other(other)),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::json("archive metadata", e))
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/sha256/{}", d.hex())
}

fn entry(kind: EntryType, size: u64, mode: u32) -> EntryHeader {
    EntryHeader {
        size,
        ..EntryHeader::new(kind, mode)
    }
}

fn dir<W: Write>(tar: &mut Tar<W>, path: &str) -> Result<()> {
    let h = entry(EntryType::Directory, 0, 0o755);
    tar.append(&h, path.as_bytes(), None, io::empty())
        .map_err(write_error)
}

fn file<W: Write>(tar: &mut Tar<W>, path: &str, data: &[u8]) -> Result<()> {
    let h = entry(EntryType::Regular, data.len() as u64, 0o644);
    tar.append(&h, path.as_bytes(), None, data)
        .map_err(write_error)
}

fn write_blob<W: Write>(
    store: &ImageStore,
    tar: &mut Tar<W>,
    d: &Digest,
    buf: &mut [u8],
) -> Result<()> {
    let f = store.content.open_blob(d)?;
    let size = f
        .metadata()
        .map_err(|e| Error::io("stat", store.content.path(d), e))?
        .len();
    let h = entry(EntryType::Regular, size, 0o644);
    // The tar writer copies with a small buffer; a big-buffered reader keeps syscalls few.
    let reader = BigRead {
        inner: f,
        buf,
        pos: 0,
        len: 0,
    };
    tar.append(&h, blob_path(d).as_bytes(), None, reader)
        .map_err(write_error)
}

/// An uncompressed layer the store keeps only as its snapshot: the tar rebuilt from its files and
/// tar split.
fn write_layer_from_snapshot<W: Write>(
    store: &ImageStore,
    tar: &mut Tar<W>,
    layer: &crate::Layer,
    buf: &mut [u8],
) -> Result<()> {
    let h = entry(EntryType::Regular, layer.blob_size, 0o644);
    let reader = BigRead {
        inner: store.layer_blob(layer, 0)?,
        buf,
        pos: 0,
        len: 0,
    };
    tar.append(&h, blob_path(&layer.blob).as_bytes(), None, reader)
        .map_err(write_error)
}

/// A reader with a caller-provided large buffer.
struct BigRead<'a, R> {
    inner: R,
    buf: &'a mut [u8],
    pos: usize,
    len: usize,
}

impl<R: Read> Read for BigRead<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.len {
            self.len = self.inner.read(self.buf)?;
            self.pos = 0;
            if self.len == 0 {
                return Ok(0);
            }
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::IoContext;
    use std::path::Path;
    use std::process::Command;

    /// Fails the test unless `tool` runs: `.ci/run` installs skopeo and umoci, and a test must not pass by
    /// not running.
    fn require(tool: &str) {
        assert!(
            Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is not installed: .ci/run installs it (apt-get install {tool})"
        );
    }

    fn run(cmd: &mut Command) -> Result<String> {
        let out = cmd.output().ctx("run", format!("{cmd:?}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(text)
    }

    #[test]
    fn saved_archive_is_readable_by_skopeo_and_umoci() -> Result<()> {
        require("skopeo");
        require("umoci");
        let dir = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let store = ImageStore::open(dir.path().join("store"))?;
        crate::archive::load::tests::load_fixture(&store)?;
        let img = store.get("fixture/webapp:1.0")?;
        let tar_path = dir.path().join("saved.tar");
        let mut f = std::fs::File::create(&tar_path).ctx("create", &tar_path)?;
        store.save(&["fixture/webapp:1.0".into()], &mut f)?;
        drop(f);

        let inspect = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("docker-archive:{}", tar_path.display())))?;
        assert!(inspect.contains(img.layers[0].blob.as_str()), "{inspect}");

        let layout = dir.path().join("layout");
        std::fs::create_dir(&layout).ctx("mkdir", &layout)?;
        let saved = std::fs::File::open(&tar_path).ctx("open", &tar_path)?;
        ::archive::extract_into(&layout, saved, &::archive::Options::layer())
            .map_err(|e| Error::InvalidArchive(e.to_string()))?;
        let inspect = run(Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:1.0", layout.display())))?;
        assert!(inspect.contains(img.layers[4].blob.as_str()), "{inspect}");
        let raw = run(Command::new("skopeo")
            .arg("inspect")
            .arg("--raw")
            .arg(format!("oci:{}:1.0", layout.display())))?;
        assert_eq!(crate::Digest::of(raw.as_bytes()), img.manifest_digest);

        let ls = run(Command::new("umoci").arg("ls").arg("--layout").arg(&layout))?;
        assert!(ls.lines().any(|l| l.trim() == "1.0"), "{ls}");
        let bundle = dir.path().join("bundle");
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:1.0", layout.display()))
            .arg(&bundle))?;
        assert!(Path::new(&bundle)
            .join("rootfs/srv/app/site/index.html")
            .is_file());
        Ok(())
    }

    #[test]
    fn load_reads_oci_archives_with_gzip_and_zstd_layers_from_skopeo() -> Result<()> {
        require("skopeo");
        let dir = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/dockerd-webapp/webapp-docker-save.tar");
        for format in ["gzip", "zstd"] {
            let out = dir.path().join(format!("{format}.tar"));
            run(Command::new("skopeo")
                .args([
                    "copy",
                    "-q",
                    "--dest-compress",
                    "--dest-compress-format",
                    format,
                ])
                .arg(format!("docker-archive:{}", fixture.display()))
                .arg(format!("oci-archive:{}:latest", out.display())))?;
            let store = ImageStore::open(dir.path().join(format!("store-{format}")))?;
            let mut f = std::fs::File::open(&out).ctx("open", &out)?;
            let loaded = store.load(&mut f, &mut |_| {})?;
            assert_eq!(loaded.len(), 1);
            // skopeo's ref.name is a bare tag: Docker leaves such images untagged.
            assert!(loaded[0].tags.is_empty());
            let img = store.get(loaded[0].id.as_str())?;
            // skopeo rewrites the config as an OCI config (new ID) but the layers' diff IDs stay.
            assert_eq!(img.layers.len(), 5);
            assert_eq!(
                img.layers[4].diff_id.as_str(),
                "sha256:b06be275141595759dbdc4534e48f104fd651a19fa0df44a406b68130795006c"
            );
            assert_eq!(img.size, 1_986_084);
            let want = if format == "gzip" {
                crate::manifest::OCI_LAYER_GZIP
            } else {
                crate::manifest::OCI_LAYER_ZSTD
            };
            assert!(
                img.layers.iter().all(|l| l.media_type == want),
                "{:?}",
                img.layers
            );
            // And back out: the saved archive round-trips through a fresh store.
            let mut saved = Vec::new();
            store.save(&[img.id.to_string()], &mut saved)?;
            let again = ImageStore::open(dir.path().join(format!("again-{format}")))?;
            let l2 = again.load(&mut &saved[..], &mut |_| {})?;
            assert_eq!(
                again.get(l2[0].id.as_str())?.manifest_digest,
                img.manifest_digest
            );
        }
        Ok(())
    }

    #[test]
    fn load_reads_skopeo_docker_archive_with_symlinked_layers() -> Result<()> {
        require("skopeo");
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/dockerd-webapp/webapp-docker-save.tar");
        let dir = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let out = dir.path().join("sk.tar");
        run(Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("docker-archive:{}", fixture.display()))
            .arg(format!(
                "docker-archive:{}:fixture/webapp:2.0",
                out.display()
            )))?;
        let store = ImageStore::open(dir.path().join("store"))?;
        let mut f = std::fs::File::open(&out).ctx("open", &out)?;
        let loaded = store.load(&mut f, &mut |_| {})?;
        assert_eq!(loaded.len(), 1);
        let img = store.get("fixture/webapp:2.0")?;
        assert_eq!(
            img.id.as_str(),
            "sha256:577d8034c8e21de40e24ea4b7edef267879a8020c636d9def665075be53de13a"
        );
        assert_eq!(img.size, 1_986_084);
        Ok(())
    }
}
