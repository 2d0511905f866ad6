//! `--device` and `--device-cgroup-rule`: host device nodes made in the container's `/dev` (OCI
//! `linux.devices`) and allowed in its device cgroup, as dockerd does. `--gpus` is not supported.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use bollard_stubs::models::{DeviceMapping, HostConfig};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use crate::error::{Error, Result};

/// One device node for the container.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    /// Path inside the container.
    pub path: String,
    /// `c` or `b`.
    pub kind: &'static str,
    /// Major number.
    pub major: u64,
    /// Minor number.
    pub minor: u64,
    /// Permission bits of the host node.
    pub mode: u32,
    /// Cgroup access (`rwm` by default).
    pub access: String,
}

fn gather_error(host: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidParameter(format!(
        "error gathering device information while adding custom device \"{host}\": {why}"
    ))
}

/// The devices of `--device` mappings: a node as it is, a directory as every node below it (with the
/// container path prefix swapped, as dockerd does).
pub fn from_host_config(h: &HostConfig) -> Result<Vec<Device>> {
    let mut out = Vec::new();
    for d in h.devices.iter().flatten() {
        out.extend(mapping(d)?);
    }
    Ok(out)
}

/// Checks every `--device` mapping's container path and permissions without looking at the host.
pub fn check_mappings(h: &HostConfig) -> Result<()> {
    for d in h.devices.iter().flatten() {
        checked(d)?;
    }
    Ok(())
}

/// A mapping's host path, container path and cgroup permissions, checked as dockerd does.
fn checked(d: &DeviceMapping) -> Result<(String, String, String)> {
    let host = d.path_on_host.clone().unwrap_or_default();
    let ctr = d
        .path_in_container
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| host.clone());
    let access = d
        .cgroup_permissions
        .clone()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "rwm".into());
    if access.chars().any(|c| !"rwm".contains(c)) {
        return Err(Error::InvalidParameter(format!(
            "invalid device mode: {access}"
        )));
    }
    if !ctr.starts_with('/') {
        return Err(Error::InvalidParameter(format!(
            "{ctr} is not an absolute path"
        )));
    }
    Ok((host, ctr, access))
}

fn mapping(d: &DeviceMapping) -> Result<Vec<Device>> {
    let (host, ctr, access) = checked(d)?;
    let meta = std::fs::metadata(&host)
        .map_err(|e| gather_error(&host, runtime::error::go_errno_text(&e)))?;
    if meta.is_dir() {
        let mut found = Vec::new();
        walk(Path::new(&host), &mut |p, m| {
            if let Some(dev) = node(p, m, &access) {
                let rel = p.strip_prefix(&host).unwrap_or(p);
                found.push(Device {
                    path: Path::new(&ctr).join(rel).display().to_string(),
                    ..dev
                });
            }
        });
        return Ok(found);
    }
    node(Path::new(&host), &meta, &access)
        .map(|dev| vec![Device { path: ctr, ..dev }])
        .ok_or_else(|| gather_error(&host, "not a device node"))
}

fn node(path: &Path, m: &std::fs::Metadata, access: &str) -> Option<Device> {
    let ft = m.file_type();
    let kind = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return None;
    };
    let rdev = m.rdev();
    Some(Device {
        path: path.display().to_string(),
        kind,
        major: libc::major(rdev) as u64,
        minor: libc::minor(rdev) as u64,
        mode: m.mode() & 0o777,
        access: access.to_owned(),
    })
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path, &std::fs::Metadata)) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        // Not following symlinks: /dev/disk/by-* links would list every disk again.
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            walk(&p, f);
        } else {
            f(&p, &m);
        }
    }
}

