//! Docker's container config turned into an OCI runtime spec, with Docker's defaults: capabilities, mounts,
//! masked and read-only paths, devices, namespaces, resources and the default seccomp profile.

use std::path::{Path, PathBuf};

use bollard_stubs::models::HostConfig;
use oci_spec::runtime::{
    BoxBuilder, Capabilities, Capability, Linux, LinuxBuilder, LinuxCapabilities,
    LinuxCapabilitiesBuilder, LinuxCpu, LinuxCpuBuilder, LinuxDeviceCgroup, LinuxDeviceType,
    LinuxIdMapping, LinuxIdMappingBuilder, LinuxMemory, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder, LinuxSeccomp, Mount, MountBuilder, PosixRlimit, PosixRlimitBuilder,
    PosixRlimitType, Process, ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};
use oci_spec::OciSpecError;

use super::devices::Device;
use super::record::Container;
use super::user::ResolvedUser;
use crate::error::{Context, Error, Result};

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
    /// The donor's user namespace, when the container shares a namespace with a remapped container (a
    /// namespace belongs to the user namespace it was made in, so both must be in the same one, as dockerd
    /// does it).
    pub user: Option<PathBuf>,
    /// `--userns-remap` in effect for this container: a user namespace is made with this mapping
    /// (unless `user` joins one).
    pub id_map: Option<archive::IdMap>,
}

/// Builds the spec for `c` with its rootfs at `rootfs`.
pub fn build(
    c: &Container,
    rootfs: &Path,
    user: &ResolvedUser,
    etc: &EtcFiles<'_>,
    user_mounts: &[super::mounts::UserMount],
    joined: &Joined,
    arch: &str,
) -> Result<Spec> {
    let h = &c.host_config;
    let caps = capabilities(h)?;
    let root = RootBuilder::default()
        .path(rootfs)
        .readonly(h.readonly_rootfs == Some(true))
        .build()
        .map_err(oci_error)?;
    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .process(process(c, user, &caps)?)
        .root(root)
        .hostname(c.config.hostname.clone().unwrap_or_default())
        .domainname(c.config.domainname.clone().unwrap_or_default())
        .mounts(mounts(h, etc, user_mounts, joined)?)
        .linux(linux(c, joined, &caps, arch)?)
        .build()
        .map_err(oci_error)?;
    // The builders start from oci-spec's example container, whose annotations are replaced by the
    // container's own (`--annotation`, which dockerd 24+ passes to the runtime as they are).
    spec.set_annotations(h.annotations.clone().filter(|a| !a.is_empty()));
    Ok(spec)
}

/// A builder's error (a field the spec cannot hold).
fn oci_error(e: OciSpecError) -> Error {
    Error::system("building the OCI spec", e)
}

/// The container's process: command, environment, identity, capabilities and limits.
fn process(c: &Container, user: &ResolvedUser, caps: &[String]) -> Result<Process> {
    let h = &c.host_config;
    let tty = c.config.tty == Some(true);
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
    let oom_score_adj =
        i32::try_from(h.oom_score_adj.unwrap_or(0)).context("building the OCI spec")?;
    let identity = UserBuilder::default()
        .uid(user.uid)
        .gid(user.gid)
        .additional_gids(user.additional_gids.clone())
        .build()
        .map_err(oci_error)?;
    let mut process = ProcessBuilder::default()
        .terminal(tty)
        .user(identity)
        .args(args)
        .env(env)
        .cwd(cwd)
        .capabilities(capability_sets(caps)?)
        .rlimits(rlimits(h)?)
        .no_new_privileges(no_new_privileges(h))
        .oom_score_adj(oom_score_adj);
    if let Some(size) = console_size(c)? {
        process = process.console_size(size);
    }
    process.build().map_err(oci_error)
}

