//! Exec instances: `POST /containers/{id}/exec`, `POST /exec/{id}/start` (hijacked like attach, or a plain
//! streamed body when the client does not ask for an upgrade), `POST /exec/{id}/resize`, `GET /exec/{id}/json`.

use crate::request::{read_json, ReqBody};
use engine::containers::{ExecConfig, ExecStartConfig};
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::containers::{encode, stream_type, upgraded, wants_upgrade, window_size};
use crate::body::{self, json, json_status, Body};
use crate::error::{ApiError, ApiResult};
use crate::router::Ctx;
use crate::stdin::InputEnd;

/// `POST /containers/{id}/exec` → 201 `{"Id": …}`.
pub async fn create(ctx: &Ctx, req: Request<ReqBody>, name: &str) -> ApiResult<Response<Body>> {
    let config: ExecConfig = read_json(req).await?;
    let id = ctx.engine.create_exec(name, config).await?;
    Ok(json_status(StatusCode::CREATED, &json!({ "Id": id })))
}

/// `POST /exec/{id}/start`. As dockerd does, the reply (101, or 200 with a streamed body) goes out before the
/// process starts: output that came in the same read as the response head would be lost to clients that
/// read the head through a buffer and the stream from the socket (docker-py).
pub async fn start(ctx: &Ctx, mut req: Request<ReqBody>, id: &str) -> ApiResult<Response<Body>> {
    let upgrade = wants_upgrade(&req).then(|| hyper::upgrade::on(&mut req));
    let reads_head_through_a_buffer = reads_head_through_a_buffer(&req);
    let start: ExecStartConfig = read_json(req).await?;
    let (inst, _) = ctx.engine.check_exec_start(id)?;
    if start.detach {
        let io = ctx.engine.start_exec(id, start).await?;
        if let Some(e) = io.error {
            return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e));
        }
        return Ok(body::empty(StatusCode::OK));
    }
    let tty = start.tty.unwrap_or(inst.config.tty);
    let detach_keys = inst
        .config
        .detach_keys
        .as_deref()
        .filter(|k| !k.is_empty())
        .and_then(|k| stdio::detach::parse_keys(k).ok())
        .unwrap_or_default();
    let engine = std::sync::Arc::clone(&ctx.engine);
    let exec_id = inst.id.clone();
    let Some(upgrade) = upgrade else {
        // No hijack: the output as the response body (no stdin).
        let (tx, out) = body::channel();
        tokio::spawn(async move {
            let mut io = match engine.start_exec(&exec_id, start).await {
                Ok(io) => io,
                Err(e) => {
                    // The error goes in the stream; a client that has gone needs none.
                    let _ = tx.send(encode(tty, 1, format!("{e}\r\n").as_bytes())).await;
                    return;
                }
            };
            if let Some(e) = io.error {
                // As above.
                let _ = tx.send(encode(tty, 1, format!("{e}\r\n").as_bytes())).await;
                return;
            }
            while let Some(f) = io.output.recv().await {
                if !tx.send(encode(tty, f.stream, &f.data)).await {
                    return;
                }
            }
        });
        return Ok(body::with_type(StatusCode::OK, stream_type(tty), out));
    };
    tokio::spawn(async move {
        let conn = match upgrade.await {
            Ok(conn) => TokioIo::new(conn),
            Err(e) => {
                tracing::debug!(error = %e, "exec upgrade failed");
                return;
            }
        };
        let (rd, mut wr) = tokio::io::split(conn);
        if reads_head_through_a_buffer {
            tokio::time::sleep(HEAD_READ_GRACE).await;
        }
        let io = engine
            .start_exec(&exec_id, start)
            .await
            .map_err(|e| e.to_string())
            .and_then(|io| match io.error {
                Some(e) => Err(e),
                None => Ok(io),
            });
        let mut io = match io {
            Ok(io) => io,
            Err(e) => {
                // As above: the error goes in the stream, to a client that may have gone.
                let _ = wr
                    .write_all(&encode(tty, 1, format!("{e}\r\n").as_bytes()))
                    .await;
                let _ = wr.shutdown().await;
                return;
            }
        };
        let detached = std::sync::Arc::new(tokio::sync::Notify::new());
        if let Some(mut stdin) = io.stdin.take() {
            // With a TTY, the detach keys end the session (as in dockerd); the process goes on.
            let detached = std::sync::Arc::clone(&detached);
            let engine = std::sync::Arc::clone(&engine);
            let exec_id = exec_id.clone();
            tokio::spawn(async move {
                match crate::stdin::pump(rd, &mut stdin, tty, &detach_keys).await {
                    InputEnd::Closed => stdin.close().await,
                    InputEnd::StdinGone => {}
                    // The shim keeps a pty's input open when this side closes: the process sees no EOF.
                    InputEnd::Detached => {
                        engine.exec_detached(&exec_id);
                        detached.notify_one();
                    }
                }
            });
        }
        loop {
            tokio::select! {
                f = io.output.recv() => match f {
                    Some(f) => {
                        if wr.write_all(&encode(tty, f.stream, &f.data)).await.is_err() {
                            return;
                        }
                    }
                    None => break,
                },
                _ = detached.notified() => break,
            }
        }
        // The session is over; the client may have closed its side first.
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    });
    Ok(upgraded(tty))
}

/// How long a client that reads the response head through a buffer gets to read it before the process starts.
const HEAD_READ_GRACE: std::time::Duration = std::time::Duration::from_millis(25);

/// docker-py reads the 101's head with http.client's buffered reader, then the stream from the raw socket:
/// output that arrives while the head is still unread lands in that buffer and is lost (about one exec in
/// 500 here, where an exec starts in a few milliseconds; dockerd's take tens). Such clients get a short
/// grace before the process starts; other clients, the docker CLI and the berth CLI among them, get none.
fn reads_head_through_a_buffer(req: &Request<ReqBody>) -> bool {
    req.headers()
        .get(http::header::USER_AGENT)
        .is_some_and(|ua| ua.as_bytes().starts_with(b"docker-sdk-python"))
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(ctx: &Ctx, id: &str) -> ApiResult<Response<Body>> {
    let (rows, cols) = window_size(ctx)?;
    ctx.engine.resize_exec(id, rows, cols).await?;
    Ok(body::empty(StatusCode::OK))
}

/// `GET /exec/{id}/json`.
pub async fn inspect(ctx: &Ctx, id: &str) -> ApiResult<Response<Body>> {
    let e = ctx.engine.exec_instance(id)?;
    let cmd = e.config.cmd.clone().unwrap_or_default();
    let user = e.config.user.clone().unwrap_or_default();
    Ok(json(&json!({
        "ID": e.id,
        "Running": e.running,
        "ExitCode": e.exit_code,
        "ProcessConfig": {
            "tty": e.config.tty,
            "entrypoint": cmd.first().cloned().unwrap_or_default(),
            "arguments": cmd.iter().skip(1).cloned().collect::<Vec<_>>(),
            "privileged": e.config.privileged,
            "user": user,
        },
        "OpenStdin": e.config.attach_stdin,
        "OpenStderr": e.config.attach_stderr,
        "OpenStdout": e.config.attach_stdout,
        "CanRemove": false,
        "ContainerID": e.container_id,
        "DetachKeys": e.config.detach_keys.clone().unwrap_or_default(),
        "Pid": e.pid,
    })))
}
