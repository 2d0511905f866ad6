//! Shared harness for Berth's end-to-end tests: a daemon on a temporary root and socket, a minimal HTTP
//! client for the API, and locally made test images (no registry needed).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `berth` binary under test.
pub fn berth_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_berth"))
}

/// The test fixtures kept in the repository (`tests/fixtures/`, provenance in its README).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The dockerd-made `docker save` fixture.
pub fn webapp_fixture() -> PathBuf {
    fixtures_dir().join("dockerd-webapp/webapp-docker-save.tar")
}

/// A running `berth daemon` with its own data root, exec root and socket; killed and cleaned on drop.
///
/// Each daemon runs in a network namespace of its own (made by the test, `lo` up, kept for the daemon's
/// restarts), so its default bridge `berth0`, its 172.17.0.0/16 subnet, its nftables tables and its
/// published ports never meet those of other test daemons running in parallel or of the host. The API is a
/// unix socket, which works across network namespaces; published ports are reached from inside the
/// namespace ([`Daemon::in_netns`], [`Daemon::netns_command`]).
pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub netns: std::sync::Arc<network::NetNs>,
    /// Extra `berth daemon` flags (e.g. `--bridge`, `--bip`), used at every (re)start.
    pub args: Vec<String>,
}

impl Daemon {
    /// Starts a daemon and waits until it answers `/_ping`.
    pub fn start() -> Daemon {
        Self::start_with(&[])
    }

    /// Starts a daemon with extra flags and waits until it answers `/_ping`.
    pub fn start_with(args: &[&str]) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("berth-test-")
            .tempdir()
            .expect("tempdir");
        let netns = network::NetNs::new_anonymous("test daemon").expect("network namespace");
        network::link::set_link_up(Some(&netns), "lo").expect("lo up");
        let mut d = Daemon {
            dir,
            child: None,
            netns: std::sync::Arc::new(netns),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        d.spawn();
        d
    }

    /// Makes `cmd` run inside this daemon's network namespace.
    pub fn netns_command(&self, cmd: &mut Command) {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let fd = self.netns.fd().as_raw_fd();
        // SAFETY: setns(2) is async-signal-safe, allocation-free, and `fd` stays open in the parent (the
        // Daemon holds the namespace) until the child has execed.
        unsafe {
            cmd.pre_exec(move || {
                if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }

    /// Runs `f` on a thread inside this daemon's network namespace (to reach its published ports).
    pub fn in_netns<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.netns
            .run(f)
            .expect("enter the daemon's network namespace")
    }

    /// Data root of this daemon.
    pub fn data_root(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Exec root of this daemon.
    pub fn exec_root(&self) -> PathBuf {
        self.dir.path().join("exec")
    }

    /// Socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("berth.sock")
    }

    /// `unix://…` form of the socket, for `-H` and `DOCKER_HOST`.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket().display())
    }

    /// Daemon arguments for this root.
    pub fn daemon_command(&self) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("daemon")
            .arg("--data-root")
            .arg(self.data_root())
            .arg("--exec-root")
            .arg(self.exec_root())
            .arg("-H")
            .arg(self.host())
            .args(&self.args)
            .env("BERTH_LOG", "debug");
        // scripts/test.sh runs the escape, confinement and crash tests again with every daemon remapped.
        if let Some(remap) = std::env::var_os("BERTH_TEST_USERNS_REMAP").filter(|r| !r.is_empty()) {
            cmd.arg("--userns-remap").arg(remap);
        }
        self.netns_command(&mut cmd);
        cmd
    }

    /// Starts the daemon process (again, after a `kill`).
    pub fn spawn(&mut self) {
        self.spawn_with_env(&[]);
    }

