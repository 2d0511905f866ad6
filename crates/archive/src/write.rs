//! Writing tar streams: files found through directory fds, or entries given one by one.
//!
//! A tree is walked with `O_NOFOLLOW` at every step below the fd it starts from, so a tree that swaps a
//! directory for a symlink while it is archived (a running container) cannot make the writer read files
//! outside it. Names are written as given (Docker's archives carry names the `tar` crate would normalise,
//! such as `./x`); names and link targets longer than the header's 100 bytes travel in a PAX record, as
//! Go's archive/tar writes them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use tar::{EntryType, Header};

use crate::error::{Error, Result};
use crate::path::{self, Rebase};
use crate::{OPAQUE_MARKER, OPAQUE_XATTR, PAX_XATTR_PREFIX, WHITEOUT_PREFIX};

/// Filesystems whose contents are the kernel's, not the tree's: archived as empty directories.
const PSEUDO_FS: &[i64] = &[
    0x9fa0,                // proc
    0x6265_6572,           // sysfs
    0x0027_e0eb,           // cgroup
    0x6367_7270,           // cgroup2
    0x1cd1,                // devpts
    0x1980_0202,           // mqueue
    0x7363_6673,           // securityfs
    0x6462_6720,           // debugfs
    0x7472_6163,           // tracefs
    0xcafe_4a11u32 as i64, // bpf
    0x6165_676c,           // pstore
    0x6265_6570,           // configfs
    0x6573_5543,           // fusectl
    0x4249_4e4d,           // binfmt_misc
];

/// How a [`Writer`] treats what it finds.
#[derive(Clone, Debug, Default)]
pub struct WriteOptions {
    /// Leave out fifos and device nodes (a copy from the host; Docker's client leaves them out too).
    pub skip_special: bool,
    /// Archive the mount points of kernel filesystems (`/proc`, `/sys`, cgroup, ...) met during a walk as
    /// empty directories: their files are the kernel's and some block when read.
    pub skip_pseudo_fs: bool,
    /// Write files' and directories' extended attributes as `SCHILY.xattr.*` PAX records (overlay's own
    /// `trusted.overlay.*` excepted).
    pub xattrs: bool,
    /// Write overlayfs whiteouts in the AUFS form layers carry (a layer diff from an overlay upper
    /// directory): a 0/0 character device `NAME` becomes an empty file `.wh.NAME`, an opaque directory gets
    /// a `.wh..wh..opq` entry.
    pub aufs_whiteouts: bool,
    /// Rename every entry (and hard-link target) as it is written.
    pub rebase: Option<Rebase>,
    /// The owner every entry gets instead of its own (a build context, which the docker CLI sends as root's).
    pub owner: Option<(u64, u64)>,
    /// Names (as a directory walk makes them, before any rebase) left out with everything below them: a
    /// layer diff leaves out the mount points the runtime made, which Docker keeps in a separate layer.
    pub exclude: Vec<Vec<u8>>,
    /// The tree's owners are host ids of a user namespace's files (a `--userns-remap` container or
    /// layer): entries carry the ids the container sees instead, an id the mapping does not cover as
    /// the kernel shows it inside ([`crate::OVERFLOW_ID`]). Whiteouts stay root's.
    pub id_map: Option<crate::IdMap>,
}

/// The description of one entry for [`Writer::append`].
#[derive(Clone, Debug)]
pub struct EntryHeader {
    /// The entry's type.
    pub kind: EntryType,
    /// Permission bits (with setuid, setgid and sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u64,
    /// Group.
    pub gid: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: u64,
    /// Size of the data that follows (regular files only).
    pub size: u64,
    /// Device numbers, for device nodes.
    pub device: Option<(u32, u32)>,
}

impl EntryHeader {
    /// A header of `kind` with mode `mode`, root-owned, at the epoch, empty.
    pub fn new(kind: EntryType, mode: u32) -> Self {
        EntryHeader {
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime: 0,
            size: 0,
            device: None,
        }
    }

    fn from_stat(st: &Stat, kind: EntryType) -> Self {
        EntryHeader {
            kind,
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            mtime: st.st_mtime.max(0) as u64,
            size: 0,
            device: None,
        }
    }
}

