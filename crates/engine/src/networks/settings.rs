//! The network parts of containers: what create records (which networks, aliases, `--ip`), and what inspect
//! and `ps` show (`NetworkSettings` with `Ports` and `Networks`, in Docker's shapes).

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

use bollard_stubs::models::{
    ContainerCreateBody, EndpointIpamConfig, EndpointSettings, HostConfig, NetworkSettings, Port,
};

use super::ports::{self, Saved};
use super::{Attachment, NetRef, DEFAULT_NETWORK};
use crate::containers::record::{Container, Status};
use crate::error::{Error, Result};
use crate::Engine;

impl Engine {
    /// The networks a new container joins, from `NetworkMode` and `NetworkingConfig`, checked as dockerd
    /// checks them at create (unknown network: 404; aliases or `--ip` on the default bridge: 400).
    pub(crate) fn net_plan(
        &self,
        body: &ContainerCreateBody,
        host: &HostConfig,
    ) -> Result<BTreeMap<String, Attachment>> {
        let mode = host.network_mode.as_deref().unwrap_or("default");
        let mut out = BTreeMap::new();
        if let Some(other) = mode.strip_prefix("container:") {
            self.containers.resolve(other)?;
            return Ok(out);
        }
        // The docker CLI names the default network `default` in EndpointsConfig, as in NetworkMode.
        let endpoints: HashMap<String, EndpointSettings> = body
            .networking_config
            .as_ref()
            .and_then(|n| n.endpoints_config.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                if k == "default" {
                    (DEFAULT_NETWORK.to_owned(), v)
                } else {
                    (k, v)
                }
            })
            .collect();
        // Port syntax errors fail the create, as in dockerd (the ports are bound at start).
        ports::specs(host, &[])?;
        let st = self.net.lock();
        let mut wanted: Vec<String> = vec![match mode {
            "default" => DEFAULT_NETWORK.to_owned(),
            m => m.to_owned(),
        }];
        for k in endpoints.keys() {
            if !wanted.contains(k) {
                wanted.push(k.clone());
            }
        }
        for want in wanted {
            let r = match st.resolve(&want) {
                Ok(r) => r,
                Err(_) if want == DEFAULT_NETWORK && st.default_id.is_none() => continue,
                Err(e) => return Err(e),
            };
            let NetRef::Bridge(id) = r else {
                if mode != "host" && mode != "none" && want == mode {
                    continue;
                }
                if want != mode {
                    return Err(Error::InvalidParameter(format!(
                        "container cannot be connected to network {want} in network mode {mode}"
                    )));
                }
                continue;
            };
            let name = st.nets[&id].record().name.clone();
            let ep = endpoints
                .get(&want)
                .or_else(|| endpoints.get(&name))
                .or_else(|| endpoints.get(&id))
                .cloned()
                .unwrap_or_default();
            let mut a = attachment_from(&id, &ep)?;
            if a.mac.is_none() && want == mode {
                #[allow(deprecated)]
                let legacy = body.mac_address.clone().filter(|m| !m.is_empty());
                a.mac = legacy;
            }
            if st.is_default(&id) {
                if !a.aliases.is_empty() {
                    return Err(Error::InvalidParameter(
                        "network-scoped alias is supported only for containers in user defined networks".into(),
                    ));
                }
                if a.ipv4.is_some() || a.ipv6.is_some() {
                    return Err(Error::InvalidParameter(
                        "user specified IP address is supported on user defined networks only"
                            .into(),
                    ));
                }
            }
            check_static_addresses(st.nets[&id].record(), &a)?;
            out.insert(name, a);
        }
        Ok(out)
    }

    /// `NetworkSettings` of inspect: the published ports and one entry per network, with the endpoint's
    /// address while the container runs.
    pub(crate) fn network_settings(&self, c: &Container) -> NetworkSettings {
        let running = matches!(c.state.status, Status::Running | Status::Paused);
        let st = self.net.lock();
        let live = st.live.get(&c.id);
        let saved: Vec<Saved> = live
            .map(|l| l.ports.iter().map(Saved::of).collect())
            .unwrap_or_default();
        let exposed = c.config.exposed_ports.clone().unwrap_or_default();
        let mut networks = HashMap::new();
        let mut top = EndpointSettings::default();
        for (name, a) in &c.networks {
            let ep = st
                .nets
                .get(&a.network_id)
                .and_then(|n| n.record().endpoints.get(&c.id))
                .filter(|_| running);
            let settings = endpoint_settings(c, a, ep, !st.is_default(&a.network_id));
            if st.is_default(&a.network_id) {
                top = settings.clone();
            }
            networks.insert(name.clone(), settings);
        }
        let mode = c.host_config.network_mode.as_deref().unwrap_or("default");
        for special in ["host", "none"] {
            if mode == special {
                let id = if special == "host" {
                    st.predefined.host_id.clone()
                } else {
                    st.predefined.none_id.clone()
                };
                networks.insert(
                    special.to_owned(),
                    EndpointSettings {
                        network_id: Some(id),
                        endpoint_id: Some(String::new()),
                        gateway: Some(String::new()),
                        ip_address: Some(String::new()),
                        ip_prefix_len: Some(0),
                        ipv6_gateway: Some(String::new()),
                        global_ipv6_address: Some(String::new()),
                        global_ipv6_prefix_len: Some(0),
                        mac_address: Some(String::new()),
                        gw_priority: Some(0),
                        ..Default::default()
                    },
                );
            }
        }
        let sandbox = if running && live.is_some() {
            format!("/proc/{}/ns/net", c.state.pid)
        } else {
            String::new()
        };
        NetworkSettings {
            bridge: Some(String::new()),
            sandbox_id: Some(if sandbox.is_empty() {
                String::new()
            } else {
                c.id.clone()
            }),
            hairpin_mode: Some(false),
            link_local_ipv6_address: Some(String::new()),
            link_local_ipv6_prefix_len: Some(0),
            ports: Some(if running {
                ports::port_map(&exposed, &saved)
            } else {
                HashMap::new()
            }),
            sandbox_key: Some(sandbox),
            secondary_ip_addresses: None,
            secondary_ipv6_addresses: None,
            endpoint_id: Some(top.endpoint_id.unwrap_or_default()),
            gateway: Some(top.gateway.unwrap_or_default()),
            global_ipv6_address: Some(top.global_ipv6_address.unwrap_or_default()),
            global_ipv6_prefix_len: Some(top.global_ipv6_prefix_len.unwrap_or(0)),
            ip_address: Some(top.ip_address.unwrap_or_default()),
            ip_prefix_len: Some(top.ip_prefix_len.unwrap_or(0)),
            ipv6_gateway: Some(top.ipv6_gateway.unwrap_or_default()),
            mac_address: Some(top.mac_address.unwrap_or_default()),
            networks: Some(networks),
        }
    }

    /// `Ports` and `NetworkSettings.Networks` of `GET /containers/json`.
    pub(crate) fn summary_network(
        &self,
        c: &Container,
    ) -> (Vec<Port>, HashMap<String, EndpointSettings>) {
        let s = self.network_settings(c);
        let saved: Vec<Saved> = self
            .net
            .lock()
            .live
            .get(&c.id)
            .map(|l| l.ports.iter().map(Saved::of).collect())
            .unwrap_or_default();
        // As dockerd: ports are released with the network when the container stops, so only a running
        // container lists them (exposed ones included).
        let running = matches!(c.state.status, Status::Running | Status::Paused);
        let exposed = c.config.exposed_ports.clone().unwrap_or_default();
        (
            if running {
                ports::summary(&exposed, &saved)
            } else {
                Vec::new()
            },
            s.networks.unwrap_or_default(),
        )
    }
}

