//! Tar streams of a container's files (`cp` out of a container, `export`), read through directory fds with
//! `O_NOFOLLOW` at every step below the already-resolved start, so a container that swaps a directory for a
//! symlink while it is archived cannot make the daemon read host files.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;
use tar::{EntryType, Header};

/// Filesystems whose contents are the kernel's, not the container's: archived as empty directories.
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

/// Writes tar entries for files found through fds.
pub(crate) struct TarWriter<W: Write> {
    builder: tar::Builder<W>,
    /// First archived name of every multiply-linked file, for hard-link entries.
    links: HashMap<(u64, u64), String>,
}

impl<W: Write> TarWriter<W> {
    pub(crate) fn new(w: W) -> Self {
        let mut builder = tar::Builder::new(w);
        builder.follow_symlinks(false);
        TarWriter {
            builder,
            links: HashMap::new(),
        }
    }

    /// Writes the end-of-archive blocks.
    pub(crate) fn finish(mut self) -> io::Result<()> {
        self.builder.finish()?;
        self.builder.get_mut().flush()
    }

    /// Archives the entry `leaf` of directory `parent` under `name` (a directory recursively, its root entry
    /// included unless `name` is empty).
    pub(crate) fn append_at(&mut self, parent: &OwnedFd, leaf: &str, name: &str) -> io::Result<()> {
        let st = rustix::fs::statat(parent, leaf, AtFlags::SYMLINK_NOFOLLOW)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                let dir = rustix::fs::openat(
                    parent,
                    leaf,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                self.append_dir(&dir, name, None)
            }
            FileType::RegularFile => {
                let fd = match rustix::fs::openat(
                    parent,
                    leaf,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(fd) => fd,
                    // Gone since it was listed (a running container changes its files): skip it.
                    Err(Errno::NOENT) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                let st = rustix::fs::fstat(&fd)?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Ok(());
                }
                if self.hard_link(&st, name)? {
                    return Ok(());
                }
                let mut h = header(&st, EntryType::Regular);
                h.set_size(st.st_size as u64);
                // Exactly the size announced, whatever the file does meanwhile.
                let size = st.st_size as u64;
                let data = std::fs::File::from(fd)
                    .take(size)
                    .chain(io::repeat(0))
                    .take(size);
                self.put(h, name, None, data)
            }
            FileType::Symlink => {
                let target = match rustix::fs::readlinkat(parent, leaf, Vec::new()) {
                    Ok(t) => t,
                    Err(Errno::NOENT) | Err(Errno::INVAL) => return Ok(()),
                    Err(e) => return Err(e.into()),
                };
                let h = header(&st, EntryType::Symlink);
                self.put(h, name, Some(target.as_bytes()), io::empty())
            }
            FileType::Fifo | FileType::CharacterDevice | FileType::BlockDevice => {
                if self.hard_link(&st, name)? {
                    return Ok(());
                }
                let kind = match FileType::from_raw_mode(st.st_mode) {
                    FileType::Fifo => EntryType::Fifo,
                    FileType::CharacterDevice => EntryType::Char,
                    _ => EntryType::Block,
                };
                let mut h = header(&st, kind);
                if kind != EntryType::Fifo {
                    h.set_device_major(rustix::fs::major(st.st_rdev))?;
                    h.set_device_minor(rustix::fs::minor(st.st_rdev))?;
                }
                self.put(h, name, None, io::empty())
            }
            // Sockets cannot be archived; Docker skips them too.
            _ => Ok(()),
        }
    }

    /// Archives an open directory: its own entry (unless `name` is empty) and everything below it, sorted
    /// by name as Go's walk does. `parent_dev` is the device of the directory holding it.
    pub(crate) fn append_dir(
        &mut self,
        dir: &OwnedFd,
        name: &str,
        parent_dev: Option<u64>,
    ) -> io::Result<()> {
        let st = rustix::fs::fstat(dir)?;
        if !name.is_empty() {
            let h = header(&st, EntryType::Directory);
            let shown = if name.ends_with('/') {
                name.to_owned()
            } else {
                format!("{name}/")
            };
            self.put(h, &shown, None, io::empty())?;
        }
        // The start of a copy, or a mount point below it: kernel filesystems are not walked (a running
        // container's /proc holds the same files for every process, and reading some blocks).
        if parent_dev.is_none_or(|d| d != st.st_dev) {
            if let Ok(fs) = rustix::fs::fstatfs(dir) {
                if PSEUDO_FS.contains(&(fs.f_type as i64)) {
                    return Ok(());
                }
            }
        }
        let mut children: Vec<String> = Vec::new();
        for ent in rustix::fs::Dir::read_from(dir)? {
            let ent = ent?;
            let n = ent.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            children.push(String::from_utf8_lossy(n).into_owned());
        }
        children.sort();
        for child in children {
            let child_name = if name.is_empty() {
                child.clone()
            } else if name.ends_with('/') {
                format!("{name}{child}")
            } else {
                format!("{name}/{child}")
            };
            let cst = match rustix::fs::statat(dir, child.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(s) => s,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            if FileType::from_raw_mode(cst.st_mode) == FileType::Directory {
                let sub = match rustix::fs::openat(
                    dir,
                    child.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                ) {
                    Ok(s) => s,
                    Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => continue,
                    Err(e) => return Err(e.into()),
                };
                self.append_dir(&sub, &child_name, Some(st.st_dev))?;
            } else {
                self.append_at(dir, &child, &child_name)?;
            }
        }
        Ok(())
    }

    /// Appends an entry with its name (and link target) written as given: Docker's archives use names the
    /// tar crate would normalise (`./x`, and `/bin` when the container's root is copied). Names and targets
    /// longer than the header's 100 bytes travel in a PAX record, as Go's archive/tar writes them.
    fn put(
        &mut self,
        mut h: Header,
        name: &str,
        link: Option<&[u8]>,
        data: impl Read,
    ) -> io::Result<()> {
        let mut pax: Vec<(&str, &[u8])> = Vec::new();
        if name.len() > 100 {
            pax.push(("path", name.as_bytes()));
        }
        if let Some(l) = link.filter(|l| l.len() > 100) {
            pax.push(("linkpath", l));
        }
        if !pax.is_empty() {
            self.builder.append_pax_extensions(pax)?;
        }
        if let Some(g) = h.as_gnu_mut() {
            let n = name.len().min(100);
            g.name = [0; 100];
            g.name[..n].copy_from_slice(&name.as_bytes()[..n]);
            if let Some(l) = link {
                let n = l.len().min(100);
                g.linkname = [0; 100];
                g.linkname[..n].copy_from_slice(&l[..n]);
            }
        }
        h.set_cksum();
        self.builder.append(&h, data)
    }

    /// Writes a hard-link entry if this inode was archived before under another name.
    fn hard_link(&mut self, st: &Stat, name: &str) -> io::Result<bool> {
        if st.st_nlink <= 1 {
            return Ok(false);
        }
        let key = (st.st_dev, st.st_ino);
        if let Some(first) = self.links.get(&key) {
            let first = first.clone();
            let h = header(st, EntryType::Link);
            self.put(h, name, Some(first.as_bytes()), io::empty())?;
            return Ok(true);
        }
        self.links.insert(key, name.to_owned());
        Ok(false)
    }
}

fn header(st: &Stat, kind: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(u64::from(st.st_uid));
    h.set_gid(u64::from(st.st_gid));
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_archived_sorted_with_links_and_without_following_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path().join("root");
        std::fs::create_dir_all(r.join("d/sub")).unwrap();
        std::fs::write(r.join("d/b"), b"hello").unwrap();
        std::fs::hard_link(r.join("d/b"), r.join("d/a")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("d/link")).unwrap();
        let root = rustix::fs::open(&r, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let mut out = Vec::new();
        let mut w = TarWriter::new(&mut out);
        w.append_at(&root, "d", "renamed").unwrap();
        w.finish().unwrap();
        let mut a = tar::Archive::new(&out[..]);
        let names: Vec<(String, EntryType)> = a
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("renamed/".to_owned(), EntryType::Directory),
                ("renamed/a".to_owned(), EntryType::Regular),
                ("renamed/b".to_owned(), EntryType::Link),
                ("renamed/link".to_owned(), EntryType::Symlink),
                ("renamed/sub/".to_owned(), EntryType::Directory),
            ]
        );
    }
}
