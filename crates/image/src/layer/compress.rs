//! Detects a layer's compression by its magic bytes and wraps it in a decompressing reader.

use std::io::{self, BufReader, Cursor, Read};

use crate::manifest;

/// Buffer size for layer streams (big: the load target is ≥ 1 GB/s).
pub const BUF_SIZE: usize = 1 << 20;

/// Compression of a layer blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// Detects the compression from the first bytes of a stream.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => manifest::OCI_LAYER,
            Compression::Gzip => manifest::OCI_LAYER_GZIP,
            Compression::Zstd => manifest::OCI_LAYER_ZSTD,
        }
    }
}

pub use archive::read_up_to;

/// Sniffs `r` and returns its compression and a reader of the uncompressed bytes.
pub fn decompress<'a>(mut r: impl Read + 'a) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut head = [0u8; 4];
    let n = read_up_to(&mut r, &mut head)?;
    let c = Compression::detect(&head[..n]);
    let whole = Cursor::new(head[..n].to_vec()).chain(r);
    let reader: Box<dyn Read + 'a> = match c {
        Compression::None => Box::new(whole),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(
            BufReader::with_capacity(BUF_SIZE, whole),
        )),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(
            BufReader::with_capacity(BUF_SIZE, whole),
        )?),
    };
    Ok((c, reader))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn decompress_detects_gzip_zstd_and_plain() -> io::Result<()> {
        let data = b"hello layer".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&data)?;
        let gz = gz.finish()?;
        let zs = zstd::stream::encode_all(&data[..], 1)?;
        for (input, want) in [
            (&data[..], Compression::None),
            (&gz[..], Compression::Gzip),
            (&zs[..], Compression::Zstd),
        ] {
            let (c, mut r) = decompress(input)?;
            assert_eq!(c, want);
            let mut out = Vec::new();
            r.read_to_end(&mut out)?;
            assert_eq!(out, data);
        }
        Ok(())
    }
}
