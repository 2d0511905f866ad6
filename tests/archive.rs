//! `docker cp`, `docker diff` and `docker export` end to end with the real docker CLI, including attempts to
//! make a copy leave the container through its own symlinks or a hostile tar.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::Daemon;
use common::{err, ok, out};

/// Names inside a tar stream.
fn tar_names(data: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(data);
    a.entries()
        .unwrap()
        .map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned())
        .collect()
}

/// One regular file's content from a tar stream.
fn tar_file(data: &[u8], name: &str) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut a = tar::Archive::new(data);
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        if e.path_bytes().as_ref() == name.as_bytes() {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            return Some(v);
        }
    }
    None
}

/// Waits until `path` exists in the container (a detached shell is still setting things up).
fn wait_for(d: &Daemon, ctr: &str, path: &str) {
    for _ in 0..100 {
        if d.docker(&["cp", &format!("{ctr}:{path}"), "-"])
            .status
            .success()
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{path} never appeared in {ctr}");
}

#[test]
fn cp_copies_files_and_directories_both_ways_on_running_and_stopped_containers() {
    let d = common::docker_daemon();
    let host = d.dir.path().join("host");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("hello.txt"), b"hello from the host\n").unwrap();
    std::fs::write(host.join("tree/a.txt"), b"a\n").unwrap();
    std::fs::write(host.join("tree/sub/b.txt"), b"b\n").unwrap();
    let h = |p: &str| host.join(p).display().to_string();

    // Running container.
    ok(&d.docker(&["run", "-d", "--name", "run1", "busybox", "sleep", "1000"]));
    ok(&d.docker(&["cp", &h("hello.txt"), "run1:/tmp/"]));
    ok(&d.docker(&["cp", &h("tree"), "run1:/tmp/tree"]));
    ok(&d.docker(&["cp", "run1:/tmp/hello.txt", &h("back.txt")]));
    assert_eq!(
        std::fs::read(host.join("back.txt")).unwrap(),
        b"hello from the host\n"
    );
    ok(&d.docker(&["cp", "run1:/tmp/tree", &h("tree-back")]));
    assert_eq!(
        std::fs::read(host.join("tree-back/sub/b.txt")).unwrap(),
        b"b\n"
    );
    // `dir/.` copies the contents into an existing directory.
    std::fs::create_dir(host.join("contents")).unwrap();
    ok(&d.docker(&["cp", "run1:/tmp/tree/.", &h("contents")]));
    assert!(host.join("contents/a.txt").is_file());
    assert!(host.join("contents/sub/b.txt").is_file());
    // `-` streams a tar whose entries are named from the requested path.
    let o = d.docker(&["cp", "run1:/etc/passwd", "-"]);
    assert_eq!(tar_names(&o.stdout), ["passwd"]);
    let o = d.docker(&["cp", "run1:/tmp/tree", "-"]);
    assert_eq!(
        tar_names(&o.stdout),
        ["tree/", "tree/a.txt", "tree/sub/", "tree/sub/b.txt"]
    );
    // Errors in Docker's words.
    let o = d.docker(&["cp", "run1:/nonexistent", &h("x")]);
    assert!(!o.status.success());
    assert_eq!(
        err(&o).trim(),
        "Error response from daemon: Could not find the file /nonexistent in container run1"
    );
    let o = d.docker(&["cp", &h("hello.txt"), "run1:/nonexistent/dir/"]);
    assert!(!o.status.success(), "{}", out(&o));
    // A file over a directory is refused (the CLI asks for noOverwriteDirNonDir).
    std::fs::create_dir(host.join("other")).unwrap();
    std::fs::write(host.join("other/sub"), b"not a dir").unwrap();
    let o = d.docker(&["cp", &h("other/sub"), "run1:/tmp/tree/"]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(
        err(&o).contains("cannot overwrite directory"),
        "{}",
        err(&o)
    );
    // A directory over a file is refused by the CLI itself.
    let o = d.docker(&["cp", &h("tree"), "run1:/tmp/hello.txt"]);
    assert!(!o.status.success(), "{}", out(&o));

    // Created (never started) container: files copied in are there when it starts.
    ok(&d.docker(&[
        "create",
        "--name",
        "stopped1",
        "busybox",
        "cat",
        "/srv/tree/sub/b.txt",
        "/tmp/hello.txt",
    ]));
    ok(&d.docker(&["cp", &h("hello.txt"), "stopped1:/tmp/hello.txt"]));
    let o = d.docker(&["cp", &h("tree"), "stopped1:/srv/tree"]);
    // /srv does not exist: Docker says so.
    assert!(!o.status.success());
    ok(&d.docker(&["cp", &h("tree"), "stopped1:/tmp/"]));
    ok(&d.docker(&["cp", "stopped1:/tmp/tree/a.txt", &h("a-back.txt")]));
    assert_eq!(std::fs::read(host.join("a-back.txt")).unwrap(), b"a\n");
    // The rootfs is not left mounted after a copy.
    let id = ok(&d.docker(&["inspect", "-f", "{{.Id}}", "stopped1"]));
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(id.trim()), "rootfs left mounted");
    // Exited container.
    ok(&d.docker(&["run", "--name", "exited1", "busybox", "true"]));
    ok(&d.docker(&["cp", &h("tree"), "exited1:/root/"]));
    let o = d.docker(&["cp", "exited1:/root/tree/sub/b.txt", "-"]);
    assert_eq!(tar_file(&o.stdout, "b.txt").unwrap(), b"b\n");
}

