//! `/_ping`, `/version`, `/info`, `/events` and `/system/df`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use engine::{parse_timestamp, Filters};
use http::{header, HeaderValue, Method, Response, StatusCode};
use tokio::sync::broadcast::error::RecvError;

use crate::body::{self, full, json, Body};
use crate::error::{ApiError, ApiResult};
use crate::router::Ctx;
use serde_json::Value;

/// `GET|HEAD /_ping`: "OK" plus the headers clients negotiate with.
pub fn ping(method: &Method) -> Response<Body> {
    let text = if method == Method::HEAD { "" } else { "OK" };
    let mut r = body::with_type(StatusCode::OK, "text/plain; charset=utf-8", full(text));
    let h = r.headers_mut();
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    if method == Method::HEAD {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    r
}

/// `GET /version`.
pub fn version(ctx: &Ctx) -> Response<Body> {
    json(&ctx.engine.version())
}

/// `GET /info`, with the `null`s dockerd writes for what is not set (the models leave those keys out).
pub async fn info(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let info = ctx.engine.info().await?;
    let mut v = serde_json::to_value(crate::json::Sorted(&info)).map_err(encoding)?;
    if let Some(o) = v.as_object_mut() {
        o.entry("GenericResources").or_insert(Value::Null);
        if let Some(p) = o.get_mut("Plugins").and_then(Value::as_object_mut) {
            p.entry("Authorization").or_insert(Value::Null);
        }
        if let Some(s) = o.get_mut("Swarm").and_then(Value::as_object_mut) {
            s.entry("RemoteManagers").or_insert(Value::Null);
        }
        if o.get("Warnings")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            o.insert("Warnings".into(), Value::Null);
        }
    }
    Ok(body::json_value(&v))
}

/// `GET /system/df[?type=…]`: the parts asked for (`type` since API 1.42), the others `null` as dockerd
/// writes them.
pub async fn df(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let types = if ctx.version.before(42) {
        Vec::new()
    } else {
        ctx.query.all("type")
    };
    let kinds = engine::DiskUsageKinds::parse(&types)?;
    let mut usage = ctx.engine.disk_usage(kinds).await?;
    if ctx.version.before(44) {
        for img in usage.images.iter_mut().flatten() {
            img.virtual_size = Some(img.size);
        }
    }
    let mut v = serde_json::to_value(crate::json::Sorted(&usage)).map_err(encoding)?;
    if let Some(o) = v.as_object_mut() {
        o.entry("LayersSize").or_insert(Value::from(0));
        for k in ["Images", "Containers", "Volumes", "BuildCache"] {
            o.entry(k).or_insert(Value::Null);
        }
    }
    Ok(body::json_value(&v))
}

fn encoding(e: serde_json::Error) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("encoding response: {e}"),
    )
}

/// `GET /events`: past events since `since`, then live ones until `until` (or until the client leaves),
/// one JSON object per line, filtered by `filters`.
pub async fn events(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let filters = Filters::parse(ctx.query.get("filters"))?;
    let stamp = |key: &str| {
        ctx.query
            .get(key)
            .filter(|s| !s.is_empty())
            .map(parse_timestamp)
            .transpose()
    };
    let since = stamp("since")?;
    let until = stamp("until")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let (past, mut live) = ctx.engine.events().subscribe(since);
    let (tx, body) = body::channel();
    tokio::spawn(async move {
        let encode = |e: &engine::Event| {
            let mut v = crate::json::to_vec(e).unwrap_or_default();
            v.push(b'\n');
            Bytes::from(v)
        };
        for e in past
            .iter()
            .filter(|e| until.is_none_or(|u| e.time_nano <= u))
        {
            if e.matches(&filters) && !tx.send(encode(e)).await {
                return;
            }
        }
        let deadline = match until {
            Some(u) if u <= now => return,
            Some(u) => Some(tokio::time::Instant::now() + Duration::from_nanos((u - now) as u64)),
            None => None,
        };
        loop {
            let next = async {
                match deadline {
                    Some(d) => tokio::time::timeout_at(d, live.recv()).await.ok(),
                    None => Some(live.recv().await),
                }
            };
            let next = tokio::select! {
                () = tx.closed() => return,
                n = next => n,
            };
            match next {
                None | Some(Err(RecvError::Closed)) => return,
                Some(Err(RecvError::Lagged(n))) => {
                    tracing::warn!(missed = n, "events subscriber fell behind");
                }
                Some(Ok(e)) => {
                    if e.matches(&filters) && !tx.send(encode(&e)).await {
                        return;
                    }
                }
            }
        }
    });
    Ok(body::with_type(StatusCode::OK, "application/json", body))
}
