//! Image commands that act on images: `rmi`, `tag`, `save`, `load`, `import`, `history`, `image prune`.

use std::fs::File;

use bollard_stubs::models::{HistoryResponseItem, ImageDeleteResponseItem, ImagePruneResponse};
use hyper::Method;
use serde_json::{json, Value};

use super::progress;
use super::{path_escape, rfc3339, short_id, split_tag};
use crate::client::{filters_json, query, read_all, Client, JsonStream, ReqBody};
use crate::error::{os_error_text, CliError};
use crate::format::duration::ago;
use crate::format::size::{human_size, human_size_4};
use crate::format::template::Format;
use crate::output::{confirm, print, stdin_is_terminal, stdout_is_terminal};

/// Flags of `rmi` / `image rm`.
#[derive(Debug, clap::Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    pub no_prune: bool,
    /// Images to remove
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// Removes images, reporting each failure and going on with the rest.
pub async fn rmi(client: &Client, args: RmiArgs) -> Result<(), CliError> {
    let mut params = Vec::new();
    if args.force {
        params.push(("force", "1"));
    }
    if args.no_prune {
        params.push(("noprune", "1"));
    }
    let q = query(&params);
    let mut errors = Vec::new();
    for image in &args.images {
        let path = format!("/images/{}{q}", path_escape(image));
        let result = async {
            let resp = client
                .request(Method::DELETE, &path, ReqBody::Empty, None)
                .await?;
            let body = read_all(resp).await?;
            serde_json::from_slice::<Vec<ImageDeleteResponseItem>>(&body)
                .map_err(|e| CliError::Decode(e.to_string()))
        }
        .await;
        match result {
            Ok(items) => print(&delete_lines(&items))?,
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        eprintln!("{}", errors.join("\n"));
        Err(CliError::Reported)
    }
}

/// `Untagged: x` / `Deleted: sha256:…` lines for a delete answer.
pub fn delete_lines(items: &[ImageDeleteResponseItem]) -> String {
    let mut out = String::new();
    for item in items {
        if let Some(u) = &item.untagged {
            out.push_str(&format!("Untagged: {u}\n"));
        }
        if let Some(d) = &item.deleted {
            out.push_str(&format!("Deleted: {d}\n"));
        }
    }
    out
}

/// Flags of `tag`.
#[derive(Debug, clap::Args)]
pub struct TagArgs {
    /// The existing image
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    /// The new name
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

/// Tags an image.
pub async fn tag(client: &Client, args: TagArgs) -> Result<(), CliError> {
    let (repo, tag) = split_tag(&args.target);
    let path = format!(
        "/images/{}/tag{}",
        path_escape(&args.source),
        query(&[("repo", repo), ("tag", tag.unwrap_or("latest"))])
    );
    client
        .request(Method::POST, &path, ReqBody::Empty, None)
        .await?;
    Ok(())
}

/// Flags of `save`.
#[derive(Debug, clap::Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    pub output: Option<String>,
    /// Images to save
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

/// Streams a tar archive of images to a file or stdout.
pub async fn save(client: &Client, args: SaveArgs) -> Result<(), CliError> {
    use http_body_util::BodyExt;
    use std::io::Write;
    if args.output.is_none() && stdout_is_terminal() {
        return Err(CliError::Io(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect".into(),
        ));
    }
    if let Some(path) = &args.output {
        // Docker checks the directory before asking the daemon for the archive.
        let dir = std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if let Err(e) = std::fs::metadata(dir) {
            return Err(CliError::Io(format!(
                "failed to save image: invalid output path: stat {}: {}",
                dir.display(),
                os_error_text(&e)
            )));
        }
    }
    let names: Vec<(&str, &str)> = args.images.iter().map(|n| ("names", n.as_str())).collect();
    let resp = client
        .request(
            Method::GET,
            &format!("/images/get{}", query(&names)),
            ReqBody::Empty,
            None,
        )
        .await?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(File::create(path).map_err(|e| {
            CliError::Prefixed(format!(
                "failed to save image: unable to create {path}: {e}"
            ))
        })?),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut body = resp.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| CliError::Http(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            out.write_all(&data).map_err(crate::output::stdout_error)?;
        }
    }
    out.flush().map_err(crate::output::stdout_error)?;
    Ok(())
}

/// Flags of `load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long)]
    pub input: Option<String>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

/// Sends a tar archive to the daemon and shows what it loaded.
pub async fn load(client: &Client, args: LoadArgs) -> Result<(), CliError> {
    let body = match &args.input {
        Some(path) => ReqBody::from_reader(
            File::open(path)
                .map_err(|e| CliError::Io(format!("open {path}: {}", os_error_text(&e))))?,
        ),
        None => {
            if stdin_is_terminal() {
                return Err(CliError::Io(
                    "requested load from stdin, but stdin is empty".into(),
                ));
            }
            ReqBody::from_reader(std::io::stdin())
        }
    };
    // As Docker: progress bars only make sense on a terminal, so otherwise ask for quiet output.
    let terminal = stdout_is_terminal();
    let quiet = args.quiet || !terminal;
    let path = format!(
        "/images/load{}",
        query(&[("quiet", if quiet { "1" } else { "0" })])
    );
    let resp = client
        .request(Method::POST, &path, body, Some("application/x-tar"))
        .await?;
    let is_json = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_json {
        progress::display(JsonStream::new(resp), terminal).await?;
    } else {
        let body = read_all(resp).await?;
        print(&String::from_utf8_lossy(&body))?;
    }
    Ok(())
}

/// Flags of `import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long)]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long)]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    pub platform: Option<String>,
    /// A tar file, a URL, or `-` for STDIN
    #[arg(value_name = "file|URL|-")]
    pub source: String,
    /// Name for the new image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// Creates an image from a filesystem tarball and prints its ID.
pub async fn import(client: &Client, args: ImportArgs) -> Result<(), CliError> {
    let is_url = args.source.starts_with("http://") || args.source.starts_with("https://");
    let (body, from_src) = if is_url {
        (ReqBody::Empty, args.source.as_str())
    } else if args.source == "-" {
        (ReqBody::from_reader(std::io::stdin()), "-")
    } else {
        let file = File::open(&args.source)
            .map_err(|e| CliError::Io(format!("open {}: {}", args.source, os_error_text(&e))))?;
        (ReqBody::from_reader(file), "-")
    };
    let mut params: Vec<(&str, &str)> = vec![("fromSrc", from_src)];
    if let Some(reference) = &args.reference {
        let (repo, tag) = split_tag(reference);
        params.push(("repo", repo));
        if let Some(tag) = tag {
            params.push(("tag", tag));
        }
    }
    if let Some(m) = &args.message {
        params.push(("message", m));
    }
    if let Some(p) = &args.platform {
        params.push(("platform", p));
    }
    for c in &args.change {
        params.push(("changes", c));
    }
    let resp = client
        .request(
            Method::POST,
            &format!("/images/create{}", query(&params)),
            body,
            Some("application/x-tar"),
        )
        .await?;
    progress::display(JsonStream::new(resp), stdout_is_terminal()).await?;
    Ok(())
}

/// Flags of `history`.
#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Print sizes and dates in human readable format
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true")]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// The image
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

/// Column titles for `history` templates.
pub const HISTORY_HEADERS: [(&str, &str); 6] = [
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
];

const HISTORY_TABLE: &str = "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}";

/// Shows the layers of an image.
pub async fn history(client: &Client, args: HistoryArgs) -> Result<(), CliError> {
    let items: Vec<HistoryResponseItem> = client
        .get_json(&format!("/images/{}/history", path_escape(&args.image)))
        .await?;
    let format = if args.quiet {
        Format::parse(Some("{{.ID}}"), "")?
    } else {
        Format::parse(args.format.as_deref(), HISTORY_TABLE)?
    };
    let rows = history_rows(&items, args.human, !args.no_trunc);
    let mut headers = HISTORY_HEADERS;
    if !args.human {
        // Docker titles the column by what it shows: absolute dates when not human.
        headers[1] = ("CreatedSince", "CREATED AT");
    }
    print(&format.render(&rows, &headers)?)
}

/// Template data for each history entry, as Docker computes it.
pub fn history_rows(items: &[HistoryResponseItem], human: bool, trunc: bool) -> Vec<Value> {
    items
        .iter()
        .map(|h| {
            let id = if h.id == "<missing>" {
                h.id.clone()
            } else {
                short_id(&h.id, !trunc)
            };
            let created_by = h.created_by.replace('\t', " ");
            let created_by = if trunc {
                ellipsis(&created_by, 45)
            } else {
                created_by
            };
            json!({
                "ID": id,
                "CreatedSince": if human { ago(h.created) } else { rfc3339(h.created) },
                "CreatedAt": rfc3339(h.created),
                "CreatedBy": created_by,
                "Size": if human { human_size(h.size as f64) } else { h.size.to_string() },
                "Comment": h.comment,
            })
        })
        .collect()
}

/// Cuts `s` to `max` characters, the last one replaced by `…`, as Docker's tables do.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Flags of `image prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
}

