//! Limits that cannot be switched off by mistake: values that would mean "unlimited" further down (a zero or
//! negative log size, no log files, a negative memory limit) are refused at create and update with dockerd's
//! words, through the docker CLI and the API alike.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{err, ok};

#[test]
fn log_and_memory_limits_cannot_be_switched_off() {
    let d = common::docker_daemon();
    for (opt, want) in [
        ("max-size=0", "max-size must be a positive number"),
        ("max-size=-1", "invalid size: '-1'"),
        ("max-file=0", "max-file cannot be less than 1"),
        ("nope=1", "unknown log opt 'nope' for json-file log driver"),
    ] {
        let o = d.docker(&["run", "--rm", "--log-opt", opt, "busybox", "true"]);
        assert_eq!(o.status.code(), Some(125), "{opt}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("Error response from daemon: {want}")),
            "{opt}: {}",
            err(&o)
        );
    }
    // Within bounds, the options hold.
    ok(&d.docker(&[
        "run",
        "--rm",
        "--log-opt",
        "max-size=1m",
        "--log-opt",
        "max-file=2",
        "busybox",
        "true",
    ]));

    // The API with a negative memory limit (the docker CLI refuses to send one).
    let body = br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":-1}}"#;
    let r = d.request("POST", "/containers/create", body);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("Minimum memory limit allowed is 6MB"));
    let body =
        br#"{"Image":"busybox","Cmd":["true"],"HostConfig":{"Memory":67108864,"MemorySwap":-7}}"#;
    let r = d.request("POST", "/containers/create", body);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "", "nothing was created");

    // Update checks the same values.
    ok(&d.docker(&["create", "--name", "upd", "-m", "64m", "busybox", "true"]));
    let r = d.request("POST", "/containers/upd/update", br#"{"Memory":-1}"#);
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("Minimum memory limit allowed is 6MB"));
}

