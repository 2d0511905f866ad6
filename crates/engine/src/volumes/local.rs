//! The local driver's options: `type`, `device` and `o` (`docker volume create -o type=tmpfs -o device=tmpfs
//! -o o=size=100m`), checked as dockerd checks them, and the mount they describe, made on the volume's `_data`
//! when its first container starts and undone when its last one stops.

use std::collections::BTreeMap;
use std::path::Path;

use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::error::{Error, Result};

/// The options dockerd's local driver knows (`size` needs project quotas, which Berth does not set up).
const VALID: &[&str] = &["type", "o", "device", "size"];

/// The local driver's mount options.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct LocalOptions {
    /// File system type (`tmpfs`, `nfs`, `ext4`, `none` for binds).
    pub typ: String,
    /// What to mount (`tmpfs`, a block device, a host path with `o=bind`).
    pub device: String,
    /// Mount options, flags and file-system data mixed as mount(8) takes them.
    pub o: String,
}

impl LocalOptions {
    /// The options of a volume record.
    pub fn from_map(map: Option<&BTreeMap<String, String>>) -> LocalOptions {
        let get = |k: &str| map.and_then(|m| m.get(k)).cloned().unwrap_or_default();
        LocalOptions {
            typ: get("type"),
            device: get("device"),
            o: get("o"),
        }
    }

    /// Whether there is anything to mount.
    pub fn needs_mount(&self) -> bool {
        !self.typ.is_empty() || !self.device.is_empty()
    }
}

/// Checks a create's options with dockerd's rules and words: only known options, and `type`, `device` and `o`
/// only together with what they need.
pub fn validate(options: Option<&BTreeMap<String, String>>) -> Result<()> {
    let Some(opts) = options.filter(|o| !o.is_empty()) else {
        return Ok(());
    };
    if let Some(k) = opts.keys().find(|k| !VALID.contains(&k.as_str())) {
        return Err(Error::InvalidParameter(format!("invalid option: {k:?}")));
    }
    if let Some(size) = opts.get("size") {
        let bytes = ram_in_bytes(size)
            .ok_or_else(|| Error::InvalidParameter(format!("invalid size: '{size}'")))?;
        if bytes > 0 {
            return Err(Error::InvalidParameter(
                "quota size requested but no quota support".into(),
            ));
        }
    }
    for (opt, needs) in [
        ("device", &["type"][..]),
        ("type", &["device"][..]),
        ("o", &["device", "type"][..]),
    ] {
        if opts.contains_key(opt) {
            if let Some(missing) = needs.iter().find(|n| !opts.contains_key(**n)) {
                return Err(Error::InvalidParameter(format!(
                    "missing required option: {missing:?}"
                )));
            }
        }
    }
    Ok(())
}

/// go-units' `RAMInBytes`: `100m`, `1g`, `512k`, `1024` (binary units, optional `b`/`ib`).
fn ram_in_bytes(s: &str) -> Option<u64> {
    let lower = s.trim().to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(split);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        "p" => 1 << 50,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    Some((n * mult as f64) as u64)
}

/// What `o=` means to mount(2): flags, propagation, and the rest passed to the file system as data.
#[derive(Debug, PartialEq)]
struct Parsed {
    flags: MountFlags,
    propagation: Option<MountPropagationFlags>,
    data: Vec<String>,
}

fn parse_o(o: &str) -> Parsed {
    let mut p = Parsed {
        flags: MountFlags::empty(),
        propagation: None,
        data: Vec::new(),
    };
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        let (set, clear) = match opt {
            "defaults" => (MountFlags::empty(), MountFlags::empty()),
            "ro" => (MountFlags::RDONLY, MountFlags::empty()),
            "rw" => (MountFlags::empty(), MountFlags::RDONLY),
            "suid" => (MountFlags::empty(), MountFlags::NOSUID),
            "nosuid" => (MountFlags::NOSUID, MountFlags::empty()),
            "dev" => (MountFlags::empty(), MountFlags::NODEV),
            "nodev" => (MountFlags::NODEV, MountFlags::empty()),
            "exec" => (MountFlags::empty(), MountFlags::NOEXEC),
            "noexec" => (MountFlags::NOEXEC, MountFlags::empty()),
            "sync" => (MountFlags::SYNCHRONOUS, MountFlags::empty()),
            "async" => (MountFlags::empty(), MountFlags::SYNCHRONOUS),
            "dirsync" => (MountFlags::DIRSYNC, MountFlags::empty()),
            "atime" => (MountFlags::empty(), MountFlags::NOATIME),
            "noatime" => (MountFlags::NOATIME, MountFlags::empty()),
            "diratime" => (MountFlags::empty(), MountFlags::NODIRATIME),
            "nodiratime" => (MountFlags::NODIRATIME, MountFlags::empty()),
            "relatime" => (MountFlags::RELATIME, MountFlags::empty()),
            "norelatime" => (MountFlags::empty(), MountFlags::RELATIME),
            "strictatime" => (MountFlags::STRICTATIME, MountFlags::empty()),
            "nostrictatime" => (MountFlags::empty(), MountFlags::STRICTATIME),
            "bind" => (MountFlags::BIND, MountFlags::empty()),
            "rbind" => (MountFlags::BIND | MountFlags::REC, MountFlags::empty()),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                let rec = matches!(opt, "rprivate" | "rshared" | "rslave" | "runbindable");
                let base = match if rec { &opt[1..] } else { opt } {
                    "private" => MountPropagationFlags::PRIVATE,
                    "shared" => MountPropagationFlags::SHARED,
                    "slave" => MountPropagationFlags::DOWNSTREAM,
                    _ => MountPropagationFlags::UNBINDABLE,
                };
                p.propagation = Some(if rec {
                    base | MountPropagationFlags::REC
                } else {
                    base
                });
                continue;
            }
            _ => {
                p.data.push(opt.to_owned());
                continue;
            }
        };
        p.flags = (p.flags | set) & !clear;
    }
    p
}

