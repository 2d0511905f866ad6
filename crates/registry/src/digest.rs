//! Digests of blobs and manifests, checked while the bytes stream past.

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};

/// An incremental hasher for one `algorithm:hex` digest (sha256 or sha512, the two the OCI spec
/// registers).
pub enum Digester {
    /// sha256.
    Sha256(Sha256),
    /// sha512.
    Sha512(Sha512),
}

impl Digester {
    /// A hasher for the algorithm of `digest`, after checking the digest is well formed.
    pub fn for_digest(digest: &str) -> Result<Digester> {
        let (alg, hex) = digest
            .split_once(':')
            .ok_or_else(|| Error::Protocol(format!("invalid digest {digest:?}")))?;
        let (d, len) = match alg {
            "sha256" => (Digester::Sha256(Sha256::new()), 64),
            "sha512" => (Digester::Sha512(Sha512::new()), 128),
            _ => {
                return Err(Error::Protocol(format!(
                    "unsupported digest algorithm {alg:?} in {digest:?}"
                )))
            }
        };
        if hex.len() != len
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(Error::Protocol(format!("invalid digest {digest:?}")));
        }
        Ok(d)
    }

    /// A sha256 hasher.
    pub fn sha256() -> Digester {
        Digester::Sha256(Sha256::new())
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Digester::Sha256(h) => h.update(data),
            Digester::Sha512(h) => h.update(data),
        }
    }

    /// The `algorithm:hex` digest of what was fed.
    pub fn finish(self) -> String {
        match self {
            Digester::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Digester::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// The sha256 digest of bytes, `sha256:<hex>`.
pub fn sha256(data: &[u8]) -> String {
    let mut d = Digester::sha256();
    d.update(data);
    d.finish()
}

/// Checks that `data` hashes to `expected` (with `expected`'s algorithm).
pub fn verify(what: &str, expected: &str, data: &[u8]) -> Result<()> {
    let mut d = Digester::for_digest(expected)?;
    d.update(data);
    let actual = d.finish();
    if actual != expected {
        return Err(Error::DigestMismatch {
            what: what.to_string(),
            expected: expected.to_string(),
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_validate_and_verify() {
        let empty = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256(b""), empty);
        assert!(verify("x", empty, b"").is_ok());
        assert_eq!(
            verify("manifest", empty, b"a").err().map(|e| e.to_string()),
            Some(format!("manifest verification failed for digest {empty}"))
        );
        assert!(Digester::for_digest("sha256:abc").is_err());
        assert!(Digester::for_digest("md5:d41d8cd98f00b204e9800998ecf8427e").is_err());
        assert!(Digester::for_digest(&empty.to_uppercase()).is_err());
        let mut d = Digester::for_digest(&format!("sha512:{}", "0".repeat(128)))
            .unwrap_or_else(|e| panic!("{e}"));
        d.update(b"");
        assert!(d.finish().starts_with("sha512:cf83e1357eefb8bd"));
    }
}
