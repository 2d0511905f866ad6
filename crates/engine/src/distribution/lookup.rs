//! Registry look-ups that store nothing: `GET /images/search` (the registry's v1 search, as
//! `docker search`) and `GET /distribution/{name}/json` (a reference's descriptor and platforms, as
//! buildx and `docker service create` ask for them).

use image::Reference;
use registry::Manifest;
use serde::Serialize;

use super::{parse_auth, registry_error};
use crate::error::{Error, Result};
use crate::filters::Filters;
use crate::Engine;

/// `GET /distribution/{name}/json`: the manifest's descriptor and the platforms it serves.
#[derive(Clone, Debug, Serialize)]
pub struct DistributionInspect {
    /// The manifest (or index) the name resolves to.
    #[serde(rename = "Descriptor")]
    pub descriptor: serde_json::Value,
    /// Every platform: an index's entries, or the image config's own.
    #[serde(rename = "Platforms")]
    pub platforms: Vec<serde_json::Value>,
}

impl Engine {
    /// `GET /images/search?term=&limit=&filters=`. The registry is the term's first component when
    /// that looks like a host (`127.0.0.1:5000/x`, as dockerd splits it), else docker.io.
    pub async fn search_images(
        &self,
        term: &str,
        limit: Option<u32>,
        filters: Filters,
        auth: Option<&str>,
    ) -> Result<Vec<registry::SearchResult>> {
        filters.validate(&["is-automated", "is-official", "stars"])?;
        let limit = limit.unwrap_or(25);
        if !(1..=100).contains(&limit) {
            return Err(Error::InvalidParameter(format!(
                "limit {limit} is outside the range of [1, 100]"
            )));
        }
        let min_stars = match filters.get("stars").last() {
            Some(s) => s
                .parse::<u64>()
                .map_err(|_| Error::InvalidParameter(format!("invalid filter 'stars={s}'")))?,
            None => 0,
        };
        let official = filters.bool("is-official")?;
        let automated = filters.bool("is-automated")?;
        let (domain, remote) = match term.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_ascii_lowercase(), rest.to_string())
            }
            _ => ("docker.io".to_string(), term.to_string()),
        };
        let auth = parse_auth(auth)?;
        let found = self
            .registry
            .search(&domain, &remote, limit, auth)
            .await
            .map_err(registry_error)?;
        Ok(found
            .results
            .into_iter()
            .filter(|r| r.star_count >= min_stars)
            .filter(|r| official.is_none_or(|o| o == r.is_official))
            .filter(|r| automated.is_none_or(|a| a == r.is_automated))
            .collect())
    }

    /// `GET /distribution/{name}/json`.
    pub async fn distribution_inspect(
        &self,
        name: &str,
        auth: Option<&str>,
    ) -> Result<DistributionInspect> {
        let r = Reference::parse_normalized(name)?;
        let auth = parse_auth(auth)?;
        let s = self
            .registry
            .session(r.domain(), auth)
            .await
            .map_err(registry_error)?;
        let wanted = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, t) => t.unwrap_or(image::reference::DEFAULT_TAG).to_string(),
        };
        let m = s
            .get_manifest(r.path(), &wanted)
            .await
            .map_err(registry_error)?;
        let platforms = match &m.manifest {
            Manifest::Index(idx) => idx
                .manifests
                .iter()
                .filter_map(|d| d.platform.as_ref())
                .filter_map(|p| serde_json::to_value(p).ok())
                .collect(),
            Manifest::Image(im) => {
                let config = s
                    .fetch_blob_bytes(r.path(), &im.config.digest, Some(im.config.size))
                    .await
                    .map_err(registry_error)?;
                let c: serde_json::Value = serde_json::from_slice(&config).map_err(|e| {
                    Error::InvalidParameter(format!(
                        "invalid image config {}: {e}",
                        im.config.digest
                    ))
                })?;
                let mut p = serde_json::json!({"architecture": c["architecture"], "os": c["os"]});
                if let Some(v) = c["variant"].as_str() {
                    p["variant"] = v.into();
                }
                vec![p]
            }
        };
        let descriptor = serde_json::json!({
            "mediaType": m.media_type,
            "digest": m.digest,
            "size": m.bytes.len(),
        });
        Ok(DistributionInspect {
            descriptor,
            platforms,
        })
    }
}
