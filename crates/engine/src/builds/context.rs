//! The build context: the client's tar (plain, gzip or zstd), extracted below the build's directory with the
//! archive crate's strict rules (no `..`, no absolute names, no symlink followed on the way, no devices), and
//! the Dockerfile read from it. The COPY cache keys' content hashes are computed as the context streams in
//! ([`Sums`]), so a build reads no context file back to hash it.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::Path;
use std::sync::Mutex;

use archive::{EntryType, ObservedEntry, Observer};
use build::context::{FileSum, HashHeader};

use crate::error::{Context, Error, Result};

/// Extracts `tar` into the new directory `dir`; returns the content hashes of what it made, as
/// [`build::context::SourceTree::with_sums`] takes them.
pub(super) fn extract(
    tar: &mut dyn Read,
    dir: &Path,
    memo: &SumMemo,
) -> Result<HashMap<String, String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
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
    let root = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("opening {}", dir.display()))?;
    let mut sums = Sums::default();
    archive::extract_observed(
        std::os::fd::AsFd::as_fd(&root),
        "",
        reader,
        &opts,
        Some(&mut sums),
    )
    .map_err(|e| {
        if e.is_refusal() {
            Error::InvalidParameter(format!("build context: {e}"))
        } else {
            Error::system("extracting the build context", e)
        }
    })?;
    Ok(sums.finish(dir, memo))
}

/// The tarsum of the extracted regular file `name`, read back through no symlink (a later entry may have
/// put one on the way): what the memo remembers must be this entry's content. `None` when it cannot be
/// read so; the build meets (and words) the problem if it needs the file.
fn hash_back(disk: &mut build::context::SourceTree, name: &str) -> Option<String> {
    let rel = disk.resolve(name, true).ok().filter(|rel| rel == name)?;
    let meta = std::fs::symlink_metadata(disk.host_path(&rel)).ok()?;
    if !meta.is_file() {
        return None;
    }
    disk.file_hash(&rel).ok()
}

/// Files at least this big are hashed for [`SumMemo`] as they stream in, rather than with SHA-256.
const MEMO_MIN: u64 = 1 << 20;
/// At most this many remembered sums (then the memo starts afresh): big files are few, and each takes
/// ~100 bytes of the daemon's memory.
const MEMO_MAX: usize = 4096;

/// The tarsums of big context files by a BLAKE3 hash of the same header fields and content: a rebuild
/// sends the same big files again, and BLAKE3 hashes them several times faster than SHA-256, so a
/// rebuild of an unchanged context computes no SHA-256 of them at all. The keys are the same tarsums
/// (a hit means identical header fields and content, BLAKE3 being collision resistant), so the cache
/// behaves exactly as without the memo. A file the memo lacks has its tarsum computed from the extracted
/// file (read back once). Kept in memory only: after a restart the first build computes them again.
#[derive(Default)]
pub(crate) struct SumMemo(Mutex<HashMap<[u8; 32], String>>);

impl SumMemo {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], String>> {
        // A plain map: no invariant a panicking holder could break.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, key: &[u8; 32]) -> Option<String> {
        self.lock().get(key).cloned()
    }

    fn put(&self, key: [u8; 32], sum: String) {
        let mut m = self.lock();
        if m.len() >= MEMO_MAX {
            m.clear();
        }
        m.insert(key, sum);
    }
}

/// The memo's key of a regular file: every header field its tarsum covers (for a regular file the others
/// are fixed: type `0`, no link name, no device numbers, no extended attributes), then the content.
fn memo_hasher(h: &HashHeader) -> blake3::Hasher {
    let mut b = blake3::Hasher::new();
    b.update(b"berth tarsum memo 1\0");
    b.update(format!("{}\0{}\0{}\0{}\0{}\0", h.name, h.mode, h.uid, h.gid, h.size).as_bytes());
    b
}

enum Hashing {
    /// The tarsum itself.
    Tarsum(FileSum),
    /// A big file's memo key (boxed: a BLAKE3 state is ~2 KB, one per big file is nothing).
    Memo(Box<blake3::Hasher>),
}

