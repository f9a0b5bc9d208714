//! Request bodies: read whole before the handler runs when that is cheap or needed
//! (small declared bodies, routes that validate a pydantic body, handlers that cannot
//! see the body), otherwise left on the connection and read on demand, chunk by chunk,
//! by `request.stream()` / `request.body()`.
//!
//! A read that finds a chunk already buffered by Hyper returns it at once. Otherwise a
//! Tokio task waits for the next chunk and hands it to the awaiting Python code by
//! resolving an asyncio future: one loop wake-up per chunk. The body size limit is
//! counted as chunks arrive; past it the read raises the `HTTPException(413)` the
//! server would have answered with.
//!
//! Either way the body comes through [`TimedIncoming`]: a client that sends nothing
//! of its body for the body timeout (60 s by default, nginx's `client_body_timeout`)
//! gets `408` and loses the connection, instead of holding it and a buffer forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use data_bridge_pyloop::bridge::{LoopFuture, LoopHandle};
use data_bridge_pyloop::runtime;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::time::{Instant, Sleep};

use crate::body::BoxError;
use crate::errors::ApiError;

/// Bodies declared this small (or smaller) are read before the handler runs: one
/// read, no loop round-trip per chunk.
pub const PREREAD_LIMIT: usize = 64 * 1024;

/// What the server reads a request body from: Hyper's `Incoming` on a connection, or
/// any body (`Full`, `Empty`, a stream) when the service is called without one.
pub trait IncomingBody:
    HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

impl<B> IncomingBody for B where
    B: HttpBody<Data = Bytes, Error: Into<BoxError>> + Send + Unpin + 'static
{
}

/// Why reading a request body stopped short.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    /// The connection failed or the body was malformed (usually a [`hyper::Error`]).
    #[error("{0}")]
    Read(BoxError),
    /// Nothing arrived for the body timeout.
    #[error("the request body made no progress in time")]
    Stalled,
}

impl BodyReadError {
    /// The answer for a body that could not be read.
    pub fn into_api(self) -> ApiError {
        match self {
            BodyReadError::Read(e)
                if e.downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_incomplete_message) =>
            {
                ApiError::ClientDisconnected
            }
            BodyReadError::Read(e) => {
                ApiError::BadRequest(format!("cannot read the request body: {e}"))
            }
            BodyReadError::Stalled => ApiError::RequestTimeout,
        }
    }
}

/// A request body that fails with [`BodyReadError::Stalled`] once the client has
/// sent nothing of it for `limit`.
pub struct TimedIncoming<B> {
    inner: B,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<B> TimedIncoming<B> {
    /// `inner`, allowed `limit` between two frames.
    pub fn new(inner: B, limit: Duration) -> Self {
        TimedIncoming {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl<B> HttpBody for TimedIncoming<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BodyReadError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyReadError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let next = Instant::now() + self.limit;
                self.timer.as_mut().reset(next);
                Poll::Ready(frame.map(|f| f.map_err(|e| BodyReadError::Read(e.into()))))
            }
            Poll::Pending => match self.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyReadError::Stalled))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request's body as the handler gets it.
pub enum RequestBody {
    /// Read whole before the handler ran.
    Buffered(Bytes),
    /// Still on the connection.
    Streamed(Arc<Mutex<Read>>),
}

/// Where the reading of a streamed body stands.
pub enum Read {
    /// Ready for the next read.
    Idle(Box<Wire>),
    /// A read is under way in a Tokio task.
    Busy,
    /// The whole body was read.
    Done,
    /// Reading failed; every later read raises the same error.
    Failed(ApiError),
}

/// A body still on the connection, whatever carries it.
type Incoming = UnsyncBoxBody<Bytes, BoxError>;

/// The body still on the connection, and how much of the limit it used.
pub struct Wire {
    incoming: TimedIncoming<Incoming>,
    received: usize,
    limit: usize,
    /// A chunk read for a caller that stopped waiting (cancelled): the next read gets it.
    ready: Option<Bytes>,
}

type Outcome = Result<Option<Bytes>, ApiError>;

impl Wire {
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        if let Some(chunk) = self.ready.take() {
            return Poll::Ready(Ok(Some(chunk)));
        }
        loop {
            let frame = match Pin::new(&mut self.incoming).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(None)),
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e.into_api())),
                Poll::Ready(Some(Ok(frame))) => frame,
            };
            // Trailers carry no body bytes.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if data.is_empty() {
                continue;
            }
            self.received = self.received.saturating_add(data.len());
            if self.received > self.limit {
                return Poll::Ready(Err(ApiError::PayloadTooLarge));
            }
            return Poll::Ready(Ok(Some(data)));
        }
    }

    async fn next_chunk(&mut self) -> Outcome {
        std::future::poll_fn(|cx| self.poll_chunk(cx)).await
    }

    async fn rest(&mut self) -> Outcome {
        let mut chunks = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            chunks.push(chunk);
        }
        Ok(match chunks.len() {
            0 => None,
            1 => chunks.pop(),
            _ => {
                let mut all = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
                for chunk in chunks {
                    all.extend_from_slice(&chunk);
                }
                Some(all.freeze())
            }
        })
    }
}

