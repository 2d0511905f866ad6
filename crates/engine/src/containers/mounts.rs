//! Bind mounts and tmpfs mounts from `-v /host:/ctr[:opts]`, `--mount type=bind|tmpfs,…`: parsed and checked
//! as dockerd does, shown in inspect's `Mounts`, and turned into OCI mounts. Named and anonymous volumes
//! (`-v name:/ctr`, `-v /ctr`, `--mount type=volume`) are the volume store's (`crate::volumes`).

use std::path::Path;

use bollard_stubs::models::{HostConfig, MountPoint, MountPointTypeEnum, MountTypeEnum};
use oci_spec::runtime::{Mount, MountBuilder};
use oci_spec::OciSpecError;

use crate::error::{Context, Error, Result};

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
    /// The options as the user wrote them (inspect's `Mode`).
    pub mode: String,
    /// tmpfs options (`size=…,mode=…`).
    pub data: String,
}

/// Parses and checks the bind and tmpfs mounts of a create request (volumes are skipped). `-v` binds create a
/// missing host directory, as Docker does; `--mount` binds require it to exist.
pub fn parse(h: &HostConfig) -> Result<Vec<UserMount>> {
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
        let options = vec![
            "rbind".to_owned(),
            if self.read_only { "ro" } else { "rw" }.to_owned(),
            self.propagation.clone(),
        ];
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

    #[test]
    fn binds_parse_like_docker() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("made");
        let h = HostConfig {
            binds: Some(vec![format!("{}:/data:ro,rshared", src.display())]),
            ..Default::default()
        };
        let m = parse(&h).unwrap();
        assert!(src.is_dir(), "-v creates a missing source");
        assert!(m[0].read_only);
        assert_eq!(m[0].propagation, "rshared");
        assert_eq!(m[0].mount_point().rw, Some(false));
        assert_eq!(
            m[0].oci().unwrap().options().as_deref(),
            Some(&["rbind".to_owned(), "ro".into(), "rshared".into()][..])
        );
        let named = HostConfig {
            binds: Some(vec!["vol:/data".into(), "/anonymous".into()]),
            ..Default::default()
        };
        assert!(parse(&named).unwrap().is_empty(), "volumes are not binds");
        let dup = HostConfig {
            binds: Some(vec!["/tmp:/d".into(), "/tmp:/d/".into()]),
            ..Default::default()
        };
        assert!(parse(&dup)
            .unwrap_err()
            .to_string()
            .contains("Duplicate mount point"));
    }
}
