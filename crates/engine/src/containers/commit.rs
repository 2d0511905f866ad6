//! `POST /commit` (`docker commit`): a container's changes become a new image on top of its image, with its
//! config (as given, with `--change` instructions applied, the container's config filling what is left out),
//! as dockerd's `CreateImageFromContainer` makes it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;

use super::record::{Container, Status};
use super::rootfs::Layout;
use crate::error::{Context, Error, Result};
use crate::Engine;

/// What `docker commit` asks for.
#[derive(Debug, Default, Clone)]
pub struct CommitRequest {
    /// The container, by name or ID.
    pub container: String,
    /// `repo` of the new image's tag, if any.
    pub repo: Option<String>,
    /// Its tag (`latest` when a repo is given without one).
    pub tag: Option<String>,
    /// `-m`.
    pub comment: String,
    /// `-a`.
    pub author: String,
    /// Freeze the container while its changes are read (`-p`, the default).
    pub pause: bool,
    /// `-c` Dockerfile instructions applied to the config.
    pub changes: Vec<String>,
    /// A config given in the body (the container's own when absent), as JSON.
    pub config: Option<serde_json::Value>,
}

/// Mount points the runtime makes in a container's upper dir; Docker keeps them in an "init" layer below the
/// container's, so they are never part of a commit (nor of `docker diff`).
pub(crate) const INIT_PATHS: &[&str] = &[
    ".dockerenv",
    "dev",
    "etc/hostname",
    "etc/hosts",
    "etc/mtab",
    "etc/resolv.conf",
    "proc",
    "sys",
];

impl Engine {
    /// Commits a container; returns the new image's ID.
    pub async fn commit_container(self: &Arc<Self>, req: CommitRequest) -> Result<String> {
        let c = self.containers.resolve(&req.container)?;
        match c.state.status {
            Status::Dead => {
                return Err(Error::Conflict(format!(
                    "You cannot commit container {} which is Dead",
                    c.id
                )))
            }
            Status::Removing => {
                return Err(Error::Conflict(format!(
                    "cannot commit container {} which is being removed",
                    c.id
                )))
            }
            _ => {}
        }
        let tag = match req.repo.as_deref().filter(|r| !r.is_empty()) {
            Some(repo) => Some(format!(
                "{repo}:{}",
                req.tag
                    .as_deref()
                    .filter(|t| !t.is_empty())
                    .unwrap_or("latest")
            )),
            None => None,
        };
        let config = commit_config(&c, req.config.as_ref(), &req.changes)?;
        let paused = req.pause && c.state.status == Status::Running;
        if paused {
            self.pause_container(&c.id).await?;
        }
        let made = self.commit_layer(&c, config, &req, tag.clone()).await;
        if paused {
            if let Err(e) = self.unpause_container(&c.id).await {
                tracing::warn!(container = %c.id, error = %e, "unpausing after the commit");
            }
        }
        let img = made?;
        let id = img.id.to_string();
        let mut attrs = BTreeMap::new();
        attrs.insert("comment".to_owned(), req.comment.clone());
        attrs.insert("imageID".to_owned(), id.clone());
        attrs.insert("imageRef".to_owned(), tag.clone().unwrap_or_default());
        self.container_event_with("commit", &c, attrs);
        Ok(id)
    }

