//! Published ports through the userland proxy, inside namespaces the test made.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns may panic on setup failure

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use common::{netns, network};
use network::{parse_port_spec, AttachRequest, NetNs, PortMapper};

fn tcp_echo(ns: &NetNs, addr: SocketAddr) {
    let l = ns.run(move || TcpListener::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        while let Ok((mut s, _)) = l.accept() {
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap_or(0);
            let _ = s.write_all(&buf[..n]);
        }
    });
}

async fn tcp_talk(ns: Arc<NetNs>, addr: SocketAddr) -> std::io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        ns.run(move || {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"ping")?;
            s.shutdown(std::net::Shutdown::Write)?;
            let mut out = Vec::new();
            s.read_to_end(&mut out)?;
            Ok(out)
        })
        .unwrap()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_tcp_port_forwards_through_the_proxy_and_frees_on_drop() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let mut net = network(&host, dir.path(), "p1", "berth-p1");
    let c = netns("c");
    let ep = net.attach("c", &c, AttachRequest::default()).unwrap();
    tcp_echo(&c, SocketAddr::new(ep.ip.into(), 80));

    let mapper = PortMapper::new(Some(host.clone()));
    let bindings = mapper
        .publish(
            "web (0123456789ab)",
            &parse_port_spec("18080:80").unwrap(),
            ep.ip,
        )
        .unwrap();
    // Docker 28 publishes on both 0.0.0.0 and [::], same port.
    let hosts: Vec<String> = bindings
        .iter()
        .map(|b| std::net::SocketAddr::new(b.host_ip, b.host_port).to_string())
        .collect();
    assert_eq!(hosts, ["0.0.0.0:18080", "[::]:18080"]);
    assert!(bindings[1].dnat_rule("berth-p1").is_none());
    let got6 = tcp_talk(host.clone(), "[::1]:18080".parse().unwrap()).await;
    assert_eq!(got6.unwrap(), b"ping");
    let rule = bindings[0].dnat_rule("berth-p1").unwrap();
    assert_eq!(
        (rule.host_ip, rule.host_port, rule.container_port),
        (None, 18080, 80)
    );
    let got = tcp_talk(host.clone(), "127.0.0.1:18080".parse().unwrap()).await;
    assert_eq!(got.unwrap(), b"ping");

    let err = mapper
        .publish(
            "web (0123456789ab)",
            &parse_port_spec("18080:80").unwrap(),
            ep.ip,
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "driver failed programming external connectivity on endpoint web (0123456789ab): \
         Bind for 0.0.0.0:18080 failed: port is already allocated"
    );

    // An ephemeral port comes from the namespace's ip_local_port_range.
    let eph = mapper
        .publish(
            "web (0123456789ab)",
            &parse_port_spec("127.0.0.1::80").unwrap(),
            ep.ip,
        )
        .unwrap();
    assert!(eph[0].host_port >= 32768, "{}", eph[0].host_port);
    let addr = SocketAddr::new(eph[0].host_ip, eph[0].host_port);
    assert_eq!(tcp_talk(host.clone(), addr).await.unwrap(), b"ping");

    drop(bindings);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = mapper
        .publish(
            "web (0123456789ab)",
            &parse_port_spec("18080:80").unwrap(),
            ep.ip,
        )
        .unwrap();
    drop(again);
    drop(eph);
    net.detach("c").unwrap();
    net.remove().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_held_by_another_process_is_reported_as_allocated() {
    let host = netns("host");
    let squatter = host
        .run(|| TcpListener::bind("0.0.0.0:18090"))
        .unwrap()
        .unwrap();
    let mapper = PortMapper::new(Some(host.clone()));
    let err = mapper
        .publish(
            "web (0123456789ab)",
            &parse_port_spec("18090:80").unwrap(),
            "172.17.0.2".parse().unwrap(),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "driver failed programming external connectivity on endpoint web (0123456789ab): \
         Bind for 0.0.0.0:18090 failed: port is already allocated"
    );
    // A host range skips the busy port.
    let b = mapper
        .publish(
            "web (0123456789ab)",
            &parse_port_spec("18090-18091:80").unwrap(),
            "172.17.0.2".parse().unwrap(),
        )
        .unwrap();
    assert_eq!(b[0].host_port, 18091);
    drop(squatter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_udp_port_relays_datagrams_both_ways() {
    let host = netns("host");
    let dir = tempfile::tempdir().unwrap();
    let mut net = network(&host, dir.path(), "p2", "berth-p2");
    let c = netns("c");
    let ep = net.attach("c", &c, AttachRequest::default()).unwrap();
    let addr = SocketAddr::new(ep.ip.into(), 53);
    let server = c.run(move || UdpSocket::bind(addr)).unwrap().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = server.recv_from(&mut buf) {
            let _ = server.send_to(&buf[..n], from);
        }
    });
    let mapper = PortMapper::new(Some(host.clone())).with_udp_idle(Duration::from_secs(2));
    let _b = mapper
        .publish(
            "web (0123456789ab)",
            &parse_port_spec("127.0.0.1:18053:53/udp").unwrap(),
            ep.ip,
        )
        .unwrap();
    let h = host.clone();
    let reply = tokio::task::spawn_blocking(move || {
        h.run(|| -> std::io::Result<Vec<u8>> {
            let s = UdpSocket::bind("127.0.0.1:0")?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            let mut buf = [0u8; 512];
            let mut last = Vec::new();
            for msg in [&b"one"[..], b"two"] {
                s.send_to(msg, "127.0.0.1:18053")?;
                let n = s.recv(&mut buf)?;
                last = buf[..n].to_vec();
            }
            Ok(last)
        })
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(reply.unwrap(), b"two");
    net.detach("c").unwrap();
    net.remove().unwrap();
}

#[test]
fn publishing_outside_a_tokio_runtime_is_an_error_not_a_panic() {
    let host = netns("host");
    let err = PortMapper::new(Some(host))
        .publish(
            "web",
            &parse_port_spec("18099:80").unwrap(),
            "172.17.0.2".parse().unwrap(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("no tokio runtime"), "{err}");
}
