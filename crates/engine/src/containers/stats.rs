//! `pause`/`unpause` (the cgroup freezer), `top` (the container's processes, read from /proc) and `stats`
//! (Docker's JSON from the container's cgroup, with the previous sample kept so a one-shot answer is at once).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use bollard_stubs::models::ContainerTopResponse;
use serde_json::{json, Value};

use super::record::{Container, Status};
use super::spec::cgroups_path;
use crate::error::{Context, Error, Result};
use crate::Engine;

/// One stats sample, kept as the next answer's `precpu_stats`.
#[derive(Debug, Clone, Default)]
pub struct CpuSample {
    read: String,
    total: u64,
    percpu: Vec<u64>,
    kernel: u64,
    user: u64,
    system: u64,
}

impl Engine {
    fn cgroup(&self, c: &Container) -> Result<runtime::cgroups::Cgroup> {
        let path = runtime::cgroups::path_for(Some(Path::new(&cgroups_path(c))), &c.id);
        runtime::cgroups::Cgroup::open(&path).context("container cgroup")
    }

    /// Thaws a paused container's cgroup and records it as running again.
    pub(crate) fn thaw(&self, c: &Container) -> Result<()> {
        self.cgroup(c)?.thaw().context("unpausing")?;
        self.containers.update(&c.id, |c| {
            if c.state.status == Status::Paused {
                c.state.status = Status::Running;
            }
        })?;
        Ok(())
    }

