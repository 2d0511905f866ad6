//! `docker diff`: what a container changed, read from its overlay upper dir (`diff/`) and compared with the
//! image's layers, in the order and with the rules of Docker's overlay driver: a whiteout (char 0:0) or an
//! opaque directory is a deletion, a path the layers have is a modification (a directory only when its size,
//! mode or mtime differ), anything else an addition, and the parent of an addition or deletion is reported
//! modified before it.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};
use rustix::io::Errno;

/// Mount points the runtime creates in a container's rootfs for the files and filesystems every container
/// gets. Docker keeps them in a separate "init" layer below the container's, so `docker diff` never lists
/// them; Berth's runtime makes them in the upper dir, so they are left out here.
const INIT_PATHS: &[&str] = &[
    "/.dockerenv",
    "/dev",
    "/dev/console",
    "/dev/mqueue",
    "/dev/pts",
    "/dev/shm",
    "/etc/hostname",
    "/etc/hosts",
    "/etc/mtab",
    "/etc/resolv.conf",
    "/proc",
    "/sys",
];

/// A change's kind, as the API numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// 0: modified.
    Modified = 0,
    /// 1: added.
    Added = 1,
    /// 2: deleted.
    Deleted = 2,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute path in the container.
    pub path: String,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// Walks `upper` against `lowers` (topmost first).
pub(crate) fn changes(upper: &Path, lowers: &[PathBuf]) -> std::io::Result<Vec<Change>> {
    let open_dir = |p: &Path| {
        rustix::fs::open(
            p,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let top = match open_dir(upper) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let lowers: Vec<OwnedFd> = lowers.iter().filter_map(|l| open_dir(l).ok()).collect();
    let mut w = Walker {
        lowers,
        out: Vec::new(),
        changed_dirs: HashSet::new(),
    };
    w.walk(&top, "")?;
    Ok(w.out)
}

struct Walker {
    lowers: Vec<OwnedFd>,
    out: Vec<Change>,
    changed_dirs: HashSet<String>,
}

impl Walker {
    fn walk(&mut self, dir: &OwnedFd, prefix: &str) -> std::io::Result<()> {
        let mut names: Vec<String> = Vec::new();
        for ent in rustix::fs::Dir::read_from(dir)? {
            let ent = ent?;
            let n = ent.file_name().to_string_lossy().into_owned();
            if n != "." && n != ".." {
                names.push(n);
            }
        }
        names.sort();
        for name in names {
            // aufs metadata never means anything here.
            if name.starts_with(".wh..wh.") {
                continue;
            }
            let path = format!("{prefix}/{name}");
            if INIT_PATHS.contains(&path.as_str()) && self.in_lower(&path).is_none() {
                continue;
            }
            let st = match rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(s) => s,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let ft = FileType::from_raw_mode(st.st_mode);
            let is_dir = ft == FileType::Directory;
            let sub = if is_dir {
                rustix::fs::openat(
                    dir,
                    name.as_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()
            } else {
                None
            };
            let deleted = is_whiteout(&st) || sub.as_ref().is_some_and(is_opaque);
            let kind = if deleted {
                Some(ChangeKind::Deleted)
            } else {
                match self.in_lower(&path) {
                    None => Some(ChangeKind::Added),
                    Some(lower) => {
                        let same_dir = is_dir
                            && FileType::from_raw_mode(lower.st_mode) == FileType::Directory
                            && lower.st_size == st.st_size
                            && lower.st_mode == st.st_mode
                            && same_time(&lower, &st);
                        if same_dir || (is_dir && only_init_entries(sub.as_ref(), &path)) {
                            None
                        } else {
                            Some(ChangeKind::Modified)
                        }
                    }
                }
            };
            if let Some(kind) = kind {
                if is_dir {
                    self.changed_dirs.insert(path.clone());
                }
                if kind != ChangeKind::Modified {
                    let parent = if prefix.is_empty() { "/" } else { prefix };
                    if parent != "/" && !self.changed_dirs.contains(parent) {
                        self.out.push(Change {
                            path: parent.to_owned(),
                            kind: ChangeKind::Modified,
                        });
                        self.changed_dirs.insert(parent.to_owned());
                    }
                }
                self.out.push(Change {
                    path: path.clone(),
                    kind,
                });
            }
            if let Some(sub) = sub {
                self.walk(&sub, &path)?;
            }
        }
        Ok(())
    }

    /// The path's metadata in the topmost layer that has it (a whiteout there hides it).
    fn in_lower(&self, path: &str) -> Option<Stat> {
        let rel = path.trim_start_matches('/');
        for l in &self.lowers {
            match rustix::fs::openat2(
                l,
                rel,
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
            ) {
                Ok(fd) => {
                    let st = rustix::fs::fstat(&fd).ok()?;
                    return if is_whiteout(&st) { None } else { Some(st) };
                }
                Err(_) => continue,
            }
        }
        None
    }
}

/// True when a directory's upper copy holds nothing but init mount points (copied up only to make them).
fn only_init_entries(dir: Option<&OwnedFd>, path: &str) -> bool {
    let Some(dir) = dir else { return false };
    let Ok(entries) = rustix::fs::Dir::read_from(dir) else {
        return false;
    };
    let mut any = false;
    for ent in entries.flatten() {
        let n = ent.file_name().to_string_lossy().into_owned();
        if n == "." || n == ".." {
            continue;
        }
        any = true;
        if !INIT_PATHS.contains(&format!("{path}/{n}").as_str()) {
            return false;
        }
    }
    any
}

fn is_whiteout(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::CharacterDevice && st.st_rdev == 0
}

fn is_opaque(dir: &OwnedFd) -> bool {
    let mut buf = [0u8; 4];
    matches!(
        rustix::fs::fgetxattr(dir, "trusted.overlay.opaque", &mut buf),
        Ok(1) if buf[0] == b'y'
    )
}

/// Go's `sameFsTime`: equal, or equal seconds when either side has no sub-second part.
fn same_time(a: &Stat, b: &Stat) -> bool {
    a.st_mtime == b.st_mtime
        && (a.st_mtime_nsec == b.st_mtime_nsec || a.st_mtime_nsec == 0 || b.st_mtime_nsec == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_dirs_read_as_dockers_changes() {
        let d = tempfile::tempdir().unwrap();
        let lower = d.path().join("lower");
        let upper = d.path().join("upper");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::write(lower.join("etc/passwd"), b"root").unwrap();
        std::fs::write(lower.join("gone"), b"x").unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/passwd"), b"root2").unwrap();
        std::fs::write(upper.join("etc/new"), b"n").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            upper.join("gone"),
            FileType::CharacterDevice,
            Mode::empty(),
            0,
        )
        .unwrap();
        std::fs::create_dir_all(upper.join("srv/app")).unwrap();
        let got = changes(&upper, &[lower]).unwrap();
        let shown: Vec<(u8, &str)> = got
            .iter()
            .map(|c| (c.kind as u8, c.path.as_str()))
            .collect();
        assert_eq!(
            shown,
            vec![
                (0, "/etc"),
                (1, "/etc/new"),
                (0, "/etc/passwd"),
                (2, "/gone"),
                (1, "/srv"),
                (1, "/srv/app"),
            ]
        );
    }
}
