//! Crash safety: a daemon SIGKILLed at any point of a load leaves no half image, and the next start removes
//! the leftovers; a daemon SIGKILLed at any step of a container's create, start, stop, kill, exit or removal
//! (the engine's named crash points) comes back with the host and its records agreeing; and a stop on a full
//! disk stops the container, says it failed, and records the exit once it can.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::archive::{layer, legacy_archive, Entry};
use common::Daemon;

fn big_archive() -> Vec<u8> {
    // Three 8 MiB layers of incompressible data, so a load takes long enough to be interrupted.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let layers: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            let data: Vec<u8> = (0..8 << 20)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            layer(&[Entry::File(&format!("file{i}"), &data)])
        })
        .collect();
    legacy_archive("crash:1", &layers)
}

/// Where the daemon keeps images and containers: the data root, or `<data-root>/<uid>.<gid>` under
/// `--userns-remap` (the suite runs these tests a second time so), as `/info` says.
fn state_root(d: &Daemon) -> std::path::PathBuf {
    std::path::PathBuf::from(
        d.get_json("/info")["DockerRootDir"]
            .as_str()
            .expect("DockerRootDir in /info"),
    )
}

fn count_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

#[test]
fn sigkill_during_load_leaves_nothing_half_made() {
    let archive = big_archive();
    for fraction in [0.2, 0.5, 0.8, 1.0] {
        let mut d = Daemon::start();
        let cut = (archive.len() as f64 * fraction) as usize;
        let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
        write!(
            s,
            "POST /images/load?quiet=1 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            archive.len()
        )
        .unwrap();
        s.write_all(&archive[..cut]).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        d.kill();
        drop(s);
        d.spawn();

        let images = d.get_json("/images/json");
        let store = state_root(&d).join("image");
        // Counting the entries of a directory that is not there would pass for the wrong reason.
        assert!(
            store.join("blobs").is_dir(),
            "no image store at {}",
            store.display()
        );
        match images.as_array().unwrap().len() {
            0 => {
                assert_eq!(
                    count_entries(&store.join("blobs/sha256")),
                    0,
                    "cut at {fraction}: blobs left"
                );
                assert_eq!(
                    count_entries(&store.join("snapshots")),
                    0,
                    "cut at {fraction}: snapshots left"
                );
                assert_eq!(
                    count_entries(&store.join("ingest")),
                    0,
                    "cut at {fraction}: ingest left"
                );
            }
            1 => {
                // The load finished before the kill: then it must be whole.
                let img = d.get_json("/images/crash:1/json");
                assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 3);
                for dir in img["GraphDriver"]["Data"]["LowerDir"]
                    .as_str()
                    .unwrap_or("")
                    .split(':')
                    .filter(|s| !s.is_empty())
                {
                    assert!(Path::new(dir).is_dir(), "{dir}");
                }
            }
            n => panic!("{n} images after one load"),
        }
        // Whatever happened, the same archive loads now.
        let r = d.request("POST", "/images/load?quiet=1", &archive);
        assert!(r.text().contains("Loaded image: crash:1"), "{}", r.text());
    }
}

// ---- Container operations killed at every named step (`engine::crash::POINTS`) ----

/// The user network the containers join: a /29 holds five addresses, so an address leaked by any step
/// shows within a few rounds as a container that cannot get one.
const NET: &str = "crashnet";

/// Restarts the daemon with `BERTH_CRASH_AT=point` (the daemon kills itself when it reaches that step).
fn spawn_crashing(d: &mut Daemon, point: &str) {
    d.kill();
    d.spawn_with_env(&[(engine::crash::ENV, point)]);
}

/// Waits for the daemon to die of the SIGKILL of crash point `point`: a point never reached fails the test.
fn expect_crash(d: &mut Daemon, point: &str) {
    let mut child = d.child.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(
                status.signal(),
                Some(libc::SIGKILL),
                "{point}: the daemon ended otherwise ({status}): {}",
                d.log()
            );
            return;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{point}: the daemon never reached the crash point: {}",
                d.log()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn create_body() -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "Image": "busybox",
        "Cmd": ["sleep", "1000"],
        "Volumes": {"/data": {}},
        "HostConfig": {"NetworkMode": NET},
    }))
    .unwrap()
}

fn create(d: &Daemon, name: &str) -> String {
    let r = d.request(
        "POST",
        &format!("/containers/create?name={name}"),
        &create_body(),
    );
    assert_eq!(r.status, 201, "create {name}: {}", r.text());
    r.json()["Id"].as_str().unwrap().to_owned()
}

