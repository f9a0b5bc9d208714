//! What every native transport shares: registering its descriptor with the loop,
//! scheduling `connection_made`, reporting errors, and tearing down in asyncio's order
//! (deregister, `connection_lost`, close the socket, tell the server).

use std::os::fd::{AsRawFd, RawFd};
use std::task::Waker;

use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit, PyValueError};
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

/// Whether an error must propagate out of the loop instead of being reported.
pub(crate) fn is_fatal(py: Python<'_>, err: &PyErr) -> bool {
    err.is_instance_of::<PySystemExit>(py) || err.is_instance_of::<PyKeyboardInterrupt>(py)
}

/// Retries a system call interrupted by a signal.
pub(crate) fn retry<F: FnMut() -> isize>(mut call: F) -> std::io::Result<usize> {
    loop {
        let n = call();
        if n >= 0 {
            return Ok(n as usize);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
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
