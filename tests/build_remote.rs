//! What a build fetches over HTTP and git, as dockerd's classic builder does: `ADD http://…` (mode 0600,
//! the `Last-Modified` time, never extracted, redirects followed, `--checksum`, dockerd's error on a 404, the
//! cache), remote contexts (`POST /build?remote=` with a tar, a compressed tar, a plain Dockerfile, a git
//! repository; `docker build URL`), and bzip2 and xz compressed contexts. The files are served from the
//! test's own loopback server, inside the daemon's network namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{err, ok, Daemon};

/// What the server answers for one path.
#[derive(Clone)]
struct Answer {
    status: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    /// Send the head and half the body, then nothing for a minute (a transfer to cancel).
    stall: bool,
}

impl Answer {
    fn ok(body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status: "200 OK",
            headers: Vec::new(),
            body: body.into(),
            stall: false,
        }
    }

    fn with(mut self, name: &'static str, value: &str) -> Answer {
        self.headers.push((name, value.to_owned()));
        self
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 in the daemon's network namespace: one connection at a time,
/// `Connection: close`, a 404 with a body for what it does not have; it counts the GETs per path.
struct Server {
    port: u16,
    files: Arc<Mutex<HashMap<String, Answer>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

/// Answers one request on `conn` (`Connection: close`).
fn answer(
    mut conn: std::net::TcpStream,
    files: &Mutex<HashMap<String, Answer>>,
    hits: &Mutex<HashMap<String, usize>>,
) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
            break;
        }
    }
    // The query is not looked at (git's dumb HTTP asks `info/refs?service=…`).
    let target = line.split(' ').nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or(target).to_owned();
    *hits.lock().unwrap().entry(path.clone()).or_default() += 1;
    let answer = files.lock().unwrap().get(&path).cloned().unwrap_or(Answer {
        status: "404 Not Found",
        headers: Vec::new(),
        body: b"no such file here\n".to_vec(),
        stall: false,
    });
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (k, v) in &answer.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    if answer.stall {
        let _ = conn.write_all(&answer.body[..answer.body.len() / 2]);
        std::thread::sleep(Duration::from_secs(60));
        return;
    }
    let _ = conn.write_all(&answer.body);
}

