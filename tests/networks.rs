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

use common::ok;
use common::Daemon;

const HTTPD: &str =
    "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www";

fn daemon() -> Daemon {
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
    let d = daemon();
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
    let d = daemon();
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

/// `docker run --rm` on a network with a shell script; returns stdout (the script decides the exit code).
fn run_on(d: &Daemon, net: &str, script: &str) -> Output {
    d.docker(&[
        "run",
        "--rm",
        "--network",
        net,
        "--dns",
        "127.0.0.1",
        "busybox",
        "sh",
        "-c",
        script,
    ])
}

#[test]
fn containers_on_a_user_network_reach_each_other_by_name_and_alias_only_there() {
    let d = daemon();
    ok(&d.docker(&["network", "create", "n1"]));
    ok(&d.docker(&["network", "create", "n2"]));
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "web1",
        "--network",
        "n1",
        "--network-alias",
        "alpha",
        "--dns",
        "127.0.0.1",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    let short = &id.trim()[..12];
    let get = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc";
    let out = ok(&run_on(
        &d,
        "n1",
        &format!(
            "for i in 1 2 3 4 5 6 7 8 9 10; do {get} web1 80 | grep -q hello && break; sleep 0.2; done; \
             {get} web1 80 | tail -1; {get} alpha 80 | tail -1; nslookup {short} 127.0.0.11 | grep Address | tail -1"
        ),
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(lines[0], format!("hello-from-{short}"));
    assert_eq!(lines[1], lines[0]);
    assert_eq!(lines[2], "Address: 172.18.0.2");
    // The container's resolver is the embedded DNS server.
    let out = ok(&run_on(&d, "n1", "cat /etc/resolv.conf"));
    assert!(out.starts_with("nameserver 127.0.0.11\n"), "{out}");

    // From another network the names do not resolve (the lookup goes upstream to 127.0.0.1 and fails).
    let out = run_on(
        &d,
        "n2",
        "nslookup web1 127.0.0.11; nslookup alpha 127.0.0.11",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("172.18.0.2"), "{text}");
    assert!(text.contains("can't find web1"), "{text}");

    // docker network inspect has Docker's shape and lists the container.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["network", "inspect", "n1"]))).unwrap();
    let n = &v[0];
    let keys: Vec<&str> = n.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "Name",
            "Id",
            "Created",
            "Scope",
            "Driver",
            "EnableIPv4",
            "EnableIPv6",
            "IPAM",
            "Internal",
            "Attachable",
            "Ingress",
            "ConfigFrom",
            "ConfigOnly",
            "Containers",
            "Options",
            "Labels"
        ]
    );
    assert_eq!(n["Driver"], "bridge");
    assert_eq!(n["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
    assert_eq!(n["IPAM"]["Config"][0]["Gateway"], "172.18.0.1");
    let c = &n["Containers"][id.trim()];
    assert_eq!(c["Name"], "web1");
    assert_eq!(c["IPv4Address"], "172.18.0.2/16");
    // A renamed container answers to its new name.
    ok(&d.docker(&["rename", "web1", "web2"]));
    let out = ok(&run_on(
        &d,
        "n1",
        "nslookup web2 127.0.0.11 | grep Address | tail -1",
    ));
    assert_eq!(out.trim(), "Address: 172.18.0.2");
    // A network in use cannot be removed.
    let out = d.docker(&["network", "rm", "n1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has active endpoints"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn network_connect_and_disconnect_work_on_a_running_container() {
    let d = daemon();
    ok(&d.docker(&["network", "create", "--subnet", "10.123.0.0/24", "front"]));
    ok(&d.docker(&["network", "create", "back"]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "app",
        "--network",
        "back",
        "--dns",
        "127.0.0.1",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    ok(&d.docker(&[
        "network",
        "connect",
        "--alias",
        "api",
        "--ip",
        "10.123.0.50",
        "front",
        "app",
    ]));
    let v: serde_json::Value = serde_json::from_str(&ok(&d.docker(&["inspect", "app"]))).unwrap();
    let front = &v[0]["NetworkSettings"]["Networks"]["front"];
    assert_eq!(front["IPAddress"], "10.123.0.50");
    assert_eq!(front["Aliases"], serde_json::json!(["api"]));
    let out = ok(&run_on(
        &d,
        "front",
        "for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc api 80 | grep hello && break; sleep 0.2; done",
    ));
    assert!(out.starts_with("hello-from-"), "{out}");

    ok(&d.docker(&["network", "disconnect", "front", "app"]));
    let v: serde_json::Value = serde_json::from_str(&ok(&d.docker(&["inspect", "app"]))).unwrap();
    assert!(v[0]["NetworkSettings"]["Networks"].get("front").is_none());
    let out = run_on(&d, "front", "nslookup api 127.0.0.11");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("10.123.0.50"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = d.docker(&["network", "disconnect", "front", "app"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not connected to network front"));
    // A container on the default bridge that joins a user network resolves names there from then on.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "plain",
        "--dns",
        "127.0.0.1",
        "busybox",
        "sleep",
        "60",
    ]));
    ok(&d.docker(&["network", "connect", "back", "plain"]));
    let out = ok(&d.docker(&[
        "exec",
        "plain",
        "sh",
        "-c",
        "nslookup app | grep Address | tail -1",
    ]));
    assert_eq!(out, "Address: 172.18.0.2\n");
    ok(&d.docker(&["rm", "-f", "plain"]));
    // A created container connected before its start joins both networks when it starts.
    ok(&d.docker(&[
        "create",
        "--name",
        "later",
        "--network",
        "back",
        "--dns",
        "127.0.0.1",
        "busybox",
        "sleep",
        "60",
    ]));
    ok(&d.docker(&[
        "network",
        "connect",
        "--ip",
        "10.123.0.60",
        "front",
        "later",
    ]));
    ok(&d.docker(&["start", "later"]));
    let out = ok(&d.docker(&[
        "inspect", "-f",
        "{{.NetworkSettings.Networks.front.IPAddress}} {{.NetworkSettings.Networks.back.IPAddress}}",
        "later",
    ]));
    assert_eq!(out, "10.123.0.60 172.18.0.3\n");
    ok(&d.docker(&["rm", "-f", "later"]));
    // Only the back network's veth remains for the container.
    let veths = links(&d)
        .into_iter()
        .filter(|l| l.starts_with("veth"))
        .count();
    assert_eq!(veths, 1, "{:?}", links(&d));
    // The events stream shows the network actions (`--until` counts whole seconds).
    std::thread::sleep(Duration::from_millis(1100));
    let ev = ok(&d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        "0s",
        "--filter",
        "type=network",
        "--format",
        "{{.Action}} {{.Actor.Attributes.name}}",
    ]));
    for want in [
        "create front",
        "create back",
        "connect back",
        "connect front",
        "disconnect front",
    ] {
        assert!(ev.lines().any(|l| l == want), "{want} missing in\n{ev}");
    }
}

/// Everything a container's networking leaves in the daemon's namespace and state: veths, IP allocations,
/// DNAT rules, saved port files.
fn leftovers(d: &Daemon) -> (Vec<String>, usize, String, usize) {
    let veths: Vec<String> = links(d)
        .into_iter()
        .filter(|l| l.starts_with("veth"))
        .collect();
    let mut allocated = 0;
    for e in std::fs::read_dir(d.data_root().join("network/ipam")).unwrap() {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap();
        allocated += v["allocated"].as_object().map_or(0, |m| m.len());
    }
    let mut nft = std::process::Command::new("nft");
    nft.args(["list", "chain", "ip", "berth-nat", "publish"]);
    d.netns_command(&mut nft);
    let rules = String::from_utf8_lossy(&nft.output().unwrap().stdout)
        .lines()
        .filter(|l| l.contains("dnat"))
        .collect::<Vec<_>>()
        .join("\n");
    let files = std::fs::read_dir(d.exec_root().join("network"))
        .map(|r| r.count())
        .unwrap_or(0);
    (veths, allocated, rules, files)
}

#[test]
fn a_hundred_run_rm_cycles_leave_no_veth_address_or_rule_behind() {
    let d = daemon();
    for i in 0..100 {
        let out = d.docker(&[
            "run",
            "--rm",
            "--dns",
            "127.0.0.1",
            "-p",
            "127.0.0.1::80",
            "busybox",
            "true",
        ]);
        assert!(
            out.status.success(),
            "cycle {i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
    assert_eq!(leftovers(&d), (vec![], 0, String::new(), 0));
}

#[test]
fn published_ports_keep_working_across_a_daemon_restart() {
    let mut d = daemon();
    ok(&d.docker(&["network", "create", "keep"]));
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "keep",
        "--dns",
        "127.0.0.1",
        "-p",
        "127.0.0.1:8082:80",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    assert!(http_get(&d, "127.0.0.1:8082")
        .unwrap()
        .contains("hello-from-"));
    let before = leftovers(&d);
    assert_eq!(before.0.len(), 1);
    d.kill();
    d.spawn();
    let body = http_get(&d, "127.0.0.1:8082").unwrap();
    assert!(body.contains("hello-from-"), "{body}");
    assert_eq!(
        ok(&d.docker(&["port", "web"])),
        "80/tcp -> 127.0.0.1:8082\n"
    );
    // Same endpoint, same rule, nothing duplicated.
    assert_eq!(leftovers(&d), before);
    // Names still resolve on the network after the restart.
    let out = ok(&run_on(
        &d,
        "keep",
        "nslookup web 127.0.0.11 | grep Address | tail -1",
    ));
    assert_eq!(out.trim(), "Address: 172.18.0.2");
    ok(&d.docker(&["rm", "-f", "web"]));
    assert_eq!(leftovers(&d), (vec![], 0, String::new(), 0));
}

#[test]
fn berth_cli_network_and_port_commands_print_what_docker_prints() {
    let d = daemon();
    let id = ok(&d.berth(&[
        "network",
        "create",
        "--subnet",
        "10.9.0.0/24",
        "--gateway",
        "10.9.0.254",
        "--label",
        "a=b",
        "t1",
    ]));
    assert_eq!(id.trim().len(), 64);
    ok(&d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "t1",
        "--ip",
        "10.9.0.7",
        "--network-alias",
        "w",
        "--dns",
        "127.0.0.1",
        "-p",
        "8083:80",
        "-p",
        "127.0.0.1::81/udp",
        "--expose",
        "90",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    for args in [
        &["network", "ls"][..],
        &["network", "ls", "--filter", "label=a=b", "-q"],
        &["network", "inspect", "t1"],
        &["port", "web"],
        &["port", "web", "80"],
        &["ps", "--format", "{{.Ports}} {{.Networks}}"],
        &[
            "inspect",
            "--format",
            "{{json .NetworkSettings.Networks.t1.IPAddress}}",
            "web",
        ],
    ] {
        let (b, k) = (d.berth(args), d.docker(args));
        assert_eq!(ok(&b), ok(&k), "{args:?}");
    }
    let out = ok(&d.berth(&["port", "web"]));
    assert!(out.contains("80/tcp -> 0.0.0.0:8083\n"), "{out}");
    assert!(out.contains("81/udp -> 127.0.0.1:"), "{out}");
    assert!(http_get(&d, "127.0.0.1:8083")
        .unwrap()
        .contains("hello-from-"));
    // Through a non-loopback address of the host (the bridge gateway): DNAT in the output hook.
    assert!(http_get(&d, "10.9.0.254:8083")
        .unwrap()
        .contains("hello-from-"));
    let (b, k) = (
        d.berth(&["port", "web", "443"]),
        d.docker(&["port", "web", "443"]),
    );
    assert_eq!((b.status.code(), b.stderr), (k.status.code(), k.stderr));
    ok(&d.berth(&["network", "disconnect", "t1", "web"]));
    ok(&d.berth(&["network", "connect", "--alias", "again", "t1", "web"]));
    ok(&d.berth(&["rm", "-f", "web"]));
    assert_eq!(ok(&d.berth(&["network", "rm", "t1"])), "t1\n");
    ok(&d.berth(&["network", "create", "unused"]));
    assert_eq!(
        ok(&d.berth(&["network", "prune", "-f"])),
        "Deleted Networks:\nunused\n\n"
    );
}

#[test]
fn run_options_shape_the_container_network() {
    let d = daemon();
    // -o bridge name, --internal: no default route inside.
    ok(&d.docker(&[
        "network",
        "create",
        "--internal",
        "-o",
        "com.docker.network.bridge.name=br-inner",
        "inner",
    ]));
    assert!(
        links(&d).contains(&"br-inner".to_string()),
        "{:?}",
        links(&d)
    );
    let out = ok(&run_on(
        &d,
        "inner",
        "ip route; echo; ip -o -4 addr show eth0",
    ));
    assert!(!out.contains("default"), "{out}");
    assert!(out.contains("172.18.0.2/16"), "{out}");

    // --add-host (with host-gateway), --hostname, --mac-address, and the container's own line in /etc/hosts.
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--dns",
        "127.0.0.1",
        "--hostname",
        "box",
        "--add-host",
        "db:10.1.2.3",
        "--add-host",
        "gw:host-gateway",
        "--mac-address",
        "02:42:ac:11:00:99",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hosts; cat /sys/class/net/eth0/address",
    ]));
    assert!(out.contains("10.1.2.3\tdb\n"), "{out}");
    assert!(out.contains("172.17.0.1\tgw\n"), "{out}");
    assert!(out.contains("172.17.0.2\tbox\n"), "{out}");
    assert!(out.ends_with("02:42:ac:11:00:99\n"), "{out}");

    // -P publishes every exposed port on an ephemeral host port; docker restart keeps the port working.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "pub",
        "--dns",
        "127.0.0.1",
        "--expose",
        "80",
        "-P",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    let line = ok(&d.docker(&["port", "pub", "80"]));
    let host = line.lines().next().unwrap().to_string();
    let port: u16 = host.rsplit(':').next().unwrap().parse().unwrap();
    assert!(port >= 1024, "{line}");
    assert!(http_get(&d, &format!("127.0.0.1:{port}"))
        .unwrap()
        .contains("hello-from-"));
    let stats: serde_json::Value = d.get_json("/containers/pub/stats?stream=false");
    assert!(
        stats["networks"]["eth0"]["rx_bytes"].as_u64().unwrap() > 0,
        "{stats}"
    );
    ok(&d.docker(&["restart", "-t", "0", "pub"]));
    let line = ok(&d.docker(&["port", "pub", "80"]));
    let port: u16 = line
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(http_get(&d, &format!("127.0.0.1:{port}"))
        .unwrap()
        .contains("hello-from-"));

    // --network container:X shares X's interfaces.
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "container:pub",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0",
    ]));
    let ip = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.bridge.IPAddress}}",
        "pub",
    ]));
    assert!(out.contains(&format!("{}/16", ip.trim())), "{out} vs {ip}");

    // ls filters.
    let names = |args: &[&str]| {
        let mut a = vec!["network", "ls", "--format", "{{.Name}}"];
        a.extend_from_slice(args);
        ok(&d.docker(&a))
    };
    assert_eq!(names(&["--filter", "type=custom"]), "inner\n");
    assert_eq!(names(&["--filter", "driver=null"]), "none\n");
    assert_eq!(names(&["--filter", "dangling=true"]), "inner\n");
    assert_eq!(names(&["--filter", "name=inn"]), "inner\n");
    let out = d.docker(&["network", "create", "--subnet", "172.18.5.0/24", "clash"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Pool overlaps"));
    let r = d.request(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox","HostConfig":{"NetworkMode":"nosuch"}}"#,
    );
    assert_eq!(
        (r.status, r.json()["message"].clone()),
        (404, "network nosuch not found".into())
    );
}

#[test]
fn daemon_bridge_and_bip_flags_pick_the_default_network() {
    common::docker_bin();
    let mut d = Daemon::start_with(&["--bridge", "br-custom", "--bip", "10.99.0.1/24"]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["network", "inspect", "bridge"]))).unwrap();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.99.0.0/24");
    assert_eq!(v[0]["IPAM"]["Config"][0]["Gateway"], "10.99.0.1");
    assert_eq!(
        v[0]["Options"]["com.docker.network.bridge.name"],
        "br-custom"
    );
    assert!(
        links(&d).contains(&"br-custom".to_string()),
        "{:?}",
        links(&d)
    );
    // Its nftables tables are its own (another daemon in the same namespace keeps `berth`).
    let mut nft = std::process::Command::new("nft");
    nft.args(["list", "tables"]);
    d.netns_command(&mut nft);
    let tables = String::from_utf8_lossy(&nft.output().unwrap().stdout).into_owned();
    assert!(tables.contains("table ip berth-br-custom-nat"), "{tables}");
    assert!(!tables.contains("table ip berth-nat"), "{tables}");
    // Restarted with another --bip and no container on it, the default network follows the flags.
    d.stop();
    d.args = vec![
        "--bridge".into(),
        "br-custom".into(),
        "--bip".into(),
        "10.98.0.1/16".into(),
    ];
    d.spawn();
    let v: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["network", "inspect", "bridge"]))).unwrap();
    assert_eq!(v[0]["IPAM"]["Config"][0]["Subnet"], "10.98.0.0/16");
    let tar = d.dir.path().join("rootfs.tar");
    common::busybox_rootfs_tar(&tar);
    ok(&d.docker_stdin(
        &["import", "-c", "CMD [\"sh\"]", "-", "busybox"],
        Some(&tar),
    ));
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--dns",
        "127.0.0.1",
        "busybox",
        "sh",
        "-c",
        "ip -o -4 addr show eth0; ip route",
    ]));
    assert!(
        out.contains("10.98.0.2/16") && out.contains("default via 10.98.0.1"),
        "{out}"
    );
}

