//! `attach`: the container's output (and input) on this terminal until it exits or the user detaches, as the
//! docker CLI does it.

use serde_json::Value;

use super::path_escape;
use super::session::{Ended, Session, DETACHED};
use crate::client::{query, read_all, Client};
use crate::error::CliError;

/// Flags of `attach`.
#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub sig_proxy: bool,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

/// Runs `attach`.
pub async fn attach(client: &Client, args: AttachArgs) -> Result<(), CliError> {
    let escaped = path_escape(&args.container);
    let info: Value = client
        .get_json(&format!("/containers/{escaped}/json"))
        .await?;
    let state = &info["State"];
    if state["Running"] != true {
        return Err(CliError::Io(
            "cannot attach to a stopped container, start it first".into(),
        ));
    }
    if state["Paused"] == true {
        return Err(CliError::Io(
            "cannot attach to a paused container, unpause it first".into(),
        ));
    }
    if state["Restarting"] == true {
        return Err(CliError::Io(
            "cannot attach to a restarting container, wait until it is running".into(),
        ));
    }
    let tty = info["Config"]["Tty"] == true;
    let stdin = !args.no_stdin && info["Config"]["OpenStdin"] == true;
    if stdin && tty && !crate::output::stdin_is_terminal() {
        return Err(CliError::Io("the input device is not a TTY".into()));
    }
    let wait = client
        .post(&format!(
            "/containers/{escaped}/wait{}",
            query(&[("condition", "not-running")])
        ))
        .await?;
    let mut params = vec![("stream", "1"), ("stdout", "1"), ("stderr", "1")];
    if stdin {
        params.push(("stdin", "1"));
    }
    if let Some(k) = args.detach_keys.as_deref().filter(|k| !k.is_empty()) {
        params.push(("detachKeys", k));
    }
    let conn = client
        .upgrade(&format!("/containers/{escaped}/attach{}", query(&params)))
        .await?;
    let session = Session {
        stdin,
        tty,
        detach_keys: args.detach_keys.clone(),
        resize: Some(format!("/containers/{escaped}/resize")),
        signals: args
            .sig_proxy
            .then(|| format!("/containers/{escaped}/kill")),
    };
    if super::session::run(client, conn, session).await? == Ended::Detached {
        // The docker CLI reports the detach as an error (status 1).
        return Err(CliError::Io(DETACHED.into()));
    }
    let answer: Value = serde_json::from_slice(&read_all(wait).await?).unwrap_or(Value::Null);
    if let Some(msg) = answer["Error"]["Message"]
        .as_str()
        .filter(|m| !m.is_empty())
    {
        return Err(CliError::Io(msg.to_owned()));
    }
    match answer["StatusCode"].as_i64().unwrap_or(0) {
        0 => Ok(()),
        code => Err(CliError::Exit((code & 0xff) as u8)),
    }
}
