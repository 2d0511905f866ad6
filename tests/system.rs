//! The docker CLI's system commands against `berth daemon`, compared with what dockerd gives: sizes
//! (`ps -s`, `inspect --size`, `system df [-v]`, the prunes' reclaimed space), `info` and `version`, and
//! the commands of what Berth does not have (swarm, plugins).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{err, ok};

/// What the test containers write: 100,000 bytes, a hard link to them (counted once) and a symlink to the
/// busybox binary, which counts as its 12-byte target and must never be followed (on the host, the path
/// names a 2 MB file).
const WRITE: &str =
    "head -c 100000 /dev/zero > /data && ln /data /data.link && ln -s /bin/busybox /link";
const SIZE_RW: i64 = 100_000 + "/bin/busybox".len() as i64;

#[test]
fn ps_inspect_and_df_report_writable_layer_and_virtual_sizes() {
    let d = common::docker_daemon();
    let image_size: i64 = ok(&d.docker(&["image", "inspect", "-f", "{{.Size}}", "busybox"]))
        .trim()
        .parse()
        .unwrap();
    ok(&d.docker(&["run", "--name", "writer", "busybox", "sh", "-c", WRITE]));
    ok(&d.docker(&["run", "-d", "--name", "idle", "busybox", "sleep", "1000"]));
    ok(&d.docker(&["create", "--name", "fresh", "busybox", "true"]));
    // Never started: an empty layer.
    assert_eq!(
        ok(&d.docker(&[
            "ps",
            "-a",
            "-s",
            "-f",
            "name=fresh",
            "--format",
            "{{.Size}}"
        ])),
        format!("0B (virtual {})\n", human(image_size))
    );
    ok(&d.docker(&["rm", "fresh"]));

    // The API, with ?size=1: dockerd leaves zero sizes out of the list.
    let list = d.get_json("/containers/json?all=1&size=1");
    let by_name = |n: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|c| c["Names"][0] == format!("/{n}"))
            .unwrap()
            .clone()
    };
    let writer = by_name("writer");
    assert_eq!(writer["SizeRw"], SIZE_RW, "{writer}");
    assert_eq!(writer["SizeRootFs"], image_size + SIZE_RW, "{writer}");
    let idle = by_name("idle");
    assert!(idle.get("SizeRw").is_none(), "{idle}");
    assert_eq!(idle["SizeRootFs"], image_size, "{idle}");
    // Without ?size, no sizes (they cost a walk).
    let plain = d.get_json("/containers/json?all=1");
    assert!(plain[0].get("SizeRootFs").is_none(), "{plain}");

    // docker ps -s: the writable layer, and the virtual size in parentheses.
    let ps = ok(&d.docker(&["ps", "-a", "-s", "--format", "{{.Names}}\t{{.Size}}"]));
    let virtual_writer = human(image_size + SIZE_RW);
    let virtual_idle = human(image_size);
    assert_eq!(
        ps,
        format!("idle\t0B (virtual {virtual_idle})\nwriter\t100kB (virtual {virtual_writer})\n")
    );

    // docker inspect --size, and no size keys without it.
    assert_eq!(
        ok(&d.docker(&[
            "inspect",
            "--size",
            "-f",
            "{{.SizeRw}} {{.SizeRootFs}}",
            "writer"
        ]))
        .trim(),
        format!("{SIZE_RW} {}", image_size + SIZE_RW)
    );
    assert!(!ok(&d.docker(&["inspect", "writer"])).contains("SizeRw"));
    let inspect = d.get_json("/containers/writer/json?size=1");
    let keys: Vec<&String> = inspect.as_object().unwrap().keys().collect();
    let at = |k: &str| keys.iter().position(|x| *x == k).unwrap();
    assert_eq!(
        (at("GraphDriver") + 1, at("GraphDriver") + 2),
        (at("SizeRw"), at("SizeRootFs"))
    );
    assert_eq!(inspect["GraphDriver"]["Name"], "overlay2");
    assert_eq!(inspect["Driver"], "overlay2");

    // A second image that stacks busybox's layer: both share it.
    ok(&d.docker(&["commit", "writer", "derived:1"]));
    let df = d.get_json("/system/df");
    let images = df["Images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{df}");
    for img in images {
        assert_eq!(img["SharedSize"], image_size, "{img}");
    }
    let busybox = images
        .iter()
        .find(|i| i["RepoTags"][0] == "busybox:latest")
        .unwrap();
    assert_eq!(busybox["Containers"], 2, "{busybox}");
    let derived_size = images
        .iter()
        .find(|i| i["RepoTags"][0] == "derived:1")
        .unwrap()["Size"]
        .as_i64()
        .unwrap();
    assert_eq!(
        df["LayersSize"], derived_size,
        "busybox's layer is counted once: {df}"
    );
    let containers = df["Containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert!(containers.iter().any(|c| c["SizeRw"] == SIZE_RW), "{df}");

    // docker system df: the writable layers' total, reclaimable for the stopped one.
    let summary = ok(&d.docker(&["system", "df"]));
    let row = |name: &str| -> Vec<String> {
        let line = summary
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{summary}"));
        line[name.len()..]
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(row("Containers"), ["2", "1", "100kB", "100kB", "(100%)"]);
    assert_eq!(row("Images")[..2], ["2", "1"]);
    let verbose = ok(&d.docker(&["system", "df", "-v"]));
    let section = verbose
        .split("Containers space usage:")
        .nth(1)
        .unwrap()
        .split("Local Volumes space usage:")
        .next()
        .unwrap();
    let writer_row = section
        .lines()
        .find(|l| l.ends_with(" writer"))
        .unwrap_or_else(|| panic!("{verbose}"));
    assert!(writer_row.contains(" 100kB "), "{writer_row}");
    let images_section = verbose
        .split("Images space usage:")
        .nth(1)
        .unwrap()
        .split("Containers space usage:")
        .next()
        .unwrap();
    let busybox_row = images_section
        .lines()
        .find(|l| l.starts_with("busybox "))
        .unwrap_or_else(|| panic!("{verbose}"));
    // SIZE, SHARED SIZE (all of it: derived:1 stacks it), UNIQUE SIZE, CONTAINERS; the CLI prints the
    // last sizes with four digits.
    let cols: Vec<&str> = busybox_row.split_whitespace().collect();
    assert_eq!(
        cols[cols.len() - 4..],
        [
            human(image_size).as_str(),
            human_digits(image_size, 4).as_str(),
            "0B",
            "2"
        ],
        "{busybox_row}"
    );
}

#[test]
fn container_and_system_prune_report_the_space_they_reclaim() {
    let d = common::docker_daemon();
    ok(&d.docker(&["run", "--name", "writer", "busybox", "sh", "-c", WRITE]));
    let id = ok(&d.docker(&["inspect", "-f", "{{.Id}}", "writer"]));
    ok(&d.docker(&["run", "-d", "--name", "idle", "busybox", "sleep", "1000"]));
    // `until` takes Go durations, as dockerd's: nothing here is an hour old.
    assert_eq!(
        ok(&d.docker(&["container", "prune", "-f", "--filter", "until=1h"])),
        "Total reclaimed space: 0B\n"
    );
    let o = d.docker(&["container", "prune", "-f", "--filter", "until=soon"]);
    assert_eq!(
        err(&o),
        "Error response from daemon: failed to parse value as time or duration: \"soon\"\n"
    );
    assert_eq!(
        ok(&d.docker(&["container", "prune", "-f"])),
        format!(
            "Deleted Containers:\n{}\n\nTotal reclaimed space: 100kB\n",
            id.trim()
        )
    );
    // Nothing left to prune: dockerd's zero.
    assert_eq!(
        ok(&d.docker(&["container", "prune", "-f"])),
        "Total reclaimed space: 0B\n"
    );
    // Each prune is an event with what it reclaimed, as dockerd publishes them.
    let prunes = |types: usize| {
        let until = chrono::Utc::now().timestamp() + 1;
        let out = ok(&d.docker(&[
            "events",
            "--since",
            "0",
            "--until",
            &until.to_string(),
            "--filter",
            "event=prune",
            "--format",
            "{{.Type}} {{.Actor.ID}}{{.Actor.Attributes.reclaimed}}",
        ]));
        let lines: Vec<String> = out.lines().map(str::to_owned).collect();
        assert!(lines.len() >= types, "{out}");
        lines
    };
    assert_eq!(
        prunes(3),
        [
            "container 0".to_owned(),
            format!("container {SIZE_RW}"),
            "container 0".to_owned()
        ]
    );

    // system prune -a --volumes: containers, their anonymous volumes, images; exit 0 and a total.
    ok(&d.docker(&["rm", "-f", "idle"]));
    ok(&d.docker(&[
        "run",
        "-v",
        "/vol",
        "busybox",
        "sh",
        "-c",
        "head -c 50000 /dev/zero > /vol/f && head -c 7000 /dev/zero > /top",
    ]));
    let o = d.docker(&["system", "prune", "-a", "-f", "--volumes"]);
    let out = ok(&o);
    assert!(err(&o).is_empty(), "{}", err(&o));
    assert!(out.contains("Deleted Containers:\n"), "{out}");
    assert!(out.contains("Deleted Volumes:\n"), "{out}");
    assert!(out.contains("untagged: busybox:latest\n"), "{out}");
    let total = out
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("{out}"));
    // The container's 7 kB, the volume's 50 kB and the image's ~2 MB.
    assert!(total.ends_with("MB"), "{out}");
    let n: f64 = total.trim_end_matches("MB").parse().unwrap();
    assert!(n > 2.0, "{out}");
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
    assert_eq!(ok(&d.docker(&["volume", "ls", "-q"])), "");
    assert_eq!(ok(&d.docker(&["images", "-q"])), "");
    let events = prunes(8);
    let kinds: Vec<&str> = events[3..]
        .iter()
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["container", "network", "volume", "image", "builder"]
    );
    assert_eq!(events[3], "container 7000");
    assert_eq!(events[5], "volume 50000");
}

