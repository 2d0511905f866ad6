//! Live restore at scale: a SIGKILLed daemon with 20 running containers comes back to all 20 running and
//! manageable, and removing them leaves no mount, cgroup or shim behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::ok;

/// Shim processes of this daemon (their command line names its exec root).
fn shims(exec_root: &std::path::Path) -> Vec<u32> {
    let root = exec_root.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            cmd.contains(" shim ") && cmd.contains(&root)
        })
        .collect()
}

#[test]
fn twenty_containers_survive_a_daemon_kill_and_leave_nothing_after_rm() {
    let mut d = common::docker_daemon();
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = ok(&d.docker(&[
            "run",
            "-d",
            "--name",
            &format!("keep{i:02}"),
            "busybox",
            "sh",
            "-c",
            &format!("echo hello {i}; exec sleep 1000"),
        ]));
        ids.push(id.trim().to_owned());
    }
    let pids: Vec<String> = ids
        .iter()
        .map(|id| {
            ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", id]))
                .trim()
                .to_owned()
        })
        .collect();
    assert_eq!(shims(&d.exec_root()).len(), 20);
    // The probes below see what they look for while it exists.
    assert!(
        common::cgroups_of(&ids).len() >= 20,
        "{:?}",
        common::cgroups_of(&ids)
    );
    assert!(common::mounts_under(d.dir.path()).len() >= 20);

    d.kill();
    d.spawn();

    let listed = ok(&d.docker(&["ps", "-q", "--no-trunc"]));
    assert_eq!(listed.lines().count(), 20, "{listed}");
    for (i, id) in ids.iter().enumerate() {
        let state = ok(&d.docker(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", id]));
        assert_eq!(state.trim(), format!("running {}", pids[i]), "keep{i:02}");
    }
    // Manageable: logs, exec, stats, top, stop, start, kill on the containers found again.
    assert_eq!(ok(&d.docker(&["logs", "keep07"])), "hello 7\n");
    assert_eq!(ok(&d.docker(&["exec", "keep08", "echo", "in"])), "in\n");
    let stats = ok(&d.docker(&["stats", "--no-stream", "--format", "{{.Name}}", "keep09"]));
    assert_eq!(stats.trim(), "keep09");
    assert!(ok(&d.docker(&["top", "keep10"])).contains("sleep 1000"));
    ok(&d.docker(&["stop", "-t", "1", "keep11"]));
    ok(&d.docker(&["start", "keep11"]));
    ok(&d.docker(&["kill", "keep12"]));
    assert_eq!(ok(&d.docker(&["wait", "keep12"])).trim(), "137");

    let mut all = vec!["rm", "-f"];
    all.extend(ids.iter().map(String::as_str));
    ok(&d.docker(&all));
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
    // Shims end once their container is gone (give them a moment to exit).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !shims(&d.exec_root()).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(shims(&d.exec_root()), Vec::<u32>::new(), "shims left");
    assert_eq!(
        common::mounts_under(d.dir.path()),
        Vec::<String>::new(),
        "mounts left"
    );
    assert_eq!(
        common::cgroups_of(&ids),
        Vec::<String>::new(),
        "cgroups left"
    );
}

#[test]
fn a_start_whose_record_was_lost_is_found_again_from_its_shim() {
    let mut d = common::docker_daemon();
    let id = ok(&d.docker(&["run", "-d", "--name", "lost", "busybox", "sleep", "1000"]))
        .trim()
        .to_owned();
    let pid = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", "lost"]))
        .trim()
        .to_owned();
    d.kill();
    // As if the daemon died before the (unsynced) record of the start reached the disk.
    let record = d
        .data_root()
        .join("containers")
        .join(&id)
        .join("container.json");
    let mut v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let state = v
        .as_object_mut()
        .unwrap()
        .iter_mut()
        .find(|(k, _)| k.eq_ignore_ascii_case("state"))
        .map(|(_, v)| v)
        .unwrap();
    let status_key = state
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.eq_ignore_ascii_case("status"))
        .unwrap()
        .clone();
    state[&status_key] = serde_json::json!("created");
    std::fs::write(&record, serde_json::to_vec(&v).unwrap()).unwrap();
    d.spawn();
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Status}} {{.State.Pid}}", "lost"])).trim(),
        format!("running {pid}")
    );
    ok(&d.docker(&["kill", "lost"]));
    assert_eq!(ok(&d.docker(&["wait", "lost"])).trim(), "137");
}

/// CPU time (user + system, clock ticks) of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn shims_stay_idle_when_the_daemon_is_gone() {
    let mut d = common::docker_daemon();
    ok(&d.docker(&["run", "-d", "--name", "quiet", "busybox", "sleep", "1000"]));
    ok(&d.docker(&[
        "run",
        "-d",
        "-t",
        "--name",
        "quiet-tty",
        "busybox",
        "sleep",
        "1000",
    ]));
    let shims = shims(&d.exec_root());
    assert_eq!(shims.len(), 2);
    d.kill();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let before: Vec<u64> = shims.iter().map(|p| cpu_ticks(*p)).collect();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let after: Vec<u64> = shims.iter().map(|p| cpu_ticks(*p)).collect();
    for (b, a) in before.iter().zip(&after) {
        // A busy loop burns ~200 ticks in 2 s; an idle shim next to none.
        assert!(
            a - b < 20,
            "a shim spun without its daemon: {b} -> {a} ticks"
        );
    }
    d.spawn();
    assert_eq!(ok(&d.docker(&["exec", "quiet", "echo", "back"])), "back\n");
}
