//! Docker's container config turned into an OCI runtime spec, with Docker's defaults: capabilities, mounts,
//! masked and read-only paths, devices, namespaces, resources and the default seccomp profile.

use std::path::{Path, PathBuf};

use bollard_stubs::models::HostConfig;
use serde_json::{json, Value};

use super::record::Container;
use super::user::ResolvedUser;
use crate::error::{Error, Result};

/// Paths Docker hides from containers (`HostConfig.MaskedPaths`).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only (`HostConfig.ReadonlyPaths`).
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Docker's default capability set (the runtime keeps the list).
pub use runtime::spec::DOCKER_DEFAULT_CAPS as DEFAULT_CAPS;

/// Every capability the kernel knows, by number.
const ALL_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// Files the engine writes per container and bind-mounts over the image's.
pub struct EtcFiles<'a> {
    /// `/etc/hostname`.
    pub hostname: &'a Path,
    /// `/etc/hosts`.
    pub hosts: &'a Path,
    /// `/etc/resolv.conf`.
    pub resolv_conf: &'a Path,
}

/// Builds the spec for `c` with its rootfs at `rootfs`.
/// Namespaces a container joins instead of making its own: paths under `/proc/<donor pid>/`.
#[derive(Debug, Default)]
pub struct Joined {
    /// `--network container:X`.
    pub net: Option<PathBuf>,
    /// `--pid container:X`.
    pub pid: Option<PathBuf>,
    /// `--ipc container:X`.
    pub ipc: Option<PathBuf>,
    /// The donor's `/dev/shm`, with `ipc`.
    pub shm: Option<PathBuf>,
}

pub fn build(
    c: &Container,
    rootfs: &Path,
    user: &ResolvedUser,
    etc: &EtcFiles<'_>,
    user_mounts: &[super::mounts::UserMount],
    joined: &Joined,
    arch: &str,
) -> Result<oci_spec::runtime::Spec> {
    let h = &c.host_config;
    let privileged = h.privileged == Some(true);
    let caps = capabilities(h)?;
    let tty = c.config.tty == Some(true);
    let hostname = c.config.hostname.clone().unwrap_or_default();

    let mut env = container_env(c, tty);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }

    let mut args = vec![c.path.clone()];
    args.extend(c.args.iter().cloned());
    let cwd = match c.config.working_dir.as_deref() {
        Some(w) if !w.is_empty() => w.to_owned(),
        _ => "/".to_owned(),
    };
    let no_new_privs = h.security_opt.iter().flatten().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges=true" || o == "no-new-privileges:true"
    });
    let rlimits: Vec<Value> = h
        .ulimits
        .iter()
        .flatten()
        .filter_map(|u| {
            let name = u.name.as_deref()?;
            Some(json!({
                "type": format!("RLIMIT_{}", name.to_ascii_uppercase()),
                "soft": u.soft.unwrap_or(0).max(0),
                "hard": u.hard.unwrap_or(0).max(0),
            }))
        })
        .collect();

    let shm = h.shm_size.unwrap_or(64 << 20);
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if privileged { "rw" } else { "ro" }]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["ro", "nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        match &joined.shm {
            Some(donor) => {
                json!({"destination": "/dev/shm", "type": "bind", "source": donor, "options": ["rbind", "rprivate"]})
            }
            None => {
                json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={shm}")]})
            }
        },
    ];
    for (dest, src) in [
        ("/etc/resolv.conf", etc.resolv_conf),
        ("/etc/hostname", etc.hostname),
        ("/etc/hosts", etc.hosts),
    ] {
        mounts.push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    mounts.extend(user_mounts.iter().map(|m| m.oci()));
    for (dest, opts) in h.tmpfs.iter().flatten() {
        let mut options = vec!["nosuid".to_owned(), "nodev".to_owned(), "noexec".to_owned()];
        options.extend(opts.split(',').filter(|o| !o.is_empty()).map(str::to_owned));
        mounts.push(
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": options}),
        );
    }

    let own_or_joined = |typ: &str, path: &Option<PathBuf>| match path {
        Some(p) => json!({"type": typ, "path": p}),
        None => json!({"type": typ}),
    };
    let mut namespaces = vec![
        own_or_joined("pid", &joined.pid),
        own_or_joined("ipc", &joined.ipc),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if h.network_mode.as_deref() != Some("host") {
        namespaces.push(own_or_joined("network", &joined.net));
    }
    if h.pid_mode.as_deref() == Some("host") {
        namespaces.retain(|n| n["type"] != "pid");
    }
    if h.ipc_mode.as_deref() == Some("host") {
        namespaces.retain(|n| n["type"] != "ipc");
    }
    if h.uts_mode.as_deref() == Some("host") {
        namespaces.retain(|n| n["type"] != "uts");
    }
    let v2 = crate::host::cgroup_version(Path::new("/sys/fs/cgroup")) == "2";
    let cgroupns_private = match &h.cgroupns_mode {
        Some(m) => m.to_string() == "private",
        None => v2,
    };
    if cgroupns_private {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let cgroups_path = cgroups_path(c);

    let seccomp = match seccomp_choice(h) {
        _ if privileged => None,
        Seccomp::Unconfined => None,
        choice => Some(
            serde_json::to_value(seccomp_profile(choice, &caps, arch)?)
                .map_err(|e| Error::System(format!("seccomp profile: {e}")))?,
        ),
    };

    let mut devices = if privileged {
        super::devices::host_devices()
    } else {
        Vec::new()
    };
    for d in super::devices::from_host_config(h)? {
        devices.retain(|x| x.path != d.path);
        devices.push(d);
    }
    let mut res = resources(h);
    if let Some(rules) = res["devices"].as_array_mut() {
        rules.extend(devices.iter().map(super::devices::Device::rule));
        rules.extend(super::devices::cgroup_rules(h)?);
    }
    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": cgroups_path,
        "resources": res,
        "devices": devices.iter().map(super::devices::Device::oci).collect::<Vec<_>>(),
        "sysctl": h.sysctls.clone().unwrap_or_default(),
        "maskedPaths": if privileged { vec![] } else { h.masked_paths.clone().unwrap_or_default() },
        "readonlyPaths": if privileged { vec![] } else { h.readonly_paths.clone().unwrap_or_default() },
    });
    if let Some(s) = seccomp {
        linux["seccomp"] = s;
    }

    // The docker CLI sends the terminal's size at create (HostConfig.ConsoleSize, [height, width]).
    let console_size = match h.console_size.as_deref() {
        Some([rows, cols]) if tty && *rows > 0 && *cols > 0 => {
            Some(json!({"height": rows, "width": cols}))
        }
        _ => None,
    };
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": tty,
            "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
            "args": args,
            "env": env,
            "cwd": cwd,
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": rlimits,
            "noNewPrivileges": no_new_privs,
            "oomScoreAdj": h.oom_score_adj.unwrap_or(0),
        },
        "root": {"path": rootfs, "readonly": h.readonly_rootfs == Some(true)},
        "hostname": hostname,
        "domainname": c.config.domainname.clone().unwrap_or_default(),
        "mounts": mounts,
        "linux": linux,
    });
    if let Some(size) = console_size {
        spec["process"]["consoleSize"] = size;
    }
    serde_json::from_value(spec).map_err(|e| Error::System(format!("building the OCI spec: {e}")))
}

