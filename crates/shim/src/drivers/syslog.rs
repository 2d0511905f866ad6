//! Docker's `syslog` driver: each line a message to a syslog server over a unix stream or datagram
//! socket, TCP or UDP, formatted as dockerd's syslog library does (its "unix" format by default, or
//! RFC 3164, RFC 5424, RFC 5424 with microseconds), stdout at severity info, stderr at err.

use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::lines::Splitter;
use crate::logfile::Stream;

/// Where syslog messages go (`syslog-address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "proto", content = "addr", rename_all = "kebab-case")]
pub enum SyslogAddress {
    /// No address: the local syslog socket (`/dev/log`, `/var/run/syslog` or `/var/run/log`, datagram
    /// first).
    Local,
    /// `unix://PATH`, a stream socket.
    Unix(PathBuf),
    /// `unixgram://PATH`, a datagram socket.
    Unixgram(PathBuf),
    /// `tcp://HOST:PORT`.
    Tcp(String),
    /// `udp://HOST:PORT`.
    Udp(String),
}

/// How a message is laid out (`syslog-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogFormat {
    /// No format given: `<PRI>Mmm dd hh:mm:ss TAG[PID]: MSG`, as for a local syslog.
    Unix,
    /// `<PRI>Mmm dd hh:mm:ss HOST TAG[PID]: MSG`.
    Rfc3164,
    /// `<PRI>1 TIMESTAMP HOST TAG PID TAG - MSG` (RFC 3339 time to the second).
    Rfc5424,
    /// RFC 5424 with the time to the microsecond.
    Rfc5424micro,
}

/// Severities (RFC 5424): stdout lines are informational, stderr lines errors.
const SEVERITY_INFO: u8 = 6;
const SEVERITY_ERR: u8 = 3;

/// A stream write that blocks longer than this (a server that does not read) drops the connection and
/// its message rather than hold up the shim's loop, and with it attach clients and `docker stop`.
/// dockerd would block the container's output instead.
const WRITE_TIMEOUT: Duration = Duration::from_millis(200);
/// How long a TCP connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// After a failed (re)connect, messages are dropped for this long before the next attempt: a server that
/// is down costs one connect per interval, not one per line.
const RETRY_AFTER: Duration = Duration::from_secs(1);

enum Conn {
    Stream(UnixStream),
    Dgram(UnixDatagram),
    Tcp(TcpStream),
    Udp(UdpSocket),
}

impl Conn {
    fn send(&mut self, msg: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Stream(s) => s.write_all(msg),
            Conn::Tcp(s) => s.write_all(msg),
            // Datagram sockets are non-blocking: a receiver that cannot keep up loses messages.
            Conn::Dgram(s) => s.send(msg).map(drop),
            Conn::Udp(s) => s.send(msg).map(drop),
        }
    }

    fn is_datagram(&self) -> bool {
        matches!(self, Conn::Dgram(_) | Conn::Udp(_))
    }
}

/// Connects, failing with Go's words (`dial tcp 127.0.0.1:9: connect: connection refused`), which dockerd
/// shows when a container's syslog cannot be reached.
fn connect(address: &SyslogAddress) -> std::io::Result<Conn> {
    let dial = |proto: &str, to: &str, e: std::io::Error| {
        std::io::Error::new(
            e.kind(),
            format!(
                "dial {proto} {to}: connect: {}",
                runtime::error::go_errno_text(&e)
            ),
        )
    };
    let conn = match address {
        SyslogAddress::Unix(p) => Conn::Stream(
            UnixStream::connect(p).map_err(|e| dial("unix", &p.display().to_string(), e))?,
        ),
        SyslogAddress::Unixgram(p) => {
            Conn::Dgram(dgram(p).map_err(|e| dial("unixgram", &p.display().to_string(), e))?)
        }
        SyslogAddress::Tcp(a) => {
            let s = tcp_connect(a).map_err(|e| dial("tcp", a, e))?;
            s.set_nodelay(true)?;
            Conn::Tcp(s)
        }
        SyslogAddress::Udp(a) => {
            let target = std::net::ToSocketAddrs::to_socket_addrs(a)?
                .next()
                .ok_or_else(|| std::io::Error::other(format!("no address for {a}")))?;
            let any: std::net::SocketAddr = if target.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let s = UdpSocket::bind(any)?;
            s.connect(target)?;
            Conn::Udp(s)
        }
        SyslogAddress::Local => local()?,
    };
    match &conn {
        Conn::Stream(s) => s.set_write_timeout(Some(WRITE_TIMEOUT))?,
        Conn::Tcp(s) => s.set_write_timeout(Some(WRITE_TIMEOUT))?,
        Conn::Dgram(s) => s.set_nonblocking(true)?,
        Conn::Udp(s) => s.set_nonblocking(true)?,
    }
    Ok(conn)
}

