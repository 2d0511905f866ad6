//! IPv6 end to end with the real docker CLI (issue 12.7): dual-stack user networks (`--ipv6 --subnet`), IPAM
//! for IPv6 and `--ip6`, what inspect shows (`GlobalIPv6Address`, `IPv6Gateway`, `IPv6Address`), traffic
//! between containers over IPv6, the embedded DNS answering AAAA, published ports on `[::1]`, NAT66, and the
//! daemon's `--ipv6 --fixed-cidr-v6` for the default bridge (and in `daemon.json`); with the network details
//! issue 12.7 lists beside them: `--mac-address` per container and per endpoint, `--link-local-ip`, IPAM
//! auxiliary addresses, `Options` echoed as given, the network names dockerd accepts, and `Aliases`/`DNSNames`
//! per API version.
//!
//! Every daemon runs in a network namespace of its own (see `common::Daemon`); addresses are ULAs
//! (`fd00:db8:…`) that never leave it. Containers get `--dns 127.0.0.1` so no lookup can leave the machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{err, ok, Daemon};

const HTTPD: &str =
    "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www";

fn json(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

fn run_on(d: &Daemon, net: &str, extra: &[&str], script: &str) -> Output {
    let mut args = vec!["run", "--rm", "--network", net, "--dns", "127.0.0.1"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["busybox", "sh", "-c", script]);
    d.docker(&args)
}

/// `nft list table FAMILY NAME` in the daemon's namespace.
fn nft_table(d: &Daemon, family: &str, name: &str) -> String {
    let mut nft = Command::new("nft");
    nft.args(["list", "table", family, name]);
    d.netns_command(&mut nft);
    let out = nft
        .output()
        .expect("nft is needed by these tests (package nftables)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One HTTP GET from inside the daemon's namespace, retried for 10 s (the server may be starting).
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
            Ok(_) | Err(_) if Instant::now() < deadline => {}
            other => return other,
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn dual_stack_network_gives_ipv6_addresses_routes_dns_and_traffic_between_containers() {
    let d = common::docker_daemon();
    ok(&d.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:db8:1::/64",
        "n6",
    ]));
    // Dual stack: the IPv4 subnet still comes from the default pools, listed before the IPv6 one.
    let n = &json(&d.docker(&["network", "inspect", "n6"]))[0];
    assert_eq!(n["EnableIPv6"], true);
    assert_eq!(n["EnableIPv4"], true);
    let cfg = n["IPAM"]["Config"].as_array().unwrap();
    assert_eq!(cfg.len(), 2, "{cfg:?}");
    assert_eq!(cfg[0]["Subnet"], "172.18.0.0/16");
    assert_eq!(cfg[0]["Gateway"], "172.18.0.1");
    assert_eq!(cfg[1]["Subnet"], "fd00:db8:1::/64");
    assert_eq!(cfg[1]["Gateway"], "fd00:db8:1::1");
    assert_eq!(n["Options"], serde_json::json!({}));

    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "n6",
        "--dns",
        "127.0.0.1",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    let id = id.trim();
    let short = &id[..12];
    let c = &json(&d.docker(&["inspect", "web"]))[0];
    let ep = &c["NetworkSettings"]["Networks"]["n6"];
    assert_eq!(ep["GlobalIPv6Address"], "fd00:db8:1::2");
    assert_eq!(ep["GlobalIPv6PrefixLen"], 64);
    assert_eq!(ep["IPv6Gateway"], "fd00:db8:1::1");
    assert_eq!(ep["IPAddress"], "172.18.0.2");
    // The top-level fields are the default bridge's only, as in Docker.
    assert_eq!(c["NetworkSettings"]["GlobalIPv6Address"], "");
    let n = &json(&d.docker(&["network", "inspect", "n6"]))[0];
    assert_eq!(n["Containers"][id]["IPv6Address"], "fd00:db8:1::2/64");
    assert_eq!(n["Containers"][id]["IPv4Address"], "172.18.0.2/16");

    // A second container with --ip6: its interface has the address, its default route is the gateway, and
    // it reaches the first by name over IPv6 (ping and TCP); AAAA is answered by the embedded DNS server.
    let script = "ip -6 addr show dev eth0 scope global | grep -o 'inet6 [^ ]*'; \
         ip -6 route show default | cut -d' ' -f1-3; \
         nslookup -type=AAAA web 127.0.0.11 | grep Address | tail -1; \
         nslookup -type=A web 127.0.0.11 | grep Address | tail -1; \
         ping -6 -c 1 -W 5 web >/dev/null && echo ping-ok; \
         for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - 'http://[fd00:db8:1::2]/' && break; sleep 0.3; done; \
         grep fd00 /etc/hosts";
    let out = ok(&run_on(
        &d,
        "n6",
        &["--ip6", "fd00:db8:1::99", "--hostname", "client"],
        script,
    ));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "inet6 fd00:db8:1::99/64",
            "default via fd00:db8:1::1",
            "Address: fd00:db8:1::2",
            "Address: 172.18.0.2",
            "ping-ok",
            &format!("hello-from-{short}"),
            "fd00:db8:1::99\tclient",
        ],
        "{out}"
    );

    // The requested address shows in IPAMConfig; a taken one is refused with Docker's words.
    let cid = ok(&d.docker(&[
        "create",
        "--network",
        "n6",
        "--ip6",
        "fd00:db8:1::50",
        "busybox",
    ]));
    let c = &json(&d.docker(&["inspect", cid.trim()]))[0];
    assert_eq!(
        c["NetworkSettings"]["Networks"]["n6"]["IPAMConfig"]["IPv6Address"],
        "fd00:db8:1::50"
    );
    let out = run_on(&d, "n6", &["--ip6", "fd00:db8:1::2"], "true");
    assert!(!out.status.success());
    assert!(
        err(&out).contains("Address already in use"),
        "{}",
        err(&out)
    );

    // --ip6 on an IPv4-only network is refused at create with dockerd 28's words; an IPv6 subnet without
    // --ipv6 is discarded without an error, as dockerd does, and so is the driver option's false.
    ok(&d.docker(&["network", "create", "v4only"]));
    // As dockerd, IPv6 is off on the interface of an IPv4-only network (no multicast groups, no router
    // advertisements), on on a dual-stack one.
    let off = ok(&run_on(
        &d,
        "v4only",
        &[],
        "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6",
    ));
    assert_eq!(off.trim(), "1");
    let on = ok(&run_on(
        &d,
        "n6",
        &[],
        "cat /proc/sys/net/ipv6/conf/eth0/disable_ipv6",
    ));
    assert_eq!(on.trim(), "0");
    let out = d.docker(&[
        "create",
        "--network",
        "v4only",
        "--ip6",
        "fd00:db8:1::7",
        "busybox",
    ]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains(
            "invalid endpoint settings:\nno configured subnet contains IP address fd00:db8:1::7"
        ),
        "{}",
        err(&out)
    );
    ok(&d.docker(&["network", "create", "--subnet", "fd00:db8:2::/64", "nov6"]));
    let n = &json(&d.docker(&["network", "inspect", "nov6"]))[0];
    assert_eq!(n["EnableIPv6"], false);
    let cfg = n["IPAM"]["Config"].as_array().unwrap();
    assert_eq!(cfg.len(), 1, "{cfg:?}");
    assert!(!cfg[0]["Subnet"].as_str().unwrap().contains(':'), "{cfg:?}");
    ok(&d.docker(&[
        "network",
        "create",
        "-o",
        "com.docker.network.enable_ipv6=true",
        "--subnet",
        "fd00:db8:4::/64",
        "byopt",
    ]));
    let n = &json(&d.docker(&["network", "inspect", "byopt"]))[0];
    assert_eq!(n["EnableIPv6"], true);
    assert_eq!(n["IPAM"]["Config"][1]["Subnet"], "fd00:db8:4::/64");
    // An overlapping IPv6 subnet is refused, as Docker refuses an overlapping IPv4 one.
    let out = d.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:db8:1::/48",
        "overlap",
    ]);
    assert!(!out.status.success());
    assert!(err(&out).contains("overlaps"), "{}", err(&out));

    // NAT66: the IPv6 subnet is masqueraded when it leaves through another interface, as dockerd's
    // ip6tables rules do.
    let nat6 = nft_table(&d, "ip6", "berth-nat");
    assert!(
        nat6.contains("ip6 saddr fd00:db8:1::/64 oifname != \"br-"),
        "{nat6}"
    );
    assert!(nat6.contains("masquerade"), "{nat6}");

    // --ipv6 without a subnet: a /64 of the daemon's unique local prefix.
    ok(&d.docker(&["network", "create", "--ipv6", "auto6"]));
    let n = &json(&d.docker(&["network", "inspect", "auto6"]))[0];
    let s6 = n["IPAM"]["Config"][1]["Subnet"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(s6.starts_with("fd") && s6.ends_with("::/64"), "{s6}");
    let out = ok(&run_on(
        &d,
        "auto6",
        &[],
        "ip -6 addr show dev eth0 scope global | grep -o 'inet6 [^ ]*'",
    ));
    let want = format!("inet6 {}2/64", s6.trim_end_matches("/64"));
    assert_eq!(out.trim(), want);

    // Everything is given back: after the containers go, the network can be removed.
    ok(&d.docker(&["rm", "-f", "web", cid.trim()]));
    ok(&d.docker(&["network", "rm", "n6", "auto6", "v4only", "nov6", "byopt"]));
}

