//! `exec`: run a command in a running container, as the docker CLI does — create the exec instance,
//! start it on a hijacked connection (or detached), copy its streams, and exit with its exit code.

use serde_json::{json, Value};

use super::path_escape;
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

/// Runs `exec`.
pub async fn exec(client: &Client, args: ExecArgs) -> Result<(), CliError> {
    if args.tty && args.interactive && !args.detach && !stdin_is_terminal() {
        return Err(CliError::WithStatus(
            "the input device is not a TTY".to_string(),
            1,
        ));
    }
    let env = super::run::env_list(&args.env_file, &args.env)?;
    let size = if args.tty {
        stdio::terminal::size(1)
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
    let ended = super::session::run(
        client,
        conn,
        super::session::Session {
            stdin: args.interactive,
            tty: args.tty,
            detach_keys: args.detach_keys.clone(),
            resize: Some(format!("/exec/{id}/resize")),
            // exec processes cannot be signalled through the API: the docker CLI proxies nothing here.
            signals: None,
        },
    )
    .await?;
    if ended == super::session::Ended::Detached {
        // The docker CLI reports the detach as an error (status 1).
        return Err(CliError::Io(super::session::DETACHED.to_string()));
    }
    let info: Value = client.get_json(&format!("/exec/{id}/json")).await?;
    match info["ExitCode"].as_i64().unwrap_or(0) {
        0 => Ok(()),
        code => Err(CliError::Exit((code & 0xff) as u8)),
    }
}
