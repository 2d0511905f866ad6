//! Bridge networking end to end, inside namespaces the tests make (never the host's).
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may panic on setup failure

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use common::{netns, network};
use network::{link, AttachRequest, NetNs};

fn echo_server(ns: &NetNs, addr: SocketAddr) -> std::thread::JoinHandle<()> {
    let listener = ns.run(move || TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        while let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = s.write_all(&buf[..n]);
            if &buf[..n] == b"quit" {
                break;
            }
        }
    })
}

fn talk(ns: &NetNs, addr: SocketAddr, msg: &'static [u8]) -> std::io::Result<Vec<u8>> {
    ns.run(move || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(msg)?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    })
    .unwrap()
}

#[test]
fn containers_on_one_bridge_reach_each_other_over_tcp() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let mut net = network(&host, dir.path(), "n1", "berth-t1");
    assert_eq!(net.record().subnet.to_string(), "172.17.0.0/16");
    let (a, b) = (netns("a"), netns("b"));
    let ea = net.attach("ctr-a", &a, AttachRequest::default()).unwrap();
    let eb = net
        .attach(
            "ctr-b",
            &b,
            AttachRequest {
                ip: Some(Ipv4Addr::new(172, 17, 0, 77)),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(ea.ip, Ipv4Addr::new(172, 17, 0, 2));
    assert_eq!(eb.ip, Ipv4Addr::new(172, 17, 0, 77));
    assert_eq!(ea.gateway, Some(Ipv4Addr::new(172, 17, 0, 1)));

    // Inside the container: lo and eth0, a default route via the gateway.
    let mut names = link::link_names(Some(&a)).unwrap();
    names.sort();
    assert_eq!(names, ["eth0", "lo"]);
    let arp_notify = a
        .run(|| std::fs::read_to_string("/proc/sys/net/ipv4/conf/eth0/arp_notify"))
        .unwrap()
        .unwrap();
    assert_eq!(arp_notify.trim(), "1");
    let routes = link::ipv4_routes(Some(&a)).unwrap();
    assert!(routes.iter().any(|r| r.prefix() == 0), "{routes:?}");

    let addr = SocketAddr::new(ea.ip.into(), 5000);
    let server = echo_server(&a, addr);
    assert_eq!(talk(&b, addr, b"hello").unwrap(), b"hello");
    // The host reaches containers through the bridge too.
    assert_eq!(talk(&host, addr, b"quit").unwrap(), b"quit");
    server.join().unwrap();

    net.detach("ctr-a").unwrap();
    net.detach("ctr-b").unwrap();
    net.remove().unwrap();
    assert_eq!(link::link_names(Some(&host)).unwrap(), ["lo"]);
    assert!(std::fs::read_dir(dir.path().join("networks"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn endpoint_removal_leaves_no_veth_behind() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let mut net = network(&host, dir.path(), "n2", "berth-t2");
    for i in 0..100 {
        let c = netns("c");
        let ep = net.attach("ctr", &c, AttachRequest::default()).unwrap();
        assert_eq!(ep.ip, Ipv4Addr::new(172, 17, 0, 2), "cycle {i}");
        assert!(link::link_exists(Some(&host), &ep.veth).unwrap());
        net.detach("ctr").unwrap();
        assert!(!link::link_exists(Some(&host), &ep.veth).unwrap());
        assert_eq!(link::link_names(Some(&c)).unwrap(), ["lo"]);
    }
    let mut names = link::link_names(Some(&host)).unwrap();
    names.sort();
    assert_eq!(names, ["berth-t2", "lo"]);
    net.remove().unwrap();
}

#[test]
fn network_with_endpoints_cannot_be_removed() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let mut net = network(&host, dir.path(), "n3", "berth-t3");
    let c = netns("c");
    net.attach("ctr", &c, AttachRequest::default()).unwrap();
    let err = net.attach("ctr", &c, AttachRequest::default()).unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let loaded = network::Network::load_all(dir.path(), Some(host.clone())).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].record(), net.record());
    drop(loaded);
    net.detach("ctr").unwrap();
    net.remove().unwrap();
}

#[test]
fn new_network_skips_subnets_routed_in_the_host_namespace() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    // The first network takes 172.17/16, which is then a connected route of the namespace.
    let first = network(&host, dir.path(), "n4", "berth-t4a");
    let second = network::Network::create(
        dir.path(),
        Some(host.clone()),
        common::opts(
            "n5",
            "n5",
            &[(network::network::OPT_BRIDGE_NAME, "berth-t4b")],
        ),
        &[],
    )
    .unwrap();
    assert_eq!(second.record().subnet.to_string(), "172.18.0.0/16");
    let overlap = network::Network::create(
        dir.path(),
        Some(host.clone()),
        network::NetworkOptions {
            subnet: Some("172.18.5.0/24".parse().unwrap()),
            ..common::opts("n6", "n6", &[])
        },
        &[first.record().subnet, second.record().subnet],
    )
    .unwrap_err();
    assert_eq!(
        overlap.to_string(),
        "Pool overlaps with other one on this address space"
    );
    first.remove().unwrap();
    second.remove().unwrap();
}

