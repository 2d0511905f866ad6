//! `GET /containers/{id}/logs`: the json-file or local log read back (rotated files first), filtered by stream, time
//! and tail, optionally followed while the container runs.

use std::collections::VecDeque;
use std::io::{Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::hub::Frame;
use super::record::Status;
use crate::error::{Error, Result};
use crate::Engine;

/// What `docker logs` asks for.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    /// Include stdout.
    pub stdout: bool,
    /// Include stderr.
    pub stderr: bool,
    /// Keep streaming new output while the container runs.
    pub follow: bool,
    /// Only entries at or after (unix nanoseconds).
    pub since: Option<i64>,
    /// Only entries before (unix nanoseconds).
    pub until: Option<i64>,
    /// Prefix each line with its time.
    pub timestamps: bool,
    /// Only the last N lines.
    pub tail: Option<usize>,
    /// Prefix each line with its attributes (`--log-opt labels/env…`), as `docker logs --details`.
    pub details: bool,
}

struct Entry {
    stream: u8,
    /// Unix nanoseconds.
    time: i64,
    /// The time as the file has it (json-file); made from `time` when sent otherwise.
    time_text: Option<String>,
    log: Vec<u8>,
    /// Extra attributes, as the driver stored them.
    attrs: Vec<(String, String)>,
}

impl Engine {
    /// Streams a container's logs; returns whether it has a TTY (raw stream) and the frames.
    pub async fn container_logs(
        self: &Arc<Self>,
        name: &str,
        opts: LogOptions,
    ) -> Result<(bool, mpsc::Receiver<Frame>)> {
        let c = self.containers.resolve(name)?;
        let driver = c
            .host_config
            .log_config
            .as_ref()
            .and_then(|l| l.typ.clone())
            .unwrap_or_else(|| "json-file".into());
        if !super::logdriver::readable(&driver) {
            // dockerd's ErrReadLogsNotSupported, a 501.
            return Err(Error::NotImplemented(
                "configured logging driver does not support reading".into(),
            ));
        }
        if !opts.stdout && !opts.stderr {
            return Err(Error::InvalidParameter(
                "You must choose at least one stream".into(),
            ));
        }
        let dir = self.containers.dir(&c.id);
        let (format, path) = if driver == "local" {
            (Format::Local, super::logdriver::local_path(&dir))
        } else {
            (Format::JsonFile, super::logdriver::json_path(&dir, &c.id))
        };
        let (tx, rx) = mpsc::channel(256);
        let engine = Arc::clone(self);
        let id = c.id.clone();
        // Open the files now, while the request is handled: a client may remove the container before it
        // reads the stream (docker-py's `run(remove=True)` does), and an open file keeps its data.
        let files: Vec<(PathBuf, std::fs::File)> = format
            .files(&path)
            .into_iter()
            .filter_map(|p| open_log_file(format, p))
            .collect();
        tokio::task::spawn_blocking(move || {
            let alive = || {
                engine
                    .containers
                    .resolve(&id)
                    .map(|c| {
                        matches!(
                            c.state.status,
                            Status::Running | Status::Paused | Status::Restarting
                        )
                    })
                    .unwrap_or(false)
            };
            stream_logs(format, &path, files, &opts, &tx, &alive);
        });
        Ok((c.config.tty == Some(true), rx))
    }
}

/// How a driver's files are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// One JSON object per line; rotated files `NAME.1`, `NAME.2`, ….
    JsonFile,
    /// Docker's local driver (see [`shim::drivers::local`]); rotated files may be gzipped.
    Local,
}

/// What [`Format::decode`] found at the start of a buffer.
enum Decoded {
    /// An entry (or `None`: a record that is not one, skipped) and the bytes it took.
    Record(Option<Entry>, usize),
    /// The buffer ends inside a record.
    Incomplete,
}

impl Format {
    /// The log and its rotated predecessors, oldest first.
    fn files(self, path: &Path) -> Vec<PathBuf> {
        match self {
            Format::JsonFile => log_files(path),
            Format::Local => shim::drivers::local::files(path),
        }
    }

