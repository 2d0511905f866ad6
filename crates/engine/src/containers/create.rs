//! `POST /containers/create`: Docker's config merged with the image's defaults, validated, recorded.
//! Every field the docker CLI can send is either honoured or refused with a 400 naming it.

use std::collections::{BTreeSet, HashMap};

use bollard_stubs::models::{
    ContainerConfig, ContainerCreateBody, ContainerCreateResponse, HostConfig,
    HostConfigIsolationEnum, HostConfigLogConfig, MountPoint, MountPointTypeEnum, RestartPolicy,
    RestartPolicyNameEnum,
};

use super::names;
use super::record::{Container, State};
use crate::error::{Context, Error, Result};
use crate::Engine;

/// A create request as the API received it.
#[derive(Debug, Default)]
pub struct CreateRequest {
    /// `?name=`.
    pub name: Option<String>,
    /// The JSON body.
    pub body: ContainerCreateBody,
    /// The client speaks an API older than 1.44: read-only binds are not made recursively read-only.
    pub read_only_non_recursive: bool,
    /// `?platform=` (API 1.41+): the platform the image must be for.
    pub platform: Option<String>,
}

impl Engine {
    /// Creates a container (no process yet) and returns its ID.
    pub async fn create_container(&self, req: CreateRequest) -> Result<ContainerCreateResponse> {
        let body = req.body;
        let image_name = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                Error::InvalidParameter(
                    "config cannot be empty in order to create a container".into(),
                )
            })?;
        // Until the record is stored, no removal may take the image (see `Engine::image_use`).
        let _using = self.image_use.read().await;
        let image = {
            let n = image_name.clone();
            self.blocking(move |s| Ok(s.get(&n)?))
                .await
                .map_err(|e| match e {
                    // dockerd names the image as it would pull it (`busybox:latest`); the docker CLI
                    // pulls on this 404.
                    Error::NotFound(_) => Error::NotFound(format!(
                        "No such image: {}",
                        image::Reference::parse_normalized(&image_name)
                            .map(|r| r.familiar())
                            .unwrap_or_else(|_| image_name.clone())
                    )),
                    e => e,
                })?
        };
        if let Some(p) = req.platform.as_deref().filter(|p| !p.is_empty()) {
            check_image_platform(&image_name, &image.config, p)?;
        }
        let mut host = create_host_config(&body, &self.config.log)?;
        let mut warnings =
            super::blkio::discard_unsupported(&mut host, super::blkio::Support::probe());
        super::blkio::check_devices(&host)?;
        super::devices::from_host_config(&host)?;
        if self.container_id_map(&host).is_some() {
            userns_conflicts(&host)?;
        }
        match host.runtime.as_deref() {
            None | Some("") => host.runtime = Some(self.config.default_runtime.clone()),
            Some(name) => {
                self.runtime_binary(name)?;
            }
        }
        let user_mounts = super::mounts::parse(&host, req.read_only_non_recursive)?;
        let inherited = self.volumes_from(&host)?;
        fill_host_defaults(&mut host);
        let networks = self.net_plan(&body, &host)?;
        let links = self.legacy_links(&host)?;
        if host.network_mode.as_deref() == Some("host")
            && (host.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
                || host.publish_all_ports == Some(true))
        {
            warnings.push("Published ports are discarded when using host network mode".to_owned());
        }
        let (config, path, args) = merge_config(
            &body,
            &image.config.config.clone().unwrap_or_default(),
            &image_name,
        )?;
        let id = random_id()?;
        let name = match req.name.filter(|n| !n.is_empty()) {
            Some(n) => names::validate(&n)?,
            None => self.fresh_name()?,
        };
        let mut config = config;
        if config.hostname.as_deref().unwrap_or("").is_empty() {
            config.hostname = Some(id[..12].to_owned());
        }
        let mut record = Container {
            id: id.clone(),
            name,
            created: image::timefmt::rfc3339_nano(std::time::SystemTime::now()),
            image_id: image.id.to_string(),
            config,
            host_config: host,
            path,
            args,
            state: State::default(),
            restart_count: 0,
            manually_stopped: false,
            mounts: user_mounts.iter().map(|m| m.mount_point()).collect(),
            read_only_non_recursive: req.read_only_non_recursive,
            networks,
            links,
        };
        // `--volumes-from`: the donors' binds and volumes, where the container's own mounts leave room.
        let mut taken: BTreeSet<String> = record
            .mounts
            .iter()
            .filter_map(|p| p.destination.clone())
            .chain(
                crate::volumes::parse_specs(&record.host_config)?
                    .into_iter()
                    .map(|s| s.destination),
            )
            .chain(
                record
                    .host_config
                    .tmpfs
                    .iter()
                    .flatten()
                    .map(|(d, _)| d.clone()),
            )
            .collect();
        for m in inherited {
            if !taken.insert(m.destination.clone().unwrap_or_default()) {
                continue;
            }
            if let Some(volume) = m.name.as_deref() {
                self.volumes.add_ref(volume, &record.id);
            }
            record.mounts.push(m);
        }
        self.containers.insert(record.clone())?;
        crate::crash::crash_point("create:after-record");
        if let Err(e) = super::rootfs::Layout::new(&self.containers.dir(&id)).make_dockerenv() {
            // Every start makes it too: a create does not fail for it.
            tracing::warn!(id = %id, error = %e, "making /.dockerenv");
        }
        // Volumes (with their `volume create` events) come before the container's `create`, as in Docker.
        let record = self.setup_container_volumes(record).await?;
        crate::crash::crash_point("create:after-volumes");
        if let Err(e) = self.containers.finish_create(&id) {
            // Left marked, the container would vanish at the next start: gone now, and said so.
            if let Err(e) = self.containers.remove(&id) {
                tracing::warn!(id = %id, error = %e, "removing a container whose create failed");
            }
            return Err(e);
        }
        crate::crash::crash_point("create:after-commit");
        self.container_event("create", &record);
        Ok(ContainerCreateResponse { id, warnings })
    }

    fn fresh_name(&self) -> Result<String> {
        for attempt in 0..16 {
            let mut bytes = [0u8; 8];
            fill_random(&mut bytes)?;
            let name = names::generate(u64::from_le_bytes(bytes), attempt);
            if !self.containers.name_taken(&name) {
                return Ok(name);
            }
        }
        Err(Error::System(
            "could not generate a unique container name".into(),
        ))
    }
}

