//! Registry configuration as Docker's daemon takes it: insecure registries (CIDRs or host:port,
//! 127.0.0.0/8 and ::1/128 by default), mirrors for docker.io, per-registry certificates in `certs.d`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use ipnetwork::IpNetwork;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// The registry Docker names `docker.io` in references.
pub const DOCKER_IO: &str = "docker.io";
/// The host that actually serves docker.io's registry API.
pub const DOCKER_IO_HOST: &str = "registry-1.docker.io";
/// Where Debian keeps the system's CA bundle.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How transfers are retried: `attempts` tries in all, the delay doubling from `base_delay`.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// Tries in all, at least 1 (Docker: 5).
    pub attempts: u32,
    /// The first delay; each next one doubles.
    pub base_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            base_delay: Duration::from_millis(500),
        }
    }
}

/// The daemon-wide registry settings.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// Networks whose registries are reached without TLS verification (and over plain HTTP).
    pub insecure_cidrs: Vec<IpNetwork>,
    /// Registries (`host` or `host:port`) marked insecure by name.
    pub insecure_hosts: Vec<String>,
    /// The `certs.d` directory (`<dir>/<host:port>/{ca.crt,client.cert,client.key}`).
    pub certs_dir: Option<PathBuf>,
    /// A PEM bundle of system CAs trusted for every registry, if any.
    pub system_ca_file: Option<PathBuf>,
    /// Mirrors tried, in order, before docker.io itself (`https://mirror.example`).
    pub mirrors: Vec<String>,
    /// Where docker.io's registry API is served: `https://registry-1.docker.io`. Only tests and
    /// air-gapped set-ups change it.
    pub docker_io_url: String,
    /// Retries for 5xx, 429 and connection failures.
    pub retry: RetryPolicy,
    /// How long a connection may take to open.
    pub connect_timeout: Duration,
}

impl Default for RegistryConfig {
    fn default() -> RegistryConfig {
        // dockerd's: registries on loopback, v4 and v6, are always insecure.
        let loopback = ["::1/128", "127.0.0.0/8"]
            .into_iter()
            .filter_map(|n| IpNetwork::from_str(n).ok());
        let system_ca = Path::new(SYSTEM_CA_BUNDLE);
        RegistryConfig {
            insecure_cidrs: loopback.collect(),
            insecure_hosts: Vec::new(),
            certs_dir: None,
            system_ca_file: system_ca.exists().then(|| system_ca.to_path_buf()),
            mirrors: Vec::new(),
            docker_io_url: format!("https://{DOCKER_IO_HOST}"),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(30),
        }
    }
}

impl RegistryConfig {
    /// Adds one `--insecure-registry` value: a CIDR, or a `host[:port]`; a scheme is refused as
    /// Docker refuses it.
    pub fn add_insecure(&mut self, value: &str) -> Result<()> {
        if value.contains("://") {
            return Err(Error::Config(format!(
                "insecure registry {value} should not contain '://'"
            )));
        }
        if value.contains('/') {
            let net = IpNetwork::from_str(value).map_err(|e| {
                Error::Config(format!(
                    "insecure registry {value} is not a valid CIDR: {e}"
                ))
            })?;
            self.insecure_cidrs.push(net);
            return Ok(());
        }
        if value.is_empty() || value.contains(char::is_whitespace) {
            return Err(Error::Config(format!(
                "insecure registry {value} is not valid"
            )));
        }
        self.insecure_hosts.push(value.to_ascii_lowercase());
        Ok(())
    }

    /// Whether a registry host (`host[:port]`) is insecure: named so, or (as Docker) any of the
    /// addresses it resolves to lies in an insecure network.
    pub async fn is_insecure(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        let (name, _) = split_host_port(&host);
        if self.insecure_hosts.iter().any(|h| *h == host || *h == name) {
            return true;
        }
        if self.insecure_cidrs.is_empty() {
            return false;
        }
        let ips: Vec<IpAddr> = match name.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                let lookup = tokio::net::lookup_host((name.to_string(), 0));
                match tokio::time::timeout(Duration::from_secs(5), lookup).await {
                    Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                    _ => Vec::new(),
                }
            }
        };
        ips.iter()
            .any(|ip| self.insecure_cidrs.iter().any(|n| n.contains(*ip)))
    }

    /// The rustls configuration for a registry host: the system CAs and `certs.d/<host>/*.crt`
    /// as roots, `*.cert` + `*.key` as the client certificate; `verify: false` skips verifying the
    /// server's certificate (insecure registries).
    pub fn tls_config(&self, host: &str, verify: bool) -> Result<Arc<rustls::ClientConfig>> {
        // ring rather than aws-lc keeps the build light (no cmake, no large C library); rustls
        // marks it deprecated only for lacking post-quantum key exchange, which registries do not
        // require.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        if let Some(f) = &self.system_ca_file {
            // A broken system bundle should not stop a registry with its own CA from working.
            if let Ok(certs) = CertificateDer::pem_file_iter(f) {
                roots.add_parsable_certificates(certs.flatten());
            }
        }
        let mut client_auth = None;
        if let Some(dir) = &self.certs_dir {
            let d = dir.join(host);
            if d.is_dir() {
                let (cas, client) = read_certs_dir(&d)?;
                for ca in cas {
                    roots.add(ca).map_err(|e| {
                        Error::Config(format!("invalid CA certificate in {}: {e}", d.display()))
                    })?;
                }
                client_auth = client;
            }
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Config(format!("TLS setup: {e}")))?;
        let builder = if verify {
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        };
        let cfg = match client_auth {
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Config(format!("client certificate for {host}: {e}")))?,
            None => builder.with_no_client_auth(),
        };
        Ok(Arc::new(cfg))
    }
}

