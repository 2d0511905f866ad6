//! `RUN --mount`: each specification expanded, checked and turned into a [`RunMount`] the
//! engine sets up for the step container (BuildKit's semantics: bind, cache, tmpfs, secret).
//!
//! The classic builder has no mounts, so their cache key is Berth's own: every mount's
//! expanded specification is part of the RUN's key (`--mount=type=cache,target=/c` before the
//! command), and a bind of the build context adds the bound files' content hash, so editing
//! a bound file reruns the step. Cache contents and secret values are never part of the key,
//! the image config or the history.

use std::path::PathBuf;

use crate::backend::{CacheSeed, RunMount};
use crate::context::SourceTree;
use crate::instructions::mount::{CacheSharing, MountSpec, MountType};
use crate::shell::EnvList;

use super::state::StageState;
use super::steps::clean_path;
use super::{BuildError, Builder};

/// The mounts of one RUN, and what they add to its cache key.
pub(crate) struct Mounts {
    /// For the engine.
    pub mounts: Vec<RunMount>,
    /// Words to put before the command in the step's `Cmd`.
    pub key: Vec<String>,
}

impl Builder<'_> {
    /// Resolves the `--mount` flags of a RUN in stage `st`.
    pub(super) fn run_mounts(
        &mut self,
        st: &StageState,
        specs: &[MountSpec],
    ) -> Result<Mounts, BuildError> {
        let env = EnvList::new(st.expansion_env());
        let lexer = self.lexer;
        let expand = |s: &str| lexer.process_word(s, &env).map_err(|e| e.to_string());
        let mut out = Mounts {
            mounts: Vec::new(),
            key: Vec::new(),
        };
        for spec in specs {
            let m = spec.resolve(&expand).map_err(BuildError::Invalid)?;
            let target_of = |t: Option<&String>| -> Result<String, BuildError> {
                let t = t.ok_or_else(|| BuildError::Invalid("mount target is required".into()))?;
                Ok(if t.starts_with('/') {
                    clean_path(t)
                } else {
                    clean_path(&format!("/{}/{t}", st.run.working_dir))
                })
            };
            let mut key = format!(
                "--mount={}",
                expand(&spec.raw).map_err(BuildError::Invalid)?
            );
            let mount = match m.kind {
                MountType::Bind => {
                    let target = target_of(m.target.as_ref())?;
                    let source = m.source.clone().unwrap_or_else(|| "/".to_string());
                    let (host, hash) = match m.from.as_deref() {
                        Some(from) => {
                            let mut tree = SourceTree::new(self.source_root_of(from)?);
                            bound(&mut tree, &source)?
                        }
                        None => bound(&mut self.context, &source)?,
                    };
                    key.push(' ');
                    key.push_str(&hash);
                    RunMount::Bind {
                        source: host,
                        target,
                        read_only: m.read_only,
                    }
                }
                MountType::Cache => {
                    let seed = match m.from.as_deref() {
                        Some(from) => Some(self.cache_seed(from, m.source.as_deref())?),
                        None => None,
                    };
                    let target = target_of(m.target.as_ref())?;
                    RunMount::Cache {
                        id: m.id.clone().unwrap_or_else(|| target.clone()),
                        target,
                        sharing: m.sharing.unwrap_or(CacheSharing::Shared),
                        read_only: m.read_only,
                        mode: m.mode.unwrap_or(0o755),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                        seed,
                    }
                }
                MountType::Tmpfs => RunMount::Tmpfs {
                    target: target_of(m.target.as_ref())?,
                    size: m.size,
                },
                MountType::Secret => {
                    let id = match (&m.id, &m.source, &m.target) {
                        (Some(id), _, _) | (None, Some(id), _) => id.clone(),
                        (None, None, Some(t)) => t.rsplit('/').next().unwrap_or(t).to_string(),
                        (None, None, None) => {
                            return Err(BuildError::Invalid(
                                "invalid secret mount. one of source, target required".into(),
                            ))
                        }
                    };
                    let target = match (&m.target, &m.env) {
                        (Some(t), _) => Some(target_of(Some(t))?),
                        (None, Some(_)) => None,
                        (None, None) => Some(format!("/run/secrets/{id}")),
                    };
                    RunMount::Secret {
                        id,
                        target,
                        env: m.env.clone(),
                        required: m.required,
                        mode: m.mode.unwrap_or(0o400),
                        uid: m.uid.unwrap_or(0),
                        gid: m.gid.unwrap_or(0),
                    }
                }
                MountType::Ssh => {
                    return Err(BuildError::Invalid(
                        "RUN --mount=type=ssh is not supported".into(),
                    ))
                }
            };
            out.key.push(key);
            out.mounts.push(mount);
        }
        Ok(out)
    }
}

impl Builder<'_> {
    /// The directory `source` (the root by default) of the stage or image `from`, for a cache mount to
    /// start with. Its contents are not part of the step's key: a cache's contents never are, and this
    /// one is told apart by the image it comes from.
    fn cache_seed(&mut self, from: &str, source: Option<&str>) -> Result<CacheSeed, BuildError> {
        let source = source.unwrap_or("/");
        let image = self.source_image_of(from)?;
        let tree = SourceTree::new(self.backend.mount_image(image.as_deref())?);
        let rel = tree
            .resolve(source, true)
            .map_err(|e| BuildError::Invalid(e.to_string()))?;
        let host = tree.host_path(&rel);
        match std::fs::metadata(&host) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(BuildError::Invalid(format!(
                    "RUN --mount=type=cache source {source} is not a directory"
                )))
            }
            Err(_) => {
                return Err(BuildError::Invalid(format!(
                    "RUN --mount source {source} not found"
                )))
            }
        }
        Ok(CacheSeed {
            source: host,
            key: format!("{}:/{rel}", image.unwrap_or_default()),
        })
    }
}

/// The host path and content hash of a bind source inside `tree`.
fn bound(tree: &mut SourceTree, source: &str) -> Result<(PathBuf, String), BuildError> {
    let not_found = || BuildError::Invalid(format!("RUN --mount source {source} not found"));
    let rel = tree
        .resolve(source, true)
        .map_err(|e| BuildError::Invalid(e.to_string()))?;
    let host = tree.host_path(&rel);
    let meta = std::fs::metadata(&host).map_err(|_| not_found())?;
    let hash = if meta.is_dir() {
        tree.dir_hash(&rel)
    } else {
        tree.file_hash(&rel).map(|h| format!("file:{h}"))
    }
    .map_err(|e| BuildError::Invalid(e.to_string()))?;
    Ok((host, hash))
}
