//! The volume store: one directory per volume under `DATA_ROOT/volumes/<name>/`, holding the data in `_data`
//! (the layout dockerd uses, so paths in inspect look familiar) and the record in `volume.json` (written with
//! temp + fsync + rename). In memory it also keeps who references each volume (containers, whatever their
//! state) and who has it mounted right now (running containers), which decide removal and when a volume with
//! mount options is mounted and unmounted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::local::{self, LocalOptions};
use crate::error::{Context, Error, Result};

/// The only driver Berth has (volume plugins are not supported).
pub const LOCAL_DRIVER: &str = "local";

/// The label Docker (23+) puts on volumes created without a name.
pub const ANONYMOUS_LABEL: &str = "com.docker.volume.anonymous";

const DATA_DIR: &str = "_data";
const RECORD_FILE: &str = "volume.json";

/// What Berth keeps about one volume. `Labels` and `Options` stay `None` when the creator sent none, because
/// Docker shows `null` for those and `{}` for empty maps, and clients print the difference.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Record {
    /// Unique name (64 hex digits for anonymous volumes).
    pub name: String,
    /// Always `local`.
    pub driver: String,
    /// RFC 3339 in the daemon's local time, seconds precision (as dockerd prints it).
    pub created_at: String,
    /// User labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// Driver options (`type`, `device`, `o`).
    pub options: Option<BTreeMap<String, String>>,
}

impl Record {
    /// Whether the local driver must mount something on `_data` before use (`-o type=… -o device=…`).
    pub fn needs_mount(&self) -> bool {
        LocalOptions::from_map(self.options.as_ref()).needs_mount()
    }

    /// Whether Docker counts this volume as anonymous (for prune).
    pub fn is_anonymous(&self) -> bool {
        self.labels
            .as_ref()
            .is_some_and(|l| l.contains_key(ANONYMOUS_LABEL))
    }
}

/// Every volume, with its references and active mounts.
pub struct VolumeStore {
    root: PathBuf,
    inner: Mutex<Inner>,
    /// Who gets a new volume's `_data` (`--userns-remap`: the remapped root, as dockerd's local driver
    /// gives it); the daemon's user otherwise.
    data_owner: Option<(u32, u32)>,
}

#[derive(Default)]
struct Inner {
    volumes: BTreeMap<String, Record>,
    /// Volume name → IDs of the containers that use it (created, running or stopped).
    refs: HashMap<String, BTreeSet<String>>,
    /// Volume name → IDs of the running containers that have it mounted.
    active: HashMap<String, BTreeSet<String>>,
    /// Volumes whose `_data` has the driver's mount on it.
    mounted: BTreeSet<String>,
}

/// What a create did.
#[derive(Debug)]
pub struct Created {
    /// The volume (new or existing).
    pub record: Record,
    /// False when a volume of that name already existed (Docker answers with it, and publishes no event).
    pub created: bool,
}

