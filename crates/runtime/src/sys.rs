//! Async-signal-safe system call helpers for the container's init between `clone` and
//! `execve`: no allocation, no locks, errors as raw errno values.

use std::ffi::{c_char, c_ulong, CStr};
use std::os::fd::RawFd;

/// An errno, as reported by the init to the runner.
pub(crate) type Errno = i32;

/// The calling thread's errno.
pub(crate) fn errno() -> Errno {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Turns a libc return value into `Ok` or the errno.
pub(crate) fn check(rc: libc::c_long) -> Result<libc::c_long, Errno> {
    if rc < 0 {
        Err(errno())
    } else {
        Ok(rc)
    }
}

/// Maximum path length handled without allocation.
pub(crate) const PATH_MAX: usize = 4096;

/// A NUL-terminated path built on the stack.
pub(crate) struct StackPath {
    buf: [u8; PATH_MAX],
    len: usize,
}

impl StackPath {
    /// An empty path.
    pub(crate) fn new() -> Self {
        StackPath {
            buf: [0; PATH_MAX],
            len: 0,
        }
    }

    /// Appends bytes; fails with ENAMETOOLONG rather than truncating.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), Errno> {
        if self.len + bytes.len() + 1 > PATH_MAX {
            return Err(libc::ENAMETOOLONG);
        }
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self.buf[self.len] = 0;
        Ok(())
    }

    /// Appends a decimal number.
    pub(crate) fn push_u64(&mut self, mut n: u64) -> Result<(), Errno> {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[i..])
    }

    /// The path as a C string pointer (always NUL-terminated).
    pub(crate) fn as_ptr(&self) -> *const c_char {
        self.buf.as_ptr() as *const c_char
    }

    /// `/proc/self/fd/N`, the magic link through which a mount can target an `O_PATH` fd.
    pub(crate) fn fd_link(fd: RawFd) -> Result<Self, Errno> {
        let mut p = Self::new();
        p.push(b"/proc/self/fd/")?;
        p.push_u64(fd as u64)?;
        Ok(p)
    }
}

/// `struct open_how` for openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Opens `path` as if `root` were `/`: `..` and symlinks cannot leave `root`.
pub(crate) fn open_in_root(root: RawFd, path: *const c_char, flags: i32) -> Result<RawFd, Errno> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `path` is NUL-terminated and `how` is a valid open_how of the size passed.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            path,
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    check(rc).map(|fd| fd as RawFd)
}

/// Closes a file descriptor, ignoring errors (nothing useful can be done about them).
pub(crate) fn close(fd: RawFd) {
    // SAFETY: the caller owns `fd` and does not use it afterwards.
    unsafe { libc::close(fd) };
}

/// Creates `path` (absolute, inside `root`) and its missing parents, without following any
/// symlink out of `root`; the last component is a file when `file` is set. Returns an
/// `O_PATH` fd of the result. A dangling symlink on the way (`/var/run -> /run` before `/run`
/// exists) gets its target created, resolved inside `root` as well.
pub(crate) fn mkdir_all_in_root(root: RawFd, path: &CStr, file: bool) -> Result<RawFd, Errno> {
    mkdir_all(root, path.to_bytes(), file, 0)
}

/// How many dangling symlinks one path may lead through (the kernel allows 40 hops in total).
const MAX_LINK_DEPTH: u32 = 8;

fn mkdir_all(root: RawFd, bytes: &[u8], file: bool, depth: u32) -> Result<RawFd, Errno> {
    if depth > MAX_LINK_DEPTH {
        return Err(libc::ELOOP);
    }
    let mut end = 0;
    while end < bytes.len() {
        // Next component boundary.
        let mut next = end + 1;
        while next < bytes.len() && bytes[next] != b'/' {
            next += 1;
        }
        let comp = &bytes[end..next];
        let comp = comp.strip_prefix(b"/").unwrap_or(comp);
        end = next;
        if comp.is_empty() || comp == b"." {
            continue;
        }
        let mut prefix = StackPath::new();
        prefix.push(&bytes[..end])?;
        match open_in_root(root, prefix.as_ptr(), libc::O_PATH) {
            Ok(fd) => {
                close(fd);
                continue;
            }
            Err(libc::ENOENT) => {}
            Err(e) => return Err(e),
        }
        let parent_bytes = &bytes[..end - comp.len()];
        let mut parent = StackPath::new();
        parent.push(parent_bytes)?;
        if parent_bytes.is_empty() {
            parent.push(b"/")?;
        }
        let pfd = open_in_root(root, parent.as_ptr(), libc::O_PATH | libc::O_DIRECTORY)?;
        let mut name = StackPath::new();
        name.push(comp)?;
        let last = end >= bytes.len();
        let rc = if last && file {
            // SAFETY: `pfd` is an open directory fd and `name` is NUL-terminated.
            let fd = unsafe {
                libc::openat(
                    pfd,
                    name.as_ptr(),
                    libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    0o644,
                )
            };
            if fd >= 0 {
                close(fd);
            }
            fd
        } else {
            // SAFETY: as above.
            unsafe { libc::mkdirat(pfd, name.as_ptr(), 0o755) }
        };
        let err = if rc < 0 { errno() } else { 0 };
        if rc < 0 && (err == libc::EEXIST || err == libc::ELOOP) {
            // The name exists but does not resolve: a dangling symlink. Create its target,
            // itself resolved inside `root`, then carry on.
            let mut link = [0u8; PATH_MAX];
            // SAFETY: `pfd` is an open directory fd, `name` is NUL-terminated and `link` is a
            // writable buffer of the given size.
            let n = unsafe {
                libc::readlinkat(pfd, name.as_ptr(), link.as_mut_ptr().cast(), link.len())
            };
            close(pfd);
            if n < 0 {
                return Err(libc::EEXIST);
            }
            let link = &link[..n as usize];
            let mut target = StackPath::new();
            if !link.starts_with(b"/") {
                target.push(parent_bytes)?;
                target.push(b"/")?;
            }
            target.push(link)?;
            let len = target.len;
            let fd = mkdir_all(root, &target.buf[..len], last && file, depth + 1)?;
            close(fd);
            continue;
        }
        close(pfd);
        if rc < 0 && err != libc::EEXIST {
            return Err(err);
        }
    }
    let flags = if file {
        libc::O_PATH
    } else {
        libc::O_PATH | libc::O_DIRECTORY
    };
    let mut full = StackPath::new();
    full.push(bytes)?;
    open_in_root(root, full.as_ptr(), flags)
}

