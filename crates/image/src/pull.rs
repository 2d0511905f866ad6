//! Storing what a registry pull fetches. The registry client lives elsewhere (the engine drives it);
//! this module takes each layer blob as a byte stream and, in one pass, writes it into the blob store's
//! ingest area and unpacks it into a pending snapshot (the same store primitives `load` uses). Nothing
//! is visible until [`ImageStore::commit_pull`] has every layer: blobs are renamed into place only
//! after their digest checks, snapshots only after their diff ID matches the config, the image record
//! after its content and the tag last. A pull that fails or is killed leaves ingest files and temp
//! snapshots, which the store removes (on drop, or at the next open).

use std::io::{self, Read, Seek, Write};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::config::ImageConfig;
use crate::content::BlobWriter;
use crate::digest::{Digest, HashingReader};
use crate::error::{Error, IoContext, Result};
use crate::layer::compress::{decompress, read_up_to, Compression, BUF_SIZE};
use crate::reference::Reference;
use crate::snapshot::{PendingSnapshot, SnapshotMeta};
use crate::store::ImageStore;
use crate::{Image, Layer};

/// Keeps the store's garbage collection from removing content a pull has written but no image
/// record references yet (committed blobs and snapshots, ingest files, temp snapshots). Dropped
/// when the pull ends, successful or not.
pub struct StorePin {
    store: Arc<ImageStore>,
}

