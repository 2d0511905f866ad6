//! Errors, worded as Docker words them where Docker has wording.

use std::fmt;

use serde::Deserialize;

/// What a registry operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry answered with distribution error codes (`{"errors":[{"code":...}]}`), or with a
    /// bearer challenge carrying `error=`. Displayed as Docker does: `manifest unknown: manifest unknown`.
    #[error("{0}")]
    Registry(RegistryErrors),
    /// A status the protocol did not expect, with no body Docker could parse.
    #[error("received unexpected HTTP status: {status}")]
    UnexpectedStatus {
        /// The status line, e.g. `500 Internal Server Error`.
        status: String,
    },
    /// A 4xx answer whose body was neither a distribution error nor a token-server error.
    #[error("error parsing HTTP {status} response body: {parse_error}: {body:?}")]
    UnparsableBody {
        /// The numeric status.
        status: u16,
        /// Why the body did not parse.
        parse_error: String,
        /// The body as received (truncated).
        body: String,
    },
    /// Could not connect, or the connection failed mid-request.
    #[error("{method} \"{url}\": {}", chain(.source.as_ref()))]
    Transport {
        /// The request method.
        method: String,
        /// The URL asked for.
        url: String,
        /// What went wrong underneath.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A plain GET ([`crate::Client::get_url`]) answered 400 or more; dockerd's wording.
    #[error("failed to GET {url} with status {status}: {body}")]
    GetFailed {
        /// The URL asked for.
        url: String,
        /// The status line, e.g. `404 Not Found`.
        status: String,
        /// The answer's body, trimmed.
        body: String,
    },
    /// A blob or manifest whose content does not hash to the digest it was asked by. Docker's
    /// text: `filesystem layer verification failed for digest sha256:...`.
    #[error("{what} verification failed for digest {expected}")]
    DigestMismatch {
        /// `filesystem layer` or `manifest`.
        what: String,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// A blob whose length differs from its descriptor.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The blob.
        what: String,
        /// The size in the descriptor.
        expected: u64,
        /// What arrived (or at least arrived, when more came than expected).
        actual: u64,
    },
    /// A manifest in Docker's removed schema1 format.
    #[error("[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest version 2, schema 1 support has been removed. Suggest the author of {reference} to upgrade the image to the OCI Format or Docker Image manifest v2, schema 2. More information at https://docs.docker.com/go/deprecated-image-specs/")]
    Schema1 {
        /// The reference that named it.
        reference: String,
    },
    /// A manifest of a media type this client does not pull.
    #[error("unsupported manifest media type {media_type:?} for {reference}")]
    UnsupportedManifest {
        /// The Content-Type (or the JSON's mediaType).
        media_type: String,
        /// The reference that named it.
        reference: String,
    },
    /// A manifest list with no entry for the wanted platform.
    #[error("no matching manifest for {platform} in the manifest list entries")]
    NoMatchingPlatform {
        /// The wanted platform as `os/arch[/variant]`.
        platform: String,
    },
    /// A repository name, tag or digest that cannot be put in a registry URL.
    #[error("invalid reference format: {0}")]
    InvalidName(String),
    /// A platform string Docker would refuse.
    #[error("\"{0}\": unknown operating system or architecture: invalid argument")]
    InvalidPlatform(String),
    /// A manifest, token answer or config that is not the JSON it claims to be.
    #[error("invalid {what}: {source}")]
    Json {
        /// What was parsed.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The registry requires credentials and none were given (Basic challenge).
    #[error("no basic auth credentials")]
    NoBasicCredentials,
    /// `docker login` against a basic-auth registry that refused the credentials.
    #[error("login attempt to {url} failed with status: {status}")]
    LoginFailed {
        /// The `/v2/` URL.
        url: String,
        /// The status line.
        status: String,
    },
    /// A search endpoint that answered an error (or does not exist: distribution has none).
    #[error("Unexpected status code {code}")]
    SearchStatus {
        /// The HTTP status.
        code: u16,
    },
    /// A token server answered without a token.
    #[error("authorization server did not include a token in the response")]
    NoToken,
    /// An `X-Registry-Auth` header that is not base64url JSON.
    #[error("invalid X-Registry-Auth header: {0}")]
    InvalidAuthHeader(String),
    /// A configuration value (insecure registry, certs.d file) that cannot be used.
    #[error("{0}")]
    Config(String),
    /// A local I/O failure (a sink, a source, a certificate file).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The registry's answer broke the protocol (a missing Location, a bad digest header).
    #[error("{0}")]
    Protocol(String),
}

impl Error {
    /// True for failures worth retrying: connection errors, 5xx and 429.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::UnexpectedStatus { status } => {
                status.starts_with('5') || status.starts_with("429")
            }
            Error::Registry(e) => e.status >= 500 || e.status == 429,
            _ => false,
        }
    }

    /// The first distribution error code, e.g. `MANIFEST_UNKNOWN`, when the registry gave one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Registry(e) => e.errors.first().map(|e| e.code.as_str()),
            _ => None,
        }
    }

    /// The HTTP status behind this error, when it came from an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Registry(e) => Some(e.status),
            Error::UnparsableBody { status, .. } => Some(*status),
            Error::UnexpectedStatus { status } | Error::GetFailed { status, .. } => {
                status.get(..3).and_then(|s| s.parse().ok())
            }
            _ => None,
        }
    }

    /// True when the registry says the manifest, blob or repository does not exist (Docker
    /// answers these pulls with 404).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.code(),
            Some("MANIFEST_UNKNOWN" | "BLOB_UNKNOWN" | "NAME_UNKNOWN")
        ) || self.status() == Some(404)
    }

    /// True when the server refused a request for its body's size (413: a proxy's cap on request
    /// bodies, such as nginx's default of 1 MiB, in front of the registry).
    pub fn is_too_large(&self) -> bool {
        self.status() == Some(413)
    }

    /// True when credentials are missing, wrong or not enough (401, 403, `UNAUTHORIZED`,
    /// `DENIED`, no basic credentials, a refused login).
    pub fn is_auth(&self) -> bool {
        matches!(
            self,
            Error::NoBasicCredentials | Error::NoToken | Error::LoginFailed { .. }
        ) || matches!(self.code(), Some("UNAUTHORIZED" | "DENIED"))
            || matches!(self.status(), Some(401 | 403))
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// An error and its causes, `a: b: c`, without repeating a cause its parent already printed
/// (hyper's errors print only their kind and keep the I/O or TLS cause underneath).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = c.source();
    }
    out
}

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// One distribution error (`code`, `message`, `detail`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct RegistryError {
    /// Upper-case code such as `MANIFEST_UNKNOWN`.
    pub code: String,
    /// The human message.
    #[serde(default)]
    pub message: String,
    /// Free-form detail, kept for logs.
    #[serde(default)]
    pub detail: Option<serde_json::Value>,
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Docker prints a code as its lower-case words: MANIFEST_UNKNOWN -> "manifest unknown".
        let code = self.code.to_lowercase().replace('_', " ");
        let message = if self.message.is_empty() {
            default_message(&self.code)
        } else {
            &self.message
        };
        write!(f, "{code}: {message}")
    }
}

