//! The native core of PyLoop's datagram transport (UDP and Unix datagram sockets).
//!
//! Python sees `data_bridge.pyloop.datagram.DatagramTransport`, whose methods are
//! bound to this core like the socket transport's. On readiness the core receives up
//! to [`BATCH`] datagrams (stopping at `EAGAIN`) and hands each to
//! `protocol.datagram_received(data, addr)`; `sendto` sends at once and queues only
//! what the socket refuses. Socket errors go to `protocol.error_received(exc)`, as in
//! asyncio. Like the stream transport's, these callbacks run in the transport's context.
//!
//! The core is split like the stream transport's: `read` (receiving), `write`
//! (sending and the queue), `close` (closing, errors and `connection_lost`),
//! `methods` (what Python calls) and `address` (socket addresses to and from Python).
//! This module holds the shared state and the readiness dispatch.

mod address;
mod close;
mod methods;
mod read;
mod write;

use std::collections::VecDeque;
use std::task::Context;

use parking_lot::Mutex;
use pyo3::prelude::*;
use socket2::SockAddr;
use tokio::io::unix::AsyncFd;

use crate::core::LoopCore;
use crate::transports::base::{in_context, is_fatal, Closing, Fd, Flow, Slot};

/// Datagrams received per readiness report before giving other sources a turn.
const BATCH: usize = 16;

struct Inner {
    io: Option<AsyncFd<Fd>>,
    lp: Py<LoopCore>,
    protocol: Option<Py<PyAny>>,
    /// The context protocol callbacks run in (see `in_context`), released with the
    /// protocol.
    context: Option<Py<PyAny>>,
    datagram_received: Option<Py<PyAny>>,
    transport: Option<Py<PyAny>>,
    sock: Option<Py<PyAny>>,
    /// The connected peer (`remote_addr`), which `sendto` must match if given.
    address: Option<Py<PyAny>>,
    queue: VecDeque<(Vec<u8>, Option<SockAddr>)>,
    queued: usize,
    /// The last destination converted from Python, reused while it repeats.
    last_dest: Option<(Py<PyAny>, SockAddr)>,
    /// The last source address converted to Python, reused while it repeats.
    last_source: Option<(SockAddr, Py<PyAny>)>,
    flow: Flow,
    conn_lost: u32,
}

impl Closing for Inner {
    fn lifecycle(&mut self) -> (&mut Flow, &mut u32, &Py<LoopCore>) {
        (&mut self.flow, &mut self.conn_lost, &self.lp)
    }

    fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    fn drop_queued(&mut self) {
        self.queue.clear();
        self.queued = 0;
    }
}

/// Native datagram transport core; see the module documentation.
#[pyclass(module = "data_bridge._native", frozen)]
pub struct DatagramTransport {
    inner: Mutex<Inner>,
    slot: Slot,
    /// `sendto` on a connected socket uses `send`.
    connected: bool,
    /// Python 3.12 started sending empty datagrams; 3.11 silently drops them.
    send_empty: bool,
}

/// What to call once the lock is released.
enum Event {
    Datagram(Py<PyAny>, Py<PyAny>),
    Error(std::io::Error),
}

impl DatagramTransport {
    fn protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.inner.lock().protocol.as_ref().map(|p| p.clone_ref(py))
    }

    /// Called by the loop when Tokio reported the socket ready (or on a recheck).
    pub(crate) fn on_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let context = slf
            .get()
            .inner
            .lock()
            .context
            .as_ref()
            .map(|c| c.clone_ref(py));
        in_context(py, context.as_ref(), || DatagramTransport::dispatch(slf))
    }

    /// Flushes queued datagrams, then receives a batch, calling the protocol.
    fn dispatch(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (flush_err, resume, lost) = {
            let mut inner = this.inner.lock();
            if inner.queue.is_empty() {
                (None, false, false)
            } else {
                let err = this.flush(&mut inner).err();
                let queued = inner.queued;
                let resume = inner.flow.should_resume(queued);
                let lost = inner.queue.is_empty() && inner.flow.closing && inner.conn_lost == 0;
                if lost {
                    inner.conn_lost += 1;
                }
                (err, resume, lost)
            }
        };
        if let Some(e) = flush_err {
            DatagramTransport::error_received(slf, &e)?;
        }
        if resume {
            if let Some(p) = this.protocol(py) {
                if let Err(e) = p.bind(py).call_method0("resume_writing") {
                    if is_fatal(py, &e) {
                        return Err(e);
                    }
                }
            }
        }
        if lost {
            DatagramTransport::call_connection_lost(slf, py.None())?;
            return Ok(());
        }
        let mut more = true;
        for _ in 0..BATCH {
            match this.recv_one(py) {
                None => {
                    more = false;
                    break;
                }
                Some(Event::Error(e)) => DatagramTransport::error_received(slf, &e)?,
                Some(Event::Datagram(data, addr)) => {
                    let cached = this
                        .inner
                        .lock()
                        .datagram_received
                        .as_ref()
                        .map(|c| c.clone_ref(py));
                    let cb = match cached {
                        Some(cb) => Ok(cb.into_bound(py)),
                        None => match this.protocol(py) {
                            Some(p) => p.into_bound(py).getattr("datagram_received"),
                            None => continue,
                        },
                    };
                    {
                        match cb.and_then(|cb| cb.call1((data, addr))) {
                            Ok(_) => {}
                            Err(e) if is_fatal(py, &e) => return Err(e),
                            Err(e) => {
                                return DatagramTransport::fatal_error(
                                    slf,
                                    e,
                                    "Fatal error: protocol.datagram_received() call failed.",
                                )
                            }
                        }
                    }
                }
            }
        }
        let inner = this.inner.lock();
        if let Some(io) = inner.io.as_ref() {
            let mut cx = Context::from_waker(&this.slot.waker);
            let reading = inner.flow.reading_started && inner.flow.is_reading();
            let again = (reading && (more || io.poll_read_ready(&mut cx).is_ready()))
                || (!inner.queue.is_empty() && io.poll_write_ready(&mut cx).is_ready());
            if again {
                this.slot.recheck(inner.lp.get());
            }
        }
        Ok(())
    }
}