impl VolumeStore {
    /// Loads every volume under `root` (`DATA_ROOT/volumes`). A directory without a readable record is what a
    /// crash during create leaves: removed if its `_data` is empty, adopted (with no labels or options) if not,
    /// so that no data is ever thrown away.
    pub fn open(root: PathBuf) -> Result<VolumeStore> {
        make_dir(&root, 0o701)?;
        let mut inner = Inner::default();
        let entries =
            std::fs::read_dir(&root).with_context(|| format!("reading {}", root.display()))?;
        for entry in entries.flatten() {
            let dir = entry.path();
            if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let Some(name) = dir.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            let record = match load(&dir) {
                Ok(r) => r,
                Err(e) if dir_is_empty(&dir.join(DATA_DIR)) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "removing half-made volume directory");
                    if let Err(e) = std::fs::remove_dir_all(&dir) {
                        tracing::warn!(dir = %dir.display(), error = %e, "removing half-made volume directory");
                    }
                    continue;
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "adopting a volume without a record");
                    let r = Record {
                        name: name.clone(),
                        driver: LOCAL_DRIVER.into(),
                        created_at: created_at_now(),
                        labels: None,
                        options: None,
                    };
                    save(&dir, &r)?;
                    r
                }
            };
            if record.needs_mount() && crate::host::is_mount_point(&dir.join(DATA_DIR)) {
                // Left mounted by a previous daemon (a container may still run on it): known as mounted, so
                // the last user unmounts it.
                inner.mounted.insert(name.clone());
            }
            inner.volumes.insert(name, record);
        }
        Ok(VolumeStore {
            root,
            inner: Mutex::new(inner),
            data_owner: None,
        })
    }

    /// New volumes' data directories go to `owner` (host ids).
    pub fn with_data_owner(mut self, owner: Option<(u32, u32)>) -> Self {
        self.data_owner = owner;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where a volume's data lives (its `Mountpoint`).
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.root.join(name).join(DATA_DIR)
    }

    /// A volume by name (`get NAME: no such volume` if absent, Docker's words).
    pub fn get(&self, name: &str) -> Result<Record> {
        self.lock()
            .volumes
            .get(name)
            .cloned()
            .ok_or_else(|| no_such_volume(name))
    }

    /// Every volume, by name.
    pub fn list(&self) -> Vec<Record> {
        self.lock().volumes.values().cloned().collect()
    }

    /// IDs of the containers referencing `name`.
    pub fn refs(&self, name: &str) -> Vec<String> {
        self.lock()
            .refs
            .get(name)
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Creates a volume, or returns the existing one of that name. `reference` (a container ID) is recorded
    /// in the same step, so the volume cannot be removed between its creation and its use.
    pub fn create(
        &self,
        name: &str,
        driver: &str,
        options: Option<BTreeMap<String, String>>,
        labels: Option<BTreeMap<String, String>>,
        reference: Option<&str>,
    ) -> Result<Created> {
        let fail = |e: Error| wrap("create", name, e);
        validate_name(name).map_err(fail)?;
        if !driver.is_empty() && driver != LOCAL_DRIVER {
            return Err(Error::NotFound(format!(
                "create {name}: error looking up volume plugin {driver}: plugin \"{driver}\" not found"
            )));
        }
        let mut inner = self.lock();
        if let Some(existing) = inner.volumes.get(name).cloned() {
            if let Some(id) = reference {
                inner
                    .refs
                    .entry(name.to_owned())
                    .or_default()
                    .insert(id.to_owned());
            }
            return Ok(Created {
                record: existing,
                created: false,
            });
        }
        local::validate(options.as_ref()).map_err(fail)?;
        let record = Record {
            name: name.to_owned(),
            driver: LOCAL_DRIVER.into(),
            created_at: created_at_now(),
            labels,
            options,
        };
        let dir = self.root.join(name);
        let made = (|| {
            // As dockerd: the volume's own directory is closed to others, its data directory is not.
            make_dir(&dir, 0o701)?;
            make_dir(&dir.join(DATA_DIR), 0o755)?;
            if let Some(owner) = self.data_owner {
                crate::containers::rootfs::chown(&dir.join(DATA_DIR), owner)?;
            }
            save(&dir, &record)
        })();
        if let Err(e) = made {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                tracing::warn!(dir = %dir.display(), error = %e, "removing a volume that failed to be made");
            }
            return Err(fail(e));
        }
        inner.volumes.insert(name.to_owned(), record.clone());
        if let Some(id) = reference {
            inner
                .refs
                .entry(name.to_owned())
                .or_default()
                .insert(id.to_owned());
        }
        Ok(Created {
            record,
            created: true,
        })
    }

    /// Records that container `id` uses `name` (rebuilding the references at start).
    pub fn add_ref(&self, name: &str, id: &str) {
        self.lock()
            .refs
            .entry(name.to_owned())
            .or_default()
            .insert(id.to_owned());
    }

    /// Forgets that container `id` uses `name`.
    pub fn release(&self, name: &str, id: &str) {
        let mut inner = self.lock();
        if let Some(r) = inner.refs.get_mut(name) {
            r.remove(id);
            if r.is_empty() {
                inner.refs.remove(name);
            }
        }
    }

    /// Removes a volume and its data. Refused while any container references it, with Docker's message
    /// (`remove NAME: volume is in use - [ID, …]`).
    pub fn remove(&self, name: &str) -> Result<Record> {
        let mut inner = self.lock();
        let record = inner
            .volumes
            .get(name)
            .cloned()
            .ok_or_else(|| no_such_volume(name))?;
        if let Some(refs) = inner.refs.get(name).filter(|r| !r.is_empty()) {
            let ids: Vec<&str> = refs.iter().map(String::as_str).collect();
            return Err(Error::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                ids.join(", ")
            )));
        }
        if inner.active.get(name).is_some_and(|a| !a.is_empty()) {
            return Err(Error::System(format!(
                "remove {name}: volume has active mounts"
            )));
        }
        let data = self.root.join(name).join(DATA_DIR);
        if inner.mounted.contains(name) {
            local::unmount(&data).map_err(|e| wrap("remove", name, e))?;
            inner.mounted.remove(name);
        }
        let dir = self.root.join(name);
        // A name is validated at create (no `/`, no `..`), so this stays under the root; std's remove_dir_all
        // does not follow symlinks planted inside the data.
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(Error::system(
                    format!(
                        "remove {name}: error removing volume path '{}'",
                        dir.display()
                    ),
                    e,
                ))
            }
        }
        inner.volumes.remove(name);
        inner.refs.remove(name);
        inner.active.remove(name);
        Ok(record)
    }

    /// Mounts `name` for container `id` (a no-op for plain volumes; the driver's mount for the first user of a
    /// volume with mount options) and returns the path to bind into the container.
    pub fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        let mut inner = self.lock();
        let record = inner
            .volumes
            .get(name)
            .cloned()
            .ok_or_else(|| no_such_volume(name))?;
        let data = self.data_path(name);
        if record.needs_mount() && !inner.mounted.contains(name) {
            let opts = LocalOptions::from_map(record.options.as_ref());
            local::mount(&opts, &data).map_err(|e| {
                e.prefixed(&format!("error while mounting volume '{}'", data.display()))
            })?;
            inner.mounted.insert(name.to_owned());
        }
        inner
            .active
            .entry(name.to_owned())
            .or_default()
            .insert(id.to_owned());
        Ok(data)
    }

    /// Counts container `id` as a user of `name` again after a daemon restart (it still runs).
    pub fn live_restore(&self, name: &str, id: &str) {
        let mut inner = self.lock();
        if inner.volumes.contains_key(name) {
            inner
                .active
                .entry(name.to_owned())
                .or_default()
                .insert(id.to_owned());
        }
    }

    /// Ends container `id`'s use of every volume it had mounted, unmounting those it was the last user of.
    /// Returns the volumes it had (name, driver), for the `unmount` events. Idempotent.
    pub fn unmount_all(&self, id: &str) -> Vec<(String, String)> {
        let mut inner = self.lock();
        let mut released = Vec::new();
        let names: Vec<String> = inner
            .active
            .iter()
            .filter(|(_, users)| users.contains(id))
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            let now_unused = match inner.active.get_mut(&name) {
                Some(users) => {
                    users.remove(id);
                    users.is_empty()
                }
                None => true,
            };
            if now_unused {
                inner.active.remove(&name);
                if inner.mounted.contains(&name) {
                    match local::unmount(&self.data_path(&name)) {
                        Ok(()) => {
                            inner.mounted.remove(&name);
                        }
                        Err(e) => {
                            tracing::warn!(volume = %name, error = %e, "unmounting the volume failed")
                        }
                    }
                }
            }
            let driver = inner
                .volumes
                .get(&name)
                .map(|r| r.driver.clone())
                .unwrap_or_else(|| LOCAL_DRIVER.into());
            released.push((name, driver));
        }
        released.sort();
        released
    }

    /// Unmounts the volumes mounted (by a previous daemon) that no container uses now; returns their names.
    /// Run after a restart once the running containers are counted again.
    pub fn unmount_unused(&self) -> Vec<String> {
        let mut inner = self.lock();
        let unused: Vec<String> = inner
            .mounted
            .iter()
            .filter(|n| inner.active.get(*n).is_none_or(|users| users.is_empty()))
            .cloned()
            .collect();
        let mut done = Vec::new();
        for name in unused {
            match local::unmount(&self.data_path(&name)) {
                Ok(()) => {
                    inner.mounted.remove(&name);
                    done.push(name);
                }
                Err(e) => {
                    tracing::warn!(volume = %name, error = %e, "unmounting an unused volume failed")
                }
            }
        }
        done
    }

    /// Bytes used by a volume's data (each inode counted once, directories not counted; as dockerd), or -1
    /// when it cannot be read.
    pub fn size(&self, name: &str) -> i64 {
        crate::du::dir_size(&self.data_path(name)).map_or(-1, |s| s as i64)
    }
}

