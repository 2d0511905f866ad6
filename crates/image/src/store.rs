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
    DeleteItem, HistoryItem, Image, ImportOptions, LoadProgress, LoadedImage, PruneReport,
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
    /// Opens (creating) the store under `root`; removes leftovers of interrupted operations (temp/ingest dirs,
    /// blobs and snapshots no image record references) so a SIGKILL mid-load leaves nothing half-made.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        let root = root.into();
        let images_dir = root.join("images");
        fs::create_dir_all(&images_dir).ctx("create", &images_dir)?;
        let content = ContentStore::open(&root)?;
        let snapshots = Snapshots::open(&root)?;
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
        if res.is_err() {
            // Blobs and snapshots of a failed load are referenced by nothing: drop them now.
            if let Err(e) = self.collect_garbage() {
                tracing::warn!(error = %e, "cleaning up after a failed load");
            }
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
    pub fn remove(&self, name_or_id: &str, force: bool, noprune: bool) -> Result<Vec<DeleteItem>> {
        // `noprune` only matters for parent chains of locally built images, which this store has none of.
        let _ = noprune;
        let _gc = self.gc_lock.write().map_err(|_| poisoned())?;
        let mut st = self.lock()?;
        let (id, by_ref) = resolve(&st, name_or_id)?;
        let tags: Vec<String> = st
            .refs
            .iter()
            .filter(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        match by_ref {
            Some(r) if tags.len() > 1 => {
                // Untag only: the image keeps its other names.
                st.refs.remove(&r.to_string());
                out.push(DeleteItem::Untagged(r.familiar()));
                self.write_refs(&st)?;
                st.sync_tags();
                return Ok(out);
            }
            None if tags.len() > 1 && !force => {
                let short = id.short().to_string();
                return Err(Error::Conflict(format!(
                    "unable to delete {short} (must be forced) - image is referenced in multiple repositories"
                )));
            }
            _ => {}
        }
        for t in &tags {
            st.refs.remove(t);
            if let Ok(r) = Reference::parse_normalized(t) {
                out.push(DeleteItem::Untagged(r.familiar()));
            }
        }
        self.write_refs(&st)?;
        out.extend(self.delete_image(&mut st, &id)?.0);
        st.sync_tags();
        Ok(out)
    }

    /// Deletes every dangling image (untagged), or with `all` every image; `keep` lets the caller veto
    /// (labels, in use).
    pub fn prune(&self, all: bool, keep: &dyn Fn(&Image) -> bool) -> Result<PruneReport> {
        let _gc = self.gc_lock.write().map_err(|_| poisoned())?;
        let mut st = self.lock()?;
        let victims: Vec<Image> = st
            .images
            .values()
            .filter(|i| (all || i.repo_tags.is_empty()) && !keep(i))
            .cloned()
            .collect();
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
            let (items, freed) = self.delete_image(&mut st, &img.id)?;
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
        if let Some(top) = rows.first_mut() {
            top.id = image.id.to_string();
            top.tags = image.repo_tags.iter().map(Reference::familiar).collect();
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
        for t in tags {
            st.refs.insert(t.to_string(), id.clone());
        }
        self.write_refs(st)?;
        st.sync_tags();
        if let Some(img) = st.images.get_mut(id) {
            img.last_tag_time = Some(timefmt::rfc3339_nano(SystemTime::now()));
            let img = img.clone();
            self.write_record(&img)?;
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

    fn write_record(&self, image: &Image) -> Result<()> {
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
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}", unique_name("tmp")));
    let res = (|| {
        let mut f = fs::File::create(&tmp).ctx("create", &tmp)?;
        f.write_all(data).ctx("write", &tmp)?;
        f.sync_all().ctx("fsync", &tmp)?;
        fs::rename(&tmp, path).ctx("rename", path)?;
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .ctx("fsync", dir)
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}