/// The messages distribution registers for its codes, used when an answer carries a code alone.
fn default_message(code: &str) -> &'static str {
    match code {
        "UNAUTHORIZED" => "authentication required",
        "DENIED" => "requested access to the resource is denied",
        "TOOMANYREQUESTS" => "too many requests",
        "UNSUPPORTED" => "The operation is unsupported.",
        "MANIFEST_UNKNOWN" => "manifest unknown",
        "BLOB_UNKNOWN" => "blob unknown to registry",
        "NAME_UNKNOWN" => "repository name not known to registry",
        "UNAVAILABLE" => "service unavailable",
        _ => "unknown error",
    }
}

/// The errors of one answer, with its status.
#[derive(Clone, Debug, PartialEq)]
pub struct RegistryErrors {
    /// The HTTP status of the answer.
    pub status: u16,
    /// The errors, never empty.
    pub errors: Vec<RegistryError>,
}

impl fmt::Display for RegistryErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.errors.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                f.write_str("errors:")?;
                for e in many {
                    write!(f, "\n{e}")?;
                }
                Ok(())
            }
        }
    }
}

impl RegistryErrors {
    /// One error with a code and its message.
    pub fn single(status: u16, code: &str, message: &str) -> RegistryErrors {
        RegistryErrors {
            status,
            errors: vec![RegistryError {
                code: code.to_string(),
                message: message.to_string(),
                detail: None,
            }],
        }
    }
}

#[derive(Deserialize)]
struct ErrorsBody {
    #[serde(default)]
    errors: Vec<RegistryError>,
}

/// Token servers answer failures as `{"details": "..."}`.
#[derive(Deserialize)]
struct DetailsBody {
    details: String,
}

