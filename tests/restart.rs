//! Restart policies, `docker update` and `--init`, driven by the real docker CLI against `berth daemon`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Daemon;
use common::{err, ok, out};

fn inspect(d: &Daemon, id: &str, format: &str) -> String {
    ok(&d.docker(&["inspect", "-f", format, id]))
        .trim()
        .to_owned()
}

fn restart_count(d: &Daemon, id: &str) -> i64 {
    inspect(d, id, "{{.RestartCount}}").parse().unwrap()
}

/// Polls `cond` every 50 ms until it holds or `limit` passes.
fn until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    cond()
}

fn run_d(d: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["run", "-d"];
    all.extend_from_slice(args);
    ok(&d.docker(&all)).trim().to_owned()
}

/// The events of one container so far, as `ACTION` lines.
fn actions(d: &Daemon, id: &str) -> Vec<String> {
    let o = d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!("{}", chrono_now_secs() + 1),
        "--filter",
        &format!("container={id}"),
        "--format",
        "{{.Action}}",
    ]);
    ok(&o).lines().map(str::to_owned).collect()
}

fn chrono_now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn always_restarts_with_a_growing_backoff() {
    let d = common::docker_daemon();
    let id = run_d(&d, &["--restart", "always", "busybox", "false"]);
    assert_eq!(
        inspect(&d, &id, "{{.HostConfig.RestartPolicy.Name}}"),
        "always"
    );
    // 100, 200, 400, 800 ms...: four restarts take about 1.5 s, the next ones ever longer.
    assert!(
        until(Duration::from_secs(10), || restart_count(&d, &id) >= 3),
        "never restarted: {}",
        restart_count(&d, &id)
    );
    std::thread::sleep(Duration::from_secs(2));
    let n = restart_count(&d, &id);
    assert!(
        (4..=8).contains(&n),
        "a doubling back-off gives a handful of restarts in ~3 s, not {n}"
    );
    // While it waits it is `restarting`, shown by ps (without -a) and inspect.
    assert!(until(Duration::from_secs(10), || {
        inspect(
            &d,
            &id,
            "{{.State.Status}} {{.State.Restarting}} {{.State.Running}}",
        ) == "restarting true true"
    }));
    let ps = ok(&d.docker(&["ps", "--format", "{{.ID}} {{.Status}}"]));
    assert!(
        ps.contains(&id[..12]) && ps.contains("Restarting (1)"),
        "{ps}"
    );
    // exec and pause wait for it to run, in Docker's words (retried: it runs for an instant between waits).
    for cmd in [vec!["exec", &id[..], "true"], vec!["pause", &id[..]]] {
        assert!(
            until(Duration::from_secs(10), || {
                String::from_utf8_lossy(&d.docker(&cmd).stderr)
                    .contains("is restarting, wait until the container is running")
            }),
            "{cmd:?}"
        );
    }
    // Each restart is a `die` then a `start`; no `restart` event (that is `docker restart`'s).
    let acts = actions(&d, &id);
    let dies = acts.iter().filter(|a| a.starts_with("die")).count();
    let starts = acts.iter().filter(|a| a.starts_with("start")).count();
    assert!(dies >= 4 && starts >= 4, "{acts:?}");
    assert!(!acts.iter().any(|a| a == "restart"), "{acts:?}");

    // docker stop of a restarting container ends the loop at once.
    let t = Instant::now();
    assert_eq!(ok(&d.docker(&["stop", &id])).trim(), id);
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(inspect(&d, &id, "{{.State.Status}}"), "exited");
    let n = restart_count(&d, &id);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(restart_count(&d, &id), n, "restarted after docker stop");
    assert_eq!(inspect(&d, &id, "{{.State.ExitCode}}"), "1");

    // A user start resets the count.
    ok(&d.docker(&["start", &id]));
    let after = restart_count(&d, &id);
    assert!(
        after < n && after <= 2,
        "count {after} after a user start (was {n})"
    );
    // rm -f of a restarting (or just restarted) container removes it.
    ok(&d.docker(&["rm", "-f", &id]));
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
}

