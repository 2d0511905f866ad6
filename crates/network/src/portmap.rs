//! Published ports: Docker's `-p` syntax, host-port allocation, and the handles that keep a
//! binding (and its proxy) alive.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::netns::{run_in, NetNs};
use crate::proxy::{self, ProxyHandle};

/// Docker's default ephemeral host-port range, used when the kernel's cannot be read.
pub const DEFAULT_EPHEMERAL_RANGE: (u16, u16) = (32768, 60999);

/// A transport protocol of a published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP (parsed as Docker does; not proxied by Berth).
    Sctp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        })
    }
}

/// One parsed `-p` mapping (a container-port range expands to one per port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address to bind, all IPv4 addresses when `None`.
    pub host_ip: Option<IpAddr>,
    /// The host port range to allocate from; `(0, 0)` means an ephemeral port.
    pub host_ports: (u16, u16),
    /// The container port.
    pub container_port: u16,
    /// The protocol.
    pub proto: Proto,
}

fn parse_range(s: &str) -> std::result::Result<(u16, u16), ()> {
    if s.is_empty() {
        return Err(());
    }
    match s.split_once('-') {
        None => s.parse::<u16>().map(|p| (p, p)).map_err(|_| ()),
        Some((a, b)) => {
            let a = a.parse::<u16>().map_err(|_| ())?;
            let b = b.parse::<u16>().map_err(|_| ())?;
            if b < a {
                return Err(());
            }
            Ok((a, b))
        }
    }
}

/// Parse one `-p` value the way Docker (go-connections `nat.ParsePortSpec`) does, with its
/// error messages: `80`, `8080:80`, `127.0.0.1:8080:80/udp`, `127.0.0.1::80`,
/// `[::1]:8080:80`, `8000-8010:80-90`, `8000-8010:80` (host range to pick one from).
pub fn parse_port_spec(raw: &str) -> Result<Vec<PortSpec>> {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let last = parts[n - 1];
    let (ip, host) = match n {
        1 => (String::new(), ""),
        2 => (String::new(), parts[0]),
        3 => (parts[0].to_string(), parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    // Protocol after the last '/', "tcp" when absent or empty.
    let (container, proto) = {
        let pp: Vec<&str> = last.split('/').collect();
        if last.is_empty() || pp[0].is_empty() {
            ("", "")
        } else if pp.len() == 1 || pp[1].is_empty() {
            (pp[0], "tcp")
        } else {
            (pp[0], pp[1])
        }
    };
    let ip = match ip.strip_prefix('[') {
        Some(rest) => match rest.strip_suffix(']') {
            Some(inner) => inner.to_string(),
            None => {
                return Err(Error::PortSpec(format!(
                    "invalid IP address {ip}: missing ']' in address"
                )))
            }
        },
        None => ip,
    };
    let host_ip = if ip.is_empty() {
        None
    } else {
        Some(
            ip.parse::<IpAddr>()
                .map_err(|_| Error::PortSpec(format!("invalid IP address: {ip}")))?,
        )
    };
    if container.is_empty() {
        return Err(Error::PortSpec(format!("no port specified: {raw}<empty>")));
    }
    let (cstart, cend) = parse_range(container)
        .map_err(|_| Error::PortSpec(format!("invalid containerPort: {container}")))?;
    let (hstart, hend) = if host.is_empty() {
        (0, 0)
    } else {
        parse_range(host).map_err(|_| Error::PortSpec(format!("invalid hostPort: {host}")))?
    };
    if !host.is_empty() && (cend - cstart) != (hend - hstart) && cend != cstart {
        return Err(Error::PortSpec(format!(
            "invalid ranges specified for container and host Ports: {container} and {host}"
        )));
    }
    let proto = match proto.to_ascii_lowercase().as_str() {
        "tcp" => Proto::Tcp,
        "udp" => Proto::Udp,
        "sctp" => Proto::Sctp,
        _ => return Err(Error::PortSpec(format!("invalid proto: {proto}"))),
    };
    let same_len = !host.is_empty() && (cend - cstart) == (hend - hstart);
    Ok((cstart..=cend)
        .map(|cp| {
            let i = cp - cstart;
            let host_ports = if same_len {
                (hstart + i, hstart + i)
            } else {
                (hstart, hend)
            };
            PortSpec {
                host_ip,
                host_ports,
                container_port: cp,
                proto,
            }
        })
        .collect())
}

/// The kernel's ephemeral port range (`ip_local_port_range`) in the caller's namespace, else
/// Docker's default.
pub fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|p| p.parse::<u16>());
            match (it.next(), it.next()) {
                (Some(Ok(a)), Some(Ok(b))) if a <= b => Some((a, b)),
                _ => None,
            }
        })
        .unwrap_or(DEFAULT_EPHEMERAL_RANGE)
}

