//! `POST /build` (the classic builder's API: `docker build` with `DOCKER_BUILDKIT=0`, docker-py's
//! `images.build`), `POST /build/cancel` and `POST /build/prune`. The context tar is read from the body as
//! it comes; the output is dockerd's JSON-lines stream (`stream`, `aux`, and errors inside the 200 as
//! `errorDetail`). A client that goes away cancels its build.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use http::{header, HeaderValue};
use hyper_util::rt::TokioIo;

use engine::builds::BuildProgress;
use engine::Engine;
use http::{Request, Response, StatusCode};
use serde_json::json;

use super::images::{send_error, send_line, send_stream};
use crate::body::{self, blocking_reader, json, Body, StreamSender};
use crate::error::{ApiError, ApiResult};
use crate::request::ReqBody;
use crate::router::Ctx;

/// How long a BuildKit-mode build waits for the client's session to attach.
const SESSION_WAIT: Duration = Duration::from_secs(5);

/// `POST /build?t=&dockerfile=&buildargs=&…`.
pub async fn build(ctx: &Ctx, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    if ctx.query.get("version") == Some("2") {
        if let Some(id) = ctx
            .query
            .get("buildid")
            .and_then(|b| b.strip_prefix("upload-request:"))
        {
            return upload_for_build(ctx, id, req).await;
        }
    }
    let mut request = crate::decode::build_request(&ctx.query)?;
    if let Some(v) = req
        .headers()
        .get("X-Registry-Config")
        .and_then(|v| v.to_str().ok())
    {
        request.registry_auths = engine::builds::RegistryAuths::from_header(v);
    }
    if ctx.query.get("version") == Some("2") {
        return build_in_session(ctx, request).await;
    }
    // `berth build --secret` (the docker CLI sends its secrets over the session instead).
    if let Some(h) = req.headers().get(crate::decode::BUILD_SECRETS_HEADER) {
        request.secrets = crate::decode::build_secrets(h.as_bytes())?;
    }
    let mut context = blocking_reader(req.into_body());
    let (tx, body) = body::channel();
    let engine: Arc<Engine> = Arc::clone(&ctx.engine);
    let rt = tokio::runtime::Handle::current();
    let done = cancel_when_gone(&tx, &request.cancel);
    tokio::task::spawn_blocking(move || {
        let _rt = rt.enter();
        let mut sink = Sink { tx: tx.clone() };
        let built = engine.build_image(request, &mut context, &mut sink);
        let _ = done.send(());
        if let Err(e) = built {
            tracing::info!(error = %e, "build failed");
            send_error(&tx, &e.to_string());
        }
        // Read what the client still sends, so it sees the answer rather than a broken pipe.
        let _ = std::io::copy(&mut context, &mut std::io::sink());
    });
    Ok(body::with_type(StatusCode::OK, "application/json", body))
}

/// The client going away (Ctrl-C on `docker build`) cancels the build, as with dockerd. The watch ends
/// when the returned sender is used or dropped (with the build), so that its copy of the stream's sender
/// does not hold the response open.
fn cancel_when_gone(
    tx: &StreamSender,
    cancel: &engine::builds::BuildCancel,
) -> tokio::sync::oneshot::Sender<()> {
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let (watched, cancel) = (tx.clone(), cancel.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = watched.closed() => {
                tracing::info!("build client went away: cancelling the build");
                cancel.cancel();
            }
            _ = finished => {}
        }
    });
    done
}

/// How long an uploaded context waits for its build to take it.
const UPLOAD_WAIT: Duration = Duration::from_secs(30);

/// `POST /build?version=2&buildid=upload-request:ID`: in BuildKit mode, the docker CLI sends a piped
/// context (`docker build - < ctx.tar`) in a request of its own, beside the build it names `ID`
/// (`buildid=ID&remote=upload-request`). The body is handed to that build; the answer comes when it is
/// done with it.
async fn upload_for_build(ctx: &Ctx, id: &str, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    let (done, finished) = tokio::sync::oneshot::channel();
    let body = Box::new(blocking_reader(req.into_body()));
    ctx.engine
        .sessions
        .offer_upload(id, engine::builds::Upload { body, done });
    let mut finished = std::pin::pin!(finished);
    if tokio::time::timeout(UPLOAD_WAIT, &mut finished)
        .await
        .is_err()
    {
        if ctx.engine.sessions.withdraw_upload(id) {
            return Err(ApiError::bad_request(format!(
                "no build {id:?} took the uploaded context"
            )));
        }
        // Taken: its build ends it (sent or dropped).
        let _ = finished.await;
    }
    Ok(body::empty(StatusCode::OK))
}

