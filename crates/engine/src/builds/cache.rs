//! The build cache outside images: the directories of `RUN --mount=type=cache`, kept under
//! `DATA_ROOT/build-cache` between builds, and the contexts kept for BuildKit-mode rebuilds. `system df`
//! lists them and `POST /build/prune` selects and removes them as dockerd's BuildKit lists and prunes its
//! cache-mount records (type `exec.cachemount`) and local sources (`source.local`); classic builds also
//! cache in images, through their parent links, which `image prune` handles.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use bollard_stubs::models::{BuildCache, BuildCacheTypeEnum};

use crate::error::{Context, Error, Result};
use crate::filters::Filters;
use crate::Engine;

/// What `POST /build/prune` asks for.
#[derive(Debug, Default)]
pub struct BuildPruneOptions {
    /// `all`: BuildKit keeps its internal and frontend records without it; cache mounts go either way.
    pub all: bool,
    /// `filters`: `until` (or its older name `unused-for`), `id`, `type`, `description`, `inuse`,
    /// `shared`, `private`, `parent`; `label` and `label!` are accepted and ignored, as by dockerd.
    pub filters: Filters,
    /// `reserved-space` (or `keep-storage`): bytes of the most recently used caches to keep.
    pub reserved_space: u64,
    /// `max-used-space`: prune the least recently used caches until no more than this is used.
    pub max_used_space: u64,
}

/// One cache directory and its record.
struct Entry {
    path: PathBuf,
    record: BuildCache,
    last_used: SystemTime,
}

/// What a record stands for: BuildKit's type and description for it.
struct Kind {
    typ: BuildCacheTypeEnum,
    description: &'static str,
}

/// A cache mount's directory (`DATA_ROOT/build-cache`).
const CACHE_MOUNT: Kind = Kind {
    typ: BuildCacheTypeEnum::EXEC_CACHEMOUNT,
    description: "cached mount (RUN --mount=type=cache)",
};

/// A BuildKit-mode context kept for the next build (`DATA_ROOT/build-kept/contexts`), which BuildKit
/// lists as its local source records.
const CONTEXT: Kind = Kind {
    typ: BuildCacheTypeEnum::SOURCE_LOCAL,
    description: "local source for context",
};

/// The directories under `root`, as records of `kind`; those named in `in_use` are marked so.
fn entries(root: &Path, kind: &Kind, in_use: &dyn Fn(&str) -> bool) -> Vec<Entry> {
    let Ok(dirs) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut out: Vec<Entry> = dirs
        .flatten()
        // `.new-…` directories are caches being made (renamed into place when ready).
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let meta = e.metadata().ok().filter(|m| m.is_dir())?;
            let path = e.path();
            let size = crate::du::dir_size(&path)
                .inspect_err(|err| {
                    tracing::warn!(path = %path.display(), error = %err, "sizing a build cache");
                })
                .ok()?;
            let last_used = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let created = meta.created().unwrap_or(last_used);
            let name = e.file_name().to_string_lossy().into_owned();
            Some(Entry {
                record: BuildCache {
                    in_use: Some(in_use(&name)),
                    id: Some(name),
                    typ: Some(kind.typ),
                    description: Some(kind.description.into()),
                    shared: Some(false),
                    size: Some(size as i64),
                    created_at: Some(image::timefmt::rfc3339_nano(created)),
                    last_used_at: Some(image::timefmt::rfc3339_nano(last_used)),
                    usage_count: Some(1),
                    ..Default::default()
                },
                path,
                last_used,
            })
        })
        .collect();
    out.sort_by(|a, b| a.record.id.cmp(&b.record.id));
    out
}

/// Every record's entry: the cache mounts (in use while `in_use` names them), then the kept contexts
/// (while `busy` names them).
fn all_entries(
    data_root: &Path,
    in_use: &HashMap<String, Vec<String>>,
    busy: &HashSet<String>,
) -> Vec<Entry> {
    let mut out = entries(&data_root.join("build-cache"), &CACHE_MOUNT, &|n| {
        in_use.contains_key(n)
    });
    out.extend(entries(&super::synced_root(data_root), &CONTEXT, &|n| {
        busy.contains(n)
    }));
    out
}

