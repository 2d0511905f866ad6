//! Image operations as the Docker API exposes them: list, inspect, history, tag, remove, prune, load, save and
//! import. The store does the work; this module applies Docker's filters and shapes, and publishes events.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};

use bollard_stubs::models::{
    DriverData, HistoryResponseItem, ImageConfig, ImageDeleteResponseItem, ImageInspect,
    ImageInspectMetadata, ImageInspectRootFs, ImagePruneResponse, ImageSummary,
};
use image::{DeleteItem, Image};

use crate::containers::record::Status;
use crate::error::{Error, Result};
use crate::events::Event;
use crate::filters::{glob_match, Filters};
use crate::Engine;

/// What `GET /images/json` asks for.
#[derive(Debug, Default)]
pub struct ImageListOptions {
    /// Show intermediate images too (the untagged parents builds leave).
    pub all: bool,
    /// The `filters` query parameter.
    pub filters: Filters,
    /// `shared-size`: fill `SharedSize` (else -1, "not computed", as dockerd).
    pub shared_size: bool,
}

/// What `POST /images/create?fromSrc=-` asks for.
#[derive(Debug, Default)]
pub struct ImportRequest {
    /// `repo` (may carry a tag, `busybox:1`).
    pub repo: Option<String>,
    /// `tag`.
    pub tag: Option<String>,
    /// Dockerfile instructions applied to the config (`changes`).
    pub changes: Vec<String>,
    /// Commit message (`message`).
    pub message: Option<String>,
    /// `platform` (`linux/amd64`).
    pub platform: Option<String>,
}

/// One image a load brought in, for the `Loaded image: …` lines.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// `sha256:…`.
    pub id: String,
    /// Familiar references (`fixture/webapp:1.0`).
    pub tags: Vec<String>,
}