/// Connects to the first address `a` resolves to that answers, each within [`CONNECT_TIMEOUT`].
fn tcp_connect(a: &str) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in std::net::ToSocketAddrs::to_socket_addrs(a)? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other(format!("no address for {a}"))))
}

fn dgram(path: &Path) -> std::io::Result<UnixDatagram> {
    let s = UnixDatagram::unbound()?;
    s.connect(path)?;
    Ok(s)
}

/// The local syslog daemon's socket, where the usual systems put it.
fn local() -> std::io::Result<Conn> {
    for p in ["/dev/log", "/var/run/syslog", "/var/run/log"] {
        if let Ok(s) = dgram(Path::new(p)) {
            return Ok(Conn::Dgram(s));
        }
        if let Ok(s) = UnixStream::connect(p) {
            return Ok(Conn::Stream(s));
        }
    }
    Err(std::io::Error::other("Unix syslog delivery error"))
}

/// An open syslog connection.
pub(crate) struct SyslogLog {
    address: SyslogAddress,
    conn: Option<Conn>,
    facility: u8,
    format: SyslogFormat,
    tag: String,
    hostname: String,
    pid: u32,
    lines: Splitter,
    /// No connect is tried before then (one failed).
    retry_at: Option<Instant>,
    /// Messages lost since the last warning about it.
    dropped: u64,
    warned_at: Option<Instant>,
}

impl SyslogLog {
    /// Connects (a refused connection fails the container's start, as with dockerd).
    pub(crate) fn open(
        address: SyslogAddress,
        facility: u8,
        format: SyslogFormat,
        tag: String,
    ) -> std::io::Result<SyslogLog> {
        let conn = connect(&address)?;
        let hostname = if address == SyslogAddress::Local {
            "localhost".to_owned()
        } else {
            rustix::system::uname()
                .nodename()
                .to_string_lossy()
                .into_owned()
        };
        Ok(SyslogLog {
            address,
            conn: Some(conn),
            facility,
            format,
            tag,
            hostname,
            pid: std::process::id(),
            lines: Splitter::default(),
            retry_at: None,
            dropped: 0,
            warned_at: None,
        })
    }

