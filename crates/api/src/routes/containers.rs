//! `/containers/…`: create, list, inspect, start, stop, restart, kill, wait, rename, remove, logs and the
//! hijacked attach stream.

use std::sync::Arc;

use crate::request::{read_bytes, ReqBody};
use bytes::Bytes;
use engine::containers::hub::{Frame, Subscription};
use engine::containers::record::Container;
use engine::containers::{
    parse_signal, AttachTarget, ContainerListOptions, CreateRequest, LogOptions, Stdin,
    WaitCondition,
};
use engine::{parse_timestamp, Engine, Filters};
use http::{header, HeaderValue, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{mpsc, Notify};

use crate::body::{self, json, json_status, Body};
use crate::error::{ApiError, ApiResult};
use crate::router::Ctx;
use crate::stdin::InputEnd;

/// `POST /containers/create?name=…`.
pub async fn create(ctx: &Ctx, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    let body = crate::decode::container_create(&read_bytes(req).await?, ctx.version)?;
    let req = CreateRequest {
        name: ctx.query.get("name").map(str::to_owned),
        body,
        read_only_non_recursive: ctx.version.before(44),
        // The platform came with API 1.41; older clients' is not read, as dockerd does not.
        platform: (!ctx.version.before(41))
            .then(|| ctx.query.get("platform").map(str::to_owned))
            .flatten(),
    };
    let created = ctx.engine.create_container(req).await?;
    Ok(json_status(StatusCode::CREATED, &created))
}

/// `GET /containers/json`.
pub async fn list(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let opts = ContainerListOptions {
        all: ctx.query.bool("all"),
        limit: ctx
            .query
            .get("limit")
            .and_then(|l| l.parse::<i64>().ok())
            .filter(|l| *l > 0)
            .map(|l| l as usize),
        filters: Filters::parse(ctx.query.get("filters"))?,
        size: ctx.query.bool("size"),
    };
    let mut list = ctx.engine.list_containers(opts).await?;
    // The list shows annotations from API 1.46 on, as dockerd's does.
    if ctx.version.before(46) {
        for c in &mut list {
            if let Some(h) = c.host_config.as_mut() {
                h.annotations = None;
            }
        }
    }
    Ok(json(&list))
}

/// `GET /containers/{id}/json`.
pub async fn inspect(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let mut c = ctx
        .engine
        .inspect_container(name, ctx.query.bool("size"))
        .await?;
    if ctx.version.before(45) {
        legacy_aliases(&mut c);
    }
    // Encoded with Go's map order first, then put in dockerd's key order with its nulls (the object keeps
    // the order it is given: serde_json's preserve_order).
    let internal = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding response: {e}"),
        )
    };
    let bytes = crate::json::to_vec(&c).map_err(internal)?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(internal)?;
    let mut bytes = serde_json::to_vec(&crate::shapes::container_inspect(v)).map_err(internal)?;
    bytes.push(b'\n');
    Ok(body::with_type(
        StatusCode::OK,
        "application/json",
        body::full(bytes),
    ))
}

/// Before API 1.45 dockerd listed the short ID and the hostname among each user-defined network's `Aliases`
/// (since then they are in `DNSNames` only).
fn legacy_aliases(c: &mut bollard_stubs::models::ContainerInspectResponse) {
    let short: String =
        c.id.as_deref()
            .unwrap_or_default()
            .chars()
            .take(12)
            .collect();
    let hostname = c
        .config
        .as_ref()
        .and_then(|cfg| cfg.hostname.clone())
        .unwrap_or_default();
    let Some(nets) = c
        .network_settings
        .as_mut()
        .and_then(|s| s.networks.as_mut())
    else {
        return;
    };
    for (name, ep) in nets.iter_mut() {
        if matches!(name.as_str(), "bridge" | "host" | "none" | "default") {
            continue;
        }
        let mut aliases = ep.aliases.take().unwrap_or_default();
        for extra in [&short, &hostname] {
            if !extra.is_empty() && !aliases.contains(extra) {
                aliases.push(extra.clone());
            }
        }
        ep.aliases = Some(aliases);
    }
}

/// `POST /containers/{id}/start`: 204, or 304 when already running.
pub async fn start(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    not_modified_ok(ctx.engine.start_container(name).await)
}

/// `POST /containers/{id}/stop?signal=…&t=…`.
pub async fn stop(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let t = timeout(ctx)?;
    not_modified_ok(
        ctx.engine
            .stop_container(name, ctx.query.get("signal"), t)
            .await,
    )
}

