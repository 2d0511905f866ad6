//! Plain GETs of any `http(s)://` URL, outside the distribution protocol: a build's `ADD
//! http://…` and its remote contexts. They share the registry client's transport (its TLS
//! configuration, `certs.d` included), follow redirects as Go's `http.Get` does, and fail on a
//! status of 400 and more with dockerd's wording.

use bytes::Bytes;
use http::header::{self, HeaderMap};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use url::Url;

use crate::client::Client;
use crate::error::{status_line, Error, Result};
use crate::transport;

/// Redirects followed, as Go's `http.Client` (which dockerd uses) follows at most ten.
const MAX_REDIRECTS: usize = 10;
/// How much of an error answer's body goes into the error.
const MAX_ERROR_BODY: usize = 64 << 10;

/// A successful answer (status below 400) whose body is read with [`WebResponse::chunk`].
pub struct WebResponse {
    url: Url,
    status: StatusCode,
    headers: HeaderMap,
    body: Incoming,
}

impl std::fmt::Debug for WebResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebResponse")
            .field("url", &self.url.as_str())
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl WebResponse {
    /// The URL the answer came from (after redirects).
    pub fn url(&self) -> &Url {
        &self.url
    }

    /// The answer's status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// A header's value (`last-modified`), when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>> {
        loop {
            match self.body.frame().await {
                None => return Ok(None),
                Some(Err(e)) => {
                    return Err(Error::Transport {
                        method: "GET".into(),
                        url: self.url.to_string(),
                        source: e.into(),
                    })
                }
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Ok(Some(data));
                        }
                    }
                }
            }
        }
    }
}

impl Client {
    /// GETs `address` (`http://` or `https://`, certificates verified), following redirects. A
    /// status of 400 or more is [`Error::GetFailed`] with the body's text, as dockerd words it.
    pub async fn get_url(&self, address: &str) -> Result<WebResponse> {
        let bad = |why: String| Error::Config(format!("invalid URL {address:?}: {why}"));
        let mut url = Url::parse(address).map_err(|e| bad(e.to_string()))?;
        for _ in 0..=MAX_REDIRECTS {
            if !matches!(url.scheme(), "http" | "https") {
                return Err(bad(format!(
                    "unsupported protocol scheme {:?}",
                    url.scheme()
                )));
            }
            let mut headers = HeaderMap::new();
            headers.insert(
                header::USER_AGENT,
                http::HeaderValue::from_static(concat!("berth/", env!("CARGO_PKG_VERSION"))),
            );
            // Each request on a connection of its own, never pooled: these are one-off downloads
            // from anywhere, and an answer's body is read by the caller, at its pace.
            let (resp, _conn) = self
                .transport()
                .send(&url, Method::GET, headers, transport::empty(), true)
                .await?;
            let status = resp.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let location = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        Error::Protocol(format!("{status} from {url} without a Location"))
                    })?;
                url = url.join(location).map_err(|e| bad(e.to_string()))?;
                continue;
            }
            let (parts, body) = resp.into_parts();
            let mut answer = WebResponse {
                url,
                status,
                headers: parts.headers,
                body,
            };
            if status.as_u16() < 400 {
                return Ok(answer);
            }
            let mut text = Vec::new();
            while let Some(c) = answer.chunk().await? {
                text.extend_from_slice(&c[..c.len().min(MAX_ERROR_BODY - text.len())]);
                if text.len() >= MAX_ERROR_BODY {
                    break;
                }
            }
            return Err(Error::GetFailed {
                url: address.to_owned(),
                status: status_line(status),
                body: String::from_utf8_lossy(&text).trim().to_owned(),
            });
        }
        Err(Error::Protocol(format!(
            "GET {address}: stopped after {MAX_REDIRECTS} redirects"
        )))
    }
}
