//! `--userns-remap`: root in a container is the first subordinate id of the remap user on the host, layers
//! and containers are stored shifted below `<data-root>/<uid>.<gid>`, and archives (`cp`, `export`,
//! `commit`, `save`) carry the ids the container sees. Driven by the real docker CLI, as dockerd is.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{err, ok, out, Daemon};

fn all(o: &Output) -> String {
    format!("{}{}", out(o), err(o))
}

/// The first range of `user` in a subordinate-id file.
fn first_range(file: &str, user: &str) -> (u32, u32) {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("reading {file}: {e}"));
    text.lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() == 3 && f[0] == user).then(|| (f[1].parse().unwrap(), f[2].parse().unwrap()))
        })
        .unwrap_or_else(|| panic!("{file} has no range for {user}:\n{text}"))
}

/// A daemon remapped onto `dockremap` (made if missing), with busybox, and the host ids of its root.
fn remapped() -> (Daemon, u32, u32) {
    common::docker_bin();
    let d = Daemon::start_with(&["--userns-remap", "default"]);
    d.import_busybox();
    let (uid, _) = first_range("/etc/subuid", "dockremap");
    let (gid, _) = first_range("/etc/subgid", "dockremap");
    (d, uid, gid)
}

/// `(uid, gid)` of a host path, not followed.
fn owner(p: &Path) -> (u32, u32) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("stat {}: {e}", p.display()));
    (m.uid(), m.gid())
}

/// The real (first) uid and gid of a host process, from its status file.
fn process_ids(pid: &str) -> (String, String) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    (field("Uid:"), field("Gid:"))
}

fn docker_root_dir(d: &Daemon) -> PathBuf {
    PathBuf::from(d.get_json("/info")["DockerRootDir"].as_str().unwrap())
}

/// Entries of a tar as (name, uid, gid).
fn tar_owners(tar: &[u8]) -> Vec<(String, u64, u64)> {
    let mut a = tar::Archive::new(tar);
    a.entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let h = e.header();
            (
                e.path().unwrap().to_string_lossy().into_owned(),
                h.uid().unwrap(),
                h.gid().unwrap(),
            )
        })
        .collect()
}

fn owner_in(entries: &[(String, u64, u64)], name: &str) -> (u64, u64) {
    entries
        .iter()
        .find(|(n, _, _)| n.trim_start_matches("./").trim_end_matches('/') == name)
        .map(|&(_, u, g)| (u, g))
        .unwrap_or_else(|| panic!("{name} not in the archive: {entries:?}"))
}

#[test]
fn root_in_a_container_is_the_subordinate_base_on_the_host() {
    let (d, uid, gid) = remapped();
    // docker info: dockerd's security option and data root.
    let info = d.get_json("/info");
    let opts = info["SecurityOptions"].to_string();
    assert!(opts.contains("name=userns"), "{opts}");
    let root = docker_root_dir(&d);
    assert_eq!(root, d.data_root().join(format!("{uid}.{gid}")));
    let o = ok(&d.docker(&[
        "info",
        "--format",
        "{{.DockerRootDir}} {{.SecurityOptions}}",
    ]));
    assert!(
        o.contains(&format!("{uid}.{gid}")) && o.contains("name=userns"),
        "{o}"
    );
    // The data root stays closed to other users; the remapped root's group may search it.
    let meta = std::fs::metadata(d.data_root()).unwrap();
    assert_eq!((meta.mode() & 0o7777, meta.gid()), (0o710, gid));

    let id = ok(&d.docker(&[
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "touch /made-by-root; exec sleep 1000",
    ]));
    let id = id.trim();
    assert_eq!(ok(&d.docker(&["exec", id, "id", "-u"])), "0\n");
    assert_eq!(
        ok(&d.docker(&["exec", id, "cat", "/proc/self/uid_map"]))
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", &uid.to_string(), "65536"]
    );
    let pid = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", id]));
    let (u, g) = process_ids(pid.trim());
    assert_eq!(u, format!("{uid} {uid} {uid} {uid}"));
    assert_eq!(g, format!("{gid} {gid} {gid} {gid}"));

    // What root makes in the container is the base id's on the host.
    let rootfs = root.join("containers").join(id).join("rootfs");
    assert_eq!(owner(&rootfs.join("made-by-root")), (uid, gid));
    // The image's root-owned files are stored shifted.
    assert_eq!(owner(&rootfs.join("bin")), (uid, gid));
    // A setuid-root binary made in the container (the host's `id`, copied in) gives the base id, not
    // root, even to the host's root.
    ok(&d.docker(&["cp", "/usr/bin/id", &format!("{id}:/suid-id")]));
    ok(&d.docker(&["exec", id, "chmod", "4755", "/suid-id"]));
    let suid = rootfs.join("suid-id");
    let m = std::fs::metadata(&suid).unwrap();
    assert_eq!((m.uid(), m.mode() & 0o7777), (uid, 0o4755));
    let as_host_root = Command::new(&suid).arg("-u").output().unwrap();
    assert_eq!(ok(&as_host_root), format!("{uid}\n"));
    ok(&d.docker(&["rm", "-f", id]));
}

