//! A container's networking while it runs: endpoints made between the shim's `ok PID` (namespaces exist, the
//! init waits) and `start`, published ports, the embedded DNS server on 127.0.0.11, `/etc/hosts` and
//! `/etc/resolv.conf` entries; released at the exit, found again after a daemon restart.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use network::{AttachRequest, NetNs};

use super::ports::{self, Saved};
use super::{net_err, Attachment, Live, Manager, State, DEFAULT_NETWORK};
use crate::containers::record::Container;
use crate::error::{Context, Error, Result};
use crate::events::Event;
use crate::Engine;

/// Where Docker's embedded DNS server listens inside each container on a user-defined network.
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// The network a container's `NetworkMode` names (its first interface, its published ports), if any.
pub(crate) fn primary_name(c: &Container) -> Option<String> {
    let mode = c.host_config.network_mode.as_deref().unwrap_or("default");
    let nets = &c.networks;
    if nets.is_empty() {
        return None;
    }
    if mode == "default" || mode == DEFAULT_NETWORK {
        return nets
            .contains_key(DEFAULT_NETWORK)
            .then(|| DEFAULT_NETWORK.to_owned());
    }
    if nets.contains_key(mode) {
        return Some(mode.to_owned());
    }
    nets.iter()
        .find(|(_, a)| a.network_id.starts_with(mode))
        .map(|(n, _)| n.clone())
        .or_else(|| nets.keys().next().cloned())
}

/// A container's links per network ID, parsed (those that do not parse were refused at create or connect).
fn links_by_network(c: &Container) -> BTreeMap<String, Vec<(String, String)>> {
    c.networks
        .values()
        .map(|a| {
            let links = a
                .links
                .iter()
                .filter_map(|l| crate::containers::parse_link(l).ok())
                .collect();
            (a.network_id.clone(), links)
        })
        .collect()
}

/// The container's attachments with the primary one first (it becomes `eth0`).
fn ordered(c: &Container) -> Vec<(String, Attachment)> {
    let primary = primary_name(c);
    let mut v: Vec<(String, Attachment)> = c
        .networks
        .iter()
        .map(|(k, a)| (k.clone(), a.clone()))
        .collect();
    v.sort_by_key(|(n, _)| (Some(n) != primary.as_ref(), n.clone()));
    v
}

/// Checks a `--mac-address` value (Docker's error wording).
pub(crate) fn check_mac(s: &str) -> Result<()> {
    parse_mac(s).map(|_| ())
}

pub(super) fn parse_mac(s: &str) -> Result<network::link::Mac> {
    let parts: Vec<&str> = s.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(Error::InvalidParameter(format!("invalid MAC address: {s}")));
    }
    for (i, p) in parts.iter().enumerate() {
        mac[i] = u8::from_str_radix(p, 16)
            .map_err(|_| Error::InvalidParameter(format!("invalid MAC address: {s}")))?;
    }
    Ok(mac)
}

impl State {
    pub(super) fn is_default(&self, id: &str) -> bool {
        self.default_id.as_deref() == Some(id)
    }

    /// Rebuilds the DNS table of every container with an embedded DNS server: the names (container name,
    /// short ID, aliases) of every container sharing one of its user-defined networks.
    pub(super) fn refresh_dns(&self) {
        for (cid, live) in &self.live {
            if live.dns.is_none() {
                continue;
            }
            let mut entries = Vec::new();
            for net in self.nets.values() {
                let rec = net.record();
                if self.is_default(&rec.id) || !rec.endpoints.contains_key(cid) {
                    continue;
                }
                let first = entries.len();
                for (other, ep) in &rec.endpoints {
                    let Some(ol) = self.live.get(other) else {
                        continue;
                    };
                    // dockerd's DNSNames: name, aliases, short ID, hostname.
                    let mut names = vec![ol.name.clone()];
                    names.extend(ol.aliases.get(&rec.id).cloned().unwrap_or_default());
                    names.push(other[..12.min(other.len())].to_owned());
                    if !ol.hostname.is_empty() && !names.contains(&ol.hostname) {
                        names.push(ol.hostname.clone());
                    }
                    if let Some(ip6) = ep.ip6 {
                        entries.push((names.clone(), IpAddr::V6(ip6)));
                    }
                    entries.push((names, IpAddr::V4(ep.ip)));
                }
                // This container's links on the network: the alias answers with the address the linked
                // name has there (libnetwork's endpoint aliases).
                let mut linked = Vec::new();
                for (target, alias) in live.links.get(&rec.id).into_iter().flatten() {
                    for (_, ip) in entries[first..]
                        .iter()
                        .filter(|(names, _)| names.iter().any(|n| n == target))
                    {
                        linked.push((vec![alias.clone()], *ip));
                    }
                }
                entries.extend(linked);
            }
            live.table.replace(&entries);
        }
    }

