//! The build context: the client's tar (plain, gzip, bzip2, xz or zstd), extracted below the build's directory with the
//! archive crate's strict rules (no `..`, no absolute names, no symlink followed on the way, no devices), and
//! the Dockerfile read from it. The COPY cache keys' content hashes are computed as the context streams in
//! ([`Sums`]), so a build reads no context file back to hash it.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use archive::{EntryType, ObservedEntry, Observer};
use build::context::{FileSum, HashHeader};

use crate::error::{Context, Error, Result};

/// Extracts `tar` into the new directory `dir`; returns the content hashes of what it made, as
/// [`build::context::SourceTree::with_sums`] takes them. Big files `kept` from earlier builds are compared
/// with rather than written again, and the big files this context brings are kept for the next build.
pub(super) fn extract(
    tar: &mut dyn Read,
    dir: &Path,
    memo: &SumMemo,
    kept: &Kept,
    kept_dir: &Path,
) -> Result<HashMap<String, String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    // Plain, gzip, bzip2, xz (the four dockerd takes) or zstd.
    let reader = image::layer::compress::decompress_archive(tar)
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
    let mut sums = Sums::new(kept, kept_dir);
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

/// Files at least this big are kept for the next build ([`Kept`]).
const KEEP_MIN: u64 = MEMO_MIN;
/// At most this many bytes of kept files (then the least recently used go): a build's big files usually
/// fit, and the disk they hold is the disk the build's context took anyway while it ran.
const KEEP_MAX_BYTES: u64 = 1 << 30;
/// At most this many kept files (each extraction holds one descriptor per file until it ends).
const KEEP_MAX_FILES: usize = 256;

/// What identifies a kept file for a new context's entry: every header field its tarsum covers (for a
/// regular file the others are fixed) and the modification time the extraction gives it, so that a file
/// linked in place is exactly the file extraction would have made.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FileKey {
    name: String,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: i64,
}

struct KeptFile {
    path: PathBuf,
    /// The tarsum of its content under its key.
    sum: String,
    /// When it was last offered ([`KeptState::clock`]).
    used: u64,
}

#[derive(Default)]
struct KeptState {
    files: HashMap<FileKey, KeptFile>,
    bytes: u64,
    clock: u64,
}

/// The big files of recent build contexts, hard links in `DATA_ROOT/build-kept` to the files extracted,
/// with their tarsums. A rebuild sends the same big files again; each new entry with a kept file's key
/// is compared with it as it streams (the archive crate's [`archive::Observer::candidate`]) and, if
/// identical, that file is linked into the new context: no write, no hash, no delete afterwards. A file
/// that differs anywhere is written as without it, so the context is always exactly the client's. Kept
/// files are never written to (a context is only read: COPY reads it, RUN binds it read-only or copies
/// it). The index lives in memory: the daemon's start empties the directory.
#[derive(Default)]
pub(crate) struct Kept {
    state: Mutex<KeptState>,
}

impl Kept {
    fn lock(&self) -> std::sync::MutexGuard<'_, KeptState> {
        // The map and its byte count are updated together under the lock, with no call that can panic
        // in between.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Removes the directory of kept files (at the daemon's start: the index is gone with the old
    /// process).
    pub(crate) fn clear_dir(dir: &Path) {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %dir.display(), error = %e, "removing the kept build context files");
            }
            _ => {}
        }
    }

    /// Forgets every kept file and removes it (`builder prune`).
    pub(crate) fn clear(&self) {
        let mut st = self.lock();
        for (_, f) in st.files.drain() {
            let _ = std::fs::remove_file(&f.path);
        }
        st.bytes = 0;
    }

    /// The kept file for `key`, open, and its tarsum.
    fn offer(&self, key: &FileKey) -> Option<(std::fs::File, String)> {
        let mut st = self.lock();
        st.clock += 1;
        let clock = st.clock;
        let f = st.files.get_mut(key)?;
        f.used = clock;
        let file = std::fs::File::open(&f.path).ok()?;
        Some((file, f.sum.clone()))
    }

    /// Keeps the file `fd` (complete, with the tarsum `sum`) under `key` as a link in `dir`, in place of a
    /// file kept under the same key; then the least recently used go while there are too many.
    fn keep(&self, dir: &Path, key: FileKey, fd: BorrowedFd<'_>, sum: String) {
        let same = rustix::fs::fstat(fd).is_ok_and(|st| {
            u64::try_from(st.st_size).ok() == Some(key.size)
                && rustix::fs::FileType::from_raw_mode(st.st_mode)
                    == rustix::fs::FileType::RegularFile
        });
        if !same || key.size > KEEP_MAX_BYTES {
            return;
        }
        let mut st = self.lock();
        st.clock += 1;
        let clock = st.clock;
        if let Some(old) = st.files.remove(&key) {
            let _ = std::fs::remove_file(&old.path);
            st.bytes -= key.size;
        }
        if let Err(e) = std::fs::create_dir_all(dir) {
            tracing::warn!(path = %dir.display(), error = %e, "making the directory of kept build context files");
            return;
        }
        let path = dir.join(format!("{clock:016x}"));
        // The extracted inode itself, by its descriptor: the file whose content was hashed, whatever its
        // path has become since.
        if let Err(e) = rustix::fs::linkat(
            fd,
            "",
            rustix::fs::CWD,
            &path,
            rustix::fs::AtFlags::EMPTY_PATH,
        ) {
            tracing::debug!(path = %path.display(), error = %e, "keeping a build context file");
            return;
        }
        st.bytes += key.size;
        st.files.insert(
            key,
            KeptFile {
                path,
                sum,
                used: clock,
            },
        );
        while st.bytes > KEEP_MAX_BYTES || st.files.len() > KEEP_MAX_FILES {
            let Some(oldest) = st
                .files
                .iter()
                .min_by_key(|(_, f)| f.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(f) = st.files.remove(&oldest) {
                let _ = std::fs::remove_file(&f.path);
                st.bytes -= oldest.size;
            }
        }
    }
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
    /// A kept file's, its content having been found identical.
    Known(String),
}

