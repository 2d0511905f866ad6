//! `info`, `version` and `system df`: what the daemon reports about itself and its host.

use std::collections::HashMap;
use std::path::Path;

use bollard_stubs::models::{
    PluginsInfo, SystemDataUsageResponse, SystemInfo, SystemInfoCgroupDriverEnum,
    SystemInfoCgroupVersionEnum, SystemVersion, SystemVersionComponents, SystemVersionPlatform,
};

use crate::error::{Context, Result};
use crate::Engine;

/// Berth's version, as `version` and `info` report it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The newest API version Berth implements, and the oldest it accepts.
pub const API_VERSION: &str = "1.50";
/// The oldest API version accepted (older clients get Docker's "too old" error).
pub const MIN_API_VERSION: &str = "1.24";

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
    /// `GET /version`.
    pub fn version(&self) -> SystemVersion {
        let h = &self.host;
        let details: HashMap<String, String> = [
            ("ApiVersion", API_VERSION),
            ("Arch", h.go_arch),
            ("BuildTime", ""),
            ("Experimental", "false"),
            ("GitCommit", option_env!("BERTH_GIT_COMMIT").unwrap_or("")),
            ("KernelVersion", h.kernel_version.as_str()),
            ("MinAPIVersion", MIN_API_VERSION),
            ("Os", "linux"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        SystemVersion {
            platform: Some(SystemVersionPlatform {
                name: "Berth Engine".into(),
            }),
            components: Some(vec![SystemVersionComponents {
                name: "Engine".into(),
                version: VERSION.into(),
                details: Some(details),
            }]),
            version: Some(VERSION.into()),
            api_version: Some(API_VERSION.into()),
            min_api_version: Some(MIN_API_VERSION.into()),
            git_commit: Some(option_env!("BERTH_GIT_COMMIT").unwrap_or("").into()),
            go_version: Some(String::new()),
            os: Some("linux".into()),
            arch: Some(h.go_arch.into()),
            kernel_version: Some(h.kernel_version.clone()),
            experimental: Some(false),
            build_time: Some(String::new()),
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
        Ok(SystemInfo {
            id: Some(self.id.clone()),
            containers: Some(all as i64),
            containers_running: Some(running as i64),
            containers_paused: Some(paused as i64),
            containers_stopped: Some((all - running - paused) as i64),
            images: Some(images.len() as i64),
            driver: Some("overlayfs".into()),
            driver_status: Some(vec![
                vec!["Backing Filesystem".into(), backing],
                vec!["Supports d_type".into(), "true".into()],
            ]),
            docker_root_dir: Some(self.config.data_root.display().to_string()),
            plugins: Some(PluginsInfo {
                volume: Some(vec![]),
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
            name: Some(h.hostname.clone()),
            labels: Some(vec![]),
            experimental_build: Some(false),
            server_version: Some(VERSION.into()),
            live_restore_enabled: Some(true),
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
            security_options: Some(vec![]),
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
            warnings: Some(
                self.net
                    .firewall_missing()
                    .map(|r| {
                        vec![format!(
                            "WARNING: no firewall ({r}): published ports are served by the userland proxy only, without NAT or network isolation"
                        )]
                    })
                    .unwrap_or_default(),
            ),
            ..Default::default()
        })
    }

    /// `GET /system/df`: images, containers and volumes (build cache comes with the builder).
    pub async fn disk_usage(&self) -> Result<SystemDataUsageResponse> {
        let mut images = self.list_images(crate::ImageListOptions::default()).await?;
        let containers = self.containers.list();
        for img in &mut images {
            img.containers = containers.iter().filter(|c| c.image_id == img.id).count() as i64;
            img.shared_size = 0;
        }
        let layers_size = self
            .all_images()
            .await?
            .iter()
            .flat_map(|i| i.layers.iter().map(|l| (l.chain_id.to_string(), l.size)))
            .collect::<HashMap<_, _>>()
            .values()
            .sum::<u64>();
        Ok(SystemDataUsageResponse {
            layers_size: Some(layers_size as i64),
            images: Some(images),
            containers: Some(
                self.list_containers(crate::containers::ContainerListOptions {
                    all: true,
                    ..Default::default()
                })
                .await?,
            ),
            volumes: Some(self.volume_usage().await?),
            build_cache: Some(vec![]),
        })
    }
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
