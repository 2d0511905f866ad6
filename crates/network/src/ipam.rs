//! IP address management: pick a subnet for a new network, hand out and take back addresses.
//!
//! Each network's pool is one JSON record (`<state_dir>/ipam/<network_id>.json`), rewritten
//! atomically on every change so a daemon restart finds the same allocations.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnetwork::{IpNetwork, Ipv4Network, Ipv6Network};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::state;

/// Docker's default local address pools, in the order Docker tries them: the `/16`s
/// 172.17–172.31, then 192.168.0.0/16 carved into `/20`s.
pub fn default_pools() -> Vec<Ipv4Network> {
    let mut pools = Vec::new();
    for second in 17u8..=31 {
        if let Ok(n) = Ipv4Network::new(Ipv4Addr::new(172, second, 0, 0), 16) {
            pools.push(n);
        }
    }
    for third in (0u16..256).step_by(16) {
        if let Ok(n) = Ipv4Network::new(Ipv4Addr::new(192, 168, third as u8, 0), 20) {
            pools.push(n);
        }
    }
    pools
}

/// Whether two subnets share any address.
pub fn overlaps(a: Ipv4Network, b: Ipv4Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// Choose the first default pool that overlaps neither a route of the host (`routes`, the default
/// route excluded) nor another Berth network (`taken`).
pub fn select_subnet(routes: &[Ipv4Network], taken: &[Ipv4Network]) -> Result<Ipv4Network> {
    default_pools()
        .into_iter()
        .find(|pool| {
            !routes
                .iter()
                .filter(|r| r.prefix() != 0)
                .any(|r| overlaps(*pool, *r))
                && !taken.iter().any(|t| overlaps(*pool, *t))
        })
        .ok_or(Error::NoPoolAvailable)
}

/// Whether two IPv6 subnets share any address.
pub fn overlaps6(a: Ipv6Network, b: Ipv6Network) -> bool {
    a.contains(b.network()) || b.contains(a.network())
}

/// The `/48` of unique local addresses (RFC 4193, `fdXX:XXXX:XXXX::/48`) a daemon carves its
/// automatic IPv6 subnets from, its 40-bit global ID taken from `seed` (Docker 28 derives it from
/// the daemon's host ID the same way, so each host gets its own prefix and it stays stable).
pub fn ula_base(seed: &[u8; 5]) -> Result<Ipv6Network> {
    let mut b = [0u8; 16];
    b[0] = 0xfd;
    b[1..6].copy_from_slice(seed);
    Ipv6Network::new(Ipv6Addr::from(b), 48).map_err(|e| Error::InvalidConfig(e.to_string()))
}

/// Choose the first `/64` of `base` that overlaps neither a route of the host nor another
/// network's IPv6 subnet (Docker 28's default IPv6 pool for `--ipv6` without `--subnet`).
pub fn select_subnet6(
    base: Ipv6Network,
    routes: &[Ipv6Network],
    taken: &[Ipv6Network],
) -> Result<Ipv6Network> {
    let start = u128::from(base.network());
    let count: u128 = 1 << (64u32.saturating_sub(u32::from(base.prefix())));
    for i in 0..count.min(1 << 16) {
        let Ok(cand) = Ipv6Network::new(Ipv6Addr::from(start + (i << 64)), 64) else {
            continue;
        };
        let clash = routes
            .iter()
            .filter(|r| r.prefix() != 0)
            .any(|r| overlaps6(cand, *r))
            || taken.iter().any(|t| overlaps6(cand, *t));
        if !clash {
            return Ok(cand);
        }
    }
    Err(Error::NoPoolAvailable6)
}

/// The IPv6 half of a dual-stack network's pool: the gateway is the subnet's first address and
/// containers get the next ones, as in Docker (there is no broadcast address to skip).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool6 {
    /// The IPv6 subnet (`--subnet fd00::/64`).
    pub subnet: Ipv6Network,
    /// The gateway, the bridge's IPv6 address.
    pub gateway: Ipv6Addr,
    /// `--ip-range` for IPv6, the whole subnet if `None`.
    pub ip_range: Option<Ipv6Network>,
    /// Addresses never handed out (IPAM `AuxiliaryAddresses`).
    #[serde(default)]
    pub reserved: Vec<Ipv6Addr>,
    /// Allocated addresses and their owner.
    pub allocated: BTreeMap<Ipv6Addr, String>,
}

