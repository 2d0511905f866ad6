//! Dockerfile builds through the classic builder's API, driven by the real docker CLI (`DOCKER_BUILDKIT=0`):
//! multi-stage builds, dockerd's output and history, the cache (hits on an unchanged context and after a
//! `touch`, misses from a changed file or a changed build argument on, in that stage only), `--target`, `-q`,
//! `--iidfile`, failures worded as dockerd words them, hostile contexts, and intermediate images as
//! `docker images` and `rmi` treat them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{err, ok, out, Daemon};

/// `docker build ARGS…` with the classic builder.
fn build(d: &Daemon, args: &[&str]) -> Output {
    d.classic_build(args)
}

const DOCKERFILE: &str = r#"# a multi-stage app
FROM busybox:latest AS base
ARG GREETING=hello
ENV APP=/opt/app
WORKDIR /opt/app
RUN echo "$GREETING from run" > greeting && cat greeting
COPY conf.txt /opt/app/
COPY site/ /www/

FROM base AS unused
RUN exit 9

FROM busybox:latest
COPY --from=base /www /www
COPY --from=base /opt/app/greeting /greeting
LABEL stage=final
EXPOSE 80
CMD ["cat", "/greeting"]
"#;

fn context(d: &Daemon) -> PathBuf {
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("site")).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("conf.txt"), "conf v1\n").unwrap();
    std::fs::write(ctx.join("site/index.html"), "<h1>hi</h1>\n").unwrap();
    ctx
}

fn steps(o: &str) -> Vec<&str> {
    o.lines().filter(|l| l.starts_with("Step ")).collect()
}

fn cached(o: &str) -> usize {
    o.lines().filter(|l| *l == " ---> Using cache").count()
}

fn image_id(d: &Daemon, r: &str) -> String {
    d.image_id(r)
}

#[test]
fn docker_build_runs_a_multi_stage_dockerfile_with_dockerds_output_and_cache() {
    let d = common::docker_daemon();
    let ctx = context(&d);
    let ctx_s = ctx.to_str().unwrap();

    let o = build(&d, &["-t", "app:1", ctx_s]);
    let text = out(&o);
    assert!(o.status.success(), "{text}{}", err(&o));
    // dockerd's lines: the unused stage is not built, so 13 of the 15 instructions are steps.
    assert_eq!(steps(&text).len(), 13, "{text}");
    assert!(
        text.starts_with("Sending build context to Docker daemon"),
        "{text}"
    );
    assert!(
        text.contains("Step 1/13 : FROM busybox:latest AS base\n"),
        "{text}"
    );
    assert!(text.contains("Step 5/13 : RUN echo \"$GREETING from run\" > greeting && cat greeting\n ---> Running in "), "{text}");
    assert!(
        text.contains("\nhello from run\nRemoving intermediate container "),
        "{text}"
    );
    assert!(
        !text.contains("exit 9"),
        "the unused stage was built: {text}"
    );
    let id = image_id(&d, "app:1");
    assert!(
        text.ends_with(&format!(
            "Successfully built {}\nSuccessfully tagged app:1\n",
            &id[7..19]
        )),
        "{text}"
    );
    // The image: what the final stage copied, its config, dockerd's history lines.
    assert_eq!(ok(&d.docker(&["run", "--rm", "app:1"])), "hello from run\n");
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "app:1", "cat", "/www/index.html"])),
        "<h1>hi</h1>\n"
    );
    let history = ok(&d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "app:1",
    ]));
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(
        lines[0], "/bin/sh -c #(nop)  CMD [\"cat\" \"/greeting\"]",
        "{history}"
    );
    assert_eq!(lines[1], "/bin/sh -c #(nop)  EXPOSE 80", "{history}");
    assert_eq!(
        lines[2], "/bin/sh -c #(nop)  LABEL stage=final",
        "{history}"
    );
    assert!(
        lines[3].starts_with("/bin/sh -c #(nop) COPY file:")
            && lines[3].ends_with(" in /greeting "),
        "{history}"
    );
    assert!(
        lines[4].starts_with("/bin/sh -c #(nop) COPY dir:") && lines[4].ends_with(" in /www "),
        "{history}"
    );
    let base_history = ok(&d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "busybox",
    ]));
    assert_eq!(lines.len(), 5 + base_history.lines().count());
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&d.docker(&["image", "inspect", "app:1"]))).unwrap();
    let cfg = &inspect[0]["Config"];
    assert_eq!(cfg["Cmd"], serde_json::json!(["cat", "/greeting"]));
    assert_eq!(cfg["Labels"]["stage"], "final");
    assert!(cfg["ExposedPorts"]["80/tcp"].is_object());

    // Nothing is left of the build: no step container, no intermediate image in `docker images`.
    assert_eq!(ok(&d.docker(&["ps", "-aq"])), "");
    let listed = ok(&d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    // The base stage's last image stays, untagged, as dockerd's classic builder leaves it.
    assert_eq!(listed, ["<none>:<none>", "app:1", "busybox:latest"]);
    assert!(ok(&d.docker(&["images", "-a", "-q"])).lines().count() > 2);

    // The same context again: every step from the cache, the same image.
    let o = build(&d, &["-t", "app:1", ctx_s]);
    let text = out(&o);
    assert!(o.status.success(), "{text}{}", err(&o));
    assert_eq!(cached(&text), 11, "{text}");
    assert!(!text.contains("Running in"), "{text}");
    assert_eq!(image_id(&d, "app:1"), id);

    // `touch` keeps the cache; a content change misses from its COPY on, in that stage only.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(100);
    std::fs::File::options()
        .write(true)
        .open(ctx.join("conf.txt"))
        .unwrap()
        .set_modified(later)
        .unwrap();
    let o = build(&d, &["-t", "app:1", ctx_s]);
    assert_eq!(cached(&out(&o)), 11, "{}", out(&o));
    std::fs::write(ctx.join("conf.txt"), "conf v2\n").unwrap();
    let o = build(&d, &["-t", "app:2", ctx_s]);
    let text = out(&o);
    assert!(o.status.success(), "{text}{}", err(&o));
    // Base stage: FROM, ARG, ENV, WORKDIR, RUN cached (4); COPY conf.txt misses and so does the next COPY;
    // the final stage's steps stack on a new base image for its COPY --from only: FROM busybox and…
    let conf_step = text.find("COPY conf.txt").unwrap();
    assert_eq!(cached(&text[..conf_step]), 4, "{text}");
    assert!(
        !text[conf_step..text.find("Step 8/13").unwrap()].contains("Using cache"),
        "{text}"
    );

    // A build argument a RUN uses misses the cache from that RUN on.
    let o = build(
        &d,
        &["--build-arg", "GREETING=bonjour", "-t", "app:3", ctx_s],
    );
    let text = out(&o);
    assert!(o.status.success(), "{text}{}", err(&o));
    assert_eq!(
        ok(&d.docker(&["run", "--rm", "app:3"])),
        "bonjour from run\n"
    );
    let run = text.find("Step 5/13 : RUN").unwrap();
    assert_eq!(cached(&text[..run]), 3, "ARG, ENV and WORKDIR hit: {text}");
    assert!(text[run..].starts_with("Step 5/13 : RUN echo \"$GREETING from run\" > greeting && cat greeting\n ---> Running in "), "{text}");
    assert!(text.contains("\nbonjour from run\n"), "{text}");

    // --target, -q and --iidfile.
    let iid = d.dir.path().join("iid");
    let o = build(
        &d,
        &[
            "-q",
            "--target",
            "base",
            "--iidfile",
            iid.to_str().unwrap(),
            "-t",
            "base:1",
            ctx_s,
        ],
    );
    assert!(o.status.success(), "{}", err(&o));
    let base_id = image_id(&d, "base:1");
    assert_eq!(out(&o).trim(), base_id);
    // With -q the docker CLI writes the quiet stream's line, newline and all, as with dockerd.
    assert_eq!(
        std::fs::read_to_string(&iid).unwrap(),
        format!("{base_id}\n")
    );
    assert_eq!(
        ok(&d.docker(&[
            "run",
            "--rm",
            "base:1",
            "sh",
            "-c",
            "pwd; cat conf.txt; echo $APP"
        ])),
        "/opt/app\nconf v2\n/opt/app\n"
    );

    // rmi of a built image takes its untagged parents with it, and leaves those other images need.
    let before = ok(&d.docker(&["images", "-a", "-q"])).lines().count();
    let removed = ok(&d.docker(&["rmi", "app:3"]));
    assert!(
        removed
            .lines()
            .filter(|l| l.starts_with("Deleted: "))
            .count()
            > 1,
        "{removed}"
    );
    assert!(ok(&d.docker(&["images", "-a", "-q"])).lines().count() < before);
    assert_eq!(ok(&d.docker(&["run", "--rm", "app:1"])), "hello from run\n");
}