/// `POST /containers/{id}/restart?signal=…&t=…`.
pub async fn restart(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let t = timeout(ctx)?;
    ctx.engine
        .restart_container(name, ctx.query.get("signal"), t)
        .await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/kill?signal=…`.
pub async fn kill(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    if let Some(s) = ctx.query.get("signal").filter(|s| !s.is_empty()) {
        parse_signal(s)?;
    }
    ctx.engine
        .kill_container(name, ctx.query.get("signal"))
        .await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/update`: new resources and restart policy; `{"Warnings": []}`.
pub async fn update(ctx: &Ctx, req: Request<ReqBody>, name: &str) -> ApiResult<Response<Body>> {
    let body = crate::decode::container_update(&read_bytes(req).await?)?;
    Ok(json(&ctx.engine.update_container(name, body).await?))
}

/// `POST /containers/{id}/rename?name=…`.
pub async fn rename(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let new_name = ctx.query.get("name").unwrap_or("");
    ctx.engine.rename_container(name, new_name).await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// `DELETE /containers/{id}?force=…&v=…`, or with `link=1` the legacy link `/PARENT/ALIAS`.
pub async fn remove(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    if ctx.query.bool("link") {
        ctx.engine.remove_link(name).await?;
        return Ok(body::empty(StatusCode::NO_CONTENT));
    }
    ctx.engine
        .remove_container(name, ctx.query.bool("force"), ctx.query.bool("v"))
        .await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/wait?condition=…`: the headers go out at once (the docker CLI starts the container
/// only after it has them); the body follows at the exit.
pub async fn wait(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let condition = WaitCondition::parse(ctx.query.get("condition"))?;
    let done = ctx.engine.wait_container(name, condition).await?;
    let (tx, body) = body::channel();
    tokio::spawn(async move {
        let value = match done.await {
            Ok(code) => serde_json::json!({"StatusCode": code, "Error": null}),
            Err(e) => serde_json::json!({"StatusCode": -1, "Error": {"Message": e.to_string()}}),
        };
        let mut v = serde_json::to_vec(&value).unwrap_or_default();
        v.push(b'\n');
        tx.send(Bytes::from(v)).await;
    });
    Ok(body::with_type(StatusCode::OK, "application/json", body))
}

/// `GET /containers/{id}/logs`.
pub async fn logs(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let q = &ctx.query;
    let stamp = |k: &str| {
        q.get(k)
            .filter(|s| !s.is_empty() && *s != "0")
            .map(parse_timestamp)
            .transpose()
    };
    let opts = LogOptions {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        follow: q.bool("follow"),
        since: stamp("since")?,
        until: stamp("until")?,
        timestamps: q.bool("timestamps"),
        tail: q
            .get("tail")
            .filter(|t| *t != "all")
            .and_then(|t| t.parse().ok()),
        details: q.bool("details"),
    };
    let (tty, mut frames) = ctx.engine.container_logs(name, opts).await?;
    let (tx, body) = body::channel();
    tokio::spawn(async move {
        while let Some(f) = frames.recv().await {
            if !tx.send(encode(tty, f.stream, &f.data)).await {
                return;
            }
        }
    });
    Ok(body::with_type(StatusCode::OK, stream_type(tty), body))
}

/// `POST /containers/{id}/attach`: hijacks the connection (`Upgrade: tcp` → 101) and carries the container's
/// output (and input) until the output ends.
pub async fn attach(ctx: &Ctx, mut req: Request<ReqBody>, name: &str) -> ApiResult<Response<Body>> {
    if !wants_upgrade(&req) {
        return Err(ApiError::bad_request(
            "attach needs a hijacked connection (Upgrade: tcp)",
        ));
    }
    let detach_keys = detach_keys(ctx)?;
    let target = ctx.engine.attach_target(name).await?;
    let session = AttachSession::set_up(ctx, target, detach_keys).await?;
    ctx.engine.attach_event(&session.container);
    let upgrade = hyper::upgrade::on(&mut req);
    let tty = session.tty;
    let engine = Arc::clone(&ctx.engine);
    tokio::spawn(async move {
        match upgrade.await {
            Ok(io) => session.run(TokioIo::new(io), engine).await,
            Err(e) => tracing::debug!(error = %e, "attach upgrade failed"),
        }
    });
    Ok(upgraded(tty))
}

/// The `detachKeys` query parameter as key codes (none when absent), or dockerd's error.
fn detach_keys(ctx: &Ctx) -> ApiResult<Vec<u8>> {
    match ctx.query.get("detachKeys").filter(|k| !k.is_empty()) {
        Some(k) => stdio::detach::parse_keys(k)
            .map_err(|_| ApiError::bad_request(format!("Invalid detach keys ({k}) provided"))),
        None => Ok(Vec::new()),
    }
}

/// An attach's streams, set up before the 101 is answered (so that no output falls between): which
/// output the client wants, the logs to replay first, the live output and the container's stdin.
struct AttachSession {
    tty: bool,
    stdout: bool,
    stderr: bool,
    /// Stay for the live output (`stream`), or end after the replayed logs.
    stream: bool,
    logs: Option<mpsc::Receiver<Frame>>,
    output: Subscription,
    stdin: Option<Stdin>,
    stdin_once: bool,
    detach_keys: Vec<u8>,
    container: Container,
}

impl AttachSession {
    /// Reads the query (`stdin`, `stdout`, `stderr`, `stream`, `logs`) and opens the log replay.
    async fn set_up(ctx: &Ctx, target: AttachTarget, detach_keys: Vec<u8>) -> ApiResult<Self> {
        let q = &ctx.query;
        let (stdout, stderr) = (q.bool("stdout"), q.bool("stderr"));
        let logs = if q.bool("logs") && (stdout || stderr) {
            let opts = LogOptions {
                stdout,
                stderr,
                ..Default::default()
            };
            Some(
                ctx.engine
                    .container_logs(&target.container.id, opts)
                    .await?
                    .1,
            )
        } else {
            None
        };
        Ok(AttachSession {
            tty: target.tty,
            stdout,
            stderr,
            stream: q.bool("stream"),
            logs,
            output: target.subscription,
            stdin: if q.bool("stdin") { target.stdin } else { None },
            stdin_once: target.stdin_once,
            detach_keys,
            container: target.container,
        })
    }

    /// Carries the streams over the hijacked connection: the logs, then (with `stream`) the client's input
    /// to the container and the live output to the client, until the output ends or the client detaches.
    async fn run(mut self, io: impl AsyncRead + AsyncWrite + Send + 'static, engine: Arc<Engine>) {
        let (rd, mut wr) = tokio::io::split(io);
        if let Some(logs) = self.logs.as_mut() {
            while let Some(f) = logs.recv().await {
                if wr
                    .write_all(&encode(self.tty, f.stream, &f.data))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
        if !self.stream {
            let _ = wr.shutdown().await;
            return;
        }
        let detached = Arc::new(Notify::new());
        if let Some(stdin) = self.stdin.take() {
            self.spawn_input(rd, stdin, engine, Arc::clone(&detached));
        }
        if self.copy_output(&mut wr, &detached).await.is_err() {
            return;
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    }

    /// Input: client bytes to the container's stdin; the client's EOF ends stdin (with StdinOnce). With a
    /// TTY, the detach keys end the session instead (as in dockerd), leaving the container's stdin open.
    fn spawn_input(
        &self,
        rd: impl AsyncRead + Unpin + Send + 'static,
        mut stdin: Stdin,
        engine: Arc<Engine>,
        detached: Arc<Notify>,
    ) {
        let (tty, stdin_once) = (self.tty, self.stdin_once);
        let keys = self.detach_keys.clone();
        let container = self.container.clone();
        tokio::spawn(async move {
            match crate::stdin::pump(rd, &mut stdin, tty, &keys).await {
                // As dockerd: with a TTY the client's end of input does not close the container's (the
                // docker CLI closes its side when the user detaches with the keys it watches itself).
                InputEnd::Closed if stdin_once && !tty => stdin.close().await,
                InputEnd::Closed | InputEnd::StdinGone => {}
                InputEnd::Detached => {
                    engine.detach_event(&container);
                    detached.notify_one();
                }
            }
        });
    }

    /// The live output the client asked for, until the container's output ends (what was published before
    /// is drained) or the client detaches; an error is the client gone.
    async fn copy_output(
        &mut self,
        wr: &mut (impl AsyncWrite + Unpin),
        detached: &Notify,
    ) -> std::io::Result<()> {
        let (tty, stdout, stderr) = (self.tty, self.stdout, self.stderr);
        let wants = |s: u8| (s == 1 && stdout) || (s == 2 && stderr);
        let sub = &mut self.output;
        loop {
            tokio::select! {
                frame = sub.output.recv() => match frame {
                    Ok(f) => {
                        if wants(f.stream) {
                            wr.write_all(&encode(tty, f.stream, &f.data)).await?;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "attached client fell behind");
                    }
                    Err(RecvError::Closed) => return Ok(()),
                },
                _ = detached.notified() => return Ok(()),
                changed = sub.closed.changed() => {
                    if changed.is_err() || *sub.closed.borrow() {
                        while let Ok(f) = sub.output.try_recv() {
                            if wants(f.stream) {
                                wr.write_all(&encode(tty, f.stream, &f.data)).await?;
                            }
                        }
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Whether the client asks to hijack the connection (`Upgrade: tcp`), as the docker CLI does for attach
/// and exec start.
pub(crate) fn wants_upgrade<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp"))
}

/// The `101` that hands the connection over to a raw (TTY) or multiplexed stream.
pub(crate) fn upgraded(tty: bool) -> Response<Body> {
    let mut resp = body::with_type(
        StatusCode::SWITCHING_PROTOCOLS,
        stream_type(tty),
        body::full(Bytes::new()),
    );
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    resp.headers_mut()
        .insert(header::UPGRADE, HeaderValue::from_static("tcp"));
    resp
}

/// The `h` and `w` query parameters of a resize, as (rows, columns).
pub(crate) fn window_size(ctx: &Ctx) -> ApiResult<(u16, u16)> {
    let dim = |k: &str| -> ApiResult<u16> {
        let v = ctx.query.get(k).unwrap_or("");
        v.parse()
            .map_err(|_| ApiError::bad_request(format!("invalid value for {k}: {v:?}")))
    };
    Ok((dim("h")?, dim("w")?))
}

/// Docker's stream content types (API ≥ 1.42).
pub(crate) fn stream_type(tty: bool) -> &'static str {
    if tty {
        "application/vnd.docker.raw-stream"
    } else {
        "application/vnd.docker.multiplexed-stream"
    }
}

/// Raw bytes with a TTY; otherwise Docker's 8-byte frame header (stream, 0, 0, 0, big-endian length).
pub(crate) fn encode(tty: bool, stream: u8, data: &[u8]) -> Bytes {
    if tty {
        return Bytes::copy_from_slice(data);
    }
    Bytes::from(stdio::frame::encode(stream, data))
}

fn timeout(ctx: &Ctx) -> ApiResult<Option<i64>> {
    match ctx.query.get("t").filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid value for t: {t}"))),
    }
}

fn not_modified_ok(r: engine::Result<()>) -> ApiResult<Response<Body>> {
    match r {
        Ok(()) => Ok(body::empty(StatusCode::NO_CONTENT)),
        Err(engine::Error::NotModified) => Ok(body::empty(StatusCode::NOT_MODIFIED)),
        Err(e) => Err(e.into()),
    }
}

/// `POST /containers/{id}/pause`.
pub async fn pause(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    ctx.engine.pause_container(name).await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/unpause`.
pub async fn unpause(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    ctx.engine.unpause_container(name).await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// `GET /containers/{id}/top?ps_args=…`.
pub async fn top(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    Ok(json(
        &ctx.engine
            .top_container(name, ctx.query.get("ps_args"))
            .await?,
    ))
}

/// `GET /containers/{id}/stats?stream=…&one-shot=…`: one sample at once (the previous one kept for the CPU
/// delta), or a sample a second while streaming.
pub async fn stats(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let stream = ctx
        .query
        .get("stream")
        .is_none_or(|_| ctx.query.bool("stream"));
    let first = ctx.engine.stats_sample(name)?;
    if !stream {
        return Ok(json(&first));
    }
    let engine = std::sync::Arc::clone(&ctx.engine);
    let name = name.to_owned();
    let (tx, body) = body::channel();
    tokio::spawn(async move {
        let mut next = Ok(first);
        loop {
            let Ok(v) = next else { return };
            let mut line = serde_json::to_vec(&v).unwrap_or_default();
            line.push(b'\n');
            if !tx.send(Bytes::from(line)).await {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            next = engine.stats_sample(&name);
        }
    });
    Ok(body::with_type(StatusCode::OK, "application/json", body))
}

/// `POST /containers/{id}/resize?h=…&w=…`.
pub async fn resize(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    let (rows, cols) = window_size(ctx)?;
    ctx.engine.resize_container(name, rows, cols).await?;
    Ok(body::empty(StatusCode::OK))
}

/// `POST /containers/prune?filters=…`.
pub async fn prune(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let filters = Filters::parse(ctx.query.get("filters"))?;
    Ok(json(&ctx.engine.prune_containers(filters).await?))
}

/// `POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=`: the body is an optional
/// container config (the docker CLI sends `null`); answers 201 with the new image's `{"Id": …}`.
pub async fn commit(ctx: &Ctx, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    let q = &ctx.query;
    let bytes = read_bytes(req).await?;
    let config = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?,
        )
    };
    let request = engine::containers::CommitRequest {
        container: q.get("container").unwrap_or_default().to_owned(),
        repo: q.get("repo").map(str::to_owned),
        tag: q.get("tag").map(str::to_owned),
        comment: q.get("comment").unwrap_or_default().to_owned(),
        author: q.get("author").unwrap_or_default().to_owned(),
        // Pausing is the default; only an explicit false turns it off.
        pause: q.get("pause").is_none() || q.bool("pause"),
        changes: q.all("changes"),
        config,
    };
    let id = ctx.engine.commit_container(request).await?;
    Ok(json_status(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": id }),
    ))
}
