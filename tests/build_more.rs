//! Builds beyond the basics, through the real docker CLI's classic builder (`DOCKER_BUILDKIT=0`):
//! `COPY/ADD --exclude` and `COPY --parents` (BuildKit's flags, which Berth's classic builder takes),
//! `--cache-from` after `save`/`rmi`/`load` (dockerd's classic semantics, same image IDs),
//! `RUN --mount=type=cache,from=`, and a build's pulls with the credentials the CLI sends in
//! `X-Registry-Config`, against Debian's `docker-registry` with htpasswd.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::registry::{Registry, PASSWORD, PORT, USER};
use common::{err, ok, out, Daemon};

/// `docker build ARGS…` with the classic builder.
fn build(d: &Daemon, args: &[&str]) -> Output {
    d.classic_build(args)
}

/// Writes `files` (path, content) under a new context directory `name` of the daemon's temp dir.
fn context(d: &Daemon, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let ctx = d.dir.path().join(name);
    for (path, content) in files {
        let p = ctx.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    ctx
}

fn built(d: &Daemon, args: &[&str]) -> String {
    let o = build(d, args);
    let text = out(&o);
    assert!(o.status.success(), "{text}{}", err(&o));
    text
}

fn cached(o: &str) -> usize {
    o.lines().filter(|l| *l == " ---> Using cache").count()
}

fn image_id(d: &Daemon, r: &str) -> String {
    d.image_id(r)
}

/// What `find PATHS` lists in a container of `image`, sorted, one path a line.
fn find(d: &Daemon, image: &str, paths: &[&str]) -> Vec<String> {
    let mut args = vec!["run", "--rm", image, "find"];
    args.extend_from_slice(paths);
    let mut got: Vec<String> = ok(&d.docker(&args)).lines().map(str::to_owned).collect();
    got.sort();
    got
}

#[test]
fn copy_exclude_and_parents_copy_what_buildkit_copies_and_key_the_cache() {
    let d = common::docker_daemon();
    let ctx = context(
        &d,
        "ctx",
        &[
            ("d/keep.txt", "k"),
            ("d/drop.log", "l"),
            ("d/sub/deep.log", "l"),
            ("d/sub/deep.txt", "t"),
            ("d/tmp/x", "x"),
            ("d/tmp/keep", "kept by an exception"),
            ("d/cache/y", "y"),
            ("a/b/c.txt", "c"),
            ("x/y/z.txt", "z"),
            ("x/y/w.md", "w"),
            ("docs/readme.md", "r"),
            ("docs/guide.txt", "g"),
            (
                "Dockerfile",
                "FROM busybox\n\
                 COPY --exclude=**/*.log --exclude=tmp --exclude=!tmp/keep --exclude=cache d /d/\n\
                 COPY --parents a/b/c.txt x/./y/*.txt /p/\n\
                 COPY --parents a /q/\n\
                 ADD --exclude=*.md docs /docs/\n",
            ),
        ],
    );
    let ctx_s = ctx.to_str().unwrap();
    let first = built(&d, &["-t", "ex:1", ctx_s]);
    assert_eq!(cached(&first), 0, "{first}");
    assert_eq!(
        find(&d, "ex:1", &["/d", "/p", "/q", "/docs"]),
        [
            "/d",
            "/d/keep.txt",
            "/d/sub",
            "/d/sub/deep.txt",
            "/d/tmp",
            "/d/tmp/keep",
            "/docs",
            "/docs/guide.txt",
            "/p",
            "/p/a",
            "/p/a/b",
            "/p/a/b/c.txt",
            "/p/y",
            "/p/y/z.txt",
            "/q",
            "/q/a",
            "/q/a/b",
            "/q/a/b/c.txt",
        ]
    );
    let history = ok(&d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "ex:1",
    ]));
    assert!(
        history.contains(
            "COPY --exclude=**/*.log --exclude=tmp --exclude=!tmp/keep --exclude=cache dir:"
        ),
        "{history}"
    );
    assert!(history.contains("COPY --parents multi:"), "{history}");
    let id = image_id(&d, "ex:1");

    // An excluded file changed: every step hits the cache; a copied one changed: its step runs again.
    std::fs::write(ctx.join("d/drop.log"), "changed").unwrap();
    std::fs::write(ctx.join("d/tmp/x"), "changed").unwrap();
    let again = built(&d, &["-t", "ex:2", ctx_s]);
    assert_eq!(cached(&again), 4, "{again}");
    assert_eq!(image_id(&d, "ex:2"), id);
    std::fs::write(ctx.join("d/tmp/keep"), "changed").unwrap();
    let changed = built(&d, &["-t", "ex:3", ctx_s]);
    assert_eq!(cached(&changed), 0, "{changed}");
    assert_ne!(image_id(&d, "ex:3"), id);
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "ex:3", "cat", "/d/tmp/keep"])),
        "changed"
    );
}

