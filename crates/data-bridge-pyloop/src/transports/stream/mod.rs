//! The native core of PyLoop's socket transport (TCP and Unix streams).
//!
//! Python sees `data_bridge.pyloop.transports.SocketTransport`, a subclass of
//! `asyncio.Transport` whose hot methods (`write`, `is_closing`, ...) are bound
//! straight to this core, so a call costs no extra Python frame.
//!
//! Reading: when Tokio reports the socket readable the loop calls [`StreamTransport::on_ready`],
//! which does one `recv` into a per-thread buffer and hands the bytes to
//! `protocol.data_received` (or fills `protocol.get_buffer()` for a `BufferedProtocol`).
//! A short read proves the socket drained, so readiness is cleared without the extra
//! `recv` that would only return `EAGAIN`; a full read is retried on the next tick.
//!
//! Writing: `write()` sends immediately when nothing is buffered; only what the socket
//! refuses is copied into the buffer, which is flushed when Tokio reports the socket
//! writable. Flow control follows asyncio (`pause_writing` above the high-water mark,
//! `resume_writing` at or below the low one).
//!
//! Protocol callbacks made while handling readiness run in the transport's own copy of
//! the context current when it was made (see `base::in_context`), as on asyncio's loop.
//!
//! The core is split along those seams: `read` (the read path and its buffer),
//! `write` (writing, the write buffer and half-close), `sendfile`
//! (`loop.sendfile()` jobs), `close` (closing, errors and `connection_lost`) and
//! `methods` (what Python calls). This module holds the shared state and the
//! readiness dispatch that drives them.

mod close;
mod methods;
mod read;
mod sendfile;
mod write;

use std::sync::atomic::AtomicBool;
use std::task::Context;

use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use tokio::io::unix::AsyncFd;

use crate::core::LoopCore;
use crate::errors::os_error;
use crate::transports::base::{in_context, is_fatal, Closing, Fd, Flow, Slot};

use sendfile::SendfileJob;

enum Reader {
    Plain(Py<PyAny>),
    Buffered {
        get_buffer: Py<PyAny>,
        buffer_updated: Py<PyAny>,
    },
}

struct Inner {
    io: Option<AsyncFd<Fd>>,
    sendfile: Option<SendfileJob>,
    /// The peer closed its side and the protocol chose to stay open for writing.
    read_eof: bool,
    lp: Py<LoopCore>,
    protocol: Option<Py<PyAny>>,
    /// The context protocol callbacks run in (see `in_context`); released with the
    /// protocol, since a context variable may refer back to the transport.
    context: Option<Py<PyAny>>,
    reader: Option<Reader>,
    transport: Option<Py<PyAny>>,
    sock: Option<Py<PyAny>>,
    on_lost: Option<Py<PyAny>>,
    flow: Flow,
    eof: bool,
    conn_lost: u32,
    buf: Vec<u8>,
    buf_off: usize,
}

impl Inner {
    fn buffered(&self) -> usize {
        self.buf.len() - self.buf_off
    }

    fn wants_read(&self) -> bool {
        self.flow.reading_started && self.flow.is_reading() && !self.read_eof && self.io.is_some()
    }
}

impl Closing for Inner {
    fn lifecycle(&mut self) -> (&mut Flow, &mut u32, &Py<LoopCore>) {
        (&mut self.flow, &mut self.conn_lost, &self.lp)
    }

    fn has_queued(&self) -> bool {
        self.buffered() > 0
    }

    fn drop_queued(&mut self) {
        self.buf.clear();
        self.buf_off = 0;
    }
}

/// Native socket transport core; see the module documentation.
#[pyclass(module = "data_bridge._native", frozen)]
pub struct StreamTransport {
    inner: Mutex<Inner>,
    slot: Slot,
    /// The last read was large: size the next one with FIONREAD and skip a copy.
    large_reads: AtomicBool,
}

static BUFFERED_PROTOCOL: PyOnceLock<Py<PyType>> = PyOnceLock::new();

fn make_reader(protocol: &Bound<'_, PyAny>) -> PyResult<Reader> {
    let py = protocol.py();
    let buffered = BUFFERED_PROTOCOL.import(py, "asyncio", "BufferedProtocol")?;
    if protocol.is_instance(buffered)? {
        Ok(Reader::Buffered {
            get_buffer: protocol.getattr("get_buffer")?.unbind(),
            buffer_updated: protocol.getattr("buffer_updated")?.unbind(),
        })
    } else {
        Ok(Reader::Plain(protocol.getattr("data_received")?.unbind()))
    }
}

/// What to do once the transport's lock is released.
#[derive(Default)]
struct After {
    fatal: Option<(PyErr, &'static str)>,
    sendfile_done: Option<(Py<PyAny>, u64, Option<std::io::Error>)>,
    pause: bool,
    resume: bool,
    lost: bool,
}

impl StreamTransport {
    fn after(slf: &Bound<'_, Self>, after: After) -> PyResult<()> {
        if let Some((future, sent, err)) = after.sendfile_done {
            let py = slf.py();
            let lp = slf.get().inner.lock().lp.clone_ref(py);
            let err = err.map(|e| os_error(&e));
            StreamTransport::finish_sendfile(py, lp.get(), future, sent, err)?;
        }
        if let Some((err, msg)) = after.fatal {
            StreamTransport::fatal_error(slf, err, msg)?;
        }
        let py = slf.py();
        if after.pause || after.resume {
            let protocol = slf.get().get_protocol(py);
            if let Some(protocol) = protocol {
                let (method, what) = if after.pause {
                    ("pause_writing", "protocol.pause_writing() failed")
                } else {
                    ("resume_writing", "protocol.resume_writing() failed")
                };
                if let Err(err) = protocol.bind(py).call_method0(method) {
                    if is_fatal(py, &err) {
                        return Err(err);
                    }
                    StreamTransport::report(slf, err, what)?;
                }
            }
        }
        if after.lost {
            StreamTransport::call_connection_lost(slf, py.None())?;
        }
        Ok(())
    }

    /// Re-arms Tokio's wakers after a dispatch, or asks for another look next tick
    /// when the socket is still known to be ready.
    fn rearm(&self) {
        let inner = self.inner.lock();
        let Some(io) = inner.io.as_ref() else { return };
        let mut cx = Context::from_waker(&self.slot.waker);
        let mut again = false;
        if inner.wants_read() && io.poll_read_ready(&mut cx).is_ready() {
            again = true;
        }
        if (inner.buffered() > 0 || inner.sendfile.is_some())
            && io.poll_write_ready(&mut cx).is_ready()
        {
            again = true;
        }
        if again {
            self.slot.recheck(inner.lp.get());
        }
    }

    /// Called by the loop when Tokio reported the socket ready (or on a recheck).
    pub(crate) fn on_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let mut after = After::default();
        let context = {
            let mut inner = this.inner.lock();
            if inner.buffered() > 0 || inner.sendfile.is_some() {
                this.write_ready(&mut inner, &mut after);
            }
            inner.context.as_ref().map(|c| c.clone_ref(py))
        };
        in_context(py, context.as_ref(), || {
            StreamTransport::after(slf, after)?;
            StreamTransport::read_once(slf)
        })?;
        this.rearm();
        Ok(())
    }
}
