//! Where `berth daemon` serves the API (`-H`), with what TLS (`--tls`, `--tlsverify`, `--tlscacert`,
//! `--tlscert`, `--tlskey`) and for which group (`-G`), decided as dockerd decides, except that a TCP port
//! without client certificates is refused unless the operator explicitly asked for it (`--tls=false` or
//! `--tlsverify=false`): dockerd 28 only warns and pauses, and announces the refusal for a later release.

use std::net::ToSocketAddrs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};

/// The TLS and socket flags of `berth daemon`, named as dockerd's.
#[derive(Debug, clap::Args)]
pub struct ListenArgs {
    /// Use TLS; implied by --tlsverify
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    tls: Option<bool>,
    /// Use TLS and verify the remote (default with --tls; DOCKER_TLS_VERIFY sets it too)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "bool")]
    tlsverify: Option<bool>,
    /// Trust certs signed only by this CA (default DOCKER_CERT_PATH/ca.pem)
    #[arg(long, value_name = "string")]
    tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file (default DOCKER_CERT_PATH/cert.pem)
    #[arg(long, value_name = "string")]
    tlscert: Option<PathBuf>,
    /// Path to TLS key file (default DOCKER_CERT_PATH/key.pem)
    #[arg(long, value_name = "string")]
    tlskey: Option<PathBuf>,
    /// Group for the unix socket
    #[arg(short = 'G', long, default_value = DEFAULT_GROUP, value_name = "string")]
    group: String,
}

/// dockerd's socket group; its absence is no error unless `-G` names another group.
const DEFAULT_GROUP: &str = "docker";
/// dockerd's defaults for `-H tcp://` without a host or a port, and for `--tls` without `-H`.
const DEFAULT_TCP_HOST: &str = "localhost";
const DEFAULT_TCP_PORT: u16 = 2375;
const DEFAULT_TLS_HOST: &str = "tcp://localhost:2376";

/// One `-H` address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// `unix:///path` (or a bare absolute path).
    Unix(PathBuf),
    /// `tcp://host:port`, with dockerd's defaults filled in.
    Tcp(String, u16),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Unix(p) => write!(f, "unix://{}", p.display()),
            Host::Tcp(h, p) if h.contains(':') => write!(f, "tcp://[{h}]:{p}"),
            Host::Tcp(h, p) => write!(f, "tcp://{h}:{p}"),
        }
    }
}

/// Parses one `-H` value as dockerd does (`tcp://` alone is `tcp://localhost:2375`).
pub fn parse_host(host: &str) -> anyhow::Result<Host> {
    let host = host.trim();
    if let Some(p) = host.strip_prefix("unix://") {
        if p.is_empty() {
            bail!("invalid host {host:?}: unix:// needs a socket path");
        }
        return Ok(Host::Unix(PathBuf::from(p)));
    }
    if host.starts_with('/') {
        return Ok(Host::Unix(PathBuf::from(host)));
    }
    let Some(addr) = host.strip_prefix("tcp://") else {
        bail!("invalid host {host:?}: expected unix:///PATH or tcp://ADDR:PORT");
    };
    if addr.contains('/') {
        bail!("invalid bind address ({host}): should not contain a path element");
    }
    let (name, port) = match addr.strip_prefix('[') {
        Some(rest) => {
            let (h, p) = rest
                .split_once(']')
                .with_context(|| format!("invalid bind address ({host})"))?;
            (h, p.strip_prefix(':').unwrap_or(p))
        }
        None => addr.rsplit_once(':').unwrap_or((addr, "")),
    };
    let port = if port.is_empty() {
        DEFAULT_TCP_PORT
    } else {
        match port.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => bail!("invalid bind address ({host}): invalid port: {port}"),
        }
    };
    let name = if name.is_empty() {
        DEFAULT_TCP_HOST
    } else {
        name
    };
    Ok(Host::Tcp(name.to_owned(), port))
}

/// What was decided from the flags: the hosts, the TLS for TCP listeners, the unix sockets' group.
pub struct Plan {
    /// Every `-H`, defaults applied.
    pub hosts: Vec<Host>,
    /// TLS for the TCP listeners (`None`: plain HTTP, only when explicitly asked for).
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Whether TCP clients must present a certificate from the CA.
    verify: bool,
    /// The unix sockets' group (`-G`), if it exists.
    pub group: Option<u32>,
    /// Whether `-G` named a group other than dockerd's default, which must then be applied.
    group_explicit: bool,
}

/// The directory of the default TLS files: `DOCKER_CERT_PATH`, else `DOCKER_CONFIG`, else `~/.docker`,
/// as dockerd.
fn cert_dir() -> PathBuf {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("DOCKER_CERT_PATH")
        .or_else(|| env("DOCKER_CONFIG"))
        .or_else(|| env("HOME").map(|h| h.join(".docker")))
        .unwrap_or_else(|| PathBuf::from("/root/.docker"))
}

