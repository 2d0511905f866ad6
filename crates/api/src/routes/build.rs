//! `POST /build` (the classic builder's API: `docker build` with `DOCKER_BUILDKIT=0`, docker-py's
//! `images.build`), `POST /build/cancel` and `POST /build/prune`. The context tar is read from the body as
//! it comes; the output is dockerd's JSON-lines stream (`stream`, `aux`, and errors inside the 200 as
//! `errorDetail`). A client that goes away cancels its build.

use std::sync::Arc;

use engine::builds::BuildProgress;
use engine::Engine;
use http::{Request, Response, StatusCode};
use serde_json::json;

use super::images::{send_error, send_line, send_stream};
use crate::body::{self, blocking_reader, json, Body, StreamSender};
use crate::error::{ApiError, ApiResult};
use crate::request::ReqBody;
use crate::router::Ctx;

/// `POST /build?t=&dockerfile=&buildargs=&…`.
pub async fn build(ctx: &Ctx, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    let mut request = crate::decode::build_request(&ctx.query)?;
    if let Some(h) = req.headers().get(crate::decode::BUILD_SECRETS_HEADER) {
        request.secrets = crate::decode::build_secrets(h.as_bytes())?;
    }
    let mut context = blocking_reader(req.into_body());
    let (tx, body) = body::channel();
    let engine: Arc<Engine> = Arc::clone(&ctx.engine);
    let rt = tokio::runtime::Handle::current();
    // The client going away (Ctrl-C on `docker build`) cancels the build, as with dockerd. The watch
    // ends with the build, so that its copy of the sender does not hold the response open.
    let (done, finished) = tokio::sync::oneshot::channel::<()>();
    let (watched, cancel) = (tx.clone(), request.cancel.clone());
    tokio::spawn(async move {
        tokio::select! {
            () = watched.closed() => {
                tracing::info!("build client went away: cancelling the build");
                cancel.cancel();
            }
            _ = finished => {}
        }
    });
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