fn start(d: &Daemon, name: &str) {
    let r = d.request("POST", &format!("/containers/{name}/start"), &[]);
    assert_eq!(r.status, 204, "start {name}: {}", r.text());
}

fn remove_all(d: &Daemon) {
    for c in d.get_json("/containers/json?all=1").as_array().unwrap() {
        let id = c["Id"].as_str().unwrap();
        let r = d.request("DELETE", &format!("/containers/{id}?force=1&v=1"), &[]);
        assert_eq!(r.status, 204, "rm {id}: {}", r.text());
    }
}

/// Shim processes of this daemon (their command line names its exec root), with the container ID each
/// serves.
fn shims(exec_root: &Path) -> Vec<(u32, String)> {
    let root = exec_root.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let args: Vec<String> = cmd
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if !args.iter().any(|a| a == "shim") || !args.iter().any(|a| a.contains(&root)) {
                return None;
            }
            let id = args.iter().skip_while(|a| *a != "--id").nth(1)?.clone();
            Some((pid, id))
        })
        .collect()
}

/// What the host holds against what the daemon says: every mount under the data root, every shim, every
/// cgroup, runtime state directory and network endpoint belongs to a container the daemon reports
/// running, whose process lives. `known` are the IDs this round has seen (for the cgroups of removed ones).
fn check_host_matches_records(d: &Daemon, known: &BTreeSet<String>) -> Result<(), String> {
    let mut running = BTreeSet::new();
    let mut all = BTreeSet::new();
    for c in d.get_json("/containers/json?all=1").as_array().unwrap() {
        let id = c["Id"].as_str().unwrap().to_owned();
        let i = d.get_json(&format!("/containers/{id}/json"));
        let listed_running = c["State"] == "running";
        if listed_running != (i["State"]["Running"] == true) {
            return Err(format!(
                "{id}: ps says {}, inspect {}",
                c["State"], i["State"]
            ));
        }
        if listed_running {
            let pid = i["State"]["Pid"].as_i64().unwrap_or(0);
            // Its process runs its command (not a runtime's init still waiting to execute it).
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
            if pid <= 0 || argv0 != i["Path"].as_str().unwrap_or("?").as_bytes() {
                return Err(format!(
                    "{id}: running with pid {pid}, whose command is {:?}",
                    String::from_utf8_lossy(&cmdline)
                ));
            }
            running.insert(id.clone());
        }
        all.insert(id);
    }
    let containers = state_root(d).join("containers");
    for m in common::mounts_under(&d.data_root()) {
        let owner = Path::new(&m)
            .strip_prefix(&containers)
            .ok()
            .and_then(|r| r.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        if !owner.is_some_and(|id| running.contains(&id)) {
            return Err(format!("mount {m} left, running: {running:?}"));
        }
    }
    for (pid, id) in shims(&d.exec_root()) {
        if !running.contains(&id) {
            return Err(format!("shim {pid} of {id} left, running: {running:?}"));
        }
    }
    let stopped: BTreeSet<String> = known
        .union(&all)
        .filter(|id| !running.contains(*id))
        .cloned()
        .collect();
    let cgroups = common::cgroups_of(&stopped);
    if !cgroups.is_empty() {
        return Err(format!("cgroups left: {cgroups:?}"));
    }
    for e in std::fs::read_dir(d.exec_root().join("containers"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let id = e.file_name().to_string_lossy().into_owned();
        if !running.contains(&id) {
            return Err(format!("runtime state of {id} left"));
        }
    }
    // Every container here is on NET, with one veth pair each while it runs.
    let mut ip = std::process::Command::new("ip");
    ip.args(["-o", "link", "show", "type", "veth"]);
    d.netns_command(&mut ip);
    let links = ip.output().expect("ip (iproute2) is needed");
    assert!(links.status.success(), "{}", common::err(&links));
    let veths = String::from_utf8_lossy(&links.stdout).lines().count();
    if veths != running.len() {
        return Err(format!(
            "{veths} veth pairs for {} running containers: {}",
            running.len(),
            String::from_utf8_lossy(&links.stdout)
        ));
    }
    let net = d.get_json(&format!("/networks/{NET}"));
    for id in net["Containers"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, _)| k)
    {
        if !running.contains(id) {
            return Err(format!("endpoint of {id} left on {NET}"));
        }
    }
    Ok(())
}

/// [`check_host_matches_records`], given a few seconds: a restarted daemon reconnects to its shims and
/// records the exits that happened while it was down as it goes.
fn assert_host_matches_records(d: &Daemon, known: &BTreeSet<String>, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match check_host_matches_records(d, known) {
            Ok(()) => return,
            Err(e) if Instant::now() > deadline => panic!("{what}: {e}\n{}", d.log()),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The operation that reaches a crash point, run on container `name` set up for it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Create,
    Start,
    Stop,
    Kill,
    ForceRemove,
}

fn op_for(point: &str) -> Op {
    match point.split(':').next().unwrap() {
        "create" => Op::Create,
        "start" => Op::Start,
        "stop" | "exit" => Op::Stop,
        "kill" => Op::Kill,
        "rm" => Op::ForceRemove,
        other => panic!("no operation reaches the points of {other:?}: add one to this test"),
    }
}

/// Whether the container must exist after a restart that followed a crash at `point`.
fn must_exist(point: &str) -> bool {
    match point {
        "create:after-record" | "create:after-volumes" => false,
        // An interrupted removal is finished at the restart.
        p if p.starts_with("rm:") => false,
        // Anything else, `rm -f` that died at the container's exit included, leaves it there.
        _ => true,
    }
}

#[test]
fn sigkill_at_every_step_of_create_start_stop_kill_and_rm_leaves_host_and_records_agreeing() {
    let mut d = common::docker_daemon();
    let r = d.request(
        "POST",
        "/networks/create",
        br#"{"Name":"crashnet","IPAM":{"Config":[{"Subnet":"10.77.0.0/29"}]}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    // Every point with the operation that reaches it, and the exit's points also through `rm -f` of a
    // running container (where a crash once left the rootfs mounted).
    let mut rounds: Vec<(&str, Op)> = engine::crash::POINTS
        .iter()
        .map(|p| (*p, op_for(p)))
        .collect();
    rounds.extend(
        engine::crash::POINTS
            .iter()
            .filter(|p| p.starts_with("exit:"))
            .map(|p| (*p, Op::ForceRemove)),
    );
    for (n, (point, op)) in rounds.into_iter().enumerate() {
        let what = format!("crash at {point} during {op:?}");
        let name = format!("subject{n}");
        let mut known = BTreeSet::new();
        spawn_crashing(&mut d, point);
        if op != Op::Create {
            known.insert(create(&d, &name));
            if op != Op::Start {
                start(&d, &name);
            }
        }
        // Through the docker CLI, which fails as the connection drops with the daemon.
        let args: Vec<&str> = match op {
            Op::Create => vec![
                "create",
                "--name",
                &name,
                "-v",
                "/data",
                "--network",
                NET,
                "busybox",
                "sleep",
                "1000",
            ],
            Op::Start => vec!["start", &name],
            Op::Stop => vec!["stop", "-t", "1", &name],
            Op::Kill => vec!["kill", &name],
            Op::ForceRemove => vec!["rm", "-fv", &name],
        };
        let out = d.docker_within(&args, None, Duration::from_secs(60));
        assert!(
            !out.status.success(),
            "{what}: docker {args:?} succeeded: {}",
            common::out(&out)
        );
        expect_crash(&mut d, point);
        d.spawn();

        assert_host_matches_records(&d, &known, &what);
        let found = d.request("GET", &format!("/containers/{name}/json"), &[]);
        assert_eq!(
            found.status == 200,
            must_exist(point),
            "{what}: {}",
            found.text()
        );
        // No volume without its container: a create that did not finish took its anonymous volume with it,
        // and an interrupted `rm -v` is finished with its volume.
        let used: BTreeSet<String> = d
            .get_json("/containers/json?all=1")
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["Mounts"].as_array().cloned().unwrap_or_default())
            .filter_map(|m| m["Name"].as_str().map(str::to_owned))
            .collect();
        let volumes = d.get_json("/volumes");
        for v in volumes["Volumes"].as_array().into_iter().flatten() {
            let v = v["Name"].as_str().unwrap();
            assert!(
                used.contains(v),
                "{what}: volume {v} left without a container"
            );
        }
        // A new container gets an address on the small network: none leaked.
        create(&d, "probe");
        start(&d, "probe");
        let probe = d.get_json("/containers/probe/json");
        known.insert(probe["Id"].as_str().unwrap().to_owned());
        let ip = &probe["NetworkSettings"]["Networks"][NET]["IPAddress"];
        assert!(
            ip.as_str().is_some_and(|s| !s.is_empty()),
            "{what}: probe address {ip}"
        );
        if found.status == 200 {
            // Whole: its volume exists, and it starts (again) and is removed.
            let c = found.json();
            known.insert(c["Id"].as_str().unwrap().to_owned());
            let volume = c["Mounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["Destination"] == "/data")
                .unwrap_or_else(|| panic!("{what}: no /data volume: {c}"));
            let v = d.request(
                "GET",
                &format!("/volumes/{}", volume["Name"].as_str().unwrap()),
                &[],
            );
            assert_eq!(v.status, 200, "{what}: {}", v.text());
            if c["State"]["Running"] != true {
                start(&d, &name);
            }
            let i = d.get_json(&format!("/containers/{name}/json"));
            assert_eq!(i["State"]["Status"], "running", "{what}");
            let ip2 = &i["NetworkSettings"]["Networks"][NET]["IPAddress"];
            assert!(
                ip2.as_str().is_some_and(|s| !s.is_empty()) && ip2 != ip,
                "{what}: {ip2} {ip}"
            );
        }
        assert_host_matches_records(&d, &known, &what);
        remove_all(&d);
        assert_host_matches_records(&d, &known, &format!("{what}, after rm"));
        assert_eq!(
            common::mounts_under(&d.data_root()),
            Vec::<String>::new(),
            "{what}"
        );
    }
}

// ---- A full disk: a stop whose record cannot be written ----

/// A tmpfs of `size` mounted on `dir` for the test's life (lazily unmounted at the end, whatever happens).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount(8) is needed");
        assert!(st.success(), "mounting a tmpfs on {}", dir.display());
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// Fills the file system holding `path` with one file there; returns how much was written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5au8; 64 << 10];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling {}: {e}", path.display()),
        }
    }
    // Smaller writes take what room the last chunk left.
    while f.write(&[0x5a]).is_ok_and(|k| k == 1) {
        n += 1;
    }
    n
}

