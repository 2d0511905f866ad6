//! The API's TLS for TCP listeners, as dockerd sets it up: the server's certificate and key, and with
//! `--tlsverify` client certificates required and verified against `--tlscacert` alone (not the system roots:
//! whoever holds a certificate from that CA is root on the host, so no other CA may vouch for anyone).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What went wrong setting up the API's TLS.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("invalid TLS configuration: could not read {what} {path}: {cause}")]
    Pem {
        /// Which file: "CA certificate", "certificate", "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why (in the message: the daemon prints one line).
        cause: rustls::pki_types::pem::Error,
    },
    /// A certificate file held no certificate.
    #[error("invalid TLS configuration: no certificate in {0}")]
    NoCertificate(PathBuf),
    /// `--tlsverify` without a CA to verify clients against.
    #[error("--tlsverify needs a CA certificate (--tlscacert) to verify clients with")]
    NoCa,
    /// rustls refused the CA, the certificate or the key.
    #[error("invalid TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// rustls refused the client verifier (an empty or unusable CA).
    #[error("invalid TLS configuration: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The files of the daemon's TLS: dockerd's `--tlscacert`, `--tlscert`, `--tlskey`.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA whose certificates clients must present (with `verify_clients`).
    pub ca: Option<PathBuf>,
    /// The server's certificate chain.
    pub cert: PathBuf,
    /// The server's private key.
    pub key: PathBuf,
}

fn certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |cause| TlsError::Pem {
        what,
        path: path.to_owned(),
        cause,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

/// The rustls server configuration for `files`; `verify_clients` requires every client to present a
/// certificate signed by `files.ca` (dockerd's `--tlsverify`), otherwise any client may connect (`--tls`
/// with `--tlsverify=false`).
pub fn server_config(
    files: &TlsFiles,
    verify_clients: bool,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    // ring, as the registry client: already built, and no C toolchain beyond what it needs.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certs("certificate", &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|cause| TlsError::Pem {
        what: "key",
        path: files.key.clone(),
        cause,
    })?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = if verify_clients {
        let ca = files.ca.as_deref().ok_or(TlsError::NoCa)?;
        let mut roots = rustls::RootCertStore::empty();
        for c in certs("CA certificate", ca)? {
            roots.add(c)?;
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    Ok(Arc::new(builder.with_single_cert(chain, key)?))
}
