//! Docker's copy-up: when an empty volume is first mounted over a directory that has content in the image, the
//! image's content (ownership, modes, times and extended attributes; the volume's own root takes the image
//! directory's) is copied into the volume.
//!
//! The image is untrusted: its path is resolved with `openat2(RESOLVE_IN_ROOT)` (a symlink at the volume path
//! or on the way to it resolves inside the rootfs, never to the host), and the copy works on directory file
//! descriptors only, opening every entry with `O_NOFOLLOW`: symlinks are copied as symlinks and never
//! followed, on either side. Hard links become separate copies.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat, Timestamps, XattrFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};

/// What a copy-up found.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The image's directory was copied into the volume.
    Copied,
    /// The volume already had content: left alone.
    VolumeNotEmpty,
    /// The image has nothing at the path.
    NoSource,
    /// The image has a file (not a directory) at the path.
    NotADirectory,
}

/// Copies `destination` (a path inside the container) from the mounted rootfs at `rootfs` into the volume data
/// directory `volume`, if the volume is empty and the path is a directory in the image.
pub fn populate(rootfs: &Path, destination: &str, volume: &Path) -> Result<Outcome> {
    let fail = |what: &str, e: Errno| {
        Error::system(
            format!("copying image content at {destination} into the volume: {what}"),
            e,
        )
    };
    let root = rustix::fs::open(
        rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail("opening the rootfs", e))?;
    let rel = destination.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
    let src = match rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
        resolve,
    ) {
        Ok(fd) => fd,
        Err(Errno::NOENT) => return Ok(Outcome::NoSource),
        Err(Errno::NOTDIR) => {
            // Either the path is a file, or a file stands on the way to it.
            return Ok(
                match rustix::fs::openat2(
                    &root,
                    rel,
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                    resolve,
                ) {
                    Ok(_) => Outcome::NotADirectory,
                    Err(_) => Outcome::NoSource,
                },
            );
        }
        Err(e) => return Err(fail("opening the image's directory", e)),
    };
    let dst = rustix::fs::open(
        volume,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| fail("opening the volume", e))?;
    if !is_empty(&dst).map_err(|e| fail("reading the volume", e))? {
        return Ok(Outcome::VolumeNotEmpty);
    }
    copy_dir(&src, &dst).map_err(|e| fail("copying", e))?;
    let st = rustix::fs::fstat(&src).map_err(|e| fail("stat", e))?;
    apply_meta(&dst, &src, &st).map_err(|e| fail("setting the volume's owner and mode", e))?;
    Ok(Outcome::Copied)
}

