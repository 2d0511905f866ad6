//! Network namespaces: open one by path or fd, make a fresh one, run code inside one on a thread of its own.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType, UnshareFlags};

use crate::error::{Error, Result};

/// A handle on a network namespace, kept alive for as long as the handle lives.
#[derive(Debug)]
pub struct NetNs {
    fd: OwnedFd,
    label: String,
}

impl NetNs {
    /// Open a namespace by path, e.g. `/proc/PID/ns/net` or `/run/netns/NAME`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|source| Error::Netns {
            what: format!("open {}", path.display()),
            source,
        })?;
        Ok(NetNs {
            fd: file.into(),
            label: path.display().to_string(),
        })
    }

    /// Wrap an fd that refers to a network namespace (e.g. handed over by the runtime).
    pub fn from_fd(fd: OwnedFd, label: impl Into<String>) -> Self {
        NetNs {
            fd,
            label: label.into(),
        }
    }

    /// Create a fresh, empty network namespace (only `lo`, down) that lives as long as the handle.
    ///
    /// The namespace is made by a short-lived thread that unshares and exits, so no thread of the
    /// caller ever changes namespace.
    pub fn new_anonymous(label: impl Into<String>) -> Result<Self> {
        let label = label.into();
        let fd = std::thread::scope(|s| {
            s.spawn(|| -> std::io::Result<OwnedFd> {
                // SAFETY: unsharing only the network namespace of this thread, which exits right
                // after opening its namespace file; no other thread shares state tied to it.
                unsafe { rustix::thread::unshare_unsafe(UnshareFlags::NEWNET) }?;
                Ok(File::open("/proc/thread-self/ns/net")?.into())
            })
            .join()
        })
        .map_err(|_| Error::Netns {
            what: format!("create {label}"),
            source: std::io::Error::other("namespace thread panicked"),
        })?
        .map_err(|source| Error::Netns {
            what: format!("create {label}"),
            source,
        })?;
        Ok(NetNs { fd, label })
    }

    /// A human-readable name for errors.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Borrow the namespace fd (for `IFLA_NET_NS_FD`).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Run `f` on a new thread that has entered this namespace; the thread ends afterwards, so the
    /// namespace switch never leaks into a pool thread.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T> {
        std::thread::scope(|s| {
            s.spawn(|| -> Result<T> {
                move_into_link_name_space(self.fd.as_fd(), Some(LinkNameSpaceType::Network))
                    .map_err(|e| Error::Netns {
                        what: format!("enter {}", self.label),
                        source: e.into(),
                    })?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| {
                Err(Error::Netns {
                    what: format!("run in {}", self.label),
                    source: std::io::Error::other("thread panicked"),
                })
            })
        })
    }
}

/// Run `f` inside `ns` if one is given, else on the calling thread (the daemon's own namespace).
pub(crate) fn run_in<T: Send>(ns: Option<&NetNs>, f: impl FnOnce() -> T + Send) -> Result<T> {
    match ns {
        Some(ns) => ns.run(f),
        None => Ok(f()),
    }
}
