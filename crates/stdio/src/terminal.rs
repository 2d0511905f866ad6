//! The terminal of whoever runs a session: raw mode while it lasts, and its size.

use std::os::fd::RawFd;

/// A terminal in raw mode (as the docker CLI puts it for `-it`) until dropped.
pub struct RawMode {
    fd: RawFd,
    saved: libc::termios,
}

impl RawMode {
    /// Raw mode on `fd`, if it is a terminal: input and output untouched (a relay to a pty).
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        Self::enter_with(fd, false)
    }

    /// Raw input on `fd`, if it is a terminal, with the output post-processing kept, so that a client's own
    /// messages still start at column 0 (the CLIs' sessions).
    pub fn enter_keeping_output(fd: RawFd) -> Option<RawMode> {
        Self::enter_with(fd, true)
    }

    fn enter_with(fd: RawFd, keep_output: bool) -> Option<RawMode> {
        // SAFETY: an all-zero termios is a valid value to be overwritten by tcgetattr.
        let mut t: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: `t` is a valid out-pointer.
        if unsafe { libc::tcgetattr(fd, &mut t) } != 0 {
            return None;
        }
        let saved = t;
        // SAFETY: cfmakeraw edits the struct it is given.
        unsafe { libc::cfmakeraw(&mut t) };
        if keep_output {
            t.c_oflag = saved.c_oflag;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_that_is_no_terminal_has_no_raw_mode_and_no_size() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&f);
        assert!(RawMode::enter(fd).is_none());
        assert!(size(fd).is_none());
    }
}