#[test]
fn a_huge_json_body_is_refused_with_413_and_costs_no_memory() {
    let d = common::Daemon::start();
    common::require("curl", "curl");
    let big = d.dir.path().join("big.json");
    // 100 MB of JSON: one environment variable.
    let mut body = br#"{"Image":"busybox","Env":["X="#.to_vec();
    body.resize(body.len() + (100 << 20), b'a');
    body.extend_from_slice(br#""]}"#);
    std::fs::write(&big, &body).unwrap();
    let o = std::process::Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(d.socket())
        .args([
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "--data-binary",
        ])
        .arg(format!("@{}", big.display()))
        .args(["-w", "\n%{http_code}", "http://berth/containers/create"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.ends_with("\n413"), "{text}");
    assert!(
        text.contains("request body too large: JSON bodies are limited to 8 MiB"),
        "{text}"
    );
    // The daemon read at most the limit: its peak resident size stays far below the body's size.
    let pid = d.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let hwm_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(hwm_kb < 64 * 1024, "peak RSS {hwm_kb} kB");
    assert_eq!(d.request("GET", "/_ping", &[]).status, 200);
}

/// What dockerd (or runc, at start) refuses is refused at create and update, with a 400 and the same words,
/// through the docker CLI and the API; nothing is recorded.
#[test]
fn settings_dockerd_refuses_are_refused_at_create_and_update() {
    let d = common::docker_daemon();
    // Through the docker CLI, which sends these as they are (it checks none of them itself).
    for (args, want) in [
        (
            &["--cpuset-cpus", "4095"][..],
            "Requested CPUs are not available - requested 4095, available: 0",
        ),
        (
            &["--cpuset-cpus", "1-0"][..],
            "Invalid value 1-0 for cpuset cpus: invalid format: 1-0",
        ),
        (
            &["--oom-score-adj", "1001"][..],
            "Invalid value 1001, range for oom score adj is [-1000, 1000]",
        ),
        (
            &["--net", "host", "--sysctl", "net.ipv4.ip_forward=1"][..],
            "sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace",
        ),
        (
            &["-w", "rel"][..],
            "the working directory 'rel' is invalid, it needs to be an absolute path",
        ),
        (
            &["-m", "64m", "--memory-swap", "32m"][..],
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
    ] {
        let mut argv = vec!["create"];
        argv.extend_from_slice(args);
        argv.extend_from_slice(&["busybox", "true"]);
        let o = d.docker(&argv);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", err(&o));
        assert!(
            err(&o).contains(&format!("Error response from daemon: {want}")),
            "{args:?}: {}",
            err(&o)
        );
    }
    // Through the API, for what the docker CLI would refuse before sending.
    for (host, want) in [
        (r#"{"ShmSize":-1}"#, "SHM size can not be less than 0"),
        (
            r#"{"Ulimits":[{"Name":"nofiles","Soft":1,"Hard":1}]}"#,
            "invalid ulimit type: nofiles",
        ),
        (
            r#"{"Ulimits":[{"Name":"nofile","Soft":20,"Hard":10}]}"#,
            "ulimit soft limit must be less than or equal to hard limit: 20 > 10",
        ),
        (
            r#"{"Sysctls":{"kernel.panic":"1"}}"#,
            "sysctl 'kernel.panic=1' is not allowed",
        ),
    ] {
        let body = format!(r#"{{"Image":"busybox","Cmd":["true"],"HostConfig":{host}}}"#);
        let r = d.request("POST", "/containers/create", body.as_bytes());
        let text = String::from_utf8_lossy(&r.body);
        assert_eq!(r.status, 400, "{host}: {text}");
        assert!(text.contains(want), "{host}: {text}");
    }
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "", "nothing was created");

    // `docker update` checks the cpuset and the memory values as create does.
    ok(&d.docker(&["create", "--name", "upd", "busybox", "true"]));
    for (args, want) in [
        (
            &["--cpuset-cpus", "4095"][..],
            "Requested CPUs are not available - requested 4095, available: 0",
        ),
        (
            &["--cpuset-mems", "x"][..],
            "Invalid value x for cpuset mems: invalid format: x",
        ),
        (
            &["--memory-reservation", "1k"][..],
            "Minimum memory reservation allowed is 6MB",
        ),
    ] {
        let mut argv = vec!["update"];
        argv.extend_from_slice(args);
        argv.push("upd");
        let o = d.docker(&argv);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", err(&o));
        assert!(err(&o).contains(want), "{args:?}: {}", err(&o));
    }
    let cpus = ok(&d.docker(&["inspect", "-f", "{{.HostConfig.CpusetCpus}}", "upd"]));
    assert_eq!(cpus.trim(), "", "a refused update changed nothing");
}

/// A block device of this host to throttle (not a loop, ram or zram device), as `/dev/<name>` and its
/// major:minor. A host without one leaves the test out by name (scripts/test.sh, "block-device").
fn block_device() -> (String, String) {
    let found = std::fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if ["loop", "ram", "zram"].iter().any(|p| name.starts_with(p)) {
                return None;
            }
            let numbers = std::fs::read_to_string(e.path().join("dev")).ok()?;
            let node = format!("/dev/{name}");
            std::path::Path::new(&node)
                .exists()
                .then(|| (node, numbers.trim().to_owned()))
        });
    found.expect("a block device to throttle (host requirement: block-device)")
}

/// Whether the host's cgroups offer a block I/O weight: the `io` controller on v2; on v1 one of `files`
/// (the CFQ or the BFQ scheduler's) in the blkio hierarchy.
fn blkio_weight_files(v2: bool, files: &[&str]) -> bool {
    if v2 {
        return std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers")
            .unwrap()
            .split_whitespace()
            .any(|c| c == "io");
    }
    let dir = std::path::Path::new("/sys/fs/cgroup/blkio");
    files.iter().any(|f| dir.join(f).exists())
}

/// `--device-{read,write}-{bps,iops}` reach the container's cgroup with the device's major:minor, as
/// dockerd writes them; `--blkio-weight-device` too where the host has the weight files, and is discarded
/// with dockerd's warning where it has not; a device that is not there, or not a block device, is refused.
#[test]
fn block_io_limits_reach_the_cgroup_as_dockerd_writes_them() {
    let d = common::docker_daemon();
    let (dev, numbers) = block_device();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let probe = if v2 {
        "cat /sys/fs/cgroup/io.max; cat /sys/fs/cgroup/io.weight 2>/dev/null; true"
    } else {
        "cd /sys/fs/cgroup/blkio && cat blkio.throttle.read_bps_device blkio.throttle.write_bps_device \
         blkio.throttle.read_iops_device blkio.throttle.write_iops_device; \
         cat blkio.weight_device blkio.bfq.weight_device 2>/dev/null; true"
    };
    let (rbps, wbps, riops, wiops, weight) = (
        format!("{dev}:1mb"),
        format!("{dev}:2mb"),
        format!("{dev}:100"),
        format!("{dev}:200"),
        format!("{dev}:300"),
    );
    let o = d.docker(&[
        "run",
        "--name",
        "io",
        "--device-read-bps",
        &rbps,
        "--device-write-bps",
        &wbps,
        "--device-read-iops",
        &riops,
        "--device-write-iops",
        &wiops,
        "--blkio-weight-device",
        &weight,
        "busybox",
        "sh",
        "-c",
        probe,
    ]);
    let seen = ok(&o);
    if v2 {
        assert!(
            seen.contains(&format!(
                "{numbers} rbps=1048576 wbps=2097152 riops=100 wiops=200"
            )),
            "{seen}"
        );
    } else {
        for line in [
            format!("{numbers} 1048576"),
            format!("{numbers} 2097152"),
            format!("{numbers} 100"),
            format!("{numbers} 200"),
        ] {
            assert!(seen.lines().any(|l| l == line), "{line} not in {seen}");
        }
    }
    let weights = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{json .HostConfig.BlkioWeightDevice}}",
        "io",
    ]));
    if blkio_weight_files(v2, &["blkio.weight_device", "blkio.bfq.weight_device"]) {
        assert!(seen.contains(&format!("{numbers} ")), "{seen}");
        assert!(weights.contains("\"Weight\":300"), "{weights}");
    } else {
        assert!(
            err(&o).contains("WARNING: Your kernel does not support Block I/O weight_device or the cgroup is not mounted. Weight-device discarded."),
            "{}",
            err(&o)
        );
        assert_eq!(weights.trim(), "[]");
    }
    let throttles = ok(&d.docker(&[
        "inspect",
        "-f",
        "{{json .HostConfig.BlkioDeviceReadBps}} {{json .HostConfig.BlkioDeviceWriteIOps}}",
        "io",
    ]));
    assert_eq!(
        throttles.trim(),
        format!(r#"[{{"Path":"{dev}","Rate":1048576}}] [{{"Path":"{dev}","Rate":200}}]"#)
    );

    // `--blkio-weight`: applied where the host has the weight file, else discarded with dockerd's warning;
    // the container starts either way.
    let o = d.docker(&[
        "run",
        "--name",
        "weighted",
        "--blkio-weight",
        "300",
        "busybox",
        "true",
    ]);
    ok(&o);
    let weight = ok(&d.docker(&["inspect", "-f", "{{.HostConfig.BlkioWeight}}", "weighted"]));
    let weight_file = blkio_weight_files(v2, &["blkio.weight", "blkio.bfq.weight"]);
    if weight_file {
        assert_eq!(weight.trim(), "300");
    } else {
        assert!(
            err(&o).contains("WARNING: Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."),
            "{}",
            err(&o)
        );
        assert_eq!(weight.trim(), "0");
    }

    for (arg, want) in [
        (
            "/dev/berth-no-such-disk:1mb",
            "Error response from daemon: stat /dev/berth-no-such-disk: no such file or directory",
        ),
        (
            "/dev/null:1mb",
            "Error response from daemon: /dev/null is not a block device",
        ),
    ] {
        let o = d.docker(&["create", "--device-write-bps", arg, "busybox", "true"]);
        assert_eq!(o.status.code(), Some(1), "{arg}: {}", err(&o));
        assert!(err(&o).contains(want), "{arg}: {}", err(&o));
    }
    // The API, which the docker CLI's own checks do not guard.
    let body = format!(
        r#"{{"Image":"busybox","HostConfig":{{"BlkioDeviceReadIOps":[{{"Path":"{dev}","Rate":-1}}]}}}}"#
    );
    let r = d.request("POST", "/containers/create", body.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("invalid rate for device"), "{}", r.text());
}
