//! `docker cp`, `docker diff` and `docker export`: stat, archive and extract paths of a container, list
//! its changes, and export its filesystem.
//!
//! Where the files are read: a running container through `/proc/<pid>/root` (its own mount namespace, so
//! its bind mounts and tmpfs mounts are seen as the container sees them, as with Docker), after checking
//! that this root is the container's overlay (a recycled pid cannot point the daemon at another process's
//! root); a stopped or created one through its overlay rootfs, mounted for the operation and unmounted
//! after (`rootfs.rs` counts users, so a concurrent start or exit does not pull the mount away). Every
//! path is then resolved by the kernel inside that root (`inroot.rs`, and the `archive` crate's container
//! mode for extraction).

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use super::changes::Change;
use super::inroot;
use super::record::{Container, Status};
use super::rootfs::Layout;
use crate::error::{Context, Error, Result};
use crate::Engine;

/// What `X-Docker-Container-Path-Stat` describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    /// Base name of the requested path.
    pub name: String,
    /// Size in bytes.
    pub size: i64,
    /// Go's `os.FileMode` bits.
    pub mode: u32,
    /// Modification time, RFC 3339 with nanoseconds.
    pub mtime: String,
    /// For a symlink, its target resolved inside the container.
    pub link_target: String,
}

impl PathStat {
    /// The header value: base64 of the JSON Docker sends (keys in Go's struct order).
    pub fn header_value(&self) -> String {
        let json = format!(
            "{{\"name\":{},\"size\":{},\"mode\":{},\"mtime\":{},\"linkTarget\":{}}}",
            serde_json::Value::from(self.name.as_str()),
            self.size,
            self.mode,
            serde_json::Value::from(self.mtime.as_str()),
            serde_json::Value::from(self.link_target.as_str()),
        );
        inroot::base64(json.as_bytes())
    }
}

/// Options of `PUT /containers/{id}/archive`.
#[derive(Debug, Clone, Default)]
pub struct ExtractRequest {
    /// The destination directory (`path`).
    pub path: String,
    /// `noOverwriteDirNonDir`.
    pub no_overwrite_dir_non_dir: bool,
    /// `copyUIDGID`: files take the container user's uid/gid.
    pub copy_uid_gid: bool,
}

/// A tar stream still to be written (the rootfs stays held until it has been).
pub struct ArchiveJob {
    root: RootGuard,
    kind: JobKind,
    /// `--userns-remap`: the entries carry the ids the container sees, as dockerd's archives do.
    id_map: Option<::archive::IdMap>,
}

enum JobKind {
    /// `cp` out: `leaf` of `parent` (or `parent` itself when `leaf` is `None`), entries named from `name`.
    Path {
        parent: OwnedFd,
        leaf: Option<String>,
        name: String,
    },
    /// `export`: the whole root, names relative.
    Export,
}

impl ArchiveJob {
    /// Writes the tar to `w` (blocking).
    pub fn write_to(self, w: &mut dyn Write) -> Result<()> {
        // A running container's /proc and /sys are the kernel's: archived as empty directories.
        let opts = ::archive::WriteOptions {
            skip_pseudo_fs: true,
            id_map: self.id_map.clone(),
            ..Default::default()
        };
        let mut tw = ::archive::Writer::new(w, opts);
        let io = |e: std::io::Error| Error::system("writing the archive", e);
        let tar = |e: ::archive::Error| Error::system("writing the archive", e);
        match &self.kind {
            JobKind::Path { parent, leaf, name } => match leaf {
                Some(leaf) => tw
                    .append_at(parent, leaf.as_bytes(), name.as_bytes())
                    .map_err(tar)?,
                None => {
                    let dir = rustix::fs::openat(
                        parent,
                        ".",
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| io(e.into()))?;
                    tw.append_dir(&dir, name.as_bytes(), None).map_err(tar)?;
                }
            },
            JobKind::Export => {
                let dir = inroot::open(&self.root.fd, "/", OFlags::RDONLY | OFlags::DIRECTORY)
                    .map_err(|e| io(e.into()))?;
                tw.append_dir(&dir, b"", None).map_err(tar)?;
            }
        }
        tw.finish().map_err(tar)?;
        drop(self.root);
        Ok(())
    }
}