/// The container's cgroup: `berth/<id>` under the daemon's own cgroup (the shim inherits it and the runtime
/// nests relative paths under its caller's), or `/<--cgroup-parent>/<id>`.
pub fn cgroups_path(c: &Container) -> String {
    match c
        .host_config
        .cgroup_parent
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        Some(parent) => format!("/{}/{}", parent.trim_matches('/'), c.id),
        None => format!("berth/{}", c.id),
    }
}

/// Docker's capability rules: the default set (or every capability with `--privileged`), then `--cap-add`
/// and `--cap-drop`, where `ALL` means every capability and names may omit `CAP_`.
fn capabilities(h: &HostConfig) -> Result<Vec<String>> {
    let norm = |c: &str| -> Result<String> {
        let up = c.to_ascii_uppercase();
        let full = if up == "ALL" || up.starts_with("CAP_") {
            up
        } else {
            format!("CAP_{up}")
        };
        if full != "ALL" && !ALL_CAPS.contains(&full.as_str()) {
            return Err(Error::InvalidParameter(format!(
                "unknown capability: \"{c}\""
            )));
        }
        Ok(full)
    };
    let host_caps = host_capabilities();
    if h.privileged == Some(true) {
        return Ok(host_caps);
    }
    let add = h
        .cap_add
        .iter()
        .flatten()
        .map(|c| norm(c))
        .collect::<Result<Vec<_>>>()?;
    let drop = h
        .cap_drop
        .iter()
        .flatten()
        .map(|c| norm(c))
        .collect::<Result<Vec<_>>>()?;
    let mut caps: Vec<String> = if add.iter().any(|c| c == "ALL") {
        host_caps
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    if drop.iter().any(|c| c == "ALL") {
        caps.clear();
    }
    caps.retain(|c| !drop.contains(c));
    for c in add.into_iter().filter(|c| c != "ALL") {
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    Ok(caps)
}

/// The capabilities in the daemon's own bounding set (what `--privileged` can grant).
pub(crate) fn host_capabilities() -> Vec<String> {
    let mask = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0);
    ALL_CAPS
        .iter()
        .enumerate()
        .filter(|(i, _)| mask & (1u64 << i) != 0)
        .map(|(_, c)| c.to_string())
        .collect()
}

/// `linux.resources` from Docker's resource fields; devices follow Docker's default allow list.
pub(crate) fn resources(h: &HostConfig) -> Value {
    let mut r = json!({});
    let mut memory = json!({});
    if let Some(m) = h.memory.filter(|m| *m > 0) {
        memory["limit"] = json!(m);
    }
    if let Some(m) = h.memory_reservation.filter(|m| *m > 0) {
        memory["reservation"] = json!(m);
    }
    if let Some(s) = h.memory_swap.filter(|s| *s != 0) {
        memory["swap"] = json!(s);
    }
    if let Some(s) = h.memory_swappiness.filter(|s| *s >= 0) {
        memory["swappiness"] = json!(s);
    }
    if h.oom_kill_disable == Some(true) {
        memory["disableOOMKiller"] = json!(true);
    }
    if memory.as_object().is_some_and(|m| !m.is_empty()) {
        r["memory"] = memory;
    }
    let mut cpu = json!({});
    if let Some(s) = h.cpu_shares.filter(|s| *s > 0) {
        cpu["shares"] = json!(s);
    }
    let period = h.cpu_period.filter(|p| *p > 0);
    if let Some(n) = h.nano_cpus.filter(|n| *n > 0) {
        let period = period.unwrap_or(100_000);
        cpu["period"] = json!(period);
        cpu["quota"] = json!(n * period / 1_000_000_000);
    } else {
        if let Some(p) = period {
            cpu["period"] = json!(p);
        }
        if let Some(q) = h.cpu_quota.filter(|q| *q != 0) {
            cpu["quota"] = json!(q);
        }
    }
    if let Some(c) = h.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        cpu["cpus"] = json!(c);
    }
    if let Some(m) = h.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        cpu["mems"] = json!(m);
    }
    if cpu.as_object().is_some_and(|c| !c.is_empty()) {
        r["cpu"] = cpu;
    }
    if let Some(p) = h.pids_limit.filter(|p| *p != 0) {
        r["pids"] = json!({"limit": p});
    }
    if let Some(w) = h.blkio_weight.filter(|w| *w > 0) {
        r["blockIO"] = json!({"weight": w});
    }
    let dev = |kind: &str, major: Option<i64>, minor: Option<i64>, access: &str| json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": access});
    r["devices"] = if h.privileged == Some(true) {
        json!([{"allow": true, "access": "rwm"}])
    } else {
        json!([
            {"allow": false, "access": "rwm"},
            dev("c", None, None, "m"),
            dev("b", None, None, "m"),
            dev("c", Some(1), Some(3), "rwm"),
            dev("c", Some(1), Some(5), "rwm"),
            dev("c", Some(1), Some(7), "rwm"),
            dev("c", Some(1), Some(8), "rwm"),
            dev("c", Some(1), Some(9), "rwm"),
            dev("c", Some(5), Some(0), "rwm"),
            dev("c", Some(5), Some(1), "rwm"),
            dev("c", Some(5), Some(2), "rwm"),
            dev("c", Some(136), None, "rwm"),
            dev("c", Some(10), Some(200), "rwm"),
        ])
    };
    r
}

