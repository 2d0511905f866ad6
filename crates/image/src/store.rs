//! The image store: image records, references, recovery, and the operations the engine calls.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use crate::content::{unique_name, ContentStore};
use crate::digest::{is_hex64, Digest};
use crate::error::{Error, IoContext, Result};
use crate::reference::Reference;
use crate::snapshot::Snapshots;
use crate::timefmt;
use crate::{
    DeleteItem, HistoryItem, Image, ImageUsers, ImportOptions, LoadProgress, LoadedImage,
    PruneReport,
};

const REFS_FILE: &str = "repositories.json";

/// Berth's image store. `Send + Sync`; metadata is guarded by an internal mutex.
pub struct ImageStore {
    root: PathBuf,
    pub(crate) content: ContentStore,
    pub(crate) snapshots: Snapshots,
    state: Mutex<State>,
    /// Held shared by operations that add content (load, import) and exclusively by those that
    /// delete it (rmi, prune, GC), so a GC never removes a blob or snapshot a load is about to use.
    pub(crate) gc_lock: RwLock<()>,
    /// Pulls in progress ([`crate::pull::StorePin`]): while any runs, garbage collection leaves
    /// unreferenced content alone, since the pull's blobs and snapshots have no record yet.
    pub(crate) pins: std::sync::atomic::AtomicUsize,
}

#[derive(Default)]
pub(crate) struct State {
    pub(crate) images: BTreeMap<Digest, Image>,
    /// Full reference (`docker.io/library/busybox:latest`) → image ID.
    pub(crate) refs: BTreeMap<String, Digest>,
}

impl State {
    /// Recomputes every image's `repo_tags` from the reference map.
    fn sync_tags(&mut self) {
        for img in self.images.values_mut() {
            img.repo_tags.clear();
        }
        for (r, id) in &self.refs {
            if let (Some(img), Ok(r)) = (self.images.get_mut(id), Reference::parse_normalized(r)) {
                img.repo_tags.push(r);
            }
        }
    }
}

impl ImageStore {
    /// The user-namespace mapping layers are stored shifted by (`--userns-remap`), if any.
    pub fn id_map(&self) -> Option<&::archive::IdMap> {
        self.snapshots.id_map.as_ref()
    }