/// Docker's rules for local volume names (they become directory names, so nothing that could leave the root).
pub fn validate_name(name: &str) -> Result<()> {
    if name.chars().count() == 1 {
        return Err(Error::InvalidParameter(
            "volume name is too short, names should be at least two alphanumeric characters".into(),
        ));
    }
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(Error::InvalidParameter(format!(
            "{} includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path",
            go_quote(name)
        )));
    }
    Ok(())
}

/// Go's `%q` for the strings a name can hold.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Docker's `OpErr` wording: `OP NAME: cause`, keeping the cause's class.
fn wrap(op: &str, name: &str, e: Error) -> Error {
    match e {
        e @ (Error::NotFound(_)
        | Error::InvalidParameter(_)
        | Error::Conflict(_)
        | Error::System(_)
        | Error::Failed { .. }) => e.prefixed(&format!("{op} {name}")),
        e => Error::System(format!("{op} {name}: {e}")),
    }
}

fn no_such_volume(name: &str) -> Error {
    Error::NotFound(format!("get {name}: no such volume"))
}

/// Now, as dockerd prints a volume's `CreatedAt` (Go's `time.RFC3339` in local time).
fn created_at_now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn load(dir: &Path) -> Result<Record> {
    let path = dir.join(RECORD_FILE);
    let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
}

