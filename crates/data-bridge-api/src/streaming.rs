//! Streamed responses (`StreamingResponse`): the Python iterator produces chunks into a
//! small bounded queue, and Hyper takes them out as fast as the connection accepts
//! data (chunked framing on HTTP/1.1, DATA frames within flow control on HTTP/2).
//!
//! ```text
//!  producer: PyLoop task (async iterator)           connection task (Hyper)
//!            or blocking-pool thread (sync one)
//!  BodyWriter.send(chunk) ──▶ queue (≤ CAPACITY) ──▶ StreamBody::poll_frame
//!    queue full: await a future  ◀── resolved with one loop wake-up when a chunk
//!    (or wait on a condvar, GIL      is taken (the condvar is notified)
//!     released)
//! ```
//!
//! Nothing polls or sleeps: a producer that filled the queue awaits an asyncio future
//! that the body resolves (through the loop bridge, one wake-up) when it takes a chunk, and a producer
//! that is slower than the client never waits at all. If the body is dropped before
//! its end (the client went away), the producing task is cancelled so the async
//! generator's `finally` runs at once; a sync iterator finds out on its next `send`
//! and is closed.
//!
//! The route timeout covers the handler (producing the status and headers), not the
//! stream: a long download or an event stream is not cut off by it.
//!
//! A sync producer holds a blocking-pool thread for as long as it streams, so at most
//! `sync_threads` of them run at once (apart from the `def` handlers' own threads);
//! the others wait for a thread without one, counted as work in flight, and are let
//! go if their client leaves first.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use data_bridge_pyloop::bridge::{LoopFuture, LoopHandle};
use data_bridge_pyloop::runtime;
use hyper::body::Frame;
use parking_lot::{Condvar, Mutex};
use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tokio::sync::{Notify, Semaphore};

use crate::body::{Body, Frames, PollFrame};
use crate::errors::ApiError;
use crate::hooks;
use crate::in_flight::InFlight;

/// Chunks queued between the producer and the connection. Two lets a producer that is
/// slower than the client hand over every chunk without waiting (no future, no
/// wake-up), while a faster one stays at most two chunks ahead of Hyper.
const CAPACITY: usize = 2;

/// The loop that runs a server's Python handlers, the way to wake it, and the bounds
/// on the Python work queued for it.
pub struct LoopRef {
    /// The `data_bridge.pyloop.Loop`, and the way to hand it work.
    pub handle: LoopHandle,
    /// Python work in flight, bounded by `max_pending`.
    pub work: Arc<InFlight>,
    /// Threads that sync streaming producers may hold at once.
    pub stream_threads: Arc<Semaphore>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    Finished,
    Failed,
    /// Failed, and Hyper was given a turn to flush the chunks it already took.
    Failing,
    /// The failure was handed to Hyper; nothing more follows.
    Reported,
}

struct State {
    queue: VecDeque<Bytes>,
    end: End,
    client_gone: bool,
    reader: Option<Waker>,
    /// The future an async producer awaits while the queue is full.
    waiter: Option<LoopFuture>,
    /// The task running an async producer, cancelled if the client goes away.
    task: Option<Py<PyAny>>,
    /// Set once an async producer started: its loop.
    lp: Option<LoopHandle>,
}

struct Channel {
    state: Mutex<State>,
    space: Condvar,
    /// Notified once the body is dropped, for a sync producer still waiting for a
    /// thread.
    gone: Notify,
}

impl Channel {
    fn new() -> Self {
        Channel {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(CAPACITY),
                end: End::Open,
                client_gone: false,
                reader: None,
                waiter: None,
                task: None,
                lp: None,
            }),
            space: Condvar::new(),
            gone: Notify::new(),
        }
    }

    /// Resolves once the body has been dropped (the client went away).
    async fn client_gone(&self) {
        let gone = self.gone.notified();
        tokio::pin!(gone);
        gone.as_mut().enable();
        if self.state.lock().client_gone {
            return;
        }
        gone.await;
    }

    /// Queues `chunk`; says whether the queue is now full.
    fn push(&self, chunk: Bytes) -> Result<bool, ApiError> {
        let mut s = self.state.lock();
        if s.client_gone {
            return Err(ApiError::ClientDisconnected);
        }
        if s.end != End::Open {
            return Err(ApiError::State("the response stream has already ended"));
        }
        if chunk.is_empty() {
            // An empty chunk would end HTTP/1.1 chunked framing early.
            return Ok(false);
        }
        s.queue.push_back(chunk);
        let full = s.queue.len() >= CAPACITY;
        let reader = s.reader.take();
        drop(s);
        if let Some(w) = reader {
            w.wake();
        }
        Ok(full)
    }

    /// Ends the stream (after the queued chunks); hands back the producer's task so it
    /// is released with the GIL held.
    fn end(&self, how: End) -> Option<Py<PyAny>> {
        let mut s = self.state.lock();
        if s.end == End::Open {
            s.end = how;
        }
        let task = s.task.take();
        let reader = s.reader.take();
        drop(s);
        if let Some(w) = reader {
            w.wake();
        }
        task
    }
}