#[test]
fn failed_builds_are_worded_as_dockerd_and_leave_nothing_half_made() {
    let d = common::docker_daemon();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let ctx_s = ctx.to_str().unwrap();
    let write = |df: &str| std::fs::write(ctx.join("Dockerfile"), df).unwrap();

    write("FROM busybox\nRUN echo partial > /p && exit 3\n");
    let o = build(&d, &[ctx_s]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains(
            "The command '/bin/sh -c echo partial > /p && exit 3' returned a non-zero code: 3"
        ),
        "{}{}",
        out(&o),
        err(&o)
    );
    write("FROM busybox\nRUN echo\nNOPE x\n");
    let o = build(&d, &[ctx_s]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("dockerfile parse error on line 3: unknown instruction: NOPE"),
        "{}",
        err(&o)
    );
    write("FROM busybox\nCOPY missing.txt /\n");
    let o = build(&d, &[ctx_s]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("missing.txt"), "{}", err(&o));
    // A base image that is not here is pulled; from a registry that does not answer (on loopback: no
    // test reaches out), the build fails with the pull's error.
    write("FROM 127.0.0.1:9/nosuchimage:1\n");
    let o = build(&d, &[ctx_s]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("127.0.0.1:9"), "{}", err(&o));
    let o = build(&d, &["-f", "Nope.dockerfile", ctx_s]);
    assert_ne!(o.status.code(), Some(0));

    // A hostile context (an entry climbing out) is refused before anything runs, and writes nothing outside.
    let marker = d.dir.path().join("escaped");
    let tar = hostile_context(&d.dir.path().join("hostile.tar"));
    let r = d.request_file("POST", "/build?t=hostile", &tar);
    let text = r.text();
    assert!(text.contains("errorDetail"), "{text}");
    assert!(!marker.exists());
    assert!(!d.data_root().join("escaped").exists());
    // Nothing of the builds is left on disk but the failed RUN's container (dockerd keeps it too).
    let builds = d.data_root().join("build");
    assert!(
        std::fs::read_dir(&builds)
            .map(|mut e| e.next().is_none())
            .unwrap_or(true),
        "a build's files were left in {}",
        builds.display()
    );
    assert_eq!(
        ok(&d.docker(&["images", "-q", "--filter", "dangling=true"])),
        ""
    );
}

/// A context tar with a Dockerfile and an entry named `../../escaped`.
fn hostile_context(path: &Path) -> PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let bytes = h.as_mut_bytes();
        bytes[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, data).unwrap();
    };
    add("Dockerfile", b"FROM busybox\nCOPY . /\n");
    add("../../escaped", b"out");
    std::fs::write(path, b.into_inner().unwrap()).unwrap();
    path.to_path_buf()
}