type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Reads a `certs.d/<host>` directory as Docker does: every `*.crt` is a CA, every `*.cert` a
/// client certificate whose key is the `*.key` of the same name.
fn read_certs_dir(dir: &Path) -> Result<(Vec<CertificateDer<'static>>, Option<ClientCert>)> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::io(format!("reading {}", dir.display()), e))?;
    let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    names.sort();
    let mut cas = Vec::new();
    let mut client = None;
    for p in &names {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or_default();
        let base = p.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        let pem_err = |e: rustls::pki_types::pem::Error| {
            Error::Config(format!("reading {}: {e}", p.display()))
        };
        match ext {
            "crt" => {
                for c in CertificateDer::pem_file_iter(p).map_err(pem_err)? {
                    cas.push(c.map_err(pem_err)?);
                }
            }
            "cert" => {
                let key = dir.join(format!("{base}.key"));
                if !key.exists() {
                    return Err(Error::Config(format!(
                        "missing key {base}.key for client certificate {base}.cert. CA certificates must use the extension .crt"
                    )));
                }
                let chain = CertificateDer::pem_file_iter(p)
                    .map_err(pem_err)?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(pem_err)?;
                let k = PrivateKeyDer::from_pem_file(&key)
                    .map_err(|e| Error::Config(format!("reading {}: {e}", key.display())))?;
                client = Some((chain, k));
            }
            "key" if !dir.join(format!("{base}.cert")).exists() => {
                return Err(Error::Config(format!(
                    "missing client certificate {base}.cert for key {base}.key"
                )));
            }
            _ => {}
        }
    }
    Ok((cas, client))
}

/// Splits `host:port` (or `[v6]:port`) into host and port.
pub(crate) fn split_host_port(s: &str) -> (&str, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((h, p)) = rest.split_once(']') {
            return (h, p.strip_prefix(':').and_then(|p| p.parse().ok()));
        }
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
        _ => (s, None),
    }
}

/// Accepts any server certificate (but still checks handshake signatures): Docker's
/// `InsecureSkipVerify` for insecure registries.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn insecure_defaults_and_additions() {
        let mut c = RegistryConfig::default();
        assert!(c.is_insecure("127.0.0.1:5000").await);
        assert!(c.is_insecure("localhost:5000").await);
        assert!(!c.is_insecure("10.1.2.3:5000").await);
        assert!(c.add_insecure("10.0.0.0/8").is_ok());
        assert!(c.is_insecure("10.1.2.3").await);
        assert!(c.add_insecure("myreg.example:5000").is_ok());
        assert!(c.is_insecure("MyReg.example:5000").await);
        assert!(!c.is_insecure("other.invalid:5000").await);
        assert!(c.add_insecure("http://x").is_err());
        assert!(c.add_insecure("10.0.0.0/99").is_err());
        assert_eq!(split_host_port("a:5000"), ("a", Some(5000)));
        assert_eq!(split_host_port("[::1]:5000"), ("::1", Some(5000)));
        assert_eq!(split_host_port("a"), ("a", None));
    }

    #[test]
    fn certs_dir_key_without_cert_is_refused_with_dockers_text() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let host = dir.path().join("reg:443");
        std::fs::create_dir(&host).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(host.join("client.cert"), "x").unwrap_or_else(|e| panic!("{e}"));
        let c = RegistryConfig {
            certs_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let e = c.tls_config("reg:443", true).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("missing key client.key for client certificate client.cert. CA certificates must use the extension .crt")
        );
        assert!(c.tls_config("elsewhere:443", true).is_ok());
    }
}
