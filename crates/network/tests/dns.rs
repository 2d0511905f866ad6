//! The embedded DNS server inside a namespace the test made, with a fake upstream there too.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use network::dns::{Server, Table};

fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        q.push(l.len() as u8);
        q.extend_from_slice(l.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_names_are_answered_and_other_names_forwarded_upstream() {
    let ns = common::netns("dns");
    // Fake upstream: answers every query with its ID and a marker byte pattern.
    let upstream = ns.run(|| UdpSocket::bind("127.0.0.1:0")).unwrap().unwrap();
    let up_addr = upstream.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = upstream.recv_from(&mut buf) {
            let mut r = buf[..n].to_vec();
            r[2] |= 0x80;
            r.extend_from_slice(b"UPSTREAM");
            let _ = upstream.send_to(&r, from);
        }
    });
    let table = Table::new();
    table.add(&["web", "abcdef012345"], Ipv4Addr::new(172, 17, 0, 5));
    let server = Server::start(
        "127.0.0.1:0".parse().unwrap(),
        table.clone(),
        vec![up_addr],
        Some(ns.clone()),
    )
    .unwrap();
    let addr: SocketAddr = server.local_addr();
    let ns2 = ns.clone();
    let (local, forwarded) = tokio::task::spawn_blocking(move || {
        ns2.run(move || {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let mut buf = [0u8; 512];
            c.send_to(&query(11, "abcdef012345", 1), addr).unwrap();
            let n = c.recv(&mut buf).unwrap();
            let local = buf[..n].to_vec();
            c.send_to(&query(12, "example.org", 1), addr).unwrap();
            let n = c.recv(&mut buf).unwrap();
            (local, buf[..n].to_vec())
        })
        .unwrap()
    })
    .await
    .unwrap();
    // The same name over TCP, length-prefixed.
    let ns3 = ns.clone();
    let over_tcp = tokio::task::spawn_blocking(move || {
        ns3.run(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            let q = query(13, "web", 1);
            s.write_all(&(q.len() as u16).to_be_bytes()).unwrap();
            s.write_all(&q).unwrap();
            let mut len = [0u8; 2];
            s.read_exact(&mut len).unwrap();
            let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
            s.read_exact(&mut r).unwrap();
            r
        })
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(&over_tcp[..2], &13u16.to_be_bytes());
    assert!(over_tcp.ends_with(&[172, 17, 0, 5]));
    assert_eq!(&local[..2], &11u16.to_be_bytes());
    assert!(local.ends_with(&[172, 17, 0, 5]));
    assert_eq!(&forwarded[..2], &12u16.to_be_bytes());
    assert!(forwarded.ends_with(b"UPSTREAM"));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_name_without_upstreams_is_nxdomain() {
    let ns = common::netns("dns2");
    let server = Server::start(
        "127.0.0.1:0".parse().unwrap(),
        Table::new(),
        Vec::new(),
        Some(ns.clone()),
    )
    .unwrap();
    let addr = server.local_addr();
    let r = tokio::task::spawn_blocking(move || {
        ns.run(move || {
            let c = UdpSocket::bind("127.0.0.1:0").unwrap();
            c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            c.send_to(&query(21, "nowhere.invalid", 1), addr).unwrap();
            let mut buf = [0u8; 512];
            let n = c.recv(&mut buf).unwrap();
            buf[..n].to_vec()
        })
        .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(&r[..2], &21u16.to_be_bytes());
    assert_eq!(r[3] & 0x0f, 3, "NXDOMAIN");
}
