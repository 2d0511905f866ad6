//! The distribution API client: one [`Client`] per daemon, one [`Session`] per registry and set of
//! credentials (a pull, a push, a login).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use crate::auth::{parse_challenges, AuthConfig, Challenge, Scope, TokenCache, TokenResponse};
use crate::config::{RegistryConfig, DOCKER_IO};
use crate::digest::{self, Digester};
use crate::error::{self, Error, Result};
use crate::manifest::{Descriptor, Manifest, MANIFEST_ACCEPT};
use crate::transport::{self, Body, Transport};

/// Manifests larger than this are refused, as Docker refuses them.
const MAX_MANIFEST: usize = 4 << 20;
/// Error and token bodies are read up to this much.
const MAX_SMALL_BODY: usize = 1 << 20;
/// Redirects followed for GET and HEAD (blob storage often redirects).
const MAX_REDIRECTS: usize = 10;
/// The read size for uploads.
const UPLOAD_BUF: usize = 256 << 10;

/// The daemon's registry client: configuration, TLS setups and idle connections, shared by all
/// sessions.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<RegistryConfig>,
    transport: Transport,
}

impl Client {
    /// A client with the daemon's registry configuration.
    pub fn new(config: RegistryConfig) -> Client {
        let config = Arc::new(config);
        Client {
            inner: Arc::new(Inner {
                transport: Transport::new(config.clone()),
                config,
            }),
        }
    }

    /// The transport, shared with plain GETs ([`crate::web`]).
    pub(crate) fn transport(&self) -> &Transport {
        &self.inner.transport
    }

    /// The configuration this client was made with.
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    /// Opens a session for pulling from `domain` (the reference's registry, e.g. `docker.io` or
    /// `localhost:5000`): finds the endpoint that answers `/v2/` (docker.io's mirrors first; for an
    /// insecure registry https without verification, then plain http) and learns its challenge.
    pub async fn session(&self, domain: &str, auth: AuthConfig) -> Result<Session> {
        self.open(domain, auth, true).await
    }

    /// Like [`Client::session`] for pushing: mirrors are never used.
    pub async fn push_session(&self, domain: &str, auth: AuthConfig) -> Result<Session> {
        self.open(domain, auth, false).await
    }

    async fn endpoints(&self, domain: &str, mirrors: bool) -> Result<Vec<(Url, bool)>> {
        let parse = |s: &str| {
            Url::parse(s).map_err(|e| Error::Config(format!("invalid registry URL {s:?}: {e}")))
        };
        let mut out = Vec::new();
        if domain == DOCKER_IO || domain == "index.docker.io" {
            if mirrors {
                for m in &self.inner.config.mirrors {
                    let u = parse(m)?;
                    let host = match u.port() {
                        Some(p) => format!("{}:{p}", u.host_str().unwrap_or_default()),
                        None => u.host_str().unwrap_or_default().to_string(),
                    };
                    let verify = !self.inner.config.is_insecure(&host).await;
                    out.push((u, verify));
                }
            }
            out.push((parse(&self.inner.config.docker_io_url)?, true));
            return Ok(out);
        }
        if self.inner.config.is_insecure(domain).await {
            out.push((parse(&format!("https://{domain}"))?, false));
            out.push((parse(&format!("http://{domain}"))?, false));
        } else {
            out.push((parse(&format!("https://{domain}"))?, true));
        }
        Ok(out)
    }

    fn new_session(&self, domain: &str, auth: AuthConfig, base: Url, verify: bool) -> Session {
        Session {
            inner: self.inner.clone(),
            domain: domain.to_string(),
            endpoint: Mutex::new((base, verify)),
            fallbacks: Mutex::new(VecDeque::new()),
            auth,
            challenges: Mutex::new(Vec::new()),
            tokens: TokenCache::default(),
            token_fetch: tokio::sync::Mutex::new(()),
        }
    }

    async fn open(&self, domain: &str, auth: AuthConfig, mirrors: bool) -> Result<Session> {
        let mut last = None;
        let mut endpoints: VecDeque<(Url, bool)> = self.endpoints(domain, mirrors).await?.into();
        let is_hub = domain == DOCKER_IO || domain == "index.docker.io";
        while let Some((base, verify)) = endpoints.pop_front() {
            let s = self.new_session(domain, auth.clone(), base, verify);
            match s.ping().await {
                Ok(()) => {
                    if is_hub {
                        // What a mirror cannot serve, the next mirror or docker.io itself may.
                        *s.fallbacks.lock().unwrap_or_else(|p| p.into_inner()) = endpoints;
                    }
                    return Ok(s);
                }
                Err(e @ Error::Transport { .. }) => {
                    tracing::debug!("registry endpoint {} unusable: {e}", s.base_url());
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::Config(format!("no endpoint for registry {domain}"))))
    }

    /// Searches a registry's v1 search endpoint (`GET /v1/search?q=&n=`; `index.docker.io` for
    /// docker.io), as `docker search` does. A registry without one (distribution has none) fails
    /// with Docker's `Unexpected status code 404`.
    pub async fn search(
        &self,
        domain: &str,
        term: &str,
        limit: u32,
        auth: AuthConfig,
    ) -> Result<SearchResults> {
        let endpoints = if domain == DOCKER_IO || domain == "index.docker.io" {
            let u = Url::parse("https://index.docker.io")
                .map_err(|e| Error::Config(format!("index URL: {e}")))?;
            vec![(u, true)]
        } else {
            self.endpoints(domain, false).await?
        };
        let mut last = None;
        for (base, verify) in endpoints {
            let s = self.new_session(domain, auth.clone(), base, verify);
            let mut url = s.url("/v1/search")?;
            url.query_pairs_mut()
                .append_pair("q", term)
                .append_pair("n", &limit.to_string());
            let ans = match s
                .send_raw(
                    Method::GET,
                    &url,
                    HeaderMap::new(),
                    None,
                    s.auth.basic_header(),
                )
                .await
            {
                Ok(a) => a,
                Err(e @ Error::Transport { .. }) => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let status = ans.status();
            let (_, body) = ans.bytes(&self.inner, MAX_MANIFEST).await?;
            if !status.is_success() {
                return Err(Error::SearchStatus {
                    code: status.as_u16(),
                });
            }
            return serde_json::from_slice(&body).map_err(|e| Error::Json {
                what: format!("search answer from {domain}"),
                source: e,
            });
        }
        Err(last.unwrap_or_else(|| Error::Config(format!("no endpoint for registry {domain}"))))
    }

    /// Logs in as `docker login` does: checks the credentials against the registry and answers
    /// the identity token (refresh token) the token server gave, if any.
    pub async fn login(&self, domain: &str, auth: AuthConfig) -> Result<Option<String>> {
        let s = self.push_session(domain, auth).await?;
        s.login().await
    }
}

/// One search hit, as the v1 search endpoint answers it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct SearchResult {
    /// Repository name.
    #[serde(default)]
    pub name: String,
    /// Its description.
    #[serde(default)]
    pub description: String,
    /// Stars.
    #[serde(default)]
    pub star_count: u64,
    /// An official image.
    #[serde(default)]
    pub is_official: bool,
    /// An automated build (deprecated by Docker Hub, still answered).
    #[serde(default)]
    pub is_automated: bool,
}

/// A v1 search answer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct SearchResults {
    /// The query as the registry understood it.
    #[serde(default)]
    pub query: String,
    /// How many results there are in all.
    #[serde(default)]
    pub num_results: u64,
    /// This page's results.
    #[serde(default)]
    pub results: Vec<SearchResult>,
}

