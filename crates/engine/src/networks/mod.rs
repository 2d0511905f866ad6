//! Container networking in the engine: the default `bridge` network and user-defined bridge networks (records
//! and kernel objects from the `network` crate), the endpoints of running containers, their published ports
//! (userland proxy plus DNAT), the embedded DNS servers, and Berth's nftables tables.
//!
//! All mutable state sits behind one mutex ([`Manager`]); every kernel operation (netlink, `nft`) is blocking
//! and runs on tokio's blocking pool with that lock held, so reconciling the firewall always sees a
//! consistent set of networks and published ports.

mod api;
mod endpoints;
mod ipam_request;
mod ports;
mod settings;

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use network::firewall::Tables;
use network::{Backend, Firewall, NetNs, Network, NetworkOptions, PortBinding, PortMapper};
use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

pub use api::{check_endpoint_config, check_network_create, ConnectRequest, NetworkCreate};

/// The default bridge device when the daemon is given none (Docker's is `docker0`).
pub const DEFAULT_BRIDGE: &str = "berth0";
/// Docker's name for the default network.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Networking flags of the daemon.
#[derive(Debug, Clone, Default)]
pub struct NetworkConfig {
    /// `--bridge`: the default network's bridge device; `none` for no default network.
    pub bridge: Option<String>,
    /// `--bip`: the default bridge's address with prefix (`10.99.0.1/24`).
    pub bip: Option<String>,
    /// `--ipv6`: the default bridge is dual-stack.
    pub ipv6: bool,
    /// `--fixed-cidr-v6`: the default bridge's IPv6 subnet (`fd00:1::/64`).
    pub fixed_cidr_v6: Option<String>,
}

/// What a container asks of one network, kept in its record (by network name) from create on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The network's ID.
    pub network_id: String,
    /// `--network-alias` / `--alias`.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`.
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Addr>,
    /// `--link-local-ip`: extra addresses on the interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local: Vec<std::net::IpAddr>,
    /// `--mac-address`.
    #[serde(default)]
    pub mac: Option<String>,
    /// `--link NAME:ALIAS` on a user-defined network (or `network connect --link`): ALIAS resolves to NAME
    /// for this container only, through its embedded DNS server. Kept as the client gave them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
}

/// The IDs of the two networks that have no kernel objects (`host`, `none`), kept so they are stable.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Predefined {
    host_id: String,
    host_created: String,
    none_id: String,
    none_created: String,
}

/// A running container's networking: its namespace, published ports and DNS server.
struct Live {
    name: String,
    /// The container's hostname, one of its DNS names on user-defined networks (dockerd's `DNSNames`).
    hostname: String,
    netns: Arc<NetNs>,
    ports: Vec<PortBinding>,
    /// The bridge the published ports lead to (for the DNAT rules' hairpin exception).
    port_bridge: Option<String>,
    dns: Option<network::dns::Server>,
    table: network::dns::Table,
    /// Aliases by network ID (for the DNS tables).
    aliases: BTreeMap<String, Vec<String>>,
    /// Links by network ID, as (name, alias): names only this container resolves.
    links: BTreeMap<String, Vec<(String, String)>>,
}

struct State {
    nets: BTreeMap<String, Network>,
    predefined: Predefined,
    default_id: Option<String>,
    firewall: Option<Firewall>,
    mapper: PortMapper,
    live: HashMap<String, Live>,
}

/// The engine's networking state.
pub struct Manager {
    state: Mutex<State>,
    dir: PathBuf,
    run_dir: PathBuf,
    /// Why there is no firewall, for `info` and the log.
    no_firewall: Option<String>,
    /// The default network's bridge, and whether this daemon made it (then it removes it at a clean stop
    /// with nothing running).
    bridge: Option<(String, bool)>,
    /// Held while the daemon runs: no second daemon takes the same bridge in this network namespace.
    _bridge_lock: Option<std::fs::File>,
    /// The unique local `/48` automatic IPv6 subnets come from (from the engine ID, so stable per daemon).
    ula: Option<ipnetwork::Ipv6Network>,
}

