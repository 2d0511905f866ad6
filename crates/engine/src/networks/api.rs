//! `/networks`: list, inspect, create, remove, prune, connect and disconnect, in Docker's shapes and words.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bollard_stubs::models::{EndpointSettings, NetworkCreateRequest};
use network::{AttachRequest, Network, NetworkOptions};
use serde::Serialize;

use super::endpoints::DNS_ADDR;
use super::{net_err, now, Attachment, Manager, NetRef, State, DEFAULT_NETWORK};
use crate::containers::record::Status;
use crate::error::{Error, Result};
use crate::filters::Filters;
use crate::Engine;

/// `POST /networks/create`'s body.
pub type NetworkCreate = NetworkCreateRequest;

/// `POST /networks/{id}/connect`'s body.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, Serialize)]
pub struct ConnectRequest {
    /// The container (name or ID).
    #[serde(rename = "Container", default)]
    pub container: String,
    /// `--ip`, `--alias`, `--mac-address`.
    #[serde(rename = "EndpointConfig", default)]
    pub endpoint_config: Option<EndpointSettings>,
}

/// A network as `GET /networks/{id}` shows it (dockerd's field order; `IPAM.Options` is `null`).
#[derive(Debug, Clone, Serialize)]
pub struct NetworkView {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Created")]
    created: String,
    #[serde(rename = "Scope")]
    scope: &'static str,
    #[serde(rename = "Driver")]
    driver: &'static str,
    #[serde(rename = "EnableIPv4")]
    enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    ipam: IpamView,
    #[serde(rename = "Internal")]
    internal: bool,
    #[serde(rename = "Attachable")]
    attachable: bool,
    #[serde(rename = "Ingress")]
    ingress: bool,
    #[serde(rename = "ConfigFrom")]
    config_from: ConfigFrom,
    #[serde(rename = "ConfigOnly")]
    config_only: bool,
    #[serde(rename = "Containers")]
    containers: BTreeMap<String, ContainerView>,
    #[serde(rename = "Options")]
    options: BTreeMap<String, String>,
    #[serde(rename = "Labels")]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
struct IpamView {
    #[serde(rename = "Driver")]
    driver: &'static str,
    #[serde(rename = "Options")]
    options: Option<BTreeMap<String, String>>,
    #[serde(rename = "Config")]
    config: Vec<IpamConfigView>,
}

#[derive(Debug, Clone, Serialize)]
struct IpamConfigView {
    #[serde(rename = "Subnet")]
    subnet: String,
    #[serde(rename = "IPRange", skip_serializing_if = "Option::is_none")]
    ip_range: Option<String>,
    #[serde(rename = "Gateway")]
    gateway: String,
    #[serde(
        rename = "AuxiliaryAddresses",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    aux: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
struct ConfigFrom {
    #[serde(rename = "Network")]
    network: String,
}

#[derive(Debug, Clone, Serialize)]
struct ContainerView {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "EndpointID")]
    endpoint_id: String,
    #[serde(rename = "MacAddress")]
    mac_address: String,
    #[serde(rename = "IPv4Address")]
    ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    ipv6_address: String,
}

/// `POST /networks/create`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedNetwork {
    /// The new network's ID.
    #[serde(rename = "Id")]
    pub id: String,
    /// Always empty.
    #[serde(rename = "Warning")]
    pub warning: String,
}

/// `POST /networks/prune`'s answer.
#[derive(Debug, Clone, Serialize)]
pub struct PrunedNetworks {
    /// Names of the removed networks.
    #[serde(rename = "NetworksDeleted")]
    pub networks_deleted: Vec<String>,
}

