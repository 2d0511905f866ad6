//! The in-memory index of containers (by ID and by name) over their records on disk.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::record::Container;
use crate::error::{Context, Error, Result};

/// How [`Store::modify`] writes a change.
enum Persist {
    Synced,
    Unsynced,
    No,
}

/// All containers, indexed; every change is written to the record before it is visible here.
pub struct Store {
    root: PathBuf,
    inner: Mutex<Index>,
    /// Containers whose in-memory record holds a change that has happened (an exit) but could not be
    /// written (a full disk), with the write's error: [`Store::write_pending`] retries them.
    pending: Mutex<BTreeMap<String, String>>,
    /// The anonymous volumes made by creates that a crash interrupted (their containers were removed at
    /// open): for the engine to remove once the volume store is open.
    abandoned: Mutex<Vec<String>>,
}

/// The mark of a container whose create has not finished (its volumes are not in its record yet): a
/// directory holding it is removed at the next start, so a create is whole or gone after a crash.
/// It lists the anonymous volumes the create made, one name a line.
const CREATING: &str = "creating";

#[derive(Default)]
struct Index {
    by_id: BTreeMap<String, Container>,
    names: HashMap<String, String>,
}

impl Store {
    /// Loads every record under `root` (`DATA_ROOT/containers`). A directory without a readable record is
    /// what a crash during create leaves: it is removed.
    pub fn open(root: PathBuf) -> Result<Store> {
        std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
        let mut index = Index::default();
        let mut abandoned = Vec::new();
        let entries =
            std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))?;
        for entry in entries.flatten() {
            let dir = entry.path();
            let mark = dir.join(CREATING);
            let loaded = if mark.exists() {
                // The anonymous volumes it had made go with it.
                let made = std::fs::read_to_string(&mark).unwrap_or_default();
                abandoned.extend(made.lines().filter(|l| !l.is_empty()).map(str::to_owned));
                Err(Error::System("its create did not finish".into()))
            } else {
                Container::load(&dir)
            };
            match loaded {
                Ok(c) => {
                    // Records an older version wrote world-readable are tightened.
                    super::record::make_private(&dir.join("container.json"));
                    index.names.insert(c.name.clone(), c.id.clone());
                    index.by_id.insert(c.id.clone(), c);
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "removing half-made container directory");
                    // Never remove through a mount: a rootfs left mounted would be emptied through it.
                    if let Err(e) = super::rootfs::Layout::new(&dir).unmount() {
                        tracing::warn!(dir = %dir.display(), error = %e, "unmounting in a half-made container directory");
                        continue;
                    }
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), error = %e, "removing half-made container directory failed");
                    }
                }
            }
        }
        Ok(Store {
            root,
            inner: Mutex::new(index),
            pending: Mutex::new(BTreeMap::new()),
            abandoned: Mutex::new(abandoned),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The directory of a container's record and writable layer.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Resolves what a user typed: a full ID, a name (with or without `/`), or a unique ID prefix.
    pub fn resolve(&self, name_or_id: &str) -> Result<Container> {
        let idx = self.lock();
        let not_found = || Error::NotFound(format!("No such container: {name_or_id}"));
        if name_or_id.is_empty() {
            return Err(not_found());
        }
        if let Some(c) = idx.by_id.get(name_or_id) {
            return Ok(c.clone());
        }
        let bare = name_or_id.strip_prefix('/').unwrap_or(name_or_id);
        if let Some(c) = idx.names.get(bare).and_then(|id| idx.by_id.get(id)) {
            return Ok(c.clone());
        }
        let mut matches = idx
            .by_id
            .range(name_or_id.to_owned()..)
            .take_while(|(id, _)| id.starts_with(name_or_id));
        match (matches.next(), matches.next()) {
            (Some((_, c)), None) => Ok(c.clone()),
            (Some(_), Some(_)) => Err(Error::InvalidParameter(format!(
                "multiple IDs found with provided prefix: {name_or_id}"
            ))),
            (None, _) => Err(not_found()),
        }
    }

    /// Adds a new container, marked as being created until [`Store::finish_create`]; its name must be free.
    pub fn insert(&self, c: Container) -> Result<()> {
        let mut idx = self.lock();
        if let Some(holder) = idx.names.get(&c.name) {
            return Err(name_conflict(&c.name, holder));
        }
        let dir = self.root.join(&c.id);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mark = dir.join(CREATING);
        let written = std::fs::File::create(&mark)
            .with_context(|| format!("creating {}", mark.display()))
            .and_then(|_| c.save(&dir));
        if let Err(e) = written {
            // Nothing of a create that failed is left (a full disk fails here).
            let _ = remove_dir(&dir);
            return Err(e);
        }
        idx.names.insert(c.name.clone(), c.id.clone());
        idx.by_id.insert(c.id.clone(), c);
        Ok(())
    }

    /// Notes an anonymous volume that container `id`'s create is about to make, so that a crash before
    /// [`Store::finish_create`] takes the volume with the container.
    pub fn note_created_volume(&self, id: &str, volume: &str) -> Result<()> {
        use std::io::Write;
        let mark = self.root.join(id).join(CREATING);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&mark)
            .and_then(|mut f| writeln!(f, "{volume}"))
            .with_context(|| format!("writing {}", mark.display()))
    }

    /// The anonymous volumes of creates a crash interrupted (see [`Store::open`]); returned once.
    pub fn take_abandoned_volumes(&self) -> Vec<String> {
        std::mem::take(&mut *self.abandoned.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Ends a container's create: from now on a restart keeps it.
    pub fn finish_create(&self, id: &str) -> Result<()> {
        let mark = self.root.join(id).join(CREATING);
        std::fs::remove_file(&mark).with_context(|| format!("removing {}", mark.display()))
    }

    /// Records a change that has already happened (a process exited): it is the record in memory whatever
    /// the disk says, since the API must tell the truth. If writing it fails, it is kept to be written by
    /// [`Store::write_pending`] (and by any later change) and the write's error is returned with it.
    pub fn record_fact(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container),
    ) -> Result<(Container, Option<Error>)> {
        let mut idx = self.lock();
        let c = idx
            .by_id
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("No such container: {id}")))?;
        f(c);
        let next = c.clone();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match next.save(&self.root.join(id)) {
            Ok(()) => {
                pending.remove(id);
                Ok((next, None))
            }
            Err(e) => {
                tracing::warn!(id, error = %e, "writing a container's record failed: retrying later");
                pending.insert(id.to_owned(), e.to_string());
                Ok((next, Some(e)))
            }
        }
    }

    /// Why a change of the container known in memory is not yet written, if one is not.
    pub fn pending_error(&self, id: &str) -> Option<String> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Whether any record waits to be written again.
    pub fn has_pending(&self) -> bool {
        !self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Writes the records that [`Store::record_fact`] could not; returns how many are still unwritten.
    pub fn write_pending(&self) -> usize {
        let idx = self.lock();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|id, _| match idx.by_id.get(id) {
            Some(c) => match c.save(&self.root.join(id)) {
                Ok(()) => {
                    tracing::info!(id, "wrote a container's record that had failed before");
                    false
                }
                Err(_) => true,
            },
            None => false,
        });
        pending.len()
    }

    /// Changes a container and persists it; returns the new record.
    pub fn update(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        self.modify(id, f, Persist::Synced)
    }

    /// [`Store::update`] persisted without an fsync (see [`Container::save_unsynced`]).
    pub fn update_unsynced(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        self.modify(id, f, Persist::Unsynced)
    }

    /// Changes a container in memory only (healthcheck results, as dockerd keeps them: written with the
    /// next persisted change); returns the new record.
    pub fn update_in_memory(&self, id: &str, f: impl FnOnce(&mut Container)) -> Result<Container> {
        self.modify(id, f, Persist::No)
    }

    /// Applies `f` to a copy, writes it as `persist` says, and only then makes it the record: a failed
    /// write leaves the record as it was.
    fn modify(
        &self,
        id: &str,
        f: impl FnOnce(&mut Container),
        persist: Persist,
    ) -> Result<Container> {
        let mut idx = self.lock();
        let c = idx
            .by_id
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("No such container: {id}")))?;
        let mut next = c.clone();
        f(&mut next);
        match persist {
            Persist::Synced => next.save(&self.root.join(id))?,
            Persist::Unsynced => next.save_unsynced(&self.root.join(id))?,
            Persist::No => {}
        }
        *c = next.clone();
        if !matches!(persist, Persist::No) {
            // The record written holds every change known in memory, a pending one too.
            self.pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
        }
        Ok(next)
    }

    /// Renames a container.
    pub fn rename(&self, id: &str, new_name: &str) -> Result<Container> {
        let mut idx = self.lock();
        if let Some(holder) = idx.names.get(new_name) {
            return Err(name_conflict(new_name, holder));
        }
        let c = idx
            .by_id
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("No such container: {id}")))?;
        let old = c.name.clone();
        let mut next = c.clone();
        next.name = new_name.to_owned();
        next.save(&self.root.join(id))?;
        *c = next.clone();
        idx.names.remove(&old);
        idx.names.insert(new_name.to_owned(), id.to_owned());
        Ok(next)
    }

    /// Forgets a container and deletes its directory.
    pub fn remove(&self, id: &str) -> Result<()> {
        let mut idx = self.lock();
        if let Some(c) = idx.by_id.remove(id) {
            idx.names.remove(&c.name);
        }
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        remove_dir(&self.root.join(id))
    }

    /// Every container.
    pub fn list(&self) -> Vec<Container> {
        self.lock().by_id.values().cloned().collect()
    }

    /// The containers with a legacy link to `child`, as (parent ID, alias).
    pub fn parents_of(&self, child: &str) -> Vec<(String, String)> {
        let idx = self.lock();
        let mut out = Vec::new();
        for (id, c) in &idx.by_id {
            for l in c.links.iter().filter(|l| l.child == child) {
                out.push((id.clone(), l.alias.clone()));
            }
        }
        out
    }

    /// `/PARENT/ALIAS` for every legacy link, by the linked container's ID (the names `docker ps` adds).
    pub fn link_names(&self) -> HashMap<String, Vec<String>> {
        let idx = self.lock();
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        for c in idx.by_id.values() {
            for l in &c.links {
                out.entry(l.child.clone())
                    .or_default()
                    .push(format!("/{}/{}", c.name, l.alias));
            }
        }
        out
    }

    /// Whether a name is taken.
    pub fn name_taken(&self, name: &str) -> bool {
        self.lock().names.contains_key(name)
    }
}

fn name_conflict(name: &str, holder: &str) -> Error {
    Error::Conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::system(format!("removing {}", dir.display()), e)),
    }
}