#[test]
fn cp_stat_header_and_put_speak_the_api() {
    let d = common::docker_daemon();
    ok(&d.docker(&["create", "--name", "cc", "busybox"]));
    let r = d.request("HEAD", "/containers/cc/archive?path=/etc/passwd", &[]);
    assert_eq!(r.status, 200);
    let stat = r.header("X-Docker-Container-Path-Stat").unwrap().to_owned();
    let o = std::process::Command::new("base64")
        .arg("-d")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(stat.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["name"], "passwd");
    assert_eq!(v["size"], 30);
    assert_eq!(v["mode"], 0o644);
    assert_eq!(v["mtime"], "2023-11-14T22:13:20Z");
    assert_eq!(v["linkTarget"], "");
    let r = d.request("HEAD", "/containers/cc/archive?path=/bin/sh", &[]);
    let stat = r.header("X-Docker-Container-Path-Stat").unwrap();
    assert!(!stat.is_empty());
    let r = d.request("HEAD", "/containers/cc/archive?path=/nope", &[]);
    assert_eq!(r.status, 404);
    let r = d.request("PUT", "/containers/cc/archive?path=/etc/passwd", b"");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], "extraction point is not a directory");
    let r = d.request("PUT", "/containers/cc/archive?path=/nope", b"");
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["message"],
        "Could not find the file /nope in container cc"
    );
    // copyUIDGID gives entries the container user's ids; without it the tar's own are kept.
    ok(&d.docker(&["create", "--name", "ug", "--user", "1234:5678", "busybox"]));
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o640);
    h.set_uid(42);
    h.set_gid(43);
    h.set_cksum();
    b.append_data(&mut h, "owned", &b"x"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    for (q, want) in [("copyUIDGID=1", (1234, 5678)), ("copyUIDGID=0", (42, 43))] {
        let r = d.request(
            "PUT",
            &format!("/containers/ug/archive?path=/tmp&{q}"),
            &tar,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let r = d.request("GET", "/containers/ug/archive?path=/tmp/owned", &[]);
        let mut a = tar::Archive::new(&r.body[..]);
        let e = a.entries().unwrap().next().unwrap().unwrap();
        let got = (e.header().uid().unwrap(), e.header().gid().unwrap());
        assert_eq!(got, want, "{q}");
        assert_eq!(e.header().mode().unwrap(), 0o640);
    }
    let r = d.request("GET", "/containers/nosuch/archive?path=/", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "No such container: nosuch");
}

/// A raw tar whose names are written as given (`..` and absolute names survive).
fn hostile_tar(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        if let Some(g) = h.as_gnu_mut() {
            g.name[..name.len()].copy_from_slice(name.as_bytes());
            if let Some(l) = link {
                g.linkname[..l.len()].copy_from_slice(l.as_bytes());
            }
        }
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

fn escape_checks(d: &Daemon, ctr: &str, tag: &str) {
    let host = d.dir.path().join(format!("escape-{tag}"));
    std::fs::create_dir_all(&host).unwrap();
    let file = host.join("payload");
    std::fs::write(&file, b"payload").unwrap();
    let name = format!("berth-cp-pwned-{}-{tag}", std::process::id());
    let host_tmp = Path::new("/tmp").join(&name);
    let _ = std::fs::remove_file(&host_tmp);

    // Writes through `/evil -> /` and `/evil2 -> ../../../../` land in the container's /tmp.
    ok(&d.docker(&[
        "cp",
        &file.display().to_string(),
        &format!("{ctr}:/evil/tmp/{name}"),
    ]));
    ok(&d.docker(&[
        "cp",
        &file.display().to_string(),
        &format!("{ctr}:/evil2/tmp/{name}-2"),
    ]));
    assert!(!host_tmp.exists(), "docker cp wrote to the host's /tmp");
    assert!(!Path::new("/tmp").join(format!("{name}-2")).exists());
    let o = d.docker(&["cp", &format!("{ctr}:/tmp/{name}"), "-"]);
    assert_eq!(tar_file(&o.stdout, &name).unwrap(), b"payload");
    let o = d.docker(&["cp", &format!("{ctr}:/tmp/{name}-2"), "-"]);
    assert_eq!(
        tar_file(&o.stdout, &format!("{name}-2")).unwrap(),
        b"payload"
    );

    // Reads through them get the container's file, not the host's.
    for p in [
        "/evil/etc/shadow",
        "/evil2/etc/shadow",
        "/evil2/../../etc/shadow",
    ] {
        let o = d.docker(&["cp", &format!("{ctr}:{p}"), "-"]);
        assert_eq!(
            tar_file(&o.stdout, "shadow").as_deref(),
            Some(&b"container shadow\n"[..]),
            "{p}: {}",
            err(&o)
        );
    }
    // The symlink itself is archived as a symlink; -L follows it inside the container.
    let o = d.docker(&["cp", &format!("{ctr}:/evil"), "-"]);
    assert_eq!(tar_names(&o.stdout), ["evil"]);
    let dest = host.join("followed");
    ok(&d.docker(&[
        "cp",
        "-L",
        &format!("{ctr}:/evil3"),
        &dest.display().to_string(),
    ]));
    assert_eq!(std::fs::read(&dest).unwrap(), b"container shadow\n");

    // A hostile tar through the API: `..` above the destination is refused, nothing lands on the host.
    let escape = format!("../../../../../../tmp/{name}-h");
    let tar = hostile_tar(&[(&escape, tar::EntryType::Regular, b"x", None)]);
    let r = d.request("PUT", &format!("/containers/{ctr}/archive?path=/tmp"), &tar);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("is outside of"));
    assert!(!Path::new("/tmp").join(format!("{name}-h")).exists());
    // Absolute names, a planted symlink to / written through, and a hard link through /evil all stay
    // inside the container.
    let abs = format!("/tmp/{name}-abs");
    let through = format!("root-link/tmp/{name}-planted");
    let hl = format!("{name}-hl");
    let tar = hostile_tar(&[
        (&abs, tar::EntryType::Regular, b"abs", None),
        ("root-link", tar::EntryType::Symlink, b"", Some("/")),
        (&through, tar::EntryType::Regular, b"planted", None),
        (&hl, tar::EntryType::Link, b"", Some("root-link/etc/shadow")),
    ]);
    let r = d.request("PUT", &format!("/containers/{ctr}/archive?path=/srv"), &tar);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!Path::new(&abs).exists());
    assert!(!Path::new("/tmp").join(format!("{name}-planted")).exists());
    let o = d.docker(&["cp", &format!("{ctr}:/srv/tmp/{name}-abs"), "-"]);
    assert!(
        tar_file(&o.stdout, &format!("{name}-abs")).is_some(),
        "{}",
        err(&o)
    );
    let o = d.docker(&["cp", &format!("{ctr}:/tmp/{name}-planted"), "-"]);
    assert_eq!(
        tar_file(&o.stdout, &format!("{name}-planted")).as_deref(),
        Some(&b"planted"[..])
    );
    let o = d.docker(&["cp", &format!("{ctr}:/srv/{hl}"), "-"]);
    assert_eq!(
        tar_file(&o.stdout, &hl).as_deref(),
        Some(&b"container shadow\n"[..])
    );
}

