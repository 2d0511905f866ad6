//! The container's filesystem: rootfs bind, the spec's mounts (with options and propagation),
//! `/dev`, pivot_root, masked and read-only paths.
//!
//! [`RootfsPlan::prepare`] runs in the runner and turns the spec into C strings and flags;
//! [`RootfsPlan::setup`] runs in the container's init between clone and exec and only makes
//! system calls. Mount targets are created and opened with openat2(RESOLVE_IN_ROOT), so a
//! symlink in the image cannot send a mount outside the rootfs; the mount then goes through
//! the opened fd's `/proc/self/fd/N` link.

use std::ffi::{c_ulong, CStr, CString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDeviceType, Mount, Spec};

use crate::error::{Error, Result};
use crate::init::{Failure, Stage};
use crate::sys::{self, StackPath};

fn cstr(s: impl AsRef<[u8]>) -> Result<CString> {
    CString::new(s.as_ref().to_vec()).map_err(|_| {
        Error::InvalidSpec(format!(
            "NUL byte in {:?}",
            String::from_utf8_lossy(s.as_ref())
        ))
    })
}

fn cpath(p: &Path) -> Result<CString> {
    cstr(p.as_os_str().as_bytes())
}

/// Mount options split into flags to set, propagation changes and fs-specific data.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    /// `MS_*` flags to pass.
    pub flags: c_ulong,
    /// Propagation changes to apply after mounting (`MS_SHARED|MS_REC`...).
    pub propagation: Vec<c_ulong>,
    /// Filesystem-specific options (`size=65536k,mode=755`).
    pub data: String,
    /// `rro` (OCI runtime spec 1.1): the mount and every mount below it read-only, through
    /// mount_setattr(2) with `AT_RECURSIVE` (Linux 5.12); `ro` reaches only the top mount of an `rbind`.
    pub recursive_readonly: bool,
}

