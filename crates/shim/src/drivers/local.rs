//! Docker's `local` log driver, byte for byte: each message is a protobuf `LogEntry` (moby's
//! `daemon/logger/internal/logdriver/entry.proto`: source, time_nano, line, partial, partial metadata)
//! between two big-endian u32 copies of its length, so files move between Berth and dockerd and either
//! reads the other's. The file rotates once it has reached `max_size`; rotated files are renamed up
//! (`container.log.1` is the newest) and, with `compress`, gzipped in the background
//! (`container.log.1.gz`, the last entry's time in the gzip header's extra field as dockerd puts it).
//!
//! The protobuf is encoded and decoded here rather than with a protobuf crate: five fields of two wire
//! types, and the shim stays free of a code generator and its runtime.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::lines::Splitter;
use super::Partial;
use crate::logfile::Stream;

/// The local driver's file under a container's directory, as dockerd names it.
pub const FILE: &str = "local-logs/container.log";

/// A rotated file `n` (1 is the newest), compressed or not.
fn rotated(path: &Path, n: u32, gz: bool) -> PathBuf {
    PathBuf::from(format!(
        "{}.{n}{}",
        path.display(),
        if gz { ".gz" } else { "" }
    ))
}

/// The log's files, oldest first, the current one last. A rotated file being compressed is read
/// uncompressed (dockerd's readers prefer it too: it is removed only once the `.gz` is complete).
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for n in 1..1000 {
        let plain = rotated(path, n, false);
        let gz = rotated(path, n, true);
        if plain.exists() {
            found.push(plain);
        } else if gz.exists() {
            found.push(gz);
        } else {
            break;
        }
    }
    found.reverse();
    found.push(path.to_owned());
    found
}

/// One decoded entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// `stdout` or `stderr`.
    pub source: String,
    /// When the shim read it, in nanoseconds since the epoch.
    pub time_nano: i64,
    /// The message, without its newline.
    pub line: Vec<u8>,
    /// Set for the parts of a long line.
    pub partial: Option<Partial>,
    /// Extra attributes (`--log-opt labels/env/tag`).
    pub attrs: Vec<(String, String)>,
}

impl Record {
    /// The text `docker logs` prints: the line, with its newline unless it is a part that does not end
    /// the line.
    pub fn text(&self) -> Vec<u8> {
        let mut t = self.line.clone();
        if self.partial.as_ref().is_none_or(|p| p.last) {
            t.push(b'\n');
        }
        t
    }
}

/// What [`decode`] found at the start of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// An entry, and how many bytes it took.
    Record(Record, usize),
    /// The buffer ends inside an entry (a writer is still writing it).
    Incomplete,
    /// Not an entry: the file is damaged from here on.
    Corrupt,
}

/// Longest entry accepted when reading: far above the 16 KiB lines the shim writes, far below what a
/// damaged length field would make us allocate.
const MAX_ENTRY: usize = 1 << 20;

/// Decodes the entry at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded {
    let Some(head) = buf.get(..4) else {
        return Decoded::Incomplete;
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > MAX_ENTRY {
        return Decoded::Corrupt;
    }
    let Some(frame) = buf.get(..len + 8) else {
        return Decoded::Incomplete;
    };
    let tail = &frame[len + 4..];
    if u32::from_be_bytes([tail[0], tail[1], tail[2], tail[3]]) as usize != len {
        return Decoded::Corrupt;
    }
    match parse_entry(&frame[4..len + 4]) {
        Some(r) => Decoded::Record(r, len + 8),
        None => Decoded::Corrupt,
    }
}

/// Encodes attributes as the repeated `LogAttr` field of every entry (once, then copied into each).
pub fn encode_attrs(attrs: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in attrs {
        let mut one = Vec::with_capacity(k.len() + v.len() + 4);
        if !k.is_empty() {
            put_bytes(&mut one, 1, k.as_bytes());
        }
        if !v.is_empty() {
            put_bytes(&mut one, 2, v.as_bytes());
        }
        put_bytes(&mut out, 6, &one);
    }
    out
}