/// What pushing a blob did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobPush {
    /// The registry had it already (Docker: `Layer already exists`).
    Exists,
    /// Mounted from another repository of the same registry (`Mounted from <repo>`).
    Mounted {
        /// The repository it came from.
        from: String,
    },
    /// Uploaded.
    Uploaded,
}

/// How blobs are uploaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UploadMode {
    /// POST, then one PUT with the whole blob.
    #[default]
    Monolithic,
    /// POST, PATCH chunks of this many bytes, then a PUT that closes the upload.
    Chunked(u64),
}

/// The first chunk size tried when a whole blob is refused as too large, and the smallest: chunks halve
/// from the first down to the last while the server refuses them.
const FIRST_CHUNK: u64 = 16 << 20;
const SMALLEST_CHUNK: u64 = 256 << 10;

/// The upload mode to try after `mode` was refused as too large: chunks, then smaller chunks; `None`
/// once the chunks are as small as they go.
fn smaller_chunks(mode: UploadMode, size: u64) -> Option<UploadMode> {
    let next = match mode {
        UploadMode::Monolithic => FIRST_CHUNK.min(size / 2),
        UploadMode::Chunked(c) => c / 2,
    };
    (next >= SMALLEST_CHUNK || (matches!(mode, UploadMode::Monolithic) && next > 0))
        .then_some(UploadMode::Chunked(next.max(1)))
}

/// A manifest as fetched: its bytes (exactly as served, to store and hash), digest, type.
#[derive(Clone, Debug)]
pub struct FetchedManifest {
    /// The bytes.
    pub bytes: Bytes,
    /// Their digest (checked against the one asked by, or the registry's header).
    pub digest: String,
    /// The media type.
    pub media_type: String,
    /// Parsed.
    pub manifest: Manifest,
}

impl FetchedManifest {
    /// The descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.bytes.len() as u64,
            urls: Vec::new(),
            annotations: Default::default(),
            platform: None,
            artifact_type: None,
        }
    }
}

/// A response and the connection it came on, handed back to the pool once the body is read.
struct Answer {
    resp: http::Response<Incoming>,
    conn: Option<(SendRequest<Body>, Url, bool)>,
    url: Url,
}

impl Answer {
    fn status(&self) -> StatusCode {
        self.resp.status()
    }

    fn header(&self, name: HeaderName) -> Option<&str> {
        self.resp.headers().get(name).and_then(|v| v.to_str().ok())
    }

    fn challenges(&self) -> Vec<Challenge> {
        parse_challenges(
            self.resp
                .headers()
                .get_all(header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok()),
        )
    }

    /// Reads the whole body (up to `limit`), then pools the connection.
    async fn bytes(self, inner: &Inner, limit: usize) -> Result<(http::response::Parts, Bytes)> {
        let (parts, mut body) = self.resp.into_parts();
        let mut buf = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Error::Transport {
                method: "GET".into(),
                url: self.url.to_string(),
                source: e.into(),
            })?;
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(Error::Protocol(format!(
                        "answer from {} larger than {limit} bytes",
                        self.url
                    )));
                }
                buf.extend_from_slice(&data);
            }
        }
        if let Some((s, url, verify)) = self.conn {
            inner.transport.put_idle(&url, verify, s);
        }
        Ok((parts, Bytes::from(buf)))
    }

    /// Turns an unexpected answer into Docker's error.
    async fn into_error(self, inner: &Inner) -> Error {
        let status = self.status();
        let challenges = self.challenges();
        match self.bytes(inner, MAX_SMALL_BODY).await {
            Ok((_, body)) => error::from_response(status, &challenges, &body),
            Err(_) => error::from_response(status, &challenges, b""),
        }
    }
}

