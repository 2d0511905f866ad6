//! Volumes end to end, driven by the real docker CLI (and the API) against `berth daemon`: named volumes that
//! outlive containers, anonymous volumes (`-v /x`, the image's `VOLUME`), Docker's copy-up, in-use removal,
//! `rm -v` and `--rm`, prune, driver options, events, `system df`, and the `berth volume` commands compared
//! byte for byte with the docker CLI's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{err, ok, out};
use common::{urlencode, Daemon};
use serde_json::Value;

fn daemon() -> Daemon {
    common::docker_daemon()
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// A busybox rootfs tar with extra entries: `/data` (owned 1000:1000, mode 0750) holding `sub/f.txt` (0640)
/// and a symlink `link -> /etc/passwd`; `/evil`, an absolute symlink to `escape_to` on the host; `/afile`, a
/// regular file.
fn image_tar(d: &Daemon, escape_to: &Path) -> std::path::PathBuf {
    let base = d.dir.path().join("base.tar");
    common::busybox_rootfs_tar(&base);
    let dest = d.dir.path().join("withdata.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&dest).unwrap());
    let mut a = tar::Archive::new(std::fs::File::open(&base).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let path = e.path().unwrap().into_owned();
        if h.entry_type() == tar::EntryType::Symlink {
            let target = e.link_name().unwrap().unwrap().into_owned();
            let mut h = h.clone();
            b.append_link(&mut h, &path, &target).unwrap();
        } else {
            b.append_data(&mut h.clone(), &path, &mut e).unwrap();
        }
    }
    let mut dir = |path: &str, mode: u32, uid: u64| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(uid);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, std::io::empty()).unwrap();
    };
    dir("data/", 0o750, 1000);
    dir("data/sub/", 0o755, 1000);
    let file = |b: &mut tar::Builder<std::fs::File>, path: &str, data: &[u8], mode: u32| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_uid(1000);
        h.set_gid(1000);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, data).unwrap();
    };
    file(&mut b, "data/sub/f.txt", b"from the image\n", 0o640);
    file(&mut b, "afile", b"x", 0o644);
    let link = |b: &mut tar::Builder<std::fs::File>, path: &str, target: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_mtime(1_700_000_000);
        b.append_link(&mut h, path, target).unwrap();
    };
    link(&mut b, "data/link", "/etc/passwd");
    link(&mut b, "evil", escape_to.to_str().unwrap());
    b.finish().unwrap();
    dest
}

/// Imports `image_tar` as `withdata` with `VOLUME`s at `/data`, `/evil` and `/afile` when asked.
fn import(d: &Daemon, name: &str, volumes: &[&str], escape_to: &Path) {
    let tar = image_tar(d, escape_to);
    let mut args = vec!["import".to_owned(), "-c".into(), "CMD [\"sh\"]".into()];
    for v in volumes {
        args.push("-c".into());
        args.push(format!("VOLUME {v}"));
    }
    args.push(tar.display().to_string());
    args.push(name.into());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&d.docker(&args));
}

