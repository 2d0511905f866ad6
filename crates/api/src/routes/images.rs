//! `/images/…`: list, inspect, history, tag, remove, prune, load, save and import.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::request::ReqBody;
use bytes::Bytes;
use engine::{
    Engine, Filters, ImageListOptions, ImportRequest, Progress, ProgressSender, PullRequest,
    PushRequest,
};
use http::{Request, Response, StatusCode};
use serde_json::json;

use crate::body::{self, blocking_reader, json, Body, ChannelWriter, StreamSender};
use crate::error::{ApiError, ApiResult};
use crate::router::Ctx;

/// `GET /images/json`.
pub async fn list(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let opts = ImageListOptions {
        all: ctx.query.bool("all"),
        filters: Filters::parse(ctx.query.get("filters"))?,
        // Added in API 1.42, as dockerd reads it.
        shared_size: !ctx.version.before(42) && ctx.query.bool("shared-size"),
    };
    let mut images = ctx.engine.list_images(opts).await?;
    if ctx.version.before(44) {
        for img in &mut images {
            img.virtual_size = Some(img.size);
        }
    }
    Ok(json(&images))
}

/// `GET /images/{name}/json`.
pub async fn inspect(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let mut img = ctx.engine.inspect_image(name).await?;
    if ctx.version.before(44) {
        img.virtual_size = img.size;
    }
    Ok(json(&img))
}

/// `GET /images/{name}/history`.
pub async fn history(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    Ok(json(&ctx.engine.image_history(name).await?))
}

/// `POST /images/{name}/tag?repo=…&tag=…`: 201 on success.
pub async fn tag(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let repo = ctx.query.get("repo").unwrap_or("");
    ctx.engine
        .tag_image(name, repo, ctx.query.get("tag"))
        .await?;
    Ok(body::empty(StatusCode::CREATED))
}

/// `DELETE /images/{name}?force=…&noprune=…`.
pub async fn remove(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let items = ctx
        .engine
        .remove_image(name, ctx.query.bool("force"), ctx.query.bool("noprune"))
        .await?;
    Ok(json(&items))
}

/// `POST /images/prune?filters=…`.
pub async fn prune(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let filters = Filters::parse(ctx.query.get("filters"))?;
    Ok(json(&ctx.engine.prune_images(filters).await?))
}

/// `POST /images/load?quiet=…`: a JSON-lines progress stream; errors come inside the 200.
pub async fn load(ctx: &Ctx, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    let quiet = ctx.query.bool("quiet");
    let mut archive = blocking_reader(req.into_body());
    let (tx, body) = body::channel();
    let engine = Arc::clone(&ctx.engine);
    tokio::task::spawn_blocking(move || {
        let mut last_sent: Option<(String, Instant)> = None;
        let mut progress = |p: engine::LoadProgress| {
            let engine::LoadProgress::Layer { id, current, total } = p;
            let due = match &last_sent {
                Some((last_id, at)) => {
                    *last_id != id || current >= total || at.elapsed() > Duration::from_millis(100)
                }
                None => true,
            };
            if quiet || !due {
                return;
            }
            send_line(
                &tx,
                &json!({
                    "status": "Loading layer",
                    "progressDetail": { "current": current, "total": total },
                    "id": id,
                }),
            );
            last_sent = Some((id, Instant::now()));
        };
        match engine.load_images(&mut archive, &mut progress) {
            Ok(images) => {
                for img in images {
                    if img.tags.is_empty() {
                        send_stream(&tx, &format!("Loaded image ID: {}\n", img.id));
                    }
                    for t in img.tags {
                        send_stream(&tx, &format!("Loaded image: {t}\n"));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "load failed");
                send_error(&tx, &e.to_string());
            }
        }
        // Drain what the client still sends so it sees our answer instead of a broken pipe.
        let _ = std::io::copy(&mut archive, &mut std::io::sink());
    });
    Ok(body::with_type(StatusCode::OK, "application/json", body))
}

/// `GET /images/get?names=…` and `GET /images/{name}/get`: a tar stream of the images.
pub async fn save(ctx: &Ctx, names: Vec<String>) -> ApiResult<Response<Body>> {
    if names.is_empty() {
        return Err(ApiError::bad_request("no images specified"));
    }
    // Resolve first, so a wrong name gets a 404 instead of a cut stream.
    for n in &names {
        ctx.engine.inspect_image(n).await?;
    }
    let (tx, body) = body::channel();
    let engine: Arc<Engine> = Arc::clone(&ctx.engine);
    tokio::task::spawn_blocking(move || {
        let mut out = ChannelWriter::new(tx.clone());
        let result = engine
            .save_images(&names, &mut out)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|()| std::io::Write::flush(&mut out));
        if let Err(e) = result {
            tracing::warn!(error = %e, "save failed");
            tx.blocking_fail(e);
        }
    });
    Ok(body::with_type(StatusCode::OK, "application/x-tar", body))
}