#[test]
fn cp_never_leaves_the_container_through_its_symlinks_or_a_hostile_tar() {
    let d = common::docker_daemon();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "esc",
        "busybox",
        "sh",
        "-c",
        "mkdir -p /srv && echo 'container shadow' > /etc/shadow && ln -s / /evil && ln -s ../../../../ /evil2 && ln -s /evil2/etc/shadow /evil3 && sleep 1000",
    ]));
    wait_for(&d, "esc", "/evil3");
    escape_checks(&d, "esc", "running");
    ok(&d.docker(&["stop", "-t", "0", "esc"]));
    escape_checks(&d, "esc", "stopped");
}

#[test]
fn diff_reports_added_changed_and_deleted_paths_like_docker() {
    let d = common::docker_daemon();
    ok(&d.docker(&[
        "run",
        "--name",
        "changed",
        "busybox",
        "sh",
        "-c",
        "echo x > /new && echo y >> /etc/passwd && rm /bin/true && mkdir -p /srv/app && echo z > /srv/app/f",
    ]));
    let docker = ok(&d.docker(&["diff", "changed"]));
    assert_eq!(
        docker,
        "C /bin\nD /bin/true\nC /etc\nC /etc/passwd\nA /new\nA /srv\nA /srv/app\nA /srv/app/f\n"
    );
    let berth = d.berth(&["diff", "changed"]);
    assert_eq!(ok(&berth), docker);
    let o = d.docker(&["diff", "nosuch"]);
    assert_eq!(
        err(&o).trim(),
        "Error response from daemon: No such container: nosuch"
    );
    let b = d.berth(&["diff", "nosuch"]);
    assert_eq!(err(&b), err(&o));
    // A fresh container has no changes.
    ok(&d.docker(&["create", "--name", "fresh", "busybox"]));
    assert_eq!(ok(&d.docker(&["diff", "fresh"])), "");
}

