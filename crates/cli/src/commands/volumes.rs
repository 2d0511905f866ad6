//! `volume create|ls|inspect|rm|prune`, printing what the docker CLI prints.

use std::collections::BTreeMap;

use hyper::Method;
use serde_json::{json, Value};

use super::inspect::render;
use crate::client::{filters_json, query, read_all, Client, ReqBody};
use crate::error::CliError;
use crate::format::size::human_size_4;
use crate::format::template::{Format, Kind};
use crate::output::{confirm, print};

/// `volume` and its subcommands.
#[derive(Debug, clap::Args)]
pub struct VolumeArgs {
    /// The volume subcommand to run.
    #[command(subcommand)]
    pub command: VolumeCommand,
}

/// The subcommands of `volume`.
#[derive(Debug, clap::Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(VolumeCreateArgs),
    /// Display detailed information on one or more volumes
    Inspect(VolumeInspectArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(VolumeLsArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(VolumeRmArgs),
    /// Remove unused local volumes
    Prune(VolumePruneArgs),
}

/// Flags of `volume create`.
#[derive(Debug, clap::Args)]
pub struct VolumeCreateArgs {
    /// Specify volume driver name
    #[arg(short, long, default_value = "local")]
    pub driver: String,
    /// Specify volume name
    #[arg(long, hide = true)]
    pub name: Option<String>,
    /// Set driver specific options
    #[arg(short, long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    /// Set metadata for a volume
    #[arg(long, value_name = "list")]
    pub label: Vec<String>,
    /// The volume's name (a random one when absent)
    #[arg(value_name = "VOLUME")]
    pub volume: Option<String>,
}

/// Flags of `volume ls`.
#[derive(Debug, clap::Args)]
pub struct VolumeLsArgs {
    /// Only display volume names
    #[arg(short, long)]
    pub quiet: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
}

/// Flags of `volume inspect`.
#[derive(Debug, clap::Args)]
pub struct VolumeInspectArgs {
    /// Format output using a custom template ('json' or a Go template)
    #[arg(short, long)]
    pub format: Option<String>,
    /// Volumes to inspect
    #[arg(value_name = "VOLUME", required = true)]
    pub volumes: Vec<String>,
}

/// Flags of `volume rm`.
#[derive(Debug, clap::Args)]
pub struct VolumeRmArgs {
    /// Force the removal of one or more volumes
    #[arg(short, long)]
    pub force: bool,
    /// Volumes to remove
    #[arg(value_name = "VOLUME", required = true)]
    pub volumes: Vec<String>,
}

/// Flags of `volume prune`.
#[derive(Debug, clap::Args)]
pub struct VolumePruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Runs a `volume` subcommand.
pub async fn run(client: &Client, args: VolumeArgs) -> Result<(), CliError> {
    match args.command {
        VolumeCommand::Create(a) => create(client, a).await,
        VolumeCommand::Inspect(a) => inspect(client, a).await,
        VolumeCommand::Ls(a) => ls(client, a).await,
        VolumeCommand::Rm(a) => rm(client, a).await,
        VolumeCommand::Prune(a) => prune(client, a).await,
    }
}

/// `k=v` flags as a map; a flag without `=` maps to an empty value (as Docker's map options do).
fn key_values(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|i| match i.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (i.clone(), String::new()),
        })
        .collect()
}

async fn create(client: &Client, args: VolumeCreateArgs) -> Result<(), CliError> {
    let name = match (&args.name, &args.volume) {
        (Some(_), Some(_)) => {
            return Err(CliError::WithStatus(
                "conflicting options: cannot specify a volume-name through both --name and as a positional arg".into(),
                1,
            ))
        }
        (Some(n), None) | (None, Some(n)) => n.clone(),
        (None, None) => String::new(),
    };
    // The docker CLI leaves empty fields out of the request (so labels and options show as `null`).
    let mut body = serde_json::Map::new();
    if !args.driver.is_empty() {
        body.insert("Driver".into(), json!(args.driver));
    }
    if !name.is_empty() {
        body.insert("Name".into(), json!(name));
    }
    if !args.opt.is_empty() {
        body.insert("DriverOpts".into(), json!(key_values(&args.opt)));
    }
    if !args.label.is_empty() {
        body.insert("Labels".into(), json!(key_values(&args.label)));
    }
    let resp = client
        .post_json("/volumes/create", &Value::Object(body))
        .await?;
    let v: Value = serde_json::from_slice(&read_all(resp).await?)
        .map_err(|e| CliError::Decode(e.to_string()))?;
    print(&format!("{}\n", v["Name"].as_str().unwrap_or_default()))
}

