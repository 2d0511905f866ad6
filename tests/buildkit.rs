//! BuildKit mode: `docker build` with `DOCKER_BUILDKIT=1` opens a session (`POST /session`, HTTP/2 on the
//! hijacked connection) and Berth fetches the context, the Dockerfile and secrets over it, then builds as
//! the classic builder does and reports progress as BuildKit's records, which the CLI draws.
//!
//! Driven by Debian's docker 20.10 CLI (`/usr/bin/docker`, from `docker.io`): its BuildKit client is built
//! in. Docker 23 and later hand BuildKit to the buildx plugin, which this machine does not have.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{err, ok, out, urlencode, Daemon};

/// Debian's docker 20.10 CLI; fails the test when it is missing (`.ci/run` installs `docker.io`).
fn docker20() -> PathBuf {
    let p = PathBuf::from("/usr/bin/docker");
    let v = Command::new(&p)
        .arg("--version")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}: .ci/run installs Debian's docker.io", p.display()));
    let v = out(&v);
    assert!(
        v.contains(" 20.10."),
        "{} is not docker 20.10: {v}",
        p.display()
    );
    p
}

/// `docker build ARGS…` in BuildKit mode, run in `dir`, with plain progress.
fn bk_build(d: &Daemon, dir: &Path, args: &[&str]) -> Output {
    Command::new(docker20())
        .arg("build")
        .arg("--progress=plain")
        .args(args)
        .current_dir(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "1")
        .env_remove("DOCKER_API_VERSION")
        .env_remove("BUILDKIT_PROGRESS")
        .output()
        .unwrap()
}

fn image_id(d: &Daemon, r: &str) -> String {
    d.image_id(r)
}

/// Bytes no compression or dedup could fake: a xorshift stream.
fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn md5(data: &[u8], dir: &Path) -> String {
    let f = dir.join("md5-input");
    std::fs::write(&f, data).unwrap();
    let o = Command::new("md5sum").arg(&f).output().unwrap();
    out(&o).split_whitespace().next().unwrap().to_owned()
}

