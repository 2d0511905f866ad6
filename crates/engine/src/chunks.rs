//! A pipe of byte chunks from async code to a blocking reader: a request body on its way to `load`,
//! `import` or a build, a registry blob on its way to the image store. The chunks move by reference
//! (`Bytes`), so the only copy is the reader's own, into the buffer it reads into.
//!
//! Bodies arrive in the sender's chunks (the docker CLI's are 32 KiB: 3,000 for a 100 MB build context),
//! and waking the reading thread for each cost as much CPU as the reading itself. So the sender queues
//! chunks and wakes the reader only once [`WAKE_AT`] bytes wait, or at the end or an error; it waits
//! itself while [`QUEUE_MAX`] bytes are queued. Every user reads a whole stream before it answers, so a
//! reader waiting for more than a pause in the stream has no cost but that pause.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use bytes::{Buf, Bytes};

/// The reader is woken once this many bytes wait for it.
pub const WAKE_AT: usize = 512 << 10;
/// The sender waits while this many bytes are queued.
pub const QUEUE_MAX: usize = 4 << 20;

#[derive(Default)]
struct State {
    chunks: VecDeque<Bytes>,
    bytes: usize,
    /// The stream's end (`Ok`) or error; `None` while it goes on.
    end: Option<io::Result<()>>,
    /// The reader was dropped: the sender stops.
    reader_gone: bool,
    /// The reader waits on [`Shared::ready`] (a notification with nobody waiting still costs a syscall).
    reader_waiting: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// The reader waits on it for [`WAKE_AT`] bytes or the end.
    ready: Condvar,
    /// The sender waits on it for room.
    room: tokio::sync::Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain data, each update complete before the guard goes: nothing a panic could leave half made.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn end(&self, end: io::Result<()>) {
        let mut st = self.lock();
        if st.end.is_none() {
            st.end = Some(end);
        }
        drop(st);
        self.ready.notify_one();
    }
}

/// A new pipe: chunks pushed into the sender (from async code) come out of the reader (on a blocking
/// thread) in order, then the end the sender gave.
pub fn pipe() -> (ChunkSender, ChunkReader) {
    let shared = Arc::new(Shared::default());
    (
        ChunkSender {
            shared: Arc::clone(&shared),
        },
        ChunkReader {
            shared,
            current: Bytes::new(),
            queued: VecDeque::new(),
        },
    )
}

/// The async end of a [`pipe`]. Dropped without [`ChunkSender::finish`], the stream ends in an error
/// for the reader: a producer that fails or is cancelled never looks like a complete stream.
pub struct ChunkSender {
    shared: Arc<Shared>,
}

impl ChunkSender {
    /// Queues `data`, waiting while the queue is full; false once the reader is gone.
    pub async fn push(&self, data: Bytes) -> bool {
        if data.is_empty() {
            return !self.shared.lock().reader_gone;
        }
        loop {
            // Registered before the check, so a wake between the check and the wait is not lost.
            let room = self.shared.room.notified();
            {
                let mut st = self.shared.lock();
                if st.reader_gone {
                    return false;
                }
                if st.bytes < QUEUE_MAX {
                    st.bytes += data.len();
                    st.chunks.push_back(data);
                    if st.bytes >= WAKE_AT && st.reader_waiting {
                        self.shared.ready.notify_one();
                    }
                    return true;
                }
            }
            room.await;
        }
    }

    /// Ends the stream: the reader gives what is queued, then end of file (`Ok`) or the error.
    pub fn finish(self, end: io::Result<()>) {
        self.shared.end(end);
    }
}

impl Drop for ChunkSender {
    fn drop(&mut self) {
        self.shared.end(Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the stream was cut off",
        )));
    }
}

/// The blocking end of a [`pipe`]; it must be read from a blocking thread.
pub struct ChunkReader {
    shared: Arc<Shared>,
    current: Bytes,
    /// Chunks taken from the queue in one go, read before the next.
    queued: VecDeque<Bytes>,
}

impl Drop for ChunkReader {
    fn drop(&mut self) {
        self.shared.lock().reader_gone = true;
        self.shared.room.notify_one();
    }
}

