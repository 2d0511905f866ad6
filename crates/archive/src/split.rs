//! A layer tar's "split": every byte of the archive except the contents of the regular files its
//! extraction wrote, which stay in the extracted tree. With the tree, the split gives back the tar
//! byte for byte (so its digest), and costs a few hundred bytes per entry instead of a second copy
//! of the layer: the image store keeps an uncompressed layer once, as files, and still pushes and
//! saves it as the exact blob it was pulled or loaded as.
//!
//! Recording wraps the tar stream in a [`SplitRecorder`] and extracts through
//! [`extract_into_split`]: header, PAX and padding bytes are kept as they pass, a regular file's
//! payload only as "so many bytes from this path". A later entry of the same archive that replaces
//! or removes a recorded file (a duplicate name, a whiteout, a directory replaced by a file) first
//! moves that file's old content into the split, read back from the tree before it changes, so
//! the split stays exact whatever the archive does.
//!
//! [`Split::reader`] rebuilds the tar from a tree; it fails (rather than yield other bytes) when a
//! file is missing or its size changed. Callers that need the digest to hold (a push, a save) still
//! get it checked: the registry checks an upload's digest, a load checks what it reads.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rustix::fs::{Mode, OFlags};
use tar::EntryType;

use crate::error::{Error, Result};
use crate::extract::{Extractor, Options, Stats, Whiteouts};
use crate::path;
use crate::resolve::Resolution;
use crate::{OPAQUE_MARKER, WHITEOUT_PREFIX};

/// First bytes of an encoded split (and its format version).
const MAGIC: &[u8] = b"berth-tar-split-1\n";
const TAG_END: u8 = 0;
const TAG_RAW: u8 = 1;
const TAG_FILE: u8 = 2;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    /// Archive bytes kept as they were.
    Raw(Vec<u8>),
    /// `size` bytes that are the content of the file at `path` (below the extraction root).
    File { path: Vec<u8>, size: u64 },
}

impl Seg {
    fn len(&self) -> u64 {
        match self {
            Seg::Raw(b) => b.len() as u64,
            Seg::File { size, .. } => *size,
        }
    }
}

/// The bytes of a tar that its extracted tree does not hold; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Split {
    segs: Vec<Seg>,
}

fn bad(what: &str) -> Error {
    Error::Read(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("invalid tar split: {what}"),
    ))
}

impl Split {
    /// The size of the whole archive it rebuilds.
    pub fn size(&self) -> u64 {
        self.segs.iter().map(Seg::len).sum()
    }

    /// The split in its file form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for s in &self.segs {
            match s {
                Seg::Raw(b) => {
                    out.push(TAG_RAW);
                    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
                    out.extend_from_slice(b);
                }
                Seg::File { path, size } => {
                    out.push(TAG_FILE);
                    out.extend_from_slice(&size.to_le_bytes());
                    out.extend_from_slice(&(path.len() as u64).to_le_bytes());
                    out.extend_from_slice(path);
                }
            }
        }
        out.push(TAG_END);
        out
    }

    /// Reads what [`Split::encode`] wrote; refuses paths that could leave the tree.
    pub fn decode(data: &[u8]) -> Result<Split> {
        let mut rest = data.strip_prefix(MAGIC).ok_or_else(|| bad("no header"))?;
        let mut take = |n: usize| -> Result<&[u8]> {
            if rest.len() < n {
                return Err(bad("truncated"));
            }
            let (a, b) = rest.split_at(n);
            rest = b;
            Ok(a)
        };
        let mut segs = Vec::new();
        loop {
            let tag = take(1)?[0];
            let mut num = || -> Result<u64> {
                let b = take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(u64::from_le_bytes(a))
            };
            match tag {
                TAG_END => break,
                TAG_RAW => {
                    let n = usize::try_from(num()?).map_err(|_| bad("length"))?;
                    segs.push(Seg::Raw(take(n)?.to_vec()));
                }
                TAG_FILE => {
                    let size = num()?;
                    let n = usize::try_from(num()?).map_err(|_| bad("length"))?;
                    let p = take(n)?.to_vec();
                    let clean =
                        path::clean(&p, path::DotDot::Refuse, "").map_err(|_| bad("path"))?;
                    if clean.is_empty() || path::join(&clean) != p {
                        return Err(bad("path"));
                    }
                    segs.push(Seg::File { path: p, size });
                }
                _ => return Err(bad("unknown record")),
            }
        }
        Ok(Split { segs })
    }

    /// Rebuilds the archive from the tree at `root`, starting `offset` bytes in.
    pub fn reader(self, root: &Path, offset: u64) -> SplitReader {
        let mut idx = 0;
        let mut off = offset;
        while let Some(s) = self.segs.get(idx) {
            if off < s.len() {
                break;
            }
            off -= s.len();
            idx += 1;
        }
        SplitReader {
            segs: self.segs,
            root: root.to_path_buf(),
            idx,
            off,
            file: None,
        }
    }
}

