//! Remote access as Docker users expect it (issue 13.6): the API on TCP with TLS and client certificates,
//! plain TCP refused unless explicitly asked for, the unix socket's group (`-G`), and `DOCKER_HOST=ssh://`
//! through `system dial-stdio` on the far side. Certificates are made at test time with openssl, and the
//! ssh server is a private sshd on a loopback port of the daemon's network namespace.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{berth_bin, docker_bin, err, ok, out, output_within, Daemon};

const LIMIT: Duration = Duration::from_secs(60);
const TLS_HOST: &str = "tcp://127.0.0.1:2376";

/// Runs openssl in `dir`; fails the test with its stderr.
fn openssl(dir: &Path, args: &[&str]) {
    common::require("openssl", "openssl");
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(o.status.success(), "openssl {args:?}: {}", err(&o));
}

/// A CA, and certificates it signed: `name.pem` and `name-key.pem` for each of the server (for 127.0.0.1
/// and localhost) and a client, in `dir`.
fn make_ca(dir: &Path, ca: &str) {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={ca}"),
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
        ],
    );
}

fn sign(dir: &Path, name: &str, ext: &str) {
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &format!("{name}-key.pem"),
            "-out",
            &format!("{name}.csr"),
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-extfile",
            &format!("{name}.ext"),
            "-out",
            &format!("{name}.pem"),
        ],
    );
}

/// The test's PKI: `ca/` (the daemon's CA, with server and client certificates), `rogue/` (another CA with
/// a client certificate), and DOCKER_CERT_PATH-style directories (ca.pem, cert.pem, key.pem) for a good
/// client, a client without a certificate and a client whose certificate the daemon's CA did not sign.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("berth-pki-")
            .tempdir()
            .unwrap();
        let ca = dir.path().join("ca");
        make_ca(&ca, "berth test CA");
        sign(
            &ca,
            "server",
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        );
        sign(
            &ca,
            "client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
        let rogue = dir.path().join("rogue");
        make_ca(&rogue, "rogue CA");
        sign(
            &rogue,
            "client",
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        );
        let pki = Pki { dir };
        for (name, cert) in [
            ("good", Some(&ca)),
            ("nocert", None),
            ("roguecert", Some(&rogue)),
        ] {
            let d = pki.client_dir(name);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(ca.join("ca.pem"), d.join("ca.pem")).unwrap();
            if let Some(c) = cert {
                std::fs::copy(c.join("client.pem"), d.join("cert.pem")).unwrap();
                std::fs::copy(c.join("client-key.pem"), d.join("key.pem")).unwrap();
            }
        }
        pki
    }

    fn ca(&self, file: &str) -> String {
        self.dir.path().join("ca").join(file).display().to_string()
    }

    fn client_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join("clients").join(name)
    }

    /// The daemon flags of a TLS-verifying listener on 127.0.0.1:2376 (in the daemon's namespace).
    fn daemon_args(&self) -> Vec<String> {
        vec![
            "-H".into(),
            TLS_HOST.into(),
            "--tlsverify".into(),
            "--tlscacert".into(),
            self.ca("ca.pem"),
            "--tlscert".into(),
            self.ca("server.pem"),
            "--tlskey".into(),
            self.ca("server-key.pem"),
        ]
    }
}

