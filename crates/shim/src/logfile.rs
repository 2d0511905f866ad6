//! Docker's json-file log driver: one JSON object per line (`{"log":…,"stream":…,"time":…}`), split at
//! newlines and at 16 KiB, rotated at `max_size` into at most `max_files` files (`NAME`, `NAME.1`, …).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// dockerd splits lines longer than this into several entries.
const MAX_LINE: usize = 16 * 1024;

/// Entries are written out once this many bytes of them wait: one `write` for many short lines, and a
/// flood's batch does not grow the shim's heap past it (the heap's top stays resident after a free).
pub(crate) const BATCH_LIMIT: usize = 64 * 1024;

/// Writes a container's output as json-file logs.
pub struct JsonLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    partial: [Vec<u8>; 2],
    /// Entries made from one chunk of output, written with one `write` (a flood of short lines would
    /// otherwise cost a syscall per line).
    batch: Vec<u8>,
    /// `"attrs":{…},` of every entry (`--log-opt labels/env`), encoded once; empty without attributes.
    attrs: Vec<u8>,
}

/// Which stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// fd 1.
    Stdout = 0,
    /// fd 2.
    Stderr = 1,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

impl JsonLog {
    /// Opens (appending) the log at `path`; `max_size` 0 means unbounded.
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> std::io::Result<JsonLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(JsonLog {
            path: path.to_owned(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            partial: [Vec::new(), Vec::new()],
            batch: Vec::new(),
            attrs: Vec::new(),
        })
    }

    /// Adds extra attributes to every entry, as dockerd's json-file writes them (`"attrs"` between
    /// `"stream"` and `"time"`, keys sorted).
    pub fn with_attrs(mut self, attrs: &[(String, String)]) -> JsonLog {
        if attrs.is_empty() {
            return self;
        }
        let map: std::collections::BTreeMap<&str, &str> = attrs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.attrs.extend_from_slice(b"\"attrs\":");
        // A map of strings always serializes.
        if serde_json::to_writer(&mut self.attrs, &map).is_ok() {
            self.attrs.push(b',');
        } else {
            self.attrs.clear();
        }
        self
    }

    /// Logs a chunk of output; complete lines are written, a trailing partial line waits for more. The
    /// lines of one chunk share its time: they arrived in one read, so no finer time is known anyway.
    pub fn write(&mut self, stream: Stream, mut data: &[u8]) -> std::io::Result<()> {
        let time = now();
        let mut result = Ok(());
        while !data.is_empty() {
            let buf = &mut self.partial[stream as usize];
            let room = MAX_LINE - buf.len();
            let (take, complete) = match data.iter().position(|&b| b == b'\n') {
                Some(i) if i < room => (i + 1, true),
                _ if data.len() >= room => (room, true),
                _ => (data.len(), false),
            };
            if complete && buf.is_empty() {
                // The common case: a whole line in the chunk, encoded without a copy.
                result = self.entry(stream, &data[..take], &time);
            } else {
                buf.extend_from_slice(&data[..take]);
                if complete {
                    let line = std::mem::take(&mut self.partial[stream as usize]);
                    result = self.entry(stream, &line, &time);
                }
            }
            data = &data[take..];
            if result.is_err() {
                break;
            }
        }
        result.and(self.write_batch())
    }

    /// Writes out partial lines (at the end of the container's output).
    pub fn flush_partial(&mut self) -> std::io::Result<()> {
        let time = now();
        for stream in [Stream::Stdout, Stream::Stderr] {
            let line = std::mem::take(&mut self.partial[stream as usize]);
            if !line.is_empty() {
                self.entry(stream, &line, &time)?;
            }
        }
        self.write_batch()
    }

