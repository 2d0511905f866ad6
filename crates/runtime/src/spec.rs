//! Loading and validating an OCI bundle's `config.json`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// A bundle's spec with its rootfs resolved to an absolute path.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory (absolute).
    pub dir: PathBuf,
    /// The parsed `config.json`.
    pub spec: Spec,
    /// `root.path`, made absolute against the bundle directory.
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Reads `DIR/config.json` and checks what this runtime needs of it.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::path::absolute(dir).map_err(|e| Error::io("resolve", dir, e))?;
        let path = dir.join("config.json");
        let spec = Spec::load(&path).map_err(|source| Error::Spec { path, source })?;
        Bundle::from_spec(dir, spec)
    }

    /// Wraps an in-memory spec (the engine builds specs without writing them out first);
    /// relative paths in it are taken against `dir`.
    pub fn from_spec(dir: PathBuf, spec: Spec) -> Result<Bundle> {
        validate(&spec)?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("root is missing".into()))?;
        let rootfs = dir.join(root.path());
        if !rootfs.is_dir() {
            return Err(Error::InvalidSpec(format!(
                "root.path {} is not a directory",
                rootfs.display()
            )));
        }
        Ok(Bundle { dir, spec, rootfs })
    }
}

/// Rejects specs this runtime would otherwise run wrongly.
pub fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("process is missing".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::InvalidSpec("process.args is empty".into()));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::InvalidSpec(format!(
            "process.cwd {} is not absolute",
            process.cwd().display()
        )));
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "mount destination {} is not absolute",
                m.destination().display()
            )));
        }
    }
    Ok(())
}

/// Spec fields this runtime does not apply yet, present in `spec` (logged at create, so that
/// a silently ignored setting does not go unnoticed).
pub fn unsupported_fields(spec: &Spec) -> Vec<&'static str> {
    let mut out = Vec::new();
    if spec.hooks().is_some() {
        out.push("hooks");
    }
    if let Some(p) = spec.process() {
        if p.io_priority().is_some() {
            out.push("process.ioPriority");
        }
        if p.scheduler().is_some() {
            out.push("process.scheduler");
        }
        if p.exec_cpu_affinity().is_some() {
            out.push("process.execCPUAffinity");
        }
    }
    if let Some(l) = spec.linux() {
        let checks = [
            (l.personality().is_some(), "linux.personality"),
            (l.intel_rdt().is_some(), "linux.intelRdt"),
            (l.time_offsets().is_some(), "linux.timeOffsets"),
            (l.memory_policy().is_some(), "linux.memoryPolicy"),
            (l.net_devices().is_some(), "linux.netDevices"),
            (
                l.mount_label().as_deref().is_some_and(|s| !s.is_empty()),
                "linux.mountLabel",
            ),
        ];
        out.extend(
            checks
                .iter()
                .filter(|(present, _)| *present)
                .map(|(_, name)| *name),
        );
        if let Some(r) = l.resources() {
            let checks = [
                (r.rdma().is_some(), "resources.rdma"),
                (r.network().is_some(), "resources.network"),
                (
                    r.unified().as_ref().is_some_and(|u| !u.is_empty()),
                    "resources.unified",
                ),
                (
                    r.memory()
                        .as_ref()
                        .is_some_and(|m| m.kernel().is_some() || m.kernel_tcp().is_some()),
                    "resources.memory.kernel",
                ),
            ];
            out.extend(
                checks
                    .iter()
                    .filter(|(present, _)| *present)
                    .map(|(_, name)| *name),
            );
        }
    }
    out
}

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT_CAPS: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// A spec with Docker's defaults for `docker run IMAGE ARGS...`: its mounts, capabilities
/// (bounding, effective and permitted; no inheritable or ambient, as since Docker 20.10.14),
/// masked and read-only paths, namespaces (a private cgroup namespace on cgroup v2 only, as
/// Docker), "deny all devices" cgroup rule, the default seccomp profile evaluated for those
/// capabilities, and a read-write rootfs at `rootfs`. The engine adjusts it per container.
pub fn docker_default_spec(args: &[&str]) -> Result<Spec> {
    let caps: Vec<String> = DOCKER_DEFAULT_CAPS.iter().map(|s| s.to_string()).collect();
    let seccomp = crate::seccomp::docker_default_profile(&caps, "amd64")?;
    let mut namespaces = vec![
        serde_json::json!({"type": "mount"}),
        serde_json::json!({"type": "network"}),
        serde_json::json!({"type": "uts"}),
        serde_json::json!({"type": "pid"}),
        serde_json::json!({"type": "ipc"}),
    ];
    if crate::cgroups::is_v2() {
        namespaces.push(serde_json::json!({"type": "cgroup"}));
    }
    let v = serde_json::json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": false
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "berth",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["ro", "nosuid", "noexec", "nodev"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"]}
        ],
        "linux": {
            "namespaces": namespaces,
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "seccomp": seccomp,
            "maskedPaths": [
                "/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
                "/sys/devices/virtual/powercap"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    serde_json::from_value(v).map_err(|e| Error::InvalidSpec(format!("docker defaults: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_default_spec_has_docker_caps_and_seccomp() {
        let s = docker_default_spec(&["true"]).unwrap();
        let caps = s
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .as_ref()
            .unwrap();
        assert_eq!(caps.bounding().as_ref().unwrap().len(), 14);
        assert!(caps.ambient().is_none());
        let linux = s.linux().as_ref().unwrap();
        assert!(linux.seccomp().is_some());
        assert!(linux
            .masked_paths()
            .as_ref()
            .unwrap()
            .iter()
            .any(|p| p == "/proc/kcore"));
        validate(&s).unwrap();
    }

    #[test]
    fn unsupported_fields_are_listed_by_name() {
        let mut s = docker_default_spec(&["true"]).unwrap();
        assert!(unsupported_fields(&s).is_empty());
        let mut l = s.linux().clone().unwrap();
        l.set_mount_label(Some("system_u:object_r:x".into()));
        s.set_linux(Some(l));
        assert_eq!(unsupported_fields(&s), vec!["linux.mountLabel"]);
    }

    #[test]
    fn validate_rejects_relative_cwd_and_empty_args() {
        let mut s = docker_default_spec(&["true"]).unwrap();
        let mut p = s.process().clone().unwrap();
        p.set_cwd("rel".into());
        s.set_process(Some(p));
        assert!(validate(&s).is_err());
        let mut s = docker_default_spec(&["true"]).unwrap();
        let mut p = s.process().clone().unwrap();
        p.set_args(Some(vec![]));
        s.set_process(Some(p));
        assert!(validate(&s).is_err());
    }
}
