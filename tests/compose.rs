//! docker-compose 1.29 (Debian's `docker-compose`, docker-py underneath) against `berth daemon`: a project of
//! three services (a web server with a published port and a healthcheck, a "db" with a named volume, a worker
//! that depends on both) brought up, used, scaled and taken down as on Docker. Images are made locally
//! (busybox); nothing is pulled. Compose runs inside the daemon's network namespace, where the published
//! port lives.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{ok, Daemon};

const PROJECT: &str = r#"version: "2.4"
services:
  web:
    image: busybox
    command: sh -c 'mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -v -p 80 -h /www'
    ports:
      - "127.0.0.1:18080:80"
    dns: 127.0.0.1
    init: true
    healthcheck:
      test: ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      timeout: 3s
      retries: 20
  db:
    image: busybox
    command: sh -c 'test -f /data/db.txt || echo stored-$$(hostname) > /data/db.txt; echo db-ready; exec sleep 1000'
    dns: 127.0.0.1
    volumes:
      - dbdata:/data
    init: true
  worker:
    image: busybox
    command: sh -c 'while true; do wget -q -O - http://web/ && cat /data/db.txt; sleep 1; done'
    dns: 127.0.0.1
    init: true
    links:
      - "db:database"
    volumes:
      - dbdata:/data:ro
    depends_on:
      web:
        condition: service_healthy
      db:
        condition: service_started
volumes:
  dbdata: {}
"#;

struct Compose<'a> {
    d: &'a Daemon,
    dir: std::path::PathBuf,
    /// `COMPOSE_INTERACTIVE_NO_CLI`: run and exec through docker-py's own attach instead of the docker CLI.
    no_cli: bool,
}

impl Compose<'_> {
    fn cmd(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("docker-compose");
        cmd.current_dir(&self.dir)
            .env("DOCKER_HOST", self.d.host())
            .env_remove("DOCKER_CONTEXT")
            .env(
                "COMPOSE_INTERACTIVE_NO_CLI",
                if self.no_cli { "1" } else { "" },
            )
            .args(["--ansi", "never", "-p", "berthproj"])
            .args(args)
            .stdin(std::process::Stdio::null());
        self.d.netns_command(&mut cmd);
        let t0 = Instant::now();
        let out = common::output_within(cmd, None, Duration::from_secs(120));
        eprintln!(
            "docker-compose {args:?}: {:?} in {:?}\n{}{}",
            out.status,
            t0.elapsed(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        ok(&self.cmd(args))
    }
}

fn http_get(d: &Daemon, addr: &str) -> String {
    let addr: SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
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
            Ok(body) if !body.is_empty() => return body,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            other => panic!("GET {addr}: {other:?}"),
        }
    }
}

