//! The contract between the dispatcher and the engine that runs its steps.
//!
//! The build crate knows nothing of containers, layers or storage: it decides what each step
//! is (its configuration, its cache key, its history line) and asks a [`Backend`] to do the
//! work. The engine implements the trait, so it depends on this crate and never the other way.
//!
//! All methods block: the engine runs a build on a blocking thread. Image IDs are full
//! `sha256:<hex>` strings; `None` as a parent means `FROM scratch` (no layers).
//!
//! The calls a build makes, per step (the cache probe is [`Backend::children`]; on a hit the
//! rest of the step is skipped):
//! - `FROM`: [`Backend::image`] (not for `scratch` or an earlier stage);
//! - ENV, LABEL, CMD and the other config-only steps: `children`, then
//!   [`Backend::commit`] with no step container;
//! - RUN: `children`, [`Backend::create`], [`Backend::start`], `commit`, [`Backend::remove`]
//!   (with `rm`; on failure only with `forcerm`);
//! - WORKDIR: `children`, `create`, [`Backend::mkdir`], `commit`, `remove`;
//! - COPY/ADD: [`Backend::mount_image`] for `--from` and `--chown` names,
//!   [`Backend::download`] for URLs, `children`, [`Backend::copy`], `commit`, `remove`;
//! - at the end: [`Backend::tag`] per `-t`.
//!
//! With `--cache-from`, the first probe looks the source images up with [`Backend::find_image`], and a step a
//! source supplies is [`Backend::adopt`]ed or [`Backend::restore`]d instead of run.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::image_config::{ImageConfig, RunConfig};
pub use crate::instructions::mount::CacheSharing;

/// An engine failure, with the engine's own message (shown to the client as the build error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// The image does not exist and could not be pulled: `pull access denied for x, ...` or
    /// `No such image: x`, worded by the engine.
    #[error("{0}")]
    NoSuchImage(String),
    /// The build was cancelled (client gone, `/build/cancel`).
    #[error("build cancelled")]
    Cancelled,
    /// Anything else, already worded for the client.
    #[error("{0}")]
    Other(String),
}

/// An image as the engine stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct Base {
    /// `sha256:<hex>`.
    pub id: String,
    /// Its configuration JSON.
    pub config: ImageConfig,
}

/// Resources and host settings of RUN containers, from the build request (`memory`,
/// `cpushares`, `networkmode`, `extrahosts`, ...); the engine applies them as `docker run` would.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunHost {
    /// `networkmode` (`default`, `none`, `host`, a network name); `RUN --network` overrides it.
    pub network_mode: String,
    /// `extrahosts`: `name:ip` entries for `/etc/hosts`.
    pub extra_hosts: Vec<String>,
    /// Memory limit in bytes (0: none).
    pub memory: i64,
    /// Memory + swap limit in bytes (0: default, -1: unlimited).
    pub memory_swap: i64,
    /// CPU shares (0: default).
    pub cpu_shares: i64,
    /// CPUs allowed (`0-3`, `0,1`).
    pub cpuset_cpus: String,
    /// CFS period in microseconds.
    pub cpu_period: i64,
    /// CFS quota in microseconds.
    pub cpu_quota: i64,
    /// `/dev/shm` size in bytes (0: default).
    pub shm_size: i64,
    /// Memory nodes allowed (`0-3`, `0,1`).
    pub cpuset_mems: String,
    /// The cgroup the step containers' cgroups go under (empty: the daemon's).
    pub cgroup_parent: String,
    /// `--ulimit`s of the step containers' processes.
    pub ulimits: Vec<RunUlimit>,
}

/// One `--ulimit` of a build's step containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunUlimit {
    /// The rlimit's name without `RLIMIT_` (`nofile`).
    pub name: String,
    /// Soft limit (-1: unlimited).
    pub soft: i64,
    /// Hard limit (-1: unlimited).
    pub hard: i64,
}

