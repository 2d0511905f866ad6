//! Registries, client side: `pull`, `push` and `login` as dockerd answers them. The `registry` crate
//! speaks the distribution protocol; this module turns API requests into its calls, writes what it
//! fetches into the image store and reports progress as the JSON lines `docker pull` draws its bars
//! from.

mod lookup;
mod pull;
mod push;

use serde::Serialize;

pub use lookup::DistributionInspect;
pub use pull::PullRequest;
pub use push::PushRequest;

use crate::error::{Error, Result};
use crate::Engine;

/// One line of a pull or push progress stream, as dockerd writes it (`status`, `id`,
/// `progressDetail`, and for a push's last line `aux`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Progress {
    /// `Pulling fs layer`, `Downloading`, `Digest: sha256:…`, … (absent on an `aux` line).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// The layer's short ID, or the tag on `Pulling from`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Bytes done and total, for the bars.
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub detail: Option<ProgressDetail>,
    /// Structured data for the client (a push's tag, digest and size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

/// `progressDetail`: empty on status changes, counts while bytes move.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ProgressDetail {
    /// Bytes done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Bytes in all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// Where a pull or push sends its progress.
pub type ProgressSender = tokio::sync::mpsc::UnboundedSender<Progress>;

impl Progress {
    /// A line with only a status (`Digest: …`, `Status: …`).
    fn status(status: impl Into<String>) -> Progress {
        Progress {
            status: status.into(),
            ..Default::default()
        }
    }

    /// A status change of one layer (`progressDetail` is `{}`, as dockerd sends it).
    fn layer(id: &str, status: &str) -> Progress {
        Progress {
            status: status.into(),
            id: Some(id.into()),
            detail: Some(ProgressDetail::default()),
            aux: None,
        }
    }

    /// Bytes moved for one layer.
    fn bytes(id: &str, status: &str, current: u64, total: u64) -> Progress {
        Progress {
            status: status.into(),
            id: Some(id.into()),
            detail: Some(ProgressDetail {
                current: Some(current),
                total: Some(total),
            }),
            aux: None,
        }
    }
}

/// Sends a line; a client that went away stops reading, and the operation carries on regardless
/// (a half-done pull is worth finishing: the next one finds the layers).
fn send(tx: &ProgressSender, p: Progress) {
    let _ = tx.send(p);
}

/// The daemon's registry settings (`--insecure-registry`, `--registry-mirror`, certs.d).
pub type RegistryConfig = registry::RegistryConfig;

/// Reads an `X-Registry-Auth` header (empty: anonymous).
fn parse_auth(header: Option<&str>) -> Result<registry::AuthConfig> {
    registry::AuthConfig::from_header(header.unwrap_or(""))
        .map_err(|e| Error::InvalidParameter(e.to_string()))
}

/// A registry error in Docker's classes: missing things are 404, refused credentials 401.
fn registry_error(e: registry::Error) -> Error {
    if e.is_auth() {
        Error::Unauthorized(e.to_string())
    } else if e.is_not_found() {
        Error::NotFound(e.to_string())
    } else {
        match e {
            registry::Error::InvalidName(_)
            | registry::Error::InvalidPlatform(_)
            | registry::Error::InvalidAuthHeader(_)
            | registry::Error::Schema1 { .. } => Error::InvalidParameter(e.to_string()),
            registry::Error::NoMatchingPlatform { .. } => Error::NotFound(e.to_string()),
            _ => Error::System(e.to_string()),
        }
    }
}

/// The registry a `docker login` names: `127.0.0.1:5000`, `https://registry.example/v2/`, or
/// docker.io's legacy address `https://index.docker.io/v1/` (empty means docker.io too).
pub(crate) fn login_domain(server: &str) -> String {
    let s = server.trim();
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or("");
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        h => h.to_ascii_lowercase(),
    }
}

/// What `POST /auth` answers on success.
#[derive(Clone, Debug, Serialize)]
pub struct LoginResponse {
    /// `Login Succeeded`.
    #[serde(rename = "Status")]
    pub status: String,
    /// A refresh token the client stores instead of the password, when the registry gave one.
    #[serde(rename = "IdentityToken", skip_serializing_if = "String::is_empty")]
    pub identity_token: String,
}

impl Engine {
    /// `POST /auth`: checks the credentials (the request's JSON: `username`, `password`,
    /// `serveraddress`, …) against the registry (`docker login`).
    pub async fn login(&self, body: &[u8]) -> Result<LoginResponse> {
        let auth: registry::AuthConfig = serde_json::from_slice(body)
            .map_err(|e| Error::InvalidParameter(format!("invalid auth configuration: {e}")))?;
        let domain = login_domain(&auth.serveraddress);
        let token = self
            .registry
            .login(&domain, auth)
            .await
            .map_err(registry_error)?;
        Ok(LoginResponse {
            status: "Login Succeeded".into(),
            identity_token: token.unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_addresses_name_their_registry() {
        assert_eq!(login_domain("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(login_domain(""), "docker.io");
        assert_eq!(login_domain("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(
            login_domain("http://Reg.Example:5000/v2/"),
            "reg.example:5000"
        );
    }

    #[test]
    fn progress_lines_have_dockerds_shape() {
        let v = serde_json::to_value(Progress::bytes("abc", "Downloading", 1, 2)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"status": "Downloading", "id": "abc",
                "progressDetail": {"current": 1, "total": 2}})
        );
        let v = serde_json::to_value(Progress::layer("abc", "Pull complete")).unwrap();
        assert_eq!(v["progressDetail"], serde_json::json!({}));
        let v = serde_json::to_value(Progress::status("Digest: x")).unwrap();
        assert_eq!(v, serde_json::json!({"status": "Digest: x"}));
    }
}