#[test]
fn berth_build_sends_the_context_as_the_docker_cli_does() {
    let d = common::docker_daemon();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("logs")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY . /ctx/\nRUN ls -a /ctx | sort | tr '\\n' ' '; echo\n",
    )
    .unwrap();
    std::fs::write(ctx.join(".dockerignore"), "logs\n*.secret\nDockerfile\n").unwrap();
    std::fs::write(ctx.join("keep.txt"), "k").unwrap();
    std::fs::write(ctx.join("x.secret"), "s").unwrap();
    std::fs::write(ctx.join("logs/big.log"), "l").unwrap();
    let ctx_s = ctx.to_str().unwrap();

    // A file the client's user owns: the context goes as root's, as the docker CLI sends it.
    std::os::unix::fs::chown(ctx.join("keep.txt"), Some(1000), Some(1000)).unwrap();
    let o = d.berth(&["build", "-t", "b:1", ctx_s]);
    let berth_out = out(&o);
    assert!(o.status.success(), "{berth_out}{}", err(&o));
    // .dockerignore applied. The Dockerfile is sent all the same, as the docker CLI sends it, for the
    // daemon to read; then, as dockerd does, it leaves the context since .dockerignore lists it.
    assert!(
        berth_out.contains("\n. .. .dockerignore keep.txt \n"),
        "{berth_out}"
    );
    // The docker CLI's context gives the same cache keys: its build of it is all from the cache.
    let o = build(&d, &["-t", "b:1", ctx_s]);
    assert_eq!(
        out(&o).matches(" ---> Using cache").count(),
        2,
        "{}",
        out(&o)
    );
    // The same lines as the docker CLI prints for the same build, IDs aside.
    let o = build(&d, &["--no-cache", "-t", "b:2", ctx_s]);
    let docker_out = out(&o);
    let shape = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with("DEPRECATED") && !l.starts_with("  "))
            .map(|l| {
                l.split(' ')
                    .map(|w| {
                        if w.len() == 12 && w.chars().all(|c| c.is_ascii_hexdigit()) {
                            "<id>"
                        } else {
                            w
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let mut berth_lines = shape(&berth_out);
    let mut docker_lines = shape(&docker_out);
    berth_lines.retain(|l| !l.is_empty() && !l.starts_with("Successfully tagged"));
    docker_lines.retain(|l| !l.is_empty() && !l.starts_with("Successfully tagged"));
    assert_eq!(berth_lines, docker_lines);

    // -q prints the ID alone; --iidfile gets it.
    let iid = d.dir.path().join("iid");
    let o = d.berth(&["build", "-q", "--iidfile", iid.to_str().unwrap(), ctx_s]);
    assert!(o.status.success(), "{}", err(&o));
    let id = out(&o);
    assert!(id.starts_with("sha256:") && id.trim().len() == 71, "{id}");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    // Errors as the docker CLI shows them, exit status 1.
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nRUN exit 4\n").unwrap();
    let o = d.berth(&["build", ctx_s]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err(&o).contains("The command '/bin/sh -c exit 4' returned a non-zero code: 4"),
        "{}",
        err(&o)
    );
}

#[test]
fn run_mounts_and_heredocs_go_beyond_the_classic_builder() {
    let d = common::docker_daemon();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("input.txt"), "from the context\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         RUN --mount=type=cache,target=/cache echo run >> /cache/log && wc -l < /cache/log > /count\n\
         RUN --mount=type=tmpfs,target=/scratch echo x > /scratch/t && grep -c ' /scratch tmpfs ' /proc/mounts > /tmpfs\n\
         RUN --mount=type=bind,source=input.txt,target=/in cat /in > /copied\n\
         RUN <<EOF\n\
         echo from a heredoc > /heredoc\n\
         echo second line >> /heredoc\n\
         EOF\n\
         COPY <<EOF /made.txt\n\
         written by COPY <<EOF\n\
         EOF\n",
    )
    .unwrap();
    let ctx_s = ctx.to_str().unwrap();
    let o = build(&d, &["-t", "m:1", ctx_s]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let show = |r: &str, f: &str| ok(&d.docker(&["run", "--rm", r, "cat", f]));
    assert_eq!(show("m:1", "/count"), "1\n");
    assert_eq!(show("m:1", "/tmpfs"), "1\n");
    assert_eq!(show("m:1", "/copied"), "from the context\n");
    assert_eq!(show("m:1", "/heredoc"), "from a heredoc\nsecond line\n");
    assert_eq!(show("m:1", "/made.txt"), "written by COPY <<EOF\n");
    // Nothing of the mounts is in the image.
    let o = d.docker(&[
        "run",
        "--rm",
        "m:1",
        "ls",
        "/cache/log",
        "/scratch/t",
        "/in",
    ]);
    assert_ne!(o.status.code(), Some(0));
    // The cache outlives the build: a --no-cache build sees what the first one left.
    let o = build(&d, &["--no-cache", "-t", "m:2", ctx_s]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert_eq!(show("m:2", "/count"), "2\n");
    // `system df` lists it as BuildKit lists a cache mount, sized as the prune then reclaims it.
    let df = d.get_json("/system/df?type=build-cache");
    let caches = df["BuildCache"].as_array().unwrap();
    assert_eq!(caches.len(), 1, "{df}");
    assert_eq!(caches[0]["Type"], "exec.cachemount", "{df}");
    assert_eq!(caches[0]["InUse"], false, "{df}");
    let cache_size = caches[0]["Size"].as_u64().unwrap();
    assert!(cache_size > 0, "{df}");
    assert_eq!(
        df["Images"],
        serde_json::Value::Null,
        "only what was asked: {df}"
    );
    let summary = ok(&d.docker(&["system", "df"]));
    let row = summary
        .lines()
        .find(|l| l.starts_with("Build Cache"))
        .unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>()[2..4],
        ["1", "0"],
        "{summary}"
    );
    // What the filters and the space to keep spare stays: used just now, and smaller than 1 GB.
    let kept = "Total reclaimed space: 0B\n";
    let prune = |args: &[&str]| {
        let mut cmd = vec!["builder", "prune", "-f"];
        cmd.extend_from_slice(args);
        let o = d.docker(&cmd);
        (ok(&o), err(&o))
    };
    assert_eq!(prune(&["--filter", "until=1h"]).0, kept);
    assert_eq!(prune(&["--keep-storage", "1GB"]).0, kept);
    assert_eq!(prune(&["--filter", "type=regular"]).0, kept);
    let o = d.docker(&["builder", "prune", "-f", "--filter", "bogus=1"]);
    assert!(
        err(&o).ends_with("Error response from daemon: invalid filter 'bogus'\n"),
        "{}",
        err(&o)
    );
    let r = d.request(
        "POST",
        "/build/prune?filters=%7B%22until%22%3A%7B%221h%22%3Atrue%7D%2C%22unused-for%22%3A%7B%221h%22%3Atrue%7D%7D",
        b"",
    );
    assert_eq!(
        (r.status, r.json()["message"].as_str().unwrap()),
        (400, "conflicting filters: \"until\" and \"unused-for\"")
    );
    // `docker builder prune` empties it.
    let pruned = d.request("POST", "/build/prune", b"");
    assert_eq!(pruned.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&pruned.body).unwrap();
    assert_eq!(v["CachesDeleted"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["SpaceReclaimed"].as_u64(), Some(cache_size), "{v}");
    assert_eq!(
        d.get_json("/system/df?type=build-cache")["BuildCache"],
        serde_json::json!([])
    );
    let o = build(&d, &["--no-cache", "-t", "m:3", ctx_s]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert_eq!(show("m:3", "/count"), "1\n");
    // docker system prune answers (it prunes the build cache too).
    let o = d.docker(&["system", "prune", "-f"]);
    assert!(o.status.success(), "{}", err(&o));
}

/// dockerd 20.10's classic builder built `tests/fixtures/dockerd-webapp/context` into the fixture image
/// (`webapp-history.txt`, `webapp-image-inspect.json`); Berth builds the same context, through the docker CLI,
/// into the same history, config and layer contents.
#[test]
fn the_webapp_fixture_builds_as_dockerd_built_it() {
    let d = common::docker_daemon();
    // The base dockerd built on: the fixture's first layer, imported as dockerd's busybox was.
    let base = d.dir.path().join("base.tar");
    std::fs::write(&base, first_layer(&common::webapp_fixture())).unwrap();
    ok(&d.docker(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        base.to_str().unwrap(),
        "busybox:latest",
    ]));
    let ctx = common::fixtures_dir().join("dockerd-webapp/context");
    let o = build(&d, &["-t", "fixture/webapp:berth", ctx.to_str().unwrap()]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));

    // History: dockerd's CREATED BY column and sizes, row for row (the base image's row aside).
    let dockerd =
        std::fs::read_to_string(common::fixtures_dir().join("dockerd-webapp/webapp-history.txt"))
            .unwrap();
    let header = dockerd.lines().next().unwrap();
    let by_at = header.find("CREATED BY").unwrap();
    let size_at = header.find("SIZE").unwrap();
    let want: Vec<(String, String)> = dockerd
        .lines()
        .skip(1)
        .map(|l| {
            (
                l[by_at..size_at].trim().to_owned(),
                l[size_at..]
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    let ours = ok(&d.docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        "fixture/webapp:berth",
    ]));
    let got: Vec<(String, String)> = ours
        .lines()
        .map(|l| {
            let (a, b) = l.rsplit_once('|').unwrap();
            (a.trim().to_owned(), b.to_owned())
        })
        .collect();
    assert_eq!(got.len(), want.len(), "{ours}");
    assert_eq!(got[..got.len() - 1], want[..want.len() - 1], "{ours}");

    // Config: what containers of it start with.
    let want: serde_json::Value = serde_json::from_slice(
        &std::fs::read(common::fixtures_dir().join("dockerd-webapp/webapp-image-inspect.json"))
            .unwrap(),
    )
    .unwrap();
    let got: serde_json::Value = serde_json::from_str(&ok(&d.docker(&[
        "image",
        "inspect",
        "fixture/webapp:berth",
    ])))
    .unwrap();
    for key in [
        "User",
        "ExposedPorts",
        "Env",
        "Cmd",
        "Healthcheck",
        "Volumes",
        "WorkingDir",
        "Entrypoint",
        "Labels",
        "OnBuild",
    ] {
        assert_eq!(
            got[0]["Config"][key], want[0]["Config"][key],
            "Config.{key}"
        );
    }
    // The file system as dockerd's layers hold it: the whiteouts, the symlink, the owners, and the hard link
    // broken by the chown's copy-up (dockerd's last layer carries the two names as separate files too).
    let probe = ok(&d.docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "fixture/webapp:berth",
        "-c",
        "ls /etc/demo; ls /srv/app/old; stat -c '%h %u:%g' site/index.html site/hard.html; readlink link.html; id -u",
    ]));
    assert_eq!(
        probe,
        "keep\nonly\n1 1000:1000\n1 1000:1000\n/srv/app/site/index.html\n1000\n"
    );
}

/// The first layer's tar of a legacy `docker save` archive.
fn first_layer(save: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut manifest = None;
    let mut layers = std::collections::HashMap::new();
    let mut a = tar::Archive::new(std::fs::File::open(save).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        if name == "manifest.json" {
            manifest = Some(data);
        } else if name.ends_with("layer.tar") {
            layers.insert(name, data);
        }
    }
    let m: serde_json::Value = serde_json::from_slice(&manifest.unwrap()).unwrap();
    let first = m[0]["Layers"][0].as_str().unwrap().to_owned();
    layers.remove(&first).unwrap()
}

/// A context tar holding only `dockerfile`.
fn dockerfile_tar(dockerfile: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_path("Dockerfile").unwrap();
    h.set_cksum();
    b.append(&h, dockerfile.as_bytes()).unwrap();
    b.into_inner().unwrap()
}

/// Starts `POST /build?{query}` of a context whose last step is `RUN sleep 30` on a raw connection, and
/// returns the connection once the step container runs (the stream said ` ---> Running in`).
fn build_until_running(d: &Daemon, query: &str) -> std::os::unix::net::UnixStream {
    build_until(
        d,
        query,
        "FROM busybox\nENV STEP=1\nRUN sleep 30\n",
        "Step 3/3",
    )
}

/// Starts `POST /build?{query}` of `dockerfile` on a raw connection, and returns the connection once the
/// stream has said ` ---> Running in` after `step`.
fn build_until(
    d: &Daemon,
    query: &str,
    dockerfile: &str,
    step: &str,
) -> std::os::unix::net::UnixStream {
    build_until_with(d, query, &[], dockerfile, step)
}

/// [`build_until`] with the request headers `headers` added.
fn build_until_with(
    d: &Daemon,
    query: &str,
    headers: &[(&str, &str)],
    dockerfile: &str,
    step: &str,
) -> std::os::unix::net::UnixStream {
    use std::io::{Read, Write};
    let tar = dockerfile_tar(dockerfile);
    let mut s = std::os::unix::net::UnixStream::connect(d.socket()).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "POST /build?{query} HTTP/1.1\r\nHost: berth\r\nContent-Type: application/x-tar\r\nConnection: close\r\n{extra}Content-Length: {}\r\n\r\n",
        tar.len()
    )
    .unwrap();
    s.write_all(&tar).unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(i) = seen.find(step) {
            // That step's container, not an earlier one's.
            if seen[i..].contains("Running in") {
                break;
            }
        }
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("reading the build's stream: {e}\n{seen}\n{}", d.log()));
        assert_ne!(n, 0, "the build ended: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    s
}

/// Waits (up to 10 s) until no container is left, running or not, and no mount of the build remains.
fn assert_build_left_nothing(d: &Daemon, images_before: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ps = ok(&d.docker(&["ps", "-aq"]));
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let root = d.data_root();
        let ours: Vec<&str> = mounts
            .lines()
            .filter(|l| l.contains(root.to_str().unwrap()))
            .collect();
        let builds = std::fs::read_dir(root.join("build"))
            .map(|e| e.count())
            .unwrap_or(0);
        if ps.trim().is_empty() && ours.is_empty() && builds == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after the cancel: containers {ps:?}, mounts {ours:?}, {builds} build directories\n{}",
            d.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // No image was made of the cancelled step (the ENV step's image, finished before, is a cache entry).
    let images = ok(&d.docker(&["images", "-aq", "--no-trunc"]));
    let new: Vec<&str> = images
        .lines()
        .filter(|i| !images_before.contains(i))
        .collect();
    assert!(new.len() <= 1, "images made: {new:?}");
    for id in new {
        let history = d.get_json(&format!("/images/{id}/history"));
        assert!(!history.to_string().contains("sleep"), "{history}");
    }
}

#[test]
fn a_build_is_cancelled_when_its_client_goes_away() {
    let d = common::docker_daemon();
    let before = ok(&d.docker(&["images", "-aq", "--no-trunc"]));
    let s = build_until_running(&d, "t=cancelled:1&rm=1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ok(&d.docker(&["ps", "-q"])).lines().count() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the step container does not run: {}",
            ok(&d.docker(&["ps", "-a"]))
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(s);
    let t0 = std::time::Instant::now();
    assert_build_left_nothing(&d, &before);
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    assert!(d.log().contains("build cancelled"), "{}", d.log());
    assert_ne!(
        d.docker(&["image", "inspect", "cancelled:1"]).status.code(),
        Some(0),
        "a cancelled build tags nothing"
    );
    // The daemon builds on as before.
    let o = d.request(
        "POST",
        "/build?t=after:1",
        &dockerfile_tar("FROM busybox\nENV STEP=1\nRUN true\n"),
    );
    assert!(
        o.text().contains("Successfully tagged after:1"),
        "{}",
        o.text()
    );
}

#[test]
fn build_cancel_stops_the_build_with_that_id() {
    use std::io::Read;
    let d = common::docker_daemon();
    let r = d.request("POST", "/build/cancel", &[]);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("build ID not provided"), "{}", r.text());
    let r = d.request("POST", "/build/cancel?id=nosuchbuild", &[]);
    assert_eq!(r.status, 200, "{}", r.text());

    let before = ok(&d.docker(&["images", "-aq", "--no-trunc"]));
    let mut s = build_until_running(&d, "buildid=b-42&forcerm=0");
    let t0 = std::time::Instant::now();
    let r = d.request("POST", "/build/cancel?id=b-42", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    // The stream ends with the build's error, long before the step's 30 s.
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_secs(10));
    assert!(rest.contains("build cancelled"), "{rest}");
    assert!(!rest.contains("Successfully built"), "{rest}");
    assert_build_left_nothing(&d, &before);
}

/// The images of a build under way are in use by the build: a concurrent `image prune` does not take the
/// finished first stage's image (untagged, without children and used by no container: dangling), and the
/// build's `COPY --from` of it works; once the build is over, the image is an ordinary dangling one.
#[test]
fn image_prune_leaves_the_images_of_a_build_under_way() {
    use std::io::Read;
    let d = common::docker_daemon();
    let mut s = build_until(
        &d,
        "t=held:1",
        "FROM busybox AS one\nRUN echo one > /one\nFROM busybox\nRUN sleep 3\nCOPY --from=one /one /one\n",
        "Step 4/5",
    );
    let pruned = ok(&d.docker(&["image", "prune", "-f"]));
    assert!(!pruned.contains("deleted:"), "{pruned}");
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    assert!(rest.contains("Successfully tagged held:1"), "{rest}");
    // Released with the build's end: the first stage's image is dangling now, and prune takes it.
    let pruned = ok(&d.docker(&["image", "prune", "-f"]));
    assert!(pruned.contains("deleted:"), "{pruned}");
}

/// A cache a running build uses is `InUse` in `system df`, and `builder prune` leaves it, as BuildKit never
/// prunes a record in use; once the build ends it can go.
#[test]
fn builder_prune_never_takes_a_cache_a_build_is_using() {
    let d = common::docker_daemon();
    let ctx = d.context(
        "busy",
        "FROM busybox:latest\n\
         RUN --mount=type=cache,target=/cache sh -c 'echo kept > /cache/f; i=0; while [ $i -lt 300 ] && [ ! -e /cache/go ]; do sleep 0.1; i=$((i+1)); done; cat /cache/f'\n",
    );
    let ctx_s = ctx.to_str().unwrap().to_owned();
    let builder = {
        let host = d.host();
        let config = d.dir.path().join("docker-config");
        std::thread::spawn(move || {
            Command::new(common::docker_bin())
                .args(["build", "-t", "busy:1", &ctx_s])
                .env("DOCKER_HOST", host)
                .env("DOCKER_CONFIG", config)
                .env("DOCKER_BUILDKIT", "0")
                .output()
                .unwrap()
        })
    };
    // Wait until the step runs with its cache.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let cache = loop {
        let df = d.get_json("/system/df?type=build-cache");
        if let Some(c) = df["BuildCache"].as_array().and_then(|a| a.first()) {
            if c["Size"].as_u64() > Some(0) {
                break c.clone();
            }
        }
        assert!(std::time::Instant::now() < deadline, "{df}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(cache["InUse"], true, "{cache}");
    let pruned = d.request("POST", "/build/prune?all=1", b"");
    assert_eq!(
        pruned.json(),
        serde_json::json!({"CachesDeleted": [], "SpaceReclaimed": 0})
    );
    // Let the step finish: it still reads what it wrote.
    let id = cache["ID"].as_str().unwrap();
    std::fs::write(d.data_root().join("build-cache").join(id).join("go"), b"").unwrap();
    let o = builder.join().unwrap();
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert!(out(&o).contains("kept"), "{}", out(&o));
    let df = d.get_json("/system/df?type=build-cache");
    assert_eq!(df["BuildCache"][0]["InUse"], false, "{df}");
    let pruned = d.request("POST", "/build/prune", b"").json();
    assert_eq!(pruned["CachesDeleted"], serde_json::json!([id]), "{pruned}");
}

/// The step containers' settings a classic build takes (`--ulimit`, `--cgroup-parent`, `--cpuset-mems`) reach
/// its RUN steps; `--security-opt` and an isolation other than the default are refused with dockerd's words.
#[test]
fn build_ulimits_cgroup_parent_and_cpuset_mems_reach_the_run_steps() {
    let d = common::docker_daemon();
    let ctx = d.context(
        "limits-ctx",
        "FROM busybox:latest\n\
         RUN echo \"$(ulimit -Sn):$(ulimit -Hn)\" > /nofile && cat /proc/self/cgroup > /cgroup \
         && cat /sys/fs/cgroup/cpuset/cpuset.mems /sys/fs/cgroup/cpuset.mems 2>/dev/null > /mems; true\n",
    );
    let ctx = ctx.display().to_string();
    let o = build(
        &d,
        &[
            "-t",
            "limited",
            "--ulimit",
            "nofile=1024:2048",
            "--cgroup-parent",
            "berth-build-test",
            "--cpuset-mems",
            "0",
            &ctx,
        ],
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    let seen = |file: &str| {
        ok(&d.docker(&["run", "--rm", "limited", "cat", file]))
            .trim()
            .to_owned()
    };
    assert_eq!(seen("/nofile"), "1024:2048");
    assert_eq!(seen("/mems"), "0");
    if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        // v1: the host's cgroup namespace, so the step's own path shows under the parent asked for.
        let cgroup = seen("/cgroup");
        assert!(
            cgroup
                .lines()
                .any(|l| l.contains(":memory:/berth-build-test/")),
            "{cgroup}"
        );
    }

    for (args, want) in [
        (
            &["--security-opt", "seccomp=unconfined"][..],
            "The daemon on this platform does not support setting security options on build",
        ),
        (
            &["--isolation", "hyperv"][..],
            "unsupported isolation: \"hyperv\"",
        ),
    ] {
        let mut argv = args.to_vec();
        argv.push(&ctx);
        let o = build(&d, &argv);
        assert!(!o.status.success(), "{args:?}");
        assert!(
            err(&o).contains(&format!("Error response from daemon: {want}")),
            "{args:?}: {}",
            err(&o)
        );
    }
}

/// A big context file (1 MiB or more) sent again is linked from the copy kept after the last build
/// rather than written: the cache hits as before and the image is the same. A file changed in one byte,
/// with the same name, size and time, misses at its COPY and the image holds the new content; sent back
/// as it was, it hits the first build's cache again.
#[test]
fn a_big_context_file_sent_again_hits_the_cache_and_a_changed_one_is_copied_as_sent() {
    let d = common::docker_daemon();
    let ctx = d.context(
        "bigctx",
        "FROM busybox:latest\nCOPY big.bin /big.bin\nRUN sha256sum /big.bin > /sum\nCMD [\"cat\", \"/sum\"]\n",
    );
    let original: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let big = ctx.join("big.bin");
    let put = |content: &[u8]| {
        std::fs::write(&big, content).unwrap();
        let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
        std::fs::File::options()
            .write(true)
            .open(&big)
            .unwrap()
            .set_modified(when)
            .unwrap();
    };
    let host_sum = || {
        let o = Command::new("sha256sum").arg(&big).output().unwrap();
        out(&o).split_whitespace().next().unwrap().to_owned()
    };
    let ctx_s = ctx.to_str().unwrap();
    let run = |want_cached: usize| {
        let o = build(&d, &["-t", "big:1", ctx_s]);
        let text = out(&o);
        assert!(o.status.success(), "{text}{}", err(&o));
        assert_eq!(cached(&text), want_cached, "{text}");
        let shown = ok(&d.docker(&["run", "--rm", "--network", "none", "big:1"]));
        assert!(shown.starts_with(&host_sum()), "{shown}");
        image_id(&d, "big:1")
    };

    put(&original);
    let first = run(0);
    let kept = d.data_root().join("build-kept");
    assert_eq!(std::fs::read_dir(&kept).unwrap().count(), 1);
    assert_eq!(run(3), first);

    let mut changed = original.clone();
    changed[1_500_000] ^= 0xff;
    put(&changed);
    let second = run(0);
    assert_ne!(second, first);

    put(&original);
    assert_eq!(run(3), first);
    assert_eq!(std::fs::read_dir(&kept).unwrap().count(), 1);

    // builder prune takes the kept files too.
    ok(&d.docker(&["builder", "prune", "-f"]));
    assert_eq!(std::fs::read_dir(&kept).unwrap().count(), 0);
}

/// A secret value no step may leave anywhere: steps that read it write `SEEN-…` in its place (`sed`), so
/// the image proves they saw it whole while a search for the value itself finds nothing.
const SECRET: &str = "sekrit-5f3a9c1e";

/// `berth build ARGS…` with the environment `env` added.
fn berth_build_env(d: &Daemon, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::berth_bin());
    cmd.arg("-H").arg(d.host()).arg("build").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Every layer tar of `image`, by `berth save`: (entry names, the layer's bytes).
fn saved_layers(d: &Daemon, image: &str) -> Vec<(Vec<String>, Vec<u8>)> {
    use std::io::Read;
    let save = d
        .dir
        .path()
        .join(format!("{}.tar", image.replace(':', "-")));
    let o = d.berth(&["save", "-o", save.to_str().unwrap(), image]);
    assert!(o.status.success(), "{}", err(&o));
    let mut files = std::collections::HashMap::new();
    let mut a = tar::Archive::new(std::fs::File::open(&save).unwrap());
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        files.insert(name, data);
    }
    let m: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let layers = m[0]["Layers"].as_array().unwrap();
    assert!(!layers.is_empty(), "{m}");
    layers
        .iter()
        .map(|l| {
            let data = files[l.as_str().unwrap()].clone();
            let names = tar::Archive::new(&data[..])
                .entries()
                .unwrap()
                .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
                .collect();
            (names, data)
        })
        .collect()
}

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Every file under `dir` (not following symlinks) whose content holds `needle`.
fn files_holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                if let Ok(data) = std::fs::read(e.path()) {
                    if contains(&data, needle) {
                        found.push(e.path());
                    }
                }
            }
        }
    }
    found
}