fn as_refs<'a>(v: &'a [(&'static str, PathBuf)]) -> Vec<(&'static str, &'a Path)> {
    v.iter().map(|(k, p)| (*k, p.as_path())).collect()
}

/// The docker CLI in the daemon's namespace, pointed at `host` with the given environment.
fn docker_remote(d: &Daemon, host: &str, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd = Command::new(docker_bin());
    cmd.args(args)
        .env("DOCKER_HOST", host)
        .env("DOCKER_CONFIG", d.dir.path().join("docker-config"))
        .env_remove("DOCKER_API_VERSION")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    d.netns_command(&mut cmd);
    output_within(cmd, None, LIMIT)
}

/// The berth CLI in the daemon's namespace.
fn berth_remote(d: &Daemon, env: &[(&str, &Path)], args: &[&str]) -> Output {
    let mut cmd = Command::new(berth_bin());
    cmd.args(args)
        .env_remove("BERTH_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH");
    for (k, v) in env {
        cmd.env(k, v);
    }
    d.netns_command(&mut cmd);
    output_within(cmd, None, LIMIT)
}

#[test]
fn tls_daemon_serves_clients_with_certificates_and_refuses_the_others() {
    let pki = Pki::new();
    let args = pki.daemon_args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    common::docker_bin();
    let d = Daemon::start_with(&args);
    d.import_busybox();
    let good = pki.client_dir("good");
    let verify = |dir: &Path| -> Vec<(&'static str, PathBuf)> {
        vec![
            ("DOCKER_TLS_VERIFY", PathBuf::from("1")),
            ("DOCKER_CERT_PATH", dir.to_owned()),
        ]
    };

    // The docker CLI with a certificate from the CA: the API, and a hijacked attach stream, over TLS.
    let e = verify(&good);
    let o = docker_remote(
        &d,
        TLS_HOST,
        &as_refs(&e),
        &["version", "--format", "{{.Server.Os}}"],
    );
    assert_eq!(ok(&o).trim(), "linux");
    let o = docker_remote(
        &d,
        TLS_HOST,
        &as_refs(&e),
        &["run", "--rm", "busybox", "echo", "over tls"],
    );
    assert_eq!(ok(&o).trim(), "over tls");

    // No client certificate, or one from another CA: the handshake is refused.
    for name in ["nocert", "roguecert"] {
        let e = verify(&pki.client_dir(name));
        let o = docker_remote(&d, TLS_HOST, &as_refs(&e), &["version"]);
        assert!(!o.status.success(), "{name}: {}", out(&o));
        assert!(
            err(&o).contains("certificate") || err(&o).contains("tls"),
            "{name}: {}",
            err(&o)
        );
    }
    // Plain HTTP to the TLS port gets nothing.
    let o = docker_remote(
        &d,
        TLS_HOST,
        &[],
        &["version", "--format", "{{.Server.Os}}"],
    );
    assert!(!o.status.success(), "{}", out(&o));
    assert!(!out(&o).contains("linux"));
    assert!(
        d.log().contains("TLS handshake refused"),
        "the daemon logs refused handshakes"
    );

    // The berth CLI: the docker CLI's environment, and the flags.
    let o = berth_remote(
        &d,
        &as_refs(&e),
        &[
            "-H",
            TLS_HOST,
            "run",
            "--rm",
            "busybox",
            "echo",
            "berth over tls",
        ],
    );
    assert_eq!(ok(&o).trim(), "berth over tls");
    let o = berth_remote(
        &d,
        &[],
        &[
            "-H",
            TLS_HOST,
            "--tlsverify",
            "--tlscacert",
            &good.join("ca.pem").display().to_string(),
            "--tlscert",
            &good.join("cert.pem").display().to_string(),
            "--tlskey",
            &good.join("key.pem").display().to_string(),
            "images",
            "--format",
            "{{.Repository}}",
        ],
    );
    assert_eq!(ok(&o).trim(), "busybox");
    // A TLS context made by the docker CLI (its certificates copied into the context store) serves the
    // berth CLI with no other flag or variable.
    let config = d.dir.path().join("context-config");
    let spec = format!(
        "host={TLS_HOST},ca={},cert={},key={}",
        good.join("ca.pem").display(),
        good.join("cert.pem").display(),
        good.join("key.pem").display()
    );
    let mut cmd = Command::new(docker_bin());
    cmd.args(["context", "create", "tlsctx", "--docker", &spec])
        .env("DOCKER_CONFIG", &config)
        .env_remove("DOCKER_HOST");
    ok(&output_within(cmd, None, LIMIT));
    let o = berth_remote(
        &d,
        &[("DOCKER_CONFIG", config.as_path())],
        &["-c", "tlsctx", "images", "--format", "{{.Repository}}"],
    );
    assert_eq!(ok(&o).trim(), "busybox");
    for name in ["nocert", "roguecert"] {
        let e = verify(&pki.client_dir(name));
        let o = berth_remote(&d, &as_refs(&e), &["-H", TLS_HOST, "ps"]);
        assert!(!o.status.success(), "{name}: {}", out(&o));
        assert!(err(&o).contains("alert"), "{name}: {}", err(&o));
    }
    let o = berth_remote(&d, &[], &["-H", TLS_HOST, "ps"]);
    assert!(!o.status.success(), "{}", out(&o));
    assert!(
        err(&o).contains("Are you trying to connect to a TLS-enabled daemon without TLS?"),
        "{}",
        err(&o)
    );
    // docker-py from the same environment (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH).
    let py = |dir: &Path| -> Output {
        let probe = Command::new("python3")
            .args(["-c", "import docker"])
            .status();
        assert!(
            probe.map(|s| s.success()).unwrap_or(false),
            "the docker Python SDK is not installed: .ci/run installs it (pip install docker==7.1.0)"
        );
        let mut cmd = Command::new("python3");
        cmd.args([
            "-c",
            "import docker\n\
             c = docker.from_env()\n\
             print(c.version()['Os'])\n\
             print(c.containers.run('busybox', ['echo', 'py over tls'], remove=True).decode().strip())",
        ])
        .env("DOCKER_HOST", TLS_HOST)
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", dir)
        // requests lets these override the CA docker-py gives it (its session's `verify`).
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE");
        d.netns_command(&mut cmd);
        output_within(cmd, None, LIMIT)
    };
    assert_eq!(ok(&py(&good)), "linux\npy over tls\n");
    let o = py(&pki.client_dir("nocert"));
    assert!(!o.status.success(), "{}", out(&o));

    // The server's certificate is checked against the CA: a client that trusts only the rogue CA refuses it.
    let o = berth_remote(
        &d,
        &[],
        &[
            "-H",
            TLS_HOST,
            "--tlsverify",
            "--tlscacert",
            &pki.dir.path().join("rogue/ca.pem").display().to_string(),
            "ps",
        ],
    );
    assert!(!o.status.success(), "{}", out(&o));
    assert!(err(&o).contains("certificate"), "{}", err(&o));
}

#[test]
fn tcp_without_client_certificates_needs_an_explicit_flag() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = |extra: &[&str]| -> Output {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("daemon")
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .args(extra);
        output_within(cmd, None, LIMIT)
    };
    let o = daemon(&["-H", "tcp://127.0.0.1:2375"]);
    assert!(!o.status.success());
    assert!(
        err(&o).contains("without --tlsverify is insecure") && err(&o).contains("'--tls=false'"),
        "{}",
        err(&o)
    );
    // The refusal comes before anything is made on disk.
    assert!(!dir.path().join("data").exists());

    // --tls=false is the operator's explicit choice: served, with dockerd's warning in the log.
    let d = Daemon::start_with(&["-H", "tcp://127.0.0.1:2375", "--tls=false"]);
    let o = docker_remote(
        &d,
        "tcp://127.0.0.1:2375",
        &[],
        &["version", "--format", "{{.Server.Os}}"],
    );
    assert_eq!(ok(&o).trim(), "linux");
    let o = berth_remote(
        &d,
        &[],
        &[
            "-H",
            "tcp://127.0.0.1:2375",
            "version",
            "--format",
            "{{.Server.Os}}",
        ],
    );
    assert_eq!(ok(&o).trim(), "linux");
    assert!(d
        .log()
        .contains("Binding to IP address without --tlsverify is insecure"));
    // And `docker info` says so, as dockerd's does.
    let o = docker_remote(
        &d,
        "tcp://127.0.0.1:2375",
        &[],
        &["info", "--format", "{{json .Warnings}}"],
    );
    assert!(
        ok(&o).contains("API is accessible on http://127.0.0.1:2375 without encryption"),
        "{}",
        out(&o)
    );
}