impl State {
    fn view(
        &self,
        r: &NetRef,
        names: &HashMap<String, String>,
        with_containers: bool,
    ) -> NetworkView {
        let p = &self.predefined;
        let base = |name: &str, id: &str, created: &str, driver: &'static str| NetworkView {
            name: name.to_owned(),
            id: id.to_owned(),
            created: created.to_owned(),
            scope: "local",
            driver,
            enable_ipv4: true,
            enable_ipv6: false,
            ipam: IpamView {
                driver: "default",
                options: None,
                config: Vec::new(),
            },
            internal: false,
            attachable: false,
            ingress: false,
            config_from: ConfigFrom {
                network: String::new(),
            },
            config_only: false,
            containers: BTreeMap::new(),
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
        };
        match r {
            NetRef::Special("host") => base("host", &p.host_id, &p.host_created, "host"),
            NetRef::Special(_) => base("none", &p.none_id, &p.none_created, "null"),
            NetRef::Bridge(id) => {
                let Some(net) = self.nets.get(id) else {
                    return base("", id, "", "bridge");
                };
                let rec = net.record();
                let mut v = base(&rec.name, &rec.id, &rec.created, "bridge");
                let aux = |v6: bool| -> BTreeMap<String, String> {
                    rec.aux_addresses
                        .iter()
                        .filter(|(_, ip)| ip.is_ipv6() == v6)
                        .map(|(k, ip)| (k.clone(), ip.to_string()))
                        .collect()
                };
                v.ipam.config.push(IpamConfigView {
                    subnet: rec.subnet.to_string(),
                    ip_range: rec.ip_range.map(|r| r.to_string()),
                    gateway: rec.gateway.to_string(),
                    aux: aux(false),
                });
                if let (Some(s6), Some(g6)) = (rec.subnet6, rec.gateway6) {
                    v.enable_ipv6 = true;
                    v.ipam.config.push(IpamConfigView {
                        subnet: s6.to_string(),
                        ip_range: rec.ip_range6.map(|r| r.to_string()),
                        gateway: g6.to_string(),
                        aux: aux(true),
                    });
                }
                v.internal = rec.internal;
                v.attachable = rec.attachable;
                v.labels = rec.labels.clone();
                v.options = rec.driver_options.clone();
                if self.is_default(id) {
                    v.options
                        .insert("com.docker.network.driver.mtu".into(), rec.mtu.to_string());
                }
                if with_containers {
                    for (cid, ep) in &rec.endpoints {
                        v.containers.insert(
                            cid.clone(),
                            ContainerView {
                                name: names.get(cid).cloned().unwrap_or_default(),
                                endpoint_id: ep.endpoint_id.clone(),
                                mac_address: ep.mac.clone(),
                                ipv4_address: format!("{}/{}", ep.ip, ep.prefix_len),
                                ipv6_address: ep
                                    .ip6
                                    .map(|ip| format!("{ip}/{}", ep.prefix_len6))
                                    .unwrap_or_default(),
                            },
                        );
                    }
                }
                v
            }
        }
    }

    fn all_refs(&self) -> Vec<NetRef> {
        let mut v: Vec<NetRef> = self.nets.keys().cloned().map(NetRef::Bridge).collect();
        v.push(NetRef::Special("host"));
        v.push(NetRef::Special("none"));
        v
    }
}

/// Checks a `POST /networks/create` body on its own (name, driver, IPv6, IPAM config), before it meets
/// the other networks: what `create_network` refuses without looking at any state.
pub fn check_network_create(req: &NetworkCreate) -> Result<()> {
    network_plan(req).map(drop)
}

/// Whether a new network has IPv6, and its checked IPAM request (IPv6 entries dropped without IPv6).
fn network_plan(req: &NetworkCreate) -> Result<(bool, super::ipam_request::IpamPlan)> {
    check_name(&req.name)?;
    match req.driver.as_deref().unwrap_or("") {
        "" | "bridge" => {}
        d @ ("host" | "null") => {
            return Err(Error::Forbidden(format!(
                "only one instance of \"{d}\" network is allowed"
            )))
        }
        d => return Err(Error::NotFound(format!("plugin \"{d}\" not found"))),
    }
    if req.config_only == Some(true) || req.config_from.is_some() || req.ingress == Some(true) {
        return Err(Error::NotImplemented(
            "config-only, config-from and ingress networks are not supported by Berth".into(),
        ));
    }
    if req.enable_ipv4 == Some(false) {
        return Err(Error::NotImplemented(
            "IPv6-only networks (--ipv4=false) are not supported by Berth yet".into(),
        ));
    }
    // As dockerd: EnableIPv6, else the driver option com.docker.network.enable_ipv6.
    let ipv6 = match req.enable_ipv6 {
        Some(v) => v,
        None => match req
            .options
            .as_ref()
            .and_then(|o| o.get("com.docker.network.enable_ipv6"))
        {
            None => false,
            Some(v) => parse_go_bool(v).ok_or_else(|| {
                Error::InvalidParameter(
                    "driver-opt \"com.docker.network.enable_ipv6\" is not a valid bool".into(),
                )
            })?,
        },
    };
    if let Some(d) = req.ipam.as_ref().and_then(|i| i.driver.clone()) {
        if !d.is_empty() && d != "default" {
            return Err(Error::NotFound(format!("plugin \"{d}\" not found")));
        }
    }
    let mut plan = super::ipam_request::IpamPlan::parse(
        &req.ipam
            .as_ref()
            .and_then(|i| i.config.clone())
            .unwrap_or_default(),
        ipv6,
    )?;
    if !ipv6 {
        // dockerd discards an IPv6 IPAM config (and its auxiliary addresses) without an error when the
        // network does not enable IPv6.
        plan.v6 = None;
        plan.aux.retain(|_, ip| ip.is_ipv4());
    }
    Ok((ipv6, plan))
}

