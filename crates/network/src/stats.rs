//! Interface counters of a container, in the shape of Docker's stats `networks` map.

use std::collections::BTreeMap;

use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::netlink::Netlink;
use crate::netns::NetNs;

/// One interface's counters, with the JSON field names of Docker's `NetworkStats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Incoming packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Transmit errors.
    pub tx_errors: u64,
    /// Outgoing packets dropped.
    pub tx_dropped: u64,
}

/// Counters of every interface in `netns` except `lo`, keyed by interface name (Docker's
/// `networks` map: `{"eth0": {...}}`), read through netlink (`IFLA_STATS64`).
pub fn interface_stats(netns: &NetNs) -> Result<BTreeMap<String, InterfaceStats>> {
    let mut nl = Netlink::open(Some(netns))?;
    let msgs = nl.dump(
        RouteNetlinkMessage::GetLink(LinkMessage::default()),
        &format!("list links in {}", netns.label()),
    )?;
    let mut out = BTreeMap::new();
    for m in msgs {
        let RouteNetlinkMessage::NewLink(link) = m else {
            continue;
        };
        let mut name = None;
        let mut stats = None;
        for a in link.attributes {
            match a {
                LinkAttribute::IfName(n) => name = Some(n),
                LinkAttribute::Stats64(s) => {
                    stats = Some(InterfaceStats {
                        rx_bytes: s.rx_bytes,
                        rx_packets: s.rx_packets,
                        rx_errors: s.rx_errors,
                        rx_dropped: s.rx_dropped,
                        tx_bytes: s.tx_bytes,
                        tx_packets: s.tx_packets,
                        tx_errors: s.tx_errors,
                        tx_dropped: s.tx_dropped,
                    })
                }
                _ => {}
            }
        }
        if let Some(name) = name.filter(|n| n != "lo") {
            out.insert(name, stats.unwrap_or_default());
        }
    }
    Ok(out)
}
