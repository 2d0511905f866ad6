//! Paths inside a container's root, for `cp`: every open goes through `openat2(RESOLVE_IN_ROOT)` from a
//! directory fd of the container's root, so `..`, absolute symlinks (`/evil -> /`) and relative ones
//! (`../../..`) all resolve inside the container, never on the host.

use std::os::fd::OwnedFd;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Kernel-side resolution inside the root: symlinks are followed but clamped at the root, and magic links
/// (`/proc/self/root` in the container's procfs) are refused.
pub(crate) fn in_root() -> ResolveFlags {
    ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS
}

/// Opens `path` (absolute as the container sees it) relative to `root`.
pub(crate) fn open(root: &OwnedFd, path: &str, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    let rel = relative(path);
    rustix::fs::openat2(
        root,
        rel.as_str(),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
        in_root(),
    )
}

/// `path` without its leading slashes, `.` for the root.
pub(crate) fn relative(path: &str) -> String {
    let r = path.trim_start_matches('/');
    if r.is_empty() {
        ".".to_owned()
    } else {
        r.to_owned()
    }
}

/// Go's `filepath.Clean` for an absolute path.
pub(crate) fn clean_abs(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    format!("/{}", out.join("/"))
}

/// Docker's `PreserveTrailingDotOrSeparator(Join("/", path), path)`: the cleaned absolute path, keeping a
/// trailing `/.` or `/` the user wrote (they change what `cp` copies).
pub(crate) fn abs_path(path: &str) -> String {
    let mut cleaned = clean_abs(path);
    let base_is_dot = |p: &str| p == "." || p.ends_with("/.");
    if !base_is_dot(&cleaned) && base_is_dot(path) {
        if !cleaned.ends_with('/') {
            cleaned.push('/');
        }
        cleaned.push('.');
    }
    if !cleaned.ends_with('/') && path.ends_with('/') {
        cleaned.push('/');
    }
    cleaned
}

/// Go's `filepath.Split`: everything up to the last `/` (kept), and the rest.
pub(crate) fn split(path: &str) -> (&str, &str) {
    match path.rfind('/') {
        Some(i) => (&path[..=i], &path[i + 1..]),
        None => ("", path),
    }
}

/// Go's `filepath.Base`.
pub(crate) fn base(path: &str) -> String {
    let t = path.trim_end_matches('/');
    if t.is_empty() {
        return if path.is_empty() { "." } else { "/" }.to_owned();
    }
    t.rsplit('/').next().unwrap_or(t).to_owned()
}

/// Resolves every symlink of `path` inside the root as the kernel would with `RESOLVE_IN_ROOT`, and returns
/// the resulting absolute path (for `linkTarget` and to name where an extraction lands). Missing components
/// are kept as written, like Go's `FollowSymlinkInScope`. The answer is only a name: every later open
/// resolves in the root again.
pub(crate) fn follow_in_scope(root: &OwnedFd, path: &str) -> rustix::io::Result<String> {
    let mut todo: std::collections::VecDeque<String> = path
        .split('/')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect();
    let mut done: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(c) = todo.pop_front() {
        if c == "." {
            continue;
        }
        if c == ".." {
            done.pop();
            continue;
        }
        let parent = format!("/{}", done.join("/"));
        let dir = match open(root, &parent, OFlags::PATH | OFlags::DIRECTORY) {
            Ok(d) => d,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => {
                done.push(c);
                continue;
            }
            Err(e) => return Err(e),
        };
        match rustix::fs::readlinkat(&dir, c.as_str(), Vec::new()) {
            Ok(target) => {
                links += 1;
                if links > 255 {
                    return Err(Errno::LOOP);
                }
                let target = target.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                for t in target.split('/').rev().filter(|t| !t.is_empty()) {
                    todo.push_front(t.to_owned());
                }
            }
            Err(Errno::INVAL) | Err(Errno::NOENT) | Err(Errno::NOTDIR) => done.push(c),
            Err(e) => return Err(e),
        }
    }
    Ok(format!("/{}", done.join("/")))
}

/// Go's `os.FileMode` bits for a `st_mode` (what `X-Docker-Container-Path-Stat`'s `mode` carries).
pub(crate) fn go_file_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const NAMED_PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR_DEVICE: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut m = st_mode & 0o777;
    m |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => DIR,
        libc::S_IFLNK => SYMLINK,
        libc::S_IFBLK => DEVICE,
        libc::S_IFCHR => DEVICE | CHAR_DEVICE,
        libc::S_IFIFO => NAMED_PIPE,
        libc::S_IFSOCK => SOCKET,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= STICKY;
    }
    m
}

/// Standard base64 (with padding), for the stat header.
pub(crate) fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_keep_dockers_trailing_dot_and_slash() {
        assert_eq!(abs_path("etc"), "/etc");
        assert_eq!(abs_path("/etc/"), "/etc/");
        assert_eq!(abs_path("/etc/."), "/etc/.");
        assert_eq!(abs_path("/a/../../b/./"), "/b/");
        assert_eq!(abs_path("/"), "/");
        assert_eq!(abs_path("."), "/.");
        assert_eq!(split("/etc/passwd"), ("/etc/", "passwd"));
        assert_eq!(split("/etc/"), ("/etc/", ""));
        assert_eq!(base("/etc/"), "etc");
        assert_eq!(base("/"), "/");
        assert_eq!(base("/etc/."), ".");
    }

    #[test]
    fn go_modes_and_base64() {
        assert_eq!(go_file_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_file_mode(libc::S_IFREG | 0o4755), (1 << 23) | 0o755);
        assert_eq!(go_file_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        std::fs::create_dir_all(r.join("real/sub")).unwrap();
        std::os::unix::fs::symlink("/", r.join("evil")).unwrap();
        std::os::unix::fs::symlink("../../../../", r.join("real/evil2")).unwrap();
        std::os::unix::fs::symlink("real/sub", r.join("rel")).unwrap();
        let root = rustix::fs::open(r, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        assert_eq!(
            follow_in_scope(&root, "/evil/etc/shadow").unwrap(),
            "/etc/shadow"
        );
        assert_eq!(follow_in_scope(&root, "/real/evil2/tmp").unwrap(), "/tmp");
        assert_eq!(follow_in_scope(&root, "/rel/x").unwrap(), "/real/sub/x");
        // The kernel agrees: /evil/real is the root's /real, not the host's.
        assert!(open(&root, "/evil/real/evil2/real/sub", OFlags::PATH).is_ok());
        assert!(open(&root, "/evil/proc/self", OFlags::PATH).is_err());
    }
}