#[test]
fn userns_host_opts_out_and_dockerds_conflicts_are_refused() {
    let (d, uid, _) = remapped();
    let id = ok(&d.docker(&["run", "-d", "--userns", "host", "busybox", "sleep", "1000"]));
    let id = id.trim();
    let pid = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", id]));
    assert_eq!(process_ids(pid.trim()).0, "0 0 0 0");
    assert_eq!(
        ok(&d.docker(&["exec", id, "cat", "/proc/self/uid_map"]))
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["0", "0", "4294967295"]
    );
    ok(&d.docker(&["rm", "-f", id]));
    // The berth CLI alike.
    let uid_map = |opts: &[&str]| {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox", "cat", "/proc/self/uid_map"]);
        ok(&d.berth(&args))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(uid_map(&["--userns", "host"]), "0 0 4294967295");
    assert_eq!(uid_map(&[]), format!("0 {uid} 65536"));
    // Privileged containers and the host's network or PID namespace need the host's user namespace.
    for (opts, msg) in [
        (
            &["--privileged"][..],
            "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
        ),
        (
            &["--net", "host"][..],
            "cannot share the host's network namespace when user namespaces are enabled",
        ),
        (
            &["--pid", "host"][..],
            "cannot share the host PID namespace when user namespaces are enabled",
        ),
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox", "true"]);
        let o = d.docker(&args);
        assert!(!o.status.success() && all(&o).contains(msg), "{opts:?}: {}", all(&o));
        let mut args = vec!["run", "--rm", "--userns", "host"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox", "id", "-u"]);
        assert_eq!(ok(&d.docker(&args)), "0\n", "{opts:?} with --userns host");
    }
    let o = d.request(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox","HostConfig":{"UsernsMode":"private"}}"#,
    );
    assert_eq!(o.status, 400, "{}", o.text());
    assert!(o.text().contains("invalid USER mode"), "{}", o.text());
    // A volume's data directory is the remapped root's: root in the container writes to it.
    ok(&d.docker(&["volume", "create", "vol"]));
    assert_eq!(
        ok(&d.docker(&[
            "run",
            "--rm",
            "-v",
            "vol:/v",
            "busybox",
            "sh",
            "-c",
            "touch /v/f && stat -c %u /v/f"
        ])),
        "0\n"
    );
    let data = docker_root_dir(&d).join("volumes/vol/_data/f");
    assert_eq!(owner(&data).0, uid);
}

#[test]
fn cp_export_and_commit_carry_the_ids_the_container_sees() {
    let (d, uid, gid) = remapped();
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "mkdir /d && touch /d/root /d/user && chown 1000:2000 /d/user; exec sleep 1000",
    ]));
    let id = id.trim();
    // Wait for the script's files.
    let mut tries = 0;
    while d
        .docker(&["exec", id, "test", "-e", "/d/user"])
        .status
        .code()
        != Some(0)
    {
        tries += 1;
        assert!(tries < 100, "the container never made /d/user");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let rootfs = docker_root_dir(&d)
        .join("containers")
        .join(id)
        .join("rootfs");
    assert_eq!(owner(&rootfs.join("d/user")), (uid + 1000, gid + 2000));

    let o = d.docker(&["cp", &format!("{id}:/d"), "-"]);
    let entries = tar_owners(&o.stdout);
    assert_eq!(owner_in(&entries, "d/root"), (0, 0), "{entries:?}");
    assert_eq!(owner_in(&entries, "d/user"), (1000, 2000), "{entries:?}");
    let o = d.docker(&["export", id]);
    assert!(o.status.success(), "{}", err(&o));
    let entries = tar_owners(&o.stdout);
    assert_eq!(owner_in(&entries, "d/user"), (1000, 2000));
    assert_eq!(owner_in(&entries, "bin"), (0, 0));
    assert_eq!(owner_in(&entries, ".dockerenv"), (0, 0));

    // cp into the container: the archive's ids are the container's.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    h.set_mode(0o644);
    h.set_uid(1234);
    h.set_gid(4321);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, "copied", &b"hi"[..]).unwrap();
    let tar = d.dir.path().join("in.tar");
    std::fs::write(&tar, b.into_inner().unwrap()).unwrap();
    let o = d.docker_stdin(&["cp", "-", &format!("{id}:/d")], Some(&tar));
    assert!(o.status.success(), "{}", all(&o));
    assert_eq!(
        ok(&d.docker(&["exec", id, "stat", "-c", "%u:%g", "/d/copied"])),
        "1234:4321\n"
    );
    assert_eq!(owner(&rootfs.join("d/copied")), (uid + 1234, gid + 4321));

    // commit: the layer carries the container's ids, and a container of the new image sees them again.
    ok(&d.docker(&["commit", id, "committed:1"]));
    ok(&d.docker(&["rm", "-f", id]));
    assert_eq!(
        ok(&d.docker(&[
            "run",
            "--rm",
            "committed:1",
            "stat",
            "-c",
            "%u:%g",
            "/d/user",
            "/d/root"
        ])),
        "1000:2000\n0:0\n"
    );
    let saved = d.dir.path().join("committed.tar");
    ok(&d.docker(&["save", "-o", saved.to_str().unwrap(), "committed:1"]));
    let layers = saved_layers(&saved);
    let top = layers
        .iter()
        .find(|l| l.iter().any(|(n, _, _)| n.ends_with("d/user")))
        .expect("a layer with /d/user");
    assert_eq!(owner_in(top, "d/user"), (1000, 2000));
}

