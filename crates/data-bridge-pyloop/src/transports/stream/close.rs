//! Closing: `close()` after the buffer is flushed, `abort()` and fatal errors at once,
//! errors reported to the loop's exception handler, and `connection_lost` releasing
//! the protocol, the socket and the reactor registration.

use pyo3::exceptions::{PyConnectionAbortedError, PyOSError};
use pyo3::prelude::*;

use super::StreamTransport;
use crate::transports::base::{close_under_loop, finish_lost, report, schedule_lost, Closing};

impl StreamTransport {
    /// Calls the loop's exception handler with this transport and its protocol.
    pub(super) fn report(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let (lp, transport, protocol) = {
            let inner = slf.get().inner.lock();
            (
                inner.lp.clone_ref(py),
                inner.transport.as_ref().map(|t| t.clone_ref(py)),
                inner.protocol.as_ref().map(|p| p.clone_ref(py)),
            )
        };
        report(py, &lp, transport, protocol, err, message)
    }

    /// asyncio's `_fatal_error`: report (unless it is an `OSError`) and force-close.
    pub(super) fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let value = err.value(py).clone().unbind();
        if !err.is_instance_of::<PyOSError>(py) {
            StreamTransport::report(slf, err, message)?;
        }
        StreamTransport::force_close(slf, value.into_bound(py).into_any())
    }

    /// Closes now, dropping buffered data; `connection_lost(exc)` runs on the next tick.
    pub(super) fn force_close(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let lp = slf.get().inner.lock().begin_force_close(slf.py());
        lp.map_or(Ok(()), |lp| schedule_lost(lp.get(), slf.as_any(), exc))
    }

    /// Drops the reactor registration; must happen before the socket is closed.
    pub(super) fn deregister(slf: &Bound<'_, Self>) {
        let this = slf.get();
        let (io, lp) = {
            let mut inner = this.inner.lock();
            (inner.io.take(), inner.lp.clone_ref(slf.py()))
        };
        if io.is_some() {
            drop(io);
            this.slot.release(lp.get());
        }
    }

    /// The loop closed under the transport: release the socket without callbacks.
    pub(crate) fn loop_closed(slf: &Bound<'_, Self>) {
        close_under_loop(slf.py(), &slf.get().inner, |inner| {
            inner.io = None;
            let held = (
                inner.protocol.take(),
                inner.transport.take(),
                inner.reader.take(),
                inner.context.take(),
                inner.sendfile.take(),
            );
            (inner.sock.take(), held)
        });
    }

    pub(super) fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let lp = slf.get().inner.lock().begin_close(py);
        lp.map_or(Ok(()), |lp| {
            schedule_lost(lp.get(), slf.as_any(), py.None().into_bound(py))
        })
    }

    pub(super) fn call_connection_lost(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        let py = slf.py();
        StreamTransport::deregister(slf);
        let (protocol, sock, on_lost, transport, reader, context, job, lp) = {
            let mut inner = slf.get().inner.lock();
            (
                inner.protocol.take(),
                inner.sock.take(),
                inner.on_lost.take(),
                inner.transport.take(),
                inner.reader.take(),
                inner.context.take(),
                inner.sendfile.take(),
                inner.lp.clone_ref(py),
            )
        };
        if let Some(job) = job {
            // The socket is going away under a running sendfile: end it, or its caller
            // would wait forever.
            let err = PyConnectionAbortedError::new_err("the transport was closed");
            StreamTransport::finish_sendfile(py, lp.get(), job.future, job.sent, Some(err))?;
        }
        let result = finish_lost(py, protocol, exc, sock, on_lost);
        drop((transport, reader, context));
        result
    }
}