/// Checks a `POST /networks/{id}/connect` body's endpoint config on its own (addresses, MAC, links),
/// before it meets the network.
pub fn check_endpoint_config(ep: &EndpointSettings) -> Result<()> {
    super::settings::attachment_from("", ep).map(drop)
}

/// Go's `strconv.ParseBool`, which dockerd uses for boolean driver options.
fn parse_go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Checks a new network's name as dockerd does: any name that is not blank and not one of the predefined
/// networks' (spaces and other characters included; the name is never used as a path or device name).
fn check_name(name: &str) -> Result<()> {
    if matches!(name, "bridge" | "host" | "none" | "default") {
        // dockerd's PredefinedNetworkError, trailing space included.
        return Err(Error::Forbidden(format!(
            "operation is not permitted on predefined {name} network "
        )));
    }
    if name.trim().is_empty() {
        return Err(Error::InvalidParameter(
            "invalid name: name is empty".into(),
        ));
    }
    Ok(())
}

impl Manager {
    /// Attaches a running container to one more network (`network connect`).
    fn connect_blocking(
        &self,
        cid: &str,
        (cname, hostname): (&str, &str),
        pid: i64,
        a: &Attachment,
        resolv: &std::path::Path,
    ) -> Result<bool> {
        let mut st = self.lock();
        let used = st
            .nets
            .values()
            .filter(|n| n.record().endpoints.contains_key(cid))
            .count();
        let netns = match st.live.get(cid) {
            Some(l) => l.netns.clone(),
            None => Arc::new(
                network::NetNs::open(std::path::Path::new(&format!("/proc/{pid}/ns/net")))
                    .map_err(net_err)?,
            ),
        };
        let mut ifname = format!("eth{used}");
        let taken: Vec<String> = st
            .nets
            .values()
            .filter_map(|n| n.record().endpoints.get(cid).map(|e| e.ifname.clone()))
            .collect();
        let mut i = used;
        while taken.contains(&ifname) {
            i += 1;
            ifname = format!("eth{i}");
        }
        let default = st.is_default(&a.network_id);
        let net = st
            .nets
            .get_mut(&a.network_id)
            .ok_or_else(|| Error::NotFound(format!("network {} not found", a.network_id)))?;
        net.attach(
            cid,
            &netns,
            AttachRequest {
                ip: a.ipv4,
                ip6: a.ipv6,
                link_local: a.link_local.clone(),
                mac: a
                    .mac
                    .as_deref()
                    .map(super::endpoints::parse_mac)
                    .transpose()?,
                ifname: Some(ifname),
                // The first network of a container routes; one joined later does not.
                no_default_route: used > 0,
            },
        )
        .map_err(net_err)?;
        let live = st
            .live
            .entry(cid.to_owned())
            .or_insert_with(|| super::Live {
                name: cname.to_owned(),
                hostname: hostname.to_owned(),
                netns: netns.clone(),
                ports: Vec::new(),
                port_bridge: None,
                dns: None,
                table: network::dns::Table::new(),
                aliases: BTreeMap::new(),
                links: BTreeMap::new(),
            });
        live.aliases.insert(a.network_id.clone(), a.aliases.clone());
        live.links.insert(
            a.network_id.clone(),
            a.links
                .iter()
                .filter_map(|l| crate::containers::parse_link(l).ok())
                .collect(),
        );
        let mut started_dns = false;
        if !default && live.dns.is_none() {
            match network::dns::Server::start(
                std::net::SocketAddr::new(std::net::IpAddr::V4(DNS_ADDR), 53),
                live.table.clone(),
                // The container's own servers (its --dns, else the host's), for names not on its networks.
                super::endpoints::upstreams(resolv),
                Some(netns),
            ) {
                Ok(s) => {
                    live.dns = Some(s);
                    started_dns = true;
                }
                Err(e) => {
                    tracing::warn!(container = cid, error = %e, "starting the DNS server failed")
                }
            }
        }
        st.refresh_dns();
        Ok(started_dns)
    }

