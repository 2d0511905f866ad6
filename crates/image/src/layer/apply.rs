//! Safe extraction of a layer tar into a snapshot directory, in overlayfs "diff" form.
//!
//! Every entry is created with fd-relative syscalls below a directory fd opened with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`, so neither `..`, absolute
//! paths, nor symlinks planted by earlier entries (`evil -> /etc`, then `evil/passwd`) can make it write
//! outside the snapshot root. Whiteouts become what overlayfs expects: `.wh.NAME` a 0/0 char device
//! `NAME`, `.wh..wh..opq` the xattr `trusted.overlay.opaque=y` on its directory.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use tar::EntryType;

use crate::error::{Error, Result};
use crate::layer::compress::BUF_SIZE;

const WHITEOUT_PREFIX: &[u8] = b".wh.";
const OPAQUE_MARKER: &[u8] = b".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

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
pub fn apply_layer(root: &Path, tar: impl Read) -> Result<ApplyStats> {
    let root_fd = rustix::fs::open(
        root,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io("open", root, e.into()))?;
    let mut x = Extractor {
        root: root_fd,
        cached_parent: None,
        files: HashSet::new(),
        dirs: Vec::new(),
        stats: ApplyStats::default(),
        buf: vec![0u8; BUF_SIZE],
    };
    let mut archive = tar::Archive::new(tar);
    let entries = archive.entries().map_err(|e| bad_tar(&e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad_tar(&e))?;
        x.apply(&mut entry)?;
        x.stats.entries += 1;
    }
    x.finish_dirs();
    Ok(x.stats)
}

fn bad_tar(e: &io::Error) -> Error {
    Error::InvalidArchive(format!("reading layer tar: {e}"))
}

/// Splits a tar path into clean components: `.` and empty ones dropped, `..` and absolute paths refused.
pub(crate) fn clean_components(raw: &[u8]) -> Result<Vec<&[u8]>> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.first() == Some(&b'/') {
        return Err(Error::unsafe_path(shown(), "absolute path"));
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::unsafe_path(
                    shown(),
                    "path contains a '..' component",
                ))
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

struct Extractor {
    root: OwnedFd,
    /// Last parent directory opened, to avoid re-resolving it for consecutive entries.
    cached_parent: Option<(Vec<u8>, OwnedFd)>,
    /// Non-directory entries extracted so far (hard-link targets must be among them).
    files: HashSet<Vec<u8>>,
    /// Directories and their mtimes, applied at the end (their contents would change them).
    dirs: Vec<(Vec<u8>, i64)>,
    stats: ApplyStats,
    buf: Vec<u8>,
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn join(c: &[&[u8]]) -> Vec<u8> {
    c.join(&b'/')
}

fn errno_to_io(path: &[u8], op: &'static str, e: Errno) -> Error {
    Error::io(op, String::from_utf8_lossy(path).into_owned(), e.into())
}

fn beneath() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
}

fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