impl Engine {
    /// `GET /images/json`.
    pub async fn list_images(&self, opts: ImageListOptions) -> Result<Vec<ImageSummary>> {
        let f = opts.filters;
        f.validate(&["dangling", "label", "reference", "before", "since", "until"])?;
        let dangling = f.bool("dangling")?;
        let images = self.blocking(|s| Ok(s.list()?)).await?;
        let created_of = |name: &str| -> Result<i64> {
            let img = images
                .iter()
                .find(|i| matches_name(i, name))
                .ok_or_else(|| Error::NotFound(format!("No such image: {name}")))?;
            Ok(created_unix(img))
        };
        let before = f
            .get("before")
            .iter()
            .map(|n| created_of(n))
            .collect::<Result<Vec<_>>>()?;
        let since = f
            .get("since")
            .iter()
            .map(|n| created_of(n))
            .collect::<Result<Vec<_>>>()?;
        let until: Vec<i64> = f
            .times("until")?
            .into_iter()
            .map(|n| n / 1_000_000_000)
            .collect();
        // Untagged images with children are a build's intermediate images: shown with `all` only.
        let parents: std::collections::HashSet<&image::Digest> =
            images.iter().filter_map(|i| i.parent.as_ref()).collect();
        let mut out: Vec<ImageSummary> = images
            .iter()
            .filter(|img| opts.all || !img.repo_tags.is_empty() || !parents.contains(&img.id))
            .filter(|img| dangling.is_none_or(|d| d == img.repo_tags.is_empty()))
            .filter(|img| f.labels_match("label", |k| label(img, k)))
            .filter(|img| {
                let patterns = f.get("reference");
                patterns.is_empty()
                    || img.repo_tags.iter().any(|r| {
                        patterns.iter().any(|p| {
                            glob_match(p, &r.familiar()) || glob_match(p, &r.familiar_name())
                        })
                    })
            })
            .filter(|img| before.iter().all(|&t| created_unix(img) < t))
            .filter(|img| since.iter().all(|&t| created_unix(img) > t))
            .filter(|img| until.iter().all(|&t| created_unix(img) < t))
            .map(summary)
            .collect();
        if opts.shared_size {
            let shared = shared_sizes(&images);
            for s in &mut out {
                s.shared_size = shared.get(&s.id).copied().unwrap_or(0);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
        Ok(out)
    }

    /// `GET /images/{name}/json`.
    pub async fn inspect_image(&self, name: &str) -> Result<ImageInspect> {
        let name = name.to_owned();
        let (img, dirs) = self
            .blocking(move |s| {
                let img = s.get(&name)?;
                let dirs = s.layer_dirs(&img);
                Ok((img, dirs))
            })
            .await?;
        Ok(inspect(&img, &dirs))
    }

    /// `GET /images/{name}/history`.
    pub async fn image_history(&self, name: &str) -> Result<Vec<HistoryResponseItem>> {
        let name = name.to_owned();
        self.blocking(move |s| {
            let img = s.get(&name)?;
            Ok(s.history(&img)
                .into_iter()
                .map(|h| HistoryResponseItem {
                    id: h.id,
                    created: h.created,
                    created_by: h.created_by,
                    tags: h.tags,
                    size: h.size as i64,
                    comment: h.comment,
                })
                .collect())
        })
        .await
    }

    /// `POST /images/{name}/tag?repo=…&tag=…`.
    pub async fn tag_image(&self, name: &str, repo: &str, tag: Option<&str>) -> Result<()> {
        if repo.is_empty() {
            return Err(Error::InvalidParameter(
                "repository name must have at least one component".into(),
            ));
        }
        let target = match tag.filter(|t| !t.is_empty()) {
            Some(t) => format!("{repo}:{t}"),
            None => repo.to_owned(),
        };
        let name = name.to_owned();
        let (img, reference) = self.blocking(move |s| Ok(s.tag(&name, &target)?)).await?;
        self.image_event("tag", &img, &reference.familiar());
        Ok(())
    }

    /// `DELETE /images/{name}`.
    pub async fn remove_image(
        &self,
        name: &str,
        force: bool,
        noprune: bool,
    ) -> Result<Vec<ImageDeleteResponseItem>> {
        let name = name.to_owned();
        let before = self.blocking({
            let name = name.clone();
            move |s| Ok(s.get(&name)?)
        });
        let img = before.await?;
        let _removing = self.image_use.write().await;
        let users = self.image_users();
        let items = self
            .blocking(move |s| {
                let users =
                    |id: &image::Digest| users.get(&id.to_string()).cloned().unwrap_or_default();
                Ok(s.remove(&name, force, noprune, &users)?)
            })
            .await?;
        Ok(self.delete_items(&img, items))
    }

    /// `POST /images/prune`: dangling images, or with `dangling=false` every image; `label` and `until` filters.
    pub async fn prune_images(&self, filters: Filters) -> Result<ImagePruneResponse> {
        filters.validate(&["dangling", "label", "label!", "until"])?;
        let all = filters.bool("dangling")? == Some(false);
        let until: Vec<i64> = filters
            .times("until")?
            .into_iter()
            .map(|n| n / 1_000_000_000)
            .collect();
        let f = filters.clone();
        let before = self.blocking(|s| Ok(s.list()?)).await?;
        let _removing = self.image_use.write().await;
        let users = self.image_users();
        let report = self
            .blocking(move |s| {
                // Prune never takes an image a container uses, whatever its filters say.
                let keep = |img: &Image| {
                    users.contains_key(&img.id.to_string())
                        || !f.labels_match("label", |k| label(img, k))
                        || f.labels_excluded(|k| label(img, k))
                        || until.iter().any(|&t| created_unix(img) >= t)
                };
                Ok(s.prune(all, &keep)?)
            })
            .await?;
        let mut deleted = Vec::new();
        for item in report.deleted {
            if let DeleteItem::Deleted(id) = &item {
                if let Some(img) = before.iter().find(|i| &i.id.to_string() == id) {
                    self.image_event("delete", img, id);
                }
            }
            deleted.push(delete_item(item));
        }
        self.events
            .publish(Event::pruned("image", report.space_reclaimed));
        Ok(ImagePruneResponse {
            images_deleted: Some(deleted),
            space_reclaimed: Some(report.space_reclaimed as i64),
        })
    }

    /// `POST /images/load`: reads an archive (blocking; call from a blocking thread) and reports progress.
    pub fn load_images(
        &self,
        archive: &mut dyn Read,
        progress: &mut dyn FnMut(image::LoadProgress),
    ) -> Result<Vec<LoadedImage>> {
        let loaded = self.images.load(archive, progress)?;
        let mut out = Vec::new();
        for l in loaded {
            let tags: Vec<String> = l.tags.iter().map(|r| r.familiar()).collect();
            if let Ok(img) = self.images.get(&l.id.to_string()) {
                match tags.is_empty() {
                    true => self.image_event("load", &img, &l.id.to_string()),
                    false => tags.iter().for_each(|t| self.image_event("load", &img, t)),
                }
            }
            out.push(LoadedImage {
                id: l.id.to_string(),
                tags,
            });
        }
        Ok(out)
    }

    /// `GET /images/get`: writes one archive of every named image (blocking).
    pub fn save_images(&self, names: &[String], out: &mut dyn Write) -> Result<()> {
        if names.is_empty() {
            return Err(Error::InvalidParameter("no images specified".into()));
        }
        let images = names
            .iter()
            .map(|n| self.images.get(n))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.images.save(names, out)?;
        for (img, name) in images.iter().zip(names) {
            self.image_event("save", img, name);
        }
        Ok(())
    }

    /// `POST /images/create?fromSrc=-`: imports a rootfs tar (blocking). Returns the new image ID.
    pub fn import_image(&self, rootfs: &mut dyn Read, req: ImportRequest) -> Result<String> {
        let repo_tag = match (req.repo.filter(|r| !r.is_empty()), req.tag) {
            (Some(r), Some(t)) if !t.is_empty() => Some(format!("{r}:{t}")),
            (Some(r), _) => Some(r),
            (None, _) => None,
        };
        let (os, arch) = match req.platform.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => {
                let mut parts = p.split('/');
                (
                    parts.next().map(str::to_owned),
                    parts.next().map(str::to_owned),
                )
            }
            None => (None, None),
        };
        let opts = image::ImportOptions {
            repo_tag,
            changes: req.changes,
            message: req.message.unwrap_or_default(),
            platform_os: os,
            platform_arch: arch,
        };
        let img = self.images.import(rootfs, &opts)?;
        let id = img.id.to_string();
        self.image_event("import", &img, &id);
        if let Some(r) = img.repo_tags.first() {
            self.image_event("tag", &img, &r.familiar());
        }
        Ok(id)
    }

    /// For each image some container uses, one running and one stopped user (by image ID). Call with
    /// `image_use` held for writing, so no create slips in between.
    fn image_users(&self) -> HashMap<String, image::ImageUsers> {
        let mut users: HashMap<String, image::ImageUsers> = HashMap::new();
        for c in self.containers.list() {
            let u = users.entry(c.image_id.clone()).or_default();
            let running = matches!(
                c.state.status,
                Status::Running | Status::Paused | Status::Restarting
            );
            let slot = if running {
                &mut u.running
            } else {
                &mut u.stopped
            };
            slot.get_or_insert(c.id);
        }
        // A build under way uses its images as a running container would: named by the build's ID.
        for (image, build) in self.builds.held_images() {
            users.entry(image).or_default().running.get_or_insert(build);
        }
        users
    }

    /// Images and their sizes, for `info` and `system df`.
    pub(crate) async fn all_images(&self) -> Result<Vec<Image>> {
        self.blocking(|s| Ok(s.list()?)).await
    }

    fn delete_items(&self, img: &Image, items: Vec<DeleteItem>) -> Vec<ImageDeleteResponseItem> {
        items
            .into_iter()
            .map(|item| {
                // dockerd names the image by its ID in untag and delete events, not by the tag.
                match &item {
                    DeleteItem::Untagged(_) => self.image_event("untag", img, &img.id.to_string()),
                    DeleteItem::Deleted(id) if *id == img.id.to_string() => {
                        self.image_event("delete", img, id)
                    }
                    DeleteItem::Deleted(_) => {}
                }
                delete_item(item)
            })
            .collect()
    }

    /// Publishes the `tag` event of a tag a build gave.
    pub(crate) fn image_tagged(&self, img: &Image, name: &str) {
        self.image_event("tag", img, name);
    }

    /// Publishes an image event the way dockerd does: Actor.ID is the image ID, `name` the reference used.
    pub(crate) fn image_event(&self, action: &str, img: &Image, name: &str) {
        let mut attrs: BTreeMap<String, String> = img
            .config
            .config
            .as_ref()
            .and_then(|c| c.labels.clone())
            .map(|l| l.into_iter().collect())
            .unwrap_or_default();
        attrs.insert("name".into(), name.to_owned());
        self.events
            .publish(Event::new("image", action, &img.id.to_string(), attrs));
    }
}

/// Each image's `SharedSize`, by ID: the sizes of its layers that other images (any image in the store,
/// intermediate ones included, as dockerd counts them) also stack, layer identity being the chain ID.
pub(crate) fn shared_sizes(all: &[Image]) -> HashMap<String, i64> {
    let mut refs: HashMap<&image::Digest, usize> = HashMap::new();
    for img in all {
        for l in &img.layers {
            *refs.entry(&l.chain_id).or_default() += 1;
        }
    }
    all.iter()
        .map(|img| {
            let shared = img
                .layers
                .iter()
                .filter(|l| refs.get(&l.chain_id).is_some_and(|n| *n > 1))
                .map(|l| l.size as i64)
                .sum();
            (img.id.to_string(), shared)
        })
        .collect()
}

fn delete_item(item: DeleteItem) -> ImageDeleteResponseItem {
    match item {
        DeleteItem::Untagged(r) => ImageDeleteResponseItem {
            untagged: Some(r),
            deleted: None,
        },
        DeleteItem::Deleted(id) => ImageDeleteResponseItem {
            untagged: None,
            deleted: Some(id),
        },
    }
}

fn label<'a>(img: &'a Image, key: &str) -> Option<&'a str> {
    img.config
        .config
        .as_ref()?
        .labels
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn matches_name(img: &Image, name: &str) -> bool {
    let hex = img.id.hex();
    let bare = name.trim_start_matches("sha256:");
    (!bare.is_empty() && hex.starts_with(bare))
        || img
            .repo_tags
            .iter()
            .any(|r| r.familiar() == name || r.to_string() == name || r.familiar_name() == name)
}

