//! HTTP/1.1 over TCP or rustls, with a small keep-alive pool per origin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::RegistryConfig;
use crate::error::{Error, Result};

/// A request body: in memory or streamed from a source.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// An empty body.
pub fn empty() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body of bytes in memory.
pub fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed_unsync()
}

/// Idle connections and TLS configurations, per origin.
pub(crate) struct Transport {
    config: Arc<RegistryConfig>,
    idle: Mutex<HashMap<String, Vec<SendRequest<Body>>>>,
    tls: Mutex<HashMap<(String, bool), TlsEntry>>,
}

/// A host's TLS configuration and the `certs.d` stamp it was made from.
type TlsEntry = (CertsStamp, Arc<rustls::ClientConfig>);

/// What the host's `certs.d` directory held when a TLS configuration was made: names, sizes and
/// modification times. dockerd reads `certs.d` for every pull, so a CA dropped in takes effect
/// without a restart; comparing this stamp (one readdir) keeps that without re-parsing the
/// certificates on every connection.
type CertsStamp = Vec<(std::ffi::OsString, u64, Option<std::time::SystemTime>)>;

fn certs_stamp(config: &RegistryConfig, host: &str) -> CertsStamp {
    let Some(dir) = &config.certs_dir else {
        return Vec::new();
    };
    let mut stamp: CertsStamp = std::fs::read_dir(dir.join(host))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let meta = e.metadata().ok();
                    (
                        e.file_name(),
                        meta.as_ref().map_or(0, |m| m.len()),
                        meta.and_then(|m| m.modified().ok()),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    stamp.sort();
    stamp
}

/// Idle connections kept per origin; more are closed.
const MAX_IDLE: usize = 8;

impl Transport {
    pub(crate) fn new(config: Arc<RegistryConfig>) -> Transport {
        Transport {
            config,
            idle: Mutex::new(HashMap::new()),
            tls: Mutex::new(HashMap::new()),
        }
    }

    fn tls_for(&self, host: &str, verify: bool) -> Result<Arc<rustls::ClientConfig>> {
        let key = (host.to_string(), verify);
        let stamp = certs_stamp(&self.config, host);
        let mut map = self.tls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((s, c)) = map.get(&key) {
            if *s == stamp {
                return Ok(c.clone());
            }
        }
        let c = self.config.tls_config(host, verify)?;
        map.insert(key, (stamp, c.clone()));
        Ok(c)
    }

    /// Sends one request on a pooled or new connection to the URL's origin (`verify` false for
    /// insecure registries over https). Answers the response and the connection, to give back
    /// with [`Transport::put_idle`] once the response body is read to its end.
    pub(crate) async fn send(
        &self,
        url: &url::Url,
        method: http::Method,
        headers: http::HeaderMap,
        body: Body,
        verify: bool,
    ) -> Result<(http::Response<Incoming>, SendRequest<Body>)> {
        let fail = |source: Box<dyn std::error::Error + Send + Sync>| Error::Transport {
            method: method.to_string(),
            url: url.to_string(),
            source,
        };
        let origin = origin_key(url, verify);
        let host = url
            .host_str()
            .ok_or_else(|| fail("URL without a host".into()))?;
        let port = url
            .port_or_known_default()
            .ok_or_else(|| fail("URL without a port".into()))?;
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let mut target = url.path().to_string();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let mut req = http::Request::builder()
            .method(method.clone())
            .uri(target)
            .body(body)
            .map_err(|e| fail(e.into()))?;
        *req.headers_mut() = headers;
        let host_value = http::HeaderValue::from_str(&authority).map_err(|e| fail(e.into()))?;
        req.headers_mut().insert(http::header::HOST, host_value);
        if let Some(mut sender) = self.take_idle(&origin) {
            match sender.try_send_request(req).await {
                Ok(resp) => return Ok((resp, sender)),
                Err(mut e) => match e.take_message() {
                    // The idle connection died before the request went out (the server closed
                    // it): send the same request on a new one.
                    Some(r) => req = r,
                    None => return Err(fail(e.into_error().into())),
                },
            }
        }
        let mut sender = self
            .connect(url.scheme(), host, port, &authority, verify)
            .await
            .map_err(fail)?;
        let resp = sender.send_request(req).await.map_err(|e| fail(e.into()))?;
        Ok((resp, sender))
    }

    fn take_idle(&self, origin: &str) -> Option<SendRequest<Body>> {
        let mut map = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.get_mut(origin)?;
        while let Some(s) = list.pop() {
            if !s.is_closed() && s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    /// Returns a connection whose last response was read to the end.
    pub(crate) fn put_idle(&self, url: &url::Url, verify: bool, s: SendRequest<Body>) {
        if s.is_closed() {
            return;
        }
        let mut map = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = map.entry(origin_key(url, verify)).or_default();
        if list.len() < MAX_IDLE {
            list.push(s);
        }
    }

    async fn connect(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        authority: &str,
        verify: bool,
    ) -> std::result::Result<SendRequest<Body>, Box<dyn std::error::Error + Send + Sync>> {
        let host = host.trim_matches(['[', ']']).to_string();
        let tcp = tokio::time::timeout(
            self.config.connect_timeout,
            TcpStream::connect((host.as_str(), port)),
        )
        .await
        .map_err(|_| format!("dial tcp {authority}: i/o timeout"))??;
        tcp.set_nodelay(true)?;
        if scheme == "http" {
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!("registry connection closed: {e}");
                }
            });
            return Ok(sender);
        }
        // certs.d directories are named like the registry, with the port when it has one.
        let tls = self.tls_for(authority, verify)?;
        let name = rustls::pki_types::ServerName::try_from(host)?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("registry connection closed: {e}");
            }
        });
        Ok(sender)
    }
}

fn origin_key(url: &url::Url, verify: bool) -> String {
    format!(
        "{}://{}:{}/{verify}",
        url.scheme(),
        url.host_str().unwrap_or_default(),
        url.port_or_known_default().unwrap_or_default()
    )
}