/// The host config a create request gets: the body's, with the daemon's log defaults (`log`) under its
/// log config, checked with [`check_host_config`]. Needs no daemon state, so the API's fuzz target runs
/// it on every body it decodes, as the engine does.
pub fn create_host_config(
    body: &ContainerCreateBody,
    log: &super::logdriver::LogDefaults,
) -> Result<HostConfig> {
    let mut host = body.host_config.clone().unwrap_or_default();
    host.log_config = Some(super::logdriver::merge(log, host.log_config.as_ref()));
    check_host_config(&host)?;
    Ok(host)
}

/// `--platform` at create: the local image must be for that platform or one it runs (Berth keeps one
/// platform per image, as dockerd's graphdriver store), else dockerd's 404, on which the docker CLI
/// pulls the platform asked for unless told `--pull never`.
fn check_image_platform(image_name: &str, img: &image::ImageConfig, asked: &str) -> Result<()> {
    let asked =
        registry::PlatformSpec::parse(asked).map_err(|e| Error::InvalidParameter(e.to_string()))?;
    let actual = registry::Platform {
        architecture: img.architecture.clone(),
        os: img.os.clone(),
        variant: img.variant.clone().unwrap_or_default(),
        ..Default::default()
    };
    if asked.runs(&actual) {
        return Ok(());
    }
    // As the image names it, without normalisation (`os/arch[/variant]`, PlatformSpec's display).
    let shown = registry::PlatformSpec {
        os: actual.os,
        architecture: actual.architecture,
        variant: actual.variant,
    };
    Err(Error::NotFound(format!(
        "image with reference {image_name} was found but does not match the specified platform: wanted {}, actual: {shown}",
        asked.docker_format()
    )))
}