/// Every device node of the host's `/dev`, for `--privileged` (as dockerd gives them): not the
/// runtime's own (`/dev/pts`, `/dev/shm`, `/dev/mqueue`, the console) nor those every container gets.
pub fn host_devices() -> Vec<Device> {
    const SKIP_DIRS: [&str; 6] = ["pts", "shm", "mqueue", "fd", ".lxc", ".udev"];
    const DEFAULTS: [&str; 8] = [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/ptmx",
        "/dev/console",
    ];
    let mut out = Vec::new();
    for e in std::fs::read_dir("/dev").into_iter().flatten().flatten() {
        let p = e.path();
        let Ok(m) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if m.is_dir() {
            let name = e.file_name();
            if !SKIP_DIRS.contains(&name.to_string_lossy().as_ref()) {
                walk(&p, &mut |p, m| out.extend(node(p, m, "rwm")));
            }
        } else {
            out.extend(node(&p, &m, "rwm"));
        }
    }
    out.retain(|d| !DEFAULTS.contains(&d.path.as_str()));
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// `--device-cgroup-rule` entries (`c 1:3 rwm`, `a *:* m`) as OCI device cgroup rules.
pub fn cgroup_rules(h: &HostConfig) -> Result<Vec<LinuxDeviceCgroup>> {
    let mut out = Vec::new();
    for rule in h.device_cgroup_rules.iter().flatten() {
        let bad = || Error::InvalidParameter(format!("invalid device cgroup format '{rule}'"));
        let mut parts = rule.split_whitespace();
        let (Some(kind), Some(numbers), Some(access), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if !["a", "b", "c"].contains(&kind) || access.chars().any(|c| !"rwm".contains(c)) {
            return Err(bad());
        }
        let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
        let num = |s: &str| -> Result<Option<i64>> {
            match s {
                "*" => Ok(None),
                n => n.parse().map(Some).map_err(|_| bad()),
            }
        };
        let kind = match kind {
            "a" => LinuxDeviceType::A,
            "b" => LinuxDeviceType::B,
            _ => LinuxDeviceType::C,
        };
        out.push(device_rule(
            true,
            Some(kind),
            num(major)?,
            num(minor)?,
            access,
        ));
    }
    Ok(out)
}

/// One device cgroup rule; `None` numbers match any. Set field by field rather than with oci-spec's
/// builder, whose `build` could only fail for a field left unset, and none is.
pub fn device_rule(
    allow: bool,
    kind: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow)
        .set_typ(kind)
        .set_major(major)
        .set_minor(minor)
        .set_access(Some(access.to_owned()));
    r
}

impl Device {
    fn oci_type(&self) -> LinuxDeviceType {
        if self.kind == "b" {
            LinuxDeviceType::B
        } else {
            LinuxDeviceType::C
        }
    }

    /// The OCI `linux.devices` entry, owned by root.
    pub fn oci(&self) -> LinuxDevice {
        let mut d = LinuxDevice::default();
        d.set_path(PathBuf::from(&self.path))
            .set_typ(self.oci_type())
            .set_major(self.major as i64)
            .set_minor(self.minor as i64)
            .set_file_mode(Some(self.mode))
            .set_uid(Some(0))
            .set_gid(Some(0));
        d
    }

    /// The device cgroup rule that lets the container use it.
    pub fn rule(&self) -> LinuxDeviceCgroup {
        device_rule(
            true,
            Some(self.oci_type()),
            Some(self.major as i64),
            Some(self.minor as i64),
            &self.access,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_node_maps_with_its_numbers_and_a_directory_expands() {
        let h = HostConfig {
            devices: Some(vec![DeviceMapping {
                path_on_host: Some("/dev/null".into()),
                path_in_container: Some("/dev/mynull".into()),
                cgroup_permissions: Some("rw".into()),
            }]),
            ..Default::default()
        };
        let d = from_host_config(&h).unwrap();
        assert_eq!(d.len(), 1);
        assert_eq!((d[0].kind, d[0].major, d[0].minor), ("c", 1, 3));
        assert_eq!(d[0].path, "/dev/mynull");
        assert_eq!(d[0].access, "rw");
        let bad = HostConfig {
            devices: Some(vec![DeviceMapping {
                path_on_host: Some("/etc/passwd".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert!(from_host_config(&bad)
            .unwrap_err()
            .to_string()
            .contains("not a device node"));
    }

    #[test]
    fn cgroup_rules_parse_as_docker_writes_them() {
        let h = HostConfig {
            device_cgroup_rules: Some(vec!["c 1:3 rwm".into(), "a *:* m".into()]),
            ..Default::default()
        };
        let r = cgroup_rules(&h).unwrap();
        assert_eq!(r[0].major(), Some(1));
        assert_eq!(r[1].major(), None);
        assert_eq!(r[1].typ(), Some(LinuxDeviceType::A));
        let bad = HostConfig {
            device_cgroup_rules: Some(vec!["x 1:3 rwm".into()]),
            ..Default::default()
        };
        assert!(cgroup_rules(&bad).is_err());
    }
}