/// `docker info`'s server section has every line dockerd 28's has (recorded:
/// tests/fixtures/docker-cli-output/docker-info.txt), with Docker's values for Berth's state.
#[test]
fn docker_info_shows_every_section_dockerd_shows() {
    common::docker_bin();
    let d = common::Daemon::start();
    let out = ok(&d.docker(&["info"]));
    let labels = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(' ') && !l.starts_with("  "))
            .filter_map(|l| l.split(':').next())
            .map(|l| l.trim().to_owned())
            .collect()
    };
    let want =
        std::fs::read_to_string(common::fixtures_dir().join("docker-cli-output/docker-info.txt"))
            .unwrap();
    assert_eq!(labels(&out), labels(&want), "{out}");
    for line in [
        " Storage Driver: overlay2\n  Backing Filesystem: ",
        "  Native Overlay Diff: true\n  userxattr: false\n",
        "  Volume: local\n",
        " Swarm: inactive\n",
        " Init Binary: docker-init\n",
        " containerd version: N/A\n",
        " Security Options:\n  seccomp\n   Profile: builtin\n",
        " Insecure Registries:\n  ::1/128\n  127.0.0.0/8\n",
    ] {
        assert!(out.contains(line), "{line:?} in:\n{out}");
    }
    assert!(err(&d.docker(&["info"])).is_empty());
}