/// The tarsum of each entry as it is extracted: exactly what [`build::context::SourceTree`] would compute
/// from the extracted file (the path as cleaned, the mode, owner and size the extraction gave it, extended
/// attributes not extracted so not hashed), from the archive's header and the content on its way to disk.
/// Entries whose file could differ from their header are left to the tree to hash from disk: hard links
/// (hashed as plain files there), sparse files, non-UTF-8 names.
/// Big files get a memo key instead ([`SumMemo`]).
#[derive(Default)]
struct Sums {
    sums: HashMap<String, String>,
    dirs: HashSet<String>,
    current: Option<(String, Hashing)>,
    /// Big files and their memo keys.
    keyed: Vec<(String, [u8; 32])>,
}

impl Sums {
    fn close(&mut self) {
        match self.current.take() {
            Some((name, Hashing::Tarsum(sum))) => {
                self.sums.insert(name, sum.finish());
            }
            Some((name, Hashing::Memo(key))) => self.keyed.push((name, key.finalize().into())),
            None => {}
        }
    }

    /// The sums, big files' from the memo or else from their extracted file under `dir` (then
    /// remembered).
    fn finish(mut self, dir: &Path, memo: &SumMemo) -> HashMap<String, String> {
        self.close();
        let mut disk = build::context::SourceTree::new(dir);
        for (name, key) in std::mem::take(&mut self.keyed) {
            let sum = match memo.get(&key) {
                Some(sum) => sum,
                None => match hash_back(&mut disk, &name) {
                    Some(sum) => {
                        memo.put(key, sum.clone());
                        sum
                    }
                    None => continue,
                },
            };
            self.sums.insert(name, sum);
        }
        self.sums
    }
}

impl Observer for Sums {
    fn entry(&mut self, e: &ObservedEntry<'_>) {
        self.close();
        let Ok(name) = std::str::from_utf8(e.path) else {
            return;
        };
        // The entry replaces what was at its path; a directory replaced takes everything below it along.
        self.sums.remove(name);
        self.keyed.retain(|(k, _)| k != name);
        if self.dirs.remove(name) && e.kind != EntryType::Directory {
            let below = format!("{name}/");
            self.sums.retain(|k, _| !k.starts_with(&below));
            self.keyed.retain(|(k, _)| !k.starts_with(&below));
            self.dirs.retain(|k| !k.starts_with(&below));
        }
        let (typeflag, mode, size, linkname) = match e.kind {
            EntryType::Directory => (b'5', e.mode, 0, String::new()),
            EntryType::Regular | EntryType::Continuous => (b'0', e.mode, e.size, String::new()),
            // A symlink's mode on disk is always 0777, whatever the archive says.
            EntryType::Symlink => match std::str::from_utf8(e.link) {
                Ok(l) => (b'2', 0o777, 0, l.to_owned()),
                Err(_) => return,
            },
            EntryType::Fifo => (b'6', e.mode, 0, String::new()),
            _ => return,
        };
        let (Ok(uid), Ok(gid)) = (u32::try_from(e.uid), u32::try_from(e.gid)) else {
            return;
        };
        let mut header_name = name.to_owned();
        if typeflag == b'5' {
            header_name.push('/');
            self.dirs.insert(name.to_owned());
        }
        let header = HashHeader {
            name: header_name,
            mode,
            uid,
            gid,
            size,
            typeflag,
            linkname,
            devmajor: 0,
            devminor: 0,
            xattrs: Vec::new(),
        };
        let hashing = if typeflag == b'0' && size >= MEMO_MIN {
            Hashing::Memo(Box::new(memo_hasher(&header)))
        } else {
            Hashing::Tarsum(FileSum::new(&header))
        };
        self.current = Some((name.to_owned(), hashing));
    }

    fn data(&mut self, chunk: &[u8]) {
        match self.current.as_mut() {
            Some((_, Hashing::Tarsum(sum))) => sum.update(chunk),
            Some((_, Hashing::Memo(key))) => {
                key.update(chunk);
            }
            None => {}
        }
    }
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
        .with_context(|| format!("the build context {}", dir.display()))?;
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
                return std::fs::read(&real).with_context(|| format!("reading {c}"));
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

#[cfg(test)]
mod tests {
    use super::*;
    use archive::memtar::{tar_of, Entry};
    use build::context::SourceTree;