/// The archive a [`Split`] and its tree make, as a stream.
pub struct SplitReader {
    segs: Vec<Seg>,
    root: PathBuf,
    idx: usize,
    off: u64,
    file: Option<File>,
}

impl SplitReader {
    fn open(&self, rel: &[u8], size: u64) -> io::Result<File> {
        let p = self.root.join(OsStr::from_bytes(rel));
        let fd = rustix::fs::open(
            &p,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io::Error::other(format!("{}: {e}", p.display())))?;
        let mut f = File::from(fd);
        let len = f.metadata()?.len();
        if len != size {
            return Err(io::Error::other(format!(
                "{}: {len} bytes where the layer had {size}",
                p.display()
            )));
        }
        f.seek(SeekFrom::Start(self.off))?;
        Ok(f)
    }
}

impl Read for SplitReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(seg) = self.segs.get(self.idx) else {
                return Ok(0);
            };
            if self.off >= seg.len() {
                self.idx += 1;
                self.off = 0;
                self.file = None;
                continue;
            }
            let left = seg.len() - self.off;
            let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match seg {
                Seg::Raw(b) => {
                    let start = self.off as usize;
                    buf[..want].copy_from_slice(&b[start..start + want]);
                    want
                }
                Seg::File { path, size } => {
                    if self.file.is_none() {
                        self.file = Some(self.open(path, *size)?);
                    }
                    let n = match &mut self.file {
                        Some(f) => f.read(&mut buf[..want])?,
                        None => 0,
                    };
                    if n == 0 && want > 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{} ended early", path::shown(path)),
                        ));
                    }
                    n
                }
            };
            self.off += n as u64;
            return Ok(n);
        }
    }
}

#[derive(Default)]
struct State {
    /// Bytes read so far.
    pos: u64,
    /// Kept bytes not yet closed into a segment.
    raw: Vec<u8>,
    segs: Vec<Seg>,
    /// The payload being read that is not kept: `[start, end)`.
    skip: Option<(u64, u64)>,
}

impl State {
    fn pass(&mut self, buf: &[u8]) {
        let start = self.pos;
        let end = start + buf.len() as u64;
        match self.skip {
            Some((s, e)) if s < end && e > start => {
                let keep_to = s.saturating_sub(start) as usize;
                self.raw.extend_from_slice(&buf[..keep_to]);
                let keep_from = (e.min(end) - start) as usize;
                self.raw.extend_from_slice(&buf[keep_from..]);
            }
            _ => self.raw.extend_from_slice(buf),
        }
        self.pos = end;
    }

    fn close_raw(&mut self) {
        if !self.raw.is_empty() {
            self.segs.push(Seg::Raw(std::mem::take(&mut self.raw)));
        }
    }
}

/// Wraps a tar stream to record its [`Split`] while [`extract_into_split`] extracts it. Read the
/// stream to its end through it (the bytes after the end-of-archive blocks belong to the blob too),
/// then [`SplitRecorder::finish`].
pub struct SplitRecorder<R> {
    inner: R,
    state: Rc<RefCell<State>>,
}

impl<R: Read> SplitRecorder<R> {
    /// Starts recording at the first byte of the archive.
    pub fn new(inner: R) -> Self {
        SplitRecorder {
            inner,
            state: Rc::default(),
        }
    }

    /// The split of everything read so far.
    pub fn finish(self) -> Split {
        self.into_parts().1
    }

    /// The wrapped reader back, and the split of everything read so far.
    pub fn into_parts(self) -> (R, Split) {
        let mut st = self.state.take();
        st.close_raw();
        (self.inner, Split { segs: st.segs })
    }
}

impl<R: Read> Read for SplitRecorder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.state.borrow_mut().pass(&buf[..n]);
        Ok(n)
    }
}