    /// [`Daemon::spawn`] with `env` added to the daemon's environment.
    pub fn spawn_with_env(&mut self, env: &[(&str, &str)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("daemon.log"))
            .expect("log file");
        let child = self
            .daemon_command()
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn berth daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self.try_request("GET", "/_ping", &[]) {
                if r.status == 200 {
                    return;
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    panic!("daemon exited early ({status}): {}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not come up: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs the daemon (simulating a crash).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERMs the daemon and waits for it; returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("daemon running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().expect("wait daemon")
    }

    /// A build context: the directory `name` in the test's directory, holding `dockerfile` as its
    /// `Dockerfile`.
    pub fn context(&self, name: &str, dockerfile: impl AsRef<[u8]>) -> PathBuf {
        let dir = self.dir.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
        dir
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// Runs `berth -H <socket> ARGS…`.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_stdin(args, None)
    }

    /// Runs `berth -H <socket> ARGS…` with `stdin` fed from a file.
    pub fn berth_stdin(&self, args: &[&str], stdin: Option<&Path>) -> Output {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("-H").arg(self.host()).args(args);
        run_with_stdin(cmd, stdin)
    }

    /// Runs the real docker CLI against this daemon.
    pub fn docker(&self, args: &[&str]) -> Output {
        self.docker_stdin(args, None)
    }

    /// Runs the real docker CLI with `stdin` fed from a file.
    pub fn docker_stdin(&self, args: &[&str], stdin: Option<&Path>) -> Output {
        let mut cmd = Command::new(docker_bin());
        cmd.args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_API_VERSION");
        run_with_stdin(cmd, stdin)
    }

    /// `docker build ARGS…` with the classic builder (`DOCKER_BUILDKIT=0`).
    pub fn classic_build(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(docker_bin());
        cmd.arg("build")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_API_VERSION");
        cmd.output().unwrap_or_else(|e| panic!("docker build: {e}"))
    }

    /// The ID of the image `reference`, from `docker image inspect`.
    pub fn image_id(&self, reference: &str) -> String {
        ok(&self.docker(&["image", "inspect", "--format", "{{.Id}}", reference]))
            .trim()
            .to_owned()
    }

    /// One HTTP request to the API; panics if the daemon cannot be reached.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> HttpResponse {
        self.try_request(method, path, body)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.log()))
    }

    /// One HTTP request to the API.
    pub fn try_request(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<HttpResponse> {
        http_request(&self.socket(), method, path, &[], body)
    }

    /// A request whose body is streamed from a file.
    pub fn request_file(&self, method: &str, path: &str, file: &Path) -> HttpResponse {
        let body = std::fs::read(file).expect("read request body");
        self.request(method, path, &body)
    }

    /// GET and parse JSON.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.request("GET", path, &[]);
        assert_eq!(r.status, 200, "GET {path}: {}", r.text());
        r.json()
    }

    /// A daemon with `busybox:latest` (busybox-static, `CMD ["sh"]`) imported through the API.
    pub fn with_busybox() -> Daemon {
        let d = Daemon::start();
        d.import_busybox();
        d
    }

    /// Imports busybox:latest (from Debian's busybox-static) into this daemon.
    pub fn import_busybox(&self) {
        let tar = self.dir.path().join("rootfs.tar");
        busybox_rootfs_tar(&tar);
        let r = self.request_file(
            "POST",
            "/images/create?fromSrc=-&repo=busybox&tag=latest&changes=CMD%20%5B%22sh%22%5D",
            &tar,
        );
        assert_eq!(r.status, 200, "importing busybox: {}", r.text());
    }

    /// Loads the webapp fixture through the API and returns the stream's text.
    pub fn load_fixture(&self) -> String {
        let r = self.request_file("POST", "/images/load?quiet=1", &webapp_fixture());
        assert_eq!(r.status, 200);
        let text = r.text();
        assert!(text.contains("Loaded image: fixture/webapp:1.0"), "{text}");
        text
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Containers outlive their daemon by design: remove them (and their mounts) while it still runs.
        if self.child.is_some() {
            if let Ok(r) = self.try_request("GET", "/containers/json?all=1", &[]) {
                if let Ok(list) = serde_json::from_slice::<serde_json::Value>(&r.body) {
                    for c in list.as_array().into_iter().flatten() {
                        if let Some(id) = c["Id"].as_str() {
                            let _ = self.try_request(
                                "DELETE",
                                &format!("/containers/{id}?force=1"),
                                &[],
                            );
                        }
                    }
                }
            }
        }
        self.kill();
        // Keep the root when a test failed, to read its log; tempdir cleanup otherwise.
        if std::thread::panicking() {
            eprintln!(
                "--- daemon log ({}) ---\n{}",
                self.dir.path().display(),
                self.log()
            );
        }
    }
}