/// The image's defaults (`img`) under the request's values, as dockerd merges them; returns the config
/// Docker shows, and the process's path and arguments. Refuses a request left without a command and a
/// bad health check. Pure, so that the API's fuzz target runs it too.
pub fn merge_config(
    body: &ContainerCreateBody,
    img: &image::ContainerConfig,
    image_name: &str,
) -> Result<(ContainerConfig, String, Vec<String>)> {
    let mut env: Vec<String> = img.env.clone().unwrap_or_default();
    for e in body.env.iter().flatten() {
        let key = e.split('=').next().unwrap_or(e);
        env.retain(|old| old.split('=').next() != Some(key));
        env.push(e.clone());
    }
    let entrypoint = match &body.entrypoint {
        Some(ep) => Some(ep.clone()).filter(|e| !(e.is_empty() || e.len() == 1 && e[0].is_empty())),
        None => img.entrypoint.clone(),
    };
    // A new entrypoint drops the image's CMD, as in Docker.
    let cmd = match (&body.cmd, &body.entrypoint) {
        (Some(c), _) if !c.is_empty() => Some(c.clone()),
        (_, Some(_)) => None,
        _ => img.cmd.clone(),
    };
    let mut argv: Vec<String> = entrypoint.clone().unwrap_or_default();
    argv.extend(cmd.clone().unwrap_or_default());
    if argv.is_empty() {
        return Err(Error::InvalidParameter("no command specified".into()));
    }
    let path = argv.remove(0);
    let mut labels: HashMap<String, String> = img
        .labels
        .clone()
        .map(|l| l.into_iter().collect())
        .unwrap_or_default();
    labels.extend(body.labels.clone().unwrap_or_default());
    let mut exposed: Vec<String> = img
        .exposed_ports
        .clone()
        .map(|p| p.into_keys().collect())
        .unwrap_or_default();
    for p in body.exposed_ports.iter().flatten() {
        if !exposed.contains(p) {
            exposed.push(p.clone());
        }
    }
    exposed.sort();
    let mut volumes: Vec<String> = img
        .volumes
        .clone()
        .map(|v| v.into_keys().collect())
        .unwrap_or_default();
    for v in body.volumes.iter().flatten() {
        if !volumes.contains(v) {
            volumes.push(v.clone());
        }
    }
    let nonempty = |s: &Option<String>| s.clone().filter(|v| !v.is_empty());
    let working_dir = nonempty(&body.working_dir)
        .or_else(|| img.working_dir.clone())
        .unwrap_or_default();
    // dockerd's check: a relative directory would be resolved against whatever the runtime starts in.
    if !working_dir.is_empty() && !working_dir.starts_with('/') {
        return Err(Error::InvalidParameter(format!(
            "the working directory '{working_dir}' is invalid, it needs to be an absolute path"
        )));
    }
    let healthcheck = super::health::merge(body.healthcheck.clone(), img.healthcheck.as_ref());
    super::health::validate(healthcheck.as_ref())?;
    let config = ContainerConfig {
        hostname: body.hostname.clone(),
        domainname: Some(body.domainname.clone().unwrap_or_default()),
        user: Some(
            nonempty(&body.user)
                .or_else(|| img.user.clone())
                .unwrap_or_default(),
        ),
        attach_stdin: Some(body.attach_stdin.unwrap_or(false)),
        attach_stdout: Some(body.attach_stdout.unwrap_or(false)),
        attach_stderr: Some(body.attach_stderr.unwrap_or(false)),
        exposed_ports: (!exposed.is_empty()).then_some(exposed),
        tty: Some(body.tty.unwrap_or(false)),
        open_stdin: Some(body.open_stdin.unwrap_or(false)),
        stdin_once: Some(body.stdin_once.unwrap_or(false)),
        env: (!env.is_empty()).then_some(env),
        cmd,
        healthcheck,
        args_escaped: body.args_escaped,
        image: Some(image_name.to_owned()),
        volumes: (!volumes.is_empty()).then_some(volumes),
        working_dir: Some(working_dir),
        entrypoint,
        network_disabled: body.network_disabled,
        mac_address: None,
        on_build: None,
        labels: Some(labels),
        stop_signal: nonempty(&body.stop_signal).or_else(|| img.stop_signal.clone()),
        stop_timeout: body.stop_timeout,
        shell: body.shell.clone(),
    };
    Ok((config, path, argv))
}

