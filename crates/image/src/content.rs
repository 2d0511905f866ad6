//! Content-addressed blob store: `blobs/sha256/<hex>`, written through `ingest/` and renamed into place
//! only once the content hashes to the expected digest.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{is_hex64, Digest, HashingWriter};
use crate::error::{Error, IoContext, Result};

/// The blob store under a root directory.
#[derive(Clone, Debug)]
pub struct ContentStore {
    blobs: PathBuf,
    ingest: PathBuf,
}

impl ContentStore {
    /// Opens (creating) the blob store under `root` (`root/blobs/sha256`, `root/ingest`).
    pub fn open(root: &Path) -> Result<ContentStore> {
        let blobs = root.join("blobs").join("sha256");
        let ingest = root.join("ingest");
        fs::create_dir_all(&blobs).ctx("create", &blobs)?;
        fs::create_dir_all(&ingest).ctx("create", &ingest)?;
        Ok(ContentStore { blobs, ingest })
    }

    /// Path of a committed blob.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    /// True when the blob is present.
    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Size of a committed blob.
    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let p = self.path(digest);
        Ok(fs::metadata(&p).ctx("stat", &p)?.len())
    }

    /// Opens a committed blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(format!("blob {digest}"))
            } else {
                Error::io("open", &p, e)
            }
        })
    }

    /// Reads a whole (small) blob.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut v = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut v)
            .ctx("read", self.path(digest))?;
        Ok(v)
    }

    /// Stores `data`, returning its digest.
    pub fn write(&self, data: &[u8]) -> Result<Digest> {
        let mut w = self.writer()?;
        w.write_all(data).ctx("write", &w.path)?;
        Ok(w.commit(None)?.0)
    }

    /// Starts a blob whose bytes the caller checks against `digest` itself (a registry client that
    /// verifies what it downloads): they are not hashed again here, and [`BlobWriter::commit`] takes
    /// `digest` as theirs. Commit only once the caller's check passed.
    pub fn writer_verified_by_caller(&self, digest: &Digest) -> Result<BlobWriter> {
        let mut w = self.writer()?;
        w.trusted = Some(digest.clone());
        Ok(w)
    }

    /// Starts a new blob in the ingest area.
    pub fn writer(&self) -> Result<BlobWriter> {
        let path = self.ingest.join(unique_name("ingest"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .ctx("create", &path)?;
        Ok(BlobWriter {
            inner: Some(HashingWriter::new(file)),
            path,
            blobs: self.blobs.clone(),
            trusted: None,
        })
    }

    /// Deletes a blob (missing is fine).
    pub fn delete(&self, digest: &Digest) -> Result<()> {
        let p = self.path(digest);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::io("remove", &p, e)),
            _ => Ok(()),
        }
    }

    /// Every committed blob; stray files that are not digests are removed.
    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.blobs).ctx("read dir", &self.blobs)? {
            let e = e.ctx("read dir", &self.blobs)?;
            let name = e.file_name();
            match name
                .to_str()
                .filter(|n| is_hex64(n))
                .and_then(|n| Digest::from_hex(n).ok())
            {
                Some(d) => out.push(d),
                None => {
                    if let Err(err) = fs::remove_file(e.path()) {
                        tracing::warn!(path = %e.path().display(), error = %err, "removing a stray file from the blob store");
                    }
                }
            }
        }
        Ok(out)
    }

    /// Removes everything in the ingest area (interrupted writes).
    pub fn clean_ingest(&self) -> Result<()> {
        for e in fs::read_dir(&self.ingest).ctx("read dir", &self.ingest)? {
            let p = e.ctx("read dir", &self.ingest)?.path();
            fs::remove_file(&p).ctx("remove", &p)?;
        }
        Ok(())
    }
}

