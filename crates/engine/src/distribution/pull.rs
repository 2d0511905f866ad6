//! `POST /images/create?fromImage=…`: resolve the reference, pick the platform's manifest, fetch the
//! config, then the missing layers several at a time, each streamed from the socket through the
//! digest check into the image store's unpacker (and, for a compressed layer, its blob writer) in
//! one pass; commit when all are in.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use image::{Digest, PulledImage, PulledLayer, Reference};
use registry::{Manifest, PlatformSpec, Session};

use super::{parse_auth, registry_error, send, Progress, ProgressSender};
use crate::error::{Error, Result};
use crate::Engine;

/// Layers fetched at the same time. dockerd fetches 3; on a fast link more keep the disk busy
/// while one layer waits for its first bytes.
const CONCURRENT_LAYERS: usize = 6;
/// How often a layer's `Downloading` line is sent at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What `POST /images/create?fromImage=…` asks for.
#[derive(Debug, Default, Clone)]
pub struct PullRequest {
    /// `fromImage`: a name, maybe with a tag or digest.
    pub image: String,
    /// `tag`: a tag or a digest; empty means the one in `image`, else `latest`.
    pub tag: Option<String>,
    /// `platform` (`linux/arm64`); empty means this host's.
    pub platform: Option<String>,
    /// The `X-Registry-Auth` header.
    pub auth: Option<String>,
    /// Pull every tag of the repository (`docker pull --all-tags`).
    pub all_tags: bool,
}

impl PullRequest {
    /// The reference to pull, normalised as Docker does (`busybox` → `docker.io/library/busybox:latest`).
    fn reference(&self) -> Result<Reference> {
        let named = Reference::parse_normalized_named(&self.image)?;
        Ok(match self.tag.as_deref().filter(|t| !t.is_empty()) {
            Some(t) => match t.parse::<Digest>() {
                Ok(d) => named.with_digest(&d),
                Err(_) => Reference::parse_normalized(&format!("{}:{t}", named.name()))?,
            },
            None if named.tag().is_some() || named.digest().is_some() => named,
            None => Reference::parse_normalized(&named.name())?,
        })
    }
}

impl Engine {
    /// Pulls an image, sending dockerd's progress lines to `tx`. An error before the first line
    /// (a name that does not resolve, refused credentials) is for the caller to answer with a status.
    pub async fn pull_image(&self, req: PullRequest, tx: ProgressSender) -> Result<()> {
        let auth = parse_auth(req.auth.as_deref())?;
        let asked = match req.platform.as_deref().filter(|p| !p.is_empty()) {
            Some(p) => Some(PlatformSpec::parse(p).map_err(registry_error)?),
            None => None,
        };
        let named = Reference::parse_normalized_named(&req.image)?;
        let session = self
            .registry
            .session(named.domain(), auth)
            .await
            .map_err(|e| pull_error(&named, e))?;
        if req.all_tags && named.tag().is_none() && named.digest().is_none() {
            let tags = session
                .tags(named.path(), None)
                .await
                .map_err(|e| pull_error(&named, e))?;
            for t in tags {
                let r = Reference::parse_normalized(&format!("{}:{t}", named.name()))?;
                self.pull_one(&session, &r, asked.as_ref(), &tx).await?;
            }
            return Ok(());
        }
        let r = req.reference()?;
        self.pull_one(&session, &r, asked.as_ref(), &tx).await
    }