    fn disconnect_blocking(&self, cid: &str, net_id: &str) -> Result<()> {
        let mut st = self.lock();
        if let Some(net) = st.nets.get_mut(net_id) {
            if net.record().endpoints.contains_key(cid) {
                net.detach(cid).map_err(net_err)?;
            }
        }
        if let Some(l) = st.live.get_mut(cid) {
            l.aliases.remove(net_id);
            l.links.remove(net_id);
        }
        st.refresh_dns();
        Ok(())
    }
}

impl Engine {
    fn container_names(&self) -> HashMap<String, String> {
        self.containers
            .list()
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect()
    }

    /// `GET /networks` (filters: driver, id, label, name, scope, type, dangling).
    pub async fn list_networks(&self, filters: Filters) -> Result<Vec<NetworkView>> {
        filters.validate(&["driver", "id", "label", "name", "scope", "type", "dangling"])?;
        let dangling = filters.bool("dangling")?;
        let used: Vec<String> = self
            .containers
            .list()
            .into_iter()
            .flat_map(|c| c.networks.into_values().map(|a| a.network_id))
            .collect();
        let st = self.net.lock();
        let names = HashMap::new();
        let mut out = Vec::new();
        for r in st.all_refs() {
            let v = st.view(&r, &names, false);
            let builtin = matches!(r, NetRef::Special(_)) || st.is_default(&v.id);
            let any = |key: &str, pred: &dyn Fn(&str) -> bool| {
                let vals = filters.get(key);
                vals.is_empty() || vals.iter().any(|x| pred(x))
            };
            let keep = any("driver", &|d| d == v.driver)
                && any("id", &|i| v.id.starts_with(i))
                && any("name", &|n| v.name.contains(n))
                && any("scope", &|s| s == v.scope)
                && any("type", &|t| {
                    (t == "builtin") == builtin && (t == "custom" || t == "builtin")
                })
                && filters.labels_match("label", |k| v.labels.get(k).map(String::as_str))
                && dangling.is_none_or(|d| d == (!builtin && !used.contains(&v.id)));
            if keep {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// `GET /networks/{id}`.
    pub async fn inspect_network(&self, name: &str) -> Result<NetworkView> {
        let names = self.container_names();
        let st = self.net.lock();
        let r = st.resolve(name)?;
        Ok(st.view(&r, &names, true))
    }

    /// `POST /networks/create`.
    pub async fn create_network(self: &Arc<Self>, req: NetworkCreate) -> Result<CreatedNetwork> {
        let name = req.name.clone();
        let (ipv6, plan) = network_plan(&req)?;
        let v4 = plan.v4.unwrap_or_default();
        let v6 = plan.v6.unwrap_or_default();
        let id = crate::containers::random_id()?;
        let opts = NetworkOptions {
            id: id.clone(),
            name: name.clone(),
            subnet: v4.subnet,
            gateway: v4.gateway,
            ip_range: v4.ip_range,
            internal: req.internal.unwrap_or(false),
            ipv6,
            subnet6: v6.subnet,
            gateway6: v6.gateway,
            ip_range6: v6.ip_range,
            ipv6_pool: self.net.ula,
            aux_addresses: plan.aux,
            driver_options: req
                .options
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            labels: req.labels.clone().unwrap_or_default().into_iter().collect(),
            attachable: req.attachable.unwrap_or(false),
            created: now(),
        };
        let net = Arc::clone(&self.net);
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut st = net.lock();
            if st.resolve(&name).is_ok_and(|r| match &r {
                NetRef::Bridge(i) => st.nets[i].record().name == name,
                NetRef::Special(s) => *s == name,
            }) {
                return Err(Error::Conflict(format!(
                    "network with name {name} already exists"
                )));
            }
            let others: Vec<_> = st.nets.values().map(|n| n.record().subnet).collect();
            let others6: Vec<_> = st
                .nets
                .values()
                .filter_map(|n| n.record().subnet6)
                .collect();
            let created =
                Network::create_dual(&net.dir, None, opts, &others, &others6).map_err(net_err)?;
            if let Err(e) = std::fs::write("/proc/sys/net/ipv4/ip_forward", "1") {
                tracing::warn!(error = %e, "cannot enable IPv4 forwarding");
            }
            if created.record().subnet6.is_some() {
                super::enable_ipv6_forwarding();
            }
            st.nets.insert(created.record().id.clone(), created);
            st.reconcile_firewall();
            Ok(())
        })
        .await??;
        self.network_event("create", &id, &req.name, None);
        Ok(CreatedNetwork {
            id,
            warning: String::new(),
        })
    }

    /// `DELETE /networks/{id}`.
    pub async fn remove_network(self: &Arc<Self>, name: &str) -> Result<()> {
        let net = Arc::clone(&self.net);
        let name = name.to_owned();
        let (id, net_name) = tokio::task::spawn_blocking(move || -> Result<(String, String)> {
            let mut st = net.lock();
            let id = match st.resolve(&name)? {
                NetRef::Special(s) => {
                    return Err(Error::Forbidden(format!(
                        "{s} is a pre-defined network and cannot be removed"
                    )))
                }
                NetRef::Bridge(id) if st.is_default(&id) => {
                    return Err(Error::Forbidden(format!(
                        "{DEFAULT_NETWORK} is a pre-defined network and cannot be removed"
                    )))
                }
                NetRef::Bridge(id) => id,
            };
            let rec = st.nets[&id].record().clone();
            if !rec.endpoints.is_empty() {
                return Err(Error::Forbidden(format!(
                    "error while removing network: network {} id {} has active endpoints",
                    rec.name, rec.id
                )));
            }
            if let Some(n) = st.nets.remove(&id) {
                if let Err(e) = n.remove() {
                    return Err(net_err(e));
                }
            }
            st.reconcile_firewall();
            Ok((rec.id, rec.name))
        })
        .await??;
        self.network_event("destroy", &id, &net_name, None);
        Ok(())
    }

    /// `POST /networks/prune` (filters: label, label!, until): user-defined networks no container uses.
    pub async fn prune_networks(self: &Arc<Self>, filters: Filters) -> Result<PrunedNetworks> {
        filters.validate(&["label", "label!", "until"])?;
        let until = filters.times("until")?;
        let used: Vec<String> = self
            .containers
            .list()
            .into_iter()
            .flat_map(|c| c.networks.into_values().map(|a| a.network_id))
            .collect();
        let candidates: Vec<(String, String)> = {
            let st = self.net.lock();
            st.nets
                .values()
                .map(|n| n.record())
                .filter(|r| {
                    !st.is_default(&r.id) && r.endpoints.is_empty() && !used.contains(&r.id)
                })
                .filter(|r| filters.labels_match("label", |k| r.labels.get(k).map(String::as_str)))
                .filter(|r| !filters.labels_excluded(|k| r.labels.get(k).map(String::as_str)))
                .filter(|r| {
                    let created = image::timefmt::parse(&r.created)
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_nanos() as i64)
                        .unwrap_or(0);
                    until.iter().all(|&u| created < u)
                })
                .map(|r| (r.id.clone(), r.name.clone()))
                .collect()
        };
        let mut deleted = Vec::new();
        for (id, name) in candidates {
            if self.remove_network(&id).await.is_ok() {
                deleted.push(name);
            }
        }
        self.events.publish(crate::Event::pruned("network", 0));
        Ok(PrunedNetworks {
            networks_deleted: deleted,
        })
    }