/// A container's root directory fd, with the mount held for as long as it lives.
struct RootGuard {
    fd: OwnedFd,
    release: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for RootGuard {
    fn drop(&mut self) {
        if let Some(r) = self.release.take() {
            r();
        }
    }
}

impl Engine {
    /// `HEAD /containers/{id}/archive?path=…`.
    pub async fn container_stat_path(self: &Arc<Self>, name: &str, path: &str) -> Result<PathStat> {
        let c = self.containers.resolve(name)?;
        let engine = Arc::clone(self);
        let (name, path) = (name.to_owned(), path.to_owned());
        tokio::task::spawn_blocking(move || {
            let root = engine.open_root(&c, true, &path)?;
            let (stat, _, _) = stat_in(&root, &name, &path)?;
            Ok(stat)
        })
        .await?
    }

    /// `GET /containers/{id}/archive?path=…`: the stat, and the tar still to be written.
    pub async fn container_archive(
        self: &Arc<Self>,
        name: &str,
        path: &str,
    ) -> Result<(PathStat, ArchiveJob)> {
        let c = self.containers.resolve(name)?;
        let engine = Arc::clone(self);
        let (name, path) = (name.to_owned(), path.to_owned());
        let c2 = c.clone();
        let result = tokio::task::spawn_blocking(move || {
            let root = engine.open_root(&c2, true, &path)?;
            let (stat, parent, leaf) = stat_in(&root, &name, &path)?;
            let abs = inroot::abs_path(&path);
            let kind = JobKind::Path {
                parent,
                leaf,
                name: inroot::base(&abs),
            };
            let id_map = engine.id_map().cloned();
            Ok::<_, Error>((stat, ArchiveJob { root, kind, id_map }))
        })
        .await??;
        self.container_event("archive-path", &c);
        Ok(result)
    }

    /// `PUT /containers/{id}/archive?path=…`: extracts `tar` into the directory `path`.
    pub async fn container_extract(
        self: &Arc<Self>,
        name: &str,
        req: ExtractRequest,
        tar: impl Read + Send + 'static,
    ) -> Result<()> {
        let c = self.containers.resolve(name)?;
        let engine = Arc::clone(self);
        let name = name.to_owned();
        let c2 = c.clone();
        tokio::task::spawn_blocking(move || engine.extract_blocking(&c2, &name, &req, tar))
            .await??;
        self.container_event("extract-to-dir", &c);
        Ok(())
    }

