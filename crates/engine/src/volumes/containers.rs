//! Containers and their volumes, as dockerd handles them:
//! - at create, `-v NAME:/ctr[:mode]`, `-v /ctr` (anonymous), `--mount type=volume,…` and the image's `VOLUME`s
//!   (anonymous, unless a mount already covers the path) become volumes referenced by the container (created
//!   if missing: `volume create` events), shown in inspect's `Mounts`; an empty volume over a directory that
//!   has content in the image gets that content (copy-up, see `copy.rs`), unless `nocopy` was asked;
//! - at start they are mounted (the driver's mount for volumes with options; `volume mount` events) and bound
//!   into the container; at the exit they are unmounted (`volume unmount`);
//! - at removal the references go, and with `rm -v` or `--rm` the anonymous volumes too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use bollard_stubs::models::{HostConfig, MountPoint, MountPointTypeEnum, MountTypeEnum};

use super::copy::{self, Outcome};
use super::store::{Record, VolumeStore, ANONYMOUS_LABEL};
use crate::containers::mounts::UserMount;
use crate::containers::record::Container;
use crate::containers::rootfs::Layout;
use crate::error::{Error, Result};
use crate::Engine;

/// A volume mount a container asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VolumeSpec {
    /// The volume's name; `None` for an anonymous volume.
    pub name: Option<String>,
    /// Where it goes in the container (cleaned).
    pub destination: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// inspect's `Mode`: the `-v` options as written, `z` when none (dockerd's default for local volumes),
    /// empty for the image's `VOLUME`s.
    pub mode: String,
    /// Copy the image's content into the volume when it is empty (not with `nocopy`).
    pub copy: bool,
    /// The driver asked for (`--mount …,volume-driver=…`).
    pub driver: String,
    /// Driver options for a volume this mount creates (`--mount …,volume-opt=k=v`).
    pub options: Option<BTreeMap<String, String>>,
    /// Labels for a volume this mount creates (`--mount …,volume-label=k=v`).
    pub labels: Option<BTreeMap<String, String>>,
    /// From the image's `VOLUME` (or `Config.Volumes`): an existing file there is an error.
    pub from_config: bool,
}

/// Whether a `-v` spec names a volume (or is a lone container path, an anonymous volume) rather than a host
/// path: those are the volume store's, the others `containers::mounts`'. (`/path:rw`, a container path with
/// a mode, is also ours: dockerd refuses it as a volume specification.)
pub fn is_volume_bind(spec: &str) -> bool {
    let parts: Vec<&str> = spec.splitn(4, ':').collect();
    match parts.as_slice() {
        [_] => true,
        [_, second] if valid_mode(second) => true,
        [first, ..] => !first.starts_with('/'),
        [] => true,
    }
}

/// The volume mounts of a create request (`Binds` naming volumes, `Mounts` of type volume), checked with
/// dockerd's rules and words.
pub fn parse_specs(h: &HostConfig) -> Result<Vec<VolumeSpec>> {
    let mut out = Vec::new();
    for raw in h.binds.iter().flatten().filter(|b| is_volume_bind(b)) {
        out.push(parse_bind(raw)?);
    }
    for m in h.mounts.iter().flatten() {
        if m.typ == Some(MountTypeEnum::VOLUME) {
            out.push(parse_mount(m)?);
        }
    }
    Ok(out)
}

fn parse_bind(raw: &str) -> Result<VolumeSpec> {
    let invalid = || Error::InvalidParameter(format!("invalid volume specification: '{raw}'"));
    let arr: Vec<&str> = raw.splitn(4, ':').collect();
    if arr[0].is_empty() {
        return Err(invalid());
    }
    let (source, target, mode) = match arr.as_slice() {
        [t] => ("", *t, ""),
        [_, m] if valid_mode(m) => return Err(invalid()),
        [s, t] => (*s, *t, ""),
        [s, t, m] => (*s, *t, *m),
        _ => return Err(invalid()),
    };
    if !valid_mode(mode) {
        return Err(Error::InvalidParameter(format!("invalid mode: {mode}")));
    }
    let config_err = |e: &str| {
        Error::InvalidParameter(format!(
            "invalid volume specification: '{raw}': invalid mount config for type \"volume\": {e}"
        ))
    };
    let opts: Vec<&str> = mode.split(',').filter(|o| !o.is_empty()).collect();
    if opts.iter().any(|o| PROPAGATION.contains(o)) {
        return Err(config_err("field BindOptions must not be specified"));
    }
    check_target(target).map_err(|e| config_err(&e))?;
    Ok(VolumeSpec {
        name: Some(source.to_owned()).filter(|s| !s.is_empty()),
        destination: clean(target),
        read_only: opts.contains(&"ro"),
        mode: if mode.is_empty() {
            "z".into()
        } else {
            mode.into()
        },
        copy: !opts.contains(&"nocopy"),
        ..Default::default()
    })
}