/// The gid of `name` (a group name from /etc/group, or a number), if there is one.
fn lookup_gid(name: &str) -> Option<u32> {
    // /etc/group read directly, as Go's os/user does without cgo: NSS modules are not worth a C call
    // from the daemon for one lookup at start.
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    groups
        .lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            Some((f.next()?, f.nth(1)?))
        })
        .find(|(n, _)| *n == name)
        .and_then(|(_, gid)| gid.parse().ok())
        .or_else(|| name.parse().ok())
}

/// Decides the listeners from the flags; refuses what dockerd warns against (TCP without client
/// certificates) unless explicitly asked for. Nothing is bound yet.
pub fn plan(hosts: &[String], args: &ListenArgs, exec_root: &Path) -> anyhow::Result<Plan> {
    // dockerd: --tlsverify given at all (or DOCKER_TLS_VERIFY) turns TLS on; TLS verifies clients unless
    // --tlsverify=false says otherwise.
    let env_verify = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
    let tls = args.tls.unwrap_or(false) || args.tlsverify.is_some() || env_verify;
    let verify = tls && args.tlsverify.unwrap_or(true);
    let hosts: Vec<Host> = if hosts.is_empty() {
        vec![if tls {
            parse_host(DEFAULT_TLS_HOST)?
        } else {
            Host::Unix(exec_root.join("berth.sock"))
        }]
    } else {
        hosts
            .iter()
            .map(|h| parse_host(h))
            .collect::<anyhow::Result<_>>()?
    };
    let tcp: Vec<&Host> = hosts
        .iter()
        .filter(|h| matches!(h, Host::Tcp(..)))
        .collect();
    for h in &tcp {
        if !verify {
            let explicit = args.tls == Some(false) || args.tlsverify == Some(false);
            if !explicit {
                bail!(
                    "refusing to serve the API on {h} without --tlsverify: binding to an IP address \
                     without --tlsverify is insecure and gives root access on this machine to everyone \
                     who has access to your network. Use --tlsverify with --tlscacert, --tlscert and \
                     --tlskey, or override this by explicitly specifying '--tls=false' or '--tlsverify=false'"
                );
            }
            tracing::warn!(host = %h, "Binding to IP address without --tlsverify is insecure and gives root access on this machine to everyone who has access to your network.");
            tracing::warn!(host = %h, "Binding to an IP address, even on localhost, can also give access to scripts run in a browser. Be safe out there!");
        }
    }
    let tls_config = if tls && !tcp.is_empty() {
        let dir = cert_dir();
        let files = api::tls::TlsFiles {
            ca: Some(args.tlscacert.clone().unwrap_or_else(|| dir.join("ca.pem"))),
            cert: args.tlscert.clone().unwrap_or_else(|| dir.join("cert.pem")),
            key: args.tlskey.clone().unwrap_or_else(|| dir.join("key.pem")),
        };
        Some(api::tls::server_config(&files, verify)?)
    } else {
        None
    };
    let group = if args.group.is_empty() {
        None
    } else {
        match lookup_gid(&args.group) {
            Some(g) => Some(g),
            None if args.group == DEFAULT_GROUP => {
                tracing::debug!(
                    "no group {DEFAULT_GROUP}: the API socket stays in the daemon's group"
                );
                None
            }
            None => bail!("group {} not found", args.group),
        }
    };
    Ok(Plan {
        hosts,
        tls: tls_config,
        verify,
        group,
        group_explicit: args.group != DEFAULT_GROUP,
    })
}

impl Plan {
    /// `docker info`'s warnings for TCP listeners without TLS or without client verification (dockerd's).
    pub fn api_warnings(&self) -> Vec<String> {
        const ROOT: &str = "\n         Access to the remote API is equivalent to root access on the host. Refer\n         \
                            to the 'Docker daemon attack surface' section in the documentation for\n         \
                            more information: https://docs.docker.com/go/attack-surface/";
        self.hosts
            .iter()
            .filter_map(|h| match h {
                Host::Unix(_) => None,
                Host::Tcp(..) => {
                    let addr = h.to_string();
                    let addr = addr.trim_start_matches("tcp://");
                    match &self.tls {
                        None => Some(format!(
                            "WARNING: API is accessible on http://{addr} without encryption.{ROOT}"
                        )),
                        Some(_) if !self.verify => Some(format!(
                            "WARNING: API is accessible on https://{addr} without TLS client verification.{ROOT}"
                        )),
                        Some(_) => None,
                    }
                }
            })
            .collect()
    }

    /// The group that must be able to search the exec root: the sockets' group, when a socket lies in it.
    pub fn exec_root_group(&self, exec_root: &Path) -> Option<u32> {
        let inside = self
            .hosts
            .iter()
            .any(|h| matches!(h, Host::Unix(p) if p.starts_with(exec_root)));
        self.group.filter(|_| inside)
    }

