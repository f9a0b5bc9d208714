//! Closing and errors: socket errors go to `protocol.error_received`, fatal ones close
//! at once, and `connection_lost` releases the protocol, the socket and the reactor
//! registration.

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

use super::DatagramTransport;
use crate::errors::os_error;
use crate::transports::base::{
    close_under_loop, finish_lost, is_fatal, report, schedule_lost, Closing,
};

impl DatagramTransport {
    pub(super) fn error_received(slf: &Bound<'_, Self>, err: &std::io::Error) -> PyResult<()> {
        let py = slf.py();
        if let Some(protocol) = slf.get().protocol(py) {
            match protocol
                .bind(py)
                .call_method1("error_received", (os_error(err).into_value(py),))
            {
                Err(e) if is_fatal(py, &e) => return Err(e),
                Err(e) => {
                    return DatagramTransport::fatal_error(
                        slf,
                        e,
                        "Fatal error: protocol.error_received() call failed.",
                    )
                }
                Ok(_) => {}
            }
        }
        Ok(())
    }

    pub(super) fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let value = err.value(py).clone().into_any();
        if !err.is_instance_of::<PyOSError>(py) {
            let (lp, transport, protocol) = {
                let inner = slf.get().inner.lock();
                (
                    inner.lp.clone_ref(py),
                    inner.transport.as_ref().map(|t| t.clone_ref(py)),
                    inner.protocol.as_ref().map(|p| p.clone_ref(py)),
                )
            };
            report(py, &lp, transport, protocol, err, message)?;
        }
        DatagramTransport::force_close(slf, value)
    }

    pub(super) fn force_close(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let lp = slf.get().inner.lock().begin_force_close(slf.py());
        lp.map_or(Ok(()), |lp| schedule_lost(lp.get(), slf.as_any(), exc))
    }

    /// The loop closed under the transport: release the socket without callbacks.
    pub(crate) fn loop_closed(slf: &Bound<'_, Self>) {
        close_under_loop(slf.py(), &slf.get().inner, |inner| {
            inner.io = None;
            let held = (
                inner.protocol.take(),
                inner.transport.take(),
                inner.context.take(),
            );
            (inner.sock.take(), held)
        });
    }

    pub(super) fn call_connection_lost(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (io, lp, protocol, sock, transport, callback, context) = {
            let mut inner = this.inner.lock();
            (
                inner.io.take(),
                inner.lp.clone_ref(py),
                inner.protocol.take(),
                inner.sock.take(),
                inner.transport.take(),
                inner.datagram_received.take(),
                inner.context.take(),
            )
        };
        if io.is_some() {
            drop(io);
            this.slot.release(lp.get());
        }
        let result = finish_lost(py, protocol, exc, sock, None);
        drop((transport, callback, context));
        result
    }
}