#[test]
fn build_secrets_reach_run_steps_and_leave_no_trace() {
    let d = Daemon::with_busybox();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let secret_file = d.dir.path().join("tok.txt");
    std::fs::write(&secret_file, SECRET).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\n\
         ENV TOKEN=public\n\
         RUN --mount=type=secret,id=tok sed s/sekrit/SEEN/ /run/secrets/tok > /out && stat -c '%a %u:%g' /run/secrets/tok > /perm\n\
         RUN --mount=type=secret,id=tok,target=/s,mode=0440,uid=1000,gid=1001 sed s/sekrit/SEEN/ /s > /out2 && stat -c '%a %u:%g' /s > /perm2 && (echo x > /s || echo read-only > /ro)\n\
         RUN --mount=type=secret,id=tok,env=TOKEN echo \"$TOKEN\" | sed s/sekrit/SEEN/ > /out3 && (test -e /run/secrets/tok || echo no-file > /nofile)\n\
         RUN --mount=type=secret,id=fromenv,required=true sed s/sekrit/SEEN/ /run/secrets/fromenv > /out4 && echo mine > /run/mine\n\
         RUN --mount=type=cache,target=/var/cache/c --mount=type=tmpfs,target=/scratch --mount=type=bind,source=Dockerfile,target=/in/df true\n",
    )
    .unwrap();
    let src = format!("id=tok,src={}", secret_file.display());
    let o = berth_build_env(
        &d,
        &[
            "--secret",
            &src,
            "--secret",
            "id=fromenv,env=BERTH_TEST_SECRET",
            "-t",
            "s:1",
            ctx.to_str().unwrap(),
        ],
        &[("BERTH_TEST_SECRET", SECRET)],
    );
    assert!(o.status.success(), "{}{}\n{}", out(&o), err(&o), d.log());
    assert!(!out(&o).contains(SECRET), "{}", out(&o));
    // No tmpfs of the build stays: it goes with the build, before the build's answer ends.
    let mounts = common::mounts_under(&d.data_root());
    assert!(
        !mounts.iter().any(|m| m.ends_with("/secrets")),
        "{mounts:?}"
    );
    let show = |f: &str| ok(&d.berth(&["run", "--rm", "s:1", "cat", f]));
    let seen = SECRET.replace("sekrit", "SEEN");
    assert_eq!(show("/out"), seen);
    assert_eq!(show("/perm"), "400 0:0\n");
    assert_eq!(show("/out2"), seen);
    assert_eq!(show("/perm2"), "440 1000:1001\n");
    assert_eq!(show("/ro"), "read-only\n");
    // The variable replaced the image's own for that step's process, and env= alone makes no file.
    assert_eq!(show("/out3"), format!("{seen}\n"));
    assert_eq!(show("/nofile"), "no-file\n");
    assert_eq!(show("/out4"), seen);
    assert_eq!(show("/run/mine"), "mine\n");

    // Nothing of the secret in any layer: not its value, nor its mountpoints (the step's own file in /run
    // stays, the /run/secrets the runtime made for the mount does not).
    let layers = saved_layers(&d, "s:1");
    for (names, data) in &layers {
        assert!(!contains(data, SECRET), "the value in a layer: {names:?}");
        // Nor those of the other mounts (made in a step that changes nothing else).
        assert!(
            !names.iter().any(|n| n.contains("secrets")
                || n == "s"
                || ["var", "scratch", "in"].contains(&n.split('/').next().unwrap_or(""))),
            "a mountpoint in a layer: {names:?}"
        );
    }
    assert!(
        layers
            .iter()
            .any(|(names, _)| names.iter().any(|n| n == "run/mine")),
        "{:?}",
        layers.iter().map(|l| &l.0).collect::<Vec<_>>()
    );
    // Nor in the history, the image's config (the ENV stays the image's) or anywhere in the data root.
    let history = ok(&d.berth(&["history", "--no-trunc", "s:1"]));
    assert!(!history.contains(SECRET), "{history}");
    assert!(history.contains("--mount=type=secret,id=tok"), "{history}");
    let inspect = ok(&d.berth(&["image", "inspect", "s:1"]));
    assert!(!inspect.contains(SECRET), "{inspect}");
    let env = ok(&d.berth(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        "s:1",
    ]));
    assert!(env.contains("\"TOKEN=public\""), "{env}");
    assert_eq!(files_holding(&d.data_root(), SECRET), Vec::<PathBuf>::new());

    // The same build again is all from the cache: the secret's value is no part of a key.
    let o = berth_build_env(
        &d,
        &[
            "--secret",
            &src,
            "--secret",
            "id=fromenv,env=BERTH_TEST_SECRET",
            ctx.to_str().unwrap(),
        ],
        &[("BERTH_TEST_SECRET", "another value")],
    );
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert_eq!(cached(&out(&o)), 6, "{}", out(&o));

    // A step that fails keeps its container (no --force-rm, as dockerd), whose record holds no secret.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=secret,id=tok,env=TOKEN test \"$(echo $TOKEN | sed s/sekrit/SEEN/)\" = SEEN-5f3a9c1e && exit 3\n",
    )
    .unwrap();
    let o = berth_build_env(&d, &["--secret", &src, ctx.to_str().unwrap()], &[]);
    assert_eq!(o.status.code(), Some(1), "{}{}", out(&o), err(&o));
    assert!(
        err(&o).contains("returned a non-zero code: 3"),
        "{}",
        err(&o)
    );
    let left = ok(&d.berth(&["ps", "-aq"]));
    assert_eq!(left.lines().count(), 1, "{left}");
    let inspect = ok(&d.berth(&["inspect", left.trim()]));
    assert!(!inspect.contains(SECRET), "{inspect}");
    assert_eq!(files_holding(&d.data_root(), SECRET), Vec::<PathBuf>::new());
}