/// The layer tars of a `docker save` archive, each as its entries' owners.
fn saved_layers(saved: &Path) -> Vec<Vec<(String, u64, u64)>> {
    let data = std::fs::read(saved).unwrap();
    let mut a = tar::Archive::new(&data[..]);
    let mut layers = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut body).unwrap();
        // Layers are the members that are tars themselves ("ustar" at offset 257).
        if body.len() > 262 && &body[257..262] == b"ustar" {
            layers.push(tar_owners(&body));
        }
    }
    layers
}

#[test]
fn an_image_loaded_under_remapping_keeps_its_owners_inside() {
    // The image is made without remapping: a file owned by 1000 in its layer.
    let plain = common::docker_daemon();
    let mut b = tar::Builder::new(Vec::new());
    for (name, uid) in [("home/", 0u64), ("home/user-file", 1000), ("root-file", 0)] {
        let mut h = tar::Header::new_gnu();
        let dir = name.ends_with('/');
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_size(0);
        b.append_data(&mut h, name, &b""[..]).unwrap();
    }
    let layer = plain.dir.path().join("layer.tar");
    std::fs::write(&layer, b.into_inner().unwrap()).unwrap();
    ok(&plain.docker_stdin(&["import", "-", "owned:1"], Some(&layer)));
    let saved = plain.dir.path().join("owned.tar");
    ok(&plain.docker(&["save", "-o", saved.to_str().unwrap(), "owned:1"]));

    let (d, uid, gid) = remapped();
    ok(&d.docker(&["load", "-i", saved.to_str().unwrap()]));
    // Run with busybox's files bound in: the image holds no shell.
    let bb = common::which("busybox").expect("busybox-static");
    let bind = format!("{}:/busybox:ro", bb.display());
    assert_eq!(
        ok(&d.docker(&[
            "run",
            "--rm",
            "-v",
            &bind,
            "owned:1",
            "/busybox",
            "stat",
            "-c",
            "%u:%g",
            "/home/user-file",
            "/root-file"
        ])),
        "1000:1000\n0:0\n"
    );
    // Stored shifted on the host, and saved back with the original ids.
    let snapshots = docker_root_dir(&d).join("image/snapshots");
    let found: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs/home/user-file"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(owner(&found[0]), (uid + 1000, gid + 1000));
    let again = d.dir.path().join("again.tar");
    ok(&d.docker(&["save", "-o", again.to_str().unwrap(), "owned:1"]));
    let layers = saved_layers(&again);
    assert_eq!(layers.len(), 1);
    assert_eq!(owner_in(&layers[0], "home/user-file"), (1000, 1000));
}

