//! Berth's nftables tables, applied inside a namespace the test made.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may panic on setup failure

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{enable_forwarding, netns, opts};
use network::network::{OPT_BRIDGE_NAME, OPT_ENABLE_ICC};
use network::{AttachRequest, Backend, DnatRule, Firewall, NetNs, Network, Proto};

fn firewall(ns: &std::sync::Arc<NetNs>) -> Firewall {
    match Firewall::detect(Some(ns.clone())) {
        Backend::Nftables(fw) => fw,
        Backend::NoFirewall { reason } => panic!("no nftables: {reason}"),
    }
}

fn serve_once(ns: &NetNs, addr: SocketAddr) {
    let l = ns.run(move || TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        while let Ok((mut s, _)) = l.accept() {
            let _ = s.write_all(b"ok");
        }
    });
}

/// Whether `ns` gets "ok" from `addr`. A fresh namespace sometimes loses the first SYN
/// (the neighbour entry is still being resolved), so the connect waits long enough for
/// the kernel's one-second retransmission; a test that expects a block uses `blocked`.
fn reachable(ns: &NetNs, addr: SocketAddr) -> bool {
    try_connect(ns, addr, Duration::from_millis(2500))
}

/// Whether a connection from `ns` to `addr` fails or times out. The firewall drops, so
/// a blocked path is a timeout; 700 ms is ample for a path that would answer at once.
fn blocked(ns: &NetNs, addr: SocketAddr) -> bool {
    !try_connect(ns, addr, Duration::from_millis(700))
}

fn try_connect(ns: &NetNs, addr: SocketAddr, timeout: Duration) -> bool {
    ns.run(move || -> std::io::Result<Vec<u8>> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    })
    .unwrap()
    .map(|v| v == b"ok")
    .unwrap_or(false)
}

#[test]
fn reconcile_builds_the_tables_and_cleanup_removes_them() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let net = Network::create(
        dir.path(),
        Some(host.clone()),
        opts("f1", "f1", &[(OPT_BRIDGE_NAME, "berth-f1")]),
        &[],
    )
    .unwrap();
    let fw = firewall(&host);
    let dnat = [DnatRule {
        proto: Proto::Tcp,
        host_ip: None,
        host_port: 8080,
        container_ip: Ipv4Addr::new(172, 17, 0, 2).into(),
        container_port: 80,
        bridge: "berth-f1".into(),
    }];
    fw.reconcile(&[net.spec()], &dnat).unwrap();
    // Reconcile is idempotent: applying twice gives the same tables.
    let nat1 = fw.list_table("ip", "berth-nat").unwrap();
    fw.reconcile(&[net.spec()], &dnat).unwrap();
    let nat2 = fw.list_table("ip", "berth-nat").unwrap();
    let strip_handles = |v: &serde_json::Value| {
        let s = v.to_string();
        regex_free_strip(&s)
    };
    assert_eq!(strip_handles(&nat1), strip_handles(&nat2));
    let nat = nat2.to_string();
    assert!(nat.contains("\"masquerade\""), "{nat}");
    assert!(nat.contains("\"dnat\""), "{nat}");
    assert!(nat.contains("172.17.0.0"), "{nat}");
    let filter = fw.list_table("inet", "berth").unwrap().to_string();
    assert!(filter.contains("\"hook\":\"forward\""), "{filter}");
    let mut tables = fw.tables().unwrap();
    tables.sort();
    assert_eq!(
        tables,
        [
            "bridge berth",
            "inet berth",
            "ip berth-nat",
            "ip6 berth-nat"
        ]
    );

    fw.cleanup().unwrap();
    assert!(fw.tables().unwrap().is_empty());
    net.remove().unwrap();
}

/// Drop `"handle":N` fields, which change on every apply.
fn regex_free_strip(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\"handle\":") {
        out.push_str(&rest[..i]);
        rest = rest[i + 9..].trim_start_matches(|c: char| c.is_ascii_digit());
    }
    out.push_str(rest);
    out
}