/// The `State.Status` a container's record on disk holds.
fn recorded_status(record: &Path) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(record).unwrap()).unwrap();
    let field = |v: &serde_json::Value, name: &str| {
        v.as_object()
            .unwrap()
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {name} in {v}"))
    };
    field(&field(&v, "state"), "status")
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn a_stop_on_a_full_disk_stops_the_container_reports_the_failure_and_records_it_later() {
    common::docker_bin();
    let mut d = Daemon::start();
    d.kill();
    let data = d.data_root();
    std::fs::remove_dir_all(&data).unwrap();
    let tmpfs = Tmpfs::mount(&data, "48m");
    d.spawn();
    d.import_busybox();
    let r = d.request(
        "POST",
        "/containers/create?name=full",
        br#"{"Image":"busybox","Cmd":["sleep","1000"]}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["Id"].as_str().unwrap().to_owned();
    start(&d, "full");
    let pid = d.get_json("/containers/full/json")["State"]["Pid"]
        .as_i64()
        .unwrap();
    let record = state_root(&d)
        .join("containers")
        .join(&id)
        .join("container.json");
    assert_eq!(recorded_status(&record), "running");

    let filler = data.join("filler");
    assert!(fill(&filler) > 0);
    // `docker stop` fails, in Docker's words, where it once said nothing and returned 0.
    let out = d.docker(&["stop", "-t", "1", "full"]);
    let msg = common::err(&out);
    assert!(
        !out.status.success(),
        "a stop whose record cannot be written succeeded"
    );
    assert!(
        msg.contains("Error response from daemon: cannot stop container: full")
            && msg.contains("No space left on device"),
        "{msg}"
    );
    // Stopped for real, and the API says so; the record on disk could not follow yet.
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "the container still runs"
    );
    let state = d.get_json("/containers/full/json")["State"].clone();
    assert_eq!(state["Status"], "exited", "{state}");
    assert_eq!(state["Running"], false, "{state}");
    let ps = d.get_json("/containers/json");
    assert_eq!(ps.as_array().unwrap().len(), 0, "{ps}");
    assert_eq!(recorded_status(&record), "running", "the disk was not full");
    assert_eq!(
        common::mounts_under(&state_root(&d).join("containers")),
        Vec::<String>::new()
    );

    // Room again: the record is written without another request.
    std::fs::remove_file(&filler).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorded_status(&record) != "exited" {
        assert!(
            Instant::now() < deadline,
            "the record was never written: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // A restart finds it exited, and it starts and is removed as any other.
    d.kill();
    d.spawn();
    assert_eq!(
        d.get_json("/containers/full/json")["State"]["Status"],
        "exited"
    );
    start(&d, "full");
    let r = d.request("DELETE", "/containers/full?force=1", &[]);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(common::mounts_under(&data), Vec::<String>::new());
    d.kill();
    drop(tmpfs);
}