/// The terminal's size the docker CLI sends at create (`HostConfig.ConsoleSize`, `[height, width]`).
fn console_size(c: &Container) -> Result<Option<oci_spec::runtime::Box>> {
    match c.host_config.console_size.as_deref() {
        Some(&[rows, cols]) if c.config.tty == Some(true) && rows > 0 && cols > 0 => {
            let size = BoxBuilder::default()
                .height(rows as u64)
                .width(cols as u64)
                .build()
                .map_err(oci_error)?;
            Ok(Some(size))
        }
        _ => Ok(None),
    }
}

/// The bounding, effective and permitted sets, all `caps`; Docker leaves the inheritable and ambient
/// sets empty.
fn capability_sets(caps: &[String]) -> Result<LinuxCapabilities> {
    let set = caps
        .iter()
        .map(|c| capability(c))
        .collect::<Result<Capabilities>>()?;
    let mut sets = LinuxCapabilitiesBuilder::default()
        .bounding(set.clone())
        .effective(set.clone())
        .permitted(set)
        .build()
        .map_err(oci_error)?;
    sets.set_inheritable(None).set_ambient(None);
    Ok(sets)
}

/// `CAP_CHOWN` as oci-spec's capability (its names go without the `CAP_` prefix).
fn capability(name: &str) -> Result<Capability> {
    name.strip_prefix("CAP_")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::System(format!("building the OCI spec: unknown capability {name}")))
}

/// `--ulimit`s as rlimits; a negative value (unlimited in Docker's API) counts as 0, as before.
fn rlimits(h: &HostConfig) -> Result<Vec<PosixRlimit>> {
    h.ulimits
        .iter()
        .flatten()
        .filter_map(|u| Some((u.name.as_deref()?, u)))
        .map(|(name, u)| {
            let typ = format!("RLIMIT_{}", name.to_ascii_uppercase());
            let typ: PosixRlimitType = typ
                .parse()
                .map_err(|e| Error::System(format!("building the OCI spec: {typ}: {e}")))?;
            PosixRlimitBuilder::default()
                .typ(typ)
                // A negative value is unlimited (RLIM_INFINITY), as dockerd passes it on.
                .soft(rlimit_value(u.soft))
                .hard(rlimit_value(u.hard))
                .build()
                .map_err(oci_error)
        })
        .collect()
}

/// A `--ulimit` value as the kernel takes it: negative means unlimited, as for dockerd (`-1:-1`).
fn rlimit_value(v: Option<i64>) -> u64 {
    match v.unwrap_or(0) {
        n if n < 0 => u64::MAX,
        n => n as u64,
    }
}

/// `--security-opt no-new-privileges` in any of the spellings the docker CLI accepts.
fn no_new_privileges(h: &HostConfig) -> bool {
    h.security_opt.iter().flatten().any(|o| {
        o == "no-new-privileges" || o == "no-new-privileges=true" || o == "no-new-privileges:true"
    })
}

/// One OCI mount.
fn mount(
    destination: &str,
    typ: &str,
    source: impl Into<PathBuf>,
    options: &[&str],
) -> Result<Mount> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
        .map_err(oci_error)
}

/// The mounts in order: the kernel filesystems every container gets, then the engine's /etc files, the
/// user's binds and volumes and `--tmpfs`, shallower destinations first (as dockerd sorts them), so a volume
/// on `/etc` lies under the engine's `/etc/hosts`, not over it. At equal depth the order is that list's.
fn mounts(
    h: &HostConfig,
    etc: &EtcFiles<'_>,
    user_mounts: &[super::mounts::UserMount],
    joined: &Joined,
) -> Result<Vec<Mount>> {
    let mut mounts = system_mounts(h, joined)?;
    let mut rest = Vec::new();
    for (dest, src) in [
        ("/etc/resolv.conf", etc.resolv_conf),
        ("/etc/hostname", etc.hostname),
        ("/etc/hosts", etc.hosts),
    ] {
        rest.push(mount(dest, "bind", src, &["rbind", "rprivate"])?);
    }
    for m in user_mounts {
        rest.push(m.oci().map_err(oci_error)?);
    }
    for (dest, opts) in h.tmpfs.iter().flatten() {
        let mut options = vec!["nosuid", "nodev", "noexec"];
        options.extend(opts.split(',').filter(|o| !o.is_empty()));
        rest.push(mount(dest, "tmpfs", "tmpfs", &options)?);
    }
    rest.sort_by_key(|m| {
        let d = m.destination().to_string_lossy();
        d.trim_end_matches('/').matches('/').count()
    });
    mounts.extend(rest);
    Ok(mounts)
}

