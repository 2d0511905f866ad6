//! A container's root filesystem: the image's snapshots as overlay lower dirs, with the container's own
//! upper and work dirs, mounted at `DATA_ROOT/containers/<id>/rootfs` while it runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use crate::error::{Context, Error, Result};

/// How many archive operations (`cp`, `export`) hold each mounted rootfs, keyed by mount point. Mounting and
/// unmounting take this lock, so a start racing a `cp` on a stopped container never sees its rootfs unmounted
/// underneath it, and an exit does not unmount a rootfs a `cp` still reads.
static USERS: Mutex<Option<HashMap<PathBuf, usize>>> = Mutex::new(None);

fn users() -> MutexGuard<'static, Option<HashMap<PathBuf, usize>>> {
    USERS.lock().unwrap_or_else(|p| p.into_inner())
}

/// The directories of one container's writable layer and mount point.
pub struct Layout {
    /// Changes the container makes.
    pub upper: PathBuf,
    /// overlayfs's scratch dir (same file system as `upper`).
    pub work: PathBuf,
    /// Where the merged view is mounted.
    pub merged: PathBuf,
    /// The `/dev/shm` of a container started with `--ipc shareable`: a tmpfs mounted on the host side, so
    /// that the containers joining its IPC namespace can bind the same one (a mount inside the container's
    /// own mount namespace cannot be bound from another).
    pub shm: PathBuf,
}

impl Layout {
    /// The layout under a container's directory.
    pub fn new(dir: &Path) -> Layout {
        Layout {
            upper: dir.join("diff"),
            work: dir.join("work"),
            merged: dir.join("rootfs"),
            shm: dir.join("shm"),
        }
    }

    /// Puts `/.dockerenv` in the not yet mounted upper dir, so that a created container has it (for `cp` and
    /// `export`) as dockerd's init layer gives it from create on. Overlayfs allows changes to an upper dir
    /// while it is not mounted.
    pub fn make_dockerenv(&self) -> Result<()> {
        std::fs::create_dir_all(&self.upper)
            .with_context(|| format!("creating {}", self.upper.display()))?;
        ensure_dockerenv(&self.upper, None)
    }

    /// With `--userns-remap` (`root` the remapped root's host ids): the container's directory is searchable
    /// by the remapped root's group alone (0710, as dockerd makes it), so that the container's init, which
    /// becomes that root before it mounts anything, reaches its rootfs and the files bound into it; and
    /// the writable layer's top (the container's `/`) is that root's.
    pub fn give_to_remapped_root(&self, dir: &Path, (uid, gid): (u32, u32)) -> Result<()> {
        crate::host::confine(dir, 0o710, rustix::fs::Gid::from_raw(gid))?;
        std::fs::create_dir_all(&self.upper)
            .with_context(|| format!("creating {}", self.upper.display()))?;
        chown(&self.upper, (uid, gid))
    }

    /// Mounts the overlay; `lower` is topmost first, as overlayfs wants it.
    pub fn mount(&self, lower: &[PathBuf]) -> Result<()> {
        let _held = users();
        self.mount_locked(lower)
    }

    /// Mounts the overlay if needed and counts one more archive user of it.
    pub fn acquire(&self, lower: &[PathBuf]) -> Result<()> {
        let mut held = users();
        self.mount_locked(lower)?;
        *held
            .get_or_insert_with(HashMap::new)
            .entry(self.merged.clone())
            .or_default() += 1;
        Ok(())
    }

    /// Ends one archive user; the last one unmounts unless `in_use` says the container needs the mount
    /// (it is running or starting).
    pub fn release(&self, in_use: impl FnOnce() -> bool) {
        let mut held = users();
        let map = held.get_or_insert_with(HashMap::new);
        let left = match map.get_mut(&self.merged) {
            Some(n) => {
                *n = n.saturating_sub(1);
                *n
            }
            None => 0,
        };
        if left == 0 {
            map.remove(&self.merged);
            if !in_use() {
                if let Err(e) = self.unmount_locked() {
                    tracing::warn!(error = %e, "unmounting a rootfs after an archive operation");
                }
            }
        }
    }