#[test]
fn buildkit_mode_builds_the_shared_context_with_progress_and_the_cache() {
    let d = common::docker_daemon();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("sub/deep")).unwrap();
    // 3 MiB: many data packets, asked for ahead of the files after it.
    let big = noise(3 << 20, 7);
    std::fs::write(ctx.join("big.bin"), &big).unwrap();
    std::fs::write(ctx.join("exec.sh"), "#!/bin/sh\necho run\n").unwrap();
    std::fs::set_permissions(ctx.join("exec.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink("exec.sh", ctx.join("link")).unwrap();
    std::fs::hard_link(ctx.join("exec.sh"), ctx.join("hard")).unwrap();
    std::fs::write(ctx.join("sub/deep/f"), "deep v1\n").unwrap();
    std::fs::write(ctx.join("empty"), "").unwrap();
    std::fs::write(ctx.join("skip.log"), "left out by .dockerignore\n").unwrap();
    std::fs::write(ctx.join(".dockerignore"), "*.log\n").unwrap();
    // The Dockerfile is outside the context: the CLI shares its directory apart.
    let df_dir = d.dir.path().join("df");
    std::fs::create_dir_all(&df_dir).unwrap();
    let dockerfile = df_dir.join("Dockerfile");
    std::fs::write(
        &dockerfile,
        "FROM busybox\n\
         COPY . /app\n\
         RUN cd /app && stat -c '%n %a %s %h' big.bin exec.sh hard empty sub/deep/f > /stats \
             && readlink link > /linktarget && md5sum big.bin > /md5 && ls -A /app > /listing \
             && echo step output here\n",
    )
    .unwrap();
    let iid = d.dir.path().join("iid");
    let args = [
        "-t",
        "bk:1",
        "-f",
        dockerfile.to_str().unwrap(),
        "--iidfile",
        iid.to_str().unwrap(),
        ".",
    ];
    let first = bk_build(&d, &ctx, &args);
    let progress = err(&first);
    assert!(first.status.success(), "{progress}\n{}", d.log());
    for want in [
        "[1/3] FROM busybox",
        "[2/3] COPY . /app",
        "[3/3] RUN cd /app",
        "step output here",
        "exporting to image",
        "naming to bk:1",
    ] {
        assert!(progress.contains(want), "no {want:?} in:\n{progress}");
    }
    assert!(!progress.contains("CACHED"), "{progress}");
    let id = image_id(&d, "bk:1");
    assert_eq!(std::fs::read_to_string(&iid).unwrap().trim(), id);
    // The whole ID, as BuildKit writes it.
    assert!(
        progress.contains(&format!("writing image {id}")),
        "{progress}"
    );

    let cat = |file: &str| ok(&d.docker(&["run", "--rm", "bk:1", "cat", file]));
    assert_eq!(
        cat("/stats"),
        format!(
            "big.bin 644 {} 1\nexec.sh 755 19 2\nhard 755 19 2\nempty 644 0 1\nsub/deep/f 644 8 1\n",
            3 << 20
        )
    );
    assert_eq!(cat("/linktarget"), "exec.sh\n");
    assert_eq!(
        cat("/md5"),
        format!("{}  big.bin\n", md5(&big, d.dir.path()))
    );
    assert_eq!(
        cat("/listing"),
        ".dockerignore\nbig.bin\nempty\nexec.sh\nhard\nlink\nsub\n",
        "the context as shared, less what .dockerignore leaves out"
    );

    // Unchanged: every step from the cache, the same image.
    let again = bk_build(&d, &ctx, &args);
    let progress = err(&again);
    assert!(again.status.success(), "{progress}");
    assert_eq!(progress.matches("CACHED").count(), 2, "{progress}");
    assert_eq!(image_id(&d, "bk:1"), id);

    // A changed file misses from the COPY on.
    std::fs::write(ctx.join("sub/deep/f"), "deep v2\n").unwrap();
    let changed = bk_build(&d, &ctx, &args);
    let progress = err(&changed);
    assert!(changed.status.success(), "{progress}");
    assert!(!progress.contains("CACHED"), "{progress}");
    assert_ne!(image_id(&d, "bk:1"), id);

    // `-q` prints the ID alone, on stdout.
    let quiet = bk_build(&d, &ctx, &["-q", "-f", dockerfile.to_str().unwrap(), "."]);
    assert_eq!(out(&quiet).trim(), image_id(&d, "bk:1"), "{}", err(&quiet));
}

/// Every layer tar of `image`, from `docker save`.
fn layers(d: &Daemon, image: &str) -> Vec<Vec<u8>> {
    let save = d.dir.path().join("save.tar");
    ok(&d.docker(&["save", "-o", save.to_str().unwrap(), image]));
    let mut a = tar::Archive::new(std::fs::File::open(&save).unwrap());
    let mut out = Vec::new();
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        if name.ends_with("layer.tar") || name.starts_with("blobs/sha256/") {
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            out.push(data);
        }
    }
    assert!(!out.is_empty());
    out
}