    fn decode(self, buf: &[u8]) -> Decoded {
        match self {
            Format::JsonFile => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => Decoded::Record(
                    std::str::from_utf8(&buf[..i])
                        .ok()
                        .and_then(|l| parse(l.trim_end())),
                    i + 1,
                ),
                None => Decoded::Incomplete,
            },
            Format::Local => match shim::drivers::local::decode(buf) {
                shim::drivers::local::Decoded::Record(r, n) => {
                    let entry = Entry {
                        stream: if r.source == "stderr" { 2 } else { 1 },
                        time: r.time_nano,
                        time_text: None,
                        log: r.text(),
                        attrs: r.attrs,
                    };
                    Decoded::Record(Some(entry), n)
                }
                shim::drivers::local::Decoded::Incomplete => Decoded::Incomplete,
                // A damaged file is read up to the damage, as far as it can be trusted.
                shim::drivers::local::Decoded::Corrupt => {
                    tracing::debug!("a damaged local log entry; the rest of the file is skipped");
                    Decoded::Record(None, buf.len())
                }
            },
        }
    }

    /// Decodes the complete records of `buf` into `out`; returns how many bytes they took.
    fn decode_all(self, buf: &[u8], out: &mut dyn FnMut(Entry) -> bool) -> (usize, bool) {
        let mut pos = 0;
        while let Decoded::Record(e, n) = self.decode(&buf[pos..]) {
            pos += n;
            if let Some(e) = e {
                if !out(e) {
                    return (pos, false);
                }
            }
        }
        (pos, true)
    }
}

/// Opens one of the log's files. A rotated local file found uncompressed may have been compressed and
/// removed since: then its `.gz` is the same entries.
fn open_log_file(format: Format, p: PathBuf) -> Option<(PathBuf, std::fs::File)> {
    match std::fs::File::open(&p) {
        Ok(f) => Some((p, f)),
        Err(_)
            if format == Format::Local
                && p.extension().is_some_and(|e| e != "gz" && e != "log") =>
        {
            let gz = PathBuf::from(format!("{}.gz", p.display()));
            std::fs::File::open(&gz).ok().map(|f| (gz, f))
        }
        Err(_) => None,
    }
}

/// A file's whole content (a gzipped rotated file decompressed).
fn read_file(path: &Path, mut f: &std::fs::File) -> Vec<u8> {
    use std::io::Read;
    let mut data = Vec::new();
    let read = if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(f).read_to_end(&mut data)
    } else {
        f.read_to_end(&mut data)
    };
    if let Err(e) = read {
        tracing::debug!(path = %path.display(), error = %e, "reading a log file");
    }
    data
}

fn stream_logs(
    format: Format,
    path: &Path,
    files: Vec<(PathBuf, std::fs::File)>,
    opts: &LogOptions,
    tx: &mpsc::Sender<Frame>,
    alive: &dyn Fn() -> bool,
) {
    // Entries are sent as they are read; with a tail only the last ones are kept, so the memory a read
    // takes is one file and the tail, however long the log.
    let mut tail: Option<(usize, VecDeque<Entry>)> =
        opts.tail.map(|n| (n, VecDeque::with_capacity(n.min(4096))));
    // Where the complete records of the current file end: following continues from there, so a record
    // written between this read and the follow loop is neither lost nor sent twice.
    let mut read_to = 0u64;
    let mut read_ino = 0;
    let mut current_file = None;
    for (file, f) in files {
        let current = file == path;
        if current {
            use std::os::unix::fs::MetadataExt;
            read_ino = f.metadata().map(|m| m.ino()).unwrap_or(0);
            current_file = f.try_clone().ok();
        }
        let data = read_file(&file, &f);
        let (used, more) = format.decode_all(&data, &mut |e| {
            if !wanted(&e, opts) {
                return true;
            }
            match &mut tail {
                None => send(tx, &e, opts),
                Some((0, _)) => true,
                Some((n, kept)) => {
                    if kept.len() == *n {
                        kept.pop_front();
                    }
                    kept.push_back(e);
                    true
                }
            }
        });
        if !more {
            return;
        }
        if current {
            read_to = used as u64;
        }
    }
    for e in tail.map(|(_, kept)| kept).into_iter().flatten() {
        if !send(tx, &e, opts) {
            return;
        }
    }
    if !opts.follow {
        return;
    }
    // Follow the current file from its end: new records as they come, until the container stops.
    // The shim may not have made the file yet when a client follows a container that is just starting.
    let (mut f, mut ino, mut pos) = match current_file {
        // The file read above, even if the container has been removed since.
        Some(f) => (f, read_ino, read_to),
        None => loop {
            match std::fs::File::open(path) {
                Ok(f) => break (f, inode(path), 0),
                Err(_) if alive() && !tx.is_closed() => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(_) => return,
            }
        },
    };
    // Sends the complete records of `f` after `pos`; false when the client has gone.
    let drain = |f: &std::fs::File, pos: &mut u64| -> bool {
        use std::io::Read;
        let mut reader = f;
        if let Err(e) = reader.seek(SeekFrom::Start(*pos)) {
            tracing::debug!(error = %e, "seeking in a followed log");
            return true;
        }
        let mut data = Vec::new();
        if reader.read_to_end(&mut data).is_err() {
            return true;
        }
        let (used, more) =
            format.decode_all(&data, &mut |e| !wanted(&e, opts) || send(tx, &e, opts));
        *pos += used as u64;
        more
    };
    loop {
        let running = alive();
        if !drain(&f, &mut pos) || !running || tx.is_closed() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
        let now_ino = inode(path);
        // Rotated: finish the old file, then continue with the new one from its start. Gone (the container
        // was removed): keep the open file, whose last records the next pass reads before it stops.
        if now_ino != ino && now_ino != 0 {
            if let Ok(nf) = std::fs::File::open(path) {
                if !drain(&f, &mut pos) {
                    return;
                }
                f = nf;
                pos = 0;
                ino = now_ino;
            }
        }
    }
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0)
}