    fn mount_locked(&self, lower: &[PathBuf]) -> Result<()> {
        for d in [&self.upper, &self.work, &self.merged] {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
        }
        if crate::host::is_mount_point(&self.merged) {
            return Ok(());
        }
        if lower.is_empty() {
            return Err(Error::System("image has no layers".into()));
        }
        let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lowers.join(":"),
            self.upper.display(),
            self.work.display()
        );
        let data = std::ffi::CString::new(data)
            .map_err(|_| Error::System("overlay options contain a NUL byte".into()))?;
        rustix::mount::mount(
            "overlay",
            &self.merged,
            "overlay",
            rustix::mount::MountFlags::empty(),
            data.as_c_str(),
        )
        .context("mounting the container's rootfs (overlay)")
    }

    /// Mounts the shareable `/dev/shm` (a tmpfs of `size` bytes) unless it is mounted.
    pub fn mount_shm(&self, size: i64) -> Result<()> {
        use rustix::mount::{mount, MountFlags};
        std::fs::create_dir_all(&self.shm)
            .with_context(|| format!("creating {}", self.shm.display()))?;
        if crate::host::is_mount_point(&self.shm) {
            return Ok(());
        }
        let data = std::ffi::CString::new(format!("mode=1777,size={size}"))
            .map_err(|_| Error::System("shm options".into()))?;
        mount(
            "shm",
            &self.shm,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
            data.as_c_str(),
        )
        .context("mounting the shareable /dev/shm")
    }

    /// Unmounts the overlay (lazily, so a straggling process cannot block it); left mounted while an archive
    /// operation uses it (its last user unmounts it). A shareable `/dev/shm` goes in any case: archive
    /// operations do not read it.
    pub fn unmount(&self) -> Result<()> {
        if crate::host::is_mount_point(&self.shm) {
            if let Err(e) = rustix::mount::unmount(&self.shm, rustix::mount::UnmountFlags::DETACH) {
                tracing::warn!(path = %self.shm.display(), error = %e, "unmounting the shareable /dev/shm");
            }
        }
        let held = users();
        if held
            .as_ref()
            .is_some_and(|m| m.get(&self.merged).is_some_and(|n| *n > 0))
        {
            return Ok(());
        }
        self.unmount_locked()
    }

    fn unmount_locked(&self) -> Result<()> {
        if !crate::host::is_mount_point(&self.merged) {
            return Ok(());
        }
        rustix::mount::unmount(&self.merged, rustix::mount::UnmountFlags::DETACH)
            .with_context(|| format!("unmounting {}", self.merged.display()))
    }
}

/// Gives `path` (never followed if a symlink) to `uid:gid`.
pub fn chown(path: &Path, (uid, gid): (u32, u32)) -> Result<()> {
    rustix::fs::chownat(
        rustix::fs::CWD,
        path,
        Some(rustix::fs::Uid::from_raw(uid)),
        Some(rustix::fs::Gid::from_raw(gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .with_context(|| format!("chown {}", path.display()))
}

/// Makes `/.dockerenv`, the empty file by which programs tell they run in a container (dockerd puts it in
/// every container's init layer). Never through a symlink the image may have there.
/// With `owner` (host ids), the file is given to them (a remapped container's root).
pub fn ensure_dockerenv(root: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    use rustix::fs::{Mode, OFlags};
    let dir = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("opening {}", root.display()))?;
    match rustix::fs::openat(
        &dir,
        ".dockerenv",
        OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::from_raw_mode(0o755),
    ) {
        Ok(fd) => match owner {
            Some((uid, gid)) => rustix::fs::fchown(
                &fd,
                Some(rustix::fs::Uid::from_raw(uid)),
                Some(rustix::fs::Gid::from_raw(gid)),
            )
            .map_err(|e| Error::system("giving /.dockerenv to the container's root", e)),
            None => Ok(()),
        },
        // A symlink (ELOOP) or anything else the image put there is left as it is.
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::ISDIR) => Ok(()),
        Err(e) => Err(Error::system("making /.dockerenv", e)),
    }
}

/// Creates `path` (absolute, as the container sees it) inside `root` with its missing parents, owned by
/// `uid:gid`, as dockerd creates a missing working directory before the container starts (so it exists even
/// with `--read-only`). Every step resolves inside `root` (`RESOLVE_IN_ROOT`): symlinks in the image cannot
/// lead the creation out of it.
pub fn ensure_dir_in(root: &Path, path: &str, uid: u32, gid: u32) -> Result<()> {
    use rustix::fs::{mkdirat, openat2, Mode, OFlags, ResolveFlags};
    let fail =
        |e: rustix::io::Errno| Error::system(format!("creating the working directory {path}"), e);
    let root_fd = rustix::fs::open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fail)?;
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut prefix = String::new();
    for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
        let parent = if prefix.is_empty() {
            ".".to_owned()
        } else {
            prefix.clone()
        };
        prefix = format!("{prefix}/{comp}")
            .trim_start_matches('/')
            .to_owned();
        match openat2(
            &root_fd,
            prefix.as_str(),
            flags,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        ) {
            Ok(_) => continue,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(fail(e)),
        }
        let dir = openat2(
            &root_fd,
            parent.as_str(),
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        )
        .map_err(fail)?;
        match mkdirat(&dir, comp, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(fail(e)),
        }
        let made = openat2(
            &dir,
            comp,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH,
        )
        .map_err(fail)?;
        rustix::fs::fchown(
            &made,
            Some(rustix::fs::Uid::from_raw(uid)),
            Some(rustix::fs::Gid::from_raw(gid)),
        )
        .map_err(fail)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn working_dirs_are_made_inside_the_root_even_through_absolute_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("real")).unwrap();
        std::os::unix::fs::symlink("/real", root.path().join("link")).unwrap();
        ensure_dir_in(root.path(), "/link/work/dir", 1000, 1000).unwrap();
        let made = root.path().join("real/work/dir");
        assert!(
            made.is_dir(),
            "the absolute symlink resolved inside the root"
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&made).unwrap().uid(), 1000);
        // A symlink to a host path that does not exist in the root: refused, and nothing made outside.
        std::os::unix::fs::symlink(outside.path(), root.path().join("out")).unwrap();
        assert!(ensure_dir_in(root.path(), "/out/work", 0, 0).is_err());
        assert!(!outside.path().join("work").exists());
        ensure_dir_in(root.path(), "/srv/app", 0, 0).unwrap();
        assert!(root.path().join("srv/app").is_dir());
    }
}
