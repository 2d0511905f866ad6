//! Berth's own nftables tables: NAT, forwarding, isolation between bridges, published ports.
//!
//! The whole ruleset is rendered from the list of networks and published ports and applied in
//! one `nft -f -` transaction (`table …; delete table …; table … { … }`), so reconciling is
//! idempotent and atomic, and cleanup is deleting the tables. Berth never edits tables it does
//! not own.
//!
//! Why `nft` through stdin rather than netlink: no maintained pure-Rust crate speaks the
//! nftables netlink protocol at the level of rules and sets (`rustables` and `nftnl` are thin,
//! unmaintained or need libnftnl); the `nft` tool is the stable interface, and feeding it a
//! script through stdin keeps every rule readable in one place.
//!
//! Three tables:
//! - `inet berth`: a `forward` base chain at priority `filter - 1`. It accepts Berth's own
//!   traffic and drops what Docker drops (traffic between different Berth bridges, unsolicited
//!   inbound to containers, anything leaving or entering an `--internal` network). Note that an
//!   `accept` here cannot override a `drop` in another table's chain on the same hook (nftables
//!   evaluates every base chain), so on a host where Docker's iptables `FORWARD` policy is `DROP`
//!   the engine must still allow Berth's bridges there (Docker's own advice is the `DOCKER-USER`
//!   chain); Berth does not edit that table itself.
//! - `bridge berth`: inter-container traffic on one bridge is bridged, not routed, so it never
//!   reaches the inet forward hook unless `br_netfilter` is loaded; `enable_icc=false` is
//!   enforced in the bridge family (matching the subnet on both ends), which needs no
//!   `br_netfilter`.
//! - `ip berth-nat`: masquerade for each non-internal subnet leaving through another interface,
//!   and DNAT for published ports. DNAT skips 127.0.0.0/8 destinations: reaching a published
//!   port on 127.0.0.1 is served by the userland proxy, so Berth never sets `route_localnet`
//!   (which would expose martian-source risks on every interface of the bridge).

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;

use ipnetwork::{Ipv4Network, Ipv6Network};

use crate::error::{Error, Result};
use crate::netns::{run_in, NetNs};
use crate::portmap::Proto;

/// The inet filter table's name.
pub const FILTER_TABLE: &str = "berth";
/// The bridge-family table's name.
pub const BRIDGE_TABLE: &str = "berth";
/// The NAT table's name.
pub const NAT_TABLE: &str = "berth-nat";

/// What the firewall needs to know about one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkSpec {
    /// The bridge device.
    pub bridge: String,
    /// The subnet.
    pub subnet: Ipv4Network,
    /// The IPv6 subnet of a dual-stack network.
    pub subnet6: Option<Ipv6Network>,
    /// `--internal`: no NAT, no forwarding in or out.
    pub internal: bool,
    /// Inter-container traffic allowed on this bridge.
    pub icc: bool,
}

/// One published port to DNAT to a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnatRule {
    /// `tcp` or `udp`.
    pub proto: Proto,
    /// The host address bound, `None` for all of the container address's family.
    pub host_ip: Option<IpAddr>,
    /// The host port.
    pub host_port: u16,
    /// The container's address (IPv4 rules go to the `ip` NAT table, IPv6 ones to `ip6`).
    pub container_ip: IpAddr,
    /// The container's port.
    pub container_port: u16,
    /// The container's bridge: traffic from that bridge is left to the proxy (hairpin).
    pub bridge: String,
}

/// Whether Berth can program a firewall here, for the engine's `info`.
#[derive(Debug)]
pub enum Backend {
    /// `nft` is present and works.
    Nftables(Firewall),
    /// No usable `nft`: published ports rely on the userland proxy only, no NAT or isolation.
    NoFirewall {
        /// Why (shown by `info`).
        reason: String,
    },
}

/// Berth's nftables tables in one namespace.
#[derive(Debug, Clone)]
pub struct Firewall {
    nft: PathBuf,
    netns: Option<Arc<NetNs>>,
    tables: Tables,
}

/// The names of the three tables one daemon owns. Two daemons sharing a namespace (each with its
/// own bridge) must own different tables, since reconciling replaces a table whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    /// The `inet` filter table.
    pub filter: String,
    /// The `bridge` family table.
    pub bridge: String,
    /// The `ip` NAT table.
    pub nat: String,
}

impl Default for Tables {
    fn default() -> Self {
        Tables {
            filter: FILTER_TABLE.to_string(),
            bridge: BRIDGE_TABLE.to_string(),
            nat: NAT_TABLE.to_string(),
        }
    }
}

