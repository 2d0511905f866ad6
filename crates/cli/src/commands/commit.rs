//! `berth commit` (and `berth container commit`): a container's changes as a new image, with Docker's flags.

use crate::client::{query, read_all, Client};
use crate::error::CliError;
use crate::output::print;

/// Flags of `commit`.
#[derive(Debug, clap::Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set)]
    pub pause: bool,
    /// The container
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// The new image's name
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Commits and prints the new image's ID, as the docker CLI does.
pub async fn commit(client: &Client, args: CommitArgs) -> Result<(), CliError> {
    let (repo, tag) = match args.reference.as_deref() {
        None => (String::new(), String::new()),
        Some(r) => {
            // A tag follows the last ':' that is after the last '/' (a registry's port is not a tag).
            let slash = r.rfind('/').map_or(0, |i| i + 1);
            match r[slash..].rfind(':') {
                Some(i) => (r[..slash + i].to_owned(), r[slash + i + 1..].to_owned()),
                None => (r.to_owned(), String::new()),
            }
        }
    };
    let mut pairs: Vec<(&str, &str)> = vec![
        ("container", args.container.as_str()),
        ("repo", repo.as_str()),
        ("tag", tag.as_str()),
        ("comment", args.message.as_deref().unwrap_or("")),
        ("author", args.author.as_deref().unwrap_or("")),
        ("pause", if args.pause { "1" } else { "0" }),
    ];
    for c in &args.change {
        pairs.push(("changes", c.as_str()));
    }
    // The docker CLI sends no config: `null`.
    let resp = client
        .post_json(
            &format!("/commit{}", query(&pairs)),
            &serde_json::Value::Null,
        )
        .await?;
    let body = read_all(resp).await?;
    let v: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| CliError::Decode(e.to_string()))?;
    print(&format!("{}\n", v["Id"].as_str().unwrap_or_default()))
}
