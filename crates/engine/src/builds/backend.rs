//! The engine's side of a build: the `build` crate's [`Backend`], run on the build's blocking thread (async
//! engine calls through the runtime's handle).
//!
//! - RUN and WORKDIR steps are ordinary containers of the parent image (as dockerd's classic builder makes
//!   them, visible in `ps -a` while they exist), their changes read from their upper dir at commit.
//! - COPY/ADD fill a layer without a container: an overlay of the parent's layers with a fresh upper dir
//!   under the build's directory, into which every source goes through the archive crate (a tar of the
//!   source, extracted in the root with its symlinks resolved inside it), then the upper dir is the layer.
//! - Commits go to the image store with the parent recorded, so later builds find them as cache.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bollard_stubs::models::{
    ContainerCreateBody, HostConfig, Mount, MountTmpfsOptions, MountTypeEnum, ResourcesUlimits,
};
use build::backend::{
    Backend, BackendError, Base, CacheSharing, Committed, CopySource, Feature, Forked, RunMount,
    RunStep, SourceKind, StepContainer,
};
use build::image_config::ImageConfig;

use crate::containers::rootfs::{ensure_dir_in, Layout};
use crate::containers::{CreateRequest, WaitCondition};
use crate::error::Error;
use crate::Engine;

/// A layer being filled by COPY/ADD.
struct CopyLayer {
    dir: PathBuf,
}

/// The engine as a build's backend.
pub(super) struct EngineBackend {
    engine: Arc<Engine>,
    rt: tokio::runtime::Handle,
    /// `DATA_ROOT/build/<id>`.
    work: PathBuf,
    copies: HashMap<String, CopyLayer>,
    /// Read-only views of images (for `COPY --from`), unmounted when the build ends.
    views: Vec<PathBuf>,
    /// Numbers the paths under `work`, shared by the build's forks.
    seq: Arc<AtomicUsize>,
    /// The build's cancellation; for a fork, its own, which the build's cancels too.
    cancel: super::BuildCancel,
    /// A fork (one stage of the build, [`Backend::fork`]), not the build's own backend.
    is_fork: bool,
    /// How many stages may be built at once.
    stages_at_once: usize,
    /// Step containers made and not yet removed: a cancelled build removes them all.
    steps: Vec<String>,
    /// The build's ID (its work directory's name), as it holds images.
    id: String,
    /// The images this build holds in use ([`super::Running::hold`]).
    held: std::collections::HashSet<String>,
    /// What `RUN --mount=type=secret` looks up.
    secrets: super::BuildSecrets,
    /// The tmpfs holding the secret files of the build's steps (`<work>/secrets`), once one needs it;
    /// shared by the build's forks, unmounted by the build's own backend.
    secret_dir: Arc<Mutex<Option<PathBuf>>>,
    /// Step container → the targets of its `RUN --mount`s, whose mountpoints the runtime made in its
    /// upper dir: those the parent image lacks are taken out before the commit.
    targets: HashMap<String, Vec<String>>,
    /// Step container → its secret files on the tmpfs, removed with the container (a long build's steps
    /// would fill the tmpfs otherwise).
    secret_files: HashMap<String, Vec<PathBuf>>,
    /// The credentials of the build's pulls (`X-Registry-Config`).
    auths: super::RegistryAuths,
    /// Step container → the cache mounts it uses ([`super::Running::claim_cache`]), given back when its
    /// process ends.
    cache_claims: HashMap<String, Vec<CacheClaim>>,
}

/// A cache mount a step uses: the cache directory's name and whether the use is exclusive.
struct CacheClaim {
    name: String,
    locked: bool,
}

/// What a RUN's `--mount`s give its step container.
#[derive(Default)]
struct StepMounts {
    /// The container's mounts.
    mounts: Vec<Mount>,
    /// `NAME=value` of `type=secret,env=NAME`: for the process only.
    env: Vec<String>,
    /// Every mount's target in the container.
    targets: Vec<String>,
    /// The secret files written for the step.
    files: Vec<PathBuf>,
    /// The cache mounts it uses.
    claims: Vec<CacheClaim>,
}

fn other(e: impl std::fmt::Display) -> BackendError {
    BackendError::Other(e.to_string())
}

impl EngineBackend {
    pub(super) fn new(
        engine: Arc<Engine>,
        rt: tokio::runtime::Handle,
        work: PathBuf,
        id: String,
        cancel: super::BuildCancel,
        secrets: super::BuildSecrets,
    ) -> Self {
        EngineBackend {
            engine,
            rt,
            work,
            copies: HashMap::new(),
            views: Vec::new(),
            seq: Arc::new(AtomicUsize::new(0)),
            cancel,
            is_fork: false,
            stages_at_once: stages_at_once(),
            steps: Vec::new(),
            id,
            held: std::collections::HashSet::new(),
            secrets,
            secret_dir: Arc::new(Mutex::new(None)),
            targets: HashMap::new(),
            secret_files: HashMap::new(),
            auths: super::RegistryAuths::default(),
            cache_claims: HashMap::new(),
        }
    }

    /// The credentials the build's pulls use (`X-Registry-Config`).
    pub(super) fn with_registry_auths(mut self, auths: super::RegistryAuths) -> Self {
        self.auths = auths;
        self
    }

    /// Holds `image` in use until the build ends (see [`super::Running::hold`]: call with `image_use` held).
    fn hold(&mut self, image: &str) {
        if self.held.insert(image.to_owned()) {
            self.engine.builds.hold(image, &self.id);
        }
    }

    /// Fails once the build is cancelled: every step begins with it.
    fn check(&self) -> Result<(), BackendError> {
        if self.cancel.is_cancelled() {
            Err(BackendError::Cancelled)
        } else {
            Ok(())
        }
    }