/// /proc, /dev, /sys and friends, and /dev/shm: the container's own, or the one of the container whose IPC
/// namespace it joins.
fn system_mounts(h: &HostConfig, joined: &Joined) -> Result<Vec<Mount>> {
    let sys = if h.privileged == Some(true) {
        "rw"
    } else {
        "ro"
    };
    let shm = match &joined.shm {
        Some(donor) => mount("/dev/shm", "bind", donor, &["rbind", "rprivate"])?,
        None => {
            let size = format!("size={}", h.shm_size.unwrap_or(64 << 20));
            let options = ["nosuid", "noexec", "nodev", "mode=1777", &size];
            mount("/dev/shm", "tmpfs", "shm", &options)?
        }
    };
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", sys],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        shm,
    ])
}

/// `linux`: namespaces, cgroup and resources, devices, sysctls and the security settings.
fn linux(c: &Container, joined: &Joined, caps: &[String], arch: &str) -> Result<Linux> {
    let h = &c.host_config;
    let devices = devices(h)?;
    let mut res = resources(h)?;
    if let Some(rules) = res.devices_mut() {
        rules.extend(devices.iter().map(Device::rule));
        rules.extend(super::devices::cgroup_rules(h)?);
    }
    // A privileged container sees all of /proc and /sys.
    let paths = |p: &Option<Vec<String>>| match h.privileged {
        Some(true) => Vec::new(),
        _ => p.clone().unwrap_or_default(),
    };
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces(h, joined)?)
        .cgroups_path(cgroups_path(c))
        .resources(res)
        .devices(devices.iter().map(Device::oci).collect::<Vec<_>>())
        .sysctl(h.sysctls.clone().unwrap_or_default())
        .masked_paths(paths(&h.masked_paths))
        .readonly_paths(paths(&h.readonly_paths));
    if let Some(profile) = seccomp(h, caps, arch)? {
        linux = linux.seccomp(profile);
    }
    if let (Some(map), None) = (&joined.id_map, &joined.user) {
        let oci = |ranges: &[archive::IdRange]| -> Result<Vec<LinuxIdMapping>> {
            ranges
                .iter()
                .map(|r| {
                    LinuxIdMappingBuilder::default()
                        .container_id(r.container)
                        .host_id(r.host)
                        .size(r.size)
                        .build()
                        .map_err(oci_error)
                })
                .collect()
        };
        linux = linux
            .uid_mappings(oci(&map.uids)?)
            .gid_mappings(oci(&map.gids)?);
    }
    linux.build().map_err(oci_error)
}

/// The device nodes made in the container: the host's with `--privileged`, then each `--device` (which
/// replaces a node at the same path).
fn devices(h: &HostConfig) -> Result<Vec<Device>> {
    let mut devices = if h.privileged == Some(true) {
        super::devices::host_devices()
    } else {
        Vec::new()
    };
    for d in super::devices::from_host_config(h)? {
        devices.retain(|x| x.path != d.path);
        devices.push(d);
    }
    Ok(devices)
}

