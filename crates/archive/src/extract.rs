//! Extraction of a tar into a directory that no entry can escape.
//!
//! Every entry is made with an fd-relative call (`mkdirat`, `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`,
//! `symlinkat`, `linkat`, `mknodat`) on its bare name, in a parent directory opened through the
//! [`Resolver`](crate::resolve) from the root's fd. So neither `..`, absolute names, nor a symlink planted
//! by an earlier entry (`evil -> /etc`, then `evil/passwd`) can make a write land outside the root, and a
//! hard link can only name a file inside it. What else an entry may do (device nodes, whiteouts, owners,
//! replacing directories) is the caller's [`Options`].

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use tar::EntryType;

use crate::error::{Error, Result};
use crate::path::{self, DotDot, Rebase};
use crate::resolve::{Resolution, Resolver};
use crate::split::Hook;
use crate::{OPAQUE_MARKER, OPAQUE_XATTR, PAX_XATTR_PREFIX, WHITEOUT_PREFIX};

/// Buffer for copying file contents: large enough that a layer's big files take few syscalls.
const BUF_SIZE: usize = 1 << 20;
/// The pieces a file is compared with its candidate in: both sides stay in the CPU's cache between their
/// copy and their comparison.
const CMP_PIECE: usize = 256 << 10;

/// What to do with character and block device entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Devices {
    /// Refuse the archive ([`Error::Device`]).
    Refuse,
    /// Leave them out silently (a copy to the host, which should not need privileges).
    Skip,
    /// Create them (`mknod`); only for callers that trust where the tree will be used.
    Create,
}

/// What `.wh.` entries mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whiteouts {
    /// Nothing special: they are ordinary files.
    Plain,
    /// A layer's AUFS whiteouts become overlayfs' form: `.wh.NAME` a 0/0 character device `NAME`,
    /// `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory; other `.wh..wh.*` names
    /// (AUFS' hard-link bookkeeping) are dropped.
    Overlay,
}

/// Who owns what is extracted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The uid/gid of each entry (values that do not fit a `uid_t`, and -1, are refused).
    FromArchive,
    /// These ids for every entry (`cp --archive` into a container: its user).
    Fixed {
        /// The uid.
        uid: u32,
        /// The gid.
        gid: u32,
    },
    /// No `chown` at all: the extracting user owns everything (Docker's `NoLchown`, `cp` to the host).
    Unchanged,
}

/// How an extraction treats its entries. Start from [`Options::layer`], [`Options::container`] or
/// [`Options::host`] and adjust.
#[derive(Clone, Debug)]
pub struct Options {
    /// How parent directories resolve below the root.
    pub resolution: Resolution,
    /// What `..` (and a leading `/`) in a name means.
    pub dot_dot: DotDot,
    /// Device nodes.
    pub devices: Devices,
    /// `.wh.` entries.
    pub whiteouts: Whiteouts,
    /// Ownership of the extracted files.
    pub owner: Owner,
    /// Docker's `noOverwriteDirNonDir`: refuse to replace a directory with a non-directory or the reverse
    /// (otherwise the old one is removed, a directory recursively).
    pub no_overwrite_dir_non_dir: bool,
    /// Refuse relative symlink targets that climb above the destination ([`Error::SymlinkEscape`]).
    pub symlinks_within_dest: bool,
    /// A hard link must name a file an earlier entry of the same archive made (a layer links only to
    /// itself); otherwise any file below the destination.
    pub hard_links_to_earlier_entries: bool,
    /// Apply `SCHILY.xattr.*` PAX records (where the filesystem refuses one, it is dropped with a warning,
    /// as Docker does).
    pub xattrs: bool,
    /// A `./` entry sets the destination's own owner, mode, xattrs and mtime (a layer's root); otherwise
    /// the destination is left as it is.
    pub root_metadata: bool,
    /// Rename entries before anything else ([`Rebase`]).
    pub rebase: Option<Rebase>,
    /// Permission bits for every entry instead of the archive's (a build's `COPY --chmod`).
    pub mode: Option<u32>,
    /// The destination as the caller's user named it, for messages.
    pub dest_name: String,
    /// Prefix of the full paths in messages (`{prefix}/{name}`); `None` shows names alone.
    pub path_prefix: Option<String>,
    /// Use the component-by-component walk even where the kernel has `openat2` (for tests of the fallback).
    pub force_walk: bool,
    /// Start the disk writing a big file every few MiB as it is extracted (an image layer, which
    /// the store syncs before it commits: the sync then waits for little more than the last MiB).
    pub start_writeback: bool,
    /// The owners an entry names (or [`Owner::Fixed`] gives) are ids inside a user namespace: each is
    /// written as the host id this mapping gives it (dockerd's `--userns-remap` layers and containers),
    /// an id outside it is refused, and the parents an extraction makes belong to the mapped root.
    pub id_map: Option<crate::IdMap>,
}

impl Options {
    /// An image layer into a fresh snapshot: strict names (no `..`, no absolute names, no symlink on
    /// the way), owners and xattrs kept, whiteouts to overlay's form, no device nodes, hard links only to
    /// earlier entries, relative symlinks may not climb out.
    pub fn layer() -> Self {
        Options {
            resolution: Resolution::Beneath,
            dot_dot: DotDot::Refuse,
            devices: Devices::Refuse,
            whiteouts: Whiteouts::Overlay,
            owner: Owner::FromArchive,
            no_overwrite_dir_non_dir: false,
            symlinks_within_dest: true,
            hard_links_to_earlier_entries: true,
            xattrs: true,
            root_metadata: true,
            rebase: None,
            mode: None,
            dest_name: String::new(),
            path_prefix: None,
            force_walk: false,
            start_writeback: true,
            id_map: None,
        }
    }

