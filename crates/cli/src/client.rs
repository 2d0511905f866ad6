//! A Docker Engine API client: HTTP/1.1 over a unix socket, TCP (TLS) or ssh, one connection per request.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::error::CliError;
use crate::transport::{TlsArgs, Transport};

/// Size of the chunks a streamed request body is read in.
const STREAM_CHUNK: usize = 1 << 20;

/// A chunk of a streamed body whose buffer goes back to the reading thread when hyper drops it.
struct Chunk {
    buf: Vec<u8>,
    len: usize,
    back: std::sync::mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Chunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // The reader may be gone (the stream ended); the buffer is then simply freed.
        let _ = self.back.send(std::mem::take(&mut self.buf));
    }
}

/// The API version this client speaks; older daemons are spoken to at their own version.
pub const API_VERSION: &str = "1.50";

/// A request body: nothing, a buffer, or chunks fed from another thread (for `load` and `import`).
pub enum ReqBody {
    /// No body.
    Empty,
    /// A complete body.
    Full(Bytes),
    /// A streamed body; the sender side is fed by a reader thread.
    Channel(mpsc::Receiver<std::io::Result<Bytes>>),
}

impl hyper::body::Body for ReqBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Full(bytes) => {
                if bytes.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(std::mem::take(bytes)))))
                }
            }
            ReqBody::Channel(rx) => rx
                .poll_recv(cx)
                .map(|chunk| chunk.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Full(b) => b.is_empty(),
            ReqBody::Channel(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Full(b) => SizeHint::with_exact(b.len() as u64),
            ReqBody::Channel(_) => SizeHint::default(),
        }
    }
}

impl ReqBody {
    /// Streams everything `reader` yields, read on a separate thread in chunks of up to 1 MiB.
    pub fn from_reader<R: std::io::Read + Send + 'static>(mut reader: R) -> Self {
        let (tx, rx) = mpsc::channel(4);
        std::thread::spawn(move || {
            // Big chunks mean few reads, few wake-ups of the connection task and big writes to
            // the socket (a 512 MB `load` made 4,900 socket writes and 4,600 futex calls in
            // 64 KiB chunks, 600 and 250 now). Each is handed over whole (no copy) and its buffer
            // comes back once hyper has sent it: a fresh one each time cost a tenth of the CLI's
            // time in zeroing and page faults.
            let (spare_tx, spare) = std::sync::mpsc::channel::<Vec<u8>>();
            loop {
                let mut buf = spare.try_recv().unwrap_or_else(|_| vec![0u8; STREAM_CHUNK]);
                match archive::read_up_to(&mut reader, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let chunk = Bytes::from_owner(Chunk {
                            buf,
                            len: n,
                            back: spare_tx.clone(),
                        });
                        if tx.blocking_send(Ok(chunk)).is_err() || n < STREAM_CHUNK {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        break;
                    }
                }
            }
        });
        ReqBody::Channel(rx)
    }
}

/// A connection target plus the API version agreed with the daemon.
#[derive(Clone)]
pub struct Client {
    host: String,
    transport: Transport,
    version: String,
    /// `X-Registry-Auth` sent with every request (pull and push).
    registry_auth: Option<String>,
    /// Other headers sent with every request (`X-Berth-Build-Secrets` for a build).
    headers: Vec<(&'static str, String)>,
}

impl Client {
    /// Creates a client for a host address (`-H`: `unix://`, `tcp://`, `ssh://`) and the TLS flags.
    pub fn new(host: &str, tls: &TlsArgs) -> Result<Self, CliError> {
        Ok(Client {
            host: host.to_string(),
            transport: Transport::new(host, tls)?,
            version: API_VERSION.to_string(),
            registry_auth: None,
            headers: Vec::new(),
        })
    }

    /// This client sending `X-Registry-Auth: auth` (credentials for the registry of a pull or push).
    pub fn with_registry_auth(&self, auth: Option<String>) -> Client {
        Client {
            registry_auth: auth,
            ..self.clone()
        }
    }

