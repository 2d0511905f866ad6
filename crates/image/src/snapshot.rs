//! Unpacked layers ("snapshots") keyed by chain ID: `snapshots/<chain hex>/fs` is an overlayfs lower
//! dir, `snapshots/<chain hex>/meta.json` its diff ID and size. A snapshot is built in
//! `snapshots/tmp-*` and renamed into place whole, so a crash never leaves a half-unpacked one visible.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::content::unique_name;
use crate::digest::{BackgroundHashingReader, Digest};
use crate::error::{Error, IoContext, Result};
use ::archive::{Split, SplitReader, SplitRecorder};

use crate::layer::apply::{apply_layer_split, ApplyStats};
use crate::layer::compress::{decompress, Compression, BUF_SIZE};

const TMP_PREFIX: &str = "tmp";
const META: &str = "meta.json";
/// The layer's tar split (`archive::Split`), next to `fs/`.
const SPLIT: &str = "tar-split";

/// What a committed snapshot records about its layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Digest of the uncompressed layer tar.
    pub diff_id: Digest,
    /// Docker's layer size.
    pub size: u64,
}

/// The snapshot directory of a store.
#[derive(Clone, Debug)]
pub struct Snapshots {
    dir: PathBuf,
    /// A `--userns-remap` store's mapping: layers are unpacked with their owners shifted onto it.
    pub(crate) id_map: Option<::archive::IdMap>,
}

impl Snapshots {
    /// Opens (creating) `root/snapshots`.
    pub fn open(root: &Path) -> Result<Snapshots> {
        let dir = root.join("snapshots");
        fs::create_dir_all(&dir).ctx("create", &dir)?;
        Ok(Snapshots { dir, id_map: None })
    }

    /// Directory of a snapshot.
    pub fn path(&self, chain_id: &Digest) -> PathBuf {
        self.dir.join(chain_id.hex())
    }

    /// The overlay lower dir of a snapshot.
    pub fn fs_path(&self, chain_id: &Digest) -> PathBuf {
        self.path(chain_id).join("fs")
    }

    /// The metadata of a committed snapshot, `None` if absent.
    pub fn meta(&self, chain_id: &Digest) -> Option<SnapshotMeta> {
        let data = fs::read(self.path(chain_id).join(META)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// Starts a snapshot in a temp dir.
    pub fn begin(&self) -> Result<PendingSnapshot> {
        let dir = self.dir.join(unique_name(TMP_PREFIX));
        let fs_dir = dir.join("fs");
        fs::create_dir_all(&fs_dir).ctx("create", &fs_dir)?;
        Ok(PendingSnapshot {
            dir,
            committed: false,
        })
    }

    /// Unpacks a (maybe compressed) layer blob read from `blob` into a new pending snapshot.
    /// Returns the snapshot, its compression, and the layer's diff ID and stats.
    pub fn unpack(
        &self,
        blob: impl Read,
    ) -> Result<(PendingSnapshot, Compression, Digest, ApplyStats)> {
        let (snap, c, diff_id, stats) = self.unpack_inner(blob, true)?;
        let diff_id =
            diff_id.ok_or_else(|| Error::InvalidArgument("diff ID not computed".into()))?;
        Ok((snap, c, diff_id, stats))
    }

    /// Like [`Snapshots::unpack`], but leaves the diff ID of an uncompressed layer to the caller
    /// (`None`): it equals the blob digest the caller is computing anyway.
    pub fn unpack_skip_plain_hash(
        &self,
        blob: impl Read,
    ) -> Result<(PendingSnapshot, Compression, Option<Digest>, ApplyStats)> {
        self.unpack_inner(blob, false)
    }

    fn unpack_inner(
        &self,
        blob: impl Read,
        hash_plain: bool,
    ) -> Result<(PendingSnapshot, Compression, Option<Digest>, ApplyStats)> {
        let snap = self.begin()?;
        let (c, reader) = decompress(std::io::BufReader::with_capacity(BUF_SIZE, blob))
            .map_err(|e| Error::InvalidArchive(format!("reading layer: {e}")))?;
        let read_err = |e: std::io::Error| Error::InvalidArchive(format!("reading layer: {e}"));
        // The tar reader stops at the end-of-archive blocks; the diff ID and the split cover every
        // byte, so the rest is read through both.
        let (stats, split, diff_id) = if c == Compression::None && !hash_plain {
            let mut rec = SplitRecorder::new(reader);
            let stats = apply_layer_split(&snap.fs(), &mut rec, self.id_map.as_ref())?;
            std::io::copy(&mut rec, &mut std::io::sink()).map_err(read_err)?;
            (stats, rec.finish(), None)
        } else {
            // The diff ID is hashed on a helper thread while this one decompresses and unpacks.
            let mut rec = SplitRecorder::new(BackgroundHashingReader::new(reader)?);
            let stats = apply_layer_split(&snap.fs(), &mut rec, self.id_map.as_ref())?;
            std::io::copy(&mut rec, &mut std::io::sink()).map_err(read_err)?;
            let (hashing, split) = rec.into_parts();
            (stats, split, Some(hashing.finish()?.0))
        };
        snap.write_split(&split)?;
        Ok((snap, c, diff_id, stats))
    }

    /// The tar split of a committed snapshot, if it has one: with the snapshot's files it gives
    /// back the uncompressed layer tar (whose digest is the diff ID).
    pub fn split(&self, chain_id: &Digest) -> Option<Split> {
        let data = fs::read(self.path(chain_id).join(SPLIT)).ok()?;
        Split::decode(&data).ok()
    }

    /// True when the committed snapshot has a tar split.
    pub fn has_split(&self, chain_id: &Digest) -> bool {
        self.path(chain_id).join(SPLIT).is_file()
    }

    /// The uncompressed layer tar of a snapshot rebuilt from its split and files, from `offset` on.
    pub fn layer_tar(&self, chain_id: &Digest, offset: u64) -> Result<SplitReader> {
        let split = self.split(chain_id).ok_or_else(|| {
            Error::NotFound(format!("layer {chain_id}: no tar split in its snapshot"))
        })?;
        Ok(split.reader(&self.fs_path(chain_id), offset))
    }

    /// Deletes a snapshot: renamed to a temp name first so it vanishes atomically.
    pub fn remove(&self, chain_id: &Digest) -> Result<()> {
        let p = self.path(chain_id);
        if !p.exists() {
            return Ok(());
        }
        let tmp = self.dir.join(unique_name(TMP_PREFIX));
        fs::rename(&p, &tmp).ctx("rename", &p)?;
        fs::remove_dir_all(&tmp).ctx("remove", &tmp)
    }

    /// Chain IDs of committed snapshots; removes temp dirs and anything else that is not a snapshot.
    pub fn list_and_clean(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).ctx("read dir", &self.dir)? {
            let e = e.ctx("read dir", &self.dir)?;
            let name = e.file_name();
            let chain = name.to_str().and_then(|n| Digest::from_hex(n).ok());
            match chain {
                Some(c) if self.meta(&c).is_some() => out.push(c),
                _ => remove_any(&e.path())?,
            }
        }
        Ok(out)
    }
}

fn remove_any(p: &Path) -> Result<()> {
    let meta = fs::symlink_metadata(p).ctx("stat", p)?;
    if meta.is_dir() {
        fs::remove_dir_all(p).ctx("remove", p)
    } else {
        fs::remove_file(p).ctx("remove", p)
    }
}

/// A snapshot being built; removed on drop unless committed.
#[derive(Debug)]
pub struct PendingSnapshot {
    dir: PathBuf,
    committed: bool,
}

impl PendingSnapshot {
    /// Where the layer is extracted.
    pub fn fs(&self) -> PathBuf {
        self.dir.join("fs")
    }

