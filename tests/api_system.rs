//! The API foundation: ping, version negotiation, info, errors, events, and the routes Berth refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;

#[test]
fn ping_answers_ok_with_negotiation_headers() {
    let d = Daemon::start();
    let r = d.request("GET", "/_ping", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "OK");
    assert_eq!(r.header("Api-Version"), Some("1.50"));
    assert_eq!(r.header("Ostype"), Some("linux"));
    assert_eq!(r.header("Docker-Experimental"), Some("false"));
    assert_eq!(r.header("Builder-Version"), Some("1"));
    assert_eq!(
        r.header("Cache-Control"),
        Some("no-cache, no-store, must-revalidate")
    );
    assert_eq!(r.header("Pragma"), Some("no-cache"));
}

#[test]
fn head_ping_has_the_headers_and_no_body() {
    let d = Daemon::start();
    let r = d.request("HEAD", "/v1.41/_ping", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Api-Version"), Some("1.50"));
    assert!(r.body.is_empty());
}

#[test]
fn versioned_and_unversioned_paths_are_both_served() {
    let d = Daemon::start();
    for path in [
        "/version",
        "/v1.24/version",
        "/v1.41/version",
        "/v1.50/version",
    ] {
        let v = d.get_json(path);
        assert_eq!(v["ApiVersion"], "1.50", "{path}");
        assert_eq!(v["MinAPIVersion"], "1.24");
        assert_eq!(v["Components"][0]["Name"], "Engine");
        assert_eq!(v["Components"][0]["Details"]["ApiVersion"], "1.50");
    }
}

#[test]
fn too_old_api_version_is_refused_with_dockers_message() {
    let d = Daemon::start();
    let r = d.request("GET", "/v1.23/version", &[]);
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
    );
    let r = d.request("GET", "/v1.51/info", &[]);
    assert_eq!(r.status, 400);
}

#[test]
fn info_reports_real_figures() {
    let d = Daemon::start();
    let info = d.get_json("/info");
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(info["NCPU"].as_u64(), Some(cpus));
    assert!(info["MemTotal"].as_u64().unwrap() > 0);
    assert_eq!(info["Images"].as_u64(), Some(0));
    assert_eq!(info["Containers"].as_u64(), Some(0));
    assert_eq!(info["DockerRootDir"], d.data_root().display().to_string());
    assert_eq!(info["CgroupDriver"], "cgroupfs");
    assert!(matches!(
        info["CgroupVersion"].as_str(),
        Some("1") | Some("2")
    ));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(info["KernelVersion"], kernel.trim());
    assert_eq!(info["OSType"], "linux");
    assert!(!info["ID"].as_str().unwrap().is_empty());
    d.load_fixture();
    assert_eq!(d.get_json("/info")["Images"].as_u64(), Some(1));
}

#[test]
fn engine_id_survives_a_restart() {
    let mut d = Daemon::start();
    let id = d.get_json("/info")["ID"].clone();
    d.stop();
    d.spawn();
    assert_eq!(d.get_json("/info")["ID"], id);
}

#[test]
fn unknown_routes_are_404_page_not_found() {
    let d = Daemon::start();
    let r = d.request("GET", "/nonsense", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "page not found");
}

/// A handler that answers before reading the body (here: no route) still lets the client finish
/// sending it, reads the answer, and keeps the connection for the next request, as dockerd does.
#[test]
fn an_unread_request_body_is_drained_before_the_answer() {
    use std::io::{BufRead, BufReader, Read, Write};
    let d = Daemon::start();
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let body = br#"{"Spec":{}}"#;
    for round in 0..2 {
        write!(
            s,
            "PUT /v1.50/nonsense/{round} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        // The body comes late, after the daemon has its answer ready.
        std::thread::sleep(std::time::Duration::from_millis(300));
        s.write_all(body)
            .unwrap_or_else(|e| panic!("round {round}: writing the body: {e}"));
        let mut r = BufReader::new(&s);
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("HTTP/1.1 404"), "round {round}: {line:?}");
        let mut length = 0;
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            if line.trim().is_empty() {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut answer = vec![0; length];
        r.read_exact(&mut answer).unwrap();
        assert!(
            String::from_utf8_lossy(&answer).contains("page not found"),
            "round {round}"
        );
    }
}

#[test]
fn swarm_and_plugin_routes_answer_503_with_a_message() {
    let d = Daemon::start();
    for path in [
        "/swarm",
        "/services",
        "/nodes",
        "/tasks",
        "/secrets",
        "/configs",
        "/plugins/pull",
    ] {
        let method = if path.starts_with("/plugins") {
            "POST"
        } else {
            "GET"
        };
        let r = d.request(method, &format!("/v1.50{path}"), &[]);
        assert_eq!(r.status, 503, "{path}");
        assert!(!r.json()["message"].as_str().unwrap().is_empty());
    }
    // No plugin is installed: none listed, and an unknown one is not found (so `docker inspect` goes on).
    let r = d.request("GET", "/v1.50/plugins", &[]);
    assert_eq!((r.status, r.text().trim()), (200, "[]"));
    let r = d.request("GET", "/v1.50/plugins/nope/json", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "plugin \"nope\" not found");
}

#[test]
fn cluster_volumes_answer_503_from_the_engine_and_create_nothing() {
    let d = Daemon::start();
    let body = br#"{"Name":"cv","ClusterVolumeSpec":{"Group":"g"}}"#;
    let r = d.request("POST", "/v1.50/volumes/create", body);
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "cluster volumes need swarm mode, which Berth does not support"
    );
    let r = d.request("GET", "/v1.50/volumes/cv", &[]);
    assert_eq!(r.status, 404, "{}", r.text());
}