type Key = (IpAddr, u16, Proto);

/// Allocates host ports and starts a userland proxy per binding.
#[derive(Debug, Clone)]
pub struct PortMapper {
    taken: Arc<Mutex<HashSet<Key>>>,
    netns: Option<Arc<NetNs>>,
    range: (u16, u16),
    udp_idle: Duration,
    ipv6: bool,
}

/// A live published port; dropping it stops its proxy and frees the host port.
#[derive(Debug)]
pub struct PortBinding {
    /// The host address bound.
    pub host_ip: IpAddr,
    /// The host port bound.
    pub host_port: u16,
    /// The container's address the proxy forwards to: its IPv6 address for an IPv6 host address
    /// when it has one, else its IPv4 address.
    pub container_ip: IpAddr,
    /// The container's port.
    pub container_port: u16,
    /// The protocol.
    pub proto: Proto,
    _proxy: ProxyHandle,
    taken: Arc<Mutex<HashSet<Key>>>,
}

impl PortBinding {
    /// The DNAT rule the firewall adds for this binding, for a container on `bridge`.
    /// `None` for an IPv6 host address of a container without IPv6 (the `[::]` twin of a
    /// wildcard binding), which Berth serves through the proxy only, as dockerd does.
    pub fn dnat_rule(&self, bridge: &str) -> Option<crate::firewall::DnatRule> {
        if self.host_ip.is_ipv6() != self.container_ip.is_ipv6() {
            return None;
        }
        let host_ip = Some(self.host_ip).filter(|ip| !ip.is_unspecified());
        Some(crate::firewall::DnatRule {
            proto: self.proto,
            host_ip,
            host_port: self.host_port,
            container_ip: self.container_ip,
            container_port: self.container_port,
            bridge: bridge.to_string(),
        })
    }
}

impl Drop for PortBinding {
    fn drop(&mut self) {
        if let Ok(mut t) = self.taken.lock() {
            t.remove(&(self.host_ip, self.host_port, self.proto));
        }
    }
}

fn conflicts(taken: &HashSet<Key>, ip: IpAddr, port: u16, proto: Proto) -> bool {
    taken.iter().any(|(tip, tport, tproto)| {
        *tport == port
            && *tproto == proto
            && (*tip == ip
                || (tip.is_ipv4() == ip.is_ipv4() && (tip.is_unspecified() || ip.is_unspecified())))
    })
}

fn docker_addr(ip: IpAddr, port: u16) -> String {
    SocketAddr::new(ip, port).to_string()
}

impl PortMapper {
    /// A mapper binding host sockets in `netns` (the caller's namespace when `None`), with
    /// ephemeral ports from the kernel's range.
    pub fn new(netns: Option<Arc<NetNs>>) -> Self {
        let range = run_in(netns.as_deref(), ephemeral_range).unwrap_or(DEFAULT_EPHEMERAL_RANGE);
        PortMapper {
            taken: Arc::default(),
            netns,
            range,
            udp_idle: proxy::DEFAULT_UDP_IDLE,
            ipv6: true,
        }
    }

    /// Whether ports without a host address are also published on `[::]` (default: yes, as
    /// Docker 28 does where the host has IPv6).
    pub fn with_ipv6(mut self, ipv6: bool) -> Self {
        self.ipv6 = ipv6;
        self
    }

