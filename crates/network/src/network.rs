//! A bridge network as the engine sees it: its record, its pool, its bridge and its endpoints.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnetwork::Ipv4Network;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::firewall::NetworkSpec;
use crate::ipam::{self, Pool, PoolStore};
use crate::link::{self, Mac};
use crate::netns::NetNs;
use crate::state;

/// Driver option naming the bridge (`-o com.docker.network.bridge.name=…`).
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// Driver option turning inter-container traffic off (`…enable_icc=false`).
pub const OPT_ENABLE_ICC: &str = "com.docker.network.bridge.enable_icc";
/// Driver option setting the MTU.
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";

/// What `docker network create` asks for.
#[derive(Debug, Clone, Default)]
pub struct NetworkOptions {
    /// The network's ID (64 hex digits, made by the engine).
    pub id: String,
    /// The network's name.
    pub name: String,
    /// `--subnet`; chosen from Docker's default pools when `None`.
    pub subnet: Option<Ipv4Network>,
    /// `--gateway`; the subnet's first host address when `None`.
    pub gateway: Option<Ipv4Addr>,
    /// `--ip-range`.
    pub ip_range: Option<Ipv4Network>,
    /// `--internal`: no default route, no NAT, no outbound forwarding.
    pub internal: bool,
    /// Driver options (`-o`), of which the `com.docker.network.bridge.*` and
    /// `com.docker.network.driver.mtu` ones are understood.
    pub driver_options: BTreeMap<String, String>,
    /// `--label`s, kept for `inspect` and filters.
    pub labels: BTreeMap<String, String>,
    /// `--attachable`, kept for `inspect`.
    pub attachable: bool,
    /// Creation time (RFC 3339 with nanoseconds), kept for `inspect`.
    pub created: String,
}

/// One container's attachment, as recorded and as reported to `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The container ID.
    pub container_id: String,
    /// The container's address.
    pub ip: Ipv4Addr,
    /// The subnet's prefix length (`IPPrefixLen`).
    pub prefix_len: u8,
    /// The gateway, `None` on internal networks.
    pub gateway: Option<Ipv4Addr>,
    /// The MAC, formatted as Docker prints it.
    pub mac: String,
    /// The host-side veth name.
    pub veth: String,
    /// The interface name inside the container.
    pub ifname: String,
    /// The endpoint's ID (64 hex digits), as `inspect` shows it.
    #[serde(default)]
    pub endpoint_id: String,
}

/// Per-attach choices (`--ip`, `--mac-address`, interface name).
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    /// A fixed address (`--ip`).
    pub ip: Option<Ipv4Addr>,
    /// A fixed MAC (`--mac-address`); random otherwise, as in Docker 28.
    pub mac: Option<Mac>,
    /// Interface name inside the container, `eth0` when `None`.
    pub ifname: Option<String>,
    /// Leave the container's default route alone: a second network joined by a container (only the
    /// first one, Docker's gateway endpoint, routes by default).
    pub no_default_route: bool,
}

/// The persistent description of a network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    /// The network's ID.
    pub id: String,
    /// The network's name.
    pub name: String,
    /// The bridge device.
    pub bridge: String,
    /// The subnet.
    pub subnet: Ipv4Network,
    /// The gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// Whether the network is `--internal`.
    pub internal: bool,
    /// Whether containers on the bridge may talk to each other.
    pub icc: bool,
    /// MTU of the bridge and veths.
    pub mtu: u32,
    /// Driver options as given.
    pub driver_options: BTreeMap<String, String>,
    /// `--ip-range`, if given.
    #[serde(default)]
    pub ip_range: Option<Ipv4Network>,
    /// Labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// `--attachable`.
    #[serde(default)]
    pub attachable: bool,
    /// Creation time (RFC 3339 with nanoseconds).
    #[serde(default)]
    pub created: String,
    /// Endpoints by container ID.
    pub endpoints: BTreeMap<String, Endpoint>,
}

/// A live bridge network.
#[derive(Debug)]
pub struct Network {
    state_dir: PathBuf,
    host: Option<Arc<NetNs>>,
    record: NetworkRecord,
    pool: PoolStore,
}

fn record_path(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("networks").join(format!("{id}.json"))
}