/// `POST /images/create`: `fromImage` pulls from a registry, `fromSrc=-` imports the request body.
pub async fn create(ctx: &Ctx, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    match ctx.query.get("fromSrc") {
        Some("-") => {}
        Some(_) => {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "importing from a URL is not supported by Berth yet",
            ))
        }
        None => {
            let tag = ctx.query.get("tag").filter(|t| !t.is_empty());
            let request = PullRequest {
                image: ctx.query.get("fromImage").unwrap_or("").to_owned(),
                tag: tag.map(str::to_owned),
                platform: ctx.query.get("platform").map(str::to_owned),
                auth: crate::router::registry_auth(&req),
                // As dockerd: a name without tag or digest, and no `tag`, means every tag.
                all_tags: tag.is_none(),
            };
            let engine = Arc::clone(&ctx.engine);
            return progress_stream(move |tx| async move { engine.pull_image(request, tx).await })
                .await;
        }
    }
    let request = ImportRequest {
        repo: ctx.query.get("repo").map(str::to_owned),
        tag: ctx.query.get("tag").map(str::to_owned),
        changes: ctx.query.all("changes"),
        message: ctx.query.get("message").map(str::to_owned),
        platform: ctx.query.get("platform").map(str::to_owned),
    };
    let mut rootfs = blocking_reader(req.into_body());
    let engine = Arc::clone(&ctx.engine);
    let result = tokio::task::spawn_blocking(move || {
        let r = engine.import_image(&mut rootfs, request);
        // Drain what the client still sends so it sees our answer instead of a broken pipe.
        let _ = std::io::copy(&mut rootfs, &mut std::io::sink());
        r
    })
    .await
    .map_err(engine::Error::from)?;
    // Nothing has been sent yet, so a failure gets a real status (400 for a bad change), as dockerd does.
    let id = result?;
    let mut line = serde_json::to_vec(&json!({ "status": id })).unwrap_or_default();
    line.extend_from_slice(b"\r\n");
    Ok(body::with_type(
        StatusCode::OK,
        "application/json",
        body::full(line),
    ))
}

/// `POST /images/{name}/push?tag=…`: a JSON-lines progress stream.
pub async fn push(ctx: &Ctx, name: &str, auth: Option<String>) -> ApiResult<Response<Body>> {
    let request = PushRequest {
        name: name.to_owned(),
        tag: ctx.query.get("tag").map(str::to_owned),
        auth,
    };
    let engine = Arc::clone(&ctx.engine);
    progress_stream(move |tx| async move { engine.push_image(request, tx).await }).await
}

/// `GET /images/search?term=&limit=&filters=`.
pub async fn search(ctx: &Ctx, auth: Option<String>) -> ApiResult<Response<Body>> {
    let term = ctx.query.get("term").unwrap_or("");
    let limit = match ctx.query.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => Some(
            l.parse::<u32>()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {l}")))?,
        ),
        None => None,
    };
    let filters = Filters::parse(ctx.query.get("filters"))?;
    let found = ctx
        .engine
        .search_images(term, limit, filters, auth.as_deref())
        .await?;
    Ok(json(&found))
}

/// `GET /distribution/{name}/json`.
pub async fn distribution(
    ctx: &Ctx,
    name: &str,
    auth: Option<String>,
) -> ApiResult<Response<Body>> {
    Ok(json(
        &ctx.engine
            .distribution_inspect(name, auth.as_deref())
            .await?,
    ))
}

/// `POST /auth`: `docker login` through the daemon.
pub async fn auth(ctx: &Ctx, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    let body = crate::request::read_bytes(req).await?;
    Ok(json(&ctx.engine.login(&body).await?))
}

/// Runs a pull or push, streaming its progress as JSON lines. As dockerd: a failure before the
/// first line gets a real status (404 for an unknown image, 401 for refused credentials); later
/// ones come inside the 200 as `errorDetail`; a client that goes away cancels the operation.
async fn progress_stream<F, Fut>(op: F) -> ApiResult<Response<Body>>
where
    F: FnOnce(ProgressSender) -> Fut,
    Fut: std::future::Future<Output = engine::Result<()>> + Send + 'static,
{
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let mut task = tokio::spawn(op(ptx));
    let first = prx.recv().await;
    let Some(first) = first else {
        // The operation ended without a word: its result is the answer.
        (&mut task).await.map_err(engine::Error::from)??;
        return Ok(body::with_type(
            StatusCode::OK,
            "application/json",
            body::full(Bytes::new()),
        ));
    };
    let (tx, out) = body::channel();
    tokio::spawn(async move {
        let mut next = Some(first);
        while let Some(p) = next {
            let mut line = serde_json::to_vec(&p).unwrap_or_default();
            line.extend_from_slice(b"\r\n");
            // A client that has gone is noticed below (`tx.closed()`).
            let _ = tx.send(Bytes::from(line)).await;
            next = tokio::select! {
                p = prx.recv() => p,
                () = tx.closed() => {
                    // The client went away (Ctrl-C on `docker pull`): as dockerd, the operation
                    // is cancelled. What it fetched is dropped uncommitted; a commit under way
                    // (a blocking task) finishes.
                    task.abort();
                    return;
                }
            };
        }
        let result = task.await.map_err(engine::Error::from).and_then(|r| r);
        if let Err(e) = result {
            tracing::warn!(error = %e, "registry operation failed");
            let m = e.to_string();
            let v = json!({ "errorDetail": { "message": m }, "error": m });
            let mut line = serde_json::to_vec(&v).unwrap_or_default();
            line.extend_from_slice(b"\r\n");
            // The last line; a client that has gone needs none.
            let _ = tx.send(Bytes::from(line)).await;
        }
    });
    Ok(body::with_type(StatusCode::OK, "application/json", out))
}

pub(crate) fn send_line(tx: &StreamSender, value: &serde_json::Value) {
    let mut v = serde_json::to_vec(value).unwrap_or_default();
    v.extend_from_slice(b"\r\n");
    tx.blocking_send(Bytes::from(v));
}

pub(crate) fn send_stream(tx: &StreamSender, text: &str) {
    send_line(tx, &json!({ "stream": text }));
}

pub(crate) fn send_error(tx: &StreamSender, message: &str) {
    send_line(
        tx,
        &json!({ "errorDetail": { "message": message }, "error": message }),
    );
}