    /// Set how long an idle UDP flow is kept (default 90 s).
    pub fn with_udp_idle(mut self, idle: Duration) -> Self {
        self.udp_idle = idle;
        self
    }

    /// Bind every spec for the container `endpoint` (Docker prints `name (id)`) at
    /// `container_ip` and start its proxies. Must be called inside a tokio runtime. All or
    /// nothing: on error the bindings made so far are dropped, and the error reads as Docker's
    /// (`driver failed programming external connectivity on endpoint …: Bind for 0.0.0.0:8080
    /// failed: port is already allocated`).
    pub fn publish(
        &self,
        endpoint: &str,
        specs: &[PortSpec],
        container_ip: Ipv4Addr,
    ) -> Result<Vec<PortBinding>> {
        self.publish_dual(endpoint, specs, container_ip, None)
    }

    /// [`PortMapper::publish`] for a container that may also have an IPv6 address: IPv6 host
    /// addresses (`[::1]:8080:80` and the `[::]` twin of `8080:80`) then lead to it.
    pub fn publish_dual(
        &self,
        endpoint: &str,
        specs: &[PortSpec],
        container_ip: Ipv4Addr,
        container_ip6: Option<Ipv6Addr>,
    ) -> Result<Vec<PortBinding>> {
        let target = |host: Option<IpAddr>| match (host, container_ip6) {
            (Some(IpAddr::V6(_)), Some(ip6)) => IpAddr::V6(ip6),
            _ => IpAddr::V4(container_ip),
        };
        let wrap = |e| Error::ExternalConnectivity {
            endpoint: endpoint.to_string(),
            source: Box::new(e),
        };
        let mut out = Vec::new();
        for spec in specs {
            let binding = self.publish_one(spec, target(spec.host_ip)).map_err(wrap)?;
            // Docker 28 publishes a port without a host address on `0.0.0.0` and `[::]`, same
            // port, proxying IPv6 clients to the container's IPv4 address.
            if spec.host_ip.is_none() && self.ipv6 {
                let v6 = PortSpec {
                    host_ip: Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
                    host_ports: (binding.host_port, binding.host_port),
                    ..*spec
                };
                out.push(binding);
                match self.publish_one(&v6, target(v6.host_ip)) {
                    Ok(b) => out.push(b),
                    // No IPv6 in this namespace (disabled or no address family): IPv4 only.
                    Err(Error::Io { source, .. })
                        if matches!(
                            source.raw_os_error(),
                            Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                        ) => {}
                    Err(e) => return Err(wrap(e)),
                }
            } else {
                out.push(binding);
            }
        }
        Ok(out)
    }

