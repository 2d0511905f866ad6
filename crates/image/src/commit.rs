//! New images on top of existing ones: `docker commit` and each step of a build. A commit stacks zero or one
//! new layer on a parent image and records the result with its parent, which the build cache and `history`
//! follow.

use std::io::{self, Read, Write};

use crate::config::ImageConfig;
use crate::content::BlobWriter;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::apply::apply_layer;
use crate::manifest;
use crate::reference::Reference;
use crate::snapshot::SnapshotMeta;
use crate::store::ImageStore;
use crate::{Image, Layer};

/// The digest of a tar with no entry (two zero blocks): Docker's "empty layer".
const EMPTY_TAR: &str = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// What a commit makes.
#[derive(Clone, Debug)]
pub struct CommitRequest {
    /// The image the new one stacks on (`None`: `FROM scratch`).
    pub parent: Option<Digest>,
    /// The new image's config: everything but the new layer's diff ID, which the store appends to
    /// `rootfs.diff_ids` (the parent's must already be there). Its `history` holds the new step's entry.
    pub config: ImageConfig,
    /// Tags to give the new image (normalised here).
    pub tags: Vec<String>,
    /// Keep a layer with no entry as a layer (`docker import` of an empty tar), where a build step or a
    /// commit that changed nothing adds none.
    pub keep_empty_layer: bool,
}

impl ImageStore {
    /// Commits `layer` (an uncompressed layer tar in Docker's form: `.wh.` whiteouts), if any, on top of
    /// the parent's layers, then the config. Nothing is visible until the image record is written; a
    /// failure or a crash before leaves only what `open` removes (a staged snapshot, an unreferenced blob).
    pub fn commit(&self, req: CommitRequest, layer: Option<&mut dyn Read>) -> Result<Image> {
        let tags = req
            .tags
            .iter()
            .map(|t| Reference::parse_normalized(t))
            .collect::<Result<Vec<_>>>()?;
        let _gc = self
            .gc_lock
            .read()
            .map_err(|_| Error::Conflict("image store lock poisoned".into()))?;
        let parent = req
            .parent
            .as_ref()
            .map(|p| self.get(p.as_str()))
            .transpose()?;
        let mut layers = parent
            .as_ref()
            .map(|p| p.layers.clone())
            .unwrap_or_default();
        let mut config = req.config;
        let have: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
        if config.rootfs.diff_ids.iter().collect::<Vec<_>>() != have {
            return Err(Error::InvalidArgument(
                "commit: the config's layers are not the parent's".into(),
            ));
        }
        if let Some(tar) = layer {
            let parent_chain = layers.last().map(|l| l.chain_id.clone());
            match self.add_layer(parent_chain.as_ref(), tar, req.keep_empty_layer)? {
                Some(l) => {
                    config.rootfs.diff_ids.push(l.diff_id.clone());
                    layers.push(l);
                }
                // As dockerd: a step that changed nothing adds no layer, and its history says so.
                None => {
                    if let Some(h) = config.history.last_mut() {
                        h.empty_layer = true;
                    }
                }
            }
        }
        self.record(config, layers, req.parent, &tags)
    }

    /// `--cache-from`: records `parent` as the parent of the existing image `id`, as dockerd does when a
    /// cache source (a loaded or pulled image, which has none) is found to be a step's result, so later
    /// builds find it as the child of `parent`. A parent that would make a cycle is refused.
    pub fn set_parent(&self, id: &Digest, parent: &Digest) -> Result<Image> {
        let mut st = self.lock()?;
        if !st.images.contains_key(id) {
            return Err(Error::NotFound(format!("No such image: {id}")));
        }
        // Walk up from the new parent: meeting `id` would make the image its own ancestor.
        let mut at = Some(parent.clone());
        while let Some(p) = at {
            if &p == id {
                return Err(Error::InvalidArgument(format!(
                    "{parent} cannot be the parent of {id}: it descends from it"
                )));
            }
            at = match st.images.get(&p) {
                Some(img) => img.parent.clone(),
                None if &p == parent => return Err(Error::NotFound(format!("No such image: {p}"))),
                None => None,
            };
        }
        let Some(img) = st.images.get_mut(id) else {
            return Err(Error::NotFound(format!("No such image: {id}")));
        };
        if img.parent.as_ref() != Some(parent) {
            img.parent = Some(parent.clone());
            let img = img.clone();
            self.write_record(&img)?;
        }
        Ok(st.images[id].clone())
    }

