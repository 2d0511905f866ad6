//! The build cache outside images: the directories of `RUN --mount=type=cache`, kept under
//! `DATA_ROOT/build-cache` between builds. `system df` lists them and `POST /build/prune` removes them as
//! dockerd's BuildKit lists and prunes its cache-mount records (type `exec.cachemount`); classic builds also
//! cache in images, through their parent links, which `image prune` handles.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use bollard_stubs::models::{BuildCache, BuildCacheTypeEnum};

use crate::error::{Context, Error, Result};
use crate::filters::Filters;
use crate::Engine;

/// BuildKit's type name for these records.
const CACHE_TYPE: &str = "exec.cachemount";

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
    entries(&data_root.join("build-cache"), &CACHE_MOUNT, &|n| {
        in_use.contains_key(n)
    })
    .into_iter()
    .chain(entries(&super::synced_root(data_root), &CONTEXT, &|n| {
        busy.contains(n)
    }))
    .map(|e| e.record)
    .collect()
}

/// Whether a record passes the cache-field filters, as BuildKit compares them (`id` as a substring,
/// the others by equality).
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
        && one("type").is_none_or(|v| v == CACHE_TYPE)
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
        let root = self.config.data_root.join("build-cache");
        let users = self.builds.cache_users();
        let (mut deleted, mut reclaimed) =
            tokio::task::spawn_blocking(move || prune(&root, &users, &opts, cutoff)).await??;
        // The big context files kept for the next build go too: a prune is asked to free the builder's
        // disk, and they only make rebuilds faster. (A handful of unlinks, done in place.)
        self.builds.kept.clear();
        // And the context directories kept for BuildKit-mode rebuilds (whole trees: off the runtime),
        // counted as BuildKit counts its local sources.
        let synced = self.builds.synced.take_idle();
        let (contexts, context_bytes) = tokio::task::spawn_blocking(move || {
            let mut ids = Vec::new();
            let mut bytes = 0;
            for d in &synced {
                bytes += crate::du::dir_size(d).unwrap_or(0);
                super::synced::remove(d);
                ids.extend(d.file_name().map(|n| n.to_string_lossy().into_owned()));
            }
            (ids, bytes)
        })
        .await?;
        deleted.extend(contexts);
        reclaimed += context_bytes;
        self.events
            .publish(crate::Event::pruned("builder", reclaimed));
        let mut out = BTreeMap::new();
        out.insert("CachesDeleted".to_owned(), serde_json::json!(deleted));
        out.insert("SpaceReclaimed".to_owned(), serde_json::json!(reclaimed));
        Ok(out)
    }
}

/// Removes the caches `opts` and `cutoff` select, least recently used first, never one a build uses;
/// returns their IDs and the bytes they held. Holds the users' lock throughout, so no build starts using
/// a cache while it goes.
fn prune(
    root: &Path,
    users: &Mutex<HashMap<String, Vec<String>>>,
    opts: &BuildPruneOptions,
    cutoff: Option<i64>,
) -> Result<(Vec<String>, u64)> {
    let in_use = users
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut candidates: Vec<Entry> = Vec::new();
    for e in entries(root, &CACHE_MOUNT, &|n| in_use.contains_key(n)) {
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
        std::fs::remove_dir_all(&e.path)
            .with_context(|| format!("removing {}", e.path.display()))?;
        remaining -= size(&e);
        reclaimed += size(&e);
        deleted.push(e.record.id.unwrap_or_default());
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
        assert!(matches(&f(r#"{"inuse":{"false":true}}"#), &r).unwrap());
        assert!(!matches(&f(r#"{"inuse":{"true":true}}"#), &r).unwrap());
        assert!(matches(&f(r#"{"private":{"true":true}}"#), &r).unwrap());
        assert!(!matches(&f(r#"{"parent":{"x":true}}"#), &r).unwrap());
    }
}
