//! Loading and validating an OCI bundle's `config.json`.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::error::{Error, Result};

/// A bundle's spec with its rootfs resolved to an absolute path.
#[derive(Debug, Clone)]
pub struct Bundle {
    /// The bundle directory (absolute).
    pub dir: PathBuf,
    /// The parsed `config.json`.
    pub spec: Spec,
    /// `root.path`, made absolute against the bundle directory.
    pub rootfs: PathBuf,
}

impl Bundle {
    /// Reads `DIR/config.json` and checks what this runtime needs of it.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let dir = std::path::absolute(dir).map_err(|e| Error::io("resolve", dir, e))?;
        let path = dir.join("config.json");
        let spec = Spec::load(&path).map_err(|source| Error::Spec { path, source })?;
        Bundle::from_spec(dir, spec)
    }

    /// Wraps an in-memory spec (the engine builds specs without writing them out first);
    /// relative paths in it are taken against `dir`.
    pub fn from_spec(dir: PathBuf, spec: Spec) -> Result<Bundle> {
        validate(&spec)?;
        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| Error::InvalidSpec("root is missing".into()))?;
        let rootfs = dir.join(root.path());
        if !rootfs.is_dir() {
            return Err(Error::InvalidSpec(format!(
                "root.path {} is not a directory",
                rootfs.display()
            )));
        }
        Ok(Bundle { dir, spec, rootfs })
    }
}

/// Rejects specs this runtime would otherwise run wrongly.
pub fn validate(spec: &Spec) -> Result<()> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("process is missing".into()))?;
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err(Error::InvalidSpec("process.args is empty".into()));
    }
    if !process.cwd().is_absolute() {
        return Err(Error::InvalidSpec(format!(
            "process.cwd {} is not absolute",
            process.cwd().display()
        )));
    }
    for m in spec.mounts().iter().flatten() {
        if !m.destination().is_absolute() {
            return Err(Error::InvalidSpec(format!(
                "mount destination {} is not absolute",
                m.destination().display()
            )));
        }
    }
    Ok(())
}
