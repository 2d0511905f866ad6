//! `POST /containers/{id}/update` (`docker update`): new resource limits and restart policy, merged into the
//! record as dockerd's `UpdateContainer` merges them and applied to the live cgroup of a running container.

use std::path::Path;

use bollard_stubs::models::{ContainerUpdateBody, ContainerUpdateResponse, HostConfig};

use super::record::Status;
use super::spec::{cgroups_path, resources};
use crate::error::{Error, Result};
use crate::Engine;

impl Engine {
    /// Updates a container's resources and restart policy; answers dockerd's `{"Warnings": []}`.
    pub async fn update_container(
        &self,
        name: &str,
        body: ContainerUpdateBody,
    ) -> Result<ContainerUpdateResponse> {
        let c = self.containers.resolve(name)?;
        check_update(&body)?;
        if matches!(c.state.status, Status::Removing | Status::Dead) {
            return Err(Error::Conflict(format!(
                "Cannot update container {}: container is marked for removal and cannot be \"update\"",
                c.id
            )));
        }
        let mut host = c.host_config.clone();
        merge(&mut host, &body, c.host_config.auto_remove == Some(true))
            .map_err(|msg| Error::Conflict(format!("Cannot update container {}: {msg}", c.id)))?;
        // A running (or paused) container gets the new limits at once; a stopped one at its next start.
        if matches!(c.state.status, Status::Running | Status::Paused) {
            let mut res = resources(&host)?;
            // Device rules are not updatable (and rewriting them would briefly deny every device).
            res.set_devices(None);
            let path = runtime::cgroups::path_for(Some(Path::new(&cgroups_path(&c))), &c.id);
            let applied = tokio::task::spawn_blocking(move || {
                runtime::cgroups::Cgroup::open(&path).and_then(|cg| cg.apply(&res))
            })
            .await?;
            if let Err(e) = applied {
                return Err(Error::system(
                    format!("Cannot update container {}", c.id),
                    e,
                ));
            }
        }
        let updated = self.containers.update(&c.id, |r| r.host_config = host)?;
        self.container_event("update", &updated);
        Ok(ContainerUpdateResponse {
            warnings: Some(Vec::new()),
        })
    }
}

/// Checks an update body on its own (limits, restart policy), before it meets the container's record.
pub fn check_update(body: &ContainerUpdateBody) -> Result<()> {
    super::limits::Limits::of_update(body).check(false)?;
    super::restart::validate(body.restart_policy.as_ref(), false)
}

/// dockerd's merge: zero (or absent) means "unchanged"; NanoCpus and a CFS period or quota exclude each
/// other across updates; raising memory past the swap limit needs a new swap limit in the same update.
fn merge(
    h: &mut HostConfig,
    b: &ContainerUpdateBody,
    auto_remove: bool,
) -> std::result::Result<(), String> {
    let set = |v: Option<i64>| v.filter(|v| *v != 0);
    let had = |v: Option<i64>| v.unwrap_or(0);
    if set(b.nano_cpus).is_some_and(|v| v > 0) && had(h.cpu_period) > 0 {
        return Err(
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set"
                .into(),
        );
    }
    if set(b.nano_cpus).is_some_and(|v| v > 0) && had(h.cpu_quota) > 0 {
        return Err(
            "Conflicting options: Nano CPUs cannot be updated as CPU Quota has already been set"
                .into(),
        );
    }
    if set(b.cpu_period).is_some_and(|v| v > 0) && had(h.nano_cpus) > 0 {
        return Err(
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set"
                .into(),
        );
    }
    if set(b.cpu_quota).is_some_and(|v| v > 0) && had(h.nano_cpus) > 0 {
        return Err(
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set"
                .into(),
        );
    }
    if let Some(w) = b.blkio_weight.filter(|w| *w != 0) {
        h.blkio_weight = Some(w);
    }
    if let Some(v) = set(b.cpu_shares) {
        h.cpu_shares = Some(v);
    }
    if let Some(v) = set(b.nano_cpus) {
        h.nano_cpus = Some(v);
    }
    if let Some(v) = set(b.cpu_period) {
        h.cpu_period = Some(v);
    }
    if let Some(v) = set(b.cpu_quota) {
        h.cpu_quota = Some(v);
    }
    if let Some(v) = b.cpuset_cpus.as_ref().filter(|v| !v.is_empty()) {
        h.cpuset_cpus = Some(v.clone());
    }
    if let Some(v) = b.cpuset_mems.as_ref().filter(|v| !v.is_empty()) {
        h.cpuset_mems = Some(v.clone());
    }
    if let Some(m) = set(b.memory) {
        if m > had(h.memory_swap) && set(b.memory_swap).is_none() {
            return Err("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time".into());
        }
        h.memory = Some(m);
    }
    if let Some(v) = set(b.memory_swap) {
        h.memory_swap = Some(v);
    }
    if let Some(v) = set(b.memory_reservation) {
        h.memory_reservation = Some(v);
    }
    if let Some(p) = b.pids_limit {
        h.pids_limit = Some(p);
    }
    if let Some(p) = b
        .restart_policy
        .as_ref()
        .filter(|p| p.name.is_some_and(|n| !n.as_ref().is_empty()))
    {
        let none = p.name.is_some_and(|n| n.as_ref() == "no");
        if auto_remove && !none {
            return Err(
                "Restart policy cannot be updated because AutoRemove is enabled for the container"
                    .into(),
            );
        }
        h.restart_policy = Some(p.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_what_the_update_leaves_out() {
        let mut h = HostConfig {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            cpu_shares: Some(512),
            ..Default::default()
        };
        let b = ContainerUpdateBody {
            memory: Some(96 << 20),
            pids_limit: Some(50),
            ..Default::default()
        };
        merge(&mut h, &b, false).unwrap();
        assert_eq!(h.memory, Some(96 << 20));
        assert_eq!(h.cpu_shares, Some(512));
        assert_eq!(h.pids_limit, Some(50));
    }

    #[test]
    fn merge_refuses_what_dockerd_refuses() {
        let mut h = HostConfig {
            memory: Some(64 << 20),
            memory_swap: Some(128 << 20),
            nano_cpus: Some(1_000_000_000),
            auto_remove: Some(true),
            ..Default::default()
        };
        let more = ContainerUpdateBody {
            memory: Some(256 << 20),
            ..Default::default()
        };
        assert!(merge(&mut h.clone(), &more, false)
            .unwrap_err()
            .contains("update the memoryswap at the same time"));
        let with_swap = ContainerUpdateBody {
            memory: Some(256 << 20),
            memory_swap: Some(-1),
            ..Default::default()
        };
        assert!(merge(&mut h.clone(), &with_swap, false).is_ok());
        let period = ContainerUpdateBody {
            cpu_period: Some(50_000),
            ..Default::default()
        };
        assert!(merge(&mut h.clone(), &period, false)
            .unwrap_err()
            .contains("CPU Period cannot be updated as NanoCPUs"));
        let policy = ContainerUpdateBody {
            restart_policy: Some(bollard_stubs::models::RestartPolicy {
                name: Some(bollard_stubs::models::RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        assert!(merge(&mut h, &policy, true)
            .unwrap_err()
            .contains("AutoRemove is enabled"));
    }
}