/// Writes tar entries to `W`.
pub struct Writer<W: Write> {
    builder: tar::Builder<W>,
    opts: WriteOptions,
    /// The first name written for every multiply-linked inode, by (dev, ino), for hard-link entries.
    links: HashMap<(u64, u64), Vec<u8>>,
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

fn child_name(name: &[u8], child: &[u8]) -> Vec<u8> {
    let mut out = name.to_vec();
    if !out.is_empty() && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out.extend_from_slice(child);
    out
}

impl<W: Write> Writer<W> {
    /// The header of a file found on disk, its owners seen through [`WriteOptions::id_map`].
    fn header_of(&self, st: &Stat, kind: EntryType) -> EntryHeader {
        let mut h = EntryHeader::from_stat(st, kind);
        if let Some(map) = &self.opts.id_map {
            (h.uid, h.gid) = map.shown_in_container(h.uid, h.gid);
        }
        h
    }

    /// A writer to `w`.
    pub fn new(w: W, opts: WriteOptions) -> Self {
        let mut builder = tar::Builder::new(w);
        builder.follow_symlinks(false);
        Writer {
            builder,
            opts,
            links: HashMap::new(),
        }
    }

    /// Writes the end-of-archive blocks, flushes, and gives the output back.
    pub fn finish(self) -> Result<W> {
        let mut w = self
            .builder
            .into_inner()
            .map_err(|e| Error::io("finish", "the archive", e))?;
        w.flush()
            .map_err(|e| Error::io("flush", "the archive", e))?;
        Ok(w)
    }

