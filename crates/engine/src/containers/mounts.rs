//! Bind mounts and tmpfs mounts from `-v /host:/ctr[:opts]`, `--mount type=bind|tmpfs,…`: parsed and checked
//! as dockerd does, shown in inspect's `Mounts`, and turned into OCI mounts. Named and anonymous volumes
//! (`-v name:/ctr`, `-v /ctr`, `--mount type=volume`) are the volume store's (`crate::volumes`).

use std::path::Path;

use bollard_stubs::models::{HostConfig, MountPoint, MountPointTypeEnum, MountTypeEnum};
use oci_spec::runtime::{Mount, MountBuilder};
use oci_spec::OciSpecError;

use crate::error::{Context, Error, Result};

/// How a bind treats the mounts below its source (`--mount bind-recursive=…`, Docker 25's `BindOptions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Recursion {
    /// `enabled`: an rbind, and read-only reaches every submount where the kernel can make it so
    /// (mount_setattr, Linux 5.12); elsewhere only the top mount is read-only, as Docker.
    #[default]
    Enabled,
    /// `disabled` (`NonRecursive`): a plain bind; the source's submounts are not carried.
    Disabled,
    /// `writable` (`ReadOnlyNonRecursive`): an rbind whose submounts stay writable under a read-only top.
    Writable,
    /// `readonly` (`ReadOnlyForceRecursive`): recursively read-only, or the container is refused.
    Readonly,
}

/// Whether read-only binds can be made recursively read-only here (probed once).
fn recursive_readonly_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(runtime::rootfs::supports_recursive_readonly)
}

/// The recursion a `--mount` bind asks for, checked as dockerd checks it.
fn recursion(m: &bollard_stubs::models::Mount) -> Result<Recursion> {
    let b = m.bind_options.as_ref();
    let flag = |f: Option<Option<bool>>| f.flatten() == Some(true);
    let non_recursive = flag(b.map(|b| b.non_recursive));
    let ro_non_recursive = flag(b.map(|b| b.read_only_non_recursive));
    let ro_force = flag(b.map(|b| b.read_only_force_recursive));
    let read_only = m.read_only == Some(true);
    let conflict = |what: &str| {
        Err(Error::InvalidParameter(format!(
            "invalid mount config: options conflict: {what}"
        )))
    };
    if !read_only && ro_non_recursive {
        return conflict("Writable && ReadOnlyNonRecursive");
    }
    if !read_only && ro_force {
        return conflict("Writable && ReadOnlyForceRecursive");
    }
    if ro_non_recursive && ro_force {
        return conflict("ReadOnlyNonRecursive && ReadOnlyForceRecursive");
    }
    if non_recursive && ro_force {
        return conflict("NonRecursive && ReadOnlyForceRecursive");
    }
    if ro_force && !recursive_readonly_supported() {
        return Err(Error::InvalidParameter(
            "rro is not supported: mount_setattr is not available (kernel is older than 5.12?)"
                .into(),
        ));
    }
    Ok(if non_recursive {
        Recursion::Disabled
    } else if ro_non_recursive {
        Recursion::Writable
    } else if ro_force {
        Recursion::Readonly
    } else {
        Recursion::Enabled
    })
}

/// One mount a container gets besides its rootfs.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMount {
    /// `bind` or `tmpfs`.
    pub kind: &'static str,
    /// Host path (binds).
    pub source: String,
    /// Path inside the container.
    pub destination: String,
    /// Read-only.
    pub read_only: bool,
    /// Bind propagation (`rprivate` by default).
    pub propagation: String,
    /// What the bind does with the source's submounts.
    pub recursion: Recursion,
    /// The options as the user wrote them (inspect's `Mode`).
    pub mode: String,
    /// tmpfs options (`size=…,mode=…`).
    pub data: String,
}

