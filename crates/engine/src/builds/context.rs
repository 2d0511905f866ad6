//! The build context: the client's tar (plain, gzip or zstd), extracted below the build's directory with the
//! archive crate's strict rules (no `..`, no absolute names, no symlink followed on the way, no devices), and
//! the Dockerfile read from it.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// Extracts `tar` into the new directory `dir`.
pub(super) fn extract(tar: &mut dyn Read, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::System(format!("creating {}: {e}", dir.display())))?;
    let mut head = [0u8; 6];
    let n = read_up_to(tar, &mut head)?;
    // bzip2 ("BZh") and xz (fd 37 7a 58 5a 00) contexts are what the API also allows; Berth reads the two
    // compressions the docker CLI and docker-py use (gzip) and zstd.
    if head[..n].starts_with(b"BZh") || head[..n].starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(Error::InvalidParameter(
            "build context compressed with bzip2 or xz is not supported by Berth yet: send it plain, gzip or zstd"
                .into(),
        ));
    }
    let whole = std::io::Cursor::new(head[..n].to_vec()).chain(tar);
    let (_, reader) = image::layer::compress::decompress(whole)
        .map_err(|e| Error::InvalidParameter(format!("reading the build context: {e}")))?;
    let mut opts = archive::Options::layer();
    opts.whiteouts = archive::Whiteouts::Plain;
    opts.root_metadata = false;
    opts.xattrs = false;
    archive::extract_into(dir, reader, &opts).map_err(|e| {
        if e.is_refusal() {
            Error::InvalidParameter(format!("build context: {e}"))
        } else {
            Error::System(format!("extracting the build context: {e}"))
        }
    })?;
    Ok(())
}

/// The Dockerfile `name` (a path in the context); like dockerd, `dockerfile` is tried when the default
/// `Dockerfile` is missing.
pub(super) fn dockerfile(dir: &Path, name: &str) -> Result<Vec<u8>> {
    let rel = name.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Err(Error::InvalidParameter(format!(
            "Cannot locate specified Dockerfile: {name}"
        )));
    }
    let root = std::fs::canonicalize(dir)
        .map_err(|e| Error::System(format!("the build context {}: {e}", dir.display())))?;
    let mut candidates = vec![rel.to_owned()];
    if rel == "Dockerfile" {
        candidates.push("dockerfile".to_owned());
    }
    for c in candidates {
        let p = dir.join(&c);
        // The context was extracted with no symlink leaving it, but a Dockerfile that is a symlink could
        // still point anywhere: it is read only if it resolves inside the context.
        match std::fs::canonicalize(&p) {
            Ok(real) if real.starts_with(&root) && real.is_file() => {
                return std::fs::read(&real)
                    .map_err(|e| Error::System(format!("reading {c}: {e}")));
            }
            _ => continue,
        }
    }
    Err(Error::InvalidParameter(format!(
        "Cannot locate specified Dockerfile: {name}"
    )))
}

fn read_up_to(r: &mut dyn Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::InvalidParameter(format!(
                    "reading the build context: {e}"
                )))
            }
        }
    }
    Ok(n)
}