/// Removes unused images after asking, and reports what was freed.
pub async fn prune(client: &Client, args: PruneArgs) -> Result<(), CliError> {
    let warning = if args.all {
        "WARNING! This will remove all images without at least one container associated to them."
    } else {
        "WARNING! This will remove all dangling images."
    };
    if !args.force && !confirm(&format!("{warning}\nAre you sure you want to continue?"))? {
        return Ok(());
    }
    let mut filters = args.filter.clone();
    filters.push(format!("dangling={}", !args.all));
    let filters = filters_json(&filters)?.unwrap_or_default();
    let resp = client
        .request(
            Method::POST,
            &format!("/images/prune{}", query(&[("filters", &filters)])),
            ReqBody::Empty,
            None,
        )
        .await?;
    let body = read_all(resp).await?;
    let report: ImagePruneResponse =
        serde_json::from_slice(&body).map_err(|e| CliError::Decode(e.to_string()))?;
    print(&prune_report(&report))
}

/// Docker's prune summary: the deleted items, then `Total reclaimed space: …`.
pub fn prune_report(report: &ImagePruneResponse) -> String {
    let mut out = String::new();
    let deleted = report.images_deleted.as_deref().unwrap_or_default();
    if !deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for item in deleted {
            if let Some(u) = &item.untagged {
                out.push_str(&format!("untagged: {u}\n"));
            } else if let Some(d) = &item.deleted {
                out.push_str(&format!("deleted: {d}\n"));
            }
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size_4(report.space_reclaimed.unwrap_or(0) as f64)
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_no_trunc_matches_recorded_docker_output_columns() {
        let recorded = include_str!("testdata/webapp-history.txt");
        let items = vec![HistoryResponseItem {
            id: "sha256:5bc555f7f779ca3ac3c26c0eaa7adb1e84687cb09d6c9745add8065f50874f4b".into(),
            created: 0,
            created_by: String::new(),
            size: 1_985_695,
            comment: "Imported from -".into(),
            tags: vec![],
        }];
        let rows = history_rows(&items, true, false);
        assert_eq!(rows[0]["Size"], "1.99MB");
        let last = recorded.lines().last().unwrap();
        assert!(last.starts_with("sha256:5bc555f7f779"));
        assert!(last.ends_with("1.99MB    Imported from -"));
    }

    #[test]
    fn history_truncates_created_by_to_45_with_ellipsis() {
        let long = "/bin/sh -c #(nop)  HEALTHCHECK &{[\"CMD-SHELL\" \"test -f /srv\"]}";
        let cut = ellipsis(long, 45);
        assert_eq!(cut.chars().count(), 45);
        assert!(cut.ends_with('…'));
        assert_eq!(ellipsis("short", 45), "short");
    }

    #[test]
    fn history_without_human_prints_bytes_and_rfc3339() {
        let items = vec![HistoryResponseItem {
            id: "<missing>".into(),
            size: 310,
            ..Default::default()
        }];
        let rows = history_rows(&items, false, true);
        assert_eq!(rows[0]["ID"], "<missing>");
        assert_eq!(rows[0]["Size"], "310");
    }

    #[test]
    fn delete_lines_print_untagged_then_deleted() {
        let items = vec![
            ImageDeleteResponseItem {
                untagged: Some("busybox:latest".into()),
                deleted: None,
            },
            ImageDeleteResponseItem {
                untagged: None,
                deleted: Some("sha256:aa".into()),
            },
        ];
        assert_eq!(
            delete_lines(&items),
            "Untagged: busybox:latest\nDeleted: sha256:aa\n"
        );
    }

    #[test]
    fn prune_report_lists_items_and_total() {
        let report = ImagePruneResponse {
            images_deleted: Some(vec![ImageDeleteResponseItem {
                untagged: None,
                deleted: Some("sha256:aa".into()),
            }]),
            space_reclaimed: Some(1_234_567),
        };
        assert_eq!(
            prune_report(&report),
            "Deleted Images:\ndeleted: sha256:aa\n\nTotal reclaimed space: 1.235MB\n"
        );
    }
}