/// Refuses a `--ip`/`--ip6` outside the network's subnets at create and connect, as dockerd 28 does.
pub(crate) fn check_static_addresses(rec: &network::NetworkRecord, a: &Attachment) -> Result<()> {
    let mut bad = Vec::new();
    if let Some(ip) = a.ipv4.filter(|ip| !rec.subnet.contains(*ip)) {
        bad.push(ip.to_string());
    }
    if let Some(ip) = a
        .ipv6
        .filter(|ip| !rec.subnet6.is_some_and(|s| s.contains(*ip)))
    {
        bad.push(ip.to_string());
    }
    if bad.is_empty() {
        return Ok(());
    }
    let lines: Vec<String> = bad
        .iter()
        .map(|ip| format!("no configured subnet contains IP address {ip}"))
        .collect();
    Err(Error::InvalidParameter(format!(
        "invalid endpoint settings:\n{}",
        super::ipam_request::join_errors(&lines)
    )))
}

/// An attachment from the client's `EndpointSettings` (`IPAMConfig.IPv4Address`, `Aliases`, `MacAddress`).
pub(crate) fn attachment_from(network_id: &str, ep: &EndpointSettings) -> Result<Attachment> {
    let ipv4 = match ep
        .ipam_config
        .as_ref()
        .and_then(|i| i.ipv4_address.clone())
        .filter(|s| !s.is_empty())
    {
        Some(s) => Some(
            s.parse::<Ipv4Addr>()
                .map_err(|_| Error::InvalidParameter(format!("invalid IPv4 address: {s}")))?,
        ),
        None => None,
    };
    let ipv6 = match ep
        .ipam_config
        .as_ref()
        .and_then(|i| i.ipv6_address.clone())
        .filter(|s| !s.is_empty())
    {
        Some(s) => Some(
            s.parse::<Ipv6Addr>()
                .map_err(|_| Error::InvalidParameter(format!("invalid IPv6 address: {s}")))?,
        ),
        None => None,
    };
    let mut link_local = Vec::new();
    for s in ep
        .ipam_config
        .as_ref()
        .and_then(|i| i.link_local_ips.clone())
        .unwrap_or_default()
    {
        match s.parse::<std::net::IpAddr>() {
            Ok(ip) if !ip.is_unspecified() => link_local.push(ip),
            _ => {
                return Err(Error::InvalidParameter(format!(
                    "invalid endpoint settings:\ninvalid link-local IP address: {s}"
                )))
            }
        }
    }
    if let Some(m) = ep.mac_address.as_deref().filter(|m| !m.is_empty()) {
        super::endpoints::check_mac(m)?;
    }
    let links = ep.links.clone().unwrap_or_default();
    for l in &links {
        crate::containers::parse_link(l)?;
    }
    Ok(Attachment {
        network_id: network_id.to_owned(),
        aliases: ep.aliases.clone().unwrap_or_default(),
        ipv4,
        ipv6,
        link_local,
        mac: ep.mac_address.clone().filter(|m| !m.is_empty()),
        links,
    })
}

