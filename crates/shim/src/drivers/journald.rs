//! Docker's `journald` driver: each line one journal entry, sent as a datagram in the journal's native
//! protocol (`KEY=value` lines; a value with a newline as `KEY`, its length as a little-endian u64, the
//! bytes), with dockerd's fields: MESSAGE, PRIORITY (6 for stdout, 3 for stderr), the container's
//! CONTAINER_ID, CONTAINER_ID_FULL, CONTAINER_NAME, CONTAINER_TAG, IMAGE_NAME and SYSLOG_IDENTIFIER, and
//! per entry SYSLOG_TIMESTAMP, CONTAINER_LOG_EPOCH/ORDINAL and the partial-message fields.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

use super::lines::Splitter;
use super::Partial;
use crate::logfile::Stream;

/// After a failed send other than a full queue (journald restarting), the socket is connected again at
/// most this often; messages in between are lost.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);

/// An open journal socket.
pub(crate) struct JournalLog {
    path: std::path::PathBuf,
    socket: UnixDatagram,
    retry_at: Option<std::time::Instant>,
    /// Messages lost since the last warning about it.
    dropped: u64,
    warned_at: Option<std::time::Instant>,
    /// The fields every entry carries, encoded once.
    common: Vec<u8>,
    ordinal: u64,
    lines: Splitter,
    /// One entry's datagram, reused.
    buf: Vec<u8>,
}

/// Appends one field in the native protocol.
fn field(out: &mut Vec<u8>, key: &str, value: &[u8]) {
    out.extend_from_slice(key.as_bytes());
    if value.contains(&b'\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value);
    out.push(b'\n');
}

impl JournalLog {
    /// Connects to the journal (the container does not start when there is none, as with dockerd:
    /// "journald is not enabled on this host").
    pub(crate) fn open(path: &Path, fields: &[(String, String)]) -> std::io::Result<JournalLog> {
        let socket = connect(path)
            .map_err(|_| std::io::Error::other("journald is not enabled on this host"))?;
        let mut common = Vec::new();
        for (k, v) in fields {
            field(&mut common, k, v.as_bytes());
        }
        // Tells this run's entries from an earlier run's, with CONTAINER_LOG_ORDINAL ordering them.
        let epoch = format!("{:x}{:x}", super::now_nanos(), std::process::id());
        field(&mut common, "CONTAINER_LOG_EPOCH", epoch.as_bytes());
        Ok(JournalLog {
            path: path.to_owned(),
            socket,
            retry_at: None,
            dropped: 0,
            warned_at: None,
            common,
            ordinal: 0,
            lines: Splitter::default(),
            buf: Vec::new(),
        })
    }

    /// Sends a chunk's complete lines.
    pub(crate) fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let time = super::now_nanos();
        let mut lines = std::mem::take(&mut self.lines);
        let r = lines.split(stream, data, &mut |s, line, p| self.send(s, line, p, time));
        self.lines = lines;
        r
    }

    /// Sends unfinished lines.
    pub(crate) fn flush_partial(&mut self) -> std::io::Result<()> {
        let time = super::now_nanos();
        let mut lines = std::mem::take(&mut self.lines);
        let r = lines.flush(&mut |s, line, p| self.send(s, line, p, time));
        self.lines = lines;
        r
    }

    fn send(
        &mut self,
        stream: Stream,
        line: &[u8],
        partial: Option<Partial>,
        time: i64,
    ) -> std::io::Result<()> {
        self.ordinal += 1;
        let b = &mut self.buf;
        b.clear();
        field(b, "MESSAGE", line);
        let priority: &[u8] = match stream {
            Stream::Stdout => b"6",
            Stream::Stderr => b"3",
        };
        field(b, "PRIORITY", priority);
        b.extend_from_slice(&self.common);
        let ts = chrono::DateTime::from_timestamp(
            time.div_euclid(1_000_000_000),
            time.rem_euclid(1_000_000_000) as u32,
        )
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        field(b, "SYSLOG_TIMESTAMP", ts.as_bytes());
        field(
            b,
            "CONTAINER_LOG_ORDINAL",
            self.ordinal.to_string().as_bytes(),
        );
        if let Some(p) = partial {
            field(b, "CONTAINER_PARTIAL_ID", p.id.as_bytes());
            field(
                b,
                "CONTAINER_PARTIAL_ORDINAL",
                p.ordinal.to_string().as_bytes(),
            );
            field(
                b,
                "CONTAINER_PARTIAL_LAST",
                if p.last { b"true" } else { b"false" },
            );
            if !p.last {
                field(b, "CONTAINER_PARTIAL_MESSAGE", b"true");
            }
        }
        if self.retry_at.is_some_and(|t| std::time::Instant::now() < t) {
            self.lost();
            return Ok(());
        }
        match self.socket.send(b) {
            Ok(_) => Ok(()),
            // The journal's queue is full: this shim does not wait for it (its loop serves attach and
            // stop too), the message is lost.
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                self.lost();
                Ok(())
            }
            Err(e) => {
                let again = connect(&self.path).and_then(|s| {
                    s.send(&self.buf)?;
                    Ok(s)
                });
                match again {
                    Ok(s) => {
                        self.socket = s;
                        self.retry_at = None;
                        Ok(())
                    }
                    Err(_) => {
                        self.retry_at = Some(std::time::Instant::now() + RETRY_AFTER);
                        Err(e)
                    }
                }
            }
        }
    }

    /// Counts a lost message, and says how many were lost at most every ten seconds.
    fn lost(&mut self) {
        self.dropped += 1;
        if self
            .warned_at
            .is_none_or(|t| t.elapsed() > std::time::Duration::from_secs(10))
        {
            tracing::warn!(
                dropped = self.dropped,
                "journal messages lost: the journal does not keep up"
            );
            self.dropped = 0;
            self.warned_at = Some(std::time::Instant::now());
        }
    }
}

