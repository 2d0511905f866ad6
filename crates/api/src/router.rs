//! Maps a request to its handler. Docker's paths embed image names that contain slashes
//! (`/images/fixture/webapp:1.0/json`), so routing is by prefix and last segment rather than a pattern table.

use std::sync::Arc;
use std::time::Instant;

use engine::Engine;
use http::{header, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;

use crate::body::{error_response, Body};
use crate::error::{ApiError, ApiResult};
use crate::query::Query;
use crate::request::{Leftover, ReqBody};
use crate::routes;
use crate::version::{self, ApiVersion};

/// What every handler gets besides the body.
pub struct Ctx {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The API version the client asked for.
    pub version: ApiVersion,
    /// Query parameters.
    pub query: Query,
}

/// Answers one request; never fails (errors become Docker's error responses).
pub async fn handle(engine: Arc<Engine>, req: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let leftover = Leftover::default();
    let req = req.map(|body| leftover.wrap(body));
    let result = dispatch(engine, req).await;
    leftover.drain().await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(%method, %path, status = e.status.as_u16(), error = %e.message, "request failed");
            }
            error_response(&e)
        }
    };
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    let h = resp.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(engine::API_VERSION));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    if let Ok(v) = HeaderValue::from_str(&format!("Berth/{} (linux)", engine::VERSION)) {
        h.insert(header::SERVER, v);
    }
    resp
}

async fn dispatch(engine: Arc<Engine>, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    let raw_path = percent_decode(req.uri().path())?;
    let (version, path) = version::split(&raw_path)?;
    let path = path.trim_end_matches('/').to_owned();
    let ctx = Ctx {
        engine,
        version,
        query: Query::parse(req.uri().query()),
    };
    let method = req.method().clone();
    let m = &method;
    if m == Method::OPTIONS {
        // dockerd answers a CORS preflight on any path with an empty 200.
        return Ok(crate::body::with_type(
            http::StatusCode::OK,
            "text/plain; charset=utf-8",
            crate::body::full(""),
        ));
    }
    match path.as_str() {
        "/_ping" if m == Method::GET || m == Method::HEAD => Ok(routes::system::ping(m)),
        "/version" if m == Method::GET => Ok(routes::system::version(&ctx)),
        "/info" if m == Method::GET => routes::system::info(&ctx).await,
        "/events" if m == Method::GET => routes::system::events(&ctx).await,
        "/system/df" if m == Method::GET => routes::system::df(&ctx).await,
        "/images/json" if m == Method::GET => routes::images::list(&ctx).await,
        "/images/create" if m == Method::POST => routes::images::create(&ctx, req).await,
        "/images/load" if m == Method::POST => routes::images::load(&ctx, req).await,
        "/images/get" if m == Method::GET => {
            let names = ctx.query.all("names");
            routes::images::save(&ctx, names).await
        }
        "/images/prune" if m == Method::POST => routes::images::prune(&ctx).await,
        "/images/search" if m == Method::GET => {
            let auth = registry_auth(&req);
            routes::images::search(&ctx, auth).await
        }
        p if p.starts_with("/distribution/") && p.ends_with("/json") && m == Method::GET => {
            let name = &p["/distribution/".len()..p.len() - "/json".len()];
            routes::images::distribution(&ctx, name, registry_auth(&req)).await
        }
        "/containers/create" if m == Method::POST => routes::containers::create(&ctx, req).await,
        "/containers/json" if m == Method::GET => routes::containers::list(&ctx).await,
        "/containers/prune" if m == Method::POST => routes::containers::prune(&ctx).await,
        "/commit" if m == Method::POST => routes::containers::commit(&ctx, req).await,
        "/build" if m == Method::POST => routes::build::build(&ctx, req).await,
        "/build/prune" if m == Method::POST => routes::build::prune(&ctx).await,
        "/build/cancel" if m == Method::POST => routes::build::cancel(&ctx).await,
        "/session" if m == Method::POST => routes::build::session(&ctx, req),
        p if p.starts_with("/containers/") => {
            let rest = p["/containers/".len()..].to_owned();
            container_route(&ctx, req, &rest).await
        }
        "/auth" if m == Method::POST => routes::images::auth(&ctx, req).await,
        p if p.starts_with("/images/") => {
            let auth = registry_auth(&req);
            image_route(&ctx, m, &p["/images/".len()..], auth).await
        }
        "/networks" if m == Method::GET => routes::networks::list(&ctx).await,
        "/networks/create" if m == Method::POST => routes::networks::create(&ctx, req).await,
        "/networks/prune" if m == Method::POST => routes::networks::prune(&ctx).await,
        p if p.starts_with("/networks/") => {
            let rest = p["/networks/".len()..].to_owned();
            network_route(&ctx, req, &rest).await
        }
        p if p.starts_with("/exec/") => {
            let rest = p["/exec/".len()..].to_owned();
            exec_route(&ctx, req, &rest).await
        }
        "/volumes" if m == Method::GET => routes::volumes::list(&ctx).await,
        "/volumes/create" if m == Method::POST => routes::volumes::create(&ctx, req).await,
        "/volumes/prune" if m == Method::POST => routes::volumes::prune(&ctx).await,
        p if p.starts_with("/volumes/") => {
            let name = &p["/volumes/".len()..];
            match *m {
                Method::GET => routes::volumes::inspect(&ctx, name).await,
                Method::DELETE => routes::volumes::remove(&ctx, name).await,
                Method::PUT => Err(routes::volumes::update()),
                _ => Err(ApiError::page_not_found()),
            }
        }
        p => routes::unsupported::answer(m, p).unwrap_or_else(|| Err(ApiError::page_not_found())),
    }
}