/// A BuildKit-mode build: files and secrets from the client's session, progress as BuildKit's records.
async fn build_in_session(
    ctx: &Ctx,
    request: engine::builds::BuildRequest,
) -> ApiResult<Response<Body>> {
    let id = ctx.query.get("session").unwrap_or_default();
    let session = ctx
        .engine
        .sessions
        .get(id, SESSION_WAIT)
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // A piped context comes in a request of its own, under this build's ID (see `upload_for_build`).
    let mut upload = None;
    if request.remote.starts_with("upload-request") {
        upload = Some(
            ctx.engine
                .sessions
                .take_upload(&request.build_id, SESSION_WAIT)
                .await
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "no context was uploaded for build {:?}",
                        request.build_id
                    ))
                })?,
        );
    }
    let quiet = request.options.quiet;
    let (tx, body) = body::channel();
    let engine: Arc<Engine> = Arc::clone(&ctx.engine);
    let rt = tokio::runtime::Handle::current();
    let done = cancel_when_gone(&tx, &request.cancel);
    let nonce = request.build_id.clone();
    tokio::task::spawn_blocking(move || {
        let _rt = rt.enter();
        let mut sink = TraceSink {
            tx: tx.clone(),
            progress: engine::builds::Progress::new(&nonce),
            quiet,
        };
        let context = upload
            .as_mut()
            .map(|u| &mut u.body as &mut dyn std::io::Read);
        let built = engine.build_from_session(request, &session, context, &mut sink);
        // The upload's own request is answered now that the build is done with its body.
        if let Some(u) = upload {
            let _ = u.done.send(());
        }
        let _ = done.send(());
        match built {
            Ok(_) => sink.end(None),
            Err(e) => {
                tracing::info!(error = %e, "build failed");
                sink.end(Some(&e.to_string()));
                send_error(&tx, &e.to_string());
            }
        }
    });
    Ok(body::with_type(StatusCode::OK, "application/json", body))
}

/// `POST /session`: the client hands the connection over to HTTP/2 (`Upgrade: h2c`) and serves the
/// build's files and secrets on it until it closes it.
pub fn session(ctx: &Ctx, mut req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    let proto = req
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if proto.is_empty() {
        return Err(ApiError::bad_request("no upgrade proto in request"));
    }
    if !proto.eq_ignore_ascii_case("h2c") {
        return Err(ApiError::bad_request(format!(
            "protocol {proto} not supported"
        )));
    }
    let headers = req.headers().clone();
    let upgrade = hyper::upgrade::on(&mut req);
    let engine = Arc::clone(&ctx.engine);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => {
                if let Err(e) = engine.sessions.serve(TokioIo::new(io), &headers).await {
                    tracing::debug!(error = %e, "session ended with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "session upgrade failed"),
        }
    });
    let mut resp = body::empty(StatusCode::SWITCHING_PROTOCOLS);
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    resp.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("h2c"));
    Ok(resp)
}

/// `POST /build/cancel?id=`: stops the build started with `buildid=id`.
pub async fn cancel(ctx: &Ctx) -> ApiResult<Response<Body>> {
    ctx.engine
        .cancel_build(ctx.query.get("id").unwrap_or_default())?;
    Ok(body::empty(StatusCode::OK))
}

/// `POST /build/prune`.
pub async fn prune(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let q = &ctx.query;
    let bytes = |name: &str| -> ApiResult<u64> {
        match q.get(name).filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => v.parse::<i64>().map(|n| n.max(0) as u64).map_err(|e| {
                ApiError::bad_request(format!(
                    "{name} is in bytes and expects an integer, got {v}: {e}"
                ))
            }),
        }
    };
    // reserved-space, max-used-space and min-free-space came with API 1.48; keep-storage before.
    let (reserved, max_used) = if ctx.version.before(48) {
        (bytes("keep-storage")?, 0)
    } else {
        let reserved = match bytes("reserved-space")? {
            0 => bytes("keep-storage")?,
            n => n,
        };
        bytes("min-free-space")?;
        (reserved, bytes("max-used-space")?)
    };
    let opts = engine::builds::BuildPruneOptions {
        all: q.bool("all"),
        filters: engine::Filters::parse(q.get("filters"))?,
        reserved_space: reserved,
        max_used_space: max_used,
    };
    Ok(json(&ctx.engine.prune_build_cache(opts).await?))
}

/// The dispatcher's output as BuildKit's progress records (`aux` of `moby.buildkit.trace`, base64 of a
/// `StatusResponse`), which the docker CLI draws in BuildKit mode; with `-q` only the image ID, as text.
struct TraceSink {
    tx: StreamSender,
    progress: engine::builds::Progress,
    quiet: bool,
}

impl TraceSink {
    fn send(&self, records: Vec<Vec<u8>>) {
        for r in records {
            send_line(
                &self.tx,
                &json!({ "id": "moby.buildkit.trace", "aux": BASE64.encode(r) }),
            );
        }
    }

    fn end(&mut self, error: Option<&str>) {
        let records = self.progress.end(error);
        self.send(records);
    }
}

impl BuildProgress for TraceSink {
    fn stream(&mut self, text: &str) {
        if self.quiet {
            send_stream(&self.tx, text);
            return;
        }
        let records = self.progress.text(text);
        self.send(records);
    }

    fn aux_id(&mut self, id: &str) {
        self.progress.image_id(id);
        send_line(
            &self.tx,
            &json!({ "id": "moby.image.id", "aux": { "ID": id } }),
        );
    }

    fn context_loaded(&mut self, bytes: u64, took: std::time::Duration) {
        if !self.quiet {
            let records = self.progress.context_loaded(bytes, took);
            self.send(records);
        }
    }
}

/// The dispatcher's output as dockerd's JSON lines.
struct Sink {
    tx: StreamSender,
}

impl BuildProgress for Sink {
    fn stream(&mut self, text: &str) {
        send_stream(&self.tx, text);
    }

    fn aux_id(&mut self, id: &str) {
        send_line(&self.tx, &json!({ "aux": { "ID": id } }));
    }
}
