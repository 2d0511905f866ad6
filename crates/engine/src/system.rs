//! `info`, `version` and `system df`: what the daemon reports about itself and its host.

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use bollard_stubs::models::{
    Commit, IndexInfo, LocalNodeState, PluginsInfo, RegistryServiceConfig, SwarmInfo,
    SystemDataUsageResponse, SystemInfo, SystemInfoCgroupDriverEnum, SystemInfoCgroupVersionEnum,
    SystemVersion, SystemVersionComponents, SystemVersionPlatform,
};

use crate::error::{Context, Result};
use crate::Engine;

/// Berth's version, as `version` and `info` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The newest API version Berth implements, and the oldest it accepts.
pub const API_VERSION: &str = "1.50";
/// The oldest API version accepted (older clients get Docker's "too old" error).
pub const MIN_API_VERSION: &str = "1.24";

/// The storage driver's name in `info`, `inspect` and `GraphDriver`: Berth stacks image layers and a
/// container's writable layer in one overlay mount with its upper and work dirs, which is what dockerd
/// calls `overlay2` (its `overlay` driver, one lower dir per mount, is the deprecated one).
pub const STORAGE_DRIVER: &str = "overlay2";

/// The name `info` gives the init Berth embeds for `--init` (dockerd's default `InitBinary`).
const INIT_BINARY: &str = "docker-init";

/// What the running binary was built from, for `version` and `info`; the daemon sets it at start (the
/// binary's build script reads it from git), and a library user that does not gets empty strings.
#[derive(Debug, Clone, Default)]
pub struct BuildInfo {
    /// The abbreviated commit (dockerd's `GitCommit`: 7 hex digits), or "" when built outside git.
    pub git_commit: String,
    /// When that commit was made, RFC 3339 with nanoseconds (dockerd's `BuildTime`), or "".
    pub build_time: String,
    /// The compiler that built it (`rustc 1.x.y`), reported where dockerd reports its Go version.
    pub compiler: String,
}

static BUILD: OnceLock<BuildInfo> = OnceLock::new();

/// Records what the binary was built from (once; later calls are ignored).
pub fn set_build_info(info: BuildInfo) {
    let _ = BUILD.set(info);
}

fn build_info() -> &'static BuildInfo {
    BUILD.get_or_init(BuildInfo::default)
}

/// Which parts of `system df` a client asked for (`type=` since API 1.42; all of them otherwise).
#[derive(Debug, Clone, Copy)]
pub struct DiskUsageKinds {
    /// `container`.
    pub containers: bool,
    /// `image`.
    pub images: bool,
    /// `volume`.
    pub volumes: bool,
    /// `build-cache`.
    pub build_cache: bool,
}

impl Default for DiskUsageKinds {
    fn default() -> DiskUsageKinds {
        DiskUsageKinds {
            containers: true,
            images: true,
            volumes: true,
            build_cache: true,
        }
    }
}

impl DiskUsageKinds {
    /// From the `type` values of a request; an unknown one is dockerd's 400.
    pub fn parse(types: &[String]) -> Result<DiskUsageKinds> {
        if types.is_empty() {
            return Ok(DiskUsageKinds::default());
        }
        let mut k = DiskUsageKinds {
            containers: false,
            images: false,
            volumes: false,
            build_cache: false,
        };
        for t in types {
            match t.as_str() {
                "container" => k.containers = true,
                "image" => k.images = true,
                "volume" => k.volumes = true,
                "build-cache" => k.build_cache = true,
                other => {
                    return Err(crate::Error::InvalidParameter(format!(
                        "unknown object type: {other}"
                    )))
                }
            }
        }
        Ok(k)
    }
}

/// Reads the engine's persistent ID, making one on first start (dockerd keeps one in `engine-id`).
pub(crate) fn engine_id(data_root: &Path) -> Result<String> {
    let path = data_root.join("engine-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        if !id.trim().is_empty() {
            return Ok(id.trim().to_owned());
        }
    }
    let mut bytes = [0u8; 16];
    let mut urandom = std::fs::File::open("/dev/urandom").context("open /dev/urandom")?;
    std::io::Read::read_exact(&mut urandom, &mut bytes).context("read /dev/urandom")?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let id = format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    );
    let tmp = data_root.join("engine-id.tmp");
    std::fs::write(&tmp, &id)
        .and_then(|()| std::fs::rename(&tmp, &path))
        .with_context(|| format!("write {}", path.display()))?;
    Ok(id)
}

