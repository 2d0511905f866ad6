//! `POST /build`: a Dockerfile build with the classic builder's semantics. The `build` crate parses the
//! Dockerfile and decides every step (configs, cache keys, history, output); this module gives it a
//! context on disk and runs its steps ([`backend::EngineBackend`]): step containers, layers, commits.
//!
//! Everything a build makes on disk lives under `DATA_ROOT/build/<id>/` (the extracted context, the
//! layers COPY fills, read-only views of images): removed when the build ends, and at the daemon's
//! start after a crash.

mod backend;
mod context;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use build::dispatch::ProgressSink;

use crate::error::{Error, Result};
use crate::Engine;

/// The options of a build and the limits of its RUN containers, as the `build` crate takes them (re-exported
/// so the API needs no other crate).
pub use build::backend::RunHost;
pub use build::dispatch::BuildOptions;
/// Where a build's output goes.
pub use build::dispatch::ProgressSink as BuildProgress;

/// What `POST /build` asks for, beyond the context.
#[derive(Debug, Default, Clone)]
pub struct BuildRequest {
    /// `dockerfile`: the Dockerfile's path in the context (`Dockerfile` by default).
    pub dockerfile: String,
    /// Everything the dispatcher takes: build args, target, tags, cache, labels, limits.
    pub options: BuildOptions,
}

/// The directory of one build's files.
fn build_root(data_root: &Path) -> PathBuf {
    data_root.join("build")
}

impl Engine {
    /// Runs a build of the context tar `context` (plain, gzip or zstd) and returns the image ID. Blocking:
    /// call it on a blocking thread. Output (and the final image's ID as `aux`) goes to `out`.
    pub fn build_image(
        self: &Arc<Self>,
        req: BuildRequest,
        context: &mut dyn Read,
        out: &mut dyn ProgressSink,
    ) -> Result<String> {
        let mut id = [0u8; 8];
        crate::containers::fill_random(&mut id)?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let work = build_root(&self.config.data_root).join(id);
        let result = self.build_in(&work, req, context, out);
        backend::clean(&work);
        result
    }

    fn build_in(
        self: &Arc<Self>,
        work: &Path,
        req: BuildRequest,
        context: &mut dyn Read,
        out: &mut dyn ProgressSink,
    ) -> Result<String> {
        let dir = work.join("context");
        let sums = context::extract(context, &dir)?;
        let name = if req.dockerfile.is_empty() {
            "Dockerfile".to_owned()
        } else {
            req.dockerfile.clone()
        };
        let text = context::dockerfile(&dir, &name)?;
        let loaded =
            build::load(&name, &text).map_err(|e| Error::InvalidParameter(e.to_string()))?;
        let mut backend = backend::EngineBackend::new(
            Arc::clone(self),
            tokio::runtime::Handle::current(),
            work.to_path_buf(),
        );
        let tree = build::context::SourceTree::with_sums(&dir, sums);
        let built = build::dispatch::build_with(&loaded, &req.options, tree, &mut backend, out);
        backend.release();
        built.map_err(|e| Error::InvalidParameter(e.to_string()))
    }

    /// Removes what builds a crash interrupted left (their mounts first).
    pub(crate) fn clean_builds(data_root: &Path) {
        let root = build_root(data_root);
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                backend::clean(&e.path());
            }
        }
    }

    /// `POST /build/prune`: the build cache outside images, that is the directories of `RUN
    /// --mount=type=cache` (classic builds also cache in images, through their parent links, which `image
    /// prune` handles). Answers dockerd's shape: the caches deleted and the bytes reclaimed.
    pub fn prune_build_cache(&self) -> Result<BTreeMap<String, serde_json::Value>> {
        let root = self.config.data_root.join("build-cache");
        let mut deleted = Vec::new();
        let mut reclaimed = 0u64;
        if let Ok(entries) = std::fs::read_dir(&root) {
            for e in entries.flatten() {
                let path = e.path();
                reclaimed += disk_usage(&path);
                std::fs::remove_dir_all(&path)
                    .map_err(|err| Error::System(format!("removing {}: {err}", path.display())))?;
                deleted.push(e.file_name().to_string_lossy().into_owned());
            }
        }
        let mut out = BTreeMap::new();
        out.insert("CachesDeleted".to_owned(), serde_json::json!(deleted));
        out.insert("SpaceReclaimed".to_owned(), serde_json::json!(reclaimed));
        Ok(out)
    }
}

/// Bytes of the regular files below `p` (symlinks not followed).
fn disk_usage(p: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(p)
            .map(|d| d.flatten().map(|e| disk_usage(&e.path())).sum())
            .unwrap_or(0)
    } else if meta.is_file() {
        meta.len()
    } else {
        0
    }
}
