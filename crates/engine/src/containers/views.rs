//! `GET /containers/json` and `GET /containers/{id}/json`: records shown in Docker's shapes.

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerInspectResponse, ContainerState, ContainerStateStatusEnum, ContainerSummary,
    ContainerSummaryHostConfig, ContainerSummaryNetworkSettings, ContainerSummaryStateEnum,
    DriverData, HostConfig,
};

use super::etc::EtcPaths;
use super::record::{Container, Status};
use super::rootfs::Layout;
use crate::error::Result;
use crate::filters::Filters;
use crate::system::STORAGE_DRIVER;
use crate::Engine;

/// What `GET /containers/json` asks for.
#[derive(Debug, Default)]
pub struct ContainerListOptions {
    /// Include stopped containers.
    pub all: bool,
    /// Only the last N created (implies all).
    pub limit: Option<usize>,
    /// `filters`.
    pub filters: Filters,
    /// `size`: report `SizeRw` and `SizeRootFs` (walks each container's writable layer).
    pub size: bool,
}

/// A container's `SizeRw` (the bytes in its writable layer, -1 if it could not be read) and `SizeRootFs`
/// (that plus its image's size), as dockerd computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSizes {
    /// Bytes in the writable layer, or -1.
    pub rw: i64,
    /// The image's size plus `rw` (the image's size alone when `rw` is -1).
    pub root_fs: i64,
}