/// Starts `berth daemon` with `args` on roots below `dir`, and returns what it printed; it must refuse to
/// start (a daemon that does start fails the test after a few seconds instead of hanging it).
fn refused_start(dir: &Path, data_root: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new(common::berth_bin());
    cmd.arg("daemon")
        .args(args)
        .arg("--data-root")
        .arg(data_root)
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("-H")
        .arg(format!("unix://{}", dir.join("s.sock").display()));
    let o = common::output_within(cmd, None, std::time::Duration::from_secs(20));
    assert!(!o.status.success(), "the daemon started: {}", all(&o));
    all(&o)
}

#[test]
fn a_user_without_subordinate_ranges_is_refused_in_dockerds_words() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // `nobody` has no subordinate ranges on a host set up as Debian sets one up.
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    assert!(
        !subuid
            .lines()
            .any(|l| l.starts_with("nobody:") || l.starts_with("65534:")),
        "this host gives nobody subordinate ids: {subuid}"
    );
    let o = refused_start(dir.path(), &data, &["--userns-remap", "nobody:nogroup"]);
    assert!(
        o.contains("error creating ID mappings: no subuid ranges found for user \"nobody\""),
        "{o}"
    );
    // daemon.json's key is read as the flag.
    let config = dir.path().join("daemon.json");
    std::fs::write(&config, r#"{"userns-remap": "nobody:nogroup"}"#).unwrap();
    let o = refused_start(
        dir.path(),
        &data,
        &["--config-file", config.to_str().unwrap()],
    );
    assert!(
        o.contains("no subuid ranges found for user \"nobody\""),
        "{o}"
    );
    let o = refused_start(dir.path(), &data, &["--userns-remap", "a:b:c"]);
    assert!(
        o.contains("Invalid user/group specification in --userns-remap: \"a:b:c\""),
        "{o}"
    );
    // A data root below a directory the remapped root cannot search: every start would fail, so the daemon
    // refuses to start, as dockerd.
    use std::os::unix::fs::PermissionsExt;
    let private = dir.path().join("private");
    std::fs::create_dir(&private).unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = refused_start(
        dir.path(),
        &private.join("data"),
        &["--userns-remap", "default"],
    );
    assert!(
        o.contains("restricts access to the remapped root uid/gid; please fix by allowing 'o+x' permissions on existing directories"),
        "{o}"
    );
}