    async fn pull_one(
        &self,
        s: &Session,
        r: &Reference,
        asked: Option<&PlatformSpec>,
        tx: &ProgressSender,
    ) -> Result<()> {
        let host = PlatformSpec::host();
        let platform = asked.unwrap_or(&host);
        let path = r.path();
        let wanted = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => image::reference::DEFAULT_TAG.to_string(),
        };
        let top = s
            .get_manifest(path, &wanted)
            .await
            .map_err(|e| pull_error(r, e))?;
        let chosen = match &top.manifest {
            Manifest::Index(idx) => {
                let d = platform.select(idx).map_err(registry_error)?;
                s.get_manifest(path, &d.digest)
                    .await
                    .map_err(|e| pull_error(r, e))?
            }
            Manifest::Image(_) => top.clone(),
        };
        let Manifest::Image(m) = &chosen.manifest else {
            return Err(Error::InvalidParameter(format!(
                "{}: the manifest chosen for {platform} is itself an index",
                r.familiar()
            )));
        };
        if let Some(l) = m
            .layers
            .iter()
            .find(|l| registry::manifest::is_foreign_layer(&l.media_type))
        {
            return Err(Error::NotImplemented(format!(
                "foreign layer {} ({}) cannot be pulled: it is not distributable",
                l.digest, l.media_type
            )));
        }
        send(
            tx,
            Progress {
                status: format!("Pulling from {path}"),
                id: Some(wanted.clone()),
                ..Default::default()
            },
        );
        let config = s
            .fetch_blob_bytes(path, &m.config.digest, Some(m.config.size))
            .await
            .map_err(|e| pull_error(r, e))?;
        let parsed: image::ImageConfig = serde_json::from_slice(&config).map_err(|e| {
            Error::InvalidParameter(format!("invalid image config {}: {e}", m.config.digest))
        })?;
        // A single-platform image must be the platform asked for (dockerd's check); without
        // `--platform` any image is taken, as dockerd does.
        if let (Some(want), Manifest::Image(_)) = (asked, &top.manifest) {
            let same = parsed.os == want.os
                && parsed.architecture == want.architecture
                && (want.variant.is_empty()
                    || parsed.variant.as_deref().unwrap_or("") == want.variant);
            if !same {
                let mut actual = format!("{}/{}", parsed.os, parsed.architecture);
                if let Some(v) = parsed.variant.as_deref().filter(|v| !v.is_empty()) {
                    actual = format!("{actual}/{v}");
                }
                return Err(Error::NotFound(format!(
                    "image with reference {} was found but does not match the specified platform: wanted {want}, actual: {actual}",
                    r.familiar()
                )));
            }
        }
        let diff_ids = &parsed.rootfs.diff_ids;
        if diff_ids.len() != m.layers.len() {
            return Err(Error::InvalidParameter(format!(
                "{}: the manifest lists {} layers but the image config has {} diff IDs",
                r.familiar(),
                m.layers.len(),
                diff_ids.len()
            )));
        }
        let _pin = self.images.pin();
        let id: Digest = m
            .config
            .digest
            .parse()
            .map_err(|e: image::Error| Error::InvalidParameter(e.to_string()))?;
        let mut plan = Vec::new();
        let mut chain: Option<Digest> = None;
        for (l, diff) in m.layers.iter().zip(diff_ids) {
            let blob: Digest = l
                .digest
                .parse()
                .map_err(|e: image::Error| Error::InvalidParameter(e.to_string()))?;
            let chain_id = Digest::chain(chain.as_ref(), diff);
            let present = self.images.has_layer(&chain_id, &blob);
            let unpack = !self.images.has_snapshot(&chain_id);
            plan.push((l, blob, present, unpack));
            chain = Some(chain_id);
        }
        // As dockerd: an image already here (same config) prints no layer lines at all.
        let quiet = self.images.get(id.as_str()).is_ok() && plan.iter().all(|p| p.2);
        if !quiet {
            for (_, blob, present, _) in &plan {
                let status = if *present {
                    "Already exists"
                } else {
                    "Pulling fs layer"
                };
                send(tx, Progress::layer(&blob.hex()[..12], status));
            }
            // Those beyond the first few wait for a slot, and dockerd says so.
            for (_, blob, _, _) in plan.iter().filter(|p| !p.2).skip(CONCURRENT_LAYERS) {
                send(tx, Progress::layer(&blob.hex()[..12], "Waiting"));
            }
        }
        let slots = tokio::sync::Semaphore::new(CONCURRENT_LAYERS);
        let jobs = plan.iter().map(|(l, blob, present, unpack)| {
            let slots = &slots;
            async move {
                if *present {
                    return Ok(None);
                }
                let _slot = slots
                    .acquire()
                    .await
                    .map_err(|_| Error::System("pull cancelled".into()))?;
                self.fetch_layer(s, r, &l.digest, l.size, blob, *unpack, tx)
                    .await
                    .map(Some)
            }
        });
        let results = join_all(jobs).await;
        let mut layers = Vec::new();
        for ((l, blob, _, _), res) in plan.iter().zip(results) {
            layers.push(PulledLayer {
                blob: blob.clone(),
                media_type: l.media_type.clone(),
                blob_size: l.size,
                received: res?,
            });
        }
        let repo_digest = format!("{}@{}", r.name(), top.digest);
        let pulled = PulledImage {
            config: config.to_vec(),
            manifest: chosen.bytes.to_vec(),
            layers,
            tag: r.tag().map(|_| r.clone()),
            repo_digest,
        };
        let outcome = self.blocking(move |st| Ok(st.commit_pull(pulled)?)).await?;
        send(tx, Progress::status(format!("Digest: {}", top.digest)));
        let familiar = r.familiar();
        let status = if outcome.up_to_date {
            format!("Status: Image is up to date for {familiar}")
        } else {
            format!("Status: Downloaded newer image for {familiar}")
        };
        send(tx, Progress::status(status));
        self.image_event("pull", &outcome.image, &familiar);
        Ok(())
    }

    /// Fetches one layer into the store (uncommitted): the socket's bytes go through the
    /// registry client's digest check into a pipe that a blocking thread reads, writing the blob
    /// and unpacking it at once.
    #[allow(clippy::too_many_arguments)]
    async fn fetch_layer(
        &self,
        s: &Session,
        r: &Reference,
        digest: &str,
        size: u64,
        blob: &Digest,
        unpack: bool,
        tx: &ProgressSender,
    ) -> Result<image::ReceivedLayer> {
        let short = blob.hex()[..12].to_string();
        let (sink, mut reader) = crate::chunks::pipe();
        let store = Arc::clone(&self.images);
        // The registry client checks the digest as the bytes pass (its result is awaited below
        // before anything is kept), so the store does not hash the blob again.
        let verified = blob.clone();
        let receiving = tokio::task::spawn_blocking(move || {
            store.receive_layer(&mut reader, unpack, &verified)
        });
        let mut last = Instant::now() - PROGRESS_INTERVAL;
        let mut progress = |done: u64| {
            if last.elapsed() >= PROGRESS_INTERVAL || done == size {
                last = Instant::now();
                send(tx, Progress::bytes(&short, "Downloading", done, size));
            }
        };
        let mut sink = Sink(Some(sink));
        let fetched = s
            .fetch_blob_chunks(r.path(), digest, Some(size), &mut sink, &mut progress)
            .await;
        // End of stream for the unpacker: it finishes the tar (or fails on a cut one).
        if let Some(sink) = sink.0.take() {
            sink.finish(match &fetched {
                Ok(_) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            });
        }
        let received = receiving.await?;
        match (fetched, received) {
            (Ok(_), Ok(layer)) => {
                send(tx, Progress::layer(&short, "Verifying Checksum"));
                send(tx, Progress::layer(&short, "Download complete"));
                send(tx, Progress::bytes(&short, "Extracting", size, size));
                send(tx, Progress::layer(&short, "Pull complete"));
                Ok(layer)
            }
            // The unpacker stopped reading (a hostile or broken tar): its error says why.
            (Err(registry::Error::Io { .. }), Err(e)) => Err(e.into()),
            (Err(e), _) => Err(pull_error(r, e)),
            (Ok(_), Err(e)) => Err(e.into()),
        }
    }
}