impl Extractor {
    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw_path = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw_path).into_owned();
        let comps = clean_components(&raw_path)?;
        let kind = entry.header().entry_type();
        let Some((&leaf, parent)) = comps.split_last() else {
            // `./` itself: the layer's root directory takes the entry's owner, mode and mtime.
            if kind == EntryType::Directory {
                let header = entry.header();
                let mode = Mode::from_bits_truncate(header.mode().unwrap_or(0) & 0o7777);
                let (uid, gid) = ids(header.uid().unwrap_or(0), header.gid().unwrap_or(0), &shown)?;
                let mtime = i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(0);
                let xattrs = pax_xattrs(entry)?;
                set_owner_mode_xattrs(&self.root, uid, gid, mode, &xattrs, &raw_path)?;
                self.dirs.push((Vec::new(), mtime));
            }
            return Ok(());
        };
        let rel = join(&comps);

        // Whiteouts.
        if leaf == OPAQUE_MARKER {
            let dir = self.open_parent(&shown, parent)?;
            return rustix::fs::fsetxattr(&dir, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(|e| errno_to_io(&raw_path, "set opaque xattr", e));
        }
        if let Some(name) = leaf.strip_prefix(WHITEOUT_PREFIX) {
            if name.starts_with(WHITEOUT_PREFIX) || name.is_empty() {
                // Other `.wh..wh.*` metadata (aufs hard-link dirs) has no overlay meaning.
                return Ok(());
            }
            let dir = self.open_parent(&shown, parent)?;
            self.remove_existing(&dir, name, &raw_path)?;
            return rustix::fs::mknodat(
                &dir,
                os(name),
                FileType::CharacterDevice,
                Mode::empty(),
                rustix::fs::makedev(0, 0),
            )
            .map_err(|e| errno_to_io(&raw_path, "create whiteout", e));
        }

        // Empty numeric fields read as 0, as Go's archive/tar (and so Docker) reads them.
        let header = entry.header();
        let mode = Mode::from_bits_truncate(header.mode().unwrap_or(0) & 0o7777);
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let (uid, gid) = ids(uid, gid, &shown)?;
        let mtime = i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(0);
        let xattrs = pax_xattrs(entry)?;

        match kind {
            EntryType::Directory => {
                let dir = self.open_parent(&shown, parent)?;
                match rustix::fs::statat(&dir, os(leaf), AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
                    Ok(_) => {
                        self.remove_existing(&dir, leaf, &raw_path)?;
                        mkdir(&dir, leaf, &raw_path)?;
                    }
                    Err(Errno::NOENT) => mkdir(&dir, leaf, &raw_path)?,
                    Err(e) => return Err(errno_to_io(&raw_path, "stat", e)),
                }
                let fd = rustix::fs::openat2(&dir, os(leaf), dir_flags(), Mode::empty(), beneath())
                    .map_err(|e| errno_to_io(&raw_path, "open", e))?;
                set_owner_mode_xattrs(&fd, uid, gid, mode, &xattrs, &raw_path)?;
                self.dirs.push((rel, mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let dir = self.open_parent(&shown, parent)?;
                self.remove_existing(&dir, leaf, &raw_path)?;
                let fd = rustix::fs::openat(
                    &dir,
                    os(leaf),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| errno_to_io(&raw_path, "create", e))?;
                let mut file = std::fs::File::from(fd);
                let written = copy_entry(entry, &mut file, &mut self.buf)
                    .map_err(|e| errno_io(&raw_path, e))?;
                let fd = OwnedFd::from(file);
                set_owner_mode_xattrs(&fd, uid, gid, mode, &xattrs, &raw_path)?;
                rustix::fs::futimens(&fd, &times(mtime))
                    .map_err(|e| errno_to_io(&raw_path, "set times", e))?;
                self.stats.size += written;
                self.files.insert(rel);
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| Error::InvalidArchive(format!("symlink {shown} has no target")))?
                    .into_owned();
                check_symlink_target(&shown, parent.len(), &target)?;
                let dir = self.open_parent(&shown, parent)?;
                self.remove_existing(&dir, leaf, &raw_path)?;
                rustix::fs::symlinkat(os(&target), &dir, os(leaf))
                    .map_err(|e| errno_to_io(&raw_path, "symlink", e))?;
                rustix::fs::chownat(&dir, os(leaf), uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| errno_to_io(&raw_path, "chown", e))?;
                rustix::fs::utimensat(&dir, os(leaf), &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| errno_to_io(&raw_path, "set times", e))?;
                self.stats.size += target.len() as u64;
                self.files.insert(rel);
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        Error::InvalidArchive(format!("hard link {shown} has no target"))
                    })?
                    .into_owned();
                // Hard-link targets name archive members; a leading '/' is tolerated as "archive root".
                let tcomps = clean_components(target.strip_prefix(b"/").unwrap_or(&target))
                    .map_err(|_| {
                        Error::unsafe_path(
                            &shown,
                            format!(
                                "hard link target {:?} escapes the layer",
                                String::from_utf8_lossy(&target)
                            ),
                        )
                    })?;
                let trel = join(&tcomps);
                let Some((&tleaf, tparent)) = tcomps.split_last() else {
                    return Err(Error::unsafe_path(&shown, "hard link to the layer root"));
                };
                if !self.files.contains(&trel) {
                    return Err(Error::unsafe_path(
                        &shown,
                        format!(
                            "hard link target {:?} is not an earlier entry of the layer",
                            String::from_utf8_lossy(&target)
                        ),
                    ));
                }
                let tdir = self.open_dir(&shown, tparent)?;
                let dir = self.open_parent(&shown, parent)?;
                if trel == rel {
                    return Ok(());
                }
                self.remove_existing(&dir, leaf, &raw_path)?;
                rustix::fs::linkat(&tdir, os(tleaf), &dir, os(leaf), AtFlags::empty())
                    .map_err(|e| errno_to_io(&raw_path, "link", e))?;
                self.files.insert(rel);
            }
            EntryType::Fifo => {
                let dir = self.open_parent(&shown, parent)?;
                self.remove_existing(&dir, leaf, &raw_path)?;
                rustix::fs::mknodat(
                    &dir,
                    os(leaf),
                    FileType::Fifo,
                    Mode::from_bits_truncate(0o600),
                    0,
                )
                .map_err(|e| errno_to_io(&raw_path, "mkfifo", e))?;
                // Opening a fifo would block; use the *at forms on the name just created.
                rustix::fs::chownat(&dir, os(leaf), uid, gid, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| errno_to_io(&raw_path, "chown", e))?;
                rustix::fs::chmodat(&dir, os(leaf), mode, AtFlags::empty())
                    .map_err(|e| errno_to_io(&raw_path, "chmod", e))?;
                rustix::fs::utimensat(&dir, os(leaf), &times(mtime), AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| errno_to_io(&raw_path, "set times", e))?;
                self.files.insert(rel);
            }
            EntryType::Char | EntryType::Block => {
                return Err(Error::unsafe_path(
                    shown,
                    "device nodes are not allowed in layers",
                ));
            }
            // PAX/GNU metadata entries are consumed by the tar reader; anything else is ignored like Docker does.
            _ => {}
        }
        Ok(())
    }

    /// Opens (creating missing components) the parent directory of an entry.
    fn open_parent(&mut self, shown: &str, parent: &[&[u8]]) -> Result<OwnedFd> {
        let key = join(parent);
        if let Some((k, fd)) = &self.cached_parent {
            if *k == key {
                return fd.try_clone().map_err(|e| Error::io("dup", shown, e));
            }
        }
        let fd = self.open_dir_creating(shown, parent)?;
        let dup = fd.try_clone().map_err(|e| Error::io("dup", shown, e))?;
        self.cached_parent = Some((key, dup));
        Ok(fd)
    }

    /// Opens an existing directory below the root without following any symlink.
    fn open_dir(&self, shown: &str, comps: &[&[u8]]) -> Result<OwnedFd> {
        if comps.is_empty() {
            return self
                .root
                .try_clone()
                .map_err(|e| Error::io("dup", shown, e));
        }
        rustix::fs::openat2(
            &self.root,
            os(&join(comps)),
            dir_flags(),
            Mode::empty(),
            beneath(),
        )
        .map_err(|e| resolve_error(shown, e))
    }

    fn open_dir_creating(&self, shown: &str, comps: &[&[u8]]) -> Result<OwnedFd> {
        match self.open_dir(shown, comps) {
            Err(Error::Io { source, .. })
                if source.raw_os_error() == Some(Errno::NOENT.raw_os_error()) => {}
            other => return other,
        }
        // Walk component by component, creating what is missing (Docker creates implicit parents 0755).
        let mut cur = self
            .root
            .try_clone()
            .map_err(|e| Error::io("dup", shown, e))?;
        for c in comps {
            match rustix::fs::mkdirat(&cur, os(c), Mode::from_bits_truncate(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(errno_to_io(shown.as_bytes(), "mkdir", e)),
            }
            cur = rustix::fs::openat2(&cur, os(c), dir_flags(), Mode::empty(), beneath())
                .map_err(|e| resolve_error(shown, e))?;
        }
        Ok(cur)
    }

    /// Removes whatever exists at `name` in `dir` (a directory recursively) so a later entry replaces it.
    fn remove_existing(&mut self, dir: &OwnedFd, name: &[u8], shown: &[u8]) -> Result<()> {
        match rustix::fs::statat(dir, os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(errno_to_io(shown, "stat", e)),
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                self.cached_parent = None;
                remove_tree(dir, name).map_err(|e| errno_to_io(shown, "remove", e))
            }
            Ok(_) => rustix::fs::unlinkat(dir, os(name), AtFlags::empty())
                .map_err(|e| errno_to_io(shown, "unlink", e)),
        }
    }

    /// Sets directories' mtimes, deepest last-listed first, now that their contents are in place.
    fn finish_dirs(&mut self) {
        for (rel, mtime) in self.dirs.iter().rev() {
            if rel.is_empty() {
                let _ = rustix::fs::futimens(&self.root, &times(*mtime));
                continue;
            }
            // A directory replaced later by a symlink or removed fails to open: nothing to do then.
            if let Ok(fd) =
                rustix::fs::openat2(&self.root, os(rel), dir_flags(), Mode::empty(), beneath())
            {
                let _ = rustix::fs::futimens(&fd, &times(*mtime));
            }
        }
    }
}

