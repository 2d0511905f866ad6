//! How the client reaches the daemon, as the docker CLI does: a unix socket, TCP with TLS (`--tlsverify`,
//! `--tlscacert`, `--tlscert`, `--tlskey`, or `DOCKER_TLS_VERIFY` with `DOCKER_CERT_PATH`'s ca.pem, cert.pem
//! and key.pem), plain TCP, or `ssh://[user@]host[:port]`, which runs `berth system dial-stdio` on the far
//! side and speaks HTTP over the ssh process's stdin and stdout.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::CliError;

/// A byte stream to the daemon.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The client's TLS flags, named and defaulted as the docker CLI's.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Use TLS; implied by --tlsverify
    #[arg(long)]
    pub tls: bool,
    /// Use TLS and verify the remote
    #[arg(long, env = "DOCKER_TLS_VERIFY", value_parser = env_flag, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub tlsverify: Option<bool>,
    /// Trust certs signed only by this CA (default DOCKER_CERT_PATH/ca.pem)
    #[arg(long, value_name = "string")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file (default DOCKER_CERT_PATH/cert.pem)
    #[arg(long, value_name = "string")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file (default DOCKER_CERT_PATH/key.pem)
    #[arg(long, value_name = "string")]
    pub tlskey: Option<PathBuf>,
}

/// `DOCKER_TLS_VERIFY` is on when set to anything but the empty string (the docker CLI's rule), and
/// `--tlsverify=false` turns it off.
fn env_flag(v: &str) -> Result<bool, String> {
    Ok(!matches!(v, "" | "false" | "FALSE" | "False"))
}

/// Where and how to connect.
#[derive(Clone)]
pub enum Transport {
    /// `unix:///path`.
    Unix(PathBuf),
    /// `tcp://host:port`, with TLS when asked for.
    Tcp {
        /// `host:port` to dial.
        addr: String,
        /// The TLS connector and the name the server's certificate must carry.
        tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    },
    /// `ssh://[user@]host[:port]`.
    Ssh {
        /// `[user@]host`.
        destination: String,
        /// `-p PORT`, if the address named one.
        port: Option<u16>,
    },
}

/// The directory of the default TLS files: `DOCKER_CERT_PATH`, else the docker CLI's config directory.
fn cert_dir() -> PathBuf {
    let env = |k| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("DOCKER_CERT_PATH")
        .or_else(|| env("DOCKER_CONFIG"))
        .or_else(|| env("HOME").map(|h| h.join(".docker")))
        .unwrap_or_else(|| PathBuf::from(".docker"))
}

fn tls_error(what: &str, path: &Path, e: impl std::fmt::Display) -> CliError {
    CliError::Usage(format!(
        "unable to resolve docker endpoint: could not read {what} {}: {e}",
        path.display()
    ))
}

/// The rustls client configuration for `args`: the CA alone as roots (or no verification of the server
/// without `--tlsverify`), and the client certificate when its files exist or were named.
fn client_config(args: &TlsArgs, verify: bool) -> Result<Arc<rustls::ClientConfig>, CliError> {
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let dir = cert_dir();
    let ca = args.tlscacert.clone().unwrap_or_else(|| dir.join("ca.pem"));
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::Usage(format!("TLS setup: {e}")))?;
    let builder = if verify {
        let mut roots = rustls::RootCertStore::empty();
        let certs =
            CertificateDer::pem_file_iter(&ca).map_err(|e| tls_error("CA certificate", &ca, e))?;
        for c in certs {
            let c = c.map_err(|e| tls_error("CA certificate", &ca, e))?;
            roots
                .add(c)
                .map_err(|e| tls_error("CA certificate", &ca, e))?;
        }
        builder.with_root_certificates(roots)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    };
    // As the docker CLI: the default files are used when they exist, named files must exist.
    let cert = args.tlscert.clone().unwrap_or_else(|| dir.join("cert.pem"));
    let key = args.tlskey.clone().unwrap_or_else(|| dir.join("key.pem"));
    let named = args.tlscert.is_some() || args.tlskey.is_some();
    let cfg = if named || (cert.exists() && key.exists()) {
        let chain = CertificateDer::pem_file_iter(&cert)
            .map_err(|e| tls_error("certificate", &cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| tls_error("certificate", &cert, e))?;
        let k = PrivateKeyDer::from_pem_file(&key).map_err(|e| tls_error("key", &key, e))?;
        builder
            .with_client_auth_cert(chain, k)
            .map_err(|e| tls_error("certificate", &cert, e))?
    } else {
        builder.with_no_client_auth()
    };
    Ok(Arc::new(cfg))
}