fn volume_names(d: &Daemon) -> Vec<String> {
    ok(&d.docker(&["volume", "ls", "-q"]))
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_named_volume_keeps_its_data_across_containers_and_is_shown_as_docker_shows_it() {
    let d = daemon();
    ok(&d.docker(&[
        "run",
        "--rm",
        "-v",
        "data:/d",
        "busybox",
        "sh",
        "-c",
        "echo hi > /d/f",
    ]));
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "-v", "data:/d:ro", "busybox", "cat", "/d/f"])),
        "hi\n"
    );
    let v = json(&ok(&d.docker(&["volume", "inspect", "data"])));
    let v = &v[0];
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "CreatedAt",
            "Driver",
            "Labels",
            "Mountpoint",
            "Name",
            "Options",
            "Scope"
        ]
    );
    let mountpoint = d.data_root().join("volumes/data/_data");
    assert_eq!(v["Mountpoint"], mountpoint.display().to_string());
    assert_eq!(
        (v["Driver"].as_str(), v["Scope"].as_str()),
        (Some("local"), Some("local"))
    );
    assert!(v["Labels"].is_null() && v["Options"].is_null(), "{v}");
    assert_eq!(
        std::fs::read_to_string(mountpoint.join("f")).unwrap(),
        "hi\n"
    );

    // Inspect's Mounts for a container using it, exactly as dockerd shows them.
    let id = ok(&d.docker(&[
        "create", "--name", "user", "-v", "data:/d", "busybox", "true",
    ]));
    let mounts = json(&ok(&d.docker(&[
        "inspect",
        "-f",
        "{{json .Mounts}}",
        "user",
    ])));
    assert_eq!(
        mounts,
        serde_json::json!([{
            "Type": "volume", "Name": "data", "Source": mountpoint.display().to_string(),
            "Destination": "/d", "Driver": "local", "Mode": "z", "RW": true, "Propagation": ""
        }])
    );
    // In use (even by a container that never ran): refused with Docker's message and status.
    let o = d.docker(&["volume", "rm", "data"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        err(&o),
        format!(
            "Error response from daemon: remove data: volume is in use - [{}]\n",
            id.trim()
        )
    );
    let r = d.request("DELETE", "/volumes/data?force=1", &[]);
    assert_eq!(r.status, 409, "force does not override use: {}", r.text());
    let ps = ok(&d.docker(&[
        "ps",
        "-a",
        "--filter",
        "volume=data",
        "--format",
        "{{.Names}}",
    ]));
    assert_eq!(ps, "user\n");
    let ps = ok(&d.docker(&[
        "ps",
        "-a",
        "--filter",
        "volume=/d",
        "--format",
        "{{.Names}}",
    ]));
    assert_eq!(ps, "user\n");
    let ps = ok(&d.docker(&["ps", "-a", "--filter", "volume=other", "-q"]));
    assert_eq!(ps, "");
    // rm -v keeps named volumes.
    ok(&d.docker(&["rm", "-v", "user"]));
    assert_eq!(volume_names(&d), ["data"]);
    assert_eq!(ok(&d.docker(&["volume", "rm", "data"])), "data\n");
    assert!(!d.data_root().join("volumes/data").exists());
    let o = d.docker(&["volume", "inspect", "data"]);
    assert_eq!(
        err(&o),
        "Error response from daemon: get data: no such volume\n"
    );
}

