//! Extracting a client's tar into a directory of a container (`PUT /containers/{id}/archive`).
//!
//! Docker extracts chrooted into the container: an entry's parent directories resolve like the container
//! would resolve them (its symlinks followed, but only inside its root). Berth gets the same meaning without
//! a chroot: every parent is opened with `openat2(RESOLVE_IN_ROOT)` from the container's root fd, and the
//! entry itself is created with `O_EXCL | O_NOFOLLOW` (or the `*at` call on the bare name) in that parent,
//! after removing whatever was there. So `evil -> /` then `evil/etc/x` lands in the container's `/etc`, and
//! `..` entries that climb above the destination are refused before anything is written.

use std::io::{self, Read};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;
use rustix::process::{Gid, Uid};
use tar::EntryType;

use super::inroot;
use crate::error::{Error, Result};

/// Options of an extraction.
pub(crate) struct ExtractOptions {
    /// Refuse to replace a directory with a non-directory and the reverse (`noOverwriteDirNonDir`).
    pub no_overwrite_dir_non_dir: bool,
    /// Owner for every entry (`copyUIDGID` with the container's user) instead of the tar's.
    pub chown: Option<(u32, u32)>,
}

/// Extracts `tar` into `dest` (an absolute path inside the root, symlinks already resolved); `shown` is the
/// destination as the client named it, for messages.
pub(crate) fn extract(
    root: &OwnedFd,
    dest: &str,
    shown: &str,
    tar: impl Read,
    opts: &ExtractOptions,
) -> Result<()> {
    let mut x = Extractor {
        root,
        dest: dest.trim_end_matches('/').to_owned(),
        shown: shown.to_owned(),
        opts,
        cached: None,
        dirs: Vec::new(),
    };
    let mut archive = tar::Archive::new(tar);
    let entries = archive
        .entries()
        .map_err(|e| Error::InvalidParameter(format!("reading the archive: {e}")))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| Error::InvalidParameter(format!("reading the archive: {e}")))?;
        x.apply(&mut entry)?;
    }
    for (path, mtime) in x.dirs.iter().rev() {
        if let Ok(fd) = inroot::open(root, path, OFlags::RDONLY | OFlags::DIRECTORY) {
            let _ = rustix::fs::futimens(&fd, &times(*mtime));
        }
    }
    Ok(())
}

struct Extractor<'a> {
    root: &'a OwnedFd,
    dest: String,
    shown: String,
    opts: &'a ExtractOptions,
    /// The last parent directory opened (consecutive entries usually share it).
    cached: Option<(String, OwnedFd)>,
    /// Directories made or updated, with the mtime to give them once their contents are in.
    dirs: Vec<(String, i64)>,
}