    /// This client sending the header `name: value` too.
    pub fn with_header(&self, name: &'static str, value: String) -> Client {
        let mut c = self.clone();
        c.headers.push((name, value));
        c
    }

    /// The API version requests are sent with (after [`Client::negotiate`]).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Pings the daemon and lowers the API version to the daemon's if it is older, as Docker's CLI does.
    pub async fn negotiate(&mut self) -> Result<(), CliError> {
        let resp = self
            .send(Method::GET, "/_ping".to_string(), ReqBody::Empty, None)
            .await?;
        if let Some(v) = resp
            .headers()
            .get("api-version")
            .and_then(|v| v.to_str().ok())
        {
            if version_less(v, API_VERSION) {
                self.version = v.to_string();
            }
        }
        Ok(())
    }

    /// Sends `method path` (path without the `/v1.x` prefix, query included) and returns a response below 400;
    /// a 4xx/5xx status becomes [`CliError::Daemon`] with the daemon's message.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>, CliError> {
        let uri = format!("/v{}{}", self.version, path);
        let resp = self.send(method, uri, body, content_type).await?;
        // Docker's client takes any status below 400 as success (`304 Not Modified` from start/stop).
        if resp.status().as_u16() < 400 {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let body = read_all(resp).await.unwrap_or_default();
        Err(CliError::Daemon {
            status,
            message: daemon_message(&body),
        })
    }

    /// GETs `path` and decodes its JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let body = self.get_bytes(path).await?;
        serde_json::from_slice(&body).map_err(|e| CliError::Decode(e.to_string()))
    }

    /// GETs `path` and returns its raw body.
    pub async fn get_bytes(&self, path: &str) -> Result<Bytes, CliError> {
        let resp = self
            .request(Method::GET, path, ReqBody::Empty, None)
            .await?;
        read_all(resp).await
    }

    /// POSTs a JSON body to `path` and returns the 2xx response.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<Response<Incoming>, CliError> {
        self.request(
            Method::POST,
            path,
            ReqBody::Full(Bytes::from(body.to_string())),
            Some("application/json"),
        )
        .await
    }

    /// POSTs `path` without a body and returns the 2xx response.
    pub async fn post(&self, path: &str) -> Result<Response<Incoming>, CliError> {
        self.request(Method::POST, path, ReqBody::Empty, None).await
    }

    /// POSTs `path` asking to upgrade the connection to a raw stream (`Upgrade: tcp`), as `attach` does;
    /// returns the hijacked connection once the daemon answers `101` (or `200`, as older daemons do).
    pub async fn upgrade(&self, path: &str) -> Result<hyper::upgrade::Upgraded, CliError> {
        self.upgrade_with(path, None).await
    }

    /// [`Client::upgrade`] with a JSON request body (`exec` start sends one).
    pub async fn upgrade_with(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<hyper::upgrade::Upgraded, CliError> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CliError::Http(e.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/v{}{}", self.version, path))
            .header("host", "berth")
            .header(
                "user-agent",
                concat!("Berth-Client/", env!("CARGO_PKG_VERSION")),
            )
            .header("connection", "Upgrade")
            .header("upgrade", "tcp")
            .header(
                "content-type",
                if body.is_some() {
                    "application/json"
                } else {
                    "text/plain"
                },
            )
            .body(match body {
                Some(b) => ReqBody::Full(Bytes::from(b.to_string())),
                None => ReqBody::Empty,
            })
            .map_err(|e| CliError::Http(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.exchange_error(&e))?;
        let status = resp.status().as_u16();
        if status != 101 && !resp.status().is_success() {
            let body = read_all(resp).await.unwrap_or_default();
            return Err(CliError::Daemon {
                status,
                message: daemon_message(&body),
            });
        }
        hyper::upgrade::on(resp)
            .await
            .map_err(|e| CliError::Http(e.to_string()))
    }

    /// A new connection to the daemon: "Cannot connect" when nothing listens, the cause otherwise (a TLS
    /// handshake the daemon refused, an ssh that failed).
    pub async fn connect(&self) -> Result<Box<dyn crate::transport::Io>, CliError> {
        self.transport.connect().await.map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound
            | std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::PermissionDenied => CliError::Connect {
                host: self.host.clone(),
            },
            _ => CliError::Http(e.to_string()),
        })
    }

    async fn send(
        &self,
        method: Method,
        uri: String,
        body: ReqBody,
        content_type: Option<&str>,
    ) -> Result<Response<Incoming>, CliError> {
        let stream = self.connect().await?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CliError::Http(e.to_string()))?;
        tokio::spawn(async move {
            // The connection ends with the response; its errors surface through the response body.
            let _ = conn.await;
        });
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "berth")
            .header(
                "user-agent",
                concat!("Berth-Client/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(ct) = content_type {
            builder = builder.header("content-type", ct);
        }
        if let Some(a) = &self.registry_auth {
            builder = builder.header("x-registry-auth", a);
        }
        for (name, value) in &self.headers {
            builder = builder.header(*name, value);
        }
        let req = builder
            .body(body)
            .map_err(|e| CliError::Http(e.to_string()))?;
        sender
            .send_request(req)
            .await
            .map_err(|e| self.exchange_error(&e))
    }

    /// A failed exchange, with its causes (a TLS alert from the daemon is the cause of hyper's "connection
    /// error"), and the docker CLI's hint when plain HTTP met a TLS port.
    fn exchange_error(&self, e: &hyper::Error) -> CliError {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        if e.is_parse() && matches!(self.transport, Transport::Tcp { tls: None, .. }) {
            text.push_str("\n* Are you trying to connect to a TLS-enabled daemon without TLS?");
        }
        CliError::Http(text)
    }
}

