//! Container networking end to end with the real docker CLI: the default bridge, published ports (proxy and
//! DNAT), `docker port`, user-defined networks with DNS by name, connect/disconnect, cleanup and live restore.
//!
//! Every daemon runs in a network namespace of its own (see `common::Daemon`), so its `berth0` bridge,
//! subnets, nftables tables and host ports never meet another test's; published ports are reached from
//! inside that namespace. Containers get `--dns 127.0.0.1` so no lookup can leave the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Output;
use std::time::{Duration, Instant};

use common::Daemon;

const HTTPD: &str =
    "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www";

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn daemon() -> Option<Daemon> {
    common::docker_daemon()
}

/// One HTTP GET from inside the daemon's namespace, retried until `deadline` (the server may be starting).
fn http_get(d: &Daemon, addr: &str) -> std::io::Result<String> {
    let addr: SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = d.in_netns(move || -> std::io::Result<String> {
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")?;
            let mut out = String::new();
            s.read_to_string(&mut out)?;
            Ok(out)
        });
        match got {
            Ok(body) if !body.is_empty() => return Ok(body),
            Ok(_) if Instant::now() < deadline => {}
            Err(_) if Instant::now() < deadline => {}
            other => return other,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Interface names in the daemon's namespace.
fn links(d: &Daemon) -> Vec<String> {
    let mut v = network::link::link_names(Some(&d.netns)).unwrap();
    v.sort();
    v
}

#[test]
fn published_port_answers_http_and_docker_port_prints_it() {
    let Some(d) = daemon() else { return };
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--dns",
        "127.0.0.1",
        "--name",
        "web",
        "-p",
        "127.0.0.1:8080:80",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    let id = id.trim();
    let body = http_get(&d, "127.0.0.1:8080").unwrap();
    assert!(
        body.starts_with("HTTP/1.") && body.contains("hello-from-"),
        "{body}"
    );

    assert_eq!(
        ok(&d.docker(&["port", "web"])),
        "80/tcp -> 127.0.0.1:8080\n"
    );
    assert_eq!(ok(&d.docker(&["port", "web", "80"])), "127.0.0.1:8080\n");
    assert_eq!(
        ok(&d.docker(&["port", "web", "80/tcp"])),
        "127.0.0.1:8080\n"
    );
    let ps = ok(&d.docker(&["ps", "--format", "{{.Ports}}"]));
    assert_eq!(ps, "127.0.0.1:8080->80/tcp\n");

    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["inspect", id]))).unwrap();
    let ns = &inspect[0]["NetworkSettings"];
    assert_eq!(
        ns["Ports"]["80/tcp"],
        serde_json::json!([{"HostIp": "127.0.0.1", "HostPort": "8080"}])
    );
    let br = &ns["Networks"]["bridge"];
    assert_eq!(br["IPAddress"], "172.17.0.2", "{ns}");
    assert_eq!(br["Gateway"], "172.17.0.1");
    assert_eq!(br["IPPrefixLen"], 16);
    assert_eq!(br["EndpointID"].as_str().unwrap().len(), 64);
    assert_eq!(br["MacAddress"].as_str().unwrap().len(), 17);
    assert_eq!(ns["IPAddress"], "172.17.0.2");
    let net: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["network", "inspect", "bridge"]))).unwrap();
    assert_eq!(br["NetworkID"], net[0]["Id"]);
    assert_eq!(
        inspect[0]["HostConfig"]["PortBindings"],
        serde_json::json!({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]})
    );
}

#[test]
fn port_in_use_fails_the_start_with_dockers_error() {
    let Some(d) = daemon() else { return };
    ok(&d.docker(&[
        "run",
        "-d",
        "--dns",
        "127.0.0.1",
        "-p",
        "127.0.0.1:8081:80",
        "busybox",
        "sleep",
        "60",
    ]));
    let out = d.docker(&[
        "run",
        "-d",
        "--dns",
        "127.0.0.1",
        "--name",
        "second",
        "-p",
        "127.0.0.1:8081:80",
        "busybox",
        "sleep",
        "60",
    ]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("driver failed programming external connectivity on endpoint second (")
            && err.contains("Bind for 127.0.0.1:8081 failed: port is already allocated"),
        "{err}"
    );
    // The failed container left no endpoint behind: one veth (the first container's) on the bridge.
    let veths = links(&d)
        .into_iter()
        .filter(|l| l.starts_with("veth"))
        .count();
    assert_eq!(veths, 1, "{:?}", links(&d));
}
