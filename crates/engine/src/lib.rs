//! Berth's daemon core. The engine owns every store and the event bus and carries out each operation the API
//! asks for; it knows nothing of HTTP. Data flows down (`api → engine → image | runtime | network`) and events
//! flow back up through [`Events`].

pub mod builds;
pub mod chunks;
pub mod containers;
pub mod crash;
mod distribution;
mod du;
mod error;
pub mod events;
pub mod filters;
mod host;
pub use host::lock_exclusive;
mod images;
pub mod networks;
mod system;
pub mod userns;
pub mod volumes;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub use containers::logdriver::LogDefaults;
pub use distribution::{
    DistributionInspect, LoginResponse, Progress, ProgressDetail, ProgressSender, PullRequest,
    PushRequest, RegistryConfig,
};
pub use error::{BoxError, Cause, Context, Error, ErrorKind, Result};
pub use events::{Event, Events};
pub use filters::Filters;
pub use host::HostInfo;
/// Progress of an image load, as the image store reports it (the API streams it as Docker's JSON lines).
pub use image::LoadProgress;
pub use images::{parse_timestamp, ImageListOptions, ImportRequest, LoadedImage};
pub use system::{
    set_build_info, BuildInfo, DiskUsageKinds, API_VERSION, MIN_API_VERSION, STORAGE_DRIVER,
    VERSION,
};

/// Where the engine keeps its state; the daemon fills it from its flags.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Persistent state (`--data-root`, default `/var/lib/berth`).
    pub data_root: PathBuf,
    /// Runtime state that dies with a reboot (`--exec-root`, default `/run/berth`).
    pub exec_root: PathBuf,
    /// The default bridge (`--bridge`, `--bip`).
    pub network: networks::NetworkConfig,
    /// External OCI runtimes by name (`runc`, `crun`, `youki` found in PATH, `--add-runtime`); the built-in
    /// runtime is `berth`.
    pub runtimes: std::collections::BTreeMap<String, PathBuf>,
    /// The runtime of containers created without `--runtime` (`--default-runtime`, default `berth`).
    pub default_runtime: String,
    /// Registry settings for pull, push and login (`--insecure-registry`, `--registry-mirror`,
    /// certs.d).
    pub registry: RegistryConfig,
    /// The group that may search the exec root (mode 0710 instead of 0700): the API socket's group
    /// (`-G`), when the socket lies inside the exec root, as the default `/run/berth/berth.sock` does.
    pub exec_root_group: Option<u32>,
    /// What `docker info` warns about how the API is served (a TCP port without TLS or without client
    /// certificates, which the operator asked for explicitly), as dockerd warns.
    pub api_warnings: Vec<String>,
    /// The log driver and options of containers that name none (`--log-driver`, `--log-opt`,
    /// daemon.json's `log-driver` and `log-opts`).
    pub log: LogDefaults,
    /// `--userns-remap`, resolved: containers' ids are mapped onto these subordinate ids, and the data
    /// root's state lives in `<data-root>/<uid>.<gid>` as dockerd keeps it.
    pub userns_remap: Option<userns::Remap>,
}

/// dockerd's answer (a 503) to what needs a swarm manager on a node in no swarm; Berth is always such a node.
pub const NOT_SWARM_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";

/// How many blocking teardown steps run at once ([`Engine::teardown_blocking`]).
const TEARDOWN_PARALLELISM: usize = 2;

/// The built-in runtime's name (`--runtime berth`).
pub const BUILTIN_RUNTIME: &str = "berth";

/// The daemon core, shared by every API connection.
pub struct Engine {
    config: EngineConfig,
    images: Arc<image::ImageStore>,
    containers: containers::store::Store,
    volumes: Arc<volumes::store::VolumeStore>,
    hubs: Mutex<HashMap<String, Arc<containers::hub::Hub>>>,
    starting: Mutex<HashSet<String>>,
    restarts: containers::restart::Restarts,
    execs: containers::exec::Execs,
    health_monitors: containers::health::Monitors,
    stats_samples: containers::stats::Samples,
    states: tokio::sync::broadcast::Sender<containers::StateChange>,
    events: Events,
    host: HostInfo,
    id: String,
    exe: PathBuf,
    net: Arc<networks::Manager>,
    /// Held for reading from a create's image lookup until its record is stored, and for writing while
    /// images are removed: a removal sees every container that uses an image, even one being created.
    image_use: tokio::sync::RwLock<()>,
    /// The registry client (shared connections and TLS set-ups).
    registry: registry::Client,
    /// Builds under way that `POST /build/cancel` can stop, by the ID their client gave them.
    builds: builds::Running,
    /// The BuildKit sessions clients opened (`POST /session`), for their builds to use.
    pub sessions: session::Manager,
    /// Bounds the blocking work of taking containers down (network release, unmounts, record removal):
    /// see [`Engine::teardown_blocking`].
    teardown: tokio::sync::Semaphore,
}