/// mount(2) with optional C strings.
pub(crate) fn mount(
    source: Option<&CStr>,
    target: *const c_char,
    fstype: Option<&CStr>,
    flags: c_ulong,
    data: Option<&CStr>,
) -> Result<(), Errno> {
    let p = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string that outlives the call.
    let rc = unsafe {
        libc::mount(
            p(source),
            target,
            p(fstype),
            flags,
            p(data).cast::<libc::c_void>(),
        )
    };
    check(rc.into()).map(|_| ())
}

/// `struct mount_attr` of mount_setattr(2) (linux/mount.h), defined here for the one call that needs it.
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Makes the mount `fd` names (an `O_PATH` fd of its root) and every mount below it read-only, at once:
/// mount_setattr(2) with `AT_RECURSIVE` and `MOUNT_ATTR_RDONLY`.
pub(crate) fn set_readonly_recursive(fd: RawFd) -> Result<(), Errno> {
    let attr = MountAttr {
        attr_set: libc::MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: the path is an empty NUL-terminated string (AT_EMPTY_PATH: the fd itself), and `attr` is a
    // valid mount_attr whose size is passed with it; the kernel only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    check(rc).map(|_| ())
}

/// Whether mount_setattr(2) exists: called with no fd, it fails with EBADF or EINVAL where it does, ENOSYS
/// where the kernel (or a seccomp filter) lacks it.
pub(crate) fn has_mount_setattr() -> bool {
    // SAFETY: a null attr with size 0 and an invalid fd: the kernel reads nothing and fails the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            -1,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            std::ptr::null::<MountAttr>(),
            0usize,
        )
    };
    !(rc < 0 && matches!(errno(), libc::ENOSYS | libc::EPERM))
}

/// The mount flags (`MS_NOSUID`...) of the mount holding `path`, from statvfs(3); a bind
/// remount must repeat the flags it cannot clear (locked ones, in a user namespace).
pub(crate) fn mount_flags_of(path: *const c_char) -> Result<c_ulong, Errno> {
    // SAFETY: an all-zero statvfs is a valid value to be overwritten.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid out-pointer.
    check(unsafe { libc::statvfs(path, &mut st) }.into())?;
    let f = st.f_flag as c_ulong;
    let mut out = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_RDONLY, libc::MS_RDONLY),
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & st_flag as c_ulong != 0 {
            out |= ms_flag;
        }
    }
    Ok(out)
}

/// Writes all of `buf` to `fd`.
pub(crate) fn write_all(fd: RawFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        // SAFETY: `buf` is a valid readable slice of the given length.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// Reads until `buf` is full or EOF; returns the number of bytes read.
pub(crate) fn read_full(fd: RawFd, buf: &mut [u8]) -> Result<usize, Errno> {
    let mut got = 0;
    while got < buf.len() {
        // SAFETY: the destination is the unfilled tail of `buf`.
        let n = unsafe { libc::read(fd, buf[got..].as_mut_ptr().cast(), buf.len() - got) };
        if n < 0 {
            let e = errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        got += n as usize;
    }
    Ok(got)
}

/// Opens `path` for writing and writes `data` (for /proc and /sys files).
pub(crate) fn write_file(path: *const c_char, data: &[u8]) -> Result<(), Errno> {
    // SAFETY: `path` is NUL-terminated.
    let fd = unsafe { libc::open(path, libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(errno());
    }
    let r = write_all(fd, data);
    close(fd);
    r
}