/// A `RUN --mount`, resolved by the dispatcher, for the engine to set up in the step
/// container (and to keep out of the committed layer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunMount {
    /// `type=bind`: a file or directory of the build context or of a stage/image file system
    /// (already resolved inside it) at `target`; writes never reach the source (read-write
    /// binds get a throw-away copy or overlay).
    Bind {
        /// The host path.
        source: PathBuf,
        /// The absolute path in the container.
        target: String,
        /// Mount read-only (the default).
        read_only: bool,
    },
    /// `type=cache`: a directory the engine keeps across builds, keyed by `id`, created empty
    /// with `mode`, `uid` and `gid` the first time.
    Cache {
        /// The cache's identity (default: the target path).
        id: String,
        /// The absolute path in the container.
        target: String,
        /// How concurrent builds share it.
        sharing: CacheSharing,
        /// Mount read-only.
        read_only: bool,
        /// Mode of a new cache directory.
        mode: u32,
        /// Owner of a new cache directory.
        uid: u32,
        /// Group of a new cache directory.
        gid: u32,
        /// `from=`/`source=`: what a new cache directory starts with (else it starts empty).
        seed: Option<CacheSeed>,
    },
    /// `type=tmpfs`: an empty tmpfs.
    Tmpfs {
        /// The absolute path in the container.
        target: String,
        /// Size limit in bytes.
        size: Option<u64>,
    },
    /// `type=secret`: the build secret `id` (from the build request, e.g. `berth build --secret
    /// id=x,src=F`) as a file at `target` and/or in the variable `env`. Never written to a
    /// layer, the config or the history.
    Secret {
        /// The secret's ID.
        id: String,
        /// Where the file appears (`/run/secrets/<id>` by default; `None` with only `env`).
        target: Option<String>,
        /// The environment variable to set to its value.
        env: Option<String>,
        /// Fail the step when the build has no such secret (else the mount is skipped).
        required: bool,
        /// File mode (0400 by default).
        mode: u32,
        /// File owner.
        uid: u32,
        /// File group.
        gid: u32,
    },
}

/// What a `RUN --mount=type=cache,from=STAGE|IMAGE,source=PATH` cache starts with: as BuildKit, a cache
/// based on another file system is a cache of its own (the same `id` from another stage or image, or
/// another `source`, is another cache), first filled with a copy of that directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSeed {
    /// The directory to copy, on the host (inside a [`Backend::mount_image`] view, resolved inside it).
    pub source: PathBuf,
    /// What tells this cache from others of the same `id`: the `from` image's ID and the source path.
    pub key: String,
}

/// A RUN step to execute.
#[derive(Debug, Clone, PartialEq)]
pub struct RunStep {
    /// The container's configuration, as dockerd creates the step container: `Cmd` is the argv
    /// to run (the stage's `SHELL` already prepended for shell form), `Entrypoint` is `None`,
    /// `Env` holds the stage's environment then the build arguments in effect, `User`,
    /// `WorkingDir` and `Image` (the parent) are set, `Healthcheck` is `None`.
    pub config: RunConfig,
    /// Host settings and limits.
    pub host: RunHost,
    /// `RUN --mount`s, in the Dockerfile's order.
    pub mounts: Vec<RunMount>,
}

/// What a [`CopySource`] is on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A regular file (or a symlink the source path resolved through).
    File,
    /// A directory: its contents are copied, not the directory itself.
    Dir,
}

/// Ownership for copied files (`--chown`), resolved against the parent image's
/// `/etc/passwd` and `/etc/group` by the dispatcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User ID.
    pub uid: u32,
    /// Group ID.
    pub gid: u32,
}

/// One source of a COPY or ADD step, resolved and checked by the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySource {
    /// The source on the host: inside the build context or inside a directory from
    /// [`Backend::mount_image`]; symlinks on the way to it are already resolved inside that
    /// root (a symlink *inside* a copied directory is copied as a link).
    pub src: PathBuf,
    /// What `src` is.
    pub kind: SourceKind,
    /// The destination in the image, absolute and cleaned, with a trailing `/` when the
    /// Dockerfile's destination had one. A file goes *into* `dest` (under its base name) when
    /// `dest` ends in `/` or is an existing directory in the parent image, else it becomes
    /// `dest`; a directory's contents go into `dest`. Missing parents are created (0755, root).
    pub dest: String,
    /// `--chown`: the owner of everything copied; `None` is root (0:0).
    pub owner: Option<Owner>,
    /// `--chmod`: the mode of everything copied (files and directories); `None` keeps the
    /// source's mode.
    pub mode: Option<u32>,
    /// `--exclude` patterns of a directory source (`.dockerignore` syntax, relative to `src`):
    /// entries [`crate::dockerignore::PatternMatcher::matches_or_parent_matches`] accepts are not
    /// copied.
    pub exclude: Vec<String>,
    /// ADD of a local archive (tar, optionally gzip/bzip2/xz/zstd compressed): extract it into
    /// `dest` instead of copying the file.
    pub extract: bool,
}