impl Drop for StorePin {
    fn drop(&mut self) {
        self.store.pins.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A layer blob received in full but not committed: its bytes in the ingest area (unless it is an
/// uncompressed layer that was unpacked: its snapshot's files and tar split give it back) and, when
/// it was unpacked, the pending snapshot.
pub struct ReceivedLayer {
    blob: Option<BlobWriter>,
    snapshot: Option<PendingSnapshot>,
    /// The uncompressed digest; `None` for a plain tar, whose diff ID is its blob digest.
    diff_id: Option<Digest>,
    size: u64,
}

/// One layer of a pulled image, in manifest order.
pub struct PulledLayer {
    /// The blob's digest (compressed, as the registry serves it).
    pub blob: Digest,
    /// Its media type in the manifest.
    pub media_type: String,
    /// Its size in the manifest.
    pub blob_size: u64,
    /// What was fetched; `None` for a layer the store already held ("Already exists").
    pub received: Option<ReceivedLayer>,
}

/// Everything a pull fetched for one image, ready to commit.
pub struct PulledImage {
    /// The config bytes (their digest is the image ID).
    pub config: Vec<u8>,
    /// The platform's image manifest, exactly as served.
    pub manifest: Vec<u8>,
    /// The layers, base first.
    pub layers: Vec<PulledLayer>,
    /// The tag the pull names, if it was by tag.
    pub tag: Option<Reference>,
    /// `name@sha256:…` of what was pulled (the top manifest or index), for `RepoDigests`.
    pub repo_digest: String,
}

/// What committing a pull did.
pub struct PullOutcome {
    /// The image as stored.
    pub image: Image,
    /// True when the tag (or, by digest, the repo digest) already named this image: Docker's
    /// `Image is up to date`.
    pub up_to_date: bool,
}

impl ImageStore {
    /// Pins the store against garbage collection for the length of a pull.
    pub fn pin(self: &Arc<Self>) -> StorePin {
        self.pins.fetch_add(1, Ordering::AcqRel);
        StorePin {
            store: Arc::clone(self),
        }
    }

    /// True when the layer with this chain ID is unpacked and its blob is in the store (as a file,
    /// or for an uncompressed one as the snapshot's files and tar split), so a pull need not fetch it.
    pub fn has_layer(&self, chain_id: &Digest, blob: &Digest) -> bool {
        match self.snapshots.meta(chain_id) {
            Some(m) => {
                self.content.exists(blob)
                    || (m.diff_id == *blob && self.snapshots.has_split(chain_id))
            }
            None => false,
        }
    }

    /// The file of a stored blob, for pushing it (`None` when the store does not have it).
    pub fn blob_path(&self, digest: &Digest) -> Option<std::path::PathBuf> {
        self.content
            .exists(digest)
            .then(|| self.content.path(digest))
    }

    /// A layer's blob from `offset` on, for a push or a save: the stored file, or for an
    /// uncompressed layer kept only as its snapshot, the tar rebuilt from the snapshot's files and
    /// tar split (the same bytes, so the same digest).
    pub fn layer_blob(&self, layer: &Layer, offset: u64) -> Result<Box<dyn Read + Send>> {
        if self.content.exists(&layer.blob) {
            let mut f = self.content.open_blob(&layer.blob)?;
            f.seek(io::SeekFrom::Start(offset))
                .ctx("seek", self.content.path(&layer.blob))?;
            return Ok(Box::new(f));
        }
        if layer.blob == layer.diff_id && self.snapshots.has_split(&layer.chain_id) {
            return Ok(Box::new(self.snapshots.layer_tar(&layer.chain_id, offset)?));
        }
        Err(Error::NotFound(format!(
            "layer {} is not in the store",
            layer.blob
        )))
    }

    /// A whole (small) blob: a config or manifest to push.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        self.content.read(digest)
    }

    /// True when the snapshot of this chain ID exists (its blob may be missing).
    pub fn has_snapshot(&self, chain_id: &Digest) -> bool {
        self.snapshots.meta(chain_id).is_some()
    }

    /// Reads a layer blob to its end and, with `unpack`, extracts it (gzip, zstd or plain, detected
    /// by magic) into a pending snapshot as the bytes go by. A compressed blob is also written to the
    /// ingest area, as it is (push sends it without recompressing); an uncompressed one that is
    /// unpacked is not, since its snapshot's files and tar split give it back byte for byte.
    /// `digest` is the blob's digest, which the caller checks as it reads (so it is not hashed here):
    /// commit only after that check passed. Nothing is committed; drop the result to discard it.
    pub fn receive_layer(
        &self,
        blob: &mut dyn Read,
        unpack: bool,
        digest: &Digest,
    ) -> Result<ReceivedLayer> {
        let read_err = |e: io::Error| Error::InvalidArchive(format!("reading layer: {e}"));
        let mut head = [0u8; 4];
        let n = read_up_to(blob, &mut head).map_err(read_err)?;
        let head = &head[..n];
        let mut whole = io::Cursor::new(head).chain(blob);
        if unpack && Compression::detect(head) == Compression::None {
            let (snap, _, _, stats) = self.snapshots.unpack_skip_plain_hash(&mut whole)?;
            return Ok(ReceivedLayer {
                blob: None,
                snapshot: Some(snap),
                diff_id: None,
                size: stats.size,
            });
        }
        let mut writer = self
            .content
            .writer_verified_by_caller(digest)?
            .in_background()?;
        let mut tee = TeeReader {
            inner: &mut whole,
            out: &mut writer,
        };
        let (snapshot, diff_id, size) = if unpack {
            let (snap, _, diff_id, stats) = self.snapshots.unpack_skip_plain_hash(&mut tee)?;
            (Some(snap), diff_id, stats.size)
        } else {
            // The snapshot exists already (another image's blob of the same content): the blob
            // is kept, and its diff ID still checked.
            let (c, reader) =
                decompress(io::BufReader::with_capacity(BUF_SIZE, &mut tee)).map_err(read_err)?;
            let diff_id = if c == Compression::None {
                io::copy(&mut { reader }, &mut io::sink()).map_err(read_err)?;
                None
            } else {
                let mut hashing = HashingReader::new(reader);
                io::copy(&mut hashing, &mut io::sink()).map_err(read_err)?;
                Some(hashing.finish().0)
            };
            (None, diff_id, 0)
        };
        Ok(ReceivedLayer {
            blob: Some(writer.finish()?),
            snapshot,
            diff_id,
            size,
        })
    }

    /// Commits a pulled image: each layer's blob (digest checked) and snapshot (diff ID checked
    /// against the config), the config and manifest blobs, the record, the tag and the repo digest.
    pub fn commit_pull(&self, mut pulled: PulledImage) -> Result<PullOutcome> {
        let _gc = self
            .gc_lock
            .read()
            .map_err(|_| Error::Conflict("image store lock poisoned".into()))?;
        let config: ImageConfig = serde_json::from_slice(&pulled.config)
            .map_err(|e| Error::json("pulled image config", e))?;
        let diff_ids = &config.rootfs.diff_ids;
        if diff_ids.len() != pulled.layers.len() {
            return Err(Error::InvalidArchive(format!(
                "the manifest lists {} layers but the image config has {} diff IDs",
                pulled.layers.len(),
                diff_ids.len()
            )));
        }
        // Every unpacked layer reaches the disk in one sync, before any is committed.
        self.snapshots
            .sync_pending(pulled.layers.iter_mut().filter_map(|l| {
                let r = l.received.as_mut()?;
                let meta = SnapshotMeta {
                    diff_id: r.diff_id.clone().unwrap_or_else(|| l.blob.clone()),
                    size: r.size,
                };
                Some((r.snapshot.as_mut()?, meta))
            }))?;
        let mut layers = Vec::new();
        let mut chain: Option<Digest> = None;
        for (l, want) in pulled.layers.into_iter().zip(diff_ids) {
            let chain_id = Digest::chain(chain.as_ref(), want);
            let size = match l.received {
                Some(r) => {
                    let blob = match r.blob {
                        Some(w) if !self.content.exists(&l.blob) => w.commit(Some(&l.blob))?.0,
                        // Kept as the snapshot's files and split (checked by the caller).
                        _ => l.blob.clone(),
                    };
                    let got = r.diff_id.unwrap_or(blob);
                    if got != *want {
                        return Err(Error::DigestMismatch {
                            what: format!(
                                "layer {} (uncompressed content vs the config's rootfs.diff_ids)",
                                l.blob
                            ),
                            expected: want.to_string(),
                            actual: got.to_string(),
                        });
                    }
                    match r.snapshot {
                        Some(snap) => {
                            let meta = SnapshotMeta {
                                diff_id: got,
                                size: r.size,
                            };
                            snap.commit(&self.snapshots, &chain_id, &meta)?;
                            r.size
                        }
                        None => self.snapshot_size(&chain_id)?,
                    }
                }
                None => {
                    if !self.has_layer(&chain_id, &l.blob) {
                        return Err(Error::NotFound(format!(
                            "layer {} was removed during the pull",
                            l.blob
                        )));
                    }
                    self.snapshot_size(&chain_id)?
                }
            };
            layers.push(Layer {
                diff_id: want.clone(),
                chain_id: chain_id.clone(),
                blob: l.blob,
                media_type: l.media_type,
                blob_size: l.blob_size,
                size,
            });
            chain = Some(chain_id);
        }
        let id = self.content.write(&pulled.config)?;
        let manifest_digest = self.content.write(&pulled.manifest)?;
        let up_to_date = {
            let st = self.lock()?;
            match &pulled.tag {
                Some(t) => st.refs.get(&t.to_string()) == Some(&id),
                None => st
                    .images
                    .get(&id)
                    .is_some_and(|i| i.repo_digests.contains(&pulled.repo_digest)),
            }
        };
        let image = Image::new_record(id.clone(), config, manifest_digest, layers, None);
        let tags: Vec<Reference> = pulled.tag.into_iter().collect();
        let stored = self.commit_image(image, &tags)?;
        let image = self.add_repo_digest(&stored.id, &pulled.repo_digest)?;
        Ok(PullOutcome { image, up_to_date })
    }

    fn snapshot_size(&self, chain_id: &Digest) -> Result<u64> {
        self.snapshots
            .meta(chain_id)
            .map(|m| m.size)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "layer snapshot {chain_id} was removed during the pull"
                ))
            })
    }

    /// Adds `name@sha256:…` to an image's `RepoDigests` (after a pull or a push). A digest of the
    /// same repository that no longer names this image's manifest stays, as in dockerd.
    pub fn add_repo_digest(&self, id: &Digest, repo_digest: &str) -> Result<Image> {
        let mut st = self.lock()?;
        let img = st
            .images
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        if !img.repo_digests.iter().any(|d| d == repo_digest) {
            img.repo_digests.push(repo_digest.to_string());
            img.repo_digests.sort();
            let img = img.clone();
            self.write_record(&img)?;
            return Ok(img);
        }
        Ok(img.clone())
    }
}