#[test]
fn different_bridges_are_isolated_once_the_firewall_is_up() {
    let host = netns("host");
    enable_forwarding(&host);
    let dir = tempfile::tempdir().unwrap();
    let mut n1 = Network::create(
        dir.path(),
        Some(host.clone()),
        opts("i1", "i1", &[(OPT_BRIDGE_NAME, "berth-i1")]),
        &[],
    )
    .unwrap();
    let mut n2 = Network::create(
        dir.path(),
        Some(host.clone()),
        opts("i2", "i2", &[(OPT_BRIDGE_NAME, "berth-i2")]),
        &[n1.record().subnet],
    )
    .unwrap();
    let (a, b) = (netns("a"), netns("b"));
    let _ea = n1.attach("a", &a, AttachRequest::default()).unwrap();
    let eb = n2.attach("b", &b, AttachRequest::default()).unwrap();
    let target = SocketAddr::new(eb.ip.into(), 7000);
    serve_once(&b, target);
    assert!(
        reachable(&a, target),
        "routed path should work without rules"
    );

    let fw = firewall(&host);
    fw.reconcile(&[n1.spec(), n2.spec()], &[]).unwrap();
    assert!(blocked(&a, target), "bridges must be isolated");
    fw.cleanup().unwrap();
    assert!(reachable(&a, target));

    n1.detach("a").unwrap();
    n2.detach("b").unwrap();
    n1.remove().unwrap();
    n2.remove().unwrap();
}

#[test]
fn icc_false_blocks_containers_on_the_same_bridge() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::create(
        dir.path(),
        Some(host.clone()),
        opts(
            "icc",
            "icc",
            &[(OPT_BRIDGE_NAME, "berth-icc"), (OPT_ENABLE_ICC, "false")],
        ),
        &[],
    )
    .unwrap();
    let (a, b) = (netns("a"), netns("b"));
    let _ea = net.attach("a", &a, AttachRequest::default()).unwrap();
    let eb = net.attach("b", &b, AttachRequest::default()).unwrap();
    let target = SocketAddr::new(eb.ip.into(), 7001);
    serve_once(&b, target);
    assert!(reachable(&a, target));
    let fw = firewall(&host);
    fw.reconcile(&[net.spec()], &[]).unwrap();
    assert!(blocked(&a, target), "enable_icc=false must block");
    // The host (gateway) still reaches the container.
    assert!(reachable(&host, target));
    fw.cleanup().unwrap();
    net.detach("a").unwrap();
    net.detach("b").unwrap();
    net.remove().unwrap();
}

#[test]
fn internal_network_gives_no_default_route() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let mut net = Network::create(
        dir.path(),
        Some(host.clone()),
        network::NetworkOptions {
            internal: true,
            ..opts("int", "int", &[(OPT_BRIDGE_NAME, "berth-int")])
        },
        &[],
    )
    .unwrap();
    let c = netns("c");
    let ep = net.attach("c", &c, AttachRequest::default()).unwrap();
    assert_eq!(ep.gateway, None);
    let routes = network::link::ipv4_routes(Some(&c)).unwrap();
    assert!(routes.iter().all(|r| r.prefix() != 0), "{routes:?}");
    let rules = network::firewall::render(&[net.spec()], &[]);
    assert!(!rules.contains("masquerade"));
    net.detach("c").unwrap();
    net.remove().unwrap();
}

#[test]
fn missing_nft_is_reported_as_no_firewall() {
    let ns = netns("nofw");
    match Firewall::detect_with("/nonexistent/nft".into(), Some(ns)) {
        Backend::NoFirewall { reason } => assert!(reason.contains("not found"), "{reason}"),
        Backend::Nftables(_) => panic!("a missing nft cannot work"),
    }
}

#[test]
fn published_port_is_dnated_from_another_bridge_without_the_proxy() {
    let host = netns("host");
    enable_forwarding(&host);
    let dir = tempfile::tempdir().unwrap();
    let mut n1 = Network::create(
        dir.path(),
        Some(host.clone()),
        opts("d1", "d1", &[(OPT_BRIDGE_NAME, "berth-d1")]),
        &[],
    )
    .unwrap();
    let mut n2 = Network::create(
        dir.path(),
        Some(host.clone()),
        opts("d2", "d2", &[(OPT_BRIDGE_NAME, "berth-d2")]),
        &[n1.record().subnet],
    )
    .unwrap();
    let (server, client) = (netns("srv"), netns("cli"));
    let es = n1.attach("srv", &server, AttachRequest::default()).unwrap();
    n2.attach("cli", &client, AttachRequest::default()).unwrap();
    serve_once(&server, SocketAddr::new(es.ip.into(), 80));
    let fw = firewall(&host);
    let rule = DnatRule {
        proto: Proto::Tcp,
        host_ip: None,
        host_port: 8080,
        container_ip: es.ip.into(),
        container_port: 80,
        bridge: "berth-d1".into(),
    };
    fw.reconcile(&[n1.spec(), n2.spec()], &[rule]).unwrap();
    // The client dials its own gateway (a local address of the host) on the published port;
    // nothing listens there, so only the DNAT rule can make this work.
    let published = SocketAddr::new(n2.record().gateway.into(), 8080);
    assert!(reachable(&client, published));
    // Direct access to the container across bridges stays blocked.
    assert!(blocked(&client, SocketAddr::new(es.ip.into(), 80)));
    fw.cleanup().unwrap();
    assert!(blocked(&client, published));
    n1.detach("srv").unwrap();
    n2.detach("cli").unwrap();
    n1.remove().unwrap();
    n2.remove().unwrap();
}

