//! The client's own terminal for `-t`: raw mode while a session runs, and its size.

use std::os::fd::RawFd;

/// Puts a terminal in raw mode (as the docker CLI does for `-it`) until dropped.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Raw mode on `fd`, if it is a terminal.
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: an all-zero termios is a valid value to be overwritten by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a valid out-pointer.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return None;
        }
        let saved = t;
        // SAFETY: cfmakeraw edits the struct it is given.
        unsafe { libc::cfmakeraw(&mut t) };
        // Keep output post-processing so that our own messages still start at column 0.
        t.c_oflag = saved.c_oflag;
        // SAFETY: `t` is a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) } != 0 {
            return None;
        }
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read in `enter`.
        unsafe { libc::tcsetattr(self.fd, libc::TCSANOW, &self.saved) };
    }
}

/// The window size of the terminal on `fd` as (rows, columns), if it is one.
pub fn size(fd: RawFd) -> Option<(u16, u16)> {
    // SAFETY: an all-zero winsize is valid.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills the winsize it points to.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } != 0 {
        return None;
    }
    Some((ws.ws_row, ws.ws_col))
}