#[test]
fn export_streams_the_containers_filesystem_and_events_are_published() {
    let d = common::docker_daemon();
    ok(&d.docker(&[
        "run",
        "--name",
        "exp",
        "busybox",
        "sh",
        "-c",
        "echo exported > /root/marker",
    ]));
    let o = d.docker(&["export", "exp"]);
    assert!(o.status.success(), "{}", err(&o));
    let names = tar_names(&o.stdout);
    assert!(names.contains(&"bin/busybox".to_owned()), "{names:?}");
    assert!(names.contains(&"etc/".to_owned()), "{names:?}");
    assert_eq!(tar_file(&o.stdout, "root/marker").unwrap(), b"exported\n");
    let file = d.dir.path().join("exp.tar");
    ok(&d.docker(&["export", "-o", &file.display().to_string(), "exp"]));
    let data = std::fs::read(&file).unwrap();
    assert_eq!(tar_names(&data), names);
    // The berth CLI writes the same archive.
    let bfile = d.dir.path().join("exp-berth.tar");
    ok(&d.berth(&["export", "-o", &bfile.display().to_string(), "exp"]));
    assert_eq!(tar_names(&std::fs::read(&bfile).unwrap()), names);
    // A running container exports its rootfs too.
    ok(&d.docker(&["run", "-d", "--name", "exp2", "busybox", "sleep", "1000"]));
    let o = d.docker(&["export", "exp2"]);
    assert!(tar_names(&o.stdout).contains(&"etc/passwd".to_owned()));

    ok(&d.docker(&["cp", "exp:/root/marker", "-"]));
    let dir = d.dir.path().join("in");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f"), b"f").unwrap();
    ok(&d.docker(&["cp", &dir.join("f").display().to_string(), "exp:/root/"]));
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 1;
    let o = d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &until.to_string(),
        "--filter",
        "container=exp",
        "--format",
        "{{.Action}}",
    ]);
    let actions = ok(&o);
    for a in ["export", "archive-path", "extract-to-dir"] {
        assert!(actions.lines().any(|l| l == a), "{a} missing: {actions}");
    }
}