    /// Adds one entry to the batch, rotating first (the batch written out) when the entry would take the
    /// file past `max_size`.
    fn entry(&mut self, stream: Stream, line: &[u8], time: &str) -> std::io::Result<()> {
        let start = self.batch.len();
        self.batch.extend_from_slice(b"{\"log\":");
        serde_json::to_writer(&mut self.batch, &*String::from_utf8_lossy(line))
            .map_err(std::io::Error::other)?;
        self.batch.extend_from_slice(b",\"stream\":\"");
        self.batch.extend_from_slice(stream.name().as_bytes());
        self.batch.extend_from_slice(b"\",");
        self.batch.extend_from_slice(&self.attrs);
        self.batch.extend_from_slice(b"\"time\":\"");
        self.batch.extend_from_slice(time.as_bytes());
        self.batch.extend_from_slice(b"\"}\n");
        let len = (self.batch.len() - start) as u64;
        let before = self.size + start as u64;
        if self.max_size > 0 && before > 0 && before + len > self.max_size {
            let entry = self.batch.split_off(start);
            self.write_batch()?;
            self.rotate()?;
            self.batch = entry;
        }
        if self.batch.len() >= BATCH_LIMIT {
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

    fn rotate(&mut self) -> std::io::Result<()> {
        let name = |i: u32| {
            if i == 0 {
                self.path.clone()
            } else {
                PathBuf::from(format!("{}.{i}", self.path.display()))
            }
        };
        if self.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        // Each rename replaces the older file in one step (no remove first): a reader never finds a
        // numbered file missing in between.
        for i in (0..self.max_files - 1).rev() {
            match std::fs::rename(name(i), name(i + 1)) {
                // Fewer files than the maximum so far.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %name(i).display(), error = %e, "rotating the log");
                }
                Ok(()) => {}
            }
        }
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// Now, as Go's RFC 3339 with nanoseconds (trailing zeros trimmed), like dockerd's log times.
pub fn now() -> String {
    let t = chrono::Utc::now();
    let base = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        return format!("{base}Z");
    }
    let frac = format!("{nanos:09}");
    format!("{base}.{}Z", frac.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(path: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn lines_are_split_at_newlines_and_partial_lines_wait() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut log = JsonLog::open(&p, 0, 1).unwrap();
        log.write(Stream::Stdout, b"hello\nwor").unwrap();
        log.write(Stream::Stderr, b"oops\n").unwrap();
        log.write(Stream::Stdout, b"ld\n").unwrap();
        log.write(Stream::Stdout, b"tail").unwrap();
        log.flush_partial().unwrap();
        let l = lines(&p);
        assert_eq!(l.len(), 4);
        assert_eq!(l[0]["log"], "hello\n");
        assert_eq!(l[1]["stream"], "stderr");
        assert_eq!(l[2]["log"], "world\n");
        assert_eq!(l[3]["log"], "tail");
        assert!(l[0]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn attributes_sit_between_stream_and_time_as_dockerd_writes_them() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut log = JsonLog::open(&p, 0, 1)
            .unwrap()
            .with_attrs(&[("b".into(), "2".into()), ("a".into(), "1 \"x\"".into())]);
        log.write(Stream::Stdout, b"hi\n").unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with(
                r#"{"log":"hi\n","stream":"stdout","attrs":{"a":"1 \"x\"","b":"2"},"time":""#
            ),
            "{text}"
        );
        assert_eq!(lines(&p)[0]["attrs"]["b"], "2");
    }

    #[test]
    fn long_lines_split_at_16k() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut log = JsonLog::open(&p, 0, 1).unwrap();
        log.write(Stream::Stdout, &vec![b'x'; 40 * 1024]).unwrap();
        log.flush_partial().unwrap();
        let l = lines(&p);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0]["log"].as_str().unwrap().len(), 16 * 1024);
    }

    #[test]
    fn rotation_keeps_at_most_max_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut log = JsonLog::open(&p, 1000, 3).unwrap();
        for i in 0..200 {
            log.write(Stream::Stdout, format!("line {i}\n").as_bytes())
                .unwrap();
        }
        assert!(p.exists());
        assert!(d.path().join("c-json.log.1").exists());
        assert!(d.path().join("c-json.log.2").exists());
        assert!(!d.path().join("c-json.log.3").exists());
        for f in ["c-json.log", "c-json.log.1", "c-json.log.2"] {
            assert!(std::fs::metadata(d.path().join(f)).unwrap().len() <= 1000);
        }
        let last = lines(&p);
        assert_eq!(last.last().unwrap()["log"], "line 199\n");
    }

    #[test]
    fn a_chunk_of_many_lines_is_batched_within_the_rotation_bound() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c-json.log");
        let mut log = JsonLog::open(&p, 4096, 2).unwrap();
        // What `yes` writes: one read brings thousands of two-byte lines.
        log.write(Stream::Stdout, &b"y\n".repeat(10_000)).unwrap();
        log.write(Stream::Stderr, b"last\n").unwrap();
        let len = |f: &str| std::fs::metadata(d.path().join(f)).unwrap().len();
        // The rotated file was filled up to the bound, not past it.
        assert!(len("c-json.log.1") <= 4096 && len("c-json.log.1") > 4000);
        assert!(len("c-json.log") <= 4096);
        assert!(!d.path().join("c-json.log.2").exists());
        let l = lines(&p);
        assert!(l[..l.len() - 1].iter().all(|e| e["log"] == "y\n"));
        assert_eq!(l.last().unwrap()["stream"], "stderr");
        assert_eq!(l.last().unwrap()["log"], "last\n");
    }
}
