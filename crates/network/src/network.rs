//! A bridge network as the engine sees it: its record, its pool, its bridge and its endpoints.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnetwork::{Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::firewall::NetworkSpec;
use crate::ipam::{self, Pool, Pool6, PoolStore};
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
    /// `--ipv6`: a dual-stack network.
    pub ipv6: bool,
    /// The IPv6 `--subnet`; a `/64` of `ipv6_pool` when `None`.
    pub subnet6: Option<Ipv6Network>,
    /// The IPv6 `--gateway`; the subnet's first address when `None`.
    pub gateway6: Option<Ipv6Addr>,
    /// The IPv6 `--ip-range`.
    pub ip_range6: Option<Ipv6Network>,
    /// Where automatic IPv6 subnets come from (the daemon's ULA `/48`, see [`ipam::ula_base`]).
    pub ipv6_pool: Option<Ipv6Network>,
    /// IPAM `AuxiliaryAddresses` (`--aux-address name=ip`): reserved, never given to a container.
    pub aux_addresses: BTreeMap<String, std::net::IpAddr>,
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
    /// The container's IPv6 address on a dual-stack network.
    #[serde(default)]
    pub ip6: Option<Ipv6Addr>,
    /// The IPv6 subnet's prefix length (`GlobalIPv6PrefixLen`).
    #[serde(default)]
    pub prefix_len6: u8,
    /// The IPv6 gateway, `None` on internal or IPv4-only networks.
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
}

/// Per-attach choices (`--ip`, `--mac-address`, interface name).
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    /// A fixed address (`--ip`).
    pub ip: Option<Ipv4Addr>,
    /// A fixed IPv6 address (`--ip6`), on a dual-stack network.
    pub ip6: Option<Ipv6Addr>,
    /// Extra link-local addresses for the interface (`--link-local-ip`).
    pub link_local: Vec<std::net::IpAddr>,
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
    /// The IPv6 subnet of a dual-stack network (`--ipv6`).
    #[serde(default)]
    pub subnet6: Option<Ipv6Network>,
    /// The IPv6 gateway (the bridge's IPv6 address).
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
    /// The IPv6 `--ip-range`.
    #[serde(default)]
    pub ip_range6: Option<Ipv6Network>,
    /// IPAM `AuxiliaryAddresses` as given, for `inspect`.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, std::net::IpAddr>,
    /// Endpoints by container ID.
    pub endpoints: BTreeMap<String, Endpoint>,
}