    /// Removes a step container (killing it if it runs), for a cancelled build.
    fn discard(&mut self, id: &str) {
        self.steps.retain(|s| s != id);
        self.forget(id);
        let engine = Arc::clone(&self.engine);
        let owned = id.to_owned();
        match self
            .rt
            .block_on(async move { engine.remove_container(&owned, true, true).await })
        {
            Ok(()) => tracing::info!(container = %id, "build cancelled: step container removed"),
            Err(crate::error::Error::NotFound(_)) => {}
            Err(e) => {
                tracing::warn!(container = %id, error = %e, "build cancelled: removing a step container")
            }
        }
    }

    /// Unmounts the image views and removes what is left of COPY layers; after a cancel, the step
    /// containers left too (a failed step's container stays otherwise, as dockerd leaves it without
    /// `--force-rm`).
    pub(super) fn release(&mut self) {
        if self.cancel.is_cancelled() {
            for id in std::mem::take(&mut self.steps) {
                self.discard(&id);
            }
        }
        for v in self.views.drain(..) {
            unmount(&v);
        }
        for (_, c) in self.copies.drain() {
            unmount(&Layout::new(&c.dir).merged);
        }
        // Step containers left behind (a failed step's) keep no secret variables for a later start.
        for id in self.steps.clone() {
            self.forget(&id);
        }
        // The secrets go with the build, not with the deletion of its directory later (its forks have
        // ended by then).
        if !self.is_fork {
            if let Some(dir) = super::lock(&self.secret_dir).take() {
                unmount(&dir);
            }
        }
    }

    /// Gives back the cache mounts step container `id` uses.
    fn unclaim(&mut self, id: &str) {
        for c in self.cache_claims.remove(id).unwrap_or_default() {
            self.engine.builds.unclaim_cache(&c.name, c.locked);
        }
    }

    /// Drops what the build keeps for step container `id`.
    fn forget(&mut self, id: &str) {
        self.unclaim(id);
        self.targets.remove(id);
        self.engine.builds.forget_secret_env(id);
        remove_files(self.secret_files.remove(id).unwrap_or_default());
    }

    fn next(&mut self, what: &str) -> PathBuf {
        self.work.join(format!("{what}-{}", self.next_seq()))
    }

    fn next_seq(&self) -> usize {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn base(&self, img: &image::Image) -> Result<Base, BackendError> {
        Ok(Base {
            id: img.id.to_string(),
            config: convert(&img.config)?,
        })
    }

    fn lowers(&mut self, parent: Option<&str>) -> Result<Vec<PathBuf>, BackendError> {
        match parent {
            Some(p) => {
                let img = self.engine.images.get(p).map_err(other)?;
                Ok(self.engine.images.layer_dirs(&img))
            }
            None => {
                let empty = self.next("scratch");
                std::fs::create_dir_all(&empty).map_err(other)?;
                Ok(vec![empty])
            }
        }
    }

    /// The upper dir holding a step's changes.
    fn upper(&self, step: &StepContainer) -> PathBuf {
        match self.copies.get(&step.id) {
            Some(c) => Layout::new(&c.dir).upper,
            None => Layout::new(&self.engine.containers.dir(&step.id)).upper,
        }
    }
}

impl EngineBackend {
    /// `RUN --mount`s as the step container's mounts: caches kept under `DATA_ROOT/build-cache`, tmpfs,
    /// binds of the context or of an image (read-only, or a throw-away copy when the step may write), and
    /// secrets (a file on the build's tmpfs, bound read-only, and/or a variable of the process).
    fn run_mounts(&mut self, mounts: &[RunMount]) -> Result<StepMounts, BackendError> {
        let mut out = StepMounts::default();
        match self.add_run_mounts(mounts, &mut out) {
            Ok(()) => Ok(out),
            Err(e) => {
                for c in out.claims {
                    self.engine.builds.unclaim_cache(&c.name, c.locked);
                }
                remove_files(out.files);
                Err(e)
            }
        }
    }

    fn add_run_mounts(
        &mut self,
        mounts: &[RunMount],
        out: &mut StepMounts,
    ) -> Result<(), BackendError> {
        let bind = |source: &Path, target: &str, read_only: bool| Mount {
            typ: Some(MountTypeEnum::BIND),
            source: Some(source.display().to_string()),
            target: Some(target.to_owned()),
            read_only: Some(read_only),
            ..Mount::default()
        };
        for m in mounts {
            match m {
                RunMount::Bind {
                    source,
                    target,
                    read_only,
                } => {
                    if *read_only {
                        out.mounts.push(bind(source, target, true));
                    } else {
                        // Writes must not reach the context: the step gets a copy.
                        let copy = self.next("bind");
                        copy_tree(source, &copy)?;
                        out.mounts.push(bind(&copy, target, false));
                    }
                    out.targets.push(target.clone());
                }
                RunMount::Cache {
                    id,
                    target,
                    sharing,
                    read_only,
                    mode,
                    uid,
                    gid,
                    seed,
                } => {
                    // A cache based on a stage or image is a cache of its own (BuildKit's keying).
                    let dir = match seed {
                        Some(s) => cache_dir(
                            &self.engine.config.data_root,
                            &format!("{id}\0from={}", s.key),
                        ),
                        None => cache_dir(&self.engine.config.data_root, id),
                    };
                    // In use from now on: a prune leaves it alone (and, having decided before, has
                    // removed it already, so it is made again).
                    let name = dir
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or_default()
                        .to_owned();
                    self.engine.builds.hold_cache(&name, &self.id);
                    let (uid, gid) = self.host_ids(*uid, *gid);
                    let seed = seed.as_ref().map(|s| &*s.source);
                    // The same cache mounted twice by one step is one use of it (a second
                    // `sharing=locked` claim would wait for the first forever).
                    let again = out.claims.iter().any(|c| c.name == name);
                    let claimed = again
                        || self
                            .engine
                            .builds
                            .claim_cache(&name, *sharing, &self.cancel)?;
                    let dir = if again {
                        dir
                    } else if claimed {
                        out.claims.push(CacheClaim {
                            name,
                            locked: *sharing == CacheSharing::Locked,
                        });
                        if !dir.exists() {
                            make_cache_dir(&dir, *mode, uid, gid, seed)?;
                        }
                        dir
                    } else {
                        // `sharing=private` while another step uses it: an instance of its own, which
                        // goes with the build's directory.
                        let fresh = self.next("private-cache");
                        make_cache_dir(&fresh, *mode, uid, gid, seed)?;
                        fresh
                    };
                    out.mounts.push(bind(&dir, target, *read_only));
                    out.targets.push(target.clone());
                }
                RunMount::Tmpfs { target, size } => {
                    out.mounts.push(Mount {
                        typ: Some(MountTypeEnum::TMPFS),
                        target: Some(target.clone()),
                        tmpfs_options: Some(MountTmpfsOptions {
                            size_bytes: size.map(|s| s as i64),
                            ..MountTmpfsOptions::default()
                        }),
                        ..Mount::default()
                    });
                    out.targets.push(target.clone());
                }
                RunMount::Secret {
                    id,
                    target,
                    env,
                    required,
                    mode,
                    uid,
                    gid,
                } => {
                    // BuildKit's wording, for a missing secret and for a lookup that failed.
                    let value = match self.secrets.get(id) {
                        Ok(Some(v)) => v,
                        Ok(None) if *required => {
                            return Err(other(format!("secret {id}: not found")))
                        }
                        // Not required: the step runs without it.
                        Ok(None) => continue,
                        Err(e) => return Err(other(format!("secret {id}: {e}"))),
                    };
                    if let Some(name) = env {
                        out.env.push(secret_env(id, name, &value)?);
                    }
                    if let Some(target) = target {
                        let file = self.secret_file(id, &value, *mode, *uid, *gid)?;
                        out.files.push(file.clone());
                        out.mounts.push(bind(&file, target, true));
                        out.targets.push(target.clone());
                    }
                }
            }
        }
        Ok(())
    }

