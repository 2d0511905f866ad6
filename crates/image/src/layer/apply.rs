//! Extraction of a layer tar into a snapshot directory, in overlayfs "diff" form, through the archive
//! crate's layer mode: no `..`, no absolute names, no symlink followed, hard links only to earlier
//! entries, no device nodes, AUFS whiteouts turned into overlay's (a 0/0 character device, the
//! `trusted.overlay.opaque` xattr).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// What extracting a layer found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Docker's layer size: st_size of every non-directory entry, hard links counted once.
    pub size: u64,
    /// Number of tar entries applied.
    pub entries: u64,
}

/// Extracts the (uncompressed) layer tar read from `tar` into the existing directory `root`.
///
/// Refuses hostile entries with [`Error::UnsafePath`] and never writes outside `root`; the caller
/// discards `root` on error.
///
/// With `id_map` (a `--userns-remap` store), owners are shifted onto the mapping's host ids.
pub fn apply_layer(
    root: &Path,
    tar: impl Read,
    id_map: Option<&::archive::IdMap>,
) -> Result<ApplyStats> {
    let stats = ::archive::extract_into(root, tar, &layer_options(id_map)).map_err(layer_error)?;
    Ok(ApplyStats {
        size: stats.size,
        entries: stats.entries,
    })
}

/// [`apply_layer`], recording the layer's tar split in `tar` (see [`::archive::Split`]).
pub fn apply_layer_split<R: Read>(
    root: &Path,
    tar: &mut ::archive::SplitRecorder<R>,
    id_map: Option<&::archive::IdMap>,
) -> Result<ApplyStats> {
    let stats =
        ::archive::extract_into_split(root, tar, &layer_options(id_map)).map_err(layer_error)?;
    Ok(ApplyStats {
        size: stats.size,
        entries: stats.entries,
    })
}

fn layer_options(id_map: Option<&::archive::IdMap>) -> ::archive::Options {
    ::archive::Options {
        id_map: id_map.cloned(),
        ..::archive::Options::layer()
    }
}

/// The archive crate's refusals in the image store's words.
fn layer_error(e: ::archive::Error) -> Error {
    use ::archive::Error as A;
    let unsafe_path = |path: String, reason: String| Error::UnsafePath { path, reason };
    match e {
        A::Read(e) => Error::InvalidArchive(format!("reading layer tar: {e}")),
        A::Io { op, path, source } => Error::io(op, path, source),
        A::Unsafe { path, reason } => unsafe_path(path, reason),
        A::SymlinkEscape { path, target } => unsafe_path(
            path,
            format!("symlink target {target:?} climbs above the layer root"),
        ),
        A::Device { path } => unsafe_path(path, "device nodes are not allowed in layers".into()),
        e @ (A::Outside { .. } | A::OverwriteDir { .. } | A::OverwriteNonDir { .. }) => {
            unsafe_path(String::new(), e.to_string())
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    pub(crate) use ::archive::memtar::Entry as E;

    /// A layer tar of `entries`, names written verbatim (hostile ones survive).
    pub(crate) fn build_tar(entries: &[E<'_>]) -> Vec<u8> {
        ::archive::memtar::tar_of(entries).unwrap_or_default()
    }

    #[test]
    fn hostile_layers_are_refused_in_the_image_stores_words() {
        let d = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let err = super::apply_layer(d.path(), &build_tar(&[E::File("../x", b"x")])[..], None)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unsafe path \"../x\" in layer: path contains a '..' component")
        );
        let err = super::apply_layer(d.path(), &build_tar(&[E::Char("dev/mem", 1, 1)])[..], None)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unsafe path \"dev/mem\" in layer: device nodes are not allowed in layers")
        );
    }
}