/// A registry endpoint with one set of credentials and its tokens.
pub struct Session {
    inner: Arc<Inner>,
    domain: String,
    /// The base URL in use, and whether its certificate is verified.
    endpoint: Mutex<(Url, bool)>,
    /// For docker.io: the mirrors after this one, then docker.io, tried when a pull's manifest
    /// cannot be had here.
    fallbacks: Mutex<VecDeque<(Url, bool)>>,
    auth: AuthConfig,
    challenges: Mutex<Vec<Challenge>>,
    tokens: TokenCache,
    token_fetch: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (base, verify) = self.endpoint();
        f.debug_struct("Session")
            .field("domain", &self.domain)
            .field("base", &base.as_str())
            .field("verify", &verify)
            .finish()
    }
}

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Session {
    /// The registry as the reference names it.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The base URL in use, e.g. `http://127.0.0.1:5000`.
    pub fn base_url(&self) -> Url {
        self.endpoint().0
    }

    fn endpoint(&self) -> (Url, bool) {
        self.endpoint
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// After an error a mirror may give where the next endpoint would not: moves to the next
    /// endpoint that answers `/v2/`, as Docker moves from a mirror to docker.io. False when there
    /// is none left or the error is not one to fall back on.
    async fn fall_back(&self, e: &Error) -> bool {
        let remote = matches!(
            e,
            Error::Registry(_)
                | Error::UnexpectedStatus { .. }
                | Error::UnparsableBody { .. }
                | Error::Transport { .. }
                | Error::NoToken
                | Error::NoBasicCredentials
        );
        if !remote {
            return false;
        }
        loop {
            let next = self
                .fallbacks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            let Some(next) = next else {
                return false;
            };
            tracing::info!("{e}; trying {} instead", next.0);
            *self.endpoint.lock().unwrap_or_else(|p| p.into_inner()) = next;
            self.challenges
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            if self.ping().await.is_ok() {
                return true;
            }
        }
    }

    /// `/v2/<repo>/<tail>` on the current endpoint, after checking the repository name: the
    /// caller's reference parser should have, but a `..` or `?` here would address something else.
    fn api_url(&self, repo: &str, tail: &str) -> Result<Url> {
        let valid = !repo.is_empty()
            && repo.split('/').all(|c| {
                !c.is_empty()
                    && c.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)
                    })
                    && c.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            });
        if !valid {
            return Err(Error::InvalidName(format!("repository name {repo:?}")));
        }
        self.url(&format!("/v2/{repo}/{tail}"))
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.endpoint()
            .0
            .join(path)
            .map_err(|e| Error::Protocol(format!("bad URL path {path:?}: {e}")))
    }

    fn take_challenges(&self) -> Vec<Challenge> {
        self.challenges
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_challenges(&self, c: Vec<Challenge>) {
        if !c.is_empty() {
            *self.challenges.lock().unwrap_or_else(|p| p.into_inner()) = c;
        }
    }

    /// `GET /v2/`: learns the registry's challenge. Any HTTP answer counts as reachable; a 401 is
    /// what authenticated registries answer.
    pub async fn ping(&self) -> Result<()> {
        let url = self.url("/v2/")?;
        let ans = self
            .send_raw(Method::GET, &url, HeaderMap::new(), None, None)
            .await?;
        self.set_challenges(ans.challenges());
        let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
        Ok(())
    }

    async fn login(&self) -> Result<Option<String>> {
        let challenges = self.take_challenges();
        if let Some(b) = challenges.iter().find(|c| c.scheme == "bearer") {
            let realm = b.param("realm").unwrap_or_default().to_string();
            let service = b.param("service").unwrap_or_default().to_string();
            let t = self.fetch_token(&realm, &service, &[], true).await?;
            let refresh = (!t.refresh_token.is_empty()).then(|| t.refresh_token.clone());
            return Ok(refresh);
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let authz = self.auth.basic_header().ok_or(Error::NoBasicCredentials)?;
            let url = self.url("/v2/")?;
            let ans = self
                .send_raw(Method::GET, &url, HeaderMap::new(), None, Some(authz))
                .await?;
            let status = ans.status();
            let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
            if !status.is_success() {
                return Err(Error::LoginFailed {
                    url: url.to_string(),
                    status: error::status_line(status),
                });
            }
        }
        Ok(None)
    }

    /// One request and its redirects (GET and HEAD only; the Authorization header is not sent to
    /// another host).
    async fn send_raw(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: Option<Bytes>,
        authz: Option<String>,
    ) -> Result<Answer> {
        let mut url = url.clone();
        let first_host = (url.host_str().map(str::to_string), url.port());
        for _ in 0..=MAX_REDIRECTS {
            let mut h = headers.clone();
            let same_host = (url.host_str().map(str::to_string), url.port()) == first_host;
            if let (Some(a), true) = (&authz, same_host) {
                let v = HeaderValue::from_str(a)
                    .map_err(|e| Error::Protocol(format!("authorization header: {e}")))?;
                h.insert(header::AUTHORIZATION, v);
            }
            if !h.contains_key(header::USER_AGENT) {
                h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
            }
            let b = match &body {
                Some(b) => {
                    h.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                    transport::full(b.clone())
                }
                None if method == Method::PUT
                    || method == Method::POST
                    || method == Method::PATCH =>
                {
                    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
                    transport::empty()
                }
                None => transport::empty(),
            };
            // Only our own registry may be reached insecurely; a redirect elsewhere is verified.
            let verify = if same_host { self.endpoint().1 } else { true };
            let (resp, conn) = self
                .inner
                .transport
                .send(&url, method.clone(), h, b, verify)
                .await?;
            let status = resp.status();
            let ans = Answer {
                resp,
                conn: Some((conn, url.clone(), verify)),
                url: url.clone(),
            };
            let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
                && (method == Method::GET || method == Method::HEAD);
            if !redirect {
                return Ok(ans);
            }
            let loc = ans
                .header(header::LOCATION)
                .ok_or_else(|| Error::Protocol(format!("redirect from {url} without Location")))?
                .to_string();
            let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
            url = url
                .join(&loc)
                .map_err(|e| Error::Protocol(format!("bad redirect {loc:?}: {e}")))?;
        }
        Err(Error::Protocol(format!("too many redirects from {url}")))
    }

    /// The Authorization header for these scopes, fetching a token if the registry wants one.
    async fn authorization(&self, scopes: &[Scope]) -> Result<Option<String>> {
        let challenges = self.take_challenges();
        if let Some(b) = challenges.iter().find(|c| c.scheme == "bearer") {
            if !self.auth.registrytoken.is_empty() {
                return Ok(Some(format!("Bearer {}", self.auth.registrytoken)));
            }
            let realm = b.param("realm").unwrap_or_default().to_string();
            let service = b.param("service").unwrap_or_default().to_string();
            let mut scopes = scopes.to_vec();
            // The registry may name a scope of its own (insufficient_scope); ask for it too.
            if let Some(s) = b.param("scope").and_then(Scope::parse) {
                if !scopes.contains(&s) {
                    scopes.push(s);
                }
            }
            if let Some(t) = self.tokens.get(&realm, &service, &scopes) {
                return Ok(Some(format!("Bearer {t}")));
            }
            // Layers pulled at once would each ask for the same token: one asks, the others
            // wait and find it cached.
            let _one_at_a_time = self.token_fetch.lock().await;
            if let Some(t) = self.tokens.get(&realm, &service, &scopes) {
                return Ok(Some(format!("Bearer {t}")));
            }
            let t = self.fetch_token(&realm, &service, &scopes, false).await?;
            let token = t.bearer().ok_or(Error::NoToken)?.to_string();
            self.tokens
                .put(&realm, &service, &scopes, &token, t.lifetime());
            return Ok(Some(format!("Bearer {token}")));
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return self
                .auth
                .basic_header()
                .map(Some)
                .ok_or(Error::NoBasicCredentials);
        }
        Ok(None)
    }

    fn invalidate_tokens(&self, scopes: &[Scope]) {
        for b in self
            .take_challenges()
            .iter()
            .filter(|c| c.scheme == "bearer")
        {
            let realm = b.param("realm").unwrap_or_default();
            let service = b.param("service").unwrap_or_default();
            let mut s = scopes.to_vec();
            if let Some(x) = b.param("scope").and_then(Scope::parse) {
                if !s.contains(&x) {
                    s.push(x);
                }
            }
            self.tokens.invalidate(realm, service, &s);
            self.tokens.invalidate(realm, service, scopes);
        }
    }

    /// Asks the token server: a POST form with the identity (refresh) token when there is one,
    /// else a GET with basic credentials or none. `offline` asks for a refresh token (login).
    async fn fetch_token(
        &self,
        realm: &str,
        service: &str,
        scopes: &[Scope],
        offline: bool,
    ) -> Result<TokenResponse> {
        let mut url = Url::parse(realm)
            .map_err(|e| Error::Protocol(format!("invalid token realm {realm:?}: {e}")))?;
        let realm_host = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let verify = !self.inner.config.is_insecure(&realm_host).await;
        let mut headers = HeaderMap::new();
        let (method, body, authz) = if !self.auth.identitytoken.is_empty() {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "refresh_token");
            form.append_pair("refresh_token", &self.auth.identitytoken);
            form.append_pair("client_id", CLIENT_ID);
            if !service.is_empty() {
                form.append_pair("service", service);
            }
            if !scopes.is_empty() {
                let s: Vec<String> = scopes.iter().map(Scope::to_string).collect();
                form.append_pair("scope", &s.join(" "));
            }
            if offline {
                form.append_pair("access_type", "offline");
            }
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            );
            (Method::POST, Some(Bytes::from(form.finish())), None)
        } else {
            {
                let mut q = url.query_pairs_mut();
                if !service.is_empty() {
                    q.append_pair("service", service);
                }
                for s in scopes {
                    q.append_pair("scope", &s.to_string());
                }
                if offline {
                    q.append_pair("offline_token", "true");
                    q.append_pair("client_id", CLIENT_ID);
                }
            }
            (Method::GET, None, self.auth.basic_header())
        };
        if url.query() == Some("") {
            url.set_query(None);
        }
        let mut last = None;
        for attempt in 0..self.inner.config.retry.attempts.max(1) {
            if attempt > 0 {
                self.backoff(attempt).await;
            }
            let ans = self
                .send_token_request(&method, &url, &headers, body.clone(), authz.clone(), verify)
                .await;
            let ans = match ans {
                Ok(a) => a,
                Err(e) if e.is_retryable() => {
                    last = Some(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            if !ans.status().is_success() {
                let e = ans.into_error(&self.inner).await;
                if e.is_retryable() {
                    last = Some(e);
                    continue;
                }
                return Err(e);
            }
            let (_, body) = ans.bytes(&self.inner, MAX_SMALL_BODY).await?;
            let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| Error::Json {
                what: format!("token answer from {realm}"),
                source: e,
            })?;
            if t.bearer().is_none() {
                return Err(Error::NoToken);
            }
            return Ok(t);
        }
        Err(last.unwrap_or(Error::NoToken))
    }

    async fn send_token_request(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<Bytes>,
        authz: Option<String>,
        verify: bool,
    ) -> Result<Answer> {
        let mut h = headers.clone();
        if let Some(a) = authz {
            let v = HeaderValue::from_str(&a)
                .map_err(|e| Error::Protocol(format!("authorization header: {e}")))?;
            h.insert(header::AUTHORIZATION, v);
        }
        h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        let b = match body {
            Some(b) => {
                h.insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
                transport::full(b)
            }
            None => transport::empty(),
        };
        let (resp, conn) = self
            .inner
            .transport
            .send(url, method.clone(), h, b, verify)
            .await?;
        Ok(Answer {
            resp,
            conn: Some((conn, url.clone(), verify)),
            url: url.clone(),
        })
    }

    async fn backoff(&self, attempt: u32) {
        let d = self.inner.config.retry.base_delay * 2u32.saturating_pow(attempt - 1);
        tokio::time::sleep(d).await;
    }

    /// A request with authentication: a 401 with a new challenge is answered once, a bearer
    /// `error=invalid_token`/`insufficient_scope` gets one fresh token and one more try.
    async fn send_authed(
        &self,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<Bytes>,
        scopes: &[Scope],
    ) -> Result<Answer> {
        let mut challenged = false;
        let mut refreshed = false;
        loop {
            let authz = self.authorization(scopes).await?;
            let ans = self
                .send_raw(
                    method.clone(),
                    url,
                    headers.clone(),
                    body.clone(),
                    authz.clone(),
                )
                .await?;
            if ans.status() != StatusCode::UNAUTHORIZED {
                return Ok(ans);
            }
            let ch = ans.challenges();
            if authz.is_none() && !challenged && !ch.is_empty() {
                challenged = true;
                self.set_challenges(ch);
                let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
                continue;
            }
            let bearer_error = ch.iter().any(|c| {
                c.scheme == "bearer"
                    && matches!(
                        c.param("error"),
                        Some("invalid_token" | "insufficient_scope")
                    )
            });
            if authz.is_some() && bearer_error && !refreshed {
                refreshed = true;
                self.invalidate_tokens(scopes);
                self.set_challenges(ch);
                let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
                continue;
            }
            return Ok(ans);
        }
    }

    /// [`Session::send_authed`] retried with back-off on connection errors, 5xx and 429.
    async fn send_retried(
        &self,
        method: Method,
        url: &Url,
        headers: &HeaderMap,
        body: Option<Bytes>,
        scopes: &[Scope],
    ) -> Result<Answer> {
        let attempts = self.inner.config.retry.attempts.max(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let r = self
                .send_authed(method.clone(), url, headers, body.clone(), scopes)
                .await;
            let retry = match &r {
                Ok(a) => {
                    a.status().is_server_error() || a.status() == StatusCode::TOO_MANY_REQUESTS
                }
                Err(e) => e.is_retryable(),
            };
            if !retry || attempt >= attempts {
                return r;
            }
            match r {
                Ok(a) => {
                    let e = a.into_error(&self.inner).await;
                    tracing::debug!("{method} {url}: {e}; retrying");
                }
                Err(e) => tracing::debug!("{method} {url}: {e}; retrying"),
            }
            self.backoff(attempt).await;
        }
    }

    /// `HEAD` on a manifest: its descriptor (digest from `Docker-Content-Digest`; a GET when
    /// the registry does not send one). `reference` is a tag or a digest.
    pub async fn resolve(&self, repo: &str, reference: &str) -> Result<Descriptor> {
        loop {
            match self.resolve_here(repo, reference).await {
                Err(e) if self.fall_back(&e).await => continue,
                r => return r,
            }
        }
    }

    async fn resolve_here(&self, repo: &str, reference: &str) -> Result<Descriptor> {
        let url = self.api_url(repo, &format!("manifests/{}", check_reference(reference)?))?;
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let ans = self
            .send_retried(Method::HEAD, &url, &h, None, &[Scope::pull(repo)])
            .await?;
        if ans.status() == StatusCode::NOT_FOUND {
            // A HEAD answer has no body to name the error: it is the GET's MANIFEST_UNKNOWN.
            let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
            return Err(Error::Registry(error::RegistryErrors::single(
                404,
                "MANIFEST_UNKNOWN",
                "manifest unknown",
            )));
        }
        if !ans.status().is_success() {
            return Err(ans.into_error(&self.inner).await);
        }
        let digest = ans
            .header(HeaderName::from_static("docker-content-digest"))
            .map(str::to_string);
        let media_type = ans
            .header(header::CONTENT_TYPE)
            .unwrap_or_default()
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_string();
        let size = ans
            .header(header::CONTENT_LENGTH)
            .and_then(|s| s.parse().ok());
        let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
        match (digest, size) {
            (Some(digest), Some(size)) if !media_type.is_empty() => Ok(Descriptor {
                media_type,
                digest,
                size,
                urls: Vec::new(),
                annotations: Default::default(),
                platform: None,
                artifact_type: None,
            }),
            _ => Ok(self.get_manifest_here(repo, reference).await?.descriptor()),
        }
    }

    /// `GET` a manifest by tag or digest, with the four manifest types accepted. By digest the
    /// bytes must hash to it; by tag to the registry's `Docker-Content-Digest` when it sends one.
    /// Schema1 is refused with Docker's deprecation text.
    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Result<FetchedManifest> {
        loop {
            match self.get_manifest_here(repo, reference).await {
                Err(e) if self.fall_back(&e).await => continue,
                r => return r,
            }
        }
    }

    async fn get_manifest_here(&self, repo: &str, reference: &str) -> Result<FetchedManifest> {
        let url = self.api_url(repo, &format!("manifests/{}", check_reference(reference)?))?;
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let ans = self
            .send_retried(Method::GET, &url, &h, None, &[Scope::pull(repo)])
            .await?;
        if !ans.status().is_success() {
            return Err(ans.into_error(&self.inner).await);
        }
        let header_digest = ans
            .header(HeaderName::from_static("docker-content-digest"))
            .map(str::to_string);
        let ct = ans
            .header(header::CONTENT_TYPE)
            .unwrap_or_default()
            .to_string();
        let (_, bytes) = ans.bytes(&self.inner, MAX_MANIFEST).await?;
        let name = if reference.contains(':') {
            format!("{}/{repo}@{reference}", self.domain)
        } else {
            format!("{}/{repo}:{reference}", self.domain)
        };
        let (media_type, manifest) = Manifest::parse(&ct, &bytes, &name)?;
        let expected = if reference.contains(':') {
            Some(reference.to_string())
        } else {
            header_digest
        };
        let digest = match expected {
            Some(d) => {
                digest::verify("manifest", &d, &bytes)?;
                d
            }
            None => digest::sha256(&bytes),
        };
        Ok(FetchedManifest {
            bytes,
            digest,
            media_type,
            manifest,
        })
    }

    /// `PUT` a manifest under a tag or its digest; answers its digest.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<String> {
        let url = self.api_url(repo, &format!("manifests/{}", check_reference(reference)?))?;
        let mut h = HeaderMap::new();
        let ct = HeaderValue::from_str(media_type)
            .map_err(|e| Error::Protocol(format!("media type {media_type:?}: {e}")))?;
        h.insert(header::CONTENT_TYPE, ct);
        let digest = digest::sha256(&bytes);
        let ans = self
            .send_retried(Method::PUT, &url, &h, Some(bytes), &[Scope::push(repo)])
            .await?;
        if ans.status() != StatusCode::CREATED && !ans.status().is_success() {
            return Err(ans.into_error(&self.inner).await);
        }
        let served = ans
            .header(HeaderName::from_static("docker-content-digest"))
            .map(str::to_string);
        let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
        if let Some(s) = served {
            if s.starts_with("sha256:") && s != digest {
                return Err(Error::DigestMismatch {
                    what: "manifest".into(),
                    expected: digest,
                    actual: s,
                });
            }
        }
        Ok(digest)
    }

    /// `HEAD` a blob: its size when the registry has it.
    pub async fn blob_exists(&self, repo: &str, digest: &str) -> Result<Option<u64>> {
        self.blob_exists_scoped(repo, digest, &[Scope::pull(repo)])
            .await
    }

    async fn blob_exists_scoped(
        &self,
        repo: &str,
        digest: &str,
        scopes: &[Scope],
    ) -> Result<Option<u64>> {
        let url = self.api_url(repo, &format!("blobs/{}", check_digest(digest)?))?;
        let ans = self
            .send_retried(Method::HEAD, &url, &HeaderMap::new(), None, scopes)
            .await?;
        let status = ans.status();
        if status == StatusCode::NOT_FOUND {
            let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
            return Ok(None);
        }
        if !status.is_success() {
            return Err(ans.into_error(&self.inner).await);
        }
        let size = ans
            .header(header::CONTENT_LENGTH)
            .and_then(|s| s.parse().ok());
        let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
        Ok(Some(size.unwrap_or(0)))
    }

    /// Streams a blob into `sink`, hashing and counting as it goes; a dropped connection or a 5xx
    /// resumes with a Range request where it stopped (retried with back-off). Fails without
    /// retrying when more than `size` bytes come, or when the digest does not match at the end:
    /// the caller then discards what the sink holds. `progress` gets the bytes written so far.
    pub async fn fetch_blob<W>(
        &self,
        repo: &str,
        digest: &str,
        size: Option<u64>,
        sink: &mut W,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64>
    where
        W: AsyncWrite + Unpin + Send + ?Sized,
    {
        self.fetch_blob_chunks(repo, digest, size, &mut WriteSink(sink), progress)
            .await
    }

    /// [`Session::fetch_blob`] into a [`ChunkSink`]: the connection's chunks are handed on as they
    /// come, without a copy.
    pub async fn fetch_blob_chunks<S>(
        &self,
        repo: &str,
        digest: &str,
        size: Option<u64>,
        sink: &mut S,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<u64>
    where
        S: ChunkSink + ?Sized,
    {
        let mut hasher = Digester::for_digest(check_digest(digest)?)?;
        let url = self.api_url(repo, &format!("blobs/{}", check_digest(digest)?))?;
        let scopes = [Scope::pull(repo)];
        let attempts = self.inner.config.retry.attempts.max(1);
        let mut written: u64 = 0;
        let mut attempt = 0;
        let verification = || Error::DigestMismatch {
            what: "filesystem layer".into(),
            expected: digest.to_string(),
            actual: String::new(),
        };
        loop {
            attempt += 1;
            let mut h = HeaderMap::new();
            if written > 0 {
                let v = HeaderValue::from_str(&format!("bytes={written}-"))
                    .map_err(|e| Error::Protocol(e.to_string()))?;
                h.insert(header::RANGE, v);
            }
            let r = self.send_authed(Method::GET, &url, &h, None, &scopes).await;
            let ans = match r {
                Ok(a) if a.status().is_success() => a,
                Ok(a) => {
                    let e = a.into_error(&self.inner).await;
                    if e.is_retryable() && attempt < attempts {
                        self.backoff(attempt).await;
                        continue;
                    }
                    return Err(e);
                }
                Err(e) if e.is_retryable() && attempt < attempts => {
                    self.backoff(attempt).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            // A registry that ignores Range starts over: skip what the sink already has.
            let mut skip = if ans.status() == StatusCode::PARTIAL_CONTENT {
                let start = ans
                    .header(header::CONTENT_RANGE)
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(written) {
                    return Err(Error::Protocol(format!(
                        "GET {url}: asked for bytes from {written}, got Content-Range {:?}",
                        ans.header(header::CONTENT_RANGE)
                    )));
                }
                0
            } else {
                written
            };
            let mut body = ans.resp.into_body();
            let mut failed = None;
            while let Some(frame) = body.frame().await {
                let frame = match frame {
                    Ok(f) => f,
                    Err(e) => {
                        failed = Some(Error::Transport {
                            method: "GET".into(),
                            url: url.to_string(),
                            source: e.into(),
                        });
                        break;
                    }
                };
                let Ok(mut data) = frame.into_data() else {
                    continue;
                };
                if skip > 0 {
                    let n = skip.min(data.len() as u64);
                    let _ = data.split_to(n as usize);
                    skip -= n;
                    if data.is_empty() {
                        continue;
                    }
                }
                let new_len = written + data.len() as u64;
                if let Some(max) = size {
                    if new_len > max {
                        return Err(Error::SizeMismatch {
                            what: digest.to_string(),
                            expected: max,
                            actual: new_len,
                        });
                    }
                }
                hasher.update(&data);
                sink.put(data)
                    .await
                    .map_err(|e| Error::io(format!("writing blob {digest}"), e))?;
                written = new_len;
                progress(written);
            }
            if let Some(e) = failed {
                if attempt < attempts {
                    tracing::debug!("{e}; resuming at byte {written}");
                    self.backoff(attempt).await;
                    continue;
                }
                return Err(e);
            }
            if let Some(max) = size {
                if written < max {
                    // The body ended early without an error from the connection: resume too.
                    if attempt < attempts {
                        self.backoff(attempt).await;
                        continue;
                    }
                    return Err(Error::SizeMismatch {
                        what: digest.to_string(),
                        expected: max,
                        actual: written,
                    });
                }
            }
            break;
        }
        sink.flush()
            .await
            .map_err(|e| Error::io(format!("writing blob {digest}"), e))?;
        let actual = hasher.finish();
        if actual != digest {
            let mut e = verification();
            if let Error::DigestMismatch { actual: a, .. } = &mut e {
                *a = actual;
            }
            return Err(e);
        }
        Ok(written)
    }

    /// Reads a small blob (an image config) into memory, verified.
    pub async fn fetch_blob_bytes(
        &self,
        repo: &str,
        digest: &str,
        size: Option<u64>,
    ) -> Result<Bytes> {
        let mut buf: Vec<u8> = Vec::new();
        self.fetch_blob(repo, digest, size, &mut buf, &mut |_| {})
            .await?;
        Ok(Bytes::from(buf))
    }

    /// Pushes a blob: a HEAD first (present: nothing to do), then a cross-repository mount from
    /// `mount_from` if given, else an upload from `open(offset)`, a reader of the blob from that
    /// offset. Failed uploads are retried from the start with back-off.
    pub async fn push_blob<F, Fut, R>(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        mount_from: Option<&str>,
        mode: UploadMode,
        open: F,
    ) -> Result<BlobPush>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = std::io::Result<R>>,
        R: AsyncRead + Send + Unpin + 'static,
    {
        check_digest(digest)?;
        let mut scopes = vec![Scope::push(repo)];
        if let Some(from) = mount_from {
            scopes.push(Scope::pull(from));
        }
        if self
            .blob_exists_scoped(repo, digest, &scopes)
            .await?
            .is_some()
        {
            return Ok(BlobPush::Exists);
        }
        let attempts = self.inner.config.retry.attempts.max(1);
        let mut attempt = 0;
        let mut mode = mode;
        loop {
            attempt += 1;
            let r = self
                .upload_once(repo, digest, size, mount_from, mode, &open, &scopes)
                .await;
            match r {
                Err(e) if e.is_too_large() => match smaller_chunks(mode, size) {
                    // A cap on request bodies between us and the registry: the blob goes again, in
                    // chunks it lets through (a refused request never reached the registry's upload).
                    Some(m) => {
                        tracing::info!("pushing {digest}: {e}; uploading it in chunks ({m:?})");
                        mode = m;
                        attempt -= 1;
                    }
                    None => return Err(e),
                },
                Err(e) if e.is_retryable() && attempt < attempts => {
                    tracing::debug!("pushing {digest}: {e}; retrying");
                    self.backoff(attempt).await;
                }
                r => return r,
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_once<F, Fut, R>(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        mount_from: Option<&str>,
        mode: UploadMode,
        open: &F,
        scopes: &[Scope],
    ) -> Result<BlobPush>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = std::io::Result<R>>,
        R: AsyncRead + Send + Unpin + 'static,
    {
        let mut start = self.api_url(repo, "blobs/uploads/")?;
        if let Some(from) = mount_from {
            start
                .query_pairs_mut()
                .append_pair("mount", digest)
                .append_pair("from", from);
        }
        let ans = self
            .send_authed(Method::POST, &start, &HeaderMap::new(), None, scopes)
            .await?;
        match ans.status() {
            StatusCode::CREATED if mount_from.is_some() => {
                let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
                return Ok(BlobPush::Mounted {
                    from: mount_from.unwrap_or_default().to_string(),
                });
            }
            StatusCode::ACCEPTED => {}
            _ => return Err(ans.into_error(&self.inner).await),
        }
        let mut location = self.location(&ans, &start)?;
        let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;

        let chunk = match mode {
            UploadMode::Chunked(c) if c > 0 && c < size => Some(c),
            _ => None,
        };
        let mut offset = 0u64;
        if let Some(chunk) = chunk {
            while offset < size {
                let n = chunk.min(size - offset);
                let mut h = HeaderMap::new();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                let range = HeaderValue::from_str(&format!("{}-{}", offset, offset + n - 1))
                    .map_err(|e| Error::Protocol(e.to_string()))?;
                h.insert(header::CONTENT_RANGE, range);
                let body = self.reader_body(open, offset, n, digest).await?;
                let ans = self
                    .send_stream(Method::PATCH, &location, h, body, Some(n), scopes)
                    .await?;
                if ans.status() != StatusCode::ACCEPTED {
                    return Err(ans.into_error(&self.inner).await);
                }
                location = self.location(&ans, &location)?;
                let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
                offset += n;
            }
        }
        let mut put = location.clone();
        put.query_pairs_mut().append_pair("digest", digest);
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let n = size - offset;
        let body = if n > 0 {
            self.reader_body(open, offset, n, digest).await?
        } else {
            transport::empty()
        };
        let ans = self
            .send_stream(Method::PUT, &put, h, body, Some(n), scopes)
            .await?;
        if ans.status() != StatusCode::CREATED {
            return Err(ans.into_error(&self.inner).await);
        }
        let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
        Ok(BlobPush::Uploaded)
    }

    async fn reader_body<F, Fut, R>(
        &self,
        open: &F,
        offset: u64,
        n: u64,
        digest: &str,
    ) -> Result<Body>
    where
        F: Fn(u64) -> Fut,
        Fut: Future<Output = std::io::Result<R>>,
        R: AsyncRead + Send + Unpin + 'static,
    {
        let reader = open(offset)
            .await
            .map_err(|e| Error::io(format!("opening blob {digest} at {offset}"), e))?;
        let stream = tokio_util::io::ReaderStream::with_capacity(reader.take(n), UPLOAD_BUF)
            .map(|r| r.map(Frame::data));
        Ok(BodyExt::boxed_unsync(StreamBody::new(stream)))
    }

    /// Sends a streamed body with the session's current authorization (established by the POST
    /// that opened the upload; a stream cannot be replayed for a challenge).
    async fn send_stream(
        &self,
        method: Method,
        url: &Url,
        mut h: HeaderMap,
        body: Body,
        len: Option<u64>,
        scopes: &[Scope],
    ) -> Result<Answer> {
        if let Some(a) = self.authorization(scopes).await? {
            let v = HeaderValue::from_str(&a)
                .map_err(|e| Error::Protocol(format!("authorization header: {e}")))?;
            h.insert(header::AUTHORIZATION, v);
        }
        h.insert(header::USER_AGENT, HeaderValue::from_static(USER_AGENT));
        // Without a length hyper sends the body chunked.
        if let Some(len) = len {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        let verify = self.endpoint().1;
        let (resp, conn) = self
            .inner
            .transport
            .send(url, method, h, body, verify)
            .await?;
        Ok(Answer {
            resp,
            conn: Some((conn, url.clone(), verify)),
            url: url.clone(),
        })
    }

    /// Uploads a blob whose digest is not known beforehand (a layer compressed while it is
    /// pushed): POST, one PATCH streaming `reader` to its end while hashing it, then the PUT
    /// that names the digest. Answers the digest and size. Not retried: a stream cannot be
    /// replayed, so the caller starts again on error.
    pub async fn push_blob_stream<R>(&self, repo: &str, reader: R) -> Result<(String, u64)>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let scopes = [Scope::push(repo)];
        let start = self.api_url(repo, "blobs/uploads/")?;
        let ans = self
            .send_retried(Method::POST, &start, &HeaderMap::new(), None, &scopes)
            .await?;
        if ans.status() != StatusCode::ACCEPTED {
            return Err(ans.into_error(&self.inner).await);
        }
        let location = self.location(&ans, &start)?;
        let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;

        let tally = Arc::new(Mutex::new((Digester::sha256(), 0u64)));
        let t = tally.clone();
        let stream =
            tokio_util::io::ReaderStream::with_capacity(reader, UPLOAD_BUF).map(move |r| {
                r.map(|chunk| {
                    let mut g = t.lock().unwrap_or_else(|p| p.into_inner());
                    g.0.update(&chunk);
                    g.1 += chunk.len() as u64;
                    Frame::data(chunk)
                })
            });
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let body = BodyExt::boxed_unsync(StreamBody::new(stream));
        let ans = self
            .send_stream(Method::PATCH, &location, h, body, None, &scopes)
            .await?;
        if ans.status() != StatusCode::ACCEPTED {
            return Err(ans.into_error(&self.inner).await);
        }
        let location = self.location(&ans, &location)?;
        let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
        let (digester, size) = {
            let mut g = tally.lock().unwrap_or_else(|p| p.into_inner());
            std::mem::replace(&mut *g, (Digester::sha256(), 0))
        };
        let digest = digester.finish();

        let mut put = location;
        put.query_pairs_mut().append_pair("digest", &digest);
        let ans = self
            .send_stream(
                Method::PUT,
                &put,
                HeaderMap::new(),
                transport::empty(),
                Some(0),
                &scopes,
            )
            .await?;
        if ans.status() != StatusCode::CREATED {
            return Err(ans.into_error(&self.inner).await);
        }
        let _ = ans.bytes(&self.inner, MAX_SMALL_BODY).await;
        Ok((digest, size))
    }

    fn location(&self, ans: &Answer, base: &Url) -> Result<Url> {
        let loc = ans.header(header::LOCATION).ok_or_else(|| {
            Error::Protocol(format!("upload answer from {base} without a Location"))
        })?;
        base.join(loc)
            .map_err(|e| Error::Protocol(format!("bad upload Location {loc:?}: {e}")))
    }

    /// All tags of a repository, following `Link: <...>; rel="next"` pages; `page_size` asks
    /// for pages of that many (`n=`), else the registry's default.
    pub async fn tags(&self, repo: &str, page_size: Option<u32>) -> Result<Vec<String>> {
        let mut url = self.api_url(repo, "tags/list")?;
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        let mut out = Vec::new();
        for _ in 0..10_000 {
            let ans = self
                .send_retried(
                    Method::GET,
                    &url,
                    &HeaderMap::new(),
                    None,
                    &[Scope::pull(repo)],
                )
                .await?;
            if !ans.status().is_success() {
                return Err(ans.into_error(&self.inner).await);
            }
            let next = ans
                .header(header::LINK)
                .and_then(next_link)
                .map(str::to_string);
            let (_, body) = ans.bytes(&self.inner, MAX_MANIFEST).await?;
            let list: TagList = serde_json::from_slice(&body).map_err(|e| Error::Json {
                what: format!("tag list of {repo}"),
                source: e,
            })?;
            out.extend(list.tags.unwrap_or_default());
            match next {
                Some(n) => {
                    url = url
                        .join(&n)
                        .map_err(|e| Error::Protocol(format!("bad Link {n:?}: {e}")))?
                }
                None => return Ok(out),
            }
        }
        Err(Error::Protocol(format!("tag list of {repo} never ends")))
    }
}

/// A tag (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`) or a digest.
fn check_reference(reference: &str) -> Result<&str> {
    if reference.contains(':') {
        return check_digest(reference);
    }
    let b = reference.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let ok = !b.is_empty()
        && b.len() <= 128
        && word(b[0])
        && b.iter().all(|&c| word(c) || c == b'.' || c == b'-');
    if ok {
        Ok(reference)
    } else {
        Err(Error::InvalidName(format!("tag {reference:?}")))
    }
}

/// `algorithm:hex` with a known algorithm and the right length.
fn check_digest(digest: &str) -> Result<&str> {
    Digester::for_digest(digest)
        .map(|_| digest)
        .map_err(|_| Error::InvalidName(format!("digest {digest:?}")))
}

/// The User-Agent sent to registries.
const USER_AGENT: &str = concat!("berth/", env!("CARGO_PKG_VERSION"));
/// The OAuth2 client id Docker sends; token servers may key refresh tokens on it.
const CLIENT_ID: &str = "docker";

/// The target of a `Link` header's `rel="next"` entry.
fn next_link(v: &str) -> Option<&str> {
    v.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

/// Where [`Session::fetch_blob_chunks`] puts a blob's bytes: each chunk as the connection gave it.
pub trait ChunkSink: Send {
    /// Takes the next chunk.
    fn put(&mut self, data: Bytes) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Called once after the last chunk.
    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> + Send {
        async { Ok(()) }
    }
}

/// An `AsyncWrite` as a [`ChunkSink`] (each chunk copied in).
struct WriteSink<'a, W: ?Sized>(&'a mut W);

impl<W: AsyncWrite + Unpin + Send + ?Sized> ChunkSink for WriteSink<'_, W> {
    async fn put(&mut self, data: Bytes) -> std::io::Result<()> {
        self.0.write_all(&data).await
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_they_reach_a_url() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(check_reference("v1.0_rc-2").ok(), Some("v1.0_rc-2"));
        assert_eq!(check_reference(&d).ok(), Some(d.as_str()));
        for bad in ["", ".x", "a?b", "a/b", "../x", "sha256:abc", "md5:00"] {
            assert!(check_reference(bad).is_err(), "{bad}");
        }
        assert!(check_digest("sha256:../../x").is_err());
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/x/tags/list?last=b&n=2>; rel="next""#),
            Some("/v2/x/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"<a>; rel="prev", <b>; rel="next""#), Some("b"));
        assert_eq!(next_link(r#"<a>; rel="prev""#), None);
    }
}