    fn extract_blocking(
        self: &Arc<Self>,
        c: &Container,
        name: &str,
        req: &ExtractRequest,
        tar: impl Read,
    ) -> Result<()> {
        let root = self.open_root(c, true, &req.path)?;
        let abs = inroot::abs_path(&req.path);
        let not_found = || {
            Error::NotFound(format!(
                "Could not find the file {} in container {name}",
                req.path
            ))
        };
        let resolved = inroot::follow_in_scope(&root.fd, &abs).map_err(|e| match e {
            Errno::NOENT => not_found(),
            e => Error::system(format!("resolving {}", req.path), e),
        })?;
        let fd = match inroot::open(&root.fd, &resolved, OFlags::PATH) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => return Err(not_found()),
            Err(e) => return Err(Error::system(format!("opening {}", req.path), e)),
        };
        let st = rustix::fs::fstat(&fd).context("stat")?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(Error::InvalidParameter(
                "extraction point is not a directory".into(),
            ));
        }
        check_writable(c, &resolved)?;
        // `--userns-remap`: the archive's ids (or the user's) are the container's, stored shifted.
        let id_map = self.id_map();
        let owner = if req.copy_uid_gid {
            let proc_root = format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&root.fd)
            );
            let user = super::user::resolve(
                std::path::Path::new(&proc_root),
                c.config.user.as_deref().unwrap_or(""),
                &[],
            )?;
            ::archive::Owner::Fixed {
                uid: user.uid,
                gid: user.gid,
            }
        } else {
            ::archive::Owner::FromArchive
        };
        let opts = ::archive::Options {
            no_overwrite_dir_non_dir: req.no_overwrite_dir_non_dir,
            owner,
            id_map: id_map.cloned(),
            path_prefix: Some(resolved.trim_end_matches('/').to_owned()),
            ..::archive::Options::container(&req.path)
        };
        ::archive::extract(root.fd.as_fd(), &resolved, tar, &opts).map_err(extract_error)?;
        Ok(())
    }

    /// `GET /containers/{id}/changes`.
    pub async fn container_changes(&self, name: &str) -> Result<Vec<Change>> {
        let c = self.containers.resolve(name)?;
        let img = self.images.get(&c.image_id)?;
        let lowers = self.images.layer_dirs(&img);
        let layout = Layout::new(&self.containers.dir(&c.id));
        tokio::task::spawn_blocking(move || {
            super::changes::changes(&layout.upper, &lowers)
                .context("reading the container's changes")
        })
        .await?
    }

    /// `GET /containers/{id}/export`: the container's filesystem (its rootfs, without its mounts, as Docker).
    pub async fn container_export(self: &Arc<Self>, name: &str) -> Result<ArchiveJob> {
        let c = self.containers.resolve(name)?;
        let engine = Arc::clone(self);
        let c2 = c.clone();
        let root = tokio::task::spawn_blocking(move || engine.open_root(&c2, false, "/")).await??;
        self.container_event("export", &c);
        Ok(ArchiveJob {
            root,
            kind: JobKind::Export,
            id_map: self.id_map().cloned(),
        })
    }

    /// The container's root: its live view when it runs and `live` is asked, else its rootfs, mounted for
    /// the operation. `path` is refused on a stopped container when it lies under one of its mounts, which
    /// only a running container shows.
    fn open_root(self: &Arc<Self>, c: &Container, live: bool, path: &str) -> Result<RootGuard> {
        let layout = Layout::new(&self.containers.dir(&c.id));
        let running = matches!(
            c.state.status,
            Status::Running | Status::Paused | Status::Restarting
        );
        if live && running && c.state.pid > 0 {
            if let Some(fd) = live_root(c.state.pid, &layout) {
                return Ok(RootGuard { fd, release: None });
            }
        }
        // `cp` under a bind or volume of a stopped container: its mounts are set up for the operation.
        let mounts = if live && mount_covering(c, &inroot::clean_abs(path)).is_some() {
            self.stopped_mounts(c)?
        } else {
            Vec::new()
        };
        let img = self.images.get(&c.image_id)?;
        layout.acquire(&self.images.layer_dirs(&img))?;
        let engine = Arc::clone(self);
        let id = c.id.clone();
        let merged = layout.merged.clone();
        let release: Box<dyn FnOnce() + Send> =
            Box::new(move || layout.release(|| engine.rootfs_needed(&id)));
        let opened = if mounts.is_empty() {
            open_dir(&merged).map(|fd| (fd, None))
        } else {
            MountView::open(&merged, mounts).map(|(fd, view)| (fd, Some(view)))
        };
        match opened {
            Ok((fd, view)) => Ok(RootGuard {
                fd,
                release: Some(Box::new(move || {
                    // The private mounts go first, then (unless still needed) the rootfs.
                    drop(view);
                    release();
                })),
            }),
            Err(e) => {
                release();
                Err(e)
            }
        }
    }

    /// A stopped container's binds and volumes, shallowest first, as (source on the host, destination,
    /// read-only). A volume whose driver mounts it (options such as `type=nfs`) is not mounted while its
    /// containers are stopped: cp there is refused.
    fn stopped_mounts(&self, c: &Container) -> Result<Vec<(PathBuf, String, bool)>> {
        use bollard_stubs::models::MountPointTypeEnum as T;
        let mut out = Vec::new();
        for m in &c.mounts {
            let (Some(source), Some(dest)) = (m.source.as_deref(), m.destination.as_deref()) else {
                continue;
            };
            match m.typ {
                Some(T::BIND) => {}
                Some(T::VOLUME) => {
                    let name = m.name.as_deref().unwrap_or_default();
                    if self.volumes.get(name).is_ok_and(|r| r.needs_mount()) {
                        return Err(Error::NotImplemented(format!(
                            "{dest} is a volume with mount options of a container that is not running: Berth mounts it for cp only while the container runs"
                        )));
                    }
                }
                _ => continue,
            }
            out.push((PathBuf::from(source), dest.to_owned(), m.rw == Some(false)));
        }
        out.sort_by_key(|(_, d, _)| d.trim_end_matches('/').matches('/').count());
        Ok(out)
    }

    /// Whether the container needs its rootfs mounted (it runs or is starting).
    fn rootfs_needed(&self, id: &str) -> bool {
        let starting = self
            .starting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id);
        starting
            || self.containers.resolve(id).is_ok_and(|c| {
                matches!(
                    c.state.status,
                    Status::Running | Status::Paused | Status::Restarting
                )
            })
    }
}