fn entry_names(layer: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(layer);
    match a.entries() {
        Ok(entries) => entries
            .filter_map(|e| Some(e.ok()?.path().ok()?.to_string_lossy().into_owned()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn buildkit_mode_secrets_reach_the_step_and_no_layer_config_or_history() {
    let d = common::docker_daemon();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let value = "tok-5ecret-7f3a9";
    let secret = d.dir.path().join("secret.txt");
    std::fs::write(&secret, value).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok md5sum < /run/secrets/tok > /secret.md5 \
             && stat -c '%a %u' /run/secrets/tok > /secret.mode\n\
         RUN --mount=type=secret,id=tok,target=/etc/tok.conf cat /etc/tok.conf | wc -c > /secret.len\n\
         RUN --mount=type=secret,id=absent ls -A /run/secrets > /absent.listing 2>&1 || echo none > /absent.listing\n",
    )
    .unwrap();
    let src = format!("id=tok,src={}", secret.display());
    let built = bk_build(&d, &ctx, &["--secret", &src, "-t", "sec:1", "."]);
    assert!(built.status.success(), "{}\n{}", err(&built), d.log());
    let cat = |file: &str| ok(&d.docker(&["run", "--rm", "sec:1", "cat", file]));
    assert_eq!(
        cat("/secret.md5").split_whitespace().next().unwrap(),
        md5(value.as_bytes(), d.dir.path()),
        "the step read the secret"
    );
    assert_eq!(cat("/secret.mode"), "400 0\n");
    assert_eq!(cat("/secret.len").trim(), value.len().to_string());
    assert_eq!(
        cat("/absent.listing"),
        "none\n",
        "a secret the client lacks is not mounted"
    );

    for layer in layers(&d, "sec:1") {
        assert!(
            !layer.windows(value.len()).any(|w| w == value.as_bytes()),
            "the secret's value is in a layer"
        );
        for name in entry_names(&layer) {
            assert!(
                !name.contains("run/secrets") && !name.contains("tok.conf"),
                "a secret's mount point is in a layer: {name}"
            );
        }
    }
    let history = ok(&d.docker(&["history", "--no-trunc", "sec:1"]));
    let inspect = ok(&d.docker(&["image", "inspect", "sec:1"]));
    for text in [&history, &inspect] {
        assert!(!text.contains(value), "{text}");
    }

    // A required secret the client does not have fails the step.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=secret,id=absent,required true\n",
    )
    .unwrap();
    let failed = bk_build(&d, &ctx, &["--secret", &src, "."]);
    assert!(!failed.status.success());
    assert!(
        err(&failed).contains("secret absent: not found"),
        "{}",
        err(&failed)
    );
}

#[test]
fn buildkit_mode_failures_are_reported_and_sessions_are_checked() {
    let d = common::docker_daemon();
    let ctx = d.context("ctx", "FROM busybox\nRUN echo before && exit 3\n");
    let failed = bk_build(&d, &ctx, &["."]);
    let progress = err(&failed);
    assert_eq!(failed.status.code(), Some(1), "{progress}");
    assert!(progress.contains("before"), "{progress}");
    assert!(
        progress.contains(
            "ERROR: The command '/bin/sh -c echo before && exit 3' returned a non-zero code: 3"
        ),
        "{progress}"
    );
    let missing = bk_build(&d, &ctx, &["-f", "Nope.Dockerfile", "."]);
    assert!(!missing.status.success());
    assert!(
        err(&missing)
            .contains("failed to read dockerfile: open Nope.Dockerfile: no such file or directory"),
        "{}",
        err(&missing)
    );

    // The API: BuildKit mode needs a session; `/session` needs an HTTP/2 upgrade.
    let r = d.request("POST", "/v1.41/build?version=2", &[]);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("need a session"), "{}", r.text());
    let r = d.request("POST", "/v1.41/build?version=2&session=nobody", &[]);
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("no active session for nobody"),
        "{}",
        r.text()
    );
    let r = d.request("POST", "/v1.41/session", &[]);
    assert_eq!(
        (r.status, r.text().contains("no upgrade proto in request")),
        (400, true),
        "{}",
        r.text()
    );
}

/// In BuildKit mode the CLI sends no `X-Registry-Config`: the build asks the session for the login of the
/// registry a missing `FROM` image lives in (`Auth/Credentials`), and the CLI answers from its config file.
#[test]
fn buildkit_mode_pulls_with_the_logins_the_session_offers() {
    use common::registry::{Registry, PASSWORD, PORT, USER};
    let d = common::docker_daemon();
    let _reg = Registry::start(&d, true);
    let server = format!("127.0.0.1:{PORT}");
    let base = format!("{server}/private/base:1");
    ok(&d.docker(&["tag", "busybox", &base]));
    let o = d.docker(&["login", "-u", USER, "-p", PASSWORD, &server]);
    assert!(ok(&o).contains("Login Succeeded"), "{}", out(&o));
    ok(&d.docker(&["push", &base]));
    ok(&d.docker(&["rmi", &base]));
    let ctx = d.context("ctx", format!("FROM {base}\nRUN echo pulled > /ok\n"));
    let built = bk_build(&d, &ctx, &["-t", "pulled:1", "."]);
    assert!(built.status.success(), "{}\n{}", err(&built), d.log());
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "pulled:1", "cat", "/ok"])),
        "pulled\n"
    );
    assert_eq!(image_id(&d, &base), image_id(&d, "busybox"));

    // Logged out, the session has no login to give, and the registry refuses the pull.
    ok(&d.docker(&["rmi", &base, "pulled:1"]));
    ok(&d.docker(&["logout", &server]));
    let refused = bk_build(&d, &ctx, &["-t", "pulled:2", "."]);
    assert!(!refused.status.success());
    let text = err(&refused);
    assert!(
        text.contains("no basic auth credentials") || text.contains("unauthorized"),
        "{text}"
    );
}

