//! The engine's side of the shim protocol (`shim::protocol`): commands, the exit wait, and the attach stream.

use std::path::Path;

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;

use super::hub::{Frame, Hub};
use crate::error::{Context, Error, Result};

async fn connect(sock: &Path) -> Result<UnixStream> {
    UnixStream::connect(sock)
        .await
        .with_context(|| format!("connecting to the container's shim ({})", sock.display()))
}

/// Sends one command and returns the reply line.
pub async fn command(sock: &Path, line: &str) -> Result<String> {
    let mut s = connect(sock).await?;
    s.write_all(format!("{line}\n").as_bytes())
        .await
        .context("talking to the shim")?;
    let mut reader = BufReader::new(s);
    let mut reply = String::new();
    reader
        .read_line(&mut reply)
        .await
        .context("reading the shim's reply")?;
    if reply.is_empty() {
        return Err(Error::System(
            "the container's shim closed the connection".into(),
        ));
    }
    Ok(reply.trim_end().to_owned())
}

/// Sends a command that answers `ok` or `err MESSAGE`.
pub async fn ok_command(sock: &Path, line: &str) -> std::result::Result<(), String> {
    match command(sock, line).await {
        Ok(r) if r == "ok" => Ok(()),
        Ok(r) => Err(r.strip_prefix("err ").unwrap_or(&r).to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until the container exits; returns its exit code and whether the OOM killer ended it.
pub async fn wait(sock: &Path) -> Result<(i64, bool)> {
    let reply = command(sock, "wait").await?;
    let mut words = reply.split_whitespace();
    match (words.next(), words.next(), words.next()) {
        (Some("exit"), Some(code), oom) => Ok((code.parse().unwrap_or(255), oom == Some("1"))),
        _ => Err(Error::System(format!(
            "unexpected reply from the shim: {reply}"
        ))),
    }
}

/// Attaches to the container's output (and stdin) and pumps it through `hub` until the output ends.
/// Returns once the shim has acknowledged the attach, so output produced after it is not missed.
pub async fn attach(sock: &Path, hub: std::sync::Arc<Hub>, stdin: bool) -> Result<()> {
    let s = connect(sock).await?;
    let (read, mut write) = s.into_split();
    let flags = if stdin {
        "attach stdin stdout stderr\n"
    } else {
        "attach stdout stderr\n"
    };
    write
        .write_all(flags.as_bytes())
        .await
        .context("attaching to the shim")?;
    let mut reader = BufReader::new(read);
    let mut ack = String::new();
    reader
        .read_line(&mut ack)
        .await
        .context("attaching to the shim")?;
    if ack.trim_end() != "ok" {
        return Err(Error::System(format!(
            "the shim refused to attach: {}",
            ack.trim_end()
        )));
    }
    let out_hub = std::sync::Arc::clone(&hub);
    // Without stdin the write half stays with the reader, so the connection lives as long as the output.
    let (keep, stdin_write) = if stdin {
        (None, Some(write))
    } else {
        (Some(write), None)
    };
    tokio::spawn(async move {
        let _keep = keep;
        while let Ok((stream, data)) = read_frame(&mut reader).await {
            out_hub.publish(Frame {
                stream,
                data: Bytes::from(data),
            });
        }
        out_hub.close();
    });
    if let Some(mut write) = stdin_write {
        if let Some(mut rx) = hub.take_stdin().await {
            tokio::spawn(async move {
                while let Some(item) = rx.recv().await {
                    match item {
                        Some(data) => {
                            if write.write_all(&data).await.is_err() {
                                break;
                            }
                        }
                        None => break,
                    }
                }
                if let Err(e) = write.shutdown().await {
                    tracing::debug!(error = %e, "closing the container's stdin at the shim");
                }
            });
        }
    }
    Ok(())
}

/// Reads one multiplexed frame (Docker's framing, plus the shim's control frames) from a shim connection.
pub(crate) async fn read_frame<R: tokio::io::AsyncRead + Unpin>(
    reader: &mut R,
) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; stdio::frame::HEADER_LEN];
    reader.read_exact(&mut header).await?;
    let (stream, len) = stdio::frame::parse_header(&header);
    let mut data = vec![0u8; len];
    reader.read_exact(&mut data).await?;
    Ok((stream, data))
}
