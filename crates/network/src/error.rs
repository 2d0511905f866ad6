//! The one error type of the `network` crate.

use std::io;
use std::path::PathBuf;

/// Everything that can fail in Berth's bridge networking, each variant naming what failed on what.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening, creating or entering a network namespace failed.
    #[error("network namespace {what}: {source}")]
    Netns {
        /// The namespace (path or description) and the step.
        what: String,
        /// The underlying OS error.
        source: io::Error,
    },
    /// A netlink request was refused by the kernel or the socket failed.
    #[error("netlink {op}: {source}")]
    Netlink {
        /// The operation, e.g. `create bridge berth0`.
        op: String,
        /// The kernel's error.
        source: io::Error,
    },
    /// A netlink reply could not be decoded.
    #[error("netlink {op}: cannot decode reply: {reason}")]
    NetlinkDecode {
        /// The operation whose reply was bad.
        op: String,
        /// What the decoder said.
        reason: String,
    },
    /// Reading or writing a state record failed.
    #[error("state record {path}: {source}")]
    State {
        /// The record file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// A state record holds JSON that does not parse.
    #[error("state record {path}: {source}")]
    StateJson {
        /// The record file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// A subnet, gateway or IP range given by the user is invalid (Docker's wording).
    #[error("{0}")]
    InvalidConfig(String),
    /// No default pool is free (Docker's wording).
    #[error(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    )]
    NoPoolAvailable,
    /// No free `/64` was left in the daemon's IPv6 pool (Docker's wording).
    #[error("could not find an available, non-overlapping IPv6 address pool among the defaults to assign to the network")]
    NoPoolAvailable6,
    /// Every address of the network's IPv6 pool is taken.
    #[error("no available IPv6 addresses on this network's address pools: {network} ({subnet})")]
    AddressesExhausted6 {
        /// The network's name.
        network: String,
        /// The pool that is full.
        subnet: String,
    },
    /// A requested subnet overlaps another Berth network (Docker's wording).
    #[error("Pool overlaps with other one on this address space")]
    PoolOverlap,
    /// Every address of the network's pool is taken.
    #[error("no available IPv4 addresses on this network's address pools: {network} ({subnet})")]
    AddressesExhausted {
        /// The network's name.
        network: String,
        /// The pool that is full.
        subnet: String,
    },
    /// A specific address (`--ip`) is already allocated (Docker's wording).
    #[error("Address already in use")]
    AddressInUse,
    /// A specific address lies outside the network's subnet or range (Docker's wording).
    #[error("Invalid address {ip}: It does not belong to any of this network's subnets")]
    AddressOutOfRange {
        /// The requested address.
        ip: String,
    },
    /// No endpoint exists for this container on this network.
    #[error("endpoint for container {container} not found on network {network}")]
    NoSuchEndpoint {
        /// The container ID.
        container: String,
        /// The network name.
        network: String,
    },
    /// A container is already attached to this network.
    #[error("endpoint with name {container} already exists in network {network}")]
    EndpointExists {
        /// The container ID.
        container: String,
        /// The network name.
        network: String,
    },
    /// The network still has containers attached (Docker's wording).
    #[error("error while removing network: network {name} id {id} has active endpoints")]
    ActiveEndpoints {
        /// The network's name.
        name: String,
        /// The network's ID.
        id: String,
    },
    /// A `-p` port specification does not parse (go-connections' wording).
    #[error("{0}")]
    PortSpec(String),
    /// The host port is taken, by Berth or by another process (Docker's wording).
    #[error("Bind for {addr} failed: port is already allocated")]
    PortAllocated {
        /// `host_ip:port` as Docker prints it.
        addr: String,
    },
    /// No ephemeral host port is free in the range.
    #[error("no free host port in range {start}-{end} for {proto}")]
    NoFreePort {
        /// First port of the range.
        start: u16,
        /// Last port of the range.
        end: u16,
        /// `tcp` or `udp`.
        proto: String,
    },
    /// Publishing ports of an endpoint failed (Docker's wording, wrapping the cause).
    #[error("driver failed programming external connectivity on endpoint {endpoint}: {source}")]
    ExternalConnectivity {
        /// The endpoint (container name and ID, as Docker prints it).
        endpoint: String,
        /// What failed.
        source: Box<Error>,
    },
    /// Running `nft` failed or it refused the ruleset.
    #[error("nftables {op}: {reason}")]
    Nft {
        /// The operation (`reconcile`, `list table inet berth`, …).
        op: String,
        /// The tool's error output or the spawn error.
        reason: String,
    },
    /// A socket of the proxy or DNS server failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, on which address.
        what: String,
        /// The I/O error.
        source: io::Error,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}