/// The paths of the daemon's "build context synced" debug lines, as (sent entries, files, bytes).
fn syncs(d: &Daemon) -> Vec<(u64, u64, u64)> {
    let field = |line: &str, name: &str| -> u64 {
        let at = line
            .find(&format!(" {name}="))
            .unwrap_or_else(|| panic!("no {name} in {line}"));
        line[at + name.len() + 2..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    d.log()
        .lines()
        .filter(|l| l.contains("build context synced"))
        .map(|l| (field(l, "sent"), field(l, "files"), field(l, "bytes")))
        .collect()
}

#[test]
fn buildkit_mode_rebuilds_fetch_only_what_changed_and_match_a_full_transfer() {
    let d = common::docker_daemon();
    let ctx = d.dir.path().join("ctx");
    let w = |p: &str, data: &[u8]| {
        let p = ctx.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    };
    let big = noise(2 << 20, 11);
    w("big.bin", &big);
    w("sub/a", b"a v1\n");
    w("sub/deep/b", b"b v1\n");
    w("gone.txt", b"to be deleted\n");
    w("gonedir/x", b"x\n");
    w("gonedir/y/z", b"z\n");
    w("swap", b"a file, then a directory\n");
    w("swapd/child", b"in a directory that becomes a file\n");
    w("hard1", b"linked v1\n");
    std::fs::hard_link(ctx.join("hard1"), ctx.join("hard2")).unwrap();
    std::os::unix::fs::symlink("sub/a", ctx.join("link")).unwrap();
    w("Dockerfile", b"FROM busybox\nCOPY . /app\nRUN cd /app && find . | sort | while read f; do stat -c '%n %F %a %s %Y %h' \"$f\"; [ -f \"$f\" ] && [ ! -L \"$f\" ] && md5sum \"$f\"; readlink \"$f\"; done > /list; true\n");
    // Less the context's root: its time is when the daemon made it, in either way of sending.
    let listing = |tag: &str| {
        let list = ok(&d.docker(&["run", "--rm", tag, "cat", "/list"]));
        assert!(list.starts_with(". directory "), "{list}");
        list.lines().skip(1).collect::<Vec<_>>().join("\n")
    };

    let first = bk_build(&d, &ctx, &["-t", "sync:1", "."]);
    assert!(first.status.success(), "{}\n{}", err(&first), d.log());
    let s = syncs(&d);
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(
        s[0].2 >= big.len() as u64,
        "the first build fetches everything: {s:?}"
    );
    // BuildKit's vertex for the context, with the bytes fetched (2 MiB and a little: "2.10MB").
    let progress = err(&first);
    assert!(
        progress.contains("[internal] load build context"),
        "{progress}"
    );
    assert!(progress.contains("transferring context: 2.1"), "{progress}");

    // Unchanged: no file data at all, every step from the cache.
    let again = bk_build(&d, &ctx, &["-t", "sync:1", "."]);
    assert!(again.status.success(), "{}", err(&again));
    assert_eq!(err(&again).matches("CACHED").count(), 2, "{}", err(&again));
    assert_eq!(
        syncs(&d)[1],
        (0, 0, 0),
        "an unchanged context sends nothing"
    );
    // No bytes: the CLI prints none.
    assert!(
        err(&again).contains("transferring context: done"),
        "{}",
        err(&again)
    );

    // Changes of every kind; the big file stays as it is.
    w("sub/a", b"a v2, longer\n");
    w("new/dir/file", b"new\n");
    std::fs::remove_file(ctx.join("gone.txt")).unwrap();
    std::fs::remove_dir_all(ctx.join("gonedir")).unwrap();
    std::fs::remove_file(ctx.join("swap")).unwrap();
    w("swap/inside", b"now a directory\n");
    std::fs::remove_dir_all(ctx.join("swapd")).unwrap();
    w("swapd", b"now a file\n");
    // Rewritten in place: the other name of the same inode changes too.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(ctx.join("hard1"))
        .unwrap();
    std::fs::write(ctx.join("hard1"), b"linked v2\n").unwrap();
    std::fs::set_permissions(
        ctx.join("sub/deep/b"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let changed = bk_build(&d, &ctx, &["-t", "sync:2", "."]);
    assert!(changed.status.success(), "{}\n{}", err(&changed), d.log());
    let s = syncs(&d)[2];
    assert!(
        s.1 > 0 && s.2 < big.len() as u64,
        "only what changed is fetched: {s:?}"
    );
    let incremental = listing("sync:2");
    for want in [
        "./new/dir/file regular file",
        "./swap/inside",
        "./sub/a regular file 644 13",
    ] {
        assert!(incremental.contains(want), "no {want:?} in {incremental}");
    }
    assert!(!incremental.contains("gone"), "{incremental}");
    assert!(incremental.contains("./swap directory"), "{incremental}");
    assert!(
        incremental.contains("./swapd regular file"),
        "{incremental}"
    );
    assert!(
        incremental.contains("./sub/deep/b regular file 600"),
        "{incremental}"
    );
    assert_eq!(
        incremental
            .matches(&md5(b"linked v2\n", d.dir.path()))
            .count(),
        2,
        "both names of the rewritten inode: {incremental}"
    );

    // The kept directory is build cache, as BuildKit lists its local sources: `system df` counts it, and
    // the prune that drops it says what it reclaimed.
    let contexts = |df: &serde_json::Value| -> Vec<serde_json::Value> {
        df["BuildCache"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["Type"] == "source.local")
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let kept = contexts(&d.get_json("/system/df?type=build-cache"));
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!(kept[0]["Description"], "local source for context");
    assert_eq!(kept[0]["InUse"], false);
    let size = kept[0]["Size"].as_u64().unwrap_or(0);
    assert!(size >= big.len() as u64, "{kept:?}");
    // A prune the filters narrow to other records, or to caches unused since long ago, leaves it; one
    // narrowed to local sources takes it.
    let prune = |filters: &str| {
        let r = d.request(
            "POST",
            &format!("/build/prune?all=1&filters={}", urlencode(filters)),
            b"",
        );
        assert_eq!(r.status, 200, "{filters}: {}", r.text());
        r.json()
    };
    for other in [
        r#"{"type":{"exec.cachemount":true}}"#,
        r#"{"id":{"not-this-one":true}}"#,
        r#"{"until":{"2001-01-01T00:00:00Z":true}}"#,
        r#"{"inuse":{"true":true}}"#,
    ] {
        let pruned = prune(other);
        assert!(
            !pruned["CachesDeleted"]
                .as_array()
                .is_some_and(|ids| ids.contains(&kept[0]["ID"])),
            "{other}: {pruned}"
        );
        assert_eq!(
            contexts(&d.get_json("/system/df?type=build-cache")).len(),
            1,
            "{other}"
        );
    }
    let pruned = prune(r#"{"type":{"source.local":true}}"#);
    assert!(
        pruned["SpaceReclaimed"].as_u64().unwrap_or(0) >= size,
        "{pruned}"
    );
    assert!(
        pruned["CachesDeleted"]
            .as_array()
            .is_some_and(|ids| ids.contains(&kept[0]["ID"])),
        "{pruned}"
    );
    assert!(contexts(&d.get_json("/system/df?type=build-cache")).is_empty());

    // The same context sent whole (the prune dropped the kept directory) gives the same files, modes,
    // times and links.
    ok(&d.docker(&["builder", "prune", "-af"]));
    let full = bk_build(&d, &ctx, &["--no-cache", "-t", "sync:3", "."]);
    assert!(full.status.success(), "{}", err(&full));
    let s = syncs(&d)[3];
    assert!(
        s.2 >= big.len() as u64,
        "after a prune everything comes again: {s:?}"
    );
    assert_eq!(listing("sync:3"), incremental);
}
