//! `/containers/{id}/archive` (HEAD, GET, PUT: `docker cp`), `/containers/{id}/changes` (`docker diff`) and
//! `/containers/{id}/export`.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use crate::request::ReqBody;
use engine::containers::{ArchiveJob, ExtractRequest};
use http::{HeaderValue, Request, Response, StatusCode};

use crate::body::{self, json, Body};
use crate::error::{ApiError, ApiResult};
use crate::router::Ctx;

const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

fn path_param(ctx: &Ctx) -> ApiResult<String> {
    match ctx.query.get("path") {
        Some(p) if !p.is_empty() => Ok(p.to_owned()),
        _ => Err(ApiError::bad_request("path is required")),
    }
}

fn with_stat(mut resp: Response<Body>, value: &str) -> Response<Body> {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(STAT_HEADER, v);
    }
    resp
}

/// `HEAD /containers/{id}/archive?path=…`: the path's stat in a header.
pub async fn head(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let path = path_param(ctx)?;
    let stat = ctx.engine.container_stat_path(name, &path).await?;
    Ok(with_stat(body::empty(StatusCode::OK), &stat.header_value()))
}

/// `GET /containers/{id}/archive?path=…`: a tar of the path, with its stat in a header.
pub async fn get(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let path = path_param(ctx)?;
    let (stat, job) = ctx.engine.container_archive(name, &path).await?;
    let resp = stream_tar(job);
    Ok(with_stat(resp, &stat.header_value()))
}

/// `PUT /containers/{id}/archive?path=…&noOverwriteDirNonDir=…&copyUIDGID=…`: extracts the body's tar.
pub async fn put(ctx: &Ctx, req: Request<ReqBody>, name: &str) -> ApiResult<Response<Body>> {
    let path = path_param(ctx)?;
    let request = ExtractRequest {
        path,
        no_overwrite_dir_non_dir: ctx.query.bool("noOverwriteDirNonDir"),
        copy_uid_gid: ctx.query.bool("copyUIDGID"),
    };
    let reader = SharedReader(Arc::new(Mutex::new(Box::new(body::blocking_reader(
        req.into_body(),
    )))));
    let rest = reader.clone();
    let result = ctx.engine.container_extract(name, request, reader).await;
    // Refusals come before the body is read, and the tar reader stops at the first end-of-archive block
    // (clients pad further). Read (a bounded amount of) what is left before answering, so the client gets
    // the answer rather than a broken pipe on its upload, as Go's server does.
    let _ = tokio::task::spawn_blocking(move || {
        std::io::copy(&mut rest.take(DRAIN_LIMIT), &mut std::io::sink())
    })
    .await;
    result?;
    Ok(body::empty(StatusCode::OK))
}

/// How much of a refused upload is read before answering.
const DRAIN_LIMIT: u64 = 64 << 20;

/// A request body reader that the handler keeps a handle on while the engine reads it.
#[derive(Clone)]
struct SharedReader(Arc<Mutex<Box<dyn Read + Send>>>);

impl Read for SharedReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).read(buf)
    }
}

/// `GET /containers/{id}/changes`.
pub async fn changes(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let list: Vec<serde_json::Value> = ctx
        .engine
        .container_changes(name)
        .await?
        .into_iter()
        .map(|c| serde_json::json!({"Path": c.path, "Kind": c.kind as u8}))
        .collect();
    Ok(json(&list))
}

/// `GET /containers/{id}/export`.
pub async fn export(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let job = ctx.engine.container_export(name).await?;
    Ok(stream_tar(job))
}

/// Streams a tar written on a blocking thread; a failure mid-way aborts the body.
fn stream_tar(job: ArchiveJob) -> Response<Body> {
    let (tx, resp_body) = body::channel();
    tokio::task::spawn_blocking(move || {
        let mut w = body::ChannelWriter::new(tx.clone());
        let result = job.write_to(&mut w).and_then(|()| {
            w.flush()
                .map_err(|e| engine::Error::system("sending the archive", e))
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "archive stream failed");
            tx.blocking_fail(std::io::Error::other(e.to_string()));
        }
    });
    body::with_type(StatusCode::OK, "application/x-tar", resp_body)
}