/// The json-file log and its rotated predecessors, oldest first.
fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    for i in 1..100 {
        let p = PathBuf::from(format!("{}.{i}", path.display()));
        if !p.exists() {
            break;
        }
        rotated.push((i, p));
    }
    rotated.sort_by_key(|r| std::cmp::Reverse(r.0));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    files.push(path.to_owned());
    files
}

fn parse(line: &str) -> Option<Entry> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let stream = match v["stream"].as_str()? {
        "stderr" => 2,
        _ => 1,
    };
    let time_text = v["time"].as_str().unwrap_or("").to_owned();
    let time = image::timefmt::parse(&time_text)
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let attrs = v["attrs"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Some(Entry {
        stream,
        time,
        time_text: Some(time_text),
        log: v["log"].as_str().unwrap_or("").as_bytes().to_vec(),
        attrs,
    })
}

fn wanted(e: &Entry, o: &LogOptions) -> bool {
    ((e.stream == 1 && o.stdout) || (e.stream == 2 && o.stderr))
        && o.since.is_none_or(|s| e.time >= s)
        // dockerd stops at the first entry after `until`: one at that very time is included.
        && o.until.is_none_or(|u| e.time <= u)
}

fn send(tx: &mpsc::Sender<Frame>, e: &Entry, o: &LogOptions) -> bool {
    let details;
    let e = if o.details {
        details = Entry {
            log: with_details(&e.attrs, &e.log),
            attrs: Vec::new(),
            time_text: e.time_text.clone(),
            ..*e
        };
        &details
    } else {
        e
    };
    let text = if o.timestamps {
        let stamp = match &e.time_text {
            Some(t) => fixed_nanos(t),
            None => fixed_nanos(&image::timefmt::rfc3339_nano(
                std::time::UNIX_EPOCH + Duration::from_nanos(u64::try_from(e.time).unwrap_or(0)),
            )),
        };
        let mut t = format!("{stamp} ").into_bytes();
        t.extend_from_slice(&e.log);
        t
    } else {
        e.log.clone()
    };
    tx.blocking_send(Frame {
        stream: e.stream,
        data: Bytes::from(text),
    })
    .is_ok()
}

/// `docker logs --details`: the attributes as `k=v,k=v` (sorted, each side query-escaped) and a space
/// before the line, as dockerd's log stream writes them (a space alone when there are none).
fn with_details(attrs: &[(String, String)], line: &[u8]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = attrs.iter().collect();
    sorted.sort();
    let pairs: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect();
    let mut out = pairs.join(",").into_bytes();
    out.push(b' ');
    out.extend_from_slice(line);
    out
}