impl Network {
    /// Create a network: pick or check its subnet (never overlapping `others`, the subnets of
    /// the other Berth networks, nor a route of the host), make and bring up its bridge, and
    /// save its records under `state_dir`. `host` is the namespace the bridge lives in (the
    /// daemon's own when `None`; tests pass one they made).
    pub fn create(
        state_dir: &Path,
        host: Option<Arc<NetNs>>,
        opts: NetworkOptions,
        others: &[Ipv4Network],
    ) -> Result<Network> {
        let subnet = match opts.subnet {
            Some(s) => {
                if others.iter().any(|o| ipam::overlaps(*o, s)) {
                    return Err(Error::PoolOverlap);
                }
                s
            }
            None => ipam::select_subnet(&link::ipv4_routes(host.as_deref())?, others)?,
        };
        let pool = Pool::new(subnet, opts.gateway, opts.ip_range)?;
        let icc = match opts.driver_options.get(OPT_ENABLE_ICC).map(String::as_str) {
            None | Some("true") => true,
            Some("false") => false,
            Some(other) => {
                return Err(Error::InvalidConfig(format!(
                    "invalid value {other:?} for {OPT_ENABLE_ICC}: want true or false"
                )))
            }
        };
        let mtu = match opts.driver_options.get(OPT_MTU) {
            Some(v) => v
                .parse::<u32>()
                .map_err(|_| Error::InvalidConfig(format!("invalid value {v:?} for {OPT_MTU}")))?,
            None => link::default_route_mtu(host.as_deref())?,
        };
        let bridge = match opts.driver_options.get(OPT_BRIDGE_NAME) {
            Some(name) => name.clone(),
            None => format!("br-{}", opts.id.get(..12).unwrap_or(&opts.id)),
        };
        link::validate_ifname(&bridge)?;
        let record = NetworkRecord {
            id: opts.id.clone(),
            name: opts.name,
            bridge,
            subnet: pool.subnet,
            gateway: pool.gateway,
            internal: opts.internal,
            icc,
            mtu,
            driver_options: opts.driver_options,
            ip_range: pool.ip_range,
            labels: opts.labels,
            attachable: opts.attachable,
            created: opts.created,
            endpoints: BTreeMap::new(),
        };
        let gw_net = Ipv4Network::new(record.gateway, record.subnet.prefix())
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        link::ensure_bridge(host.as_deref(), &record.bridge, gw_net, mtu)?;
        let made = (|| {
            let pool = PoolStore::create(state_dir, &record.id, pool)?;
            state::write_json(&record_path(state_dir, &record.id), &record)?;
            Ok(pool)
        })();
        match made {
            Ok(pool) => Ok(Network {
                state_dir: state_dir.to_path_buf(),
                host,
                record,
                pool,
            }),
            Err(e) => {
                if let Err(err) = link::delete_link(host.as_deref(), &record.bridge) {
                    tracing::warn!(bridge = %record.bridge, error = %err, "deleting the bridge of a network that failed to be made");
                }
                Err(e)
            }
        }
    }