/// Docker's checks of a pool request that both families share: the subnet (already its own network) leaves
/// room for a gateway and an endpoint (a prefix of at most `max_prefix`), and the ip-range lies within it.
fn check_room_and_range(
    subnet: IpNetwork,
    max_prefix: u8,
    ip_range: Option<IpNetwork>,
) -> Result<()> {
    if subnet.prefix() > max_prefix {
        return Err(Error::InvalidConfig(format!(
            "invalid subnet {subnet}: too small for a gateway and an endpoint"
        )));
    }
    if let Some(range) = ip_range {
        if !subnet.contains(range.network()) || range.prefix() < subnet.prefix() {
            return Err(Error::InvalidConfig(format!(
                "invalid pool request: ip-range {range} is not within subnet {subnet}"
            )));
        }
    }
    Ok(())
}

impl Pool6 {
    /// Validate an IPv6 subnet/gateway/range triple and make an empty pool.
    pub fn new(
        subnet: Ipv6Network,
        gateway: Option<Ipv6Addr>,
        ip_range: Option<Ipv6Network>,
    ) -> Result<Self> {
        let subnet = Ipv6Network::new(subnet.network(), subnet.prefix())
            .map_err(|e| Error::InvalidConfig(format!("invalid subnet {subnet}: {e}")))?;
        check_room_and_range(subnet.into(), 126, ip_range.map(IpNetwork::from))?;
        let gateway = gateway.unwrap_or(Ipv6Addr::from(u128::from(subnet.network()) + 1));
        if !subnet.contains(gateway) || gateway == subnet.network() {
            return Err(Error::InvalidConfig(format!(
                "invalid gateway {gateway}: not a host address of subnet {subnet}"
            )));
        }
        Ok(Pool6 {
            subnet,
            gateway,
            ip_range,
            reserved: Vec::new(),
            allocated: BTreeMap::new(),
        })
    }

    fn taken(&self, ip: Ipv6Addr) -> bool {
        ip == self.gateway || self.allocated.contains_key(&ip) || self.reserved.contains(&ip)
    }

    /// Allocate the lowest free address of the range.
    pub fn allocate_next(&mut self, owner: &str, network_name: &str) -> Result<Ipv6Addr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let start = u128::from(range.network());
        let end = u128::from(range.broadcast());
        // Bounded: a /64 has 2^64 addresses, and a walk that long means the pool is full anyway.
        let mut n = start;
        let mut steps = 0u32;
        while n <= end && steps < 1 << 20 {
            let ip = Ipv6Addr::from(n);
            if ip != self.subnet.network() && !self.taken(ip) {
                self.allocated.insert(ip, owner.to_string());
                return Ok(ip);
            }
            n += 1;
            steps += 1;
        }
        Err(Error::AddressesExhausted6 {
            network: network_name.to_string(),
            subnet: self.subnet.to_string(),
        })
    }

    /// Allocate one given address (`--ip6`).
    pub fn allocate_specific(&mut self, ip: Ipv6Addr, owner: &str) -> Result<Ipv6Addr> {
        if !self.subnet.contains(ip) || ip == self.subnet.network() {
            return Err(Error::AddressOutOfRange { ip: ip.to_string() });
        }
        if self.taken(ip) {
            return Err(Error::AddressInUse);
        }
        self.allocated.insert(ip, owner.to_string());
        Ok(ip)
    }

    /// Give an address back.
    pub fn release(&mut self, ip: Ipv6Addr) {
        self.allocated.remove(&ip);
    }
}

/// The address pool of one network and who holds which address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The network's subnet (`--subnet`).
    pub subnet: Ipv4Network,
    /// The gateway, the bridge's own address (`--gateway`, default the first host address).
    pub gateway: Ipv4Addr,
    /// The sub-pool addresses are handed out from (`--ip-range`), the whole subnet if `None`.
    pub ip_range: Option<Ipv4Network>,
    /// Allocated addresses and their owner (a container ID).
    pub allocated: BTreeMap<Ipv4Addr, String>,
    /// Addresses never handed out (IPAM `AuxiliaryAddresses`).
    #[serde(default)]
    pub reserved: Vec<Ipv4Addr>,
    /// The IPv6 pool of a dual-stack network (`--ipv6`).
    #[serde(default)]
    pub v6: Option<Pool6>,
}