/// The tarsum of each entry as it is extracted: exactly what [`build::context::SourceTree`] would compute
/// from the extracted file (the path as cleaned, the mode, owner and size the extraction gave it, extended
/// attributes not extracted so not hashed), from the archive's header and the content on its way to disk.
/// Entries whose file could differ from their header are left to the tree to hash from disk: hard links
/// (hashed as plain files there), sparse files, non-UTF-8 names.
/// Big files get a memo key instead ([`SumMemo`]).
/// Big files are compared with the files [`Kept`] from earlier builds, and kept in turn.
struct Sums<'k> {
    sums: HashMap<String, String>,
    dirs: HashSet<String>,
    current: Option<(String, Hashing)>,
    /// Big files and their memo keys.
    keyed: Vec<(String, [u8; 32])>,
    kept: &'k Kept,
    kept_dir: &'k Path,
    /// The big file being extracted: its key, and the kept file offered for it with that file's tarsum.
    big: Option<(FileKey, Option<(std::fs::File, String)>)>,
    /// Big files this extraction wrote, to keep once their tarsums are known: the extraction may still
    /// fail, and then nothing is kept.
    fresh: Vec<(FileKey, OwnedFd)>,
}

impl<'k> Sums<'k> {
    fn new(kept: &'k Kept, kept_dir: &'k Path) -> Self {
        Sums {
            kept_dir,
            sums: HashMap::new(),
            dirs: HashSet::new(),
            current: None,
            keyed: Vec::new(),
            kept,
            big: None,
            fresh: Vec::new(),
        }
    }