impl Server {
    fn start(d: &Daemon) -> Server {
        let listener = d.in_netns(|| TcpListener::bind("127.0.0.1:0").unwrap());
        let port = listener.local_addr().unwrap().port();
        let files: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let (f, h) = (files.clone(), hits.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (f, h) = (f.clone(), h.clone());
                std::thread::spawn(move || answer(conn, &f, &h));
            }
        });
        Server { port, files, hits }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn serve(&self, path: &str, answer: Answer) {
        self.files.lock().unwrap().insert(path.to_owned(), answer);
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

/// `docker build ARGS…` with the classic builder, in the daemon's network namespace (the CLI fetches a
/// URL context itself).
fn docker_build(d: &Daemon, args: &[&str]) -> Output {
    let mut cmd = d.docker_command(&["build"]);
    cmd.args(args).env("DOCKER_BUILDKIT", "0");
    d.netns_command(&mut cmd);
    cmd.output().unwrap()
}

/// A context directory holding only `dockerfile`.
fn context_with(d: &Daemon, name: &str, dockerfile: &str) -> String {
    d.context(name, dockerfile).to_string_lossy().into_owned()
}

fn using_cache(o: &str) -> usize {
    o.matches("Using cache").count()
}

fn run(d: &Daemon, image: &str, script: &str) -> String {
    ok(&d.docker(&["run", "--rm", image, "sh", "-c", script]))
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    common::context_tar(files)
}

#[test]
fn add_url_fetches_a_file_as_dockerd_and_a_rebuild_uses_the_cache() {
    let d = common::docker_daemon();
    let s = Server::start(&d);
    s.serve(
        "/files/hello.txt",
        Answer::ok("hello over http\n").with("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT"),
    );
    s.serve(
        "/moved",
        Answer {
            status: "302 Found",
            headers: vec![("Location", "/files/hello.txt".into())],
            body: Vec::new(),
            stall: false,
        },
    );
    // A tar from a URL is copied as a file, never extracted.
    s.serve(
        "/files/app.tar",
        Answer::ok(tar_of(&[("inner.txt", b"in the tar\n")])),
    );
    let df = format!(
        "FROM busybox:latest\n\
         ADD {hello} /dst/\n\
         ADD {moved} /renamed\n\
         ADD {tar} /tars/\n\
         RUN stat -c '%a %Y %s %n' /dst/hello.txt /renamed /tars/app.tar && cat /dst/hello.txt && ls /tars\n",
        hello = s.url("/files/hello.txt"),
        moved = s.url("/moved"),
        tar = s.url("/files/app.tar"),
    );
    let ctx = context_with(&d, "ctx-add", &df);
    let first = docker_build(&d, &["-t", "addurl", &ctx]);
    let text = ok(&first);
    assert!(
        text.contains("600 1445412480 16 /dst/hello.txt"),
        "mode 0600 and the Last-Modified time: {text}"
    );
    assert!(text.contains("600 1445412480 16 /renamed"), "{text}");
    // No Last-Modified: the epoch, as dockerd sets it.
    assert!(
        text.lines()
            .any(|l| l.starts_with("600 0 ") && l.ends_with(" /tars/app.tar")),
        "{text}"
    );
    assert!(text.contains("hello over http"), "{text}");
    assert_eq!(run(&d, "addurl", "ls /tars"), "app.tar\n");
    assert_eq!(using_cache(&text), 0, "{text}");

    // Same content: every step from the cache, though the files are fetched again to be hashed.
    let before = s.hits("/files/hello.txt");
    let again = ok(&docker_build(&d, &["-t", "addurl", &ctx]));
    assert_eq!(using_cache(&again), 4, "{again}");
    assert!(
        s.hits("/files/hello.txt") > before,
        "fetched again for the key"
    );

    // Changed content: that step and the ones after it run again.
    s.serve("/files/app.tar", Answer::ok("not a tar any more\n"));
    let changed = ok(&docker_build(&d, &["-t", "addurl", &ctx]));
    assert_eq!(using_cache(&changed), 2, "{changed}");
    assert_eq!(
        run(&d, "addurl", "cat /tars/app.tar"),
        "not a tar any more\n"
    );
}

#[test]
fn add_url_failures_and_checksums_are_worded_as_docker() {
    let d = common::docker_daemon();
    let s = Server::start(&d);
    let data = b"checked content\n";
    s.serve("/sum.txt", Answer::ok(&data[..]));
    let missing = s.url("/missing.txt");
    let ctx = context_with(
        &d,
        "ctx-404",
        &format!("FROM busybox:latest\nADD {missing} /x\n"),
    );
    let o = docker_build(&d, &[&ctx]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!(
            "failed to GET {missing} with status 404 Not Found: no such file here"
        )),
        "{}",
        err(&o)
    );

    let good = common::archive::sha256(data);
    let ctx = context_with(
        &d,
        "ctx-sum",
        &format!(
            "FROM busybox:latest\nADD --checksum={good} {} /sum.txt\nRUN cat /sum.txt\n",
            s.url("/sum.txt")
        ),
    );
    let text = ok(&docker_build(&d, &["-t", "summed", &ctx]));
    assert!(text.contains("checked content"), "{text}");

    let wrong = common::archive::sha256(b"something else");
    let ctx = context_with(
        &d,
        "ctx-badsum",
        &format!(
            "FROM busybox:latest\nADD --checksum={wrong} {} /sum.txt\n",
            s.url("/sum.txt")
        ),
    );
    let o = docker_build(&d, &[&ctx]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains(&format!("digest mismatch {good}: {wrong}")),
        "{}",
        err(&o)
    );
}

/// `POST /build?QUERY` with `body` as the context; answers the stream's text.
fn api_build(d: &Daemon, query: &str, body: &[u8]) -> String {
    let r = d.request("POST", &format!("/build?{query}"), body);
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The stream's `stream` text, joined, and its error if any.
fn stream_and_error(text: &str) -> (String, Option<String>) {
    let mut out = String::new();
    let mut error = None;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(s) = v["stream"].as_str() {
            out.push_str(s);
        }
        if let Some(e) = v["error"].as_str() {
            error = Some(e.to_owned());
        }
    }
    (out, error)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
    bz.write_all(data).unwrap();
    bz.finish().unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut w =
        lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1)).unwrap();
    w.write_all(data).unwrap();
    w.finish().unwrap()
}

const CTX_DOCKERFILE: &str = "FROM busybox:latest\nCOPY app.txt /app.txt\nRUN cat /app.txt\n";