impl Engine {
    /// `GET /containers/json`.
    pub async fn list_containers(
        &self,
        opts: ContainerListOptions,
    ) -> Result<Vec<ContainerSummary>> {
        let f = &opts.filters;
        f.validate(&[
            "id", "name", "status", "label", "ancestor", "exited", "before", "since", "volume",
            "network", "health", "is-task", "publish", "expose",
        ])?;
        for v in f.get("health") {
            if !matches!(v.as_str(), "starting" | "healthy" | "unhealthy" | "none") {
                return Err(crate::Error::InvalidParameter(format!(
                    "Unrecognised filter value for health: {v}"
                )));
            }
        }
        let mut list = self.containers.list();
        let link_names = self.link_names();
        list.sort_by(|a, b| b.created.cmp(&a.created));
        let created_of = |name: &str| self.containers.resolve(name).map(|c| c.created);
        let before = f
            .get("before")
            .iter()
            .map(|n| created_of(n))
            .collect::<Result<Vec<_>>>()?;
        let since = f
            .get("since")
            .iter()
            .map(|n| created_of(n))
            .collect::<Result<Vec<_>>>()?;
        let all = opts.all
            || opts.limit.is_some()
            || !f.get("status").is_empty()
            || !f.get("exited").is_empty();
        let ancestor_ids: Vec<String> = f
            .get("ancestor")
            .iter()
            .filter_map(|a| self.images.get(a).ok().map(|i| i.id.to_string()))
            .collect();
        let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
            let v = f.get(key);
            v.is_empty() || v.iter().any(|x| pred(x))
        };
        let mut selected: Vec<&Container> = list
            .iter()
            .filter(|c| {
                // Restarting counts as running, as in dockerd.
                all || matches!(
                    c.state.status,
                    Status::Running | Status::Paused | Status::Restarting
                )
            })
            .filter(|c| any("id", &|v| c.id.starts_with(v)))
            .filter(|c| any("name", &|v| c.name.contains(v.trim_start_matches('/'))))
            .filter(|c| any("status", &|v| v == c.state.status.as_str()))
            .filter(|c| {
                any("exited", &|v| {
                    c.state.status == Status::Exited && v.parse() == Ok(c.state.exit_code)
                })
            })
            .filter(|c| any("health", &|v| v == super::health::filter_word(c)))
            .filter(|c| f.get("ancestor").is_empty() || ancestor_ids.contains(&c.image_id))
            .filter(|c| {
                f.labels_match("label", |k| {
                    c.config
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(k))
                        .map(String::as_str)
                })
            })
            .filter(|c| {
                // A volume by name (or a bind by host path), or any mount by its destination.
                any("volume", &|v| {
                    c.mounts.iter().any(|m| {
                        let key = m
                            .name
                            .as_deref()
                            .filter(|n| !n.is_empty())
                            .or(m.source.as_deref());
                        key == Some(v) || m.destination.as_deref() == Some(v)
                    })
                })
            })
            .filter(|c| before.iter().all(|b| c.created < *b))
            .filter(|c| since.iter().all(|s| c.created > *s))
            .collect();
        if let Some(n) = opts.limit.filter(|n| *n > 0) {
            selected.truncate(n);
        }
        let mut out: Vec<ContainerSummary> = selected
            .iter()
            .map(|c| self.summary(c, link_names.get(&c.id)))
            .collect();
        if opts.size {
            let sizes = self.layer_sizes(&selected).await?;
            for (summary, s) in out.iter_mut().zip(sizes) {
                // dockerd's list leaves zero sizes out (`omitempty`).
                summary.size_rw = Some(s.rw).filter(|v| *v != 0);
                summary.size_root_fs = Some(s.root_fs).filter(|v| *v != 0);
            }
        }
        Ok(out)
    }

    /// The sizes of these containers' layers (see [`LayerSizes`]), walked on the blocking pool.
    pub(crate) async fn layer_sizes(&self, containers: &[&Container]) -> Result<Vec<LayerSizes>> {
        let work: Vec<(std::path::PathBuf, i64)> = containers
            .iter()
            .map(|c| {
                let image_size = self.images.get(&c.image_id).map_or(0, |i| i.size as i64);
                (Layout::new(&self.containers.dir(&c.id)).upper, image_size)
            })
            .collect();
        Ok(tokio::task::spawn_blocking(move || {
            work.iter()
                .map(|(upper, image_size)| layer_sizes_of(upper, *image_size))
                .collect()
        })
        .await?)
    }

    /// One row of `docker ps`; `links` are the `/PARENT/ALIAS` names other containers' links give it.
    fn summary(&self, c: &Container, links: Option<&Vec<String>>) -> ContainerSummary {
        let state = match c.state.status {
            Status::Created => ContainerSummaryStateEnum::CREATED,
            Status::Running => ContainerSummaryStateEnum::RUNNING,
            Status::Paused => ContainerSummaryStateEnum::PAUSED,
            Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
            Status::Removing => ContainerSummaryStateEnum::REMOVING,
            Status::Exited => ContainerSummaryStateEnum::EXITED,
            Status::Dead => ContainerSummaryStateEnum::DEAD,
        };
        let (ports, networks) = self.summary_network(c);
        ContainerSummary {
            id: Some(c.id.clone()),
            names: Some(
                std::iter::once(format!("/{}", c.name))
                    .chain(links.into_iter().flatten().cloned())
                    .collect(),
            ),
            image: c.config.image.clone(),
            image_id: Some(c.image_id.clone()),
            command: Some(command_line(c)),
            created: Some(image::timefmt::unix_seconds(&c.created)),
            ports: Some(ports),
            labels: Some(c.config.labels.clone().unwrap_or_default()),
            state: Some(state),
            status: Some(status_text(c)),
            host_config: Some(ContainerSummaryHostConfig {
                network_mode: c.host_config.network_mode.clone(),
                annotations: c.host_config.annotations.clone().filter(|a| !a.is_empty()),
            }),
            network_settings: Some(ContainerSummaryNetworkSettings {
                networks: Some(networks),
            }),
            mounts: Some(c.mounts.clone()),
            ..Default::default()
        }
    }

    /// `GET /containers/{id}/json`; `size` adds `SizeRw` and `SizeRootFs`.
    pub async fn inspect_container(
        &self,
        name: &str,
        size: bool,
    ) -> Result<ContainerInspectResponse> {
        let c = self.containers.resolve(name)?;
        let sizes = if size {
            self.layer_sizes(&[&c]).await?.pop()
        } else {
            None
        };
        let dir = self.containers.dir(&c.id);
        let etc = EtcPaths::new(&dir);
        let layout = Layout::new(&dir);
        let lower = self
            .images
            .get(&c.image_id)
            .map(|i| self.images.layer_dirs(&i))
            .unwrap_or_default();
        let mut data = HashMap::new();
        let lower: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
        data.insert("LowerDir".to_owned(), lower.join(":"));
        data.insert("MergedDir".to_owned(), layout.merged.display().to_string());
        data.insert("UpperDir".to_owned(), layout.upper.display().to_string());
        data.insert("WorkDir".to_owned(), layout.work.display().to_string());
        let status = match c.state.status {
            Status::Created => ContainerStateStatusEnum::CREATED,
            Status::Running => ContainerStateStatusEnum::RUNNING,
            Status::Paused => ContainerStateStatusEnum::PAUSED,
            Status::Restarting => ContainerStateStatusEnum::RESTARTING,
            Status::Removing => ContainerStateStatusEnum::REMOVING,
            Status::Exited => ContainerStateStatusEnum::EXITED,
            Status::Dead => ContainerStateStatusEnum::DEAD,
        };
        Ok(ContainerInspectResponse {
            id: Some(c.id.clone()),
            created: Some(c.created.clone()),
            path: Some(c.path.clone()),
            args: Some(c.args.clone()),
            state: Some(ContainerState {
                status: Some(status),
                running: Some(matches!(
                    c.state.status,
                    Status::Running | Status::Paused | Status::Restarting
                )),
                paused: Some(c.state.status == Status::Paused),
                restarting: Some(c.state.status == Status::Restarting),
                oom_killed: Some(c.state.oom_killed),
                dead: Some(c.state.status == Status::Dead),
                pid: Some(c.state.pid),
                exit_code: Some(c.state.exit_code),
                error: Some(c.state.error.clone()),
                started_at: Some(c.state.started_at.clone()),
                finished_at: Some(c.state.finished_at.clone()),
                health: super::health::inspect_view(&c),
            }),
            image: Some(c.image_id.clone()),
            resolv_conf_path: Some(etc.resolv_conf.display().to_string()),
            hostname_path: Some(etc.hostname.display().to_string()),
            hosts_path: Some(etc.hosts.display().to_string()),
            // dockerd sets it for json-file only.
            log_path: Some(
                if c.host_config
                    .log_config
                    .as_ref()
                    .and_then(|l| l.typ.as_deref())
                    .is_none_or(|t| t == "json-file")
                {
                    super::logdriver::json_path(&dir, &c.id)
                        .display()
                        .to_string()
                } else {
                    String::new()
                },
            ),
            name: Some(format!("/{}", c.name)),
            restart_count: Some(c.restart_count),
            driver: Some(STORAGE_DRIVER.into()),
            platform: Some("linux".into()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: Some(self.running_execs(&c.id)).filter(|v| !v.is_empty()),
            host_config: Some(HostConfig {
                links: self.inspect_links(&c),
                ..c.host_config.clone()
            }),
            graph_driver: Some(DriverData {
                name: STORAGE_DRIVER.into(),
                data,
            }),
            size_rw: sizes.map(|s| s.rw),
            size_root_fs: sizes.map(|s| s.root_fs),
            mounts: Some(c.mounts.clone()),
            config: Some(c.config.clone()),
            network_settings: Some(self.network_settings(&c)),
            ..Default::default()
        })
    }
}

