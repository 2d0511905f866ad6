//! Bridges and veth pairs, made over rtnetlink (never by running `ip`).
//!
//! Host-side work uses a socket opened in the "host" namespace (the daemon's own, or one a test
//! made); container-side work uses a socket opened inside the container's namespace by a
//! short-lived thread, so no long-lived thread ever changes namespace.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use ipnetwork::{Ipv4Network, Ipv6Network};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::error::{Error, Result};
use crate::netlink::{is_eexist, is_enodev, Netlink};
use crate::netns::NetNs;

/// The MTU used when the host has no default route to copy it from (Docker's default).
pub const DEFAULT_MTU: u32 = 1500;

/// A MAC address.
pub type Mac = [u8; 6];

/// Docker ≤ 27's MAC for a container: `02:42:` followed by the four IPv4 bytes.
///
/// Docker 28 (moby#48808) gives bridge endpoints a random locally administered MAC instead, so
/// that a recycled IP never meets a stale neighbour entry; Berth follows Docker 28 by default
/// ([`random_mac`]) and keeps this for callers that want the old, stable mapping.
pub fn mac_from_ipv4(ip: Ipv4Addr) -> Mac {
    let o = ip.octets();
    [0x02, 0x42, o[0], o[1], o[2], o[3]]
}

/// A random unicast, locally administered MAC, as Docker 28 assigns to bridge endpoints.
pub fn random_mac() -> Mac {
    let mut mac = [0u8; 6];
    fill_random(&mut mac);
    mac[0] = (mac[0] & 0xfe) | 0x02;
    mac
}

/// Format a MAC the way Docker prints it (`02:42:ac:11:00:02`).
pub fn format_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A host-side veth name like Docker's: `veth` and seven hex digits.
pub fn random_veth_name() -> String {
    let mut b = [0u8; 4];
    fill_random(&mut b);
    format!("veth{:07x}", u32::from_be_bytes(b) & 0x0fff_ffff)
}

/// `2 * n` random hex digits (endpoint IDs are 64, like Docker's).
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    fill_random(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn fill_random(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => {
                // getrandom(2) cannot fail on Linux ≥ 3.17 once the pool is up; fall back to
                // time-derived bytes rather than panic.
                let t = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.subsec_nanos())
                    .unwrap_or(0);
                for (i, b) in buf[filled..].iter_mut().enumerate() {
                    *b = (t >> ((i % 4) * 8)) as u8;
                }
                return;
            }
        }
    }
}

/// Check a name is a valid Linux interface name (1–15 bytes, no `/`, `:` or whitespace, not
/// `.`/`..`); it also ends up in `/proc/sys` paths, so this guards those too.
pub fn validate_ifname(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > 15
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
    if bad {
        return Err(Error::InvalidConfig(format!(
            "invalid interface name {name:?}: want 1-15 bytes without '/', ':' or spaces"
        )));
    }
    Ok(())
}

fn link_by_name_msg(name: &str) -> LinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg
}