#[test]
fn bridges_still_forward_where_dockers_forward_chain_drops() {
    let host = netns("host");
    enable_forwarding(&host);
    let dir = tempfile::tempdir().unwrap();
    let mut n1 = Network::create(
        dir.path(),
        Some(host.clone()),
        opts("x1", "x1", &[(OPT_BRIDGE_NAME, "berth-x1")]),
        &[],
    )
    .unwrap();
    let c = netns("c");
    n1.attach("c", &c, AttachRequest::default()).unwrap();
    // "Outside": a veth from the host namespace to another namespace, as a machine on the LAN.
    let outside = netns("outside");
    let mut lan = Network::create(
        dir.path(),
        Some(host.clone()),
        network::NetworkOptions {
            subnet: Some("10.200.0.0/24".parse().unwrap()),
            ..opts("lan", "lan", &[(OPT_BRIDGE_NAME, "lan0")])
        },
        &[n1.record().subnet],
    )
    .unwrap();
    let eo = lan
        .attach("outside", &outside, AttachRequest::default())
        .unwrap();
    let target = SocketAddr::new(eo.ip.into(), 7100);
    serve_once(&outside, target);
    // What dockerd leaves with iptables-nft: table ip filter, FORWARD policy drop, jumping to DOCKER-USER.
    let docker = "table ip filter {\n chain DOCKER-USER {\n }\n chain FORWARD {\n  type filter hook forward priority filter; policy drop;\n  jump DOCKER-USER\n }\n}\n";
    host.run(|| {
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(docker.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    })
    .unwrap();
    assert!(blocked(&c, target), "Docker's FORWARD drop applies");
    // Berth's firewall knows only its own bridge (lan0 stands for the host's uplink).
    let fw = firewall(&host);
    fw.reconcile(&[n1.spec()], &[]).unwrap();
    assert!(
        reachable(&c, target),
        "Berth's bridge must forward despite the drop policy"
    );
    let user = fw.list_table("ip", "filter").unwrap().to_string();
    assert_eq!(user.matches("berth:berth").count(), 3, "{user}");
    // Reconciling again replaces its rules rather than adding more; cleanup takes them away.
    fw.reconcile(&[n1.spec()], &[]).unwrap();
    let user = fw.list_table("ip", "filter").unwrap().to_string();
    assert_eq!(user.matches("berth:berth").count(), 3, "{user}");
    fw.cleanup().unwrap();
    let user = fw.list_table("ip", "filter").unwrap().to_string();
    assert!(!user.contains("berth:"), "{user}");
    assert!(blocked(&c, target));
    n1.detach("c").unwrap();
    lan.detach("outside").unwrap();
    n1.remove().unwrap();
    lan.remove().unwrap();
}

#[test]
fn ipv6_traffic_leaving_a_dual_stack_network_is_masqueraded() {
    let host = netns("host");
    enable_forwarding(&host);
    host.run(|| std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1"))
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dual = |id: &str, bridge: &str, v4: &str, v6: &str| network::NetworkOptions {
        subnet: Some(v4.parse().unwrap()),
        ipv6: true,
        subnet6: Some(v6.parse().unwrap()),
        ..opts(id, id, &[(OPT_BRIDGE_NAME, bridge)])
    };
    let mut n1 = Network::create_dual(
        dir.path(),
        Some(host.clone()),
        dual("v1", "berth-v1", "10.201.0.0/24", "fd00:201::/64"),
        &[],
        &[],
    )
    .unwrap();
    let c = netns("c");
    let ec = n1.attach("c", &c, AttachRequest::default()).unwrap();
    assert_eq!(ec.ip6, Some("fd00:201::2".parse().unwrap()));
    // "Outside": a machine on the LAN, reached through the host's lan0.
    let mut lan = Network::create_dual(
        dir.path(),
        Some(host.clone()),
        dual("lan6", "lan6", "10.202.0.0/24", "fd00:202::/64"),
        &[n1.record().subnet],
        &[n1.record().subnet6.unwrap()],
    )
    .unwrap();
    let outside = netns("outside");
    let eo = lan
        .attach("outside", &outside, AttachRequest::default())
        .unwrap();
    // The server answers with the address the connection came from.
    let target = SocketAddr::new(eo.ip6.unwrap().into(), 7106);
    let l = outside
        .run(move || TcpListener::bind(target))
        .unwrap()
        .unwrap();
    std::thread::spawn(move || {
        while let Ok((mut s, peer)) = l.accept() {
            let _ = s.write_all(peer.ip().to_string().as_bytes());
        }
    });
    // The address the server saw, retried for a few seconds: in a namespace this fresh the first
    // neighbour solicitation across the bridge can go unanswered (it was seen to cost one SYN).
    let seen = || {
        let mut last = String::new();
        for _ in 0..4 {
            last = c
                .run(move || -> std::io::Result<String> {
                    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(2))?;
                    s.set_read_timeout(Some(Duration::from_secs(2)))?;
                    let mut out = String::new();
                    s.read_to_string(&mut out)?;
                    Ok(out)
                })
                .unwrap()
                .unwrap_or_else(|e| format!("error: {e}"));
            if !last.starts_with("error") {
                break;
            }
        }
        last
    };
    // Without Berth's tables the container's own address arrives (routed, not translated).
    assert_eq!(seen(), "fd00:201::2");
    // What dockerd 28 leaves with ip6tables-nft: ip6 filter FORWARD dropping, jumping to DOCKER-USER.
    let docker = "table ip6 filter {\n chain DOCKER-USER {\n }\n chain FORWARD {\n  type filter hook forward priority filter; policy drop;\n  jump DOCKER-USER\n }\n}\n";
    host.run(|| {
        let mut child = std::process::Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(docker.as_bytes())
            .unwrap();
        assert!(child.wait().unwrap().success());
    })
    .unwrap();
    assert!(blocked(&c, target), "the ip6 FORWARD drop applies");
    let fw = firewall(&host);
    fw.reconcile(&[n1.spec()], &[]).unwrap();
    // NAT66 (and Berth's accepts in ip6 DOCKER-USER): the host's address on the way out.
    assert_eq!(seen(), "fd00:202::1");
    let user = fw.list_table("ip6", "filter").unwrap().to_string();
    assert_eq!(user.matches("berth:berth").count(), 3, "{user}");
    fw.cleanup().unwrap();
    let user = fw.list_table("ip6", "filter").unwrap().to_string();
    assert!(!user.contains("berth:"), "{user}");
    n1.detach("c").unwrap();
    lan.detach("outside").unwrap();
    n1.remove().unwrap();
    lan.remove().unwrap();
}

#[test]
fn published_port_is_dnated_to_the_containers_ipv6_address() {
    let host = netns("host");
    enable_forwarding(&host);
    host.run(|| std::fs::write("/proc/sys/net/ipv6/conf/all/forwarding", "1"))
        .unwrap()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dual = |id: &str, v4: &str, v6: &str| network::NetworkOptions {
        subnet: Some(v4.parse().unwrap()),
        ipv6: true,
        subnet6: Some(v6.parse().unwrap()),
        ..opts(id, id, &[(OPT_BRIDGE_NAME, &format!("berth-{id}"))])
    };
    let mut n1 = Network::create_dual(
        dir.path(),
        Some(host.clone()),
        dual("e1", "10.203.0.0/24", "fd00:203::/64"),
        &[],
        &[],
    )
    .unwrap();
    let mut n2 = Network::create_dual(
        dir.path(),
        Some(host.clone()),
        dual("e2", "10.204.0.0/24", "fd00:204::/64"),
        &[n1.record().subnet],
        &[n1.record().subnet6.unwrap()],
    )
    .unwrap();
    let (server, client) = (netns("srv"), netns("cli"));
    let es = n1.attach("srv", &server, AttachRequest::default()).unwrap();
    n2.attach("cli", &client, AttachRequest::default()).unwrap();
    let ip6 = es.ip6.unwrap();
    serve_once(&server, SocketAddr::new(ip6.into(), 80));
    let fw = firewall(&host);
    let rule = DnatRule {
        proto: Proto::Tcp,
        host_ip: None,
        host_port: 8080,
        container_ip: ip6.into(),
        container_port: 80,
        bridge: "berth-e1".into(),
    };
    fw.reconcile(&[n1.spec(), n2.spec()], &[rule]).unwrap();
    // The client dials its IPv6 gateway (a local address of the host) on the published port;
    // nothing listens there, so only the ip6 DNAT rule can make this work. As in the NAT66 test, the
    // first neighbour solicitation in a fresh namespace can be lost: a few tries.
    let published = SocketAddr::new(n2.record().gateway6.unwrap().into(), 8080);
    assert!(reachable(&client, published));
    // Direct access to the container across bridges stays blocked.
    assert!(blocked(&client, SocketAddr::new(ip6.into(), 80)));
    fw.cleanup().unwrap();
    assert!(blocked(&client, published));
    n1.detach("srv").unwrap();
    n2.detach("cli").unwrap();
    n1.remove().unwrap();
    n2.remove().unwrap();
}