    /// Container ids `uid`/`gid` as the host stores them (shifted under `--userns-remap`).
    fn host_ids(&self, uid: u32, gid: u32) -> (u32, u32) {
        match self.engine.id_map() {
            Some(m) => (
                m.uid_to_host(uid.into()).unwrap_or(uid),
                m.gid_to_host(gid.into()).unwrap_or(gid),
            ),
            None => (uid, gid),
        }
    }

    /// The build's tmpfs for secret files, mounted at the first secret: secrets are never written to a
    /// disk. Only root may enter it (under `--userns-remap`, also the remapped root's group, which binds
    /// the files into the container).
    fn secrets_tmpfs(&mut self) -> Result<PathBuf, BackendError> {
        let mut shared = super::lock(&self.secret_dir);
        if let Some(dir) = &*shared {
            return Ok(dir.clone());
        }
        use rustix::mount::MountFlags;
        let dir = self.work.join("secrets");
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            other(format!(
                "{what} the build's secrets tmpfs {}: {e}",
                dir.display()
            ))
        };
        std::fs::create_dir_all(&dir).map_err(|e| fail("creating", &e))?;
        let remapped = self.engine.id_map().map(archive::IdMap::root);
        let mode = if remapped.is_some() { "0710" } else { "0700" };
        // BuildKit takes secrets of up to 500 KiB each; a build's all fit in this many.
        let data = std::ffi::CString::new(format!("mode={mode},size=16m"))
            .map_err(|e| fail("mounting", &e))?;
        rustix::mount::mount(
            "tmpfs",
            &dir,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            data.as_c_str(),
        )
        .map_err(|e| fail("mounting", &e))?;
        // Recorded at once, so that whatever fails next, the build's end unmounts it.
        *shared = Some(dir.clone());
        if let Some((_, gid)) = remapped {
            rustix::fs::chown(&dir, None, Some(rustix::fs::Gid::from_raw(gid)))
                .map_err(|e| fail("giving the remapped root", &e))?;
        }
        Ok(dir)
    }

    /// Writes the secret `id` to a new file of the build's tmpfs with the mount's mode and owner.
    fn secret_file(
        &mut self,
        id: &str,
        value: &[u8],
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> Result<PathBuf, BackendError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = self.secrets_tmpfs()?;
        let path = dir.join(self.next_seq().to_string());
        let fail = |e: std::io::Error| other(format!("secret {id}: writing it: {e}"));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .map_err(fail)?;
        f.write_all(value).map_err(fail)?;
        let (uid, gid) = self.host_ids(uid, gid);
        rustix::fs::fchown(
            &f,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(|e| fail(e.into()))?;
        // After the chown, which clears set-id bits; the umask played no part either.
        f.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
            .map_err(fail)?;
        Ok(path)
    }
}

/// Removes secret files of the build's tmpfs.
fn remove_files(files: Vec<PathBuf>) {
    for f in files {
        if let Err(e) = std::fs::remove_file(&f) {
            tracing::warn!(path = %f.display(), error = %e, "removing a build secret's file");
        }
    }
}

/// `NAME=value` for `RUN --mount=type=secret,env=NAME`: the value as text (an environment holds no
/// NUL byte; other bytes that are not UTF-8 are replaced, as the API's `Env` is text).
fn secret_env(id: &str, name: &str, value: &[u8]) -> Result<String, BackendError> {
    if name.is_empty() || name.contains(['=', '\0']) {
        return Err(other(format!(
            "secret {id}: invalid environment variable name {name:?}"
        )));
    }
    if value.contains(&0) {
        return Err(other(format!(
            "secret {id}: a value with a NUL byte cannot be an environment variable"
        )));
    }
    Ok(format!("{name}={}", String::from_utf8_lossy(value)))
}

/// Takes out of `upper` (a step's changes) the mountpoints the runtime made for its `RUN --mount`s at
/// `targets`: each target and each of its parents that the step's parent image (at `parent`, its file
/// system) lacks, while it is an empty file or directory, so the layer keeps no trace of the mounts
/// (BuildKit removes its mount stubs likewise). What the step itself wrote there stays. A symlink on the
/// way stops the walk: nothing outside `upper` is touched.
fn remove_mount_stubs(upper: &Path, parent: &Path, targets: &[String]) -> Result<(), BackendError> {
    let parent_fd = open_dir(parent)?;
    for target in targets {
        let rel: Vec<&str> = target.split('/').filter(|c| !c.is_empty()).collect();
        // The deepest path the upper dir has without a symlink or file on the way.
        let mut have = 0;
        for i in 1..=rel.len() {
            let p = upper.join(rel[..i].join("/"));
            match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_dir() => have = i,
                Ok(m) if m.is_file() && i == rel.len() => have = i,
                _ => break,
            }
        }
        for i in (1..=have).rev() {
            let path = rel[..i].join("/");
            if exists_in(&parent_fd, &path) {
                break;
            }
            let p = upper.join(&path);
            let removed = match std::fs::symlink_metadata(&p) {
                Ok(m) if m.is_file() && m.len() == 0 => std::fs::remove_file(&p),
                // Fails when not empty: the step's own files stay, and so do their parents.
                Ok(m) if m.is_dir() => std::fs::remove_dir(&p),
                _ => break,
            };
            match removed {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ENOTEMPTY) => break,
                Err(e) => return Err(other(format!("removing the mountpoint /{path}: {e}"))),
            }
        }
    }
    Ok(())
}

