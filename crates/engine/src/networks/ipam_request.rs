//! `IPAM.Config` of `POST /networks/create`: checked with dockerd's rules and words (`validateIpamConfig`),
//! then split by address family for the network crate.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use bollard_stubs::models::IpamConfig;
use ipnetwork::IpNetwork;

use crate::error::{Error, Result};

/// dockerd's error list: one error alone, several as `* ` lines (its `multierror.Join`).
pub(super) fn join_errors(errs: &[String]) -> String {
    match errs {
        [one] => one.trim().to_owned(),
        many => format!(
            "* {}",
            many.iter()
                .map(|e| e.replace('\n', "\n\t"))
                .collect::<Vec<_>>()
                .join("\n* ")
        ),
    }
}

fn family(v4: bool) -> u8 {
    if v4 {
        4
    } else {
        6
    }
}

fn masked(n: IpNetwork) -> IpNetwork {
    IpNetwork::new(n.network(), n.prefix()).unwrap_or(n)
}

/// An address (gateway, auxiliary) in its entry's subnet, as dockerd's `validateAddress`.
fn check_address(addr: IpAddr, subnet: IpNetwork) -> Option<String> {
    if addr.is_ipv4() != subnet.is_ipv4() {
        return Some(format!(
            "parent subnet is an IPv{} block",
            family(subnet.is_ipv4())
        ));
    }
    (!masked(subnet).contains(addr))
        .then(|| format!("parent subnet {subnet} doesn't contain this address"))
}

fn validate(configs: &[IpamConfig], enable_ipv6: bool) -> Result<()> {
    let mut errs = Vec::new();
    for cfg in configs {
        let Some(subnet) = cfg.subnet.as_deref().filter(|s| !s.is_empty()) else {
            continue;
        };
        let subnet: IpNetwork = subnet
            .parse()
            .map_err(|_| Error::InvalidParameter(format!("invalid subnet: {subnet}")))?;
        if subnet.is_ipv6() && !enable_ipv6 {
            continue;
        }
        let m = masked(subnet);
        if m != subnet {
            errs.push(format!("invalid subnet {subnet}: it should be {m}"));
        }
        if let Some(r) = cfg.ip_range.as_deref().filter(|s| !s.is_empty()) {
            let r: IpNetwork = r
                .parse()
                .map_err(|_| Error::InvalidParameter(format!("invalid ip-range: {r}")))?;
            if r.is_ipv4() != subnet.is_ipv4() {
                errs.push(format!(
                    "invalid ip-range {r}: parent subnet is an IPv{} block",
                    family(subnet.is_ipv4())
                ));
            } else {
                if r.prefix() < subnet.prefix() {
                    errs.push(format!(
                        "invalid ip-range {r}: CIDR block is bigger than its parent subnet {subnet}"
                    ));
                }
                if masked(r) != r {
                    errs.push(format!("invalid ip-range {r}: it should be {}", masked(r)));
                }
                if !m.contains(r.network()) && !r.contains(m.network()) {
                    errs.push(format!(
                        "invalid ip-range {r}: parent subnet {subnet} doesn't contain ip-range"
                    ));
                }
            }
        }
        if let Some(g) = cfg.gateway.as_deref().filter(|s| !s.is_empty()) {
            let ip: IpAddr = g
                .parse()
                .map_err(|_| Error::InvalidParameter(format!("invalid gateway address: {g}")))?;
            if let Some(e) = check_address(ip, subnet) {
                errs.push(format!("invalid gateway {g}: {e}"));
            }
        }
        for (name, a) in cfg.auxiliary_addresses.iter().flatten() {
            let ip: IpAddr = a.parse().map_err(|_| {
                Error::InvalidParameter(format!("invalid auxiliary address {name}: {a}"))
            })?;
            if let Some(e) = check_address(ip, subnet) {
                errs.push(format!("invalid auxiliary address {name}: {e}"));
            }
        }
    }
    if errs.is_empty() {
        return Ok(());
    }
    Err(Error::InvalidParameter(format!(
        "invalid network config:\n{}",
        join_errors(&errs)
    )))
}

/// One address family's IPAM request: subnet, gateway, range.
#[derive(Debug)]
pub(super) struct FamilyPlan<N, A> {
    pub(super) subnet: Option<N>,
    pub(super) gateway: Option<A>,
    pub(super) ip_range: Option<N>,
}

impl<N, A> Default for FamilyPlan<N, A> {
    fn default() -> Self {
        FamilyPlan {
            subnet: None,
            gateway: None,
            ip_range: None,
        }
    }
}

