//! The image store: image records, references, and the operations the engine calls.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::reference::Reference;
use crate::{
    DeleteItem, HistoryItem, Image, ImportOptions, LoadProgress, LoadedImage, PruneReport,
};

/// Berth's image store. `Send + Sync`; metadata is guarded by an internal mutex.
pub struct ImageStore {
    root: PathBuf,
    #[allow(dead_code)]
    state: Mutex<()>,
}

impl ImageStore {
    /// Opens (creating) the store under `root`; removes leftovers of interrupted operations (temp/ingest dirs,
    /// blobs and snapshots no image record references) so a SIGKILL mid-load leaves nothing half-made.
    pub fn open(root: impl Into<PathBuf>) -> Result<ImageStore> {
        Ok(ImageStore {
            root: root.into(),
            state: Mutex::new(()),
        })
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Loads a `docker save`-style archive read as a stream. Calls `progress` as layers are read.
    pub fn load(
        &self,
        _archive: &mut dyn Read,
        _progress: &mut dyn FnMut(LoadProgress),
    ) -> Result<Vec<LoadedImage>> {
        Err(Error::Unsupported("load".into()))
    }

    /// Writes one archive holding every named image (names, IDs or ID prefixes as a user types them).
    pub fn save(&self, _names: &[String], _out: &mut dyn Write) -> Result<()> {
        Err(Error::Unsupported("save".into()))
    }

    /// Imports a rootfs tar (plain, gzip or zstd) as a one-layer image (`docker import`).
    pub fn import(&self, _rootfs: &mut dyn Read, _opts: &ImportOptions) -> Result<Image> {
        Err(Error::Unsupported("import".into()))
    }

    /// Every image, newest first.
    pub fn list(&self) -> Result<Vec<Image>> {
        Err(Error::Unsupported("list".into()))
    }

    /// Resolves what a user typed: a name, `name@sha256:…`, a full ID or a unique ID prefix.
    pub fn get(&self, name_or_id: &str) -> Result<Image> {
        Err(Error::NotFound(name_or_id.into()))
    }

    /// `docker tag SOURCE TARGET`: TARGET gets normalised; moves the tag if held by another image.
    pub fn tag(&self, _source: &str, _target: &str) -> Result<(Image, Reference)> {
        Err(Error::Unsupported("tag".into()))
    }

    /// `docker rmi` semantics. Returns the items Docker prints (Untagged/Deleted).
    pub fn remove(
        &self,
        _name_or_id: &str,
        _force: bool,
        _noprune: bool,
    ) -> Result<Vec<DeleteItem>> {
        Err(Error::Unsupported("remove".into()))
    }

    /// Deletes every dangling image (untagged), or with `all` every image; `keep` lets the caller veto.
    pub fn prune(&self, _all: bool, _keep: &dyn Fn(&Image) -> bool) -> Result<PruneReport> {
        Err(Error::Unsupported("prune".into()))
    }

    /// Overlay lower dirs of an image's layers, topmost first.
    pub fn layer_dirs(&self, image: &Image) -> Vec<PathBuf> {
        image
            .layers
            .iter()
            .rev()
            .map(|l| {
                self.root
                    .join("snapshots")
                    .join(l.chain_id.hex())
                    .join("fs")
            })
            .collect()
    }

    /// History rows as `docker history` shows them (newest first).
    pub fn history(&self, _image: &Image) -> Vec<HistoryItem> {
        Vec::new()
    }
}