/// The namespaces the container makes or joins; `host` modes keep the daemon's.
fn namespaces(h: &HostConfig, joined: &Joined) -> Result<Vec<LinuxNamespace>> {
    let host = |mode: &Option<String>| mode.as_deref() == Some("host");
    let v2 = crate::host::cgroup_version(Path::new("/sys/fs/cgroup")) == "2";
    let cgroupns_private = match &h.cgroupns_mode {
        Some(m) => m.to_string() == "private",
        None => v2,
    };
    let wanted = [
        (LinuxNamespaceType::Pid, !host(&h.pid_mode), &joined.pid),
        (LinuxNamespaceType::Ipc, !host(&h.ipc_mode), &joined.ipc),
        (LinuxNamespaceType::Uts, !host(&h.uts_mode), &None),
        (LinuxNamespaceType::Mount, true, &None),
        (
            LinuxNamespaceType::Network,
            !host(&h.network_mode),
            &joined.net,
        ),
        (LinuxNamespaceType::Cgroup, cgroupns_private, &None),
        (
            LinuxNamespaceType::User,
            joined.id_map.is_some() || joined.user.is_some(),
            &joined.user,
        ),
    ];
    wanted
        .into_iter()
        .filter(|(_, own, _)| *own)
        .map(|(typ, _, path)| {
            let ns = LinuxNamespaceBuilder::default().typ(typ);
            match path {
                Some(p) => ns.path(p.clone()),
                None => ns,
            }
            .build()
            .map_err(oci_error)
        })
        .collect()
}