    /// Keeps the layer's tar split with the snapshot (synced with it at commit).
    pub fn write_split(&self, split: &Split) -> Result<()> {
        let p = self.dir.join(SPLIT);
        fs::write(&p, split.encode()).ctx("write", &p)
    }

    /// Writes the metadata, syncs the filesystem and renames the snapshot into place under `chain_id`.
    /// If that snapshot already exists (same layer unpacked by someone else) this one is discarded.
    pub fn commit(
        mut self,
        snapshots: &Snapshots,
        chain_id: &Digest,
        meta: &SnapshotMeta,
    ) -> Result<()> {
        let dest = snapshots.path(chain_id);
        if snapshots.meta(chain_id).is_some() {
            // Made meanwhile (or before splits were kept): give it this one's split if it lacks one,
            // since the caller may keep no blob for the layer.
            let ours = self.dir.join(SPLIT);
            if ours.is_file() && !snapshots.has_split(chain_id) {
                let fd = fs::File::open(&self.dir).ctx("open", &self.dir)?;
                rustix::fs::syncfs(&fd).map_err(|e| Error::io("syncfs", &self.dir, e.into()))?;
                let theirs = dest.join(SPLIT);
                fs::rename(&ours, &theirs).ctx("rename", &theirs)?;
            }
            return Ok(());
        }
        if dest.exists() {
            remove_any(&dest)?;
        }
        let meta_path = self.dir.join(META);
        let data = serde_json::to_vec(meta).map_err(|e| Error::json("snapshot meta", e))?;
        fs::write(&meta_path, data).ctx("write", &meta_path)?;
        // One syncfs instead of an fsync per extracted file: the rename below must not reach the disk
        // before the contents do.
        let fd = fs::File::open(&self.dir).ctx("open", &self.dir)?;
        rustix::fs::syncfs(&fd).map_err(|e| Error::io("syncfs", &self.dir, e.into()))?;
        fs::rename(&self.dir, &dest).ctx("rename", &dest)?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for PendingSnapshot {
    fn drop(&mut self) {
        if !self.committed {
            if let Err(e) = fs::remove_dir_all(&self.dir) {
                tracing::warn!(dir = %self.dir.display(), error = %e, "removing an uncommitted snapshot");
            }
        }
    }
}