    /// Archives the entry `leaf` of the directory `parent` under `name` (a directory recursively).
    /// A file that disappears meanwhile is left out; sockets are left out as Docker leaves them.
    pub fn append_at(&mut self, parent: &impl AsFd, leaf: &[u8], name: &[u8]) -> Result<()> {
        let fail = |op: &'static str, e: Errno| Error::io(op, path::shown(name), e);
        let st = match rustix::fs::statat(parent, os(leaf), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(fail("lstat", e)),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let dir = match rustix::fs::openat(
                    parent,
                    os(leaf),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(d) => d,
                    // Replaced (by a symlink, or nothing) since the stat.
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => return Ok(()),
                    Err(e) => return Err(fail("open", e)),
                };
                // The start of a copy: whether it is a kernel filesystem is checked whatever its device.
                self.append_dir(&dir, name, None)
            }
            FileType::RegularFile => {
                let fd = match rustix::fs::openat(
                    parent,
                    os(leaf),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    Err(Errno::NOENT) | Err(Errno::LOOP) => return Ok(()),
                    Err(e) => return Err(fail("open", e)),
                };
                let st = rustix::fs::fstat(&fd).map_err(|e| fail("stat", e))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Ok(());
                }
                if self.hard_link(&st, name)? {
                    return Ok(());
                }
                let mut h = self.header_of(&st, EntryType::Regular);
                h.size = st.st_size.max(0) as u64;
                let xattrs = self.xattrs_of(&fd);
                // Exactly the size announced, whatever the file does meanwhile.
                let data = std::fs::File::from(fd)
                    .take(h.size)
                    .chain(io::repeat(0))
                    .take(h.size);
                self.put(&h, name, None, &xattrs, data)
            }
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(parent, os(leaf), Vec::new()) {
                    Ok(t) => t,
                    Err(Errno::NOENT) | Err(Errno::INVAL) => return Ok(()),
                    Err(e) => return Err(fail("readlink", e)),
                };
                let h = self.header_of(&st, EntryType::Symlink);
                self.put(&h, name, Some(target.as_bytes()), &[], io::empty())
            }
            FileType::CharacterDevice if self.opts.aufs_whiteouts && st.st_rdev == 0 => {
                let (dir, base) = match name.iter().rposition(|&b| b == b'/') {
                    Some(i) => (&name[..=i], &name[i + 1..]),
                    None => (&b""[..], name),
                };
                let mut wh = dir.to_vec();
                wh.extend_from_slice(WHITEOUT_PREFIX);
                wh.extend_from_slice(base);
                let mut h = self.header_of(&st, EntryType::Regular);
                h.mode = 0o600;
                // The kernel makes whiteouts as the mounter (the host's root), which no mapping covers;
                // dockerd leaves them unmapped, so they read 0:0 whatever the mapping.
                if self.opts.id_map.is_some() {
                    (h.uid, h.gid) = (0, 0);
                }
                self.put(&h, &wh, None, &[], io::empty())
            }
            FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
                if self.opts.skip_special {
                    return Ok(());
                }
                if self.hard_link(&st, name)? {
                    return Ok(());
                }
                let kind = match FileType::from_raw_mode(st.st_mode) {
                    FileType::Fifo => EntryType::Fifo,
                    FileType::CharacterDevice => EntryType::Char,
                    _ => EntryType::Block,
                };
                let mut h = self.header_of(&st, kind);
                if kind != EntryType::Fifo {
                    h.device = Some((rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev)));
                }
                self.put(&h, name, None, &[], io::empty())
            }
            _ => Ok(()),
        }
    }

    /// Archives an open directory: its own entry (unless `name` is empty) and everything below it, sorted
    /// by name as Go's walk does. `parent_dev` is the device of the directory holding it (`None` at the
    /// start of a walk), to notice mount points.
    pub fn append_dir(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        parent_dev: Option<u64>,
    ) -> Result<()> {
        let fail = |op: &'static str, e: Errno| Error::io(op, path::shown(name), e);
        let st = rustix::fs::fstat(dir).map_err(|e| fail("stat", e))?;
        if !name.is_empty() {
            let h = self.header_of(&st, EntryType::Directory);
            let mut shown = name.to_vec();
            if !shown.ends_with(b"/") {
                shown.push(b'/');
            }
            let xattrs = self.xattrs_of(dir);
            self.put(&h, &shown, None, &xattrs, io::empty())?;
            if self.opts.aufs_whiteouts && is_opaque(dir) {
                let mut h = self.header_of(&st, EntryType::Regular);
                h.mode &= 0o777;
                let marker = child_name(name, OPAQUE_MARKER);
                self.put(&h, &marker, None, &[], io::empty())?;
            }
        }
        if self.opts.skip_pseudo_fs && parent_dev.is_none_or(|d| d != st.st_dev) {
            if let Ok(fs) = rustix::fs::fstatfs(dir) {
                if PSEUDO_FS.contains(&(fs.f_type as i64)) {
                    return Ok(());
                }
            }
        }
        let mut children: Vec<Vec<u8>> = Vec::new();
        for ent in rustix::fs::Dir::read_from(dir).map_err(|e| fail("read directory", e))? {
            let ent = ent.map_err(|e| fail("read directory", e))?;
            let n = ent.file_name().to_bytes();
            if n != b"." && n != b".." {
                children.push(n.to_vec());
            }
        }
        children.sort();
        for child in children {
            let cname = child_name(name, &child);
            if self.opts.exclude.contains(&cname) {
                continue;
            }
            let cst = match rustix::fs::statat(dir, os(&child), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(s) => s,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(Error::io("lstat", path::shown(&cname), e)),
            };
            if FileType::from_raw_mode(cst.st_mode) == FileType::Directory {
                let sub = match rustix::fs::openat(
                    dir,
                    os(&child),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(s) => s,
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => continue,
                    Err(e) => return Err(Error::io("open", path::shown(&cname), e)),
                };
                self.append_dir(&sub, &cname, Some(st.st_dev))?;
            } else {
                self.append_at(dir, &child, &cname)?;
            }
        }
        Ok(())
    }

    /// Appends one entry named `name` (written as given, so `..` or `/abs` survive: tests and tools make
    /// hostile archives with it), with `link` as its symlink or hard-link target and `data` its contents.
    pub fn append(
        &mut self,
        h: &EntryHeader,
        name: &[u8],
        link: Option<&[u8]>,
        data: impl Read,
    ) -> Result<()> {
        self.put(h, name, link, &[], data)
    }

    fn put(
        &mut self,
        h: &EntryHeader,
        name: &[u8],
        link: Option<&[u8]>,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        data: impl Read,
    ) -> Result<()> {
        let renamed;
        let name = match &self.opts.rebase {
            Some(r) => {
                renamed = r.apply(name);
                &renamed[..]
            }
            None => name,
        };
        let fail = |op: &'static str, e: io::Error| Error::io(op, path::shown(name), e);
        let mut pax: Vec<(Vec<u8>, &[u8])> = Vec::new();
        if name.len() > 100 {
            pax.push((b"path".to_vec(), name));
        }
        if let Some(l) = link.filter(|l| l.len() > 100) {
            pax.push((b"linkpath".to_vec(), l));
        }
        for (k, v) in xattrs {
            let mut key = PAX_XATTR_PREFIX.as_bytes().to_vec();
            key.extend_from_slice(k);
            pax.push((key, v));
        }
        if !pax.is_empty() {
            // The tar crate takes PAX keys as &str; xattr names are bytes that are UTF-8 in practice.
            let records: Vec<(String, &[u8])> = pax
                .iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), *v))
                .collect();
            self.builder
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))
                .map_err(|e| fail("write PAX header of", e))?;
        }
        let mut th = Header::new_gnu();
        th.set_entry_type(h.kind);
        th.set_mode(h.mode);
        let (uid, gid) = self.opts.owner.unwrap_or((h.uid, h.gid));
        th.set_uid(uid);
        th.set_gid(gid);
        th.set_mtime(h.mtime);
        th.set_size(h.size);
        if let Some((major, minor)) = h.device {
            th.set_device_major(major)
                .map_err(|e| fail("write header of", e))?;
            th.set_device_minor(minor)
                .map_err(|e| fail("write header of", e))?;
        }
        if let Some(g) = th.as_gnu_mut() {
            let n = name.len().min(100);
            g.name = [0; 100];
            g.name[..n].copy_from_slice(&name[..n]);
            if let Some(l) = link {
                let n = l.len().min(100);
                g.linkname = [0; 100];
                g.linkname[..n].copy_from_slice(&l[..n]);
            }
        }
        th.set_cksum();
        self.builder.append(&th, data).map_err(|e| fail("write", e))
    }

    /// Writes a hard-link entry if this inode was archived before under another name.
    fn hard_link(&mut self, st: &Stat, name: &[u8]) -> Result<bool> {
        if st.st_nlink <= 1 {
            return Ok(false);
        }
        let key = (st.st_dev, st.st_ino);
        let renamed = match &self.opts.rebase {
            Some(r) => r.apply(name),
            None => name.to_vec(),
        };
        if let Some(first) = self.links.get(&key) {
            let first = first.clone();
            let h = EntryHeader::from_stat(st, EntryType::Link);
            self.put(&h, name, Some(&first), &[], io::empty())?;
            return Ok(true);
        }
        self.links.insert(key, renamed);
        Ok(false)
    }

    /// The extended attributes of an open file, when asked for (unreadable ones are left out: an
    /// archive without them is still the tree).
    fn xattrs_of(&self, fd: &OwnedFd) -> Vec<(Vec<u8>, Vec<u8>)> {
        if !self.opts.xattrs {
            return Vec::new();
        }
        let mut names = vec![0u8; 4096];
        let Ok(n) = rustix::fs::flistxattr(fd, &mut names) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for key in names[..n].split(|&b| b == 0).filter(|k| !k.is_empty()) {
            if key.starts_with(b"trusted.overlay.") {
                continue;
            }
            let mut value = vec![0u8; 64 * 1024];
            if let Ok(len) = rustix::fs::fgetxattr(fd, os(key), &mut value) {
                value.truncate(len);
                out.push((key.to_vec(), value));
            }
        }
        out.sort();
        out
    }
}

/// Whether overlayfs marks this directory opaque (its lower layers' contents hidden).
fn is_opaque(dir: &OwnedFd) -> bool {
    let mut v = [0u8; 4];
    matches!(rustix::fs::fgetxattr(dir, OPAQUE_XATTR, &mut v), Ok(1) if v[0] == b'y')
}
