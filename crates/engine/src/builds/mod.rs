//! `POST /build`: a Dockerfile build with the classic builder's semantics. The `build` crate parses the
//! Dockerfile and decides every step (configs, cache keys, history, output); this module gives it a
//! context on disk and runs its steps ([`backend::EngineBackend`]): step containers, layers, commits.
//!
//! Everything a build makes on disk lives under `DATA_ROOT/build/<id>/` (the extracted context, the
//! layers COPY fills, read-only views of images): removed when the build ends, and at the daemon's
//! start after a crash.

mod backend;
mod cache;
mod context;
mod exclude;
mod registry_auth;
mod remote;
mod synced;

pub use cache::BuildPruneOptions;
pub use registry_auth::RegistryAuths;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use build::dispatch::ProgressSink;

use crate::error::{Error, Result};
use crate::Engine;

/// The options of a build and the limits of its RUN containers, as the `build` crate takes them (re-exported
/// so the API needs no other crate).
pub use build::backend::{RunHost, RunUlimit};
pub use build::dispatch::BuildOptions;
/// Where a build's output goes.
pub use build::dispatch::ProgressSink as BuildProgress;
/// BuildKit's progress records, made of a build's output (for a BuildKit-mode client).
pub use session::trace::Progress;
/// A context uploaded apart for a BuildKit-mode build (`docker build - < ctx.tar`).
pub use session::Upload;

/// What `POST /build` asks for, beyond the context.
#[derive(Debug, Default, Clone)]
pub struct BuildRequest {
    /// `dockerfile`: the Dockerfile's path in the context (`Dockerfile` by default).
    pub dockerfile: String,
    /// Everything the dispatcher takes: build args, target, tags, cache, labels, limits.
    pub options: BuildOptions,
    /// `buildid`: the ID the client gave the build, by which `POST /build/cancel` names it (empty: none).
    pub build_id: String,
    /// Stops the build: the API cancels it when the client goes away.
    pub cancel: BuildCancel,
    /// The secrets `RUN --mount=type=secret` may ask for (none by default).
    pub secrets: BuildSecrets,
    /// The Dockerfile itself, when it does not come in the context (a BuildKit session sends it apart).
    pub dockerfile_text: Option<Vec<u8>>,
    /// `X-Registry-Config`: the credentials the build's pulls (a missing `FROM` image, every one with
    /// `pull`) use, by registry.
    pub registry_auths: RegistryAuths,
    /// `remote`: a URL (a tar, compressed or not, or a Dockerfile alone) or a git repository to fetch the
    /// context from, instead of the request's body (empty: none).
    pub remote: String,
}

impl BuildRequest {
    /// The Dockerfile's path in the context: `dockerfile`, or `Dockerfile` when it is empty.
    fn dockerfile_name(&self) -> String {
        if self.dockerfile.is_empty() {
            "Dockerfile".to_owned()
        } else {
            self.dockerfile.clone()
        }
    }
}

/// Looks up one build secret by ID: `Ok(None)` when the client has no such secret.
pub type SecretLookup = dyn Fn(&str) -> std::result::Result<Option<Vec<u8>>, String> + Send + Sync;

/// A build's secrets (`RUN --mount=type=secret`): asked for by ID when a step needs one (from a BuildKit
/// session of the docker CLI, or sent by `berth build --secret`), held only in memory and in the step's
/// tmpfs, never written to a layer, the image config or the history.
#[derive(Clone, Default)]
pub struct BuildSecrets(Option<Arc<SecretLookup>>);

impl BuildSecrets {
    /// Secrets looked up by `lookup` (it may block: the build calls it on its own thread).
    pub fn new(lookup: Arc<SecretLookup>) -> Self {
        BuildSecrets(Some(lookup))
    }

    /// Secrets given up front, by ID.
    pub fn from_map(map: HashMap<String, Vec<u8>>) -> Self {
        BuildSecrets(Some(Arc::new(move |id: &str| Ok(map.get(id).cloned()))))
    }