impl Transport {
    /// The transport for a `-H` address and the TLS flags.
    pub fn new(host: &str, tls: &TlsArgs) -> Result<Transport, CliError> {
        if let Some(p) = host.strip_prefix("unix://") {
            return Ok(Transport::Unix(PathBuf::from(p)));
        }
        if let Some(rest) = host.strip_prefix("ssh://") {
            let rest = rest.trim_end_matches('/');
            let (destination, port) = match rest.rsplit_once(':') {
                Some((d, p)) if !d.contains('[') || d.ends_with(']') => {
                    let port = p.parse::<u16>().map_err(|_| {
                        CliError::Usage(format!("invalid ssh address {host}: bad port {p}"))
                    })?;
                    (d.to_owned(), Some(port))
                }
                _ => (rest.to_owned(), None),
            };
            if destination.is_empty() || destination.contains('/') {
                return Err(CliError::Usage(format!(
                    "invalid ssh address {host}: expected ssh://[user@]host[:port]"
                )));
            }
            return Ok(Transport::Ssh { destination, port });
        }
        let Some(addr) = host.strip_prefix("tcp://") else {
            return Err(CliError::Usage(format!(
                "unable to parse docker host `{host}`: expected unix://, tcp:// or ssh://"
            )));
        };
        let addr = addr.trim_end_matches('/');
        let (name, port) = match addr.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h, p),
            _ => (addr, ""),
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let verify = tls.tlsverify.unwrap_or(false);
        let use_tls = tls.tls || verify;
        // The docker CLI's default ports: 2376 with TLS, 2375 without.
        let port = match port {
            "" if use_tls => 2376,
            "" => 2375,
            p => p
                .parse()
                .map_err(|_| CliError::Usage(format!("invalid host {host}: bad port {p}")))?,
        };
        let name = if name.is_empty() { "localhost" } else { name };
        let addr = if name.contains(':') {
            format!("[{name}]:{port}")
        } else {
            format!("{name}:{port}")
        };
        let tls = if use_tls {
            let server = ServerName::try_from(name.to_owned())
                .map_err(|e| CliError::Usage(format!("invalid host {host}: {e}")))?;
            let connector = tokio_rustls::TlsConnector::from(client_config(tls, verify)?);
            Some((connector, server))
        } else {
            None
        };
        Ok(Transport::Tcp { addr, tls })
    }

    /// Opens a new connection to the daemon.
    pub async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        match self {
            Transport::Unix(p) => {
                let s = tokio::net::UnixStream::connect(p).await?;
                widen_send_buffer(&s);
                Ok(Box::new(s))
            }
            Transport::Tcp { addr, tls } => {
                let s = tokio::net::TcpStream::connect(addr.as_str()).await?;
                let _ = s.set_nodelay(true);
                match tls {
                    None => Ok(Box::new(s)),
                    Some((connector, name)) => {
                        Ok(Box::new(connector.connect(name.clone(), s).await?))
                    }
                }
            }
            Transport::Ssh { destination, port } => {
                let mut cmd = tokio::process::Command::new("ssh");
                cmd.args(["-o", "ConnectTimeout=30", "-T"]);
                if let Some(p) = port {
                    cmd.arg("-p").arg(p.to_string());
                }
                cmd.arg("--")
                    .arg(destination)
                    .args(["berth", "system", "dial-stdio"])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .kill_on_drop(true);
                let mut child = cmd.spawn()?;
                let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                    return Err(std::io::Error::other("ssh started without pipes"));
                };
                Ok(Box::new(CommandConn {
                    _child: child,
                    stdin: Some(stdin),
                    stdout,
                }))
            }
        }
    }
}

/// A connection that is a child process's stdin and stdout (`ssh … berth system dial-stdio`); the process
/// is killed when the connection is dropped.
struct CommandConn {
    _child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    stdout: tokio::process::ChildStdout,
}

impl AsyncRead for CommandConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

impl AsyncWrite for CommandConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.stdin.as_mut() {
            Some(s) => Pin::new(s).poll_write(cx, buf),
            None => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.stdin.as_mut() {
            Some(s) => Pin::new(s).poll_flush(cx),
            None => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        // Closing the pipe is the far side's end of input (dial-stdio then half-closes the socket).
        self.stdin = None;
        Poll::Ready(Ok(()))
    }
}

/// Accepts any server certificate: `--tls` without `--tlsverify`, as the docker CLI's
/// InsecureSkipVerify. Signatures are still checked, so the session is at least with the key's holder.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What a unix socket to the daemon may hold unread (the kernel caps it at `net.core.wmem_max`).
const UNIX_SEND_BUFFER: libc::c_int = 4 << 20;

/// Lets a unix socket hold more than the default ~200 KiB in flight, so a streamed upload (`load`,
/// `import`, `cp`, a build context) reaches the daemon in few, large reads rather than many wake-ups
/// of both sides. Failure only loses that, so it is ignored.
fn widen_send_buffer(s: &tokio::net::UnixStream) {
    use std::os::fd::AsRawFd;
    let size = UNIX_SEND_BUFFER;
    // SAFETY: `s` keeps the fd open for the call; the option value is a c_int that lives across
    // it, and its size is passed with it.
    let _ = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            std::ptr::addr_of!(size).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_parse_as_the_docker_cli_parses_them() {
        let none = TlsArgs::default();
        assert!(
            matches!(Transport::new("unix:///x.sock", &none), Ok(Transport::Unix(p)) if p == Path::new("/x.sock"))
        );
        assert!(
            matches!(Transport::new("tcp://1.2.3.4", &none), Ok(Transport::Tcp { addr, tls: None }) if addr == "1.2.3.4:2375")
        );
        let tls = TlsArgs {
            tls: true,
            ..TlsArgs::default()
        };
        assert!(
            matches!(Transport::new("tcp://1.2.3.4", &tls), Ok(Transport::Tcp { addr, tls: Some(_) }) if addr == "1.2.3.4:2376")
        );
        assert!(matches!(
            Transport::new("ssh://me@host:2222", &none),
            Ok(Transport::Ssh { destination, port: Some(2222) }) if destination == "me@host"
        ));
        assert!(matches!(
            Transport::new("ssh://host", &none),
            Ok(Transport::Ssh { destination, port: None }) if destination == "host"
        ));
        assert!(Transport::new("http://x", &none).is_err());
    }

    #[test]
    fn tlsverify_names_a_ca_that_must_exist() {
        let args = TlsArgs {
            tlsverify: Some(true),
            tlscacert: Some("/nonexistent/ca.pem".into()),
            ..TlsArgs::default()
        };
        let e = Transport::new("tcp://127.0.0.1:2376", &args).err().unwrap();
        assert!(e.to_string().contains("/nonexistent/ca.pem"), "{e}");
    }
}