    /// `--cache-from`: records the image whose config is exactly `config` as a child of `parent`, with no new
    /// layer data: its layers are the parent's and, when `config.rootfs.diff_ids` lists one more, the layer
    /// of `source` (an image this store has, whose layers start with the parent's) with that diff ID, shared.
    /// dockerd's `restoreCachedImage`.
    pub fn commit_from(
        &self,
        parent: Option<&Digest>,
        config: ImageConfig,
        source: &Digest,
    ) -> Result<Image> {
        let _gc = self
            .gc_lock
            .read()
            .map_err(|_| Error::Conflict("image store lock poisoned".into()))?;
        let mut layers = match parent {
            Some(p) => self.get(p.as_str())?.layers,
            None => Vec::new(),
        };
        let wanted = &config.rootfs.diff_ids;
        let have: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();
        if wanted.len() < have.len() || wanted[..have.len()].iter().collect::<Vec<_>>() != have {
            return Err(Error::InvalidArgument(
                "restoring a cached image: the config's layers do not start with the parent's"
                    .into(),
            ));
        }
        match &wanted[have.len()..] {
            [] => {}
            [diff_id] => {
                let src = self.get(source.as_str())?;
                let chain = Digest::chain(layers.last().map(|l| &l.chain_id), diff_id);
                // The same diff IDs below give the same chain ID: the source's snapshot is this layer's.
                let layer = src
                    .layers
                    .get(layers.len())
                    .filter(|l| &l.diff_id == diff_id && l.chain_id == chain)
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "restoring a cached image: {source} has no layer {diff_id} on the parent's layers"
                        ))
                    })?;
                layers.push(layer.clone());
            }
            _ => {
                return Err(Error::InvalidArgument(
                    "restoring a cached image: more than one new layer".into(),
                ))
            }
        }
        self.record(config, layers, parent.cloned(), &[])
    }

    /// Stores `config` (its layers `layers`, already in the store) with its OCI manifest and records the
    /// image as a child of `parent`, tagged `tags`.
    fn record(
        &self,
        mut config: ImageConfig,
        layers: Vec<Layer>,
        parent: Option<Digest>,
        tags: &[Reference],
    ) -> Result<Image> {
        config.rootfs.kind = "layers".into();
        let config_bytes =
            serde_json::to_vec(&config).map_err(|e| Error::json("image config", e))?;
        let id = self.content.write(&config_bytes)?;
        let manifest_digest = crate::archive::load::store_oci_manifest(
            self,
            &id,
            config_bytes.len() as u64,
            &layers,
        )?;
        let image = Image::new_record(id, config, manifest_digest, layers, parent);
        self.commit_image(image, tags)
    }

    /// Unpacks one layer tar into a new snapshot above `parent_chain` and keeps the tar as its blob
    /// (uncompressed: its digest is the diff ID). `None` when the tar holds no entry, unless `keep_empty`.
    fn add_layer(
        &self,
        parent_chain: Option<&Digest>,
        tar: &mut dyn Read,
        keep_empty: bool,
    ) -> Result<Option<Layer>> {
        let mut writer = self.content.writer()?;
        let snap = self.snapshots.begin()?;
        let mut tee = Tee {
            inner: tar,
            out: &mut writer,
        };
        let stats = apply_layer(&snap.fs(), &mut tee, self.snapshots.id_map.as_ref())?;
        io::copy(&mut tee, &mut io::sink())
            .map_err(|e| Error::InvalidArchive(format!("reading layer: {e}")))?;
        let (diff_id, blob_size) = writer.commit(None)?;
        if diff_id.as_str() == EMPTY_TAR && !keep_empty {
            // The staged snapshot goes with `snap`; the 1 KB blob stays, shared by every empty layer.
            return Ok(None);
        }
        let chain_id = Digest::chain(parent_chain, &diff_id);
        snap.commit(
            &self.snapshots,
            &chain_id,
            &SnapshotMeta {
                diff_id: diff_id.clone(),
                size: stats.size,
            },
        )?;
        Ok(Some(Layer {
            blob: diff_id.clone(),
            diff_id,
            chain_id,
            media_type: manifest::OCI_LAYER.into(),
            blob_size,
            size: stats.size,
        }))
    }
}