#[test]
fn docker_version_names_the_build_and_its_components() {
    common::docker_bin();
    let d = common::Daemon::start();
    let out = ok(&d.docker(&["version"]));
    let server = out.split("Server: Berth Engine\n").nth(1).unwrap();
    let commit = d.get_json("/version")["GitCommit"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        server.contains(&format!("  Git commit:       {commit}\n")),
        "{out}"
    );
    assert!(server.contains("  Go version:       rustc "), "{out}");
    assert!(
        server.contains(&format!(
            " berth:\n  Version:          {}\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{out}"
    );
    assert!(server.contains(" docker-init:\n"), "{out}");
    if !commit.is_empty() {
        // The build time prints as Go's ANSIC date, as for dockerd ("Mon Dec  7 03:21:50 2026").
        let built = server
            .lines()
            .find_map(|l| l.strip_prefix("  Built:            "))
            .unwrap();
        assert!(
            chrono::NaiveDateTime::parse_from_str(built, "%a %b %e %H:%M:%S %Y").is_ok(),
            "{built}"
        );
    }
}

/// What needs swarm mode fails with dockerd's words for a node in no swarm; with no plugin installed,
/// the plugin commands behave as on a fresh dockerd; installing one is refused with a clear message.
#[test]
fn docker_swarm_and_plugin_commands_fail_as_on_dockerd() {
    common::docker_bin();
    let d = common::Daemon::start();
    let not_manager = "Error response from daemon: This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.\n";
    for cmd in [
        &["service", "ls"][..],
        &["node", "ls"],
        &["secret", "ls"],
        &["config", "ls"],
        &["stack", "ls"],
        &["swarm", "ca"],
    ] {
        let o = d.docker(cmd);
        assert_eq!(
            (o.status.code(), err(&o).as_str()),
            (Some(1), not_manager),
            "{cmd:?}"
        );
    }
    let o = d.docker(&["swarm", "leave"]);
    assert_eq!(
        err(&o),
        "Error response from daemon: This node is not part of a swarm\n"
    );
    assert_eq!(
        ok(&d.docker(&["plugin", "ls"])),
        "ID        NAME      DESCRIPTION   ENABLED\n"
    );
    for cmd in [
        &["plugin", "rm", "foo"][..],
        &["plugin", "enable", "foo"],
        &["plugin", "disable", "foo"],
    ] {
        let o = d.docker(cmd);
        assert_eq!(
            (o.status.code(), err(&o).as_str()),
            (
                Some(1),
                "Error response from daemon: plugin \"foo\" not found\n"
            ),
            "{cmd:?}"
        );
    }
    let o = d.docker(&[
        "plugin",
        "install",
        "--grant-all-permissions",
        "vieux/sshfs",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("Berth does not support plugins"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["swarm", "init"]);
    assert!(
        err(&o).contains("Berth does not support swarm mode"),
        "{}",
        err(&o)
    );
}

/// The docker CLI's sizes: `units.HumanSizeWithPrecision(n, 3)` (decimal units, 3 significant digits).
fn human(n: i64) -> String {
    human_digits(n, 3)
}

/// `units.HumanSizeWithPrecision(n, digits)` for 3 or 4 digits.
fn human_digits(n: i64, significant: usize) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    // Go's %.Ng: N significant digits, trailing zeros dropped.
    let whole = if v >= 100.0 {
        3
    } else if v >= 10.0 {
        2
    } else {
        1
    };
    let digits = significant.saturating_sub(whole);
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

/// Splits a table line of the docker CLI into its cells (tabwriter pads with two spaces or more), with what
/// differs between two runs made the same: IDs, and the times the CLI words relative to now.
fn cells(line: &str, sizes: &[(String, String)]) -> Vec<String> {
    let is_hex = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit());
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(|c| {
            let id = c.rsplit(' ').next().unwrap_or(c);
            let id = id.strip_prefix("sha256:").unwrap_or(id);
            if is_hex(id) && (id.len() == 12 || id.len() == 64) && id.len() * 2 > c.len() {
                return c.replacen(id, "ID", 1);
            }
            if c.starts_with("Up ") {
                return "Up T".to_owned();
            }
            if c.ends_with(" ago") {
                return match c.find(") ") {
                    Some(p) => format!("{} T ago", &c[..=p]),
                    None => "T ago".to_owned(),
                };
            }
            let size = |t: &str| match sizes.iter().find(|(s, _)| s == t) {
                Some((_, name)) => name.clone(),
                None => t.to_owned(),
            };
            // `ps -s`: "100kB (virtual 2.08MB)".
            match c.strip_suffix(')').and_then(|c| c.split_once(" (virtual ")) {
                Some((rw, total)) => format!("{} (virtual {})", size(rw), size(total)),
                None => size(c),
            }
        })
        .collect()
}

/// The human sizes this scenario prints, by what they measure: `image` is busybox's size (it depends on
/// the busybox-static the rootfs came from, so a recording from another build still compares).
fn scenario_sizes(image: i64) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, v) in [
        ("IMAGE", image),
        ("IMAGE+RW", image + SIZE_RW),
        ("ALL", image + SIZE_RW + 57_000),
        ("RW", SIZE_RW),
    ] {
        for digits in [3, 4] {
            out.push((human_digits(v, digits), format!("{name}/{digits}")));
        }
    }
    out
}

fn table(text: &str, sizes: &[(String, String)]) -> Vec<Vec<String>> {
    text.lines().map(|l| cells(l, sizes)).collect()
}

/// The scenario recorded against Debian's dockerd 20.10 (tests/fixtures/docker-cli-output/sizes, with the
/// commands in the fixtures' README) gives the same tables and figures on Berth: `ps -s`, `system df`,
/// `system df -v`, `GET /system/df`, `container prune` and `system prune -a --volumes`, every size equal.
#[test]
fn sizes_match_the_recorded_dockerd_run() {
    let d = common::docker_daemon();
    let dir = common::fixtures_dir().join("docker-cli-output/sizes");
    let recorded = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let want_api: serde_json::Value =
        serde_json::from_str(&recorded("api-system-df.json")).unwrap();
    let recorded_image = want_api["Images"][1]["Size"].as_i64().unwrap();
    let image: i64 = ok(&d.docker(&["image", "inspect", "-f", "{{.Size}}", "busybox"]))
        .trim()
        .parse()
        .unwrap();
    let (theirs, ours) = (scenario_sizes(recorded_image), scenario_sizes(image));

    let run = |args: &[&str]| ok(&d.docker(args));
    run(&[
        "run",
        "--network",
        "none",
        "--name",
        "writer",
        "busybox",
        "sh",
        "-c",
        WRITE,
    ]);
    run(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "idle",
        "busybox",
        "sleep",
        "1000",
    ]);
    run(&[
        "create",
        "--network",
        "none",
        "--name",
        "fresh",
        "busybox",
        "true",
    ]);
    run(&["commit", "writer", "derived:1"]);
    // Images made in the same second may be listed in either order (dockerd sorts by the second only).
    let sorted = |text: &str, sizes: &[(String, String)]| {
        let mut t = table(text, sizes);
        t.sort();
        t
    };
    assert_eq!(
        table(&run(&["system", "df"]), &ours),
        table(&recorded("docker-system-df.txt"), &theirs)
    );
    assert_eq!(
        sorted(&run(&["system", "df", "-v"]), &ours),
        sorted(&recorded("docker-system-df-v.txt"), &theirs)
    );
    let ps = run(&["ps", "-a", "-s"]);
    assert_eq!(
        table(&ps, &ours),
        table(&recorded("docker-ps-a-s.txt"), &theirs),
        "{ps}"
    );

    // The API's figures, the image's size standing in for the recorded one.
    let got = d.get_json("/v1.41/system/df");
    let rebase = |v: i64| {
        if v >= recorded_image {
            v - recorded_image + image
        } else {
            v
        }
    };
    assert_eq!(
        got["LayersSize"],
        rebase(want_api["LayersSize"].as_i64().unwrap())
    );
    let figures = |v: &serde_json::Value, fields: &[&str], base: bool| -> Vec<Vec<i64>> {
        let mut rows: Vec<Vec<i64>> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|x| {
                fields
                    .iter()
                    .map(|f| x[*f].as_i64().unwrap_or(0))
                    .map(|n| if base { rebase(n) } else { n })
                    .collect()
            })
            .collect();
        rows.sort();
        rows
    };
    let image_fields = ["Size", "SharedSize", "VirtualSize", "Containers"];
    assert_eq!(
        figures(&got["Images"], &image_fields, false),
        figures(&want_api["Images"], &image_fields, true)
    );
    let container_fields = ["SizeRw", "SizeRootFs"];
    assert_eq!(
        figures(&got["Containers"], &container_fields, false),
        figures(&want_api["Containers"], &container_fields, true)
    );

    assert_eq!(
        table(&run(&["container", "prune", "-f"]), &ours),
        table(&recorded("docker-container-prune.txt"), &theirs)
    );
    run(&["rm", "-f", "idle"]);
    run(&[
        "run",
        "--network",
        "none",
        "-v",
        "/vol",
        "busybox",
        "sh",
        "-c",
        "head -c 50000 /dev/zero > /vol/f && head -c 7000 /dev/zero > /top",
    ]);
    // The same sections and total; the images' lines may come in another order.
    assert_eq!(
        sorted(&run(&["system", "prune", "-a", "-f", "--volumes"]), &ours),
        sorted(&recorded("docker-system-prune-a-volumes.txt"), &theirs)
    );
}