#[test]
fn bzip2_and_xz_contexts_build_like_gzip_ones() {
    let d = common::docker_daemon();
    let tar = tar_of(&[
        ("Dockerfile", CTX_DOCKERFILE.as_bytes()),
        ("app.txt", b"compressed context\n"),
    ]);
    let (first, error) = stream_and_error(&api_build(&d, "t=plainctx", &gzip(&tar)));
    assert_eq!(error, None, "{first}");
    for (name, body) in [("bzip2", bzip2(&tar)), ("xz", xz(&tar))] {
        assert_ne!(body, tar);
        let (text, error) = stream_and_error(&api_build(&d, &format!("t={name}ctx"), &body));
        assert_eq!(error, None, "{name}: {text}");
        // The same files: the same cache keys as the gzip context's build.
        assert_eq!(using_cache(&text), 2, "{name}: {text}");
        assert_eq!(
            run(&d, &format!("{name}ctx"), "cat /app.txt"),
            "compressed context\n"
        );
    }
    // A truncated xz stream fails the build rather than building part of it.
    let broken = xz(&tar);
    let (_, error) = stream_and_error(&api_build(&d, "t=broken", &broken[..broken.len() / 2]));
    assert!(error.is_some(), "a truncated context must fail");
}

#[test]
fn remote_tar_and_dockerfile_contexts_build_through_the_api_and_the_cli() {
    let d = common::docker_daemon();
    let s = Server::start(&d);
    let tar = tar_of(&[
        ("Dockerfile", CTX_DOCKERFILE.as_bytes()),
        ("app.txt", b"remote context\n"),
        (
            "sub/Other.dockerfile",
            b"FROM busybox:latest\nCOPY app.txt /other.txt\n",
        ),
    ]);
    s.serve(
        "/ctx.tar",
        Answer::ok(tar.clone()).with("Content-Type", "application/x-tar"),
    );
    s.serve("/ctx.tar.gz", Answer::ok(gzip(&tar)));
    s.serve("/ctx.tar.bz2", Answer::ok(bzip2(&tar)));
    s.serve(
        "/ctx.tar.xz",
        Answer::ok(xz(&tar)).with("Content-Type", "application/octet-stream"),
    );
    s.serve(
        "/Dockerfile",
        Answer::ok("FROM busybox:latest\nRUN echo from a remote dockerfile > /r.txt\n")
            .with("Content-Type", "text/plain; charset=utf-8"),
    );

    let (text, error) = stream_and_error(&api_build(
        &d,
        &format!("t=remote&remote={}", enc(&s.url("/ctx.tar"))),
        &[],
    ));
    assert_eq!(error, None, "{text}");
    assert!(text.contains("remote context"), "{text}");
    assert_eq!(run(&d, "remote", "cat /app.txt"), "remote context\n");
    for path in ["/ctx.tar.gz", "/ctx.tar.bz2", "/ctx.tar.xz"] {
        let (text, error) = stream_and_error(&api_build(
            &d,
            &format!("t=remote2&remote={}", enc(&s.url(path))),
            &[],
        ));
        assert_eq!(error, None, "{path}: {text}");
        assert_eq!(
            using_cache(&text),
            2,
            "{path}: same content, same cache: {text}"
        );
    }
    // dockerfile= is a path in the fetched context.
    let (text, error) = stream_and_error(&api_build(
        &d,
        &format!(
            "t=other&dockerfile=sub/Other.dockerfile&remote={}",
            enc(&s.url("/ctx.tar.gz"))
        ),
        &[],
    ));
    assert_eq!(error, None, "{text}");
    assert_eq!(run(&d, "other", "cat /other.txt"), "remote context\n");

    // A text answer is the Dockerfile alone.
    let (text, error) = stream_and_error(&api_build(
        &d,
        &format!("t=dfonly&remote={}", enc(&s.url("/Dockerfile"))),
        &[],
    ));
    assert_eq!(error, None, "{text}");
    assert_eq!(
        run(&d, "dfonly", "cat /r.txt"),
        "from a remote dockerfile\n"
    );

    // dockerd's words for a missing context and for something that is no URL.
    let missing = s.url("/nothing.tar");
    let r = d.request("POST", &format!("/build?remote={}", enc(&missing)), &[]);
    let all = r.text();
    assert!(
        all.contains(&format!(
            "error downloading remote context {missing}: failed to GET {missing} with status 404 Not Found: no such file here"
        )),
        "{all}"
    );
    let r = d.request("POST", "/build?remote=ftp%3A%2F%2Fx%2Fy", &[]);
    assert!(
        r.text()
            .contains("remoteURL (ftp://x/y) could not be recognized as URL"),
        "{}",
        r.text()
    );

    // berth's CLI has the daemon fetch it (`remote=`, as docker-py does).
    let text = ok(&d.berth(&["build", "-t", "berthremote", &s.url("/ctx.tar.xz")]));
    assert!(!text.contains("Sending build context"), "{text}");
    assert_eq!(using_cache(&text), 2, "{text}");
    assert_eq!(run(&d, "berthremote", "cat /app.txt"), "remote context\n");

    // The docker CLI fetches a URL context itself and sends it on; the daemon builds it from the cache.
    let o = docker_build(&d, &["-t", "cliremote", &s.url("/ctx.tar.gz")]);
    let text = ok(&o);
    assert_eq!(using_cache(&text), 2, "{text}");
}