/// `IPAM.Config` split by family (at most one entry each, as Berth's bridge supports), with the auxiliary
/// addresses of all entries.
#[derive(Debug, Default)]
pub(super) struct IpamPlan {
    pub(super) v4: Option<FamilyPlan<ipnetwork::Ipv4Network, Ipv4Addr>>,
    pub(super) v6: Option<FamilyPlan<ipnetwork::Ipv6Network, std::net::Ipv6Addr>>,
    pub(super) aux: BTreeMap<String, std::net::IpAddr>,
}

impl IpamPlan {
    /// Splits `IPAM.Config` by family after checking it as dockerd does (`enable_ipv6`: IPv6 entries are
    /// checked only on a network with IPv6, as they are discarded otherwise).
    pub(super) fn parse(configs: &[IpamConfig], enable_ipv6: bool) -> Result<IpamPlan> {
        validate(configs, enable_ipv6)?;
        fn opt(s: &Option<String>) -> Option<&str> {
            s.as_deref().filter(|s| !s.is_empty())
        }
        fn parse<T: std::str::FromStr>(v: Option<&str>, what: &str) -> Result<Option<T>> {
            v.map(|v| {
                v.parse()
                    .map_err(|_| Error::InvalidParameter(format!("invalid {what}: {v}")))
            })
            .transpose()
        }
        let mut plan = IpamPlan::default();
        for cfg in configs {
            let Some(subnet) = opt(&cfg.subnet) else {
                if opt(&cfg.gateway).is_some() || opt(&cfg.ip_range).is_some() {
                    return Err(Error::InvalidParameter(
                        "invalid pool request: gateway and ip-range need a subnet".into(),
                    ));
                }
                continue;
            };
            let dup = || {
                Error::NotImplemented(
                    "more than one IPAM config per address family is not supported by Berth yet"
                        .into(),
                )
            };
            if subnet.contains(':') {
                if plan.v6.is_some() {
                    return Err(dup());
                }
                plan.v6 = Some(FamilyPlan {
                    subnet: parse(Some(subnet), "subnet")?,
                    gateway: parse(opt(&cfg.gateway), "gateway address")?,
                    ip_range: parse(opt(&cfg.ip_range), "ip-range")?,
                });
            } else {
                if plan.v4.is_some() {
                    return Err(dup());
                }
                plan.v4 = Some(FamilyPlan {
                    subnet: parse(Some(subnet), "subnet")?,
                    gateway: parse(opt(&cfg.gateway), "gateway address")?,
                    ip_range: parse(opt(&cfg.ip_range), "ip-range")?,
                });
            }
            for (k, v) in cfg.auxiliary_addresses.iter().flatten() {
                let ip = v.parse().map_err(|_| {
                    Error::InvalidParameter(format!("invalid auxiliary address {k}: {v}"))
                })?;
                plan.aux.insert(k.clone(), ip);
            }
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(subnet: &str, gateway: &str, range: &str) -> IpamConfig {
        IpamConfig {
            subnet: Some(subnet.into()),
            gateway: Some(gateway.into()),
            ip_range: Some(range.into()),
            auxiliary_addresses: None,
        }
    }

    #[test]
    fn ipam_errors_are_dockerds() {
        let e = IpamPlan::parse(&[cfg("10.1.2.3/16", "", "")], false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid network config:\ninvalid subnet 10.1.2.3/16: it should be 10.1.0.0/16"
        );
        let e = IpamPlan::parse(&[cfg("10.1.0.0/16", "10.2.0.1", "10.1.0.0/8")], false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("invalid network config:\n* invalid ip-range 10.1.0.0/8: CIDR block is bigger than its parent subnet 10.1.0.0/16\n* "), "{e}");
        assert!(e.contains("\n* invalid gateway 10.2.0.1: parent subnet 10.1.0.0/16 doesn't contain this address"), "{e}");
        // IPv6 entries are not checked (they are dropped) when the network has no IPv6.
        assert!(IpamPlan::parse(&[cfg("fd00::1/64", "", "")], false).is_ok());
        assert!(IpamPlan::parse(&[cfg("fd00::1/64", "", "")], true).is_err());
        let p = IpamPlan::parse(
            &[cfg("fd00::/64", "fd00::1", ""), cfg("10.3.0.0/24", "", "")],
            true,
        )
        .unwrap();
        assert_eq!(p.v6.unwrap().gateway.unwrap().to_string(), "fd00::1");
        assert_eq!(p.v4.unwrap().subnet.unwrap().to_string(), "10.3.0.0/24");
    }
}