#[test]
fn berth_cp_behaves_like_docker_cp() {
    let d = common::docker_daemon();
    let host = d.dir.path().join("bhost");
    std::fs::create_dir_all(host.join("tree/sub")).unwrap();
    std::fs::write(host.join("f.txt"), b"file\n").unwrap();
    std::fs::write(host.join("tree/a.txt"), b"a\n").unwrap();
    std::fs::write(host.join("tree/sub/b.txt"), b"b\n").unwrap();
    let h = |p: &str| host.join(p).display().to_string();
    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "bc",
        "busybox",
        "sh",
        "-c",
        "echo 'container shadow' > /etc/shadow && ln -s / /evil && sleep 1000",
    ]));
    wait_for(&d, "bc", "/evil");

    // Into the container: a file into a directory, a file to a new name, a directory, its contents.
    ok(&d.berth(&["cp", &h("f.txt"), "bc:/tmp/"]));
    ok(&d.berth(&["cp", &h("f.txt"), "bc:/tmp/renamed.txt"]));
    ok(&d.berth(&["cp", &h("tree"), "bc:/tmp/tree"]));
    ok(&d.berth(&["cp", &h("tree/."), "bc:/root"]));
    for (p, want) in [
        ("/tmp/f.txt", &b"file\n"[..]),
        ("/tmp/renamed.txt", b"file\n"),
        ("/tmp/tree/sub/b.txt", b"b\n"),
        ("/root/a.txt", b"a\n"),
        ("/root/sub/b.txt", b"b\n"),
    ] {
        let o = d.docker(&["cp", &format!("bc:{p}"), "-"]);
        let leaf = p.rsplit('/').next().unwrap();
        assert_eq!(tar_file(&o.stdout, leaf).as_deref(), Some(want), "{p}");
    }
    // Out of the container, compared with what docker cp makes.
    for (src, name) in [
        ("bc:/tmp/tree", "tree"),
        ("bc:/tmp/tree/.", "contents"),
        ("bc:/tmp/f.txt", "f"),
    ] {
        let by_docker = d.dir.path().join(format!("docker-{name}"));
        let by_berth = d.dir.path().join(format!("berth-{name}"));
        ok(&d.docker(&["cp", src, &by_docker.display().to_string()]));
        ok(&d.berth(&["cp", src, &by_berth.display().to_string()]));
        let list = |p: &Path| {
            let o = std::process::Command::new("find")
                .arg(".")
                .current_dir(p.parent().unwrap())
                .arg("-path")
                .arg(format!("./{}*", p.file_name().unwrap().to_string_lossy()))
                .output()
                .unwrap();
            let mut v: Vec<String> = out(&o)
                .lines()
                .map(|l| l.split_once('-').map_or(l, |x| x.1).to_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(list(&by_berth), list(&by_docker), "{src}");
    }
    // `-` gives the same tar entries as docker's.
    let b = d.berth(&["cp", "bc:/tmp/tree", "-"]);
    let o = d.docker(&["cp", "bc:/tmp/tree", "-"]);
    assert_eq!(tar_names(&b.stdout), tar_names(&o.stdout));
    // And `-` as the source extracts a tar from stdin.
    let tarfile = d.dir.path().join("in.tar");
    std::fs::write(&tarfile, &o.stdout).unwrap();
    let b = d.berth_stdin(&["cp", "-", "bc:/srv/"], Some(&tarfile));
    assert!(!b.status.success(), "/srv does not exist");
    ok(&d.berth_stdin(&["cp", "-", "bc:/root/"], Some(&tarfile)));
    let o = d.docker(&["cp", "bc:/root/tree/sub/b.txt", "-"]);
    assert_eq!(tar_file(&o.stdout, "b.txt").as_deref(), Some(&b"b\n"[..]));
    // Reads through the container's `/evil -> /` get the container's file.
    let shadow = d.dir.path().join("shadow");
    ok(&d.berth(&["cp", "bc:/evil/etc/shadow", &shadow.display().to_string()]));
    assert_eq!(std::fs::read(&shadow).unwrap(), b"container shadow\n");
    // Errors as docker prints them.
    let b = d.berth(&["cp", "bc:/nonexistent", &h("x")]);
    let o = d.docker(&["cp", "bc:/nonexistent", &h("x")]);
    assert_eq!(b.status.code(), o.status.code());
    assert_eq!(err(&b), err(&o));
    let b = d.berth(&["cp", "bc:/a", "bc:/b"]);
    let o = d.docker(&["cp", "bc:/a", "bc:/b"]);
    assert_eq!(err(&b), err(&o));
}

#[test]
fn cp_sees_bind_mounts_of_running_containers_and_respects_read_only() {
    let d = common::docker_daemon();
    let shared = d.dir.path().join("shared");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::write(shared.join("from-host"), b"host data\n").unwrap();
    let file = d.dir.path().join("f");
    std::fs::write(&file, b"f\n").unwrap();
    let f = file.display().to_string();
    let bind = format!("{}:/data", shared.display());
    let ro_bind = format!("{}:/ro:ro", shared.display());
    ok(&d.docker(&[
        "run", "-d", "--name", "mnt", "-v", &bind, "-v", &ro_bind, "busybox", "sleep", "1000",
    ]));
    let o = d.docker(&["cp", "mnt:/data/from-host", "-"]);
    assert_eq!(
        tar_file(&o.stdout, "from-host").as_deref(),
        Some(&b"host data\n"[..])
    );
    ok(&d.docker(&["cp", &f, "mnt:/data/"]));
    assert_eq!(std::fs::read(shared.join("f")).unwrap(), b"f\n");
    let o = d.docker(&["cp", &f, "mnt:/ro/"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("mounted volume is marked read-only"),
        "{}",
        err(&o)
    );
    // The container's /proc is not walked.
    let o = d.docker(&["cp", "mnt:/proc", "-"]);
    assert_eq!(tar_names(&o.stdout), ["proc/"]);
    // Stopped, its binds and volumes are mounted for the copy (in a namespace of the copy's own), both
    // ways, read-only ones still refused, and nothing stays mounted after.
    ok(&d.docker(&["volume", "create", "cpvol"]));
    ok(&d.docker(&[
        "run",
        "--name",
        "stopped-mnt",
        "-v",
        &bind,
        "-v",
        &ro_bind,
        "-v",
        "cpvol:/vol",
        "busybox",
        "sh",
        "-c",
        "echo in the volume > /vol/v",
    ]));
    let o = d.docker(&["cp", "stopped-mnt:/data/from-host", "-"]);
    assert_eq!(
        tar_file(&o.stdout, "from-host").as_deref(),
        Some(&b"host data\n"[..]),
        "{}",
        err(&o)
    );
    let o = d.docker(&["cp", "stopped-mnt:/vol/v", "-"]);
    assert_eq!(
        tar_file(&o.stdout, "v").as_deref(),
        Some(&b"in the volume\n"[..]),
        "{}",
        err(&o)
    );
    std::fs::write(&file, b"g\n").unwrap();
    ok(&d.docker(&["cp", &f, "stopped-mnt:/data/g"]));
    assert_eq!(std::fs::read(shared.join("g")).unwrap(), b"g\n");
    let o = d.docker(&["cp", &f, "stopped-mnt:/ro/"]);
    assert!(
        err(&o).contains("mounted volume is marked read-only"),
        "{}",
        err(&o)
    );
    // The rootfs under the mount point is not what is read: the bind is.
    let o = d.docker(&["cp", "stopped-mnt:/data", "-"]);
    assert!(
        tar_names(&o.stdout).contains(&"data/from-host".to_string()),
        "{:?}",
        tar_names(&o.stdout)
    );
    let id = ok(&d.docker(&["inspect", "-f", "{{.Id}}", "stopped-mnt"]));
    let left = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !left.contains(id.trim()),
        "a mount of the stopped container was left: {left}"
    );
    assert_eq!(
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .matches(&*shared.display().to_string())
            .count(),
        // The running `mnt` container's binds are in its own namespace, not the daemon's.
        0
    );

    ok(&d.docker(&[
        "run",
        "-d",
        "--name",
        "ro",
        "--read-only",
        "busybox",
        "sleep",
        "1000",
    ]));
    let o = d.docker(&["cp", &f, "ro:/tmp/"]);
    assert!(!o.status.success());
    assert_eq!(
        err(&o).trim(),
        "Error response from daemon: container rootfs is marked read-only"
    );
}
