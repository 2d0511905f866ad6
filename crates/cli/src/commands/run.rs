//! `run`, `create` and `start`: building the create request from Docker's flags, attaching to the
//! container's streams over a hijacked connection, and exiting with the container's status.

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::{json, Value};

use super::path_escape;
use super::session::{Ended, Session};
use crate::client::{query, read_all, Client, JsonStream};
use crate::error::CliError;
use crate::output::{print, stdin_is_terminal};

/// The flags `run` and `create` share: what the container is made of.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ContainerOptions {
    /// Print usage (`-h` is `--hostname` here, as in Docker)
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Automatically remove the container and its associated anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    pub workdir: Option<String>,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long, value_name = "string")]
    pub user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long, value_name = "string")]
    pub entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long, value_name = "string")]
    pub hostname: Option<String>,
    /// Set meta data on a container
    #[arg(short, long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Connect a container to a network
    #[arg(long, alias = "net", value_name = "network")]
    pub network: Option<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    pub privileged: bool,
    /// Add Linux capabilities
    #[arg(long, value_name = "list")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, value_name = "list")]
    pub cap_drop: Vec<String>,
    /// Security Options
    #[arg(long, value_name = "list")]
    pub security_opt: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Signal to stop the container
    #[arg(long, value_name = "string")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long, value_name = "int")]
    pub stop_timeout: Option<i64>,
    /// Memory limit
    #[arg(short, long, value_name = "bytes")]
    pub memory: Option<String>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<f64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Swap limit equal to memory plus swap: '-1' to enable unlimited swap
    #[arg(long, value_name = "bytes", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit
    #[arg(long, value_name = "bytes")]
    pub memory_reservation: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string", default_value = "no")]
    pub restart: String,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Mount a tmpfs directory
    #[arg(long, value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "list")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long, value_name = "list")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long, value_name = "list")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip)
    #[arg(long, value_name = "list")]
    pub add_host: Vec<String>,
    /// Publish a container's port(s) to the host
    #[arg(short = 'p', long = "publish", value_name = "list")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long, value_name = "list")]
    pub expose: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long, value_name = "string")]
    pub ip: Option<String>,
    /// Add network-scoped alias for the container
    #[arg(long, value_name = "list")]
    pub network_alias: Vec<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long, value_name = "string")]
    pub mac_address: Option<String>,
    /// Ulimit options
    #[arg(long, value_name = "ulimit")]
    pub ulimit: Vec<String>,
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long, value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long, value_name = "mount")]
    pub mount: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "list")]
    pub env_file: Vec<String>,
    /// Runtime to use for this container
    #[arg(long, value_name = "string")]
    pub runtime: Option<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, value_name = "string", default_value = "missing")]
    pub pull: String,
    /// PID namespace to use
    #[arg(long, value_name = "string")]
    pub pid: Option<String>,
    /// IPC mode to use
    #[arg(long, value_name = "string")]
    pub ipc: Option<String>,
    /// UTS namespace to use
    #[arg(long, value_name = "string")]
    pub uts: Option<String>,
    /// User namespace to use ("host" opts out of the daemon's --userns-remap)
    #[arg(long, value_name = "string")]
    pub userns: Option<String>,
    /// Cgroup namespace to use (host|private)
    #[arg(long, value_name = "string")]
    pub cgroupns: Option<String>,
    /// Optional parent cgroup for the container
    #[arg(long, value_name = "string")]
    pub cgroup_parent: Option<String>,
    /// Size of /dev/shm
    #[arg(long, value_name = "bytes")]
    pub shm_size: Option<String>,
    /// Sysctl options
    #[arg(long, value_name = "map")]
    pub sysctl: Vec<String>,
    /// Add additional groups to join
    #[arg(long, value_name = "list")]
    pub group_add: Vec<String>,
    /// Add a host device to the container
    #[arg(long, value_name = "list")]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list
    #[arg(long, value_name = "list")]
    pub device_cgroup_rule: Vec<String>,
    /// Logging driver for the container
    #[arg(long, value_name = "string")]
    pub log_driver: Option<String>,
    /// Log driver options
    #[arg(long, value_name = "list")]
    pub log_opt: Vec<String>,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub oom_score_adj: Option<i64>,
    /// Disable OOM Killer
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// Tune container memory swappiness (0 to 100)
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub memory_swappiness: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long, value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, value_name = "int", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long, value_name = "uint16")]
    pub blkio_weight: Option<u16>,
    /// Container NIS domain name
    #[arg(long, value_name = "string")]
    pub domainname: Option<String>,
    /// Read in a line delimited file of labels
    #[arg(long, value_name = "list")]
    pub label_file: Vec<String>,
    /// Write the container ID to the file
    #[arg(long, value_name = "string")]
    pub cidfile: Option<String>,
    /// Suppress the pull output
    #[arg(short, long)]
    pub quiet: bool,
    /// Healthcheck flags
    #[command(flatten)]
    pub health: super::health::HealthOptions,
    /// The image, then the command and its arguments
    #[arg(
        value_name = "IMAGE [COMMAND] [ARG...]",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

/// Flags of `run`.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Proxy received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// The container's configuration
    #[command(flatten)]
    pub options: ContainerOptions,
}

/// Flags of `create`.
#[derive(Debug, clap::Args)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// The container's configuration
    #[command(flatten)]
    pub options: ContainerOptions,
}

/// Flags of `start`.
#[derive(Debug, clap::Args)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Containers to start
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// A `run`-style failure: `berth: MESSAGE` and the hint, with `status`.
fn run_error(message: &str, status: u8) -> CliError {
    if message.starts_with("invalid argument \"") {
        // A flag value the parser refused: the docker CLI (cobra) prints it with the usage line.
        return CliError::WithStatus(
            format!(
                "{message}\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n\
                 Run 'berth run --help' for more information"
            ),
            status,
        );
    }
    CliError::WithStatus(
        format!("berth: {message}\n\nRun 'berth run --help' for more information"),
        status,
    )
}

/// Docker's status for a failed start: 126 if the command cannot be run, 127 if it is not found.
pub fn start_error_status(message: &str) -> u8 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
    {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        125
    }
}

/// Parses a memory size as Docker's `RAMInBytes`: `512m`, `1g`, `1024` (binary multiples).
pub fn ram_in_bytes(text: &str) -> Option<i64> {
    let lower = text.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let number: f64 = number.parse().ok()?;
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(unit);
    let factor: f64 = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => return None,
    };
    Some((number * factor) as i64)
}

