//! Durable records: JSON written to a temp file, fsynced, renamed over the old one.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{de::DeserializeOwned, Serialize};

use crate::error::{Error, Result};

/// Write `value` as JSON to `path` atomically (temp + fsync + rename + fsync of the directory).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write(path, value, true)
}

/// Write `value` atomically (temp + rename) without waiting for the disk: for endpoint changes, whose
/// kernel objects (veths, addresses in use) die with the kernel anyway. A daemon crash keeps the page
/// cache, so the record still matches the kernel; after a power loss both are gone. Saves 4 fsyncs
/// (~10 ms here) on every container start and exit.
pub(crate) fn write_json_volatile<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write(path, value, false)
}

fn write<T: Serialize>(path: &Path, value: &T, durable: bool) -> Result<()> {
    let state_err = |source| Error::State {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(state_err)?;
    let bytes = serde_json::to_vec_pretty(value).map_err(|source| Error::StateJson {
        path: path.to_path_buf(),
        source,
    })?;
    let tmp = path.with_extension("json.tmp");
    let mut f = fs::File::create(&tmp).map_err(state_err)?;
    f.write_all(&bytes).map_err(state_err)?;
    if durable {
        f.sync_all().map_err(state_err)?;
    }
    drop(f);
    fs::rename(&tmp, path).map_err(state_err)?;
    if durable {
        if let Err(e) = fs::File::open(dir).and_then(|d| d.sync_all()) {
            tracing::warn!(dir = %dir.display(), error = %e, "syncing the state directory");
        }
    }
    Ok(())
}

/// Read a JSON record, `None` if the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::StateJson {
                path: path.to_path_buf(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(Error::State {
            path: path.to_path_buf(),
            source,
        }),
    }
}
