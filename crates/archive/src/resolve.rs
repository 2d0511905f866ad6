//! Opening directories below an extraction root so that no path can leave it.
//!
//! The kernel does it with `openat2`: `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` refuses any symlink on the
//! way (layers, and `cp` to the host), `RESOLVE_IN_ROOT` follows symlinks but clamps them at the root as a
//! chroot would (`cp` into a container, whose own symlinks must mean what they mean inside it). Kernels
//! before 5.6 have no `openat2`; there the same meaning comes from a walk one component at a time, each
//! opened with `O_NOFOLLOW` from the fd of the previous one, with symlinks read and re-resolved from the
//! root fd by this code (so nothing is ever resolved by a path from `/`).

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};

use rustix::fs::{FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How paths below the root resolve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// No symlink is followed at all; one on the way is an error (`ELOOP`).
    Beneath,
    /// Symlinks are followed, absolute ones and `..` clamped at the root, as inside a chroot.
    InRoot,
}

/// The most symlinks one walk follows (the kernel's `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

pub(crate) struct Resolver {
    root: OwnedFd,
    mode: Resolution,
    /// Whether the kernel has `openat2` (probed once per extraction).
    kernel: bool,
}

impl Resolver {
    /// Wraps `root`; probes `openat2` unless `force_walk` asks for the fallback (tests exercise both).
    pub(crate) fn new(root: OwnedFd, mode: Resolution, force_walk: bool) -> Self {
        let kernel = !force_walk
            && !matches!(
                rustix::fs::openat2(
                    &root,
                    ".",
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    ResolveFlags::BENEATH
                ),
                Err(Errno::NOSYS)
            );
        Resolver { root, mode, kernel }
    }

    /// Opens the directory at `path` (components joined by `/`, relative to the root; empty for the
    /// root itself) with `flags` (`O_DIRECTORY` and `O_CLOEXEC` are added).
    pub(crate) fn open_dir(&self, path: &[u8], flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let flags = flags | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let rel: &[u8] = if path.is_empty() { b"." } else { path };
        if self.kernel {
            let how = match self.mode {
                Resolution::Beneath => {
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS
                }
                Resolution::InRoot => ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            };
            let flags = match self.mode {
                Resolution::Beneath => flags | OFlags::NOFOLLOW,
                Resolution::InRoot => flags,
            };
            return rustix::fs::openat2(&self.root, rel, flags, Mode::empty(), how);
        }
        let dir = match self.mode {
            Resolution::Beneath => self.walk_beneath(rel)?,
            Resolution::InRoot => self.walk_in_root(rel)?,
        };
        if flags.contains(OFlags::PATH) {
            return Ok(dir);
        }
        rustix::fs::openat(&dir, ".", flags, Mode::empty())
    }

    /// The fallback of `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: every component a real directory.
    fn walk_beneath(&self, rel: &[u8]) -> rustix::io::Result<OwnedFd> {
        let mut cur = rustix::fs::openat(&self.root, ".", dir_path_flags(), Mode::empty())?;
        for c in rel.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                // RESOLVE_BENEATH refuses a `..` that would leave the root with EXDEV; callers never
                // pass one, so refusing every `..` is the safe reading.
                b".." => return Err(Errno::XDEV),
                c => {
                    let next = rustix::fs::openat(&cur, c, dir_path_flags(), Mode::empty())?;
                    check_dir(&next)?;
                    cur = next;
                }
            }
        }
        Ok(cur)
    }

    /// The fallback of `RESOLVE_IN_ROOT`: symlinks read and resolved here, clamped at the root.
    fn walk_in_root(&self, rel: &[u8]) -> rustix::io::Result<OwnedFd> {
        let mut todo: VecDeque<Vec<u8>> = components(rel).collect();
        // The directories walked so far; the root is never popped.
        let mut stack: Vec<OwnedFd> = Vec::new();
        let mut links = 0usize;
        while let Some(c) = todo.pop_front() {
            if c == b".." {
                stack.pop();
                continue;
            }
            let cur = match stack.last() {
                Some(fd) => fd.as_fd(),
                None => self.root.as_fd(),
            };
            let next = rustix::fs::openat(cur, c.as_slice(), dir_path_flags(), Mode::empty())?;
            let st = rustix::fs::fstat(&next)?;
            match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => stack.push(next),
                FileType::Symlink => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(Errno::LOOP);
                    }
                    let target = rustix::fs::readlinkat(cur, c.as_slice(), Vec::new())?;
                    let target = target.as_bytes();
                    if target.first() == Some(&b'/') {
                        stack.clear();
                    }
                    for t in components(target).collect::<Vec<_>>().into_iter().rev() {
                        todo.push_front(t);
                    }
                }
                _ => return Err(Errno::NOTDIR),
            }
        }
        match stack.pop() {
            Some(fd) => Ok(fd),
            None => rustix::fs::openat(&self.root, ".", dir_path_flags(), Mode::empty()),
        }
    }
}

/// `O_PATH | O_NOFOLLOW`: opens a symlink itself (so the walk can read it) or a directory to continue.
fn dir_path_flags() -> OFlags {
    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

fn check_dir(fd: &OwnedFd) -> rustix::io::Result<()> {
    let st = rustix::fs::fstat(fd)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => Ok(()),
        // What openat2 answers for a symlink under RESOLVE_NO_SYMLINKS.
        FileType::Symlink => Err(Errno::LOOP),
        _ => Err(Errno::NOTDIR),
    }
}

fn components(path: &[u8]) -> impl Iterator<Item = Vec<u8>> + '_ {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
}