impl Tables {
    /// Tables named `berth-SUFFIX` and `berth-SUFFIX-nat` (characters other than ASCII
    /// alphanumerics, `-` and `_` are dropped, so the name stays a valid nft identifier).
    pub fn with_suffix(suffix: &str) -> Self {
        let clean: String = suffix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect();
        if clean.is_empty() {
            return Tables::default();
        }
        Tables {
            filter: format!("berth-{clean}"),
            bridge: format!("berth-{clean}"),
            nat: format!("berth-{clean}-nat"),
        }
    }

    fn all(&self) -> [(&'static str, &str); 4] {
        [
            ("inet", self.filter.as_str()),
            ("bridge", self.bridge.as_str()),
            ("ip", self.nat.as_str()),
            ("ip6", self.nat.as_str()),
        ]
    }
}

fn quote(name: &str) -> String {
    // Interface names cannot contain quotes or spaces, but keep the script well-formed anyway.
    format!("\"{}\"", name.replace(['"', '\\'], ""))
}

/// Render the whole ruleset with the default table names (pure, so it can be tested without a
/// kernel).
pub fn render(networks: &[NetworkSpec], dnat: &[DnatRule]) -> String {
    render_tables(&Tables::default(), networks, dnat)
}

/// Render the whole ruleset into the tables `t`.
pub fn render_tables(t: &Tables, networks: &[NetworkSpec], dnat: &[DnatRule]) -> String {
    let mut s = String::new();
    // Declaring then deleting makes the script valid whether or not the tables exist.
    for (fam, name) in t.all() {
        s.push_str(&format!("table {fam} {name}\ndelete table {fam} {name}\n"));
    }

    s.push_str(&format!("table inet {} {{\n", t.filter));
    s.push_str(
        "  chain forward {\n    type filter hook forward priority filter - 1; policy accept;\n",
    );
    // Replies and published ports first: a DNAT'ed connection may come from another Berth
    // bridge (a container reaching a published port via the host's address) and must not be
    // caught by the isolation rules below.
    for n in networks.iter().filter(|n| !n.internal) {
        let b = quote(&n.bridge);
        s.push_str(&format!(
            "    oifname {b} ct state established,related accept\n    oifname {b} ct status dnat accept\n"
        ));
    }
    let all: Vec<String> = networks.iter().map(|n| quote(&n.bridge)).collect();
    for n in networks {
        let b = quote(&n.bridge);
        let others: Vec<&String> = all.iter().filter(|o| **o != b).collect();
        if !others.is_empty() {
            let set = others
                .iter()
                .map(|o| o.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            s.push_str(&format!(
                "    iifname {b} oifname {{ {set} }} drop comment \"isolate {}\"\n",
                n.bridge
            ));
        }
        let icc = if n.icc { "accept" } else { "drop" };
        s.push_str(&format!("    iifname {b} oifname {b} {icc}\n"));
        if n.internal {
            s.push_str(&format!("    iifname {b} drop\n    oifname {b} drop\n"));
        } else {
            s.push_str(&format!("    iifname {b} accept\n    oifname {b} drop\n"));
        }
    }
    s.push_str("  }\n}\n");

    s.push_str(&format!("table bridge {} {{\n", t.bridge));
    s.push_str("  chain forward {\n    type filter hook forward priority filter; policy accept;\n");
    for n in networks.iter().filter(|n| !n.icc) {
        // Matching the subnet rather than `meta ibrname`: the latter needs nft_meta_bridge,
        // which not every kernel has; the bridge forward hook only sees frames between two
        // ports of a bridge, so this never touches traffic to the gateway.
        s.push_str(&format!(
            "    ip saddr {0} ip daddr {0} drop comment \"icc off on {1}\"\n",
            n.subnet, n.bridge
        ));
        if let Some(s6) = n.subnet6 {
            s.push_str(&format!(
                "    ip6 saddr {0} ip6 daddr {0} drop comment \"icc off on {1}\"\n",
                s6, n.bridge
            ));
        }
    }
    s.push_str("  }\n}\n");

    render_nat(&mut s, "ip", &t.nat, networks, dnat);
    render_nat(&mut s, "ip6", &t.nat, networks, dnat);
    s
}

/// One NAT table: `ip` (IPv4) or `ip6` (NAT66, as dockerd's ip6tables rules do for IPv6 networks).
fn render_nat(s: &mut String, fam: &str, name: &str, networks: &[NetworkSpec], dnat: &[DnatRule]) {
    let v6 = fam == "ip6";
    // Loopback is served by the userland proxy (no route_localnet, and IPv6 has no equivalent).
    let loopback = if v6 { "::1" } else { "127.0.0.0/8" };
    s.push_str(&format!("table {fam} {name} {{\n"));
    s.push_str("  chain prerouting {\n    type nat hook prerouting priority dstnat; policy accept;\n    fib daddr type local jump publish\n  }\n");
    s.push_str(&format!("  chain output {{\n    type nat hook output priority -100; policy accept;\n    {fam} daddr != {loopback} fib daddr type local jump publish\n  }}\n"));
    s.push_str("  chain publish {\n");
    // A rule whose host address is of the other family than its container's would not parse.
    for r in dnat.iter().filter(|r| {
        r.container_ip.is_ipv6() == v6
            && r.host_ip
                .is_none_or(|h| h.is_unspecified() || h.is_ipv6() == v6)
    }) {
        let daddr = r
            .host_ip
            .filter(|ip| !ip.is_unspecified() && ip.is_ipv6() == v6)
            .map(|ip| format!("{fam} daddr {ip} "))
            .unwrap_or_default();
        let to = match r.container_ip {
            IpAddr::V4(ip) => format!("{ip}:{}", r.container_port),
            IpAddr::V6(ip) => format!("[{ip}]:{}", r.container_port),
        };
        s.push_str(&format!(
            "    {daddr}iifname != {} {} dport {} dnat to {to}\n",
            quote(&r.bridge),
            r.proto,
            r.host_port,
        ));
    }
    s.push_str("  }\n");
    s.push_str(
        "  chain postrouting {\n    type nat hook postrouting priority srcnat; policy accept;\n",
    );
    for n in networks.iter().filter(|n| !n.internal) {
        let subnet = if v6 {
            match n.subnet6 {
                Some(s6) => s6.to_string(),
                None => continue,
            }
        } else {
            n.subnet.to_string()
        };
        s.push_str(&format!(
            "    {fam} saddr {subnet} oifname != {} masquerade\n",
            quote(&n.bridge)
        ));
    }
    s.push_str("  }\n}\n");
}

impl Firewall {
    /// Find `nft` and check it can list rulesets in `netns` (the caller's namespace when
    /// `None`); if not, say why so the engine can report "no firewall".
    pub fn detect(netns: Option<Arc<NetNs>>) -> Backend {
        let nft = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft", "/bin/nft"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists());
        match nft {
            Some(nft) => Self::detect_with(nft, netns),
            None => Backend::NoFirewall {
                reason: "nft not found".to_string(),
            },
        }
    }

    /// Like [`Firewall::detect`] with an explicit path to the `nft` binary.
    pub fn detect_with(nft: PathBuf, netns: Option<Arc<NetNs>>) -> Backend {
        if !nft.exists() {
            return Backend::NoFirewall {
                reason: format!("{} not found", nft.display()),
            };
        }
        let fw = Firewall {
            nft,
            netns,
            tables: Tables::default(),
        };
        match fw.run(&["list", "tables"], None) {
            Ok(_) => Backend::Nftables(fw),
            Err(e) => Backend::NoFirewall {
                reason: e.to_string(),
            },
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let op = if stdin.is_some() {
            "apply ruleset".to_string()
        } else {
            args.join(" ")
        };
        let nft = self.nft.clone();
        let out = run_in(
            self.netns.as_deref(),
            || -> std::io::Result<std::process::Output> {
                // The child inherits this thread's network namespace.
                let mut child = Command::new(&nft)
                    .args(args)
                    .stdin(if stdin.is_some() {
                        Stdio::piped()
                    } else {
                        Stdio::null()
                    })
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()?;
                if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
                    pipe.write_all(text.as_bytes())?;
                }
                child.wait_with_output()
            },
        )?
        .map_err(|e| Error::Nft {
            op: op.clone(),
            reason: format!("run {}: {e}", self.nft.display()),
        })?;
        if !out.status.success() {
            return Err(Error::Nft {
                op,
                reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Use the tables `tables` instead of the default ones.
    pub fn with_tables(mut self, tables: Tables) -> Self {
        self.tables = tables;
        self
    }

    /// The tables this firewall owns.
    pub fn table_names(&self) -> &Tables {
        &self.tables
    }

    /// Replace Berth's tables with the ruleset for `networks` and `dnat`, atomically, and open the
    /// way through a foreign `FORWARD` chain that drops by default (see [`Firewall::open_forward`]).
    pub fn reconcile(&self, networks: &[NetworkSpec], dnat: &[DnatRule]) -> Result<()> {
        let script = render_tables(&self.tables, networks, dnat);
        self.run(&["-f", "-"], Some(&script))?;
        self.open_forward(networks)
    }

    /// The comment marking the rules this firewall adds to other tools' chains.
    fn marker(&self) -> String {
        format!("berth:{}", self.tables.filter)
    }

    /// Docker sets the policy of iptables' `FORWARD` chain (table `ip filter`, iptables-nft) to drop.
    /// An accept in Berth's own table cannot override that: nftables runs every base chain on the
    /// hook and any drop wins. So where that chain drops by default, Berth adds accepts for its
    /// non-internal bridges to it, in `DOCKER-USER` when it exists (Docker's documented place for
    /// user rules, jumped to first), else at the top of `FORWARD`. The rules carry Berth's marker
    /// comment and are replaced on every reconcile; isolation still happens in Berth's own chain,
    /// which runs first. Nothing is touched where no such chain exists or it accepts by default.
    pub fn open_forward(&self, networks: &[NetworkSpec]) -> Result<()> {
        // dockerd 28 sets the policy of both ip and ip6 filter FORWARD (ip6tables is on by default);
        // the ip6 accepts are for Berth's dual-stack bridges.
        for fam in ["ip", "ip6"] {
            let nets: Vec<&NetworkSpec> = networks
                .iter()
                .filter(|n| !n.internal && (fam == "ip" || n.subnet6.is_some()))
                .collect();
            self.open_forward_family(fam, &nets)?;
        }
        Ok(())
    }

    fn open_forward_family(&self, fam: &str, networks: &[&NetworkSpec]) -> Result<()> {
        let Ok(forward) = self.run(&["-j", "list", "chain", fam, "filter", "FORWARD"], None) else {
            return Ok(());
        };
        let drops =
            forward.contains("\"policy\": \"drop\"") || forward.contains("\"policy\":\"drop\"");
        let chain = if self
            .run(&["-j", "list", "chain", fam, "filter", "DOCKER-USER"], None)
            .is_ok()
        {
            "DOCKER-USER"
        } else {
            "FORWARD"
        };
        let mut script = self.stale_marked_rules(fam, chain)?;
        if drops {
            let marker = self.marker();
            for n in networks {
                let b = quote(&n.bridge);
                // Inserted at the top, so written in reverse of the order they end up in.
                script.push_str(&format!(
                    "insert rule {fam} filter {chain} oifname {b} ct state established,related accept comment \"{marker}\"\n\
                     insert rule {fam} filter {chain} oifname {b} ct status dnat accept comment \"{marker}\"\n\
                     insert rule {fam} filter {chain} iifname {b} accept comment \"{marker}\"\n"
                ));
            }
        }
        if script.is_empty() {
            return Ok(());
        }
        self.run(&["-f", "-"], Some(&script)).map(|_| ())
    }

    /// `delete rule` lines for the rules of `FAMILY filter CHAIN` carrying this firewall's marker.
    fn stale_marked_rules(&self, fam: &str, chain: &str) -> Result<String> {
        let Ok(text) = self.run(&["-a", "-j", "list", "chain", fam, "filter", chain], None) else {
            return Ok(String::new());
        };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Nft {
            op: format!("list chain {fam} filter {chain}"),
            reason: format!("bad JSON from nft: {e}"),
        })?;
        let marker = self.marker();
        let mut script = String::new();
        for item in v["nftables"].as_array().into_iter().flatten() {
            let rule = &item["rule"];
            if rule["comment"].as_str() == Some(marker.as_str()) {
                if let Some(h) = rule["handle"].as_u64() {
                    script.push_str(&format!("delete rule {fam} filter {chain} handle {h}\n"));
                }
            }
        }
        Ok(script)
    }

    /// Delete Berth's tables (nothing of anyone else's).
    pub fn cleanup(&self) -> Result<()> {
        let mut script = String::new();
        for (fam, name) in self.tables.all() {
            script.push_str(&format!("table {fam} {name}\ndelete table {fam} {name}\n"));
        }
        for fam in ["ip", "ip6"] {
            for chain in ["DOCKER-USER", "FORWARD"] {
                script.push_str(&self.stale_marked_rules(fam, chain)?);
            }
        }
        self.run(&["-f", "-"], Some(&script)).map(|_| ())
    }

    /// `nft -j list table FAMILY NAME`, parsed, for inspection and tests.
    pub fn list_table(&self, family: &str, name: &str) -> Result<serde_json::Value> {
        let text = self.run(&["-j", "list", "table", family, name], None)?;
        serde_json::from_str(&text).map_err(|e| Error::Nft {
            op: format!("list table {family} {name}"),
            reason: format!("bad JSON from nft: {e}"),
        })
    }

    /// Names of every table in the namespace as `family name`.
    pub fn tables(&self) -> Result<Vec<String>> {
        let text = self.run(&["list", "tables"], None)?;
        Ok(text
            .lines()
            .filter_map(|l| l.strip_prefix("table "))
            .map(str::to_string)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn rendered_ruleset_isolates_bridges_and_masquerades_only_external_networks() {
        let nets = [
            NetworkSpec {
                bridge: "berth0".into(),
                subnet: "172.17.0.0/16".parse().unwrap(),
                subnet6: None,
                internal: false,
                icc: true,
            },
            NetworkSpec {
                bridge: "br-int".into(),
                subnet: "172.18.0.0/16".parse().unwrap(),
                subnet6: None,
                internal: true,
                icc: false,
            },
        ];
        let s = render(&nets, &[]);
        assert!(s.contains("iifname \"berth0\" oifname { \"br-int\" } drop"));
        assert!(s.contains("ip saddr 172.17.0.0/16 oifname != \"berth0\" masquerade"));
        assert!(!s.contains("172.18.0.0/16 oifname"));
        assert!(s.contains("ip saddr 172.18.0.0/16 ip daddr 172.18.0.0/16 drop"));
        assert!(s.contains("iifname \"br-int\" drop"));
    }

    #[test]
    fn dnat_rule_names_host_address_only_when_specific() {
        let r = |host_ip| DnatRule {
            proto: Proto::Tcp,
            host_ip,
            host_port: 8080,
            container_ip: IpAddr::V4(Ipv4Addr::new(172, 17, 0, 2)),
            container_port: 80,
            bridge: "berth0".into(),
        };
        let s = render(&[], &[r(None), r(Some(Ipv4Addr::new(10, 0, 0, 1).into()))]);
        assert!(s.contains("    iifname != \"berth0\" tcp dport 8080 dnat to 172.17.0.2:80\n"));
        assert!(s.contains("ip daddr 10.0.0.1 iifname != \"berth0\" tcp dport 8080 dnat to"));
    }

    #[test]
    fn ipv6_networks_get_nat66_and_ipv6_dnat_in_the_ip6_table() {
        let nets = [NetworkSpec {
            bridge: "br-v6".into(),
            subnet: "172.18.0.0/16".parse().unwrap(),
            subnet6: Some("fd00:db8::/64".parse().unwrap()),
            internal: false,
            icc: false,
        }];
        let r = DnatRule {
            proto: Proto::Tcp,
            host_ip: None,
            host_port: 8080,
            container_ip: "fd00:db8::2".parse().unwrap(),
            container_port: 80,
            bridge: "br-v6".into(),
        };
        let s = render(&nets, &[r]);
        let v6 = &s[s.find("table ip6 berth-nat {").unwrap()..];
        assert!(v6.contains("ip6 saddr fd00:db8::/64 oifname != \"br-v6\" masquerade"));
        assert!(v6.contains("iifname != \"br-v6\" tcp dport 8080 dnat to [fd00:db8::2]:80"));
        assert!(v6.contains("ip6 daddr != ::1 fib daddr type local jump publish"));
        let v4 =
            &s[s.find("table ip berth-nat {").unwrap()..s.find("table ip6 berth-nat {").unwrap()];
        assert!(!v4.contains("fd00"));
        assert!(s.contains("ip6 saddr fd00:db8::/64 ip6 daddr fd00:db8::/64 drop"));
    }

    #[test]
    fn suffixed_tables_keep_two_daemons_apart() {
        let t = Tables::with_suffix("bt-1/x");
        assert_eq!(
            (t.filter.as_str(), t.nat.as_str()),
            ("berth-bt-1x", "berth-bt-1x-nat")
        );
        let s = render_tables(&t, &[], &[]);
        assert!(s.contains("table inet berth-bt-1x {"));
        assert!(s.contains("table ip berth-bt-1x-nat {"));
        assert!(!s.contains("table inet berth {"));
    }
}
