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

/// Sniffs an archive that is not an image layer (a build context, an `ADD`ed local archive) and returns
/// a reader of its uncompressed bytes: the layer compressions of [`decompress`], plus bzip2 and xz, which
/// dockerd's builder also takes there (no image layer is bzip2 or xz, so [`Compression`] stays the
/// layers' set).
pub fn decompress_archive<'a>(mut r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    const XZ_MAGIC: [u8; 6] = [0xfd, b'7', b'z', b'X', b'Z', 0];
    let mut head = [0u8; 6];
    let n = read_up_to(&mut r, &mut head)?;
    let head = &head[..n];
    let whole = Cursor::new(head.to_vec()).chain(r);
    Ok(if head.starts_with(b"BZh") {
        Box::new(bzip2::read::MultiBzDecoder::new(whole))
    } else if head.starts_with(&XZ_MAGIC) {
        // `true`: concatenated streams are read to the end, as xz(1) writes and reads them.
        Box::new(lzma_rust2::XzReader::new(
            BufReader::with_capacity(BUF_SIZE, whole),
            true,
        ))
    } else {
        decompress(whole)?.1
    })
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

    #[test]
    fn decompress_archive_reads_bzip2_and_xz_as_well() -> io::Result<()> {
        let data = b"hello context".repeat(1000);
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
        bz.write_all(&data)?;
        let bz = bz.finish()?;
        let mut xz = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(1))?;
        xz.write_all(&data)?;
        let xz = xz.finish()?;
        let zs = zstd::stream::encode_all(&data[..], 1)?;
        for input in [&data[..], &bz[..], &xz[..], &zs[..]] {
            let mut out = Vec::new();
            decompress_archive(input)?.read_to_end(&mut out)?;
            assert_eq!(out, data);
        }
        // A corrupt xz stream is an error, not a short read.
        let mut broken = xz.clone();
        let mid = broken.len() / 2;
        broken[mid] ^= 0xff;
        let mut out = Vec::new();
        assert!(decompress_archive(&broken[..])?
            .read_to_end(&mut out)
            .is_err());
        Ok(())
    }
}