/// Whether `path` exists in the tree at `root` (a symlink counts as itself), its symlinks on the way
/// resolved inside it.
fn exists_in(root: &RootFd, path: &str) -> bool {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    rustix::fs::openat2(
        root.as_fd_ref(),
        path,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .is_ok()
}

/// The directory of the cache mount `id`, kept across builds (`POST /build/prune` empties them).
pub(super) fn cache_dir(data_root: &Path, id: &str) -> PathBuf {
    let digest = image::Digest::of(id.as_bytes());
    data_root.join("build-cache").join(&digest.hex()[..32])
}

/// Makes a cache directory with its first owner and mode, and a copy of `seed`'s contents if given,
/// atomically (a rename into place).
fn make_cache_dir(
    dir: &Path,
    mode: u32,
    uid: u32,
    gid: u32,
    seed: Option<&Path>,
) -> Result<(), BackendError> {
    use std::os::unix::fs::PermissionsExt;
    let parent = dir.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(parent).map_err(other)?;
    let mut r = [0u8; 8];
    crate::containers::fill_random(&mut r).map_err(other)?;
    let tmp = parent.join(format!(
        ".new-{}",
        r.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ));
    std::fs::create_dir(&tmp).map_err(other)?;
    if let Some(seed) = seed {
        if let Err(e) = copy_tree(seed, &tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(other)?;
    rustix::fs::chown(
        &tmp,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
    )
    .map_err(other)?;
    match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(()),
        // Another build made it meanwhile: theirs stands.
        Err(_) if dir.is_dir() => std::fs::remove_dir(&tmp).map_err(other),
        Err(e) => Err(other(e)),
    }
}

/// Copies the tree `src` (a file or a directory) to the new path `dest`, through the archive crate.
fn copy_tree(src: &Path, dest: &Path) -> Result<(), BackendError> {
    std::fs::create_dir_all(dest).map_err(other)?;
    let root = open_dir(dest)?;
    let mut opts = archive::Options::container("/");
    opts.owner = archive::Owner::FromArchive;
    if src.is_dir() {
        let s = open_dir(src)?;
        stream(root, "/", &opts, move |w| w.append_dir(&s.0, b"", None))
    } else {
        let parent = open_dir(src.parent().unwrap_or(Path::new("/")))?;
        let leaf = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        stream(root, "/", &opts, move |w| {
            w.append_at(&parent.0, leaf.as_bytes(), leaf.as_bytes())
        })
    }
}

impl Backend for EngineBackend {
    fn supports(&self, feature: Feature) -> bool {
        matches!(
            feature,
            Feature::RunMounts | Feature::CopyExclude | Feature::CacheFrom | Feature::Download
        )
    }

    fn download(&mut self, url: &str, to: &Path) -> Result<(), BackendError> {
        self.check()?;
        super::remote::download(&self.engine.registry, &self.rt, &self.cancel, url, to)
    }

    fn image(
        &mut self,
        name: &str,
        platform: Option<&str>,
        pull: bool,
    ) -> Result<Base, BackendError> {
        self.check()?;
        let found = self.engine.images.get(name);
        let missing = matches!(found, Err(image::Error::NotFound(_)));
        if pull || missing {
            // As dockerd's classic builder: a missing base image is pulled (with the credentials the
            // build's X-Registry-Config has for its registry), and `--pull` pulls even a present one.
            let request = crate::distribution::PullRequest {
                image: name.to_owned(),
                tag: None,
                platform: platform.map(str::to_owned),
                auth: self.auths.header_for(name),
                all_tags: false,
            };
            let (tx, _progress) = tokio::sync::mpsc::unbounded_channel();
            let engine = Arc::clone(&self.engine);
            if let Err(e) = self.rt.block_on(engine.pull_image(request, tx)) {
                return Err(if missing {
                    BackendError::NoSuchImage(e.to_string())
                } else {
                    other(e)
                });
            }
        }
        let engine = Arc::clone(&self.engine);
        let _using = self.rt.block_on(engine.image_use.read());
        let img = self.engine.images.get(name).map_err(other)?;
        self.hold(&img.id.to_string());
        self.base(&img)
    }

    fn find_image(&mut self, name: &str) -> Result<Option<Base>, BackendError> {
        self.check()?;
        let engine = Arc::clone(&self.engine);
        let _using = self.rt.block_on(engine.image_use.read());
        match self.engine.images.get(name) {
            Ok(img) => {
                self.hold(&img.id.to_string());
                self.base(&img).map(Some)
            }
            Err(image::Error::NotFound(_) | image::Error::InvalidReference(_)) => {
                tracing::info!(image = %name, "--cache-from: no such image, skipped");
                Ok(None)
            }
            Err(e) => Err(other(e)),
        }
    }

    fn children(&mut self, parent: Option<&str>) -> Result<Vec<Base>, BackendError> {
        self.check()?;
        let parent = match parent {
            Some(p) => Some(self.engine.images.get(p).map_err(other)?.id),
            None => None,
        };
        // A child may become the build's next image (a cache hit): held from its listing on.
        let engine = Arc::clone(&self.engine);
        let _using = self.rt.block_on(engine.image_use.read());
        let all = self.engine.images.list().map_err(other)?;
        let children: Vec<&image::Image> = all.iter().filter(|i| i.parent == parent).collect();
        for c in &children {
            self.hold(&c.id.to_string());
        }
        children.into_iter().map(|i| self.base(i)).collect()
    }

    fn mount_image(&mut self, image: Option<&str>) -> Result<PathBuf, BackendError> {
        self.check()?;
        let lowers = self.lowers(image)?;
        if let [only] = &lowers[..] {
            return Ok(only.clone());
        }
        // Several layers: a read-only overlay of them (no upper dir).
        let view = self.next("view");
        std::fs::create_dir_all(&view).map_err(other)?;
        let data: Vec<String> = lowers.iter().map(|p| p.display().to_string()).collect();
        let data = std::ffi::CString::new(format!("lowerdir={}", data.join(":"))).map_err(other)?;
        rustix::mount::mount(
            "overlay",
            &view,
            "overlay",
            rustix::mount::MountFlags::RDONLY,
            data.as_c_str(),
        )
        .map_err(|e| other(format!("mounting a view of {image:?}: {e}")))?;
        self.views.push(view.clone());
        Ok(view)
    }

    fn create(
        &mut self,
        parent: Option<&str>,
        run: &RunStep,
    ) -> Result<StepContainer, BackendError> {
        self.check()?;
        let Some(parent) = parent else {
            return Err(other(
                "OCI runtime create failed: a stage FROM scratch has no file system to run a command in",
            ));
        };
        let c = &run.config;
        let h = &run.host;
        let some = |s: &str| Some(s.to_owned()).filter(|s| !s.is_empty());
        let StepMounts {
            mounts,
            env: secret_env,
            targets,
            files,
            claims,
        } = self.run_mounts(&run.mounts)?;
        let body = ContainerCreateBody {
            image: Some(parent.to_owned()),
            cmd: c.cmd.clone(),
            // The image's entrypoint is not a RUN's: `[""]` resets it, as dockerd's builder does.
            entrypoint: Some(vec![String::new()]),
            env: c.env.clone(),
            user: some(&c.user),
            working_dir: some(&c.working_dir),
            labels: None,
            host_config: Some(HostConfig {
                network_mode: some(&h.network_mode),
                extra_hosts: Some(h.extra_hosts.clone()).filter(|e| !e.is_empty()),
                memory: Some(h.memory).filter(|m| *m != 0),
                memory_swap: Some(h.memory_swap).filter(|m| *m != 0),
                cpu_shares: Some(h.cpu_shares).filter(|m| *m != 0),
                cpuset_cpus: some(&h.cpuset_cpus),
                cpu_period: Some(h.cpu_period).filter(|m| *m != 0),
                cpu_quota: Some(h.cpu_quota).filter(|m| *m != 0),
                shm_size: Some(h.shm_size).filter(|m| *m != 0),
                cpuset_mems: some(&h.cpuset_mems),
                cgroup_parent: some(&h.cgroup_parent),
                ulimits: Some(
                    h.ulimits
                        .iter()
                        .map(|u| ResourcesUlimits {
                            name: Some(u.name.clone()),
                            soft: Some(u.soft),
                            hard: Some(u.hard),
                        })
                        .collect::<Vec<_>>(),
                )
                .filter(|u| !u.is_empty()),
                mounts: Some(mounts).filter(|m| !m.is_empty()),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let engine = Arc::clone(&self.engine);
        let made = match self.rt.block_on(engine.create_container(CreateRequest {
            name: None,
            body,
            read_only_non_recursive: false,
            platform: None,
        })) {
            Ok(made) => made,
            Err(e) => {
                remove_files(files);
                for c in claims {
                    self.engine.builds.unclaim_cache(&c.name, c.locked);
                }
                return Err(other(e));
            }
        };
        self.steps.push(made.id.clone());
        if !claims.is_empty() {
            self.cache_claims.insert(made.id.clone(), claims);
        }
        if !files.is_empty() {
            self.secret_files.insert(made.id.clone(), files);
        }
        if !targets.is_empty() {
            self.targets.insert(made.id.clone(), targets);
        }
        if !secret_env.is_empty() {
            self.engine.builds.set_secret_env(&made.id, secret_env);
        }
        Ok(StepContainer { id: made.id })
    }

    fn start(&mut self, step: &StepContainer, out: &mut dyn Write) -> Result<i64, BackendError> {
        self.check()?;
        let engine = Arc::clone(&self.engine);
        let id = step.id.clone();
        let cancel = self.cancel.clone();
        // The output goes through a channel to this (blocking) thread: the sink may block, which no task
        // of the runtime may do.
        let (frames, output) = std::sync::mpsc::channel::<bytes::Bytes>();
        let task = self.rt.spawn(async move {
            // Subscribed before the start, so no output falls between.
            let target = engine.attach_target(&id).await?;
            let exited = engine.wait_container(&id, WaitCondition::NextExit).await?;
            engine.start_container(&id).await?;
            let mut sub = target.subscription;
            let run = async move {
                loop {
                    tokio::select! {
                        frame = sub.output.recv() => match frame {
                            Ok(f) => {
                                let _ = frames.send(f.data);
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                        },
                        changed = sub.closed.changed() => {
                            if changed.is_err() || *sub.closed.borrow() {
                                // What was published before the close.
                                while let Ok(f) = sub.output.try_recv() {
                                    let _ = frames.send(f.data);
                                }
                                break;
                            }
                        }
                    }
                }
                drop(frames);
                exited.await
            };
            // A cancel stops the wait (and drops `frames`, which ends the output loop below); the
            // container is killed and removed by the build thread.
            tokio::select! {
                code = run => code.map(Some),
                () = cancel.cancelled() => Ok(None),
            }
        });
        for data in output {
            // The client may be gone (a cancel follows): the output is dropped, the wait goes on.
            let _ = out.write_all(&data);
        }
        let code = self.rt.block_on(task);
        // The step has ended: its cache mounts are free for others (`sharing=locked`).
        self.unclaim(&step.id);
        let code = code.map_err(|e| other(format!("the step's container: {e}")))?;
        match code {
            Ok(Some(code)) => Ok(code),
            Ok(None) => {
                self.discard(&step.id);
                Err(BackendError::Cancelled)
            }
            Err(_) if self.cancel.is_cancelled() => {
                self.discard(&step.id);
                Err(BackendError::Cancelled)
            }
            Err(e) => Err(other(e)),
        }
    }

    fn mkdir(&mut self, step: &StepContainer, path: &str) -> Result<(), BackendError> {
        self.check()?;
        let c = self.engine.containers.resolve(&step.id).map_err(other)?;
        let img = self.engine.images.get(&c.image_id).map_err(other)?;
        let layout = Layout::new(&self.engine.containers.dir(&c.id));
        layout
            .acquire(&self.engine.images.layer_dirs(&img))
            .map_err(other)?;
        let (uid, gid) = self.engine.id_map().map_or((0, 0), archive::IdMap::root);
        let made = ensure_dir_in(&layout.merged, path, uid, gid);
        // A step container never started: nothing else needs its rootfs.
        layout.release(|| false);
        made.map_err(other)
    }

    fn copy(
        &mut self,
        parent: Option<&str>,
        copies: &[CopySource],
    ) -> Result<StepContainer, BackendError> {
        self.check()?;
        let lowers = self.lowers(parent)?;
        let dir = self.next("copy");
        let layout = Layout::new(&dir);
        layout.mount(&lowers).map_err(other)?;
        let id = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.copies
            .insert(id.clone(), CopyLayer { dir: dir.clone() });
        let id_map = self.engine.id_map();
        let copied = copies
            .iter()
            .try_for_each(|c| copy_one(&layout.merged, c, id_map));
        unmount(&layout.merged);
        copied?;
        Ok(StepContainer { id })
    }

    fn commit(
        &mut self,
        parent: Option<&str>,
        step: Option<&StepContainer>,
        config: &ImageConfig,
    ) -> Result<Committed, BackendError> {
        self.check()?;
        let mut cfg: image::ImageConfig = serde_json::to_value(config)
            .and_then(serde_json::from_value)
            .map_err(|e| other(format!("the step's image config: {e}")))?;
        cfg.docker_version = Some(crate::VERSION.to_owned());
        let is_container = step.is_some_and(|s| !self.copies.contains_key(&s.id));
        if let (true, Some(s)) = (is_container, step) {
            cfg.container = Some(s.id.clone());
            if let Some(cc) = cfg.container_config.as_mut() {
                cc.hostname = Some(s.id.chars().take(12).collect());
            }
        }
        if step.is_none() {
            if let Some(h) = cfg.history.last_mut() {
                h.empty_layer = true;
            }
            // dockerd runs config-only steps in a container it never starts; Berth makes none, but the
            // image records a container ID all the same, and the build prints it.
            let mut id = [0u8; 32];
            crate::containers::fill_random(&mut id).map_err(other)?;
            let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(cc) = cfg.container_config.as_mut() {
                cc.hostname = Some(id[..12].to_owned());
            }
            cfg.container = Some(id);
        }
        let parent_id = match parent {
            Some(p) => Some(self.engine.images.get(p).map_err(other)?.id),
            None => None,
        };
        if let Some(targets) = step.and_then(|s| self.targets.remove(&s.id)) {
            if let Some(s) = step {
                let root = self.mount_image(parent)?;
                let removed = remove_mount_stubs(&self.upper(s), &root, &targets);
                // A view of several layers is needed no longer.
                if self.views.last() == Some(&root) {
                    self.views.pop();
                    unmount(&root);
                }
                removed?;
            }
        }
        let request = image::CommitRequest {
            parent: parent_id,
            config: cfg,
            tags: Vec::new(),
            keep_empty_layer: false,
        };
        let store = Arc::clone(&self.engine.images);
        // No removal may take the new image between its commit and its hold.
        let engine = Arc::clone(&self.engine);
        let _using = self.rt.block_on(engine.image_use.read());
        let img = match step {
            None => store.commit(request, None).map_err(other)?,
            Some(s) => {
                crate::containers::commit_upper(&store, request, &self.upper(s)).map_err(other)?
            }
        };
        self.hold(&img.id.to_string());
        Ok(Committed {
            image: img.id.to_string(),
            config: convert(&img.config)?,
        })
    }

    fn adopt(&mut self, parent: Option<&str>, image: &str) -> Result<(), BackendError> {
        self.check()?;
        let engine = Arc::clone(&self.engine);
        let _using = self.rt.block_on(engine.image_use.read());
        let img = self.engine.images.get(image).map_err(other)?;
        // As dockerd: only a parent to record makes a change (a first step FROM scratch has none).
        if let Some(p) = parent {
            let parent = self.engine.images.get(p).map_err(other)?;
            self.engine
                .images
                .set_parent(&img.id, &parent.id)
                .map_err(other)?;
        }
        self.hold(&img.id.to_string());
        Ok(())
    }

    fn restore(
        &mut self,
        parent: Option<&str>,
        config: &ImageConfig,
        source: &str,
    ) -> Result<Committed, BackendError> {
        self.check()?;
        let mut cfg: image::ImageConfig = serde_json::to_value(config)
            .and_then(serde_json::from_value)
            .map_err(|e| other(format!("the cached step's image config: {e}")))?;
        cfg.docker_version = Some(crate::VERSION.to_owned());
        let engine = Arc::clone(&self.engine);
        let _using = self.rt.block_on(engine.image_use.read());
        let parent_id = match parent {
            Some(p) => Some(self.engine.images.get(p).map_err(other)?.id),
            None => None,
        };
        let source_id = self.engine.images.get(source).map_err(other)?.id;
        let img = self
            .engine
            .images
            .commit_from(parent_id.as_ref(), cfg, &source_id)
            .map_err(other)?;
        self.hold(&img.id.to_string());
        Ok(Committed {
            image: img.id.to_string(),
            config: convert(&img.config)?,
        })
    }

    fn remove(&mut self, step: &StepContainer) -> Result<(), BackendError> {
        if let Some(c) = self.copies.remove(&step.id) {
            unmount(&Layout::new(&c.dir).merged);
            return std::fs::remove_dir_all(&c.dir).map_err(other);
        }
        self.forget(&step.id);
        let engine = Arc::clone(&self.engine);
        let id = step.id.clone();
        self.steps.retain(|s| *s != id);
        self.rt
            .block_on(async move { engine.remove_container(&id, true, true).await })
            .map_err(other)
    }

    fn tag(&mut self, image: &str, reference: &str) -> Result<(), BackendError> {
        self.check()?;
        let (img, r) = self.engine.images.tag(image, reference).map_err(other)?;
        self.engine.image_tagged(&img, &r.familiar());
        Ok(())
    }

    fn max_parallel_stages(&self) -> usize {
        self.stages_at_once
    }

    fn fork(&self) -> Option<Forked> {
        let own = super::BuildCancel::default();
        // The fork stops with the build; the watch ends with the fork (its drop cancels `own`).
        let (build, watch) = (self.cancel.clone(), own.clone());
        self.rt.spawn(async move {
            tokio::select! {
                () = build.cancelled() => watch.cancel(),
                () = watch.cancelled() => {}
            }
        });
        let fork = EngineBackend {
            engine: Arc::clone(&self.engine),
            rt: self.rt.clone(),
            work: self.work.clone(),
            copies: HashMap::new(),
            views: Vec::new(),
            seq: Arc::clone(&self.seq),
            cancel: own.clone(),
            is_fork: true,
            stages_at_once: self.stages_at_once,
            steps: Vec::new(),
            id: self.id.clone(),
            held: std::collections::HashSet::new(),
            secrets: self.secrets.clone(),
            secret_dir: Arc::clone(&self.secret_dir),
            targets: HashMap::new(),
            secret_files: HashMap::new(),
            auths: self.auths.clone(),
            cache_claims: HashMap::new(),
        };
        Some(Forked {
            backend: Box::new(fork),
            stop: Box::new(move || own.cancel()),
        })
    }
}

impl Drop for EngineBackend {
    // A fork is dropped by its stage's thread, however the stage ended: it cleans up as the build's end
    // does (after a stop, its step containers go too). For the build's own backend this repeats
    // `release`, which is harmless.
    fn drop(&mut self) {
        self.release();
        for id in self.cache_claims.keys().cloned().collect::<Vec<_>>() {
            self.unclaim(&id);
        }
        if self.is_fork {
            self.cancel.cancel();
        }
    }
}

/// How many stages of a build may run at once: `BERTH_BUILD_PARALLEL` in the daemon's environment (1
/// builds them one after the other), else the number of CPUs, at least 2.
fn stages_at_once() -> usize {
    match std::env::var("BERTH_BUILD_PARALLEL")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
    {
        Some(n) if n >= 1 => n,
        _ => std::thread::available_parallelism()
            .map_or(2, std::num::NonZeroUsize::get)
            .max(2),
    }
}

/// The store's image config in the build crate's form.
fn convert(c: &image::ImageConfig) -> Result<ImageConfig, BackendError> {
    serde_json::to_value(c)
        .and_then(serde_json::from_value)
        .map_err(|e| other(format!("an image config: {e}")))
}

/// Copies one source into the root `root` (an overlay being filled): a tar of the source, extracted
/// through the archive crate so that the destination's symlinks resolve inside the root.
///
/// With `id_map` (`--userns-remap`), the owners (the archive's, `--chown`'s or root) are container ids,
/// stored shifted.
fn copy_one(
    root: &Path,
    c: &CopySource,
    id_map: Option<&archive::IdMap>,
) -> Result<(), BackendError> {
    let root_fd = open_dir(root)?;
    let dest = c.dest.trim_end_matches('/');
    let (ruid, rgid) = id_map.map_or((0, 0), archive::IdMap::root);
    let mut opts = archive::Options::container(if dest.is_empty() { "/" } else { dest });
    opts.id_map = id_map.cloned();
    opts.owner = match c.owner {
        Some(o) => archive::Owner::Fixed {
            uid: o.uid,
            gid: o.gid,
        },
        None => archive::Owner::Fixed { uid: 0, gid: 0 },
    };
    opts.mode = c.mode;
    if c.extract {
        ensure_dir_in(root, &c.dest, ruid, rgid).map_err(other)?;
        let f =
            std::fs::File::open(&c.src).map_err(|e| other(format!("{}: {e}", c.src.display())))?;
        let tar = image::layer::compress::decompress_archive(std::io::BufReader::new(f))
            .map_err(|e| other(format!("{}: {e}", c.src.display())))?;
        // An archive's own owners are kept unless --chown says otherwise.
        if c.owner.is_none() {
            opts.owner = archive::Owner::FromArchive;
        }
        opts.mode = None;
        archive::extract(root_fd.as_fd_ref(), dest_or_root(dest), tar, &opts).map_err(other)?;
        return Ok(());
    }
    match c.kind {
        SourceKind::Dir => {
            ensure_dir_in(root, dest_or_root(dest), ruid, rgid).map_err(other)?;
            let src = open_dir(&c.src)?;
            let write = archive::WriteOptions {
                exclude: if c.exclude.is_empty() {
                    Vec::new()
                } else {
                    super::exclude::excluded_names(&c.src, &c.exclude)?
                },
                ..archive::WriteOptions::default()
            };
            stream_with(root_fd, dest_or_root(dest), &opts, write, move |w| {
                w.append_dir(&src.0, b"", None)
            })
        }
        SourceKind::File => {
            // Into `dest` when it names a directory (a trailing `/`, or one the image has), else as `dest`.
            let into_dir = c.dest.ends_with('/') || is_dir_in(&root_fd, dest);
            let base = c
                .src
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let (dir, name) = if into_dir {
                (dest_or_root(dest).to_owned(), base.clone())
            } else {
                match dest.rsplit_once('/') {
                    Some((d, n)) => (dest_or_root(d).to_owned(), n.to_owned()),
                    None => ("/".to_owned(), dest.to_owned()),
                }
            };
            ensure_dir_in(root, &dir, ruid, rgid).map_err(other)?;
            opts.dest_name = dir.clone();
            let parent = c.src.parent().unwrap_or(Path::new("/")).to_path_buf();
            let parent = open_dir(&parent)?;
            stream(root_fd, &dir, &opts, move |w| {
                w.append_at(&parent.0, base.as_bytes(), name.as_bytes())
            })
        }
    }
}

fn dest_or_root(d: &str) -> &str {
    if d.is_empty() {
        "/"
    } else {
        d
    }
}

/// Writes a tar with `fill` on a thread, while extracting it into `root` at `dest`.
fn stream(
    root: RootFd,
    dest: &str,
    opts: &archive::Options,
    fill: impl FnOnce(&mut archive::Writer<std::io::PipeWriter>) -> archive::Result<()> + Send + 'static,
) -> Result<(), BackendError> {
    stream_with(root, dest, opts, archive::WriteOptions::default(), fill)
}

/// [`stream`] with the writer's options (`COPY --exclude`'s names left out).
fn stream_with(
    root: RootFd,
    dest: &str,
    opts: &archive::Options,
    write: archive::WriteOptions,
    fill: impl FnOnce(&mut archive::Writer<std::io::PipeWriter>) -> archive::Result<()> + Send + 'static,
) -> Result<(), BackendError> {
    let (rx, tx) = crate::containers::layer_pipe().map_err(other)?;
    let writer = std::thread::spawn(move || {
        let mut w = archive::Writer::new(tx, write);
        fill(&mut w)?;
        w.finish().map(drop)
    });
    let extracted = archive::extract(root.as_fd_ref(), dest, rx, opts);
    let wrote = writer
        .join()
        .map_err(|_| other("the copy's writer panicked"))?;
    extracted.map_err(other)?;
    wrote.map_err(other)?;
    Ok(())
}

/// An open directory.
struct RootFd(std::os::fd::OwnedFd);

impl RootFd {
    fn as_fd_ref(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.0.as_fd()
    }
}

fn open_dir(p: &Path) -> Result<RootFd, BackendError> {
    use rustix::fs::{Mode, OFlags};
    rustix::fs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map(RootFd)
    .map_err(|e| other(format!("{}: {e}", p.display())))
}

/// Whether `path` is a directory in the tree at `root`, its symlinks resolved inside it.
fn is_dir_in(root: &RootFd, path: &str) -> bool {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    rustix::fs::openat2(
        root.as_fd_ref(),
        path.trim_start_matches('/'),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
    .is_ok()
}

/// Unmounts `p` if something is mounted there (lazily: nothing of a build holds it open).
fn unmount(p: &Path) {
    if crate::host::is_mount_point(p) {
        if let Err(e) = rustix::mount::unmount(p, rustix::mount::UnmountFlags::DETACH) {
            tracing::warn!(path = %p.display(), error = %e, "unmounting a build's mount");
        }
    }
}

/// Removes a build's directory, unmounting what is mounted below it first.
pub(super) fn clean(work: &Path) {
    unmount_below(work);
    if work.exists() {
        if let Err(e) = std::fs::remove_dir_all(work) {
            tracing::warn!(path = %work.display(), error = %e, "removing a build's files");
        }
    }
}

fn unmount_below(work: &Path) {
    if let Ok(entries) = std::fs::read_dir(work) {
        for e in entries.flatten() {
            let p = e.path();
            unmount(&p);
            unmount(&p.join("rootfs"));
        }
    }
}

/// [`clean`] off the build's response path: a build's directory can hold its whole context (a 100 MB file
/// takes ~15 ms to delete), and even finding its mounts reads the mount table (~4 ms here), none of which the
/// client need wait for. Moved into `trash` at once (same file system: a rename, which takes the mounts
/// below along), so the build leaves nothing under `build`; unmounted and deleted on a thread of its own.
/// Cleaned in place at once if it cannot be moved. The daemon's start empties `trash` after a crash, so a
/// thread cut short leaves nothing for good.
pub(super) fn clean_later(work: &Path, trash: &Path) {
    let Some(moved) = work.file_name().map(|name| trash.join(name)) else {
        return clean(work);
    };
    if std::fs::create_dir_all(trash).is_err() || std::fs::rename(work, &moved).is_err() {
        return clean(work);
    }
    let spawned = std::thread::Builder::new()
        .name("build-clean".into())
        .spawn({
            let moved = moved.clone();
            move || clean(&moved)
        });
    if spawned.is_err() {
        clean(&moved);
    }
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        Error::System(e.to_string())
    }
}