    /// Detaches `id` from every network it has an endpoint on; returns the networks' (ID, name).
    fn detach_all(&mut self, id: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for net in self.nets.values_mut() {
            if net.record().endpoints.contains_key(id) {
                if let Err(e) = net.detach(id) {
                    tracing::warn!(container = id, network = %net.record().name, error = %e, "detaching failed");
                }
                out.push((net.record().id.clone(), net.record().name.clone()));
            }
        }
        out
    }
}

/// What the blocking part of a start needs from the record.
struct StartPlan {
    id: String,
    name: String,
    hostname: String,
    dir: std::path::PathBuf,
    nets: Vec<(String, Attachment)>,
    specs: Vec<network::PortSpec>,
    pid: i64,
    /// Legacy links' `/etc/hosts` entries, as (address, names).
    link_hosts: Vec<(String, String)>,
    links: BTreeMap<String, Vec<(String, String)>>,
}

impl Manager {
    /// Attaches a started container (its init waiting before exec) to its networks, publishes its ports,
    /// starts its DNS server and writes its hosts and resolv.conf entries; all or nothing.
    fn start_blocking(&self, p: StartPlan) -> Result<Vec<(String, String)>> {
        let t0 = std::time::Instant::now();
        let mut st = self.lock();
        let netns =
            Arc::new(NetNs::open(Path::new(&format!("/proc/{}/ns/net", p.pid))).map_err(net_err)?);
        let mut attached: Vec<(String, String)> = Vec::new();
        let mut aliases = BTreeMap::new();
        let mut primary: Option<network::Endpoint> = None;
        let mut port_bridge = None;
        let mut dns = false;
        let result = (|| -> Result<()> {
            for (i, (name, a)) in p.nets.iter().enumerate() {
                let default = st.is_default(&a.network_id);
                let net = st
                    .nets
                    .get_mut(&a.network_id)
                    .ok_or_else(|| Error::NotFound(format!("network {name} not found")))?;
                let req = AttachRequest {
                    ip: a.ipv4,
                    ip6: a.ipv6,
                    link_local: a.link_local.clone(),
                    mac: a.mac.as_deref().map(parse_mac).transpose()?,
                    ifname: Some(format!("eth{i}")),
                    no_default_route: i > 0,
                };
                let ep = net.attach(&p.id, &netns, req).map_err(net_err)?;
                attached.push((a.network_id.clone(), name.clone()));
                aliases.insert(a.network_id.clone(), a.aliases.clone());
                if !default {
                    dns = true;
                }
                if primary.is_none() {
                    port_bridge = Some(net.record().bridge.clone());
                    primary = Some(ep);
                }
            }
            Ok(())
        })();
        let rollback = |st: &mut State| {
            st.detach_all(&p.id);
        };
        if let Err(e) = result {
            rollback(&mut st);
            return Err(e);
        }
        let bindings = match (&primary, p.specs.is_empty()) {
            (Some(ep), false) => {
                let label = format!("{} ({})", p.name, ep.endpoint_id);
                match st.mapper.publish_dual(&label, &p.specs, ep.ip, ep.ip6) {
                    Ok(b) => b,
                    Err(e) => {
                        rollback(&mut st);
                        return Err(Error::system("", e));
                    }
                }
            }
            _ => Vec::new(),
        };
        let table = network::dns::Table::new();
        let server = if dns {
            let upstreams = upstreams(&p.dir.join("resolv.conf"));
            match network::dns::Server::start(
                SocketAddr::new(IpAddr::V4(DNS_ADDR), 53),
                table.clone(),
                upstreams,
                Some(netns.clone()),
            ) {
                Ok(s) => Some(s),
                Err(e) => {
                    rollback(&mut st);
                    return Err(Error::system("starting the embedded DNS server", e));
                }
            }
        } else {
            None
        };
        if let Some(ep) = &primary {
            if let Err(e) = write_etc(&p.dir, &p.hostname, ep, &p.link_hosts, dns) {
                tracing::warn!(container = %p.id, error = %e, "writing network entries of /etc files failed");
            }
        }
        let saved: Vec<Saved> = bindings.iter().map(Saved::of).collect();
        if let Err(e) = save_ports(&self.ports_file(&p.id), &saved) {
            tracing::warn!(container = %p.id, error = %e, "saving published ports failed");
        }
        let has_ports = !bindings.is_empty();
        st.live.insert(
            p.id.clone(),
            Live {
                name: p.name.clone(),
                hostname: p.hostname.clone(),
                netns,
                ports: bindings,
                port_bridge,
                dns: server,
                table,
                aliases,
                links: p.links,
            },
        );
        if has_ports {
            st.reconcile_firewall();
        }
        st.refresh_dns();
        tracing::debug!(
            elapsed_us = t0.elapsed().as_micros() as u64,
            "network attached"
        );
        Ok(attached)
    }
}