#[test]
fn builds_store_shifted_layers_in_the_containers_ids() {
    let (d, uid, _) = remapped();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(ctx.join("f"), "x").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN mkdir /made && touch /made/by-root && chown 1000:1000 /made\n\
         COPY f /copied/f\n\
         COPY --chown=1234:1234 f /chowned\n\
         WORKDIR /work/dir\n\
         RUN --mount=type=cache,target=/cache,uid=1000 stat -c %u /cache > /cache-owner\n",
    )
    .unwrap();
    let o = Command::new(common::docker_bin())
        .args(["build", "-t", "built:1"])
        .arg(&ctx)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "0")
        .env_remove("DOCKER_API_VERSION")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", all(&o));
    assert_eq!(
        ok(&d.docker(&[
            "run", "--rm", "built:1", "sh", "-c",
            "stat -c %u:%g /made /made/by-root /copied /copied/f /chowned /work/dir; cat /cache-owner",
        ])),
        "1000:1000\n0:0\n0:0\n0:0\n1234:1234\n0:0\n1000\n"
    );
    // On the host the built layers hold the shifted ids.
    let snapshots = docker_root_dir(&d).join("image/snapshots");
    let chowned: Vec<_> = std::fs::read_dir(&snapshots)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("fs/chowned"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(chowned.len(), 1, "{chowned:?}");
    assert_eq!(owner(&chowned[0]).0, uid + 1234);
}

#[test]
fn build_secrets_reach_a_remapped_step_with_the_ids_it_sees() {
    let (d, _, _) = remapped();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    let secret = d.dir.path().join("tok");
    std::fs::write(&secret, "sekrit-remapped").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok,uid=1000,mode=0440 stat -c '%a %u:%g' /run/secrets/tok > /perm && sed s/sekrit/SEEN/ /run/secrets/tok > /out\n",
    )
    .unwrap();
    let src = format!("id=tok,src={}", secret.display());
    let o = d.berth(&[
        "build",
        "--secret",
        &src,
        "-t",
        "s:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", all(&o));
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "s:1", "cat", "/perm", "/out"])),
        "440 1000:0\nSEEN-remapped"
    );
}

#[test]
fn shared_namespaces_init_and_restarts_work_under_remapping() {
    let (mut d, uid, _) = remapped();
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "--ipc",
        "shareable",
        "busybox",
        "sleep",
        "1000",
    ]));
    let id = id.trim();
    // Joining the donor's network and IPC namespaces joins its user namespace too.
    let uid_map = |d: &Daemon, c: &str| {
        ok(&d.docker(&["exec", c, "cat", "/proc/self/uid_map"]))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let joined = ok(&d.docker(&[
        "run",
        "-d",
        "--net",
        &format!("container:{id}"),
        "--ipc",
        &format!("container:{id}"),
        "busybox",
        "sh",
        "-c",
        "touch /dev/shm/from-joined; exec sleep 1000",
    ]));
    let joined = joined.trim();
    assert_eq!(uid_map(&d, joined), format!("0 {uid} 65536"));
    let ns = |c: &str, n: &str| {
        let pid = ok(&d.docker(&["inspect", "-f", "{{.State.Pid}}", c]));
        std::fs::read_link(format!("/proc/{}/ns/{n}", pid.trim())).unwrap()
    };
    assert_eq!(ns(id, "user"), ns(joined, "user"));
    assert_eq!(ns(id, "net"), ns(joined, "net"));
    let mut tries = 0;
    while d
        .docker(&["exec", id, "test", "-e", "/dev/shm/from-joined"])
        .status
        .code()
        != Some(0)
    {
        tries += 1;
        assert!(tries < 100, "the shared /dev/shm never showed the file");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // --init: the init binary is bound from where the remapped root reaches it.
    assert_eq!(
        ok(&d.docker(&[
            "run",
            "--rm",
            "--init",
            "busybox",
            "sh",
            "-c",
            "id -u; cat /proc/1/comm"
        ])),
        "0\ndocker-init\n"
    );
    // A restarted daemon finds its remapped state and running containers again.
    d.kill();
    d.spawn();
    assert_eq!(uid_map(&d, id), format!("0 {uid} 65536"));
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "busybox", "id", "-u"])),
        "0\n"
    );
}
