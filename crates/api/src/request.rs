//! Request bodies. A handler may answer without reading the body it was sent (an error found before the
//! body matters, a route that takes none). hyper then closes the connection with the body's bytes
//! unread, and a client still writing them gets EPIPE or a reset instead of the answer. So every body is
//! handed to the handler wrapped: what the handler leaves unread comes back to the router, which reads
//! a bounded amount of it before the response goes out, as Go's server (and so dockerd) does.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use crate::error::{ApiError, ApiResult};

/// Most of an unread body the router reads before answering; a larger one is left to hyper, which
/// closes the connection.
const DRAIN_LIMIT: usize = 256 << 10;
/// Longest the router waits for an unread body's bytes.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Where an unfinished body goes back when its handler drops it.
#[derive(Clone, Default)]
pub struct Leftover(Arc<Mutex<Option<Incoming>>>);

impl Leftover {
    /// Wraps `body` so that dropping it unfinished returns it here.
    pub fn wrap(&self, body: Incoming) -> ReqBody {
        ReqBody {
            inner: Some(body),
            leftover: self.clone(),
        }
    }

    /// Reads and discards what the handler left, up to the limit and the wait.
    pub async fn drain(&self) {
        let Some(mut body) = self.0.lock().ok().and_then(|mut slot| slot.take()) else {
            return;
        };
        let read = async {
            let mut seen = 0usize;
            while seen <= DRAIN_LIMIT {
                match body.frame().await {
                    Some(Ok(frame)) => seen += frame.data_ref().map_or(0, Bytes::len),
                    Some(Err(_)) | None => break,
                }
            }
        };
        // Bounded on purpose: a client still sending after DRAIN_WAIT is left to its broken pipe.
        let _ = tokio::time::timeout(DRAIN_WAIT, read).await;
    }
}

/// The body every handler receives: hyper's body, returned to the router if dropped unfinished.
pub struct ReqBody {
    inner: Option<Incoming>,
    leftover: Leftover,
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint)
    }
}

impl Drop for ReqBody {
    fn drop(&mut self) {
        if let Some(body) = self.inner.take() {
            if !body.is_end_stream() {
                if let Ok(mut slot) = self.leftover.0.lock() {
                    *slot = Some(body);
                }
            }
        }
    }
}

/// The most a JSON request body may hold. The largest real ones (a create with a custom seccomp profile and
/// many variables) are a few hundred KiB; without a bound, one 100 MB body made the daemon allocate 10 GB.
pub const MAX_JSON_BODY: usize = 8 << 20;

/// The whole body of a request with a small body (JSON), refused with a 413 beyond [`MAX_JSON_BODY`].
pub async fn read_bytes(req: Request<ReqBody>) -> ApiResult<Bytes> {
    match http_body_util::Limited::new(req.into_body(), MAX_JSON_BODY)
        .collect()
        .await
    {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body too large: JSON bodies are limited to {} MiB",
                MAX_JSON_BODY >> 20
            ),
        )),
        Err(e) => Err(ApiError::bad_request(format!(
            "reading the request body: {e}"
        ))),
    }
}

/// A JSON body; an empty one reads as `T::default()`.
pub async fn read_json<T: serde::de::DeserializeOwned + Default>(
    req: Request<ReqBody>,
) -> ApiResult<T> {
    crate::decode::json_body(&read_bytes(req).await?)
}