/// Column titles for `volume ls` templates.
const HEADERS: [(&str, &str); 11] = [
    ("ID", "ID"),
    ("Name", "VOLUME NAME"),
    ("Group", "GROUP"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
    ("Availability", "AVAILABILITY"),
    ("Mountpoint", "MOUNTPOINT"),
    ("Labels", "LABELS"),
    ("Links", "LINKS"),
    ("Size", "SIZE"),
    ("Status", "STATUS"),
];

async fn ls(client: &Client, args: VolumeLsArgs) -> Result<(), CliError> {
    let filters = filters_json(&args.filter)?;
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(f) = &filters {
        params.push(("filters", f));
    }
    let list: Value = client
        .get_json(&format!("/volumes{}", query(&params)))
        .await?;
    let mut volumes: Vec<Value> = list["Volumes"].as_array().cloned().unwrap_or_default();
    volumes.sort_by(|a, b| {
        natural_cmp(
            a["Name"].as_str().unwrap_or_default(),
            b["Name"].as_str().unwrap_or_default(),
        )
    });
    let source = args.format.as_deref().unwrap_or("");
    let format = match source {
        "" | "table" if args.quiet => Format::parse(Some("{{.Name}}"), "")?,
        _ => Format::parse_as(Some(source), "{{.Driver}}\t{{.Name}}", Kind::VOLUMES)?,
    };
    let rows: Vec<Value> = volumes.iter().map(row).collect();
    print(&format.render(&rows, &HEADERS)?)
}

/// A volume's fields as `volume ls` templates see them.
fn row(v: &Value) -> Value {
    let mut labels: Vec<String> = v["Labels"]
        .as_object()
        .map(|l| {
            l.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    labels.sort();
    let usage = v.get("UsageData").filter(|u| u.is_object());
    json!({
        "Availability": "N/A",
        "Driver": v["Driver"],
        "Group": "N/A",
        "Labels": labels.join(","),
        "Links": usage.map_or("N/A".to_owned(), |u| u["RefCount"].to_string()),
        "Mountpoint": v["Mountpoint"],
        "Name": v["Name"],
        "Scope": v["Scope"],
        "Size": usage.map_or("N/A".to_owned(), |u| human_size_4(u["Size"].as_f64().unwrap_or(0.0))),
        "Status": "N/A",
    })
}

/// Natural order (`vol2` before `vol10`), as the docker CLI sorts volume names.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let ord = match (x, y) {
            ((true, x), (true, y)) => {
                let (xt, yt) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                xt.len().cmp(&yt.len()).then_with(|| xt.cmp(yt))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if ord != std::cmp::Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

async fn inspect(client: &Client, args: VolumeInspectArgs) -> Result<(), CliError> {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for name in &args.volumes {
        match client
            .get_bytes(&format!("/volumes/{}", super::path_escape(name)))
            .await
        {
            Ok(raw) => found.push(raw),
            Err(e) => errors.push(e.to_string()),
        }
    }
    print(&render(&found, args.format.as_deref())?)?;
    if errors.is_empty() {
        return Ok(());
    }
    eprintln!("{}", errors.join("\n"));
    Err(CliError::Reported)
}

async fn rm(client: &Client, args: VolumeRmArgs) -> Result<(), CliError> {
    let q = if args.force {
        query(&[("force", "1")])
    } else {
        String::new()
    };
    let mut errors = Vec::new();
    for name in &args.volumes {
        let path = format!("/volumes/{}{q}", super::path_escape(name));
        match client
            .request(Method::DELETE, &path, ReqBody::Empty, None)
            .await
        {
            Ok(_) => print(&format!("{name}\n"))?,
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    eprintln!("{}", errors.join("\n"));
    Err(CliError::Reported)
}

async fn prune(client: &Client, args: VolumePruneArgs) -> Result<(), CliError> {
    let mut filters = args.filter.clone();
    let warning = if args.all {
        if filters.iter().any(|f| f.split('=').next() == Some("all")) {
            return Err(CliError::WithStatus(
                "conflicting options: cannot specify both --all and --filter all=1".into(),
                1,
            ));
        }
        filters.push("all=true".into());
        "WARNING! This will remove all local volumes not used by at least one container."
    } else {
        "WARNING! This will remove anonymous local volumes not used by at least one container."
    };
    if !args.force && !confirm(&format!("{warning}\nAre you sure you want to continue?"))? {
        return Ok(());
    }
    let filters = filters_json(&filters)?;
    let mut params: Vec<(&str, &str)> = Vec::new();
    if let Some(f) = &filters {
        params.push(("filters", f));
    }
    let resp = client
        .request(
            Method::POST,
            &format!("/volumes/prune{}", query(&params)),
            ReqBody::Empty,
            None,
        )
        .await?;
    let report: Value = serde_json::from_slice(&read_all(resp).await?)
        .map_err(|e| CliError::Decode(e.to_string()))?;
    print(&prune_report(&report))
}

/// `Deleted Volumes:` and the names (a blank line after), then `Total reclaimed space: …`.
fn prune_report(report: &Value) -> String {
    let deleted: Vec<&str> = report["VolumesDeleted"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = String::new();
    let mut reclaimed = 0.0;
    if !deleted.is_empty() {
        out.push_str("Deleted Volumes:\n");
        for d in &deleted {
            out.push_str(d);
            out.push('\n');
        }
        out.push('\n');
        reclaimed = report["SpaceReclaimed"].as_f64().unwrap_or(0.0);
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size_4(reclaimed)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_naturally() {
        let mut v = vec!["vol10", "vol2", "a", "vol1", "B"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, ["B", "a", "vol1", "vol2", "vol10"]);
    }

    #[test]
    fn rows_join_sorted_labels_and_say_na_without_usage() {
        let v = json!({"Driver": "local", "Name": "x", "Labels": {"b": "2", "a": ""}, "Scope": "local", "Mountpoint": "/m"});
        let r = row(&v);
        assert_eq!(r["Labels"], "a=,b=2");
        assert_eq!(r["Links"], "N/A");
        assert_eq!(r["Size"], "N/A");
    }

    #[test]
    fn prune_report_matches_docker() {
        let r = json!({"VolumesDeleted": ["a", "b"], "SpaceReclaimed": 3});
        assert_eq!(
            prune_report(&r),
            "Deleted Volumes:\na\nb\n\nTotal reclaimed space: 3B\n"
        );
        let none = json!({"VolumesDeleted": [], "SpaceReclaimed": 0});
        assert_eq!(prune_report(&none), "Total reclaimed space: 0B\n");
    }
}