    /// Sends a chunk's complete lines.
    pub(crate) fn write(&mut self, stream: Stream, data: &[u8]) -> std::io::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        let r = lines.split(stream, data, &mut |s, line, _| self.send(s, line));
        self.lines = lines;
        r
    }

    /// Sends unfinished lines.
    pub(crate) fn flush_partial(&mut self) -> std::io::Result<()> {
        let mut lines = std::mem::take(&mut self.lines);
        let r = lines.flush(&mut |s, line, _| self.send(s, line));
        self.lines = lines;
        r
    }

    fn send(&mut self, stream: Stream, line: &[u8]) -> std::io::Result<()> {
        // dockerd sends no message for an empty line.
        if line.is_empty() {
            return Ok(());
        }
        let severity = match stream {
            Stream::Stdout => SEVERITY_INFO,
            Stream::Stderr => SEVERITY_ERR,
        };
        let msg = format_message(
            self.format,
            (self.facility << 3) | severity,
            &chrono::Local::now(),
            &self.hostname,
            &self.tag,
            self.pid,
            line,
        );
        if let Some(c) = &mut self.conn {
            match c.send(&msg) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && c.is_datagram() => {
                    self.lost();
                    return Ok(());
                }
                Err(e) if is_timeout(&e) => {
                    // Part of the message may be out: the stream cannot be trusted any more.
                    self.conn = None;
                    self.retry_at = Some(Instant::now() + RETRY_AFTER);
                    self.lost();
                    return Ok(());
                }
                Err(_) => self.conn = None,
            }
        } else if self.retry_at.is_some_and(|t| Instant::now() < t) {
            self.lost();
            return Ok(());
        }
        // As dockerd's syslog writer: a failed write reconnects and tries once more.
        let mut c = match connect(&self.address) {
            Ok(c) => c,
            Err(e) => {
                self.retry_at = Some(Instant::now() + RETRY_AFTER);
                return Err(e);
            }
        };
        let sent = c.send(&msg);
        if sent.is_ok() {
            self.conn = Some(c);
            self.retry_at = None;
        } else {
            self.retry_at = Some(Instant::now() + RETRY_AFTER);
        }
        sent
    }

    /// Counts a lost message, and says how many were lost at most every ten seconds.
    fn lost(&mut self) {
        self.dropped += 1;
        if self
            .warned_at
            .is_none_or(|t| t.elapsed() > Duration::from_secs(10))
        {
            tracing::warn!(dropped = self.dropped, address = ?self.address, "syslog messages lost: the server does not keep up");
            self.dropped = 0;
            self.warned_at = Some(Instant::now());
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// One message in `format`, ending in a newline (dockerd's syslog writer adds one).
pub(crate) fn format_message<Tz: chrono::TimeZone>(
    format: SyslogFormat,
    priority: u8,
    now: &chrono::DateTime<Tz>,
    hostname: &str,
    tag: &str,
    pid: u32,
    content: &[u8],
) -> Vec<u8>
where
    Tz::Offset: std::fmt::Display,
{
    use chrono::SecondsFormat;
    let head = match format {
        SyslogFormat::Unix => format!(
            "<{priority}>{} {tag}[{pid}]: ",
            now.format("%b %e %H:%M:%S")
        ),
        SyslogFormat::Rfc3164 => format!(
            "<{priority}>{} {hostname} {tag}[{pid}]: ",
            now.format("%b %e %H:%M:%S")
        ),
        SyslogFormat::Rfc5424 => format!(
            "<{priority}>1 {} {hostname} {tag} {pid} {tag} - ",
            now.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        SyslogFormat::Rfc5424micro => format!(
            "<{priority}>1 {} {hostname} {tag} {pid} {tag} - ",
            now.to_rfc3339_opts(SecondsFormat::Micros, true)
        ),
    };
    let mut msg = Vec::with_capacity(head.len() + content.len() + 1);
    msg.extend_from_slice(head.as_bytes());
    msg.extend_from_slice(content);
    if !msg.ends_with(b"\n") {
        msg.push(b'\n');
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_laid_out_as_dockerds_syslog_writer_does() {
        use chrono::TimeZone;
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 3, 5, 7, 8, 9)
            .unwrap()
            .checked_add_signed(chrono::Duration::microseconds(123_456))
            .unwrap();
        let f = |format| {
            String::from_utf8(format_message(format, 30, &t, "host", "abc", 42, b"hello")).unwrap()
        };
        assert_eq!(
            f(SyslogFormat::Unix),
            "<30>Mar  5 07:08:09 abc[42]: hello\n"
        );
        assert_eq!(
            f(SyslogFormat::Rfc3164),
            "<30>Mar  5 07:08:09 host abc[42]: hello\n"
        );
        assert_eq!(
            f(SyslogFormat::Rfc5424),
            "<30>1 2026-03-05T07:08:09Z host abc 42 abc - hello\n"
        );
        assert_eq!(
            f(SyslogFormat::Rfc5424micro),
            "<30>1 2026-03-05T07:08:09.123456Z host abc 42 abc - hello\n"
        );
    }

    #[test]
    fn a_tcp_server_that_does_not_read_loses_lines_but_never_stalls_the_shim() {
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap().to_string();
        let mut log =
            SyslogLog::open(SyslogAddress::Tcp(addr), 3, SyslogFormat::Unix, "t".into()).unwrap();
        let (mut conn, _) = server.accept().unwrap();
        let line = vec![b'x'; 1023];
        let t = Instant::now();
        // 200 MB: far more than the socket buffers hold.
        for _ in 0..200_000 {
            log.write(Stream::Stdout, &line).unwrap();
            log.write(Stream::Stdout, b"\n").unwrap();
        }
        assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
        drop(log);
        let mut got = Vec::new();
        use std::io::Read;
        conn.read_to_end(&mut got).unwrap();
        let total = 200_000 * 1024;
        assert!(
            !got.is_empty() && got.len() < total,
            "{} of {total}",
            got.len()
        );
    }

    #[test]
    fn lines_go_to_a_datagram_socket_with_their_severity() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log.sock");
        let server = UnixDatagram::bind(&p).unwrap();
        let mut log = SyslogLog::open(
            SyslogAddress::Unixgram(p.clone()),
            16, // local0
            SyslogFormat::Rfc5424,
            "t".into(),
        )
        .unwrap();
        log.write(Stream::Stdout, b"one\n\ntwo").unwrap();
        log.write(Stream::Stderr, b"bad\n").unwrap();
        log.flush_partial().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        for _ in 0..3 {
            let n = server.recv(&mut buf).unwrap();
            got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        // local0 = 16: 16 * 8 + 6 for stdout, + 3 for stderr; the empty line sends nothing.
        assert!(
            got[0].starts_with("<134>1 ") && got[0].ends_with(" t - one\n"),
            "{got:?}"
        );
        assert!(
            got[1].starts_with("<131>1 ") && got[1].ends_with(" t - bad\n"),
            "{got:?}"
        );
        assert!(got[2].ends_with(" t - two\n"), "{got:?}");
    }
}
