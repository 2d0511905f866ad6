//! Berth's image store: content-addressed blobs, references, manifests, layer snapshots, and
//! `docker load` / `save` / `import` archives, with Docker's semantics.
//!
//! Everything here is blocking; the daemon calls it from `tokio::task::spawn_blocking`.
//!
//! # On-disk layout (under the store root, e.g. `<data-root>/image`)
//!
//! - `blobs/sha256/<hex>`: content (configs, manifests, layer blobs exactly as received). Written into
//!   `ingest/` while hashed, fsynced, and renamed into place only when the digest is right. Pulled and
//!   loaded uncompressed layers have no blob: their snapshot's files and tar split are the blob
//!   ([`ImageStore::layer_blob`]).
//! - `snapshots/<chain-id hex>/fs`: an unpacked layer in overlayfs diff form (whiteouts are 0/0 char
//!   devices, opaque dirs carry `trusted.overlay.opaque=y`); `snapshots/<chain-id hex>/meta.json` holds
//!   its diff ID and size, `snapshots/<chain-id hex>/tar-split` what rebuilds the layer tar from `fs/`.
//!   Built in `snapshots/tmp-*`, synced, renamed whole.
//! - `images/<id hex>.json`: one [`Image`] record per image; `repositories.json`: full reference → ID.
//!   Written temp + fsync + rename, records after their content, references last.
//!
//! [`ImageStore::open`] removes what an interrupted operation leaves (ingest files, temp snapshots,
//! temp records, blobs and snapshots no record references), so a crash never leaves a visible
//! half-made image.
//!
//! Layer extraction ([`layer::apply`]) goes through the `archive` crate's layer mode, which resolves
//! every parent with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` and creates leaves with `*at`
//! calls, so hostile layers cannot write outside their snapshot.

pub mod archive;
pub mod commit;
pub mod config;
pub mod content;
pub mod digest;
pub mod error;
pub mod import;
pub mod layer;
pub mod manifest;
pub mod pull;
pub mod reference;
pub mod snapshot;
pub mod store;
pub mod timefmt;

use serde::{Deserialize, Serialize};

pub use commit::CommitRequest;
pub use config::{ContainerConfig, Healthcheck, History, ImageConfig, RootFs};
pub use digest::Digest;
pub use error::{Error, Result};
pub use pull::{PullOutcome, PulledImage, PulledLayer, ReceivedLayer, StorePin};
pub use reference::Reference;
pub use store::ImageStore;

/// An image as the store knows it; also its on-disk record (`images/<id hex>.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image {
    /// Image ID: the digest of the config blob.
    pub id: Digest,
    /// The parsed config (its exact bytes stay in the blob store).
    pub config: ImageConfig,
    /// Tags pointing at this image, sorted.
    pub repo_tags: Vec<Reference>,
    /// `repo@sha256:…` digests (empty after load/import, like Docker).
    pub repo_digests: Vec<String>,
    /// Digest of the manifest `save` writes for this image.
    pub manifest_digest: Digest,
    /// Layers, bottom first.
    pub layers: Vec<Layer>,
    /// Docker's `Size`: the sum of the layers' unpacked sizes.
    pub size: u64,
    /// When this store got the image (Go RFC3339Nano).
    pub loaded_at: String,
    /// When a tag was last added to it.
    pub last_tag_time: Option<String>,
    /// The image this one was committed on (builds, `docker commit`); local knowledge, as dockerd's
    /// `Parent`, which the build cache follows. `None` for loaded, imported and pulled images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Digest>,
}

impl Image {
    /// A record new to this store (untagged, created now) of the image with config `id`/`config`, its
    /// manifest and layers, and the parent it was committed on, if any: load, pull and commit make them so.
    pub(crate) fn new_record(
        id: Digest,
        config: ImageConfig,
        manifest_digest: Digest,
        layers: Vec<Layer>,
        parent: Option<Digest>,
    ) -> Image {
        Image {
            id,
            config,
            repo_tags: Vec::new(),
            repo_digests: Vec::new(),
            manifest_digest,
            size: layers.iter().map(|l| l.size).sum(),
            layers,
            loaded_at: timefmt::rfc3339_nano(std::time::SystemTime::now()),
            last_tag_time: None,
            parent,
        }
    }
}

/// One layer of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layer {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Chain ID (identifies the snapshot).
    pub chain_id: Digest,
    /// Digest of the blob as stored (maybe compressed).
    pub blob: Digest,
    /// Media type of the blob.
    pub media_type: String,
    /// Size of the blob in bytes.
    pub blob_size: u64,
    /// Docker's layer size: the sum of the sizes of its non-directory entries.
    pub size: u64,
}

/// Progress reported while loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadProgress {
    /// Bytes of a layer read so far.
    Layer {
        /// Short ID shown to the user (12 hex).
        id: String,
        /// Bytes read.
        current: u64,
        /// Total bytes.
        total: u64,
    },
}

/// An image created or updated by `load`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadedImage {
    /// Image ID.
    pub id: Digest,
    /// Tags the archive gave it.
    pub tags: Vec<Reference>,
}

/// Options of `docker import`.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Optional `repo[:tag]` to tag the image with.
    pub repo_tag: Option<String>,
    /// Dockerfile instructions to apply (`--change`).
    pub changes: Vec<String>,
    /// Commit message (`--message`); empty gives Docker's "Imported from -".
    pub message: String,
    /// OS of the image (default `linux`).
    pub platform_os: Option<String>,
    /// Architecture of the image (default `amd64`).
    pub platform_arch: Option<String>,
}

/// Which containers use an image, as the engine knows them (the store knows nothing of containers): the store
/// refuses or limits removals with Docker's conflicts from it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageUsers {
    /// A running (or paused, or restarting) container using the image, if any.
    pub running: Option<String>,
    /// A container that is not running (created, exited, dead) using the image, if any.
    pub stopped: Option<String>,
}

impl ImageUsers {
    /// Some container using the image, running ones first.
    pub fn any(&self) -> Option<&String> {
        self.running.as_ref().or(self.stopped.as_ref())
    }
}

/// A line of `docker rmi` / `docker image prune` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteItem {
    /// A tag was removed (familiar reference).
    Untagged(String),
    /// An image or layer was deleted (`sha256:…`).
    Deleted(String),
}

/// What `prune` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Untagged/deleted items, in order.
    pub deleted: Vec<DeleteItem>,
    /// Bytes freed.
    pub space_reclaimed: u64,
}

/// A row of `docker history`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryItem {
    /// Image ID on the top row, `<missing>` on the others.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// The build command.
    pub created_by: String,
    /// Familiar tags (top row only).
    pub tags: Vec<String>,
    /// Size of the layer the step made (0 for empty layers).
    pub size: u64,
    /// Comment.
    pub comment: String,
}