/// Copies what the extractor reads into the blob being written, so the layer is read once.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    out: &'a mut BlobWriter,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::History;
    use crate::error::IoContext;
    use crate::layer::apply::tests::{build_tar, E};
    use crate::ImportOptions;

    #[test]
    fn commits_stack_layers_on_their_parent_and_remember_it() -> Result<()> {
        let dir = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let store = ImageStore::open(dir.path())?;
        let base_tar = build_tar(&[E::File("a", b"base"), E::File("gone", b"x")]);
        let base = store.import(&mut &base_tar[..], &ImportOptions::default())?;

        let mut config = base.config.clone();
        config.history.push(History {
            created_by: Some("/bin/sh -c echo hi > /b && rm /gone".into()),
            ..History::default()
        });
        let layer = build_tar(&[E::File("b", b"hi\n"), E::File(".wh.gone", b"")]);
        let img = store.commit(
            CommitRequest {
                parent: Some(base.id.clone()),
                config: config.clone(),
                tags: vec!["built:1".into()],
                keep_empty_layer: false,
            },
            Some(&mut &layer[..]),
        )?;
        assert_eq!(img.parent, Some(base.id.clone()));
        assert_eq!(img.layers.len(), 2);
        assert_eq!(img.layers[0], base.layers[0]);
        assert_eq!(
            img.layers[1].chain_id,
            Digest::chain(Some(&base.layers[0].chain_id), &img.layers[1].diff_id)
        );
        assert_eq!(img.config.rootfs.diff_ids.len(), 2);
        assert_eq!(store.get("built:1")?.id, img.id);
        let top = &store.layer_dirs(&img)[0];
        assert_eq!(std::fs::read(top.join("b")).ctx("read", top)?, b"hi\n");

        // A layer with no entry adds nothing, and the history says so.
        let empty = build_tar(&[]);
        let mut config_e = img.config.clone();
        config_e.history.push(History {
            created_by: Some("/bin/sh -c true".into()),
            ..History::default()
        });
        let same = store.commit(
            CommitRequest {
                parent: Some(img.id.clone()),
                config: config_e,
                tags: vec![],
                keep_empty_layer: false,
            },
            Some(&mut &empty[..]),
        )?;
        assert_eq!(same.layers, img.layers);
        assert!(same.config.history.last().is_some_and(|h| h.empty_layer));

        // A step without a layer (ENV, CMD…): same layers, new config, still a child of its parent.
        let mut config2 = img.config.clone();
        config2.history.push(History {
            created_by: Some("/bin/sh -c #(nop)  CMD [\"sh\"]".into()),
            empty_layer: true,
            ..History::default()
        });
        let img2 = store.commit(
            CommitRequest {
                parent: Some(img.id.clone()),
                config: config2,
                tags: vec![],
                keep_empty_layer: false,
            },
            None,
        )?;
        assert_eq!(img2.layers, img.layers);
        assert_eq!(img2.parent, Some(img.id.clone()));
        // The record survives a reopen with its parent.
        drop(store);
        let store = ImageStore::open(dir.path())?;
        assert_eq!(store.get(img2.id.as_str())?.parent, Some(img.id.clone()));

        // A config that does not stack on the parent is refused, and nothing is made.
        let before = store.list()?.len();
        assert!(store
            .commit(
                CommitRequest {
                    parent: Some(img.id.clone()),
                    config: base.config.clone(),
                    tags: vec![],
                    keep_empty_layer: false,
                },
                None,
            )
            .is_err());
        assert_eq!(store.list()?.len(), before);
        Ok(())
    }

    #[test]
    fn cache_from_restores_an_image_on_a_sources_layer_and_adopts_a_loaded_one() -> Result<()> {
        let dir = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let store = ImageStore::open(dir.path())?;
        let base_tar = build_tar(&[E::File("a", b"base")]);
        let base = store.import(&mut &base_tar[..], &ImportOptions::default())?;
        let mut config = base.config.clone();
        config.history.push(History {
            created_by: Some("/bin/sh -c #(nop) COPY file:x in /b ".into()),
            ..History::default()
        });
        let layer = build_tar(&[E::File("b", b"copied")]);
        let built = store.commit(
            CommitRequest {
                parent: Some(base.id.clone()),
                config: config.clone(),
                tags: vec![],
                keep_empty_layer: false,
            },
            Some(&mut &layer[..]),
        )?;

        // Another config on the same layers, with the source's layer shared, not copied.
        let mut restored_config = built.config.clone();
        restored_config.author = Some("restored".into());
        let restored = store.commit_from(Some(&base.id), restored_config.clone(), &built.id)?;
        assert_ne!(restored.id, built.id);
        assert_eq!(restored.parent, Some(base.id.clone()));
        assert_eq!(restored.layers, built.layers);
        assert_eq!(restored.config.author.as_deref(), Some("restored"));
        let top = &store.layer_dirs(&restored)[0];
        assert_eq!(std::fs::read(top.join("b")).ctx("read", top)?, b"copied");
        // A layer the source lacks is refused.
        let mut bad = restored_config.clone();
        bad.rootfs.diff_ids[1] = Digest::of(b"other");
        assert!(store.commit_from(Some(&base.id), bad, &built.id).is_err());

        // A loaded image (no parent) adopted as a child of the base; never as its own ancestor.
        let loose = store.import(&mut &layer[..], &ImportOptions::default())?;
        assert_eq!(loose.parent, None);
        let adopted = store.set_parent(&loose.id, &base.id)?;
        assert_eq!(adopted.parent, Some(base.id.clone()));
        drop(store);
        let store = ImageStore::open(dir.path())?;
        assert_eq!(store.get(loose.id.as_str())?.parent, Some(base.id.clone()));
        assert!(store.set_parent(&base.id, &loose.id).is_err());
        assert!(store.set_parent(&base.id, &Digest::of(b"missing")).is_err());
        Ok(())
    }
}