#[test]
fn ports_published_on_ipv6_reach_dual_stack_and_ipv4_only_containers() {
    let mut d = common::docker_daemon();
    ok(&d.docker(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:db8:3::/64",
        "n6",
    ]));
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--network",
        "n6",
        "-p",
        "[::1]:8080:80",
        "-p",
        "8081:80",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    let short = &id.trim()[..12];
    let want = format!("hello-from-{short}");
    for addr in ["[::1]:8080", "[::1]:8081", "127.0.0.1:8081"] {
        let body = http_get(&d, addr).unwrap_or_else(|e| panic!("{addr}: {e}"));
        assert!(body.contains(&want), "{addr}: {body}");
    }
    // Nothing listens on the IPv4 loopback for a port published on [::1] only.
    assert!(d
        .in_netns(|| TcpStream::connect_timeout(
            &"127.0.0.1:8080".parse().unwrap(),
            Duration::from_secs(1)
        ))
        .is_err());
    let ports = ok(&d.docker(&["port", id.trim()]));
    assert!(ports.contains("80/tcp -> [::1]:8080"), "{ports}");
    assert!(ports.contains("80/tcp -> 0.0.0.0:8081"), "{ports}");
    assert!(ports.contains("80/tcp -> [::]:8081"), "{ports}");
    // The wildcard IPv6 binding of a dual-stack container is also DNATed to its IPv6 address.
    let nat6 = nft_table(&d, "ip6", "berth-nat");
    assert!(
        nat6.contains("tcp dport 8081 dnat to [fd00:db8:3::2]:80"),
        "{nat6}"
    );

    // The bindings, DNAT rules and DNS names come back after a daemon restart (live restore).
    d.kill();
    d.spawn();
    for addr in ["[::1]:8080", "[::1]:8081"] {
        let body = http_get(&d, addr).unwrap_or_else(|e| panic!("{addr} after restart: {e}"));
        assert!(body.contains(&want), "{addr}: {body}");
    }
    let nat6 = nft_table(&d, "ip6", "berth-nat");
    assert!(
        nat6.contains("tcp dport 8081 dnat to [fd00:db8:3::2]:80"),
        "{nat6}"
    );

    // An IPv4-only container's port is reachable on [::1] too (the proxy forwards to its IPv4 address).
    let id4 = ok(&d.docker(&["run", "-d", "-p", "8082:80", "busybox", "sh", "-c", HTTPD]));
    let body = http_get(&d, "[::1]:8082").unwrap();
    assert!(
        body.contains(&format!("hello-from-{}", &id4.trim()[..12])),
        "{body}"
    );
}