impl Engine {
    /// `GET /version`: the engine, and the components a container runs with (the default runtime and the
    /// init), as dockerd lists containerd, runc and docker-init.
    pub fn version(&self) -> SystemVersion {
        let h = &self.host;
        let b = build_info();
        let details: HashMap<String, String> = [
            ("ApiVersion", API_VERSION),
            ("Arch", h.go_arch),
            ("BuildTime", b.build_time.as_str()),
            ("Experimental", "false"),
            ("GitCommit", b.git_commit.as_str()),
            ("GoVersion", b.compiler.as_str()),
            ("KernelVersion", h.kernel_version.as_str()),
            ("MinAPIVersion", MIN_API_VERSION),
            ("Os", "linux"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let component = |name: &str, version: &str, commit: &str| SystemVersionComponents {
            name: name.to_owned(),
            version: version.to_owned(),
            details: Some(HashMap::from([("GitCommit".to_owned(), commit.to_owned())])),
        };
        let mut components = vec![SystemVersionComponents {
            name: "Engine".into(),
            version: VERSION.into(),
            details: Some(details),
        }];
        let runtime = self.default_runtime_version();
        components.push(component(
            &self.config.default_runtime,
            &runtime.version,
            &runtime.commit,
        ));
        // The init is built into this binary, from the same tree.
        components.push(component(INIT_BINARY, VERSION, &b.git_commit));
        SystemVersion {
            platform: Some(SystemVersionPlatform {
                name: "Berth Engine".into(),
            }),
            components: Some(components),
            version: Some(VERSION.into()),
            api_version: Some(API_VERSION.into()),
            min_api_version: Some(MIN_API_VERSION.into()),
            git_commit: Some(b.git_commit.clone()),
            go_version: Some(b.compiler.clone()),
            os: Some("linux".into()),
            arch: Some(h.go_arch.into()),
            kernel_version: Some(h.kernel_version.clone()),
            experimental: Some(false),
            build_time: Some(b.build_time.clone()),
        }
    }

    /// The default runtime's version and commit: Berth's own for the built-in runtime, else what the
    /// binary's `--version` says (read once, as it cannot change while the daemon runs).
    fn default_runtime_version(&self) -> &RuntimeVersion {
        static EXTERNAL: OnceLock<RuntimeVersion> = OnceLock::new();
        static BUILTIN: OnceLock<RuntimeVersion> = OnceLock::new();
        match self.config.runtimes.get(&self.config.default_runtime) {
            None => BUILTIN.get_or_init(|| RuntimeVersion {
                version: VERSION.to_owned(),
                commit: build_info().git_commit.clone(),
            }),
            Some(path) => EXTERNAL.get_or_init(|| runtime_version(path)),
        }
    }

    /// `GET /info`, with real figures from the stores and the host.
    pub async fn info(&self) -> Result<SystemInfo> {
        let images = self.all_images().await?;
        let containers = self.containers.list();
        let all = containers.len();
        let count = |st: crate::containers::record::Status| {
            containers.iter().filter(|c| c.state.status == st).count()
        };
        let running = count(crate::containers::record::Status::Running);
        let paused = count(crate::containers::record::Status::Paused);
        let h = &self.host;
        let backing = backing_fs(&self.config.data_root);
        let d_type = supports_d_type(&self.config.data_root);
        let commit = |id: &str| Commit {
            id: Some(if id.is_empty() { "N/A" } else { id }.to_owned()),
        };
        let git_commit = build_info().git_commit.as_str();
        Ok(SystemInfo {
            id: Some(self.id.clone()),
            containers: Some(all as i64),
            containers_running: Some(running as i64),
            containers_paused: Some(paused as i64),
            containers_stopped: Some((all - running - paused) as i64),
            images: Some(images.len() as i64),
            driver: Some(STORAGE_DRIVER.into()),
            // dockerd's overlay2 status lines. Berth mounts without metacopy or userxattr, and reads a
            // container's changes straight from its upper dir (a native diff).
            driver_status: Some(vec![
                vec!["Backing Filesystem".into(), backing],
                vec!["Supports d_type".into(), d_type.to_string()],
                vec!["Using metacopy".into(), "false".into()],
                vec!["Native Overlay Diff".into(), "true".into()],
                vec!["userxattr".into(), "false".into()],
            ]),
            docker_root_dir: Some(self.config.data_root.display().to_string()),
            plugins: Some(PluginsInfo {
                volume: Some(vec!["local".into()]),
                network: Some(vec!["bridge".into(), "host".into(), "null".into()]),
                authorization: None,
                log: Some(
                    crate::containers::logdriver::DRIVERS
                        .iter()
                        .map(|d| d.to_string())
                        .collect(),
                ),
            }),
            memory_limit: Some(true),
            swap_limit: Some(true),
            // Not supported (dockerd leaves the key out then).
            kernel_memory_tcp: None,
            cpu_cfs_period: Some(true),
            cpu_cfs_quota: Some(true),
            cpu_shares: Some(true),
            cpu_set: Some(true),
            pids_limit: Some(true),
            oom_kill_disable: Some(h.cgroup_version == "1"),
            ipv4_forwarding: Some(
                std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward")
                    .map(|s| s.trim() == "1")
                    .unwrap_or(false),
            ),
            debug: Some(false),
            nfd: Some(open_fds()),
            n_goroutines: Some(0),
            system_time: Some(image::timefmt::rfc3339_nano(std::time::SystemTime::now())),
            logging_driver: Some(self.config.log.driver.clone()),
            cgroup_driver: Some(SystemInfoCgroupDriverEnum::CGROUPFS),
            cgroup_version: Some(match h.cgroup_version {
                "2" => SystemInfoCgroupVersionEnum::_2,
                _ => SystemInfoCgroupVersionEnum::_1,
            }),
            n_events_listener: Some(self.events.listeners() as i64),
            kernel_version: Some(h.kernel_version.clone()),
            operating_system: Some(h.operating_system.clone()),
            os_version: Some(h.os_version.clone()),
            os_type: Some("linux".into()),
            architecture: Some(h.architecture.clone()),
            ncpu: Some(h.ncpu as i64),
            mem_total: Some(h.mem_total as i64),
            index_server_address: Some("https://index.docker.io/v1/".into()),
            registry_config: Some(registry_service_config(&self.config.registry)),
            http_proxy: Some(mask_credentials(&env_any(&["HTTP_PROXY", "http_proxy"]))),
            https_proxy: Some(mask_credentials(&env_any(&["HTTPS_PROXY", "https_proxy"]))),
            no_proxy: Some(env_any(&["NO_PROXY", "no_proxy"])),
            name: Some(h.hostname.clone()),
            labels: Some(vec![]),
            experimental_build: Some(false),
            server_version: Some(VERSION.into()),
            live_restore_enabled: Some(true),
            isolation: Some(bollard_stubs::models::SystemInfoIsolationEnum::EMPTY),
            runtimes: Some(
                std::iter::once((crate::BUILTIN_RUNTIME.to_owned(), None))
                    .chain(
                        self.config
                            .runtimes
                            .iter()
                            .map(|(n, p)| (n.clone(), Some(p.display().to_string()))),
                    )
                    .map(|(n, path)| {
                        (
                            n.clone(),
                            bollard_stubs::models::Runtime {
                                path: Some(path.unwrap_or(n)),
                                ..Default::default()
                            },
                        )
                    })
                    .collect(),
            ),
            default_runtime: Some(self.config.default_runtime.clone()),
            swarm: Some(SwarmInfo {
                node_id: Some(String::new()),
                node_addr: Some(String::new()),
                local_node_state: Some(LocalNodeState::INACTIVE),
                control_available: Some(false),
                error: Some(String::new()),
                ..Default::default()
            }),
            init_binary: Some(INIT_BINARY.into()),
            // No containerd: Berth's shims run the containers (dockerd says N/A for what it cannot tell).
            containerd_commit: Some(commit("")),
            runc_commit: Some(commit(&self.default_runtime_version().commit)),
            init_commit: Some(commit(git_commit)),
            security_options: Some(security_options(
                h.cgroup_version,
                self.config.userns_remap.is_some(),
            )),
            firewall_backend: Some(bollard_stubs::models::FirewallInfo {
                driver: Some(
                    if self.net.firewall_missing().is_some() {
                        "none"
                    } else {
                        "nftables"
                    }
                    .into(),
                ),
                info: self
                    .net
                    .firewall_missing()
                    .map(|r| vec![vec!["Reason".to_owned(), r.to_owned()]]),
            }),
            cdi_spec_dirs: Some(vec![]),
            warnings: Some(
                self.net
                    .firewall_missing()
                    .map(|r| {
                        format!(
                            "WARNING: no firewall ({r}): published ports are served by the userland proxy only, without NAT or network isolation"
                        )
                    })
                    .into_iter()
                    .chain(self.config.api_warnings.iter().cloned())
                    .collect(),
            ),
            ..Default::default()
        })
    }

    /// `GET /system/df`: what images, containers, volumes and the build cache hold, measured as dockerd
    /// measures them (layer sizes, writable layers walked, volumes walked).
    pub async fn disk_usage(&self, kinds: DiskUsageKinds) -> Result<SystemDataUsageResponse> {
        let mut out = SystemDataUsageResponse::default();
        if kinds.images {
            let all = self.all_images().await?;
            let mut images = self
                .list_images(crate::ImageListOptions {
                    shared_size: true,
                    ..Default::default()
                })
                .await?;
            let containers = self.containers.list();
            for img in &mut images {
                img.containers = containers.iter().filter(|c| c.image_id == img.id).count() as i64;
            }
            let layers_size = all
                .iter()
                .flat_map(|i| i.layers.iter().map(|l| (l.chain_id.to_string(), l.size)))
                .collect::<HashMap<_, _>>()
                .values()
                .sum::<u64>();
            out.layers_size = Some(layers_size as i64);
            out.images = Some(images);
        }
        if kinds.containers {
            out.containers = Some(
                self.list_containers(crate::containers::ContainerListOptions {
                    all: true,
                    size: true,
                    ..Default::default()
                })
                .await?,
            );
        }
        if kinds.volumes {
            out.volumes = Some(self.volume_usage().await?);
        }
        if kinds.build_cache {
            out.build_cache = Some(self.build_cache_records().await?);
        }
        Ok(out)
    }
}

/// A runtime's version and commit, as `runc --version` prints them.
#[derive(Debug, Clone, Default)]
struct RuntimeVersion {
    version: String,
    commit: String,
}

/// Runs `PATH --version` and reads the lines dockerd reads (`… version X` and `commit: Y`); empty
/// strings when it fails.
fn runtime_version(path: &Path) -> RuntimeVersion {
    let out = match std::process::Command::new(path).arg("--version").output() {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).into_owned(),
        Ok(o) => {
            tracing::warn!(runtime = %path.display(), status = %o.status, "the default runtime's --version failed");
            return RuntimeVersion::default();
        }
        Err(e) => {
            tracing::warn!(runtime = %path.display(), error = %e, "running the default runtime's --version");
            return RuntimeVersion::default();
        }
    };
    parse_runtime_version(&out)
}

fn parse_runtime_version(out: &str) -> RuntimeVersion {
    let mut v = RuntimeVersion::default();
    for line in out.lines() {
        if let Some(c) = line.strip_prefix("commit:") {
            v.commit = c.trim().to_owned();
        } else if let Some((_, ver)) = line.rsplit_once("version") {
            v.version = ver.trim().to_owned();
        }
    }
    v
}

/// dockerd's `SecurityOptions` for what Berth applies: Docker's default seccomp profile, compiled in
/// (`profile=builtin`), and private cgroup namespaces, which containers get by default on a cgroup v2
/// host only; `name=userns` with `--userns-remap`, in dockerd's place for it. Berth runs as root, without
/// AppArmor or SELinux.
fn security_options(cgroup_version: &str, userns: bool) -> Vec<String> {
    let mut opts = vec!["name=seccomp,profile=builtin".to_owned()];
    if userns {
        opts.push("name=userns".to_owned());
    }
    if cgroup_version == "2" && Path::new("/proc/self/ns/cgroup").exists() {
        opts.push("name=cgroupns".to_owned());
    }
    opts
}

/// `RegistryConfig` as dockerd reports it: the insecure networks (the daemon's, then `::1/128` and
/// `127.0.0.0/8`, which are always insecure), an index entry for each registry named insecure and one for
/// docker.io with its mirrors (written with a trailing slash, as dockerd normalises them).
fn registry_service_config(cfg: &crate::RegistryConfig) -> RegistryServiceConfig {
    let mirrors: Vec<String> = cfg
        .mirrors
        .iter()
        .map(|m| format!("{}/", m.trim_end_matches('/')))
        .collect();
    let mut cidrs: Vec<String> = Vec::new();
    for net in cfg.insecure_cidrs.iter().map(|n| n.to_string()) {
        if !cidrs.contains(&net) {
            cidrs.push(net);
        }
    }
    // dockerd lists the loopback networks last whatever the order of the flags.
    for lo in ["::1/128", "127.0.0.0/8"] {
        cidrs.retain(|c| c != lo);
        cidrs.push(lo.to_owned());
    }
    let mut index: HashMap<String, IndexInfo> = cfg
        .insecure_hosts
        .iter()
        .map(|h| {
            (
                h.clone(),
                IndexInfo {
                    name: Some(h.clone()),
                    mirrors: Some(vec![]),
                    secure: Some(false),
                    official: Some(false),
                },
            )
        })
        .collect();
    index.insert(
        "docker.io".into(),
        IndexInfo {
            name: Some("docker.io".into()),
            mirrors: Some(mirrors.clone()),
            secure: Some(true),
            official: Some(true),
        },
    );
    RegistryServiceConfig {
        insecure_registry_cidrs: Some(cidrs),
        index_configs: Some(index),
        mirrors: Some(mirrors),
    }
}

/// The first of these environment variables that is set and not empty, or "".
fn env_any(names: &[&str]) -> String {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
        .unwrap_or_default()
}

/// A proxy URL with its user and password replaced by `xxxxx`, as dockerd shows it.
fn mask_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://xxxxx:xxxxx@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// Whether the file system under the data root fills in entry types (`d_type`), which overlayfs needs.
fn supports_d_type(path: &Path) -> bool {
    let Ok(fd) = rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    ) else {
        return false;
    };
    let Ok(dir) = rustix::fs::Dir::read_from(&fd) else {
        return false;
    };
    dir.flatten()
        .all(|e| e.file_type() != rustix::fs::FileType::Unknown)
}