/// Parses and checks the bind and tmpfs mounts of a create request (volumes are skipped). `-v` binds create a
/// missing host directory, as Docker does; `--mount` binds require it to exist. `read_only_non_recursive`
/// (a client older than API 1.44) keeps read-only binds read-only at the top only, as before Docker 25.
pub fn parse(h: &HostConfig, read_only_non_recursive: bool) -> Result<Vec<UserMount>> {
    let mut out: Vec<UserMount> = Vec::new();
    for b in h.binds.iter().flatten() {
        if !crate::volumes::is_volume_bind(b) {
            out.push(parse_bind(b)?);
        }
    }
    for m in h.mounts.iter().flatten() {
        if m.typ == Some(MountTypeEnum::VOLUME) {
            continue;
        }
        let target = m.target.clone().unwrap_or_default();
        if !target.starts_with('/') {
            return Err(Error::InvalidParameter(format!(
                "invalid mount config: invalid mount path: '{target}' mount path must be absolute"
            )));
        }
        match m.typ {
            Some(MountTypeEnum::BIND) => {
                let source = m.source.clone().unwrap_or_default();
                if !Path::new(&source).exists() {
                    return Err(Error::InvalidParameter(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                    )));
                }
                let propagation = m
                    .bind_options
                    .as_ref()
                    .and_then(|b| b.propagation.as_ref())
                    .map(|p| p.to_string())
                    .filter(|p| !p.is_empty())
                    .unwrap_or_else(|| "rprivate".into());
                out.push(UserMount {
                    kind: "bind",
                    source,
                    destination: target,
                    read_only: m.read_only == Some(true),
                    propagation,
                    recursion: recursion(m)?,
                    mode: String::new(),
                    data: String::new(),
                });
            }
            Some(MountTypeEnum::TMPFS) => {
                let mut data = Vec::new();
                if let Some(t) = &m.tmpfs_options {
                    if let Some(size) = t.size_bytes.filter(|s| *s > 0) {
                        data.push(format!("size={size}"));
                    }
                    if let Some(mode) = t.mode.filter(|m| *m > 0) {
                        data.push(format!("mode={mode:o}"));
                    }
                }
                out.push(UserMount {
                    kind: "tmpfs",
                    source: String::new(),
                    destination: target,
                    read_only: m.read_only == Some(true),
                    propagation: String::new(),
                    recursion: Recursion::Enabled,
                    mode: String::new(),
                    data: data.join(","),
                });
            }
            _ => {
                return Err(Error::InvalidParameter(format!(
                    "mounts of type {:?} are not supported by Berth yet",
                    m.typ.map(|t| t.to_string()).unwrap_or_default()
                )))
            }
        }
    }
    if read_only_non_recursive {
        for m in out.iter_mut() {
            if m.kind == "bind" && m.read_only && m.recursion == Recursion::Enabled {
                m.recursion = Recursion::Writable;
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for m in &out {
        if !seen.insert(m.destination.trim_end_matches('/').to_owned()) {
            return Err(Error::InvalidParameter(format!(
                "Duplicate mount point: {}",
                m.destination
            )));
        }
    }
    Ok(out)
}

fn parse_bind(spec: &str) -> Result<UserMount> {
    let invalid = || Error::InvalidParameter(format!("invalid volume specification: '{spec}'"));
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, destination, mode) = match parts.as_slice() {
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(invalid()),
    };
    if !destination.starts_with('/') {
        return Err(Error::InvalidParameter(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"bind\": invalid mount path: '{destination}' mount path must be absolute"
        )));
    }
    let mut read_only = false;
    let mut propagation = "rprivate".to_owned();
    for opt in mode.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => read_only = true,
            "rw" | "z" | "Z" | "nocopy" | "consistent" | "cached" | "delegated" => {}
            "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                propagation = opt.into()
            }
            _ => return Err(invalid()),
        }
    }
    // Docker's -v creates a missing host directory (--mount does not).
    if !Path::new(source).exists() {
        std::fs::create_dir_all(source)
            .with_context(|| format!("error while creating mount source path '{source}'"))?;
    }
    Ok(UserMount {
        kind: "bind",
        source: source.into(),
        destination: destination.into(),
        read_only,
        propagation,
        recursion: Recursion::Enabled,
        mode: mode.into(),
        data: String::new(),
    })
}