const CACHED_APP: &str = "FROM busybox\n\
    ENV APP=/app\n\
    COPY a.txt /app/a.txt\n\
    RUN cat /app/a.txt > /app/copied && echo ran\n\
    COPY b.txt /app/\n\
    LABEL stage=final\n\
    CMD [\"cat\", \"/app/copied\"]\n";

#[test]
fn cache_from_a_loaded_image_supplies_every_step_and_the_same_image() {
    let d = common::docker_daemon();
    let ctx = context(
        &d,
        "app",
        &[
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("Dockerfile", CACHED_APP),
        ],
    );
    let ctx_s = ctx.to_str().unwrap();
    built(&d, &["-t", "app:1", ctx_s]);
    let original = image_id(&d, "app:1");

    // Only the final image and its base travel; the intermediate images (the local cache) are gone.
    let tar = d.dir.path().join("app.tar");
    ok(&d.docker(&["save", "-o", tar.to_str().unwrap(), "app:1", "busybox"]));
    ok(&d.docker(&["rmi", "app:1", "busybox"]));
    assert_eq!(ok(&d.docker(&["images", "-aq"])), "", "everything removed");
    ok(&d.docker(&["load", "-i", tar.to_str().unwrap()]));
    assert_eq!(image_id(&d, "app:1"), original);

    let o = built(&d, &["--cache-from", "app:1", "-t", "app:2", ctx_s]);
    assert_eq!(cached(&o), 6, "every step after FROM: {o}");
    assert!(!o.lines().any(|l| l == "ran"), "no RUN step ran: {o}");
    assert!(!o.contains("Running in"), "{o}");
    assert_eq!(
        image_id(&d, "app:2"),
        original,
        "dockerd's result: the source image itself"
    );
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "app:2"])),
        "a\n",
        "the restored layers are the image's"
    );

    // Again: the images restored the first time are found and kept, the result is the same.
    let all = || -> std::collections::BTreeSet<String> {
        ok(&d.docker(&["images", "-aq", "--no-trunc"]))
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let images = all();
    assert_eq!(
        images.len(),
        7,
        "busybox, 5 restored steps, the source as the last: {images:?}"
    );
    let o = built(&d, &["--cache-from", "app:1", "-t", "app:3", ctx_s]);
    assert_eq!(cached(&o), 6, "{o}");
    assert_eq!(image_id(&d, "app:3"), original);
    assert_eq!(all(), images, "nothing new was made");

    // A changed file breaks the line there; the steps before it still come from the source.
    std::fs::write(ctx.join("b.txt"), "b2\n").unwrap();
    ok(&d.docker(&["rmi", "app:2", "app:3"]));
    let o = built(
        &d,
        &[
            "--cache-from",
            "app:1",
            "--cache-from",
            "missing:tag",
            "-t",
            "app:4",
            ctx_s,
        ],
    );
    assert_eq!(cached(&o), 3, "{o}");
    assert_ne!(image_id(&d, "app:4"), original);
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "app:4", "cat", "/app/b.txt"])),
        "b2\n"
    );

    // berth build sends --cache-from as the docker CLI does.
    std::fs::write(ctx.join("b.txt"), "b\n").unwrap();
    let o = d.berth(&["build", "--cache-from", "app:1", "-t", "app:5", ctx_s]);
    let text = ok(&o);
    assert_eq!(cached(&text), 6, "{text}");
    assert_eq!(image_id(&d, "app:5"), original);
}

