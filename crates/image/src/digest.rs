//! `sha256:<hex>` content digests and a hashing writer.

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_hash(Sha256::digest(data).as_slice())
    }

    /// Builds a digest from a raw 32-byte SHA-256 output.
    pub fn from_hash(hash: &[u8]) -> Digest {
        Digest(format!("sha256:{}", hex::encode(hash)))
    }

    /// Parses a bare 64-hex string (no algorithm prefix).
    pub fn from_hex(hex: &str) -> Result<Digest> {
        if is_hex64(hex) {
            Ok(Digest(format!("sha256:{hex}")))
        } else {
            Err(Error::InvalidArgument(format!(
                "invalid digest hex {hex:?}"
            )))
        }
    }

    /// The 64 hex characters.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }

    /// The first 12 hex characters (Docker's short ID).
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }

    /// The full `sha256:<hex>` form.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Chain ID of `parent` followed by `diff_id`, as Docker computes it.
    pub fn chain(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
        match parent {
            None => diff_id.clone(),
            Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
        }
    }
}

/// True when `s` is exactly 64 lowercase hex characters.
pub(crate) fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.0)
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        match s.strip_prefix("sha256:") {
            Some(hex) if is_hex64(hex) => Ok(Digest(s.to_string())),
            _ => Err(Error::InvalidArgument(format!("invalid digest {s:?}"))),
        }
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Digest, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A writer that hashes (and counts) everything passing through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Writes (and counts) without hashing: for a caller that checks the digest elsewhere.
    pub fn write_unhashed(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    /// Returns the inner writer, the digest and the byte count.
    pub fn finish(self) -> (W, Digest, u64) {
        (
            self.inner,
            Digest::from_hash(self.hasher.finalize().as_slice()),
            self.written,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes (and counts) everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    read: u64,
}

impl<R: io::Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.read
    }

    /// The digest of everything read and the byte count.
    pub fn finish(self) -> (Digest, u64) {
        (
            Digest::from_hash(self.hasher.finalize().as_slice()),
            self.read,
        )
    }
}

impl<R: io::Read> io::Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// A reader that hashes everything read through it on a helper thread, so the hashing of a stream
/// runs beside whatever the caller does with the bytes (unpacking a layer) instead of after it.
pub struct BackgroundHashingReader<R> {
    inner: R,
    current: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    handle: Option<std::thread::JoinHandle<(Digest, u64)>>,
}

/// How many bytes go to the hashing thread at once.
const HASH_CHUNK: usize = 1 << 20;

impl<R: io::Read> BackgroundHashingReader<R> {
    /// Wraps `inner`, starting the hashing thread.
    pub fn new(inner: R) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let (spare_tx, spare) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("hasher".into())
            .spawn(move || {
                let mut h = Sha256::new();
                let mut n = 0u64;
                for chunk in rx {
                    h.update(&chunk);
                    n += chunk.len() as u64;
                    let _ = spare_tx.send(chunk);
                }
                (Digest::from_hash(h.finalize().as_slice()), n)
            })
            .map_err(|e| Error::io("spawn", "hashing thread", e))?;
        Ok(BackgroundHashingReader {
            inner,
            current: Vec::with_capacity(HASH_CHUNK),
            tx: Some(tx),
            spare,
            handle: Some(handle),
        })
    }

    fn send_current(&mut self) {
        let next = match self.spare.try_recv() {
            Ok(mut v) => {
                v.clear();
                v
            }
            Err(_) => Vec::with_capacity(HASH_CHUNK),
        };
        let chunk = std::mem::replace(&mut self.current, next);
        if let Some(tx) = &self.tx {
            // The thread only stops when `tx` is dropped.
            let _ = tx.send(chunk);
        }
    }

    /// The digest of everything read and the byte count.
    pub fn finish(mut self) -> Result<(Digest, u64)> {
        if !self.current.is_empty() {
            self.send_current();
        }
        self.tx = None;
        match self.handle.take().map(std::thread::JoinHandle::join) {
            Some(Ok(d)) => Ok(d),
            _ => Err(Error::Conflict("hashing thread panicked".into())),
        }
    }
}

impl<R: io::Read> io::Read for BackgroundHashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            let take = rest.len().min(HASH_CHUNK - self.current.len());
            self.current.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.current.len() >= HASH_CHUNK {
                self.send_current();
            }
        }
        Ok(n)
    }
}

impl<R> Drop for BackgroundHashingReader<R> {
    fn drop(&mut self) {
        self.tx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn background_hashing_reader_hashes_every_byte_read() -> Result<()> {
        let data: Vec<u8> = (0..3 * HASH_CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let mut r = BackgroundHashingReader::new(&data[..])?;
        let mut out = Vec::new();
        io::Read::read_to_end(&mut r, &mut out).map_err(|e| Error::io("read", "test", e))?;
        assert_eq!(out, data);
        assert_eq!(r.finish()?, (Digest::of(&data), data.len() as u64));
        Ok(())
    }

    #[test]
    fn digest_parses_and_rejects() {
        let d = Digest::of(b"");
        assert_eq!(
            d.hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(d.to_string().parse::<Digest>().ok(), Some(d));
        assert!("sha256:abc".parse::<Digest>().is_err());
        assert!(
            "md5:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .parse::<Digest>()
                .is_err()
        );
    }
}
