//! Everything tar in Berth: reading and writing archives, and the one extraction that no entry can
//! escape.
//!
//! - [`extract()`] / [`extract_into`] unpack a tar below a root directory. Every parent directory is
//!   opened through `openat2` (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`, or `RESOLVE_IN_ROOT` for a
//!   container's tree whose own symlinks must resolve as inside it), with a component-by-component walk
//!   where the kernel lacks `openat2`; every entry is then made on its bare name in that parent with
//!   `O_EXCL | O_NOFOLLOW` or the matching `*at` call. [`Options`] says what else an entry may do: device
//!   nodes, whiteouts (image layers: AUFS `.wh.` names to overlayfs' form), owners, replacing directories.
//! - [`extract_into_split`] extracts a layer while recording its [`Split`]: the bytes the tree does
//!   not hold, so the tar can be rebuilt byte for byte from the tree (an image store keeps a layer once).
//! - [`read_members`] reads a tar member by member without writing anything (a `docker save` archive,
//!   whose members the image store takes in by digest).
//! - [`Writer`] archives a tree found through directory fds (never following a symlink below its start)
//!   or single entries, with PAX records for long names and link names and for xattrs, hard links found
//!   by (dev, ino), and optionally overlayfs whiteouts written in the AUFS form layers carry.
//!
//! Users: the image store (layer apply), the engine (`cp` into and out of containers, `export`) and the
//! CLI (`cp` to and from the host). The crate depends on no other Berth crate.

mod error;
mod extract;
mod idmap;
pub mod memtar;
mod path;
mod read;
mod resolve;
mod split;
mod write;

#[cfg(test)]
mod tests;

pub use error::{Error, Result};
pub use extract::{
    extract, extract_into, extract_observed, remove_below, Devices, ObservedEntry, Observer,
    Options, Owner, Stats, Whiteouts,
};
pub use idmap::{IdMap, IdRange, OVERFLOW_ID};
pub use path::{DotDot, Rebase};
pub use read::{read_members, read_up_to, Member, MemberKind, ReadError};
pub use resolve::Resolution;
pub use split::{extract_into_split, Split, SplitReader, SplitRecorder};
pub use write::{EntryHeader, WriteOptions, Writer};

/// Re-exported so callers name entry types without depending on `tar` themselves.
pub use tar::EntryType;

/// Prefix of an AUFS whiteout: `.wh.NAME` deletes `NAME` of the layers below.
pub const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// The AUFS marker of an opaque directory (the layers below contribute nothing to it).
pub const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads as "opaque directory".
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
/// PAX record prefix of an extended attribute (the one GNU tar and Go's archive/tar write).
pub const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";
