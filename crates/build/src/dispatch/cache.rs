//! The classic builder's cache: a step is a hit when an image whose parent is the current
//! image has a `container_config` equal to the step's under dockerd's comparison rules
//! (`daemon/images/cache.go`), which ignore some fields on purpose.

use std::collections::BTreeMap;

use crate::backend::Base;
use crate::image_config::{ImageConfig, RunConfig};

/// dockerd's comparison of two step configurations: `OpenStdin` never matches; `AttachStdout`,
/// `AttachStderr`, `User`, `Tty` must be equal; `Cmd`, `Env`, `Entrypoint` element-wise;
/// `Labels` as maps; `ExposedPorts` and `Volumes` as sets. Everything else (`Hostname`,
/// `Image`, `WorkingDir`, `Healthcheck`, `Shell`, ...) is not compared: the step's `Cmd` (with
/// its `#(nop)` comment) already tells those steps apart.
pub fn compare(a: &RunConfig, b: &RunConfig) -> bool {
    if a.open_stdin || b.open_stdin {
        return false;
    }
    fn list(v: &Option<Vec<String>>) -> &[String] {
        v.as_deref().unwrap_or(&[])
    }
    fn keys<V>(m: &Option<BTreeMap<String, V>>) -> Vec<&String> {
        m.as_ref().map(|m| m.keys().collect()).unwrap_or_default()
    }
    let empty = BTreeMap::new();
    a.attach_stdout == b.attach_stdout
        && a.attach_stderr == b.attach_stderr
        && a.user == b.user
        && a.tty == b.tty
        && list(&a.cmd) == list(&b.cmd)
        && list(&a.env) == list(&b.env)
        && list(&a.entrypoint) == list(&b.entrypoint)
        && a.labels.as_ref().unwrap_or(&empty) == b.labels.as_ref().unwrap_or(&empty)
        && keys(&a.exposed_ports) == keys(&b.exposed_ports)
        && keys(&a.volumes) == keys(&b.volumes)
}

/// The child that satisfies `step`, the most recently created one when several do.
pub fn pick(children: Vec<Base>, step: &RunConfig) -> Option<Base> {
    children
        .into_iter()
        .filter(|c| {
            c.config
                .container_config
                .as_ref()
                .is_some_and(|cc| compare(cc, step))
        })
        .max_by(|x, y| created(x).cmp(&created(y)))
}

/// What `--cache-from` offers for a step.
#[derive(Debug, Clone, PartialEq)]
pub enum FromSource {
    /// The source image itself is the step's result (the step is its last history entry).
    Whole(Base),
    /// An image to make from the parent's layers and the source's layer for this step.
    Restore {
        /// The source image it comes from.
        source: String,
        /// The configuration of the image to make.
        config: ImageConfig,
    },
}

/// dockerd's `--cache-from` match: a source image whose history and layers start with
/// `parent`'s, and whose next history entry was made by `step`'s command.
pub fn from_sources(
    sources: &[Base],
    parent: &ImageConfig,
    step: &RunConfig,
) -> Option<FromSource> {
    let created_by = step.cmd.as_deref().unwrap_or(&[]).join(" ");
    let n = parent.history.len();
    let target = sources.iter().find(|t| {
        is_valid_parent(&t.config, parent)
            && t.config
                .history
                .get(n)
                .is_some_and(|h| h.created_by == created_by)
    })?;
    let t = &target.config;
    if t.history.len() == n + 1 {
        return Some(FromSource::Whole(target.clone()));
    }
    let entry = t.history[n].clone();
    let mut rootfs = parent.rootfs.clone();
    if !entry.empty_layer {
        let index = t.history[..n].iter().filter(|h| !h.empty_layer).count();
        rootfs.diff_ids.push(t.rootfs.diff_ids.get(index)?.clone());
    }
    let mut history = parent.history.clone();
    history.push(entry);
    // As dockerd's restoreCachedImage: the step's config as the image's, an empty step config.
    let config = ImageConfig {
        architecture: t.architecture.clone(),
        author: t.author.clone(),
        config: Some(step.clone()),
        container_config: Some(RunConfig::default()),
        created: history
            .last()
            .map(|h| h.created.clone())
            .unwrap_or_default(),
        history,
        os: t.os.clone(),
        rootfs,
        extra: t
            .extra
            .iter()
            .filter(|(k, _)| k.starts_with("os."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..Default::default()
    };
    Some(FromSource::Restore {
        source: target.id.clone(),
        config,
    })
}

/// Whether `parent`'s history and layers are a prefix of `img`'s (dockerd's `isValidParent`).
pub fn is_valid_parent(img: &ImageConfig, parent: &ImageConfig) -> bool {
    if img.history.is_empty() {
        return false;
    }
    if parent.history.is_empty() && parent.rootfs.diff_ids.is_empty() {
        return true;
    }
    parent.history.len() < img.history.len()
        && parent.rootfs.diff_ids.len() <= img.rootfs.diff_ids.len()
        && img.history.starts_with(&parent.history)
        && img.rootfs.diff_ids.starts_with(&parent.rootfs.diff_ids)
}

fn created(b: &Base) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(&b.config.created).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_config::Empty;

    fn cfg(cmd: &[&str]) -> RunConfig {
        RunConfig {
            cmd: Some(cmd.iter().map(|s| s.to_string()).collect()),
            env: Some(vec!["PATH=/bin".into()]),
            ..Default::default()
        }
    }

    #[test]
    fn compare_follows_dockerd_rules() {
        let a = cfg(&["/bin/sh", "-c", "make"]);
        let mut b = a.clone();
        b.hostname = "abc".into();
        b.image = "sha256:other".into();
        b.working_dir = "/elsewhere".into();
        assert!(
            compare(&a, &b),
            "Hostname, Image and WorkingDir are not compared"
        );
        b.open_stdin = true;
        assert!(!compare(&a, &b), "OpenStdin never matches");
        let mut c = a.clone();
        c.env = Some(vec!["PATH=/bin".into(), "A=1".into()]);
        assert!(!compare(&a, &c));
        let mut d = a.clone();
        d.cmd = Some(vec!["/bin/sh".into(), "-c".into(), "make all".into()]);
        assert!(!compare(&a, &d));
        let mut e = a.clone();
        e.volumes = Some(BTreeMap::from([("/v".to_string(), Empty {})]));
        assert!(!compare(&a, &e));
        let mut f = a.clone();
        f.volumes = Some(BTreeMap::new());
        assert!(compare(&a, &f), "an empty set equals none");
        let mut g = a.clone();
        g.user = "app".into();
        assert!(!compare(&a, &g));
        let mut h = a.clone();
        h.labels = Some(BTreeMap::from([("k".to_string(), "v".to_string())]));
        assert!(!compare(&a, &h));
    }

    #[test]
    fn pick_prefers_the_newest_match() {
        let step = cfg(&["x"]);
        let child = |id: &str, created: &str, cmd: &[&str]| Base {
            id: id.into(),
            config: ImageConfig {
                created: created.into(),
                container_config: Some(cfg(cmd)),
                ..Default::default()
            },
        };
        let got = pick(
            vec![
                child("old", "2026-01-01T00:00:00.5Z", &["x"]),
                child("new", "2026-01-01T00:00:01Z", &["x"]),
                child("other", "2026-01-02T00:00:00Z", &["y"]),
            ],
            &step,
        );
        assert_eq!(got.map(|b| b.id), Some("new".to_string()));
    }
}