fn link_index(nl: &mut Netlink, name: &str) -> Result<Option<u32>> {
    match nl.get(
        RouteNetlinkMessage::GetLink(link_by_name_msg(name)),
        &format!("get link {name}"),
    ) {
        Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
            _ => None,
        })),
        Err(e) if is_enodev(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn require_index(nl: &mut Netlink, name: &str) -> Result<u32> {
    link_index(nl, name)?.ok_or_else(|| Error::Netlink {
        op: format!("find link {name}"),
        source: std::io::Error::from_raw_os_error(libc::ENODEV),
    })
}

fn set_up(nl: &mut Netlink, index: u32, name: &str) -> Result<()> {
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    nl.ack(
        RouteNetlinkMessage::SetLink(msg),
        0,
        &format!("set link {name} up"),
    )
}

fn add_address(nl: &mut Netlink, index: u32, name: &str, addr: Ipv4Network) -> Result<()> {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet;
    msg.header.prefix_len = addr.prefix();
    msg.header.index = index;
    msg.attributes = vec![
        AddressAttribute::Local(addr.ip().into()),
        AddressAttribute::Address(addr.ip().into()),
        AddressAttribute::Broadcast(addr.broadcast()),
    ];
    // CREATE|REPLACE: re-adding the same address on reconcile is not an error.
    nl.ack(
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
        &format!("add address {addr} to {name}"),
    )
}

fn add_address6(nl: &mut Netlink, index: u32, name: &str, addr: Ipv6Network) -> Result<()> {
    let mut msg = AddressMessage::default();
    msg.header.family = AddressFamily::Inet6;
    msg.header.prefix_len = addr.prefix();
    msg.header.index = index;
    // No duplicate address detection: the address is IPAM's to give, and DAD would leave it
    // "tentative" (unusable) for the first second or two of the container's life.
    msg.attributes = vec![
        AddressAttribute::Local(addr.ip().into()),
        AddressAttribute::Address(addr.ip().into()),
        AddressAttribute::Flags(AddressFlags::Nodad),
    ];
    nl.ack(
        RouteNetlinkMessage::NewAddress(msg),
        NLM_F_CREATE | NLM_F_REPLACE,
        &format!("add address {addr} to {name}"),
    )
}

fn add_default_route6(nl: &mut Netlink, index: u32, gateway: Ipv6Addr) -> Result<()> {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet6;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.attributes = vec![
        RouteAttribute::Gateway(RouteAddress::Inet6(gateway)),
        RouteAttribute::Oif(index),
    ];
    nl.ack(
        RouteNetlinkMessage::NewRoute(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        &format!("add IPv6 default route via {gateway}"),
    )
}

fn add_default_route(nl: &mut Netlink, index: u32, gateway: Ipv4Addr) -> Result<()> {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Inet;
    msg.header.table = RouteHeader::RT_TABLE_MAIN;
    msg.header.protocol = RouteProtocol::Boot;
    msg.header.scope = RouteScope::Universe;
    msg.header.kind = RouteType::Unicast;
    msg.attributes = vec![
        RouteAttribute::Gateway(RouteAddress::Inet(gateway)),
        RouteAttribute::Oif(index),
    ];
    nl.ack(
        RouteNetlinkMessage::NewRoute(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        &format!("add default route via {gateway}"),
    )
}

/// Add a default route via `gateway` out of the link `ifname` in `ns` (for namespaces the
/// caller manages, e.g. a test's "host").
pub fn add_default_route_via(ns: Option<&NetNs>, ifname: &str, gateway: Ipv4Addr) -> Result<()> {
    let mut nl = Netlink::open(ns)?;
    let index = require_index(&mut nl, ifname)?;
    add_default_route(&mut nl, index, gateway)
}

/// The MTU of the link `name` in `ns`, `None` if there is no such link.
pub fn link_mtu(ns: Option<&NetNs>, name: &str) -> Result<Option<u32>> {
    let mut nl = Netlink::open(ns)?;
    match nl.get(
        RouteNetlinkMessage::GetLink(link_by_name_msg(name)),
        &format!("get link {name}"),
    ) {
        Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::Mtu(mtu) => Some(mtu),
                _ => None,
            }),
            _ => None,
        })),
        Err(e) if is_enodev(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether a link named `name` exists in `ns` (the caller's namespace when `None`).
pub fn link_exists(ns: Option<&NetNs>, name: &str) -> Result<bool> {
    let mut nl = Netlink::open(ns)?;
    Ok(link_index(&mut nl, name)?.is_some())
}

/// The IPv4 addresses (each with its prefix) on the link `name` in `ns`, in the kernel's order (the
/// primary first); none if the link does not exist.
pub fn ipv4_addresses(ns: Option<&NetNs>, name: &str) -> Result<Vec<Ipv4Network>> {
    let mut nl = Netlink::open(ns)?;
    let Some(index) = link_index(&mut nl, name)? else {
        return Ok(Vec::new());
    };
    let mut req = AddressMessage::default();
    req.header.family = AddressFamily::Inet;
    let msgs = nl.dump(
        RouteNetlinkMessage::GetAddress(req),
        &format!("list the addresses of {name}"),
    )?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewAddress(a) if a.header.index == index => {
                let prefix = a.header.prefix_len;
                a.attributes.into_iter().find_map(|at| match at {
                    AddressAttribute::Local(std::net::IpAddr::V4(ip)) => {
                        Ipv4Network::new(ip, prefix).ok()
                    }
                    _ => None,
                })
            }
            _ => None,
        })
        .collect())
}