fn is_empty(dir: &OwnedFd) -> rustix::io::Result<bool> {
    let mut d = rustix::fs::Dir::read_from(dir)?;
    while let Some(entry) = d.read() {
        let name = entry?.file_name().to_bytes().to_vec();
        if name != b"." && name != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Copies every entry of `src` into `dst` (both directories the caller opened).
fn copy_dir(src: &OwnedFd, dst: &OwnedFd) -> rustix::io::Result<()> {
    let mut names = Vec::new();
    let mut d = rustix::fs::Dir::read_from(src)?;
    while let Some(entry) = d.read() {
        let name = entry?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    let no_follow = OFlags::NOFOLLOW | OFlags::CLOEXEC;
    for name in names {
        let st = match rustix::fs::statat(src, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(e),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                // Private until its own metadata is applied, after its content.
                rustix::fs::mkdirat(dst, name.as_c_str(), Mode::from_raw_mode(0o700))?;
                let s = rustix::fs::openat(
                    src,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | no_follow,
                    Mode::empty(),
                )?;
                let d = rustix::fs::openat(
                    dst,
                    name.as_c_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | no_follow,
                    Mode::empty(),
                )?;
                copy_dir(&s, &d)?;
                apply_meta(&d, &s, &st)?;
            }
            FileType::RegularFile => {
                let s = rustix::fs::openat(
                    src,
                    name.as_c_str(),
                    OFlags::RDONLY | no_follow,
                    Mode::empty(),
                )?;
                let d = rustix::fs::openat(
                    dst,
                    name.as_c_str(),
                    OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | no_follow,
                    Mode::from_raw_mode(0o600),
                )?;
                let mut from = std::fs::File::from(s);
                let mut to = std::fs::File::from(d);
                std::io::copy(&mut from, &mut to)
                    .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
                apply_meta(&to, &from, &st)?;
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(src, name.as_c_str(), Vec::new())?;
                rustix::fs::symlinkat(target.as_c_str(), dst, name.as_c_str())?;
                rustix::fs::chownat(
                    dst,
                    name.as_c_str(),
                    Some(rustix::fs::Uid::from_raw(st.st_uid)),
                    Some(rustix::fs::Gid::from_raw(st.st_gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
                // Times are best effort on a symlink (not every file system keeps them).
                let _ = rustix::fs::utimensat(
                    dst,
                    name.as_c_str(),
                    &times(&st),
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
            kind @ (FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo) => {
                rustix::fs::mknodat(
                    dst,
                    name.as_c_str(),
                    kind,
                    Mode::from_raw_mode(0o600),
                    st.st_rdev,
                )?;
                // Metadata through a file descriptor of the node itself (O_PATH, not following anything), and
                // its /proc path for the calls that cannot take an O_PATH descriptor.
                let node = rustix::fs::openat(
                    dst,
                    name.as_c_str(),
                    OFlags::PATH | no_follow,
                    Mode::empty(),
                )?;
                rustix::fs::fchown(
                    &node,
                    Some(rustix::fs::Uid::from_raw(st.st_uid)),
                    Some(rustix::fs::Gid::from_raw(st.st_gid)),
                )
                .or_else(|_| {
                    rustix::fs::chownat(
                        &node,
                        "",
                        Some(rustix::fs::Uid::from_raw(st.st_uid)),
                        Some(rustix::fs::Gid::from_raw(st.st_gid)),
                        AtFlags::EMPTY_PATH,
                    )
                })?;
                let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&node));
                rustix::fs::chmod(proc_path.as_str(), Mode::from_raw_mode(st.st_mode & 0o7777))?;
                // Times are best effort on a node, as on a symlink above.
                let _ = rustix::fs::utimensat(
                    rustix::fs::CWD,
                    proc_path.as_str(),
                    &times(&st),
                    AtFlags::empty(),
                );
            }
            // Sockets only mean something to the process that bound them.
            _ => {}
        }
    }
    Ok(())
}

/// Owner, mode, extended attributes and times of `st` (the source, also open as `src`) onto `dst`. The order
/// matters: chown clears set-id bits and file capabilities, so mode and attributes come after it.
fn apply_meta<D: AsFd, S: AsFd>(dst: D, src: S, st: &Stat) -> rustix::io::Result<()> {
    rustix::fs::fchown(
        &dst,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(&dst, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    copy_xattrs(&src, &dst);
    rustix::fs::futimens(&dst, &times(st))
}

/// Copies the extended attributes the kernel lets us read and write; the others (unsupported by the volume's
/// file system, or reserved) are skipped, as dockerd skips them.
fn copy_xattrs<S: AsFd, D: AsFd>(src: S, dst: D) {
    let mut list = vec![0u8; 64 * 1024];
    let Ok(n) = rustix::fs::flistxattr(&src, &mut list[..]) else {
        return;
    };
    let mut value = vec![0u8; 64 * 1024];
    for name in list[..n].split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let Ok(name) = std::ffi::CString::new(name) else {
            continue;
        };
        if let Ok(len) = rustix::fs::fgetxattr(&src, name.as_c_str(), &mut value[..]) {
            // Skipped when the volume's file system refuses it (see above).
            let _ =
                rustix::fs::fsetxattr(&dst, name.as_c_str(), &value[..len], XattrFlags::empty());
        }
    }
}

fn times(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime as _,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime as _,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn copies_content_owner_and_mode_and_keeps_symlinks_as_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let vol = tempfile::tempdir().unwrap();
        let src = root.path().join("srv/data");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f.txt"), "hello").unwrap();
        std::fs::set_permissions(
            src.join("sub/f.txt"),
            std::fs::Permissions::from_mode(0o640),
        )
        .unwrap();
        std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        let uid = rustix::process::geteuid().as_raw();
        if uid == 0 {
            std::os::unix::fs::chown(&src, Some(1000), Some(1001)).unwrap();
            std::os::unix::fs::lchown(src.join("link"), Some(7), Some(8)).unwrap();
        }

        assert_eq!(
            populate(root.path(), "/srv/data", vol.path()).unwrap(),
            Outcome::Copied
        );
        assert_eq!(
            std::fs::read_to_string(vol.path().join("sub/f.txt")).unwrap(),
            "hello"
        );
        let f = std::fs::metadata(vol.path().join("sub/f.txt")).unwrap();
        assert_eq!(f.permissions().mode() & 0o7777, 0o640);
        let top = std::fs::metadata(vol.path()).unwrap();
        assert_eq!(
            top.permissions().mode() & 0o7777,
            0o750,
            "the volume root takes the image dir's mode"
        );
        let link = std::fs::symlink_metadata(vol.path().join("link")).unwrap();
        assert!(link.file_type().is_symlink());
        assert_eq!(
            std::fs::read_link(vol.path().join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        if uid == 0 {
            assert_eq!((top.uid(), top.gid()), (1000, 1001));
            assert_eq!((link.uid(), link.gid()), (7, 8));
        }
        // Not empty any more: a second populate leaves it alone.
        std::fs::write(src.join("new"), "x").unwrap();
        assert_eq!(
            populate(root.path(), "/srv/data", vol.path()).unwrap(),
            Outcome::VolumeNotEmpty
        );
        assert!(!vol.path().join("new").exists());
    }

    #[test]
    fn a_symlinked_volume_path_resolves_inside_the_rootfs_only() {
        let root = tempfile::tempdir().unwrap();
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("secret"), "host data").unwrap();
        // /data -> <host dir> (absolute): inside the root that path does not exist.
        std::os::unix::fs::symlink(host.path(), root.path().join("data")).unwrap();
        // /up -> ../../../.. : clamps at the rootfs's own root.
        std::os::unix::fs::symlink("../../../..", root.path().join("up")).unwrap();
        std::fs::write(root.path().join("file"), "x").unwrap();
        let vol = tempfile::tempdir().unwrap();
        assert_eq!(
            populate(root.path(), "/data", vol.path()).unwrap(),
            Outcome::NoSource
        );
        assert_eq!(
            populate(root.path(), "/file", vol.path()).unwrap(),
            Outcome::NotADirectory
        );
        assert_eq!(
            populate(root.path(), "/missing/x", vol.path()).unwrap(),
            Outcome::NoSource
        );
        assert_eq!(
            populate(root.path(), "/up", vol.path()).unwrap(),
            Outcome::Copied
        );
        assert!(
            vol.path().join("file").exists(),
            "copied the rootfs itself, nothing above it"
        );
        assert!(!vol.path().join("secret").exists());
    }
}