#[test]
fn anonymous_volumes_copy_up_and_go_with_rm_v_and_auto_remove() {
    let d = daemon();
    let host = d.dir.path().join("host-secret");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("secret"), "host only").unwrap();
    import(&d, "withdata", &["/data", "/evil"], &host);

    // The image's VOLUME becomes an anonymous volume holding the image's content, owner and modes.
    let o = ok(&d.docker(&[
        "run",
        "--name",
        "c1",
        "withdata",
        "sh",
        "-c",
        "stat -c '%u:%g %a' /data /data/sub/f.txt; cat /data/sub/f.txt; readlink /data/link; ls -A /evil",
    ]));
    assert_eq!(
        o, "1000:1000 750\n1000:1000 640\nfrom the image\n/etc/passwd\n",
        "the symlinked /evil resolved inside the image, not to the host"
    );
    let mounts = json(&ok(&d.docker(&["inspect", "-f", "{{json .Mounts}}", "c1"])));
    let mounts = mounts.as_array().unwrap();
    assert_eq!(mounts.len(), 2);
    for m in mounts {
        let name = m["Name"].as_str().unwrap();
        assert_eq!(name.len(), 64);
        assert!(name.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(m["Mode"], "", "image volumes have no mode");
        let v = json(&ok(&d.docker(&["volume", "inspect", name])));
        assert_eq!(
            v[0]["Labels"],
            serde_json::json!({"com.docker.volume.anonymous": ""})
        );
        let data = Path::new(m["Source"].as_str().unwrap());
        assert!(!data.join("secret").exists(), "host content never copied");
    }
    let data = mounts.iter().find(|m| m["Destination"] == "/data").unwrap();
    let src = Path::new(data["Source"].as_str().unwrap());
    assert!(std::fs::symlink_metadata(src.join("link"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(volume_names(&d).len(), 2);
    ok(&d.docker(&["rm", "-v", "c1"]));
    assert!(
        volume_names(&d).is_empty(),
        "rm -v removed the anonymous volumes"
    );

    // A named volume over the image's VOLUME path: no anonymous volume; filled once, then kept as is.
    ok(&d.docker(&[
        "run",
        "--rm",
        "-v",
        "named:/data",
        "withdata",
        "sh",
        "-c",
        "echo mine > /data/sub/f.txt",
    ]));
    assert_eq!(
        volume_names(&d),
        ["named"],
        "--rm left the named volume only"
    );
    assert_eq!(
        ok(&d.docker(&[
            "run",
            "--rm",
            "-v",
            "named:/data",
            "withdata",
            "cat",
            "/data/sub/f.txt"
        ])),
        "mine\n"
    );
    // nocopy: the image's content stays out.
    assert_eq!(
        ok(&d.docker(&[
            "run",
            "--rm",
            "-v",
            "empty:/data:nocopy",
            "withdata",
            "ls",
            "-A",
            "/data"
        ])),
        ""
    );
    ok(&d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=empty2,target=/data,volume-nocopy",
        "withdata",
        "true",
    ]));
    assert_eq!(
        std::fs::read_dir(d.data_root().join("volumes/empty2/_data"))
            .unwrap()
            .count(),
        0
    );

    // -v /path: an anonymous volume too; --rm removes it.
    ok(&d.docker(&[
        "run",
        "--rm",
        "-v",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "echo x > /scratch/x",
    ]));
    let mut names = volume_names(&d);
    names.sort();
    assert_eq!(names, ["empty", "empty2", "named"]);

    // A VOLUME over a file in the image is refused, as dockerd refuses it.
    import(&d, "badvol", &["/afile"], &host);
    let o = d.docker(&["create", "badvol"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("cannot mount volume over existing file, file exists"),
        "{}",
        err(&o)
    );
    assert_eq!(
        ok(&d.docker(&["ps", "-aq"])),
        "",
        "the failed create left no container"
    );
    assert_eq!(volume_names(&d).len(), 3, "nor a volume");
}

#[test]
fn prune_removes_unused_anonymous_volumes_unless_all_and_events_report_it() {
    let d = daemon();
    ok(&d.docker(&["volume", "create", "--label", "keep=yes", "named1"]));
    ok(&d.docker(&["volume", "create", "named2"]));
    ok(&d.docker(&[
        "create", "--name", "holder", "-v", "/held", "busybox", "true",
    ]));
    let anon = ok(&d.docker(&["volume", "create"])).trim().to_owned();
    assert_eq!(anon.len(), 64);
    let o = ok(&d.docker(&["volume", "prune", "-f"]));
    assert_eq!(
        o,
        format!("Deleted Volumes:\n{anon}\n\nTotal reclaimed space: 0B\n"),
        "only the unused anonymous volume"
    );
    let dangling = ok(&d.docker(&["volume", "ls", "-q", "-f", "dangling=true"]));
    assert_eq!(dangling, "named1\nnamed2\n");
    let o = ok(&d.docker(&["volume", "prune", "-af", "--filter", "label!=keep"]));
    assert_eq!(o, "Deleted Volumes:\nnamed2\n\nTotal reclaimed space: 0B\n");
    // Clients older than API 1.42 get the old prune (all unused local volumes).
    let r = d.request("POST", "/v1.41/volumes/prune", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["VolumesDeleted"], serde_json::json!(["named1"]));
    assert_eq!(volume_names(&d).len(), 1, "the held anonymous volume stays");
    let r = d.request(
        "POST",
        "/volumes/prune?filters=%7B%22all%22%3A%5B%22maybe%22%5D%7D",
        &[],
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "invalid filter 'all': strconv.ParseBool: parsing \"maybe\": invalid syntax"
    );

    let events = ok(&d.docker(&[
        "events",
        "--since",
        "0",
        "--until",
        &format!("{}", chrono_now() + 1),
        "--filter",
        "type=volume",
        "--format",
        "{{.Action}} {{.Actor.ID}}",
    ]));
    for want in [
        "create named1".to_owned(),
        format!("destroy {anon}"),
        "destroy named2".into(),
        "prune ".into(),
    ] {
        assert!(
            events.lines().any(|l| l == want),
            "{want:?} missing from:\n{events}"
        );
    }
    let run_events = {
        ok(&d.docker(&["run", "--rm", "-v", "ev:/e", "busybox", "true"]));
        ok(&d.docker(&[
            "events",
            "--since",
            "0",
            "--until",
            &format!("{}", chrono_now() + 1),
            "--filter",
            "volume=ev",
            "--format",
            "{{.Action}} {{index .Actor.Attributes \"destination\"}}",
        ]))
    };
    assert_eq!(run_events, "create \nmount /e\nunmount \n");
}

fn chrono_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn driver_options_mount_a_tmpfs_while_the_volume_is_used_and_bad_options_are_refused() {
    let d = daemon();
    ok(&d.docker(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=8m",
        "tv",
    ]));
    let v = json(&ok(&d.docker(&["volume", "inspect", "tv"])));
    assert_eq!(
        v[0]["Options"],
        serde_json::json!({"device": "tmpfs", "o": "size=8m", "type": "tmpfs"})
    );
    let data = d.data_root().join("volumes/tv/_data");
    let o = ok(&d.docker(&[
        "run",
        "-d",
        "-v",
        "tv:/t",
        "busybox",
        "sh",
        "-c",
        "echo x > /t/x; exec sleep 100",
    ]));
    let id = o.trim().to_owned();
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(data.to_str().unwrap()))
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !data.join("x").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(mounted(), "mounted while used");
    let o = ok(&d.docker(&["inspect", "-f", "{{.State.Running}}", &id]));
    assert_eq!(o, "true\n");
    ok(&d.docker(&["rm", "-f", &id]));
    assert!(!mounted(), "unmounted after its last user");
    assert!(!data.join("x").exists(), "the data lived in the tmpfs");

    let o = d.docker(&["volume", "create", "-o", "foo=bar", "badopt"]);
    assert_eq!(
        err(&o),
        "Error response from daemon: create badopt: invalid option: \"foo\"\n"
    );
    let o = d.docker(&["volume", "create", "-o", "type=tmpfs", "half"]);
    assert_eq!(
        err(&o),
        "Error response from daemon: create half: missing required option: \"device\"\n"
    );
    let o = d.docker(&["volume", "create", "bad/name"]);
    assert!(
        err(&o).contains("includes invalid characters for a local volume name"),
        "{}",
        err(&o)
    );
    // (`-v x:/d` would be a Windows drive letter to the docker CLI.)
    let o = d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=x,target=/d",
        "busybox",
        "true",
    ]);
    assert!(err(&o).contains("volume name is too short"), "{}", err(&o));
    let o = d.docker(&["volume", "create", "-d", "nfsplugin", "pv"]);
    assert_eq!(
        err(&o),
        "Error response from daemon: create pv: error looking up volume plugin nfsplugin: plugin \"nfsplugin\" not found\n"
    );
    assert_eq!(volume_names(&d), ["tv"]);
}