/// Removes a container's published-ports file; it may not exist (no ports, or removed already).
fn remove_ports_file(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(path = %path.display(), error = %e, "removing the published-ports file");
        }
        _ => {}
    }
}

fn save_ports(path: &Path, saved: &[Saved]) -> Result<()> {
    let data = serde_json::to_vec(saved).context("encoding published ports")?;
    crate::containers::record::write_atomic(path, &data)
}

fn load_ports(path: &Path) -> Vec<Saved> {
    std::fs::read(path)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default()
}

/// The servers the embedded DNS server forwards to: the `nameserver`s of the resolv.conf written for the
/// container (its `--dns`, else the host's), or once rewritten, its `# ExtServers:` line.
pub(super) fn upstreams(resolv: &Path) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string(resolv).unwrap_or_default();
    let mut out: Vec<IpAddr> = Vec::new();
    for l in text.lines() {
        if let Some(s) = l.strip_prefix("nameserver") {
            out.extend(s.trim().parse::<IpAddr>().ok());
        } else if let Some(list) = l.strip_prefix("# ExtServers: [") {
            out.extend(
                list.trim_end_matches(']')
                    .split_whitespace()
                    .filter_map(|h| {
                        h.strip_prefix("host(")?
                            .strip_suffix(')')?
                            .parse::<IpAddr>()
                            .ok()
                    }),
            );
        }
    }
    out.into_iter()
        .filter(|ip| *ip != IpAddr::V4(DNS_ADDR))
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Adds the legacy links' entries and the container's own address to its `/etc/hosts` (as dockerd:
/// `IP\tNAMES`, its own last), resolves `host-gateway` entries, and points resolv.conf at the embedded DNS
/// server on user-defined networks. The files are bind-mounted already, so they are rewritten in place.
fn write_etc(
    dir: &Path,
    hostname: &str,
    ep: &network::Endpoint,
    link_hosts: &[(String, String)],
    dns: bool,
) -> std::io::Result<()> {
    let hosts_path = dir.join("hosts");
    let hosts = std::fs::read_to_string(&hosts_path)?;
    let mut out = String::new();
    for line in hosts.lines() {
        match (line.split_once('\t'), ep.gateway) {
            (Some(("host-gateway", name)), Some(gw)) => out.push_str(&format!("{gw}\t{name}\n")),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (ip, names) in link_hosts {
        out.push_str(&format!("{ip}\t{names}\n"));
    }
    out.push_str(&format!("{}\t{hostname}\n", ep.ip));
    if let Some(ip6) = ep.ip6 {
        out.push_str(&format!("{ip6}\t{hostname}\n"));
    }
    std::fs::write(&hosts_path, out)?;
    if dns {
        use_embedded_dns(dir)?;
    }
    Ok(())
}

/// Points the container's resolv.conf at the embedded DNS server, keeping its search and options lines and
/// noting its servers (the DNS server's upstreams) in a `# ExtServers:` line, as dockerd writes it.
pub(super) fn use_embedded_dns(dir: &Path) -> std::io::Result<()> {
    let resolv_path = dir.join("resolv.conf");
    let old = std::fs::read_to_string(&resolv_path)?;
    if old.starts_with(&format!("nameserver {DNS_ADDR}\n")) {
        return Ok(());
    }
    let ext: Vec<&str> = old
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(str::trim)
        .collect();
    let mut new = format!("nameserver {DNS_ADDR}\n");
    let mut has_options = false;
    for l in old.lines() {
        if l.starts_with("search ") {
            new.push_str(l);
            new.push('\n');
        } else if l.starts_with("options ") {
            has_options = true;
            new.push_str(l);
            new.push('\n');
        }
    }
    if !has_options {
        new.push_str("options ndots:0\n");
    }
    new.push_str(&format!(
        "\n# ExtServers: [{}]\n",
        ext.iter()
            .map(|s| format!("host({s})"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    std::fs::write(&resolv_path, new)
}

impl Engine {
    /// Networking for a container being started: called once the shim reports `ok PID` and before `start`.
    pub(crate) async fn net_start(self: &Arc<Self>, c: &Container, pid: i64) -> Result<()> {
        let nets = ordered(c);
        if nets.is_empty() {
            return Ok(());
        }
        let exposed = c.config.exposed_ports.clone().unwrap_or_default();
        let plan = StartPlan {
            id: c.id.clone(),
            name: c.name.clone(),
            hostname: c.config.hostname.clone().unwrap_or_default(),
            dir: self.containers.dir(&c.id),
            nets,
            specs: ports::specs(&c.host_config, &exposed)?,
            pid,
            link_hosts: self.link_hosts_of(c),
            links: links_by_network(c),
        };
        let net = Arc::clone(&self.net);
        let attached = tokio::task::spawn_blocking(move || net.start_blocking(plan)).await??;
        // Containers linked to this one see its (new) address, as dockerd updates their hosts files.
        if let Some(ip) = self.default_bridge_ip(&c.id) {
            self.update_parents_hosts(&c.id, &ip.to_string());
        }
        for (net_id, net_name) in attached {
            self.network_event("connect", &net_id, &net_name, Some(&c.id));
        }
        Ok(())
    }

    /// Releases a container's networking (endpoints, addresses, proxies, DNS server, DNAT rules); idempotent.
    pub(crate) async fn net_stop(self: &Arc<Self>, id: &str) {
        let net = Arc::clone(&self.net);
        let cid = id.to_owned();
        let detached = self
            .teardown_blocking(move || {
                let t0 = std::time::Instant::now();
                let mut st = net.lock();
                let live = st.live.remove(&cid);
                let detached = st.detach_all(&cid);
                tracing::debug!(
                    elapsed_us = t0.elapsed().as_micros() as u64,
                    "network released"
                );
                remove_ports_file(&net.ports_file(&cid));
                if live.as_ref().is_some_and(|l| !l.ports.is_empty()) {
                    st.reconcile_firewall();
                }
                st.refresh_dns();
                drop(live);
                detached
            })
            .await
            .unwrap_or_default();
        for (net_id, net_name) in detached {
            self.network_event("disconnect", &net_id, &net_name, Some(id));
        }
    }

    /// After a daemon restart, takes a still-running container's networking back: its namespace, its
    /// published ports (same host ports) and its DNS server.
    pub(crate) async fn net_restore(self: &Arc<Self>, c: &Container) {
        if c.networks.is_empty() || c.state.pid <= 0 {
            return;
        }
        let net = Arc::clone(&self.net);
        let c = c.clone();
        let id = c.id.clone();
        let resolv = self.containers.dir(&c.id).join("resolv.conf");
        let restored = tokio::task::spawn_blocking(move || {
            let mut st = net.lock();
            let netns = match NetNs::open(Path::new(&format!("/proc/{}/ns/net", c.state.pid))) {
                Ok(n) => Arc::new(n),
                Err(e) => {
                    tracing::warn!(id = %c.id, error = %e, "cannot open the namespace of a running container");
                    return;
                }
            };
            let mut aliases = BTreeMap::new();
            let links = links_by_network(&c);
            let mut dns = false;
            let mut primary = None;
            for (_, a) in ordered(&c) {
                aliases.insert(a.network_id.clone(), a.aliases.clone());
                if !st.is_default(&a.network_id) {
                    dns = true;
                }
                if primary.is_none() {
                    primary = st
                        .nets
                        .get(&a.network_id)
                        .and_then(|n| n.record().endpoints.get(&c.id).map(|e| (e.ip, e.ip6, n.record().bridge.clone())));
                }
            }
            let saved = load_ports(&net.ports_file(&c.id));
            let mut bindings = Vec::new();
            if let Some((ip, ip6, _)) = &primary {
                let specs: Vec<_> = saved.iter().map(Saved::spec).collect();
                match st.mapper.publish_dual(&c.name, &specs, *ip, *ip6) {
                    Ok(b) => bindings = b,
                    Err(e) => tracing::warn!(id = %c.id, error = %e, "republishing ports failed"),
                }
            }
            let table = network::dns::Table::new();
            let server = if dns {
                network::dns::Server::start(
                    SocketAddr::new(IpAddr::V4(DNS_ADDR), 53),
                    table.clone(),
                    upstreams(&resolv),
                    Some(netns.clone()),
                )
                .map_err(|e| tracing::warn!(id = %c.id, error = %e, "restarting the DNS server failed"))
                .ok()
            } else {
                None
            };
            st.live.insert(
                c.id.clone(),
                Live {
                    name: c.name.clone(),
                    hostname: c.config.hostname.clone().unwrap_or_default(),
                    netns,
                    ports: bindings,
                    port_bridge: primary.map(|p| p.2),
                    dns: server,
                    table,
                    aliases,
                    links,
                },
            );
        })
        .await;
        if let Err(e) = restored {
            tracing::warn!(id = %id, error = %e, "restoring the container's networking");
        }
    }

    /// After recovery: drops endpoints whose container no longer runs, then rewrites the firewall and the
    /// DNS tables from what is left.
    pub(crate) async fn net_sweep(self: &Arc<Self>) {
        let net = Arc::clone(&self.net);
        let swept = tokio::task::spawn_blocking(move || {
            let mut st = net.lock();
            let stale: Vec<String> = st
                .nets
                .values()
                .flat_map(|n| n.record().endpoints.keys().cloned().collect::<Vec<_>>())
                .filter(|id| !st.live.contains_key(id))
                .collect();
            for id in stale {
                tracing::info!(container = %id, "removing a stale network endpoint");
                st.detach_all(&id);
                remove_ports_file(&net.ports_file(&id));
            }
            st.reconcile_firewall();
            st.refresh_dns();
        })
        .await;
        if let Err(e) = swept {
            tracing::warn!(error = %e, "sweeping stale network endpoints");
        }
    }

    /// A running container was renamed: its new name resolves on its networks, the old one no more.
    pub(crate) fn net_renamed(&self, id: &str, new_name: &str) {
        let mut st = self.net.lock();
        if let Some(l) = st.live.get_mut(id) {
            l.name = new_name.to_owned();
        }
        st.refresh_dns();
    }

    /// The container's address on the default bridge while it runs there.
    pub(crate) fn default_bridge_ip(&self, id: &str) -> Option<Ipv4Addr> {
        let st = self.net.lock();
        let default = st.default_id.as_deref()?;
        st.nets
            .get(default)?
            .record()
            .endpoints
            .get(id)
            .map(|e| e.ip)
    }

    /// Publishes a `network` event (`connect`/`disconnect` name the container).
    pub(crate) fn network_event(
        &self,
        action: &str,
        net_id: &str,
        net_name: &str,
        container: Option<&str>,
    ) {
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_owned(), net_name.to_owned());
        attrs.insert(
            "type".to_owned(),
            match net_name {
                "host" => "host",
                "none" => "null",
                _ => "bridge",
            }
            .to_owned(),
        );
        if let Some(c) = container {
            attrs.insert("container".to_owned(), c.to_owned());
        }
        self.events
            .publish(Event::new("network", action, net_id, attrs));
    }

    /// Interface counters of a running container (`networks` of stats), `None` without its own namespace.
    pub(crate) fn net_stats(&self, id: &str) -> Option<serde_json::Value> {
        let netns = self.net.lock().live.get(id).map(|l| l.netns.clone())?;
        let stats = network::stats::interface_stats(&netns).ok()?;
        serde_json::to_value(stats).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_come_from_nameservers_or_the_ext_servers_note() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("resolv.conf");
        std::fs::write(&p, "nameserver 10.0.0.53\nsearch x\n").unwrap();
        assert_eq!(upstreams(&p), ["10.0.0.53:53".parse().unwrap()]);
        std::fs::write(
            &p,
            "nameserver 127.0.0.11\n\n# ExtServers: [host(10.0.0.53) host(10.0.0.54)]\n",
        )
        .unwrap();
        assert_eq!(upstreams(&p).len(), 2);
    }

    #[test]
    fn macs_parse_as_docker_prints_them() {
        assert_eq!(
            parse_mac("02:42:ac:11:00:02").unwrap(),
            [0x02, 0x42, 0xac, 0x11, 0, 2]
        );
        assert!(parse_mac("02:42:ac").is_err());
    }
}