/// The image's creation time in unix seconds (0 when the config has none).
pub(crate) fn created_unix(img: &Image) -> i64 {
    img.config
        .created
        .as_deref()
        .and_then(image::timefmt::parse)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Docker's timestamps in filters (`until`) and `since`/`until`, read as dockerd's `GetTimestamp` reads
/// them: a Go duration before now (`24h`, `1h30m`), RFC 3339, a date or date-time without a zone (in local
/// time), or unix seconds with an optional fraction. Returns unix nanoseconds.
pub fn parse_timestamp(s: &str) -> Result<i64> {
    let bad = || {
        Error::InvalidParameter(format!(
            "failed to parse value as time or duration: \"{s}\""
        ))
    };
    if s != "0" {
        if let Ok(ago) = build::go_duration_nanos(s) {
            // dockerd keeps whole seconds of `now - duration`.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| bad())?
                .as_nanos() as i64;
            return Ok((now - ago).div_euclid(1_000_000_000) * 1_000_000_000);
        }
    }
    if let Some(t) = image::timefmt::parse(s) {
        let d = t.duration_since(std::time::UNIX_EPOCH).map_err(|_| bad())?;
        return Ok(d.as_nanos() as i64);
    }
    let zoned = s.contains(['z', 'Z', '+']) || s.matches('-').count() == 3;
    if !zoned && s.contains('-') {
        return local_time_nanos(s).ok_or_else(bad);
    }
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    let frac = if frac.is_empty() {
        0
    } else {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse::<i64>().map_err(|_| bad())?
    };
    Ok(secs * 1_000_000_000 + frac)
}

/// `2006-01-02`, `2006-01-02T15`, `…T15:04`, `…T15:04:05` and `…T15:04:05.999999999` in local time.
fn local_time_nanos(s: &str) -> Option<i64> {
    use chrono::{NaiveDate, NaiveDateTime, TimeZone};
    let naive = match s.split_once('T') {
        None => NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)?,
        Some((_, time)) => {
            let full = match time.matches(':').count() {
                0 => format!("{s}:00:00"),
                1 => format!("{s}:00"),
                _ => s.to_owned(),
            };
            NaiveDateTime::parse_from_str(&full, "%Y-%m-%dT%H:%M:%S%.f").ok()?
        }
    };
    let t = chrono::Local.from_local_datetime(&naive).earliest()?;
    t.timestamp_nanos_opt()
}

