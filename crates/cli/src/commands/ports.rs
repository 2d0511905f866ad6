//! `-p`/`--publish` values turned into `PortBindings` entries, as the docker CLI does (go-connections'
//! `ParsePortSpec`, with its error messages).

use serde_json::{json, Value};

fn range(s: &str) -> Option<(u16, u16)> {
    match s.split_once('-') {
        None => s.parse().ok().map(|p| (p, p)),
        Some((a, b)) => {
            let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
            (a <= b).then_some((a, b))
        }
    }
}

/// One `-p` value as `("80/tcp", {"HostIp": …, "HostPort": …})` pairs (a range gives one pair per port).
pub fn parse_publish(raw: &str) -> Result<Vec<(String, Value)>, String> {
    let parts: Vec<&str> = raw.split(':').collect();
    let n = parts.len();
    let last = parts[n - 1];
    let (ip, host) = match n {
        1 => (String::new(), ""),
        2 => (String::new(), parts[0]),
        3 => (parts[0].to_string(), parts[1]),
        _ => (parts[..n - 2].join(":"), parts[n - 2]),
    };
    let (container, proto) = match last.split_once('/') {
        Some((c, p)) if !p.is_empty() => (c, p.to_ascii_lowercase()),
        Some((c, _)) => (c, "tcp".to_string()),
        None => (last, "tcp".to_string()),
    };
    let ip = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .map(str::to_string)
        .unwrap_or(ip);
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    if container.is_empty() {
        return Err(format!("no port specified: {raw}<empty>"));
    }
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let (cs, ce) = range(container).ok_or_else(|| format!("invalid containerPort: {container}"))?;
    let hr = if host.is_empty() {
        None
    } else {
        Some(range(host).ok_or_else(|| format!("invalid hostPort: {host}"))?)
    };
    if let Some((hs, he)) = hr {
        if ce - cs != he - hs && ce != cs {
            return Err(format!(
                "invalid ranges specified for container and host Ports: {container} and {host}"
            ));
        }
    }
    Ok((cs..=ce)
        .map(|cp| {
            let host_port = match hr {
                None => String::new(),
                Some((hs, he)) if he - hs == ce - cs => (hs + (cp - cs)).to_string(),
                Some((hs, he)) if hs == he => hs.to_string(),
                Some((hs, he)) => format!("{hs}-{he}"),
            };
            (
                format!("{cp}/{proto}"),
                json!({"HostIp": ip, "HostPort": host_port}),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_values_become_port_bindings() {
        assert_eq!(
            parse_publish("127.0.0.1:8080:80").unwrap(),
            [(
                "80/tcp".to_string(),
                json!({"HostIp": "127.0.0.1", "HostPort": "8080"})
            )]
        );
        assert_eq!(
            parse_publish("53/udp").unwrap(),
            [("53/udp".to_string(), json!({"HostIp": "", "HostPort": ""}))]
        );
        let v = parse_publish("8000-8001:80-81").unwrap();
        assert_eq!(
            v[1],
            (
                "81/tcp".to_string(),
                json!({"HostIp": "", "HostPort": "8001"})
            )
        );
        assert_eq!(
            parse_publish("[::1]::80").unwrap()[0].1,
            json!({"HostIp": "::1", "HostPort": ""})
        );
        assert_eq!(
            parse_publish("9000-9010:80").unwrap()[0].1["HostPort"],
            "9000-9010"
        );
        assert_eq!(parse_publish("x:80").unwrap_err(), "invalid hostPort: x");
        assert_eq!(parse_publish("80/icmp").unwrap_err(), "invalid proto: icmp");
    }
}

/// `docker ps`'s PORTS column: ports published on the same number grouped into ranges per address and
/// protocol (`0.0.0.0:80-81->80-81/tcp`), unpublished ones grouped per protocol (`90/tcp`), then the other
/// mappings one by one (`0.0.0.0:8080->80/tcp`), everything in the order of (port, address, public port).
pub fn display_ports(ports: &[Value]) -> String {
    struct P {
        ip: String,
        private: u16,
        public: u16,
        kind: String,
    }
    let mut list: Vec<P> = ports
        .iter()
        .map(|p| P {
            ip: p["IP"].as_str().unwrap_or_default().to_string(),
            private: p["PrivatePort"].as_u64().unwrap_or(0) as u16,
            public: p["PublicPort"].as_u64().unwrap_or(0) as u16,
            kind: p["Type"].as_str().unwrap_or("tcp").to_string(),
        })
        .collect();
    list.sort_by(|a, b| {
        (a.private, &a.ip, a.public, &a.kind).cmp(&(b.private, &b.ip, b.public, &b.kind))
    });
    let join = |ip: &str, port: String| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    let form = |ip: &str, kind: &str, first: u16, last: u16| {
        let range = if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        };
        if ip.is_empty() {
            format!("{range}/{kind}")
        } else {
            format!("{}->{range}/{kind}", join(ip, range.clone()))
        }
    };
    let mut groups: Vec<((String, String), u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut mappings = Vec::new();
    for p in &list {
        if !p.ip.is_empty() && p.public != p.private {
            mappings.push(format!(
                "{}->{}/{}",
                join(&p.ip, p.public.to_string()),
                p.private,
                p.kind
            ));
            continue;
        }
        let key = (p.ip.clone(), p.kind.clone());
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, p.private, p.private)),
            Some(g) if p.private == g.2.wrapping_add(1) => g.2 = p.private,
            Some(g) => {
                result.push(form(&g.0 .0, &g.0 .1, g.1, g.2));
                g.1 = p.private;
                g.2 = p.private;
            }
        }
    }
    result.extend(groups.iter().map(|g| form(&g.0 .0, &g.0 .1, g.1, g.2)));
    result.extend(mappings);
    result.join(", ")
}

#[cfg(test)]
mod display_tests {
    use super::*;

    #[test]
    fn ps_ports_are_grouped_and_ordered_as_docker_shows_them() {
        let ports = json!([
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
            {"IP": "127.0.0.1", "PrivatePort": 81, "PublicPort": 32768, "Type": "udp"},
            {"PrivatePort": 90, "Type": "tcp"},
            {"IP": "::", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
        ]);
        assert_eq!(
            display_ports(ports.as_array().unwrap()),
            "90/tcp, 0.0.0.0:8080->80/tcp, [::]:8080->80/tcp, 127.0.0.1:32768->81/udp"
        );
        let same = json!([
            {"IP": "0.0.0.0", "PrivatePort": 81, "PublicPort": 81, "Type": "tcp"},
            {"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 80, "Type": "tcp"},
        ]);
        assert_eq!(
            display_ports(same.as_array().unwrap()),
            "0.0.0.0:80-81->80-81/tcp"
        );
    }
}