    /// Load every network recorded under `state_dir` and make sure its bridge exists and is up
    /// (after a reboot the kernel objects are gone but the records are not).
    pub fn load_all(state_dir: &Path, host: Option<Arc<NetNs>>) -> Result<Vec<Network>> {
        let dir = state_dir.join("networks");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::State { path: dir, source }),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| Error::State {
                path: dir.clone(),
                source,
            })?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let Some(record) = state::read_json::<NetworkRecord>(&path)? else {
                continue;
            };
            let pool = match PoolStore::load(state_dir, &record.id)? {
                Some(p) => p,
                None => {
                    // The pool record is rebuilt from the endpoints if it went missing.
                    let mut pool = Pool::new(record.subnet, Some(record.gateway), record.ip_range)?;
                    for ep in record.endpoints.values() {
                        pool.allocated.insert(ep.ip, ep.container_id.clone());
                    }
                    PoolStore::create(state_dir, &record.id, pool)?
                }
            };
            let gw_net = Ipv4Network::new(record.gateway, record.subnet.prefix())
                .map_err(|e| Error::InvalidConfig(e.to_string()))?;
            link::ensure_bridge(host.as_deref(), &record.bridge, gw_net, record.mtu)?;
            out.push(Network {
                state_dir: state_dir.to_path_buf(),
                host: host.clone(),
                record,
                pool,
            });
        }
        out.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        Ok(out)
    }

    /// The network's record (ID, name, bridge, subnet, endpoints…).
    pub fn record(&self) -> &NetworkRecord {
        &self.record
    }

    /// The address pool, with who holds which address.
    pub fn pool(&self) -> &Pool {
        &self.pool.pool
    }

    /// What the firewall needs to know about this network.
    pub fn spec(&self) -> NetworkSpec {
        NetworkSpec {
            bridge: self.record.bridge.clone(),
            subnet: self.record.subnet,
            internal: self.record.internal,
            icc: self.record.icc,
        }
    }

    /// Saves the record after an endpoint change (no fsync: endpoints die with the kernel).
    /// Gives an address back to the pool after a failed attach; a failure to record that is logged (the
    /// address stays taken until the pool is next rewritten).
    fn release_address(&mut self, ip: Ipv4Addr) {
        if let Err(e) = self.pool.update(|p| {
            p.release(ip);
            Ok(())
        }) {
            tracing::warn!(network = %self.record.name, %ip, error = %e, "releasing an address");
        }
    }

    fn save(&self) -> Result<()> {
        state::write_json_volatile(&record_path(&self.state_dir, &self.record.id), &self.record)
    }

    /// Attach a container whose network namespace is `netns`: allocate its address, build the
    /// veth pair, configure `eth0` inside, and record the endpoint.
    pub fn attach(
        &mut self,
        container_id: &str,
        netns: &NetNs,
        req: AttachRequest,
    ) -> Result<Endpoint> {
        if self.record.endpoints.contains_key(container_id) {
            return Err(Error::EndpointExists {
                container: container_id.to_string(),
                network: self.record.name.clone(),
            });
        }
        let name = self.record.name.clone();
        let ip = self.pool.update(|p| match req.ip {
            Some(ip) => p.allocate_specific(ip, container_id),
            None => p.allocate_next(container_id, &name),
        })?;
        let address = Ipv4Network::new(ip, self.record.subnet.prefix())
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let mac = req.mac.unwrap_or_else(link::random_mac);
        let spec = link::VethSpec {
            host_name: link::random_veth_name(),
            bridge: self.record.bridge.clone(),
            container_ifname: req.ifname.unwrap_or_else(|| "eth0".to_string()),
            address,
            mac,
            gateway: (!self.record.internal && !req.no_default_route)
                .then_some(self.record.gateway),
            mtu: self.record.mtu,
        };
        if let Err(e) = link::create_endpoint(self.host.as_deref(), netns, &spec) {
            self.release_address(ip);
            return Err(e);
        }
        let ep = Endpoint {
            container_id: container_id.to_string(),
            ip,
            prefix_len: self.record.subnet.prefix(),
            gateway: (!self.record.internal).then_some(self.record.gateway),
            mac: link::format_mac(&mac),
            veth: spec.host_name,
            ifname: spec.container_ifname,
            endpoint_id: link::random_hex(32),
        };
        self.record
            .endpoints
            .insert(container_id.to_string(), ep.clone());
        if let Err(e) = self.save() {
            if let Err(err) = link::delete_link(self.host.as_deref(), &ep.veth) {
                tracing::warn!(link = %ep.veth, error = %err, "deleting the veth of an endpoint that could not be saved");
            }
            self.record.endpoints.remove(container_id);
            self.release_address(ip);
            return Err(e);
        }
        Ok(ep)
    }

    /// Detach a container: delete its veth pair (removing the host end removes both) and give
    /// its address back.
    pub fn detach(&mut self, container_id: &str) -> Result<()> {
        let Some(ep) = self.record.endpoints.get(container_id).cloned() else {
            return Err(Error::NoSuchEndpoint {
                container: container_id.to_string(),
                network: self.record.name.clone(),
            });
        };
        link::delete_link(self.host.as_deref(), &ep.veth)?;
        self.pool.update(|p| {
            p.release(ep.ip);
            Ok(())
        })?;
        self.record.endpoints.remove(container_id);
        self.save()
    }

    /// Remove the network: refuse while endpoints remain (as Docker does), else delete the
    /// bridge and the records.
    pub fn remove(self) -> Result<()> {
        if !self.record.endpoints.is_empty() {
            return Err(Error::ActiveEndpoints {
                name: self.record.name.clone(),
                id: self.record.id.clone(),
            });
        }
        link::delete_link(self.host.as_deref(), &self.record.bridge)?;
        let path = record_path(&self.state_dir, &self.record.id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::State { path, source }),
        }
        self.pool.remove()
    }
}
