//! External OCI runtimes through the shim: the same containers under `--runtime runc` (and crun where it
//! runs) as under the built-in runtime — output, exit codes, confinement, exec, TTY, stop, logs — and the
//! runtime names the daemon knows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Daemon;
use common::{ok, out};

/// What a container sees of its confinement. (Not its cgroup lines: on hybrid v1 hosts runc also joins the
/// empty unified hierarchy, which the built-in runtime leaves out — see docs/runtime.md.)
const PROBE: &str =
    "grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; id; hostname; \
                     ls /dev | tr '\\n' ' '; echo; \
                     mount | grep ' ro,' | wc -l; cat /proc/kcore 2>&1 | wc -c";

#[test]
fn runc_containers_behave_as_built_in_ones() {
    let d = common::docker_daemon();
    common::require("runc", "runc");
    let info = ok(&d.docker(&["info", "--format", "{{json .Runtimes}} {{.DefaultRuntime}}"]));
    assert!(info.contains("\"runc\""), "{info}");
    assert!(info.trim_end().ends_with(" berth"), "{info}");

    let probe = |runtime: &str| {
        ok(&d.docker(&[
            "run",
            "--rm",
            "--runtime",
            runtime,
            "--hostname",
            "probe",
            "busybox",
            "sh",
            "-c",
            PROBE,
        ]))
    };
    assert_eq!(probe("runc"), probe("berth"));

    let code = |runtime: &str, cmd: &[&str]| {
        let mut a = vec!["run", "--rm", "--runtime", runtime, "busybox"];
        a.extend_from_slice(cmd);
        d.docker(&a).status.code()
    };
    for runtime in ["runc", "berth"] {
        assert_eq!(code(runtime, &["sh", "-c", "exit 3"]), Some(3));
        assert_eq!(code(runtime, &["no-such-program"]), Some(127));
    }

    // A long-running runc container: exec, stdin, TTY, stats, pause, logs, stop, inspect.
    ok(&d.docker(&[
        "run",
        "-d",
        "--runtime",
        "runc",
        "--name",
        "ext",
        "busybox",
        "sh",
        "-c",
        "echo started; exec sleep 1000",
    ]));
    assert_eq!(ok(&d.docker(&["exec", "ext", "echo", "in"])), "in\n");
    let o = d.docker(&["exec", "ext", "no-such-program"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        out(&o).contains("executable file not found in $PATH"),
        "{}",
        out(&o)
    );
    let o = d.docker(&["exec", "-w", "/no/dir", "ext", "true"]);
    assert_eq!(o.status.code(), Some(127), "{}", out(&o));
    let input = d.dir.path().join("input");
    std::fs::write(&input, "through stdin\n").unwrap();
    assert_eq!(
        ok(&d.docker_stdin(&["exec", "-i", "ext", "cat"], Some(&input))),
        "through stdin\n"
    );
    assert!(ok(&d.docker(&["exec", "-t", "ext", "tty"])).starts_with("/dev/pts/"));
    let stats = ok(&d.docker(&["stats", "--no-stream", "--format", "{{.PIDs}}", "ext"]));
    assert_eq!(stats.trim(), "1");
    ok(&d.docker(&["pause", "ext"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", "ext"])).trim(),
        "paused"
    );
    ok(&d.docker(&["unpause", "ext"]));
    assert_eq!(ok(&d.docker(&["logs", "ext"])), "started\n");
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.HostConfig.Runtime}}", "ext"])).trim(),
        "runc"
    );
    let id = ok(&d.docker(&["inspect", "-f", "{{.Id}}", "ext"]))
        .trim()
        .to_owned();
    ok(&d.docker(&["stop", "-t", "1", "ext"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.ExitCode}}", "ext"])).trim(),
        "137"
    );
    ok(&d.docker(&["rm", "ext"]));
    // runc's state and the container's cgroup are gone with it.
    assert!(!d.exec_root().join("containers").join(&id).exists());
    let pids = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    if !pids.starts_with("0::") {
        assert!(!std::path::Path::new(&format!("/sys/fs/cgroup/pids/berth/{id}")).exists());
    }

    let o = d.docker(&[
        "run",
        "--rm",
        "--runtime",
        "no-such-runtime",
        "busybox",
        "true",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("unknown or invalid runtime name: no-such-runtime"));
}

#[test]
fn runc_containers_survive_a_daemon_kill() {
    let mut d = common::docker_daemon();
    common::require("runc", "runc");
    ok(&d.docker(&[
        "run",
        "-d",
        "--runtime",
        "runc",
        "--name",
        "lasting",
        "busybox",
        "sleep",
        "1000",
    ]));
    d.kill();
    d.spawn();
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.Status}}", "lasting"])).trim(),
        "running"
    );
    assert_eq!(ok(&d.docker(&["exec", "lasting", "echo", "yes"])), "yes\n");
    ok(&d.docker(&["kill", "lasting"]));
    assert_eq!(ok(&d.docker(&["wait", "lasting"])).trim(), "137");
}

#[test]
fn an_unknown_default_runtime_stops_the_daemon_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(common::berth_bin())
        .args(["daemon", "--default-runtime", "nope", "--data-root"])
        .arg(dir.path().join("data"))
        .arg("--exec-root")
        .arg(dir.path().join("exec"))
        .arg("-H")
        .arg(format!("unix://{}", dir.path().join("s.sock").display()))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--default-runtime nope: no such runtime"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = Daemon::start; // the harness is shared with the other tests
}

#[test]
fn an_oom_kill_is_reported_in_state_and_events() {
    let d = common::docker_daemon();
    common::require("runc", "runc");
    for rt in ["berth", "runc"] {
        let name = format!("oom-{rt}");
        let o = d.docker(&[
            "run",
            "--name",
            &name,
            "--runtime",
            rt,
            "-m",
            "16m",
            "--memory-swap",
            "16m",
            "busybox",
            "sh",
            "-c",
            "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo survived",
        ]);
        assert_eq!(o.status.code(), Some(137), "{rt}: {}", out(&o));
        assert_eq!(
            ok(&d.docker(&[
                "inspect",
                "-f",
                "{{.State.OOMKilled}} {{.State.ExitCode}}",
                &name
            ]))
            .trim(),
            "true 137",
            "{rt}"
        );
        let (since, until) = ((now() - 60).to_string(), (now() + 1).to_string());
        let ev = ok(&d.docker(&[
            "events",
            "--since",
            &since,
            "--until",
            &until,
            "--filter",
            "event=oom",
            "--filter",
            &format!("container={name}"),
            "--format",
            "{{.Action}}",
        ]));
        assert_eq!(ev, "oom\n", "{rt}");
    }
    // A container that was not OOM-killed says so.
    ok(&d.docker(&["run", "--name", "no-oom", "-m", "64m", "busybox", "true"]));
    assert_eq!(
        ok(&d.docker(&["inspect", "-f", "{{.State.OOMKilled}}", "no-oom"])).trim(),
        "false"
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
