//! Response bodies (JSON, text, streams) and the bridges between hyper's async bodies and the engine's
//! blocking readers and writers.

use std::io::{self, Read, Write};

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, BodyStream, Full, StreamBody};
use hyper::body::Frame;

use crate::request::ReqBody;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::error::ApiError;

/// Every response body the server sends.
pub type Body = BoxBody<Bytes, io::Error>;

/// Size of the chunks streamed between blocking work and the connection.
const CHUNK: usize = 1 << 20;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// A 200 response with a JSON body.
pub fn json<T: Serialize + ?Sized>(value: &T) -> Response<Body> {
    json_status(StatusCode::OK, value)
}

/// A 200 with a JSON value written as it is ordered: for values already put in dockerd's order (through
/// [`crate::json::Sorted`] and then shaped), which [`json`] would sort again as a map.
pub fn json_value(value: &serde_json::Value) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut v) => {
            v.push(b'\n');
            with_type(StatusCode::OK, "application/json", full(v))
        }
        Err(e) => error_response(&ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding response: {e}"),
        )),
    }
}

/// A response with a JSON body and the given status.
pub fn json_status<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match crate::json::to_vec(value) {
        Ok(mut v) => {
            v.push(b'\n');
            with_type(status, "application/json", full(v))
        }
        Err(e) => error_response(&ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("encoding response: {e}"),
        )),
    }
}

/// A response with the given status, content type and body.
pub fn with_type(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// An empty response (204 and the like).
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(full(Bytes::new()));
    *r.status_mut() = status;
    r
}

/// Docker's error body: `{"message": "…"}`.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let body = serde_json::json!({ "message": e.message });
    let mut v = serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec());
    v.push(b'\n');
    with_type(e.status, "application/json", full(v))
}

/// Sending half of a streamed body; chunks go to the client as they are sent.
#[derive(Clone)]
pub struct StreamSender(mpsc::Sender<io::Result<Bytes>>);

/// Creates a streamed body and the sender that feeds it.
pub fn channel() -> (StreamSender, Body) {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(8);
    let s = stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = BodyExt::boxed(StreamBody::new(s.map_ok(Frame::data)));
    (StreamSender(tx), body)
}

impl StreamSender {
    /// Sends a chunk from async code; false once the client has gone.
    pub async fn send(&self, bytes: Bytes) -> bool {
        self.0.send(Ok(bytes)).await.is_ok()
    }

    /// Completes when the client has gone away.
    pub async fn closed(&self) {
        self.0.closed().await
    }

    /// Sends a chunk from a blocking thread; false once the client has gone.
    pub fn blocking_send(&self, bytes: Bytes) -> bool {
        self.0.blocking_send(Ok(bytes)).is_ok()
    }

    /// Ends the stream with an error, which aborts the response mid-body.
    pub fn blocking_fail(&self, e: io::Error) {
        // A client that has gone reads no error either.
        let _ = self.0.blocking_send(Err(e));
    }
}

/// A blocking writer that streams into a response body in large chunks.
pub struct ChannelWriter {
    sender: StreamSender,
    buf: Vec<u8>,
}

impl ChannelWriter {
    /// Wraps a sender.
    pub fn new(sender: StreamSender) -> ChannelWriter {
        ChannelWriter {
            sender,
            buf: Vec::with_capacity(CHUNK),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.len() >= CHUNK && self.buf.is_empty() {
            self.send(Bytes::copy_from_slice(data))?;
            return Ok(data.len());
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.send(Bytes::from(chunk))
    }
}

impl ChannelWriter {
    fn send(&self, b: Bytes) -> io::Result<()> {
        if self.sender.blocking_send(b) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client closed the connection",
            ))
        }
    }
}

/// A blocking reader over a request body, for engine operations that consume a stream (load, import,
/// build contexts). Must be read from a blocking thread: it waits for the connection task to deliver
/// chunks (through [`engine::chunks`], which wakes it only for a good run of them).
pub fn blocking_reader(body: ReqBody) -> impl Read + Send + 'static {
    reader_of(body)
}

fn reader_of<B>(body: B) -> engine::chunks::ChunkReader
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (producer, reader) = engine::chunks::pipe();
    tokio::spawn(async move {
        let mut frames = BodyStream::new(body);
        loop {
            // Converted first, so that no `B::Error` (not `Send`) is held across the push's await.
            let item = match frames.next().await {
                Some(Ok(f)) => match f.into_data() {
                    Ok(d) => Ok(d),
                    Err(_) => continue,
                },
                Some(Err(e)) => Err(io::Error::other(e)),
                None => {
                    producer.finish(Ok(()));
                    return;
                }
            };
            match item {
                Ok(d) => {
                    if !producer.push(d).await {
                        return;
                    }
                }
                Err(e) => {
                    producer.finish(Err(e));
                    return;
                }
            }
        }
    });
    reader
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::chunks::WAKE_AT;

    /// A body of `chunks`, then `fail` as its error if given, from a runtime like the server's.
    fn body_of(
        chunks: Vec<Bytes>,
        fail: Option<&'static str>,
    ) -> impl hyper::body::Body<Data = Bytes, Error = io::Error> + Send + Unpin + 'static {
        let items = chunks
            .into_iter()
            .map(|c| Ok(Frame::data(c)))
            .chain(fail.map(|m| Err(io::Error::other(m))));
        StreamBody::new(stream::iter(items))
    }

    fn read_all(r: &mut impl Read) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 7000];
        loop {
            match r.read(&mut buf)? {
                0 => return Ok(out),
                n => out.extend_from_slice(&buf[..n]),
            }
        }
    }

    /// A body's data frames reach the blocking reader whole and in order, then its end; a body's error
    /// comes after the bytes before it. (The pipe's own limits are tested in `engine::chunks`.)
    #[test]
    fn the_blocking_reader_gives_every_byte_in_order_then_the_end_or_the_error() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let pattern = |n: usize| -> Vec<u8> { (0..n).map(|i| (i * 7 % 251) as u8).collect() };
        let data = pattern(WAKE_AT * 3 + 12345);
        let chunks: Vec<Bytes> = data.chunks(32 << 10).map(Bytes::copy_from_slice).collect();
        let mut reader = rt.block_on(async { reader_of(body_of(chunks, None)) });
        let got = rt
            .block_on(async { tokio::task::spawn_blocking(move || read_all(&mut reader)).await })
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(got == data);
        let data = pattern(100_000);
        let chunks = vec![Bytes::copy_from_slice(&data)];
        let mut reader = rt.block_on(async { reader_of(body_of(chunks, Some("cut off"))) });
        let (got, err) = rt
            .block_on(async {
                tokio::task::spawn_blocking(move || {
                    let mut got = vec![0u8; data.len()];
                    let read = reader.read_exact(&mut got);
                    (read.map(|()| got), read_all(&mut reader).map(|_| ()))
                })
                .await
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(got.is_ok_and(|g| g == pattern(100_000)));
        assert!(err.is_err_and(|e| e.to_string().contains("cut off")));
    }
}