/// A step in progress: a container (RUN, WORKDIR) or a new layer being filled (COPY/ADD),
/// to be committed and then removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepContainer {
    /// The container's full ID (64 hex digits); the build prints its first 12. For COPY/ADD,
    /// an ID of the engine's choosing that the dispatcher never prints.
    pub id: String,
}

/// What [`Backend::commit`] made.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    /// The new image's ID, `sha256:<hex>`.
    pub image: String,
    /// The new image's configuration as stored (with what the engine filled in: `container`
    /// is the step container's ID, or one the engine made up for a config-only step, and
    /// empty for COPY/ADD).
    pub config: ImageConfig,
}

/// The optional parts of the [`Backend`] contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// [`RunStep::mounts`] are set up (`RUN --mount`).
    RunMounts,
    /// [`CopySource::exclude`] is honoured (`COPY --exclude`).
    CopyExclude,
    /// [`Backend::download`] (`ADD http(s)://`).
    Download,
    /// [`Backend::adopt`] and [`Backend::restore`] (`--cache-from`).
    CacheFrom,
}

impl Feature {
    /// What the build was asked for, for the refusal.
    pub fn what(self) -> &'static str {
        match self {
            Feature::RunMounts => "RUN --mount",
            Feature::CopyExclude => "--exclude",
            Feature::Download => "ADD from a URL",
            Feature::CacheFrom => "--cache-from",
        }
    }
}

fn unsupported(what: &str) -> BackendError {
    BackendError::Other(format!("{what} is not supported by this engine"))
}

/// The engine side of a build.
pub trait Backend {
    /// Looks up the image `name` (a reference or an ID) for `FROM` or `COPY --from`, pulling it
    /// when the engine can and `pull` is set (or it is missing). `platform` is `FROM
    /// --platform`/the build's `platform`, e.g. `linux/amd64`.
    fn image(
        &mut self,
        name: &str,
        platform: Option<&str>,
        pull: bool,
    ) -> Result<Base, BackendError>;

    /// Looks up the image `name` (a reference or an ID) among those the engine has, never pulling it: the
    /// `--cache-from` sources, which dockerd skips when it lacks them. `Ok(None)`: no such image. The default
    /// asks [`Backend::image`], for engines that never pull.
    fn find_image(&mut self, name: &str) -> Result<Option<Base>, BackendError> {
        match self.image(name, None, false) {
            Ok(base) => Ok(Some(base)),
            Err(BackendError::Cancelled) => Err(BackendError::Cancelled),
            Err(_) => Ok(None),
        }
    }

    /// The images whose parent is `parent` (`None`: images without a parent), for the cache:
    /// the dispatcher picks a child whose `container_config` matches the step
    /// ([`crate::dispatch::cache::compare`]), the most recently created one on ties.
    fn children(&mut self, parent: Option<&str>) -> Result<Vec<Base>, BackendError>;

    /// A read-only directory holding the file system of `image` (for `COPY --from` sources and
    /// `--chown` name lookups), valid until the build returns; the engine releases it then.
    fn mount_image(&mut self, image: Option<&str>) -> Result<PathBuf, BackendError>;

    /// Creates a step container from `parent` with `run` (for RUN, then [`Backend::start`];
    /// for WORKDIR, then [`Backend::mkdir`]). The dispatcher prints ` ---> Running in <id>`.
    fn create(
        &mut self,
        parent: Option<&str>,
        run: &RunStep,
    ) -> Result<StepContainer, BackendError>;

    /// Starts a RUN step container and waits for it, writing its output (stdout and stderr) to
    /// `out` as it comes. Returns the exit code: a non-zero exit is not an error here (the
    /// dispatcher words it, and removes the container when the build asks it to).
    fn start(&mut self, step: &StepContainer, out: &mut dyn Write) -> Result<i64, BackendError>;

    /// WORKDIR: creates the directory `path` (0755, root-owned, parents too) in the step
    /// container's file system if it does not exist.
    fn mkdir(&mut self, step: &StepContainer, path: &str) -> Result<(), BackendError>;

    /// COPY/ADD: a fresh layer on `parent` holding `copies`, in order.
    fn copy(
        &mut self,
        parent: Option<&str>,
        copies: &[CopySource],
    ) -> Result<StepContainer, BackendError>;

