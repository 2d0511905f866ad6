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

#[cfg(test)]
mod tests {
    use super::*;

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