/// Bring the link `name` in `ns` up (e.g. `lo` of a namespace the caller made).
pub fn set_link_up(ns: Option<&NetNs>, name: &str) -> Result<()> {
    let mut nl = Netlink::open(ns)?;
    let index = require_index(&mut nl, name)?;
    set_up(&mut nl, index, name)
}

/// Names of every link in `ns`.
pub fn link_names(ns: Option<&NetNs>) -> Result<Vec<String>> {
    let mut nl = Netlink::open(ns)?;
    let msgs = nl.dump(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        "list links",
    )?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n),
                _ => None,
            }),
            _ => None,
        })
        .collect())
}

/// IPv4 destinations of the main routing table in `ns`, for pool selection.
pub fn ipv4_routes(ns: Option<&NetNs>) -> Result<Vec<Ipv4Network>> {
    Ok(main_routes(ns)?.into_iter().map(|(n, _)| n).collect())
}

/// IPv6 destinations of the main routing table in `ns`, for IPv6 pool selection.
pub fn ipv6_routes(ns: Option<&NetNs>) -> Result<Vec<Ipv6Network>> {
    let mut nl = Netlink::open(ns)?;
    let mut req = RouteMessage::default();
    req.header.address_family = AddressFamily::Inet6;
    let msgs = nl.dump(RouteNetlinkMessage::GetRoute(req), "list IPv6 routes")?;
    let mut out = Vec::new();
    for m in msgs {
        let RouteNetlinkMessage::NewRoute(r) = m else {
            continue;
        };
        let mut table = u32::from(r.header.table);
        let mut dst = Ipv6Addr::UNSPECIFIED;
        for a in &r.attributes {
            match a {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet6(d)) => dst = *d,
                _ => {}
            }
        }
        if table != u32::from(RouteHeader::RT_TABLE_MAIN) || dst.is_unicast_link_local() {
            continue;
        }
        if let Ok(n) = Ipv6Network::new(dst, r.header.destination_prefix_length) {
            out.push(n);
        }
    }
    Ok(out)
}

fn main_routes(ns: Option<&NetNs>) -> Result<Vec<(Ipv4Network, Option<u32>)>> {
    let mut nl = Netlink::open(ns)?;
    let mut req = RouteMessage::default();
    req.header.address_family = AddressFamily::Inet;
    let msgs = nl.dump(RouteNetlinkMessage::GetRoute(req), "list IPv4 routes")?;
    let mut out = Vec::new();
    for m in msgs {
        let RouteNetlinkMessage::NewRoute(r) = m else {
            continue;
        };
        let mut table = u32::from(r.header.table);
        let mut dst = Ipv4Addr::UNSPECIFIED;
        let mut oif = None;
        for a in &r.attributes {
            match a {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                RouteAttribute::Oif(i) => oif = Some(*i),
                _ => {}
            }
        }
        if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
            continue;
        }
        if let Ok(n) = Ipv4Network::new(dst, r.header.destination_prefix_length) {
            out.push((n, oif));
        }
    }
    Ok(out)
}

/// The MTU of the interface the default route of `ns` leaves through, else [`DEFAULT_MTU`].
pub fn default_route_mtu(ns: Option<&NetNs>) -> Result<u32> {
    let Some(index) = main_routes(ns)?
        .into_iter()
        .find(|(n, _)| n.prefix() == 0)
        .and_then(|(_, oif)| oif)
    else {
        return Ok(DEFAULT_MTU);
    };
    let mut nl = Netlink::open(ns)?;
    let mut msg = LinkMessage::default();
    msg.header.index = index;
    let msgs = nl.get(
        RouteNetlinkMessage::GetLink(msg),
        &format!("get link #{index}"),
    )?;
    Ok(msgs
        .into_iter()
        .find_map(|m| match m {
            RouteNetlinkMessage::NewLink(l) => l.attributes.into_iter().find_map(|a| match a {
                LinkAttribute::Mtu(mtu) => Some(mtu),
                _ => None,
            }),
            _ => None,
        })
        .unwrap_or(DEFAULT_MTU))
}

