//! The shim's byte buffers: what waits to be written to a client's socket ([`Queue`]) and what waits to
//! go into a process's stdin ([`Input`]). Both are bounded by their users: the poll loop stops reading
//! from whoever fills them (stdin clients, exec output) or drops what a slow attach client cannot take.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Bytes queued for a non-blocking writer, consumed from the front. A head offset instead of
/// `Vec::drain` keeps a large backlog from being moved on every partial write.
#[derive(Default)]
pub(crate) struct Queue {
    data: Vec<u8>,
    head: usize,
}

/// A queue whose allocation grew past this during a burst gives it back once it empties: the shim lives as
/// long as its container, and one runs per container.
const KEEP_CAPACITY: usize = 256 * 1024;

impl Queue {
    /// How many bytes wait.
    pub(crate) fn len(&self) -> usize {
        self.data.len() - self.head
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes that wait, oldest first.
    pub(crate) fn front(&self) -> &[u8] {
        &self.data[self.head..]
    }

    /// Adds bytes at the back.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.head > 0 && self.head >= self.data.len() / 2 {
            self.data.drain(..self.head);
            self.head = 0;
        }
        self.data.extend_from_slice(bytes);
    }

    /// Drops `n` bytes from the front (they were written).
    pub(crate) fn consume(&mut self, n: usize) {
        self.head = (self.head + n).min(self.data.len());
        if self.head == self.data.len() {
            self.clear();
        }
    }

    /// Drops everything.
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.head = 0;
        if self.data.capacity() > KEEP_CAPACITY {
            self.data = Vec::new();
        }
    }
}

/// How much client input may wait for a process's stdin before the shim stops reading that client: the
/// backpressure reaches the client through its socket, so any amount of input flows in bounded memory.
pub(crate) const INPUT_LIMIT: usize = 256 * 1024;

/// The way into a process's stdin (a pipe, or a pty master): client bytes wait here while the pipe is
/// full, and an end of input closes the pipe once they are all written (the process then sees EOF).
#[derive(Default)]
pub(crate) struct Input {
    fd: Option<OwnedFd>,
    pending: Queue,
    /// The client ended its input: close once `pending` is written.
    ending: bool,
}

impl Input {
    /// Input into `fd` (non-blocking), or none.
    pub(crate) fn new(fd: Option<OwnedFd>) -> Input {
        Input {
            fd,
            ..Input::default()
        }
    }

    /// Queues bytes and writes what the pipe takes now. Bytes for a closed stdin are dropped.
    pub(crate) fn push(&mut self, bytes: &[u8]) {
        if self.fd.is_some() && !self.ending {
            self.pending.push(bytes);
            self.flush();
        }
    }

    /// Whether more client bytes may be read: the backlog is under [`INPUT_LIMIT`] (or the stdin is
    /// gone, so what comes is dropped).
    pub(crate) fn has_room(&self) -> bool {
        self.pending.len() < INPUT_LIMIT
    }

    /// The fd and events to poll: writable while bytes wait.
    pub(crate) fn poll_fd(&self) -> (RawFd, i16) {
        match &self.fd {
            Some(fd) if !self.pending.is_empty() => (fd.as_raw_fd(), libc::POLLOUT),
            _ => (-1, 0),
        }
    }

    /// The client's input ended: the stdin closes once what waits is written.
    pub(crate) fn end(&mut self) {
        self.ending = true;
        self.flush();
    }

    /// Writes what waits, as far as the pipe takes it; a broken pipe (the process closed its stdin) is
    /// closed and what waited dropped.
    pub(crate) fn flush(&mut self) {
        let Some(fd) = self.fd.as_ref() else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match rustix::io::write(fd, self.pending.front()) {
                Ok(n) => self.pending.consume(n),
                Err(rustix::io::Errno::AGAIN) => return,
                Err(rustix::io::Errno::INTR) => continue,
                Err(_) => {
                    self.pending.clear();
                    self.fd = None;
                    return;
                }
            }
        }
        if self.ending {
            self.fd = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_consumes_from_the_front_and_compacts() {
        let mut q = Queue::default();
        q.push(b"hello ");
        q.push(b"world");
        q.consume(6);
        assert_eq!(q.front(), b"world");
        q.push(b"!");
        assert_eq!(q.front(), b"world!");
        assert_eq!(q.len(), 6);
        q.consume(100);
        assert!(q.is_empty());
    }

    #[test]
    fn input_closes_only_after_the_backlog_is_written() {
        let (r, w) = rustix::pipe::pipe().unwrap();
        rustix::io::ioctl_fionbio(&w, true).unwrap();
        let mut input = Input::new(Some(w));
        // More than a pipe holds: part of it waits in the shim.
        let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        input.push(&data);
        assert!(!input.pending.is_empty());
        input.end();
        assert!(input.fd.is_some(), "closed with bytes still waiting");
        let mut got = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            input.flush();
            let n = rustix::io::read(&r, &mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, data);
        assert!(input.fd.is_none());
    }
}
