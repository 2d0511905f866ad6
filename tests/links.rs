//! Legacy links (`--link`) with the real docker CLI, compared with what dockerd 28 does: on the default
//! bridge, `/etc/hosts` entries and `ALIAS_…` variables in the linking container, `HostConfig.Links` in
//! Docker's form, the link's name in `docker ps`, Docker's errors for missing and stopped containers, hosts
//! entries that follow a restarted container's address, `docker rm --link`; on user-defined networks, links
//! as aliases only the linking container resolves (also through `network connect --link`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{err, ok, Daemon};

fn run_d(d: &Daemon, args: &[&str]) -> String {
    let mut v = vec!["run", "-d", "--dns", "127.0.0.1"];
    v.extend_from_slice(args);
    ok(&d.docker(&v)).trim().to_owned()
}

fn inspect(d: &Daemon, fmt: &str, name: &str) -> String {
    ok(&d.docker(&["inspect", "-f", fmt, name]))
        .trim()
        .to_owned()
}

#[test]
fn links_on_the_default_bridge_give_hosts_entries_env_and_dockers_inspect_form() {
    let d = common::docker_daemon();
    let db = run_d(
        &d,
        &[
            "--name",
            "db",
            "-e",
            "PW=se=cret",
            "--expose",
            "5432",
            "--expose",
            "5433",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let db_ip = inspect(&d, "{{.NetworkSettings.IPAddress}}", "db");
    assert!(db_ip.starts_with("172.17."), "{db_ip}");
    run_d(
        &d,
        &[
            "--name", "web", "--link", "db:my-db", "busybox", "sleep", "1000",
        ],
    );

    // /etc/hosts: the alias, the linked container's hostname (its short ID) and its name, before the
    // container's own entry.
    let hosts = ok(&d.docker(&["exec", "web", "cat", "/etc/hosts"]));
    let lines: Vec<&str> = hosts.lines().collect();
    let web_ip = inspect(&d, "{{.NetworkSettings.IPAddress}}", "web");
    let n = lines.len();
    assert_eq!(
        lines[n - 2],
        format!("{db_ip}\tmy-db {} db", &db[..12]),
        "{hosts}"
    );
    assert_eq!(
        lines[n - 1],
        format!("{web_ip}\t{}", &inspect(&d, "{{.Id}}", "web")[..12])
    );

    // The variables, as dockerd sets them (the range of two ports included), in the process and in execs.
    let env = ok(&d.docker(&["exec", "web", "env"]));
    for want in [
        format!("MY_DB_PORT=tcp://{db_ip}:5432"),
        format!("MY_DB_PORT_5432_TCP=tcp://{db_ip}:5432"),
        format!("MY_DB_PORT_5432_TCP_ADDR={db_ip}"),
        "MY_DB_PORT_5432_TCP_PORT=5432".to_owned(),
        "MY_DB_PORT_5432_TCP_PROTO=tcp".to_owned(),
        format!("MY_DB_PORT_5433_TCP=tcp://{db_ip}:5433"),
        format!("MY_DB_PORT_5432_TCP_START=tcp://{db_ip}:5432"),
        "MY_DB_PORT_5432_TCP_PORT_START=5432".to_owned(),
        format!("MY_DB_PORT_5432_TCP_END=tcp://{db_ip}:5433"),
        "MY_DB_PORT_5432_TCP_PORT_END=5433".to_owned(),
        "MY_DB_NAME=/web/my-db".to_owned(),
        "MY_DB_ENV_PW=se=cret".to_owned(),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing in:\n{env}");
    }
    assert!(!env.contains("MY_DB_ENV_PATH"), "{env}");
    let pid1_env = ok(&d.docker(&[
        "exec",
        "web",
        "sh",
        "-c",
        "tr '\\0' '\\n' < /proc/1/environ",
    ]));
    assert!(pid1_env.contains("MY_DB_NAME=/web/my-db"), "{pid1_env}");
    // The container's own Env wins over a link's variable of the same name. (`grep -w`: the container's own
    // line in /etc/hosts holds its hex ID, which may contain "db".)
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--dns",
        "127.0.0.1",
        "--link",
        "db",
        "-e",
        "DB_NAME=mine",
        "busybox",
        "sh",
        "-c",
        "echo $DB_NAME; grep -cw db /etc/hosts",
    ]));
    assert_eq!(out, "mine\n1\n");
    // `--link NAME` without an alias: no repeated name in hosts.
    let out = ok(&d.docker(&[
        "run",
        "--rm",
        "--dns",
        "127.0.0.1",
        "--link",
        "db",
        "busybox",
        "grep",
        "-w",
        "db",
        "/etc/hosts",
    ]));
    assert_eq!(out, format!("{db_ip}\tdb {}\n", &db[..12]));

    // Inspect and ps show the link as Docker does.
    assert_eq!(
        inspect(&d, "{{json .HostConfig.Links}}", "web"),
        r#"["/db:/web/my-db"]"#
    );
    assert_eq!(inspect(&d, "{{json .HostConfig.Links}}", "db"), "null");
    // The API lists the link's name among the linked container's names (the docker CLI shows the first).
    let names = |d: &Daemon| {
        let list = d.get_json("/containers/json");
        let db = list
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["Names"][0] == "/db")
            .unwrap()
            .clone();
        db["Names"].clone()
    };
    assert_eq!(names(&d), serde_json::json!(["/db", "/web/my-db"]));

    // The linked container comes back on another address: the linking container's entry follows.
    ok(&d.docker(&["stop", "-t", "0", "db"]));
    let squatter = run_d(&d, &["busybox", "sleep", "1000"]);
    assert_eq!(
        inspect(&d, "{{.NetworkSettings.IPAddress}}", &squatter),
        db_ip
    );
    ok(&d.docker(&["start", "db"]));
    let new_ip = inspect(&d, "{{.NetworkSettings.IPAddress}}", "db");
    assert_ne!(new_ip, db_ip);
    let hosts = ok(&d.docker(&["exec", "web", "cat", "/etc/hosts"]));
    assert!(
        hosts.contains(&format!("{new_ip}\tmy-db {} db\n", &db[..12])),
        "{hosts}"
    );

    // `docker rm --link` removes the link, not a container.
    ok(&d.docker(&["rm", "--link", "/web/my-db"]));
    assert_eq!(inspect(&d, "{{json .HostConfig.Links}}", "web"), "null");
    assert_eq!(names(&d), serde_json::json!(["/db"]));
    assert_eq!(inspect(&d, "{{.State.Running}}", "db"), "true");
    let out = d.docker(&["rm", "--link", "/web/nosuch"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("No such container: /web/nosuch"),
        "{}",
        err(&out)
    );
}

