//! `POST /build` (the classic builder's API: `docker build` with `DOCKER_BUILDKIT=0`, docker-py's
//! `images.build`), `POST /build/cancel` and `POST /build/prune`. The context tar is read from the body as
//! it comes; the output is dockerd's JSON-lines stream (`stream`, `aux`, and errors inside the 200 as
//! `errorDetail`). A client that goes away cancels its build.

use std::collections::BTreeMap;
use std::sync::Arc;

use engine::builds::{BuildOptions, BuildProgress, BuildRequest, RunHost};
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
    let request = parse(ctx)?;
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

/// The query as dockerd reads it.
fn parse(ctx: &Ctx) -> ApiResult<BuildRequest> {
    let q = &ctx.query;
    if q.get("version") == Some("2") {
        return Err(ApiError::bad_request(
            "BuildKit (version=2) is not supported by Berth: Berth builds with the classic builder \
             (DOCKER_BUILDKIT=0)",
        ));
    }
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "remote build contexts (a URL or a git repository) are not supported by Berth yet",
        ));
    }
    let json_map = |key: &str| -> ApiResult<BTreeMap<String, Option<String>>> {
        match q.get(key).filter(|v| !v.is_empty() && *v != "null") {
            None => Ok(BTreeMap::new()),
            Some(v) => serde_json::from_str(v)
                .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}"))),
        }
    };
    let int = |key: &str| -> ApiResult<i64> {
        match q.get(key).filter(|v| !v.is_empty()) {
            None => Ok(0),
            Some(v) => v
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid {key}: {v}"))),
        }
    };
    let extra_hosts = match q.get("extrahosts").filter(|v| !v.is_empty()) {
        None => Vec::new(),
        // The docker CLI sends them comma-separated; the API also knows a JSON list.
        Some(v) if v.starts_with('[') => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid extrahosts: {e}")))?,
        Some(v) => v.split(',').map(str::to_owned).collect(),
    };
    let cache_from: Vec<String> = match q.get("cachefrom").filter(|v| !v.is_empty() && *v != "null")
    {
        None => Vec::new(),
        Some(v) => serde_json::from_str(v)
            .map_err(|e| ApiError::bad_request(format!("invalid cachefrom: {e}")))?,
    };
    let options = BuildOptions {
        cache_from,
        build_args: json_map("buildargs")?,
        target: q.get("target").filter(|t| !t.is_empty()).map(str::to_owned),
        no_cache: q.bool("nocache"),
        pull: q.bool("pull"),
        labels: json_map("labels")?
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or_default()))
            .collect(),
        platform: q
            .get("platform")
            .filter(|p| !p.is_empty())
            .map(str::to_owned),
        tags: q.all("t").into_iter().filter(|t| !t.is_empty()).collect(),
        // `rm` is on unless the client says otherwise.
        rm: q.get("rm").is_none() || q.bool("rm"),
        force_rm: q.bool("forcerm"),
        quiet: q.bool("q"),
        host: RunHost {
            network_mode: q.get("networkmode").unwrap_or_default().to_owned(),
            extra_hosts,
            memory: int("memory")?,
            memory_swap: int("memswap")?,
            cpu_shares: int("cpushares")?,
            cpuset_cpus: q.get("cpusetcpus").unwrap_or_default().to_owned(),
            cpu_period: int("cpuperiod")?,
            cpu_quota: int("cpuquota")?,
            shm_size: int("shmsize")?,
        },
    };
    Ok(BuildRequest {
        dockerfile: q.get("dockerfile").unwrap_or_default().to_owned(),
        options,
        build_id: q.get("buildid").unwrap_or_default().to_owned(),
        cancel: Default::default(),
    })
}