/// Parses a mount's `options` as mount(8) would.
pub fn parse_options(opts: &[String]) -> MountOptions {
    let mut o = MountOptions::default();
    for opt in opts {
        let (set, clear): (c_ulong, c_ulong) = match opt.as_str() {
            "defaults" => (0, 0),
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "remount" => (libc::MS_REMOUNT, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "silent" => (libc::MS_SILENT, 0),
            "loud" => (0, libc::MS_SILENT),
            "lazytime" => (libc::MS_LAZYTIME, 0),
            "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave" | "unbindable"
            | "runbindable" => {
                o.propagation.push(propagation_flag(opt).unwrap_or(0));
                continue;
            }
            // Docker's "copy the image's content up into the tmpfs"; not implemented yet.
            "tmpcopyup" => continue,
            "rro" => {
                o.recursive_readonly = true;
                continue;
            }
            other => {
                if !o.data.is_empty() {
                    o.data.push(',');
                }
                o.data.push_str(other);
                continue;
            }
        };
        o.flags = (o.flags | set) & !clear;
    }
    o
}

/// `MS_*` propagation flags for a propagation word (`rshared` → `MS_SHARED|MS_REC`).
pub fn propagation_flag(word: &str) -> Option<c_ulong> {
    Some(match word {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// How one spec mount is made.
#[derive(Debug)]
enum Kind {
    /// A filesystem mount (proc, tmpfs, sysfs, devpts, mqueue...).
    Fs {
        source: CString,
        fstype: CString,
        flags: c_ulong,
        data: CString,
    },
    /// A bind mount, remounted with `remount` flags when it asks for ro/nosuid/..., and made read-only with
    /// every mount below it for `rro`.
    Bind {
        source: CString,
        flags: c_ulong,
        remount: Option<c_ulong>,
        file: bool,
        recursive_readonly: bool,
    },
    /// cgroup v1: a tmpfs holding a bind of each hierarchy's container cgroup (read-only
    /// when the mount is).
    CgroupV1 {
        flags: c_ulong,
        binds: Vec<(CString, CString)>,
        links: Vec<(CString, CString)>,
    },
    /// cgroup v2: a cgroup2 mount (the init is already in its cgroup namespace).
    Cgroup2 { source: CString, flags: c_ulong },
}

#[derive(Debug)]
struct Step {
    dest: CString,
    kind: Kind,
    propagation: Vec<c_ulong>,
}

#[derive(Debug)]
struct Device {
    dir: CString,
    name: CString,
    path: CString,
    mode: libc::mode_t,
    dev: libc::dev_t,
    uid: libc::uid_t,
    gid: libc::gid_t,
}

/// Everything the init needs to build the container's filesystem, prepared in the runner.
#[derive(Debug)]
pub struct RootfsPlan {
    rootfs: CString,
    root_propagation: c_ulong,
    post_pivot_propagation: Option<c_ulong>,
    steps: Vec<Step>,
    /// Destinations, for error messages (same order as `steps`).
    step_names: Vec<String>,
    devices: Vec<Device>,
    bind_devices: bool,
    dev_links: Vec<(CString, CString)>,
    masked: Vec<CString>,
    readonly: Vec<CString>,
    root_readonly: bool,
}

/// A cgroup v1 hierarchy as the container's cgroup mount should show it.
#[derive(Debug, Clone)]
pub struct CgroupV1Bind {
    /// The hierarchy's name under /sys/fs/cgroup (`cpu,cpuacct`, `memory`, `systemd`).
    pub name: String,
    /// The container's cgroup directory in that hierarchy, on the host.
    pub host_dir: PathBuf,
}

/// What the container's `cgroup` mounts show.
#[derive(Debug, Clone)]
pub enum CgroupMount {
    /// Bind these v1 hierarchies read-only.
    V1(Vec<CgroupV1Bind>),
    /// Mount cgroup2.
    V2,
}

const DEFAULT_DEVICES: [(&str, u32, u32); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

impl RootfsPlan {
    /// Turns the spec's root, mounts, devices, masked and read-only paths into a plan.
    /// `userns` selects bind-mounted device nodes over mknod.
    pub fn prepare(
        spec: &Spec,
        rootfs: &Path,
        bundle: &Path,
        userns: bool,
        cgroup: &CgroupMount,
    ) -> Result<RootfsPlan> {
        let linux = spec.linux().as_ref();
        let prop = linux.and_then(|l| l.rootfs_propagation().as_deref());
        let (root_propagation, post_pivot_propagation) = match prop {
            None | Some("") => (libc::MS_PRIVATE | libc::MS_REC, None),
            Some(w) => {
                let f = propagation_flag(w).ok_or_else(|| {
                    Error::InvalidSpec(format!("rootfsPropagation {w:?} is not a propagation"))
                })?;
                if f & libc::MS_SHARED != 0 {
                    // pivot_root refuses shared mounts: stay private, share after the pivot.
                    (libc::MS_PRIVATE | libc::MS_REC, Some(f))
                } else {
                    (f, None)
                }
            }
        };
        let mut steps = Vec::new();
        let mut step_names = Vec::new();
        let mut dev_is_bind = false;
        for m in spec.mounts().iter().flatten() {
            let step = prepare_mount(m, bundle, cgroup)?;
            if m.destination() == Path::new("/dev") && matches!(step.kind, Kind::Bind { .. }) {
                dev_is_bind = true;
            }
            step_names.push(m.destination().display().to_string());
            steps.push(step);
        }
        let mut devices = Vec::new();
        if !dev_is_bind {
            for (name, major, minor) in DEFAULT_DEVICES {
                devices.push(Device {
                    dir: cstr("/dev")?,
                    name: cstr(name)?,
                    path: cstr(format!("/dev/{name}"))?,
                    mode: libc::S_IFCHR | 0o666,
                    dev: libc::makedev(major, minor),
                    uid: 0,
                    gid: 0,
                });
            }
            for d in linux
                .and_then(|l| l.devices().as_ref())
                .into_iter()
                .flatten()
            {
                let path = d.path();
                let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                    return Err(Error::InvalidSpec(format!(
                        "device path {}",
                        path.display()
                    )));
                };
                let kind = match d.typ() {
                    LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
                    LinuxDeviceType::B => libc::S_IFBLK,
                    LinuxDeviceType::P => libc::S_IFIFO,
                    LinuxDeviceType::A => {
                        return Err(Error::InvalidSpec(format!(
                            "device {} has type a",
                            path.display()
                        )))
                    }
                };
                devices.retain(|x: &Device| x.path.as_bytes() != path.as_os_str().as_bytes());
                devices.push(Device {
                    dir: cpath(dir)?,
                    name: cstr(name.as_bytes())?,
                    path: cpath(path)?,
                    mode: kind | (d.file_mode().unwrap_or(0o666) & 0o7777),
                    dev: libc::makedev(d.major() as u32, d.minor() as u32),
                    uid: d.uid().unwrap_or(0),
                    gid: d.gid().unwrap_or(0),
                });
            }
        }
        let mut dev_links = Vec::new();
        if !dev_is_bind {
            for (target, name) in [
                ("/proc/self/fd", "fd"),
                ("/proc/self/fd/0", "stdin"),
                ("/proc/self/fd/1", "stdout"),
                ("/proc/self/fd/2", "stderr"),
                ("pts/ptmx", "ptmx"),
            ] {
                dev_links.push((cstr(target)?, cstr(name)?));
            }
        }
        let paths = |v: Option<&Vec<String>>| -> Result<Vec<CString>> {
            v.into_iter().flatten().map(cstr).collect()
        };
        Ok(RootfsPlan {
            rootfs: cpath(rootfs)?,
            root_propagation,
            post_pivot_propagation,
            steps,
            step_names,
            devices,
            bind_devices: userns,
            dev_links,
            masked: paths(linux.and_then(|l| l.masked_paths().as_ref()))?,
            readonly: paths(linux.and_then(|l| l.readonly_paths().as_ref()))?,
            root_readonly: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
        })
    }

    /// Whether a mount is a cgroup2 mount (which must happen inside the cgroup namespace).
    pub fn mounts_cgroup2(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.kind, Kind::Cgroup2 { .. }))
    }

    /// The destination of mount step `i`, for error messages.
    pub fn step_name(&self, i: u32) -> &str {
        self.step_names.get(i as usize).map_or("", |s| s.as_str())
    }

    /// A masked or read-only path by index, for error messages.
    pub fn path_name(&self, stage: Stage, i: u32) -> String {
        let v = match stage {
            Stage::Mask => &self.masked,
            Stage::Readonly => &self.readonly,
            Stage::Device => {
                return self
                    .devices
                    .get(i as usize)
                    .map(|d| d.path.to_string_lossy().into_owned())
                    .unwrap_or_default()
            }
            _ => return self.step_name(i).to_string(),
        };
        v.get(i as usize)
            .map(|c| c.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Builds the filesystem and pivots into it (init side; no allocation).
    pub(crate) fn setup(&self) -> std::result::Result<(), Failure> {
        let fail = |stage, index| {
            move |errno| Failure {
                stage,
                index,
                errno,
            }
        };
        // Device nodes and mount points get exactly the modes asked for; the process's own
        // umask is set later.
        // SAFETY: umask cannot fail.
        unsafe { libc::umask(0) };
        sys::mount(None, c"/".as_ptr(), None, self.root_propagation, None)
            .map_err(fail(Stage::RootPropagation, 0))?;
        sys::mount(
            Some(&self.rootfs),
            self.rootfs.as_ptr(),
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(fail(Stage::BindRootfs, 0))?;
        // SAFETY: `rootfs` is NUL-terminated; the fd is owned here and closed below.
        let root = unsafe {
            libc::open(
                self.rootfs.as_ptr(),
                libc::O_DIRECTORY | libc::O_RDONLY | libc::O_CLOEXEC,
            )
        };
        if root < 0 {
            return Err(fail(Stage::BindRootfs, 0)(sys::errno()));
        }
        let r = self.setup_in(root);
        sys::close(root);
        r
    }

    fn setup_in(&self, root: RawFd) -> std::result::Result<(), Failure> {
        let fail = |stage, index| {
            move |errno| Failure {
                stage,
                index,
                errno,
            }
        };
        for (i, step) in self.steps.iter().enumerate() {
            mount_step(root, step).map_err(fail(Stage::Mount, i as u32))?;
        }
        self.make_devices(root)?;
        // pivot_root(".", "."): the old root ends up stacked on the new one; detach it.
        // SAFETY: `root` is an open directory fd.
        sys::check(unsafe { libc::fchdir(root) }.into()).map_err(fail(Stage::PivotRoot, 0))?;
        // SAFETY: both arguments are the NUL-terminated string ".".
        let rc = unsafe { libc::syscall(libc::SYS_pivot_root, c".".as_ptr(), c".".as_ptr()) };
        sys::check(rc).map_err(fail(Stage::PivotRoot, 0))?;
        // Make the old root a slave first so the detach does not propagate to the host.
        sys::mount(
            None,
            c".".as_ptr(),
            None,
            libc::MS_SLAVE | libc::MS_REC,
            None,
        )
        .map_err(fail(Stage::PivotRoot, 1))?;
        // SAFETY: "." is NUL-terminated.
        sys::check(unsafe { libc::umount2(c".".as_ptr(), libc::MNT_DETACH) }.into())
            .map_err(fail(Stage::PivotRoot, 2))?;
        // SAFETY: "/" is NUL-terminated.
        sys::check(unsafe { libc::chdir(c"/".as_ptr()) }.into())
            .map_err(fail(Stage::PivotRoot, 3))?;
        if let Some(p) = self.post_pivot_propagation {
            sys::mount(None, c"/".as_ptr(), None, p, None)
                .map_err(fail(Stage::RootPropagation, 1))?;
        }
        Ok(())
    }

    /// Read-only paths, masked paths (in runc's order) and a read-only root; after pivot_root and sysctls.
    pub(crate) fn finish(&self) -> std::result::Result<(), Failure> {
        let fail = |stage, index| {
            move |errno| Failure {
                stage,
                index,
                errno,
            }
        };
        for (i, p) in self.readonly.iter().enumerate() {
            match bind_readonly(p) {
                Ok(()) | Err(libc::ENOENT) => {}
                Err(e) => return Err(fail(Stage::Readonly, i as u32)(e)),
            }
        }
        for (i, p) in self.masked.iter().enumerate() {
            mask(p).map_err(fail(Stage::Mask, i as u32))?;
        }
        if self.root_readonly {
            let flags = sys::mount_flags_of(c"/".as_ptr()).map_err(fail(Stage::RootReadonly, 0))?;
            sys::mount(
                None,
                c"/".as_ptr(),
                None,
                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | flags,
                None,
            )
            .map_err(fail(Stage::RootReadonly, 0))?;
        }
        Ok(())
    }

    fn make_devices(&self, root: RawFd) -> std::result::Result<(), Failure> {
        for (i, d) in self.devices.iter().enumerate() {
            let fail = |errno| Failure {
                stage: Stage::Device,
                index: i as u32,
                errno,
            };
            let dir = sys::mkdir_all_in_root(root, &d.dir, false).map_err(fail)?;
            let r = if self.bind_devices {
                bind_device(root, d)
            } else {
                // SAFETY: `dir` is an open directory fd and `name` is NUL-terminated.
                let rc = unsafe { libc::mknodat(dir, d.name.as_ptr(), d.mode, d.dev) };
                match sys::check(rc.into()) {
                    Ok(_) => {
                        // SAFETY: as above; AT_SYMLINK_NOFOLLOW keeps it on the node just made.
                        let rc = unsafe {
                            libc::fchownat(
                                dir,
                                d.name.as_ptr(),
                                d.uid,
                                d.gid,
                                libc::AT_SYMLINK_NOFOLLOW,
                            )
                        };
                        sys::check(rc.into()).map(|_| ())
                    }
                    Err(libc::EEXIST) => Ok(()),
                    Err(e) => Err(e),
                }
            };
            sys::close(dir);
            r.map_err(fail)?;
        }
        if !self.dev_links.is_empty() {
            let dev = sys::open_in_root(root, c"/dev".as_ptr(), libc::O_PATH | libc::O_DIRECTORY)
                .map_err(|errno| Failure {
                stage: Stage::Device,
                index: u32::MAX,
                errno,
            })?;
            for (target, name) in &self.dev_links {
                // SAFETY: `dev` is an open directory fd; both strings are NUL-terminated.
                let rc = unsafe { libc::symlinkat(target.as_ptr(), dev, name.as_ptr()) };
                if rc < 0 && sys::errno() != libc::EEXIST {
                    let errno = sys::errno();
                    sys::close(dev);
                    return Err(Failure {
                        stage: Stage::Device,
                        index: u32::MAX,
                        errno,
                    });
                }
            }
            sys::close(dev);
        }
        Ok(())
    }
}

fn bind_device(root: RawFd, d: &Device) -> std::result::Result<(), sys::Errno> {
    let fd = sys::mkdir_all_in_root(root, &d.path, true)?;
    let r = StackPath::fd_link(fd)
        .and_then(|link| sys::mount(Some(&d.path), link.as_ptr(), None, libc::MS_BIND, None));
    sys::close(fd);
    r
}

fn prepare_mount(m: &Mount, bundle: &Path, cgroup: &CgroupMount) -> Result<Step> {
    let opts = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("");
    let dest = cpath(m.destination())?;
    let is_bind = opts.flags & libc::MS_BIND != 0 || typ == "bind";
    let kind = if is_bind {
        let src = m.source().clone().unwrap_or_default();
        let src = if src.is_absolute() {
            src
        } else {
            bundle.join(src)
        };
        let meta = std::fs::metadata(&src).map_err(|e| Error::io("stat mount source", &src, e))?;
        let extra = opts.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        Kind::Bind {
            source: cpath(&src)?,
            flags: libc::MS_BIND | (opts.flags & libc::MS_REC),
            remount: (extra != 0).then_some(extra),
            file: !meta.is_dir(),
            recursive_readonly: opts.recursive_readonly,
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        let flags = opts.flags;
        match cgroup {
            CgroupMount::V2 => Kind::Cgroup2 {
                source: cstr(
                    m.source()
                        .as_ref()
                        .map_or(b"cgroup".as_slice(), |s| s.as_os_str().as_bytes()),
                )?,
                flags,
            },
            CgroupMount::V1(list) => {
                let base = m.destination();
                let mut binds = Vec::new();
                let mut links = Vec::new();
                for h in list {
                    binds.push((cpath(&base.join(&h.name))?, cpath(&h.host_dir)?));
                    if h.name.contains(',') {
                        for part in h.name.split(',') {
                            links.push((cpath(&base.join(part))?, cstr(&h.name)?));
                        }
                    }
                }
                Kind::CgroupV1 {
                    flags,
                    binds,
                    links,
                }
            }
        }
    } else {
        let source = m
            .source()
            .as_ref()
            .map(|s| s.as_os_str().as_bytes())
            .unwrap_or(typ.as_bytes());
        Kind::Fs {
            source: cstr(source)?,
            fstype: cstr(typ)?,
            flags: opts.flags,
            data: cstr(&opts.data)?,
        }
    };
    Ok(Step {
        dest,
        kind,
        propagation: opts.propagation,
    })
}

fn mount_step(root: RawFd, step: &Step) -> std::result::Result<(), sys::Errno> {
    let file = matches!(step.kind, Kind::Bind { file: true, .. });
    let fd = sys::mkdir_all_in_root(root, &step.dest, file)?;
    let r = mount_at(root, fd, step);
    sys::close(fd);
    r
}

fn mount_at(root: RawFd, fd: RawFd, step: &Step) -> std::result::Result<(), sys::Errno> {
    let target = StackPath::fd_link(fd)?;
    fn data(d: &CString) -> Option<&CStr> {
        if d.is_empty() {
            None
        } else {
            Some(d.as_c_str())
        }
    }
    match &step.kind {
        Kind::Fs {
            source,
            fstype,
            flags,
            data: d,
        } => sys::mount(Some(source), target.as_ptr(), Some(fstype), *flags, data(d))?,
        Kind::Bind { source, flags, .. } => {
            sys::mount(Some(source), target.as_ptr(), None, *flags, None)?
        }
        Kind::Cgroup2 { source, flags } => sys::mount(
            Some(source),
            target.as_ptr(),
            Some(c"cgroup2"),
            *flags,
            None,
        )?,
        Kind::CgroupV1 { flags, .. } => sys::mount(
            Some(c"tmpfs"),
            target.as_ptr(),
            Some(c"tmpfs"),
            flags & !libc::MS_RDONLY,
            Some(c"mode=755"),
        )?,
    }
    // `fd` still names the directory under the new mount; reopen to reach the mount itself.
    let on_top = sys::open_in_root(root, step.dest.as_ptr(), libc::O_PATH)?;
    let r = finish_mount(root, on_top, step);
    sys::close(on_top);
    r
}

/// Remounts, fills (cgroup v1) and sets propagation on a mount just made, through `fd`.
fn finish_mount(root: RawFd, fd: RawFd, step: &Step) -> std::result::Result<(), sys::Errno> {
    let target = StackPath::fd_link(fd)?;
    match &step.kind {
        Kind::Bind {
            remount,
            recursive_readonly,
            ..
        } => {
            if let Some(extra) = remount {
                // The spec's flags alone, as runc does (this may clear the source's nosuid...);
                // in a user namespace those flags are locked, so retry keeping them.
                let f = libc::MS_BIND | libc::MS_REMOUNT | extra;
                match sys::mount(None, target.as_ptr(), None, f, None) {
                    Err(libc::EPERM) => {
                        let keep = sys::mount_flags_of(target.as_ptr())?;
                        sys::mount(None, target.as_ptr(), None, f | keep, None)?;
                    }
                    r => r?,
                }
            }
            if *recursive_readonly {
                // A remount reaches only the top mount: submounts of an rbind would stay writable.
                sys::set_readonly_recursive(fd)?;
            }
        }
        Kind::CgroupV1 {
            flags,
            binds,
            links,
        } => {
            let base = flags & !libc::MS_RDONLY;
            for (dest, host) in binds {
                let dir = sys::mkdir_all_in_root(root, dest, false)?;
                let r = StackPath::fd_link(dir).and_then(|t| {
                    sys::mount(
                        Some(host),
                        t.as_ptr(),
                        None,
                        libc::MS_BIND | libc::MS_REC,
                        None,
                    )
                });
                sys::close(dir);
                r?;
                let top = sys::open_in_root(root, dest.as_ptr(), libc::O_PATH)?;
                let r = StackPath::fd_link(top).and_then(|t| {
                    let f = libc::MS_BIND | libc::MS_REMOUNT | base | (flags & libc::MS_RDONLY);
                    sys::mount(None, t.as_ptr(), None, f, None)
                });
                sys::close(top);
                r?;
            }
            for (link, target_name) in links {
                // The link lives in the tmpfs just mounted; its name is the path's last part.
                let bytes = link.as_bytes();
                let name_at = bytes.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
                let mut name = StackPath::new();
                name.push(&bytes[name_at..])?;
                // SAFETY: `fd` is the O_PATH fd of the tmpfs root; strings are NUL-terminated.
                let rc = unsafe { libc::symlinkat(target_name.as_ptr(), fd, name.as_ptr()) };
                if rc < 0 && sys::errno() != libc::EEXIST {
                    return Err(sys::errno());
                }
            }
            // The tmpfs itself stays writable, as under runc; the hierarchies are read-only.
        }
        _ => {}
    }
    for p in &step.propagation {
        sys::mount(None, target.as_ptr(), None, *p, None)?;
    }
    Ok(())
}

fn is_dir(path: &CStr) -> std::result::Result<bool, sys::Errno> {
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid out-pointer.
    sys::check(unsafe { libc::stat(path.as_ptr(), &mut st) }.into())?;
    Ok(st.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// Hides a path: an empty read-only tmpfs over a directory, /dev/null over anything else.
fn mask(path: &CStr) -> std::result::Result<(), sys::Errno> {
    match is_dir(path) {
        Err(libc::ENOENT) => Ok(()),
        Err(e) => Err(e),
        Ok(true) => sys::mount(
            Some(c"tmpfs"),
            path.as_ptr(),
            Some(c"tmpfs"),
            libc::MS_RDONLY,
            None,
        ),
        Ok(false) => sys::mount(Some(c"/dev/null"), path.as_ptr(), None, libc::MS_BIND, None),
    }
}

/// Whether this kernel can make a mount tree read-only at once (mount_setattr(2), Linux 5.12), which the
/// `rro` mount option needs; a seccomp filter that hides the call counts as its absence.
pub fn supports_recursive_readonly() -> bool {
    sys::has_mount_setattr()
}

/// Bind-mounts a path onto itself and remounts it read-only, keeping its other flags.
fn bind_readonly(path: &CStr) -> std::result::Result<(), sys::Errno> {
    sys::mount(
        Some(path),
        path.as_ptr(),
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )?;
    let keep = sys::mount_flags_of(path.as_ptr())?;
    let f = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | keep;
    sys::mount(None, path.as_ptr(), None, f, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn parse_options_splits_flags_propagation_and_data() {
        let o = parse_options(&s(&[
            "nosuid", "noexec", "rbind", "ro", "rslave", "size=64k", "mode=755",
        ]));
        assert_eq!(
            o.flags,
            libc::MS_NOSUID | libc::MS_NOEXEC | libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY
        );
        assert_eq!(o.propagation, vec![libc::MS_SLAVE | libc::MS_REC]);
        assert_eq!(o.data, "size=64k,mode=755");
    }

    #[test]
    fn rro_asks_for_a_recursively_read_only_bind() {
        let o = parse_options(&s(&["rbind", "rro", "rprivate"]));
        assert!(o.recursive_readonly);
        assert_eq!(o.flags, libc::MS_BIND | libc::MS_REC);
        assert!(o.data.is_empty(), "rro is no filesystem data: {:?}", o.data);
        assert!(!parse_options(&s(&["rbind", "ro"])).recursive_readonly);
    }

    #[test]
    fn parse_options_later_words_override_earlier() {
        let o = parse_options(&s(&["ro", "rw", "noatime", "atime"]));
        assert_eq!(o.flags, 0);
    }

    #[test]
    fn devpts_data_keeps_newinstance_and_ptmxmode() {
        let o = parse_options(&s(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]));
        assert_eq!(o.data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
    }
}