#[test]
fn on_failure_stops_after_its_retry_count() {
    let d = common::docker_daemon();
    let id = run_d(
        &d,
        &["--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3"],
    );
    assert!(
        until(Duration::from_secs(10), || inspect(
            &d,
            &id,
            "{{.State.Status}}"
        ) == "exited"
            && restart_count(&d, &id) == 2),
        "{}",
        inspect(&d, &id, "{{.State.Status}} {{.RestartCount}}")
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(restart_count(&d, &id), 2);
    assert_eq!(inspect(&d, &id, "{{.State.ExitCode}}"), "3");
    assert_eq!(
        inspect(
            &d,
            &id,
            "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "on-failure:2"
    );
    let acts = actions(&d, &id);
    assert_eq!(acts.iter().filter(|a| *a == "start").count(), 3, "{acts:?}");

    // A zero exit is not a failure.
    let ok_id = run_d(&d, &["--restart", "on-failure", "busybox", "true"]);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(inspect(&d, &ok_id, "{{.State.Status}}"), "exited");
    assert_eq!(restart_count(&d, &ok_id), 0);
}

#[test]
fn bad_policies_are_refused_in_dockers_words() {
    let d = common::docker_daemon();
    let o = d.docker(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        err(&o).contains("conflicting options: cannot specify both --restart and --rm"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["run", "-d", "--restart", "sometimes", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        err(&o).contains("invalid restart policy: unknown policy 'sometimes'"),
        "{}",
        err(&o)
    );
    let o = d.docker(&["run", "-d", "--restart", "always:3", "busybox", "true"]);
    assert!(
        err(&o).contains("maximum retry count can only be used with 'on-failure'"),
        "{}",
        err(&o)
    );
    // Through the API, AutoRemove with a policy gets dockerd's message.
    let r = d.request(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox","HostConfig":{"AutoRemove":true,"RestartPolicy":{"Name":"always"}}}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("can't create 'AutoRemove' container with restart policy"),
        "{}",
        r.text()
    );
    // The same refusals through berth's own CLI.
    let o = d.berth(&["run", "--rm", "--restart", "always", "busybox", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        err(&o).contains("conflicting options: cannot specify both --restart and --rm"),
        "{}",
        err(&o)
    );
}

/// The host pid of a container's init.
fn pid_of(d: &Daemon, id: &str) -> i32 {
    inspect(d, id, "{{.State.Pid}}").parse().unwrap()
}

#[test]
fn after_a_daemon_crash_always_and_unless_stopped_come_back() {
    let mut d = common::docker_daemon();
    let always = run_d(&d, &["--restart", "always", "busybox", "sleep", "1000"]);
    let unless = run_d(
        &d,
        &["--restart", "unless-stopped", "busybox", "sleep", "1000"],
    );
    let stopped_unless = run_d(
        &d,
        &["--restart", "unless-stopped", "busybox", "sleep", "1000"],
    );
    let stopped_always = run_d(&d, &["--restart", "always", "busybox", "sleep", "1000"]);
    let none = run_d(&d, &["busybox", "sleep", "1000"]);
    ok(&d.docker(&["stop", "-t", "0", &stopped_unless]));
    ok(&d.docker(&["stop", "-t", "0", &stopped_always]));

    let pids: Vec<i32> = [&always, &unless, &none]
        .iter()
        .map(|id| pid_of(&d, id))
        .collect();
    // The daemon dies; meanwhile the containers' processes are killed too.
    d.kill();
    for pid in pids {
        assert!(pid > 0);
        // SAFETY: plain kill(2) of the init of a container this test started.
        unsafe { libc_kill(pid, 9) };
    }
    std::thread::sleep(Duration::from_millis(500));
    d.spawn();

    for id in [&always, &unless, &stopped_always] {
        assert!(
            until(Duration::from_secs(10), || inspect(
                &d,
                id,
                "{{.State.Status}}"
            ) == "running"),
            "{id} was not brought back: {}",
            inspect(&d, id, "{{.State.Status}} {{.State.ExitCode}}")
        );
    }
    assert!(pid_of(&d, &always) > 0);
    assert_eq!(inspect(&d, &stopped_unless, "{{.State.Status}}"), "exited");
    assert_eq!(
        inspect(&d, &none, "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 137"
    );
    // A clean stop and start of the daemon changes nothing: the running ones keep their process.
    let before = pid_of(&d, &always);
    d.stop();
    d.spawn();
    assert_eq!(inspect(&d, &always, "{{.State.Status}}"), "running");
    assert_eq!(pid_of(&d, &always), before);
    assert_eq!(inspect(&d, &stopped_unless, "{{.State.Status}}"), "exited");
}

extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

fn cat_in(d: &Daemon, id: &str, files: &[&str]) -> Vec<String> {
    let mut args = vec!["exec", id, "cat"];
    args.extend_from_slice(files);
    ok(&d.docker(&args)).lines().map(str::to_owned).collect()
}

#[test]
fn update_changes_the_live_cgroup_and_the_record() {
    let d = common::docker_daemon();
    let id = run_d(&d, &["-m", "64m", "busybox", "sleep", "1000"]);
    let mem = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory").exists();
    if v1 {
        assert_eq!(cat_in(&d, &id, &[mem]), ["67108864"]);
    }
    // dockerd's rule: memory above the current memory+swap limit needs a new swap limit too.
    let o = d.docker(&["update", "-m", "256m", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(&format!("Error response from daemon: Cannot update container {id}: Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time")),
        "{}",
        err(&o)
    );
    // The CLI prints each container as it was named.
    let o = d.docker(&["update", "-m", "100m", "--memory-swap", "300m", &id[..12]]);
    assert_eq!(ok(&o), format!("{}\n", &id[..12]));
    assert_eq!(
        inspect(&d, &id, "{{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}"),
        "104857600 314572800"
    );
    ok(&d.docker(&[
        "update",
        "--cpus",
        "0.5",
        "--pids-limit",
        "20",
        "--cpu-shares",
        "512",
        "--restart",
        "on-failure:4",
        &id,
    ]));
    assert_eq!(
        inspect(
            &d,
            &id,
            "{{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.CpuShares}} {{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
        ),
        "500000000 20 512 on-failure:4"
    );
    if v1 {
        assert_eq!(
            cat_in(
                &d,
                &id,
                &[
                    mem,
                    "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
                    "/sys/fs/cgroup/cpu/cpu.shares",
                    "/sys/fs/cgroup/pids/pids.max"
                ]
            ),
            ["104857600", "50000", "512", "20"]
        );
        // The same file seen from the host, in the container's own cgroup.
        let host_cg = std::fs::read_to_string(format!("/proc/{}/cgroup", pid_of(&d, &id))).unwrap();
        let rel = host_cg
            .lines()
            .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_owned()))
            .unwrap();
        assert!(rel.ends_with(&format!("/berth/{id}")), "{rel}");
        let host =
            std::fs::read_to_string(format!("/sys/fs/cgroup/memory{rel}/memory.limit_in_bytes"))
                .unwrap();
        assert_eq!(host.trim(), "104857600");
    }
    let acts = actions(&d, &id);
    assert_eq!(
        acts.iter().filter(|a| *a == "update").count(),
        2,
        "{acts:?}"
    );
    // CPU period after --cpus is refused, as dockerd refuses it.
    let o = d.docker(&["update", "--cpu-period", "50000", &id]);
    assert!(
        err(&o).contains("CPU Period cannot be updated as NanoCPUs has already been set"),
        "{}",
        err(&o)
    );
    // A stopped container keeps the update for its next start.
    ok(&d.docker(&["stop", "-t", "0", &id]));
    ok(&d.docker(&["update", "--pids-limit", "33", &id]));
    ok(&d.docker(&["start", &id]));
    if v1 {
        assert_eq!(cat_in(&d, &id, &["/sys/fs/cgroup/pids/pids.max"]), ["33"]);
    }
    // Errors: no flags, no such container; berth's CLI answers the same.
    let o = d.docker(&["update", &id]);
    assert!(
        err(&o).contains("you must provide one or more flags when using this command"),
        "{}",
        err(&o)
    );
    let o = d.berth(&["update", &id]);
    assert!(
        err(&o).contains("you must provide one or more flags when using this command"),
        "{}",
        err(&o)
    );
    let o = d.berth(&["update", "--pids-limit", "40", "nosuch", &id]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(out(&o), format!("{id}\n"));
    assert!(
        err(&o).contains("Error response from daemon: No such container: nosuch"),
        "{}",
        err(&o)
    );
    let r = d.request(
        "POST",
        &format!("/containers/{id}/update"),
        br#"{"Memory": 134217728, "MemorySwap": -1}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"Warnings": []}));
}

fn all(o: &std::process::Output) -> String {
    format!("{}{}", out(o), err(o))
}

#[test]
fn init_runs_as_pid_1_reaps_and_forwards_signals() {
    let d = common::docker_daemon();
    let o = ok(&d.docker(&["run", "--rm", "--init", "busybox", "ps", "-o", "pid,args"]));
    let first = o.lines().nth(1).unwrap_or_default().trim().to_owned();
    assert_eq!(first, "1 /sbin/docker-init -- ps -o pid,args", "{o}");
    // The command's status comes back through the init.
    let o = d.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(o.status.code(), Some(7), "{}", all(&o));
    let o = d.docker(&["run", "--rm", "--init", "busybox", "nosuchcommand"]);
    assert_eq!(o.status.code(), Some(127), "{}", all(&o));
    // The command has a process group of its own and, with a terminal, holds its foreground (so Ctrl-C
    // reaches it from the terminal only, not again through the init): field 5 of stat is the process
    // group, field 8 the terminal's foreground group.
    let o = ok(&d.docker(&[
        "run",
        "--rm",
        "--init",
        "-t",
        "busybox",
        "sh",
        "-c",
        "cut -d' ' -f5 /proc/1/stat; cut -d' ' -f5,8 /proc/$$/stat",
    ]));
    let lines: Vec<&str> = o.lines().map(str::trim).collect();
    let (init_group, own) = (lines[0], lines[1].split(' ').collect::<Vec<_>>());
    assert_ne!(init_group, own[0], "{o}");
    assert_eq!(
        own[0], own[1],
        "the command holds the terminal's foreground: {o}"
    );

    // Orphans are reaped by the init; without it, an exec'd sleep as PID 1 leaves them as zombies.
    let script = "sh -c 'sleep 0.1 &'; exec sleep 100";
    let with = run_d(&d, &["--init", "busybox", "sh", "-c", script]);
    let without = run_d(&d, &["busybox", "sh", "-c", script]);
    assert_eq!(inspect(&d, &with, "{{.HostConfig.Init}}"), "true");
    assert_eq!(inspect(&d, &with, "{{.Path}}"), "sh");
    std::thread::sleep(Duration::from_millis(700));
    let zombies = |id: &str| {
        out(&d.docker(&[
            "exec",
            id,
            "sh",
            "-c",
            "grep -l '^State:.*Z' /proc/[0-9]*/status",
        ]))
    };
    assert_eq!(zombies(&with), "", "the init left a zombie");
    assert!(
        !zombies(&without).is_empty(),
        "control: without --init the orphan stays a zombie"
    );

    // docker stop: SIGTERM reaches the command through the init at once, and its status is the exit code.
    let t = Instant::now();
    ok(&d.docker(&["stop", &with]));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(inspect(&d, &with, "{{.State.ExitCode}}"), "143");
    // Other signals are forwarded too.
    let id = run_d(
        &d,
        &[
            "--init",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-usr1; exit 3' USR1; while true; do sleep 0.05; done",
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    ok(&d.docker(&["kill", "-s", "USR1", &id]));
    assert_eq!(ok(&d.docker(&["wait", &id])).trim(), "3");
    assert!(ok(&d.docker(&["logs", &id])).contains("got-usr1"));
}

#[test]
fn the_init_binary_is_a_read_only_copy_out_of_the_containers_reach() {
    use std::os::unix::fs::MetadataExt;
    let d = common::docker_daemon();
    let berth = std::fs::metadata(common::berth_bin()).unwrap();
    let id = run_d(&d, &["--init", "busybox", "sleep", "100"]);
    let o = d.docker(&[
        "exec",
        &id,
        "sh",
        "-c",
        "readlink /proc/1/exe; echo x >> /proc/1/exe; echo w1=$?; echo x >> /sbin/docker-init; echo w2=$?; \
         chmod 777 /sbin/docker-init; echo c=$?; rm -f /sbin/docker-init; echo r=$?",
    ]);
    let text = all(&o);
    assert!(text.starts_with("/sbin/docker-init\n"), "{text}");
    for probe in ["w1=1", "w2=1", "c=1", "r=1"] {
        assert!(text.contains(probe), "{probe}: {text}");
    }
    assert!(text.contains("Read-only file system"), "{text}");
    // From the host: PID 1 runs a file that is not the berth binary, read-only for everyone.
    let pid = pid_of(&d, &id);
    let exe = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    assert_ne!((exe.dev(), exe.ino()), (berth.dev(), berth.ino()));
    assert_eq!(exe.mode() & 0o777, 0o555);
    assert!(
        exe.len() < berth.len() / 4,
        "the init is a small program of its own"
    );
    let after = std::fs::metadata(common::berth_bin()).unwrap();
    assert_eq!(after.mtime_nsec(), berth.mtime_nsec());
}
