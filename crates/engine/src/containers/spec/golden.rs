//! The spec `build` makes for a few representative containers, compared with the config.json the
//! engine wrote before the spec was built with typed builders (`testdata/*.json`, made by that code).
//! Parts that depend on the host (the daemon's capability set, the host's device nodes, the cgroup
//! version) are set in the cases or checked against the functions that read the host.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard_stubs::models::{
    ContainerConfig, DeviceMapping, HostConfig, HostConfigCgroupnsModeEnum, ResourcesUlimits,
};
use serde_json::Value;

use super::super::mounts::{Recursion, UserMount};
use super::super::record::Container;
use super::super::user::ResolvedUser;
use super::*;

const ARCH: &str = "amd64";

fn container(
    config: ContainerConfig,
    host_config: HostConfig,
    path: &str,
    args: &[&str],
) -> Container {
    Container {
        host_config,
        path: path.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Container::for_test(
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "golden",
            "sha256:00",
            config,
        )
    }
}

fn root_user() -> ResolvedUser {
    ResolvedUser {
        uid: 0,
        gid: 0,
        additional_gids: Vec::new(),
        home: "/root".into(),
    }
}

fn etc() -> EtcFiles<'static> {
    EtcFiles {
        hostname: Path::new("/var/lib/berth/c/hostname"),
        hosts: Path::new("/var/lib/berth/c/hosts"),
        resolv_conf: Path::new("/var/lib/berth/c/resolv.conf"),
    }
}

fn private_cgroupns() -> Option<HostConfigCgroupnsModeEnum> {
    Some(HostConfigCgroupnsModeEnum::PRIVATE)
}

/// `docker run busybox sh` as the docker CLI sends it.
fn minimal() -> Value {
    let c = container(
        ContainerConfig {
            hostname: Some("0123456789ab".into()),
            env: Some(vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ]),
            ..Default::default()
        },
        HostConfig {
            cgroupns_mode: private_cgroupns(),
            masked_paths: Some(MASKED_PATHS.iter().map(|p| p.to_string()).collect()),
            readonly_paths: Some(READONLY_PATHS.iter().map(|p| p.to_string()).collect()),
            ..Default::default()
        },
        "sh",
        &[],
    );
    let spec = build(
        &c,
        Path::new("/rootfs"),
        &root_user(),
        &etc(),
        &[],
        &Joined::default(),
        ARCH,
    )
    .unwrap();
    serde_json::to_value(spec).unwrap()
}