/// A git repository with a commit on `main` (a Dockerfile at the top, another in `sub/`), served over
/// dumb HTTP by `s` as `/repo.git`.
fn git_repo(d: &Daemon, s: &Server) -> std::path::PathBuf {
    common::require("git", "git");
    let src = d.dir.path().join("git-src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("Dockerfile"), CTX_DOCKERFILE).unwrap();
    std::fs::write(src.join("app.txt"), "from git\n").unwrap();
    std::fs::write(
        src.join("sub/Dockerfile"),
        "FROM busybox:latest\nCOPY inner.txt /inner.txt\n",
    )
    .unwrap();
    std::fs::write(src.join("sub/inner.txt"), "from a subdirectory\n").unwrap();
    let git = |dir: &std::path::Path, args: &[&str]| {
        let o = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .output()
            .unwrap();
        ok(&o);
    };
    git(&src, &["init", "-q", "-b", "main"]);
    git(&src, &["add", "."]);
    git(&src, &["commit", "-q", "-m", "context"]);
    let bare = d.dir.path().join("repo.git");
    git(
        d.dir.path(),
        &["clone", "-q", "--bare", "git-src", "repo.git"],
    );
    git(&bare, &["update-server-info"]);
    // Every file of the bare repository, as a dumb-HTTP server has them.
    fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut files = Vec::new();
    walk(&bare, &bare, &mut files);
    for (rel, data) in files {
        s.serve(&format!("/repo.git/{rel}"), Answer::ok(data));
    }
    bare
}

#[test]
fn git_contexts_are_cloned_with_a_ref_and_a_subdirectory() {
    let d = common::docker_daemon();
    let s = Server::start(&d);
    git_repo(&d, &s);
    let repo = s.url("/repo.git");

    let (text, error) = stream_and_error(&api_build(
        &d,
        &format!("t=fromgit&remote={}", enc(&repo)),
        &[],
    ));
    assert_eq!(error, None, "{text}");
    assert_eq!(run(&d, "fromgit", "cat /app.txt"), "from git\n");

    let (text, error) = stream_and_error(&api_build(
        &d,
        &format!("t=fromsub&remote={}", enc(&format!("{repo}#main:sub"))),
        &[],
    ));
    assert_eq!(error, None, "{text}");
    assert_eq!(
        run(&d, "fromsub", "cat /inner.txt"),
        "from a subdirectory\n"
    );

    // The same commit again: the same context, so the cache.
    let (text, error) = stream_and_error(&api_build(
        &d,
        &format!("t=fromgit&remote={}", enc(&repo)),
        &[],
    ));
    assert_eq!(error, None, "{text}");
    assert_eq!(using_cache(&text), 2, "{text}");

    // A reference the repository lacks: git's own words in the error.
    let r = d.request(
        "POST",
        &format!("/build?remote={}", enc(&format!("{repo}#nosuchbranch"))),
        &[],
    );
    assert!(r.text().contains("error fetching"), "{}", r.text());
    assert!(r.text().contains("nosuchbranch"), "{}", r.text());
    // A subdirectory that leaves the repository is refused.
    let r = d.request(
        "POST",
        &format!("/build?remote={}", enc(&format!("{repo}#main:../.."))),
        &[],
    );
    assert!(r.text().contains("not within git root"), "{}", r.text());

    let text = ok(&d.berth(&["build", "-t", "berthgit", &format!("{repo}#main:sub")]));
    assert_eq!(using_cache(&text), 1, "{text}");
    assert_eq!(
        run(&d, "berthgit", "cat /inner.txt"),
        "from a subdirectory\n"
    );

    // The docker CLI clones a git URL itself (DOCKER_BUILDKIT=0) and sends the context on.
    let o = docker_build(&d, &["-t", "cligit", &format!("{repo}#main:sub")]);
    let text = ok(&o);
    assert_eq!(using_cache(&text), 1, "{text}");
}

#[test]
fn a_cancelled_build_stops_its_downloads() {
    let d = common::docker_daemon();
    let s = Server::start(&d);
    let mut slow = Answer::ok(vec![b'x'; 1 << 20]);
    slow.stall = true;
    s.serve("/slow.bin", slow.clone());
    s.serve("/slow.tar", slow);
    let df = format!(
        "FROM busybox:latest\nADD {} /slow.bin\n",
        s.url("/slow.bin")
    );
    let add_ctx = tar_of(&[("Dockerfile", df.as_bytes())]);
    for (id, query, body, path) in [
        ("cancel-add", String::new(), add_ctx, "/slow.bin"),
        (
            "cancel-remote",
            format!("&remote={}", enc(&s.url("/slow.tar"))),
            Vec::new(),
            "/slow.tar",
        ),
    ] {
        let socket = d.socket();
        let start = Instant::now();
        let q = format!("/build?buildid={id}{query}");
        let build =
            std::thread::spawn(move || common::http_request(&socket, "POST", &q, &[], &body));
        while s.hits(path) == 0 {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{path} never asked for"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(200));
        let r = d.request("POST", &format!("/build/cancel?id={id}"), &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        let text = build.join().unwrap().unwrap().text();
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{id}: the stalled transfer held the build"
        );
        assert!(text.contains("cancelled"), "{id}: {text}");
    }
}

/// `docker build` in BuildKit mode (Debian's docker 20.10 CLI, `DOCKER_BUILDKIT=1`).
fn buildkit_build(d: &Daemon, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let cli = std::path::Path::new("/usr/bin/docker");
    assert!(
        cli.exists(),
        "{} is missing: .ci/run installs Debian's docker.io",
        cli.display()
    );
    let mut cmd = std::process::Command::new(cli);
    cmd.arg("build")
        .arg("--progress=plain")
        .args(args)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env("DOCKER_BUILDKIT", "1")
        .env_remove("DOCKER_API_VERSION")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    d.netns_command(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.unwrap_or_default().to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    // A build that hangs fails the test rather than the run.
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("docker build {args:?} did not end in 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    feeder.join().unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn buildkit_mode_builds_url_and_piped_contexts() {
    let d = common::docker_daemon();
    let s = Server::start(&d);
    let tar = tar_of(&[
        ("Dockerfile", CTX_DOCKERFILE.as_bytes()),
        ("app.txt", b"remote context\n"),
    ]);
    s.serve("/ctx.tar.gz", Answer::ok(gzip(&tar)));
    let o = buildkit_build(&d, &["-t", "bkremote", &s.url("/ctx.tar.gz")], None);
    assert!(o.status.success(), "{}\n{}", err(&o), d.log());
    assert!(err(&o).contains("COPY"), "BuildKit's progress: {}", err(&o));
    assert_eq!(run(&d, "bkremote", "cat /app.txt"), "remote context\n");
    assert_eq!(s.hits("/ctx.tar.gz"), 1, "the daemon fetched it");

    // A piped tar comes in a request of its own, paired with the build by the session's ID.
    let piped = tar_of(&[
        ("Dockerfile", CTX_DOCKERFILE.as_bytes()),
        ("app.txt", b"piped context\n"),
    ]);
    let o = buildkit_build(&d, &["-t", "bkpiped", "-"], Some(&piped));
    assert!(o.status.success(), "{}\n{}", err(&o), d.log());
    assert_eq!(run(&d, "bkpiped", "cat /app.txt"), "piped context\n");
    // Compressed too, and from the cache the second time.
    let o = buildkit_build(&d, &["-t", "bkpiped2", "-"], Some(&gzip(&piped)));
    assert!(o.status.success(), "{}", err(&o));
    assert!(err(&o).contains("CACHED"), "{}", err(&o));
    assert_eq!(d.image_id("bkpiped2"), d.image_id("bkpiped"));
}