impl Manager {
    /// Loads every network under `DATA_ROOT/network`, brings their bridges up, makes (or fixes) the default
    /// bridge network, and finds the firewall.
    pub(crate) fn open(data_root: &Path, exec_root: &Path, cfg: &NetworkConfig) -> Result<Manager> {
        let dir = data_root.join("network");
        let run_dir = exec_root.join("network");
        for d in [&dir, &run_dir] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        let predefined = load_predefined(&dir)?;
        let ula = ula_base(data_root);
        // Networking that cannot come up (no CAP_NET_ADMIN, no free pool) must not keep the daemon from
        // serving: say why, and run containers without a default network.
        let mut nets: BTreeMap<String, Network> = match Network::load_all(&dir, None) {
            Ok(list) => list
                .into_iter()
                .map(|n| (n.record().id.clone(), n))
                .collect(),
            Err(e) => {
                tracing::error!(error = %e, "loading the networks failed");
                BTreeMap::new()
            }
        };
        let bridge = cfg.bridge.clone().unwrap_or_else(|| DEFAULT_BRIDGE.into());
        let bridge_lock = if bridge == "none" {
            None
        } else {
            Some(lock_bridge(&bridge, data_root)?)
        };
        let bridge_existed =
            bridge == "none" || network::link::link_exists(None, &bridge).unwrap_or(true);
        let default_id = if bridge == "none" {
            None
        } else {
            match ensure_default(&dir, &mut nets, &bridge, cfg, ula) {
                Ok(id) => Some(id),
                // A bad --bip is the user's to fix.
                Err(Error::InvalidParameter(m)) => return Err(Error::InvalidParameter(m)),
                Err(e) => {
                    tracing::error!(error = %e, bridge, "cannot set up the default bridge network: containers get no network");
                    None
                }
            }
        };
        if !nets.is_empty() {
            // Docker turns forwarding on for its bridges; without it nothing leaves a container.
            if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
                tracing::warn!(error = %e, "cannot enable IPv4 forwarding");
            }
        }
        if nets.values().any(|n| n.record().subnet6.is_some()) {
            enable_ipv6_forwarding();
        }
        let tables = if bridge == DEFAULT_BRIDGE || bridge == "none" {
            Tables::default()
        } else {
            Tables::with_suffix(&bridge)
        };
        let (firewall, no_firewall) = match Firewall::detect(None) {
            Backend::Nftables(fw) => (Some(fw.with_tables(tables)), None),
            Backend::NoFirewall { reason } => {
                tracing::warn!(%reason, "no firewall: published ports are served by the userland proxy only, without NAT or isolation");
                (None, Some(reason))
            }
        };
        Ok(Manager {
            state: Mutex::new(State {
                nets,
                predefined,
                default_id,
                firewall,
                mapper: PortMapper::new(None),
                live: HashMap::new(),
            }),
            dir,
            run_dir,
            no_firewall,
            bridge: (bridge != "none").then(|| (bridge.clone(), !bridge_existed)),
            _bridge_lock: bridge_lock,
            ula,
        })
    }

    /// At a clean stop: removes the default bridge if this daemon made it and no container uses it (its
    /// network record keeps the subnet, and the next start makes the bridge again).
    pub(crate) fn release_default_bridge(&self, containers_running: bool) {
        let Some((bridge, created)) = &self.bridge else {
            return;
        };
        if !created || containers_running {
            return;
        }
        let st = self.lock();
        let in_use = st
            .nets
            .values()
            .any(|n| n.record().bridge == *bridge && !n.record().endpoints.is_empty());
        if in_use {
            return;
        }
        match network::link::delete_link(None, bridge) {
            Ok(()) => {
                tracing::info!(bridge = %bridge, "removed the default bridge this daemon made")
            }
            Err(e) => tracing::warn!(bridge = %bridge, error = %e, "removing the default bridge"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Why published ports have no DNAT and networks no isolation, if so.
    pub fn firewall_missing(&self) -> Option<&str> {
        self.no_firewall.as_deref()
    }

    fn ports_file(&self, container_id: &str) -> PathBuf {
        self.run_dir.join(format!("{container_id}.json"))
    }
}

impl State {
    /// Rewrites Berth's nftables tables from the networks and published ports; failures are logged (the
    /// proxy still serves every published port).
    fn reconcile_firewall(&self) {
        let Some(fw) = &self.firewall else { return };
        let specs: Vec<_> = self.nets.values().map(Network::spec).collect();
        let dnat: Vec<_> = self
            .live
            .values()
            .flat_map(|l| {
                let bridge = l.port_bridge.clone().unwrap_or_default();
                l.ports
                    .iter()
                    .filter_map(move |p| p.dnat_rule(&bridge))
                    .collect::<Vec<_>>()
            })
            .collect();
        if let Err(e) = fw.reconcile(&specs, &dnat) {
            tracing::warn!(error = %e, "reconciling the firewall failed");
        }
    }

    /// Finds a network by full ID, name, or unique ID prefix, as Docker does (404 otherwise).
    fn resolve(&self, name_or_id: &str) -> Result<NetRef> {
        let p = &self.predefined;
        for (id, name) in [(&p.host_id, "host"), (&p.none_id, "none")] {
            if name_or_id == id || name_or_id == name {
                return Ok(NetRef::Special(name));
            }
        }
        if self.nets.contains_key(name_or_id) {
            return Ok(NetRef::Bridge(name_or_id.to_owned()));
        }
        if let Some(n) = self.nets.values().find(|n| n.record().name == name_or_id) {
            return Ok(NetRef::Bridge(n.record().id.clone()));
        }
        let mut found: Vec<NetRef> = self
            .nets
            .keys()
            .filter(|id| id.starts_with(name_or_id))
            .map(|id| NetRef::Bridge(id.clone()))
            .collect();
        for (id, name) in [(&p.host_id, "host"), (&p.none_id, "none")] {
            if id.starts_with(name_or_id) {
                found.push(NetRef::Special(name));
            }
        }
        match found.len() {
            1 if !name_or_id.is_empty() => Ok(found.remove(0)),
            n if n > 1 && !name_or_id.is_empty() => Err(Error::InvalidParameter(format!(
                "network {name_or_id} is ambiguous ({n} matches found on name)"
            ))),
            _ => Err(Error::NotFound(format!("network {name_or_id} not found"))),
        }
    }
}

/// A resolved network: a bridge network by ID, or `host`/`none`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NetRef {
    Bridge(String),
    Special(&'static str),
}

/// Maps the network crate's errors to the engine's classes (user mistakes are 400, conflicts 409).
pub(crate) fn net_err(e: network::Error) -> Error {
    use network::Error as E;
    match e {
        E::InvalidConfig(_) | E::PortSpec(_) | E::AddressOutOfRange { .. } => {
            Error::InvalidParameter(e.to_string())
        }
        E::PoolOverlap | E::NoPoolAvailable | E::NoPoolAvailable6 => {
            Error::Forbidden(e.to_string())
        }
        E::AddressInUse | E::EndpointExists { .. } => Error::Conflict(e.to_string()),
        E::ActiveEndpoints { .. } => Error::Forbidden(e.to_string()),
        E::NoSuchEndpoint { .. } => Error::NotFound(e.to_string()),
        _ => Error::system("", e),
    }
}

/// Locks the bridge `bridge` of this network namespace for this daemon (`/run/berth/bridge-NETNS-NAME.lock`),
/// so that two daemons never manage one bridge: each would hand out the same addresses and rewrite the
/// other's firewall rules.
fn lock_bridge(bridge: &str, data_root: &Path) -> Result<std::fs::File> {
    use std::os::unix::fs::MetadataExt;
    let netns = std::fs::metadata("/proc/self/ns/net")
        .context("reading this process's network namespace")?
        .ino();
    let dir = Path::new("/run/berth");
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("bridge-{netns}-{bridge}.lock"));
    let holder = format!(
        "pid {}, data root {}",
        std::process::id(),
        data_root.display()
    );
    crate::host::lock_exclusive(&path, &holder)
        .with_context(|| format!("opening {}", path.display()))?
        .map_err(|taken_by| {
            Error::Conflict(format!(
                "the bridge {bridge} is managed by another berth daemon ({taken_by}): give this daemon a bridge of its own with --bridge NAME and --bip CIDR, or run it without one (--bridge none)"
            ))
        })
}

/// Docker turns IPv6 forwarding on for IPv6 networks; without it nothing leaves a container over IPv6.
fn enable_ipv6_forwarding() {
    if let Err(e) = std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1") {
        tracing::warn!(error = %e, "cannot enable IPv6 forwarding");
    }
}