impl Extractor<'_> {
    /// Clean components of an archive name, relative to the destination; `..` may not climb above it.
    fn components(&self, raw: &[u8]) -> Result<Vec<String>> {
        let name = String::from_utf8_lossy(raw);
        let mut out: Vec<String> = Vec::new();
        for c in name.split('/') {
            match c {
                "" | "." => {}
                ".." => {
                    if out.pop().is_none() {
                        return Err(Error::InvalidParameter(format!(
                            "{name:?} is outside of {:?}",
                            self.shown
                        )));
                    }
                }
                c => out.push(c.to_owned()),
            }
        }
        Ok(out)
    }

    fn apply<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path_bytes().into_owned();
        let comps = self.components(&raw)?;
        let kind = entry.header().entry_type();
        let Some((leaf, parent)) = comps.split_last() else {
            // The destination itself (`./`): left as it is, as Docker does.
            return Ok(());
        };
        let full = format!("{}/{}", self.dest, comps.join("/"));
        let header = entry.header();
        let mode = Mode::from_bits_truncate(header.mode().unwrap_or(0) & 0o7777);
        let (uid, gid) = match self.opts.chown {
            Some(ids) => ids,
            None => (
                u32::try_from(header.uid().unwrap_or(0)).unwrap_or(0),
                u32::try_from(header.gid().unwrap_or(0)).unwrap_or(0),
            ),
        };
        let mtime = i64::try_from(header.mtime().unwrap_or(0)).unwrap_or(0);
        let is_dir = kind == EntryType::Directory;
        if !matches!(
            kind,
            EntryType::Directory
                | EntryType::Regular
                | EntryType::Continuous
                | EntryType::Symlink
                | EntryType::Link
                | EntryType::Fifo
                | EntryType::Char
                | EntryType::Block
        ) {
            // Metadata entries (PAX, GNU long names) are consumed by the reader; others are ignored.
            return Ok(());
        }
        if matches!(kind, EntryType::Char | EntryType::Block) {
            return Err(Error::InvalidParameter(format!(
                "{}: device nodes cannot be copied into a container",
                String::from_utf8_lossy(&raw)
            )));
        }
        let dir = self.parent(parent, &full)?;
        let fail = |op: &str, e: Errno| fs_error(op, &full, e);
        match rustix::fs::statat(&dir, leaf.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let existing_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if self.opts.no_overwrite_dir_non_dir && existing_dir && !is_dir {
                    return Err(Error::InvalidParameter(format!(
                        "cannot overwrite directory {full:?} with non-directory {:?}",
                        self.shown
                    )));
                }
                if self.opts.no_overwrite_dir_non_dir && !existing_dir && is_dir {
                    return Err(Error::InvalidParameter(format!(
                        "cannot overwrite non-directory {full:?} with directory {:?}",
                        self.shown
                    )));
                }
                if !(existing_dir && is_dir) {
                    if existing_dir {
                        self.cached = None;
                        remove_tree(&dir, leaf).map_err(|e| fail("remove", e))?;
                    } else {
                        rustix::fs::unlinkat(&dir, leaf.as_str(), AtFlags::empty())
                            .map_err(|e| fail("unlink", e))?;
                    }
                }
            }
            Err(Errno::NOENT) => {}
            Err(e) => return Err(fail("lstat", e)),
        }
        let owner = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        match kind {
            EntryType::Directory => {
                match rustix::fs::mkdirat(&dir, leaf.as_str(), Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(fail("mkdir", e)),
                }
                let fd = rustix::fs::openat(
                    &dir,
                    leaf.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| fail("open", e))?;
                rustix::fs::fchown(&fd, owner.0, owner.1).map_err(|e| fail("chown", e))?;
                rustix::fs::fchmod(&fd, mode).map_err(|e| fail("chmod", e))?;
                self.dirs.push((full, mtime));
            }
            EntryType::Regular | EntryType::Continuous => {
                let fd = rustix::fs::openat(
                    &dir,
                    leaf.as_str(),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(|e| fail("create", e))?;
                let mut file = std::fs::File::from(fd);
                io::copy(entry, &mut file)
                    .map_err(|e| Error::System(format!("writing {full}: {e}")))?;
                let fd = OwnedFd::from(file);
                rustix::fs::fchown(&fd, owner.0, owner.1).map_err(|e| fail("chown", e))?;
                rustix::fs::fchmod(&fd, mode).map_err(|e| fail("chmod", e))?;
                rustix::fs::futimens(&fd, &times(mtime)).map_err(|e| fail("utimes", e))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        Error::InvalidParameter(format!("symlink {full} has no target"))
                    })?
                    .into_owned();
                // Any target is fine: it is only ever resolved inside the container (or IN_ROOT here).
                rustix::fs::symlinkat(target.as_slice(), &dir, leaf.as_str())
                    .map_err(|e| fail("symlink", e))?;
                rustix::fs::chownat(
                    &dir,
                    leaf.as_str(),
                    owner.0,
                    owner.1,
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| fail("chown", e))?;
                let _ = rustix::fs::utimensat(
                    &dir,
                    leaf.as_str(),
                    &times(mtime),
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| {
                        Error::InvalidParameter(format!("hard link {full} has no target"))
                    })?
                    .into_owned();
                // Hard-link targets name members of the archive, so they are relative to the destination.
                let tcomps = self.components(&target)?;
                let Some((tleaf, tparent)) = tcomps.split_last() else {
                    return Err(Error::InvalidParameter(format!(
                        "hard link {full} points at the destination itself"
                    )));
                };
                let tfull = format!("{}/{}", self.dest, tcomps.join("/"));
                let tdir = inroot::open(
                    self.root,
                    &format!("{}/{}", self.dest, tparent.join("/")),
                    OFlags::PATH | OFlags::DIRECTORY,
                )
                .map_err(|e| fs_error("open", &tfull, e))?;
                rustix::fs::linkat(&tdir, tleaf.as_str(), &dir, leaf.as_str(), AtFlags::empty())
                    .map_err(|e| fail("link", e))?;
            }
            EntryType::Fifo => {
                rustix::fs::mknodat(&dir, leaf.as_str(), FileType::Fifo, mode, 0)
                    .map_err(|e| fail("mkfifo", e))?;
                rustix::fs::chownat(
                    &dir,
                    leaf.as_str(),
                    owner.0,
                    owner.1,
                    AtFlags::SYMLINK_NOFOLLOW,
                )
                .map_err(|e| fail("chown", e))?;
                rustix::fs::chmodat(&dir, leaf.as_str(), mode, AtFlags::empty())
                    .map_err(|e| fail("chmod", e))?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Opens (making the missing ones, 0755 and root-owned as Docker makes them) the parent directories of
    /// an entry, each resolved inside the container's root.
    fn parent(&mut self, comps: &[String], full: &str) -> Result<OwnedFd> {
        let path = if comps.is_empty() {
            self.dest.clone()
        } else {
            format!("{}/{}", self.dest, comps.join("/"))
        };
        if let Some((k, fd)) = &self.cached {
            if *k == path {
                return fd
                    .try_clone()
                    .map_err(|e| Error::System(format!("dup: {e}")));
            }
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let fd = match inroot::open(self.root, &path, flags) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                let mut cur = inroot::open(self.root, &self.dest, flags)
                    .map_err(|e| fs_error("open", &self.dest, e))?;
                let mut sofar = self.dest.clone();
                for c in comps {
                    sofar = format!("{sofar}/{c}");
                    match inroot::open(self.root, &sofar, flags) {
                        Ok(fd) => cur = fd,
                        Err(Errno::NOENT) => {
                            match rustix::fs::mkdirat(
                                &cur,
                                c.as_str(),
                                Mode::from_bits_truncate(0o755),
                            ) {
                                Ok(()) | Err(Errno::EXIST) => {}
                                Err(e) => return Err(fs_error("mkdir", &sofar, e)),
                            }
                            cur = inroot::open(self.root, &sofar, flags)
                                .map_err(|e| fs_error("open", &sofar, e))?;
                        }
                        Err(e) => return Err(fs_error("open", &sofar, e)),
                    }
                }
                cur
            }
            Err(e) => return Err(fs_error("open", full, e)),
        };
        let dup = fd
            .try_clone()
            .map_err(|e| Error::System(format!("dup: {e}")))?;
        self.cached = Some((path, dup));
        Ok(fd)
    }
}

