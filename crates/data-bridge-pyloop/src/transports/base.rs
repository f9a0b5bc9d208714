//! What every native transport shares: registering its descriptor with the loop,
//! scheduling `connection_made`, running protocol callbacks in the transport's
//! `contextvars.Context`, reporting errors, and tearing down in asyncio's order
//! (deregister, `connection_lost`, close the socket, tell the server).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::task::Waker;

use parking_lot::Mutex;
use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::core::LoopCore;
use crate::errors::os_error;
use crate::io::{io_waker, Source};
use crate::runtime;

/// A descriptor the transport watches but does not own: the Python socket owns it and
/// is closed only after the registration is dropped, so a reused descriptor number is
/// never deregistered by mistake.
pub(crate) struct Fd(pub(crate) RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Lets `socket2::SockRef` borrow the socket, for its safe system call wrappers.
impl AsFd for Fd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the Python socket that owns the descriptor is closed only after the
        // registration holding this `Fd` is dropped (see above), so it is open while
        // borrowed.
        unsafe { BorrowedFd::borrow_raw(self.0) }
    }
}

/// A transport's place in the loop's I/O registry.
pub(crate) struct Slot {
    /// The socket's descriptor.
    pub(crate) fd: RawFd,
    /// The registry token; readiness reports carry it.
    pub(crate) token: u64,
    /// The waker handed to Tokio with every readiness poll.
    pub(crate) waker: Waker,
}

impl Slot {
    /// Registers `sock`'s descriptor with the reactor and reserves a registry slot,
    /// claiming the descriptor for `transport` (so `add_reader` refuses it).
    pub(crate) fn register(
        lp: &LoopCore,
        sock: &Bound<'_, PyAny>,
        transport: &Bound<'_, PyAny>,
    ) -> PyResult<(AsyncFd<Fd>, Slot)> {
        lp.check_closed()?;
        let fd: RawFd = sock.call_method0("fileno")?.extract()?;
        if fd < 0 {
            return Err(PyValueError::new_err("the socket is closed"));
        }
        let io = {
            let _guard = runtime::get().enter();
            // SAFETY: the Python socket owning `fd` is closed only after the transport
            // has dropped this registration (see `Slot::release`).
            unsafe {
                AsyncFd::register_with_interest(Fd(fd), Interest::READABLE | Interest::WRITABLE)
            }
            .map_err(|e| os_error(&e.into_parts().1))?
        };
        let token = {
            let mut st = lp.state.lock();
            st.io.claim_fd(fd, transport.clone().unbind())?;
            // Filled by `activate` once the transport's Python object exists.
            st.io.insert(Source::Reserved)
        };
        let waker = io_waker(&lp.shared, token);
        Ok((io, Slot { fd, token, waker }))
    }

    /// Puts the transport in its registry slot so readiness reaches it.
    pub(crate) fn activate(&self, lp: &LoopCore, source: Source) {
        let mut st = lp.state.lock();
        st.io.fill(self.token, source);
        st.io.publish_count(lp);
    }

    /// Asks the loop to dispatch the transport on its next tick.
    pub(crate) fn recheck(&self, lp: &LoopCore) {
        lp.state.lock().io.recheck(self.token);
    }

    /// Frees the registry slot and the descriptor claim; the reactor registration
    /// (the `AsyncFd`) must already be dropped.
    pub(crate) fn release(&self, lp: &LoopCore) {
        let released = {
            let mut st = lp.state.lock();
            let source = st.io.remove(self.token);
            let owner = st.io.release_fd(self.fd);
            st.io.publish_count(lp);
            (source, owner)
        };
        drop(released);
    }
}

/// Runs `f` with `context` (a `contextvars.Context`) as the thread's current context,
/// like `context.run(f)` but without a Python call, so readiness dispatch can afford
/// it on every event. `None` (a transport already torn down) runs `f` as it is.
///
/// asyncio runs a transport's reads from a reader handle made when the transport
/// started, so protocol callbacks see a copy of the context the transport was made in
/// and whatever they set persists from one callback to the next.
pub(crate) fn in_context<R>(
    py: Python<'_>,
    context: Option<&Py<PyAny>>,
    f: impl FnOnce() -> PyResult<R>,
) -> PyResult<R> {
    let Some(context) = context else {
        return f();
    };
    let ctx = context.as_ptr();
    // SAFETY: the GIL is held and `ctx` is a live `contextvars.Context` (made by
    // `copy_context`); a failing Enter changes nothing and leaves an exception set.
    if unsafe { ffi::PyContext_Enter(ctx) } < 0 {
        return Err(PyErr::fetch(py));
    }
    let result = f();
    // SAFETY: pairs the successful Enter above; no Python exception is pending here
    // (`f`'s error, if any, was taken out of the interpreter into `result`).
    if unsafe { ffi::PyContext_Exit(ctx) } < 0 {
        let exit_err = PyErr::fetch(py);
        return result.and(Err(exit_err));
    }
    result
}