/// Parses `--ulimit name=soft[:hard]`.
fn parse_ulimit(text: &str) -> Result<Value, CliError> {
    let bad = || CliError::Usage(format!("invalid argument \"{text}\" for \"--ulimit\" flag"));
    let (name, limits) = text.split_once('=').ok_or_else(bad)?;
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().map_err(|_| bad())?;
    let hard: i64 = hard.parse().map_err(|_| bad())?;
    Ok(json!({"Name": name, "Soft": soft, "Hard": hard}))
}

/// The `POST /containers/create` body for these options (`attach`: whether the client will attach).
pub fn create_body(opts: &ContainerOptions, attach: bool) -> Result<Value, CliError> {
    let mut config = container_config(opts, attach)?;
    let mut host = host_defaults(opts);
    security_fields(opts, &mut host)?;
    resource_fields(opts, &mut host)?;
    host["RestartPolicy"] = restart_policy(opts)?;
    if opts.init {
        host["Init"] = json!(true);
    }
    namespace_fields(opts, &mut host);
    list_fields(opts, &mut host);
    system_fields(opts, &mut host)?;
    let exposed = port_fields(opts, &mut host)?;
    if !exposed.is_empty() {
        config["ExposedPorts"] = Value::Object(exposed);
    }
    if let Some(net) = networking_config(opts) {
        config["NetworkingConfig"] = net;
    }
    mount_fields(opts, &mut config, &mut host)?;
    if let Some(r) = &opts.runtime {
        host["Runtime"] = json!(r);
    }
    if let Some(h) = opts.health.config()? {
        config["Healthcheck"] = h;
    }
    config["HostConfig"] = host;
    Ok(config)
}

/// The container's own config: image, command, streams, environment, labels and identity.
fn container_config(opts: &ContainerOptions, attach: bool) -> Result<Value, CliError> {
    let image = opts.args.first().cloned().unwrap_or_default();
    let cmd: Vec<String> = opts.args.iter().skip(1).cloned().collect();
    let mut config = json!({
        "Image": image,
        "Tty": opts.tty,
        "OpenStdin": opts.interactive,
        "StdinOnce": opts.interactive && attach,
        "AttachStdin": opts.interactive && attach,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Env": env_list(&opts.env_file, &opts.env)?,
        "Labels": labels(opts)?,
    });
    if !cmd.is_empty() {
        config["Cmd"] = json!(cmd);
    }
    if let Some(e) = &opts.entrypoint {
        // Docker sends an empty entrypoint as `[""]` to reset the image's.
        config["Entrypoint"] = json!([e]);
    }
    for (key, value) in [
        ("WorkingDir", &opts.workdir),
        ("User", &opts.user),
        ("Hostname", &opts.hostname),
        ("StopSignal", &opts.stop_signal),
        ("Domainname", &opts.domainname),
    ] {
        if let Some(v) = value {
            config[key] = json!(v);
        }
    }
    if let Some(t) = opts.stop_timeout {
        config["StopTimeout"] = json!(t);
    }
    Ok(config)
}