/// Like [`crate::extract_into`] for an image layer (`Resolution::Beneath`, so no recorded path
/// goes through a symlink), recording the archive's split in `tar`.
pub fn extract_into_split<R: Read>(
    dir: &Path,
    tar: &mut SplitRecorder<R>,
    opts: &Options,
) -> Result<Stats> {
    if opts.resolution != Resolution::Beneath || opts.rebase.is_some() {
        return Err(Error::unsafe_path(
            String::new(),
            "a tar split is only recorded for layers extracted beneath their root",
        ));
    }
    let mut hook = Hook {
        state: Rc::clone(&tar.state),
        root: dir.to_path_buf(),
        files: HashMap::new(),
        parents: HashSet::new(),
        pending: None,
        inlined: 0,
    };
    crate::extract::extract_into_hooked(dir, tar, opts, Some(&mut hook))
}

/// What the extraction loop calls around each entry.
pub(crate) struct Hook {
    state: Rc<RefCell<State>>,
    root: PathBuf,
    /// Recorded files (path below the root) → their segment.
    files: HashMap<Vec<u8>, usize>,
    /// Every directory above a recorded file.
    parents: HashSet<Vec<u8>>,
    /// The regular file the current entry makes, with its segment.
    pending: Option<(Vec<u8>, usize)>,
    /// Bytes of replaced files moved into the split so far (held in memory).
    inlined: u64,
}

/// At most this much of a layer's own replaced files is moved into its split: the split is held in
/// memory, and a layer that rewrites its files over and over must not make it as big as the layer.
const MAX_INLINED: u64 = 256 << 20;

impl Hook {
    pub(crate) fn before<R: Read>(
        &mut self,
        x: &Extractor<'_, '_>,
        entry: &tar::Entry<'_, R>,
    ) -> Result<()> {
        let raw = entry.path_bytes();
        let Ok(comps) = path::clean(&raw, x.opts.dot_dot, &x.opts.dest_name) else {
            // The extraction refuses it.
            return Ok(());
        };
        let Some((leaf, parent)) = comps.split_last() else {
            return Ok(());
        };
        let kind = entry.header().entry_type();
        let whiteout = x.opts.whiteouts == Whiteouts::Overlay && leaf.starts_with(WHITEOUT_PREFIX);
        let affected = if whiteout {
            let name = &leaf[WHITEOUT_PREFIX.len()..];
            if leaf == OPAQUE_MARKER || name.is_empty() || name.starts_with(WHITEOUT_PREFIX) {
                None
            } else {
                let mut c = parent.to_vec();
                c.push(name.to_vec());
                Some(path::join(&c))
            }
        } else {
            Some(path::join(&comps))
        };
        if let Some(p) = affected {
            if self.files.contains_key(&p) {
                self.inline(&p)?;
            }
            if (whiteout || kind != EntryType::Directory) && self.parents.contains(&p) {
                let mut prefix = p.clone();
                prefix.push(b'/');
                let below: Vec<Vec<u8>> = self
                    .files
                    .keys()
                    .filter(|k| k.starts_with(&prefix))
                    .cloned()
                    .collect();
                for f in below {
                    self.inline(&f)?;
                }
            }
            let size = entry.size();
            if !whiteout && matches!(kind, EntryType::Regular | EntryType::Continuous) && size > 0 {
                let start = entry.raw_file_position();
                let mut st = self.state.borrow_mut();
                if st.pos != start {
                    return Err(Error::Read(io::Error::other(format!(
                        "tar split: payload of {} at {start}, stream at {}",
                        path::shown(&p),
                        st.pos
                    ))));
                }
                st.close_raw();
                st.segs.push(Seg::File {
                    path: p.clone(),
                    size,
                });
                st.skip = Some((start, start + size));
                self.pending = Some((p, st.segs.len() - 1));
            }
        }
        Ok(())
    }

    pub(crate) fn after(&mut self, x: &Extractor<'_, '_>) -> Result<()> {
        // Paths are below the destination, which for [`extract_into`] is the root.
        let Some((p, idx)) = self.pending.take() else {
            return Ok(());
        };
        let consumed = {
            let st = self.state.borrow();
            st.skip.is_some_and(|(_, e)| st.pos >= e)
        };
        if !consumed || !x.made_file(&p) {
            return Err(Error::Read(io::Error::other(format!(
                "tar split: {} was not extracted whole",
                path::shown(&p)
            ))));
        }
        let mut dir = p.as_slice();
        while let Some(i) = dir.iter().rposition(|&b| b == b'/') {
            dir = &dir[..i];
            if !self.parents.insert(dir.to_vec()) {
                break;
            }
        }
        self.files.insert(p, idx);
        Ok(())
    }