/// Whether an error must propagate out of the loop instead of being reported.
pub(crate) fn is_fatal(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PySystemExit>(py) || err.is_instance_of::<PyKeyboardInterrupt>(py)
}

/// Retries a system call interrupted by a signal.
pub(crate) fn retry<T, F: FnMut() -> std::io::Result<T>>(mut call: F) -> std::io::Result<T> {
    loop {
        match call() {
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// Schedules, in asyncio's order, `protocol.connection_made(transport)`, the start of
/// reading (`start_reading()`), and the `waiter` future's result.
pub(crate) fn schedule_start(
    py: Python<'_>,
    lp: &LoopCore,
    protocol: Option<Py<PyAny>>,
    transport: Option<Py<PyAny>>,
    start_reading: Py<PyAny>,
    waiter: Option<Py<PyAny>>,
) -> PyResult<()> {
    if let (Some(protocol), Some(transport)) = (protocol, transport) {
        let cb = protocol.bind(py).getattr("connection_made")?.unbind();
        lp.schedule(py, cb, PyTuple::new(py, [transport])?.unbind(), None)?;
    }
    lp.schedule(py, start_reading, PyTuple::empty(py).unbind(), None)?;
    if let Some(waiter) = waiter {
        let set = py
            .import("asyncio.futures")?
            .getattr("_set_result_unless_cancelled")?
            .unbind();
        lp.schedule(
            py,
            set,
            PyTuple::new(py, [waiter, py.None()])?.unbind(),
            None,
        )?;
    }
    Ok(())
}

/// Schedules `core._call_connection_lost(exc)` for the next tick.
pub(crate) fn schedule_lost(
    lp: &LoopCore,
    core: &Bound<'_, PyAny>,
    exc: Bound<'_, PyAny>,
) -> PyResult<()> {
    let py = core.py();
    let cb = core.getattr("_call_connection_lost")?.unbind();
    lp.schedule(py, cb, PyTuple::new(py, [exc])?.unbind(), None)?;
    Ok(())
}

/// Calls the loop's exception handler with the transport and its protocol.
pub(crate) fn report(
    py: Python<'_>,
    lp: &Py<LoopCore>,
    transport: Option<Py<PyAny>>,
    protocol: Option<Py<PyAny>>,
    err: PyErr,
    message: &str,
) -> PyResult<()> {
    let ctx = PyDict::new(py);
    ctx.set_item("message", message)?;
    ctx.set_item("exception", err.into_value(py))?;
    ctx.set_item("transport", transport)?;
    ctx.set_item("protocol", protocol)?;
    lp.bind(py).call_method1("call_exception_handler", (ctx,))?;
    Ok(())
}

/// The end of a connection, after the registration is released: `connection_lost`,
/// then the socket is closed and the server told, even if the protocol raised.
pub(crate) fn finish_lost(
    py: Python<'_>,
    protocol: Option<Py<PyAny>>,
    exc: Py<PyAny>,
    sock: Option<Py<PyAny>>,
    on_lost: Option<Py<PyAny>>,
) -> PyResult<()> {
    let result = match &protocol {
        Some(p) => p
            .bind(py)
            .call_method1("connection_lost", (exc,))
            .map(|_| ()),
        None => Ok(()),
    };
    if let Some(sock) = sock {
        sock.bind(py).call_method0("close")?;
    }
    if let Some(cb) = on_lost {
        cb.bind(py).call0()?;
    }
    result
}

/// The state `close()` and `_force_close()` work on, so that the stream and datagram
/// transports close by the same rules (asyncio's `_closing` and `_conn_lost`); each
/// transport only says where that state is and what its send queue is.
pub(crate) trait Closing {
    /// The flow state (whose `closing` flag this sets), the count of `connection_lost`
    /// schedulings and writes to a lost transport (non-zero: the transport is done),
    /// and the loop.
    fn lifecycle(&mut self) -> (&mut Flow, &mut u32, &Py<LoopCore>);
    /// Whether data is still waiting to be sent.
    fn has_queued(&self) -> bool;
    /// Drops the data waiting to be sent.
    fn drop_queued(&mut self);

    /// `close()`: starts closing and returns the loop to schedule
    /// `connection_lost(None)` on, or `None` when already closing or when queued data
    /// must be sent first (the writer finishes the close then).
    fn begin_close(&mut self, py: Python<'_>) -> Option<Py<LoopCore>> {
        let queued = self.has_queued();
        let (flow, conn_lost, lp) = self.lifecycle();
        if flow.closing {
            return None;
        }
        flow.closing = true;
        if queued {
            return None;
        }
        *conn_lost += 1;
        Some(lp.clone_ref(py))
    }

    /// `_force_close()`: drops queued data and returns the loop to schedule
    /// `connection_lost` on, or `None` when it is already on its way.
    fn begin_force_close(&mut self, py: Python<'_>) -> Option<Py<LoopCore>> {
        if *self.lifecycle().1 > 0 {
            return None;
        }
        self.drop_queued();
        let (flow, conn_lost, lp) = self.lifecycle();
        flow.closing = true;
        *conn_lost += 1;
        Some(lp.clone_ref(py))
    }
}

/// The loop closed under a transport: mark it closing and close its socket without
/// callbacks. `take` takes the socket and everything else the transport holds; the
/// rest is dropped only once the lock is released, since finalizers may call back in.
pub(crate) fn close_under_loop<I: Closing, K>(
    py: Python<'_>,
    inner: &Mutex<I>,
    take: impl FnOnce(&mut I) -> (Option<Py<PyAny>>, K),
) {
    let (sock, _keep) = {
        let mut inner = inner.lock();
        inner.lifecycle().0.closing = true;
        take(&mut inner)
    };
    if let Some(sock) = sock {
        let _ = sock.bind(py).call_method0("close");
    }
}

/// asyncio's default high-water mark for write buffers.
pub(crate) const DEFAULT_HIGH: usize = 64 * 1024;

/// Reading and write flow-control state shared by the transports (asyncio's
/// `_FlowControlMixin` plus the reading flags).
pub(crate) struct Flow {
    /// Reading began (after `connection_made`).
    pub(crate) reading_started: bool,
    /// `pause_reading()` is in effect.
    pub(crate) reading_paused: bool,
    /// `close()` or a fatal error happened.
    pub(crate) closing: bool,
    high: usize,
    low: usize,
    writing_paused: bool,
}

impl Flow {
    pub(crate) fn new() -> Self {
        Flow {
            reading_started: false,
            reading_paused: false,
            closing: false,
            high: DEFAULT_HIGH,
            low: DEFAULT_HIGH / 4,
            writing_paused: false,
        }
    }

    /// `pause_reading()`: no effect once closing or already paused.
    pub(crate) fn pause_reading(&mut self) {
        if !self.closing {
            self.reading_paused = true;
        }
    }

    /// `resume_reading()`; returns whether reading must be restarted now.
    pub(crate) fn resume_reading(&mut self) -> bool {
        if self.closing || !self.reading_paused {
            return false;
        }
        self.reading_paused = false;
        self.reading_started
    }

    /// `is_reading()`.
    pub(crate) fn is_reading(&self) -> bool {
        !self.closing && !self.reading_paused
    }

    /// `set_write_buffer_limits(high, low)` with asyncio's defaults and checks.
    pub(crate) fn set_limits(&mut self, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        let (high, low) = match (high, low) {
            (None, None) => (DEFAULT_HIGH as i64, DEFAULT_HIGH as i64 / 4),
            (None, Some(l)) => (4 * l, l),
            (Some(h), None) => (h, h / 4),
            (Some(h), Some(l)) => (h, l),
        };
        if !(high >= low && low >= 0) {
            return Err(PyValueError::new_err(format!(
                "high ({high}) must be >= low ({low}) must be >= 0"
            )));
        }
        self.high = high as usize;
        self.low = low as usize;
        Ok(())
    }

    /// `(low, high)`.
    pub(crate) fn limits(&self) -> (usize, usize) {
        (self.low, self.high)
    }

    /// Whether `buffered` bytes just crossed the high-water mark (pause the protocol).
    pub(crate) fn should_pause(&mut self, buffered: usize) -> bool {
        if self.writing_paused || buffered <= self.high {
            return false;
        }
        self.writing_paused = true;
        true
    }

    /// Whether `buffered` bytes fell to the low-water mark (resume the protocol).
    pub(crate) fn should_resume(&mut self, buffered: usize) -> bool {
        if !self.writing_paused || buffered > self.low {
            return false;
        }
        self.writing_paused = false;
        true
    }

    /// Whether the protocol is paused for writing.
    pub(crate) fn writing_paused(&self) -> bool {
        self.writing_paused
    }
}