impl NetworkRecord {
    /// The bridge's addresses: the gateways with their subnets' prefixes.
    fn bridge_addresses(&self) -> Result<(Ipv4Network, Option<Ipv6Network>)> {
        let v4 = Ipv4Network::new(self.gateway, self.subnet.prefix())
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let v6 = match (self.gateway6, self.subnet6) {
            (Some(g), Some(s)) => Some(
                Ipv6Network::new(g, s.prefix()).map_err(|e| Error::InvalidConfig(e.to_string()))?,
            ),
            _ => None,
        };
        Ok((v4, v6))
    }
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
        Self::create_dual(state_dir, host, opts, others, &[])
    }

    /// [`Network::create`] for a network that may be dual-stack (`opts.ipv6`): its IPv6 subnet
    /// must not overlap `others6`, the IPv6 subnets of the other networks.
    pub fn create_dual(
        state_dir: &Path,
        host: Option<Arc<NetNs>>,
        opts: NetworkOptions,
        others: &[Ipv4Network],
        others6: &[Ipv6Network],
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
        let mut pool = Pool::new(subnet, opts.gateway, opts.ip_range)?;
        if opts.ipv6 {
            let subnet6 = match opts.subnet6 {
                Some(s) => {
                    if others6.iter().any(|o| ipam::overlaps6(*o, s)) {
                        return Err(Error::PoolOverlap);
                    }
                    s
                }
                None => {
                    let base = opts.ipv6_pool.ok_or(Error::NoPoolAvailable6)?;
                    ipam::select_subnet6(base, &link::ipv6_routes(host.as_deref())?, others6)?
                }
            };
            pool.v6 = Some(Pool6::new(subnet6, opts.gateway6, opts.ip_range6)?);
        }
        for (name, ip) in &opts.aux_addresses {
            // dockerd's validateIpamConfig wording.
            let outside = |subnet: String| {
                Error::InvalidConfig(format!(
                    "invalid network config:\ninvalid auxiliary address {name}: parent subnet {subnet} doesn't contain this address"
                ))
            };
            match (ip, pool.v6.as_mut()) {
                (std::net::IpAddr::V4(v4), _) => {
                    if !pool.subnet.contains(*v4) {
                        return Err(outside(pool.subnet.to_string()));
                    }
                    pool.reserved.push(*v4)
                }
                (std::net::IpAddr::V6(v6), Some(p6)) => {
                    if !p6.subnet.contains(*v6) {
                        return Err(outside(p6.subnet.to_string()));
                    }
                    p6.reserved.push(*v6)
                }
                (std::net::IpAddr::V6(_), None) => {
                    return Err(Error::InvalidConfig(format!(
                        "invalid network config:\ninvalid auxiliary address {name}: parent subnet is an IPv4 block"
                    )))
                }
            }
        }
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
            subnet6: pool.v6.as_ref().map(|p| p.subnet),
            gateway6: pool.v6.as_ref().map(|p| p.gateway),
            ip_range6: pool.v6.as_ref().and_then(|p| p.ip_range),
            aux_addresses: opts.aux_addresses,
            endpoints: BTreeMap::new(),
        };
        let (gw_net, gw6_net) = record.bridge_addresses()?;
        link::ensure_bridge(host.as_deref(), &record.bridge, gw_net, gw6_net, mtu)?;
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
                    if let Some(s6) = record.subnet6 {
                        pool.v6 = Some(Pool6::new(s6, record.gateway6, record.ip_range6)?);
                    }
                    for ip in record.aux_addresses.values() {
                        match (ip, pool.v6.as_mut()) {
                            (std::net::IpAddr::V4(v4), _) => pool.reserved.push(*v4),
                            (std::net::IpAddr::V6(v6), Some(p6)) => p6.reserved.push(*v6),
                            _ => {}
                        }
                    }
                    for ep in record.endpoints.values() {
                        pool.allocated.insert(ep.ip, ep.container_id.clone());
                        if let (Some(ip6), Some(p6)) = (ep.ip6, pool.v6.as_mut()) {
                            p6.allocated.insert(ip6, ep.container_id.clone());
                        }
                    }
                    PoolStore::create(state_dir, &record.id, pool)?
                }
            };
            let (gw_net, gw6_net) = record.bridge_addresses()?;
            link::ensure_bridge(host.as_deref(), &record.bridge, gw_net, gw6_net, record.mtu)?;
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
            subnet6: self.record.subnet6,
            internal: self.record.internal,
            icc: self.record.icc,
        }
    }

    /// Saves the record after an endpoint change (no fsync: endpoints die with the kernel).
    /// Gives an address back to the pool after a failed attach; a failure to record that is logged (the
    /// address stays taken until the pool is next rewritten).
    fn release_address(&mut self, ip: Ipv4Addr, ip6: Option<Ipv6Addr>) {
        if let Err(e) = self.pool.update(|p| {
            p.release(ip);
            if let (Some(ip6), Some(p6)) = (ip6, p.v6.as_mut()) {
                p6.release(ip6);
            }
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
        if let Some(ip6) = req.ip6.filter(|_| self.record.subnet6.is_none()) {
            return Err(Error::InvalidConfig(format!(
                "invalid endpoint settings:\nno configured subnet contains IP address {ip6}"
            )));
        }
        let (ip, ip6) = self.pool.update(|p| {
            let ip = match req.ip {
                Some(ip) => p.allocate_specific(ip, container_id)?,
                None => p.allocate_next(container_id, &name)?,
            };
            let ip6 = match p.v6.as_mut() {
                None => None,
                Some(p6) => Some(match req.ip6 {
                    Some(ip6) => p6.allocate_specific(ip6, container_id)?,
                    None => p6.allocate_next(container_id, &name)?,
                }),
            };
            Ok((ip, ip6))
        })?;
        let address = Ipv4Network::new(ip, self.record.subnet.prefix())
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let prefix6 = self.record.subnet6.map(|s| s.prefix()).unwrap_or(0);
        let address6 = ip6
            .map(|ip6| Ipv6Network::new(ip6, prefix6))
            .transpose()
            .map_err(|e| Error::InvalidConfig(e.to_string()))?;
        let routes = !self.record.internal && !req.no_default_route;
        let mac = req.mac.unwrap_or_else(link::random_mac);
        let spec = link::VethSpec {
            host_name: link::random_veth_name(),
            bridge: self.record.bridge.clone(),
            container_ifname: req.ifname.unwrap_or_else(|| "eth0".to_string()),
            address,
            mac,
            gateway: routes.then_some(self.record.gateway),
            address6,
            gateway6: self.record.gateway6.filter(|_| routes),
            link_local: req.link_local,
            mtu: self.record.mtu,
        };
        if let Err(e) = link::create_endpoint(self.host.as_deref(), netns, &spec) {
            self.release_address(ip, ip6);
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
            ip6,
            prefix_len6: if ip6.is_some() { prefix6 } else { 0 },
            gateway6: self.record.gateway6.filter(|_| !self.record.internal),
        };
        self.record
            .endpoints
            .insert(container_id.to_string(), ep.clone());
        if let Err(e) = self.save() {
            if let Err(err) = link::delete_link(self.host.as_deref(), &ep.veth) {
                tracing::warn!(link = %ep.veth, error = %err, "deleting the veth of an endpoint that could not be saved");
            }
            self.record.endpoints.remove(container_id);
            self.release_address(ip, ip6);
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
            if let (Some(ip6), Some(p6)) = (ep.ip6, p.v6.as_mut()) {
                p6.release(ip6);
            }
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