/// For tests that drive the real docker CLI: a daemon with busybox. Fails the test when the CLI is missing.
pub fn docker_daemon() -> Daemon {
    docker_bin();
    Daemon::with_busybox()
}

/// The real docker CLI: `$BERTH_TEST_DOCKER`, else `/usr/local/bin/docker` (the docker CLI 28 these machines
/// carry), else `docker` on `PATH` (Debian's `docker.io`, which `.ci/run` installs where neither is there).
/// Fails the test when there is none: a compatibility test that cannot run must not pass.
pub fn docker_bin() -> PathBuf {
    if let Ok(p) = std::env::var("BERTH_TEST_DOCKER") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from("/usr/local/bin/docker");
    if local.exists() {
        return local;
    }
    match which("docker") {
        Some(p) => p,
        None => panic!("no docker CLI (/usr/local/bin/docker or docker on PATH): .ci/run installs one (apt-get install docker.io)"),
    }
}

/// Where `cmd` is on `PATH`, if anywhere.
pub fn which(cmd: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(cmd))
            .find(|p| p.is_file())
    })
}

/// Fails the test unless `cmd` is on `PATH`: the tools the tests drive are installed by `.ci/run` (the Debian
/// package is `package`), and a test must not pass by not running.
pub fn require(cmd: &str, package: &str) {
    assert!(
        have(cmd),
        "{cmd} is not installed: .ci/run installs it (apt-get install {package})"
    );
}

fn run_with_stdin(mut cmd: Command, stdin: Option<&Path>) -> Output {
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p).expect("open stdin file")),
        None => cmd.stdin(Stdio::null()),
    };
    cmd.output().expect("run command")
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// Body as JSON lines (progress and event streams).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.text()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad line {l:?}: {e}")))
            .collect()
    }
}

/// A minimal HTTP/1.1 client over a unix socket (Connection: close; chunked responses decoded).
pub fn http_request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let mut body = Vec::new();
    if method == "HEAD" {
        return Ok(HttpResponse {
            status,
            headers,
            body,
        });
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

/// Whether a command exists on PATH (for tests that need skopeo, umoci, python's docker SDK).
pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd} >/dev/null 2>&1"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Writes a busybox rootfs tar (from Debian's busybox-static) to `dest`, with applet links for `sh`, `echo`,
/// `ls`, `cat`, `true`, and the usual top-level directories.
pub fn busybox_rootfs_tar(dest: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("busybox-static is required: apt-get install busybox-static");
    let file = std::fs::File::create(dest).expect("create rootfs tar");
    let mut b = tar::Builder::new(file);
    for dir in ["bin", "etc", "tmp", "root", "proc", "sys", "dev"] {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(if dir == "tmp" { 0o1777 } else { 0o755 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, format!("{dir}/"), std::io::empty())
            .expect("dir");
    }
    b.append_path_with_name(busybox, "bin/busybox")
        .expect("busybox");
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .expect("busybox --list");
    let applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox" && !a.is_empty())
        .map(str::to_owned)
        .collect();
    for applet in &applets {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .expect("link");
    }
    let mut h = tar::Header::new_gnu();
    let passwd = b"root:x:0:0:root:/root:/bin/sh\n";
    h.set_size(passwd.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    b.append_data(&mut h, "etc/passwd", &passwd[..])
        .expect("passwd");
    b.finish().expect("finish tar");
}
pub mod archive;
pub mod registry;

/// A terminal for `-it` tests: a detached tmux session on a tmux server of its own (`-L`), so no other
/// tmux on the machine is involved. Fails the test when tmux is not installed.
pub struct Terminal {
    server: String,
}

impl Terminal {
    /// Starts `command` (a shell line) in a 100×30 terminal.
    pub fn start(name: &str, command: &str) -> Terminal {
        require("tmux", "tmux");
        let t = Terminal {
            server: format!("berth-{name}-{}", std::process::id()),
        };
        let started = t.tmux(&[
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "100",
            "-y",
            "30",
            command,
        ]);
        assert!(
            started.status.success(),
            "tmux: {}",
            String::from_utf8_lossy(&started.stderr)
        );
        t
    }

    fn tmux(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            .args(["-L", &self.server])
            .args(args)
            .output()
            .expect("tmux")
    }

    /// What the terminal shows.
    pub fn screen(&self) -> String {
        String::from_utf8_lossy(&self.tmux(&["capture-pane", "-t", "main", "-p"]).stdout)
            .into_owned()
    }

    /// Types `keys` and Enter.
    pub fn type_line(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", "main", keys, "Enter"]);
    }

    /// Sends tmux key names (`C-p`), without Enter.
    pub fn keys(&self, keys: &str) {
        self.tmux(&["send-keys", "-t", "main", keys]);
    }

    /// Waits (15 s at most) until the screen shows `what`; returns the screen.
    pub fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let s = self.screen();
            if s.contains(what) {
                return s;
            }
            assert!(Instant::now() < deadline, "never saw {what:?}:\n{s}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = self.tmux(&["kill-server"]);
    }
}

/// A command's stdout as text.
/// `s` percent-encoded for a query string (RFC 3986's unreserved bytes kept): a filters or other JSON
/// parameter.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A command's stderr as text.
pub fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The stdout of a command that must have succeeded (the failure shows its status and both streams).
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        out(o),
        err(o)
    );
    out(o)
}