    /// The container's changes as a layer (read from its upper dir while they are written into the image
    /// store, through a pipe), and the new image.
    async fn commit_layer(
        &self,
        c: &Container,
        config: image::ContainerConfig,
        req: &CommitRequest,
        tag: Option<String>,
    ) -> Result<image::Image> {
        let _using = self.image_use.read().await;
        let parent = self.images.get(&c.image_id)?;
        let container_config: image::ContainerConfig = to_image_config(&c.config)?;
        let now = image::timefmt::rfc3339_nano(std::time::SystemTime::now());
        let mut cfg = parent.config.clone();
        cfg.created = Some(now.clone());
        cfg.author = Some(req.author.clone()).filter(|a| !a.is_empty());
        cfg.comment = Some(req.comment.clone()).filter(|a| !a.is_empty());
        cfg.container = Some(c.id.clone());
        cfg.docker_version = Some(crate::VERSION.to_owned());
        cfg.history.push(image::History {
            created: Some(now),
            created_by: Some(container_config.cmd.clone().unwrap_or_default().join(" ")),
            author: cfg.author.clone(),
            comment: cfg.comment.clone(),
            empty_layer: false,
        });
        cfg.container_config = Some(container_config);
        cfg.config = Some(config);
        let request = image::CommitRequest {
            parent: Some(parent.id.clone()),
            config: cfg,
            tags: tag.into_iter().collect(),
            keep_empty_layer: false,
        };
        let upper = Layout::new(&self.containers.dir(&c.id)).upper;
        let store = Arc::clone(&self.images);
        tokio::task::spawn_blocking(move || commit_upper(&store, request, &upper)).await?
    }
}

/// A pipe for a layer's stream between two threads, with a 1 MiB buffer where the kernel allows it: with
/// the default 64 KiB, a 100 MB layer costs thousands of switches between writer and reader.
pub(crate) fn layer_pipe() -> std::io::Result<(std::io::PipeReader, std::io::PipeWriter)> {
    let (rx, tx) = std::io::pipe()?;
    // A smaller pipe only costs switches: a refusal (a lower pipe-max-size) changes nothing else.
    let _ = rustix::pipe::fcntl_setpipe_size(&tx, 1 << 20);
    Ok((rx, tx))
}

/// Commits the changes in the upper dir `upper` as a layer with `request` (blocking): the layer is read from
/// the upper dir while the store writes it, through a pipe. `POST /commit` and every build step use it.
pub(crate) fn commit_upper(
    store: &image::ImageStore,
    request: image::CommitRequest,
    upper: &std::path::Path,
) -> Result<image::Image> {
    let (mut rx, tx) = layer_pipe().context("commit: making a pipe")?;
    let upper = upper.to_path_buf();
    let id_map = store.id_map().cloned();
    let writer = std::thread::spawn(move || write_diff(&upper, tx, id_map));
    let made = store.commit(request, Some(&mut rx as &mut dyn Read));
    // Whatever the store did, the writer ends: its pipe's reader is gone once `rx` is dropped.
    drop(rx);
    let wrote = writer
        .join()
        .map_err(|_| Error::System("commit: the layer writer panicked".into()))?;
    let img = made?;
    wrote?;
    Ok(img)
}

/// Writes the container's upper dir as a layer tar (overlay whiteouts in the AUFS form layers carry, the
/// runtime's mount points left out).
///
/// With `id_map` (`--userns-remap`), the layer carries the ids the container sees, as dockerd commits it.
fn write_diff(
    upper: &std::path::Path,
    out: impl Write,
    id_map: Option<::archive::IdMap>,
) -> Result<()> {
    let fail = |e: ::archive::Error| Error::system("commit: reading the changes", e);
    let dir = match rustix::fs::open(
        upper,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) {
        Ok(d) => Some(d),
        // Never started: no upper dir yet, and so no change.
        Err(rustix::io::Errno::NOENT) => None,
        Err(e) => {
            return Err(Error::system(
                format!("commit: opening {}", upper.display()),
                e,
            ))
        }
    };
    let mut w = ::archive::Writer::new(
        out,
        ::archive::WriteOptions {
            aufs_whiteouts: true,
            xattrs: true,
            exclude: INIT_PATHS.iter().map(|p| p.as_bytes().to_vec()).collect(),
            id_map,
            ..::archive::WriteOptions::default()
        },
    );
    if let Some(dir) = &dir {
        w.append_dir(dir, b"", None).map_err(fail)?;
    }
    w.finish().map_err(fail)?;
    Ok(())
}

/// The container config in the image store's form.
fn to_image_config(c: &bollard_stubs::models::ContainerConfig) -> Result<image::ContainerConfig> {
    serde_json::to_value(c)
        .and_then(serde_json::from_value)
        .context("commit: the container's config")
}