/// The file system type under the data root, in Docker's words (`extfs`, `xfs`, `tmpfs`, …).
fn backing_fs(path: &Path) -> String {
    let magic = rustix::fs::statfs(path)
        .map(
            |s| s.f_type as i64, /* f_type is i64 here, u32 on some arches */
        )
        .unwrap_or(0);
    match magic {
        0xEF53 => "extfs",
        0x5846_5342 => "xfs",
        0x0102_1994 => "tmpfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlayfs",
        _ => "<unknown>",
    }
    .into()
}

fn open_fds() -> i64 {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_versions_are_read_as_dockerd_reads_them() {
        let v = parse_runtime_version(
            "runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\ngo: go1.19.8\n",
        );
        assert_eq!(v.version, "1.1.5+ds1");
        assert_eq!(v.commit, "1.1.5+ds1-1+deb12u1");
        let v = parse_runtime_version("crun version 1.8.1\ncommit: f8a096be\nrundir: /run/crun\n");
        assert_eq!(v.version, "1.8.1");
        assert_eq!(v.commit, "f8a096be");
    }

    #[test]
    fn proxy_credentials_are_masked() {
        assert_eq!(
            mask_credentials("http://user:secret@proxy.example:3128/x"),
            "http://xxxxx:xxxxx@proxy.example:3128/x"
        );
        assert_eq!(
            mask_credentials("http://proxy.example:3128"),
            "http://proxy.example:3128"
        );
        assert_eq!(mask_credentials(""), "");
    }

    #[test]
    fn registry_config_is_shaped_as_dockerds() {
        let mut cfg = crate::RegistryConfig::default();
        cfg.add_insecure("10.1.0.0/16").unwrap();
        cfg.add_insecure("reg.example:5000").unwrap();
        cfg.mirrors.push("https://mirror.example".into());
        let r = registry_service_config(&cfg);
        assert_eq!(
            r.insecure_registry_cidrs.unwrap(),
            ["10.1.0.0/16", "::1/128", "127.0.0.0/8"]
        );
        assert_eq!(r.mirrors.unwrap(), ["https://mirror.example/"]);
        let index = r.index_configs.unwrap();
        assert_eq!(
            index["docker.io"].mirrors.as_deref().unwrap(),
            ["https://mirror.example/"]
        );
        assert_eq!(index["docker.io"].official, Some(true));
        assert_eq!(index["reg.example:5000"].secure, Some(false));
    }

    #[test]
    fn disk_usage_types_follow_dockerd() {
        let k = DiskUsageKinds::parse(&["image".into(), "build-cache".into()]).unwrap();
        assert!(k.images && k.build_cache && !k.containers && !k.volumes);
        let e = DiskUsageKinds::parse(&["disk".into()]).unwrap_err();
        assert_eq!(e.to_string(), "unknown object type: disk");
    }
}