/// Create (or adopt, if it exists) a bridge named `name` in `ns`, give it `address` (the gateway
/// with the subnet's prefix, and `address6` the same for a dual-stack network), set its MTU and
/// bring it up. Idempotent, for reconcile at start.
pub fn ensure_bridge(
    ns: Option<&NetNs>,
    name: &str,
    address: Ipv4Network,
    address6: Option<Ipv6Network>,
    mtu: u32,
) -> Result<()> {
    let mut nl = Netlink::open(ns)?;
    let mut msg = link_by_name_msg(name);
    msg.attributes.push(LinkAttribute::Mtu(mtu));
    // A MAC of its own, or the bridge takes the lowest MAC of its ports and changes it as
    // containers come and go, breaking the containers' neighbour entries for the gateway.
    msg.attributes
        .push(LinkAttribute::Address(random_mac().to_vec()));
    msg.attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::Bridge,
        )]));
    match nl.ack(
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        &format!("create bridge {name}"),
    ) {
        Ok(()) => {}
        Err(e) if is_eexist(&e) => {}
        Err(e) => return Err(e),
    }
    let index = require_index(&mut nl, name)?;
    add_address(&mut nl, index, name, address)?;
    if let Some(a6) = address6 {
        add_address6(&mut nl, index, name, a6)?;
    }
    set_up(&mut nl, index, name)
}

/// Delete the link `name` in `ns`; a link that is already gone is not an error. Deleting one end
/// of a veth pair deletes both.
pub fn delete_link(ns: Option<&NetNs>, name: &str) -> Result<()> {
    let mut nl = Netlink::open(ns)?;
    match nl.ack(
        RouteNetlinkMessage::DelLink(link_by_name_msg(name)),
        0,
        &format!("delete link {name}"),
    ) {
        Err(e) if is_enodev(&e) => Ok(()),
        other => other,
    }
}

/// What to build for one endpoint: a veth pair from a bridge into a container namespace.
#[derive(Debug, Clone)]
pub struct VethSpec {
    /// Host-side name (see [`random_veth_name`]).
    pub host_name: String,
    /// The bridge the host end joins.
    pub bridge: String,
    /// Interface name inside the container (`eth0`).
    pub container_ifname: String,
    /// The container's address with the subnet's prefix.
    pub address: Ipv4Network,
    /// The container interface's MAC.
    pub mac: Mac,
    /// Default gateway for the container, `None` for `--internal` networks.
    pub gateway: Option<Ipv4Addr>,
    /// The container's IPv6 address with the subnet's prefix, on a dual-stack network.
    pub address6: Option<Ipv6Network>,
    /// IPv6 default gateway, when the network has IPv6 and the interface routes.
    pub gateway6: Option<Ipv6Addr>,
    /// Extra link-local addresses (`--link-local-ip`), added as dockerd adds them: IPv4 with a `/16`,
    /// IPv6 with a `/64`.
    pub link_local: Vec<std::net::IpAddr>,
    /// MTU of both ends.
    pub mtu: u32,
}

/// Build an endpoint: the veth pair is created with its peer directly inside `container`
/// (named, addressed and MAC'd there, so no temporary name ever appears on the host), the host
/// end joins the bridge and comes up; inside, `lo` and the interface come up and the default
/// route points at the gateway. On failure the host end is deleted, which removes the pair.
pub fn create_endpoint(host: Option<&NetNs>, container: &NetNs, spec: &VethSpec) -> Result<()> {
    for name in [&spec.host_name, &spec.container_ifname] {
        validate_ifname(name)?;
    }
    let mut nl = Netlink::open(host)?;
    let bridge_index = require_index(&mut nl, &spec.bridge)?;

    let mut peer = LinkMessage::default();
    peer.attributes = vec![
        LinkAttribute::IfName(spec.container_ifname.clone()),
        LinkAttribute::Mtu(spec.mtu),
        LinkAttribute::Address(spec.mac.to_vec()),
        LinkAttribute::NetNsFd(container.fd().as_raw_fd()),
    ];
    let mut msg = link_by_name_msg(&spec.host_name);
    msg.header.flags = LinkFlags::Up;
    msg.header.change_mask = LinkFlags::Up;
    msg.attributes.push(LinkAttribute::Mtu(spec.mtu));
    msg.attributes.push(LinkAttribute::Controller(bridge_index));
    msg.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    nl.ack(
        RouteNetlinkMessage::NewLink(msg),
        NLM_F_CREATE | NLM_F_EXCL,
        &format!(
            "create veth {} in bridge {} with peer {} in {}",
            spec.host_name,
            spec.bridge,
            spec.container_ifname,
            container.label()
        ),
    )?;

    if let Err(e) = configure_container_side(container, spec) {
        if let Err(err) = delete_link(host, &spec.host_name) {
            tracing::warn!(link = %spec.host_name, error = %err, "deleting a veth whose container side failed");
        }
        return Err(e);
    }
    Ok(())
}