impl ChunkReader {
    /// Takes everything queued once there is [`WAKE_AT`] of it or the stream ended; `Ok(false)` at
    /// its end.
    fn refill(&mut self) -> io::Result<bool> {
        let mut st = self.shared.lock();
        loop {
            if st.bytes >= WAKE_AT || (st.end.is_some() && !st.chunks.is_empty()) {
                self.queued = std::mem::take(&mut st.chunks);
                st.bytes = 0;
                drop(st);
                self.shared.room.notify_one();
                return Ok(true);
            }
            match &st.end {
                Some(Ok(())) => return Ok(false),
                Some(Err(e)) => return Err(io::Error::new(e.kind(), e.to_string())),
                None => {}
            }
            st.reader_waiting = true;
            st = self
                .shared
                .ready
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
            st.reader_waiting = false;
        }
    }
}

impl BufRead for ChunkReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.current.is_empty() {
            match self.queued.pop_front() {
                Some(b) => self.current = b,
                None => {
                    if !self.refill()? {
                        break;
                    }
                }
            }
        }
        Ok(&self.current)
    }

    fn consume(&mut self, n: usize) {
        self.current.advance(n.min(self.current.len()));
    }
}

impl Read for ChunkReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let data = self.fill_buf()?;
        let n = out.len().min(data.len());
        out[..n].copy_from_slice(&data[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(r: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 7000];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Streams shorter than the wake threshold, longer than the queue, ending in an error or cut off
    /// are read whole and in order (the error after the bytes before it), from a blocking thread.
    #[test]
    fn the_reader_gives_every_byte_in_order_then_the_end_or_the_error() {
        let rt = runtime();
        let pattern = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 7 % 251) as u8).collect() };
        for total in [0, 10, WAKE_AT - 1, WAKE_AT, QUEUE_MAX * 3 + 12345] {
            let data = pattern(total);
            let (tx, mut rx) = pipe();
            let chunks: Vec<Bytes> = data.chunks(32 << 10).map(Bytes::copy_from_slice).collect();
            rt.spawn(async move {
                for c in chunks {
                    assert!(tx.push(c).await);
                }
                tx.finish(Ok(()));
            });
            let got = rt
                .block_on(async { tokio::task::spawn_blocking(move || read_all(&mut rx)).await })
                .unwrap_or_else(|e| panic!("{e}"))
                .unwrap_or_else(|e| panic!("{total}: {e}"));
            assert!(got == data, "{total} bytes");
        }
        for ending in ["cut off", "dropped"] {
            let data = pattern(100_000);
            let (tx, mut rx) = pipe();
            let first = Bytes::copy_from_slice(&data);
            rt.spawn(async move {
                assert!(tx.push(first).await);
                if ending == "cut off" {
                    tx.finish(Err(io::Error::other("cut off")));
                }
            });
            let (got, err) = rt
                .block_on(async {
                    tokio::task::spawn_blocking(move || {
                        let mut got = vec![0u8; data.len()];
                        let read = rx.read_exact(&mut got);
                        (read.map(|()| got), read_all(&mut rx).map(|_| ()))
                    })
                    .await
                })
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(got.is_ok_and(|g| g == pattern(100_000)));
            let want = if ending == "cut off" {
                "cut off"
            } else {
                "the stream was cut off"
            };
            assert!(err.is_err_and(|e| e.to_string() == want), "{ending}");
        }
    }

    /// A reader that goes away stops a sender waiting for room.
    #[test]
    fn a_sender_stops_when_the_reader_goes() {
        let rt = runtime();
        let (tx, rx) = pipe();
        let sent = rt.block_on(async move {
            let pushing = tokio::spawn(async move {
                let mut n = 0;
                while tx.push(Bytes::from(vec![0u8; 1 << 20])).await {
                    n += 1;
                }
                n
            });
            tokio::task::spawn_blocking(move || drop(rx)).await.ok();
            pushing.await.unwrap_or(usize::MAX)
        });
        assert!(sent <= QUEUE_MAX >> 20, "{sent}");
    }
}