    /// The hashes computed while extracting are the ones the tree would compute from the extracted files,
    /// so keys (and so the cache) are the same whichever way they were made.
    #[test]
    fn sums_made_while_extracting_equal_the_sums_of_the_extracted_files() {
        let big: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
        let tar = tar_of(&[
            Entry::Dir("./d/"),
            Entry::File("d/f", b"data"),
            Entry::File("./top", &big),
            Entry::Symlink("d/l", "../top"),
            Entry::Hardlink("d/h", "d/f"),
            Entry::Fifo("p"),
            Entry::Dir("r/"),
            Entry::File("r/x", b"gone"),
            Entry::File("r", b"a file now"),
            Entry::File("implicit/parent/f", b"x"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().join("ctx");
        let memo = SumMemo::default();
        let sums = extract(&mut std::io::Cursor::new(tar.clone()), &dir, &memo)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut keys: Vec<&str> = sums.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["d", "d/f", "d/l", "implicit/parent/f", "p", "r", "top"],
            "hard links, implicit parents and what a later entry replaced are left to the disk"
        );
        let mut disk = SourceTree::new(&dir);
        for (k, v) in &sums {
            assert_eq!(
                &disk.file_hash(k).unwrap_or_else(|e| panic!("{k}: {e}")),
                v,
                "{k}"
            );
        }
        let mut given = SourceTree::with_sums(&dir, sums.clone());
        assert_eq!(
            given.dir_hash("").unwrap_or_else(|e| panic!("{e}")),
            disk.dir_hash("").unwrap_or_else(|e| panic!("{e}"))
        );

        // The big file's sum was remembered: the same tar again gives the same sums from the memo, which
        // is consulted (a forged entry shows through) ...
        assert_eq!(memo.lock().len(), 1, "only the big file is remembered");
        let again = tmp.path().join("again");
        let second = extract(&mut std::io::Cursor::new(tar.clone()), &again, &memo)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second, sums);
        for v in memo.lock().values_mut() {
            *v = "forged".into();
        }
        let third = extract(
            &mut std::io::Cursor::new(tar),
            &tmp.path().join("third"),
            &memo,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(third["top"], "forged");
        // ... and a change of one byte, or of the mode, is another key.
        for (content, mode) in [(b'x', 0o644), (big[0], 0o600)] {
            let mut changed = big.clone();
            changed[1_000_000] = content;
            let mut w = archive::Writer::new(Vec::new(), archive::WriteOptions::default());
            let mut h = archive::EntryHeader::new(EntryType::Regular, mode);
            h.size = changed.len() as u64;
            w.append(&h, b"top", None, std::io::Cursor::new(&changed))
                .unwrap_or_else(|e| panic!("{e}"));
            let tar = w.finish().unwrap_or_else(|e| panic!("{e}"));
            let dir = tmp.path().join(format!("changed-{mode:o}-{content}"));
            let got = extract(&mut std::io::Cursor::new(tar), &dir, &memo)
                .unwrap_or_else(|e| panic!("{e}"));
            assert_ne!(got["top"], "forged");
            assert_eq!(
                got["top"],
                SourceTree::new(&dir)
                    .file_hash("top")
                    .unwrap_or_else(|e| panic!("{e}"))
            );
        }
    }

    /// A big file whose path a later entry turns into a symlink is not read back through it: the memo
    /// never learns another file's content under this file's key.
    #[test]
    fn a_big_file_is_not_read_back_through_a_later_symlink() {
        let a: Vec<u8> = vec![b'a'; 1_500_000];
        let x: Vec<u8> = vec![b'x'; 1_500_000];
        let tar = tar_of(&[
            Entry::File("a/big", &a),
            Entry::File("x/big", &x),
            Entry::Symlink("a", "x"),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let memo = SumMemo::default();
        let sums = extract(&mut std::io::Cursor::new(tar), &tmp.path().join("c"), &memo)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!sums.contains_key("a/big"), "{sums:?}");
        assert!(sums.contains_key("x/big"));
        assert_eq!(memo.lock().len(), 1);
    }
}
