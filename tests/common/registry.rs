//! Debian's `docker-registry` (distribution 2.8) for the end-to-end tests: a temp root, optional htpasswd
//! (or any other `auth:` section) or TLS, listening inside a test daemon's network namespace.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{err, out, Daemon};

/// The registry's port inside the daemon's namespace (a fresh namespace: nothing else listens).
pub const PORT: u16 = 5000;
/// The htpasswd user of a registry started with `htpasswd`.
pub const USER: &str = "tester";
/// Its password.
pub const PASSWORD: &str = "s3cret-pass";

/// A `docker-registry` serving from a temp root inside a daemon's network namespace; killed on drop.
pub struct Registry {
    child: Option<Child>,
    dir: tempfile::TempDir,
    htpasswd: bool,
    /// An `auth:` section given whole (a token server's: realm, service, issuer, certificate), if any.
    token_auth: Option<String>,
    /// `host:port` it listens on (inside the daemon's namespace).
    addr: String,
    /// Certificate and key when it serves https.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Registry {
    pub fn start(d: &Daemon, htpasswd: bool) -> Registry {
        Self::start_at(d, htpasswd, &format!("127.0.0.1:{PORT}"), None)
    }

    pub fn start_at(
        d: &Daemon,
        htpasswd: bool,
        addr: &str,
        tls: Option<(PathBuf, PathBuf)>,
    ) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Registry {
            child: None,
            dir,
            htpasswd,
            token_auth: None,
            addr: addr.to_string(),
            tls,
        };
        r.spawn(d);
        r
    }

    /// Starts (or restarts, on the same storage) the registry.
    pub fn spawn(&mut self, d: &Daemon) {
        let bin = ["/usr/bin/docker-registry", "/usr/local/bin/docker-registry"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .unwrap_or_else(|| {
                panic!("docker-registry is not installed (Debian package docker-registry): apt-get install -y docker-registry")
            });
        let mut auth = self.token_auth.clone().unwrap_or_default();
        if self.htpasswd {
            super::require("htpasswd", "apache2-utils");
            let o = Command::new("htpasswd")
                .args(["-Bbn", USER, PASSWORD])
                .output()
                .expect("htpasswd");
            assert!(o.status.success(), "htpasswd: {}", err(&o));
            let file = self.dir.path().join("htpasswd");
            std::fs::write(&file, out(&o).trim()).expect("write htpasswd");
            auth = format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            );
        }
        let tls = match &self.tls {
            Some((cert, key)) => format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ),
            None => String::new(),
        };
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {}\n  secret: berth-test\n{tls}{auth}",
            self.data().display(),
            self.addr
        );
        let cfg = self.dir.path().join("config.yml");
        std::fs::write(&cfg, config).expect("write registry config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("registry.log"))
            .expect("registry log");
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg(&cfg).stdout(Stdio::null()).stderr(log);
        d.netns_command(&mut cmd);
        self.child = Some(cmd.spawn().expect("start docker-registry"));
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = self.addr.clone();
        while !d.in_netns(|| std::net::TcpStream::connect(addr.as_str()).is_ok()) {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A registry whose `auth:` section is `auth` (a token server's, say), on `127.0.0.1:5000`.
    pub fn start_with_auth(d: &Daemon, auth: String) -> Registry {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut r = Registry {
            child: None,
            dir,
            htpasswd: false,
            token_auth: Some(auth),
            addr: format!("127.0.0.1:{PORT}"),
            tls: None,
        };
        r.spawn(d);
        r
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The file holding a blob in the registry's storage.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.data()
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- registry log ---\n{}", self.log());
        }
    }
}