    fn running(&self, name: &str) -> Result<Container> {
        let c = self.containers.resolve(name)?;
        match c.state.status {
            Status::Running | Status::Paused => Ok(c),
            Status::Restarting => Err(Error::Conflict(format!(
                "Container {} is restarting, wait until the container is running",
                c.id
            ))),
            _ => Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            ))),
        }
    }

    /// `POST /containers/{id}/pause`.
    pub async fn pause_container(&self, name: &str) -> Result<()> {
        let c = self.running(name)?;
        if c.state.status == Status::Paused {
            return Err(Error::Conflict(format!(
                "Container {} is already paused",
                c.id
            )));
        }
        self.cgroup(&c)?.freeze().context("pausing")?;
        let c = self
            .containers
            .update(&c.id, |c| c.state.status = Status::Paused)?;
        self.stop_health(&c.id);
        self.container_event("pause", &c);
        Ok(())
    }

    /// `POST /containers/{id}/unpause`.
    pub async fn unpause_container(self: &Arc<Self>, name: &str) -> Result<()> {
        let c = self.running(name)?;
        if c.state.status != Status::Paused {
            return Err(Error::Conflict(format!("Container {} is not paused", c.id)));
        }
        self.cgroup(&c)?.thaw().context("unpausing")?;
        let c = self
            .containers
            .update(&c.id, |c| c.state.status = Status::Running)?;
        self.resume_health(&c.id);
        self.container_event("unpause", &c);
        Ok(())
    }

    /// `GET /containers/{id}/top`: `ps -ef`'s columns for the container's processes, read from /proc
    /// (the processes sharing the init's pid namespace).
    pub async fn top_container(
        &self,
        name: &str,
        ps_args: Option<&str>,
    ) -> Result<ContainerTopResponse> {
        let custom = ps_args.filter(|a| !a.is_empty() && *a != "-ef");
        if let Some(args) = custom {
            super::top::validate_args(args)?;
        }
        let c = self.running(name)?;
        let init = c.state.pid;
        let Ok(ns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else {
            return Err(Error::Conflict(format!(
                "Container {} is not running",
                c.id
            )));
        };
        if let Some(args) = custom {
            let top = super::top::ps(args, &super::top::namespace_pids(&ns)).await?;
            self.container_event("top", &c);
            return Ok(top);
        }
        let boot = boot_time();
        let hz = 100u64;
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let mut rows = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                .ok()
                .as_ref()
                != Some(&ns)
            {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
            let num = |i: usize| {
                fields
                    .get(i)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            let ppid = num(1);
            let cpu_ticks = num(11) + num(12);
            let start_secs = boot + num(19) / hz;
            let uid = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("Uid:"))
                        .and_then(|v| v.split_whitespace().next().map(str::to_owned))
                })
                .unwrap_or_default();
            let user = passwd
                .lines()
                .find(|l| l.split(':').nth(2) == Some(uid.as_str()))
                .and_then(|l| l.split(':').next())
                .unwrap_or(&uid)
                .to_owned();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let mut cmd = cmdline
                .split(|&b| b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            if cmd.is_empty() {
                cmd = format!("[{}]", &stat[stat.find('(').map_or(0, |i| i + 1)..close]);
            }
            let elapsed = (chrono::Utc::now().timestamp() as u64)
                .saturating_sub(start_secs)
                .max(1);
            let c_pct = (cpu_ticks / hz) * 100 / elapsed;
            let stime = chrono::DateTime::from_timestamp(start_secs as i64, 0)
                .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
                .unwrap_or_default();
            let secs = cpu_ticks / hz;
            let time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
            rows.push((
                pid,
                vec![
                    user,
                    pid.to_string(),
                    ppid.to_string(),
                    c_pct.to_string(),
                    stime,
                    "?".into(),
                    time,
                    cmd,
                ],
            ));
        }
        rows.sort_by_key(|r| r.0);
        self.container_event("top", &c);
        Ok(ContainerTopResponse {
            titles: Some(
                ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
                    .map(String::from)
                    .to_vec(),
            ),
            processes: Some(rows.into_iter().map(|r| r.1).collect()),
        })
    }

    /// One `GET /containers/{id}/stats` sample in Docker's JSON; `precpu_stats` is the previous sample taken
    /// for this container (so `--no-stream` answers at once instead of waiting a second, as dockerd does).
    pub fn stats_sample(self: &Arc<Self>, name: &str) -> Result<Value> {
        let c = self.containers.resolve(name)?;
        let running = matches!(c.state.status, Status::Running | Status::Paused);
        let now = image::timefmt::rfc3339_nano(std::time::SystemTime::now());
        let base = json!({
            "read": now,
            "name": format!("/{}", c.name),
            "id": c.id,
        });
        if !running {
            let mut v = base;
            v["preread"] = json!(super::record::ZERO_TIME);
            v["pids_stats"] = json!({});
            v["blkio_stats"] = blkio_empty();
            v["num_procs"] = json!(0);
            v["storage_stats"] = json!({});
            v["cpu_stats"] = json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0}, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
            v["precpu_stats"] = v["cpu_stats"].clone();
            v["memory_stats"] = json!({});
            return Ok(v);
        }
        let s = self.cgroup(&c)?.stats().context("reading stats")?;
        let sample = CpuSample {
            read: now.clone(),
            total: s.cpu_total_ns,
            percpu: s.cpu_percpu_ns.clone(),
            kernel: s.cpu_system_ns,
            user: s.cpu_user_ns,
            system: system_cpu_ns(),
        };
        let prev = {
            let mut samples = self.stats_samples.lock().unwrap_or_else(|p| p.into_inner());
            samples
                .insert(c.id.clone(), sample.clone())
                .unwrap_or_default()
        };
        let limit = if s.memory_limit == u64::MAX || s.memory_limit >= (1 << 62) {
            self.host.mem_total
        } else {
            s.memory_limit
        };
        let cpu = |x: &CpuSample, full: bool| {
            let mut usage = json!({"total_usage": x.total, "usage_in_kernelmode": x.kernel, "usage_in_usermode": x.user});
            if full && !x.percpu.is_empty() {
                usage["percpu_usage"] = json!(x.percpu);
            }
            let mut v = json!({"cpu_usage": usage, "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}});
            if x.system > 0 {
                v["system_cpu_usage"] = json!(x.system);
                v["online_cpus"] = json!(self.host.ncpu);
            }
            v
        };
        let mut v = base;
        v["preread"] = json!(if prev.read.is_empty() {
            super::record::ZERO_TIME.to_owned()
        } else {
            prev.read.clone()
        });
        v["pids_stats"] = json!({"current": s.pids_current});
        v["blkio_stats"] = blkio_empty();
        v["num_procs"] = json!(0);
        v["storage_stats"] = json!({});
        v["cpu_stats"] = cpu(&sample, true);
        v["precpu_stats"] = cpu(&prev, true);
        if let Some(n) = self.net_stats(&c.id) {
            v["networks"] = n;
        }
        v["memory_stats"] = json!({
            "usage": s.memory_usage,
            "stats": {"cache": s.memory_cache},
            "limit": limit,
        });
        Ok(v)
    }

    /// Forgets a container's kept stats sample.
    pub(crate) fn forget_stats(&self, id: &str) {
        self.stats_samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }
}

fn blkio_empty() -> Value {
    json!({
        "io_service_bytes_recursive": null, "io_serviced_recursive": null, "io_queue_recursive": null,
        "io_service_time_recursive": null, "io_wait_time_recursive": null, "io_merged_recursive": null,
        "io_time_recursive": null, "sectors_recursive": null
    })
}

/// The host's total CPU time in nanoseconds (the first line of /proc/stat, in USER_HZ ticks), as dockerd
/// reports `system_cpu_usage`.
fn system_cpu_ns() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .map(|l| {
            l.split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    ticks * 10_000_000
}

fn boot_time() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Kept samples, by container ID.
pub type Samples = std::sync::Mutex<HashMap<String, CpuSample>>;
