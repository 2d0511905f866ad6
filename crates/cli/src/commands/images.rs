//! `images` / `image ls`: one row per repository tag, newest image first.

use bollard_stubs::models::ImageSummary;
use serde_json::{json, Value};

use super::{familiar_name, go_time_string, short_id, split_tag};
use crate::client::{filters_json, query, Client};
use crate::error::CliError;
use crate::format::duration::ago;
use crate::format::size::{human_size, human_size_4};
use crate::format::template::{Format, Kind};
use crate::output::print;

/// Flags of `images` / `image ls`.
#[derive(Debug, clap::Args)]
pub struct ImagesArgs {
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    /// Filter output based on conditions provided
    #[arg(short, long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
    #[arg(long)]
    pub format: Option<String>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Only list images of this repository (and tag)
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

/// Column titles for `images` templates.
pub const HEADERS: [(&str, &str); 11] = [
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("Containers", "CONTAINERS"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "SIZE"),
];

const DEFAULT_TABLE: &str = "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";
const DIGEST_TABLE: &str =
    "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}";

/// Lists images.
pub async fn run(client: &Client, args: ImagesArgs) -> Result<(), CliError> {
    let mut filters = args.filter.clone();
    if let Some(reference) = &args.repository {
        filters.push(format!("reference={reference}"));
    }
    let filters = filters_json(&filters)?;
    let mut params: Vec<(&str, &str)> = Vec::new();
    if args.all {
        params.push(("all", "1"));
    }
    if let Some(f) = &filters {
        params.push(("filters", f));
    }
    let mut images: Vec<ImageSummary> = client
        .get_json(&format!("/images/json{}", query(&params)))
        .await?;
    let format = if args.quiet {
        Format::parse(Some("{{.ID}}"), "")?
    } else {
        let default = if args.digests {
            DIGEST_TABLE
        } else {
            DEFAULT_TABLE
        };
        Format::parse_as(args.format.as_deref(), default, Kind::IMAGES)?
    };
    sort_newest_first(&mut images);
    let rows = rows(&images, args.digests, !args.no_trunc);
    print(&format.render(&rows, &HEADERS)?)
}

/// Orders images as Docker lists them: most recently created first.
pub fn sort_newest_first(images: &mut [ImageSummary]) {
    images.sort_by_key(|i| std::cmp::Reverse(i.created));
}

/// Expands images into Docker's rows (one per repository tag, digest rows when asked) as template data.
pub fn rows(images: &[ImageSummary], show_digests: bool, trunc: bool) -> Vec<Value> {
    let mut rows = Vec::new();
    for image in images {
        // Repositories in first-seen order with their tags and digests.
        let mut repos: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        fn entry(repos: &mut Vec<(String, Vec<String>, Vec<String>)>, repo: &str) -> usize {
            match repos.iter().position(|(r, _, _)| r == repo) {
                Some(i) => i,
                None => {
                    repos.push((repo.to_string(), Vec::new(), Vec::new()));
                    repos.len() - 1
                }
            }
        }
        for tag_ref in &image.repo_tags {
            if let (name, Some(tag)) = split_tag(tag_ref) {
                if name == "<none>" {
                    continue;
                }
                let i = entry(&mut repos, familiar_name(name));
                repos[i].1.push(tag.to_string());
            }
        }
        for digest_ref in &image.repo_digests {
            if let Some((name, digest)) = digest_ref.split_once('@') {
                if name == "<none>" {
                    continue;
                }
                let i = entry(&mut repos, familiar_name(name));
                repos[i].2.push(digest.to_string());
            }
        }
        if repos.is_empty() {
            rows.push(row(image, "<none>", "<none>", "<none>", trunc));
            continue;
        }
        for (repo, tags, digests) in &repos {
            if tags.is_empty() {
                if show_digests {
                    for d in digests {
                        rows.push(row(image, repo, "<none>", d, trunc));
                    }
                } else {
                    rows.push(row(image, repo, "<none>", "<none>", trunc));
                }
                continue;
            }
            for tag in tags {
                if show_digests && !digests.is_empty() {
                    for d in digests {
                        rows.push(row(image, repo, tag, d, trunc));
                    }
                } else {
                    rows.push(row(image, repo, tag, "<none>", trunc));
                }
            }
        }
    }
    rows
}

fn row(image: &ImageSummary, repo: &str, tag: &str, digest: &str, trunc: bool) -> Value {
    let na_or = |v: i64, f: &dyn Fn(i64) -> String| {
        if v < 0 {
            "N/A".to_string()
        } else {
            f(v)
        }
    };
    let unique = if image.size < 0 || image.shared_size < 0 {
        "N/A".to_string()
    } else {
        human_size_4((image.size - image.shared_size) as f64)
    };
    json!({
        "Containers": na_or(image.containers, &|v| v.to_string()),
        "CreatedAt": go_time_string(image.created),
        "CreatedSince": ago(image.created),
        "Digest": digest,
        "ID": short_id(&image.id, !trunc),
        "Repository": repo,
        "SharedSize": na_or(image.shared_size, &|v| human_size_4(v as f64)),
        "Size": human_size(image.size as f64),
        "Tag": tag,
        "UniqueSize": unique,
        "VirtualSize": human_size_4(image.virtual_size.unwrap_or(image.size) as f64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded() -> Vec<ImageSummary> {
        let raw = include_str!("testdata/images-json.json");
        serde_json::from_str(raw).unwrap()
    }

    #[test]
    fn recorded_images_render_as_docker_table_apart_from_age() {
        let mut images = recorded();
        sort_newest_first(&mut images);
        let rows = rows(&images, false, true);
        let format = Format::parse(
            Some("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.Size}}"),
            "",
        )
        .unwrap();
        assert_eq!(
            format.render(&rows, &HEADERS).unwrap(),
            "REPOSITORY          TAG       IMAGE ID       SIZE\n\
             anchor/multilayer   1         b1072d5798ac   2.12MB\n\
             busybox             latest    5bc555f7f779   1.99MB\n"
        );
    }

    #[test]
    fn untagged_image_shows_none_and_no_trunc_keeps_full_id() {
        let image = ImageSummary {
            id: "sha256:abcdef0123456789".into(),
            created: 1,
            size: 0,
            shared_size: -1,
            containers: -1,
            ..Default::default()
        };
        let rows = rows(&[image], false, false);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["Repository"], "<none>");
        assert_eq!(rows[0]["Tag"], "<none>");
        assert_eq!(rows[0]["ID"], "sha256:abcdef0123456789");
        assert_eq!(rows[0]["Containers"], "N/A");
    }

    #[test]
    fn one_row_per_tag_and_digest_rows_only_with_digests_flag() {
        let image = ImageSummary {
            id: "sha256:aa".into(),
            repo_tags: vec!["a:1".into(), "a:2".into(), "b:latest".into()],
            repo_digests: vec!["a@sha256:dd".into(), "c@sha256:ee".into()],
            ..Default::default()
        };
        let plain = rows(std::slice::from_ref(&image), false, true);
        let tags: Vec<String> = plain
            .iter()
            .map(|r| format!("{}:{}:{}", r["Repository"], r["Tag"], r["Digest"]).replace('"', ""))
            .collect();
        assert_eq!(
            tags,
            [
                "a:1:<none>",
                "a:2:<none>",
                "b:latest:<none>",
                "c:<none>:<none>"
            ]
        );
        let with_digests = rows(&[image], true, true);
        assert_eq!(with_digests[0]["Digest"], "sha256:dd");
        assert_eq!(with_digests[3]["Digest"], "sha256:ee");
    }
}
