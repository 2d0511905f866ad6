//! The `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` a container gets, written as dockerd writes them
//! into the container's directory and bind-mounted over the image's.

use std::path::{Path, PathBuf};

use bollard_stubs::models::HostConfig;

use crate::error::{Context, Result};

/// Paths of the three files.
pub struct EtcPaths {
    /// `hostname`.
    pub hostname: PathBuf,
    /// `hosts`.
    pub hosts: PathBuf,
    /// `resolv.conf`.
    pub resolv_conf: PathBuf,
}

impl EtcPaths {
    /// The files of the container whose directory is `dir`.
    pub fn new(dir: &Path) -> EtcPaths {
        EtcPaths {
            hostname: dir.join("hostname"),
            hosts: dir.join("hosts"),
            resolv_conf: dir.join("resolv.conf"),
        }
    }

    /// Writes all three.
    pub fn write(&self, hostname: &str, host: &HostConfig) -> Result<()> {
        let host_net = host.network_mode.as_deref() == Some("host");
        let w = |p: &Path, s: String| {
            std::fs::write(p, s).with_context(|| format!("writing {}", p.display()))
        };
        w(&self.hostname, format!("{hostname}\n"))?;
        let mut hosts = if host_net {
            std::fs::read_to_string("/etc/hosts").unwrap_or_default()
        } else {
            DEFAULT_HOSTS.to_owned()
        };
        for extra in host.extra_hosts.iter().flatten() {
            if let Some((name, ip)) = extra.split_once(':') {
                hosts.push_str(&format!("{ip}\t{name}\n"));
            }
        }
        w(&self.hosts, hosts)?;
        w(&self.resolv_conf, resolv_conf(host, host_net))
    }
}

const DEFAULT_HOSTS: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::\tip6-localnet\nff00::\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// The host's resolv.conf with `--dns`, `--dns-search` and `--dns-option` applied; loopback servers are
/// dropped for containers with their own network namespace (they would point at the container itself).
fn resolv_conf(h: &HostConfig, host_net: bool) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let dns: Vec<String> = h.dns.clone().unwrap_or_default();
    let search: Vec<String> = h.dns_search.clone().unwrap_or_default();
    let options: Vec<String> = h.dns_options.clone().unwrap_or_default();
    let mut out = String::new();
    if dns.is_empty() {
        for line in host.lines() {
            let mut words = line.split_whitespace();
            if words.next() == Some("nameserver") {
                let server = words.next().unwrap_or("");
                if host_net || !(server.starts_with("127.") || server == "::1") {
                    out.push_str(&format!("nameserver {server}\n"));
                }
            }
        }
    } else {
        for s in &dns {
            out.push_str(&format!("nameserver {s}\n"));
        }
    }
    let host_search: Vec<&str> = host
        .lines()
        .filter_map(|l| l.strip_prefix("search "))
        .flat_map(str::split_whitespace)
        .collect();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    } else if !host_search.is_empty() {
        out.push_str(&format!("search {}\n", host_search.join(" ")));
    }
    let host_options: Vec<&str> = host
        .lines()
        .filter_map(|l| l.strip_prefix("options "))
        .flat_map(str::split_whitespace)
        .collect();
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    } else if !host_options.is_empty() {
        out.push_str(&format!("options {}\n", host_options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_flags_replace_the_hosts_servers() {
        let h = HostConfig {
            dns: Some(vec!["127.0.0.1".into()]),
            dns_search: Some(vec!["example.test".into()]),
            dns_options: Some(vec!["ndots:2".into()]),
            ..Default::default()
        };
        let r = resolv_conf(&h, false);
        assert_eq!(
            r,
            "nameserver 127.0.0.1\nsearch example.test\noptions ndots:2\n"
        );
    }
}