impl Engine {
    /// The mount points `--volumes-from X[:ro|:rw]` brings: X's binds and volumes (not its tmpfs), read-only
    /// with `:ro` or where X has them read-only, as dockerd copies them.
    fn volumes_from(&self, h: &HostConfig) -> Result<Vec<MountPoint>> {
        let mut out: Vec<MountPoint> = Vec::new();
        for spec in h.volumes_from.iter().flatten() {
            let (name, mode) = spec.split_once(':').unwrap_or((spec.as_str(), ""));
            let writable = match mode {
                "" | "rw" => true,
                "ro" => false,
                _ => return Err(Error::InvalidParameter(format!("invalid mode: {mode}"))),
            };
            let donor = self.containers.resolve(name)?;
            for m in &donor.mounts {
                if !matches!(
                    m.typ,
                    Some(MountPointTypeEnum::BIND | MountPointTypeEnum::VOLUME)
                ) || out.iter().any(|o| o.destination == m.destination)
                {
                    continue;
                }
                out.push(MountPoint {
                    rw: Some(m.rw != Some(false) && writable),
                    mode: Some(String::new()),
                    ..m.clone()
                });
            }
        }
        Ok(out)
    }
}

/// dockerd's refusals of what cannot work inside a remapped user namespace (`--userns host` lifts them).
fn userns_conflicts(h: &HostConfig) -> Result<()> {
    let refuse = |m: &str| Err(Error::InvalidParameter(m.to_owned()));
    if h.privileged == Some(true) {
        return refuse("privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode");
    }
    if h.network_mode.as_deref() == Some("host") {
        return refuse(
            "cannot share the host's network namespace when user namespaces are enabled",
        );
    }
    if h.pid_mode.as_deref() == Some("host") {
        return refuse("cannot share the host PID namespace when user namespaces are enabled");
    }
    Ok(())
}

/// Checks a create request's host config: refuses what Berth cannot honour yet, naming the option,
/// instead of silently ignoring it, and values Docker refuses. Reads nothing of the host, so a
/// `--device` naming a missing node passes here and fails at create (`devices::from_host_config`).
pub fn check_host_config(h: &HostConfig) -> Result<()> {
    let refuse = |what: &str| {
        Err(Error::InvalidParameter(format!(
            "{what} is not supported by Berth yet"
        )))
    };
    fn some_vec<T>(v: &Option<Vec<T>>) -> bool {
        v.as_ref().is_some_and(|v| !v.is_empty())
    }
    if some_vec(&h.device_requests) {
        return refuse("--gpus (device requests)");
    }
    super::devices::check_mappings(h)?;
    super::devices::cgroup_rules(h)?;
    // Network modes (user-defined networks, `container:X`) are checked against the networks at create.
    for (what, mode) in [
        ("--pid", &h.pid_mode),
        ("--ipc", &h.ipc_mode),
        ("--uts", &h.uts_mode),
    ] {
        match mode.as_deref() {
            None | Some("") | Some("host") | Some("private") | Some("shareable") => {}
            Some(m)
                if what != "--uts"
                    && m.len() > "container:".len()
                    && m.starts_with("container:") => {}
            Some(other) => return refuse(&format!("{what} {other}")),
        }
    }
    match h.userns_mode.as_deref() {
        None | Some("") | Some("host") => {}
        // The docker CLI's words (dockerd itself takes anything that is not "host" as private).
        Some(_) => {
            return Err(Error::InvalidParameter(
                "--userns: invalid USER mode".into(),
            ))
        }
    }
    super::restart::validate(h.restart_policy.as_ref(), h.auto_remove == Some(true))?;
    // Hyper-V and process isolation are Windows'; dockerd on Linux takes the default only.
    if let Some(i @ (HostConfigIsolationEnum::HYPERV | HostConfigIsolationEnum::PROCESS)) =
        h.isolation
    {
        return Err(Error::InvalidParameter(isolation_error(i.as_ref())));
    }
    if let Some(HostConfigLogConfig { typ, config }) = &h.log_config {
        super::logdriver::validate(
            typ.as_deref().unwrap_or("json-file"),
            &config.clone().unwrap_or_default(),
        )?;
    }
    super::limits::Limits::of_host(h).check(true)?;
    super::blkio::check_values(h)?;
    check_platform_settings(h)?;
    if h.storage_opt.as_ref().is_some_and(|s| !s.is_empty()) {
        return refuse("--storage-opt");
    }
    if h.volume_driver.as_deref().is_some_and(|d| !d.is_empty()) {
        return refuse("--volume-driver");
    }
    if h.cpu_realtime_period.unwrap_or(0) != 0 || h.cpu_realtime_runtime.unwrap_or(0) != 0 {
        return refuse("real-time CPU scheduling");
    }
    for opt in h.security_opt.iter().flatten() {
        let ok = opt == "no-new-privileges"
            || opt.starts_with("no-new-privileges=")
            || opt.starts_with("no-new-privileges:")
            || opt.starts_with("seccomp=")
            || opt.starts_with("seccomp:")
            || opt == "apparmor=unconfined"
            || opt == "label=disable";
        if !ok {
            return refuse(&format!("--security-opt {opt}"));
        }
    }
    // A custom profile is parsed now, so that a bad one fails the create (dockerd finds out at start);
    // the capabilities and architecture it is evaluated for matter at start only.
    if let choice @ super::spec::Seccomp::Custom(_) = super::spec::seccomp_choice(h) {
        super::spec::seccomp_profile(choice, &[], "amd64")?;
    }
    Ok(())
}