#[test]
fn daemon_ipv6_and_fixed_cidr_v6_make_the_default_bridge_dual_stack() {
    common::docker_bin();
    let d = Daemon::start_with(&["--ipv6", "--fixed-cidr-v6", "fd00:db8:9::/64"]);
    d.import_busybox();
    let n = &json(&d.docker(&["network", "inspect", "bridge"]))[0];
    assert_eq!(n["EnableIPv6"], true);
    assert_eq!(n["IPAM"]["Config"][1]["Subnet"], "fd00:db8:9::/64");
    assert_eq!(n["IPAM"]["Config"][1]["Gateway"], "fd00:db8:9::1");
    ok(&d.docker(&["run", "-d", "--name", "c1", "busybox", "sleep", "60"]));
    let c = &json(&d.docker(&["inspect", "c1"]))[0];
    let s = &c["NetworkSettings"];
    assert_eq!(s["GlobalIPv6Address"], "fd00:db8:9::2");
    assert_eq!(s["GlobalIPv6PrefixLen"], 64);
    assert_eq!(s["IPv6Gateway"], "fd00:db8:9::1");
    assert_eq!(
        s["Networks"]["bridge"]["GlobalIPv6Address"],
        "fd00:db8:9::2"
    );
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "ping -6 -c 1 -W 5 fd00:db8:9::2 >/dev/null && echo ok",
    ]));
    assert_eq!(out.trim(), "ok");
    ok(&d.docker(&["rm", "-f", "c1"]));
}

