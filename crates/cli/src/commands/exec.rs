//! `exec`: run a command in a running container, as the docker CLI does — create the exec instance,
//! start it on a hijacked connection (or detached), copy its streams, and exit with its exit code.

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::path_escape;
use super::run::{expand_env, write_stream, Demux};
use crate::client::Client;
use crate::error::CliError;
use crate::output::stdin_is_terminal;

/// Flags of `exec`.
#[derive(Debug, clap::Args)]
#[command(trailing_var_arg = true)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short, long, value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "list")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short, long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "string")]
    pub workdir: Option<String>,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The command and its arguments
    #[arg(value_name = "COMMAND", required = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Docker's `--env-file` format: `KEY=value` lines, `KEY` alone takes the client's value, `#` comments.
fn read_env_file(path: &str) -> Result<Vec<String>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Prefixed(format!("open {path}: {e}")))?;
    Ok(text
        .lines()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(expand_env)
        .collect())
}

/// Runs `exec`.
pub async fn exec(client: &Client, args: ExecArgs) -> Result<(), CliError> {
    if args.tty && args.interactive && !args.detach && !stdin_is_terminal() {
        return Err(CliError::WithStatus(
            "the input device is not a TTY".to_string(),
            1,
        ));
    }
    let mut env = Vec::new();
    for f in &args.env_file {
        env.extend(read_env_file(f)?);
    }
    env.extend(args.env.iter().map(|e| expand_env(e)));
    let size = if args.tty {
        crate::terminal::size(1)
    } else {
        None
    };
    let attach = !args.detach;
    let mut config = json!({
        "User": args.user.clone().unwrap_or_default(),
        "Privileged": args.privileged,
        "Tty": args.tty,
        "AttachStdin": args.interactive && attach,
        "AttachStdout": attach,
        "AttachStderr": attach,
        "Detach": args.detach,
        "DetachKeys": args.detach_keys.clone().unwrap_or_default(),
        "Env": env,
        "WorkingDir": args.workdir.clone().unwrap_or_default(),
        "Cmd": args.command,
    });
    if let Some((rows, cols)) = size {
        config["ConsoleSize"] = json!([rows, cols]);
    }
    let created: Value = crate::client::read_all(
        client
            .post_json(
                &format!("/containers/{}/exec", path_escape(&args.container)),
                &config,
            )
            .await?,
    )
    .await
    .map(|b| serde_json::from_slice(&b).unwrap_or(Value::Null))?;
    let id = created["Id"].as_str().unwrap_or_default().to_owned();
    let mut start = json!({"Detach": args.detach, "Tty": args.tty});
    if let Some((rows, cols)) = size {
        start["ConsoleSize"] = json!([rows, cols]);
    }
    if args.detach {
        client
            .post_json(&format!("/exec/{id}/start"), &start)
            .await?;
        return Ok(());
    }
    let conn = client
        .upgrade_with(&format!("/exec/{id}/start"), Some(&start))
        .await?;
    let _raw = if args.tty && args.interactive {
        crate::terminal::RawMode::enter(0)
    } else {
        None
    };
    let io = hyper_util::rt::TokioIo::new(conn);
    let (mut reader, mut writer) = tokio::io::split(io);
    if args.interactive {
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
                if writer.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
    }
    if args.tty {
        spawn_resizer(client.clone(), id.clone());
    }
    let mut demux = Demux::default();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if args.tty {
            write_stream(1, &buf[..n]);
        } else {
            for (stream, data) in demux.feed(&buf[..n]) {
                write_stream(stream, &data);
            }
        }
    }
    drop(_raw);
    let info: Value = client.get_json(&format!("/exec/{id}/json")).await?;
    match info["ExitCode"].as_i64().unwrap_or(0) {
        0 => Ok(()),
        code => Err(CliError::Exit((code & 0xff) as u8)),
    }
}

/// Follows the client terminal's size (SIGWINCH) into the exec's pty.
fn spawn_resizer(client: Client, id: String) {
    tokio::spawn(async move {
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        while winch.recv().await.is_some() {
            if let Some((rows, cols)) = crate::terminal::size(1) {
                let _ = client
                    .post(&format!("/exec/{id}/resize?h={rows}&w={cols}"))
                    .await;
            }
        }
    });
}