/// A blob's way from the registry client to the store's blocking unpacker.
struct Sink(Option<crate::chunks::ChunkSender>);

impl registry::ChunkSink for Sink {
    async fn put(&mut self, data: bytes::Bytes) -> std::io::Result<()> {
        let pushed = match &self.0 {
            Some(s) => s.push(data).await,
            None => false,
        };
        if pushed {
            Ok(())
        } else {
            // The unpacker stopped reading (a hostile or broken tar): its error says why.
            Err(std::io::Error::new(
                std::io::ErrorKind::BrokenPipe,
                "the layer's unpacker stopped",
            ))
        }
    }
}

/// dockerd's wording for a failed pull: a missing manifest names the reference, a refused or
/// unknown repository says that it may need a login.
fn pull_error(r: &Reference, e: registry::Error) -> Error {
    match e.code() {
        Some("MANIFEST_UNKNOWN") => {
            Error::NotFound(format!("manifest for {} not found: {e}", r.familiar()))
        }
        Some("NAME_UNKNOWN" | "UNAUTHORIZED" | "DENIED") => Error::NotFound(format!(
            "pull access denied for {}, repository does not exist or may require 'docker login': {e}",
            r.familiar_name()
        )),
        _ => super::registry_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(image: &str, tag: Option<&str>) -> String {
        PullRequest {
            image: image.into(),
            tag: tag.map(str::to_owned),
            ..Default::default()
        }
        .reference()
        .map(|r| r.to_string())
        .unwrap_or_else(|e| e.to_string())
    }

    #[test]
    fn pull_references_normalise_as_dockerd() {
        assert_eq!(req("busybox", None), "docker.io/library/busybox:latest");
        assert_eq!(
            req("docker.io/library/busybox", Some("1.36")),
            "docker.io/library/busybox:1.36"
        );
        assert_eq!(req("127.0.0.1:5000/x:1", None), "127.0.0.1:5000/x:1");
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            req("127.0.0.1:5000/x", Some(&d)),
            format!("127.0.0.1:5000/x@{d}")
        );
        assert_eq!(
            req("Busybox", None),
            "invalid reference format: repository name (library/Busybox) must be lowercase"
        );
    }
}