#[test]
fn daemon_json_ipv6_settings_apply_and_a_setting_given_twice_is_refused() {
    common::docker_bin();
    let cfg_dir = tempfile::tempdir().unwrap();
    let cfg = cfg_dir.path().join("daemon.json");
    std::fs::write(
        &cfg,
        r#"{"ipv6": true, "fixed-cidr-v6": "fd00:db8:8::/64"}"#,
    )
    .unwrap();
    let cfg_arg = cfg.to_str().unwrap();
    let d = Daemon::start_with(&["--config-file", cfg_arg]);
    let n = &json(&d.docker(&["network", "inspect", "bridge"]))[0];
    assert_eq!(n["EnableIPv6"], true);
    assert_eq!(n["IPAM"]["Config"][1]["Subnet"], "fd00:db8:8::/64");

    // dockerd's rule: a directive given as a flag and in the file stops the daemon, naming both values.
    let root = tempfile::tempdir().unwrap();
    let out = Command::new(common::berth_bin())
        .args(["daemon", "--data-root"])
        .arg(root.path().join("data"))
        .arg("--exec-root")
        .arg(root.path().join("exec"))
        .arg("-H")
        .arg(format!("unix://{}", root.path().join("s.sock").display()))
        .args([
            "--fixed-cidr-v6",
            "fd00:db8:7::/64",
            "--config-file",
            cfg_arg,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        err(&out).contains(
            "the following directives are specified both as a flag and in the configuration file: \
             fixed-cidr-v6: (from flag: fd00:db8:7::/64, from file: fd00:db8:8::/64)"
        ),
        "{}",
        err(&out)
    );
    // A configuration file the user names must exist.
    let out = Command::new(common::berth_bin())
        .args(["daemon", "--data-root"])
        .arg(root.path().join("data"))
        .arg("--config-file")
        .arg(root.path().join("missing.json"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(err(&out).contains("missing.json"), "{}", err(&out));
}

#[test]
fn network_details_macs_link_local_aux_addresses_options_names_and_dns_names_are_dockers() {
    let d = common::docker_daemon();
    // dockerd accepts any name that is not blank or predefined, spaces included.
    ok(&d.docker(&["network", "create", "my net"]));
    let n = &json(&d.docker(&["network", "inspect", "my net"]))[0];
    assert_eq!(n["Name"], "my net");
    assert_eq!(n["Options"], serde_json::json!({}));
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--network",
        "my net",
        "busybox",
        "sh",
        "-c",
        "ip -4 addr show eth0 | grep -c inet",
    ]));
    assert_eq!(out.trim(), "1");
    let out = d.docker(&["network", "create", "bridge"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("operation is not permitted on predefined bridge network"),
        "{}",
        err(&out)
    );

    // Auxiliary addresses are shown and never given to a container; driver options are echoed as given.
    ok(&d.docker(&[
        "network",
        "create",
        "--subnet",
        "10.77.0.0/24",
        "--aux-address",
        "printer=10.77.0.2",
        "--aux-address",
        "nas=10.77.0.3",
        "-o",
        "com.example.note=kept",
        "aux",
    ]));
    let n = &json(&d.docker(&["network", "inspect", "aux"]))[0];
    assert_eq!(
        n["IPAM"]["Config"][0]["AuxiliaryAddresses"],
        serde_json::json!({"printer": "10.77.0.2", "nas": "10.77.0.3"})
    );
    assert_eq!(
        n["Options"],
        serde_json::json!({"com.example.note": "kept"})
    );
    // The docker CLI checks this itself; through the API dockerd's words come back.
    let r = d.request(
        "POST",
        "/v1.50/networks/create",
        br#"{"Name":"auxbad","IPAM":{"Config":[{"Subnet":"10.78.0.0/24","AuxiliaryAddresses":{"x":"10.99.0.2"}}]}}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text().contains(
            "invalid network config:\\ninvalid auxiliary address x: parent subnet 10.78.0.0/24 doesn't contain this address"
        ),
        "{}",
        r.text()
    );

    // A container's MAC (legacy --mac-address on its first network, and per endpoint), its link-local
    // addresses, and its names: DNSNames is name, aliases, short ID and hostname (all resolvable), Aliases only
    // the given ones since API 1.45 and also the short ID and hostname before.
    ok(&d.docker(&["network", "create", "other"]));
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "srv",
        "--hostname",
        "hn",
        "--network",
        "name=aux,mac-address=02:11:22:33:44:55,alias=al,link-local-ip=169.254.10.10,link-local-ip=fe80::10",
        "--network",
        "name=other,mac-address=02:66:77:88:99:aa",
        "--dns",
        "127.0.0.1",
        "busybox",
        "sleep",
        "300",
    ]));
    let id = id.trim();
    let short = &id[..12];
    let out = ok(&d.docker(&[
        "exec",
        "srv",
        "sh",
        "-c",
        "cat /sys/class/net/eth0/address /sys/class/net/eth1/address; \
         ip addr show eth0 | grep -o 'inet6\\? \\(169.254\\|fe80::10/\\|10.77\\)[^ ]*'",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "02:11:22:33:44:55",
            "02:66:77:88:99:aa",
            "inet 10.77.0.4/24",
            "inet 169.254.10.10/16",
            "inet6 fe80::10/64",
        ],
        "{out}"
    );
    let c = d.get_json("/v1.50/containers/srv/json");
    let ep = &c["NetworkSettings"]["Networks"]["aux"];
    assert_eq!(ep["MacAddress"], "02:11:22:33:44:55");
    assert_eq!(ep["IPAddress"], "10.77.0.4");
    assert_eq!(
        ep["IPAMConfig"]["LinkLocalIPs"],
        serde_json::json!(["169.254.10.10", "fe80::10"])
    );
    assert_eq!(ep["Aliases"], serde_json::json!(["al"]));
    assert_eq!(
        ep["DNSNames"],
        serde_json::json!(["srv", "al", short, "hn"])
    );
    assert_eq!(
        c["NetworkSettings"]["Networks"]["other"]["Aliases"],
        serde_json::Value::Null
    );
    let old = d.get_json("/v1.44/containers/srv/json");
    assert_eq!(
        old["NetworkSettings"]["Networks"]["aux"]["Aliases"],
        serde_json::json!(["al", short, "hn"])
    );
    let out = ok(&run_on(
        &d,
        "aux",
        &[],
        "nslookup hn 127.0.0.11 | grep Address | tail -1",
    ));
    assert_eq!(out.trim(), "Address: 10.77.0.4");

    // network connect with EndpointSettings.MacAddress (the API; the docker CLI has no flag for it).
    ok(&d.docker(&["network", "create", "third"]));
    let body =
        format!(r#"{{"Container":"{id}","EndpointConfig":{{"MacAddress":"02:00:00:00:00:33"}}}}"#);
    let r = d.request("POST", "/v1.50/networks/third/connect", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let out = ok(&d.docker(&["exec", "srv", "cat", "/sys/class/net/eth2/address"]));
    assert_eq!(out.trim(), "02:00:00:00:00:33");
    let c = d.get_json("/v1.50/containers/srv/json");
    assert_eq!(
        c["NetworkSettings"]["Networks"]["third"]["MacAddress"],
        "02:00:00:00:00:33"
    );

    // The container-wide --mac-address applies to the default bridge as well.
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "legacy",
        "--mac-address",
        "02:42:de:ad:be:ef",
        "busybox",
        "sleep",
        "300",
    ]));
    let c = &json(&d.docker(&["inspect", "legacy"]))[0];
    assert_eq!(
        c["NetworkSettings"]["Networks"]["bridge"]["MacAddress"],
        "02:42:de:ad:be:ef"
    );
    assert_eq!(c["NetworkSettings"]["MacAddress"], "02:42:de:ad:be:ef");
    ok(&d.docker(&["rm", "-f", "srv", "legacy"]));
}