/// Mounts what `opts` describe on `target` (a volume's `_data`).
pub fn mount(opts: &LocalOptions, target: &Path) -> Result<()> {
    if opts.device.is_empty() {
        return Err(Error::System("missing device in volume options".into()));
    }
    let p = parse_o(&opts.o);
    let data = std::ffi::CString::new(p.data.join(","))
        .map_err(|_| Error::InvalidParameter("mount options contain a NUL byte".into()))?;
    let fail = |e: rustix::io::Errno| {
        // A password in the options must not reach logs or clients.
        let mut context = format!(
            "failed to mount local volume: mount {}:{}",
            opts.device,
            target.display()
        );
        if let Some(pw) = opts.o.split(',').find_map(|o| o.strip_prefix("password=")) {
            context = context.replace(pw, "********");
        }
        Error::system(context, e)
    };
    let typ = if opts.typ.is_empty() {
        "none"
    } else {
        opts.typ.as_str()
    };
    rustix::mount::mount(opts.device.as_str(), target, typ, p.flags, data.as_c_str())
        .map_err(fail)?;
    // A bind mount ignores MS_RDONLY on the first call; read-only needs a remount.
    if p.flags.contains(MountFlags::BIND) && p.flags.contains(MountFlags::RDONLY) {
        if let Err(e) = rustix::mount::mount_remount(target, p.flags | MountFlags::BIND, "") {
            undo_mount(target);
            return Err(fail(e));
        }
    }
    if let Some(prop) = p.propagation {
        if let Err(e) = rustix::mount::mount_change(target, prop) {
            undo_mount(target);
            return Err(fail(e));
        }
    }
    Ok(())
}

/// Unmounts what a mount that failed half-way left, logging when even that fails.
fn undo_mount(target: &Path) {
    if let Err(e) = unmount(target) {
        tracing::warn!(target = %target.display(), error = %e, "unmounting a half-set-up volume mount");
    }
}

/// Unmounts a volume's mount (lazily: a straggling process cannot block it).
pub fn unmount(target: &Path) -> Result<()> {
    match rustix::mount::unmount(target, UnmountFlags::DETACH) {
        Ok(()) => Ok(()),
        Err(_) if !crate::host::is_mount_point(target) => Ok(()),
        Err(e) => Err(Error::system(format!("unmounting {}", target.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_checked_with_dockers_words() {
        assert!(validate(None).is_ok());
        assert!(validate(Some(&map(&[]))).is_ok());
        assert!(validate(Some(&map(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m")
        ])))
        .is_ok());
        assert_eq!(
            validate(Some(&map(&[("foo", "bar")])))
                .unwrap_err()
                .to_string(),
            "invalid option: \"foo\""
        );
        assert_eq!(
            validate(Some(&map(&[("type", "tmpfs")])))
                .unwrap_err()
                .to_string(),
            "missing required option: \"device\""
        );
        assert_eq!(
            validate(Some(&map(&[("device", "x"), ("o", "bind")])))
                .unwrap_err()
                .to_string(),
            "missing required option: \"type\""
        );
        assert!(validate(Some(&map(&[("size", "10m")])))
            .unwrap_err()
            .to_string()
            .contains("no quota support"));
    }

    #[test]
    fn o_splits_into_flags_propagation_and_data() {
        let p = parse_o("bind,ro,rshared,uid=1000");
        assert!(p.flags.contains(MountFlags::BIND | MountFlags::RDONLY));
        assert_eq!(
            p.propagation,
            Some(MountPropagationFlags::SHARED | MountPropagationFlags::REC)
        );
        assert_eq!(p.data, ["uid=1000"]);
        let p = parse_o("ro,rw,size=100m,nosuid");
        assert!(!p.flags.contains(MountFlags::RDONLY));
        assert!(p.flags.contains(MountFlags::NOSUID));
        assert_eq!(p.data, ["size=100m"]);
        assert_eq!(
            parse_o("private").propagation,
            Some(MountPropagationFlags::PRIVATE)
        );
    }
}