#[test]
fn a_cache_mount_from_a_stage_starts_with_its_directory_and_is_a_cache_of_its_own() {
    let d = common::docker_daemon();
    let ctx = context(
        &d,
        "seeded",
        &[(
            "Dockerfile",
            "FROM busybox AS seed\n\
             RUN mkdir -p /seed/sub && echo seeded > /seed/file && echo deep > /seed/sub/f\n\
             FROM busybox\n\
             RUN --mount=type=cache,target=/c,from=seed,source=/seed cat /c/file /c/sub/f > /got && echo more >> /c/file\n\
             RUN --mount=type=cache,target=/c,from=seed,source=/seed cat /c/file > /again\n\
             RUN --mount=type=cache,target=/c ls -A /c | wc -l > /plain\n",
        )],
    );
    let ctx_s = ctx.to_str().unwrap();
    built(&d, &["-t", "seeded:1", ctx_s]);
    let show = |f: &str| ok(&d.docker(&["run", "--rm", "seeded:1", "cat", f]));
    assert_eq!(show("/got"), "seeded\ndeep\n");
    assert_eq!(
        show("/again"),
        "seeded\nmore\n",
        "the cache outlives its step"
    );
    assert_eq!(
        show("/plain").trim(),
        "0",
        "the same target without from= is another cache"
    );
    // The cache is not the image's: nothing of it was committed.
    let o = d.docker(&["run", "--rm", "seeded:1", "ls", "/c/file"]);
    assert_ne!(o.status.code(), Some(0));

    // A missing source is refused with BuildKit's words.
    let bad = context(
        &d,
        "bad",
        &[(
            "Dockerfile",
            "FROM busybox AS seed\nFROM busybox\nRUN --mount=type=cache,target=/c,from=seed,source=/nope true\n",
        )],
    );
    let o = build(&d, &[bad.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        format!("{}{}", out(&o), err(&o)).contains("RUN --mount source /nope not found"),
        "{}{}",
        out(&o),
        err(&o)
    );
}

/// `127.0.0.1:5000/<name>`.
fn at(name: &str) -> String {
    format!("127.0.0.1:{PORT}/{name}")
}

fn build_from(d: &Daemon, dir: &Path, base: &str, extra: &[&str]) -> Output {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {base}\nRUN echo pulled > /ok\n"),
    )
    .unwrap();
    let mut args = extra.to_vec();
    args.push(dir.to_str().unwrap());
    build(d, &args)
}

#[test]
fn a_builds_pulls_use_the_credentials_of_x_registry_config() {
    let d = common::docker_daemon();
    let _reg = Registry::start(&d, true);
    let server = at("").trim_end_matches('/').to_string();
    let base = at("base:1");
    ok(&d.docker(&["tag", "busybox", &base]));
    let o = d.docker(&["login", "-u", USER, "-p", PASSWORD, &server]);
    assert!(ok(&o).contains("Login Succeeded"), "{}", out(&o));
    ok(&d.docker(&["push", &base]));
    ok(&d.docker(&["rmi", &base]));
    let dir = d.dir.path().join("pulling");

    // Logged in: the CLI sends the credentials with the build, and the missing base is pulled with them.
    let o = build_from(&d, &dir, &base, &["-t", "pulled:1"]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "pulled:1", "cat", "/ok"])),
        "pulled\n"
    );
    assert_eq!(image_id(&d, &base), image_id(&d, "busybox"));
    // `--pull` pulls a present base again, with them too.
    let o = build_from(&d, &dir, &base, &["--pull", "-t", "pulled:2"]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));

    // Logged out: the same build is refused by the registry.
    ok(&d.docker(&["rmi", &base, "pulled:1", "pulled:2"]));
    ok(&d.docker(&["logout", &server]));
    let o = build_from(&d, &dir, &base, &["-t", "pulled:3"]);
    assert!(!o.status.success(), "{}", out(&o));
    let text = format!("{}{}", out(&o), err(&o));
    assert!(
        text.contains("no basic auth credentials") || text.contains("unauthorized"),
        "{text}"
    );
}