fn parse_mount(m: &bollard_stubs::models::Mount) -> Result<VolumeSpec> {
    let config_err =
        |e: &str| Error::InvalidParameter(format!("invalid mount config for type \"volume\": {e}"));
    if m.bind_options.is_some() {
        return Err(config_err("field BindOptions must not be specified"));
    }
    if m.tmpfs_options.is_some() {
        return Err(config_err("field TmpfsOptions must not be specified"));
    }
    if m.image_options.is_some() {
        return Err(config_err("field ImageOptions must not be specified"));
    }
    let target = m.target.clone().unwrap_or_default();
    if target.is_empty() {
        return Err(config_err("field Target must not be empty"));
    }
    check_target(&target).map_err(|e| config_err(&e))?;
    let source = m.source.clone().unwrap_or_default();
    let vo = m.volume_options.as_ref();
    if let Some(sub) = vo
        .and_then(|v| v.subpath.as_deref())
        .filter(|s| !s.is_empty())
    {
        if source.is_empty() {
            return Err(config_err(
                "must not set Subpath when using anonymous volumes",
            ));
        }
        return Err(Error::InvalidParameter(format!(
            "volume subpaths (volume-subpath={sub}) are not supported by Berth yet"
        )));
    }
    let sorted = |m: Option<&std::collections::HashMap<String, String>>| {
        m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
    };
    let driver_config = vo.and_then(|v| v.driver_config.as_ref());
    Ok(VolumeSpec {
        name: Some(source).filter(|s| !s.is_empty()),
        destination: clean(&target),
        read_only: m.read_only == Some(true),
        mode: "z".into(),
        copy: vo.and_then(|v| v.no_copy) != Some(true),
        driver: driver_config
            .and_then(|d| d.name.clone())
            .unwrap_or_default(),
        options: driver_config.and_then(|d| sorted(d.options.as_ref())),
        labels: vo.and_then(|v| sorted(v.labels.as_ref())),
        from_config: false,
    })
}

const PROPAGATION: &[&str] = &[
    "private", "rprivate", "slave", "rslave", "shared", "rshared",
];

/// dockerd's `-v` mode check: known options, at most one of each kind.
fn valid_mode(mode: &str) -> bool {
    if mode.is_empty() {
        return true;
    }
    let kinds: [&[&str]; 5] = [
        &["rw", "ro"],
        &["z", "Z"],
        PROPAGATION,
        &["nocopy"],
        &["consistent", "cached", "delegated"],
    ];
    let mut counts = [0usize; 5];
    for o in mode.split(',') {
        match kinds.iter().position(|k| k.contains(&o)) {
            Some(i) => counts[i] += 1,
            None => return false,
        }
    }
    counts.iter().all(|c| *c <= 1)
}

fn check_target(target: &str) -> std::result::Result<(), String> {
    if clean(target) == "/" {
        return Err("invalid specification: destination can't be '/'".into());
    }
    if !target.starts_with('/') {
        return Err(format!(
            "invalid mount path: '{target}' mount path must be absolute"
        ));
    }
    Ok(())
}

