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
            synced: None,
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

    /// Writes each pending snapshot's metadata and syncs the filesystem once for all of them, so
    /// that committing them (with that same metadata) needs no sync of its own. A `syncfs` walks
    /// the filesystem's inodes and waits for every writer on it: committing the 8 layers of a load
    /// or pull one sync each spent ~50 ms of a 1 s load on the 7 syncs after the first.
    pub fn sync_pending<'a>(
        &self,
        pending: impl IntoIterator<Item = (&'a mut PendingSnapshot, SnapshotMeta)>,
    ) -> Result<()> {
        let mut marked = Vec::new();
        for (snap, meta) in pending {
            snap.write_meta(&meta)?;
            marked.push((snap, meta));
        }
        if marked.is_empty() {
            return Ok(());
        }
        sync_fs(&self.dir)?;
        for (snap, meta) in marked {
            snap.synced = Some(meta);
        }
        Ok(())
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

/// Syncs the filesystem holding `dir`.
fn sync_fs(dir: &Path) -> Result<()> {
    let fd = fs::File::open(dir).ctx("open", dir)?;
    rustix::fs::syncfs(&fd).map_err(|e| Error::io("syncfs", dir, e.into()))
}

/// A snapshot being built; removed on drop unless committed.
#[derive(Debug)]
pub struct PendingSnapshot {
    dir: PathBuf,
    committed: bool,
    /// The metadata written into it before a sync of the filesystem (by
    /// [`Snapshots::sync_pending`]): its files and metadata are on disk already.
    synced: Option<SnapshotMeta>,
}

impl PendingSnapshot {
    /// Where the layer is extracted.
    pub fn fs(&self) -> PathBuf {
        self.dir.join("fs")
    }

    fn write_meta(&self, meta: &SnapshotMeta) -> Result<()> {
        let p = self.dir.join(META);
        let data = serde_json::to_vec(meta).map_err(|e| Error::json("snapshot meta", e))?;
        fs::write(&p, data).ctx("write", &p)
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
        let synced = self.synced.as_ref() == Some(meta);
        if snapshots.meta(chain_id).is_some() {
            // Made meanwhile (or before splits were kept): give it this one's split if it lacks one,
            // since the caller may keep no blob for the layer.
            let ours = self.dir.join(SPLIT);
            if ours.is_file() && !snapshots.has_split(chain_id) {
                if !synced {
                    sync_fs(&self.dir)?;
                }
                let theirs = dest.join(SPLIT);
                fs::rename(&ours, &theirs).ctx("rename", &theirs)?;
            }
            return Ok(());
        }
        if dest.exists() {
            remove_any(&dest)?;
        }
        if !synced {
            self.write_meta(meta)?;
            // One syncfs instead of an fsync per extracted file: the rename below must not reach
            // the disk before the contents do.
            sync_fs(&self.dir)?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(n: u8, size: u64) -> SnapshotMeta {
        SnapshotMeta {
            diff_id: Digest::of(&[n]),
            size,
        }
    }

    #[test]
    fn snapshots_synced_together_commit_with_their_metadata() -> Result<()> {
        let dir = tempfile::tempdir().ctx("create", "temp dir")?;
        let snaps = Snapshots::open(dir.path())?;
        let (mut a, mut b) = (snaps.begin()?, snaps.begin()?);
        fs::write(a.fs().join("f"), b"a").ctx("write", "a")?;
        fs::write(b.fs().join("f"), b"b").ctx("write", "b")?;
        snaps.sync_pending([(&mut a, meta(1, 1)), (&mut b, meta(2, 1))])?;
        // Not committed yet: a synced pending snapshot is still a temp dir, cleaned at open.
        let (ca, cb) = (Digest::of(b"chain a"), Digest::of(b"chain b"));
        assert_eq!(snaps.meta(&ca), None);
        a.commit(&snaps, &ca, &meta(1, 1))?;
        // Committed with other metadata than was synced: that metadata is what it records.
        b.commit(&snaps, &cb, &meta(3, 7))?;
        assert_eq!(snaps.meta(&ca), Some(meta(1, 1)));
        assert_eq!(snaps.meta(&cb), Some(meta(3, 7)));
        assert_eq!(
            fs::read(snaps.fs_path(&cb).join("f")).ctx("read", "b")?,
            b"b"
        );
        assert_eq!(snaps.list_and_clean()?.len(), 2);
        Ok(())
    }

    #[test]
    fn a_synced_snapshot_dropped_uncommitted_leaves_nothing() -> Result<()> {
        let dir = tempfile::tempdir().ctx("create", "temp dir")?;
        let snaps = Snapshots::open(dir.path())?;
        let mut a = snaps.begin()?;
        snaps.sync_pending([(&mut a, meta(1, 1))])?;
        drop(a);
        assert!(snaps.list_and_clean()?.is_empty());
        assert_eq!(
            fs::read_dir(dir.path().join("snapshots"))
                .ctx("read dir", "snapshots")?
                .count(),
            0
        );
        Ok(())
    }
}