/// The seccomp profile a container asked for with `--security-opt seccomp=…`.
pub(crate) enum Seccomp<'a> {
    /// Docker's default profile (no option, or `seccomp=builtin`).
    Default,
    /// No filter (`seccomp=unconfined`).
    Unconfined,
    /// A profile in Docker's JSON format: the docker CLI reads the file and sends its content.
    Custom(&'a str),
}

pub(crate) fn seccomp_choice(h: &HostConfig) -> Seccomp<'_> {
    let mut choice = Seccomp::Default;
    for opt in h.security_opt.iter().flatten() {
        if let Some(v) = opt
            .strip_prefix("seccomp=")
            .or_else(|| opt.strip_prefix("seccomp:"))
        {
            choice = match v {
                "unconfined" => Seccomp::Unconfined,
                "builtin" | "" => Seccomp::Default,
                json => Seccomp::Custom(json),
            };
        }
    }
    choice
}

/// Evaluates the profile for the container's capabilities and architecture; a custom profile that does
/// not parse is the client's error.
pub(crate) fn seccomp_profile(
    choice: Seccomp<'_>,
    caps: &[String],
    arch: &str,
) -> Result<oci_spec::runtime::LinuxSeccomp> {
    let message = |e: runtime::Error| match e {
        runtime::Error::Seccomp(m) => m,
        other => other.to_string(),
    };
    match choice {
        Seccomp::Custom(json) => runtime::seccomp::docker_profile(json, caps, arch)
            .map_err(|e| Error::InvalidParameter(message(e))),
        _ => runtime::seccomp::docker_default_profile(caps, arch).map_err(|e| {
            Error::System(format!(
                "evaluating the default seccomp profile: {}",
                message(e)
            ))
        }),
    }
}