    /// `PUT /containers/{id}/archive`: names relative to the destination inside the container's root,
    /// whose own symlinks resolve as they would inside it (clamped at its root), any symlink target,
    /// owners from the archive, no device nodes. `dest` is the destination as the client named it.
    pub fn container(dest: &str) -> Self {
        Options {
            resolution: Resolution::InRoot,
            dot_dot: DotDot::WithinDest,
            whiteouts: Whiteouts::Plain,
            symlinks_within_dest: false,
            hard_links_to_earlier_entries: false,
            // A client's tar may not set `trusted.*` (overlay's own) attributes in a container's tree.
            xattrs: false,
            root_metadata: false,
            dest_name: dest.to_owned(),
            path_prefix: Some(dest.trim_end_matches('/').to_owned()),
            start_writeback: false,
            ..Options::layer()
        }
    }

    /// `cp` from a container to a host directory `dest` (Docker's client-side `Untar` with `NoLchown`
    /// and `NoOverwriteDirNonDir`): no symlink ever followed, symlinks may not point above `dest`, no
    /// `chown`, device nodes left out.
    pub fn host(dest: &str) -> Self {
        Options {
            resolution: Resolution::Beneath,
            devices: Devices::Skip,
            owner: Owner::Unchanged,
            no_overwrite_dir_non_dir: true,
            symlinks_within_dest: true,
            ..Options::container(dest)
        }
    }
}

/// An entry as an [`Observer`] sees it: what the extraction makes, with the archive's own metadata.
#[derive(Debug)]
pub struct ObservedEntry<'a> {
    /// The path below the destination, cleaned (no `.`, no leading `/`), `/`-separated.
    pub path: &'a [u8],
    /// The entry's type.
    pub kind: EntryType,
    /// The entry's type flag byte as written in its header.
    pub type_byte: u8,
    /// Permission bits as the archive has them (`mode & 0o7777`), before [`Options::mode`].
    pub mode: u32,
    /// Owner as in the archive.
    pub uid: u64,
    /// Group as in the archive.
    pub gid: u64,
    /// The content size the header announces.
    pub size: u64,
    /// The modification time the entry gets (seconds since the epoch).
    pub mtime: i64,
    /// A symlink's target, or a hard link's target as the archive names it.
    pub link: &'a [u8],
}

/// Sees an extraction as it happens: each entry that is made (not whiteouts, skipped devices or entries
/// without a file), then a regular file's content as it is written. So a caller can compute something over
/// the archive (a build context's content hashes) in the same pass that extracts it, without reading the
/// files back.
pub trait Observer {
    /// An entry about to be made (its checks passed).
    fn entry(&mut self, entry: &ObservedEntry<'_>);
    /// The next piece of the content of the regular file last announced by [`Observer::entry`].
    fn data(&mut self, chunk: &[u8]);
    /// For the regular (not sparse) file just announced: an open file, on the destination's file system,
    /// that may already hold the same content (a copy the observer kept from an earlier extraction), or
    /// `None` (the default). The extraction then compares the content with it as it streams instead of
    /// writing it. If all of it matches, the candidate itself is hard-linked at the entry's path (its
    /// owner, mode and times then set from the entry, as for a file written), [`Observer::data`] is not
    /// called and [`Observer::reused`] is. At the first difference, the matched part is copied from the
    /// candidate and the extraction goes on as without one: `data` sees all of the content.
    fn candidate(&mut self) -> Option<std::fs::File> {
        None
    }
    /// The regular file last announced is its candidate's content, now at its path (see
    /// [`Observer::candidate`]).
    fn reused(&mut self) {}
    /// The regular file last announced was written whole (not reused): `file` is it, for an observer
    /// that keeps a link to it.
    fn written(&mut self, file: BorrowedFd<'_>) {
        let _ = file;
    }
}

/// What an extraction did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Docker's layer size: the bytes of every regular file entry and the length of every symlink
    /// target (hard links add nothing).
    pub size: u64,
    /// Tar entries read (metadata entries such as PAX headers are folded into the entry they describe).
    pub entries: u64,
}

/// Extracts the (uncompressed) tar `tar` into the existing directory `dir`.
///
/// On error some entries may have been made; callers that need all-or-nothing extract into a fresh
/// directory and discard it.
pub fn extract_into(dir: &Path, tar: impl Read, opts: &Options) -> Result<Stats> {
    extract_into_hooked(dir, tar, opts, None)
}

/// [`extract_into`], with the split recorder's hook around each entry.
pub(crate) fn extract_into_hooked(
    dir: &Path,
    tar: impl Read,
    opts: &Options,
    hook: Option<&mut Hook>,
) -> Result<Stats> {
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", dir.display().to_string(), e))?;
    extract_with(root.as_fd(), "", tar, opts, None, hook)
}

/// Extracts `tar` into `dest`, a directory named relative to the directory fd `root` (`""` or `/` for
/// `root` itself). With [`Resolution::InRoot`], `dest` and every entry resolve as inside a chroot at
/// `root` (the container's root); with [`Resolution::Beneath`] no symlink is followed on the way.
pub fn extract(root: BorrowedFd<'_>, dest: &str, tar: impl Read, opts: &Options) -> Result<Stats> {
    extract_with(root, dest, tar, opts, None, None)
}