/// `--label-file`s, then `--label`s: a later key wins; a label without `=` has an empty value.
fn labels(opts: &ContainerOptions) -> Result<BTreeMap<String, String>, CliError> {
    let mut labels = BTreeMap::new();
    let mut label_lines = Vec::new();
    for f in &opts.label_file {
        // A line without `=` names an environment variable in an env file; a label file drops it.
        label_lines.extend(read_kv_file(f)?.into_iter().filter(|l| l.contains('=')));
    }
    for l in label_lines.iter().chain(&opts.label) {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

/// The host config's plain flags, and the empty values Docker's CLI sends rather than leaving them out.
fn host_defaults(opts: &ContainerOptions) -> Value {
    json!({
        "AutoRemove": opts.rm,
        "NetworkMode": opts.network.clone().unwrap_or_else(|| "default".to_string()),
        "Privileged": opts.privileged,
        "ReadonlyRootfs": opts.read_only,
        "BlkioWeightDevice": [],
        "BlkioDeviceReadBps": [],
        "BlkioDeviceWriteBps": [],
        "BlkioDeviceReadIOps": [],
        "BlkioDeviceWriteIOps": [],
        "Devices": [],
        "DnsOptions": [],
        "DnsSearch": [],
        "PortBindings": {},
        "MemorySwappiness": -1,
        "OomKillDisable": false,
    })
}

/// `--cap-add`, `--cap-drop`, `--security-opt`.
fn security_fields(opts: &ContainerOptions, host: &mut Value) -> Result<(), CliError> {
    if !opts.cap_add.is_empty() {
        host["CapAdd"] = json!(normalize_caps(&opts.cap_add));
    }
    if !opts.cap_drop.is_empty() {
        host["CapDrop"] = json!(normalize_caps(&opts.cap_drop));
    }
    if !opts.security_opt.is_empty() {
        host["SecurityOpt"] = json!(security_opts(&opts.security_opt)?);
    }
    Ok(())
}

/// A size flag (`64m`) in bytes, or Docker's usage error naming the flag.
fn size_flag(value: &str, flag: &str) -> Result<i64, CliError> {
    ram_in_bytes(value).ok_or_else(|| {
        CliError::Usage(format!(
            "invalid argument \"{value}\" for \"{flag}\" flag: invalid size: '{value}'"
        ))
    })
}

/// Memory, CPU, pids, shm, OOM, block IO and rlimit flags.
fn resource_fields(opts: &ContainerOptions, host: &mut Value) -> Result<(), CliError> {
    if let Some(m) = &opts.memory {
        host["Memory"] = json!(size_flag(m, "-m, --memory")?);
    }
    if let Some(c) = opts.cpus {
        host["NanoCpus"] = json!((c * 1e9).round() as i64);
    }
    if let Some(s) = &opts.memory_swap {
        host["MemorySwap"] = json!(parse_memory_swap(s)?);
    }
    if let Some(m) = &opts.memory_reservation {
        host["MemoryReservation"] = json!(size_flag(m, "--memory-reservation")?);
    }
    if let Some(c) = opts.cpu_shares {
        host["CpuShares"] = json!(c);
    }
    if let Some(c) = &opts.cpuset_cpus {
        host["CpusetCpus"] = json!(c);
    }
    if let Some(p) = opts.pids_limit {
        host["PidsLimit"] = json!(p);
    }
    if let Some(s) = &opts.shm_size {
        host["ShmSize"] = json!(size_flag(s, "--shm-size")?);
    }
    if let Some(o) = opts.oom_score_adj {
        host["OomScoreAdj"] = json!(o);
    }
    if opts.oom_kill_disable {
        host["OomKillDisable"] = json!(true);
    }
    if let Some(m) = opts.memory_swappiness {
        host["MemorySwappiness"] = json!(m);
    }
    if let Some(p) = opts.cpu_period {
        host["CpuPeriod"] = json!(p);
    }
    if let Some(q) = opts.cpu_quota {
        host["CpuQuota"] = json!(q);
    }
    if let Some(w) = opts.blkio_weight {
        host["BlkioWeight"] = json!(w);
    }
    if !opts.ulimit.is_empty() {
        let ulimits = opts
            .ulimit
            .iter()
            .map(|u| parse_ulimit(u))
            .collect::<Result<Vec<_>, _>>()?;
        host["Ulimits"] = json!(ulimits);
    }
    Ok(())
}

/// `--restart`, which `--rm` excludes.
fn restart_policy(opts: &ContainerOptions) -> Result<Value, CliError> {
    let restart = parse_restart_policy(&opts.restart)?;
    if opts.rm && restart["Name"] != "no" && restart["Name"] != "" {
        return Err(CliError::Usage(
            "conflicting options: cannot specify both --restart and --rm".to_string(),
        ));
    }
    Ok(restart)
}

/// The namespace modes (`--pid`, `--ipc`, `--uts`, `--userns`, `--cgroupns`) and the cgroup placement.
fn namespace_fields(opts: &ContainerOptions, host: &mut Value) {
    for (key, value) in [
        ("PidMode", &opts.pid),
        ("IpcMode", &opts.ipc),
        ("UTSMode", &opts.uts),
        ("UsernsMode", &opts.userns),
        ("CgroupnsMode", &opts.cgroupns),
        ("CgroupParent", &opts.cgroup_parent),
        ("CpusetMems", &opts.cpuset_mems),
    ] {
        if let Some(v) = value {
            host[key] = json!(v);
        }
    }
}

/// The list flags sent as they are given.
fn list_fields(opts: &ContainerOptions, host: &mut Value) {
    for (key, list) in [
        ("VolumesFrom", &opts.volumes_from),
        ("GroupAdd", &opts.group_add),
        ("DeviceCgroupRules", &opts.device_cgroup_rule),
        ("Dns", &opts.dns),
        ("DnsSearch", &opts.dns_search),
        ("DnsOptions", &opts.dns_option),
    ] {
        if !list.is_empty() {
            host[key] = json!(list);
        }
    }
}

/// `KEY=value` flags as a map, or Docker's usage error for an entry without `=`.
fn key_values(
    entries: &[String],
    error: impl Fn(&str) -> String,
) -> Result<serde_json::Map<String, Value>, CliError> {
    let mut map = serde_json::Map::new();
    for kv in entries {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| CliError::Usage(error(kv)))?;
        map.insert(k.to_string(), json!(v));
    }
    Ok(map)
}

/// Sysctls, devices, logging, tmpfs mounts and extra /etc/hosts entries.
fn system_fields(opts: &ContainerOptions, host: &mut Value) -> Result<(), CliError> {
    if !opts.sysctl.is_empty() {
        let map = key_values(&opts.sysctl, |kv| {
            format!("invalid argument \"{kv}\" for \"--sysctl\" flag: invalid sysctl value {kv:?}")
        })?;
        host["Sysctls"] = Value::Object(map);
    }
    if !opts.device.is_empty() {
        host["Devices"] = Value::Array(
            opts.device
                .iter()
                .map(|d| parse_device(d))
                .collect::<Result<_, _>>()?,
        );
    }
    if opts.log_driver.is_some() || !opts.log_opt.is_empty() {
        let config = key_values(&opts.log_opt, |kv| {
            format!(
                "invalid argument \"{kv}\" for \"--log-opt\" flag: invalid key value pair format in log-opt"
            )
        })?;
        host["LogConfig"] =
            json!({"Type": opts.log_driver.clone().unwrap_or_default(), "Config": config});
    }
    if !opts.tmpfs.is_empty() {
        let mut map = serde_json::Map::new();
        for t in &opts.tmpfs {
            let (path, options) = t.split_once(':').unwrap_or((t.as_str(), ""));
            map.insert(path.to_string(), json!(options));
        }
        host["Tmpfs"] = Value::Object(map);
    }
    if !opts.add_host.is_empty() {
        host["ExtraHosts"] = json!(extra_hosts(&opts.add_host));
    }
    Ok(())
}

/// `--add-host` entries as `host:ip`: Docker accepts `host=ip` too and sends `host:ip`.
fn extra_hosts(entries: &[String]) -> Vec<String> {
    entries
        .iter()
        .map(|h| match h.split_once('=') {
            Some((n, ip)) if !h.contains(':') || h.find('=') < h.find(':') => format!("{n}:{ip}"),
            _ => h.clone(),
        })
        .collect()
}

/// `--publish` and `-P` into the host config; returns the exposed ports (`--expose` and the published).
fn port_fields(
    opts: &ContainerOptions,
    host: &mut Value,
) -> Result<serde_json::Map<String, Value>, CliError> {
    let mut exposed = exposed_ports(&opts.expose)?;
    let mut bindings = serde_json::Map::new();
    for spec in &opts.publish {
        for (key, binding) in super::ports::parse_publish(spec).map_err(CliError::Usage)? {
            exposed.insert(key.clone(), json!({}));
            let list = bindings.entry(key).or_insert_with(|| json!([]));
            if let Some(a) = list.as_array_mut() {
                a.push(binding);
            }
        }
    }
    if !bindings.is_empty() {
        host["PortBindings"] = Value::Object(bindings);
    }
    if opts.publish_all {
        host["PublishAllPorts"] = json!(true);
    }
    Ok(exposed)
}

/// `--expose` entries (`80`, `7000-7001`, `53/udp`) as `port/proto` keys.
fn exposed_ports(entries: &[String]) -> Result<serde_json::Map<String, Value>, CliError> {
    let mut exposed = serde_json::Map::new();
    for e in entries {
        let (ports, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let (a, b) = ports.split_once('-').unwrap_or((ports, ports));
        let bad = || CliError::Usage(format!("invalid range format for --expose: {e}"));
        let (a, b): (u16, u16) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        for p in a..=b.max(a) {
            exposed.insert(format!("{p}/{proto}"), json!({}));
        }
    }
    Ok(exposed)
}

/// The endpoint settings `--ip`, `--network-alias` and `--mac-address` ask for, on the `--network`.
fn networking_config(opts: &ContainerOptions) -> Option<Value> {
    if opts.ip.is_none() && opts.network_alias.is_empty() && opts.mac_address.is_none() {
        return None;
    }
    let net = opts
        .network
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let mut ep = json!({"Aliases": opts.network_alias});
    if let Some(ip) = &opts.ip {
        ep["IPAMConfig"] = json!({"IPv4Address": ip});
    }
    if let Some(mac) = &opts.mac_address {
        ep["MacAddress"] = json!(mac);
    }
    Some(json!({"EndpointsConfig": {net: ep}}))
}

/// `-v` (binds into the host config, anonymous volumes into the config) and `--mount`.
fn mount_fields(
    opts: &ContainerOptions,
    config: &mut Value,
    host: &mut Value,
) -> Result<(), CliError> {
    let (binds, volumes) = parse_volume_flags(&opts.volume)?;
    if !binds.is_empty() {
        host["Binds"] = json!(binds);
    }
    if !volumes.is_empty() {
        let map: serde_json::Map<String, Value> =
            volumes.into_iter().map(|v| (v, json!({}))).collect();
        config["Volumes"] = Value::Object(map);
    }
    if !opts.mount.is_empty() {
        host["Mounts"] = json!(opts
            .mount
            .iter()
            .map(|m| parse_mount_flag(m))
            .collect::<Result<Vec<_>, _>>()?);
    }
    Ok(())
}

/// `--restart NAME[:COUNT]` as the docker CLI parses it (the daemon checks the name).
/// `--security-opt` values as the docker CLI sends them: each must have a value (`no-new-privileges`
/// alone excepted), and `seccomp=FILE` carries the file's JSON, compacted, instead of its name.
fn security_opts(opts: &[String]) -> Result<Vec<String>, CliError> {
    opts.iter()
        .map(|opt| {
            let (key, value) = match opt.split_once('=') {
                Some(kv) => kv,
                None if opt == "no-new-privileges" => return Ok(opt.clone()),
                None => opt.split_once(':').unwrap_or((opt.as_str(), "")),
            };
            if value.is_empty() && key != "no-new-privileges" {
                return Err(CliError::Usage(format!("Invalid --security-opt: {opt:?}")));
            }
            if key != "seccomp" || value == "builtin" || value == "unconfined" {
                return Ok(opt.clone());
            }
            let text = std::fs::read(value).map_err(|e| {
                CliError::Usage(format!("opening seccomp profile ({value}) failed: {e}"))
            })?;
            // Keys keep their order (serde_json's preserve_order), as Go's json.Compact keeps them.
            let profile: Value = serde_json::from_slice(&text).map_err(|e| {
                CliError::Usage(format!(
                    "compacting json for seccomp profile ({value}) failed: {e}"
                ))
            })?;
            Ok(format!("seccomp={profile}"))
        })
        .collect()
}

/// `--device SRC[:DST][:PERMISSIONS]`, as the docker CLI reads it: a second part made only of `r`, `w`
/// and `m` is the permissions, and the destination defaults to the source.
fn parse_device(spec: &str) -> Result<Value, CliError> {
    let is_perms = |p: &str| !p.is_empty() && p.len() <= 3 && p.chars().all(|c| "rwm".contains(c));
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, perms) = match parts.as_slice() {
        [src] => (*src, *src, "rwm"),
        [src, p] if is_perms(p) => (*src, *src, *p),
        [src, dst] => (*src, *dst, "rwm"),
        [src, dst, p] if is_perms(p) => (*src, *dst, *p),
        _ => {
            return Err(CliError::Usage(format!(
                "invalid device specification: {spec}"
            )))
        }
    };
    if !dst.starts_with('/') {
        return Err(CliError::Usage(format!(
            "invalid device specification: {spec}"
        )));
    }
    Ok(json!({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perms}))
}

pub fn parse_restart_policy(text: &str) -> Result<Value, CliError> {
    let (name, count) = match text.split_once(':') {
        Some(("", _)) => {
            return Err(CliError::Usage(
                "invalid restart policy format: no policy provided before colon".to_string(),
            ))
        }
        Some((name, count)) => (name, count),
        None => (text, ""),
    };
    let count: i64 = if count.is_empty() {
        0
    } else {
        count.parse().map_err(|_| {
            CliError::Usage(
                "invalid restart policy format: maximum retry count must be an integer".to_string(),
            )
        })?
    };
    Ok(json!({"Name": name, "MaximumRetryCount": count}))
}

/// `--memory-swap`: a size, or -1 for unlimited swap.
pub fn parse_memory_swap(text: &str) -> Result<i64, CliError> {
    if text.trim() == "-1" {
        return Ok(-1);
    }
    ram_in_bytes(text).ok_or_else(|| {
        CliError::Usage(format!(
            "invalid argument \"{text}\" for \"--memory-swap\" flag: invalid size: '{text}'"
        ))
    })
}

/// Capabilities as Docker's CLI sends them: upper-case with the `CAP_` prefix, `ALL` as is.
pub fn normalize_caps(caps: &[String]) -> Vec<String> {
    caps.iter()
        .map(|c| {
            let upper = c.trim().to_ascii_uppercase();
            if upper == "ALL" || upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            }
        })
        .collect()
}