/// Go's `path.Clean` for absolute paths.
fn clean(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if p.starts_with('/') {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// What a container's create needs to undo if a later step fails.
struct Made {
    record: Record,
    spec: VolumeSpec,
}

impl Engine {
    /// At container create, right after its record is written: creates (or finds) its volumes, adds them to
    /// the record's mounts and copies image content up. On failure everything is undone, the container record
    /// included, and the error returned.
    pub(crate) async fn setup_container_volumes(&self, c: Container) -> Result<Container> {
        let mut made = Vec::new();
        let result = self.setup_volumes_inner(&c, &mut made).await;
        match result {
            Ok(c) => Ok(c),
            Err(e) => {
                let id = c.id.clone();
                let engine_containers = &self.containers;
                if let Err(e) = engine_containers.remove(&id) {
                    tracing::warn!(id = %id, error = %e, "removing a container whose volumes failed");
                }
                // Volumes brought by `--volumes-from` were only referenced.
                for m in volume_points(&c) {
                    if let Some(name) = m.name.as_deref() {
                        self.volumes.release(name, &id);
                    }
                }
                for m in made {
                    self.volumes.release(&m.record.name, &id);
                    if m.spec.name.is_none() {
                        if let Ok(r) = self.volumes.remove(&m.record.name) {
                            self.volume_event("destroy", &r.name, &[("driver", &r.driver)]);
                        }
                    }
                }
                Err(e)
            }
        }
    }

    async fn setup_volumes_inner(&self, c: &Container, made: &mut Vec<Made>) -> Result<Container> {
        let mut specs = parse_specs(&c.host_config)?;
        let mut taken: BTreeSet<String> = c
            .mounts
            .iter()
            .filter_map(|m| m.destination.as_deref())
            .map(clean)
            .collect();
        taken.extend(c.host_config.tmpfs.iter().flatten().map(|(d, _)| clean(d)));
        for s in &specs {
            if !taken.insert(s.destination.clone()) {
                return Err(Error::InvalidParameter(format!(
                    "Duplicate mount point: {}",
                    s.destination
                )));
            }
        }
        // The image's VOLUMEs (and Config.Volumes, where the docker CLI puts `-v /path`): anonymous volumes
        // where nothing else is mounted.
        let mut config_volumes: Vec<String> = c.config.volumes.clone().unwrap_or_default();
        config_volumes.sort();
        for v in config_volumes {
            let destination = clean(&v);
            if !destination.starts_with('/')
                || destination == "/"
                || !taken.insert(destination.clone())
            {
                continue;
            }
            specs.push(VolumeSpec {
                destination,
                copy: true,
                from_config: true,
                ..Default::default()
            });
        }
        if specs.is_empty() {
            return Ok(c.clone());
        }
        for spec in specs {
            let (name, mut labels) = match &spec.name {
                Some(n) => (n.clone(), spec.labels.clone()),
                None => (super::random_name()?, spec.labels.clone()),
            };
            if spec.name.is_none() {
                labels
                    .get_or_insert_with(BTreeMap::new)
                    .insert(ANONYMOUS_LABEL.into(), String::new());
                self.containers.note_created_volume(&c.id, &name)?;
            }
            let record = self
                .make_volume(
                    name,
                    spec.driver.clone(),
                    spec.options.clone(),
                    labels,
                    Some(c.id.clone()),
                )
                .await?;
            made.push(Made { record, spec });
        }
        let points: Vec<MountPoint> = made
            .iter()
            .map(|m| MountPoint {
                typ: Some(MountPointTypeEnum::VOLUME),
                name: Some(m.record.name.clone()),
                source: Some(self.volumes.data_path(&m.record.name).display().to_string()),
                destination: Some(m.spec.destination.clone()),
                driver: Some(m.record.driver.clone()),
                mode: Some(if m.spec.from_config {
                    String::new()
                } else {
                    m.spec.mode.clone()
                }),
                rw: Some(!m.spec.read_only),
                propagation: Some(String::new()),
            })
            .collect();
        // Copy-up needs the image's view of each path; volumes with mount options are skipped (dockerd would
        // copy into a mount it undoes right after).
        let jobs: Vec<(String, PathBuf, bool, bool)> = made
            .iter()
            .filter(|m| m.spec.copy || m.spec.from_config)
            .filter(|m| !m.record.needs_mount())
            .map(|m| {
                (
                    m.spec.destination.clone(),
                    self.volumes.data_path(&m.record.name),
                    m.spec.copy,
                    m.spec.from_config,
                )
            })
            .collect();
        if !jobs.is_empty() {
            let img = {
                let id = c.image_id.clone();
                self.blocking(move |s| Ok(s.get(&id)?)).await?
            };
            let layers = self.images.layer_dirs(&img);
            let dir = self.containers.dir(&c.id);
            tokio::task::spawn_blocking(move || copy_up(&dir, &layers, &jobs)).await??;
        }
        self.containers.update(&c.id, |c| c.mounts.extend(points))
    }

    /// At start: mounts the container's volumes (publishing `mount` events) and returns them as bind mounts
    /// for the OCI spec.
    pub(crate) fn mount_container_volumes(&self, c: &Container) -> Result<Vec<UserMount>> {
        let mut out = Vec::new();
        for m in volume_points(c) {
            let (Some(name), Some(dest)) = (m.name.as_deref(), m.destination.as_deref()) else {
                continue;
            };
            let path = match self.volumes.mount(name, &c.id) {
                Ok(p) => p,
                Err(e) => {
                    self.unmount_container_volumes(&c.id);
                    return Err(e);
                }
            };
            let rw = m.rw != Some(false);
            self.volume_event(
                "mount",
                name,
                &[
                    ("container", &c.id),
                    ("destination", dest),
                    ("driver", m.driver.as_deref().unwrap_or("local")),
                    ("propagation", ""),
                    ("read/write", if rw { "true" } else { "false" }),
                ],
            );
            out.push(UserMount {
                kind: "bind",
                source: path.display().to_string(),
                destination: dest.to_owned(),
                read_only: !rw,
                propagation: "rprivate".into(),
                recursion: crate::containers::mounts::Recursion::Enabled,
                mode: m.mode.clone().unwrap_or_default(),
                data: String::new(),
            });
        }
        Ok(out)
    }

    /// When the container stops (or fails to start): ends its use of its volumes (`unmount` events).
    pub(crate) fn unmount_container_volumes(&self, id: &str) {
        for (name, driver) in self.volumes.unmount_all(id) {
            self.volume_event("unmount", &name, &[("container", id), ("driver", &driver)]);
        }
    }

    /// After a daemon restart, for a container still running: its volumes count as in use again.
    pub(crate) fn restore_container_volumes(&self, c: &Container) {
        for m in volume_points(c) {
            if let Some(name) = m.name.as_deref() {
                self.volumes.live_restore(name, &c.id);
            }
        }
    }

    /// When the container is removed: drops its references, and with `remove_anonymous` (`rm -v`, `--rm`)
    /// removes its anonymous volumes (those still used elsewhere stay, silently, as in Docker).
    pub(crate) async fn release_container_volumes(&self, c: &Container, remove_anonymous: bool) {
        let named: BTreeSet<String> = parse_specs(&c.host_config)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|s| s.name)
            .collect();
        for m in volume_points(c) {
            let Some(name) = m.name.as_deref() else {
                continue;
            };
            self.volumes.release(name, &c.id);
            if !remove_anonymous || named.contains(name) {
                continue;
            }
            let volumes = Arc::clone(&self.volumes);
            let n = name.to_owned();
            match self.teardown_blocking(move || volumes.remove(&n)).await {
                Ok(Ok(r)) => self.volume_event("destroy", &r.name, &[("driver", &r.driver)]),
                Ok(Err(Error::Conflict(_) | Error::NotFound(_))) => {}
                Ok(Err(e)) => {
                    tracing::warn!(volume = name, error = %e, "removing an anonymous volume failed")
                }
                Err(e) => {
                    tracing::warn!(volume = name, error = %e, "removing an anonymous volume failed")
                }
            }
        }
    }
}

/// A container's volume mounts.
fn volume_points(c: &Container) -> impl Iterator<Item = &MountPoint> {
    c.mounts
        .iter()
        .filter(|m| m.typ == Some(MountPointTypeEnum::VOLUME))
}

/// Records at daemon start which containers use which volumes (the references live in memory only; the
/// container records are the truth).
pub(crate) fn rebuild_refs(volumes: &VolumeStore, containers: &[Container]) {
    for c in containers {
        for m in volume_points(c) {
            if let Some(name) = m.name.as_deref() {
                volumes.add_ref(name, &c.id);
            }
        }
    }
}

/// Mounts the container's rootfs (its writable layer is still empty: the image's view) and copies each path
/// into its volume. `jobs`: (destination, volume data dir, copy wanted, from the image's VOLUME).
fn copy_up(
    dir: &std::path::Path,
    layers: &[PathBuf],
    jobs: &[(String, PathBuf, bool, bool)],
) -> Result<()> {
    let layout = Layout::new(dir);
    layout.mount(layers)?;
    let result = (|| {
        for (dest, data, want_copy, from_config) in jobs {
            if !want_copy {
                continue;
            }
            match copy::populate(&layout.merged, dest, data)? {
                Outcome::NotADirectory if *from_config => {
                    return Err(Error::InvalidParameter(format!(
                        "cannot mount volume over existing file, file exists {}{dest}",
                        layout.merged.display()
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    })();
    if let Err(e) = layout.unmount() {
        tracing::warn!(error = %e, "unmounting the rootfs after copying volume content");
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::{Mount, MountVolumeOptions, MountVolumeOptionsDriverConfig};

    fn binds(b: &[&str]) -> HostConfig {
        HostConfig {
            binds: Some(b.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn v_specs_parse_like_dockers() {
        let s = parse_specs(&binds(&[
            "data:/d",
            "/host:/h",
            "cache:/c/:ro,nocopy",
            "/anon",
        ]))
        .unwrap();
        assert_eq!(s.len(), 3, "the host path is a bind, not a volume");
        assert_eq!(
            (
                s[0].name.as_deref(),
                s[0].destination.as_str(),
                s[0].mode.as_str()
            ),
            (Some("data"), "/d", "z")
        );
        assert!(s[0].copy && !s[0].read_only);
        assert_eq!(
            (s[1].destination.as_str(), s[1].mode.as_str()),
            ("/c", "ro,nocopy")
        );
        assert!(s[1].read_only && !s[1].copy);
        assert_eq!(
            (s[2].name.as_deref(), s[2].destination.as_str()),
            (None, "/anon")
        );
        let err = |b: &str| parse_specs(&binds(&[b])).unwrap_err().to_string();
        assert_eq!(err("data:/d:bogus"), "invalid mode: bogus");
        assert_eq!(err("/x:rw"), "invalid volume specification: '/x:rw'");
        assert_eq!(err(":/d"), "invalid volume specification: ':/d'");
        assert_eq!(
            err("data:rel"),
            "invalid volume specification: 'data:rel': invalid mount config for type \"volume\": invalid mount path: 'rel' mount path must be absolute"
        );
        assert_eq!(
            err("data:/"),
            "invalid volume specification: 'data:/': invalid mount config for type \"volume\": invalid specification: destination can't be '/'"
        );
        assert!(err("data:/d:rshared").contains("field BindOptions must not be specified"));
        assert_eq!(err("data:/d:ro,rw"), "invalid mode: ro,rw");
    }

    #[test]
    fn mount_specs_take_volume_options() {
        let h = HostConfig {
            mounts: Some(vec![Mount {
                typ: Some(MountTypeEnum::VOLUME),
                source: Some("db".into()),
                target: Some("/var/lib/db".into()),
                read_only: Some(true),
                volume_options: Some(MountVolumeOptions {
                    no_copy: Some(true),
                    labels: Some([("a".to_owned(), "b".to_owned())].into()),
                    driver_config: Some(MountVolumeOptionsDriverConfig {
                        name: None,
                        options: Some([("type".to_owned(), "tmpfs".to_owned())].into()),
                    }),
                    subpath: None,
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let s = parse_specs(&h).unwrap();
        assert_eq!(s[0].name.as_deref(), Some("db"));
        assert!(s[0].read_only && !s[0].copy);
        assert_eq!(s[0].mode, "z");
        assert_eq!(s[0].options.as_ref().unwrap()["type"], "tmpfs");
        assert_eq!(s[0].labels.as_ref().unwrap()["a"], "b");
        let no_target = HostConfig {
            mounts: Some(vec![Mount {
                typ: Some(MountTypeEnum::VOLUME),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(
            parse_specs(&no_target).unwrap_err().to_string(),
            "invalid mount config for type \"volume\": field Target must not be empty"
        );
    }

    #[test]
    fn paths_clean_like_go() {
        assert_eq!(clean("/a/b/../c/"), "/a/c");
        assert_eq!(clean("//x/./y"), "/x/y");
        assert_eq!(clean("/.."), "/");
        assert!(is_volume_bind("/anon"));
        assert!(is_volume_bind("name:/x"));
        assert!(!is_volume_bind("/host:/x"));
    }
}