/// The records `system df` lists: cache mounts, then kept contexts (`busy`: those a build has); those
/// running builds use are `InUse`.
fn records(
    data_root: &Path,
    users: &Mutex<HashMap<String, Vec<String>>>,
    busy: &HashSet<String>,
) -> Vec<BuildCache> {
    let in_use = users
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    all_entries(data_root, &in_use, busy)
        .into_iter()
        .map(|e| e.record)
        .collect()
}

/// Whether a record passes the cache-field filters, as BuildKit compares them (`id` as a substring,
/// the others by equality, `type` with the record's own).
fn matches(f: &Filters, r: &BuildCache) -> Result<bool> {
    let one = |key: &str| f.get(key).first().map(String::as_str);
    let flag = |key: &str, value: bool| -> Result<bool> {
        Ok(match f.bool(key)? {
            Some(want) => want == value,
            None => true,
        })
    };
    let id = r.id.as_deref().unwrap_or_default();
    Ok(one("id").is_none_or(|v| id.contains(v))
        && one("type").is_none_or(|v| r.typ.is_some_and(|t| t.to_string() == v))
        && one("description").is_none_or(|v| Some(v) == r.description.as_deref())
        // These records have no parent.
        && one("parent").is_none()
        && flag("inuse", r.in_use == Some(true))?
        && flag("shared", false)?
        && flag("private", true)?)
}

impl Engine {
    /// The build cache `system df` lists.
    pub(crate) async fn build_cache_records(&self) -> Result<Vec<BuildCache>> {
        let root = self.config.data_root.clone();
        let users = self.builds.cache_users();
        let busy = self.builds.synced.busy();
        Ok(tokio::task::spawn_blocking(move || records(&root, &users, &busy)).await?)
    }

    /// `POST /build/prune`: removes the caches the options select and answers dockerd's shape, the IDs
    /// deleted and the bytes reclaimed, publishing the builder's `prune` event.
    pub async fn prune_build_cache(
        &self,
        opts: BuildPruneOptions,
    ) -> Result<BTreeMap<String, serde_json::Value>> {
        let f = &opts.filters;
        f.validate(&[
            "until",
            "unused-for",
            "label",
            "label!",
            "id",
            "parent",
            "type",
            "description",
            "inuse",
            "shared",
            "private",
        ])?;
        if !f.get("until").is_empty() && !f.get("unused-for").is_empty() {
            return Err(Error::InvalidParameter(
                "conflicting filters: \"until\" and \"unused-for\"".into(),
            ));
        }
        let keys = [
            "until",
            "unused-for",
            "id",
            "parent",
            "type",
            "description",
            "inuse",
            "shared",
            "private",
        ];
        if keys.iter().any(|k| f.get(k).len() > 1) {
            return Err(Error::InvalidParameter(
                "filters expect only one value".into(),
            ));
        }
        // Caches last used before this time go (whole nanoseconds since the epoch).
        let cutoff = f
            .get("until")
            .iter()
            .chain(f.get("unused-for"))
            .map(|t| crate::parse_timestamp(t))
            .next()
            .transpose()?;
        let unfiltered = f.is_empty();
        let root = self.config.data_root.clone();
        let users = self.builds.cache_users();
        let synced = self.builds.synced_contexts();
        let (deleted, reclaimed) =
            tokio::task::spawn_blocking(move || prune(&root, &users, &synced, &opts, cutoff))
                .await??;
        // The big context files kept for the next classic build go too when nothing narrows the prune:
        // it is asked to free the builder's disk, and they only make rebuilds faster. They are no record
        // a filter could select. (A handful of unlinks, done in place.)
        if unfiltered {
            self.builds.kept.clear();
        }
        self.events
            .publish(crate::Event::pruned("builder", reclaimed));
        let mut out = BTreeMap::new();
        out.insert("CachesDeleted".to_owned(), serde_json::json!(deleted));
        out.insert("SpaceReclaimed".to_owned(), serde_json::json!(reclaimed));
        Ok(out)
    }
}