impl Pool {
    /// Validate a subnet/gateway/range triple with Docker's rules and make an empty pool.
    pub fn new(
        subnet: Ipv4Network,
        gateway: Option<Ipv4Addr>,
        ip_range: Option<Ipv4Network>,
    ) -> Result<Self> {
        // A subnet written with host bits (the daemon's --bip 10.1.2.3/16) stands for its network; the API
        // refuses one with dockerd's words before it gets here (engine/src/networks/ipam_request.rs).
        let subnet = Ipv4Network::new(subnet.network(), subnet.prefix())
            .map_err(|e| Error::InvalidConfig(format!("invalid subnet {subnet}: {e}")))?;
        check_room_and_range(subnet.into(), 30, ip_range.map(IpNetwork::from))?;
        let first_host = Ipv4Addr::from(u32::from(subnet.network()) + 1);
        let gateway = gateway.unwrap_or(first_host);
        if !subnet.contains(gateway) || gateway == subnet.network() || gateway == subnet.broadcast()
        {
            return Err(Error::InvalidConfig(format!(
                "invalid gateway {gateway}: not a host address of subnet {subnet}"
            )));
        }
        Ok(Pool {
            subnet,
            gateway,
            ip_range,
            allocated: BTreeMap::new(),
            reserved: Vec::new(),
            v6: None,
        })
    }

    fn usable(&self, ip: Ipv4Addr) -> bool {
        self.subnet.contains(ip)
            && ip != self.subnet.network()
            && ip != self.subnet.broadcast()
            && ip != self.gateway
            && !self.reserved.contains(&ip)
    }

    /// Allocate the lowest free address of the range (Docker reuses freed addresses first).
    pub fn allocate_next(&mut self, owner: &str, network_name: &str) -> Result<Ipv4Addr> {
        let range = self.ip_range.unwrap_or(self.subnet);
        let start = u32::from(range.network());
        let end = u32::from(range.broadcast());
        for n in start..=end {
            let ip = Ipv4Addr::from(n);
            if self.usable(ip) && !self.allocated.contains_key(&ip) {
                self.allocated.insert(ip, owner.to_string());
                return Ok(ip);
            }
        }
        Err(Error::AddressesExhausted {
            network: network_name.to_string(),
            subnet: self.subnet.to_string(),
        })
    }

    /// Allocate one given address (`--ip`); it may lie anywhere in the subnet, as in Docker.
    pub fn allocate_specific(&mut self, ip: Ipv4Addr, owner: &str) -> Result<Ipv4Addr> {
        if !self.subnet.contains(ip) || ip == self.subnet.network() || ip == self.subnet.broadcast()
        {
            return Err(Error::AddressOutOfRange { ip: ip.to_string() });
        }
        if ip == self.gateway || self.allocated.contains_key(&ip) || self.reserved.contains(&ip) {
            return Err(Error::AddressInUse);
        }
        self.allocated.insert(ip, owner.to_string());
        Ok(ip)
    }

    /// Give an address back; releasing a free address is not an error.
    pub fn release(&mut self, ip: Ipv4Addr) {
        self.allocated.remove(&ip);
    }
}

/// A pool together with the record file it lives in.
#[derive(Debug)]
pub struct PoolStore {
    path: PathBuf,
    /// The pool as last saved.
    pub pool: Pool,
}

impl PoolStore {
    /// Path of the record of `network_id` under `state_dir`.
    pub fn record_path(state_dir: &Path, network_id: &str) -> PathBuf {
        state_dir.join("ipam").join(format!("{network_id}.json"))
    }

    /// Create and save a new record.
    pub fn create(state_dir: &Path, network_id: &str, pool: Pool) -> Result<Self> {
        let store = PoolStore {
            path: Self::record_path(state_dir, network_id),
            pool,
        };
        store.save()?;
        Ok(store)
    }

    /// Load an existing record, `None` if there is none.
    pub fn load(state_dir: &Path, network_id: &str) -> Result<Option<Self>> {
        let path = Self::record_path(state_dir, network_id);
        Ok(state::read_json(&path)?.map(|pool| PoolStore { path, pool }))
    }