/// The environment of `--env-file` files (read first) and `-e` flags, as the docker CLI assembles it.
pub fn env_list(files: &[String], flags: &[String]) -> Result<Vec<String>, CliError> {
    let mut env = Vec::new();
    for f in files {
        env.extend(read_env_file(f)?);
    }
    env.extend(flags.iter().map(|e| expand_env(e)));
    Ok(env)
}

/// Docker's `--env-file` format: `KEY=value` lines, `KEY` alone takes the client's value, `#` comments.
pub fn read_env_file(path: &str) -> Result<Vec<String>, CliError> {
    Ok(read_kv_file(path)?.iter().map(|l| expand_env(l)).collect())
}

/// The lines of an env or label file that are neither blank nor comments.
fn read_kv_file(path: &str) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Prefixed(format!("open {path}: {e}")))?;
    Ok(text
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

/// `-v` flags as the docker CLI sends them: with a source (`SRC:DST[:MODE]`, a relative source made
/// absolute) they go to `HostConfig.Binds`; a lone path is an anonymous volume in `Config.Volumes`.
fn parse_volume_flags(specs: &[String]) -> Result<(Vec<String>, Vec<String>), CliError> {
    let (mut binds, mut volumes) = (Vec::new(), Vec::new());
    for spec in specs {
        let parts: Vec<&str> = spec.split(':').collect();
        match parts.len() {
            1 => {
                if !spec.starts_with('/') {
                    return Err(CliError::Usage(format!(
                        "invalid argument \"{spec}\" for \"-v, --volume\" flag: invalid mount \
                         config: invalid mount path: '{spec}' mount path must be absolute"
                    )));
                }
                volumes.push(spec.clone());
            }
            2 | 3 => {
                let mut p = parts.clone();
                let abs;
                if p[0].starts_with('.') {
                    let cwd = std::env::current_dir().map_err(CliError::from)?;
                    abs = cwd.join(p[0]).display().to_string();
                    p[0] = &abs;
                }
                binds.push(p.join(":"));
            }
            _ => {
                return Err(CliError::Usage(format!(
                    "invalid argument \"{spec}\" for \"-v, --volume\" flag: invalid spec: {spec}: too many colons"
                )))
            }
        }
    }
    Ok((binds, volumes))
}

/// One `--mount` flag (`type=bind|volume|tmpfs,source=…,target=…,readonly,…`) as the docker CLI sends it.
fn parse_mount_flag(spec: &str) -> Result<Value, CliError> {
    let bad = |why: String| {
        CliError::Usage(format!(
            "invalid argument \"{spec}\" for \"--mount\" flag: {why}"
        ))
    };
    let truthy = |v: Option<&str>, key: &str| -> Result<bool, CliError> {
        match v.map(str::to_ascii_lowercase).as_deref() {
            None | Some("1") | Some("true") => Ok(true),
            Some("0") | Some("false") => Ok(false),
            Some(other) => Err(bad(format!("invalid value for {key}: {other}"))),
        }
    };
    let mut m = serde_json::Map::new();
    let mut kind = "volume".to_string();
    let (mut bind, mut vol, mut tmpfs) = (
        serde_json::Map::new(),
        serde_json::Map::new(),
        serde_json::Map::new(),
    );
    let (mut vol_labels, mut vol_opts) = (serde_json::Map::new(), serde_json::Map::new());
    let mut driver: Option<String> = None;
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let need = || {
            value.ok_or_else(|| bad(format!("invalid field '{field}' must be a key=value pair")))
        };
        match key.as_str() {
            "type" => kind = need()?.to_string(),
            "source" | "src" => {
                m.insert("Source".into(), json!(need()?));
            }
            "target" | "destination" | "dst" => {
                m.insert("Target".into(), json!(need()?));
            }
            "readonly" | "ro" => {
                m.insert("ReadOnly".into(), json!(truthy(value, &key)?));
            }
            "consistency" => {
                m.insert("Consistency".into(), json!(need()?));
            }
            "bind-propagation" => {
                bind.insert("Propagation".into(), json!(need()?));
            }
            "bind-nonrecursive" => {
                bind.insert("NonRecursive".into(), json!(truthy(value, &key)?));
            }
            // Docker 25: what a bind does with its source's submounts.
            "bind-recursive" => match value {
                Some("enabled") => {}
                Some("disabled") => {
                    bind.insert("NonRecursive".into(), json!(true));
                }
                Some("writable") => {
                    bind.insert("ReadOnlyNonRecursive".into(), json!(true));
                }
                Some("readonly") => {
                    bind.insert("ReadOnlyForceRecursive".into(), json!(true));
                }
                _ => {
                    return Err(bad(format!(
                        "invalid value for {key}: {} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")",
                        value.unwrap_or("")
                    )))
                }
            },
            "volume-nocopy" => {
                vol.insert("NoCopy".into(), json!(truthy(value, &key)?));
            }
            "volume-label" => {
                let (k, v) = need()?.split_once('=').unwrap_or((need()?, ""));
                vol_labels.insert(k.into(), json!(v));
            }
            "volume-driver" => driver = Some(need()?.to_string()),
            "volume-opt" => {
                let (k, v) = need()?.split_once('=').ok_or_else(|| {
                    bad(format!("invalid volume-opt value: {}", value.unwrap_or("")))
                })?;
                vol_opts.insert(k.into(), json!(v));
            }
            "tmpfs-size" => {
                let size = ram_in_bytes(need()?)
                    .ok_or_else(|| bad(format!("invalid tmpfs-size: {}", value.unwrap_or(""))))?;
                tmpfs.insert("SizeBytes".into(), json!(size));
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(need()?, 8)
                    .map_err(|_| bad(format!("invalid tmpfs-mode: {}", value.unwrap_or(""))))?;
                tmpfs.insert("Mode".into(), json!(mode));
            }
            _ => return Err(bad(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    let read_only = m.get("ReadOnly") == Some(&json!(true));
    if bind.get("ReadOnlyNonRecursive").is_some() && !read_only {
        return Err(bad(
            "option 'bind-recursive=writable' requires 'readonly' to be specified in conjunction"
                .into(),
        ));
    }
    if bind.get("ReadOnlyForceRecursive").is_some() {
        if !read_only {
            return Err(bad(
                "option 'bind-recursive=readonly' requires 'readonly' to be specified in conjunction"
                    .into(),
            ));
        }
        // A shared or slave bind would take in writable mounts made later on the host.
        if bind.get("Propagation") != Some(&json!("rprivate")) {
            return Err(bad("option 'bind-recursive=readonly' requires 'bind-propagation=rprivate' to be specified in conjunction".into()));
        }
    }
    m.insert("Type".into(), json!(kind));
    if !bind.is_empty() {
        m.insert("BindOptions".into(), Value::Object(bind));
    }
    if !vol_labels.is_empty() {
        vol.insert("Labels".into(), Value::Object(vol_labels));
    }
    if driver.is_some() || !vol_opts.is_empty() {
        let mut dc = serde_json::Map::new();
        if let Some(d) = driver {
            dc.insert("Name".into(), json!(d));
        }
        if !vol_opts.is_empty() {
            dc.insert("Options".into(), Value::Object(vol_opts));
        }
        vol.insert("DriverConfig".into(), Value::Object(dc));
    }
    if !vol.is_empty() {
        m.insert("VolumeOptions".into(), Value::Object(vol));
    }
    if !tmpfs.is_empty() {
        m.insert("TmpfsOptions".into(), Value::Object(tmpfs));
    }
    Ok(Value::Object(m))
}

/// `-e NAME` without a value takes the client's own value (and is dropped if unset), as Docker does.
pub fn expand_env(entry: &str) -> String {
    if entry.contains('=') {
        return entry.to_string();
    }
    match std::env::var(entry) {
        Ok(v) => format!("{entry}={v}"),
        Err(_) => entry.to_string(),
    }
}

/// Docker's reference normalisation for the "Unable to find image" message: a tag defaults to latest.
fn with_default_tag(image: &str) -> String {
    let (_, tag) = super::split_tag(image);
    if tag.is_some() || image.contains('@') {
        image.to_string()
    } else {
        format!("{image}:latest")
    }
}

/// Creates the container (pulling the image when missing, as Docker tries to) and returns its ID.
async fn create_container(
    client: &Client,
    opts: &ContainerOptions,
    attach: bool,
) -> Result<String, CliError> {
    let body = create_body(opts, attach)?;
    // The ID file must not exist yet (another container may be using it); it is written once the
    // container is created, as the docker CLI does.
    if let Some(f) = &opts.cidfile {
        if std::path::Path::new(f).exists() {
            return Err(CliError::Usage(format!(
                "container ID file found, make sure the other container isn't running or delete {f}"
            )));
        }
    }
    if !["always", "missing", "never"].contains(&opts.pull.as_str()) {
        return Err(CliError::Usage(format!(
            "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            opts.pull
        )));
    }
    if opts.pull == "always" {
        pull(client, &with_default_tag(&opts.args[0])).await?;
    }
    let path = match &opts.name {
        Some(n) => format!("/containers/create{}", query(&[("name", n)])),
        None => "/containers/create".to_string(),
    };
    let resp = match client.post_json(&path, &body).await {
        Ok(resp) => resp,
        Err(CliError::Daemon {
            status: 404,
            message,
        }) if message.starts_with("No such image") && opts.pull == "missing" => {
            let image = with_default_tag(&opts.args[0]);
            eprintln!("Unable to find image '{image}' locally");
            pull(client, &image).await?;
            client.post_json(&path, &body).await?
        }
        Err(e) => return Err(e),
    };
    let created: Value = serde_json::from_slice(&read_all(resp).await?)
        .map_err(|e| CliError::Decode(e.to_string()))?;
    if let Some(warnings) = created["Warnings"].as_array() {
        for w in warnings.iter().filter_map(Value::as_str) {
            eprintln!("WARNING: {w}");
        }
    }
    let id = created["Id"].as_str().unwrap_or_default().to_string();
    if let Some(f) = &opts.cidfile {
        std::fs::write(f, &id)
            .map_err(|e| CliError::Usage(format!("failed to create the container ID file: {e}")))?;
    }
    Ok(id)
}

/// Pulls `image` (name:tag), showing the pull's status lines on stderr as `docker run` does (stdout
/// is the container's).
async fn pull(client: &Client, image: &str) -> Result<(), CliError> {
    let (name, tag) = super::split_tag(image);
    let name = normalize_name(name);
    let mut params = vec![("fromImage", name.as_str())];
    if let Some(t) = tag {
        params.push(("tag", t));
    }
    let resp = client
        .with_registry_auth(super::distribution::registry_auth(&name)?)
        .post(&format!("/images/create{}", query(&params)))
        .await?;
    let mut stream = JsonStream::new(resp);
    while let Some(doc) = stream.next().await {
        let (doc, _) = doc?;
        if let Some(err) = doc["error"].as_str() {
            return Err(CliError::Stream(err.to_string()));
        }
        // Byte counts make bars on a terminal; as text only the status changes are worth a line.
        let status = doc["status"].as_str().unwrap_or("");
        if status.is_empty() || doc["progressDetail"]["current"].is_u64() {
            continue;
        }
        match doc["id"].as_str() {
            Some(id) => eprintln!("{id}: {status}"),
            None => eprintln!("{status}"),
        }
    }
    Ok(())
}

/// A repository name fully qualified as Docker's reference parser makes it (`busybox` →
/// `docker.io/library/busybox`).
pub fn normalize_name(name: &str) -> String {
    match name.split_once('/') {
        None => format!("docker.io/library/{name}"),
        Some((first, _))
            if !(first.contains('.') || first.contains(':') || first == "localhost") =>
        {
            format!("docker.io/{name}")
        }
        Some(_) => name.to_string(),
    }
}

/// A flag clap did not know before the image lands in the trailing arguments, as the image: refused here
/// with the docker CLI's words, usage line and status (125), not sent to the daemon as an image name.
fn unknown_flag_before_image(args: &[String], command: &str) -> Result<(), CliError> {
    let Some(first) = args.first().filter(|a| a.starts_with('-') && a.len() > 1) else {
        return Ok(());
    };
    let what = match first.strip_prefix("--") {
        Some(long) => {
            let name = long.split_once('=').map_or(long, |(n, _)| n);
            format!("unknown flag: --{name}")
        }
        None => {
            let c = first.chars().nth(1).unwrap_or('-');
            format!("unknown shorthand flag: '{c}' in {first}")
        }
    };
    Err(CliError::Usage(format!(
        "{what}\n\nUsage:  berth {command} [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n\
         Run 'berth {command} --help' for more information"
    )))
}

/// Creates a container and prints its ID.
pub async fn create(client: &Client, args: CreateArgs) -> Result<(), CliError> {
    unknown_flag_before_image(&args.options.args, "create")?;
    // Docker's `create` records stdout/stderr (and stdin with `-i`) as attached, as for a foreground run.
    let id = create_container(client, &args.options, true).await?;
    print(&format!("{id}\n"))
}

/// Runs a container: create, attach, wait, start, copy output, exit with the container's status.
pub async fn run(client: &Client, args: RunArgs) -> Result<(), CliError> {
    let opts = &args.options;
    unknown_flag_before_image(&opts.args, "run")?;
    let attach = !args.detach;
    if attach && opts.tty && opts.interactive && !stdin_is_terminal() {
        return Err(CliError::WithStatus(
            "the input device is not a TTY".to_string(),
            1,
        ));
    }
    let id = create_container(client, opts, attach)
        .await
        .map_err(|e| run_error(&e.to_string(), 125))?;
    if args.detach {
        // Docker prints the ID even when the start fails.
        let started = start_container(client, &id).await;
        print(&format!("{id}\n"))?;
        return started.map_err(|e| run_error(&e.to_string(), start_error_status(&e.to_string())));
    }
    let condition = if opts.rm { "removed" } else { "next-exit" };
    let session = Session {
        stdin: opts.interactive,
        tty: opts.tty,
        detach_keys: args.detach_keys.clone(),
        resize: Some(format!("/containers/{}/resize", path_escape(&id))),
        signals: args
            .sig_proxy
            .then(|| format!("/containers/{}/kill", path_escape(&id))),
    };
    match attach_and_start(client, &id, session, condition, true).await? {
        // Detached with the keys: the container runs on, and the docker CLI exits 0.
        None => Ok(()),
        Some(status) => exit_with(status),
    }
}

/// Attaches to `id`, waits for `condition`, starts it and copies its streams; returns its exit status, or
/// `None` if the user detached.
async fn attach_and_start(
    client: &Client,
    id: &str,
    session: Session,
    condition: &str,
    run_style: bool,
) -> Result<Option<i64>, CliError> {
    let mut params = vec![("stream", "1"), ("stdout", "1"), ("stderr", "1")];
    if session.stdin {
        params.push(("stdin", "1"));
    }
    if let Some(k) = session.detach_keys.as_deref().filter(|k| !k.is_empty()) {
        params.push(("detachKeys", k));
    }
    let escaped = path_escape(id);
    let conn = client
        .upgrade(&format!("/containers/{escaped}/attach{}", query(&params)))
        .await?;
    let wait = client
        .post(&format!(
            "/containers/{escaped}/wait{}",
            query(&[("condition", condition)])
        ))
        .await?;
    if let Err(e) = start_container(client, id).await {
        let message = e.to_string();
        if run_style {
            // The container is left as created, as Docker leaves it (and `--rm` removes it daemon-side).
            return Err(run_error(&message, start_error_status(&message)));
        }
        return Err(e);
    }
    if super::session::run(client, conn, session).await? == Ended::Detached {
        return Ok(None);
    }
    let body = read_all(wait).await?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if let Some(msg) = answer["Error"]["Message"]
        .as_str()
        .filter(|m| !m.is_empty())
    {
        return Err(run_error(msg, 125));
    }
    Ok(Some(answer["StatusCode"].as_i64().unwrap_or(0)))
}

/// Writes container output to our stdout (streams 0 and 1) or stderr (2), flushing at once.
pub fn write_stream(stream: u8, data: &[u8]) {
    if stream == 2 {
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(data);
        let _ = err.flush();
    } else {
        let mut out = std::io::stdout().lock();
        if let Err(e) = out.write_all(data).and_then(|()| out.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                crate::output::end_on_closed_pipe();
            }
        }
    }
}

fn exit_with(status: i64) -> Result<(), CliError> {
    if status == 0 {
        Ok(())
    } else {
        Err(CliError::Exit((status & 0xff) as u8))
    }
}

async fn start_container(client: &Client, id: &str) -> Result<(), CliError> {
    client
        .post(&format!("/containers/{}/start", path_escape(id)))
        .await
        .map(|_| ())
}

/// Starts containers; with `-a`, attaches to the (single) container and exits with its status.
pub async fn start(client: &Client, args: StartArgs) -> Result<(), CliError> {
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            return Err(CliError::Prefixed(
                "you cannot start and attach multiple containers at once".to_string(),
            ));
        }
        let name = &args.containers[0];
        let info: Value = client
            .get_json(&format!("/containers/{}/json", path_escape(name)))
            .await?;
        let tty = info["Config"]["Tty"].as_bool().unwrap_or(false);
        let open_stdin = info["Config"]["OpenStdin"].as_bool().unwrap_or(false);
        let session = Session {
            stdin: args.interactive && open_stdin,
            tty,
            detach_keys: args.detach_keys.clone(),
            resize: Some(format!("/containers/{}/resize", path_escape(name))),
            signals: Some(format!("/containers/{}/kill", path_escape(name))),
        };
        return match attach_and_start(client, name, session, "next-exit", false).await? {
            None => Ok(()),
            Some(status) => exit_with(status),
        };
    }
    let mut errors = Vec::new();
    for name in &args.containers {
        match start_container(client, name).await {
            Ok(()) => print(&format!("{name}\n"))?,
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    eprintln!("{}", errors.join("\n"));
    Err(CliError::Reported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Top {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn flags_after_the_image_belong_to_the_command() {
        let top =
            Top::try_parse_from(["run", "--rm", "-e", "A=1", "busybox", "ls", "-l", "-d"]).unwrap();
        assert!(top.run.options.rm);
        assert!(!top.run.detach);
        assert_eq!(top.run.options.args, ["busybox", "ls", "-l", "-d"]);
        assert_eq!(top.run.options.env, ["A=1"]);
    }

    #[test]
    fn create_body_carries_flags_as_docker_sends_them() {
        let top = Top::try_parse_from([
            "run",
            "-m",
            "64m",
            "--cpus",
            "1.5",
            "--ulimit",
            "nofile=10:20",
            "--tmpfs",
            "/t:size=1m",
            "-l",
            "a=b",
            "--network",
            "none",
            "--cap-drop",
            "ALL",
            "--entrypoint",
            "sh",
            "busybox",
            "-c",
            "true",
        ])
        .unwrap();
        let body = create_body(&top.run.options, true).unwrap();
        assert_eq!(body["Image"], "busybox");
        assert_eq!(body["Cmd"], json!(["-c", "true"]));
        assert_eq!(body["Entrypoint"], json!(["sh"]));
        assert_eq!(body["Labels"], json!({"a": "b"}));
        assert_eq!(body["HostConfig"]["Memory"], 64 * 1024 * 1024);
        assert_eq!(body["HostConfig"]["NanoCpus"], 1_500_000_000i64);
        assert_eq!(body["HostConfig"]["NetworkMode"], "none");
        assert_eq!(body["HostConfig"]["CapDrop"], json!(["ALL"]));
        assert_eq!(normalize_caps(&["net_admin".into()]), ["CAP_NET_ADMIN"]);
        assert_eq!(body["HostConfig"]["Tmpfs"], json!({"/t": "size=1m"}));
        assert_eq!(
            body["HostConfig"]["Ulimits"],
            json!([{"Name": "nofile", "Soft": 10, "Hard": 20}])
        );
        assert_eq!(body["AttachStdout"], true);
    }

    /// Flag sets covering every field `create_body` fills, with the body recorded before the function was
    /// split (`testdata/create-body-*.json`).
    const RECORDED_BODIES: [(&str, &[&str]); 3] = [
        ("plain", &["create", "busybox"]),
        (
            "resources",
            &[
                "run",
                "-it",
                "--rm",
                "--name",
                "web",
                "-e",
                "A=1",
                "-e",
                "B=2",
                "-w",
                "/w",
                "-u",
                "1000:1000",
                "--entrypoint",
                "",
                "-h",
                "host",
                "--domainname",
                "example.org",
                "-l",
                "x=y",
                "-l",
                "z",
                "--stop-signal",
                "SIGINT",
                "--stop-timeout",
                "7",
                "--cap-add",
                "net_admin",
                "--cap-drop",
                "chown",
                "--security-opt",
                "no-new-privileges",
                "--read-only",
                "-m",
                "64m",
                "--cpus",
                "0.5",
                "--memory-swap",
                "128m",
                "--memory-reservation",
                "32m",
                "--cpu-shares",
                "512",
                "--cpuset-cpus",
                "0",
                "--cpuset-mems",
                "0",
                "--pids-limit",
                "10",
                "--init",
                "--pid",
                "host",
                "--ipc",
                "shareable",
                "--uts",
                "host",
                "--cgroupns",
                "private",
                "--cgroup-parent",
                "p",
                "--group-add",
                "10",
                "--device-cgroup-rule",
                "c 1:3 rwm",
                "--shm-size",
                "1m",
                "--sysctl",
                "net.ipv4.ip_forward=1",
                "--device",
                "/dev/null:/dev/n:rw",
                "--log-driver",
                "json-file",
                "--log-opt",
                "max-size=1m",
                "--oom-score-adj",
                "100",
                "--oom-kill-disable",
                "--memory-swappiness",
                "10",
                "--cpu-period",
                "50000",
                "--cpu-quota",
                "25000",
                "--blkio-weight",
                "300",
                "--tmpfs",
                "/t:size=1m",
                "--tmpfs",
                "/u",
                "--ulimit",
                "nofile=10:20",
                "--runtime",
                "runc",
                "busybox",
                "sh",
                "-c",
                "true",
            ],
        ),
        (
            "network",
            &[
                "create",
                "--restart",
                "on-failure:3",
                "--network",
                "net1",
                "--ip",
                "10.0.0.5",
                "--network-alias",
                "a",
                "--mac-address",
                "02:42:ac:11:00:02",
                "--dns",
                "1.1.1.1",
                "--dns-search",
                "example.org",
                "--dns-option",
                "ndots:2",
                "--add-host",
                "db=10.0.0.9",
                "--add-host",
                "x:10.0.0.8",
                "-p",
                "8080:80",
                "-p",
                "127.0.0.1:9000-9001:90-91/udp",
                "-P",
                "--expose",
                "7000-7001",
                "--expose",
                "53/udp",
                "-v",
                "/tmp:/data:ro",
                "-v",
                "/anon",
                "-v",
                "named:/n",
                "--volumes-from",
                "other",
                "--mount",
                "type=bind,src=/tmp,dst=/m,readonly",
                "--mount",
                "type=tmpfs,dst=/tm",
                "--health-cmd",
                "true",
                "--health-interval",
                "5s",
                "--health-retries",
                "3",
                "busybox",
            ],
        ),
    ];

    #[test]
    fn create_body_is_the_recorded_one_for_every_flag() {
        let recorded = [
            include_str!("testdata/create-body-plain.json"),
            include_str!("testdata/create-body-resources.json"),
            include_str!("testdata/create-body-network.json"),
        ];
        for ((name, args), expected) in RECORDED_BODIES.into_iter().zip(recorded) {
            let top = Top::try_parse_from(args).unwrap();
            let body = create_body(&top.run.options, args[0] == "run").unwrap();
            let expected: Value = serde_json::from_str(expected).unwrap();
            for (key, value) in expected.as_object().unwrap() {
                assert_eq!(&body[key], value, "{name}: {key}");
            }
            assert_eq!(body, expected, "{name}");
        }
    }

    #[test]
    fn add_host_with_an_equals_sign_is_sent_with_a_colon() {
        let given = ["db=10.0.0.9", "x:10.0.0.8", "v6=::1", "h:fe80::1=x"].map(String::from);
        assert_eq!(
            extra_hosts(&given),
            ["db:10.0.0.9", "x:10.0.0.8", "v6:::1", "h:fe80::1=x"]
        );
    }

    #[test]
    fn expose_ranges_and_protocols_become_port_keys() {
        let ports = exposed_ports(&["7000-7002".into(), "53/udp".into()]).unwrap();
        let keys: Vec<_> = ports.keys().cloned().collect();
        assert_eq!(keys, ["7000/tcp", "7001/tcp", "7002/tcp", "53/udp"]);
        let err = exposed_ports(&["x-1".into()]).unwrap_err();
        assert!(err
            .to_string()
            .contains("invalid range format for --expose: x-1"));
    }

    #[test]
    fn restart_with_rm_is_a_usage_error_and_sizes_name_their_flag() {
        let top = Top::try_parse_from(["run", "--rm", "--restart", "always", "busybox"]).unwrap();
        let err = restart_policy(&top.run.options).unwrap_err();
        assert!(err
            .to_string()
            .contains("cannot specify both --restart and --rm"));
        let err = size_flag("lots", "--shm-size").unwrap_err().to_string();
        assert!(
            err.contains("invalid argument \"lots\" for \"--shm-size\" flag"),
            "{err}"
        );
        let top = Top::try_parse_from(["run", "busybox"]).unwrap();
        assert_eq!(networking_config(&top.run.options), None);
    }

    #[test]
    fn start_errors_map_to_docker_statuses() {
        assert_eq!(
            start_error_status(
                "failed to start container process: exec: \"x\": executable file not found in $PATH"
            ),
            127
        );
        assert_eq!(
            start_error_status("exec: \"/etc/passwd\": permission denied"),
            126
        );
        assert_eq!(start_error_status("something else"), 125);
    }

    #[test]
    fn pulled_names_are_fully_qualified() {
        assert_eq!(normalize_name("busybox"), "docker.io/library/busybox");
        assert_eq!(normalize_name("a/b"), "docker.io/a/b");
        assert_eq!(normalize_name("localhost:5000/b"), "localhost:5000/b");
    }

    #[test]
    fn memory_sizes_are_binary_multiples() {
        assert_eq!(ram_in_bytes("1024"), Some(1024));
        assert_eq!(ram_in_bytes("1k"), Some(1024));
        assert_eq!(ram_in_bytes("1.5g"), Some(1610612736));
        assert_eq!(ram_in_bytes("64MB"), Some(64 << 20));
        assert_eq!(ram_in_bytes("x"), None);
    }
}