    /// Binds every host; a unix socket gets mode 0660 in the `-G` group.
    pub fn bind(&self) -> anyhow::Result<Vec<(Host, api::Listener)>> {
        let mut out = Vec::new();
        for h in &self.hosts {
            let listener = match h {
                Host::Unix(path) => {
                    api::Listener::Unix(bind_unix(path, self.group, self.group_explicit)?)
                }
                Host::Tcp(name, port) => {
                    let addr = (name.as_str(), *port)
                        .to_socket_addrs()
                        .with_context(|| format!("resolving {h}"))?
                        .next()
                        .with_context(|| format!("resolving {h}: no address"))?;
                    let std = std::net::TcpListener::bind(addr)
                        .with_context(|| format!("listening on {h}"))?;
                    std.set_nonblocking(true)
                        .with_context(|| format!("listening on {h}"))?;
                    let l = tokio::net::TcpListener::from_std(std)
                        .with_context(|| format!("listening on {h}"))?;
                    api::Listener::Tcp(l, self.tls.clone())
                }
            };
            let tls = match (h, &self.tls) {
                (Host::Unix(_), _) => "",
                (_, None) => " (plain HTTP)",
                (_, Some(_)) if self.verify => " (TLS, client certificates required)",
                (_, Some(_)) => " (TLS, clients not verified)",
            };
            tracing::info!("API listen on {h}{tls}");
            out.push((h.clone(), listener));
        }
        Ok(out)
    }
}

fn bind_unix(
    path: &Path,
    group: Option<u32>,
    explicit: bool,
) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // We hold the data-root lock, so a socket file left here belongs to a dead daemon.
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", path.display())),
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("can't create unix socket {}", path.display()))?;
    if let Some(gid) = group {
        match std::os::unix::fs::chown(path, None, Some(gid)) {
            Ok(()) => {}
            // A daemon without CAP_CHOWN keeps the socket in its own group when the group is only
            // dockerd's default, as dockerd does; a group asked for by name must be applied.
            Err(e) if !explicit && e.kind() == std::io::ErrorKind::PermissionDenied => {
                tracing::warn!(socket = %path.display(), error = %e, "could not change the socket's group to {DEFAULT_GROUP}");
            }
            Err(e) => {
                return Err(e).with_context(|| format!("chown {} to group {gid}", path.display()))
            }
        }
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_take_dockerds_defaults() {
        assert_eq!(
            parse_host("tcp://").unwrap(),
            Host::Tcp("localhost".into(), 2375)
        );
        assert_eq!(
            parse_host("tcp://127.0.0.1:2376").unwrap(),
            Host::Tcp("127.0.0.1".into(), 2376)
        );
        assert_eq!(
            parse_host("tcp://:2376").unwrap(),
            Host::Tcp("localhost".into(), 2376)
        );
        assert_eq!(
            parse_host("tcp://[::1]:2376").unwrap(),
            Host::Tcp("::1".into(), 2376)
        );
        assert_eq!(
            parse_host("unix:///run/x.sock").unwrap(),
            Host::Unix("/run/x.sock".into())
        );
        assert!(parse_host("tcp://1.2.3.4:0").is_err());
        assert!(parse_host("tcp://1.2.3.4:2376/x").is_err());
        assert!(parse_host("ssh://me@host").is_err());
    }

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        l: ListenArgs,
    }

    fn args(a: &[&str]) -> ListenArgs {
        use clap::Parser;
        T::try_parse_from(std::iter::once("t").chain(a.iter().copied()))
            .unwrap()
            .l
    }

    #[test]
    fn plain_tcp_is_refused_unless_explicitly_asked_for() {
        let exec = Path::new("/run/berth");
        let tcp = ["tcp://127.0.0.1:2375".to_string()];
        let e = plan(&tcp, &args(&[]), exec).err().unwrap().to_string();
        assert!(e.contains("without --tlsverify"), "{e}");
        assert!(e.contains("'--tls=false'"), "{e}");
        let p = plan(&tcp, &args(&["--tls=false"]), exec).unwrap();
        assert!(p.tls.is_none() && !p.verify);
        // --tls alone verifies clients, as dockerd: so it needs the CA and certificate files.
        let e = plan(
            &tcp,
            &args(&[
                "--tls",
                "--tlscacert=/nonexistent/ca.pem",
                "--tlscert=/nonexistent/cert.pem",
                "--tlskey=/nonexistent/key.pem",
            ]),
            exec,
        )
        .err()
        .unwrap();
        assert!(format!("{e:#}").contains("/nonexistent"), "{e:#}");
    }

    #[test]
    fn the_socket_group_reaches_the_exec_root_only_when_the_socket_is_inside() {
        let exec = Path::new("/run/berth");
        let mut p = plan(&[], &args(&["-G", "0"]), exec).unwrap();
        assert_eq!(p.hosts, vec![Host::Unix("/run/berth/berth.sock".into())]);
        assert_eq!(p.exec_root_group(exec), Some(0));
        p.hosts = vec![Host::Unix("/run/berth.sock".into())];
        assert_eq!(p.exec_root_group(exec), None);
        assert!(plan(&[], &args(&["-G", "no-such-group-here"]), exec).is_err());
    }
}