/// [`extract`], telling `observer` what it makes as it makes it.
pub fn extract_observed(
    root: BorrowedFd<'_>,
    dest: &str,
    tar: impl Read,
    opts: &Options,
    observer: Option<&mut dyn Observer>,
) -> Result<Stats> {
    extract_with(root, dest, tar, opts, observer, None)
}

/// The one extraction: with an observer of what it makes (build contexts) and a hook around each entry
/// (a layer's tar split).
fn extract_with(
    root: BorrowedFd<'_>,
    dest: &str,
    tar: impl Read,
    opts: &Options,
    observer: Option<&mut dyn Observer>,
    mut hook: Option<&mut Hook>,
) -> Result<Stats> {
    let root = root
        .try_clone_to_owned()
        .map_err(|e| Error::io("dup", dest, e))?;
    let dest_comps = path::clean(dest.as_bytes(), DotDot::WithinDest, dest)?;
    let mut x = Extractor {
        resolver: Resolver::new(root, opts.resolution, opts.force_walk),
        dest: dest_comps,
        opts,
        cached_parent: None,
        files: HashSet::new(),
        dirs: Vec::new(),
        stats: Stats::default(),
        buf: vec![0u8; BUF_SIZE],
        cmp_buf: None,
        observer,
    };
    let read = std::rc::Rc::new(ReadSoFar::default());
    let mut archive = tar::Archive::new(Counting {
        inner: tar,
        read: std::rc::Rc::clone(&read),
    });
    let entries = archive.entries().map_err(Error::Read)?;
    // Where the last entry's data ends in the stream.
    let mut data_end = 0u64;
    for entry in entries {
        let mut entry = match entry {
            Ok(e) => e,
            // The docker CLI's context for a Dockerfile outside it (`docker build -f ../Dockerfile .`)
            // ends right after the last file's data, without its padding or the end-of-archive
            // blocks. Go's reader, dockerd's, takes an end there as the archive's end; so does this
            // one. An end anywhere else (within data or a header) is an error.
            Err(_) if read.ended_within_padding(data_end) => break,
            Err(e) => return Err(Error::Read(e)),
        };
        data_end = entry.raw_file_position() + entry.size();
        x.stats.entries += 1;
        if let Some(h) = hook.as_deref_mut() {
            h.before(&x, &entry)?;
        }
        x.apply(&mut entry)?;
        if let Some(h) = hook.as_deref_mut() {
            h.after(&x)?;
        }
    }
    x.finish_dirs();
    Ok(x.stats)
}

/// How much of the stream was read, and whether it ended.
#[derive(Default)]
struct ReadSoFar {
    bytes: std::cell::Cell<u64>,
    ended: std::cell::Cell<bool>,
}

impl ReadSoFar {
    /// Whether the stream ended after `data_end` (the end of an entry's data) but before the end of its
    /// padding to the next 512-byte block.
    fn ended_within_padding(&self, data_end: u64) -> bool {
        let at = self.bytes.get();
        self.ended.get() && at >= data_end && at <= data_end.next_multiple_of(512)
    }
}

/// The archive's stream, counted.
struct Counting<R> {
    inner: R,
    read: std::rc::Rc<ReadSoFar>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.read.ended.set(true);
        }
        self.read.bytes.set(self.read.bytes.get() + n as u64);
        Ok(n)
    }
}

pub(crate) struct Extractor<'a, 'o> {
    resolver: Resolver,
    /// The destination's components below the root.
    dest: Vec<Vec<u8>>,
    pub(crate) opts: &'a Options,
    /// The last parent directory opened (consecutive entries usually share it), by its path below the root.
    cached_parent: Option<(Vec<u8>, OwnedFd)>,
    /// Non-directory entries made so far, by their path below the destination (hard-link targets).
    files: HashSet<Vec<u8>>,
    /// Directories made or updated, with the mtime they get once their contents are in.
    dirs: Vec<(Vec<u8>, i64)>,
    stats: Stats,
    buf: Vec<u8>,
    /// The candidate's side of a comparison (see [`Observer::candidate`]), made at the first.
    cmp_buf: Option<Vec<u8>>,
    observer: Option<&'o mut (dyn Observer + 'o)>,
}

/// The metadata of an entry that every kind applies.
struct Meta {
    mode: Mode,
    uid: Option<Uid>,
    gid: Option<Gid>,
    mtime: i64,
    xattrs: Vec<(String, Vec<u8>)>,
}

/// dockerd's error for an id outside the daemon's user-namespace mapping.
fn unmappable(raw: &[u8], id: u64) -> Error {
    Error::Read(io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "{}: container ID {id} cannot be mapped to a host ID",
            path::shown(raw)
        ),
    ))
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

