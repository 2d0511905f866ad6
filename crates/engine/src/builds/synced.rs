//! Build contexts kept from one BuildKit-mode build to the next, as BuildKit keeps its local sources: the
//! docker CLI shares a context directory under a key that stays the same for the same directory (the
//! session's shared key), so the daemon keeps the directory the last build extracted, with its entries'
//! stats and content hashes, and the next build asks the client only for what changed since
//! ([`session::SyncRequest::since`]). A rebuild of an unchanged context then moves no file data at all.
//!
//! The changes come as a tar stream and are extracted onto the kept directory by the archive crate, with
//! the same rules as any context; what the client deleted is removed with
//! [`archive::remove_below`]. A directory is used by one build at a time (another build of the same
//! directory meanwhile transfers everything into a directory of its own); a transfer that fails leaves the
//! directory in no known state, so it is dropped. Kept under `DATA_ROOT/build-kept`, which the daemon's
//! start empties: the index is in memory.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Context, Error, Result};

/// At most this many kept directories (then the least recently used goes).
const MAX_KEPT: usize = 4;

/// One kept context directory.
pub(super) struct Slot {
    /// The directory.
    pub(super) dir: PathBuf,
    /// The walk its content came from (`None` before its first transfer).
    pub(super) walk: Option<Arc<session::Walk>>,
    /// Its entries' content hashes (see [`build::context::SourceTree::with_sums`]); entries missing are
    /// hashed from disk when a build needs them.
    pub(super) sums: HashMap<String, String>,
}

enum Entry {
    Idle {
        slot: Slot,
        used: u64,
    },
    /// A build has it.
    Busy,
}

/// The kept context directories, by the hash of their key.
#[derive(Default)]
pub(crate) struct SyncedContexts {
    state: Mutex<(HashMap<String, Entry>, u64)>,
}

impl SyncedContexts {
    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<String, Entry>, u64)> {
        // Each change is one insert or remove: nothing a panicking holder could leave half done.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The directory kept for `key` (a new, empty one the first time), now the caller's until it gives it
    /// back with [`SyncedContexts::put`] or [`SyncedContexts::drop_slot`]. `None` while another build has
    /// it.
    pub(super) fn take(&self, root: &Path, key: &str) -> Option<(String, Slot)> {
        let id = blake3::hash(format!("berth synced context 1\0{key}").as_bytes())
            .to_hex()
            .to_string();
        let mut st = self.lock();
        let slot = match st.0.insert(id.clone(), Entry::Busy) {
            Some(Entry::Busy) => return None,
            Some(Entry::Idle { slot, .. }) => slot,
            None => Slot {
                dir: root.join(&id),
                walk: None,
                sums: HashMap::new(),
            },
        };
        Some((id, slot))
    }

    /// Gives `slot` back for the next build; then the least recently used idle directories go while
    /// there are too many.
    pub(super) fn put(&self, id: String, slot: Slot) {
        let mut gone = Vec::new();
        {
            let mut st = self.lock();
            st.1 += 1;
            let used = st.1;
            st.0.insert(id, Entry::Idle { slot, used });
            while st.0.len() > MAX_KEPT {
                let Some(oldest) =
                    st.0.iter()
                        .filter_map(|(k, e)| match e {
                            Entry::Idle { used, .. } => Some((k.clone(), *used)),
                            Entry::Busy => None,
                        })
                        .min_by_key(|(_, used)| *used)
                        .map(|(k, _)| k)
                else {
                    break;
                };
                if let Some(Entry::Idle { slot, .. }) = st.0.remove(&oldest) {
                    gone.push(slot.dir);
                }
            }
        }
        for dir in gone {
            remove(&dir);
        }
    }

    /// Forgets `slot` and removes its directory (its transfer failed: what it holds is unknown).
    pub(super) fn drop_slot(&self, id: &str, slot: Slot) {
        self.lock().0.remove(id);
        remove(&slot.dir);
    }

    /// The directories builds have now, by name.
    pub(crate) fn busy(&self) -> std::collections::HashSet<String> {
        self.lock()
            .0
            .iter()
            .filter(|(_, e)| matches!(e, Entry::Busy))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Forgets the directory `id` and returns it, for the caller to remove (`builder prune`), if it is
    /// kept and idle; one a build has stays with its build.
    pub(crate) fn take_idle(&self, id: &str) -> Option<PathBuf> {
        let mut st = self.lock();
        match st.0.get(id) {
            Some(Entry::Idle { .. }) => match st.0.remove(id) {
                Some(Entry::Idle { slot, .. }) => Some(slot.dir),
                _ => None,
            },
            _ => None,
        }
    }
}

/// Removes a kept context directory (what [`SyncedContexts::take_idle`] gave).
pub(crate) fn remove(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %dir.display(), error = %e, "removing a kept build context");
        }
        _ => {}
    }
}

/// Brings `slot` to what the client's directory holds now: `tar` (the changes since `slot.walk`) is
/// extracted onto it, what the client deleted is removed, and the content hashes are updated. Returns
/// what the transfer sent.
pub(super) fn apply(
    slot: &mut Slot,
    tar: &mut session::TarReader,
    extract: impl FnOnce(&mut dyn std::io::Read, &Path) -> Result<HashMap<String, String>>,
) -> Result<session::Synced> {
    let fresh = extract(tar, &slot.dir)?;
    let synced = tar.synced().map_err(|e| {
        Error::InvalidParameter(format!(
            "failed to read the context from the client's session: {e}"
        ))
    })?;
    let root = std::fs::File::open(&slot.dir)
        .with_context(|| format!("opening {}", slot.dir.display()))?;
    let below = |sums: &mut HashMap<String, String>, path: &str| {
        let prefix = format!("{path}/");
        sums.retain(|k, _| !k.starts_with(&prefix));
    };
    for (path, parent_mtime) in &synced.removed {
        archive::remove_below(root.as_fd(), path, *parent_mtime).map_err(|e| {
            Error::system(format!("removing {path} from the kept build context"), e)
        })?;
        slot.sums.remove(path);
        below(&mut slot.sums, path);
    }
    // What was sent replaced what was there (a directory's contents stay unless it became something
    // else); entries the extraction did not hash (hard links, ...) are hashed from disk when needed. A
    // first transfer starts from no sums and lists nothing as sent: its sums are the extraction's.
    for (path, is_dir) in &synced.sent {
        slot.sums.remove(path);
        if !is_dir {
            below(&mut slot.sums, path);
        }
    }
    slot.sums.extend(fresh);
    slot.walk = Some(Arc::clone(&synced.walk));
    Ok(synced)
}
