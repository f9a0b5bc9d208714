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
use data_bridge_pyloop::wake::{Remote, Shared};
use data_bridge_pyloop::{runtime, LoopCore};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;
use tokio::time::{Instant, Sleep};

use crate::errors::ApiError;

/// Bodies declared this small (or smaller) are read before the handler runs: one
/// read, no loop round-trip per chunk.
pub const PREREAD_LIMIT: usize = 64 * 1024;

/// Why reading a request body stopped short.
#[derive(Debug, thiserror::Error)]
pub enum BodyReadError {
    /// The connection failed or the body was malformed.
    #[error(transparent)]
    Hyper(#[from] hyper::Error),
    /// Nothing arrived for the body timeout.
    #[error("the request body made no progress in time")]
    Stalled,
}

impl BodyReadError {
    /// The answer for a body that could not be read.
    pub fn into_api(self) -> ApiError {
        match self {
            BodyReadError::Hyper(e) if e.is_incomplete_message() => ApiError::ClientDisconnected,
            BodyReadError::Hyper(e) => {
                ApiError::BadRequest(format!("cannot read the request body: {e}"))
            }
            BodyReadError::Stalled => ApiError::RequestTimeout,
        }
    }
}

/// A request body that fails with [`BodyReadError::Stalled`] once the client has
/// sent nothing of it for `limit`.
pub struct TimedIncoming {
    inner: Incoming,
    limit: Duration,
    timer: Pin<Box<Sleep>>,
}

impl TimedIncoming {
    /// `inner`, allowed `limit` between two frames.
    pub fn new(inner: Incoming, limit: Duration) -> Self {
        TimedIncoming {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl hyper::body::Body for TimedIncoming {
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
                Poll::Ready(frame.map(|f| f.map_err(BodyReadError::from)))
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

/// The body still on the connection, and how much of the limit it used.
pub struct Wire {
    incoming: TimedIncoming,
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
    /// A body left on the connection, to be read within `limit` bytes.
    pub fn streamed(incoming: TimedIncoming, limit: usize) -> Self {
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

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A future on the running PyLoop loop, and how to wake that loop.
fn loop_future(py: Python<'_>) -> PyResult<(Py<PyAny>, Arc<Shared>)> {
    let lp = GET_RUNNING_LOOP
        .import(py, "asyncio", "get_running_loop")?
        .call0()?;
    let shared = lp
        .cast::<LoopCore>()
        .map_err(|_| PyRuntimeError::new_err("request bodies are streamed on a PyLoop loop"))?
        .get()
        .shared();
    let future = lp.call_method0(intern!(py, "create_future"))?;
    Ok((future.unbind(), shared))
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
    let (future, shared) = match loop_future(py) {
        Ok(v) => v,
        Err(err) => {
            *slot.lock() = Read::Idle(wire);
            return Err(err);
        }
    };
    let reading = read(wire);
    let slot = slot.clone();
    let waiting = future.clone_ref(py);
    runtime::get().spawn(async move {
        let (wire, outcome) = reading.await;
        shared.push_remote(Remote::Call(Box::new(move |py| {
            deliver(py, &slot, wire, outcome, waiting);
        })));
    });
    Ok(future)
}

fn deliver(
    py: Python<'_>,
    slot: &Mutex<Read>,
    mut wire: Box<Wire>,
    outcome: Outcome,
    future: Py<PyAny>,
) {
    let future = future.bind(py);
    let waiting = future
        .call_method0(intern!(py, "done"))
        .and_then(|d| d.is_truthy())
        .map(|done| !done)
        .unwrap_or(false);
    if !waiting {
        // The reader was cancelled: keep what was read for the next read.
        let mut read = slot.lock();
        *read = match outcome {
            Ok(Some(chunk)) => {
                wire.ready = Some(chunk);
                Read::Idle(wire)
            }
            Ok(None) => Read::Done,
            Err(err) => Read::Failed(err),
        };
        return;
    }
    let _ = match settle(py, slot, wire, outcome) {
        Ok(bytes) => future.call_method1(intern!(py, "set_result"), (bytes,)),
        Err(err) => future.call_method1(intern!(py, "set_exception"), (err.value(py),)),
    };
}