/// Removes the caches and kept contexts `opts` and `cutoff` select, least recently used first, never one
/// a build uses; returns their IDs and the bytes they held. Holds the cache users' lock throughout, so no
/// build starts using a cache while it goes; a kept context is claimed from `synced` before it is
/// removed, so one a build took meanwhile stays.
fn prune(
    data_root: &Path,
    users: &Mutex<HashMap<String, Vec<String>>>,
    synced: &super::synced::SyncedContexts,
    opts: &BuildPruneOptions,
    cutoff: Option<i64>,
) -> Result<(Vec<String>, u64)> {
    let in_use = users
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut candidates: Vec<Entry> = Vec::new();
    for e in all_entries(data_root, &in_use, &synced.busy()) {
        let used = e
            .last_used
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        if e.record.in_use != Some(true)
            && matches(&opts.filters, &e.record)?
            && cutoff.is_none_or(|c| used < c)
        {
            candidates.push(e);
        }
    }
    // Least recently used first: the space to keep is kept in the caches used last.
    candidates.sort_by_key(|e| e.last_used);
    let size = |e: &Entry| e.record.size.unwrap_or(0).max(0) as u64;
    let mut remaining: u64 = candidates.iter().map(size).sum();
    // With a limit, what the selected caches may still use; never less than the reserved space.
    let target = match (opts.reserved_space, opts.max_used_space) {
        (0, 0) => None,
        (reserved, 0) => Some(reserved),
        (reserved, max) => Some(max.max(reserved)),
    };
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for e in candidates {
        if target.is_some_and(|t| remaining <= t) {
            break;
        }
        let id = e.record.id.clone().unwrap_or_default();
        if e.record.typ == Some(CONTEXT.typ) {
            let Some(dir) = synced.take_idle(&id) else {
                continue; // a build has it now
            };
            super::synced::remove(&dir);
        } else {
            std::fs::remove_dir_all(&e.path)
                .with_context(|| format!("removing {}", e.path.display()))?;
        }
        remaining -= size(&e);
        reclaimed += size(&e);
        deleted.push(id);
    }
    Ok((deleted, reclaimed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> BuildCache {
        BuildCache {
            id: Some(id.into()),
            in_use: Some(false),
            typ: Some(BuildCacheTypeEnum::EXEC_CACHEMOUNT),
            description: Some("cached mount (RUN --mount=type=cache)".into()),
            ..Default::default()
        }
    }

    #[test]
    fn filters_compare_as_buildkit_does() {
        let f = |json: &str| Filters::parse(Some(json)).unwrap();
        let r = record("0123abcd");
        assert!(matches(&f(r#"{"id":{"23ab":true}}"#), &r).unwrap());
        assert!(!matches(&f(r#"{"id":{"ffff":true}}"#), &r).unwrap());
        assert!(matches(&f(r#"{"type":{"exec.cachemount":true}}"#), &r).unwrap());
        assert!(!matches(&f(r#"{"type":{"regular":true}}"#), &r).unwrap());
        assert!(!matches(&f(r#"{"type":{"source.local":true}}"#), &r).unwrap());
        let context = BuildCache {
            typ: Some(CONTEXT.typ),
            description: Some(CONTEXT.description.into()),
            ..record("0123abcd")
        };
        assert!(matches(&f(r#"{"type":{"source.local":true}}"#), &context).unwrap());
        assert!(!matches(&f(r#"{"type":{"exec.cachemount":true}}"#), &context).unwrap());
        assert!(matches(&f(r#"{"inuse":{"false":true}}"#), &r).unwrap());
        assert!(!matches(&f(r#"{"inuse":{"true":true}}"#), &r).unwrap());
        assert!(matches(&f(r#"{"private":{"true":true}}"#), &r).unwrap());
        assert!(!matches(&f(r#"{"parent":{"x":true}}"#), &r).unwrap());
    }
}