    /// Opens (creating) the store under `root`; removes leftovers of interrupted operations (temp/ingest dirs,
    /// blobs and snapshots no image record references) so a SIGKILL mid-load leaves nothing half-made.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        Self::open_remapped(root, None)
    }

    /// [`ImageStore::open`] for a daemon with `--userns-remap`: layers are stored with their owners
    /// shifted onto `id_map`'s host ids (dockerd's layers under `<data-root>/<uid>.<gid>`), so a
    /// container's root owns its image's root-owned files. What the store gives back as tars (save,
    /// push) is rebuilt from the recorded headers or kept blobs, so it carries the original ids.
    pub fn open_remapped(
        root: impl Into<PathBuf>,
        id_map: Option<::archive::IdMap>,
    ) -> Result<ImageStore> {
        let root = root.into();
        let images_dir = root.join("images");
        fs::create_dir_all(&images_dir).ctx("create", &images_dir)?;
        let content = ContentStore::open(&root)?;
        let mut snapshots = Snapshots::open(&root)?;
        snapshots.id_map = id_map;
        let mut state = State::default();
        for e in fs::read_dir(&images_dir).ctx("read dir", &images_dir)? {
            let p = e.ctx("read dir", &images_dir)?.path();
            let record = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .filter(|h| is_hex64(h))
                .and_then(|_| fs::read(&p).ok())
                .and_then(|data| serde_json::from_slice::<Image>(&data).ok());
            match record {
                Some(img) => {
                    state.images.insert(img.id.clone(), img);
                }
                None => {
                    // A temp file of an interrupted write, or a damaged record.
                    tracing::warn!(path = %p.display(), "removing unreadable image record");
                    fs::remove_file(&p).ctx("remove", &p)?;
                }
            }
        }
        // Temp files of interrupted record writes (`write_atomic`).
        for e in fs::read_dir(&root).ctx("read dir", &root)? {
            let p = e.ctx("read dir", &root)?.path();
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".tmp-"))
            {
                fs::remove_file(&p).ctx("remove", &p)?;
            }
        }
        let refs_path = root.join(REFS_FILE);
        if let Ok(data) = fs::read(&refs_path) {
            let refs: BTreeMap<String, Digest> = serde_json::from_slice(&data)
                .map_err(|e| Error::json(refs_path.display().to_string(), e))?;
            state.refs = refs
                .into_iter()
                .filter(|(_, id)| state.images.contains_key(id))
                .collect();
        }
        state.sync_tags();
        let store = ImageStore {
            root,
            content,
            snapshots,
            state: Mutex::new(state),
            gc_lock: RwLock::new(()),
            pins: std::sync::atomic::AtomicUsize::new(0),
        };
        store.collect_garbage()?;
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Loads a `docker save`-style archive read as a stream. Calls `progress` as layers are read.
    pub fn load(
        &self,
        archive: &mut dyn Read,
        progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Vec<LoadedImage>> {
        let res = crate::archive::load::load(self, archive, progress);
        // Blobs and snapshots of a failed load, and blobs of a successful one that no image uses
        // (other platforms' manifests, attestations), are referenced by nothing: drop them now.
        if let Err(e) = self.collect_garbage() {
            tracing::warn!(error = %e, "cleaning up after a load");
        }
        res
    }

    /// Writes one archive holding every named image (names, IDs or ID prefixes as a user types them).
    pub fn save(&self, names: &[String], out: &mut dyn Write) -> Result<()> {
        crate::archive::save::save(self, names, out)
    }

    /// Imports a rootfs tar (plain, gzip or zstd) as a one-layer image (`docker import`).
    pub fn import(&self, rootfs: &mut dyn Read, opts: &ImportOptions) -> Result<Image> {
        let res = crate::import::import(self, rootfs, opts);
        if res.is_err() {
            if let Err(e) = self.collect_garbage() {
                tracing::warn!(error = %e, "cleaning up after a failed import");
            }
        }
        res
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<Image>> {
        let st = self.lock()?;
        let mut v: Vec<Image> = st.images.values().cloned().collect();
        v.sort_by(|a, b| {
            created_key(b)
                .cmp(&created_key(a))
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(v)
    }

    /// Resolves what a user typed: `busybox`, `busybox:1`, `docker.io/library/busybox:latest`, `name@sha256:…`,
    /// a full ID (`sha256:<hex>` or `<hex>`), or a unique ID prefix (`5bc555f7f779`). Error::NotFound otherwise.
    pub fn get(&self, name_or_id: &str) -> Result<Image> {
        let st = self.lock()?;
        resolve(&st, name_or_id).map(|(id, _)| st.images[&id].clone())
    }

    /// `docker tag SOURCE TARGET`: TARGET gets normalised (`fixture/webapp` -> `docker.io/fixture/webapp:latest`);
    /// moves the tag if held by another image.
    pub fn tag(&self, source: &str, target: &str) -> Result<(Image, Reference)> {
        let target_ref = Reference::parse_normalized(target)?;
        if target_ref.digest().is_some() {
            return Err(Error::InvalidArgument(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        let mut st = self.lock()?;
        let (id, _) = resolve(&st, source)?;
        self.set_tags(&mut st, &id, std::slice::from_ref(&target_ref))?;
        Ok((st.images[&id].clone(), target_ref))
    }

    /// `docker rmi` semantics. Returns the items Docker prints (Untagged/Deleted).
    pub fn remove(
        &self,
        name_or_id: &str,
        force: bool,
        noprune: bool,
        users: &dyn Fn(&Digest) -> ImageUsers,
    ) -> Result<Vec<DeleteItem>> {
        let _gc = self.gc_lock.write().map_err(|_| poisoned())?;
        let mut st = self.lock()?;
        let (id, by_ref) = resolve(&st, name_or_id)?;
        let tags: Vec<String> = st
            .refs
            .iter()
            .filter(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
            .collect();
        let short = id.short().to_string();
        let used = users(&id);
        let mut out = Vec::new();
        match by_ref {
            Some(r) => {
                // As dockerd: the last name of an image a container uses goes only when forced, so that the
                // image does not turn dangling under the container by accident.
                if let (false, 1, Some(c)) = (force, tags.len(), used.any()) {
                    return Err(Error::Conflict(format!(
                        "unable to remove repository reference \"{name_or_id}\" (must force) - container \
                         {} is using its referenced image {short}",
                        short_id(c)
                    )));
                }
                st.refs.remove(&r.to_string());
                out.push(DeleteItem::Untagged(r.familiar()));
                self.write_refs(&st)?;
                st.sync_tags();
                // Untag only while the image keeps other names, or while containers still need it.
                if tags.len() > 1 || used.any().is_some() {
                    return Ok(out);
                }
            }
            None => {
                if let Some(c) = &used.running {
                    return Err(Error::Conflict(format!(
                        "unable to delete {short} (cannot be forced) - image is being used by running \
                         container {}",
                        short_id(c)
                    )));
                }
                if !force && tags.len() > 1 {
                    return Err(Error::Conflict(format!(
                        "unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                    )));
                }
                if let (false, Some(c)) = (force, &used.stopped) {
                    return Err(Error::Conflict(format!(
                        "unable to delete {short} (must be forced) - image is being used by stopped \
                         container {}",
                        short_id(c)
                    )));
                }
                for t in &tags {
                    st.refs.remove(t);
                    if let Ok(r) = Reference::parse_normalized(t) {
                        out.push(DeleteItem::Untagged(r.familiar()));
                    }
                }
                self.write_refs(&st)?;
                st.sync_tags();
                // Forced, with a stopped container on it: dockerd would delete the image and leave the
                // container unable to start; Berth untags it and keeps it until no container needs it.
                if used.stopped.is_some() {
                    return Ok(out);
                }
            }
        }
        let parent = st.images.get(&id).and_then(|i| i.parent.clone());
        out.extend(self.delete_image(&mut st, &id)?.0);
        if !noprune {
            let (items, _) =
                self.delete_orphaned_parents(&mut st, parent, &|p| users(p).any().is_some())?;
            out.extend(items);
        }
        st.sync_tags();
        Ok(out)
    }

    /// As dockerd: the parents a build left untagged go with their last child. Walks up from `next` while
    /// the image is untagged, has no other child, and `keep` does not veto it.
    fn delete_orphaned_parents(
        &self,
        st: &mut State,
        mut next: Option<Digest>,
        keep: &dyn Fn(&Digest) -> bool,
    ) -> Result<(Vec<DeleteItem>, u64)> {
        let mut out = Vec::new();
        let mut freed = 0;
        while let Some(p) = next.take() {
            let orphaned = st.images.contains_key(&p)
                && !st.refs.values().any(|v| *v == p)
                && !st.images.values().any(|i| i.parent.as_ref() == Some(&p))
                && !keep(&p);
            if !orphaned {
                break;
            }
            next = st.images.get(&p).and_then(|i| i.parent.clone());
            let (items, f) = self.delete_image(st, &p)?;
            out.extend(items);
            freed += f;
        }
        Ok((out, freed))
    }

    /// Deletes every dangling image (untagged), or with `all` every image; `keep` lets the caller veto
    /// (labels, in use).
    pub fn prune(&self, all: bool, keep: &dyn Fn(&Image) -> bool) -> Result<PruneReport> {
        let _gc = self.gc_lock.write().map_err(|_| poisoned())?;
        let mut st = self.lock()?;
        let victims: Vec<Image> = st
            .images
            .values()
            // Dangling: untagged and nobody's parent (an untagged parent is a build's cache, kept).
            .filter(|i| {
                all || (i.repo_tags.is_empty()
                    && !st.images.values().any(|c| c.parent.as_ref() == Some(&i.id)))
            })
            .filter(|i| !keep(i))
            .cloned()
            .collect();
        // What each image was before the pruning, for the vetoes of parents.
        let known = st.images.clone();
        let mut report = PruneReport::default();
        for img in victims {
            let tags: Vec<String> = st
                .refs
                .iter()
                .filter(|(_, v)| **v == img.id)
                .map(|(k, _)| k.clone())
                .collect();
            for t in &tags {
                st.refs.remove(t);
                if let Ok(r) = Reference::parse_normalized(t) {
                    report.deleted.push(DeleteItem::Untagged(r.familiar()));
                }
            }
            self.write_refs(&st)?;
            if !st.images.contains_key(&img.id) {
                continue; // went with a child pruned before it
            }
            let (items, freed) = self.delete_image(&mut st, &img.id)?;
            report.deleted.extend(items);
            report.space_reclaimed += freed;
            let veto = |p: &Digest| known.get(p).is_some_and(keep);
            let (items, freed) =
                self.delete_orphaned_parents(&mut st, img.parent.clone(), &veto)?;
            report.deleted.extend(items);
            report.space_reclaimed += freed;
        }
        st.sync_tags();
        Ok(report)
    }

    /// Overlay lower dirs of an image's layers, topmost first (for containers later).
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .rev()
            .map(|l| self.snapshots.fs_path(&l.chain_id))
            .collect()
    }

    /// History rows as `docker history` shows them (newest first).
    pub fn history(&self, image: &Image) -> Vec<HistoryItem> {
        let mut layers = image.layers.iter();
        let mut rows: Vec<HistoryItem> = image
            .config
            .history
            .iter()
            .map(|h| {
                let size = if h.empty_layer {
                    0
                } else {
                    layers.next().map_or(0, |l| l.size)
                };
                HistoryItem {
                    id: "<missing>".into(),
                    created: h.created.as_deref().map_or(0, timefmt::unix_seconds),
                    created_by: h.created_by.clone().unwrap_or_default(),
                    tags: Vec::new(),
                    size,
                    comment: h.comment.clone().unwrap_or_default(),
                }
            })
            .collect();
        rows.reverse();
        // As dockerd: the rows from the top name the image, then its parent, its parent's parent… as far as
        // this store knows them (builds and commits record parents; loaded images have none).
        let mut at = Some(image.clone());
        for row in rows.iter_mut() {
            let Some(img) = at.take() else { break };
            row.id = img.id.to_string();
            row.tags = img.repo_tags.iter().map(Reference::familiar).collect();
            at = img.parent.as_ref().and_then(|p| self.get(p.as_str()).ok());
        }
        rows
    }

    /// Commits a new image (its blobs and snapshots are already in place): record first, tags last.
    /// Returns the image as stored.
    pub(crate) fn commit_image(&self, mut image: Image, tags: &[Reference]) -> Result<Image> {
        let mut st = self.lock()?;
        if let Some(old) = st.images.get(&image.id) {
            // Loading an image again keeps its original record (and creation in this store).
            image.loaded_at = old.loaded_at.clone();
            image.last_tag_time = old.last_tag_time.clone();
        } else {
            image.repo_tags.clear();
            self.write_record(&image)?;
            st.images.insert(image.id.clone(), image.clone());
        }
        let id = image.id.clone();
        self.set_tags(&mut st, &id, tags)?;
        Ok(st.images[&id].clone())
    }

    fn set_tags(&self, st: &mut State, id: &Digest, tags: &[Reference]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let mut changed = false;
        for t in tags {
            changed |= st.refs.insert(t.to_string(), id.clone()).as_ref() != Some(id);
        }
        // A tag that already names the image (a rebuild with the same `-t`) leaves the references file as
        // it is: rewriting the same content would only cost its two fsyncs.
        if changed {
            self.write_refs(st)?;
            st.sync_tags();
        }
        if let Some(img) = st.images.get_mut(id) {
            img.last_tag_time = Some(timefmt::rfc3339_nano(SystemTime::now()));
            let img = img.clone();
            // Only the tag time changed in the record: a crash may keep the old record (whole, as the
            // new one is synced before the rename), which costs nothing but that time. So the directory
            // is not synced: that fsync waits for a journal commit (~9 ms here), on every rebuild.
            let data =
                serde_json::to_vec_pretty(&img).map_err(|e| Error::json("image record", e))?;
            write_replacing(&self.record_path(&img.id), &data, false)?;
        }
        Ok(())
    }

    /// Removes an image record and the snapshots and blobs only it used. Returns Docker's `Deleted`
    /// items (image ID, then each removed snapshot's chain ID) and the bytes freed.
    fn delete_image(&self, st: &mut State, id: &Digest) -> Result<(Vec<DeleteItem>, u64)> {
        let Some(img) = st.images.remove(id) else {
            return Ok((Vec::new(), 0));
        };
        let rec = self.record_path(id);
        match fs::remove_file(&rec) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::io("remove", &rec, e))
            }
            _ => {}
        }
        let (used_blobs, used_snaps) = references(st);
        let mut out = vec![DeleteItem::Deleted(id.to_string())];
        let mut freed = 0;
        for l in img.layers.iter().rev() {
            if !used_snaps.contains(&l.chain_id) && self.snapshots.meta(&l.chain_id).is_some() {
                self.snapshots.remove(&l.chain_id)?;
                out.push(DeleteItem::Deleted(l.chain_id.to_string()));
                freed += l.size;
            }
        }
        for b in blobs_of(&img) {
            if !used_blobs.contains(&b) {
                self.content.delete(&b)?;
            }
        }
        Ok((out, freed))
    }

    /// Removes ingest files, temp snapshots, and blobs and snapshots no image references.
    pub(crate) fn collect_garbage(&self) -> Result<()> {
        let _gc = self.gc_lock.write().map_err(|_| poisoned())?;
        if self.pins.load(std::sync::atomic::Ordering::Acquire) > 0 {
            // A pull's content has no record yet; the next collection (or open) gets the leftovers.
            return Ok(());
        }
        let st = self.lock()?;
        let (used_blobs, used_snaps) = references(&st);
        self.content.clean_ingest()?;
        for b in self.content.list()? {
            if !used_blobs.contains(&b) {
                self.content.delete(&b)?;
            }
        }
        for s in self.snapshots.list_and_clean()? {
            if !used_snaps.contains(&s) {
                self.snapshots.remove(&s)?;
            }
        }
        Ok(())
    }

    pub(crate) fn lock(&self) -> Result<MutexGuard<'_, State>> {
        self.state.lock().map_err(|_| poisoned())
    }

    fn record_path(&self, id: &Digest) -> PathBuf {
        self.root.join("images").join(format!("{}.json", id.hex()))
    }

    pub(crate) fn write_record(&self, image: &Image) -> Result<()> {
        let data = serde_json::to_vec_pretty(image).map_err(|e| Error::json("image record", e))?;
        write_atomic(&self.record_path(&image.id), &data)
    }

    fn write_refs(&self, st: &State) -> Result<()> {
        let data = serde_json::to_vec_pretty(&st.refs).map_err(|e| Error::json("references", e))?;
        write_atomic(&self.root.join(REFS_FILE), &data)
    }

    /// Resolves a name or ID under the state lock (for save).
    pub(crate) fn resolve(&self, name_or_id: &str) -> Result<(Image, Option<Reference>)> {
        let st = self.lock()?;
        let (id, r) = resolve(&st, name_or_id)?;
        Ok((st.images[&id].clone(), r))
    }
}

// The engine shares one store across threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<ImageStore>();
};

/// The first 12 hex digits of a container ID, as Docker shows them in conflicts.
fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn poisoned() -> Error {
    Error::Conflict("image store lock poisoned by a panic".into())
}

fn created_key(i: &Image) -> String {
    i.config.created.clone().unwrap_or_default()
}

/// Every blob an image needs: config, manifest, layers.
pub(crate) fn blobs_of(img: &Image) -> Vec<Digest> {
    let mut v = vec![img.id.clone(), img.manifest_digest.clone()];
    v.extend(img.layers.iter().map(|l| l.blob.clone()));
    v
}

fn references(st: &State) -> (BTreeSet<Digest>, BTreeSet<Digest>) {
    let mut blobs = BTreeSet::new();
    let mut snaps = BTreeSet::new();
    for img in st.images.values() {
        blobs.extend(blobs_of(img));
        snaps.extend(img.layers.iter().map(|l| l.chain_id.clone()));
    }
    (blobs, snaps)
}

/// Finds an image by what a user typed. Returns its ID and, when found by a tag, that reference.
fn resolve(st: &State, s: &str) -> Result<(Digest, Option<Reference>)> {
    let not_found = || Error::NotFound(s.to_string());
    // Full IDs.
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    if is_hex64(hex) {
        let id = Digest::from_hex(hex)?;
        return if st.images.contains_key(&id) {
            Ok((id, None))
        } else {
            Err(not_found())
        };
    }
    if s.starts_with("sha256:") {
        return by_prefix(st, hex)
            .ok_or_else(not_found)
            .map(|id| (id, None));
    }
    match Reference::parse_normalized(s) {
        Ok(r) => {
            if let Some(d) = r.digest() {
                let name = r.name();
                let want = format!("{name}@{d}");
                let found = st.images.values().find(|i| {
                    i.repo_digests.iter().any(|rd| {
                        Reference::parse_normalized(rd)
                            .map(|x| x.to_string() == want)
                            .unwrap_or(false)
                    }) || (i.manifest_digest == *d && i.repo_tags.iter().any(|t| t.name() == name))
                });
                return found.map(|i| (i.id.clone(), None)).ok_or_else(not_found);
            }
            if let Some(id) = st.refs.get(&r.to_string()) {
                return Ok((id.clone(), Some(r)));
            }
            // Docker falls back to an ID prefix for things that look like one (`5bc555f7f779`).
            if !s.contains(['/', ':']) {
                if let Some(id) = by_prefix(st, s) {
                    return Ok((id, None));
                }
            }
            Err(not_found())
        }
        Err(e) => {
            if let Some(id) = by_prefix(st, s) {
                return Ok((id, None));
            }
            Err(e)
        }
    }
}

/// The single image whose ID hex starts with `prefix` (hex only, nonempty).
fn by_prefix(st: &State, prefix: &str) -> Option<Digest> {
    if prefix.is_empty()
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut it = st.images.keys().filter(|id| id.hex().starts_with(prefix));
    let first = it.next()?;
    if it.next().is_some() {
        return None;
    }
    Some(first.clone())
}

/// Writes a file crash-safely: temp file in the same dir, fsync, rename, fsync the dir.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    write_replacing(path, data, true)
}

/// Writes a file through a synced temp file renamed over it, so a crash leaves the old content or the new,
/// whole; `durable` also syncs the directory, so the new content survives a crash once this returns.
fn write_replacing(path: &Path, data: &[u8], durable: bool) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}", unique_name("tmp")));
    let res = (|| {
        let mut f = fs::File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(data).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
        fs::rename(&tmp, path).ctx("rename", path)?;
        if !durable {
            return Ok(());
        }
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .ctx("fsync", dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::load::tests::load_fixture;
    use crate::layer::apply::tests::{build_tar, E};

    fn tmp() -> Result<tempfile::TempDir> {
        tempfile::tempdir().ctx("tempdir", "/tmp")
    }

    /// No container uses any image.
    fn nobody(_: &Digest) -> ImageUsers {
        ImageUsers::default()
    }

    #[test]
    fn images_in_use_are_kept_as_docker_keeps_them() -> Result<()> {
        let dir = tmp()?;
        let store = ImageStore::open(dir.path())?;
        load_fixture(&store)?;
        let id = store.get("fixture/webapp:1.0")?.id;
        let short = id.short().to_string();
        let ctr = "0123456789abcdef0123";
        let running = |_: &Digest| ImageUsers {
            running: Some(ctr.into()),
            stopped: None,
        };
        let stopped = |_: &Digest| ImageUsers {
            running: None,
            stopped: Some(ctr.into()),
        };
        let conflict = |r: Result<Vec<DeleteItem>>| match r {
            Err(Error::Conflict(m)) => m,
            other => panic!("expected a conflict, got {other:?}"),
        };
        // The last tag of a used image: must force.
        assert_eq!(
            conflict(store.remove("fixture/webapp:1.0", false, false, &stopped)),
            format!(
                "unable to remove repository reference \"fixture/webapp:1.0\" (must force) - container \
                 0123456789ab is using its referenced image {short}"
            )
        );
        // By ID: a running user cannot be forced away, a stopped one must be forced.
        assert_eq!(
            conflict(store.remove(&short, true, false, &running)),
            format!(
                "unable to delete {short} (cannot be forced) - image is being used by running container \
                 0123456789ab"
            )
        );
        assert_eq!(
            conflict(store.remove(&short, false, false, &stopped)),
            format!(
                "unable to delete {short} (must be forced) - image is being used by stopped container \
                 0123456789ab"
            )
        );
        assert_eq!(
            store.get(id.as_str())?.repo_tags.len(),
            1,
            "nothing changed"
        );
        // Forced: untagged, but the image stays while the container needs it.
        assert_eq!(
            store.remove("fixture/webapp:1.0", true, false, &running)?,
            vec![DeleteItem::Untagged("fixture/webapp:1.0".into())]
        );
        let kept = store.get(id.as_str())?;
        assert!(kept.repo_tags.is_empty());
        assert!(store.layer_dirs(&kept).iter().all(|d| d.is_dir()));
        store.tag(id.as_str(), "fixture/webapp:1.0")?;
        assert_eq!(
            store.remove(&short, true, false, &stopped)?,
            vec![DeleteItem::Untagged("fixture/webapp:1.0".into())]
        );
        assert!(store.get(id.as_str()).is_ok());
        // Once no container uses it, it goes.
        let items = store.remove(&short, false, false, &nobody)?;
        assert_eq!(items[0], DeleteItem::Deleted(id.to_string()));
        assert!(store.list()?.is_empty());
        Ok(())
    }

    /// A legacy docker-save archive of one image with the given layers; `diff_ids` overrides the config's.
    fn legacy_archive(layers: &[Vec<u8>], diff_ids: Option<Vec<Digest>>, tag: &str) -> Vec<u8> {
        let diff_ids = diff_ids.unwrap_or_else(|| layers.iter().map(|l| Digest::of(l)).collect());
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "test"}],
        });
        let config = serde_json::to_vec(&config).unwrap_or_default();
        let config_id = Digest::of(&config);
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        let mut add = |path: &str, data: &[u8]| files.push((path.to_owned(), data.to_vec()));
        let mut paths = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let p = format!("{i:064}/layer.tar");
            add(&p, l);
            paths.push(p);
        }
        add(&format!("{}.json", config_id.hex()), &config);
        let manifest = serde_json::json!([{"Config": format!("{}.json", config_id.hex()), "RepoTags": [tag], "Layers": paths}]);
        add(
            "manifest.json",
            &serde_json::to_vec(&manifest).unwrap_or_default(),
        );
        let entries: Vec<_> = files
            .iter()
            .map(|(p, d)| ::archive::memtar::Entry::File(p, d))
            .collect();
        ::archive::memtar::tar_of(&entries).unwrap_or_default()
    }

    fn count(dir: &Path) -> usize {
        fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
    }

    fn assert_empty_store(root: &Path) {
        assert_eq!(count(&root.join("images")), 0, "image records");
        assert_eq!(count(&root.join("blobs/sha256")), 0, "blobs");
        assert_eq!(count(&root.join("snapshots")), 0, "snapshots");
        assert_eq!(count(&root.join("ingest")), 0, "ingest");
    }

    #[test]
    fn load_rejects_layer_with_parent_dir_entry() -> Result<()> {
        let dir = tmp()?;
        let root = dir.path().join("image");
        let store = ImageStore::open(&root)?;
        let layer = build_tar(&[E::File("../../sentinel", b"x")]);
        let arch = legacy_archive(&[layer], None, "evil:1");
        let err = store.load(&mut &arch[..], &mut |_| {});
        assert!(matches!(err, Err(Error::UnsafePath { .. })), "{err:?}");
        assert!(!dir.path().join("sentinel").exists());
        assert!(store.list()?.is_empty());
        assert_empty_store(&root);
        Ok(())
    }

    #[test]
    fn load_rejects_legacy_layer_with_digest_mismatch() -> Result<()> {
        let dir = tmp()?;
        let store = ImageStore::open(dir.path())?;
        let layer = build_tar(&[E::File("a", b"x")]);
        let arch = legacy_archive(&[layer], Some(vec![Digest::of(b"not the layer")]), "bad:1");
        let err = store.load(&mut &arch[..], &mut |_| {});
        assert!(matches!(err, Err(Error::DigestMismatch { .. })), "{err:?}");
        assert!(matches!(store.get("bad:1"), Err(Error::NotFound(_))));
        assert_empty_store(dir.path());
        Ok(())
    }

    #[test]
    fn load_rejects_oci_blob_not_matching_its_name() -> Result<()> {
        let dir = tmp()?;
        let store = ImageStore::open(dir.path())?;
        let name = format!("blobs/sha256/{}", Digest::of(b"other").hex());
        let arch = ::archive::memtar::tar_of(&[::archive::memtar::Entry::File(&name, b"hello")])
            .map_err(|e| Error::InvalidArchive(e.to_string()))?;
        let err = store.load(&mut &arch[..], &mut |_| {});
        assert!(matches!(err, Err(Error::DigestMismatch { .. })), "{err:?}");
        assert_empty_store(dir.path());
        Ok(())
    }

    #[test]
    fn save_then_load_round_trips_ids_and_manifest() -> Result<()> {
        let dir = tmp()?;
        let a = ImageStore::open(dir.path().join("a"))?;
        load_fixture(&a)?;
        let orig = a.get("fixture/webapp:1.0")?;
        let mut out = Vec::new();
        a.save(&["fixture/webapp:1.0".to_string()], &mut out)?;
        let mut names = Vec::new();
        ::archive::read_members(&out[..], |m| {
            names.push(String::from_utf8_lossy(&m.path).into_owned());
            Ok::<(), ()>(())
        })
        .map_err(|e| Error::InvalidArchive(format!("{e:?}")))?;
        for want in ["index.json", "manifest.json", "oci-layout", "repositories"] {
            assert!(
                names.iter().any(|n| n == want),
                "{want} missing from {names:?}"
            );
        }
        let b = ImageStore::open(dir.path().join("b"))?;
        let loaded = b.load(&mut &out[..], &mut |_| {})?;
        assert_eq!(loaded.len(), 1);
        let copy = b.get("fixture/webapp:1.0")?;
        assert_eq!(copy.id, orig.id);
        assert_eq!(copy.manifest_digest, orig.manifest_digest);
        assert_eq!(copy.layers, orig.layers);
        assert_eq!(copy.size, orig.size);
        // Saving by ID writes it untagged.
        let mut out2 = Vec::new();
        a.save(&[orig.id.short().to_string()], &mut out2)?;
        let c = ImageStore::open(dir.path().join("c"))?;
        let loaded = c.load(&mut &out2[..], &mut |_| {})?;
        assert!(loaded[0].tags.is_empty());
        assert!(c.get(orig.id.as_str())?.repo_tags.is_empty());
        Ok(())
    }

    #[test]
    fn import_applies_changes_and_tags() -> Result<()> {
        let dir = tmp()?;
        let store = ImageStore::open(dir.path())?;
        let rootfs = build_tar(&[E::Dir("bin"), E::File("bin/hello", b"hi there")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &rootfs).ctx("gzip", "test")?;
        let gz = gz.finish().ctx("gzip", "test")?;
        let opts = ImportOptions {
            repo_tag: Some("imported/thing:v1".into()),
            changes: vec![
                "CMD echo hi".into(),
                r#"ENTRYPOINT ["/bin/hello"]"#.into(),
                "ENV A=1 B=\"two words\"".into(),
                "ENV C three four".into(),
                "WORKDIR /srv".into(),
                "USER 1000:1000".into(),
                "EXPOSE 80 443/udp".into(),
                "LABEL org.x=y".into(),
                "VOLUME /data /logs".into(),
                "STOPSIGNAL SIGTERM".into(),
            ],
            message: String::new(),
            platform_os: None,
            platform_arch: None,
        };
        let img = store.import(&mut &gz[..], &opts)?;
        assert_eq!(img.layers.len(), 1);
        assert_eq!(img.layers[0].diff_id, Digest::of(&rootfs));
        assert_eq!(img.layers[0].blob, Digest::of(&rootfs));
        assert_eq!(img.size, 8);
        assert_eq!(img.config.comment.as_deref(), Some("Imported from -"));
        assert_eq!(img.config.architecture, "amd64");
        let c = img.config.config.clone().unwrap_or_default();
        assert_eq!(
            c.cmd,
            Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()])
        );
        assert_eq!(c.entrypoint, Some(vec!["/bin/hello".into()]));
        assert_eq!(
            c.env,
            Some(vec![
                "A=1".into(),
                "B=two words".into(),
                "C=three four".into()
            ])
        );
        assert_eq!(c.working_dir.as_deref(), Some("/srv"));
        assert_eq!(c.user.as_deref(), Some("1000:1000"));
        assert_eq!(
            c.exposed_ports.map(|p| p.into_keys().collect::<Vec<_>>()),
            Some(vec!["443/udp".into(), "80/tcp".into()])
        );
        assert_eq!(c.volumes.map(|p| p.len()), Some(2));
        assert_eq!(c.stop_signal.as_deref(), Some("SIGTERM"));
        assert_eq!(store.get("imported/thing:v1")?.id, img.id);
        assert!(store.layer_dirs(&img)[0].join("bin/hello").is_file());
        // The config blob's digest is the ID.
        assert_eq!(Digest::of(&store.content.read(&img.id)?), img.id);
        let bad = ImportOptions {
            changes: vec!["RUN rm -rf /".into()],
            ..ImportOptions::default()
        };
        let err = store.import(&mut &rootfs[..], &bad).map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err("run is not a valid change command".to_string())
        );
        Ok(())
    }

    #[test]
    fn tag_remove_and_prune_follow_docker() -> Result<()> {
        let dir = tmp()?;
        let store = ImageStore::open(dir.path())?;
        load_fixture(&store)?;
        let id = store.get("fixture/webapp:1.0")?.id;
        let (img, r) = store.tag("fixture/webapp:1.0", "fixture/webapp")?;
        assert_eq!(r.to_string(), "docker.io/fixture/webapp:latest");
        assert_eq!(img.repo_tags.len(), 2);
        assert!(img.last_tag_time.is_some());
        // By ID with two tags and no force: conflict.
        let err = store.remove(id.short(), false, false, &nobody);
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err(format!(
                "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                id.short()
            ))
        );
        // By one tag: untag only.
        assert_eq!(
            store.remove("fixture/webapp:latest", false, false, &nobody)?,
            vec![DeleteItem::Untagged("fixture/webapp:latest".into())]
        );
        assert_eq!(store.get(id.as_str())?.repo_tags.len(), 1);
        assert!(
            matches!(store.remove("nope:1", false, false, &nobody), Err(Error::NotFound(ref s)) if s == "nope:1")
        );
        // Last tag: untag and delete image plus its five snapshots.
        let items = store.remove("fixture/webapp:1.0", false, false, &nobody)?;
        assert_eq!(items[0], DeleteItem::Untagged("fixture/webapp:1.0".into()));
        assert_eq!(items[1], DeleteItem::Deleted(id.to_string()));
        assert_eq!(items.len(), 2 + 5);
        assert!(store.list()?.is_empty());
        assert_empty_store(dir.path());

        // Prune: dangling only by default, everything with `all`, `keep` vetoes.
        load_fixture(&store)?;
        let rootfs = build_tar(&[E::File("f", b"1")]);
        let dangling = store.import(&mut &rootfs[..], &ImportOptions::default())?;
        let r = store.prune(false, &|_| false)?;
        assert_eq!(
            r.deleted,
            vec![
                DeleteItem::Deleted(dangling.id.to_string()),
                DeleteItem::Deleted(dangling.layers[0].chain_id.to_string())
            ]
        );
        assert_eq!(r.space_reclaimed, 1);
        assert_eq!(store.list()?.len(), 1);
        let r = store.prune(true, &|_| true)?;
        assert!(r.deleted.is_empty());
        let r = store.prune(true, &|_| false)?;
        assert_eq!(r.space_reclaimed, 1_986_084);
        assert!(store.list()?.is_empty());
        Ok(())
    }

    #[test]
    fn remove_deletes_only_snapshots_no_other_image_shares() -> Result<()> {
        let dir = tmp()?;
        let store = ImageStore::open(dir.path())?;
        let rootfs = build_tar(&[E::File("shared", b"12345")]);
        let opts = |m: &str| ImportOptions {
            message: m.into(),
            ..ImportOptions::default()
        };
        let a = store.import(&mut &rootfs[..], &opts("a"))?;
        let b = store.import(&mut &rootfs[..], &opts("b"))?;
        assert_ne!(a.id, b.id);
        assert_eq!(a.layers[0].chain_id, b.layers[0].chain_id);
        assert_eq!(count(&dir.path().join("snapshots")), 1);
        assert_eq!(
            store.remove(a.id.as_str(), false, false, &nobody)?,
            vec![DeleteItem::Deleted(a.id.to_string())]
        );
        assert!(store.layer_dirs(&b)[0].join("shared").is_file());
        assert_eq!(
            store.remove(&b.id.short()[..8], false, false, &nobody)?,
            vec![
                DeleteItem::Deleted(b.id.to_string()),
                DeleteItem::Deleted(b.layers[0].chain_id.to_string())
            ]
        );
        assert_empty_store(dir.path());
        Ok(())
    }

    #[test]
    fn tag_moves_between_images_and_rejects_bad_names() -> Result<()> {
        let dir = tmp()?;
        let store = ImageStore::open(dir.path())?;
        let a = store.import(
            &mut &build_tar(&[E::File("a", b"1")])[..],
            &ImportOptions::default(),
        )?;
        let b = store.import(
            &mut &build_tar(&[E::File("b", b"2")])[..],
            &ImportOptions::default(),
        )?;
        store.tag(a.id.as_str(), "x")?;
        store.tag(b.id.as_str(), "x:latest")?;
        assert!(store.get(a.id.as_str())?.repo_tags.is_empty());
        assert_eq!(store.get("x")?.id, b.id);
        assert!(matches!(
            store.tag("x", "Bad"),
            Err(Error::InvalidReference(_))
        ));
        Ok(())
    }

    /// Tagging an image with a name it already has changes no reference: the references file is not
    /// rewritten, the tag time is, and both hold after a reopen.
    #[test]
    fn a_tag_the_image_already_has_leaves_the_references_file_alone() -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let dir = tmp()?;
        let store = ImageStore::open(dir.path())?;
        let a = store.import(
            &mut &build_tar(&[E::File("a", b"1")])[..],
            &ImportOptions::default(),
        )?;
        let (first, _) = store.tag(a.id.as_str(), "x")?;
        let refs = dir.path().join(REFS_FILE);
        let inode = fs::metadata(&refs).ctx("stat", &refs)?.ino();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let (again, _) = store.tag(a.id.as_str(), "x:latest")?;
        assert_eq!(fs::metadata(&refs).ctx("stat", &refs)?.ino(), inode);
        assert_ne!(again.last_tag_time, first.last_tag_time);
        assert_eq!(again.repo_tags, first.repo_tags);
        drop(store);
        let reopened = ImageStore::open(dir.path())?;
        let got = reopened.get("x")?;
        assert_eq!(got.id, a.id);
        assert_eq!(got.last_tag_time, again.last_tag_time);
        Ok(())
    }

    #[test]
    fn open_cleans_leftovers_of_interrupted_load() -> Result<()> {
        let dir = tmp()?;
        let root = dir.path();
        {
            let store = ImageStore::open(root)?;
            // A committed blob and snapshot no record references, plus in-flight temp state.
            let blob = store.content.write(b"orphan layer")?;
            let snap = store.snapshots.begin()?;
            fs::write(snap.fs().join("f"), b"x").ctx("write", "snap")?;
            snap.commit(
                &store.snapshots,
                &blob,
                &crate::snapshot::SnapshotMeta {
                    diff_id: blob.clone(),
                    size: 1,
                },
            )?;
            let pending = store.snapshots.begin()?;
            std::mem::forget(pending); // as if the process died mid-extraction
            let w = store.content.writer()?;
            std::mem::forget(w);
            fs::write(root.join("images/.tmp-123"), b"{").ctx("write", "tmp record")?;
        }
        assert!(count(&root.join("snapshots")) >= 2);
        let store = ImageStore::open(root)?;
        assert!(store.list()?.is_empty());
        assert_empty_store(root);
        Ok(())
    }

    const CHILD_ENV: &str = "BERTH_IMAGE_TEST_CRASH_ROOT";

    /// Runs only inside the child of the crash test: starts a load whose input never ends.
    #[test]
    fn crash_child_helper() {
        let Some(root) = std::env::var_os(CHILD_ENV) else {
            return;
        };
        if let Ok(store) = ImageStore::open(PathBuf::from(root)) {
            let layer = build_tar(&[E::File("big", &vec![7u8; 1 << 20])]);
            let arch = legacy_archive(&[layer], None, "slow:1");
            let mut slow = Stall { data: arch, pos: 0 };
            let _ = store.load(&mut slow, &mut |_| {});
        }
    }

    #[test]
    fn interrupted_load_in_child_process_leaves_nothing_after_open() -> Result<()> {
        // Re-run this test binary as a child that loads forever, SIGKILL it mid-load, reopen the store.
        let dir = tmp()?;
        let root = dir.path().to_path_buf();
        let exe = std::env::current_exe().ctx("current exe", "self")?;
        let mut child = std::process::Command::new(exe)
            .args([
                "--exact",
                "store::tests::crash_child_helper",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &root)
            .stdout(std::process::Stdio::null())
            .spawn()
            .ctx("spawn", "test child")?;
        let mut started = false;
        for _ in 0..500 {
            if count(&root.join("ingest")) > 0 || count(&root.join("snapshots")) > 0 {
                started = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Give it a moment to be well inside the stream.
        std::thread::sleep(std::time::Duration::from_millis(50));
        child.kill().ctx("kill", "test child")?;
        child.wait().ctx("wait", "test child")?;
        assert!(started, "child never started loading");
        let store = ImageStore::open(&root)?;
        assert!(store.list()?.is_empty());
        assert_empty_store(&root);
        Ok(())
    }

    /// A reader that returns its data and then blocks forever (a client that stopped sending).
    struct Stall {
        data: Vec<u8>,
        pos: usize,
    }

    impl Read for Stall {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            // Stop just before the end so the load is mid-stream when killed.
            let limit = self.data.len().saturating_sub(4096);
            if self.pos >= limit {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(60));
                }
            }
            let n = buf.len().min(limit - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }
}