/// Most flags at once: a terminal, a user, limits, capabilities, mounts, devices and joined namespaces.
fn rich() -> Value {
    let c = container(
        ContainerConfig {
            hostname: Some("web".into()),
            domainname: Some("example.org".into()),
            tty: Some(true),
            env: Some(vec!["FOO=bar".into(), "HOME=/data".into()]),
            working_dir: Some("/work".into()),
            ..Default::default()
        },
        HostConfig {
            console_size: Some(vec![40, 120]),
            security_opt: Some(vec![
                "no-new-privileges:true".into(),
                "seccomp=unconfined".into(),
            ]),
            ulimits: Some(vec![
                ResourcesUlimits {
                    name: Some("nofile".into()),
                    soft: Some(1024),
                    hard: Some(2048),
                },
                ResourcesUlimits {
                    // Unlimited, as dockerd passes -1 on (RLIM_INFINITY).
                    name: Some("nproc".into()),
                    soft: Some(-1),
                    hard: Some(-1),
                },
            ]),
            memory: Some(64 << 20),
            memory_reservation: Some(32 << 20),
            memory_swap: Some(128 << 20),
            memory_swappiness: Some(10),
            oom_kill_disable: Some(true),
            cpu_shares: Some(512),
            nano_cpus: Some(1_500_000_000),
            cpuset_cpus: Some("0".into()),
            cpuset_mems: Some("0".into()),
            pids_limit: Some(50),
            blkio_weight: Some(300),
            cap_add: Some(vec!["net_admin".into(), "CAP_SYS_TIME".into()]),
            cap_drop: Some(vec!["chown".into()]),
            tmpfs: Some(HashMap::from([(
                "/run".to_string(),
                "size=1m,mode=700".to_string(),
            )])),
            sysctls: Some(HashMap::from([(
                "net.ipv4.ip_forward".to_string(),
                "1".to_string(),
            )])),
            masked_paths: Some(vec!["/proc/kcore".into()]),
            readonly_paths: Some(vec!["/proc/sys".into()]),
            readonly_rootfs: Some(true),
            network_mode: Some("container:donor".into()),
            ipc_mode: Some("container:donor".into()),
            cgroupns_mode: Some(HostConfigCgroupnsModeEnum::HOST),
            devices: Some(vec![DeviceMapping {
                path_on_host: Some("/dev/null".into()),
                path_in_container: Some("/dev/mynull".into()),
                cgroup_permissions: Some("rw".into()),
            }]),
            device_cgroup_rules: Some(vec!["c 1:3 rwm".into(), "a *:* m".into()]),
            cgroup_parent: Some("/parent/".into()),
            oom_score_adj: Some(500),
            shm_size: Some(1 << 20),
            ..Default::default()
        },
        "/bin/app",
        &["--serve", "80"],
    );
    let user = ResolvedUser {
        uid: 1000,
        gid: 1000,
        additional_gids: vec![10, 20],
        home: "/home/app".into(),
    };
    let mounts = [
        UserMount {
            kind: "bind",
            source: "/srv/data".into(),
            destination: "/data".into(),
            read_only: true,
            propagation: "rshared".into(),
            // Forced, so that the golden file does not depend on the host kernel's mount_setattr.
            recursion: Recursion::Readonly,
            mode: "ro,rshared".into(),
            data: String::new(),
        },
        UserMount {
            kind: "tmpfs",
            source: String::new(),
            destination: "/scratch".into(),
            read_only: true,
            propagation: String::new(),
            recursion: Recursion::Enabled,
            mode: String::new(),
            data: "size=2m".into(),
        },
    ];
    let joined = Joined {
        net: Some(PathBuf::from("/proc/42/ns/net")),
        pid: None,
        ipc: Some(PathBuf::from("/proc/42/ns/ipc")),
        shm: Some(PathBuf::from("/var/lib/berth/donor/shm")),
        user: None,
        id_map: None,
    };
    let spec = build(
        &c,
        Path::new("/rootfs"),
        &user,
        &etc(),
        &mounts,
        &joined,
        ARCH,
    )
    .unwrap();
    serde_json::to_value(spec).unwrap()
}

/// The host's namespaces, CPU period and quota without `--cpus`, and a custom seccomp profile.
fn host_namespaces() -> Value {
    let c = container(
        ContainerConfig {
            hostname: Some("host".into()),
            working_dir: Some(String::new()),
            ..Default::default()
        },
        HostConfig {
            network_mode: Some("host".into()),
            pid_mode: Some("host".into()),
            ipc_mode: Some("host".into()),
            uts_mode: Some("host".into()),
            cgroupns_mode: private_cgroupns(),
            cpu_period: Some(50_000),
            cpu_quota: Some(25_000),
            memory_swap: Some(-1),
            security_opt: Some(vec![
                r#"seccomp={"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["chmod"],"action":"SCMP_ACT_ERRNO"}]}"#
                    .into(),
            ]),
            ..Default::default()
        },
        "top",
        &["-b"],
    );
    let spec = build(
        &c,
        Path::new("/rootfs"),
        &root_user(),
        &etc(),
        &[],
        &Joined::default(),
        ARCH,
    )
    .unwrap();
    serde_json::to_value(spec).unwrap()
}