/// Turns an error answer into Docker's error, as its distribution client does: a bearer challenge's
/// `error=` first, then a token server's `details`, then distribution's `errors`, else a parse error
/// (an `UNAUTHORIZED` for 401) or, outside 4xx, the bare status.
pub fn from_response(
    status: http::StatusCode,
    challenges: &[crate::auth::Challenge],
    body: &[u8],
) -> Error {
    let code = status.as_u16();
    if !(400..500).contains(&code) {
        if let Ok(b) = serde_json::from_slice::<ErrorsBody>(body) {
            if !b.errors.is_empty() {
                return Error::Registry(RegistryErrors {
                    status: code,
                    errors: b.errors,
                });
            }
        }
        return Error::UnexpectedStatus {
            status: status_line(status),
        };
    }
    let mut errors = Vec::new();
    for c in challenges.iter().filter(|c| c.scheme == "bearer") {
        let error_code = match c.param("error") {
            Some("invalid_token") => "UNAUTHORIZED",
            Some("insufficient_scope") => "DENIED",
            _ => continue,
        };
        let message = c
            .param("error_description")
            .filter(|d| !d.is_empty())
            .unwrap_or(default_message(error_code));
        errors.push(RegistryError {
            code: error_code.to_string(),
            message: message.to_string(),
            detail: None,
        });
        break;
    }
    if let Ok(d) = serde_json::from_slice::<DetailsBody>(body) {
        let c = match code {
            401 => Some("UNAUTHORIZED"),
            403 => Some("DENIED"),
            429 => Some("TOOMANYREQUESTS"),
            _ => None,
        };
        if let Some(c) = c {
            errors.push(RegistryError {
                code: c.to_string(),
                message: d.details,
                detail: None,
            });
            return Error::Registry(RegistryErrors {
                status: code,
                errors,
            });
        }
    }
    match serde_json::from_slice::<ErrorsBody>(body) {
        Ok(b) if !b.errors.is_empty() => {
            // A challenge's error= and the body often say the same thing; say it once.
            for e in b.errors {
                if !errors
                    .iter()
                    .any(|x| x.code == e.code && x.to_string() == e.to_string())
                {
                    errors.push(e);
                }
            }
            Error::Registry(RegistryErrors {
                status: code,
                errors,
            })
        }
        _ if !errors.is_empty() => Error::Registry(RegistryErrors {
            status: code,
            errors,
        }),
        Ok(_) if code == 401 => Error::Registry(RegistryErrors::single(code, "UNAUTHORIZED", "")),
        Ok(_) => Error::UnparsableBody {
            status: code,
            parse_error: "no error details found in HTTP response body".to_string(),
            body: truncated(body),
        },
        Err(_) if code == 401 => Error::Registry(RegistryErrors::single(code, "UNAUTHORIZED", "")),
        Err(e) => Error::UnparsableBody {
            status: code,
            parse_error: e.to_string(),
            body: truncated(body),
        },
    }
}

fn truncated(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(1024)]).into_owned()
}

/// `404 Not Found`, as Go prints a status.
pub(crate) fn status_line(status: http::StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
    .trim_end()
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::parse_challenges;

    fn err(status: u16, hdr: &str, body: &str) -> String {
        let st = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::IM_A_TEAPOT);
        from_response(st, &parse_challenges([hdr]), body.as_bytes()).to_string()
    }

    #[test]
    fn distribution_codes_print_as_docker() {
        let b = r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#;
        assert_eq!(err(404, "", b), "manifest unknown: manifest unknown");
        let b = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(err(401, "", b), "unauthorized: authentication required");
        let b = r#"{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}"#;
        assert_eq!(
            err(403, "", b),
            "denied: requested access to the resource is denied"
        );
        let b = r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#;
        assert_eq!(
            err(429, "", b),
            "toomanyrequests: You have reached your pull rate limit."
        );
        let b = r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"a"},{"code":"NAME_UNKNOWN","message":"b"}]}"#;
        assert_eq!(err(404, "", b), "errors:\nblob unknown: a\nname unknown: b");
    }

    #[test]
    fn challenges_and_token_servers_and_bare_statuses() {
        let h = r#"Bearer realm="https://a/token",error="insufficient_scope",scope="repository:x:push""#;
        assert_eq!(
            err(401, h, ""),
            "denied: requested access to the resource is denied"
        );
        let h = r#"Bearer realm="https://a/token",error="invalid_token",error_description="token expired""#;
        assert_eq!(err(401, h, ""), "unauthorized: token expired");
        let h = r#"Bearer realm="r",error="invalid_token""#;
        let b = r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        assert_eq!(err(401, h, b), "unauthorized: authentication required");
        assert_eq!(
            err(401, "", r#"{"details":"incorrect username or password"}"#),
            "unauthorized: incorrect username or password"
        );
        assert_eq!(
            err(401, "", "nope"),
            "unauthorized: authentication required"
        );
        assert_eq!(
            err(500, "", "boom"),
            "received unexpected HTTP status: 500 Internal Server Error"
        );
        assert!(err(404, "", "<html>").starts_with("error parsing HTTP 404 response body: "));
        let e = from_response(http::StatusCode::BAD_GATEWAY, &[], b"");
        assert!(e.is_retryable());
        let e = from_response(http::StatusCode::NOT_FOUND, &[], b"{}");
        assert!(!e.is_retryable());
        assert!(e.is_not_found() && !e.is_auth());
        let b = br#"{"errors":[{"code":"DENIED","message":"x"}]}"#;
        let e = from_response(http::StatusCode::FORBIDDEN, &[], b);
        assert!(e.is_auth() && !e.is_not_found() && !e.is_retryable());
        assert!(Error::NoBasicCredentials.is_auth());
    }
}
