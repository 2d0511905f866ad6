//! Terminals: `process.terminal` gives the process a pty made inside the container's own
//! devpts instance; the master end is passed to the runner over a socket (SCM_RIGHTS), as
//! runc's console socket does. The foreground runner then relays it to its own terminal
//! ([`relay`]); the shim will keep the master and serve `docker attach` with it.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::init::{Failure, Stage};
use crate::sys;

/// Space for one `cmsghdr` carrying one fd, 8-byte aligned.
type CmsgBuf = [u64; 4];

/// In the init, after pivot_root: creates the pty, makes the slave the controlling terminal
/// and stdio of the process, and sends the master to the runner over `sock`.
pub(crate) fn setup_in_init(
    sock: RawFd,
    size: Option<(u16, u16)>,
) -> std::result::Result<(), Failure> {
    let fail = |i| move |e| Failure::new(Stage::Console, i, e);
    // SAFETY: the path is NUL-terminated.
    let master = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    if master < 0 {
        return Err(fail(0)(sys::errno()));
    }
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to an int.
    sys::check(unsafe { libc::ioctl(master, libc::TIOCSPTLCK, &unlock) }.into())
        .map_err(fail(1))?;
    // TIOCGPTPEER opens the slave from the master, with no path lookup to race with.
    // SAFETY: TIOCGPTPEER takes open flags as its argument.
    let slave = unsafe { libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY) };
    if slave < 0 {
        return Err(fail(2)(sys::errno()));
    }
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ takes a pointer to a winsize.
        sys::check(unsafe { libc::ioctl(slave, libc::TIOCSWINSZ, &ws) }.into()).map_err(fail(3))?;
    }
    // SAFETY: setsid has no arguments; the init is not a process group leader.
    sys::check(unsafe { libc::setsid() }.into()).map_err(fail(4))?;
    // SAFETY: TIOCSCTTY takes an int argument.
    sys::check(unsafe { libc::ioctl(slave, libc::TIOCSCTTY, 0) }.into()).map_err(fail(5))?;
    for fd in 0..3 {
        // SAFETY: dup2 of an fd we own onto 0..2.
        sys::check(unsafe { libc::dup2(slave, fd) }.into()).map_err(fail(6))?;
    }
    if slave > 2 {
        sys::close(slave);
    }
    send_fd(sock, master).map_err(fail(7))?;
    sys::close(master);
    Ok(())
}

/// Sends `fd` with one data byte over a unix socket; allocation-free.
pub(crate) fn send_fd(sock: RawFd, fd: RawFd) -> std::result::Result<(), sys::Errno> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf: CmsgBuf = [0; 4];
    // SAFETY: an all-zero msghdr is valid; the fields are filled below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE is a pure computation.
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
    // SAFETY: `msg` has a control buffer large enough for one cmsghdr with one fd.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<RawFd>(), fd);
    }
    // SAFETY: `msg` points at live buffers for the duration of the call.
    sys::check(unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) } as libc::c_long).map(|_| ())
}

/// Receives the pty master the init sent over `sock`.
pub fn recv_master(sock: &OwnedFd) -> Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut buf: CmsgBuf = [0; 4];
    // SAFETY: an all-zero msghdr is valid; the fields are filled below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = buf.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of::<CmsgBuf>();
    // SAFETY: `msg` points at live buffers for the duration of the call.
    let n = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
    if n < 0 {
        return Err(Error::last_os("recvmsg console"));
    }
    // SAFETY: the kernel filled `msg`; CMSG_FIRSTHDR checks the control length.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_level != libc::SOL_SOCKET || (*c).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(Error::Syscall {
                call: "recvmsg console",
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, "no fd received"),
            });
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<RawFd>());
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A socket pair for passing the master (both ends CLOEXEC).
pub(crate) fn socketpair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` is a valid 2-element array.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc < 0 {
        return Err(Error::last_os("socketpair"));
    }
    // SAFETY: fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

static WINCH: AtomicBool = AtomicBool::new(false);

extern "C" fn on_winch(_: libc::c_int) {
    WINCH.store(true, Ordering::Relaxed);
}

fn copy_winsize(from: RawFd, to: RawFd) {
    // SAFETY: an all-zero winsize is valid to be overwritten.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ take a pointer to a winsize.
    unsafe {
        if libc::ioctl(from, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(to, libc::TIOCSWINSZ, &ws);
        }
    }
}

fn write_all(fd: RawFd, buf: &[u8]) -> bool {
    sys::write_all(fd, buf).is_ok()
}

/// Relays the runner's stdin/stdout to the pty master until the container side closes (all
/// slave descriptors gone), following the runner's window size.
pub fn relay(master: &OwnedFd) {
    let m = master.as_raw_fd();
    let _raw = stdio::terminal::RawMode::enter(0);
    copy_winsize(0, m);
    // SAFETY: an all-zero sigaction is valid; the handler only stores to an atomic.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_winch as *const () as libc::sighandler_t;
        libc::sigaction(libc::SIGWINCH, &sa, std::ptr::null_mut());
    }
    let mut stdin_open = true;
    let mut buf = [0u8; 8192];
    loop {
        if WINCH.swap(false, Ordering::Relaxed) {
            copy_winsize(0, m);
        }
        let mut fds = [
            libc::pollfd {
                fd: m,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if stdin_open { 0 } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if n < 0 {
            if sys::errno() == libc::EINTR {
                continue;
            }
            return;
        }
        if fds[0].revents != 0 {
            // SAFETY: `buf` is a valid writable buffer.
            let r = unsafe { libc::read(m, buf.as_mut_ptr().cast(), buf.len()) };
            // EIO: every slave descriptor is closed; the container's side is gone.
            if r <= 0 || !write_all(1, &buf[..r as usize]) {
                return;
            }
        }
        if stdin_open && fds[1].revents != 0 {
            // SAFETY: `buf` is a valid writable buffer.
            let r = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
            if r <= 0 {
                stdin_open = false;
            } else if !write_all(m, &buf[..r as usize]) {
                return;
            }
        }
    }
}