    fn close(&mut self) {
        self.big = None;
        match self.current.take() {
            Some((name, Hashing::Tarsum(sum))) => {
                self.sums.insert(name, sum.finish());
            }
            Some((name, Hashing::Memo(key))) => self.keyed.push((name, key.finalize().into())),
            Some((name, Hashing::Known(sum))) => {
                self.sums.insert(name, sum);
            }
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
        for (key, fd) in std::mem::take(&mut self.fresh) {
            if let Some(sum) = self.sums.get(&key.name) {
                self.kept.keep(self.kept_dir, key, fd.as_fd(), sum.clone());
            }
        }
        self.sums
    }
}

impl Observer for Sums<'_> {
    fn entry(&mut self, e: &ObservedEntry<'_>) {
        self.close();
        let Ok(name) = std::str::from_utf8(e.path) else {
            return;
        };
        // The entry replaces what was at its path; a directory replaced takes everything below it along.
        self.sums.remove(name);
        self.keyed.retain(|(k, _)| k != name);
        self.fresh.retain(|(k, _)| k.name != name);
        if self.dirs.remove(name) && e.kind != EntryType::Directory {
            let below = format!("{name}/");
            self.sums.retain(|k, _| !k.starts_with(&below));
            self.keyed.retain(|(k, _)| !k.starts_with(&below));
            self.fresh.retain(|(k, _)| !k.name.starts_with(&below));
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
        if typeflag == b'0' && size >= KEEP_MIN {
            let key = FileKey {
                name: name.to_owned(),
                mode,
                uid: e.uid,
                gid: e.gid,
                size,
                mtime: e.mtime,
            };
            let offered = self.kept.offer(&key);
            self.big = Some((key, offered));
        }
        self.current = Some((name.to_owned(), hashing));
    }

    fn data(&mut self, chunk: &[u8]) {
        match self.current.as_mut() {
            Some((_, Hashing::Tarsum(sum))) => sum.update(chunk),
            Some((_, Hashing::Memo(key))) => {
                key.update(chunk);
            }
            Some((_, Hashing::Known(_))) | None => {}
        }
    }

    fn candidate(&mut self) -> Option<std::fs::File> {
        let (_, offered) = self.big.as_mut()?;
        let (file, _) = offered.as_mut()?;
        file.try_clone().ok()
    }

    fn reused(&mut self) {
        let sum = self
            .big
            .take()
            .and_then(|(_, offered)| offered)
            .map(|(_, sum)| sum);
        if let (Some(sum), Some((_, hashing))) = (sum, self.current.as_mut()) {
            *hashing = Hashing::Known(sum);
        }
    }

    fn written(&mut self, file: BorrowedFd<'_>) {
        let Some((key, _)) = self.big.take() else {
            return;
        };
        if self.fresh.len() < KEEP_MAX_FILES {
            if let Ok(fd) = file.try_clone_to_owned() {
                self.fresh.push((key, fd));
            }
        }
    }
}

/// The Dockerfile `name` (a path in the context); like dockerd, `dockerfile` is tried when the default
/// `Dockerfile` is missing.
pub(super) fn dockerfile(dir: &Path, name: &str) -> Result<(String, Vec<u8>)> {
    let rel = name.trim_start_matches('/');
    if rel.split('/').any(|c| c == "..") {
        return Err(Error::InvalidParameter(format!(
            "Cannot locate specified Dockerfile: {name}"
        )));
    }
    let mut candidates = vec![rel.to_owned()];
    if rel == "Dockerfile" {
        candidates.push("dockerfile".to_owned());
    }
    for c in candidates {
        if let Some(text) = read_inside(dir, &c)? {
            return Ok((c, text));
        }
    }
    Err(Error::InvalidParameter(format!(
        "Cannot locate specified Dockerfile: {name}"
    )))
}

/// The regular file `rel` of the context `dir`, `None` when there is none. The context was extracted
/// with no symlink leaving it, but a file that is a symlink could still point anywhere: it is read only
/// if it resolves inside the context.
fn read_inside(dir: &Path, rel: &str) -> Result<Option<Vec<u8>>> {
    let root = std::fs::canonicalize(dir)
        .with_context(|| format!("the build context {}", dir.display()))?;
    match std::fs::canonicalize(dir.join(rel)) {
        Ok(real) if real.starts_with(&root) && real.is_file() => std::fs::read(&real)
            .map(Some)
            .with_context(|| format!("reading {rel}")),
        _ => Ok(None),
    }
}

/// What dockerd does to an uploaded or fetched context once it has read the Dockerfile: `.dockerignore`,
/// and the Dockerfile (`dockerfile`, the name it was found at), leave the context when `.dockerignore`
/// lists them. The docker CLI sends both whatever `.dockerignore` says, for the daemon to read; they are
/// not meant for `COPY`. Returns the names removed.
pub(super) fn drop_build_files(dir: &Path, dockerfile: Option<&str>) -> Result<Vec<String>> {
    let Some(text) = read_inside(dir, ".dockerignore")? else {
        return Ok(Vec::new());
    };
    let patterns = build::dockerignore::read_patterns(&String::from_utf8_lossy(&text));
    let root = std::fs::File::open(dir).with_context(|| format!("opening {}", dir.display()))?;
    let mut removed = Vec::new();
    for name in std::iter::once(".dockerignore").chain(dockerfile) {
        let name = build::dockerignore::clean_path(name);
        if build::dockerignore::matches(&name, &patterns).unwrap_or(false)
            && archive::remove_below(std::os::fd::AsFd::as_fd(&root), &name, None)
                .map_err(|e| Error::system(format!("removing {name} from the build context"), e))?
        {
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use archive::memtar::{tar_of, Entry};
    use build::context::SourceTree;
    use std::os::unix::fs::MetadataExt;

    /// [`extract`] with nothing kept from before (each call its own [`Kept`]).
    fn extract_fresh(
        tar: &mut dyn Read,
        dir: &Path,
        memo: &SumMemo,
    ) -> Result<HashMap<String, String>> {
        let kept_dir = dir.with_extension("kept");
        extract(tar, dir, memo, &Kept::default(), &kept_dir)
    }

    fn big_tar(content: &[u8], mtime: u64) -> Vec<u8> {
        let mut w = archive::Writer::new(Vec::new(), archive::WriteOptions::default());
        let mut h = archive::EntryHeader::new(EntryType::Regular, 0o644);
        h.size = content.len() as u64;
        h.mtime = mtime;
        w.append(&h, b"d/big", None, std::io::Cursor::new(content))
            .unwrap_or_else(|e| panic!("{e}"));
        w.append(
            &archive::EntryHeader::new(EntryType::Regular, 0o644),
            b"small",
            None,
            std::io::Cursor::new(b""),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        w.finish().unwrap_or_else(|e| panic!("{e}"))
    }

    /// A big file sent again is the kept file linked in place (no write), with the same sums; one that
    /// differs anywhere, even under the same name, size and time, is written with the client's content
    /// and hashed from it; a failed extraction keeps nothing.
    #[test]
    fn a_big_file_sent_again_is_linked_from_the_kept_copy_and_a_changed_one_is_written() {
        let big: Vec<u8> = (0..3_500_000u32).map(|i| (i % 253) as u8).collect();
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kept_dir = tmp.path().join("kept");
        let (memo, kept) = (SumMemo::default(), Kept::default());
        let run = |tar: &[u8], name: &str| {
            let dir = tmp.path().join(name);
            let sums = extract(
                &mut std::io::Cursor::new(tar),
                &dir,
                &memo,
                &kept,
                &kept_dir,
            );
            (dir, sums)
        };
        let ino = |p: &Path| std::fs::metadata(p).unwrap_or_else(|e| panic!("{e}")).ino();
        let (first, sums) = run(&big_tar(&big, 1000), "first");
        let sums = sums.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kept.lock().files.len(), 1);
        let (second, again) = run(&big_tar(&big, 1000), "second");
        assert_eq!(again.unwrap_or_else(|e| panic!("{e}")), sums);
        assert_eq!(
            ino(&first.join("d/big")),
            ino(&second.join("d/big")),
            "the kept inode is linked in place"
        );
        let meta = std::fs::metadata(second.join("d/big")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((meta.mode() & 0o7777, meta.mtime()), (0o644, 1000));

        // Changed at the start, in the middle, at the last byte: same name, size and time.
        for (at, n) in [(0, "head"), (1_700_000, "middle"), (big.len() - 1, "tail")] {
            let mut changed = big.clone();
            changed[at] ^= 0xff;
            let (dir, got) = run(&big_tar(&changed, 1000), n);
            let got = got.unwrap_or_else(|e| panic!("{e}"));
            let on_disk = std::fs::read(dir.join("d/big")).unwrap_or_else(|e| panic!("{e}"));
            assert!(on_disk == changed, "{n}: the client's content");
            assert_ne!(ino(&dir.join("d/big")), ino(&first.join("d/big")), "{n}");
            assert_eq!(
                got["d/big"],
                SourceTree::new(&dir)
                    .file_hash("d/big")
                    .unwrap_or_else(|e| panic!("{e}")),
                "{n}"
            );
            assert_ne!(got["d/big"], sums["d/big"], "{n}");
        }
        // Another time is another key: written, not linked, and the content is the same.
        let (touched, got) = run(&big_tar(&big, 2000), "touched");
        assert_eq!(
            got.unwrap_or_else(|e| panic!("{e}"))["d/big"],
            sums["d/big"]
        );
        assert_ne!(ino(&touched.join("d/big")), ino(&first.join("d/big")));

        // A context cut short keeps nothing of its own.
        let before: Vec<_> = std::fs::read_dir(&kept_dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .map(|e| e.map(|e| e.file_name()).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let mut other = big.clone();
        other.reverse();
        let mut w = archive::Writer::new(Vec::new(), archive::WriteOptions::default());
        for (name, content) in [(&b"d/big"[..], &other[..]), (b"next", &big[..100_000])] {
            let mut h = archive::EntryHeader::new(EntryType::Regular, 0o644);
            h.size = content.len() as u64;
            w.append(&h, name, None, std::io::Cursor::new(content))
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let tar = w.finish().unwrap_or_else(|e| panic!("{e}"));
        // Cut in the middle of the second file: the big one was whole.
        let (_, cut) = run(&tar[..other.len() + 2048 + 50_000], "cut");
        assert!(cut.is_err());
        let after = std::fs::read_dir(&kept_dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .count();
        assert_eq!(after, before.len());
        kept.clear();
        assert_eq!(
            std::fs::read_dir(&kept_dir)
                .unwrap_or_else(|e| panic!("{e}"))
                .count(),
            0
        );
    }

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
        let sums = extract_fresh(&mut std::io::Cursor::new(tar.clone()), &dir, &memo)
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
        let second = extract_fresh(&mut std::io::Cursor::new(tar.clone()), &again, &memo)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(second, sums);
        for v in memo.lock().values_mut() {
            *v = "forged".into();
        }
        let third = extract_fresh(
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
            let got = extract_fresh(&mut std::io::Cursor::new(tar), &dir, &memo)
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
        let sums = extract_fresh(&mut std::io::Cursor::new(tar), &tmp.path().join("c"), &memo)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(!sums.contains_key("a/big"), "{sums:?}");
        assert!(sums.contains_key("x/big"));
        assert_eq!(memo.lock().len(), 1);
    }
}