#[test]
fn docker_inspect_of_an_unknown_name_says_no_such_object() {
    let d = common::docker_daemon();
    let o = d.docker(&["inspect", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        common::err(&o).contains("No such object: nosuch"),
        "{}",
        common::err(&o)
    );
}

#[test]
fn missing_image_is_404_with_dockers_message() {
    let d = Daemon::start();
    let r = d.request("GET", "/images/nosuch:1/json", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such image: nosuch:1");
}

#[test]
fn events_report_image_actions_with_since_until_and_filters() {
    let d = Daemon::start();
    d.load_fixture();
    let r = d.request(
        "POST",
        "/images/fixture/webapp:1.0/tag?repo=mine&tag=v2",
        &[],
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let r = d.request("GET", &format!("/events?since=0&until={until}"), &[]);
    assert_eq!(r.status, 200);
    let events = r.json_lines();
    let actions: Vec<&str> = events.iter().filter_map(|e| e["Action"].as_str()).collect();
    assert!(actions.contains(&"load"), "{actions:?}");
    assert!(actions.contains(&"tag"), "{actions:?}");
    let tag = events.iter().find(|e| e["Action"] == "tag").unwrap();
    assert_eq!(tag["Type"], "image");
    assert_eq!(tag["Actor"]["Attributes"]["name"], "mine:v2");
    assert_eq!(
        tag["Actor"]["ID"],
        "sha256:577d8034c8e21de40e24ea4b7edef267879a8020c636d9def665075be53de13a"
    );
    let filtered = d.request(
        "GET",
        &format!("/events?since=0&until={until}&filters=%7B%22event%22%3A%5B%22tag%22%5D%7D"),
        &[],
    );
    let only: Vec<serde_json::Value> = filtered.json_lines();
    assert!(!only.is_empty());
    assert!(only.iter().all(|e| e["Action"] == "tag"));
}

#[test]
fn live_events_stream_as_they_happen() {
    use std::io::{BufRead, BufReader, Write};
    let d = Daemon::start();
    d.load_fixture();
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    s.write_all(b"GET /v1.50/events HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(line.contains("200"), "{line}");
    // Headers arrive before any event: the CLI waits for them.
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
    }
    let tag = d.request("POST", "/images/fixture/webapp:1.0/tag?repo=live", &[]);
    assert_eq!(tag.status, 201);
    let mut seen = String::new();
    for _ in 0..4 {
        line.clear();
        r.read_line(&mut line).unwrap();
        seen.push_str(&line);
        if seen.contains("\"tag\"") {
            break;
        }
    }
    assert!(seen.contains("live:latest"), "{seen}");
}

/// Sends `head` (a request line and headers) on a fresh connection and returns the whole answer as text;
/// the daemon may close before the head is all sent, which is no error here.
fn raw_exchange(d: &Daemon, head: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let _ = s.write_all(head);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Oversized heads are refused before routing, by hyper, with a JSON `{"message": …}` as every other error
/// (hyper alone answers them with an empty body); a large but sensible header still passes.
#[test]
fn oversized_request_heads_get_json_errors() {
    let d = Daemon::start();
    let body_of = |answer: &str| -> serde_json::Value {
        let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{head}"
        );
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body:?}"))
    };

    let big = "a".repeat(300 * 1024);
    let a = raw_exchange(
        &d,
        format!("GET /_ping HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    );
    assert!(a.starts_with("HTTP/1.1 431 "), "{:.200}", a);
    let m = body_of(&a)["message"].as_str().unwrap().to_owned();
    assert!(m.contains("request header fields too large"), "{m}");
    assert!(m.contains("256 KiB"), "{m}");

    let many: String = (0..150).map(|i| format!("X-H{i}: v\r\n")).collect();
    let a = raw_exchange(
        &d,
        format!("GET /_ping HTTP/1.1\r\nHost: x\r\n{many}\r\n").as_bytes(),
    );
    assert!(a.starts_with("HTTP/1.1 431 "), "{:.200}", a);
    assert!(body_of(&a)["message"]
        .as_str()
        .unwrap()
        .contains("100 header fields"));

    let long = "a".repeat(70 * 1024);
    let a = raw_exchange(
        &d,
        format!("GET /containers/json?x={long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    assert!(a.starts_with("HTTP/1.1 414 "), "{:.200}", a);
    assert!(body_of(&a)["message"]
        .as_str()
        .unwrap()
        .contains("URI too long"));

    let a = raw_exchange(&d, b"GET /_ping HTTP/1.1\r\nHost x\r\n\r\n");
    assert!(a.starts_with("HTTP/1.1 400 "), "{:.200}", a);
    assert!(body_of(&a)["message"]
        .as_str()
        .unwrap()
        .contains("malformed"));

    // 100 KiB of registry credentials is within bounds, and the daemon still serves.
    let auth = "b".repeat(100 * 1024);
    let a = raw_exchange(
        &d,
        format!("GET /_ping HTTP/1.1\r\nHost: x\r\nX-Registry-Auth: {auth}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(a.starts_with("HTTP/1.1 200 "), "{:.200}", a);
    assert!(a.ends_with("OK"), "{:.200}", a);
}