/// A container's environment as dockerd makes it, for its process and (with the exec's tty) for each exec:
/// `PATH`, `HOSTNAME` and, with a TTY, `TERM=xterm` first, then the container's `Env`, each entry replacing
/// one of the same name in place or coming after.
pub(crate) fn container_env(c: &Container, tty: bool) -> Vec<String> {
    daemon_env(
        c.config.hostname.as_deref().unwrap_or_default(),
        c.config.env.as_deref().unwrap_or_default(),
        tty,
    )
}

fn daemon_env(hostname: &str, config_env: &[String], tty: bool) -> Vec<String> {
    let mut env: Vec<String> = vec![
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        format!("HOSTNAME={hostname}"),
    ];
    if tty {
        env.push("TERM=xterm".into());
    }
    replace_or_append_env(&mut env, config_env);
    env
}

/// Sets each `KEY=value` of `extra` in `env`: in place of an entry with that key, or at the end.
pub(crate) fn replace_or_append_env<'a>(
    env: &mut Vec<String>,
    extra: impl IntoIterator<Item = &'a String>,
) {
    for kv in extra {
        let key = kv.split('=').next().unwrap_or_default();
        match env.iter_mut().find(|e| e.split('=').next() == Some(key)) {
            Some(slot) => slot.clone_from(kv),
            None => env.push(kv.clone()),
        }
    }
}

#[cfg(test)]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_has_dockers_order() {
        let image = [
            "PATH=/opt/bin".to_string(),
            "FOO=bar".into(),
            "HOSTNAME=mine".into(),
        ];
        assert_eq!(
            daemon_env("abc", &image, true),
            ["PATH=/opt/bin", "HOSTNAME=mine", "TERM=xterm", "FOO=bar"]
        );
        assert_eq!(
            daemon_env("abc", &["FOO=bar".to_string()], false),
            [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "HOSTNAME=abc",
                "FOO=bar"
            ]
        );
    }

    #[test]
    fn cap_add_and_drop_follow_docker() {
        let h = HostConfig {
            cap_add: Some(vec!["net_admin".into()]),
            cap_drop: Some(vec!["CAP_CHOWN".into(), "kill".into()]),
            ..Default::default()
        };
        let caps = capabilities(&h).unwrap();
        assert!(caps.contains(&"CAP_NET_ADMIN".to_owned()));
        assert!(!caps.contains(&"CAP_CHOWN".to_owned()));
        assert!(!caps.contains(&"CAP_KILL".to_owned()));
        assert_eq!(caps.len(), DEFAULT_CAPS.len() - 1);
        let none = HostConfig {
            cap_drop: Some(vec!["ALL".into()]),
            cap_add: Some(vec!["CHOWN".into()]),
            ..Default::default()
        };
        assert_eq!(capabilities(&none).unwrap(), ["CAP_CHOWN"]);
        let bad = HostConfig {
            cap_add: Some(vec!["NOPE".into()]),
            ..Default::default()
        };
        assert!(capabilities(&bad).is_err());
    }

    #[test]
    fn nano_cpus_become_a_cfs_quota() {
        let h = HostConfig {
            nano_cpus: Some(1_500_000_000),
            memory: Some(64 << 20),
            pids_limit: Some(10),
            ..Default::default()
        };
        let r = resources(&h);
        assert_eq!(r["cpu"]["quota"], 150_000);
        assert_eq!(r["cpu"]["period"], 100_000);
        assert_eq!(r["memory"]["limit"], 64 << 20);
        assert_eq!(r["pids"]["limit"], 10);
    }
}