    fn publish_one(&self, spec: &PortSpec, container_ip: IpAddr) -> Result<PortBinding> {
        let host_ip = spec.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if spec.proto == Proto::Sctp {
            return Err(Error::PortSpec(
                "sctp ports cannot be published by Berth's userland proxy".to_string(),
            ));
        }
        let (candidates, explicit): (Vec<u16>, bool) = match spec.host_ports {
            (0, 0) => ((self.range.0..=self.range.1).collect(), false),
            (a, b) => ((a..=b).collect(), a == b),
        };
        let target = SocketAddr::new(container_ip, spec.container_port);
        let mut taken = self
            .taken
            .lock()
            .map_err(|_| Error::io("port allocator", std::io::Error::other("lock poisoned")))?;
        let mut last_err = None;
        for port in candidates {
            if conflicts(&taken, host_ip, port, spec.proto) {
                last_err = Some(Error::PortAllocated {
                    addr: docker_addr(host_ip, port),
                });
                continue;
            }
            let bind = SocketAddr::new(host_ip, port);
            let started = match spec.proto {
                Proto::Tcp => proxy::start_tcp(bind, target, self.netns.clone()),
                _ => proxy::start_udp(bind, target, self.netns.clone(), self.udp_idle),
            };
            match started {
                Ok(handle) => {
                    taken.insert((host_ip, port, spec.proto));
                    return Ok(PortBinding {
                        host_ip,
                        host_port: port,
                        container_ip,
                        container_port: spec.container_port,
                        proto: spec.proto,
                        _proxy: handle,
                        taken: self.taken.clone(),
                    });
                }
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::AddrInUse => {
                    last_err = Some(Error::PortAllocated {
                        addr: docker_addr(host_ip, port),
                    });
                }
                Err(e) => return Err(e),
            }
            if explicit {
                break;
            }
        }
        Err(match (last_err, spec.host_ports) {
            (Some(e), (a, b)) if a == b && a != 0 => e,
            _ => Error::NoFreePort {
                start: if spec.host_ports.0 == 0 {
                    self.range.0
                } else {
                    spec.host_ports.0
                },
                end: if spec.host_ports.0 == 0 {
                    self.range.1
                } else {
                    spec.host_ports.1
                },
                proto: spec.proto.to_string(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_conflicts_only_within_its_address_family() {
        let mut taken = HashSet::new();
        taken.insert((IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8080, Proto::Tcp));
        let v6any = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
        assert!(!conflicts(&taken, v6any, 8080, Proto::Tcp));
        assert!(conflicts(
            &taken,
            "127.0.0.1".parse().unwrap(),
            8080,
            Proto::Tcp
        ));
        assert!(!conflicts(
            &taken,
            "127.0.0.1".parse().unwrap(),
            8080,
            Proto::Udp
        ));
        assert!(!conflicts(&taken, "::1".parse().unwrap(), 8081, Proto::Tcp));
    }

    fn one(raw: &str) -> PortSpec {
        let v = parse_port_spec(raw).unwrap();
        assert_eq!(v.len(), 1, "{raw}");
        v[0]
    }

    fn err(raw: &str) -> String {
        parse_port_spec(raw).unwrap_err().to_string()
    }

    #[test]
    fn bare_container_port_gets_an_ephemeral_host_port() {
        assert_eq!(
            one("80"),
            PortSpec {
                host_ip: None,
                host_ports: (0, 0),
                container_port: 80,
                proto: Proto::Tcp
            }
        );
    }

    #[test]
    fn every_docker_form_parses() {
        assert_eq!(one("8080:80").host_ports, (8080, 8080));
        let s = one("127.0.0.1:8080:80/udp");
        assert_eq!(s.host_ip, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(s.proto, Proto::Udp);
        let s = one("127.0.0.1::80");
        assert_eq!((s.host_ports, s.container_port), ((0, 0), 80));
        let s = one("[::1]:8080:80");
        assert_eq!(s.host_ip, Some("::1".parse().unwrap()));
        assert_eq!(one("80/").proto, Proto::Tcp);
        assert_eq!(one("80/UDP").proto, Proto::Udp);
        assert_eq!(one("8000-8010:80").host_ports, (8000, 8010));
        let v = parse_port_spec("8000-8010:80-90").unwrap();
        assert_eq!(v.len(), 11);
        assert_eq!((v[0].host_ports, v[0].container_port), ((8000, 8000), 80));
        assert_eq!((v[10].host_ports, v[10].container_port), ((8010, 8010), 90));
        let v = parse_port_spec("80-82").unwrap();
        assert!(v.iter().all(|s| s.host_ports == (0, 0)));
    }

    #[test]
    fn malformed_specs_fail_with_dockers_messages() {
        assert_eq!(err(""), "no port specified: <empty>");
        assert_eq!(err("8080:"), "no port specified: 8080:<empty>");
        assert_eq!(err("/udp"), "no port specified: /udp<empty>");
        assert_eq!(err("abc"), "invalid containerPort: abc");
        assert_eq!(err("90-80"), "invalid containerPort: 90-80");
        assert_eq!(err("70000"), "invalid containerPort: 70000");
        assert_eq!(err("x:80"), "invalid hostPort: x");
        assert_eq!(err("1.2.3:80:80"), "invalid IP address: 1.2.3");
        assert_eq!(err("80/icmp"), "invalid proto: icmp");
        assert_eq!(
            err("8000-8001:80-85"),
            "invalid ranges specified for container and host Ports: 80-85 and 8000-8001"
        );
    }
}