/// Copies what is read into the blob writer.
struct TeeReader<'a, W: Write> {
    inner: &'a mut dyn Read,
    out: &'a mut W,
}

impl<W: Write> Read for TeeReader<'_, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::IoContext;
    use crate::layer::apply::tests::{build_tar, E};
    use serde_json::json;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = gz.write_all(data);
        gz.finish().unwrap_or_default()
    }

    fn image_of(layers: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>) {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| Digest::of(l)).collect();
        let config = json!({"architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let config = serde_json::to_vec(&config).unwrap_or_default();
        (config, b"{\"schemaVersion\":2}".to_vec())
    }

    #[test]
    fn pulled_layers_commit_only_when_complete_and_matching() -> Result<()> {
        let dir = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let store = Arc::new(ImageStore::open(dir.path())?);
        let tar = build_tar(&[E::File("hello", b"world")]);
        let blob = gzip(&tar);
        let (config, manifest) = image_of(std::slice::from_ref(&tar));
        let pin = store.pin();

        // A blob cut short: the diff ID cannot match, nothing is committed.
        let short = store.receive_layer(&mut &blob[..blob.len() / 2], true, &Digest::of(&blob));
        if let Ok(r) = short {
            let res = store.commit_pull(PulledImage {
                config: config.clone(),
                manifest: manifest.clone(),
                layers: vec![PulledLayer {
                    blob: Digest::of(&blob),
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    blob_size: blob.len() as u64,
                    received: Some(r),
                }],
                tag: Some(Reference::parse_normalized("x:1")?),
                repo_digest: "docker.io/library/x@sha256:00".into(),
            });
            assert!(res.is_err());
        }
        assert!(store.list()?.is_empty());
        assert!(!store.content.exists(&Digest::of(&blob)));

        let r = store.receive_layer(&mut &blob[..], true, &Digest::of(&blob))?;
        let out = store.commit_pull(PulledImage {
            config,
            manifest,
            layers: vec![PulledLayer {
                blob: Digest::of(&blob),
                media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                blob_size: blob.len() as u64,
                received: Some(r),
            }],
            tag: Some(Reference::parse_normalized("x:1")?),
            repo_digest: "docker.io/library/x@sha256:11".into(),
        })?;
        drop(pin);
        assert!(!out.up_to_date);
        let img = store.get("x:1")?;
        assert_eq!(img.repo_digests, ["docker.io/library/x@sha256:11"]);
        assert!(store.layer_dirs(&img)[0].join("hello").is_file());
        assert!(store.has_layer(&img.layers[0].chain_id, &Digest::of(&blob)));
        // The same content in another compression, its snapshot already there: not unpacked
        // again, but its diff ID is still computed (and a plain tar's is its blob digest).
        let z = zstd::stream::encode_all(&tar[..], 1).ctx("zstd", "layer")?;
        let r = store.receive_layer(&mut &z[..], false, &Digest::of(&z))?;
        assert!(r.snapshot.is_none());
        assert_eq!(r.diff_id, Some(Digest::of(&tar)));
        let r = store.receive_layer(&mut &tar[..], false, &Digest::of(&tar))?;
        assert_eq!(r.diff_id, None);
        drop(r);

        // An uncompressed layer is kept once: as its snapshot, no blob file, and the blob comes
        // back byte for byte from the snapshot's files and tar split.
        let plain = build_tar(&[E::Dir("d"), E::File("d/f", &[9u8; 3000])]);
        let (config, _) = image_of(std::slice::from_ref(&plain));
        let manifest = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": Digest::of(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": Digest::of(&plain), "size": plain.len()}]}))
        .unwrap_or_default();
        let r = store.receive_layer(&mut &plain[..], true, &Digest::of(&plain))?;
        assert!(r.blob.is_none());
        let out = store.commit_pull(PulledImage {
            config,
            manifest,
            layers: vec![PulledLayer {
                blob: Digest::of(&plain),
                media_type: "application/vnd.oci.image.layer.v1.tar".into(),
                blob_size: plain.len() as u64,
                received: Some(r),
            }],
            tag: Some(Reference::parse_normalized("plain:1")?),
            repo_digest: "docker.io/library/plain@sha256:22".into(),
        })?;
        let layer = &out.image.layers[0];
        assert!(!store.content.exists(&layer.blob));
        assert!(store.has_layer(&layer.chain_id, &layer.blob));
        let mut back = Vec::new();
        store
            .layer_blob(layer, 0)?
            .read_to_end(&mut back)
            .ctx("read", "rebuilt layer")?;
        assert_eq!(back, plain);
        let mut saved = Vec::new();
        store.save(&["plain:1".to_string()], &mut saved)?;
        let other = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let other = ImageStore::open(other.path())?;
        let loaded = other.load(&mut &saved[..], &mut |_| {})?;
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].id, out.image.id);
        let reloaded = other.get("plain:1")?;
        assert!(!other.content.exists(&reloaded.layers[0].blob));
        let mut again = Vec::new();
        other
            .layer_blob(&reloaded.layers[0], 0)?
            .read_to_end(&mut again)
            .ctx("read", "rebuilt layer")?;
        assert_eq!(again, plain);
        // Reopening (which collects garbage) keeps everything the record uses.
        drop(store);
        let store = ImageStore::open(dir.path())?;
        assert_eq!(store.get("x:1")?.id, img.id);
        Ok(())
    }
}