    /// Write the record atomically.
    pub fn save(&self) -> Result<()> {
        state::write_json(&self.path, &self.pool)
    }

    /// Run a change on the pool and persist it (without fsync: allocations live as long as the
    /// kernel's endpoints, see `state::write_json_volatile`); on a save failure the change is rolled
    /// back.
    pub fn update<T>(&mut self, f: impl FnOnce(&mut Pool) -> Result<T>) -> Result<T> {
        let before = self.pool.clone();
        let out = f(&mut self.pool)?;
        if let Err(e) = state::write_json_volatile(&self.path, &self.pool) {
            self.pool = before;
            return Err(e);
        }
        Ok(out)
    }

    /// Delete the record file.
    pub fn remove(self) -> Result<()> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::State {
                path: self.path,
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Network {
        s.parse().unwrap()
    }

    #[test]
    fn first_default_pool_is_docker0s_subnet() {
        assert_eq!(select_subnet(&[], &[]).unwrap(), net("172.17.0.0/16"));
    }

    #[test]
    fn pool_selection_skips_host_routes_and_other_networks() {
        let routes = [net("0.0.0.0/0"), net("172.17.5.0/24"), net("10.0.0.0/8")];
        let taken = [net("172.18.0.0/16")];
        assert_eq!(
            select_subnet(&routes, &taken).unwrap(),
            net("172.19.0.0/16")
        );
    }

    #[test]
    fn pool_selection_falls_back_to_192_168_blocks_then_fails() {
        let routes = [net("172.16.0.0/12"), net("192.168.0.0/20")];
        assert_eq!(select_subnet(&routes, &[]).unwrap(), net("192.168.16.0/20"));
        let all = [net("172.16.0.0/12"), net("192.168.0.0/16")];
        assert!(matches!(
            select_subnet(&all, &[]),
            Err(Error::NoPoolAvailable)
        ));
    }

    #[test]
    fn allocation_skips_network_gateway_and_broadcast_until_exhausted() {
        let mut p = Pool::new(net("10.9.0.0/29"), None, None).unwrap();
        assert_eq!(p.gateway, Ipv4Addr::new(10, 9, 0, 1));
        let got: Vec<_> = (0..5)
            .map(|i| p.allocate_next(&format!("c{i}"), "n").unwrap())
            .collect();
        assert_eq!(got.first(), Some(&Ipv4Addr::new(10, 9, 0, 2)));
        assert_eq!(got.last(), Some(&Ipv4Addr::new(10, 9, 0, 6)));
        let err = p.allocate_next("c6", "n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "no available IPv4 addresses on this network's address pools: n (10.9.0.0/29)"
        );
    }

    #[test]
    fn released_address_is_reused_first() {
        let mut p = Pool::new(net("10.9.0.0/24"), None, None).unwrap();
        let a = p.allocate_next("a", "n").unwrap();
        let _b = p.allocate_next("b", "n").unwrap();
        p.release(a);
        assert_eq!(p.allocate_next("c", "n").unwrap(), a);
    }

    #[test]
    fn specific_address_errors_match_docker() {
        let mut p = Pool::new(net("10.9.0.0/24"), None, None).unwrap();
        assert_eq!(
            p.allocate_specific(Ipv4Addr::new(10, 9, 0, 50), "a")
                .unwrap(),
            Ipv4Addr::new(10, 9, 0, 50)
        );
        assert_eq!(
            p.allocate_specific(Ipv4Addr::new(10, 9, 0, 50), "b")
                .unwrap_err()
                .to_string(),
            "Address already in use"
        );
        assert_eq!(
            p.allocate_specific(Ipv4Addr::new(10, 9, 0, 1), "b")
                .unwrap_err()
                .to_string(),
            "Address already in use"
        );
        assert_eq!(
            p.allocate_specific(Ipv4Addr::new(10, 10, 0, 5), "b")
                .unwrap_err()
                .to_string(),
            "Invalid address 10.10.0.5: It does not belong to any of this network's subnets"
        );
    }

    #[test]
    fn ip_range_limits_automatic_allocation() {
        let mut p = Pool::new(net("10.9.0.0/16"), None, Some(net("10.9.5.0/30"))).unwrap();
        assert_eq!(
            p.allocate_next("a", "n").unwrap(),
            Ipv4Addr::new(10, 9, 5, 0)
        );
        assert_eq!(
            p.allocate_next("b", "n").unwrap(),
            Ipv4Addr::new(10, 9, 5, 1)
        );
        assert_eq!(
            p.allocate_next("c", "n").unwrap(),
            Ipv4Addr::new(10, 9, 5, 2)
        );
        assert_eq!(
            p.allocate_next("d", "n").unwrap(),
            Ipv4Addr::new(10, 9, 5, 3)
        );
        assert!(p.allocate_next("e", "n").is_err());
        assert!(Pool::new(net("10.9.0.0/16"), None, Some(net("10.10.0.0/24"))).is_err());
    }

    #[test]
    fn gateway_outside_subnet_is_rejected() {
        assert!(Pool::new(net("10.9.0.0/24"), Some(Ipv4Addr::new(10, 8, 0, 1)), None).is_err());
        let p = Pool::new(net("10.9.0.7/24"), Some(Ipv4Addr::new(10, 9, 0, 254)), None).unwrap();
        assert_eq!(p.subnet, net("10.9.0.0/24"));
        assert_eq!(p.gateway, Ipv4Addr::new(10, 9, 0, 254));
    }

    #[test]
    fn ipv6_gateway_is_the_first_address_and_containers_get_the_next() {
        let mut p = Pool6::new("fd00:1::/64".parse().unwrap(), None, None).unwrap();
        assert_eq!(p.gateway, "fd00:1::1".parse::<Ipv6Addr>().unwrap());
        p.reserved.push("fd00:1::3".parse().unwrap());
        let a = p.allocate_next("a", "n").unwrap();
        let b = p.allocate_next("b", "n").unwrap();
        assert_eq!(a, "fd00:1::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(b, "fd00:1::4".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            p.allocate_specific("fd00:1::4".parse().unwrap(), "c")
                .unwrap_err()
                .to_string(),
            "Address already in use"
        );
        assert!(p
            .allocate_specific("fd00:2::4".parse().unwrap(), "c")
            .is_err());
        p.release(a);
        assert_eq!(p.allocate_next("d", "n").unwrap(), a);
    }

    #[test]
    fn automatic_ipv6_subnets_are_slash_64s_of_the_ula_base() {
        let base = ula_base(&[1, 2, 3, 4, 5]).unwrap();
        assert_eq!(base.to_string(), "fd01:203:405::/48");
        let first = select_subnet6(base, &[], &[]).unwrap();
        assert_eq!(first.to_string(), "fd01:203:405::/64");
        let second = select_subnet6(base, &[], &[first]).unwrap();
        assert_eq!(second.to_string(), "fd01:203:405:1::/64");
    }

    #[test]
    fn reserved_ipv4_addresses_are_never_handed_out() {
        let mut p = Pool::new(net("10.9.0.0/29"), None, None).unwrap();
        p.reserved.push(Ipv4Addr::new(10, 9, 0, 2));
        assert_eq!(
            p.allocate_next("a", "n").unwrap(),
            Ipv4Addr::new(10, 9, 0, 3)
        );
        assert!(p
            .allocate_specific(Ipv4Addr::new(10, 9, 0, 2), "b")
            .is_err());
    }

    #[test]
    fn allocations_survive_reload_from_the_record_file() {
        let dir = tempfile::tempdir().unwrap();
        let pool = Pool::new(net("10.9.0.0/24"), None, None).unwrap();
        let mut store = PoolStore::create(dir.path(), "net1", pool).unwrap();
        let a = store.update(|p| p.allocate_next("ctr-a", "n")).unwrap();
        let loaded = PoolStore::load(dir.path(), "net1").unwrap().unwrap();
        assert_eq!(
            loaded.pool.allocated.get(&a).map(String::as_str),
            Some("ctr-a")
        );
        let mut loaded = loaded;
        assert_eq!(
            loaded.update(|p| p.allocate_next("ctr-b", "n")).unwrap(),
            Ipv4Addr::new(10, 9, 0, 3)
        );
        loaded.remove().unwrap();
        assert!(PoolStore::load(dir.path(), "net1").unwrap().is_none());
    }
}