#[test]
fn the_api_answers_with_dockers_shapes_and_statuses() {
    let d = daemon();
    let r = d.request(
        "POST",
        "/volumes/create",
        br#"{"Name":"apivol","Labels":{"a":"1"},"DriverOpts":{}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let v = r.json();
    assert_eq!(v["Labels"], serde_json::json!({"a": "1"}));
    assert_eq!(v["Options"], serde_json::json!({}));
    // Creating it again answers the existing volume.
    let r = d.request("POST", "/volumes/create", br#"{"Name":"apivol"}"#);
    assert_eq!(
        (r.status, r.json()["Labels"]["a"].as_str()),
        (201, Some("1"))
    );
    let list = d.get_json("/volumes");
    assert!(list["Warnings"].is_null());
    assert_eq!(list["Volumes"].as_array().unwrap().len(), 1);
    let f = |q: &str| {
        d.get_json(&format!("/volumes?filters={}", urlencode(q)))["Volumes"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(f(r#"{"label":["a=1"]}"#), 1);
    assert_eq!(f(r#"{"label":["a=2"]}"#), 0);
    assert_eq!(f(r#"{"name":["pivo"]}"#), 1);
    assert_eq!(f(r#"{"driver":["local"]}"#), 1);
    assert_eq!(f(r#"{"dangling":["false"]}"#), 0);
    let r = d.request(
        "GET",
        "/volumes?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
        &[],
    );
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (400, Some("invalid filter 'bogus'"))
    );
    let r = d.request("GET", "/volumes/nope", &[]);
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (404, Some("get nope: no such volume"))
    );
    assert_eq!(d.request("DELETE", "/volumes/nope", &[]).status, 404);
    assert_eq!(
        d.request("DELETE", "/volumes/nope?force=1", &[]).status,
        204
    );
    assert_eq!(
        d.request("PUT", "/volumes/apivol?version=1", b"{}").status,
        503
    );

    // system df: volumes with their size and reference count.
    ok(&d.docker(&[
        "run",
        "--rm",
        "-v",
        "apivol:/v",
        "busybox",
        "sh",
        "-c",
        "printf 12345 > /v/f",
    ]));
    ok(&d.docker(&["create", "-v", "apivol:/v", "busybox", "true"]));
    let df = d.get_json("/system/df");
    let vols = df["Volumes"].as_array().unwrap();
    assert_eq!(vols.len(), 1);
    assert_eq!(
        vols[0]["UsageData"],
        serde_json::json!({"Size": 5, "RefCount": 1})
    );
    let o = ok(&d.docker(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}} {{.Size}}",
    ]));
    assert!(o.contains("Local Volumes 1 1 5B"), "{o}");
}

#[test]
fn berth_volume_commands_print_what_docker_prints() {
    let d = daemon();
    for (name, extra) in [
        ("vol10", &["--label", "x=1"][..]),
        ("vol2", &["--label", "a=b"][..]),
        ("alpha", &[][..]),
    ] {
        let mut args = vec!["volume", "create"];
        args.extend_from_slice(extra);
        args.push(name);
        assert_eq!(ok(&d.berth(&args)), format!("{name}\n"));
    }
    ok(&d.docker(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "opts",
    ]));
    ok(&d.docker(&[
        "create", "--name", "holder", "-v", "vol2:/x", "-v", "/anon", "busybox", "true",
    ]));
    let same = |args: &[&str]| {
        let b = d.berth(args);
        let k = d.docker(args);
        assert_eq!(
            (out(&b), err(&b), b.status.code()),
            (out(&k), err(&k), k.status.code()),
            "berth vs docker: {args:?}"
        );
    };
    same(&["volume", "ls"]);
    same(&["volume", "ls", "-q"]);
    same(&["volume", "ls", "--format", "json"]);
    same(&[
        "volume",
        "ls",
        "--format",
        "table {{.Name}}\t{{.Labels}}\t{{.Scope}}",
    ]);
    same(&[
        "volume",
        "ls",
        "--format",
        "{{.Name}} {{.Mountpoint}} {{.Links}} {{.Size}}",
    ]);
    same(&["volume", "ls", "-f", "dangling=true"]);
    // (One label each: docker 28's LABELS column joins them in Go's random map order.)
    same(&["volume", "ls", "-f", "label=x=1", "-f", "name=vol"]);
    same(&["volume", "ls", "-f", "nope=1"]);
    same(&["volume", "inspect", "vol2", "opts"]);
    same(&[
        "volume",
        "inspect",
        "--format",
        "{{.Name}} {{json .Labels}}",
        "vol10",
    ]);
    same(&["volume", "inspect", "missing", "alpha"]);
    let volumes_section = |o: &std::process::Output| {
        let text = ok(o);
        let start = text
            .find("Local Volumes space usage")
            .expect("volume section");
        let end = text.find("Build cache usage").expect("build cache section");
        text[start..end].to_owned()
    };
    let berth_df = volumes_section(&d.berth(&["system", "df", "-v"]));
    assert_eq!(
        berth_df,
        volumes_section(&d.docker(&["system", "df", "-v"]))
    );
    assert!(berth_df.contains("vol2"), "{berth_df}");
    same(&["volume", "rm", "vol2"]);
    same(&["volume", "rm", "missing"]);
    same(&["volume", "create", "--name", "a", "b"]);
    same(&["volume", "create", "-o", "bogus=1", "bogusvol"]);
    // Commands that change state: each side on its own volumes.
    assert_eq!(
        ok(&d.berth(&["volume", "rm", "-f", "vol10", "gone"])),
        "vol10\ngone\n"
    );
    ok(&d.docker(&["volume", "create", "--label", "p=1", "pa"]));
    ok(&d.docker(&["volume", "create", "--label", "p=1", "pb"]));
    let berth_prune = ok(&d.berth(&["volume", "prune", "-a", "-f", "--filter", "label=p=1"]));
    ok(&d.docker(&["volume", "create", "--label", "p=1", "pa"]));
    ok(&d.docker(&["volume", "create", "--label", "p=1", "pb"]));
    let docker_prune = ok(&d.docker(&["volume", "prune", "-a", "-f", "--filter", "label=p=1"]));
    assert_eq!(berth_prune, docker_prune);
    assert_eq!(
        berth_prune,
        "Deleted Volumes:\npa\npb\n\nTotal reclaimed space: 0B\n"
    );
    same(&["volume", "prune", "-f"]);
    same(&["volume", "prune", "-a", "-f", "--filter", "all=1"]);
    let no = d.dir.path().join("no.txt");
    std::fs::write(&no, "n\n").unwrap();
    let b = d.berth_stdin(&["volume", "prune"], Some(&no));
    let k = d.docker_stdin(&["volume", "prune"], Some(&no));
    assert_eq!((out(&b), b.status.code()), (out(&k), k.status.code()));
}

#[test]
fn references_and_mounts_survive_a_daemon_restart() {
    let mut d = daemon();
    ok(&d.docker(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "kept",
    ]));
    let id = ok(&d.docker(&[
        "run",
        "-d",
        "-v",
        "kept:/k",
        "-v",
        "/anon",
        "busybox",
        "sh",
        "-c",
        "echo alive > /k/x; exec sleep 100",
    ]))
    .trim()
    .to_owned();
    let data = d.data_root().join("volumes/kept/_data");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !data.join("x").exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    d.kill();
    d.spawn();
    // The container still runs on its (still mounted) tmpfs volume, and still holds its volumes.
    assert_eq!(std::fs::read_to_string(data.join("x")).unwrap(), "alive\n");
    let o = d.docker(&["volume", "rm", "kept"]);
    assert!(err(&o).contains("volume is in use"), "{}", err(&o));
    assert_eq!(volume_names(&d).len(), 2);
    ok(&d.docker(&["rm", "-f", "-v", &id]));
    assert!(
        !data.join("x").exists(),
        "the last user's exit unmounted the tmpfs"
    );
    assert_eq!(
        volume_names(&d),
        ["kept"],
        "rm -v took the anonymous volume"
    );
    assert_eq!(ok(&d.docker(&["volume", "rm", "kept"])), "kept\n");
}

/// `--volumes-from X[:ro]` brings X's volumes and binds (with X's or a read-only mode), from either CLI; the
/// volumes count as in use by the new container.
#[test]
fn volumes_from_brings_another_containers_volumes_and_binds() {
    let d = daemon();
    let host = d.dir.path().join("hostdir");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("h"), "from the host\n").unwrap();
    let bind = format!("{}:/host:ro", host.display());
    ok(&d.docker(&["volume", "create", "vf"]));
    ok(&d.docker(&[
        "run",
        "--name",
        "src",
        "-v",
        "vf:/data",
        "-v",
        &bind,
        "--tmpfs",
        "/scratch",
        "busybox",
        "sh",
        "-c",
        "echo from the volume > /data/f",
    ]));
    let probe =
        "cat /data/f /host/h; touch /data/new && echo data-rw; touch /host/x || echo host-ro; \
                 grep -c ' /scratch ' /proc/mounts";
    for cli in ["docker", "berth"] {
        let args = [
            "run",
            "--rm",
            "--volumes-from",
            "src",
            "busybox",
            "sh",
            "-c",
            probe,
        ];
        let o = if cli == "docker" {
            d.docker(&args)
        } else {
            d.berth(&args)
        };
        let text = out(&o);
        assert!(
            text.starts_with("from the volume\nfrom the host\ndata-rw\nhost-ro\n0\n"),
            "{cli}: {text} {}",
            err(&o)
        );
    }
    // :ro makes the volume read-only too.
    let o = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "src:ro",
        "busybox",
        "touch",
        "/data/g",
    ]);
    assert!(err(&o).contains("Read-only file system"), "{}", err(&o));

    // inspect shows the inherited mounts; the volume is in use while the container exists.
    let id = out(&d.docker(&["create", "--volumes-from", "src", "busybox"]))
        .trim()
        .to_owned();
    let mounts = json(&out(&d.docker(&["inspect", "-f", "{{json .Mounts}}", &id])));
    let find = |dest: &str| {
        mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == dest)
            .cloned()
    };
    let data = find("/data").expect("/data inherited");
    assert_eq!(
        (
            data["Type"].as_str(),
            data["Name"].as_str(),
            data["RW"].as_bool()
        ),
        (Some("volume"), Some("vf"), Some(true))
    );
    let h = find("/host").expect("/host inherited");
    assert_eq!(
        (h["Type"].as_str(), h["RW"].as_bool()),
        (Some("bind"), Some(false))
    );
    assert!(
        find("/scratch").is_none(),
        "tmpfs mounts are not inherited: {mounts}"
    );
    assert_eq!(
        out(&d.docker(&["inspect", "-f", "{{json .HostConfig.VolumesFrom}}", &id])).trim(),
        r#"["src"]"#
    );
    ok(&d.docker(&["rm", "src"]));
    let o = d.docker(&["volume", "rm", "vf"]);
    assert!(err(&o).contains("volume is in use"), "{}", err(&o));
    ok(&d.docker(&["rm", &id]));
    ok(&d.docker(&["volume", "rm", "vf"]));

    // A missing donor is a 404, as from dockerd (on which the docker CLI then tries to pull the image).
    let r = d.request(
        "POST",
        "/containers/create",
        br#"{"Image":"busybox","HostConfig":{"VolumesFrom":["nope"]}}"#,
    );
    assert_eq!(
        (r.status, r.json()["message"].as_str()),
        (404, Some("No such container: nope"))
    );
}

#[test]
fn cp_into_a_created_containers_volumes_writes_into_the_volumes() {
    let d = daemon();
    let host = d.dir.path().join("host-secret");
    std::fs::create_dir(&host).unwrap();
    import(&d, "withdata", &["/data"], &host);
    // Never started: its volumes exist from create on, and cp resolves paths through them.
    ok(&d.docker(&[
        "create",
        "--name",
        "cc",
        "-v",
        "/anon",
        "withdata",
        "sh",
        "-c",
        "cat /data/hello /anon/hello /data/sub/f.txt",
    ]));
    let file = d.dir.path().join("hello");
    std::fs::write(&file, "copied before the first start\n").unwrap();
    let f = file.to_str().unwrap();
    ok(&d.docker(&["cp", f, "cc:/data/hello"]));
    ok(&d.docker(&["cp", f, "cc:/anon/"]));
    let mounts = json(&ok(&d.docker(&["inspect", "-f", "{{json .Mounts}}", "cc"])));
    for dest in ["/data", "/anon"] {
        let m = mounts
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["Destination"] == dest)
            .unwrap_or_else(|| panic!("no volume at {dest}: {mounts}"));
        let src = Path::new(m["Source"].as_str().unwrap());
        assert_eq!(
            std::fs::read_to_string(src.join("hello")).unwrap(),
            "copied before the first start\n",
            "{dest}: the file is in the volume"
        );
    }
    // Read back through the API of the still-created container, then by its process.
    let back = d.docker(&["cp", "cc:/anon/hello", "-"]);
    assert!(back.status.success(), "{}", err(&back));
    assert!(String::from_utf8_lossy(&back.stdout).contains("copied before the first start"));
    let o = ok(&d.docker(&["start", "-a", "cc"]));
    assert_eq!(
        o,
        "copied before the first start\ncopied before the first start\nfrom the image\n"
    );
    // Nothing went into the container's own layer.
    let diff = ok(&d.docker(&["diff", "cc"]));
    assert!(!diff.contains("hello"), "{diff}");
}

#[test]
fn a_volume_on_etc_keeps_the_engines_etc_files_and_dockerenv_exists() {
    let d = daemon();
    let o = ok(&d.docker(&[
        "run",
        "--rm",
        "-v",
        "etcvol:/etc",
        "-h",
        "myhost",
        "--add-host",
        "extra.test:10.1.2.3",
        "--dns",
        "127.0.0.1",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hostname; grep extra.test /etc/hosts; cat /etc/resolv.conf; grep -c root /etc/passwd",
    ]));
    assert_eq!(
        o, "myhost\n10.1.2.3\textra.test\nnameserver 127.0.0.1\n1\n",
        "the volume (with the image's /etc copied up) is under the engine's files"
    );
    // The volume holds the image's /etc, not the engine's files.
    let v = json(&ok(&d.docker(&["volume", "inspect", "etcvol"])));
    let data = Path::new(v[0]["Mountpoint"].as_str().unwrap());
    assert!(data.join("passwd").exists());
    let hostname = std::fs::read_to_string(data.join("hostname")).unwrap_or_default();
    assert_ne!(hostname, "myhost\n");

    // /.dockerenv: an empty file in every container, left out of docker diff as dockerd's init layer is.
    let o = ok(&d.docker(&[
        "run",
        "--name",
        "env",
        "busybox",
        "stat",
        "-c",
        "%s %a %F",
        "/.dockerenv",
    ]));
    assert_eq!(o, "0 755 regular empty file\n");
    // It is there from create on, as in dockerd's init layer.
    ok(&d.docker(&["create", "--name", "fresh", "busybox"]));
    let o = d.docker(&["cp", "fresh:/.dockerenv", "-"]);
    assert!(o.status.success(), "{}", err(&o));
    let diff = ok(&d.docker(&["diff", "env"]));
    assert!(!diff.contains("dockerenv"), "{diff}");
}