/// `/containers/{id}[/action]`.
async fn container_route(
    ctx: &Ctx,
    req: Request<ReqBody>,
    rest: &str,
) -> ApiResult<Response<Body>> {
    use routes::containers as c;
    let m = req.method().clone();
    // A removal names the whole rest, as dockerd's `DELETE /containers/{name:.*}`: `docker rm --link`
    // sends the link's name, `/PARENT/ALIAS`, unescaped.
    // A link's name has two parts, so `NAME/checkpoints/ID` can only be a checkpoint.
    let checkpoint = rest.split_once("/checkpoints/").is_some_and(|(n, c)| {
        !n.is_empty() && !n.contains('/') && !c.is_empty() && !c.contains('/')
    });
    if m == Method::DELETE && !checkpoint {
        return c::remove(ctx, rest).await;
    }
    let (name, action) = match rest.split_once('/') {
        Some((n, a)) => (n, a),
        None => (rest, ""),
    };
    match (action, &m) {
        ("json", &Method::GET) => c::inspect(ctx, name).await,
        ("start", &Method::POST) => c::start(ctx, name).await,
        ("stop", &Method::POST) => c::stop(ctx, name).await,
        ("restart", &Method::POST) => c::restart(ctx, name).await,
        ("kill", &Method::POST) => c::kill(ctx, name).await,
        ("wait", &Method::POST) => c::wait(ctx, name).await,
        ("rename", &Method::POST) => c::rename(ctx, name).await,
        ("update", &Method::POST) => c::update(ctx, req, name).await,
        ("logs", &Method::GET) => c::logs(ctx, name).await,
        ("attach", &Method::POST) => c::attach(ctx, req, name).await,
        ("pause", &Method::POST) => c::pause(ctx, name).await,
        ("unpause", &Method::POST) => c::unpause(ctx, name).await,
        ("top", &Method::GET) => c::top(ctx, name).await,
        ("resize", &Method::POST) => c::resize(ctx, name).await,
        ("stats", &Method::GET) => c::stats(ctx, name).await,
        ("archive", &Method::HEAD) => routes::archive::head(ctx, name).await,
        ("archive", &Method::GET) => routes::archive::get(ctx, name).await,
        ("archive", &Method::PUT) => routes::archive::put(ctx, req, name).await,
        ("changes", &Method::GET) => routes::archive::changes(ctx, name).await,
        ("export", &Method::GET) => routes::archive::export(ctx, name).await,
        ("exec", &Method::POST) => routes::exec::create(ctx, req, name).await,
        ("checkpoints", &Method::GET | &Method::POST) => Err(routes::unsupported::checkpoints()),
        (a, &Method::DELETE)
            if a.strip_prefix("checkpoints/")
                .is_some_and(|c| !c.is_empty()) =>
        {
            Err(routes::unsupported::checkpoints())
        }
        ("attach/ws", &Method::GET) => Err(routes::unsupported::attach_websocket()),
        _ => Err(ApiError::page_not_found()),
    }
}

/// `/exec/{id}/action`.
async fn exec_route(ctx: &Ctx, req: Request<ReqBody>, rest: &str) -> ApiResult<Response<Body>> {
    use routes::exec as e;
    let m = req.method().clone();
    let (id, action) = rest.split_once('/').ok_or_else(ApiError::page_not_found)?;
    match (action, &m) {
        ("start", &Method::POST) => e::start(ctx, req, id).await,
        ("resize", &Method::POST) => e::resize(ctx, id).await,
        ("json", &Method::GET) => e::inspect(ctx, id).await,
        _ => Err(ApiError::page_not_found()),
    }
}

/// `/networks/{id}[/action]`.
async fn network_route(ctx: &Ctx, req: Request<ReqBody>, rest: &str) -> ApiResult<Response<Body>> {
    use routes::networks as n;
    let m = req.method().clone();
    let (name, action) = rest.split_once('/').unwrap_or((rest, ""));
    match (action, &m) {
        ("", &Method::GET) => n::inspect(ctx, name).await,
        ("", &Method::DELETE) => n::remove(ctx, name).await,
        ("connect", &Method::POST) => n::connect(ctx, req, name).await,
        ("disconnect", &Method::POST) => n::disconnect(ctx, req, name).await,
        _ => Err(ApiError::page_not_found()),
    }
}

/// `/images/{name}[/action]`; the name itself may hold slashes.
async fn image_route(
    ctx: &Ctx,
    m: &Method,
    rest: &str,
    auth: Option<String>,
) -> ApiResult<Response<Body>> {
    if m == Method::DELETE {
        return routes::images::remove(ctx, rest).await;
    }
    let (name, action) = rest.rsplit_once('/').ok_or_else(ApiError::page_not_found)?;
    match (action, m) {
        ("json", &Method::GET) => routes::images::inspect(ctx, name).await,
        ("history", &Method::GET) => routes::images::history(ctx, name).await,
        ("tag", &Method::POST) => routes::images::tag(ctx, name).await,
        ("get", &Method::GET) => routes::images::save(ctx, vec![name.to_owned()]).await,
        ("push", &Method::POST) => routes::images::push(ctx, name, auth).await,
        _ => Err(ApiError::page_not_found()),
    }
}

/// The `X-Registry-Auth` header (credentials for pull and push), if sent.
pub fn registry_auth<B>(req: &Request<B>) -> Option<String> {
    req.headers()
        .get("X-Registry-Auth")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Decodes `%XX` escapes in a path (clients escape some characters of image names).
fn percent_decode(path: &str) -> ApiResult<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request("path is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_in_paths_are_decoded() {
        assert_eq!(
            percent_decode("/images/a%2Fb%3A1/json").unwrap(),
            "/images/a/b:1/json"
        );
        assert_eq!(percent_decode("/images/x%").unwrap(), "/images/x%");
    }
}
