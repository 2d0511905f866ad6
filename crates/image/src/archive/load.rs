//! `docker load`: reads a legacy docker-save, Docker ≥ 25 or OCI archive in one streaming pass.
//!
//! Every file that is not small metadata goes straight into the blob store's ingest area while being
//! hashed; files that look like layers (tar, gzip or zstd magic) are also unpacked into a temp snapshot
//! on the fly, so a layer is read once. After the stream, `manifest.json` (or else `index.json`) says
//! which blobs make which image; snapshots are renamed to their chain IDs, records written, tags last.

use std::collections::HashMap;
use std::io::{self, BufReader, Cursor, Read, Write};

use crate::config::ImageConfig;
use crate::content::BackgroundBlobWriter;
use crate::digest::{is_hex64, BackgroundHashingReader, Digest};
use crate::error::{Error, IoContext, Result};
use crate::layer::compress::{read_up_to, Compression, BUF_SIZE};
use crate::manifest::{self, ArchiveManifestEntry, Descriptor, Index, Manifest};
use crate::reference::Reference;
use crate::snapshot::{PendingSnapshot, SnapshotMeta};
use crate::store::ImageStore;
use crate::{Image, Layer, LoadProgress, LoadedImage};

/// Metadata files bigger than this are refused (they are read into memory).
const MAX_METADATA: u64 = 64 << 20;
/// How many bytes progress reports are apart.
const PROGRESS_STEP: u64 = 4 << 20;

/// A layer unpacked speculatively while the archive streamed by.
struct Unpacked {
    snap: PendingSnapshot,
    compression: Compression,
    diff_id: Digest,
    size: u64,
}

/// What the outer tar held.
#[derive(Default)]
struct Staged {
    /// Archive path → blob digest of files put in the blob store.
    files: HashMap<String, Digest>,
    /// Archive path → content of small metadata files.
    meta: HashMap<String, Vec<u8>>,
    /// Archive path → the path a symlink or hard link in the archive points to.
    links: HashMap<String, String>,
    /// Blob → its speculative unpack (or why it failed).
    unpacked: HashMap<Digest, Result<Unpacked>>,
    /// Blob → diff ID, for blobs known to be layers.
    diff_ids: HashMap<Digest, (Digest, Compression, u64)>,
    /// Uncompressed layers kept only as snapshots (files and tar split), not as blobs: their size.
    split_only: HashMap<Digest, u64>,
    /// Such a layer → a committed snapshot of it, to unpack it again from (another chain).
    split_chain: HashMap<Digest, Digest>,
}