fn resolve_error(shown: &str, e: Errno) -> Error {
    match e {
        Errno::LOOP | Errno::XDEV => Error::unsafe_path(
            shown,
            "path goes through a symlink or leaves the layer root",
        ),
        Errno::NOTDIR => Error::unsafe_path(shown, "a parent path component is not a directory"),
        e => errno_to_io(shown.as_bytes(), "open", e),
    }
}

fn errno_io(path: &[u8], e: io::Error) -> Error {
    Error::io("write", String::from_utf8_lossy(path).into_owned(), e)
}

fn mkdir(dir: &OwnedFd, leaf: &[u8], shown: &[u8]) -> Result<()> {
    rustix::fs::mkdirat(dir, os(leaf), Mode::from_bits_truncate(0o700))
        .map_err(|e| errno_to_io(shown, "mkdir", e))
}

/// Converts tar ids, refusing values that do not fit (and -1, which chown reads as "unchanged").
fn ids(uid: u64, gid: u64, shown: &str) -> Result<(Option<Uid>, Option<Gid>)> {
    let conv = |v: u64| u32::try_from(v).ok().filter(|&v| v != u32::MAX);
    match (conv(uid), conv(gid)) {
        (Some(u), Some(g)) => Ok((Some(Uid::from_raw(u)), Some(Gid::from_raw(g)))),
        _ => Err(Error::InvalidArchive(format!(
            "{shown}: uid/gid out of range"
        ))),
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

/// chown first, then chmod (chown clears setuid/setgid), then xattrs.
fn set_owner_mode_xattrs(
    fd: &OwnedFd,
    uid: Option<Uid>,
    gid: Option<Gid>,
    mode: Mode,
    xattrs: &[(String, Vec<u8>)],
    shown: &[u8],
) -> Result<()> {
    rustix::fs::fchown(fd.as_fd(), uid, gid).map_err(|e| errno_to_io(shown, "chown", e))?;
    rustix::fs::fchmod(fd.as_fd(), mode).map_err(|e| errno_to_io(shown, "chmod", e))?;
    for (name, value) in xattrs {
        match rustix::fs::fsetxattr(fd.as_fd(), name.as_str(), value, XattrFlags::empty()) {
            Ok(()) => {}
            // Filesystems without xattr support (or a namespace we may not write) lose them, as with Docker.
            Err(Errno::OPNOTSUPP) | Err(Errno::PERM) => {
                tracing::warn!(path = %String::from_utf8_lossy(shown), xattr = %name, "xattr not preserved");
            }
            Err(e) => return Err(errno_to_io(shown, "set xattr", e)),
        }
    }
    Ok(())
}

fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| bad_tar(&e))? {
        for ext in exts {
            let ext = ext.map_err(|e| bad_tar(&e))?;
            if let Ok(key) = ext.key() {
                if let Some(name) = key.strip_prefix(PAX_XATTR_PREFIX) {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

/// A relative symlink target may not climb above the layer root (absolute ones resolve inside the container).
fn check_symlink_target(shown: &str, depth: usize, target: &[u8]) -> Result<()> {
    if target.is_empty() {
        return Err(Error::unsafe_path(shown, "empty symlink target"));
    }
    if target.first() == Some(&b'/') {
        return Ok(());
    }
    let mut level = depth as i64;
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                level -= 1;
                if level < 0 {
                    return Err(Error::unsafe_path(
                        shown,
                        format!(
                            "symlink target {:?} climbs above the layer root",
                            String::from_utf8_lossy(target)
                        ),
                    ));
                }
            }
            _ => level += 1,
        }
    }
    Ok(())
}

fn copy_entry(r: &mut impl Read, w: &mut std::fs::File, buf: &mut [u8]) -> io::Result<u64> {
    use std::io::Write;
    let mut total = 0u64;
    loop {
        let n = match r.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Removes `name` (a directory) below `dir` recursively without following symlinks.
fn remove_tree(dir: &OwnedFd, name: &[u8]) -> rustix::io::Result<()> {
    let fd = rustix::fs::openat(dir, os(name), dir_flags(), Mode::empty())?;
    let mut children = Vec::new();
    for ent in rustix::fs::Dir::read_from(&fd)? {
        let ent = ent?;
        let n = ent.file_name().to_bytes();
        if n == b"." || n == b".." {
            continue;
        }
        children.push((n.to_vec(), ent.file_type() == FileType::Directory));
    }
    for (child, is_dir) in children {
        if is_dir {
            remove_tree(&fd, &child)?;
        } else {
            match rustix::fs::unlinkat(&fd, os(&child), AtFlags::empty()) {
                // d_type may be unknown on some filesystems.
                Err(Errno::ISDIR) => remove_tree(&fd, &child)?,
                other => other?,
            }
        }
    }
    rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::error::IoContext;
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

    /// An entry of a test tar: name bytes are written raw into the header so `..` and `/abs` survive.
    pub(crate) enum E<'a> {
        Dir(&'a str),
        File(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
        Char(&'a str),
    }

    pub(crate) fn build_tar(entries: &[E<'_>]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for e in entries {
            let mut h = tar::Header::new_gnu();
            let (name, kind, data, link): (&str, EntryType, &[u8], Option<&str>) = match e {
                E::Dir(n) => (n, EntryType::Directory, b"", None),
                E::File(n, d) => (n, EntryType::Regular, d, None),
                E::Symlink(n, t) => (n, EntryType::Symlink, b"", Some(t)),
                E::Hardlink(n, t) => (n, EntryType::Link, b"", Some(t)),
                E::Char(n) => (n, EntryType::Char, b"", None),
            };
            if let Some(gnu) = h.as_gnu_mut() {
                gnu.name[..name.len()].copy_from_slice(name.as_bytes());
                if let Some(t) = link {
                    gnu.linkname[..t.len()].copy_from_slice(t.as_bytes());
                }
            }
            h.set_entry_type(kind);
            h.set_size(data.len() as u64);
            h.set_mode(if kind == EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(1_700_000_000);
            h.set_cksum();
            b.append(&h, data).ok();
        }
        b.into_inner().unwrap_or_default()
    }

    struct Sandbox {
        _dir: tempfile::TempDir,
        root: std::path::PathBuf,
        outside: std::path::PathBuf,
    }

    /// `<tmp>/a/b/root` is the layer root; `<tmp>/sentinel` must stay empty.
    fn sandbox() -> Sandbox {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let root = dir.path().join("a/b/root");
        let outside = dir.path().join("sentinel");
        std::fs::create_dir_all(&root).ok();
        std::fs::create_dir_all(&outside).ok();
        Sandbox {
            _dir: dir,
            root,
            outside,
        }
    }

    fn nothing_outside(s: &Sandbox) {
        assert_eq!(
            std::fs::read_dir(&s.outside).map(|d| d.count()).ok(),
            Some(0),
            "sentinel dir was written"
        );
        let parent = s
            .root
            .parent()
            .map(|p| std::fs::read_dir(p).map(|d| d.count()).ok());
        assert_eq!(parent, Some(Some(1)), "something appeared next to the root");
    }

    fn assert_unsafe(r: Result<ApplyStats>) {
        match r {
            Err(Error::UnsafePath { .. }) => {}
            other => panic!("expected UnsafePath, got {other:?}"),
        }
    }

    #[test]
    fn apply_rejects_parent_dir_entry() {
        let s = sandbox();
        assert_unsafe(apply_layer(
            &s.root,
            &build_tar(&[E::File("../escape", b"x")])[..],
        ));
        assert_unsafe(apply_layer(
            &s.root,
            &build_tar(&[E::File("ok/../../../sentinel/x", b"x")])[..],
        ));
        nothing_outside(&s);
    }

    #[test]
    fn apply_rejects_absolute_entry() {
        let s = sandbox();
        let abs = format!("{}/x", s.outside.display());
        assert_unsafe(apply_layer(&s.root, &build_tar(&[E::File(&abs, b"x")])[..]));
        nothing_outside(&s);
    }

    #[test]
    fn apply_rejects_symlink_climbing_above_root() {
        let s = sandbox();
        assert_unsafe(apply_layer(
            &s.root,
            &build_tar(&[E::Symlink("a", "../../..")])[..],
        ));
        assert_unsafe(apply_layer(
            &s.root,
            &build_tar(&[E::Dir("d"), E::Symlink("d/a", "../../x")])[..],
        ));
        nothing_outside(&s);
    }

    #[test]
    fn apply_refuses_to_write_through_symlink() {
        let s = sandbox();
        let target = s.outside.display().to_string();
        let tar = build_tar(&[E::Symlink("evil", &target), E::File("evil/x", b"pwned")]);
        assert_unsafe(apply_layer(&s.root, &tar[..]));
        // A relative in-layer symlink to a directory is also not traversed.
        let tar = build_tar(&[E::Dir("d"), E::Symlink("l", "d"), E::File("l/x", b"x")]);
        assert_unsafe(apply_layer(&s.root, &tar[..]));
        nothing_outside(&s);
    }

    #[test]
    fn apply_rejects_hardlink_escaping_or_unknown() {
        let s = sandbox();
        assert_unsafe(apply_layer(
            &s.root,
            &build_tar(&[E::Hardlink("pw", "../../etc/passwd")])[..],
        ));
        assert_unsafe(apply_layer(
            &s.root,
            &build_tar(&[E::Hardlink("pw", "/etc/passwd")])[..],
        ));
        nothing_outside(&s);
        assert!(!s.root.join("pw").exists());
    }

    #[test]
    fn apply_rejects_char_device() {
        let s = sandbox();
        assert_unsafe(apply_layer(&s.root, &build_tar(&[E::Char("dev/kmsg")])[..]));
        nothing_outside(&s);
    }

    #[test]
    fn apply_handles_dot_paths_replacement_and_size() -> Result<()> {
        let s = sandbox();
        let tar = build_tar(&[
            E::Dir("./a/"),
            E::File("./a/f", b"12345"),
            E::File("a/f", b"123"),
            E::Hardlink("a/h", "a/f"),
            E::Symlink("a/s", "/abs/target"),
            E::File("implicit/dir/file", b"1"),
            E::File("a/.wh.gone", b""),
        ]);
        let stats = apply_layer(&s.root, &tar[..])?;
        // 3 (replaced file) + 0 (hard link) + 11 (symlink target) + 1; the first 5-byte version counts too,
        // matching Docker's per-entry sum.
        assert_eq!(stats.size, 5 + 3 + 11 + 1);
        assert_eq!(
            std::fs::read(s.root.join("a/f")).ok().as_deref(),
            Some(&b"123"[..])
        );
        let m = std::fs::metadata(s.root.join("a")).ctx("stat", "a")?;
        assert_eq!(m.mtime(), 1_700_000_000);
        assert_eq!(m.permissions().mode() & 0o7777, 0o755);
        let wh = std::fs::symlink_metadata(s.root.join("a/gone")).ctx("stat", "wh")?;
        assert!(wh.file_type().is_char_device());
        nothing_outside(&s);
        Ok(())
    }

    #[test]
    fn apply_preserves_owner_setuid_xattrs_and_fifos() -> Result<()> {
        let s = sandbox();
        let mut b = tar::Builder::new(Vec::new());
        b.append_pax_extensions([("SCHILY.xattr.user.berth", &b"yes"[..])])
            .ctx("tar", "test")?;
        let mut h = tar::Header::new_ustar();
        h.set_size(2);
        h.set_mode(0o4755);
        h.set_uid(1000);
        h.set_gid(1001);
        h.set_mtime(1_600_000_000);
        h.set_cksum();
        b.append_data(&mut h, "bin/suid", &b"#!"[..])
            .ctx("tar", "test")?;
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(EntryType::Fifo);
        h.set_size(0);
        h.set_mode(0o640);
        h.set_cksum();
        b.append_data(&mut h, "run/fifo", std::io::empty())
            .ctx("tar", "test")?;
        let tar = b.into_inner().ctx("tar", "test")?;
        apply_layer(&s.root, &tar[..])?;
        let m = std::fs::symlink_metadata(s.root.join("bin/suid")).ctx("stat", "suid")?;
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o7777, m.mtime()),
            (1000, 1001, 0o4755, 1_600_000_000)
        );
        let mut buf = [0u8; 8];
        let n = rustix::fs::getxattr(s.root.join("bin/suid"), "user.berth", &mut buf).ok();
        // tmpfs without user xattrs drops them (with a warning), like Docker.
        if let Some(n) = n {
            assert_eq!(&buf[..n], b"yes");
        }
        let f = std::fs::symlink_metadata(s.root.join("run/fifo")).ctx("stat", "fifo")?;
        assert!(f.file_type().is_fifo());
        assert_eq!(f.mode() & 0o7777, 0o640);
        nothing_outside(&s);
        Ok(())
    }
}