/// dockerd's `SizeRw` and `SizeRootFs` for a writable layer at `upper` over an image of `image_size` bytes.
fn layer_sizes_of(upper: &std::path::Path, image_size: i64) -> LayerSizes {
    // A container never started (nor written to by `cp`) has no upper dir yet: its layer is empty.
    let walked = match crate::du::dir_size(upper) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
        other => other,
    };
    match walked {
        Ok(rw) => LayerSizes {
            rw: rw as i64,
            root_fs: image_size + rw as i64,
        },
        Err(e) => {
            // dockerd logs and reports -1 rather than failing the listing.
            tracing::warn!(path = %upper.display(), error = %e, "computing the size of a container's writable layer");
            LayerSizes {
                rw: -1,
                root_fs: image_size,
            }
        }
    }
}

/// `Command` in `docker ps`: the path and arguments, those with spaces in single quotes (as dockerd does).
fn command_line(c: &Container) -> String {
    let mut s = c.path.clone();
    for a in &c.args {
        s.push(' ');
        if a.contains(' ') {
            s.push_str(&format!("'{a}'"));
        } else {
            s.push_str(a);
        }
    }
    s
}

/// `Status` in `docker ps`: "Up 5 minutes", "Exited (0) 2 seconds ago", "Created".
fn status_text(c: &Container) -> String {
    let since = |t: &str| {
        let secs = (chrono::Utc::now().timestamp() - image::timefmt::unix_seconds(t)).max(0);
        human_duration(secs)
    };
    match c.state.status {
        Status::Created => "Created".into(),
        Status::Running => match super::health::status_suffix(c) {
            Some(h) => format!("Up {} ({h})", since(&c.state.started_at)),
            None => format!("Up {}", since(&c.state.started_at)),
        },
        Status::Paused => format!("Up {} (Paused)", since(&c.state.started_at)),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            c.state.exit_code,
            since(&c.state.finished_at)
        ),
        Status::Removing => "Removal In Progress".into(),
        Status::Exited => format!(
            "Exited ({}) {} ago",
            c.state.exit_code,
            since(&c.state.finished_at)
        ),
        Status::Dead => "Dead".into(),
    }
}

/// Docker's `units.HumanDuration` for whole seconds.
pub fn human_duration(secs: i64) -> String {
    let minutes = secs / 60;
    let hours = minutes / 60;
    match secs {
        s if s < 1 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}
