//! A hijacked attach or exec session, as the docker CLI runs it: our stdin to the connection and the
//! connection to our stdout/stderr (raw bytes with a TTY, Docker's multiplexed frames without); with a TTY
//! on a terminal, the terminal in raw mode, its size followed (SIGWINCH) and the detach keys (Ctrl-P
//! Ctrl-Q unless `--detach-keys` says otherwise) watched for, which end the session and leave the container
//! or process running.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::run::write_stream;
use crate::client::Client;
use crate::error::CliError;
use stdio::frame::Demux;

/// What the docker CLI prints (and exits 1 with) when `attach` or `exec` ends on the detach keys.
pub const DETACHED: &str = "read escape sequence";

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The output ended (the process exited, or the daemon closed the stream).
    Output,
    /// The user typed the detach keys.
    Detached,
}

/// What to copy.
pub struct Session {
    /// Send our stdin.
    pub stdin: bool,
    /// Raw stream (no frames), raw terminal mode, detach keys.
    pub tty: bool,
    /// `--detach-keys` (Docker's syntax; the default sequence when absent or invalid, as the docker CLI).
    pub detach_keys: Option<String>,
    /// Where size changes go (`/containers/ID/resize` or `/exec/ID/resize`), with a TTY on a terminal.
    pub resize: Option<String>,
    /// `--sig-proxy`: without a TTY, the signals we get go to the container (`/containers/ID/kill`).
    pub signals: Option<String>,
}

/// The signals `--sig-proxy` forwards (not the ones about our own terminal and children).
const PROXIED: [(i32, &str); 7] = [
    (libc::SIGINT, "SIGINT"),
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGQUIT, "SIGQUIT"),
    (libc::SIGUSR1, "SIGUSR1"),
    (libc::SIGUSR2, "SIGUSR2"),
    (libc::SIGALRM, "SIGALRM"),
];

/// Forwards the signals this process gets to the container, as the docker CLI's sig-proxy does.
fn proxy_signals(client: &Client, kill_path: &str) {
    for (num, name) in PROXIED {
        let Ok(mut stream) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(num))
        else {
            continue;
        };
        let client = client.clone();
        let path = format!("{kill_path}?signal={name}");
        tokio::spawn(async move {
            while stream.recv().await.is_some() {
                let _ = client.post(&path).await;
            }
        });
    }
}

/// Runs the session on `conn` until the output ends or the user detaches.
pub async fn run(
    client: &Client,
    conn: hyper::upgrade::Upgraded,
    s: Session,
) -> Result<Ended, CliError> {
    if let (Some(path), false) = (&s.signals, s.tty) {
        proxy_signals(client, path);
    }
    let terminal = s.tty && crate::output::stdin_is_terminal();
    let raw = if terminal && s.stdin {
        stdio::terminal::RawMode::enter_keeping_output(0)
    } else {
        None
    };
    if let (true, Some(path)) = (s.tty, s.resize.clone()) {
        if stdio::terminal::size(1).is_some() {
            follow_size(client.clone(), path).await;
        }
    }
    let io = hyper_util::rt::TokioIo::new(conn);
    let (mut reader, mut writer) = tokio::io::split(io);
    let (detach_tx, mut detached) = tokio::sync::mpsc::channel::<()>(1);
    if s.stdin {
        // The default sequence when absent or invalid, as the docker CLI (the daemon says what is wrong).
        let keys = s
            .detach_keys
            .as_deref()
            .filter(|k| !k.is_empty())
            .and_then(|k| stdio::detach::parse_keys(k).ok())
            .unwrap_or_default();
        let mut escape = s.tty.then(|| stdio::detach::EscapeProxy::new(&keys));
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(8);
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = vec![0u8; 32 * 1024];
            let mut input = std::io::stdin();
            loop {
                match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                let (data, detach) = match escape.as_mut() {
                    Some(e) => e.feed(&chunk),
                    None => (chunk, false),
                };
                if !data.is_empty() && writer.write_all(&data).await.is_err() {
                    return;
                }
                if detach {
                    let _ = detach_tx.send(()).await;
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
    }
    let mut demux = Demux::default();
    let mut buf = vec![0u8; 32 * 1024];
    let ended = loop {
        let n = tokio::select! {
            r = reader.read(&mut buf) => match r {
                Ok(0) | Err(_) => break Ended::Output,
                Ok(n) => n,
            },
            Some(()) = detached.recv() => break Ended::Detached,
        };
        if s.tty {
            write_stream(1, &buf[..n]);
        } else {
            for (stream, data) in demux.feed(&buf[..n]) {
                write_stream(stream, &data);
            }
        }
    };
    drop(raw);
    Ok(ended)
}

/// Sends the terminal's size now and at every SIGWINCH.
async fn follow_size(client: Client, path: String) {
    let send = |client: Client, path: String| async move {
        if let Some((rows, cols)) = stdio::terminal::size(1) {
            let _ = client.post(&format!("{path}?h={rows}&w={cols}")).await;
        }
    };
    send(client.clone(), path.clone()).await;
    tokio::spawn(async move {
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            send(client.clone(), path.clone()).await;
        }
    });
}