fn save(dir: &Path, r: &Record) -> Result<()> {
    let data =
        serde_json::to_vec_pretty(r).with_context(|| format!("encoding volume {}", r.name))?;
    crate::containers::record::write_atomic(&dir.join(RECORD_FILE), &data)?;
    // The rename is durable once the directory is.
    if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), error = %e, "syncing the volume directory");
    }
    Ok(())
}

fn make_dir(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new().mode(mode).create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::system(
                format!("error while creating volume path '{}'", path.display()),
                e,
            ))
        }
    }
    // The umask may have narrowed the mode.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("error while creating volume path '{}'", path.display()))
}

fn dir_is_empty(path: &Path) -> bool {
    std::fs::read_dir(path).map_or(true, |mut d| d.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rules() {
        assert!(validate_name("data").is_ok());
        assert!(validate_name("my_vol.1-x").is_ok());
        assert!(validate_name("x")
            .unwrap_err()
            .to_string()
            .contains("too short"));
        let e = validate_name("../etc").unwrap_err().to_string();
        assert!(
            e.starts_with("\"../etc\" includes invalid characters for a local volume name"),
            "{e}"
        );
        assert!(validate_name("a/b").is_err());
        assert!(validate_name("_x").is_err());
    }

    #[test]
    fn create_is_idempotent_and_removal_respects_references() {
        let dir = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(dir.path().join("volumes")).unwrap();
        let c = store.create("data", "", None, None, Some("c1")).unwrap();
        assert!(c.created);
        assert!(store.data_path("data").is_dir());
        let again = store.create("data", "local", None, None, None).unwrap();
        assert!(!again.created);
        let e = store.remove("data").unwrap_err().to_string();
        assert_eq!(e, "remove data: volume is in use - [c1]");
        store.release("data", "c1");
        store.remove("data").unwrap();
        assert!(!dir.path().join("volumes/data").exists());
        assert_eq!(
            store.get("data").unwrap_err().to_string(),
            "get data: no such volume"
        );
        let e = store
            .create("p", "", None, None, None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("create p: volume name is too short"), "{e}");
        let e = store
            .create("vv", "nfs-plugin", None, None, None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "create vv: error looking up volume plugin nfs-plugin: plugin \"nfs-plugin\" not found"
        );
    }

    #[test]
    fn records_survive_a_reopen_and_half_made_volumes_are_cleaned() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("volumes");
        {
            let store = VolumeStore::open(root.clone()).unwrap();
            let labels = BTreeMap::from([("a".to_owned(), "1".to_owned())]);
            store
                .create("kept", "", Some(BTreeMap::new()), Some(labels), None)
                .unwrap();
            std::fs::write(store.data_path("kept").join("f"), "12345").unwrap();
        }
        // A crash between mkdir and the record: empty data is dropped, non-empty data is kept.
        std::fs::create_dir_all(root.join("empty/_data")).unwrap();
        std::fs::create_dir_all(root.join("full/_data")).unwrap();
        std::fs::write(root.join("full/_data/x"), "x").unwrap();
        let store = VolumeStore::open(root.clone()).unwrap();
        let kept = store.get("kept").unwrap();
        assert_eq!(kept.labels.unwrap()["a"], "1");
        assert_eq!(kept.options, Some(BTreeMap::new()));
        assert_eq!(store.size("kept"), 5);
        assert!(!root.join("empty").exists());
        assert!(store.get("full").unwrap().labels.is_none());
    }

    #[test]
    fn active_mounts_are_counted_per_container() {
        let dir = tempfile::tempdir().unwrap();
        let store = VolumeStore::open(dir.path().join("volumes")).unwrap();
        store.create("v1", "", None, None, None).unwrap();
        store.mount("v1", "a").unwrap();
        store.mount("v1", "b").unwrap();
        assert!(store
            .remove("v1")
            .unwrap_err()
            .to_string()
            .contains("active mounts"));
        assert_eq!(store.unmount_all("a"), vec![("v1".into(), "local".into())]);
        assert!(store.unmount_all("a").is_empty(), "idempotent");
        store.unmount_all("b");
        store.remove("v1").unwrap();
    }
}