#[test]
fn stats_count_traffic_on_the_container_interface() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let mut net = network(&host, dir.path(), "n7", "berth-t7");
    let (a, b) = (netns("a"), netns("b"));
    let ea = net.attach("a", &a, AttachRequest::default()).unwrap();
    net.attach("b", &b, AttachRequest::default()).unwrap();
    let before = network::stats::interface_stats(&a).unwrap();
    assert_eq!(before.keys().collect::<Vec<_>>(), ["eth0"]);
    let addr = SocketAddr::new(ea.ip.into(), 5001);
    let server = echo_server(&a, addr);
    assert_eq!(talk(&b, addr, b"quit").unwrap(), b"quit");
    server.join().unwrap();
    let after = network::stats::interface_stats(&a).unwrap()["eth0"];
    assert!(after.rx_packets > before["eth0"].rx_packets);
    assert!(after.tx_bytes > before["eth0"].tx_bytes);
    let json = serde_json::to_value(after).unwrap();
    assert!(json.get("rx_dropped").is_some() && json.get("tx_errors").is_some());
    net.detach("a").unwrap();
    net.detach("b").unwrap();
    net.remove().unwrap();
}

#[test]
fn load_all_recreates_a_missing_bridge_from_its_record() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let net = network(&host, dir.path(), "n8", "berth-t8");
    let record = net.record().clone();
    drop(net);
    // As after a reboot: the record survives, the kernel object does not.
    link::delete_link(Some(&host), "berth-t8").unwrap();
    assert!(!link::link_exists(Some(&host), "berth-t8").unwrap());
    let mut loaded = network::Network::load_all(dir.path(), Some(host.clone())).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].record(), &record);
    assert!(link::link_exists(Some(&host), "berth-t8").unwrap());
    loaded.pop().unwrap().remove().unwrap();
    assert_eq!(link::link_names(Some(&host)).unwrap(), ["lo"]);
}

#[test]
fn failed_attach_releases_its_address_and_leaves_no_veth() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let mut net = network(&host, dir.path(), "n9", "berth-t9");
    let c = netns("c");
    net.attach("first", &c, AttachRequest::default()).unwrap();
    // The same namespace already has an eth0: the kernel refuses the second peer.
    let err = net
        .attach("second", &c, AttachRequest::default())
        .unwrap_err();
    assert!(err.to_string().contains("create veth"), "{err}");
    assert_eq!(net.pool().allocated.len(), 1);
    let mut names = link::link_names(Some(&host)).unwrap();
    names.retain(|n| n.starts_with("veth"));
    assert_eq!(names.len(), 1, "{names:?}");
    // A taken --ip fails before anything is built.
    let d = netns("d");
    let taken = net.record().endpoints["first"].ip;
    let err = net
        .attach(
            "third",
            &d,
            AttachRequest {
                ip: Some(taken),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(err.to_string(), "Address already in use");
    assert_eq!(link::link_names(Some(&d)).unwrap(), ["lo"]);
    net.detach("first").unwrap();
    assert!(net.pool().allocated.is_empty());
    net.remove().unwrap();
}

#[test]
fn bridge_mtu_follows_the_default_route_interface() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    // Without a default route the MTU is Docker's 1500.
    assert_eq!(link::default_route_mtu(Some(&host)).unwrap(), 1500);
    // An "uplink" with MTU 1400 carrying the default route.
    link::ensure_bridge(
        Some(&host),
        "uplink0",
        "10.99.0.1/24".parse().unwrap(),
        None,
        1400,
    )
    .unwrap();
    link::add_default_route_via(Some(&host), "uplink0", Ipv4Addr::new(10, 99, 0, 254)).unwrap();
    assert_eq!(link::default_route_mtu(Some(&host)).unwrap(), 1400);
    let mut net = network(&host, dir.path(), "n10", "berth-t10");
    assert_eq!(net.record().mtu, 1400);
    let c = netns("c");
    net.attach("c", &c, AttachRequest::default()).unwrap();
    assert_eq!(link::link_mtu(Some(&c), "eth0").unwrap(), Some(1400));
    assert_eq!(
        link::link_mtu(Some(&host), "berth-t10").unwrap(),
        Some(1400)
    );
    net.detach("c").unwrap();
    net.remove().unwrap();
    link::delete_link(Some(&host), "uplink0").unwrap();
}