    /// The secret `id`: `Ok(None)` when the build has none by that ID (or no secrets at all).
    pub fn get(&self, id: &str) -> std::result::Result<Option<Vec<u8>>, String> {
        match &self.0 {
            Some(lookup) => lookup(id),
            None => Ok(None),
        }
    }
}

impl std::fmt::Debug for BuildSecrets {
    // Never the values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "BuildSecrets(..)"
        } else {
            "BuildSecrets(none)"
        })
    }
}

/// A build's cancellation, by `POST /build/cancel` or by the client going away: the build stops before its
/// next step, a running step container is killed and removed, and what the build made on disk goes, as
/// after a failure.
#[derive(Debug, Clone)]
pub struct BuildCancel(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for BuildCancel {
    fn default() -> Self {
        BuildCancel(Arc::new(tokio::sync::watch::Sender::new(false)))
    }
}

impl BuildCancel {
    /// Cancels the build (again is harmless).
    pub fn cancel(&self) {
        self.0.send_replace(true);
    }

    /// Whether the build was cancelled.
    pub fn is_cancelled(&self) -> bool {
        *self.0.borrow()
    }

    /// Completes once the build is cancelled.
    pub async fn cancelled(&self) {
        let mut rx = self.0.subscribe();
        // The sender lives as long as `self`: the wait ends only by a cancel.
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// The builds under way: those with a client-given ID (for `POST /build/cancel`), and the images builds
/// hold in use (their bases, cache hits and the steps they made), which no image removal may take while
/// the build goes on, as no removal takes an image a container uses.
#[derive(Default)]
pub(crate) struct Running {
    by_id: Mutex<HashMap<String, Vec<BuildCancel>>>,
    /// Image ID → the builds holding it (by their work IDs).
    held: Mutex<HashMap<String, Vec<String>>>,
    /// Cache-mount directory (its name under `build-cache`) → the builds using it. A prune holds the lock
    /// while it decides and removes, so it never takes a cache a build has started to use.
    caches: Arc<Mutex<HashMap<String, Vec<String>>>>,
    /// Big context files' tarsums, for the next build of the same files.
    memo: context::SumMemo,
    /// Big context files themselves, for the next build to link rather than write.
    kept: context::Kept,
    /// BuildKit-mode contexts, for the next build of the same directory to fetch only what changed.
    synced: Arc<synced::SyncedContexts>,
    /// Step container ID → the `RUN --mount=type=secret,env=` variables its process gets. Held in memory
    /// only, and added at its start to the OCI spec alone (in the exec root, as BuildKit's runc bundle
    /// holds them): never in the container's record, so neither on disk nor in `inspect`.
    secret_env: Mutex<HashMap<String, Vec<String>>>,
    /// Cache-mount directory (its name) → the steps using it now, for `RUN --mount=type=cache,sharing=`.
    cache_use: Mutex<HashMap<String, CacheUse>>,
    /// Signalled when a cache mount's use ends.
    cache_freed: std::sync::Condvar,
}

/// The steps using one cache mount.
#[derive(Default)]
struct CacheUse {
    users: usize,
    /// One `sharing=locked` step has it to itself.
    locked: bool,
}

/// Locks a map that holds no invariant a panicking holder could break.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<BuildCancel>>> {
        lock(&self.by_id)
    }

    /// Marks `image` as used by the build `build`. Call with `Engine::image_use` held for reading, from
    /// before the image was found or made, so no removal slips in between.
    pub(crate) fn hold(&self, image: &str, build: &str) {
        lock(&self.held)
            .entry(image.to_owned())
            .or_default()
            .push(build.to_owned());
    }

    /// Releases what `build` held (images and caches).
    pub(crate) fn release(&self, build: &str) {
        for map in [&self.held, &*self.caches] {
            lock(map).retain(|_, builds| {
                builds.retain(|b| b != build);
                !builds.is_empty()
            });
        }
    }

    /// Marks the cache directory `name` as used by `build` until it ends; call before making or mounting
    /// the directory.
    pub(crate) fn hold_cache(&self, name: &str, build: &str) {
        lock(&self.caches)
            .entry(name.to_owned())
            .or_default()
            .push(build.to_owned());
    }

    /// Starts a step's use of the cache directory `name` with `sharing`: `shared` uses it alongside others
    /// (waiting while a `locked` step has it), `locked` waits until no other step uses it, and `private`
    /// uses it when no other step does, else gets `false`: the step is to use an instance of its own.
    /// Blocking; fails when `cancel` fires while it waits. Each `true` is to be ended with
    /// [`Running::unclaim_cache`].
    pub(crate) fn claim_cache(
        &self,
        name: &str,
        sharing: build::backend::CacheSharing,
        cancel: &BuildCancel,
    ) -> std::result::Result<bool, build::backend::BackendError> {
        use build::backend::CacheSharing;
        let mut map = lock(&self.cache_use);
        loop {
            let u = map.entry(name.to_owned()).or_default();
            match sharing {
                CacheSharing::Private if u.users == 0 => {
                    u.users = 1;
                    return Ok(true);
                }
                CacheSharing::Private => return Ok(false),
                CacheSharing::Shared if !u.locked => {
                    u.users += 1;
                    return Ok(true);
                }
                CacheSharing::Locked if u.users == 0 => {
                    u.users = 1;
                    u.locked = true;
                    return Ok(true);
                }
                CacheSharing::Shared | CacheSharing::Locked => {}
            }
            if cancel.is_cancelled() {
                return Err(build::backend::BackendError::Cancelled);
            }
            // The timeout only lets a cancel be seen.
            map = self
                .cache_freed
                .wait_timeout(map, std::time::Duration::from_millis(100))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Ends a use [`Running::claim_cache`] started (`locked`: with `sharing=locked`).
    pub(crate) fn unclaim_cache(&self, name: &str, locked: bool) {
        let mut map = lock(&self.cache_use);
        if let Some(u) = map.get_mut(name) {
            u.users = u.users.saturating_sub(1);
            if locked || u.users == 0 {
                u.locked = false;
            }
            if u.users == 0 {
                map.remove(name);
            }
        }
        drop(map);
        self.cache_freed.notify_all();
    }

    /// The caches builds use, shared with a prune's blocking work.
    pub(crate) fn cache_users(&self) -> Arc<Mutex<HashMap<String, Vec<String>>>> {
        Arc::clone(&self.caches)
    }

    /// The BuildKit-mode contexts kept for rebuilds (for `system df` and `builder prune`).
    pub(crate) fn synced_contexts(&self) -> Arc<synced::SyncedContexts> {
        Arc::clone(&self.synced)
    }

    /// Gives step container `container`'s process the variables `env` (`NAME=value`) at its start.
    pub(crate) fn set_secret_env(&self, container: &str, env: Vec<String>) {
        lock(&self.secret_env).insert(container.to_owned(), env);
    }

    /// Forgets step container `container`'s secret variables.
    pub(crate) fn forget_secret_env(&self, container: &str) {
        lock(&self.secret_env).remove(container);
    }

    /// Container `c` as its process is to see it: with its secret variables (if a build gave it some)
    /// replacing any of the same name in its `Env`, as BuildKit sets them over the step's environment.
    pub(crate) fn with_secret_env<'a>(
        &self,
        c: &'a crate::containers::record::Container,
    ) -> std::borrow::Cow<'a, crate::containers::record::Container> {
        let map = lock(&self.secret_env);
        let Some(secrets) = map.get(&c.id) else {
            return std::borrow::Cow::Borrowed(c);
        };
        let name = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_owned();
        let names: std::collections::HashSet<String> = secrets.iter().map(|e| name(e)).collect();
        let mut with = c.clone();
        let mut env: Vec<String> = c
            .config
            .env
            .iter()
            .flatten()
            .filter(|e| !names.contains(&name(e)))
            .cloned()
            .collect();
        env.extend(secrets.iter().cloned());
        with.config.env = Some(env);
        std::borrow::Cow::Owned(with)
    }

    /// The images builds hold, each with a build holding it.
    pub(crate) fn held_images(&self) -> Vec<(String, String)> {
        lock(&self.held)
            .iter()
            .filter_map(|(image, builds)| Some((image.clone(), builds.first()?.clone())))
            .collect()
    }

    fn add(&self, id: &str, cancel: &BuildCancel) {
        self.lock()
            .entry(id.to_owned())
            .or_default()
            .push(cancel.clone());
    }

    fn remove(&self, id: &str, cancel: &BuildCancel) {
        let mut map = self.lock();
        if let Some(list) = map.get_mut(id) {
            list.retain(|c| !Arc::ptr_eq(&c.0, &cancel.0));
            if list.is_empty() {
                map.remove(id);
            }
        }
    }
}

/// The directory of one build's files.
fn build_root(data_root: &Path) -> PathBuf {
    data_root.join("build")
}

/// Where finished builds' directories wait for their deletion.
fn trash_root(data_root: &Path) -> PathBuf {
    data_root.join("build-trash")
}

/// Where big files of recent contexts are kept ([`context::Kept`]).
fn kept_root(data_root: &Path) -> PathBuf {
    data_root.join("build-kept")
}

/// Where BuildKit-mode contexts are kept ([`synced::SyncedContexts`]): below [`kept_root`], which the
/// daemon's start empties.
fn synced_root(data_root: &Path) -> PathBuf {
    kept_root(data_root).join("contexts")
}

/// Where a build's context comes from.
enum Source<'a> {
    /// A tar (plain or compressed), or `remote` when the request names one, extracted into the build's
    /// own directory.
    Tar(&'a mut dyn Read),
    /// A directory in place, with its entries' content hashes; the build only reads it.
    Ready(&'a Path, HashMap<String, String>),
}

impl Engine {
    /// Runs a build of the context tar `context` (plain, gzip, bzip2, xz or zstd), or of the context
    /// `req.remote` names (then `context` is not read), and returns the image ID. Blocking:
    /// call it on a blocking thread. Output (and the final image's ID as `aux`) goes to `out`.
    pub fn build_image(
        self: &Arc<Self>,
        req: BuildRequest,
        context: &mut dyn Read,
        out: &mut dyn ProgressSink,
    ) -> Result<String> {
        self.build_from(req, Source::Tar(context), out)
    }

    fn build_from(
        self: &Arc<Self>,
        req: BuildRequest,
        context: Source<'_>,
        out: &mut dyn ProgressSink,
    ) -> Result<String> {
        let mut id = [0u8; 8];
        crate::containers::fill_random(&mut id)?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let work = build_root(&self.config.data_root).join(&id);
        let (build_id, cancel) = (req.build_id.clone(), req.cancel.clone());
        if !build_id.is_empty() {
            self.builds.add(&build_id, &cancel);
        }
        let result = self.build_in(&work, &id, req, context, out);
        self.builds.release(&id);
        if !build_id.is_empty() {
            self.builds.remove(&build_id, &cancel);
        }
        backend::clean_later(&work, &trash_root(&self.config.data_root));
        if cancel.is_cancelled() {
            tracing::info!(build = %id, buildid = %build_id, "build cancelled; its step containers and files are removed");
            return Err(Error::System("build cancelled".into()));
        }
        result
    }

    /// A build in BuildKit mode (`version=2&session=…`, the docker CLI with `DOCKER_BUILDKIT=1`): the
    /// Dockerfile, `.dockerignore` and context come from the client's `session` rather than the request's
    /// body, and so do secrets. The build itself is the same as [`Engine::build_image`]'s. Blocking.
    pub fn build_from_session(
        self: &Arc<Self>,
        mut req: BuildRequest,
        session: &session::Session,
        upload: Option<&mut dyn Read>,
        out: &mut dyn ProgressSink,
    ) -> Result<String> {
        use session::SyncRequest;
        let rt = tokio::runtime::Handle::current();
        let failed = |what: &str, e: session::Error| {
            Error::InvalidParameter(format!(
                "failed to read {what} from the client's session: {e}"
            ))
        };
        let (from, handle) = (session.clone(), rt.clone());
        req.secrets = BuildSecrets::new(Arc::new(move |id: &str| {
            handle.block_on(from.secret(id)).map_err(|e| e.to_string())
        }));
        // The pulls' logins come from the client too (the CLI sends no X-Registry-Config in this mode).
        let (from, handle) = (session.clone(), rt.clone());
        req.registry_auths = RegistryAuths::from_lookup(Arc::new(move |domain: &str| {
            // BuildKit names docker.io by its registry's host.
            let host = if domain == "docker.io" {
                "registry-1.docker.io"
            } else {
                domain
            };
            match handle.block_on(from.credentials(host)) {
                Ok(Some(c)) => {
                    let mut auth = registry::AuthConfig {
                        serveraddress: domain.to_owned(),
                        ..registry::AuthConfig::default()
                    };
                    if c.username.is_empty() {
                        auth.identitytoken = c.secret;
                    } else {
                        (auth.username, auth.password) = (c.username, c.secret);
                    }
                    Some(auth)
                }
                Ok(None) => None,
                Err(e) => {
                    tracing::info!(error = %e, registry = %domain, "the session gave no login");
                    None
                }
            }
        }));
        // A context the client uploaded apart (`docker build - < ctx.tar`), read as a classic upload is;
        // or a URL or git repository, which the engine fetches as in the classic builder's mode. The
        // session gives the secrets, logins and progress.
        if let Some(tar) = upload {
            req.remote.clear();
            return self.build_image(req, tar, out);
        }
        if !req.remote.is_empty() {
            return self.build_image(req, &mut std::io::empty(), out);
        }
        let name = req.dockerfile_name();
        // The directory the client shares as `dockerfile` holds the Dockerfile (the context's, or the
        // one `-f` names, or STDIN's in a directory of its own).
        let mut include = vec![name.clone()];
        if name == "Dockerfile" {
            include.push("dockerfile".into());
        }
        let sync = |dir: &str, include: Vec<String>| SyncRequest {
            dir: dir.into(),
            include,
            ..SyncRequest::default()
        };
        let mut files = session
            .read_files(&sync("dockerfile", include), rt.clone(), 16 << 20)
            .map_err(|e| failed("the Dockerfile", e))?;
        let text = files
            .remove(&name)
            .or_else(|| files.remove("dockerfile").filter(|_| name == "Dockerfile"))
            .ok_or_else(|| {
                Error::InvalidParameter(format!(
                    "failed to read dockerfile: open {name}: no such file or directory"
                ))
            })?;
        let ignore = session
            .read_files(
                &sync("context", vec![".dockerignore".into()]),
                rt.clone(),
                1 << 20,
            )
            .map_err(|e| failed(".dockerignore", e))?;
        let exclude = ignore
            .get(".dockerignore")
            .map(|t| build::dockerignore::read_patterns(&String::from_utf8_lossy(t)))
            .unwrap_or_default();
        req.dockerfile_text = Some(text);
        // The context directory kept from this client's last build of the same directory, when no other
        // build has it: only what changed since comes.
        let kept = match session.shared_key() {
            "" => None,
            key => self
                .builds
                .synced
                .take(&synced_root(&self.config.data_root), key),
        };
        let Some((slot_id, mut slot)) = kept else {
            let mut context = session.tar(
                SyncRequest {
                    dir: "context".into(),
                    exclude,
                    ..SyncRequest::default()
                },
                rt,
            );
            return self.build_image(req, &mut context, out);
        };
        let started = std::time::Instant::now();
        let mut tar = session.tar(
            SyncRequest {
                dir: "context".into(),
                exclude,
                since: slot.walk.clone(),
                ..SyncRequest::default()
            },
            rt,
        );
        let synced = match synced::apply(&mut slot, &mut tar, |tar, dir| {
            self.extract_context(tar, dir)
        }) {
            Ok(s) => s,
            Err(e) => {
                self.builds.synced.drop_slot(&slot_id, slot);
                return Err(e);
            }
        };
        tracing::debug!(
            entries = synced.walk.len(),
            sent = synced.sent.len(),
            removed = synced.removed.len(),
            files = synced.files,
            bytes = synced.bytes,
            us = started.elapsed().as_micros() as u64,
            "build context synced"
        );
        out.context_loaded(synced.bytes, started.elapsed());
        let built = self.build_from(req, Source::Ready(&slot.dir, slot.sums.clone()), out);
        self.builds.synced.put(slot_id, slot);
        built
    }

    /// `POST /build/cancel?id=`: cancels the builds the client started with `buildid=id`. As dockerd, an ID
    /// that names no build under way is not an error.
    pub fn cancel_build(&self, id: &str) -> Result<()> {
        if id.is_empty() {
            return Err(Error::InvalidParameter("build ID not provided".into()));
        }
        let found = self.builds.lock().get(id).cloned().unwrap_or_default();
        for c in &found {
            c.cancel();
        }
        tracing::info!(buildid = %id, builds = found.len(), "build cancel requested");
        Ok(())
    }

    fn build_in(
        self: &Arc<Self>,
        work: &Path,
        id: &str,
        mut req: BuildRequest,
        context: Source<'_>,
        out: &mut dyn ProgressSink,
    ) -> Result<String> {
        let mut dir = work.join("context");
        let mut fetched;
        let started = std::time::Instant::now();
        let uploaded = matches!(context, Source::Tar(_));
        let mut sums = match context {
            Source::Ready(at, sums) => {
                dir = at.to_path_buf();
                sums
            }
            Source::Tar(context) => {
                let context: &mut dyn Read = if req.remote.is_empty() {
                    context
                } else {
                    std::fs::create_dir_all(work)
                        .map_err(|e| Error::system(format!("creating {}", work.display()), e))?;
                    fetched = remote::context(self, &req.remote, work, &req.cancel)?;
                    if let Some(name) = fetched.dockerfile.take() {
                        req.dockerfile = name;
                    }
                    &mut fetched.tar
                };
                self.extract_context(context, &dir)?
            }
        };
        let extracted = started.elapsed();
        let name = req.dockerfile_name();
        let (found, text) = match req.dockerfile_text.take() {
            Some(text) => (None, text),
            None => {
                let (found, text) = context::dockerfile(&dir, &name)?;
                (Some(found), text)
            }
        };
        if uploaded {
            for gone in context::drop_build_files(&dir, found.as_deref())? {
                sums.remove(&gone);
            }
        }
        let loaded =
            build::load(&name, &text).map_err(|e| Error::InvalidParameter(e.to_string()))?;
        let mut backend = backend::EngineBackend::new(
            Arc::clone(self),
            tokio::runtime::Handle::current(),
            work.to_path_buf(),
            id.to_owned(),
            req.cancel.clone(),
            req.secrets.clone(),
        )
        .with_registry_auths(req.registry_auths.clone());
        let tree = build::context::SourceTree::with_sums(&dir, sums);
        let built = build::dispatch::build_with(&loaded, &req.options, tree, &mut backend, out);
        backend.release();
        tracing::debug!(
            build = %id,
            context_us = extracted.as_micros() as u64,
            steps_us = (started.elapsed() - extracted).as_micros() as u64,
            "build ran"
        );
        built.map_err(|e| Error::InvalidParameter(e.to_string()))
    }

    /// Extracts the context tar `tar` into `dir`, with the content hashes of what it holds.
    fn extract_context(&self, tar: &mut dyn Read, dir: &Path) -> Result<HashMap<String, String>> {
        context::extract(
            tar,
            dir,
            &self.builds.memo,
            &self.builds.kept,
            &kept_root(&self.config.data_root),
        )
    }

    /// Removes what builds a crash interrupted left (their mounts first), and the context files kept by
    /// the last process.
    pub(crate) fn clean_builds(data_root: &Path) {
        context::Kept::clear_dir(&kept_root(data_root));
        for root in [build_root(data_root), trash_root(data_root)] {
            if let Ok(entries) = std::fs::read_dir(&root) {
                for e in entries.flatten() {
                    backend::clean(&e.path());
                }
            }
        }
    }
}