#[test]
fn published_udp_port_reaches_the_container() {
    let d = daemon();
    ok(&d.docker(&[
        "run", "-d", "--name", "udp", "--dns", "127.0.0.1", "-p", "127.0.0.1:5353:5353/udp",
        // busybox's nc has no UDP here: the host's python3, its /usr and /lib mounted read-only.
        "-v", "/usr:/usr:ro", "-v", "/lib:/lib:ro", "-v", "/lib64:/lib64:ro", "busybox",
        "/usr/bin/python3", "-u", "-c",
        "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0',5353))\n\
         while True:\n d,a=s.recvfrom(100)\n print(d.decode().strip())\n s.sendto(b'pong',a)",
    ]));
    assert_eq!(
        ok(&d.docker(&["port", "udp"])),
        "5353/udp -> 127.0.0.1:5353\n"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The reply comes back through the proxy's flow for this client.
        let reply = d.in_netns(|| {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            s.send_to(b"ping-udp\n", "127.0.0.1:5353").unwrap();
            let mut buf = [0u8; 16];
            s.recv(&mut buf)
                .map(|n| buf[..n].to_vec())
                .unwrap_or_default()
        });
        if reply == b"pong" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no reply: {}",
            ok(&d.docker(&["logs", "udp"]))
        );
    }
    // The shim writes the container's output to the log on its own time.
    while !ok(&d.docker(&["logs", "udp"])).contains("ping-udp") {
        assert!(Instant::now() < deadline, "the datagram is not in the log");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Another daemon, with a data root of its own, in `d`'s network namespace (as two daemons on one host).
fn neighbour(d: &Daemon) -> Daemon {
    Daemon {
        dir: tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("tempdir"),
        child: None,
        netns: std::sync::Arc::clone(&d.netns),
        args: Vec::new(),
    }
}

fn berth0_addresses(d: &Daemon) -> Vec<String> {
    d.in_netns(|| network::link::ipv4_addresses(None, "berth0"))
        .expect("list berth0's addresses")
        .iter()
        .map(|a| a.to_string())
        .collect()
}

/// Issue 12.12: daemons on fresh data roots used to add a new pool to the one `berth0` each time, and
/// never remove it, until no pool was left. Now a second daemon cannot take a bridge another one manages,
/// a bridge's existing address is reused, and a daemon removes the bridge it made when it stops cleanly
/// with nothing running.
#[test]
fn daemons_on_one_host_share_no_bridge_reuse_its_address_and_remove_what_they_made() {
    let mut a = Daemon::start();
    assert_eq!(berth0_addresses(&a), ["172.17.0.1/16"]);

    // A second daemon in the same namespace is refused, in words that say what to do.
    let b = neighbour(&a);
    let mut child = b
        .daemon_command()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the second daemon");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a second daemon on the same bridge kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success());
    assert!(
        err.contains("the bridge berth0 is managed by another berth daemon")
            && err.contains(&a.data_root().display().to_string())
            && err.contains("--bridge"),
        "{err}"
    );
    assert_eq!(
        berth0_addresses(&a),
        ["172.17.0.1/16"],
        "the refused daemon touched the bridge"
    );

    // A clean stop with nothing running removes the bridge the daemon made.
    assert!(a.stop().success());
    assert!(!a
        .in_netns(|| network::link::link_exists(None, "berth0"))
        .unwrap());

    // A bridge that is already there with an address keeps it: the new data root's default network takes it.
    a.in_netns(|| {
        network::link::ensure_bridge(None, "berth0", "10.123.4.1/24".parse().unwrap(), None, 1500)
    })
    .expect("make berth0 by hand");
    let mut c = neighbour(&a);
    c.spawn();
    c.import_busybox();
    let net: serde_json::Value =
        serde_json::from_str(&ok(&c.docker(&["network", "inspect", "bridge"]))).unwrap();
    assert_eq!(
        net[0]["IPAM"]["Config"][0]["Subnet"], "10.123.4.0/24",
        "{net}"
    );
    assert_eq!(
        net[0]["IPAM"]["Config"][0]["Gateway"], "10.123.4.1",
        "{net}"
    );
    assert_eq!(berth0_addresses(&c), ["10.123.4.1/24"]);
    ok(&c.docker(&["run", "--rm", "--dns", "127.0.0.1", "busybox", "true"]));
    // It did not make this bridge, so it leaves it.
    assert!(c.stop().success());
    assert_eq!(berth0_addresses(&c), ["10.123.4.1/24"]);
}
