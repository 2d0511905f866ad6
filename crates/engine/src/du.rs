//! How much a directory tree holds, counted as dockerd counts a container's writable layer, a volume or a
//! build cache (`SizeRw`, `system df`, the prunes' `SpaceReclaimed`).
//!
//! dockerd's overlay2 driver sums the apparent sizes (`lstat`'s `st_size`, not the blocks allocated) of every
//! entry that is not a directory, each inode once (hard links), and never follows a symlink: a link counts as
//! the length of its target. The walk here does the same through directory file descriptors (`openat` with
//! `O_NOFOLLOW`), so a symlink in a container's layer or a volume can never lead it outside the tree, and it
//! only stats what it must: directories are told by the entry's type and never stat'ed, and only files with
//! more than one link go into the set of inodes already counted.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// The bytes held under `root` (see the module's comment). A missing `root` is an error, as in dockerd; an
/// entry that disappears during the walk (a running container deleting files) is skipped.
pub(crate) fn dir_size(root: &Path) -> std::io::Result<u64> {
    let top = rustix::fs::open(root, DIR_FLAGS, Mode::empty())?;
    let mut linked: HashSet<(u64, u64)> = HashSet::new();
    let mut total = 0u64;
    // Directories still to read. Only the directories on the way down to the one being read stay open, so the
    // open descriptors grow with the tree's depth, not its breadth.
    let mut pending: Vec<OwnedFd> = vec![top];
    while let Some(dir) = pending.pop() {
        let entries = match Dir::read_from(&dir) {
            Ok(d) => d,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e.into()),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            let kind = entry.file_type();
            if kind == FileType::Directory {
                match rustix::fs::openat(&dir, name, DIR_FLAGS, Mode::empty()) {
                    Ok(fd) => pending.push(fd),
                    // Gone, or replaced by something that is not a directory since it was listed.
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            let st = match rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let st_kind = FileType::from_raw_mode(st.st_mode);
            if st_kind == FileType::Directory {
                // The file system gave no type in the entry (DT_UNKNOWN).
                match rustix::fs::openat(&dir, name, DIR_FLAGS, Mode::empty()) {
                    Ok(fd) => pending.push(fd),
                    Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => {}
                    Err(e) => return Err(e.into()),
                }
                continue;
            }
            let size = st.st_size.max(0) as u64;
            if size == 0 {
                continue;
            }
            if st.st_nlink > 1 && !linked.insert((st.st_dev, st.st_ino)) {
                continue;
            }
            total += size;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_apparent_sizes_once_per_inode_and_never_follows_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("layer");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::write(root.join("a/one"), vec![1u8; 1000]).unwrap();
        std::fs::write(root.join("a/b/c/two"), vec![2u8; 25]).unwrap();
        std::fs::hard_link(root.join("a/one"), root.join("a/b/hard")).unwrap();
        // A sparse file counts its apparent size, as dockerd's walk does.
        let sparse = std::fs::File::create(root.join("sparse")).unwrap();
        sparse.set_len(1 << 20).unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        // Outside the tree: big, and reachable only through symlinks.
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("big"), vec![0u8; 5000]).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("to-dir")).unwrap();
        std::os::unix::fs::symlink(outside.join("big"), root.join("a/to-file")).unwrap();
        let links = outside.as_os_str().len() + outside.join("big").as_os_str().len();
        assert_eq!(
            dir_size(&root).unwrap(),
            1000 + 25 + (1 << 20) + links as u64
        );
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        assert!(dir_size(&t.path().join("nope")).is_err());
        assert_eq!(dir_size(t.path()).unwrap(), 0);
    }
}
