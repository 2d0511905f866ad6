//! Response bodies (JSON, text, streams) and the bridges between hyper's async bodies and the engine's
//! blocking readers and writers.

use std::collections::VecDeque;
use std::io::{self, Read, Write};

use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, BodyStream, Full, StreamBody};
use hyper::body::Frame;

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

/// How many body bytes the connection task gathers before it hands them to the blocking reader.
/// A frame is one socket read or one chunk of the client's (32 KiB from the docker CLI), and waking
/// the reading thread for each cost a `load` about a fifth of its CPU time on a 2-core machine
/// (futex and epoll wake-ups on both sides); a MiB at a time makes that negligible. Every caller
/// reads its stream to the end (an archive, a build context), so holding a MiB back delays nothing
/// it could act on earlier.
const BATCH_BYTES: usize = 1 << 20;

/// A blocking reader over a request body, for engine operations that consume a stream (load, import).
/// Must be read from a blocking thread: it waits for the connection task to deliver chunks.
pub fn blocking_reader<B>(body: B) -> impl Read + Send + 'static
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let (tx, rx) = mpsc::channel::<io::Result<VecDeque<Bytes>>>(4);
    tokio::spawn(async move {
        let mut frames = std::pin::pin!(BodyStream::new(body));
        let mut batch = VecDeque::new();
        let mut size = 0;
        while let Some(frame) = frames.next().await {
            let data = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => d,
                    Err(_) => continue,
                },
                Err(e) => {
                    // What came before the failure is still delivered, then the error.
                    if !batch.is_empty() && tx.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                        return;
                    }
                    let _ = tx.send(Err(io::Error::other(e))).await;
                    return;
                }
            };
            size += data.len();
            batch.push_back(data);
            if size >= BATCH_BYTES {
                size = 0;
                if tx.send(Ok(std::mem::take(&mut batch))).await.is_err() {
                    return;
                }
            }
        }
        if !batch.is_empty() {
            let _ = tx.send(Ok(batch)).await;
        }
    });
    ChannelReader {
        rx,
        batch: VecDeque::new(),
    }
}

struct ChannelReader {
    rx: mpsc::Receiver<io::Result<VecDeque<Bytes>>>,
    /// What is left of the last batch received.
    batch: VecDeque<Bytes>,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.batch.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.batch = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        // Fill `out` from as many of the batch's chunks as fit: fewer, bigger reads downstream
        // (a layer's files are written in pieces of what one read returns).
        let mut n = 0;
        while n < out.len() {
            let Some(front) = self.batch.front_mut() else {
                break;
            };
            let k = (out.len() - n).min(front.len());
            out[n..n + k].copy_from_slice(&front[..k]);
            bytes::Buf::advance(front, k);
            n += k;
            if front.is_empty() {
                self.batch.pop_front();
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body of these frames, then the error if given.
    fn body_of(
        frames: Vec<Bytes>,
        error: Option<&'static str>,
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, io::Error>>> {
        let items = frames
            .into_iter()
            .map(|b| Ok(Frame::data(b)))
            .chain(error.map(|e| Err(io::Error::other(e))));
        StreamBody::new(stream::iter(items.collect::<Vec<_>>()))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn blocking_reader_reads_across_frames_and_gives_the_error_after_the_data() {
        // Three frames the size of a socket read, then a small one, then a failure.
        let frames: Vec<Bytes> = (0..4u8)
            .map(|i| Bytes::from(vec![i; if i < 3 { 400 << 10 } else { 10 }]))
            .collect();
        let want: Vec<u8> = frames.iter().flat_map(|b| b.iter().copied()).collect();
        let mut r = blocking_reader(body_of(frames, Some("connection reset")));
        let (got, first, err) = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 2 << 20];
            let first = r.read(&mut buf).unwrap_or(0);
            let mut got = buf[..first].to_vec();
            loop {
                match r.read(&mut buf) {
                    Ok(0) => return (got, first, None),
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => return (got, first, Some(e.to_string())),
                }
            }
        })
        .await
        .unwrap_or_else(|e| panic!("reader thread: {e}"));
        // One read takes in a whole batch (the three frames that reached 1 MiB), not one frame.
        assert_eq!(
            first,
            3 * (400 << 10),
            "a read returns what the batch holds"
        );
        assert_eq!(got, want);
        assert_eq!(err.as_deref(), Some("connection reset"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn blocking_reader_hands_over_a_mib_at_a_time_and_ends_cleanly() {
        // 40 frames of 64 KiB: the reader's reads come in batches of at least 1 MiB.
        let frames: Vec<Bytes> = (0..40u8).map(|i| Bytes::from(vec![i; 64 << 10])).collect();
        let want: Vec<u8> = frames.iter().flat_map(|b| b.iter().copied()).collect();
        let mut r = blocking_reader(body_of(frames, None));
        let (got, reads) = tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; 4 << 20];
            let (mut got, mut reads) = (Vec::new(), Vec::new());
            loop {
                match r.read(&mut buf) {
                    Ok(0) => return (got, reads),
                    Ok(n) => {
                        reads.push(n);
                        got.extend_from_slice(&buf[..n]);
                    }
                    Err(e) => panic!("read: {e}"),
                }
            }
        })
        .await
        .unwrap_or_else(|e| panic!("reader thread: {e}"));
        assert_eq!(got, want);
        assert_eq!(reads, vec![1 << 20, 1 << 20, 512 << 10], "reads: {reads:?}");
    }
}