#[test]
fn docker_compose_runs_a_three_service_project_as_on_docker() {
    common::require("docker-compose", "docker-compose");
    let d = common::docker_daemon();
    let dir = d.dir.path().join("proj");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), PROJECT).unwrap();
    let c = Compose {
        d: &d,
        dir,
        no_cli: false,
    };

    // run before anything is up: compose makes the network and volume and starts the worker's
    // dependencies (web only once healthy), then runs the one-off on the project's network.
    let first = c.ok(&[
        "run",
        "--rm",
        "-T",
        "worker",
        "sh",
        "-c",
        "wget -q -O - http://web/",
    ]);
    assert!(first.contains("hello-compose"), "{first}");
    let running = ok(&d.docker(&["ps", "--format", "{{.Names}}"]));
    let mut running: Vec<&str> = running.lines().collect();
    running.sort();
    assert_eq!(running, ["berthproj_db_1", "berthproj_web_1"]);

    // up -d: the rest of the project (the worker) joins what runs.
    c.ok(&["up", "-d"]);
    let body = http_get(&d, "127.0.0.1:18080");
    assert!(
        body.starts_with("HTTP/1.") && body.contains("hello-compose"),
        "{body}"
    );
    let health = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.State.Health.Status}}",
        "berthproj_web_1",
    ]));
    assert_eq!(health.trim(), "healthy");
    let ps = c.ok(&["ps"]);
    for name in ["berthproj_web_1", "berthproj_db_1", "berthproj_worker_1"] {
        assert!(ps.contains(name), "{ps}");
    }
    assert!(ps.contains("Up (healthy)"), "{ps}");
    assert!(ps.contains("127.0.0.1:18080->80/tcp"), "{ps}");

    // exec -T in a service container; the named volume holds what db wrote.
    let stored = c.ok(&["exec", "-T", "db", "cat", "/data/db.txt"]);
    assert!(stored.starts_with("stored-"), "{stored}");

    // `links:` on the project's network: an alias only the worker resolves.
    let db_ip = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.berthproj_default.IPAddress}}",
        "berthproj_db_1",
    ]));
    let found = c.ok(&["exec", "-T", "worker", "nslookup", "database", "127.0.0.11"]);
    assert!(
        found.contains(&format!("Address: {}", db_ip.trim())),
        "{found}"
    );
    let other = c.cmd(&["exec", "-T", "web", "nslookup", "database", "127.0.0.11"]);
    assert!(
        !String::from_utf8_lossy(&other.stdout).contains(db_ip.trim()),
        "only the linking container knows the alias"
    );

    // logs: each service's output, prefixed by its container.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let logs = c.ok(&["logs", "--no-color", "worker"]);
        if logs.contains("hello-compose") && logs.contains(stored.trim()) {
            assert!(logs.contains("worker_1  |"), "{logs}");
            break;
        }
        assert!(Instant::now() < deadline, "{logs}");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(c.ok(&["logs", "--no-color", "db"]).contains("db-ready"));

    // run: a one-off of the worker (its dependencies already up), on the project's network.
    let one_off = c.ok(&[
        "run",
        "--rm",
        "-T",
        "worker",
        "sh",
        "-c",
        "wget -q -O - http://web/; cat /data/db.txt",
    ]);
    assert!(one_off.contains("hello-compose"), "{one_off}");
    assert!(one_off.contains(stored.trim()), "{one_off}");

    // scale: a second worker, then back to one.
    c.ok(&["up", "-d", "--scale", "worker=2"]);
    let ps = c.ok(&["ps"]);
    assert!(ps.contains("berthproj_worker_2"), "{ps}");
    c.ok(&["up", "-d", "--scale", "worker=1"]);
    let ps = c.ok(&["ps", "-q", "worker"]);
    assert_eq!(ps.lines().count(), 1, "{ps}");

    // The everyday commands around a running project.
    assert_eq!(c.ok(&["port", "web", "80"]).trim(), "127.0.0.1:18080");
    let top = c.ok(&["top", "db"]);
    assert!(top.contains("sleep 1000"), "{top}");
    let images = c.ok(&["images"]);
    assert!(
        images.contains("berthproj_web_1") && images.contains("busybox"),
        "{images}"
    );
    c.ok(&["pause", "db"]);
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", "berthproj_db_1"])).trim(),
        "paused"
    );
    c.ok(&["unpause", "db"]);
    c.ok(&["restart", "-t", "1", "worker"]);
    c.ok(&["stop", "-t", "1", "worker"]);
    assert!(
        c.ok(&["ps", "worker"]).contains("Exit"),
        "stopped worker listed as exited"
    );
    c.ok(&["start", "worker"]);
    c.ok(&["kill", "-s", "SIGKILL", "worker"]);
    c.ok(&["rm", "-f", "worker"]);
    assert_eq!(c.ok(&["ps", "-q", "worker"]), "");
    let config = c.ok(&["config", "--services"]);
    let mut services: Vec<&str> = config.lines().collect();
    services.sort();
    assert_eq!(services, ["db", "web", "worker"]);

    // down -v: no container, project network or volume is left.
    c.ok(&["down", "-v"]);
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
    let nets = ok(&d.docker(&["network", "ls", "--format", "{{.Name}}"]));
    let mut nets: Vec<&str> = nets.lines().collect();
    nets.sort();
    assert_eq!(nets, ["bridge", "host", "none"]);
    assert_eq!(ok(&d.docker(&["volume", "ls", "-q"])), "");
}

#[test]
fn docker_compose_run_and_exec_through_docker_py_without_the_cli() {
    common::require("docker-compose", "docker-compose");
    let d = common::docker_daemon();
    let dir = d.dir.path().join("proj");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("docker-compose.yml"), PROJECT).unwrap();
    let c = Compose {
        d: &d,
        dir,
        no_cli: true,
    };
    // Without the CLI, compose 1.29 starts the one-off, attaches (without logs), then starts it again: a
    // one-off that ends before the attach runs twice and its first output is gone, on dockerd as here. The
    // pause keeps the output after the attach.
    let first = c.cmd(&[
        "run",
        "--rm",
        "-T",
        "worker",
        "sh",
        "-c",
        "sleep 1; wget -q -O - http://web/; exit 3",
    ]);
    assert!(
        String::from_utf8_lossy(&first.stdout).contains("hello-compose"),
        "{first:?}"
    );
    assert_eq!(first.status.code(), Some(3));
    c.ok(&["up", "-d", "db"]);
    let stored = c.ok(&["exec", "-T", "db", "cat", "/data/db.txt"]);
    assert!(stored.starts_with("stored-"), "{stored}");
    // The one-off's and the exec's exit codes come back as compose's.
    let out = c.cmd(&["exec", "-T", "db", "sh", "-c", "exit 5"]);
    assert_eq!(out.status.code(), Some(5));
    c.ok(&["down", "-v"]);
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
    assert_eq!(ok(&d.docker(&["volume", "ls", "-q"])), "");
}

#[test]
fn docker_compose_up_attached_ends_with_the_workers_exit_code() {
    common::require("docker-compose", "docker-compose");
    let d = common::docker_daemon();
    let dir = d.dir.path().join("proj");
    std::fs::create_dir(&dir).unwrap();
    let project = PROJECT.replace(
        "while true; do wget -q -O - http://web/ && cat /data/db.txt; sleep 1; done",
        "wget -q -O - http://web/ && cat /data/db.txt; echo worker-done; exit 7",
    );
    std::fs::write(dir.join("docker-compose.yml"), project).unwrap();
    let c = Compose {
        d: &d,
        dir,
        no_cli: false,
    };
    let out = c.cmd(&[
        "up",
        "--abort-on-container-exit",
        "--exit-code-from",
        "worker",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    assert!(text.contains("worker_1  | hello-compose"), "{text}");
    assert!(text.contains("worker_1  | worker-done"), "{text}");
    assert!(text.contains("db_1      | db-ready"), "{text}");
    c.ok(&["down", "-v"]);
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
}