impl RequestBody {
    /// No body (a `GET`, a WebSocket handshake).
    pub fn empty() -> Self {
        RequestBody::Buffered(Bytes::new())
    }

    /// A body left on the connection, to be read within `limit` bytes, each frame
    /// within `timeout` of the one before.
    pub fn streamed<B: IncomingBody>(body: B, timeout: Duration, limit: usize) -> Self {
        let incoming = TimedIncoming::new(body.map_err(Into::into).boxed_unsync(), timeout);
        RequestBody::Streamed(Arc::new(Mutex::new(Read::Idle(Box::new(Wire {
            incoming,
            received: 0,
            limit,
            ready: None,
        })))))
    }

    /// The body if it was read before the handler ran.
    pub fn buffered(&self) -> Option<&Bytes> {
        match self {
            RequestBody::Buffered(bytes) => Some(bytes),
            RequestBody::Streamed(_) => None,
        }
    }

    /// The next chunk (`b""` at the end) as `bytes` if it is already here, else as a
    /// future resolved when it arrives.
    pub fn read_chunk(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let RequestBody::Streamed(slot) = self else {
            return Ok(PyBytes::new(py, b"").into_any().unbind());
        };
        let Some(mut wire) = take_wire(py, slot)? else {
            return Ok(PyBytes::new(py, b"").into_any().unbind());
        };
        match wire.poll_chunk(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(outcome) => settle(py, slot, wire, outcome).map(Bound::unbind),
            Poll::Pending => spawn_read(py, slot, wire, |mut wire| async move {
                let outcome = wire.next_chunk().await;
                (wire, outcome)
            }),
        }
    }

    /// The rest of the body as a future of `bytes`, read in Rust and delivered at once.
    pub fn read_rest(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let slot = match self {
            RequestBody::Buffered(bytes) => {
                return Ok(PyBytes::new(py, bytes).into_any().unbind());
            }
            RequestBody::Streamed(slot) => slot,
        };
        let Some(wire) = take_wire(py, slot)? else {
            return Ok(PyBytes::new(py, b"").into_any().unbind());
        };
        spawn_read(py, slot, wire, |mut wire| async move {
            let outcome = wire.rest().await;
            (wire, outcome)
        })
    }
}

/// Takes the wire out for a read: `None` once the body is fully read.
fn take_wire(py: Python<'_>, slot: &Mutex<Read>) -> PyResult<Option<Box<Wire>>> {
    let mut read = slot.lock();
    match std::mem::replace(&mut *read, Read::Busy) {
        Read::Idle(wire) => Ok(Some(wire)),
        Read::Busy => Err(PyRuntimeError::new_err(
            "the request body is already being read",
        )),
        Read::Done => {
            *read = Read::Done;
            Ok(None)
        }
        Read::Failed(err) => {
            let raised = err.to_http_exception(py);
            *read = Read::Failed(err);
            Err(raised)
        }
    }
}

/// Puts the wire back after a read and turns its outcome into Python's answer.
fn settle<'py>(
    py: Python<'py>,
    slot: &Mutex<Read>,
    wire: Box<Wire>,
    outcome: Outcome,
) -> PyResult<Bound<'py, PyAny>> {
    let mut read = slot.lock();
    match outcome {
        Ok(Some(chunk)) => {
            *read = Read::Idle(wire);
            drop(read);
            Ok(PyBytes::new(py, &chunk).into_any())
        }
        Ok(None) => {
            *read = Read::Done;
            drop(read);
            Ok(PyBytes::new(py, b"").into_any())
        }
        Err(err) => {
            let raised = err.to_http_exception(py);
            *read = Read::Failed(err);
            Err(raised)
        }
    }
}

/// Runs `read` on the wire in a Tokio task and resolves a future with its outcome.
fn spawn_read<F, Fut>(
    py: Python<'_>,
    slot: &Arc<Mutex<Read>>,
    wire: Box<Wire>,
    read: F,
) -> PyResult<Py<PyAny>>
where
    F: FnOnce(Box<Wire>) -> Fut,
    Fut: std::future::Future<Output = (Box<Wire>, Outcome)> + Send + 'static,
{
    let created = LoopHandle::running(py).and_then(|lp| lp.create_future(py));
    let (future, done) = match created {
        Ok(v) => v,
        Err(err) => {
            *slot.lock() = Read::Idle(wire);
            return Err(err);
        }
    };
    let reading = read(wire);
    let slot = slot.clone();
    runtime::get().spawn(async move {
        let read = reading.await;
        deliver(done, slot, read);
    });
    Ok(future.unbind())
}