    /// Moves a recorded file's content into the split before an entry changes it.
    fn inline(&mut self, p: &[u8]) -> Result<()> {
        let Some(idx) = self.files.remove(p) else {
            return Ok(());
        };
        let full = self.root.join(OsStr::from_bytes(p));
        self.inlined += std::fs::symlink_metadata(&full).map_or(0, |m| m.len());
        if self.inlined > MAX_INLINED {
            return Err(Error::unsafe_path(
                path::shown(p),
                format!(
                    "the layer replaces more than {} MiB of its own files",
                    MAX_INLINED >> 20
                ),
            ));
        }
        let data = std::fs::read(&full).map_err(|e| Error::io("read", path::shown(p), e))?;
        let mut st = self.state.borrow_mut();
        if let Some(seg) = st.segs.get_mut(idx) {
            if seg.len() != data.len() as u64 {
                return Err(Error::Read(io::Error::other(format!(
                    "tar split: {} changed size",
                    path::shown(p)
                ))));
            }
            *seg = Seg::Raw(data);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::memtar::{tar_of, Entry as E};

    /// Extracts `tar` recording its split (with `tail` after the archive, as padded blobs have),
    /// then checks the split and the tree give back every byte, from the start and from offsets.
    fn round_trip(tar: &[u8], tail: &[u8]) -> (tempfile::TempDir, Split) {
        let dir = tempfile::tempdir().unwrap();
        let mut blob = tar.to_vec();
        blob.extend_from_slice(tail);
        let mut rec = SplitRecorder::new(&blob[..]);
        extract_into_split(dir.path(), &mut rec, &Options::layer()).unwrap();
        io::copy(&mut rec, &mut io::sink()).unwrap();
        let split = rec.finish();
        assert_eq!(split.size(), blob.len() as u64);
        let decoded = Split::decode(&split.encode()).unwrap();
        assert_eq!(decoded, split);
        for offset in [
            0,
            1,
            511,
            512,
            700,
            blob.len() as u64 - 1,
            blob.len() as u64,
        ] {
            let mut out = Vec::new();
            decoded
                .clone()
                .reader(dir.path(), offset)
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(out, blob[offset as usize..], "from offset {offset}");
        }
        (dir, split)
    }

    #[test]
    fn a_layer_comes_back_byte_for_byte_from_its_tree_and_split() {
        let long = format!("d/{}", "n".repeat(150));
        let big = vec![7u8; 70_000];
        let tar = tar_of(&[
            E::Dir("d"),
            E::File("d/a", b"alpha"),
            E::File(&long, &big),
            E::File("empty", b""),
            E::Symlink("d/s", "a"),
            E::Hardlink("d/h", "d/a"),
        ])
        .unwrap();
        let (_dir, split) = round_trip(&tar, &[0u8; 1024]);
        // The file contents are not in the split: headers, padding and the tail are.
        assert!(
            split.encode().len() < 8 * 1024,
            "{} bytes",
            split.encode().len()
        );
    }

    #[test]
    fn files_a_later_entry_replaces_or_removes_keep_their_old_content_in_the_split() {
        let tar = tar_of(&[
            E::File("x", b"first x"),
            E::File("x", b"second x, longer"),
            E::Dir("d"),
            E::File("d/inner", b"inside d"),
            E::File("d", b"d is now a file"),
            E::File("w", b"whited out"),
            E::File(".wh.w", b""),
            E::File("l", b"becomes a link"),
            E::Symlink("l", "x"),
        ])
        .unwrap();
        let (dir, _) = round_trip(&tar, b"");
        assert_eq!(
            std::fs::read(dir.path().join("x")).unwrap(),
            b"second x, longer"
        );
    }

    #[test]
    fn a_changed_tree_fails_to_rebuild_and_a_bad_split_is_refused() {
        let tar = tar_of(&[E::File("f", b"content")]).unwrap();
        let (dir, split) = round_trip(&tar, b"");
        std::fs::write(dir.path().join("f"), b"other size").unwrap();
        let mut out = Vec::new();
        assert!(split.reader(dir.path(), 0).read_to_end(&mut out).is_err());

        let mut enc = Split {
            segs: vec![Seg::File {
                path: b"../etc/passwd".to_vec(),
                size: 1,
            }],
        }
        .encode();
        assert!(Split::decode(&enc).is_err());
        enc.truncate(enc.len() - 3);
        assert!(Split::decode(&enc).is_err());
        assert!(Split::decode(b"nonsense").is_err());
    }
}