    /// `POST /networks/{id}/connect`.
    pub async fn connect_network(self: &Arc<Self>, name: &str, req: ConnectRequest) -> Result<()> {
        let c = self.containers.resolve(&req.container)?;
        let (net_id, net_name, default) = {
            let st = self.net.lock();
            match st.resolve(name)? {
                NetRef::Special(_) => {
                    return Err(Error::Forbidden(
                        "container cannot be disconnected from host network or connected to host network".into(),
                    ))
                }
                NetRef::Bridge(id) => {
                    let n = st.nets[&id].record().name.clone();
                    let d = st.is_default(&id);
                    (id, n, d)
                }
            }
        };
        let mode = c.host_config.network_mode.as_deref().unwrap_or("default");
        if mode == "host" || mode == "none" || mode.starts_with("container:") {
            return Err(Error::Forbidden(
                "container sharing network namespace with another container or host cannot be connected to any other network".into(),
            ));
        }
        if c.networks.contains_key(&net_name) {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {net_name}",
                c.name
            )));
        }
        let ep = req.endpoint_config.clone().unwrap_or_default();
        let a = super::settings::attachment_from(&net_id, &ep)?;
        if default && (!a.aliases.is_empty() || a.ipv4.is_some() || a.ipv6.is_some()) {
            return Err(Error::InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
        if let Some(n) = self.net.lock().nets.get(&net_id) {
            super::settings::check_static_addresses(n.record(), &a)?;
        }
        if matches!(c.state.status, Status::Running | Status::Paused) {
            let net = Arc::clone(&self.net);
            let (cid, cname, pid, a2) = (c.id.clone(), c.name.clone(), c.state.pid, a.clone());
            let hostname = c.config.hostname.clone().unwrap_or_default();
            let dir = self.containers.dir(&c.id);
            let resolv = dir.join("resolv.conf");
            let started_dns = tokio::task::spawn_blocking(move || {
                net.connect_blocking(&cid, (&cname, &hostname), pid, &a2, &resolv)
            })
            .await??;
            if started_dns {
                // Its first user-defined network: names resolve through the embedded server from now on.
                if let Err(e) = super::endpoints::use_embedded_dns(&dir) {
                    tracing::warn!(id = %c.id, error = %e, "pointing resolv.conf at the embedded DNS server failed");
                }
            }
            self.network_event("connect", &net_id, &net_name, Some(&c.id));
        }
        self.containers.update(&c.id, |c| {
            c.networks.insert(net_name.clone(), a.clone());
        })?;
        Ok(())
    }

    /// `POST /networks/{id}/disconnect`.
    pub async fn disconnect_network(
        self: &Arc<Self>,
        name: &str,
        container: &str,
        force: bool,
    ) -> Result<()> {
        let (net_id, net_name) = {
            let st = self.net.lock();
            match st.resolve(name)? {
                NetRef::Special(_) => {
                    return Err(Error::Forbidden(
                        "container cannot be disconnected from host network or connected to host network".into(),
                    ))
                }
                NetRef::Bridge(id) => {
                    let n = st.nets[&id].record().name.clone();
                    (id, n)
                }
            }
        };
        let c = match self.containers.resolve(container) {
            Ok(c) => c,
            Err(_) if force => {
                // A forced disconnect of a container that no longer exists drops its endpoint.
                let net = Arc::clone(&self.net);
                let (cid, nid) = (container.to_owned(), net_id.clone());
                tokio::task::spawn_blocking(move || net.disconnect_blocking(&cid, &nid)).await??;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if !c.networks.contains_key(&net_name) {
            return Err(Error::Forbidden(format!(
                "container {} is not connected to network {net_name}",
                c.id
            )));
        }
        let net = Arc::clone(&self.net);
        let (cid, nid) = (c.id.clone(), net_id.clone());
        tokio::task::spawn_blocking(move || net.disconnect_blocking(&cid, &nid)).await??;
        self.containers.update(&c.id, |c| {
            c.networks.remove(&net_name);
        })?;
        if matches!(c.state.status, Status::Running | Status::Paused) {
            self.network_event("disconnect", &net_id, &net_name, Some(&c.id));
        }
        Ok(())
    }
}
