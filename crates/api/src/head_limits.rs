//! Bounds on a request's head (request line and headers), answered with Docker's `{"message": …}` bodies.
//!
//! hyper enforces the bounds while parsing, before any service sees the request, and answers a request beyond
//! them itself (431, or 414 for a URI over its 64 KiB, or 400 for a malformed head) with an empty body and
//! closes the connection. hyper has no hook for that answer, so the connection's IO is wrapped: the one write
//! that is exactly such an automatic answer (a status line of 400, 414 or 431 with `content-length: 0` and
//! nothing after the head) is replaced by the same status with a JSON body. The router never answers these
//! statuses with an empty body, and a response body is never written together with its head in a way that
//! would look like one, so nothing else can match.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Request line and headers together, at most (dockerd, through Go's net/http, allows 1 MiB; Docker's
/// clients send a few KiB, the largest being `X-Registry-Config` with every registry's credentials).
pub const MAX_HEAD_BYTES: usize = 256 * 1024;
/// Header fields, at most: hyper's default, left as is (setting it moves hyper's header table from the stack
/// to a heap allocation per request) and named here for the message.
pub const MAX_HEADERS: usize = 100;

/// The body for hyper's automatic answer with `status`, if it is one this module replaces.
fn message(status: &[u8]) -> Option<(&'static str, String)> {
    match status {
        b"431" => Some((
            "431 Request Header Fields Too Large",
            format!(
                "request header fields too large: the request line and headers may take at most {} KiB, \
                 in at most {MAX_HEADERS} header fields",
                MAX_HEAD_BYTES / 1024
            ),
        )),
        b"414" => Some((
            "414 URI Too Long",
            "request URI too long: the URI may take at most 65534 bytes".to_owned(),
        )),
        b"400" => Some((
            "400 Bad Request",
            "bad request: the request line or a header is malformed".to_owned(),
        )),
        _ => None,
    }
}

/// The JSON replacement when `buf` is exactly one of hyper's automatic error answers.
fn replacement(buf: &[u8]) -> Option<Vec<u8>> {
    // hyper's answer is a status line, `content-length: 0` and `date`: well under 256 bytes.
    if buf.len() > 256 || !buf.starts_with(b"HTTP/1.1 ") || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?;
    if head.matches("\r\n\r\n").count() != 1
        || !head
            .split("\r\n")
            .any(|l| l.eq_ignore_ascii_case("content-length: 0"))
    {
        return None;
    }
    let (status, message) = message(buf.get(9..12)?)?;
    let body = serde_json::json!({ "message": message }).to_string() + "\n";
    tracing::debug!(status, "request refused before routing");
    Some(
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             api-version: {}\r\nconnection: close\r\n\r\n{body}",
            body.len(),
            engine::API_VERSION
        )
        .into_bytes(),
    )
}

/// A connection's IO whose hyper-made error answers carry JSON bodies.
pub struct JsonErrors<I> {
    inner: I,
    /// A replacement being written: its bytes, how many are written, and how many bytes of hyper's answer
    /// to report written once it is.
    replacing: Option<(Vec<u8>, usize, usize)>,
    /// False once the connection is hijacked (`101`): what follows is a container's bytes.
    armed: bool,
}

impl<I> JsonErrors<I> {
    /// Wraps a connection.
    pub fn new(inner: I) -> Self {
        JsonErrors {
            inner,
            replacing: None,
            armed: true,
        }
    }
}

impl<I: AsyncWrite + Unpin> JsonErrors<I> {
    /// Writes the replacement started for `claimed` bytes of hyper's answer; hyper calls again with the
    /// same buffer after `Pending`, which finds the replacement under way.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let Some((bytes, written, claimed)) = self.replacing.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while *written < bytes.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        let claimed = *claimed;
        self.replacing = None;
        Poll::Ready(Ok(claimed))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for JsonErrors<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonErrors<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.armed && buf.starts_with(b"HTTP/1.1 101 ") {
            self.armed = false;
        }
        if self.armed && self.replacing.is_none() {
            if let Some(r) = replacement(buf) {
                self.replacing = Some((r, 0, buf.len()));
            }
        }
        if self.replacing.is_some() {
            return self.poll_replacement(cx);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let mut nonempty = bufs.iter().filter(|b| !b.is_empty());
        let first = nonempty.next();
        if let Some(head) = first {
            if self.armed && head.starts_with(b"HTTP/1.1 101 ") {
                self.armed = false;
            }
        }
        if let (Some(only), None) = (first, nonempty.next()) {
            if self.replacing.is_some() || (self.armed && replacement(only).is_some()) {
                return self.poll_write(cx, only);
            }
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_hypers_bodiless_error_answers_are_replaced() {
        let auto = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: Mon, 07 Dec 2026 03:00:00 GMT\r\n\r\n";
        let r = String::from_utf8(replacement(auto).unwrap()).unwrap();
        assert!(r.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
        assert!(r.contains("content-type: application/json\r\n"));
        let body = r.split("\r\n\r\n").nth(1).unwrap();
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert!(v["message"].as_str().unwrap().contains("256 KiB"));
        assert!(
            replacement(b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: x\r\n\r\n")
                .is_some()
        );
        // Any other answer passes: another status, a body, a body in the same write.
        assert!(replacement(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(replacement(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n").is_none());
        assert!(replacement(
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 400 x\r\n\r\n"
        )
        .is_none());
        assert!(replacement(b"some log line HTTP/1.1 431\r\ncontent-length: 0\r\n\r\n").is_none());
    }
}