/// A non-blocking datagram socket connected to the journal.
fn connect(path: &Path) -> std::io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    socket.connect(path)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Parses one native-protocol datagram into its fields (for tests; journald does this on the other side).
#[cfg(test)]
pub(crate) fn parse(mut d: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let nl = d.iter().position(|&b| b == b'\n').unwrap();
        let head = &d[..nl];
        if let Some(eq) = head.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8_lossy(&head[..eq]).into_owned(),
                head[eq + 1..].to_vec(),
            ));
            d = &d[nl + 1..];
        } else {
            let len = u64::from_le_bytes(d[nl + 1..nl + 9].try_into().unwrap()) as usize;
            let value = d[nl + 9..nl + 9 + len].to_vec();
            out.push((String::from_utf8_lossy(head).into_owned(), value));
            d = &d[nl + 9 + len + 1..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_dockers_fields_in_the_native_protocol() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("socket");
        let journal = UnixDatagram::bind(&p).unwrap();
        let fields = vec![
            ("CONTAINER_ID".to_owned(), "0123456789ab".to_owned()),
            ("CONTAINER_NAME".to_owned(), "web".to_owned()),
        ];
        let mut log = JournalLog::open(&p, &fields).unwrap();
        log.write(Stream::Stderr, b"oops\n").unwrap();
        let mut buf = vec![0u8; 65536];
        let n = journal.recv(&mut buf).unwrap();
        let got = parse(&buf[..n]);
        let get = |k: &str| {
            got.iter()
                .find(|f| f.0 == k)
                .map(|f| String::from_utf8_lossy(&f.1).into_owned())
        };
        assert_eq!(get("MESSAGE").as_deref(), Some("oops"));
        assert_eq!(get("PRIORITY").as_deref(), Some("3"));
        assert_eq!(get("CONTAINER_ID").as_deref(), Some("0123456789ab"));
        assert_eq!(get("CONTAINER_NAME").as_deref(), Some("web"));
        assert_eq!(get("CONTAINER_LOG_ORDINAL").as_deref(), Some("1"));
        assert!(get("SYSLOG_TIMESTAMP").unwrap().ends_with('Z'));
    }

    #[test]
    fn a_journal_that_does_not_keep_up_loses_lines_but_never_stalls_the_shim() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("socket");
        let journal = UnixDatagram::bind(&p).unwrap();
        let mut log = JournalLog::open(&p, &[]).unwrap();
        let t = std::time::Instant::now();
        for _ in 0..20_000 {
            log.write(Stream::Stdout, b"a line nobody reads yet\n")
                .unwrap();
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(5),
            "{:?}",
            t.elapsed()
        );
        journal.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 4096];
        let mut got = 0;
        while journal.recv(&mut buf).is_ok() {
            got += 1;
        }
        assert!(got > 0 && got < 20_000, "{got} delivered");
    }

    #[test]
    fn a_value_with_a_newline_is_sent_with_its_length() {
        let mut out = Vec::new();
        field(&mut out, "MESSAGE", b"a\nb");
        assert_eq!(out, b"MESSAGE\n\x03\x00\x00\x00\x00\x00\x00\x00a\nb\n");
        assert_eq!(parse(&out), [("MESSAGE".to_owned(), b"a\nb".to_vec())]);
    }

    #[test]
    fn no_journal_is_dockers_error() {
        let d = tempfile::tempdir().unwrap();
        let e = JournalLog::open(&d.path().join("none"), &[]).err().unwrap();
        assert_eq!(e.to_string(), "journald is not enabled on this host");
    }
}