/// The seccomp filter: none when privileged or `seccomp=unconfined`.
fn seccomp(h: &HostConfig, caps: &[String], arch: &str) -> Result<Option<LinuxSeccomp>> {
    match seccomp_choice(h) {
        _ if h.privileged == Some(true) => Ok(None),
        Seccomp::Unconfined => Ok(None),
        choice => seccomp_profile(choice, caps, arch).map(Some),
    }
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

/// `linux.resources` from Docker's resource fields (what a start and a live update apply); devices follow
/// Docker's default allow list.
pub fn resources(h: &HostConfig) -> Result<LinuxResources> {
    let mut r = LinuxResourcesBuilder::default().devices(default_device_rules(h));
    if let Some(memory) = memory(h)? {
        r = r.memory(memory);
    }
    if let Some(cpu) = cpu(h)? {
        r = r.cpu(cpu);
    }
    if let Some(p) = h.pids_limit.filter(|p| *p != 0) {
        r = r.pids(
            LinuxPidsBuilder::default()
                .limit(p)
                .build()
                .map_err(oci_error)?,
        );
    }
    if let Some(b) = super::blkio::block_io(h)? {
        r = r.block_io(b);
    }
    r.build().map_err(oci_error)
}

/// `--memory`, `--memory-reservation`, `--memory-swap`, `--memory-swappiness`, `--oom-kill-disable`; none
/// when no limit is set.
fn memory(h: &HostConfig) -> Result<Option<LinuxMemory>> {
    let mut m = LinuxMemoryBuilder::default();
    if let Some(v) = h.memory.filter(|m| *m > 0) {
        m = m.limit(v);
    }
    if let Some(v) = h.memory_reservation.filter(|m| *m > 0) {
        m = m.reservation(v);
    }
    if let Some(v) = h.memory_swap.filter(|s| *s != 0) {
        m = m.swap(v);
    }
    if let Some(v) = h.memory_swappiness.filter(|s| *s >= 0) {
        m = m.swappiness(v as u64);
    }
    if h.oom_kill_disable == Some(true) {
        m = m.disable_oom_killer(true);
    }
    let m = m.build().map_err(oci_error)?;
    Ok((m != LinuxMemory::default()).then_some(m))
}

/// `--cpu-shares`, `--cpus` (a CFS quota over the period), `--cpu-period`/`--cpu-quota`, `--cpuset-*`;
/// none when no limit is set.
fn cpu(h: &HostConfig) -> Result<Option<LinuxCpu>> {
    let mut cpu = LinuxCpuBuilder::default();
    if let Some(s) = h.cpu_shares.filter(|s| *s > 0) {
        cpu = cpu.shares(s as u64);
    }
    let period = h.cpu_period.filter(|p| *p > 0);
    if let Some(n) = h.nano_cpus.filter(|n| *n > 0) {
        let period = period.unwrap_or(100_000);
        cpu = cpu.period(period as u64).quota(n * period / 1_000_000_000);
    } else {
        if let Some(p) = period {
            cpu = cpu.period(p as u64);
        }
        if let Some(q) = h.cpu_quota.filter(|q| *q != 0) {
            cpu = cpu.quota(q);
        }
    }
    if let Some(c) = h.cpuset_cpus.as_deref().filter(|c| !c.is_empty()) {
        cpu = cpu.cpus(c);
    }
    if let Some(m) = h.cpuset_mems.as_deref().filter(|m| !m.is_empty()) {
        cpu = cpu.mems(m);
    }
    let cpu = cpu.build().map_err(oci_error)?;
    Ok((cpu != LinuxCpu::default()).then_some(cpu))
}

/// Docker's device cgroup allow list: every device with `--privileged`; else none but the standard
/// nodes, ttys and `mknod` of any.
fn default_device_rules(h: &HostConfig) -> Vec<LinuxDeviceCgroup> {
    use super::devices::device_rule as rule;
    use LinuxDeviceType::{B, C};
    if h.privileged == Some(true) {
        return vec![rule(true, None, None, None, "rwm")];
    }
    vec![
        rule(false, None, None, None, "rwm"),
        rule(true, Some(C), None, None, "m"),
        rule(true, Some(B), None, None, "m"),
        rule(true, Some(C), Some(1), Some(3), "rwm"),
        rule(true, Some(C), Some(1), Some(5), "rwm"),
        rule(true, Some(C), Some(1), Some(7), "rwm"),
        rule(true, Some(C), Some(1), Some(8), "rwm"),
        rule(true, Some(C), Some(1), Some(9), "rwm"),
        rule(true, Some(C), Some(5), Some(0), "rwm"),
        rule(true, Some(C), Some(5), Some(1), "rwm"),
        rule(true, Some(C), Some(5), Some(2), "rwm"),
        rule(true, Some(C), Some(136), None, "rwm"),
        rule(true, Some(C), Some(10), Some(200), "rwm"),
    ]
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
    fn a_negative_ulimit_is_unlimited() {
        let h = HostConfig {
            ulimits: Some(vec![bollard_stubs::models::ResourcesUlimits {
                name: Some("nofile".into()),
                soft: Some(-1),
                hard: Some(-1),
            }]),
            ..Default::default()
        };
        let r = rlimits(&h).unwrap();
        assert_eq!((r[0].soft(), r[0].hard()), (u64::MAX, u64::MAX));
    }

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
    fn every_capability_name_has_an_oci_spec_value() {
        for name in ALL_CAPS {
            let cap = capability(name).unwrap();
            assert_eq!(format!("CAP_{cap}"), *name);
        }
        assert!(capability("CAP_NOPE").is_err());
    }

    #[test]
    fn host_modes_keep_the_daemons_namespaces() {
        let h = HostConfig {
            pid_mode: Some("host".into()),
            network_mode: Some("host".into()),
            cgroupns_mode: Some(bollard_stubs::models::HostConfigCgroupnsModeEnum::HOST),
            ..Default::default()
        };
        let joined = Joined {
            ipc: Some(PathBuf::from("/proc/7/ns/ipc")),
            ..Default::default()
        };
        let ns = namespaces(&h, &joined).unwrap();
        let types: Vec<_> = ns.iter().map(|n| n.typ()).collect();
        assert_eq!(
            types,
            [
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Mount
            ]
        );
        assert_eq!(ns[0].path().as_deref(), Some(Path::new("/proc/7/ns/ipc")));
    }

    #[test]
    fn nano_cpus_become_a_cfs_quota() {
        let h = HostConfig {
            nano_cpus: Some(1_500_000_000),
            memory: Some(64 << 20),
            pids_limit: Some(10),
            ..Default::default()
        };
        let r = resources(&h).unwrap();
        let cpu = r.cpu().as_ref().unwrap();
        assert_eq!(cpu.quota(), Some(150_000));
        assert_eq!(cpu.period(), Some(100_000));
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
        assert_eq!(r.pids().as_ref().unwrap().limit(), 10);
    }
}
