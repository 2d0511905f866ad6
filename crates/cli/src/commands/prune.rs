//! `system prune`, `container prune` and `builder prune`, worded as the docker CLI words them: a
//! confirmation listing what goes, a `Deleted …:` section per kind, and `Total reclaimed space:`.

use serde_json::Value;

use crate::client::{filters_json, query, read_all, Client};
use crate::error::CliError;
use crate::format::size::human_size_4;
use crate::output::{confirm, print};

/// Flags of `container prune`.
#[derive(Debug, clap::Args)]
pub struct ContainerPruneArgs {
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Flags of `system prune`.
#[derive(Debug, clap::Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
}

/// `builder` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct BuilderArgs {
    /// The builder subcommand to run.
    #[command(subcommand)]
    pub command: BuilderCommand,
}

/// The subcommands of `builder`.
#[derive(Debug, clap::Subcommand)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune(BuilderPruneArgs),
}

/// Flags of `builder prune`.
#[derive(Debug, clap::Args)]
pub struct BuilderPruneArgs {
    /// Remove all unused build cache, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "until=24h")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Amount of disk space to keep for cache
    #[arg(long = "keep-storage", value_name = "bytes")]
    pub keep_storage: Option<String>,
}

/// What one kind of prune freed, and its `Deleted …:` section (empty when nothing went).
struct Pruned {
    space: u64,
    output: String,
}

async fn post(client: &Client, path: &str, params: &[(&str, &str)]) -> Result<Value, CliError> {
    let resp = client.post(&format!("{path}{}", query(params))).await?;
    serde_json::from_slice(&read_all(resp).await?).map_err(|e| CliError::Decode(e.to_string()))
}