impl Staged {
    fn resolve(&self, path: &str) -> Option<&Digest> {
        let mut p = normalize(path)?;
        for _ in 0..16 {
            if let Some(d) = self.files.get(&p) {
                return Some(d);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }

    fn meta_file(&self, path: &str) -> Option<&[u8]> {
        let mut p = normalize(path)?;
        for _ in 0..16 {
            if let Some(d) = self.meta.get(&p) {
                return Some(d);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }
}

/// One image found in the archive, before it is committed.
struct Planned {
    config: Digest,
    tags: Vec<Reference>,
    layers: Vec<(Digest, Option<String>)>,
    manifest: Option<Digest>,
}

/// Loads an archive into `store`.
pub(crate) fn load(
    store: &ImageStore,
    archive: &mut dyn Read,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Vec<LoadedImage>> {
    let _gc = store
        .gc_lock
        .read()
        .map_err(|_| Error::Conflict("image store lock poisoned".into()))?;
    let mut staged = read_archive(store, archive, progress)?;
    let plans = plan(store, &staged)?;
    // Every layer unpacked on the way reaches the disk in one sync, before any is committed.
    store
        .snapshots
        .sync_pending(staged.unpacked.values_mut().filter_map(|u| {
            let u = u.as_mut().ok()?;
            let meta = SnapshotMeta {
                diff_id: u.diff_id.clone(),
                size: u.size,
            };
            Some((&mut u.snap, meta))
        }))?;
    let mut prepared = Vec::new();
    for p in plans {
        prepared.push((prepare(store, &mut staged, &p)?, p.tags));
    }
    let mut out = Vec::new();
    for (image, tags) in prepared {
        let img = store.commit_image(image, &tags)?;
        out.push(LoadedImage { id: img.id, tags });
    }
    Ok(out)
}

/// Lexically cleans an archive path; `None` for paths with `..` (they never name a member we use).
fn normalize(p: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

fn is_metadata(path: &str) -> bool {
    matches!(
        path,
        "manifest.json" | "index.json" | "oci-layout" | "repositories"
    ) || path.ends_with("/json")
        || path.ends_with("/VERSION")
}

fn archive_err(e: &io::Error) -> Error {
    Error::InvalidArchive(format!("reading archive: {e}"))
}

/// Streams the outer tar once (through the archive crate's member reader: nothing here makes files from
/// the archive's names; blobs are filed by digest).
fn read_archive(
    store: &ImageStore,
    archive: &mut dyn Read,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<Staged> {
    use ::archive::MemberKind;
    let mut staged = Staged::default();
    let members = ::archive::read_members(BufReader::with_capacity(BUF_SIZE, archive), |m| {
        let raw = String::from_utf8_lossy(&m.path).into_owned();
        let Some(path) = normalize(&raw) else {
            return Ok(());
        };
        match m.kind {
            MemberKind::Symlink { target } => {
                let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
                let target = String::from_utf8_lossy(&target);
                if let Some(t) = normalize(&format!("{dir}/{target}")) {
                    staged.links.insert(path, t);
                }
            }
            MemberKind::HardLink { target } => {
                if let Some(t) = normalize(&String::from_utf8_lossy(&target)) {
                    staged.links.insert(path, t);
                }
            }
            MemberKind::File { size } if is_metadata(&path) => {
                if size > MAX_METADATA {
                    return Err(Error::InvalidArchive(format!(
                        "{path} is too large ({size} bytes)"
                    )));
                }
                let mut data = Vec::with_capacity(size as usize);
                m.data.read_to_end(&mut data).map_err(|e| archive_err(&e))?;
                staged.meta.insert(path, data);
            }
            MemberKind::File { size } => {
                ingest_file(store, &mut staged, &path, size, m.data, progress)?;
            }
            MemberKind::Other => {}
        }
        Ok(())
    });
    match members {
        Ok(0) => Err(Error::InvalidArchive("empty archive".into())),
        Ok(_) => Ok(staged),
        Err(::archive::ReadError::Tar(e)) => Err(archive_err(&e)),
        Err(::archive::ReadError::Caller(e)) => Err(e),
    }
}

/// Puts one archive member into the blob store, unpacking it on the fly when it looks like a layer.
fn ingest_file(
    store: &ImageStore,
    staged: &mut Staged,
    path: &str,
    total: u64,
    entry: &mut dyn Read,
    progress: &mut dyn FnMut(LoadProgress),
) -> Result<()> {
    let expected = path
        .strip_prefix("blobs/sha256/")
        .filter(|h| is_hex64(h))
        .map(Digest::from_hex)
        .transpose()?;
    let short: String = match &expected {
        Some(d) => d.short().to_string(),
        None => path
            .split('/')
            .next()
            .unwrap_or(path)
            .chars()
            .take(12)
            .collect(),
    };
    let mut head = vec![0u8; 512];
    let n = read_up_to(entry, &mut head).map_err(|e| archive_err(&e))?;
    head.truncate(n);
    let looks_like_layer = path.ends_with("/layer.tar")
        || Compression::detect(&head) != Compression::None
        || (head.len() >= 262 && &head[257..262] == b"ustar");
    let mut tee = Tee {
        inner: entry,
        out: None,
        progress,
        id: short,
        total,
        done: n as u64,
        reported: 0,
    };
    if looks_like_layer && Compression::detect(&head) == Compression::None {
        // An uncompressed layer is kept once: as its snapshot, whose files and tar split give the
        // blob back byte for byte. It is hashed once, here (its diff ID is its digest), on a helper
        // thread while this one unpacks.
        let mut hashing = BackgroundHashingReader::new(Cursor::new(head).chain(&mut tee))?;
        let res = store.snapshots.unpack_skip_plain_hash(&mut hashing);
        io::copy(&mut hashing, &mut io::sink()).map_err(|e| archive_err(&e))?;
        let (digest, size) = hashing.finish()?;
        tee.finish();
        if let Some(exp) = &expected {
            if *exp != digest {
                return Err(Error::DigestMismatch {
                    what: format!("blob {exp}"),
                    expected: exp.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let res = res.map(|(snap, compression, _, stats)| Unpacked {
            snap,
            compression,
            diff_id: digest.clone(),
            size: stats.size,
        });
        if let Ok(u) = &res {
            staged
                .diff_ids
                .insert(digest.clone(), (u.diff_id.clone(), u.compression, u.size));
            staged.split_only.insert(digest.clone(), size);
        }
        staged.unpacked.insert(digest.clone(), res);
        staged.files.insert(path.to_string(), digest);
        return Ok(());
    }
    let mut writer = store.content.writer()?.in_background()?;
    writer.write_all(&head).ctx("write", "blob")?;
    tee.out = Some(&mut writer);
    let unpacked = if looks_like_layer {
        let mut reader = Cursor::new(head).chain(&mut tee);
        let res = store.snapshots.unpack_skip_plain_hash(&mut reader);
        // Whatever the unpack did not read (tar padding, or everything after a failure) still belongs to the blob.
        io::copy(&mut reader, &mut io::sink()).map_err(|e| archive_err(&e))?;
        Some(res)
    } else {
        io::copy(&mut tee, &mut io::sink()).map_err(|e| archive_err(&e))?;
        None
    };
    tee.finish();
    drop(tee);
    let (digest, _) = writer.finish()?.commit(expected.as_ref())?;
    // An uncompressed layer's diff ID is its blob digest.
    let unpacked = unpacked.map(|res| {
        res.map(|(snap, compression, diff_id, stats)| Unpacked {
            snap,
            compression,
            diff_id: diff_id.unwrap_or_else(|| digest.clone()),
            size: stats.size,
        })
    });
    if let Some(res) = unpacked {
        if let Ok(u) = &res {
            staged
                .diff_ids
                .insert(digest.clone(), (u.diff_id.clone(), u.compression, u.size));
        }
        staged.unpacked.insert(digest.clone(), res);
    }
    staged.files.insert(path.to_string(), digest);
    Ok(())
}

/// Copies what is read into the blob writer and reports progress.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    out: Option<&'a mut BackgroundBlobWriter>,
    progress: &'a mut dyn FnMut(LoadProgress),
    id: String,
    total: u64,
    done: u64,
    reported: u64,
}

impl Tee<'_> {
    fn finish(&mut self) {
        (self.progress)(LoadProgress::Layer {
            id: self.id.clone(),
            current: self.done,
            total: self.total,
        });
    }
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(out) = &mut self.out {
            out.write_all(&buf[..n])?;
        }
        self.done += n as u64;
        if self.done - self.reported >= PROGRESS_STEP {
            self.reported = self.done;
            (self.progress)(LoadProgress::Layer {
                id: self.id.clone(),
                current: self.done,
                total: self.total,
            });
        }
        Ok(n)
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &str, data: &[u8]) -> Result<T> {
    serde_json::from_slice(data).map_err(|e| Error::InvalidArchive(format!("{what}: {e}")))
}

/// Works out the images in the archive from `manifest.json` or, failing that, `index.json`.
fn plan(store: &ImageStore, staged: &Staged) -> Result<Vec<Planned>> {
    // Config digest → (manifest digest, layer media types) from an OCI index, when there is one.
    let mut from_index: Vec<Planned> = Vec::new();
    if let Some(data) = staged.meta_file("index.json") {
        let index: Index = parse_json("index.json", data)?;
        walk_index(store, &index, None, &mut from_index, 0)?;
    }
    let Some(data) = staged.meta_file("manifest.json") else {
        if staged.meta_file("index.json").is_none() {
            return Err(Error::InvalidArchive(
                "archive has neither manifest.json nor index.json".into(),
            ));
        }
        return Ok(from_index);
    };
    let entries: Vec<ArchiveManifestEntry> = parse_json("manifest.json", data)?;
    let mut out = Vec::new();
    for e in entries {
        let missing = |p: &str| {
            Error::InvalidArchive(format!("manifest.json names {p}, which the archive lacks"))
        };
        let config = staged
            .resolve(&e.config)
            .ok_or_else(|| missing(&e.config))?
            .clone();
        let mut layers = Vec::new();
        for l in &e.layers {
            layers.push((staged.resolve(l).ok_or_else(|| missing(l))?.clone(), None));
        }
        let mut tags = Vec::new();
        for t in e.repo_tags.iter().flatten() {
            tags.push(Reference::parse_normalized(t)?);
        }
        let mut manifest = None;
        if let Some(p) = from_index.iter().find(|p| p.config == config) {
            manifest = p.manifest.clone();
            for (i, (_, mt)) in layers.iter_mut().enumerate() {
                *mt = p.layers.get(i).and_then(|(_, m)| m.clone());
            }
        }
        out.push(Planned {
            config,
            tags,
            layers,
            manifest,
        });
    }
    Ok(out)
}

fn descriptor_tag(d: &Descriptor, inherited: Option<&Reference>) -> Option<Reference> {
    let ann = d.annotations.as_ref();
    if let Some(name) = ann.and_then(|a| a.get(manifest::ANNOTATION_IMAGE_NAME)) {
        return Reference::parse_normalized(name).ok();
    }
    // skopeo writes a bare tag (`latest`) here; Docker only uses it when it is a full reference.
    if let Some(name) = ann.and_then(|a| a.get(manifest::ANNOTATION_REF_NAME)) {
        if name.contains(['/', ':']) {
            if let Ok(r) = Reference::parse_normalized(name) {
                return Some(r);
            }
        }
    }
    inherited.cloned()
}

fn walk_index(
    store: &ImageStore,
    index: &Index,
    inherited: Option<&Reference>,
    out: &mut Vec<Planned>,
    depth: usize,
) -> Result<()> {
    if depth > 8 {
        return Err(Error::InvalidArchive("indexes nested too deep".into()));
    }
    // A multi-platform index: keep linux/amd64 only (what this host runs).
    let has_platforms = index
        .manifests
        .iter()
        .filter(|d| manifest::is_manifest(&d.media_type))
        .count()
        > 1
        && index.manifests.iter().any(|d| d.platform.is_some());
    for d in &index.manifests {
        let tag = descriptor_tag(d, inherited);
        if manifest::is_index(&d.media_type) {
            let data = store.content.read(&d.digest)?;
            let nested: Index = parse_json("nested index", &data)?;
            walk_index(store, &nested, tag.as_ref(), out, depth + 1)?;
        } else if manifest::is_manifest(&d.media_type) || d.media_type.is_empty() {
            if has_platforms {
                let ok = d
                    .platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == "amd64");
                if !ok {
                    continue;
                }
            }
            let data = store.content.read(&d.digest)?;
            let m: Manifest = parse_json("manifest", &data)?;
            if let Some(existing) = out
                .iter_mut()
                .find(|p| p.manifest.as_ref() == Some(&d.digest))
            {
                existing.tags.extend(tag);
                continue;
            }
            out.push(Planned {
                config: m.config.digest.clone(),
                tags: tag.into_iter().collect(),
                layers: m
                    .layers
                    .iter()
                    .map(|l| (l.digest.clone(), Some(l.media_type.clone())))
                    .collect(),
                manifest: Some(d.digest.clone()),
            });
        }
    }
    Ok(())
}

/// Unpacks (or reuses) an image's snapshots and stores its manifest; returns the record to commit.
fn prepare(store: &ImageStore, staged: &mut Staged, p: &Planned) -> Result<Image> {
    let config_bytes = store.content.read(&p.config)?;
    let config: ImageConfig = parse_json("image config", &config_bytes)?;
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != p.layers.len() {
        return Err(Error::InvalidArchive(format!(
            "image {} has {} layers but its config lists {} diff IDs",
            p.config,
            p.layers.len(),
            diff_ids.len()
        )));
    }
    let mut layers = Vec::new();
    let mut chain: Option<Digest> = None;
    for ((blob, media_type), want) in p.layers.iter().zip(diff_ids) {
        let chain_id = Digest::chain(chain.as_ref(), want);
        let spec = staged.unpacked.remove(blob).transpose()?;
        let (diff_id, compression, size) = match spec {
            Some(u) => {
                let got = (u.diff_id.clone(), u.compression, u.size);
                check_diff(blob, want, &got.0)?;
                u.snap.commit(
                    &store.snapshots,
                    &chain_id,
                    &SnapshotMeta {
                        diff_id: got.0.clone(),
                        size: got.2,
                    },
                )?;
                if staged.split_only.contains_key(blob) {
                    staged
                        .split_chain
                        .entry(blob.clone())
                        .or_insert_with(|| chain_id.clone());
                }
                got
            }
            None => match (
                staged.diff_ids.get(blob).cloned(),
                store.snapshots.meta(&chain_id),
            ) {
                (Some(known), Some(_)) => known,
                // An uncompressed blob is its own diff ID: no need to read it again.
                (None, Some(meta)) if blob == want && meta.diff_id == *want => {
                    (want.clone(), Compression::None, meta.size)
                }
                _ => {
                    let source: Box<dyn Read> = match staged.split_chain.get(blob) {
                        Some(first) => Box::new(store.snapshots.layer_tar(first, 0)?),
                        None => Box::new(store.content.open_blob(blob)?),
                    };
                    let (snap, c, diff_id, stats) = store.snapshots.unpack(source)?;
                    check_diff(blob, want, &diff_id)?;
                    snap.commit(
                        &store.snapshots,
                        &chain_id,
                        &SnapshotMeta {
                            diff_id: diff_id.clone(),
                            size: stats.size,
                        },
                    )?;
                    (diff_id, c, stats.size)
                }
            },
        };
        check_diff(blob, want, &diff_id)?;
        staged
            .diff_ids
            .insert(blob.clone(), (diff_id.clone(), compression, size));
        let media_type = media_type
            .clone()
            .unwrap_or_else(|| compression.oci_media_type().to_string());
        layers.push(Layer {
            diff_id,
            chain_id: chain_id.clone(),
            blob: blob.clone(),
            media_type,
            blob_size: match staged.split_only.get(blob) {
                Some(size) => *size,
                None => store.content.size(blob)?,
            },
            size,
        });
        chain = Some(chain_id);
    }
    let manifest_digest = match &p.manifest {
        Some(m) => m.clone(),
        None => store_oci_manifest(store, &p.config, config_bytes.len() as u64, &layers)?,
    };
    Ok(Image::new_record(
        p.config.clone(),
        config,
        manifest_digest,
        layers,
        None,
    ))
}

fn check_diff(blob: &Digest, want: &Digest, got: &Digest) -> Result<()> {
    if want == got {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            what: format!("layer {blob} (uncompressed content vs the config's rootfs.diff_ids)"),
            expected: want.to_string(),
            actual: got.to_string(),
        })
    }
}

/// Writes an OCI manifest for an image that came without one and returns its digest.
pub(crate) fn store_oci_manifest(
    store: &ImageStore,
    config: &Digest,
    config_size: u64,
    layers: &[Layer],
) -> Result<Digest> {
    let m = Manifest {
        schema_version: 2,
        media_type: Some(manifest::OCI_MANIFEST.into()),
        config: Descriptor {
            media_type: manifest::OCI_CONFIG.into(),
            digest: config.clone(),
            size: config_size,
            annotations: None,
            platform: None,
        },
        layers: layers
            .iter()
            .map(|l| Descriptor {
                media_type: l.media_type.clone(),
                digest: l.blob.clone(),
                size: l.blob_size,
                annotations: None,
                platform: None,
            })
            .collect(),
        annotations: None,
    };
    let data = serde_json::to_vec(&m).map_err(|e| Error::json("manifest", e))?;
    store.content.write(&data)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    use std::path::Path;

    const FIXTURE: &str = "../../tests/fixtures/dockerd-webapp/webapp-docker-save.tar";
    const WEBAPP_ID: &str =
        "sha256:577d8034c8e21de40e24ea4b7edef267879a8020c636d9def665075be53de13a";

    /// The dockerd-made fixture, kept in the repository (`tests/fixtures/`).
    fn fixture() -> Result<std::fs::File> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
        std::fs::File::open(&p).ctx("open fixture", &p)
    }

    /// Loads the webapp fixture into a fresh store.
    pub(crate) fn load_fixture(store: &ImageStore) -> Result<Vec<LoadedImage>> {
        let mut f = fixture()?;
        let mut events = 0;
        let loaded = store.load(&mut f, &mut |_| events += 1)?;
        assert!(events > 0, "progress was reported");
        Ok(loaded)
    }

    #[test]
    fn load_legacy_fixture_matches_dockerd() -> Result<()> {
        let dir = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let store = ImageStore::open(dir.path().join("image"))?;
        let loaded = load_fixture(&store)?;
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].id.as_str(), WEBAPP_ID);
        assert_eq!(
            loaded[0]
                .tags
                .iter()
                .map(|t| t.familiar())
                .collect::<Vec<_>>(),
            ["fixture/webapp:1.0"]
        );
        let img = store.get("fixture/webapp:1.0")?;
        assert_eq!(img.id.as_str(), WEBAPP_ID);
        assert_eq!(img.size, 1_986_084);
        let diff_ids: Vec<&str> = img.layers.iter().map(|l| l.diff_id.as_str()).collect();
        assert_eq!(
            diff_ids,
            [
                "sha256:f1a1b3de8ef238c5fda871061b9e9927cf3639b81f25077fcb14f5c6afbc230e",
                "sha256:1db6eccd4f0efd70b042730c60730b93440b9d71da59fc6824a5a871f3180b8b",
                "sha256:e29d4f753296b57fd056d69ebcd3bffcfd184689d2e015c042417dfa370a15fa",
                "sha256:5e737a9477f1a40ba8b31e2a69a2d07bcba91395b0f1e4629ee5d19bedf9503c",
                "sha256:b06be275141595759dbdc4534e48f104fd651a19fa0df44a406b68130795006c",
            ]
        );
        assert!(img.repo_digests.is_empty());
        assert!(store.content.exists(&img.manifest_digest));
        assert_eq!(store.get("577d8034c8e2")?.id, img.id);
        assert_eq!(store.get(&WEBAPP_ID[7..])?.id, img.id);

        let dirs = store.layer_dirs(&img);
        let (top, l4, l3) = (&dirs[0], &dirs[1], &dirs[2]);
        // File whiteout → 0/0 char device.
        let wh =
            std::fs::symlink_metadata(l4.join("etc/demo/drop.conf")).ctx("stat", "whiteout")?;
        assert!(wh.file_type().is_char_device() && wh.rdev() == 0);
        assert!(!l4.join("etc/demo/.wh.drop.conf").exists());
        // Opaque dir → xattr.
        let opq = rustix::fs::getxattr(
            l4.join("srv/app/old"),
            "trusted.overlay.opaque",
            &mut [0u8; 4],
        );
        assert_eq!(opq.ok(), Some(1));
        assert!(!l4.join("srv/app/old/.wh..wh..opq").exists());
        // Hard link and symlink.
        let a = std::fs::metadata(l4.join("srv/app/site/hard.html")).ctx("stat", "hard")?;
        let b = std::fs::metadata(l4.join("srv/app/site/index.html")).ctx("stat", "index")?;
        assert_eq!(a.ino(), b.ino());
        let link = std::fs::read_link(l4.join("srv/app/link.html")).ctx("readlink", "link")?;
        assert_eq!(link, Path::new("/srv/app/site/index.html"));
        // Ownership 1000:1000.
        let site =
            std::fs::symlink_metadata(top.join("srv/app/site/index.html")).ctx("stat", "site")?;
        assert_eq!((site.uid(), site.gid()), (1000, 1000));
        assert!(l3.join("srv/app/site/style.css").is_file());

        let hist = store.history(&img);
        assert_eq!(hist.len(), 14);
        assert_eq!(hist[0].id, WEBAPP_ID);
        assert_eq!(hist[0].tags, ["fixture/webapp:1.0"]);
        let sizes: Vec<u64> = hist.iter().map(|h| h.size).filter(|&s| s > 0).collect();
        assert_eq!(sizes, [310, 45, 24, 10, 1_985_695]);
        assert_eq!(hist[13].comment, "Imported from -");
        Ok(())
    }

    #[test]
    fn load_twice_reuses_snapshots_and_keeps_one_image() -> Result<()> {
        let dir = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let store = ImageStore::open(dir.path())?;
        load_fixture(&store)?;
        load_fixture(&store)?;
        assert_eq!(store.list()?.len(), 1);
        drop(store);
        let store = ImageStore::open(dir.path())?;
        assert_eq!(store.get("fixture/webapp:1.0")?.id.as_str(), WEBAPP_ID);
        Ok(())
    }

    fn oci_blob(files: &mut Vec<(String, Vec<u8>)>, data: Vec<u8>) -> (Digest, u64) {
        let d = Digest::of(&data);
        let len = data.len() as u64;
        files.push((format!("blobs/sha256/{}", d.hex()), data));
        (d, len)
    }

    #[test]
    fn load_oci_index_picks_linux_amd64_and_names_from_annotation() -> Result<()> {
        use crate::layer::apply::tests::{build_tar, E};
        use serde_json::json;
        let mut files = Vec::new();
        let layer = build_tar(&[E::File("amd64", b"yes")]);
        let (ld, ll) = oci_blob(&mut files, layer.clone());
        let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [ld]}});
        let (cd, cl) = oci_blob(&mut files, serde_json::to_vec(&config).unwrap_or_default());
        let m = json!({"schemaVersion": 2, "mediaType": manifest::OCI_MANIFEST,
            "config": {"mediaType": manifest::OCI_CONFIG, "digest": cd, "size": cl},
            "layers": [{"mediaType": manifest::OCI_LAYER, "digest": ld, "size": ll}]});
        let (md, ml) = oci_blob(&mut files, serde_json::to_vec(&m).unwrap_or_default());
        // The arm64 manifest's blobs are absent, as in a single-platform save of a multi-platform image.
        let arm = Digest::of(b"arm64 manifest not included");
        let nested = json!({"schemaVersion": 2, "mediaType": manifest::OCI_INDEX, "manifests": [
            {"mediaType": manifest::OCI_MANIFEST, "digest": arm, "size": 10, "platform": {"architecture": "arm64", "os": "linux"}},
            {"mediaType": manifest::OCI_MANIFEST, "digest": md, "size": ml, "platform": {"architecture": "amd64", "os": "linux"}}]});
        let (nd, nl) = oci_blob(&mut files, serde_json::to_vec(&nested).unwrap_or_default());
        let index = json!({"schemaVersion": 2, "manifests": [{"mediaType": manifest::OCI_INDEX, "digest": nd, "size": nl,
            "annotations": {"io.containerd.image.name": "docker.io/library/multi:1", "org.opencontainers.image.ref.name": "1"}}]});
        files.push((
            "index.json".into(),
            serde_json::to_vec(&index).unwrap_or_default(),
        ));
        files.push((
            "oci-layout".into(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ));
        let entries: Vec<_> = files
            .iter()
            .map(|(n, d)| ::archive::memtar::Entry::File(n, d))
            .collect();
        let arch = ::archive::memtar::tar_of(&entries)
            .map_err(|e| Error::InvalidArchive(e.to_string()))?;
        let dir = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let store = ImageStore::open(dir.path())?;
        let loaded = store.load(&mut &arch[..], &mut |_| {})?;
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].id, cd);
        assert_eq!(
            loaded[0]
                .tags
                .iter()
                .map(|t| t.familiar())
                .collect::<Vec<_>>(),
            ["multi:1"]
        );
        let img = store.get("multi:1")?;
        assert_eq!(img.manifest_digest, md);
        assert!(store.layer_dirs(&img)[0].join("amd64").is_file());
        Ok(())
    }
}
