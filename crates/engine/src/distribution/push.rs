//! `POST /images/{name}/push`: every layer blob as stored (HEAD first, a cross-repository mount when
//! the image came from another repository of the same registry, else an upload), the config, then
//! the manifest the image came with, byte for byte, so its digest is the one it was pulled or loaded
//! under.
//!
//! Layers go as the store holds them: compressed as pulled (the blob file), or uncompressed for images loaded,
//! imported, committed or built here (Docker gzips those while pushing). Pushing them as they are
//! keeps the manifest and its digest unchanged and costs no CPU; an uncompressed OCI layer
//! (`application/vnd.oci.image.layer.v1.tar`) is valid for every client. On a slow link that costs
//! bandwidth: compressing on push (the registry crate's `push_blob_stream`) is the option left for
//! that case.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use image::{Image, Reference};
use registry::{BlobPush, Session, UploadMode};
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

use super::{parse_auth, registry_error, send, Progress, ProgressSender};
use crate::error::{Context as _, Error, Result};
use crate::Engine;

/// Layers uploaded at the same time (dockerd: 5).
const CONCURRENT_LAYERS: usize = 5;
/// How often a layer's `Pushing` line is sent at most.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// What `POST /images/{name}/push?tag=…` asks for.
#[derive(Debug, Default, Clone)]
pub struct PushRequest {
    /// The repository (maybe with a tag).
    pub name: String,
    /// `tag`; empty pushes every local tag of the repository.
    pub tag: Option<String>,
    /// The `X-Registry-Auth` header.
    pub auth: Option<String>,
}

impl Engine {
    /// Pushes an image (or every tag of a repository), sending dockerd's progress lines to `tx`.
    pub async fn push_image(&self, req: PushRequest, tx: ProgressSender) -> Result<()> {
        let auth = parse_auth(req.auth.as_deref())?;
        let named = Reference::parse_normalized_named(&req.name)?;
        let targets: Vec<Reference> =
            match (req.tag.as_deref().filter(|t| !t.is_empty()), named.tag()) {
                (Some(t), _) => vec![Reference::parse_normalized(&format!(
                    "{}:{t}",
                    named.name()
                ))?],
                (None, Some(_)) => vec![named.clone()],
                (None, None) => {
                    let name = named.name();
                    let mut tags: Vec<Reference> = self
                        .all_images()
                        .await?
                        .into_iter()
                        .flat_map(|i| i.repo_tags)
                        .filter(|t| t.name() == name)
                        .collect();
                    tags.sort();
                    tags
                }
            };
        let missing = || {
            Error::NotFound(format!(
                "An image does not exist locally with the tag: {}",
                named.familiar_name()
            ))
        };
        if targets.is_empty() {
            return Err(missing());
        }
        let mut images = Vec::new();
        for t in &targets {
            let key = t.to_string();
            let img = self
                .blocking(move |s| Ok(s.get(&key)?))
                .await
                .map_err(|_| missing())?;
            images.push(img);
        }
        send(
            &tx,
            Progress::status(format!("The push refers to repository [{}]", named.name())),
        );
        let session = self
            .registry
            .push_session(named.domain(), auth)
            .await
            .map_err(registry_error)?;
        for (t, img) in targets.iter().zip(images) {
            self.push_one(&session, t, &img, &tx).await?;
        }
        Ok(())
    }

