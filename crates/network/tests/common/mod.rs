//! Helpers for tests that build a throw-away "host" namespace and "container" namespaces.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use network::{link, NetNs, Network, NetworkOptions};

/// A fresh namespace with `lo` up.
pub fn netns(label: &str) -> Arc<NetNs> {
    let ns = NetNs::new_anonymous(label).unwrap();
    link::set_link_up(Some(&ns), "lo").unwrap();
    Arc::new(ns)
}

/// Options for a network with a given ID, name and driver options.
pub fn opts(id: &str, name: &str, driver: &[(&str, &str)]) -> NetworkOptions {
    NetworkOptions {
        id: id.to_string(),
        name: name.to_string(),
        driver_options: driver
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        ..NetworkOptions::default()
    }
}

/// A network in a fresh host namespace.
pub fn network(host: &Arc<NetNs>, dir: &std::path::Path, id: &str, bridge: &str) -> Network {
    Network::create(
        dir,
        Some(host.clone()),
        opts(id, id, &[(network::network::OPT_BRIDGE_NAME, bridge)]),
        &[],
    )
    .unwrap()
}

/// Enable IPv4 forwarding in `ns` (the sysctl file belongs to the opener's namespace).
pub fn enable_forwarding(ns: &NetNs) {
    ns.run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))
        .unwrap()
        .unwrap();
}