/// Reads a whole response body.
pub async fn read_all(resp: Response<Incoming>) -> Result<Bytes, CliError> {
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| CliError::Http(e.to_string()))
}

/// The daemon's error text: the `message` of a JSON error body, else the body itself.
pub fn daemon_message(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        message: String,
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    }
}

/// `a < b` for dotted API versions ("1.41" < "1.50").
fn version_less(a: &str, b: &str) -> bool {
    let parse = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(a) < parse(b)
}

/// Splits a streamed body into the JSON values it carries (the daemon's progress and event streams).
pub struct JsonStream {
    body: Incoming,
    buf: Vec<u8>,
}

impl JsonStream {
    /// Wraps a response whose body is a sequence of JSON documents.
    pub fn new(resp: Response<Incoming>) -> Self {
        JsonStream {
            body: resp.into_body(),
            buf: Vec::new(),
        }
    }

    /// The next JSON document and its raw bytes, or `None` at the end of the stream.
    pub async fn next(&mut self) -> Option<Result<(serde_json::Value, Vec<u8>), CliError>> {
        loop {
            match split_next(&mut self.buf) {
                Ok(Some(doc)) => return Some(Ok(doc)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buf.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Some(Err(CliError::Http(e.to_string()))),
                None => {
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        return None;
                    }
                    let rest = String::from_utf8_lossy(&self.buf).into_owned();
                    self.buf.clear();
                    return Some(Err(CliError::Decode(format!(
                        "unexpected end of stream: {rest}"
                    ))));
                }
            }
        }
    }
}

/// Takes the first complete JSON document off the front of `buf`; `Ok(None)` if more bytes are needed.
fn split_next(buf: &mut Vec<u8>) -> Result<Option<(serde_json::Value, Vec<u8>)>, CliError> {
    let start = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(buf.len());
    buf.drain(..start);
    if buf.is_empty() {
        return Ok(None);
    }
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    match it.next() {
        Some(Ok(v)) => {
            let end = it.byte_offset();
            let raw: Vec<u8> = buf.drain(..end).collect();
            Ok(Some((v, raw)))
        }
        Some(Err(e)) if !e.is_eof() => Err(CliError::Decode(e.to_string())),
        _ => Ok(None),
    }
}

/// Builds a query string (`?a=b&c=d`, or empty) from pairs, URL-encoding values.
pub fn query(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    format!("?{}", s.finish())
}

