//! Docker's multiplexed stream framing: what attach, logs and exec send when the container has no TTY. Each
//! frame is an 8-byte header — the stream number, three zero bytes, the payload's length as a big-endian
//! u32 — followed by the payload. The daemon writes it (api), the shim writes it to the daemon, and the
//! engine and the CLI read it, all through this one module.

/// Stdin's stream number (written by Docker for stdin echoed on a TTY-less stream; read as stdout).
pub const STDIN: u8 = 0;
/// Stdout's stream number.
pub const STDOUT: u8 = 1;
/// Stderr's stream number.
pub const STDERR: u8 = 2;
/// The length of a frame's header.
pub const HEADER_LEN: usize = 8;

/// The header of a frame carrying `len` bytes of `stream`. A payload longer than `u32::MAX` must be split
/// by the caller; lengths are clamped rather than wrapped so a frame never lies about a smaller size.
pub fn header(stream: u8, len: usize) -> [u8; HEADER_LEN] {
    let l = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream, 0, 0, 0, l[0], l[1], l[2], l[3]]
}

/// One whole frame: header and payload.
pub fn encode(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(HEADER_LEN + data.len());
    v.extend_from_slice(&header(stream, data.len()));
    v.extend_from_slice(data);
    v
}

/// Reads a header: the stream number and the payload's length.
pub fn parse_header(h: &[u8; HEADER_LEN]) -> (u8, usize) {
    (h[0], u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize)
}

/// Splits a multiplexed stream that arrives in chunks of any size back into frames.
#[derive(Debug, Default)]
pub struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    /// Feeds bytes and returns the frames they complete, as (stream, payload), in order. Bytes of an
    /// unfinished frame are kept for the next call.
    pub fn feed(&mut self, data: &[u8]) -> Vec<(u8, Vec<u8>)> {
        self.buf.extend_from_slice(data);
        let mut frames = Vec::new();
        let mut at = 0;
        while self.buf.len() - at >= HEADER_LEN {
            let mut h = [0u8; HEADER_LEN];
            h.copy_from_slice(&self.buf[at..at + HEADER_LEN]);
            let (stream, len) = parse_header(&h);
            let end = at + HEADER_LEN + len;
            if self.buf.len() < end {
                break;
            }
            frames.push((stream, self.buf[at + HEADER_LEN..end].to_vec()));
            at = end;
        }
        // One shift per feed, not per frame: a chunk holding many small frames stays linear.
        self.buf.drain(..at);
        frames
    }

    /// Bytes held of a frame not yet complete (non-zero at the end of a stream means it was cut short).
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_docker_layout() {
        assert_eq!(header(STDERR, 0x0102_0304), [2, 0, 0, 0, 1, 2, 3, 4]);
        assert_eq!(parse_header(&header(STDOUT, 70_000)), (STDOUT, 70_000));
        assert_eq!(encode(STDOUT, b"hi"), [1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }

    #[test]
    fn demux_reassembles_frames_split_anywhere() {
        let mut stream = encode(STDOUT, b"hello ");
        stream.extend(encode(STDERR, b""));
        stream.extend(encode(STDERR, &[7u8; 300]));
        stream.extend(encode(STDOUT, b"world"));
        for chunk in [1, 3, 7, 8, 9, 64, stream.len()] {
            let mut d = Demux::default();
            let mut got = Vec::new();
            for c in stream.chunks(chunk) {
                got.extend(d.feed(c));
            }
            assert_eq!(d.pending(), 0, "chunk {chunk}");
            assert_eq!(got.len(), 4, "chunk {chunk}");
            assert_eq!(got[0], (STDOUT, b"hello ".to_vec()));
            assert_eq!(got[1], (STDERR, Vec::new()));
            assert_eq!(got[2], (STDERR, vec![7u8; 300]));
            assert_eq!(got[3], (STDOUT, b"world".to_vec()));
        }
    }

    #[test]
    fn demux_keeps_a_cut_frame_pending() {
        let mut d = Demux::default();
        let f = encode(STDOUT, b"abcdef");
        assert!(d.feed(&f[..10]).is_empty());
        assert_eq!(d.pending(), 10);
    }
}