#[test]
fn build_secrets_missing_fail_when_required_and_are_skipped_otherwise() {
    let d = Daemon::with_busybox();
    let ctx = d.context(
        "ctx",
        "FROM busybox\nRUN --mount=type=secret,id=tok test ! -e /run/secrets/tok && echo skipped > /skipped\n",
    );
    let ctx_s = ctx.to_str().unwrap();
    let o = d.berth(&["build", "-t", "m:1", ctx_s]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "m:1", "cat", "/skipped"])),
        "skipped\n"
    );
    // BuildKit's words, with or without other secrets given.
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN --mount=type=secret,id=tok,required cat /run/secrets/tok\n",
    )
    .unwrap();
    for extra in [&[][..], &["--secret", "id=other,env=BERTH_TEST_OTHER"][..]] {
        let mut args = extra.to_vec();
        args.push(ctx_s);
        let o = berth_build_env(&d, &args, &[("BERTH_TEST_OTHER", "x")]);
        assert_eq!(o.status.code(), Some(1), "{}", out(&o));
        assert!(err(&o).contains("secret tok: not found"), "{}", err(&o));
    }
    // A --secret whose variable is not set is no secret.
    let o = berth_build_env(
        &d,
        &["--secret", "id=tok,env=BERTH_TEST_UNSET_VAR", ctx_s],
        &[],
    );
    assert!(err(&o).contains("secret tok: not found"), "{}", err(&o));
    // The CLI's own checks, in the docker CLI's words.
    let o = d.berth(&[
        "build",
        "--secret",
        "id=tok,src=/nonexistent/berth-secret",
        ctx_s,
    ]);
    assert!(
        err(&o).contains("failed to stat /nonexistent/berth-secret"),
        "{}",
        err(&o)
    );
    let o = d.berth(&["build", "--secret", "src=/etc/hostname", ctx_s]);
    assert!(err(&o).contains("secret missing ID"), "{}", err(&o));
    // A malformed header is a 400 naming it.
    let r = common::http_request(
        &d.socket(),
        "POST",
        "/build",
        &[("X-Berth-Build-Secrets", "not base64!")],
        &dockerfile_tar("FROM busybox\n"),
    )
    .unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.text()
            .contains("invalid x-berth-build-secrets header: not base64"),
        "{}",
        r.text()
    );
    // Nothing of the builds is left mounted.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !common::mounts_under(&d.data_root().join("build")).is_empty()
        || !common::mounts_under(&d.data_root().join("build-trash")).is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            common::mounts_under(&d.data_root())
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn build_secrets_of_64_kib_fit_in_the_request_head() {
    let d = Daemon::with_busybox();
    let ctx = d.context(
        "ctx",
        "FROM busybox\nRUN --mount=type=secret,id=a --mount=type=secret,id=b,required cat /run/secrets/a /run/secrets/b | wc -c > /size\n",
    );
    // 64 KiB of values in all, of every byte value: twice base64-encoded, 114 KiB of header.
    let value: Vec<u8> = (0..32 * 1024).map(|i| (i % 256) as u8).collect();
    let (a, b) = (d.dir.path().join("a"), d.dir.path().join("b"));
    std::fs::write(&a, &value).unwrap();
    std::fs::write(&b, &value).unwrap();
    let o = d.berth(&[
        "build",
        "--secret",
        &format!("id=a,src={}", a.display()),
        "--secret",
        &format!("id=b,src={}", b.display()),
        "-t",
        "big:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}{}", out(&o), err(&o));
    assert_eq!(
        ok(&d.berth(&["run", "--rm", "big:1", "cat", "/size"])).trim(),
        "65536"
    );
}

#[test]
fn a_daemon_killed_mid_build_unmounts_the_builds_secrets_at_its_next_start() {
    use base64::Engine as _;
    let mut d = Daemon::with_busybox();
    let b64 = base64::engine::general_purpose::STANDARD;
    let header = b64.encode(serde_json::json!({ "tok": b64.encode(SECRET) }).to_string());
    let s = build_until_with(
        &d,
        "",
        &[("X-Berth-Build-Secrets", &header)],
        "FROM busybox\nRUN --mount=type=secret,id=tok sleep 30\n",
        "Step 2/2",
    );
    let secrets = |d: &Daemon| -> Vec<String> {
        common::mounts_under(&d.data_root())
            .into_iter()
            .filter(|m| m.ends_with("/secrets"))
            .collect()
    };
    // The secret is on the build's tmpfs while the step runs, and nowhere on disk.
    let mounted = secrets(&d);
    assert_eq!(
        mounted.len(),
        1,
        "{:?}",
        common::mounts_under(&d.data_root())
    );
    assert_eq!(files_holding(Path::new(&mounted[0]), SECRET).len(), 1);
    d.kill();
    drop(s);
    assert_eq!(secrets(&d), mounted, "the crash leaves it mounted");
    d.spawn();
    assert_eq!(secrets(&d), Vec::<String>::new(), "{}", d.log());
}

/// The `ls -a` line (`. .. …`) a successful build printed.
fn listing_of(o: &Output) -> String {
    let text = out(o);
    assert!(o.status.success(), "{text}{}", err(o));
    text.lines()
        .find(|l| l.starts_with(". .. "))
        .unwrap_or_else(|| panic!("no listing in {text}"))
        .trim_end()
        .to_owned()
}

/// dockerd reads the Dockerfile and `.dockerignore` of an uploaded context, then removes each from it when
/// `.dockerignore` lists it; a Dockerfile from outside the context (the CLI adds it under a random name and
/// lists that name in `.dockerignore`) leaves nothing behind. Observed with Debian's dockerd 20.10 and the
/// docker CLI 28: `. .. .dockerignore keep.txt`, `. .. keep.txt logs`, `. .. Dockerfile keep.txt logs`.
#[test]
fn the_dockerfile_and_dockerignore_leave_the_context_when_dockerignore_lists_them() {
    let d = common::docker_daemon();
    let ctx = d.dir.path().join("ctx");
    std::fs::create_dir_all(ctx.join("logs")).unwrap();
    std::fs::write(ctx.join("logs/l"), "l").unwrap();
    std::fs::write(ctx.join("keep.txt"), "k").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nCOPY . /ctx/\nRUN ls -a /ctx | sort | tr '\\n' ' '; echo\n",
    )
    .unwrap();
    let listing = |args: &[&str]| {
        let mut all = vec!["--no-cache"];
        all.extend_from_slice(args);
        listing_of(&build(&d, &all))
    };
    let ctx_s = ctx.to_str().unwrap();
    std::fs::write(ctx.join(".dockerignore"), "logs\n*.secret\nDockerfile\n").unwrap();
    assert_eq!(listing(&[ctx_s]), ". .. .dockerignore keep.txt");
    std::fs::write(ctx.join(".dockerignore"), "Dockerfile\n.dockerignore\n").unwrap();
    assert_eq!(listing(&[ctx_s]), ". .. keep.txt logs");
    // An exception brings the Dockerfile back.
    std::fs::write(ctx.join(".dockerignore"), "Docker*\n!Dockerfile\n").unwrap();
    assert_eq!(
        listing(&[ctx_s]),
        ". .. .dockerignore Dockerfile keep.txt logs"
    );
    std::fs::remove_file(ctx.join(".dockerignore")).unwrap();
    let outside = d.dir.path().join("df");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(ctx.join("Dockerfile"), outside.join("Dockerfile")).unwrap();
    let df = outside.join("Dockerfile");
    assert_eq!(
        listing(&["-f", df.to_str().unwrap(), ctx_s]),
        ". .. Dockerfile keep.txt logs"
    );
    // `berth build` sends the same context, with or without a .dockerignore of the context's own.
    let berth_listing =
        || listing_of(&d.berth(&["build", "--no-cache", "-f", df.to_str().unwrap(), ctx_s]));
    assert_eq!(berth_listing(), ". .. Dockerfile keep.txt logs");
    std::fs::write(ctx.join(".dockerignore"), "logs\n").unwrap();
    assert_eq!(berth_listing(), ". .. .dockerignore Dockerfile keep.txt");
    assert_eq!(
        listing(&["-f", df.to_str().unwrap(), ctx_s]),
        ". .. .dockerignore Dockerfile keep.txt"
    );
}