/// Hands a finished read to its awaiter, or keeps it for the next read if the
/// awaiter was cancelled.
fn deliver(done: LoopFuture, slot: Arc<Mutex<Read>>, read: (Box<Wire>, Outcome)) {
    let kept = slot.clone();
    done.settle(
        read,
        move |py, (wire, outcome)| settle(py, &slot, wire, outcome).map(Bound::unbind),
        move |_, (mut wire, outcome)| {
            *kept.lock() = match outcome {
                Ok(Some(chunk)) => {
                    wire.ready = Some(chunk);
                    Read::Idle(wire)
                }
                Ok(None) => Read::Done,
                Err(err) => Read::Failed(err),
            };
        },
    );
}

/// A body whose client never sends a byte (for tests of the body timeout).
#[cfg(test)]
pub(crate) struct Silent;

#[cfg(test)]
impl HttpBody for Silent {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::stream;
    use http::HeaderMap;
    use http_body_util::StreamBody;

    use super::*;

    fn frames(chunks: &[&'static [u8]]) -> impl IncomingBody {
        let mut frames: Vec<Result<Frame<Bytes>, Infallible>> = Vec::new();
        for chunk in chunks {
            frames.push(Ok(Frame::data(Bytes::from_static(chunk))));
        }
        frames.push(Ok(Frame::trailers(HeaderMap::new())));
        StreamBody::new(stream::iter(frames))
    }

    /// The wire of a streamed body, taken out as a read would.
    fn wire(body: &RequestBody) -> Option<Box<Wire>> {
        let RequestBody::Streamed(slot) = body else {
            return None;
        };
        match std::mem::replace(&mut *slot.lock(), Read::Busy) {
            Read::Idle(wire) => Some(wire),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_streamed_body_is_read_chunk_by_chunk_or_whole() {
        let body = RequestBody::streamed(frames(&[b"ab", b"", b"cd"]), Duration::from_secs(5), 100);
        assert!(body.buffered().is_none());
        let Some(mut w) = wire(&body) else {
            panic!("a streamed body starts idle");
        };
        assert!(matches!(w.next_chunk().await, Ok(Some(c)) if c == "ab"));
        // Empty frames and trailers carry nothing.
        assert!(matches!(w.rest().await, Ok(Some(c)) if c == "cd"));
        assert!(matches!(w.next_chunk().await, Ok(None)));

        let body =
            RequestBody::streamed(frames(&[b"ab", b"cd", b"ef"]), Duration::from_secs(5), 100);
        let Some(mut w) = wire(&body) else {
            panic!("a streamed body starts idle");
        };
        assert!(matches!(w.rest().await, Ok(Some(c)) if c == "abcdef"));
    }

    #[tokio::test]
    async fn a_streamed_body_past_its_limit_fails_with_413() {
        let body = RequestBody::streamed(frames(&[b"1234", b"5678"]), Duration::from_secs(5), 6);
        let Some(mut w) = wire(&body) else {
            panic!("a streamed body starts idle");
        };
        assert!(matches!(w.next_chunk().await, Ok(Some(_))));
        assert!(matches!(
            w.next_chunk().await,
            Err(ApiError::PayloadTooLarge)
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_makes_no_progress_times_out() {
        let mut body = TimedIncoming::new(Silent, Duration::from_secs(60));
        let started = Instant::now();
        let frame = body.frame().await;
        assert!(matches!(frame, Some(Err(BodyReadError::Stalled))));
        assert!(started.elapsed() >= Duration::from_secs(60));
        assert!(matches!(
            BodyReadError::Stalled.into_api(),
            ApiError::RequestTimeout
        ));
    }

    #[test]
    fn a_body_that_cannot_be_read_is_a_bad_request() {
        let err = BodyReadError::Read("broken chunk".into());
        assert!(matches!(err.into_api(), ApiError::BadRequest(m) if m.contains("broken chunk")));
    }

    #[test]
    fn a_buffered_body_is_at_hand() {
        let body = RequestBody::Buffered(Bytes::from_static(b"{}"));
        assert_eq!(body.buffered().map(|b| b.as_ref()), Some(&b"{}"[..]));
        assert_eq!(RequestBody::empty().buffered().map(Bytes::len), Some(0));
    }
}
