//! Published ports: `HostConfig.PortBindings` and `-P` turned into the network crate's specs, and the live
//! bindings shown as Docker shows them (`NetworkSettings.Ports`, `docker ps`'s `Ports`, `docker port`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use bollard_stubs::models::{HostConfig, Port, PortBinding as ApiBinding, PortMap, PortTypeEnum};
use network::{PortBinding, PortSpec, Proto};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A port key as Docker writes it: `80/tcp`.
fn split_key(key: &str) -> (&str, &str) {
    match key.split_once('/') {
        Some((p, proto)) if !proto.is_empty() => (p, proto),
        Some((p, _)) => (p, "tcp"),
        None => (key, "tcp"),
    }
}

/// The specs to publish for a container: every `PortBindings` entry, and with `-P` every exposed port that
/// has none (on an ephemeral host port). Errors use go-connections' wording, as dockerd's create does.
pub(crate) fn specs(host: &HostConfig, exposed: &[String]) -> Result<Vec<PortSpec>> {
    let mut out = Vec::new();
    let bindings: BTreeMap<String, Vec<ApiBinding>> = host
        .port_bindings
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default()))
        .collect();
    let mut keys: Vec<String> = bindings.keys().cloned().collect();
    if host.publish_all_ports == Some(true) {
        for e in exposed {
            if !keys.contains(e) {
                keys.push(e.clone());
            }
        }
    }
    keys.sort();
    for key in keys {
        let (port, proto) = split_key(&key);
        let list = bindings.get(&key).cloned().unwrap_or_default();
        let list = if list.is_empty() {
            vec![ApiBinding::default()]
        } else {
            list
        };
        for b in list {
            let ip = b.host_ip.clone().unwrap_or_default();
            let ip = if ip.contains(':') {
                format!("[{ip}]")
            } else {
                ip
            };
            let hp = b.host_port.clone().unwrap_or_default();
            let raw = if ip.is_empty() {
                format!("{hp}:{port}/{proto}")
            } else {
                format!("{ip}:{hp}:{port}/{proto}")
            };
            let parsed = network::parse_port_spec(&raw).map_err(super::net_err)?;
            out.extend(parsed);
        }
    }
    if out.iter().any(|s| s.proto == Proto::Sctp) {
        return Err(Error::NotImplemented(
            "publishing sctp ports is not supported by Berth yet".into(),
        ));
    }
    Ok(out)
}

/// A live binding as kept across daemon restarts (`EXEC_ROOT/network/<id>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Saved {
    pub host_ip: IpAddr,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: String,
}

impl Saved {
    pub fn of(b: &PortBinding) -> Saved {
        Saved {
            host_ip: b.host_ip,
            host_port: b.host_port,
            container_port: b.container_port,
            proto: b.proto.to_string(),
        }
    }

    pub fn spec(&self) -> PortSpec {
        PortSpec {
            host_ip: Some(self.host_ip),
            host_ports: (self.host_port, self.host_port),
            container_port: self.container_port,
            proto: if self.proto == "udp" {
                Proto::Udp
            } else {
                Proto::Tcp
            },
        }
    }
}

/// Docker's way of printing a host address in `Ports` (`0.0.0.0`, `::`, `127.0.0.1`).
fn host_ip_text(ip: IpAddr) -> String {
    ip.to_string()
}

/// `NetworkSettings.Ports` of a running container: each exposed or published port, with its bindings or
/// `null`.
pub(crate) fn port_map(exposed: &[String], live: &[Saved]) -> PortMap {
    let mut map: PortMap = HashMap::new();
    for e in exposed {
        let (p, proto) = split_key(e);
        map.insert(format!("{p}/{proto}"), None);
    }
    for s in live {
        let entry = map
            .entry(format!("{}/{}", s.container_port, s.proto))
            .or_insert(None);
        entry.get_or_insert_with(Vec::new).push(ApiBinding {
            host_ip: Some(host_ip_text(s.host_ip)),
            host_port: Some(s.host_port.to_string()),
        });
    }
    map
}

/// `Ports` of `GET /containers/json`: published ports with their host side, exposed ones without.
pub(crate) fn summary(exposed: &[String], live: &[Saved]) -> Vec<Port> {
    let typ = |p: &str| match p {
        "udp" => Some(PortTypeEnum::UDP),
        "sctp" => Some(PortTypeEnum::SCTP),
        _ => Some(PortTypeEnum::TCP),
    };
    let mut out: Vec<Port> = live
        .iter()
        .map(|s| Port {
            ip: Some(host_ip_text(s.host_ip)),
            private_port: s.container_port,
            public_port: Some(s.host_port),
            typ: typ(&s.proto),
        })
        .collect();
    for e in exposed {
        let (p, proto) = split_key(e);
        let Ok(port) = p.parse::<u16>() else { continue };
        if !live
            .iter()
            .any(|s| s.container_port == port && s.proto == proto)
        {
            out.push(Port {
                ip: None,
                private_port: port,
                public_port: None,
                typ: typ(proto),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_bindings_and_publish_all_become_specs() {
        let mut pb: PortMap = HashMap::new();
        pb.insert(
            "80/tcp".into(),
            Some(vec![ApiBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some("8080".into()),
            }]),
        );
        let h = HostConfig {
            port_bindings: Some(pb),
            publish_all_ports: Some(true),
            ..Default::default()
        };
        let s = specs(&h, &["80/tcp".into(), "53/udp".into()]).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].proto, Proto::Udp);
        assert_eq!(s[0].host_ports, (0, 0));
        assert_eq!(s[1].host_ports, (8080, 8080));
        assert_eq!(s[1].host_ip, Some("127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_host_port_is_refused_with_dockers_words() {
        let mut pb: PortMap = HashMap::new();
        pb.insert(
            "80/tcp".into(),
            Some(vec![ApiBinding {
                host_ip: None,
                host_port: Some("x".into()),
            }]),
        );
        let h = HostConfig {
            port_bindings: Some(pb),
            ..Default::default()
        };
        assert_eq!(
            specs(&h, &[]).unwrap_err().to_string(),
            "invalid hostPort: x"
        );
    }
}