/// Appends one framed entry to `out`; `attrs` is what [`encode_attrs`] made (or empty).
pub fn encode(
    out: &mut Vec<u8>,
    source: &str,
    time_nano: i64,
    line: &[u8],
    partial: Option<&Partial>,
    attrs: &[u8],
) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    // proto3 leaves out fields that hold their default (as gogo-protobuf's marshaller does for dockerd).
    put_bytes(out, 1, source.as_bytes());
    if time_nano != 0 {
        put_varint(out, 2 << 3);
        put_varint(out, time_nano as u64);
    }
    if !line.is_empty() {
        put_bytes(out, 3, line);
    }
    if let Some(p) = partial {
        put_varint(out, 4 << 3);
        put_varint(out, 1);
        let mut meta = Vec::with_capacity(p.id.len() + 8);
        if p.last {
            put_varint(&mut meta, 1 << 3);
            put_varint(&mut meta, 1);
        }
        if !p.id.is_empty() {
            put_bytes(&mut meta, 2, p.id.as_bytes());
        }
        if p.ordinal != 0 {
            put_varint(&mut meta, 3 << 3);
            put_varint(&mut meta, u64::from(p.ordinal));
        }
        put_bytes(out, 5, &meta);
    }
    out.extend_from_slice(attrs);
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A length-delimited field (wire type 2).
fn put_bytes(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    put_varint(out, (field << 3) | 2);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn get_varint(buf: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// The fields of a message as (number, value), skipping what this reader does not know.
fn fields(mut buf: &[u8], mut each: impl FnMut(u64, Field) -> Option<()>) -> Option<()> {
    while !buf.is_empty() {
        let key = get_varint(&mut buf)?;
        let field = match key & 7 {
            0 => Field::Varint(get_varint(&mut buf)?),
            2 => {
                let n = usize::try_from(get_varint(&mut buf)?).ok()?;
                let data = buf.get(..n)?;
                buf = &buf[n..];
                Field::Bytes(data)
            }
            1 => {
                buf = buf.get(8..)?;
                continue;
            }
            5 => {
                buf = buf.get(4..)?;
                continue;
            }
            _ => return None,
        };
        each(key >> 3, field)?;
    }
    Some(())
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn parse_entry(buf: &[u8]) -> Option<Record> {
    let mut r = Record {
        source: String::new(),
        time_nano: 0,
        line: Vec::new(),
        partial: None,
        attrs: Vec::new(),
    };
    let mut is_partial = false;
    let mut meta = Partial {
        id: String::new(),
        ordinal: 0,
        last: false,
    };
    fields(buf, |n, f| {
        match (n, f) {
            (1, Field::Bytes(b)) => r.source = String::from_utf8_lossy(b).into_owned(),
            (2, Field::Varint(v)) => r.time_nano = v as i64,
            (3, Field::Bytes(b)) => r.line = b.to_vec(),
            (4, Field::Varint(v)) => is_partial = v != 0,
            (6, Field::Bytes(b)) => {
                let (mut k, mut v) = (String::new(), String::new());
                fields(b, |n, f| {
                    match (n, f) {
                        (1, Field::Bytes(b)) => k = String::from_utf8_lossy(b).into_owned(),
                        (2, Field::Bytes(b)) => v = String::from_utf8_lossy(b).into_owned(),
                        _ => {}
                    }
                    Some(())
                })?;
                r.attrs.push((k, v));
            }
            (5, Field::Bytes(b)) => fields(b, |n, f| {
                match (n, f) {
                    (1, Field::Varint(v)) => meta.last = v != 0,
                    (2, Field::Bytes(b)) => meta.id = String::from_utf8_lossy(b).into_owned(),
                    (3, Field::Varint(v)) => meta.ordinal = v as u32,
                    _ => {}
                }
                Some(())
            })?,
            _ => {}
        }
        Some(())
    })?;
    if is_partial {
        r.partial = Some(meta);
    }
    Some(r)
}

/// Writes a container's output in the local driver's format.
pub(crate) struct LocalLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    compress: bool,
    lines: Splitter,
    /// The entries of one chunk of output, written with one `write`.
    batch: Vec<u8>,
    /// The newest entry's time, which a compressed file's header records.
    last_time: i64,
    /// The rotated file being compressed; joined before the next rotation, which renames it.
    compressing: Option<std::thread::JoinHandle<()>>,
    /// Every entry's attributes, encoded once ([`encode_attrs`]).
    attrs: Vec<u8>,
}

impl LocalLog {
    /// Opens (appending) the log at `path`, making its directory.
    pub(crate) fn open(
        path: &Path,
        max_size: u64,
        max_files: u32,
        compress: bool,
    ) -> std::io::Result<LocalLog> {
        if let Some(dir) = path.parent() {
            // Only the owner reads a container's logs (dockerd: 0700 and 0640).
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        Ok(LocalLog {
            path: path.to_owned(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            compress: compress && max_files > 1,
            lines: Splitter::default(),
            batch: Vec::new(),
            last_time: 0,
            compressing: None,
            attrs: Vec::new(),
        })
    }

    /// Adds extra attributes to every entry.
    pub(crate) fn with_attrs(mut self, attrs: &[(String, String)]) -> LocalLog {
        self.attrs = encode_attrs(attrs);
        self
    }

    /// Logs a chunk of output (complete lines; an unfinished one waits for more).
    pub(crate) fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let time = super::now_nanos();
        let mut lines = std::mem::take(&mut self.lines);
        let result = lines.split(stream, data, &mut |s, line, p| {
            self.entry(s, line, p.as_ref(), time)
        });
        self.lines = lines;
        // A finished compression's thread is joined now, not at the next rotation: its stack goes back.
        if self.compressing.as_ref().is_some_and(|t| t.is_finished()) {
            self.join_compression();
        }
        result.and(self.write_batch())
    }

    /// Logs unfinished lines and waits for a compression under way.
    pub(crate) fn finish(&mut self) -> std::io::Result<()> {
        let time = super::now_nanos();
        let mut lines = std::mem::take(&mut self.lines);
        let result = lines.flush(&mut |s, line, p| self.entry(s, line, p.as_ref(), time));
        self.lines = lines;
        let result = result.and(self.write_batch());
        self.join_compression();
        result
    }

    fn entry(
        &mut self,
        stream: Stream,
        line: &[u8],
        partial: Option<&Partial>,
        time: i64,
    ) -> std::io::Result<()> {
        // dockerd rotates before an entry once the file has reached the size (so a file ends up to one
        // entry past it).
        if self.max_size > 0 && self.size + self.batch.len() as u64 >= self.max_size {
            self.write_batch()?;
            self.rotate()?;
        }
        let source = match stream {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        };
        encode(&mut self.batch, source, time, line, partial, &self.attrs);
        self.last_time = time;
        if self.batch.len() >= crate::logfile::BATCH_LIMIT {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> std::io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(&self.batch);
        self.size += self.batch.len() as u64;
        self.batch.clear();
        written
    }

    fn join_compression(&mut self) {
        if let Some(t) = self.compressing.take() {
            if t.join().is_err() {
                tracing::warn!(path = %self.path.display(), "compressing a rotated log panicked");
            }
        }
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.join_compression();
        if self.max_files < 2 {
            // Readers may be following the file: a new one under the name, not the old one truncated.
            crate::cleanup::remove_file(&self.path, "the log being rotated");
        } else {
            let gz = self.compress;
            for n in (1..self.max_files - 1).rev() {
                match std::fs::rename(rotated(&self.path, n, gz), rotated(&self.path, n + 1, gz)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        tracing::warn!(path = %self.path.display(), error = %e, "rotating the log");
                    }
                    _ => {}
                }
            }
            std::fs::rename(&self.path, rotated(&self.path, 1, false))?;
        }
        self.file = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o640)
                .open(&self.path)?
        };
        self.size = 0;
        if self.compress {
            let src = rotated(&self.path, 1, false);
            let last = self.last_time;
            let spawned = std::thread::Builder::new()
                .name("compress-log".into())
                .stack_size(128 * 1024)
                .spawn(move || {
                    if let Err(e) = compress(&src, last) {
                        tracing::warn!(path = %src.display(), error = %e, "compressing a rotated log");
                    }
                    // The compressor's state was allocated in this thread's malloc arena, which glibc
                    // keeps after the thread: give its pages back, the shim lives as long as its
                    // container.
                    #[cfg(all(target_os = "linux", target_env = "gnu"))]
                    // SAFETY: malloc_trim only releases free memory of the allocator's arenas; it is
                    // thread-safe.
                    unsafe {
                        libc::malloc_trim(0);
                    }
                });
            match spawned {
                Ok(t) => self.compressing = Some(t),
                Err(e) => tracing::warn!(error = %e, "starting the compression of a rotated log"),
            }
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

/// gzips `src` into `src.gz` (written aside and renamed, so a reader finds a whole file or none) and
/// removes `src`. Fastest level: this runs in the shim, whose CPU per logged megabyte counts; the
/// rotated files stay readable by dockerd's reader, which does not care about the level.
fn compress(src: &Path, last_time_nanos: i64) -> std::io::Result<()> {
    let gz = PathBuf::from(format!("{}.gz", src.display()));
    let tmp = PathBuf::from(format!("{}.gz.tmp", src.display()));
    let mut input = File::open(src)?;
    let out = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?
    };
    // dockerd reads the time of the file's last entry from here to skip whole files for `--since`.
    let extra = format!("{{\"lastTime\":\"{}\"}}", rfc3339_nano(last_time_nanos));
    let mut enc = flate2::GzBuilder::new()
        .extra(extra.into_bytes())
        .write(out, flate2::Compression::fast());
    let copied = std::io::copy(&mut input, &mut enc).and_then(|_| enc.finish());
    if let Err(e) = copied {
        crate::cleanup::remove_file(&tmp, "a half-compressed log");
        return Err(e);
    }
    std::fs::rename(&tmp, &gz)?;
    std::fs::remove_file(src)
}

/// Go's RFC 3339 with nanoseconds (trailing zeros trimmed), UTC.
fn rfc3339_nano(nanos: i64) -> String {
    let t = chrono::DateTime::from_timestamp(
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000) as u32,
    )
    .unwrap_or_default();
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let frac = format!("{:09}", t.timestamp_subsec_nanos());
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        format!("{base}Z")
    } else {
        format!("{base}.{frac}Z")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &Path) -> Vec<Record> {
        let mut out = Vec::new();
        for f in files(path) {
            let mut data = Vec::new();
            if f.extension().is_some_and(|e| e == "gz") {
                use std::io::Read;
                flate2::read::GzDecoder::new(File::open(&f).unwrap())
                    .read_to_end(&mut data)
                    .unwrap();
            } else {
                data = std::fs::read(&f).unwrap();
            }
            let mut pos = 0;
            while let Decoded::Record(r, n) = decode(&data[pos..]) {
                out.push(r);
                pos += n;
            }
            assert_eq!(pos, data.len(), "{} decodes to its end", f.display());
        }
        out
    }

    #[test]
    fn entries_round_trip_with_dockers_framing() {
        let mut buf = Vec::new();
        let p = Partial {
            id: "abc".into(),
            ordinal: 2,
            last: true,
        };
        encode(
            &mut buf,
            "stderr",
            1_700_000_000_123_456_789,
            b"hi",
            Some(&p),
            &encode_attrs(&[("a b".into(), "c".into()), ("tag".into(), "t".into())]),
        );
        // The frame: length, protobuf, the same length again.
        let len = u32::from_be_bytes(buf[..4].try_into().unwrap()) as usize;
        assert_eq!(buf.len(), len + 8);
        assert_eq!(&buf[len + 4..], &buf[..4]);
        // Field 1 (source) comes first, as protoc's encoders put it.
        assert_eq!(&buf[4..12], b"\x0a\x06stderr");
        assert_eq!(decode(&buf[..buf.len() - 1]), Decoded::Incomplete);
        let Decoded::Record(r, n) = decode(&buf) else {
            panic!("not decoded");
        };
        assert_eq!(n, buf.len());
        assert_eq!(r.source, "stderr");
        assert_eq!(r.time_nano, 1_700_000_000_123_456_789);
        assert_eq!(r.line, b"hi");
        assert_eq!(r.partial, Some(p));
        assert_eq!(
            r.attrs,
            [("a b".into(), "c".into()), ("tag".into(), "t".into())]
        );
        assert_eq!(r.text(), b"hi\n");
        let mut bad = buf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(decode(&bad), Decoded::Corrupt);
    }

    #[test]
    fn a_known_entry_encodes_as_gogo_protobuf_does() {
        // source "stdout", time_nano 1, line "a": the bytes dockerd's marshaller produces.
        let mut buf = Vec::new();
        encode(&mut buf, "stdout", 1, b"a", None, &[]);
        assert_eq!(
            buf,
            b"\x00\x00\x00\x0d\x0a\x06stdout\x10\x01\x1a\x01a\x00\x00\x00\x0d"
        );
    }

    #[test]
    fn entries_dockerd_wrote_encode_back_to_the_same_bytes() {
        // tests/fixtures/README.md says how dockerd 20.10 made these files.
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/dockerd-local-log/container.log");
        let mut seen = 0;
        for f in files(&p) {
            let mut data = Vec::new();
            if f.extension().is_some_and(|e| e == "gz") {
                use std::io::Read;
                let mut gz = flate2::read::GzDecoder::new(File::open(&f).unwrap());
                gz.read_to_end(&mut data).unwrap();
                // dockerd's gzip header: the last entry's time in the extra field.
                let extra = gz.header().unwrap().extra().unwrap().to_vec();
                assert_eq!(extra, b"{\"lastTime\":\"2026-12-07T03:56:44.494819388Z\"}");
            } else {
                data = std::fs::read(&f).unwrap();
            }
            let mut pos = 0;
            while let Decoded::Record(r, n) = decode(&data[pos..]) {
                let mut again = Vec::new();
                encode(
                    &mut again,
                    &r.source,
                    r.time_nano,
                    &r.line,
                    r.partial.as_ref(),
                    &encode_attrs(&r.attrs),
                );
                assert_eq!(again, &data[pos..pos + n], "entry {seen}");
                pos += n;
                seen += 1;
            }
            assert_eq!(pos, data.len());
        }
        assert_eq!(
            seen, 6,
            "hello, oops, two parts of the long line, after, no newline"
        );
        // The gzip header Berth writes carries the same field.
        assert_eq!(
            format!(
                "{{\"lastTime\":\"{}\"}}",
                rfc3339_nano(1_796_615_804_494_819_388)
            ),
            "{\"lastTime\":\"2026-12-07T03:56:44.494819388Z\"}"
        );
    }

    #[test]
    fn rotation_keeps_max_files_and_compresses_the_rotated_ones() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("local-logs/container.log");
        let mut log = LocalLog::open(&p, 1000, 3, true).unwrap();
        for i in 0..300 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        log.finish().unwrap();
        let dir = p.parent().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["container.log", "container.log.1.gz", "container.log.2.gz"]
        );
        // A rotated file went just past the size (dockerd rotates once the size is reached).
        let mut one = Vec::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(File::open(dir.join("container.log.1.gz")).unwrap())
            .read_to_end(&mut one)
            .unwrap();
        assert!(one.len() >= 1000 && one.len() < 1100, "{}", one.len());
        // The header's extra field carries the last entry's time, as dockerd writes it.
        let gz = flate2::read::GzDecoder::new(File::open(dir.join("container.log.1.gz")).unwrap());
        let extra = String::from_utf8(gz.header().unwrap().extra().unwrap().to_vec()).unwrap();
        assert!(extra.starts_with("{\"lastTime\":\"20"), "{extra}");
        // Only the owner reads them, as with dockerd.
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir), 0o700);
        assert_eq!(mode(&p), 0o640, "the file made at a rotation too");
        assert_eq!(mode(&dir.join("container.log.1.gz")), 0o640);
        let all = read_all(&p);
        assert_eq!(all.last().unwrap().line, b"line 299");
        // Oldest first and contiguous: what is kept is the newest lines, in order.
        let first: usize = String::from_utf8_lossy(&all[0].line)[5..].parse().unwrap();
        let nums: Vec<usize> = all
            .iter()
            .map(|r| String::from_utf8_lossy(&r.line)[5..].parse().unwrap())
            .collect();
        assert_eq!(nums, (first..300).collect::<Vec<_>>());
    }

    #[test]
    fn without_compression_rotated_files_stay_plain() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("container.log");
        let mut log = LocalLog::open(&p, 500, 2, false).unwrap();
        for i in 0..100 {
            log.write(Stream::Stderr, format!("e{i}\n").as_bytes())
                .unwrap();
        }
        log.write(Stream::Stdout, b"no newline").unwrap();
        log.finish().unwrap();
        assert!(d.path().join("container.log.1").exists());
        assert!(!d.path().join("container.log.2").exists());
        let all = read_all(&p);
        let last = all.last().unwrap();
        assert_eq!(
            last.text(),
            b"no newline",
            "an unfinished line keeps no newline"
        );
        assert_eq!(all[all.len() - 2].source, "stderr");
    }
}