/// The response body Hyper polls: chunks from the queue, then the end (or an error,
/// which makes Hyper abort the connection or reset the HTTP/2 stream).
struct StreamBody {
    channel: Arc<Channel>,
}

impl Frames for StreamBody {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> PollFrame {
        let channel = &self.channel;
        let mut s = channel.state.lock();
        if let Some(chunk) = s.queue.pop_front() {
            if let Some(waiter) = s.waiter.take() {
                waiter.resolve_none();
            }
            drop(s);
            channel.space.notify_one();
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match s.end {
            End::Finished | End::Reported => Poll::Ready(None),
            End::Failed => {
                // An error makes Hyper drop its write buffer: let it flush the chunks
                // it already took, so the client gets all that was produced.
                s.end = End::Failing;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            End::Failing => {
                s.end = End::Reported;
                Poll::Ready(Some(Err("the streaming response failed".into())))
            }
            End::Open => {
                if !s.reader.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.reader = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let s = self.channel.state.lock();
        s.queue.is_empty() && matches!(s.end, End::Finished | End::Reported)
    }
}

impl Drop for StreamBody {
    fn drop(&mut self) {
        let mut s = self.channel.state.lock();
        s.client_gone = true;
        s.queue.clear();
        s.reader = None;
        // Only a producer that has not finished is cancelled.
        let task = if s.end == End::Open {
            s.task.take()
        } else {
            None
        };
        let waiter = s.waiter.take();
        let lp = s.lp.clone();
        drop(s);
        self.channel.space.notify_all();
        self.channel.gone.notify_waiters();
        if let Some(lp) = lp {
            if task.is_some() || waiter.is_some() {
                lp.call(move |py| {
                    if let Some(task) = task {
                        let _ = task.bind(py).call_method0(intern!(py, "cancel"));
                    }
                    drop(waiter);
                });
            }
        }
    }
}

/// What a `StreamingResponse` produces into (`data_bridge._native.BodyWriter`).
#[pyclass(module = "data_bridge._native", frozen)]
pub struct BodyWriter {
    channel: Arc<Channel>,
    /// The loop whose futures an async producer awaits; `None` for sync producers.
    lp: Option<LoopHandle>,
}

#[pymethods]
impl BodyWriter {
    /// Queues `chunk`. Returns `None` if the producer may go on at once, or a future
    /// to await first (the client has not taken the earlier chunks yet). Raises
    /// `ConnectionResetError` once the client has gone.
    fn send(&self, py: Python<'_>, chunk: &Bound<'_, PyBytes>) -> PyResult<Option<Py<PyAny>>> {
        if !self
            .channel
            .push(Bytes::copy_from_slice(chunk.as_bytes()))?
        {
            return Ok(None);
        }
        let lp = self
            .lp
            .as_ref()
            .ok_or_else(|| PyRuntimeError::new_err("a sync producer sends with send_blocking()"))?;
        // Made without the lock held: the connection may take a chunk meanwhile.
        let (future, waiter) = lp.create_future(py)?;
        let mut s = self.channel.state.lock();
        if s.client_gone {
            return Err(ApiError::ClientDisconnected.into());
        }
        if s.queue.len() < CAPACITY {
            return Ok(None);
        }
        s.waiter = Some(waiter);
        Ok(Some(future.unbind()))
    }

    /// Queues `chunk` and, if the queue is full, waits (without the GIL) until the
    /// client has taken a chunk. For producers running off the loop thread.
    fn send_blocking(&self, py: Python<'_>, chunk: &Bound<'_, PyBytes>) -> PyResult<()> {
        if !self
            .channel
            .push(Bytes::copy_from_slice(chunk.as_bytes()))?
        {
            return Ok(());
        }
        let channel = &self.channel;
        let gone = py.detach(|| {
            let mut s = channel.state.lock();
            while s.queue.len() >= CAPACITY && !s.client_gone {
                channel.space.wait(&mut s);
            }
            s.client_gone
        });
        if gone {
            return Err(ApiError::ClientDisconnected.into());
        }
        Ok(())
    }

    /// Ends the body after the queued chunks.
    fn close(&self) {
        drop(self.channel.end(End::Finished));
    }

    /// Ends the body with an error: the client sees an incomplete response (no
    /// terminating chunk on HTTP/1.1, a reset stream on HTTP/2).
    fn abort(&self) {
        drop(self.channel.end(End::Failed));
    }

    /// Whether the client has gone away.
    #[getter]
    fn client_gone(&self) -> bool {
        self.channel.state.lock().client_gone
    }
}

/// The Python side of a streamed response, started once its reply is on its way.
pub struct Producer {
    response: Py<PyAny>,
    is_async: bool,
    channel: Arc<Channel>,
}

/// The body and producer of a `StreamingResponse`, or `None` for other responses.
pub fn open(py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<Option<(Body, Producer)>> {
    let hooks = hooks::get(py)?;
    let Some(cls) = &hooks.streaming_response else {
        return Ok(None);
    };
    if !value.is_instance(cls.bind(py))? {
        return Ok(None);
    }
    let is_async = value.getattr(intern!(py, "_is_async"))?.is_truthy()?;
    let channel = Arc::new(Channel::new());
    let body = Body::stream(StreamBody {
        channel: channel.clone(),
    });
    let producer = Producer {
        response: value.clone().unbind(),
        is_async,
        channel,
    };
    Ok(Some((body, producer)))
}

impl Producer {
    /// Starts producing: an async iterator as a task on `lp` (created now if
    /// `on_loop`, else queued to the loop), a sync one on Tokio's blocking pool once
    /// one of `lp.stream_threads` is free.
    pub fn start(self, py: Python<'_>, lp: &Arc<LoopRef>, on_loop: bool) {
        if !self.is_async {
            let Producer {
                response, channel, ..
            } = self;
            // The response is already on its way: the producer is counted, not refused.
            let slot = lp.work.acquire();
            let threads = lp.stream_threads.clone();
            let handle = lp.handle.clone();
            runtime::get().spawn(async move {
                let permit = tokio::select! {
                    permit = threads.acquire_owned() => permit.ok(),
                    () = channel.client_gone() => None,
                };
                let Some(permit) = permit else {
                    // Released with the GIL held, on the loop.
                    handle.release(response);
                    return;
                };
                let writer = BodyWriter {
                    channel: channel.clone(),
                    lp: None,
                };
                runtime::get().spawn_blocking(move || {
                    let _slot = slot;
                    let _permit = permit;
                    Python::attach(move |py| {
                        let run = Py::new(py, writer).and_then(|w| {
                            response
                                .bind(py)
                                .call_method1(intern!(py, "_stream_sync"), (w,))
                        });
                        if let Err(err) = run {
                            fail(py, &channel, err);
                        }
                        drop(response);
                    })
                });
            });
            return;
        }
        if on_loop {
            self.spawn_task(py, lp);
        } else {
            let lp2 = lp.clone();
            lp.handle.call(move |py| self.spawn_task(py, &lp2));
        }
    }

    fn spawn_task(self, py: Python<'_>, lp: &Arc<LoopRef>) {
        {
            let mut s = self.channel.state.lock();
            if s.client_gone {
                return;
            }
            s.lp = Some(lp.handle.clone());
        }
        let writer = BodyWriter {
            channel: self.channel.clone(),
            lp: Some(lp.handle.clone()),
        };
        let task = Py::new(py, writer)
            .and_then(|w| {
                self.response
                    .bind(py)
                    .call_method1(intern!(py, "_stream_async"), (w,))
            })
            .and_then(|coro| {
                lp.handle
                    .event_loop()
                    .bind(py)
                    .call_method1(intern!(py, "create_task"), (coro,))
            });
        let task = match task {
            Ok(t) => t,
            Err(err) => return fail(py, &self.channel, err),
        };
        let mut s = self.channel.state.lock();
        if s.client_gone {
            // The body went away between the check above and now.
            drop(s);
            let _ = task.call_method0(intern!(py, "cancel"));
        } else if s.end == End::Open {
            s.task = Some(task.unbind());
        }
    }
}

/// A producer that could not even start: log why and end the body with an error.
fn fail(py: Python<'_>, channel: &Channel, err: PyErr) {
    if let Ok(hooks) = hooks::get(py) {
        let _ = hooks.report.bind(py).call1((err.value(py),));
    }
    drop(channel.end(End::Failed));
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[test]
    fn chunks_flow_in_order_then_the_body_ends() {
        let channel = Arc::new(Channel::new());
        let mut body = Body::stream(StreamBody {
            channel: channel.clone(),
        });
        assert!(!channel.push(Bytes::from_static(b"a")).unwrap_or(true));
        assert!(channel.push(Bytes::from_static(b"b")).unwrap_or(false));
        drop(channel.end(End::Finished));
        let collected = data_bridge_pyloop::runtime::block_on(async move {
            let mut out = Vec::new();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map(|f| f.into_data()) {
                    out.extend_from_slice(&data.unwrap_or_default());
                }
            }
            out
        });
        assert_eq!(collected, b"ab");
    }

    #[test]
    fn a_failed_stream_ends_with_an_error() {
        let channel = Arc::new(Channel::new());
        let mut body = Body::stream(StreamBody {
            channel: channel.clone(),
        });
        drop(channel.end(End::Failed));
        let errored = data_bridge_pyloop::runtime::block_on(async move {
            matches!(body.frame().await, Some(Err(_)))
        });
        assert!(errored);
    }

    #[test]
    fn a_dropped_body_refuses_more_chunks() {
        let channel = Arc::new(Channel::new());
        drop(StreamBody {
            channel: channel.clone(),
        });
        assert!(matches!(
            channel.push(Bytes::from_static(b"x")),
            Err(ApiError::ClientDisconnected)
        ));
    }
}