impl Engine {
    /// Opens every store under the data root, recovering from an interrupted previous run.
    pub fn open(config: EngineConfig) -> Result<Engine> {
        for dir in [&config.data_root, &config.exec_root] {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut config = config;
        let remap_root = config.userns_remap.as_ref().map(userns::Remap::root);
        host::confine_roots(
            &config.data_root,
            &config.exec_root,
            config.exec_root_group,
            remap_root.map(|(_, gid)| gid),
        )?;
        if let Some((uid, gid)) = remap_root {
            // dockerd's layout: everything a remapped daemon keeps is below `<uid>.<gid>`, so images
            // stored shifted for one mapping are never used by a daemon with another (or none).
            let sub = config.data_root.join(format!("{uid}.{gid}"));
            std::fs::create_dir_all(&sub)
                .with_context(|| format!("Cannot create daemon root: {}", sub.display()))?;
            host::confine(&sub, 0o710, rustix::fs::Gid::from_raw(gid))?;
            // The containers' init searches its way to its rootfs as the remapped root: a directory on
            // the way that shuts it out would fail every start, so the daemon refuses to start (dockerd's
            // check and words).
            if let Some(dir) = sub
                .ancestors()
                .skip(1)
                .take_while(|d| *d != std::path::Path::new("/"))
                .find(|d| !host::can_search(d, uid, gid))
            {
                tracing::error!(dir = %dir.display(), "the remapped root cannot search this directory");
                return Err(Error::InvalidParameter(format!(
                    "a subdirectory in your graphroot path ({}) restricts access to the remapped root uid/gid; please fix by allowing 'o+x' permissions on existing directories",
                    sub.display()
                )));
            }
            config.data_root = sub;
        }
        Engine::clean_builds(&config.data_root);
        let images = image::ImageStore::open_remapped(
            config.data_root.join("image"),
            config.userns_remap.as_ref().map(|r| r.map.clone()),
        )?;
        let containers = containers::store::Store::open(config.data_root.join("containers"))?;
        let volumes = volumes::store::VolumeStore::open(config.data_root.join("volumes"))?
            .with_data_owner(remap_root);
        if let Some((_, gid)) = remap_root {
            // As dockerd's `containers` directory under remapping: the remapped root searches it.
            host::confine(
                &config.data_root.join("containers"),
                0o710,
                rustix::fs::Gid::from_raw(gid),
            )?;
        }
        volumes::rebuild_refs(&volumes, &containers.list());
        for name in containers.take_abandoned_volumes() {
            match volumes.remove(&name) {
                Ok(_) => {
                    tracing::info!(volume = %name, "removed the volume of an unfinished create")
                }
                Err(Error::NotFound(_)) => {}
                Err(e) => {
                    tracing::warn!(volume = %name, error = %e, "removing the volume of an unfinished create")
                }
            }
        }
        let id = system::engine_id(&config.data_root)?;
        let net = networks::Manager::open(&config.data_root, &config.exec_root, &config.network)?;
        // The shim is this same binary; resolve it once, before anything can replace the file.
        let exe = std::env::current_exe().context("finding the berth binary")?;
        Ok(Engine {
            images: Arc::new(images),
            containers,
            volumes: Arc::new(volumes),
            hubs: Mutex::new(HashMap::new()),
            starting: Mutex::new(HashSet::new()),
            restarts: Default::default(),
            execs: Mutex::new(std::collections::BTreeMap::new()),
            health_monitors: Mutex::new(HashMap::new()),
            stats_samples: Mutex::new(HashMap::new()),
            states: tokio::sync::broadcast::channel(1024).0,
            exe,
            events: Events::default(),
            host: HostInfo::probe(),
            net: Arc::new(net),
            image_use: tokio::sync::RwLock::new(()),
            registry: registry::Client::new(config.registry.clone()),
            builds: builds::Running::default(),
            sessions: session::Manager::default(),
            teardown: tokio::sync::Semaphore::new(TEARDOWN_PARALLELISM),
            config,
            id,
        })
    }

    /// A clean stop: removes what the daemon made on the host for itself alone (the default bridge, if it
    /// made it) when no container is running or paused.
    pub fn shutdown(&self) {
        use containers::record::Status;
        let running = self.containers.list().iter().any(|c| {
            matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Restarting
            )
        });
        self.net.release_default_bridge(running);
    }

    /// The event bus, for `/events`.
    pub fn events(&self) -> &Events {
        &self.events
    }

    /// The engine's configuration.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Runs one blocking step of taking a container down on tokio's blocking pool, at most
    /// [`TEARDOWN_PARALLELISM`] at a time. `docker rm -f` of 50 containers asks for 50 removals at once;
    /// their steps wait on the kernel's mount lock and the network state's mutex anyway, so running them
    /// all at once only started a thread for each to wait its turn (20 threads, whose cached stacks and
    /// allocator arenas stayed resident after the burst).
    pub(crate) async fn teardown_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::result::Result<T, tokio::task::JoinError> {
        // The semaphore is never closed, so acquiring fails only if it were; run unbounded then.
        let _permit = self.teardown.acquire().await.ok();
        tokio::task::spawn_blocking(f).await
    }

    /// The user-namespace mapping of containers that do not opt out with `--userns host`.
    pub(crate) fn id_map(&self) -> Option<&archive::IdMap> {
        self.config.userns_remap.as_ref().map(|r| &r.map)
    }

    /// The mapping a container with this host config runs under: the daemon's, unless it opts out with
    /// `--userns host`.
    pub(crate) fn container_id_map(
        &self,
        h: &bollard_stubs::models::HostConfig,
    ) -> Option<&archive::IdMap> {
        self.id_map()
            .filter(|_| h.userns_mode.as_deref() != Some("host"))
    }

    /// Runs blocking store work on tokio's blocking pool.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&image::ImageStore) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let store = Arc::clone(&self.images);
        tokio::task::spawn_blocking(move || f(&store)).await?
    }
}
