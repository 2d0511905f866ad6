//! gRPC calls over the session's HTTP/2 connection: each message is framed with a flag byte and a 4-byte
//! big-endian length; the call's outcome is the `grpc-status` trailer (or header, for an answer that is
//! only an error).

use bytes::{Buf, Bytes, BytesMut};
use h2::client::SendRequest;

use crate::Error;

/// gRPC's `NOT_FOUND`.
pub(crate) const NOT_FOUND: u32 = 5;
/// gRPC's `UNIMPLEMENTED`.
pub(crate) const UNIMPLEMENTED: u32 = 12;

/// Messages larger than this are refused: no session message comes near it (file data comes in 32 KiB
/// packets), and a peer must not make the daemon allocate at will.
const MAX_MESSAGE: usize = 16 << 20;

/// One call under way: messages out, messages in.
pub(crate) struct Call {
    send: h2::SendStream<Bytes>,
    response: Option<h2::client::ResponseFuture>,
    recv: Option<h2::RecvStream>,
    buf: BytesMut,
    ended: bool,
    method: String,
}

fn transport(method: &str, e: impl std::fmt::Display) -> Error {
    Error::Transport(format!("{method}: {e}"))
}

/// `grpc-message` is percent-encoded.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The call's status from headers or trailers: `None` when they carry none.
fn status(method: &str, h: &http::HeaderMap) -> Option<Result<(), Error>> {
    let code: u32 = h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()?;
    if code == 0 {
        return Some(Ok(()));
    }
    let message = h
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(unescape)
        .unwrap_or_default();
    Some(Err(Error::Status {
        method: method.to_owned(),
        code,
        message,
    }))
}

impl Call {
    /// Starts a call of `method` (`/package.Service/Method`) with `metadata` as headers.
    pub(crate) async fn start(
        client: &SendRequest<Bytes>,
        method: &str,
        metadata: &[(&str, String)],
    ) -> Result<Call, Error> {
        let mut req = http::Request::builder()
            .method("POST")
            .uri(format!("http://berth{method}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (k, v) in metadata {
            req = req.header(*k, v.as_str());
        }
        let req = req.body(()).map_err(|e| transport(method, e))?;
        let mut client = client
            .clone()
            .ready()
            .await
            .map_err(|e| transport(method, e))?;
        let (response, send) = client
            .send_request(req, false)
            .map_err(|e| transport(method, e))?;
        Ok(Call {
            send,
            response: Some(response),
            recv: None,
            buf: BytesMut::new(),
            ended: false,
            method: method.to_owned(),
        })
    }

    /// Sends one message (`last`: and ends the request).
    pub(crate) fn send(&mut self, msg: &[u8], last: bool) -> Result<(), Error> {
        let mut framed = Vec::with_capacity(5 + msg.len());
        framed.push(0);
        framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        framed.extend_from_slice(msg);
        self.send
            .send_data(Bytes::from(framed), last)
            .map_err(|e| transport(&self.method, e))
    }

    /// The next message, `None` once the answer ended well; an error status is an error.
    pub(crate) async fn recv(&mut self) -> Result<Option<Bytes>, Error> {
        if self.recv.is_none() {
            let Some(response) = self.response.take() else {
                return Ok(None);
            };
            let resp = response.await.map_err(|e| transport(&self.method, e))?;
            if resp.status() != http::StatusCode::OK {
                return Err(transport(
                    &self.method,
                    format!("the client answered HTTP {}", resp.status()),
                ));
            }
            // An answer that is only a status (trailers-only) carries it in its headers.
            if let Some(st) = status(&self.method, resp.headers()) {
                self.ended = true;
                st?;
            }
            self.recv = Some(resp.into_body());
        }
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf[0] != 0 {
                    return Err(transport(
                        &self.method,
                        "compressed message (none was asked for)",
                    ));
                }
                if len > MAX_MESSAGE {
                    return Err(transport(&self.method, format!("message of {len} bytes")));
                }
                if self.buf.len() >= 5 + len {
                    self.buf.advance(5);
                    return Ok(Some(self.buf.split_to(len).freeze()));
                }
            }
            if self.ended {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(transport(&self.method, "the answer ended inside a message"))
                };
            }
            let Some(body) = self.recv.as_mut() else {
                return Ok(None);
            };
            match body.data().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(|e| transport(&self.method, e))?;
                    let _ = body.flow_control().release_capacity(chunk.len());
                    if self.buf.is_empty() && chunk.len() >= 5 {
                        // The common case, one message in one frame, needs no copy.
                        let len =
                            u32::from_be_bytes([chunk[1], chunk[2], chunk[3], chunk[4]]) as usize;
                        if chunk[0] == 0 && chunk.len() == 5 + len {
                            return Ok(Some(chunk.slice(5..)));
                        }
                    }
                    self.buf.extend_from_slice(&chunk);
                }
                None => {
                    self.ended = true;
                    let trailers = body
                        .trailers()
                        .await
                        .map_err(|e| transport(&self.method, e))?;
                    match trailers.as_ref().and_then(|t| status(&self.method, t)) {
                        Some(st) => st?,
                        None => {
                            return Err(transport(&self.method, "the answer ended with no status"))
                        }
                    }
                }
            }
        }
    }
}

/// A call with one message each way.
pub(crate) async fn unary(
    client: &SendRequest<Bytes>,
    method: &str,
    msg: &[u8],
) -> Result<Bytes, Error> {
    let mut call = Call::start(client, method, &[]).await?;
    call.send(msg, true)?;
    let answer = call.recv().await?;
    // Read to the end for the status.
    while call.recv().await?.is_some() {}
    answer.ok_or_else(|| transport(method, "no answer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(unescape("secret%20x%3A not found"), "secret x: not found");
        assert_eq!(unescape("100%"), "100%");
        assert_eq!(unescape("%zz"), "%zz");
    }
}