/// Encodes `--filter k=v` flags as the API's `filters` JSON (`{"k":{"v":true}}`).
pub fn filters_json(filters: &[String]) -> Result<Option<String>, CliError> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut map: serde_json::Map<String, serde_json::Value> = serde_json::Map::new();
    for f in filters {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            CliError::Usage("bad format of filter (expected name=value)".to_string())
        })?;
        let entry = map
            .entry(k.trim().to_lowercase())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let serde_json::Value::Object(values) = entry {
            values.insert(v.to_string(), serde_json::Value::Bool(true));
        }
    }
    Ok(Some(serde_json::Value::Object(map).to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_streamed_body_comes_in_mib_chunks_whole_while_buffers_are_reused() {
        // More chunks than the channel holds, so that buffers do come back.
        let data: Vec<u8> = (0..(21 * STREAM_CHUNK / 2))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut body = ReqBody::from_reader(std::io::Cursor::new(data.clone()));
        let (mut got, mut sizes) = (Vec::new(), Vec::new());
        // Each chunk is dropped before the next is taken, so its buffer goes back and is read
        // into again: what arrives must still be the stream, byte for byte.
        while let Some(frame) = body.frame().await {
            let chunk = frame
                .unwrap_or_else(|e| panic!("frame: {e}"))
                .into_data()
                .unwrap_or_else(|_| panic!("a data frame"));
            sizes.push(chunk.len());
            got.extend_from_slice(&chunk);
        }
        let mut want = vec![STREAM_CHUNK; 10];
        want.push(STREAM_CHUNK / 2);
        assert_eq!(sizes, want);
        assert!(got == data, "the body differs from the stream read");
    }

    #[test]
    fn filters_are_encoded_as_nested_true_maps() {
        let f = filters_json(&["dangling=true".into(), "label=a=b".into()]).unwrap();
        assert_eq!(
            f.as_deref(),
            Some(r#"{"dangling":{"true":true},"label":{"a=b":true}}"#)
        );
    }

    #[test]
    fn daemon_message_prefers_json_message_field() {
        assert_eq!(
            daemon_message(br#"{"message":"No such image: x"}"#),
            "No such image: x"
        );
        assert_eq!(daemon_message(b"plain text\n"), "plain text");
    }

    #[test]
    fn older_daemon_versions_compare_lower() {
        assert!(version_less("1.41", "1.50"));
        assert!(!version_less("1.50", "1.50"));
        assert!(version_less("1.9", "1.10"));
    }

    #[test]
    fn stream_splitter_waits_for_complete_documents_across_chunks() {
        let mut buf = br#"{"stream":"Loaded image: a:1\n"}"#.to_vec();
        buf.extend_from_slice(b"\r\n{\"status\":\"Loa");
        let (first, raw) = split_next(&mut buf).unwrap().unwrap();
        assert_eq!(first["stream"], "Loaded image: a:1\n");
        assert!(raw.starts_with(b"{"));
        assert!(split_next(&mut buf).unwrap().is_none());
        buf.extend_from_slice(b"ding\"}");
        let (second, _) = split_next(&mut buf).unwrap().unwrap();
        assert_eq!(second["status"], "Loading");
        assert!(split_next(&mut buf).unwrap().is_none());
    }

    #[test]
    fn stream_splitter_rejects_garbage() {
        let mut buf = b"}{".to_vec();
        assert!(split_next(&mut buf).is_err());
    }

    #[test]
    fn query_encodes_values() {
        assert_eq!(query(&[("repo", "a b"), ("tag", "1")]), "?repo=a+b&tag=1");
        assert_eq!(query(&[]), "");
    }

    #[test]
    fn unix_tcp_and_ssh_hosts_are_accepted() {
        let tls = TlsArgs::default();
        assert!(Client::new("unix:///run/berth/berth.sock", &tls).is_ok());
        assert!(Client::new("tcp://1.2.3.4:2375", &tls).is_ok());
        assert!(Client::new("ssh://me@host", &tls).is_ok());
        assert!(Client::new("fd://3", &tls).is_err());
    }
}