    async fn push_one(
        &self,
        s: &Session,
        r: &Reference,
        img: &Image,
        tx: &ProgressSender,
    ) -> Result<()> {
        let path = r.path();
        // A layer of an image pulled from another repository of this registry can be mounted.
        let mount_from: Option<String> = img
            .repo_digests
            .iter()
            .filter_map(|d| Reference::parse_normalized(d).ok())
            .find(|d| d.domain() == r.domain() && d.path() != path)
            .map(|d| d.path().to_string());
        let ids: Vec<String> = img
            .layers
            .iter()
            .map(|l| l.diff_id.hex()[..12].to_string())
            .collect();
        for id in &ids {
            send(tx, Progress::layer(id, "Preparing"));
        }
        for id in ids.iter().skip(CONCURRENT_LAYERS) {
            send(tx, Progress::layer(id, "Waiting"));
        }
        let slots = tokio::sync::Semaphore::new(CONCURRENT_LAYERS);
        let jobs = img.layers.iter().zip(&ids).map(|(l, id)| {
            let slots = &slots;
            let mount = mount_from.as_deref();
            async move {
                let _slot = slots
                    .acquire()
                    .await
                    .map_err(|_| Error::System("push cancelled".into()))?;
                let source = match self.images.blob_path(&l.blob) {
                    Some(file) => Source::File(file),
                    // An uncompressed layer kept as its snapshot: the tar rebuilt from it.
                    None if self.images.has_layer(&l.chain_id, &l.blob) => {
                        Source::Snapshot(l.clone())
                    }
                    None => {
                        return Err(Error::NotFound(format!(
                            "layer {} of {} is not in the store",
                            l.blob,
                            r.familiar()
                        )))
                    }
                };
                let done = self
                    .push_blob(s, path, &l.blob, l.blob_size, mount, source, Some((id, tx)))
                    .await?;
                let status = match done {
                    BlobPush::Exists => "Layer already exists".to_string(),
                    BlobPush::Mounted { from } => format!("Mounted from {from}"),
                    BlobPush::Uploaded => "Pushed".to_string(),
                };
                send(tx, Progress::layer(id, &status));
                Ok::<_, Error>(())
            }
        });
        for res in join_all(jobs).await {
            res?;
        }
        let config = self.images.blob_path(&img.id).ok_or_else(|| {
            Error::NotFound(format!("config of {} is not in the store", r.familiar()))
        })?;
        let config_size = std::fs::metadata(&config)
            .with_context(|| config.display().to_string())?
            .len();
        self.push_blob(
            s,
            path,
            &img.id,
            config_size,
            None,
            Source::File(config),
            None,
        )
        .await?;
        let manifest_digest = img.manifest_digest.clone();
        let manifest = self
            .blocking(move |st| Ok(st.read_blob(&manifest_digest)?))
            .await?;
        let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
            .ok()
            .and_then(|v| v["mediaType"].as_str().map(str::to_owned))
            .unwrap_or_else(|| image::manifest::OCI_MANIFEST.to_string());
        let size = manifest.len();
        let tag = r.tag().unwrap_or(image::reference::DEFAULT_TAG);
        let digest = s
            .put_manifest(path, tag, &media_type, manifest.into())
            .await
            .map_err(registry_error)?;
        send(
            tx,
            Progress::status(format!("{tag}: digest: {digest} size: {size}")),
        );
        send(
            tx,
            Progress {
                detail: Some(Default::default()),
                aux: Some(serde_json::json!({"Tag": tag, "Digest": digest, "Size": size})),
                ..Default::default()
            },
        );
        let id = img.id.clone();
        let repo_digest = format!("{}@{digest}", r.name());
        let updated = self
            .blocking(move |st| Ok(st.add_repo_digest(&id, &repo_digest)?))
            .await?;
        self.image_event("push", &updated, &r.familiar());
        Ok(())
    }

    /// Pushes one blob from its file in the store; `progress` names the layer's line.
    #[allow(clippy::too_many_arguments)]
    async fn push_blob(
        &self,
        s: &Session,
        path: &str,
        digest: &image::Digest,
        size: u64,
        mount_from: Option<&str>,
        source: Source,
        progress: Option<(&String, &ProgressSender)>,
    ) -> Result<BlobPush> {
        let progress = progress.map(|(id, tx)| (id.clone(), tx.clone()));
        let open = |offset: u64| {
            let source = source.clone();
            let progress = progress.clone();
            let store = std::sync::Arc::clone(&self.images);
            async move {
                let inner: Pin<Box<dyn AsyncRead + Send>> = match source {
                    Source::File(file) => {
                        let mut f = tokio::fs::File::open(&file).await?;
                        f.seek(std::io::SeekFrom::Start(offset)).await?;
                        Box::pin(f)
                    }
                    Source::Snapshot(layer) => {
                        // Rebuilt on a blocking thread, piped to the upload.
                        let (w, r) = tokio::io::duplex(PIPE_SIZE);
                        tokio::task::spawn_blocking(move || {
                            let mut w = tokio_util::io::SyncIoBridge::new(w);
                            let copied = store
                                .layer_blob(&layer, offset)
                                .map_err(std::io::Error::other)
                                .and_then(|mut src| std::io::copy(&mut src, &mut w));
                            if let Err(e) = copied {
                                // The upload then ends short and the registry refuses it.
                                tracing::warn!("rebuilding layer {} to push it: {e}", layer.blob);
                            }
                        });
                        Box::pin(r)
                    }
                };
                Ok(Counting {
                    inner,
                    done: offset,
                    total: size,
                    progress,
                    last: Instant::now() - PROGRESS_INTERVAL,
                })
            }
        };
        s.push_blob(
            path,
            digest.as_str(),
            size,
            mount_from,
            UploadMode::Monolithic,
            open,
        )
        .await
        .map_err(registry_error)
    }
}

/// Where a pushed blob's bytes come from.
#[derive(Clone)]
enum Source {
    /// A blob file in the store.
    File(PathBuf),
    /// An uncompressed layer the store keeps only as its snapshot (files and tar split).
    Snapshot(image::Layer),
}

/// The pipe between a layer rebuilt from its snapshot and its upload.
const PIPE_SIZE: usize = 1 << 20;

/// A blob reader that reports `Pushing` progress as the upload reads it.
struct Counting {
    inner: Pin<Box<dyn AsyncRead + Send>>,
    done: u64,
    total: u64,
    progress: Option<(String, ProgressSender)>,
    last: Instant,
}

impl AsyncRead for Counting {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = self.inner.as_mut().poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &res {
            let n = (buf.filled().len() - before) as u64;
            let this = &mut *self;
            this.done += n;
            if let Some((id, tx)) = &this.progress {
                if this.last.elapsed() >= PROGRESS_INTERVAL || this.done == this.total {
                    this.last = Instant::now();
                    send(tx, Progress::bytes(id, "Pushing", this.done, this.total));
                }
            }
        }
        res
    }
}
