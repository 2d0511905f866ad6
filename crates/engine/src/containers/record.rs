//! A container's persistent record and its lifecycle state, written atomically to
//! `DATA_ROOT/containers/<id>/container.json` on every change.

use std::path::Path;

use bollard_stubs::models::{ContainerConfig, HostConfig, MountPoint};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Result};

/// Go's zero time, which dockerd prints for times that have not happened.
pub const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Docker's container states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Made but never started.
    Created,
    /// Its process runs.
    Running,
    /// Frozen.
    Paused,
    /// Waiting to be restarted by its policy.
    Restarting,
    /// Being deleted.
    Removing,
    /// Its process ended.
    Exited,
    /// Failed to be removed; only removal is possible.
    Dead,
}

impl Status {
    /// The word dockerd uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

/// What `State` in `docker inspect` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// The lifecycle state.
    pub status: Status,
    /// The init's pid on the host while running, else 0.
    pub pid: i64,
    /// The last exit code.
    pub exit_code: i64,
    /// The last start error, if any.
    pub error: String,
    /// When it last started.
    pub started_at: String,
    /// When it last stopped.
    pub finished_at: String,
    /// Whether the kernel's OOM killer ended it.
    pub oom_killed: bool,
    /// The healthcheck's state (`State.Health`), once a container with a healthcheck has started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<bollard_stubs::models::Health>,
}

impl Default for State {
    fn default() -> Self {
        State {
            status: Status::Created,
            pid: 0,
            exit_code: 0,
            error: String::new(),
            started_at: ZERO_TIME.into(),
            finished_at: ZERO_TIME.into(),
            oom_killed: false,
            health: None,
        }
    }
}

/// Everything Berth keeps about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    /// 64 hex digits.
    pub id: String,
    /// Unique name, without Docker's leading `/`.
    pub name: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    /// The image ID (`sha256:…`).
    pub image_id: String,
    /// The container's config as Docker shows it (image defaults merged in).
    pub config: ContainerConfig,
    /// Host-side settings as the client sent them (with Docker's defaults filled).
    pub host_config: HostConfig,
    /// The executable (`Path` in inspect).
    pub path: String,
    /// Its arguments (`Args`).
    pub args: Vec<String>,
    /// Lifecycle state.
    pub state: State,
    /// How many times the restart policy restarted it.
    pub restart_count: i64,
    /// Stopped or killed by the user since its last start (dockerd's `HasBeenManuallyStopped`, which
    /// `unless-stopped` honours).
    #[serde(default)]
    pub manually_stopped: bool,
    /// Mounts as inspect shows them.
    pub mounts: Vec<MountPoint>,
    /// Created through an API older than 1.44: its read-only binds are read-only at the top only, as they
    /// were before Docker 25 (dockerd keeps that for such clients).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only_non_recursive: bool,
    /// The networks it joins when it runs, by network name (`--network`, `network connect`).
    #[serde(default)]
    pub networks: std::collections::BTreeMap<String, crate::networks::Attachment>,
    /// Legacy links (`--link`) on the default bridge.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<super::links::LegacyLink>,
}

#[cfg(test)]
impl Container {
    /// A record for unit tests: `id`, `name`, `image_id` and `config` as given, everything else empty, so that a
    /// field added to the record is added here once rather than in every test that builds one.
    pub(crate) fn for_test(
        id: &str,
        name: &str,
        image_id: &str,
        config: ContainerConfig,
    ) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            created: String::new(),
            image_id: image_id.into(),
            config,
            host_config: Default::default(),
            path: String::new(),
            args: Vec::new(),
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            mounts: Vec::new(),
            read_only_non_recursive: false,
            networks: Default::default(),
            links: Vec::new(),
        }
    }
}

impl Container {
    /// Writes the record with temp + fsync + rename, so a crash leaves the old or the new one.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let data = serde_json::to_vec_pretty(self)
            .with_context(|| format!("encoding container {}", self.id))?;
        write_atomic(&dir.join("container.json"), &data)
    }

    /// [`Container::save`] without the fsync: a crash may lose this write (never tear it). For changes
    /// that recovery can rebuild from the shim (a start: the shim's pid file and socket say it runs).
    pub fn save_unsynced(&self, dir: &Path) -> Result<()> {
        let data = serde_json::to_vec_pretty(self)
            .with_context(|| format!("encoding container {}", self.id))?;
        let path = dir.join("container.json");
        let tmp = path.with_extension("tmp");
        create_private(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, &data))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Reads a record written by [`Container::save`].
    pub fn load(dir: &Path) -> Result<Container> {
        let path = dir.join("container.json");
        let data = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&data).with_context(|| format!("parsing {}", path.display()))
    }

    /// The 12-hex short ID.
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

/// Creates (or truncates) a record file that only its owner may read: records carry environments, which
/// hold secrets (dockerd writes its records 0600 too).
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

/// Makes an existing record readable by its owner only (records an older version left 0644); a failure is
/// logged, since the data root's own mode already keeps other users out.
pub fn make_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => {
            if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
                tracing::warn!(path = %path.display(), error = %e, "cannot make the record private");
            }
        }
        _ => {}
    }
}

/// Writes `data` to `path` atomically (temp file, fsync, rename), readable by its owner only.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut f = create_private(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.with_context(|| format!("writing {}", path.display()))
}