    /// `ADD http(s)://...`: fetches `url` (GET, following redirects) into the new file `to`
    /// with mode 0600 and, when the response has `Last-Modified`, that mtime. A failure is worded
    /// for the client (dockerd: `failed to GET <url> with status 404 Not Found: <body>`).
    /// Only called when [`Backend::supports`] says [`Feature::Download`].
    fn download(&mut self, url: &str, to: &Path) -> Result<(), BackendError> {
        let _ = to;
        Err(unsupported(&format!("ADD {url}")))
    }

    /// Commits a step: the new image is `parent`'s layers plus `step`'s changes (`None`: a
    /// config-only step, no container and no layer) with `config`. The dispatcher gives
    /// `config` complete except for what only the engine knows: the engine sets `container`
    /// (and `container_config.Hostname` to its first 12 digits) except for COPY/ADD layers, sets
    /// `docker_version`, appends the layer's diff ID to `rootfs.diff_ids` when the layer is not
    /// empty, and sets `empty_layer` on the last `history` entry (which the dispatcher
    /// appended) when it is. For a config-only step the engine makes up a container ID (dockerd
    /// ran a container for those; the build prints the ID as ` ---> Running in <id>`). The image
    /// ID is the SHA-256 of the final config serialised by [`ImageConfig::to_go_json`] (Go's
    /// escaping), and the image is recorded as a child of `parent` for [`Backend::children`],
    /// persistently (the cache survives a daemon restart).
    fn commit(
        &mut self,
        parent: Option<&str>,
        step: Option<&StepContainer>,
        config: &ImageConfig,
    ) -> Result<Committed, BackendError>;

    /// `--cache-from`: records the existing image `image` as a child of `parent`, as dockerd
    /// does when a cache source's last step matches.
    /// Only called when [`Backend::supports`] says [`Feature::CacheFrom`].
    fn adopt(&mut self, parent: Option<&str>, image: &str) -> Result<(), BackendError> {
        let _ = (parent, image);
        Err(unsupported("--cache-from"))
    }

    /// `--cache-from`: makes an image with exactly `config` (its `rootfs.diff_ids` are
    /// `parent`'s plus, when the step made one, a layer of the image `source`, which the engine
    /// already has) as a child of `parent`. `docker_version` is the engine's to fill in, as in
    /// [`Backend::commit`].
    /// Only called when [`Backend::supports`] says [`Feature::CacheFrom`].
    fn restore(
        &mut self,
        parent: Option<&str>,
        config: &ImageConfig,
        source: &str,
    ) -> Result<Committed, BackendError> {
        let _ = (parent, config, source);
        Err(unsupported("--cache-from"))
    }

    /// Whether the engine implements an optional part of this contract. The dispatcher refuses
    /// a build that needs one it lacks (with [`Feature`]'s wording) rather than let it be
    /// silently ignored. None by default.
    fn supports(&self, feature: Feature) -> bool {
        let _ = feature;
        false
    }

    /// Removes a step container (the build's `rm`/`forcerm`); for a COPY/ADD step, discards
    /// what is left of its layer.
    fn remove(&mut self, step: &StepContainer) -> Result<(), BackendError>;

    /// Tags `image` as `reference` (`name:tag`, normalised by the engine).
    fn tag(&mut self, image: &str, reference: &str) -> Result<(), BackendError>;

    /// How many stages may be built at once (each with its own [`Backend::fork`]). 1, the
    /// default, builds them one after the other.
    fn max_parallel_stages(&self) -> usize {
        1
    }

    /// A handle of the same build for another thread, which builds one stage while others run:
    /// it shares what the build shares (its images, cancellation, secrets, credentials) and has
    /// its own step containers, layers and views, which it cleans up when dropped as the build's
    /// end would. `None` (the default): stages are built one after the other.
    fn fork(&self) -> Option<Forked> {
        None
    }
}

/// A [`Backend::fork`]: the handle and a way to stop it from another thread.
pub struct Forked {
    /// The handle, for the thread that builds a stage.
    pub backend: Box<dyn Backend + Send>,
    /// Stops what the handle runs (a step container is killed and removed) and makes its further
    /// calls fail with [`BackendError::Cancelled`]; the rest of the build goes on.
    pub stop: Box<dyn Fn() + Send + Sync>,
}