impl Extractor<'_, '_> {
    /// True when this extraction made a non-directory at `rel` (below the destination).
    pub(crate) fn made_file(&self, rel: &[u8]) -> bool {
        self.files.contains(rel)
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let name = match &self.opts.rebase {
            Some(r) => r.apply(&raw),
            None => raw.clone(),
        };
        let comps = path::clean(&name, self.opts.dot_dot, &self.opts.dest_name)?;
        let kind = entry.header().entry_type();
        if !matches!(
            kind,
            EntryType::Directory
                | EntryType::Regular
                | EntryType::Continuous
                | EntryType::GNUSparse
                | EntryType::Symlink
                | EntryType::Link
                | EntryType::Fifo
                | EntryType::Char
                | EntryType::Block
        ) {
            // PAX and GNU metadata entries are consumed by the reader; other types carry no file and are
            // ignored, as Docker ignores them.
            return Ok(());
        }
        let Some((leaf, parent)) = comps.split_last() else {
            if kind == EntryType::Directory && self.opts.root_metadata {
                let meta = self.meta(entry, &raw)?;
                let fd = self.open_existing_dir(&[], &raw, OFlags::RDONLY)?;
                self.set_meta(&fd, &meta, &path::shown(&raw))?;
                self.dirs.push((Vec::new(), meta.mtime));
            }
            return Ok(());
        };
        let rel = path::join(&comps);
        let full = self.full(&rel);

        if self.opts.whiteouts == Whiteouts::Overlay && leaf.starts_with(WHITEOUT_PREFIX) {
            return self.whiteout(leaf, parent, &raw, &full);
        }
        if matches!(kind, EntryType::Char | EntryType::Block) {
            match self.opts.devices {
                Devices::Refuse => {
                    return Err(Error::Device {
                        path: path::shown(&raw),
                    })
                }
                Devices::Skip => return Ok(()),
                Devices::Create => {}
            }
        }
        let meta = self.meta(entry, &raw)?;

        // Checks that need no file system come first, so a refused entry changes nothing.
        let link_target = match kind {
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                if target.is_empty() {
                    return Err(Error::unsafe_path(
                        path::shown(&raw),
                        "empty symlink target",
                    ));
                }
                if self.opts.symlinks_within_dest && path::symlink_climbs(parent.len(), &target) {
                    return Err(Error::SymlinkEscape {
                        path: full,
                        target: path::shown(&target),
                    });
                }
                Some(target)
            }
            _ => None,
        };
        let hard_target = match kind {
            EntryType::Link => {
                let target = self.hard_link_target(entry, &raw)?;
                if target == comps {
                    // A link to itself: the file is already there.
                    return Ok(());
                }
                target
            }
            _ => Vec::new(),
        };

        let dir = self.open_parent(parent, &raw)?;
        let is_dir = kind == EntryType::Directory;
        let existing = match rustix::fs::statat(&dir, os(leaf), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Some(FileType::from_raw_mode(st.st_mode) == FileType::Directory),
            Err(Errno::NOENT) => None,
            Err(e) => return Err(Error::io("lstat", full, e)),
        };
        if let Some(existing_dir) = existing {
            if self.opts.no_overwrite_dir_non_dir && existing_dir != is_dir {
                let dest = self.opts.dest_name.clone();
                return Err(if existing_dir {
                    Error::OverwriteDir { path: full, dest }
                } else {
                    Error::OverwriteNonDir { path: full, dest }
                });
            }
            if !(existing_dir && is_dir) {
                self.remove(&dir, leaf, existing_dir, &full)?;
            }
        }

        if let Some(o) = self.observer.as_deref_mut() {
            let h = entry.header();
            let hard_name = path::join(&hard_target);
            let link = match kind {
                EntryType::Symlink => link_target.as_deref().unwrap_or_default(),
                EntryType::Link => &hard_name,
                _ => &[],
            };
            o.entry(&ObservedEntry {
                path: &rel,
                kind,
                type_byte: h.entry_type().as_byte(),
                mode: h.mode().unwrap_or(0) & 0o7777,
                uid: h.uid().unwrap_or(0),
                gid: h.gid().unwrap_or(0),
                size: h.size().unwrap_or(0),
                mtime: meta.mtime,
                link,
            });
        }
        match kind {
            EntryType::Directory => {
                if existing != Some(true) {
                    rustix::fs::mkdirat(&dir, os(leaf), Mode::from_bits_truncate(0o700))
                        .map_err(|e| Error::io("mkdir", full.as_str(), e))?;
                }
                let fd = rustix::fs::openat(
                    &dir,
                    os(leaf),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| Error::io("open", full.as_str(), e))?;
                self.set_meta(&fd, &meta, &full)?;
                self.dirs.push((self.below_root(&rel), meta.mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let candidate = match (kind, self.observer.as_deref_mut()) {
                    (EntryType::GNUSparse, _) | (_, None) => None,
                    (_, Some(o)) => o.candidate(),
                };
                let size = entry.header().size().unwrap_or(0);
                let (fd, written, reused) = match candidate {
                    Some(c) => self.reuse_or_write(entry, c, size, &dir, leaf, &full)?,
                    None => {
                        let mut file = create_file(&dir, leaf, &full)?;
                        // Not a sparse file: its size in the header is its stored data's, and
                        // allocating that from offset 0 would fill holes.
                        if self.opts.start_writeback
                            && size >= BIG_FILE
                            && kind != EntryType::GNUSparse
                        {
                            preallocate(&file, size);
                        }
                        let written = copy(
                            entry,
                            &mut file,
                            &mut self.buf,
                            self.observer.as_deref_mut(),
                            self.opts.start_writeback,
                        )
                        .map_err(|e| Error::io("write", full.as_str(), e))?;
                        (OwnedFd::from(file), written, false)
                    }
                };
                if kind != EntryType::GNUSparse && written < size {
                    // The stream ended within the file's data.
                    return Err(Error::Read(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{full}: the archive ends within the file's data"),
                    )));
                }
                self.set_meta(&fd, &meta, &full)?;
                rustix::fs::futimens(&fd, &times(meta.mtime))
                    .map_err(|e| Error::io("set times of", full.as_str(), e))?;
                self.stats.size += written;
                self.files.insert(rel);
                if let Some(o) = self.observer.as_deref_mut() {
                    if reused {
                        o.reused();
                    } else {
                        o.written(fd.as_fd());
                    }
                }
            }
            EntryType::Symlink => {
                let target = link_target.unwrap_or_default();
                rustix::fs::symlinkat(os(&target), &dir, os(leaf))
                    .map_err(|e| Error::io("symlink", full.as_str(), e))?;
                self.set_meta_at(&dir, leaf, &meta, false, &full)?;
                self.stats.size += target.len() as u64;
                self.files.insert(rel);
            }
            EntryType::Link => {
                let Some((tleaf, tparent)) = hard_target.split_last() else {
                    return Err(Error::unsafe_path(
                        path::shown(&raw),
                        "hard link to the destination itself",
                    ));
                };
                let tdir = self.open_existing_dir(tparent, &raw, OFlags::PATH)?;
                // Without AT_SYMLINK_FOLLOW a symlink target is linked as the symlink itself.
                rustix::fs::linkat(&tdir, os(tleaf), &dir, os(leaf), AtFlags::empty())
                    .map_err(|e| Error::io("link", full.as_str(), e))?;
                self.files.insert(rel);
            }
            EntryType::Fifo | EntryType::Char | EntryType::Block => {
                let (ft, dev) = match kind {
                    EntryType::Fifo => (FileType::Fifo, 0),
                    k => {
                        let h = entry.header();
                        let major = h.device_major().ok().flatten().unwrap_or(0);
                        let minor = h.device_minor().ok().flatten().unwrap_or(0);
                        let ft = if k == EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        (ft, rustix::fs::makedev(major, minor))
                    }
                };
                rustix::fs::mknodat(&dir, os(leaf), ft, Mode::from_bits_truncate(0o600), dev)
                    .map_err(|e| Error::io("mknod", full.as_str(), e))?;
                // Opening a fifo would block: the *at forms work on the name just made.
                self.set_meta_at(&dir, leaf, &meta, true, &full)?;
                self.files.insert(rel);
            }
            _ => {}
        }
        Ok(())
    }