impl UserMount {
    /// A bind the record holds without its host config asking for it (`--volumes-from`).
    pub fn inherited_bind(p: &MountPoint) -> UserMount {
        UserMount {
            kind: "bind",
            source: p.source.clone().unwrap_or_default(),
            destination: p.destination.clone().unwrap_or_default(),
            read_only: p.rw == Some(false),
            propagation: p
                .propagation
                .clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "rprivate".into()),
            recursion: Recursion::Enabled,
            mode: p.mode.clone().unwrap_or_default(),
            data: String::new(),
        }
    }

    /// `Mounts[]` in inspect.
    pub fn mount_point(&self) -> MountPoint {
        MountPoint {
            typ: Some(if self.kind == "bind" {
                MountPointTypeEnum::BIND
            } else {
                MountPointTypeEnum::TMPFS
            }),
            name: None,
            source: Some(self.source.clone()),
            destination: Some(self.destination.clone()),
            driver: None,
            mode: Some(self.mode.clone()),
            rw: Some(!self.read_only),
            propagation: Some(self.propagation.clone()),
        }
    }

    /// The OCI mount.
    pub fn oci(&self) -> std::result::Result<Mount, OciSpecError> {
        let mount = MountBuilder::default().destination(&self.destination);
        if self.kind == "tmpfs" {
            let mut options = vec!["nosuid".to_owned(), "nodev".to_owned(), "noexec".to_owned()];
            if self.read_only {
                options.push("ro".into());
            }
            options.extend(
                self.data
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned),
            );
            return mount.typ("tmpfs").source("tmpfs").options(options).build();
        }
        let mut options = vec![
            if self.recursion == Recursion::Disabled {
                "bind"
            } else {
                "rbind"
            }
            .to_owned(),
            if self.read_only { "ro" } else { "rw" }.to_owned(),
        ];
        // Docker 25: a read-only bind is read-only all the way down where the kernel can make it so
        // (`rro`, OCI runtime spec 1.1), unless `bind-recursive` says otherwise; "ro" stays alongside for
        // a runtime that would not know `rro`.
        let recursive = match self.recursion {
            Recursion::Enabled => recursive_readonly_supported(),
            Recursion::Readonly => true,
            Recursion::Disabled | Recursion::Writable => false,
        };
        if self.read_only && recursive {
            options.push("rro".into());
        }
        options.push(self.propagation.clone());
        mount
            .typ("bind")
            .source(&self.source)
            .options(options)
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::MountBindOptions;

    #[test]
    fn bind_recursive_modes_become_oci_options_as_dockers() {
        let dir = tempfile::tempdir().unwrap();
        let mount = |read_only: bool, b: MountBindOptions| bollard_stubs::models::Mount {
            target: Some("/t".into()),
            source: Some(dir.path().display().to_string()),
            typ: Some(MountTypeEnum::BIND),
            read_only: Some(read_only),
            bind_options: Some(b),
            ..Default::default()
        };
        let options = |read_only: bool, b: MountBindOptions| -> Result<Vec<String>> {
            let h = HostConfig {
                mounts: Some(vec![mount(read_only, b)]),
                ..Default::default()
            };
            Ok(parse(&h, false)?[0]
                .oci()
                .unwrap()
                .options()
                .clone()
                .unwrap())
        };
        let yes = Some(true);
        let force = MountBindOptions {
            read_only_force_recursive: yes,
            ..Default::default()
        };
        let writable = MountBindOptions {
            read_only_non_recursive: yes,
            ..Default::default()
        };
        let disabled = MountBindOptions {
            non_recursive: yes,
            ..Default::default()
        };
        if recursive_readonly_supported() {
            assert_eq!(
                options(true, force.clone()).unwrap(),
                ["rbind", "ro", "rro", "rprivate"]
            );
        } else {
            let e = options(true, force.clone()).unwrap_err().to_string();
            assert!(e.contains("rro is not supported"), "{e}");
        }
        assert_eq!(
            options(true, writable.clone()).unwrap(),
            ["rbind", "ro", "rprivate"]
        );
        assert_eq!(
            options(true, disabled.clone()).unwrap(),
            ["bind", "ro", "rprivate"]
        );
        assert_eq!(
            options(false, disabled).unwrap(),
            ["bind", "rw", "rprivate"]
        );
        for (b, what) in [
            (force, "Writable && ReadOnlyForceRecursive"),
            (writable, "Writable && ReadOnlyNonRecursive"),
        ] {
            let e = options(false, b).unwrap_err().to_string();
            assert!(e.contains(&format!("options conflict: {what}")), "{e}");
        }
    }

    #[test]
    fn binds_parse_like_docker() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("made");
        let h = HostConfig {
            binds: Some(vec![format!("{}:/data:ro,rshared", src.display())]),
            ..Default::default()
        };
        let m = parse(&h, false).unwrap();
        assert!(src.is_dir(), "-v creates a missing source");
        assert!(m[0].read_only);
        assert_eq!(m[0].propagation, "rshared");
        assert_eq!(m[0].mount_point().rw, Some(false));
        // Docker 25: read-only all the way down where the kernel can make it so.
        let expected: &[&str] = if recursive_readonly_supported() {
            &["rbind", "ro", "rro", "rshared"]
        } else {
            &["rbind", "ro", "rshared"]
        };
        assert_eq!(m[0].oci().unwrap().options().as_deref().unwrap(), expected);
        let named = HostConfig {
            binds: Some(vec!["vol:/data".into(), "/anonymous".into()]),
            ..Default::default()
        };
        assert!(
            parse(&named, false).unwrap().is_empty(),
            "volumes are not binds"
        );
        let dup = HostConfig {
            binds: Some(vec!["/tmp:/d".into(), "/tmp:/d/".into()]),
            ..Default::default()
        };
        assert!(parse(&dup, false)
            .unwrap_err()
            .to_string()
            .contains("Duplicate mount point"));
    }
}