fn summary(img: &Image) -> ImageSummary {
    let labels: HashMap<String, String> = img
        .config
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .map(|l| l.into_iter().collect())
        .unwrap_or_default();
    ImageSummary {
        id: img.id.to_string(),
        parent_id: img
            .parent
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default(),
        repo_tags: img.repo_tags.iter().map(|r| r.familiar()).collect(),
        repo_digests: img.repo_digests.clone(),
        created: created_unix(img),
        size: img.size as i64,
        shared_size: -1,
        virtual_size: None,
        labels,
        containers: -1,
        manifests: None,
        descriptor: None,
    }
}

fn inspect(img: &Image, dirs: &[std::path::PathBuf]) -> ImageInspect {
    let c = &img.config;
    let config: Option<ImageConfig> = c
        .config
        .as_ref()
        .and_then(|cc| serde_json::to_value(cc).ok())
        .and_then(|v| serde_json::from_value(v).ok());
    let mut data = HashMap::new();
    if let Some((top, lower)) = dirs.split_first() {
        data.insert("UpperDir".to_owned(), top.display().to_string());
        if !lower.is_empty() {
            let joined: Vec<String> = lower.iter().map(|d| d.display().to_string()).collect();
            data.insert("LowerDir".to_owned(), joined.join(":"));
        }
    }
    ImageInspect {
        id: Some(img.id.to_string()),
        repo_tags: Some(img.repo_tags.iter().map(|r| r.familiar()).collect()),
        repo_digests: Some(img.repo_digests.clone()),
        parent: Some(
            img.parent
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
        ),
        comment: Some(c.comment.clone().unwrap_or_default()),
        created: c.created.clone(),
        docker_version: Some(c.docker_version.clone().unwrap_or_default()),
        author: Some(c.author.clone().unwrap_or_default()),
        config,
        architecture: Some(c.architecture.clone()),
        variant: c.variant.clone(),
        os: Some(c.os.clone()),
        os_version: c.os_version.clone(),
        size: Some(img.size as i64),
        graph_driver: Some(DriverData {
            name: crate::system::STORAGE_DRIVER.into(),
            data,
        }),
        root_fs: Some(ImageInspectRootFs {
            typ: "layers".into(),
            layers: Some(img.layers.iter().map(|l| l.diff_id.to_string()).collect()),
        }),
        metadata: Some(ImageInspectMetadata {
            last_tag_time: img.last_tag_time.clone(),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_accept_unix_fractions_and_rfc3339() {
        assert_eq!(parse_timestamp("10").unwrap(), 10_000_000_000);
        assert_eq!(parse_timestamp("10.5").unwrap(), 10_500_000_000);
        assert_eq!(
            parse_timestamp("soon").unwrap_err().to_string(),
            "failed to parse value as time or duration: \"soon\""
        );
        // Durations count back from now, in whole seconds.
        let now = chrono::Utc::now().timestamp();
        let day_ago = parse_timestamp("24h").unwrap() / 1_000_000_000;
        assert!((now - 86_400 - day_ago).abs() <= 1, "{day_ago}");
        let mixed = parse_timestamp("1h30m").unwrap() / 1_000_000_000;
        assert!((now - 5_400 - mixed).abs() <= 1);
        // "0" is the epoch, not a zero duration.
        assert_eq!(parse_timestamp("0").unwrap(), 0);
        // Dates without a zone are local time.
        let local = chrono::NaiveDate::from_ymd_opt(2024, 3, 1)
            .unwrap()
            .and_hms_opt(12, 30, 0)
            .unwrap()
            .and_local_timezone(chrono::Local)
            .unwrap()
            .timestamp();
        assert_eq!(
            parse_timestamp("2024-03-01T12:30").unwrap(),
            local * 1_000_000_000
        );
        assert_eq!(
            parse_timestamp("2024-03-01T12:30:00Z").unwrap(),
            1_709_296_200_000_000_000
        );
    }
}