fn configure_container_side(container: &NetNs, spec: &VethSpec) -> Result<()> {
    let mut nl = Netlink::open(Some(container))?;
    let lo = require_index(&mut nl, "lo")?;
    set_up(&mut nl, lo, "lo")?;
    let index = require_index(&mut nl, &spec.container_ifname)?;
    // Docker 28 announces a new endpoint with an unsolicited ARP, so neighbours that cached a
    // recycled IP with an old MAC learn the new one; arp_notify makes the kernel send it when
    // the link comes up. Best effort: a read-only /proc/sys only loses the announcement.
    let ifname = spec.container_ifname.clone();
    // As dockerd: IPv6 is on for an interface if and only if its network has IPv6 (or it is given an
    // IPv6 link-local address); an IPv4-only interface with IPv6 on would join IPv6 multicast groups
    // and take router advertisements, open to NDP spoofing from other containers. Best effort too: a
    // kernel without IPv6 has no such file.
    let ipv6 = spec.address6.is_some() || spec.link_local.iter().any(|ip| ip.is_ipv6());
    let _ = container.run(move || {
        let _ = std::fs::write(format!("/proc/sys/net/ipv4/conf/{ifname}/arp_notify"), "1");
        let _ = std::fs::write(
            format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6"),
            if ipv6 { "0" } else { "1" },
        );
    });
    add_address(&mut nl, index, &spec.container_ifname, spec.address)?;
    if let Some(a6) = spec.address6 {
        add_address6(&mut nl, index, &spec.container_ifname, a6)?;
    }
    for ip in &spec.link_local {
        let bad =
            |e: ipnetwork::IpNetworkError| Error::InvalidConfig(format!("link-local IP {ip}: {e}"));
        match *ip {
            std::net::IpAddr::V4(v4) => add_address(
                &mut nl,
                index,
                &spec.container_ifname,
                Ipv4Network::new(v4, 16).map_err(bad)?,
            )?,
            std::net::IpAddr::V6(v6) => add_address6(
                &mut nl,
                index,
                &spec.container_ifname,
                Ipv6Network::new(v6, 64).map_err(bad)?,
            )?,
        }
    }
    set_up(&mut nl, index, &spec.container_ifname)?;
    if let Some(gw) = spec.gateway {
        add_default_route(&mut nl, index, gw)?;
    }
    if let Some(gw6) = spec.gateway6 {
        add_default_route6(&mut nl, index, gw6)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_mac_is_02_42_and_the_ipv4_bytes() {
        assert_eq!(
            format_mac(&mac_from_ipv4(Ipv4Addr::new(172, 17, 0, 2))),
            "02:42:ac:11:00:02"
        );
    }

    #[test]
    fn random_mac_is_unicast_and_locally_administered() {
        for _ in 0..64 {
            let m = random_mac();
            assert_eq!(m[0] & 0x01, 0, "multicast bit set in {}", format_mac(&m));
            assert_eq!(m[0] & 0x02, 0x02, "not locally administered");
        }
    }

    #[test]
    fn interface_names_that_escape_proc_paths_are_rejected() {
        assert!(validate_ifname("eth0").is_ok());
        for bad in ["", "../../x", "a/b", "sixteen-chars-xx", "..", "a b"] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn veth_names_fit_ifnamsiz_and_look_like_dockers() {
        let n = random_veth_name();
        assert_eq!(n.len(), 11);
        assert!(n.starts_with("veth"));
        assert!(n[4..].chars().all(|c| c.is_ascii_hexdigit()));
    }
}
