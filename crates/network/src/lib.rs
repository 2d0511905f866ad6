//! Docker-compatible bridge networking for Berth.
//!
//! One job per module: [`ipam`] hands out subnets and addresses, [`link`] makes bridges and veth
//! pairs over netlink, [`firewall`] keeps Berth's nftables tables, [`portmap`] parses and allocates
//! published ports that [`proxy`] serves in userland, [`dns`] answers container names, [`stats`]
//! reads interface counters, and [`network`] ties them into the object the engine uses.

#![deny(missing_docs)]

pub mod dns;
pub mod error;
pub mod firewall;
pub mod ipam;
pub mod link;
mod netlink;
pub mod netns;
pub mod network;
pub mod portmap;
pub mod proxy;
mod state;
pub mod stats;

pub use error::{Error, Result};
pub use firewall::{Backend, DnatRule, Firewall, NetworkSpec};
pub use netns::NetNs;
pub use network::{AttachRequest, Endpoint, Network, NetworkOptions, NetworkRecord};
pub use portmap::{parse_port_spec, PortBinding, PortMapper, PortSpec, Proto};