#[test]
fn the_socket_group_reaches_the_socket_in_the_exec_root_and_no_one_else_does() {
    common::require("setpriv", "util-linux");
    // A gid no user has as its own, given by number (no group needs to exist for it).
    const GID: u32 = 4242;
    let mut d = Daemon::start();
    let sock = d.exec_root().join("berth.sock");
    d.args = vec![
        "-H".into(),
        format!("unix://{}", sock.display()),
        "-G".into(),
        GID.to_string(),
    ];
    d.stop();
    d.spawn();
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(&sock).unwrap();
    assert_eq!((m.gid(), m.mode() & 0o777), (GID, 0o660));
    let m = std::fs::metadata(d.exec_root()).unwrap();
    assert_eq!((m.gid(), m.mode() & 0o777), (GID, 0o710));
    // The test's temporary directory must let others through to reach the exec root at all.
    std::fs::set_permissions(
        d.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let as_user = |gid: u32| -> Output {
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid=65534",
            &format!("--regid={gid}"),
            "--clear-groups",
            "--",
        ])
        .arg(docker_bin())
        .args(["-H", &format!("unix://{}", sock.display())])
        .args(["version", "--format", "{{.Server.Os}}"])
        .env("DOCKER_CONFIG", "/nonexistent")
        .env_remove("DOCKER_HOST");
        output_within(cmd, None, LIMIT)
    };
    assert_eq!(ok(&as_user(GID)).trim(), "linux");
    let o = as_user(65534);
    assert!(!o.status.success());
    assert!(err(&o).contains("permission denied"), "{}", err(&o));

    // Without the socket inside it, the exec root goes back to 0700 for root alone.
    d.args = vec!["-G".into(), GID.to_string()];
    d.stop();
    d.spawn();
    let m = std::fs::metadata(d.exec_root()).unwrap();
    assert_eq!((m.gid(), m.mode() & 0o777), (0, 0o700));
    let m = std::fs::metadata(d.socket()).unwrap();
    assert_eq!(m.gid(), GID);
}