/// dockerd's new config: the given one (or the container's), `changes` applied, then the container's config
/// filling what it leaves out.
fn commit_config(
    c: &Container,
    given: Option<&serde_json::Value>,
    changes: &[String],
) -> Result<image::ContainerConfig> {
    let base = to_image_config(&c.config)?;
    let mut cfg = match given.filter(|v| !v.is_null()) {
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| Error::InvalidParameter(format!("invalid config: {e}")))?,
        None => base.clone(),
    };
    for change in changes.iter().filter(|c| !c.trim().is_empty()) {
        image::import::apply_change(&mut cfg, change)
            .map_err(|e| Error::InvalidParameter(e.to_string()))?;
    }
    merge(&mut cfg, &base);
    Ok(cfg)
}

/// dockerd's `merge` of a commit's config with the container's: what the new config leaves empty comes
/// from the container's, environment variables and labels by key, ports and volumes as sets.
fn merge(new: &mut image::ContainerConfig, old: &image::ContainerConfig) {
    fn empty(s: &Option<String>) -> bool {
        s.as_deref().is_none_or(str::is_empty)
    }
    if empty(&new.user) {
        new.user = old.user.clone();
    }
    match (&mut new.exposed_ports, &old.exposed_ports) {
        (Some(n), Some(o)) if !n.is_empty() => {
            for (k, v) in o {
                n.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        (n, o) => *n = o.clone(),
    }
    match (&mut new.env, &old.env) {
        (Some(n), Some(o)) if !n.is_empty() => {
            for e in o {
                let key = e.split('=').next().unwrap_or_default();
                if !n.iter().any(|x| x.split('=').next() == Some(key)) {
                    n.push(e.clone());
                }
            }
        }
        (n, o) => *n = o.clone(),
    }
    let labels = new.labels.get_or_insert_with(BTreeMap::new);
    for (k, v) in old.labels.iter().flatten() {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
    if new.entrypoint.as_ref().is_none_or(Vec::is_empty) {
        if new.cmd.as_ref().is_none_or(Vec::is_empty) {
            new.cmd = old.cmd.clone();
            new.args_escaped = old.args_escaped;
        }
        if new.entrypoint.is_none() {
            new.entrypoint = old.entrypoint.clone();
        }
    }
    if new.healthcheck.is_none() {
        new.healthcheck = old.healthcheck.clone();
    }
    if empty(&new.working_dir) {
        new.working_dir = old.working_dir.clone();
    }
    match (&mut new.volumes, &old.volumes) {
        (Some(n), Some(o)) if !n.is_empty() => {
            for (k, v) in o {
                n.insert(k.clone(), v.clone());
            }
        }
        (n, o) => *n = o.clone(),
    }
    if empty(&new.stop_signal) {
        new.stop_signal = old.stop_signal.clone();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_fills_what_the_new_config_leaves_out_as_dockerd() {
        let old = image::ContainerConfig {
            user: Some("app".into()),
            env: Some(vec!["A=1".into(), "B=2".into()]),
            cmd: Some(vec!["sh".into()]),
            working_dir: Some("/w".into()),
            labels: Some(BTreeMap::from([("l".into(), "old".into())])),
            ..Default::default()
        };
        let mut new = image::ContainerConfig {
            env: Some(vec!["B=3".into()]),
            labels: Some(BTreeMap::from([("l".into(), "new".into())])),
            ..Default::default()
        };
        merge(&mut new, &old);
        assert_eq!(new.user.as_deref(), Some("app"));
        assert_eq!(new.env, Some(vec!["B=3".into(), "A=1".into()]));
        assert_eq!(new.cmd, Some(vec!["sh".into()]));
        assert_eq!(new.working_dir.as_deref(), Some("/w"));
        assert_eq!(new.labels.unwrap()["l"], "new");

        // A new entrypoint keeps an empty CMD empty only when CMD was given; none given: the old CMD.
        let mut new = image::ContainerConfig {
            entrypoint: Some(vec!["/bin/app".into()]),
            ..Default::default()
        };
        merge(&mut new, &old);
        assert_eq!(new.cmd, None);
    }
}