/// `/proc/<pid>/root` of a running container, if it really is the container's overlay root.
fn live_root(pid: i64, layout: &Layout) -> Option<OwnedFd> {
    let fd = rustix::fs::open(
        format!("/proc/{pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let live = rustix::fs::fstat(&fd).ok()?;
    let ours = rustix::fs::stat(&layout.merged).ok()?;
    (live.st_dev == ours.st_dev && live.st_ino == ours.st_ino).then_some(fd)
}

/// The container's rootfs directory, opened as the root of path resolution.
fn open_dir(merged: &Path) -> Result<OwnedFd> {
    rustix::fs::open(
        merged,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("opening the container's rootfs")
}

/// The destination of the container's bind or volume that holds `abs`, if any. (A tmpfs holds nothing
/// once the container stops: cp there reaches the rootfs underneath, as with dockerd.)
fn mount_covering(c: &Container, abs: &str) -> Option<String> {
    use bollard_stubs::models::MountPointTypeEnum as T;
    let under = |dest: &str| {
        let d = dest.trim_end_matches('/');
        !d.is_empty() && (abs == d || abs.starts_with(&format!("{d}/")))
    };
    c.mounts
        .iter()
        .filter(|m| matches!(m.typ, Some(T::BIND | T::VOLUME)))
        .filter_map(|m| m.destination.clone())
        .find(|d| under(d))
}

/// A stopped container's rootfs with its binds and volumes mounted on it, for one `cp`: in a mount
/// namespace of its own, made by a thread that lives as long as the operation (the namespace, and the
/// mounts in it, go when the thread ends). The root's fd, opened in that namespace, shows the mounts to
/// the threads that resolve paths from it. Mounting in the daemon's own namespace, as dockerd does, would
/// leave them behind after a crash and put them under a container starting meanwhile.
struct MountView {
    done: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MountView {
    fn open(merged: &Path, mounts: Vec<(PathBuf, String, bool)>) -> Result<(OwnedFd, MountView)> {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<OwnedFd>>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let merged = merged.to_owned();
        let thread = std::thread::Builder::new()
            .name("cp-mounts".into())
            .spawn(move || {
                // The caller waits on the other end; if it has gone, nothing needs the view.
                let _ = ready_tx.send(Self::setup(&merged, &mounts));
                // Hold the namespace until the operation ends (the sender is dropped).
                let _ = done_rx.recv();
            })
            .context("starting the cp mount thread")?;
        let view = MountView {
            done: Some(done_tx),
            thread: Some(thread),
        };
        match ready_rx.recv() {
            Ok(Ok(fd)) => Ok((fd, view)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::System("the cp mount thread ended early".into())),
        }
    }

    /// In the calling thread: a private mount namespace, the mounts, and the root's fd.
    fn setup(merged: &Path, mounts: &[(PathBuf, String, bool)]) -> Result<OwnedFd> {
        use rustix::mount::{
            mount_bind_recursive, mount_change, mount_remount, MountFlags, MountPropagationFlags,
        };
        use rustix::thread::{unshare_unsafe, UnshareFlags};
        let sys = |what: &str, e: Errno| Error::system(what, e);
        // SAFETY: only this thread's fs and mount namespace change (CLONE_FS | CLONE_NEWNS); it runs no
        // other code and ends when the operation does.
        unsafe { unshare_unsafe(UnshareFlags::FS | UnshareFlags::NEWNS) }
            .map_err(|e| sys("unsharing a mount namespace", e))?;
        mount_change(
            "/",
            MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
        )
        .map_err(|e| sys("making the cp mounts private", e))?;
        let root = open_dir(merged)?;
        for (source, dest, read_only) in mounts {
            // The mount point resolved inside the root: a symlink in the image cannot aim it at the host.
            // A missing one is made first (a directory, or a file for a file bind), as dockerd does when it
            // mounts a stopped container's volumes for cp.
            let target = match inroot::open(&root, dest, OFlags::PATH) {
                Ok(t) => t,
                Err(_) => {
                    make_mount_point(merged, dest, source.is_dir())?;
                    inroot::open(&root, dest, OFlags::PATH)
                        .map_err(|e| sys(&format!("opening the mount point {dest}"), e))?
                }
            };
            let at = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&target));
            mount_bind_recursive(source, at.as_str())
                .map_err(|e| sys(&format!("mounting {dest}"), e))?;
            if *read_only {
                // Opened again to name the new mount rather than the directory under it.
                let mounted = inroot::open(&root, dest, OFlags::PATH)
                    .map_err(|e| sys(&format!("mounting {dest}"), e))?;
                let at = format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&mounted)
                );
                mount_remount(at.as_str(), MountFlags::BIND | MountFlags::RDONLY, "")
                    .map_err(|e| sys(&format!("mounting {dest} read-only"), e))?;
            }
        }
        // Opened again: an fd taken before the mounts would not see those on the root directory itself.
        open_dir(merged)
    }
}