/// A private sshd on 127.0.0.1:2222 of the daemon's namespace, with its own host key and an authorized key
/// made for the test; `PATH` of its sessions starts with `bin/`, where `docker` and `berth` are symlinks to
/// the berth under test, and `BERTH_HOST` names the daemon's socket.
struct Sshd {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Sshd {
    fn start(d: &Daemon) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "/usr/sbin/sshd is not installed: .ci/run installs it (apt-get install openssh-server)"
        );
        common::require("ssh-keygen", "openssh-client");
        let dir = tempfile::Builder::new()
            .prefix("berth-ssh-")
            .tempdir()
            .unwrap();
        let p = |f: &str| dir.path().join(f);
        for key in ["host_key", "client_key"] {
            let o = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(p(key))
                .output()
                .unwrap();
            assert!(o.status.success(), "ssh-keygen: {}", err(&o));
        }
        std::fs::copy(p("client_key.pub"), p("authorized_keys")).unwrap();
        let host_pub = std::fs::read_to_string(p("host_key.pub")).unwrap();
        std::fs::write(p("known_hosts"), format!("[127.0.0.1]:2222 {host_pub}")).unwrap();
        std::fs::create_dir_all(p("bin")).unwrap();
        std::fs::create_dir_all(p("client-bin")).unwrap();
        let script = |path: PathBuf, body: String| {
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
        };
        // The far side as a Berth host without the docker CLI would be set up: `docker` is a symlink to
        // berth, which finds its daemon through BERTH_HOST (set for the session by sshd).
        for name in ["docker", "berth"] {
            std::os::unix::fs::symlink(berth_bin(), p("bin").join(name)).unwrap();
        }
        // The client's ssh, with the test's key and known hosts (ssh reads ~ from the password database,
        // not $HOME, so a config file is the way to give it them).
        std::fs::write(
            p("ssh_config"),
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
                 StrictHostKeyChecking yes\n  BatchMode yes\n",
                p("client_key").display(),
                p("known_hosts").display()
            ),
        )
        .unwrap();
        script(
            p("client-bin").join("ssh"),
            format!("exec /usr/bin/ssh -F {} \"$@\"", p("ssh_config").display()),
        );
        std::fs::write(
            p("sshd_config"),
            format!(
                "Port 2222\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile none\n\
                 StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                 PermitRootLogin prohibit-password\nSetEnv PATH={}:/usr/local/bin:/usr/bin:/bin BERTH_HOST={}\n",
                p("host_key").display(),
                p("authorized_keys").display(),
                p("bin").display(),
                d.host()
            ),
        )
        .unwrap();
        // sshd refuses to start without its privilege separation directory (the package makes it at boot).
        std::fs::create_dir_all("/run/sshd").unwrap();
        let mut cmd = Command::new(sshd);
        cmd.args(["-D", "-e", "-f"])
            .arg(p("sshd_config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(p("sshd.log")).unwrap());
        d.netns_command(&mut cmd);
        let child = cmd.spawn().expect("start sshd");
        let s = Sshd { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !d.in_netns(|| std::net::TcpStream::connect("127.0.0.1:2222").is_ok()) {
            assert!(Instant::now() < deadline, "sshd did not start: {}", s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// `PATH` for clients: the ssh wrapper first.
    fn client_path(&self) -> PathBuf {
        let rest = std::env::var("PATH").unwrap_or_default();
        PathBuf::from(format!(
            "{}:{rest}",
            self.dir.path().join("client-bin").display()
        ))
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn ssh_hosts_reach_the_daemon_through_dial_stdio() {
    let d = common::docker_daemon();
    let sshd = Sshd::start(&d);
    let path = sshd.client_path();
    let host = "ssh://root@127.0.0.1:2222";
    let o = docker_remote(
        &d,
        host,
        &[("PATH", &path)],
        &["version", "--format", "{{.Server.Os}}"],
    );
    assert_eq!(ok(&o).trim(), "linux", "sshd log: {}", sshd.log());
    // A hijacked stream (attach) through the ssh session too.
    let o = docker_remote(
        &d,
        host,
        &[("PATH", &path)],
        &["run", "--rm", "busybox", "echo", "over ssh"],
    );
    assert_eq!(ok(&o).trim(), "over ssh", "sshd log: {}", sshd.log());
    let o = berth_remote(
        &d,
        &[("PATH", &path)],
        &["-H", host, "images", "--format", "{{.Repository}}"],
    );
    assert_eq!(ok(&o).trim(), "busybox", "sshd log: {}", sshd.log());
    // A key the server does not know is refused by ssh, and the CLI says so.
    std::fs::write(sshd.dir.path().join("authorized_keys"), "").unwrap();
    let o = docker_remote(&d, host, &[("PATH", &path)], &["version"]);
    assert!(!o.status.success(), "{}", out(&o));
}