/// An errno from a write in the container, worded for the client.
pub(crate) fn fs_error(op: &str, path: &str, e: Errno) -> Error {
    match e {
        Errno::ROFS => Error::InvalidParameter("container rootfs is marked read-only".into()),
        Errno::NOTDIR => Error::InvalidParameter(format!("{op} {path}: not a directory")),
        e => Error::System(format!("{op} {path}: {e}")),
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

/// Removes the directory `name` below `dir` recursively, never following a symlink.
fn remove_tree(dir: &OwnedFd, name: &str) -> rustix::io::Result<()> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut children = Vec::new();
    for ent in rustix::fs::Dir::read_from(&fd)? {
        let ent = ent?;
        let n = ent.file_name().to_string_lossy().into_owned();
        if n != "." && n != ".." {
            children.push(n);
        }
    }
    for child in children {
        match rustix::fs::unlinkat(&fd, child.as_str(), AtFlags::empty()) {
            Err(Errno::ISDIR) | Err(Errno::PERM) => remove_tree(&fd, &child)?,
            other => other?,
        }
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw_tar(entries: &[(&str, EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data, link) in entries {
            let mut h = tar::Header::new_gnu();
            if let Some(g) = h.as_gnu_mut() {
                g.name[..name.len()].copy_from_slice(name.as_bytes());
                if let Some(l) = link {
                    g.linkname[..l.len()].copy_from_slice(l.as_bytes());
                }
            }
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    struct Sandbox {
        _d: tempfile::TempDir,
        root: std::path::PathBuf,
        outside: std::path::PathBuf,
        fd: OwnedFd,
    }

    fn sandbox() -> Sandbox {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("a/b/root");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(root.join("tmp")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink("/", root.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../../../", root.join("evil2")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("host")).unwrap();
        let fd = rustix::fs::open(&root, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        Sandbox {
            _d: d,
            root,
            outside,
            fd,
        }
    }

    fn opts() -> ExtractOptions {
        ExtractOptions {
            no_overwrite_dir_non_dir: false,
            chown: None,
        }
    }

    #[test]
    fn writes_through_container_symlinks_stay_in_the_root() {
        let s = sandbox();
        let tar = raw_tar(&[
            ("evil/tmp/pwned", EntryType::Regular, b"1", None),
            ("evil2/tmp/pwned2", EntryType::Regular, b"2", None),
            ("/etc/abs", EntryType::Regular, b"3", None),
        ]);
        extract(&s.fd, "/", "/", &tar[..], &opts()).unwrap();
        assert_eq!(std::fs::read(s.root.join("tmp/pwned")).unwrap(), b"1");
        assert_eq!(std::fs::read(s.root.join("tmp/pwned2")).unwrap(), b"2");
        assert_eq!(std::fs::read(s.root.join("etc/abs")).unwrap(), b"3");
        // A symlink to a host path resolves in the root (where it does not exist), never on the host.
        let tar = raw_tar(&[("host/x", EntryType::Regular, b"x", None)]);
        let _ = extract(&s.fd, "/", "/", &tar[..], &opts());
        assert_eq!(std::fs::read_dir(&s.outside).unwrap().count(), 0);
    }

    #[test]
    fn parent_dir_entries_and_planted_symlinks_do_not_escape() {
        let s = sandbox();
        let tar = raw_tar(&[("../../escape", EntryType::Regular, b"x", None)]);
        let e = extract(&s.fd, "/tmp", "/tmp", &tar[..], &opts()).unwrap_err();
        assert!(e.to_string().contains("is outside of"), "{e}");
        // A symlink planted by the archive, then written through: resolved inside the root.
        let out = s.outside.display().to_string();
        let tar = raw_tar(&[
            ("up", EntryType::Symlink, b"", Some("../../../../../..")),
            ("up/pwned", EntryType::Regular, b"x", None),
        ]);
        extract(&s.fd, "/tmp", "/tmp", &tar[..], &opts()).unwrap();
        // A dangling symlink to a host directory: it does not exist in the root, so the write fails.
        let tar = raw_tar(&[
            ("link", EntryType::Symlink, b"", Some(&out)),
            ("link/pwned", EntryType::Regular, b"x", None),
        ]);
        assert!(extract(&s.fd, "/tmp", "/tmp", &tar[..], &opts()).is_err());
        let tar = raw_tar(&[("h", EntryType::Link, b"", Some("../../etc/passwd"))]);
        assert!(extract(&s.fd, "/tmp", "/tmp", &tar[..], &opts()).is_err());
        assert_eq!(std::fs::read_dir(&s.outside).unwrap().count(), 0);
        assert!(s.root.join("pwned").exists(), "up/pwned lands in the root");
        let parent = s.root.parent().unwrap();
        assert_eq!(std::fs::read_dir(parent).unwrap().count(), 1);
    }

    #[test]
    fn no_overwrite_dir_non_dir_is_honoured() {
        let s = sandbox();
        let tar = raw_tar(&[("etc", EntryType::Regular, b"x", None)]);
        let o = ExtractOptions {
            no_overwrite_dir_non_dir: true,
            chown: None,
        };
        let e = extract(&s.fd, "/", "/", &tar[..], &o).unwrap_err();
        assert!(e.to_string().contains("cannot overwrite directory"), "{e}");
        extract(&s.fd, "/", "/", &tar[..], &opts()).unwrap();
        assert!(s.root.join("etc").is_file());
    }
}