impl Drop for MountView {
    fn drop(&mut self) {
        drop(self.done.take());
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::warn!("the cp mount thread panicked");
            }
        }
    }
}

/// Makes a missing mount point inside the rootfs `merged`: a directory, or an empty file (with its parent
/// directories) for a bind of a file. Every step resolves inside the root.
fn make_mount_point(merged: &Path, dest: &str, dir: bool) -> Result<()> {
    if dir {
        return super::rootfs::ensure_dir_in(merged, dest, 0, 0);
    }
    let (parent, name) = inroot::split(dest);
    super::rootfs::ensure_dir_in(merged, parent, 0, 0)?;
    let root = open_dir(merged)?;
    let parent_fd = inroot::open(&root, parent, OFlags::PATH | OFlags::DIRECTORY)
        .map_err(|e| Error::system(format!("making the mount point {dest}"), e))?;
    match rustix::fs::openat(
        &parent_fd,
        name,
        OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o755),
    ) {
        Ok(_) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(Error::system(format!("making the mount point {dest}"), e)),
    }
}

/// Docker refuses to write into a read-only rootfs or a read-only mount.
fn check_writable(c: &Container, abs: &str) -> Result<()> {
    let under = |dest: &str| {
        let d = dest.trim_end_matches('/');
        abs == d || abs.starts_with(&format!("{d}/"))
    };
    let mount = c
        .mounts
        .iter()
        .filter(|m| m.destination.as_deref().is_some_and(under))
        .max_by_key(|m| m.destination.as_deref().map_or(0, str::len));
    match mount {
        Some(m) if m.rw == Some(false) => Err(Error::InvalidParameter(
            "mounted volume is marked read-only".into(),
        )),
        Some(_) => Ok(()),
        None if c.host_config.readonly_rootfs == Some(true) => Err(Error::InvalidParameter(
            "container rootfs is marked read-only".into(),
        )),
        None => Ok(()),
    }
}

/// Docker's `ResolvePath` + `StatPath`: the parent resolved inside the root, the last component not
/// followed. Returns the stat, the parent dir and the leaf (`None` when the path names the parent itself:
/// `/`, `/dir/` or `/dir/.`).
fn stat_in(
    root: &RootGuard,
    name: &str,
    path: &str,
) -> Result<(PathStat, OwnedFd, Option<String>)> {
    let abs = inroot::abs_path(path);
    let (dir, leaf) = inroot::split(&abs);
    let not_found = || {
        Error::NotFound(format!(
            "Could not find the file {path} in container {name}"
        ))
    };
    let map = |e: Errno| match e {
        Errno::NOENT | Errno::NOTDIR => not_found(),
        e => Error::system(format!("lstat {path}"), e),
    };
    let parent = inroot::open(&root.fd, dir, OFlags::RDONLY | OFlags::DIRECTORY).map_err(map)?;
    let (st, leaf): (Stat, Option<String>) = if leaf.is_empty() || leaf == "." {
        (rustix::fs::fstat(&parent).map_err(map)?, None)
    } else {
        (
            rustix::fs::statat(&parent, leaf, AtFlags::SYMLINK_NOFOLLOW).map_err(map)?,
            Some(leaf.to_owned()),
        )
    };
    let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
        inroot::follow_in_scope(&root.fd, &abs).map_err(map)?
    } else {
        String::new()
    };
    let mtime = std::time::UNIX_EPOCH
        + std::time::Duration::new(st.st_mtime.max(0) as u64, st.st_mtime_nsec as u32);
    Ok((
        PathStat {
            name: inroot::base(&abs),
            size: st.st_size,
            mode: inroot::go_file_mode(st.st_mode),
            mtime: image::timefmt::rfc3339_nano(mtime),
            link_target,
        },
        parent,
        leaf,
    ))
}

/// An extraction error, worded for the client as dockerd words it.
fn extract_error(e: ::archive::Error) -> Error {
    use ::archive::Error as A;
    match e {
        A::Read(e) => Error::InvalidParameter(format!("reading the archive: {e}")),
        A::Device { path } => Error::InvalidParameter(format!(
            "{path}: device nodes cannot be copied into a container"
        )),
        A::Io { op, path, source } => match source.raw_os_error() {
            Some(libc::EROFS) => {
                Error::InvalidParameter("container rootfs is marked read-only".into())
            }
            Some(libc::ENOTDIR) => Error::InvalidParameter(format!("{op} {path}: not a directory")),
            _ => Error::system(format!("{op} {path}"), source),
        },
        e => Error::InvalidParameter(e.to_string()),
    }
}