/// dockerd's refusal of an isolation other than the default, on Linux.
pub fn isolation_error(isolation: &str) -> String {
    format!("Invalid isolation: {isolation:?} - linux only supports 'default'")
}

/// The rlimit names `--ulimit` takes (go-units' list, as the docker CLI checks them).
const ULIMITS: [&str; 15] = [
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
];

/// The settings only a create carries, checked as dockerd's `verifyPlatformContainerSettings` and the
/// docker CLI do: what dockerd leaves for the runtime to refuse at start (a bad rlimit or sysctl) is
/// refused here, so that a create never records a container that cannot start.
fn check_platform_settings(h: &HostConfig) -> Result<()> {
    let bad = |m: String| Err(Error::InvalidParameter(m));
    if h.shm_size.unwrap_or(0) < 0 {
        return bad("SHM size can not be less than 0".into());
    }
    let adj = h.oom_score_adj.unwrap_or(0);
    if !(-1000..=1000).contains(&adj) {
        return bad(format!(
            "Invalid value {adj}, range for oom score adj is [-1000, 1000]"
        ));
    }
    for u in h.ulimits.iter().flatten() {
        let name = u.name.as_deref().unwrap_or("");
        if !ULIMITS.contains(&name) {
            return bad(format!("invalid ulimit type: {name}"));
        }
        // Compared as the kernel does: a negative value is RLIM_INFINITY.
        let (soft, hard) = (u.soft.unwrap_or(0), u.hard.unwrap_or(0));
        if soft as u64 > hard as u64 {
            return bad(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
    }
    let host_net = h.network_mode.as_deref() == Some("host");
    let host_ipc = h.ipc_mode.as_deref() == Some("host");
    for (key, value) in h.sysctls.iter().flatten() {
        let ipc = key.starts_with("fs.mqueue.")
            || matches!(
                key.as_str(),
                "kernel.msgmax"
                    | "kernel.msgmnb"
                    | "kernel.msgmni"
                    | "kernel.sem"
                    | "kernel.shmall"
                    | "kernel.shmmax"
                    | "kernel.shmmni"
                    | "kernel.shm_rmid_forced"
            );
        let net = key.starts_with("net.");
        if !(ipc || net) {
            return bad(format!("sysctl '{key}={value}' is not allowed"));
        }
        // runc's refusals, made at create instead of at start.
        if net && host_net {
            return bad(format!(
                "sysctl {key:?} not allowed in host network namespace"
            ));
        }
        if ipc && host_ipc {
            return bad(format!("sysctl {key:?} not allowed in host IPC namespace"));
        }
    }
    Ok(())
}

/// Docker's defaults for what the client left out (inspect shows them); the engine fills them in once the
/// request is checked, before the record is stored.
pub fn fill_host_defaults(h: &mut HostConfig) {
    if h.network_mode.as_deref().is_none_or(str::is_empty) {
        h.network_mode = Some("default".into());
    }
    if h.restart_policy
        .as_ref()
        .is_none_or(|p| p.name.is_none_or(|n| n == RestartPolicyNameEnum::EMPTY))
    {
        h.restart_policy = Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: Some(0),
        });
    }
    if h.memory.unwrap_or(0) > 0 && h.memory_swap.unwrap_or(0) == 0 {
        // As dockerd: memory plus swap defaults to twice the memory, or unlimited where the kernel does
        // not account swap (`docker update` later checks a new memory limit against it).
        // Saturating: twice a limit above 2^62 bytes wrapped to a negative swap limit, which means
        // "unlimited" further down (and panicked in a debug build).
        h.memory_swap = Some(if swap_accounting() {
            h.memory.unwrap_or(0).saturating_mul(2)
        } else {
            -1
        });
    }
    if h.shm_size.unwrap_or(0) == 0 {
        h.shm_size = Some(64 * 1024 * 1024);
    }
    if h.ipc_mode.as_deref().is_none_or(str::is_empty) {
        h.ipc_mode = Some("private".into());
    }
    if h.runtime.as_deref().is_none_or(str::is_empty) {
        h.runtime = Some("berth".into());
    }
    if h.masked_paths.is_none() {
        h.masked_paths = Some(
            super::spec::MASKED_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
    }
    if h.readonly_paths.is_none() {
        h.readonly_paths = Some(
            super::spec::READONLY_PATHS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
    }
    h.auto_remove.get_or_insert(false);
    h.privileged.get_or_insert(false);
    h.readonly_rootfs.get_or_insert(false);
}

/// Whether the kernel limits swap per cgroup (v1 `memory.memsw.*`, v2 `memory.swap.max`).
fn swap_accounting() -> bool {
    let root = std::path::Path::new("/sys/fs/cgroup");
    root.join("memory/memory.memsw.limit_in_bytes").exists()
        || std::fs::read_to_string(root.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|w| w == "memory"))
}

/// 64 random hex digits, as Docker's IDs.
pub(crate) fn random_id() -> Result<String> {
    let mut bytes = [0u8; 32];
    fill_random(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .context("reading /dev/urandom")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image_cfg() -> image::ContainerConfig {
        serde_json::from_value(serde_json::json!({
            "Env": ["PATH=/bin", "A=1"],
            "Cmd": ["httpd", "-f"],
            "Entrypoint": ["/bin/sh", "-c"],
            "WorkingDir": "/srv",
            "User": "app",
            "Labels": {"x": "1"}
        }))
        .unwrap()
    }

    #[test]
    fn request_values_override_image_defaults() {
        let body = ContainerCreateBody {
            env: Some(vec!["A=2".into(), "B=3".into()]),
            cmd: Some(vec!["echo hi".into()]),
            labels: Some([("y".to_owned(), "2".to_owned())].into()),
            ..Default::default()
        };
        let (cfg, path, args) = merge_config(&body, &image_cfg(), "img").unwrap();
        assert_eq!(cfg.env.unwrap(), ["PATH=/bin", "A=2", "B=3"]);
        assert_eq!(path, "/bin/sh");
        assert_eq!(args, ["-c", "echo hi"]);
        assert_eq!(cfg.working_dir.as_deref(), Some("/srv"));
        assert_eq!(cfg.user.as_deref(), Some("app"));
        assert_eq!(cfg.labels.unwrap().len(), 2);
    }

    #[test]
    fn a_relative_working_directory_is_refused() {
        let body = ContainerCreateBody {
            working_dir: Some("srv".into()),
            ..Default::default()
        };
        let e = merge_config(&body, &image_cfg(), "img").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the working directory 'srv' is invalid, it needs to be an absolute path"
        );
    }

    #[test]
    fn a_new_entrypoint_drops_the_image_cmd() {
        let body = ContainerCreateBody {
            entrypoint: Some(vec!["true".into()]),
            ..Default::default()
        };
        let (cfg, path, args) = merge_config(&body, &image_cfg(), "img").unwrap();
        assert_eq!(path, "true");
        assert!(args.is_empty());
        assert!(cfg.cmd.is_none());
    }

    #[test]
    fn a_huge_memory_limit_keeps_a_swap_limit_no_smaller() {
        // Seen while writing the api_request fuzz target, which catches it (its input is kept as
        // fuzz/corpus/api_request/regression-memory-swap-overflow).
        let memory = 1i64 << 62;
        let mut h = HostConfig {
            memory: Some(memory),
            ..Default::default()
        };
        check_host_config(&h).unwrap();
        fill_host_defaults(&mut h);
        let swap = h.memory_swap.unwrap();
        assert!(swap == -1 || swap >= memory, "memory {memory}, swap {swap}");
    }

    #[test]
    fn platform_settings_are_refused_as_dockerd_and_runc_refuse_them() {
        use bollard_stubs::models::ResourcesUlimits;
        let ulimit = |name: &str, soft: i64, hard: i64| {
            Some(vec![ResourcesUlimits {
                name: Some(name.into()),
                soft: Some(soft),
                hard: Some(hard),
            }])
        };
        let sysctl = |k: &str| Some(HashMap::from([(k.to_owned(), "1".to_owned())]));
        let cases: Vec<(HostConfig, Option<&str>)> = vec![
            (
                HostConfig {
                    shm_size: Some(-1),
                    ..Default::default()
                },
                Some("SHM size can not be less than 0"),
            ),
            (
                HostConfig {
                    oom_score_adj: Some(1001),
                    ..Default::default()
                },
                Some("Invalid value 1001, range for oom score adj is [-1000, 1000]"),
            ),
            (
                HostConfig {
                    oom_score_adj: Some(-1001),
                    ..Default::default()
                },
                Some("Invalid value -1001, range for oom score adj is [-1000, 1000]"),
            ),
            (
                HostConfig {
                    oom_score_adj: Some(-1000),
                    shm_size: Some(1 << 20),
                    ..Default::default()
                },
                None,
            ),
            (
                HostConfig {
                    ulimits: ulimit("nofiles", 1, 2),
                    ..Default::default()
                },
                Some("invalid ulimit type: nofiles"),
            ),
            (
                HostConfig {
                    ulimits: ulimit("nofile", 20, 10),
                    ..Default::default()
                },
                Some("ulimit soft limit must be less than or equal to hard limit: 20 > 10"),
            ),
            (
                HostConfig {
                    ulimits: ulimit("nofile", -1, 10),
                    ..Default::default()
                },
                Some("ulimit soft limit must be less than or equal to hard limit: -1 > 10"),
            ),
            (
                HostConfig {
                    ulimits: ulimit("nofile", 10, -1),
                    ..Default::default()
                },
                None,
            ),
            (
                HostConfig {
                    sysctls: sysctl("kernel.panic"),
                    ..Default::default()
                },
                Some("sysctl 'kernel.panic=1' is not allowed"),
            ),
            (
                HostConfig {
                    sysctls: sysctl("vm.swappiness"),
                    ..Default::default()
                },
                Some("sysctl 'vm.swappiness=1' is not allowed"),
            ),
            (
                HostConfig {
                    sysctls: sysctl("net.ipv4.ip_forward"),
                    network_mode: Some("host".into()),
                    ..Default::default()
                },
                Some("sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"),
            ),
            (
                HostConfig {
                    sysctls: sysctl("kernel.shmmax"),
                    ipc_mode: Some("host".into()),
                    ..Default::default()
                },
                Some("sysctl \"kernel.shmmax\" not allowed in host IPC namespace"),
            ),
            (
                HostConfig {
                    sysctls: Some(HashMap::from([
                        ("net.ipv4.ip_forward".to_owned(), "1".to_owned()),
                        ("kernel.shmmax".to_owned(), "1".to_owned()),
                        ("fs.mqueue.msg_max".to_owned(), "1".to_owned()),
                    ])),
                    ..Default::default()
                },
                None,
            ),
        ];
        for (h, want) in cases {
            let got = check_host_config(&h).err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), want, "{h:?}");
        }
    }

    #[test]
    fn unsupported_options_are_refused_by_name() {
        let h = HostConfig {
            uts_mode: Some("container:other".into()),
            ..Default::default()
        };
        let e = check_host_config(&h).unwrap_err().to_string();
        assert!(e.contains("--uts container:other"), "{e}");
    }
}