/// One entry of `NetworkSettings.Networks`.
fn endpoint_settings(
    c: &Container,
    a: &Attachment,
    ep: Option<&network::Endpoint>,
    user_defined: bool,
) -> EndpointSettings {
    // dockerd's buildEndpointDNSNames: name, aliases, short ID, hostname, without repeats.
    let dns_names = user_defined.then(|| {
        let mut n: Vec<String> = Vec::new();
        let hostname = c.config.hostname.clone().unwrap_or_default();
        let all = std::iter::once(c.name.clone())
            .chain(a.aliases.iter().cloned())
            .chain(std::iter::once(c.id[..12].to_owned()))
            .chain(std::iter::once(hostname));
        for name in all {
            if !name.is_empty() && !n.contains(&name) {
                n.push(name);
            }
        }
        n
    });
    EndpointSettings {
        ipam_config: (a.ipv4.is_some() || a.ipv6.is_some() || !a.link_local.is_empty()).then(
            || EndpointIpamConfig {
                ipv4_address: a.ipv4.map(|ip| ip.to_string()),
                ipv6_address: a.ipv6.map(|ip| ip.to_string()),
                link_local_ips: (!a.link_local.is_empty())
                    .then(|| a.link_local.iter().map(|ip| ip.to_string()).collect()),
            },
        ),
        links: (!a.links.is_empty()).then(|| a.links.clone()),
        mac_address: Some(
            ep.map(|e| e.mac.clone())
                .or_else(|| a.mac.clone())
                .unwrap_or_default(),
        ),
        aliases: (!a.aliases.is_empty()).then(|| a.aliases.clone()),
        driver_opts: None,
        gw_priority: Some(0),
        network_id: Some(a.network_id.clone()),
        endpoint_id: Some(ep.map(|e| e.endpoint_id.clone()).unwrap_or_default()),
        gateway: Some(
            ep.and_then(|e| e.gateway)
                .map(|g| g.to_string())
                .unwrap_or_default(),
        ),
        ip_address: Some(ep.map(|e| e.ip.to_string()).unwrap_or_default()),
        ip_prefix_len: Some(ep.map(|e| i64::from(e.prefix_len)).unwrap_or(0)),
        ipv6_gateway: Some(
            ep.filter(|e| e.ip6.is_some())
                .and_then(|e| e.gateway6)
                .map(|g| g.to_string())
                .unwrap_or_default(),
        ),
        global_ipv6_address: Some(
            ep.and_then(|e| e.ip6)
                .map(|ip| ip.to_string())
                .unwrap_or_default(),
        ),
        global_ipv6_prefix_len: Some(
            ep.filter(|e| e.ip6.is_some())
                .map(|e| i64::from(e.prefix_len6))
                .unwrap_or(0),
        ),
        dns_names,
    }
}