fn section(title: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let mut out = format!("{title}\n");
    for i in items {
        out.push_str(i);
        out.push('\n');
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn space(v: &Value) -> u64 {
    v["SpaceReclaimed"].as_u64().unwrap_or(0)
}

async fn containers(client: &Client, filters: &[String]) -> Result<Pruned, CliError> {
    let f = filters_json(filters)?;
    let params: Vec<(&str, &str)> = f.iter().map(|f| ("filters", f.as_str())).collect();
    let r = post(client, "/containers/prune", &params).await?;
    Ok(Pruned {
        space: space(&r),
        output: section("Deleted Containers:", &strings(&r["ContainersDeleted"])),
    })
}

async fn networks(client: &Client, filters: &[String]) -> Result<Pruned, CliError> {
    let f = filters_json(filters)?;
    let params: Vec<(&str, &str)> = f.iter().map(|f| ("filters", f.as_str())).collect();
    let r = post(client, "/networks/prune", &params).await?;
    Ok(Pruned {
        space: 0,
        output: section("Deleted Networks:", &strings(&r["NetworksDeleted"])),
    })
}

async fn volumes(client: &Client, filters: &[String]) -> Result<Pruned, CliError> {
    let f = filters_json(filters)?;
    let params: Vec<(&str, &str)> = f.iter().map(|f| ("filters", f.as_str())).collect();
    let r = post(client, "/volumes/prune", &params).await?;
    Ok(Pruned {
        space: space(&r),
        output: section("Deleted Volumes:", &strings(&r["VolumesDeleted"])),
    })
}

async fn images(client: &Client, filters: &[String], all: bool) -> Result<Pruned, CliError> {
    let mut filters = filters.to_vec();
    filters.push(format!("dangling={}", !all));
    let f = filters_json(&filters)?.unwrap_or_default();
    let r = post(client, "/images/prune", &[("filters", &f)]).await?;
    let items: Vec<String> = r["ImagesDeleted"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| {
                    if let Some(u) = i["Untagged"].as_str().filter(|s| !s.is_empty()) {
                        Some(format!("untagged: {u}"))
                    } else {
                        i["Deleted"]
                            .as_str()
                            .filter(|s| !s.is_empty())
                            .map(|d| format!("deleted: {d}"))
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Pruned {
        space: space(&r),
        output: section("Deleted Images:", &items),
    })
}

async fn build_cache(
    client: &Client,
    filters: &[String],
    all: bool,
    keep: Option<&str>,
) -> Result<Pruned, CliError> {
    let f = filters_json(filters)?;
    let mut params: Vec<(&str, &str)> = f.iter().map(|f| ("filters", f.as_str())).collect();
    if all {
        params.push(("all", "1"));
    }
    if let Some(k) = keep {
        params.push(("keep-storage", k));
    }
    let r = post(client, "/build/prune", &params).await?;
    Ok(Pruned {
        space: space(&r),
        output: section(
            "Deleted build cache objects:",
            &strings(&r["CachesDeleted"]),
        ),
    })
}

fn total(space: u64) -> String {
    format!("Total reclaimed space: {}\n", human_size_4(space as f64))
}

/// The docker CLI prints each section with `Println`: the section's own last newline, then a blank line.
fn report(p: &Pruned) -> String {
    if p.output.is_empty() {
        String::new()
    } else {
        format!("{}\n", p.output)
    }
}

/// `container prune`.
pub async fn container_prune(client: &Client, a: ContainerPruneArgs) -> Result<(), CliError> {
    if !a.force
        && !confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )?
    {
        return Ok(());
    }
    let p = containers(client, &a.filter).await?;
    print(&format!("{}{}", report(&p), total(p.space)))
}

/// `builder prune`.
pub async fn builder_prune(client: &Client, a: BuilderPruneArgs) -> Result<(), CliError> {
    let warning = if a.all {
        "WARNING! This will remove all build cache. Are you sure you want to continue?"
    } else {
        "WARNING! This will remove all dangling build cache. Are you sure you want to continue?"
    };
    if !a.force && !confirm(warning)? {
        return Ok(());
    }
    let p = build_cache(client, &a.filter, a.all, a.keep_storage.as_deref()).await?;
    print(&format!("{}{}", report(&p), total(p.space)))
}

/// The confirmation of `system prune`: what will go, and the filters that limit it.
fn system_warning(a: &SystemPruneArgs) -> String {
    let mut warnings = vec![
        "all stopped containers",
        "all networks not used by at least one container",
    ];
    if a.volumes {
        warnings.push("all anonymous volumes not used by at least one container");
    }
    warnings.push(if a.all {
        "all images without at least one container associated to them"
    } else {
        "all dangling images"
    });
    warnings.push(if a.all {
        "all build cache"
    } else {
        "unused build cache"
    });
    let mut out = String::from("WARNING! This will remove:");
    for w in warnings {
        out.push_str("\n  - ");
        out.push_str(w);
    }
    out.push('\n');
    // The docker CLI lists only these filters, naturally sorted.
    let mut shown: Vec<&str> = a
        .filter
        .iter()
        .filter(|f| {
            let key = f.split_once('=').map_or(f.as_str(), |(k, _)| k);
            matches!(key, "label" | "label!" | "until")
        })
        .map(String::as_str)
        .collect();
    shown.sort();
    if !shown.is_empty() {
        out.push_str("\n  Items to be pruned will be filtered with:");
        for f in shown {
            out.push_str("\n  - ");
            out.push_str(f);
        }
        out.push('\n');
    }
    out.push_str("\nAre you sure you want to continue?");
    out
}

/// Whether an error is the daemon saying it does not do this (501), which `system prune` passes over.
fn not_implemented(e: &CliError) -> bool {
    matches!(e, CliError::Daemon { status: 501, .. })
}

/// `system prune`: containers, networks, volumes (with `--volumes`), images and build cache.
pub async fn system_prune(client: &Client, a: SystemPruneArgs) -> Result<(), CliError> {
    if a.volumes
        && a.filter
            .iter()
            .any(|f| f.split('=').next() == Some("until"))
    {
        return Err(CliError::WithStatus(
            "ERROR: The \"until\" filter is not supported with \"--volumes\"".into(),
            1,
        ));
    }
    if !a.force && !confirm(&system_warning(&a))? {
        return Ok(());
    }
    let mut space = 0;
    let mut out = String::new();
    let mut add = |r: Result<Pruned, CliError>| -> Result<(), CliError> {
        match r {
            Ok(p) => {
                space += p.space;
                out.push_str(&report(&p));
                Ok(())
            }
            Err(e) if not_implemented(&e) => Ok(()),
            Err(e) => Err(e),
        }
    };
    add(containers(client, &a.filter).await)?;
    add(networks(client, &a.filter).await)?;
    if a.volumes {
        add(volumes(client, &a.filter).await)?;
    }
    add(images(client, &a.filter, a.all).await)?;
    add(build_cache(client, &a.filter, a.all, None).await)?;
    out.push_str(&total(space));
    print(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_warning_is_dockers_text() {
        let a = SystemPruneArgs {
            all: false,
            filter: vec![],
            force: false,
            volumes: false,
        };
        assert_eq!(
            system_warning(&a),
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue?"
        );
        let a = SystemPruneArgs {
            all: true,
            filter: vec!["label=a=b".into(), "dangling=true".into()],
            force: false,
            volumes: true,
        };
        assert_eq!(
            system_warning(&a),
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all anonymous volumes not used by at least one container\n  - all images without at least one container associated to them\n  - all build cache\n\n  Items to be pruned will be filtered with:\n  - label=a=b\n\nAre you sure you want to continue?"
        );
    }
}