/// `--privileged`: every capability and device node of the host, no seccomp, no masked paths.
fn privileged() -> Value {
    let c = container(
        ContainerConfig {
            hostname: Some("priv".into()),
            ..Default::default()
        },
        HostConfig {
            privileged: Some(true),
            cgroupns_mode: private_cgroupns(),
            masked_paths: Some(MASKED_PATHS.iter().map(|p| p.to_string()).collect()),
            device_cgroup_rules: Some(vec!["b 8:* r".into()]),
            ..Default::default()
        },
        "sh",
        &[],
    );
    let spec = build(
        &c,
        Path::new("/rootfs"),
        &root_user(),
        &etc(),
        &[],
        &Joined::default(),
        ARCH,
    )
    .unwrap();
    serde_json::to_value(spec).unwrap()
}

/// Sorts the capability sets: the spec holds them as hash sets, so their order in config.json is arbitrary.
fn sort_capabilities(spec: &mut Value) {
    if let Some(sets) = spec["process"]["capabilities"].as_object_mut() {
        for set in sets.values_mut() {
            if let Some(a) = set.as_array_mut() {
                a.sort_by(|x, y| x.as_str().cmp(&y.as_str()));
            }
        }
    }
}

/// Compares `actual` with `expected` key by key, naming the first field that differs; an absent field
/// equals a null one.
fn assert_same(at: &str, expected: &Value, actual: &Value) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for k in e.keys().chain(a.keys()) {
                let e = e.get(k).unwrap_or(&Value::Null);
                let a = a.get(k).unwrap_or(&Value::Null);
                assert_same(&format!("{at}.{k}"), e, a);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(
                e.len(),
                a.len(),
                "{at}: length differs\nexpected {expected}\nactual {actual}"
            );
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                assert_same(&format!("{at}[{i}]"), e, a);
            }
        }
        _ => assert_eq!(expected, actual, "{at} differs"),
    }
}

fn golden(name: &str, json: &str, mut actual: Value, fill: impl FnOnce(&mut Value)) {
    let mut expected: Value = serde_json::from_str(json).unwrap();
    fill(&mut expected);
    sort_capabilities(&mut expected);
    sort_capabilities(&mut actual);
    assert_same(name, &expected, &actual);
}

#[test]
fn spec_of_a_plain_run_matches_the_recorded_one() {
    golden(
        "minimal",
        include_str!("testdata/minimal.json"),
        minimal(),
        |v| {
            let caps = capabilities(&HostConfig::default()).unwrap();
            let profile = seccomp_profile(Seccomp::Default, &caps, ARCH).unwrap();
            v["linux"]["seccomp"] = serde_json::to_value(profile).unwrap();
        },
    );
}

#[test]
fn spec_with_most_flags_matches_the_recorded_one() {
    golden("rich", include_str!("testdata/rich.json"), rich(), |_| {});
}

#[test]
fn spec_with_host_namespaces_and_a_custom_profile_matches_the_recorded_one() {
    golden(
        "host-namespaces",
        include_str!("testdata/host-namespaces.json"),
        host_namespaces(),
        |_| {},
    );
}

#[test]
fn privileged_spec_matches_the_recorded_one_with_the_hosts_caps_and_devices() {
    golden(
        "privileged",
        include_str!("testdata/privileged.json"),
        privileged(),
        |v| {
            let caps = host_capabilities();
            v["process"]["capabilities"] =
                serde_json::json!({"bounding": caps, "effective": caps, "permitted": caps});
            let devices = super::super::devices::host_devices();
            v["linux"]["devices"] = serde_json::to_value(
                devices
                    .iter()
                    .map(super::super::devices::Device::oci)
                    .collect::<Vec<_>>(),
            )
            .unwrap();
            let rules = v["linux"]["resources"]["devices"].as_array_mut().unwrap();
            let own = rules.pop().unwrap();
            rules.pop();
            for d in &devices {
                rules.push(serde_json::to_value(d.rule()).unwrap());
            }
            rules.push(own);
        },
    );
}