#[test]
fn links_to_missing_or_stopped_containers_fail_with_dockers_words() {
    let d = common::docker_daemon();
    let out = d.docker(&["run", "--rm", "--link", "nosuch:x", "busybox", "true"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains(
            "Error response from daemon: could not get container for nosuch: No such container: nosuch"
        ),
        "{}",
        err(&out)
    );
    ok(&d.docker(&["create", "--name", "off", "busybox", "true"]));
    let out = d.docker(&[
        "run", "--name", "linker", "--link", "off:o", "busybox", "true",
    ]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("Cannot link to a non running container: /off AS /linker/o"),
        "{}",
        err(&out)
    );
    // Links and a shared or host network namespace conflict, as in dockerd.
    let out = d.docker(&[
        "create",
        "--network",
        "host",
        "--link",
        "off:o",
        "busybox",
        "true",
    ]);
    assert!(
        err(&out).contains("conflicting options: host type networking can't be used with links"),
        "{}",
        err(&out)
    );
    // A linked container must be on the default bridge.
    ok(&d.docker(&["network", "create", "elsewhere"]));
    run_d(
        &d,
        &[
            "--name",
            "away",
            "--network",
            "elsewhere",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let out = d.docker(&["run", "--rm", "--link", "away", "busybox", "true"]);
    assert!(
        err(&out).contains("Cannot link to /away, as it does not belong to the default network"),
        "{}",
        err(&out)
    );
    // A removed linked container stays linked, by the name it had, as in dockerd.
    run_d(&d, &["--name", "gone", "busybox", "sleep", "1000"]);
    ok(&d.docker(&[
        "create", "--name", "orphan", "--link", "gone:g", "busybox", "true",
    ]));
    ok(&d.docker(&["rm", "-f", "gone"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{json .HostConfig.Links}}", "orphan"])).trim(),
        r#"["/gone:/orphan/g"]"#
    );
    let out = d.docker(&["start", "orphan"]);
    assert!(
        err(&out).contains("Cannot link to a non running container: /gone AS /orphan/g"),
        "{}",
        err(&out)
    );
    // An exec in a container whose linked container stopped fails as dockerd's does.
    run_d(&d, &["--name", "peer", "busybox", "sleep", "1000"]);
    run_d(
        &d,
        &[
            "--name", "user", "--link", "peer", "busybox", "sleep", "1000",
        ],
    );
    ok(&d.docker(&["stop", "-t", "0", "peer"]));
    let out = d.docker(&["exec", "user", "true"]);
    assert!(!out.status.success());
    assert!(
        err(&out).contains("Cannot link to a non running container: /peer AS /user/peer"),
        "{}",
        err(&out)
    );
}

#[test]
fn links_on_user_networks_are_aliases_only_the_linking_container_resolves() {
    let d = common::docker_daemon();
    ok(&d.docker(&["network", "create", "n1"]));
    ok(&d.docker(&["network", "create", "n2"]));
    run_d(
        &d,
        &[
            "--name",
            "srv",
            "--network",
            "n1",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    ok(&d.docker(&["network", "connect", "n2", "srv"]));
    let srv_n1 = inspect(&d, "{{.NetworkSettings.Networks.n1.IPAddress}}", "srv");
    let srv_n2 = inspect(&d, "{{.NetworkSettings.Networks.n2.IPAddress}}", "srv");
    run_d(
        &d,
        &[
            "--name",
            "client",
            "--network",
            "n1",
            "--link",
            "srv:backend",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    let lookup = |c: &str, name: &str| {
        let o = d.docker(&["exec", c, "nslookup", name, "127.0.0.11"]);
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    assert!(
        lookup("client", "backend").contains(&format!("Address: {srv_n1}")),
        "{}",
        lookup("client", "backend")
    );
    // Only the linking container knows the alias.
    run_d(
        &d,
        &[
            "--name",
            "other",
            "--network",
            "n1",
            "busybox",
            "sleep",
            "1000",
        ],
    );
    assert!(
        !lookup("other", "backend").contains(&srv_n1),
        "{}",
        lookup("other", "backend")
    );
    // The endpoint shows the link; the legacy HostConfig.Links is not used on user networks.
    assert_eq!(
        inspect(&d, "{{json .NetworkSettings.Networks.n1.Links}}", "client"),
        r#"["srv:backend"]"#
    );
    assert_eq!(inspect(&d, "{{json .HostConfig.Links}}", "client"), "null");
    // `network connect --link`: an alias on the network joined.
    ok(&d.docker(&["network", "connect", "--link", "srv:via2", "n2", "other"]));
    assert!(
        lookup("other", "via2").contains(&format!("Address: {srv_n2}")),
        "{}",
        lookup("other", "via2")
    );
    assert_eq!(
        inspect(&d, "{{json .NetworkSettings.Networks.n2.Links}}", "other"),
        r#"["srv:via2"]"#
    );
}
