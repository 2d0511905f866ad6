//! A container's root filesystem: the image's snapshots as overlay lower dirs, with the container's own
//! upper and work dirs, mounted at `DATA_ROOT/containers/<id>/rootfs` while it runs.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The directories of one container's writable layer and mount point.
pub struct Layout {
    /// Changes the container makes.
    pub upper: PathBuf,
    /// overlayfs's scratch dir (same file system as `upper`).
    pub work: PathBuf,
    /// Where the merged view is mounted.
    pub merged: PathBuf,
}

impl Layout {
    /// The layout under a container's directory.
    pub fn new(dir: &Path) -> Layout {
        Layout {
            upper: dir.join("diff"),
            work: dir.join("work"),
            merged: dir.join("rootfs"),
        }
    }

    /// Mounts the overlay; `lower` is topmost first, as overlayfs wants it.
    pub fn mount(&self, lower: &[PathBuf]) -> Result<()> {
        for d in [&self.upper, &self.work, &self.merged] {
            std::fs::create_dir_all(d)
                .map_err(|e| Error::System(format!("creating {}: {e}", d.display())))?;
        }
        if is_mount_point(&self.merged) {
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
        .map_err(|e| Error::System(format!("mounting the container's rootfs (overlay): {e}")))
    }

    /// Unmounts the overlay (lazily, so a straggling process cannot block it).
    pub fn unmount(&self) -> Result<()> {
        if !is_mount_point(&self.merged) {
            return Ok(());
        }
        rustix::mount::unmount(&self.merged, rustix::mount::UnmountFlags::DETACH)
            .map_err(|e| Error::System(format!("unmounting {}: {e}", self.merged.display())))
    }
}

/// True when `path` is the root of a mount (its device differs from its parent's, or mountinfo lists it).
fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let target = path.display().to_string();
    info.lines()
        .any(|l| l.split(' ').nth(4) == Some(target.as_str()))
}