/// A blob being written: hashed as it goes, removed on drop unless committed.
pub struct BlobWriter {
    inner: Option<HashingWriter<File>>,
    path: PathBuf,
    blobs: PathBuf,
    /// The digest the caller vouches for; the bytes are then not hashed here.
    trusted: Option<Digest>,
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.inner.as_ref().map_or(0, HashingWriter::written)
    }

    /// Fsyncs, checks the digest against `expected` (if any) and renames the blob into place.
    /// Returns the digest and size.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let Some(inner) = self.inner.take() else {
            return Err(Error::InvalidArgument(
                "blob writer already finished".into(),
            ));
        };
        let (file, computed, size) = inner.finish();
        let digest = self.trusted.take().unwrap_or(computed);
        if let Some(exp) = expected {
            if *exp != digest {
                if let Err(e) = fs::remove_file(&self.path) {
                    tracing::warn!(path = %self.path.display(), error = %e, "removing a blob that failed verification");
                }
                return Err(Error::DigestMismatch {
                    what: format!("blob {exp}"),
                    expected: exp.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        file.sync_all().ctx("fsync", &self.path)?;
        drop(file);
        let dest = self.blobs.join(digest.hex());
        fs::rename(&self.path, &dest).ctx("rename", &dest)?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match (&mut self.inner, &self.trusted) {
            (Some(w), None) => w.write(buf),
            (Some(w), Some(_)) => w.write_unhashed(buf),
            (None, _) => Err(io::Error::other("blob writer finished")),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        if self.inner.is_some() {
            if let Err(e) = fs::remove_file(&self.path) {
                tracing::warn!(path = %self.path.display(), error = %e, "removing an unfinished blob");
            }
        }
    }
}

/// A name unique within this host for temp files: prefix, pid, a counter and the clock.
pub(crate) fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// A [`BlobWriter`] driven from a helper thread: the caller's bytes are batched into large chunks and
/// hashed and written there, so a load's blob copy overlaps with unpacking the same bytes.
pub struct BackgroundBlobWriter {
    current: Vec<u8>,
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    handle: Option<std::thread::JoinHandle<io::Result<BlobWriter>>>,
}

impl BlobWriter {
    /// Moves the writer to a helper thread.
    pub fn in_background(self) -> Result<BackgroundBlobWriter> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let (spare_tx, spare) = std::sync::mpsc::channel();
        let mut w = self;
        let handle = std::thread::Builder::new()
            .name("blob-writer".into())
            .spawn(move || {
                for chunk in rx {
                    w.write_all(&chunk)?;
                    // Hands the buffer back for reuse; a producer that has stopped needs none.
                    let _ = spare_tx.send(chunk);
                }
                Ok(w)
            })
            .map_err(|e| Error::io("spawn", "blob writer thread", e))?;
        Ok(BackgroundBlobWriter {
            current: Vec::with_capacity(CHUNK),
            tx: Some(tx),
            spare,
            handle: Some(handle),
        })
    }
}

const CHUNK: usize = 1 << 20;

impl BackgroundBlobWriter {
    fn send_current(&mut self) -> io::Result<()> {
        let next = match self.spare.try_recv() {
            Ok(mut v) => {
                v.clear();
                v
            }
            Err(_) => Vec::with_capacity(CHUNK),
        };
        let chunk = std::mem::replace(&mut self.current, next);
        match &self.tx {
            Some(tx) => tx
                .send(chunk)
                .map_err(|_| io::Error::other("blob writer thread stopped")),
            None => Err(io::Error::other("blob writer finished")),
        }
    }

    /// Flushes the last chunk, waits for the thread and returns the writer, ready to commit.
    pub fn finish(mut self) -> Result<BlobWriter> {
        let sent = if self.current.is_empty() {
            Ok(())
        } else {
            self.send_current()
        };
        self.tx = None;
        let joined = match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| Error::Conflict("blob writer thread panicked".into()))?,
            None => {
                return Err(Error::InvalidArgument(
                    "blob writer already finished".into(),
                ))
            }
        };
        let w = joined.map_err(|e| Error::io("write", "blob", e))?;
        sent.map_err(|e| Error::io("write", "blob", e))?;
        Ok(w)
    }
}

impl Write for BackgroundBlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.current.len();
        let n = buf.len().min(room);
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() >= CHUNK {
            self.send_current()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for BackgroundBlobWriter {
    fn drop(&mut self) {
        // Stop the thread; its BlobWriter then removes the ingest file.
        self.tx = None;
        if let Some(h) = self.handle.take() {
            // Its write error is moot once the blob is abandoned; a panic is not.
            if h.join().is_err() {
                tracing::warn!("the blob writer thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_writer_refuses_mismatched_digest_and_leaves_nothing() -> Result<()> {
        let dir = tempfile::tempdir().ctx("tempdir", "/tmp")?;
        let cs = ContentStore::open(dir.path())?;
        let mut w = cs.writer()?;
        w.write_all(b"hello").ctx("write", "blob")?;
        let wrong = Digest::of(b"other");
        assert!(matches!(
            w.commit(Some(&wrong)),
            Err(Error::DigestMismatch { .. })
        ));
        assert!(!cs.exists(&wrong));
        assert_eq!(
            fs::read_dir(dir.path().join("ingest"))
                .map(|d| d.count())
                .ok(),
            Some(0)
        );
        let d = cs.write(b"hello")?;
        assert_eq!(cs.read(&d)?, b"hello");
        Ok(())
    }
}