/// Go's `url.QueryEscape` (space as `+`, everything but letters, digits and `-_.~` as `%XX`), which
/// `--details` output uses; the `url` crate's form encoding differs on `*` and `~`.
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Docker prints log times with exactly nine fractional digits.
fn fixed_nanos(t: &str) -> String {
    let Some(base) = t.strip_suffix('Z') else {
        return t.to_owned();
    };
    let (secs, frac) = base.split_once('.').unwrap_or((base, ""));
    format!("{secs}.{:0<9}Z", frac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_prefix_the_sorted_escaped_attributes() {
        let attrs = vec![
            ("tag".to_owned(), "a b".to_owned()),
            ("app".to_owned(), "x=y,*~".to_owned()),
        ];
        assert_eq!(
            with_details(&attrs, b"line\n"),
            b"app=x%3Dy%2C%2A~,tag=a+b line\n"
        );
        assert_eq!(with_details(&[], b"line\n"), b" line\n");
    }

    #[test]
    fn log_times_get_nine_digits() {
        assert_eq!(
            fixed_nanos("2026-11-29T22:22:42.5455Z"),
            "2026-11-29T22:22:42.545500000Z"
        );
        assert_eq!(
            fixed_nanos("2026-11-29T22:22:42Z"),
            "2026-11-29T22:22:42.000000000Z"
        );
    }

    /// Frames of a whole read of `path`'s logs, as (stream, text).
    fn read_back(format: Format, path: &Path, opts: &LogOptions) -> Vec<(u8, Vec<u8>)> {
        let (tx, mut rx) = mpsc::channel(1000);
        let files = format
            .files(path)
            .into_iter()
            .filter_map(|q| open_log_file(format, q))
            .collect();
        stream_logs(format, path, files, opts, &tx, &|| false);
        drop(tx);
        let mut got = Vec::new();
        while let Ok(f) = rx.try_recv() {
            got.push((f.stream, f.data.to_vec()));
        }
        got
    }

    #[test]
    fn local_files_written_by_dockerd_read_back_as_dockerd_prints_them() {
        // tests/fixtures/README.md says how dockerd made them: a rotated, gzipped file and the current one,
        // a 17,000-byte line in two partial entries, a last line without a newline.
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/dockerd-local-log/container.log");
        let all = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let got = read_back(Format::Local, &p, &all);
        let out: Vec<u8> = got
            .iter()
            .filter(|f| f.0 == 1)
            .flat_map(|f| f.1.clone())
            .collect();
        let mut want = b"hello\n".to_vec();
        want.extend(vec![b'x'; 17000]);
        // dockerd 28 ends the line after its last part (20.10, which wrote the files, did not).
        want.extend_from_slice(b"\nafter\nno newline");
        assert_eq!(out, want);
        assert_eq!(got[1], (2, b"oops\n".to_vec()));
        let stamped = read_back(
            Format::Local,
            &p,
            &LogOptions {
                timestamps: true,
                tail: Some(1),
                ..all
            },
        );
        assert_eq!(
            stamped,
            [(1, b"2026-12-07T03:56:44.525562629Z no newline".to_vec())]
        );
    }

    #[test]
    fn tail_and_streams_select_entries() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x-json.log");
        let mut text = String::new();
        for i in 0..5 {
            text.push_str(&format!("{{\"log\":\"out {i}\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-29T22:22:4{i}Z\"}}\n"));
            text.push_str(&format!("{{\"log\":\"err {i}\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-29T22:22:4{i}.5Z\"}}\n"));
        }
        std::fs::write(&p, text).unwrap();
        let (tx, mut rx) = mpsc::channel(100);
        let opts = LogOptions {
            stdout: true,
            stderr: false,
            tail: Some(2),
            ..Default::default()
        };
        let files = log_files(&p)
            .into_iter()
            .filter_map(|q| std::fs::File::open(&q).ok().map(|f| (q, f)))
            .collect();
        stream_logs(Format::JsonFile, &p, files, &opts, &tx, &|| false);
        drop(tx);
        let mut got = Vec::new();
        while let Ok(f) = rx.try_recv() {
            got.push(String::from_utf8(f.data.to_vec()).unwrap());
        }
        assert_eq!(got, ["out 3\n", "out 4\n"]);
        // Both streams count for the tail, and a tail of 0 is nothing (as dockerd's).
        let both = LogOptions {
            stdout: true,
            stderr: true,
            tail: Some(3),
            ..Default::default()
        };
        let texts = |opts: &LogOptions| -> Vec<String> {
            read_back(Format::JsonFile, &p, opts)
                .into_iter()
                .map(|f| String::from_utf8(f.1).unwrap())
                .collect()
        };
        assert_eq!(texts(&both), ["err 3\n", "out 4\n", "err 4\n"]);
        assert!(texts(&LogOptions {
            tail: Some(0),
            ..both.clone()
        })
        .is_empty());
        assert_eq!(texts(&LogOptions { tail: None, ..both }).len(), 10);
    }
}