/// The daemon's unique local `/48` for automatic IPv6 subnets: its 40-bit global ID is the start of the
/// (random, persistent) engine ID, as Docker 28 derives its default IPv6 pool from the host's ID.
fn ula_base(data_root: &Path) -> Option<ipnetwork::Ipv6Network> {
    let id = crate::system::engine_id(data_root).ok()?;
    let hex: String = id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .take(10)
        .collect();
    let mut seed = [0u8; 5];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    network::ipam::ula_base(&seed).ok()
}

fn now() -> String {
    image::timefmt::rfc3339_nano(std::time::SystemTime::now())
}

fn load_predefined(dir: &Path) -> Result<Predefined> {
    let path = dir.join("predefined.json");
    if let Ok(data) = std::fs::read(&path) {
        if let Ok(p) = serde_json::from_slice(&data) {
            return Ok(p);
        }
    }
    let p = Predefined {
        host_id: crate::containers::random_id()?,
        host_created: now(),
        none_id: crate::containers::random_id()?,
        none_created: now(),
    };
    let data =
        serde_json::to_vec_pretty(&p).with_context(|| format!("encoding {}", path.display()))?;
    crate::containers::record::write_atomic(&path, &data)?;
    Ok(p)
}

/// Makes sure the default network exists with the daemon's bridge and `--bip`; a record made with other
/// flags is replaced when no container uses it (else kept, with a warning).
fn ensure_default(
    dir: &Path,
    nets: &mut BTreeMap<String, Network>,
    bridge: &str,
    cfg: &NetworkConfig,
    ula: Option<ipnetwork::Ipv6Network>,
) -> Result<String> {
    let cidr6: Option<ipnetwork::Ipv6Network> =
        match cfg.fixed_cidr_v6.as_deref() {
            Some(c) => Some(c.parse().map_err(|e| {
                Error::InvalidParameter(format!("invalid --fixed-cidr-v6 {c}: {e}"))
            })?),
            None => None,
        }
        // Without --ipv6 the IPv6 subnet is not used, as in dockerd.
        .filter(|_| cfg.ipv6);
    let bip: Option<ipnetwork::Ipv4Network> = match cfg.bip.as_deref() {
        Some(b) => Some(
            b.parse()
                .map_err(|e| Error::InvalidParameter(format!("invalid --bip {b}: {e}")))?,
        ),
        None => None,
    };
    let existing = nets
        .values()
        .find(|n| n.record().name == DEFAULT_NETWORK)
        .map(|n| n.record().id.clone());
    if let Some(id) = existing {
        let rec = nets[&id].record();
        let same_bip =
            bip.is_none_or(|b| b.ip() == rec.gateway && b.prefix() == rec.subnet.prefix());
        let same_v6 = rec.subnet6.is_some() == cfg.ipv6
            && cidr6.is_none_or(|c| Some(c.network()) == rec.subnet6.map(|s| s.network()));
        if rec.bridge == bridge && same_bip && same_v6 {
            return Ok(id);
        }
        if !rec.endpoints.is_empty() {
            tracing::warn!(bridge = %rec.bridge, "the default network's bridge or address changed, but containers still use it: keeping it");
            return Ok(id);
        }
        if let Some(old) = nets.remove(&id) {
            old.remove().map_err(net_err)?;
        }
    }
    // As dockerd: a bridge that already has an address (left by an earlier daemon, or made by hand) keeps
    // it as the default network's subnet, rather than gaining one more pool at every new data root.
    let bip = bip.or_else(|| {
        let first = network::link::ipv4_addresses(None, bridge).ok()?.into_iter().next()?;
        tracing::info!(bridge, address = %first, "the default network takes the bridge's existing address");
        Some(first)
    });
    let others: Vec<_> = nets.values().map(|n| n.record().subnet).collect();
    let others6: Vec<_> = nets.values().filter_map(|n| n.record().subnet6).collect();
    let mut options = BTreeMap::new();
    for (k, v) in [
        ("com.docker.network.bridge.default_bridge", "true"),
        ("com.docker.network.bridge.enable_icc", "true"),
        ("com.docker.network.bridge.enable_ip_masquerade", "true"),
        ("com.docker.network.bridge.host_binding_ipv4", "0.0.0.0"),
        (network::network::OPT_BRIDGE_NAME, bridge),
    ] {
        options.insert(k.to_owned(), v.to_owned());
    }
    let opts = NetworkOptions {
        id: crate::containers::random_id()?,
        name: DEFAULT_NETWORK.into(),
        subnet: bip.map(|b| ipnetwork::Ipv4Network::new(b.network(), b.prefix()).unwrap_or(b)),
        gateway: bip.map(|b| b.ip()),
        ipv6: cfg.ipv6,
        subnet6: cidr6,
        ipv6_pool: ula,
        driver_options: options,
        created: now(),
        ..Default::default()
    };
    let net = Network::create_dual(dir, None, opts, &others, &others6).map_err(net_err)?;
    let id = net.record().id.clone();
    tracing::info!(bridge, subnet = %net.record().subnet, "default bridge network created");
    nets.insert(id.clone(), net);
    Ok(id)
}