/// Runs `cmd` with stdin from `stdin` (or none) and returns its output; panics if it has not ended within
/// `limit` (killing it), so a regression that hangs fails its test instead of stalling the run.
#[track_caller]
pub fn output_within(mut cmd: Command, stdin: Option<&Path>, limit: Duration) -> Output {
    match stdin {
        Some(p) => cmd.stdin(std::fs::File::open(p).expect("open stdin file")),
        None => cmd.stdin(Stdio::null()),
    };
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn command");
    let read_all = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = read_all(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = read_all(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for command") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

impl Daemon {
    /// The real docker CLI set up for this daemon, to run as the caller needs.
    pub fn docker_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(docker_bin());
        cmd.args(args)
            .env("DOCKER_HOST", self.host())
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env_remove("DOCKER_API_VERSION");
        cmd
    }

    /// The real docker CLI, with stdin from a file (or none), failing the test if it takes over `limit`.
    #[track_caller]
    pub fn docker_within(&self, args: &[&str], stdin: Option<&Path>, limit: Duration) -> Output {
        output_within(self.docker_command(args), stdin, limit)
    }

    /// `berth -H <socket> ARGS…`, with stdin from a file (or none), failing the test if it takes over
    /// `limit`.
    #[track_caller]
    pub fn berth_within(&self, args: &[&str], stdin: Option<&Path>, limit: Duration) -> Output {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("-H").arg(self.host()).args(args);
        output_within(cmd, stdin, limit)
    }
}

/// The mount points under `dir` (not `dir` itself), from this process's mountinfo.
pub fn mounts_under(dir: &std::path::Path) -> Vec<String> {
    let prefix = format!("{}/", dir.display());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&prefix))
        .map(str::to_owned)
        .collect()
}

/// Cgroup directories named after any of `ids`, on every hierarchy.
pub fn cgroups_of<'a>(ids: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let ids: std::collections::HashSet<&String> = ids.into_iter().collect();
    let mut found = Vec::new();
    let mut stack = vec![std::path::PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let name = e.file_name().to_string_lossy().into_owned();
                if ids.contains(&name) {
                    found.push(e.path().display().to_string());
                } else if dir.components().count() < 8 {
                    stack.push(e.path());
                }
            }
        }
    }
    found
}

/// A tar of `files` (path, content), each a regular file with mode 0644 and one fixed mtime: a build
/// context the same from run to run.
pub fn context_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append_data(&mut h, name, *data).unwrap();
    }
    b.into_inner().unwrap()
}