    /// An AUFS whiteout, in overlay's form.
    fn whiteout(&mut self, leaf: &[u8], parent: &[Vec<u8>], raw: &[u8], full: &str) -> Result<()> {
        if leaf == OPAQUE_MARKER {
            let dir = self.open_parent(parent, raw)?;
            return rustix::fs::fsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| Error::io("set opaque xattr on", full, e));
        }
        let name = &leaf[WHITEOUT_PREFIX.len()..];
        if name == b"." || name == b".." {
            // `.wh..` and `.wh...` would whiteout the directory itself or its parent: removing "their
            // existing contents" would reach above the entry, and for the root, out of it.
            return Err(Error::unsafe_path(
                path::shown(raw),
                "whiteout of '.' or '..'",
            ));
        }
        if name.is_empty() || name.starts_with(WHITEOUT_PREFIX) {
            // Other `.wh..wh.*` metadata (AUFS' hard-link directory) has no overlay meaning.
            return Ok(());
        }
        let dir = self.open_parent(parent, raw)?;
        match rustix::fs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                self.remove(&dir, name, is_dir, full)?;
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(Error::io("lstat", full, e)),
        }
        rustix::fs::mknodat(
            &dir,
            os(name),
            FileType::CharacterDevice,
            Mode::empty(),
            rustix::fs::makedev(0, 0),
        )
        .map_err(|e| Error::io("create whiteout", full, e))
    }

    /// The components (below the destination) of a hard link's target, checked under the options.
    fn hard_link_target<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        raw: &[u8],
    ) -> Result<Vec<Vec<u8>>> {
        let target = entry
            .link_name_bytes()
            .map(|t| t.into_owned())
            .unwrap_or_default();
        let target = match &self.opts.rebase {
            Some(r) => r.apply(&target),
            None => target,
        };
        let escapes = || {
            Error::unsafe_path(
                path::shown(raw),
                format!(
                    "hard link target {:?} escapes the destination",
                    path::shown(&target)
                ),
            )
        };
        let comps = match self.opts.dot_dot {
            // Hard-link targets name archive members; a leading `/` reads as the archive's root.
            DotDot::Refuse => path::clean(
                target.strip_prefix(b"/").unwrap_or(&target),
                DotDot::Refuse,
                &self.opts.dest_name,
            )
            .map_err(|_| escapes())?,
            DotDot::WithinDest => path::clean(&target, DotDot::WithinDest, &self.opts.dest_name)?,
        };
        if self.opts.hard_links_to_earlier_entries && !self.files.contains(&path::join(&comps)) {
            return Err(Error::unsafe_path(
                path::shown(raw),
                format!(
                    "hard link target {:?} is not an earlier entry of the archive",
                    path::shown(&target)
                ),
            ));
        }
        Ok(comps)
    }

    /// A path below the destination, as messages show it.
    fn full(&self, rel: &[u8]) -> String {
        match &self.opts.path_prefix {
            Some(p) => format!("{p}/{}", path::shown(rel)),
            None => path::shown(rel),
        }
    }

    /// A path below the destination as a path below the root.
    fn below_root(&self, rel: &[u8]) -> Vec<u8> {
        let mut p = path::join(&self.dest);
        if !rel.is_empty() {
            if !p.is_empty() {
                p.push(b'/');
            }
            p.extend_from_slice(rel);
        }
        p
    }

    fn meta<R: Read>(&self, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<Meta> {
        // Empty or malformed numeric fields read as 0, as Go's archive/tar (and so Docker) reads them.
        let h = entry.header();
        let mode =
            Mode::from_bits_truncate(self.opts.mode.unwrap_or(h.mode().unwrap_or(0)) & 0o7777);
        let mtime = i64::try_from(h.mtime().unwrap_or(0)).unwrap_or(0);
        let ids = match self.opts.owner {
            Owner::Unchanged => None,
            Owner::Fixed { uid, gid } => Some((u64::from(uid), u64::from(gid))),
            Owner::FromArchive => Some((h.uid().unwrap_or(0), h.gid().unwrap_or(0))),
        };
        let ids = match (ids, &self.opts.id_map) {
            (Some((u, g)), Some(map)) => match (map.uid_to_host(u), map.gid_to_host(g)) {
                (Some(u), Some(g)) => Some((u64::from(u), u64::from(g))),
                // dockerd's words for an id its mapping does not cover.
                (None, _) => return Err(unmappable(raw, u)),
                (_, None) => return Err(unmappable(raw, g)),
            },
            (ids, _) => ids,
        };
        let (uid, gid) = match ids {
            None => (None, None),
            Some((u, g)) => {
                // -1 would mean "unchanged" to chown.
                let conv = |v: u64| u32::try_from(v).ok().filter(|&v| v != u32::MAX);
                match (conv(u), conv(g)) {
                    (Some(u), Some(g)) => (Some(Uid::from_raw(u)), Some(Gid::from_raw(g))),
                    _ => {
                        return Err(Error::Read(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{}: uid/gid out of range", path::shown(raw)),
                        )))
                    }
                }
            }
        };
        let mut xattrs = Vec::new();
        if self.opts.xattrs {
            if let Some(exts) = entry.pax_extensions().map_err(Error::Read)? {
                for ext in exts {
                    let ext = ext.map_err(Error::Read)?;
                    if let Some(name) = ext
                        .key()
                        .ok()
                        .and_then(|k| k.strip_prefix(PAX_XATTR_PREFIX))
                    {
                        xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
                    }
                }
            }
        }
        Ok(Meta {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        })
    }

    /// chown first, then chmod (chown clears setuid/setgid), then xattrs.
    fn set_meta(&self, fd: &OwnedFd, meta: &Meta, full: &str) -> Result<()> {
        if meta.uid.is_some() {
            rustix::fs::fchown(fd, meta.uid, meta.gid).map_err(|e| Error::io("chown", full, e))?;
        }
        rustix::fs::fchmod(fd, meta.mode).map_err(|e| Error::io("chmod", full, e))?;
        for (name, value) in &meta.xattrs {
            match rustix::fs::fsetxattr(fd, name.as_str(), value, XattrFlags::empty()) {
                Ok(()) => {}
                // Filesystems without xattrs, or a namespace this process may not write, lose them (Docker
                // does the same, with a warning).
                Err(Errno::OPNOTSUPP) | Err(Errno::PERM) => {
                    tracing::warn!(path = %full, xattr = %name, "xattr not preserved");
                }
                Err(e) => return Err(Error::io("set xattr on", full, e)),
            }
        }
        Ok(())
    }

    /// Owner, mode (not for symlinks, whose mode Linux ignores) and times of a name in `dir`.
    fn set_meta_at(
        &self,
        dir: &OwnedFd,
        leaf: &[u8],
        meta: &Meta,
        chmod: bool,
        full: &str,
    ) -> Result<()> {
        if meta.uid.is_some() {
            rustix::fs::chownat(dir, os(leaf), meta.uid, meta.gid, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| Error::io("chown", full, e))?;
        }
        if chmod {
            rustix::fs::chmodat(dir, os(leaf), meta.mode, AtFlags::empty())
                .map_err(|e| Error::io("chmod", full, e))?;
        }
        rustix::fs::utimensat(dir, os(leaf), &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| Error::io("set times of", full, e))
    }

    /// Opens (making the missing ones, 0755 and owned by the extracting user, as Docker makes implicit
    /// parents) the parent directory of an entry.
    fn open_parent(&mut self, parent: &[Vec<u8>], raw: &[u8]) -> Result<OwnedFd> {
        let key = self.below_root(&path::join(parent));
        if let Some((k, fd)) = &self.cached_parent {
            if *k == key {
                return fd
                    .try_clone()
                    .map_err(|e| Error::io("dup", path::shown(&key), e));
            }
        }
        let fd = match self.open_existing_dir(parent, raw, OFlags::RDONLY) {
            Ok(fd) => fd,
            Err(Error::Io { source, .. })
                if source.raw_os_error() == Some(Errno::NOENT.raw_os_error()) =>
            {
                self.make_parents(parent, raw)?
            }
            Err(e) => return Err(e),
        };
        let dup = fd
            .try_clone()
            .map_err(|e| Error::io("dup", path::shown(&key), e))?;
        self.cached_parent = Some((key, dup));
        Ok(fd)
    }

    fn make_parents(&self, parent: &[Vec<u8>], raw: &[u8]) -> Result<OwnedFd> {
        let mut cur = self.open_existing_dir(&[], raw, OFlags::RDONLY)?;
        for i in 0..parent.len() {
            match self.open_existing_dir(&parent[..=i], raw, OFlags::RDONLY) {
                Ok(fd) => cur = fd,
                Err(Error::Io { source, .. })
                    if source.raw_os_error() == Some(Errno::NOENT.raw_os_error()) =>
                {
                    let made = match rustix::fs::mkdirat(
                        &cur,
                        os(&parent[i]),
                        Mode::from_bits_truncate(0o755),
                    ) {
                        Ok(()) => true,
                        Err(Errno::EXIST) => false,
                        Err(e) => {
                            return Err(Error::io(
                                "mkdir",
                                self.full(&path::join(&parent[..=i])),
                                e,
                            ))
                        }
                    };
                    // Opened again through the resolver: what was just made (or raced in) is checked
                    // like everything else.
                    cur = self.open_existing_dir(&parent[..=i], raw, OFlags::RDONLY)?;
                    // Under a user namespace the implied parents are the container root's, as dockerd
                    // makes them (its `RootPair`), so that root in the container may write into them.
                    if let (true, Some(map)) = (made, &self.opts.id_map) {
                        let (u, g) = map.root();
                        rustix::fs::fchown(&cur, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))
                            .map_err(|e| {
                                Error::io("chown", self.full(&path::join(&parent[..=i])), e)
                            })?;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(cur)
    }

    /// Opens an existing directory below the destination through the resolver.
    fn open_existing_dir(&self, comps: &[Vec<u8>], raw: &[u8], flags: OFlags) -> Result<OwnedFd> {
        let rel = path::join(comps);
        self.resolver
            .open_dir(&self.below_root(&rel), flags)
            .map_err(|e| self.resolve_error(raw, &rel, e))
    }

    fn resolve_error(&self, raw: &[u8], rel: &[u8], e: Errno) -> Error {
        match (self.opts.resolution, e) {
            (Resolution::Beneath, Errno::LOOP | Errno::XDEV) => Error::unsafe_path(
                path::shown(raw),
                "path goes through a symlink or leaves the destination",
            ),
            (Resolution::Beneath, Errno::NOTDIR) => Error::unsafe_path(
                path::shown(raw),
                "a parent path component is not a directory",
            ),
            (_, e) => Error::io("open", self.full(rel), e),
        }
    }

    /// Removes what is at `name` in `dir` so an entry can take its place.
    fn remove(&mut self, dir: &OwnedFd, name: &[u8], is_dir: bool, full: &str) -> Result<()> {
        if is_dir {
            // The cached parent may be (below) the directory going away.
            self.cached_parent = None;
            remove_tree(dir, name).map_err(|e| Error::io("remove", full, e))
        } else {
            rustix::fs::unlinkat(dir, os(name), AtFlags::empty())
                .map_err(|e| Error::io("unlink", full, e))
        }
    }

    /// Sets directories' mtimes, last listed first, now that their contents are in place. Best effort: a
    /// directory replaced or removed by a later entry is simply not there any more.
    fn finish_dirs(&mut self) {
        for (rel, mtime) in self.dirs.iter().rev() {
            if let Ok(fd) = self.resolver.open_dir(rel, OFlags::RDONLY) {
                let _ = rustix::fs::futimens(&fd, &times(*mtime));
            }
        }
    }
}

/// Makes the regular file `leaf` in `dir` (it must not exist: the extraction removed what was there).
fn create_file(dir: &impl AsFd, leaf: &[u8], full: &str) -> Result<std::fs::File> {
    let fd = rustix::fs::openat(
        dir,
        os(leaf),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| Error::io("create", full, e))?;
    Ok(std::fs::File::from(fd))
}

impl Extractor<'_, '_> {
    /// A regular file's content read against `candidate` (see [`Observer::candidate`]). Returns the file
    /// now at `leaf`, the bytes of content, and whether it is the candidate's content (then the observer
    /// was given none of it).
    fn reuse_or_write<R: Read>(
        &mut self,
        entry: &mut R,
        mut candidate: std::fs::File,
        size: u64,
        dir: &impl AsFd,
        leaf: &[u8],
        full: &str,
    ) -> Result<(OwnedFd, u64, bool)> {
        let same_size = candidate
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() == size);
        let other = self.cmp_buf.get_or_insert_with(|| vec![0u8; CMP_PIECE]);
        // The content matched so far, and a read piece that differs (the first not matched).
        let (mut matched, mut differs) = (0u64, 0usize);
        if same_size {
            loop {
                let n =
                    crate::read_up_to(entry, &mut self.buf[..CMP_PIECE]).map_err(Error::Read)?;
                if n == 0 {
                    break;
                }
                let same = crate::read_up_to(&mut candidate, &mut other[..n])
                    .is_ok_and(|m| m == n && other[..n] == self.buf[..n]);
                if !same {
                    differs = n;
                    break;
                }
                matched += n as u64;
            }
        }
        let all = same_size && differs == 0 && matched == size;
        if all {
            // The candidate's own inode, linked in place: nothing is written.
            let linked = rustix::fs::linkat(&candidate, "", dir, os(leaf), AtFlags::EMPTY_PATH);
            if linked.is_ok() {
                return Ok((OwnedFd::from(candidate), size, true));
            }
        }
        let mut file = create_file(dir, leaf, full)?;
        // The matched part (all of it if the link failed), copied from the candidate; the observer sees it
        // unless the whole content is the candidate's.
        let mut observer = if all {
            None
        } else {
            self.observer.as_deref_mut()
        };
        let mut copied = 0u64;
        while copied < matched {
            let n = usize::try_from(matched - copied)
                .unwrap_or(usize::MAX)
                .min(other.len());
            std::os::unix::fs::FileExt::read_exact_at(&candidate, &mut other[..n], copied)
                .and_then(|()| file.write_all(&other[..n]))
                .map_err(|e| Error::io("copy", full, e))?;
            if let Some(o) = observer.as_deref_mut() {
                o.data(&other[..n]);
            }
            copied += n as u64;
        }
        if all {
            return Ok((OwnedFd::from(file), size, true));
        }
        file.write_all(&self.buf[..differs])
            .map_err(|e| Error::io("write", full, e))?;
        if let Some(o) = observer.as_deref_mut() {
            o.data(&self.buf[..differs]);
        }
        let rest = copy(
            entry,
            &mut file,
            &mut self.buf,
            observer,
            self.opts.start_writeback,
        )
        .map_err(|e| Error::io("write", full, e))?;
        Ok((OwnedFd::from(file), matched + differs as u64 + rest, false))
    }
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn copy<'o>(
    r: &mut impl Read,
    w: &mut std::fs::File,
    buf: &mut [u8],
    mut observer: Option<&mut (dyn Observer + 'o)>,
    writeback: bool,
) -> io::Result<u64> {
    let mut total = 0u64;
    let mut started = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => {
                // The rest of a big file goes to the disk now, not when the caller syncs.
                if writeback && total >= BIG_FILE && total > started {
                    start_writeback(w, started, total - started);
                }
                return Ok(total);
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        if let Some(o) = observer.as_deref_mut() {
            o.data(&buf[..n]);
        }
        total += n as u64;
        if writeback && total - started >= WRITEBACK_STEP {
            start_writeback(w, started, total - started);
            started = total;
        }
    }
}

/// Files of an image layer at least this big have their blocks allocated before they are written, and
/// their last bytes sent to the disk when they are closed.
const BIG_FILE: u64 = 1 << 20;

/// Allocates `size` bytes of blocks for the empty file `f` without changing its size
/// (`FALLOC_FL_KEEP_SIZE`, so a file cut short by the stream still shows what was written). The
/// filesystem then maps each page written to a block already allocated instead of reserving one per
/// page (about 30% less kernel CPU per written byte on ext4 here). Failure (a filesystem without `fallocate`,
/// or too little space: the writes will say so) only loses that.
fn preallocate(f: &std::fs::File, size: u64) {
    let _ = rustix::fs::fallocate(f, rustix::fs::FallocateFlags::KEEP_SIZE, 0, size);
}

/// How much of a file is written before its disk write is started.
const WRITEBACK_STEP: u64 = 8 << 20;

/// Asks the kernel to start writing `len` bytes of `f` from `offset` to disk, without waiting for it
/// (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, which rustix does not wrap). The caller's final sync
/// then finds most pages written instead of flushing the whole layer after the last byte. Failure
/// only loses that head start, so it is ignored.
fn start_writeback(f: &std::fs::File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: a plain syscall on an fd `f` keeps open for the call; it reads no memory of ours.
    let _ =
        unsafe { libc::sync_file_range(f.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE) };
}

/// Removes the entry at `rel` (components joined by `/`) below the directory `root`, with everything below
/// it if it is a directory, resolving no symlink on the way; then gives its parent directory the
/// modification time `parent_mtime` (seconds), which the removal changed: what applying "this path is
/// gone" to an extracted tree takes (a build context synced again, where the client deleted files).
/// Returns whether something was removed. A path whose parent is gone, or is no longer a directory (an
/// entry extracted since replaced it), has nothing left to remove.
pub fn remove_below(root: BorrowedFd<'_>, rel: &str, parent_mtime: Option<i64>) -> Result<bool> {
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    let Some((leaf, parent)) = comps.split_last() else {
        return Err(Error::unsafe_path(rel, "removing the root"));
    };
    if comps.iter().any(|c| *c == "." || *c == "..") {
        return Err(Error::unsafe_path(rel, "'.' or '..' in a path to remove"));
    }
    let dup = root
        .try_clone_to_owned()
        .map_err(|e| Error::io("open", rel, e))?;
    let resolver = crate::resolve::Resolver::new(dup, crate::Resolution::Beneath, false);
    let dir = match resolver.open_dir(parent.join("/").as_bytes(), OFlags::RDONLY) {
        Ok(d) => d,
        Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP | Errno::XDEV) => return Ok(false),
        Err(e) => return Err(Error::io("open", rel, e)),
    };
    let is_dir = match rustix::fs::statat(&dir, *leaf, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => FileType::from_raw_mode(st.st_mode) == FileType::Directory,
        Err(Errno::NOENT) => return Ok(false),
        Err(e) => return Err(Error::io("lstat", rel, e)),
    };
    if is_dir {
        remove_tree(&dir, leaf.as_bytes())
    } else {
        rustix::fs::unlinkat(&dir, *leaf, AtFlags::empty())
    }
    .map_err(|e| Error::io("remove", rel, e))?;
    if let Some(mtime) = parent_mtime {
        rustix::fs::futimens(&dir, &times(mtime)).map_err(|e| Error::io("set times of", rel, e))?;
    }
    Ok(true)
}

/// Removes the directory `name` below `dir` recursively, never following a symlink.
pub(crate) fn remove_tree(dir: &impl AsFd, name: &[u8]) -> rustix::io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        os(name),
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for ent in rustix::fs::Dir::read_from(&fd)? {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n != b"." && n != b".." {
            children.push((n.to_vec(), ent.file_type() == FileType::Directory));
        }
    }
    for (child, is_dir) in children {
        if is_dir {
            remove_tree(&fd, &child)?;
            continue;
        }
        match rustix::fs::unlinkat(&fd, os(&child), AtFlags::empty()) {
            // d_type is unknown on some filesystems.
            Err(Errno::ISDIR) => remove_tree(&fd, &child)?,
            other => other?,
        }
    }
    rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR)
}
