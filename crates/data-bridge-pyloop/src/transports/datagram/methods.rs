//! What Python calls on the core: the `asyncio.DatagramTransport` methods the Python
//! transport binds straight to it, and the hooks its loop uses.

use std::collections::VecDeque;

use parking_lot::Mutex;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};

use super::{DatagramTransport, Inner};
use crate::core::LoopCore;
use crate::handle::copy_context;
use crate::io::Source;
use crate::transports::base::{schedule_lost, schedule_start, Closing, Flow, Slot};

#[pymethods]
impl DatagramTransport {
    /// Wraps the non-blocking datagram socket `sock` for `protocol`; `address` is the
    /// connected peer, if any.
    #[new]
    #[pyo3(signature = (lp, sock, protocol, transport, address=None))]
    fn py_new(
        lp: &Bound<'_, LoopCore>,
        sock: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        transport: &Bound<'_, PyAny>,
        address: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let py = lp.py();
        let connected = sock.call_method0("getpeername").is_ok();
        // Protocol callbacks run in a copy of the context current now.
        let context = copy_context(py)?;
        let (io, slot) = Slot::register(lp.get(), sock, transport)?;
        Ok(DatagramTransport {
            inner: Mutex::new(Inner {
                io: Some(io),
                lp: lp.clone().unbind(),
                protocol: Some(protocol.clone().unbind()),
                context: Some(context),
                // Looked up again on each datagram if missing now, as asyncio would.
                datagram_received: protocol
                    .getattr("datagram_received")
                    .ok()
                    .map(Bound::unbind),
                transport: Some(transport.clone().unbind()),
                sock: Some(sock.clone().unbind()),
                address,
                queue: VecDeque::new(),
                queued: 0,
                last_dest: None,
                last_source: None,
                flow: Flow::new(),
                conn_lost: 0,
            }),
            slot,
            connected,
            send_empty: py.version_info() >= (3, 12),
        })
    }

    /// Takes the registry slot and schedules `connection_made`, reading and `waiter`.
    #[pyo3(signature = (waiter=None))]
    fn _start(slf: &Bound<'_, Self>, waiter: Option<Py<PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (lp, protocol, transport) = {
            let inner = this.inner.lock();
            (
                inner.lp.clone_ref(py),
                inner.protocol.as_ref().map(|p| p.clone_ref(py)),
                inner.transport.as_ref().map(|t| t.clone_ref(py)),
            )
        };
        this.slot
            .activate(lp.get(), Source::Datagram(slf.clone().unbind()));
        let start = slf.getattr("_start_reading")?.unbind();
        schedule_start(py, lp.get(), protocol, transport, start, waiter)
    }

    fn _start_reading(&self) {
        let mut inner = self.inner.lock();
        if inner.io.is_none() || inner.flow.closing {
            return;
        }
        inner.flow.reading_started = true;
        self.slot.recheck(inner.lp.get());
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        DatagramTransport::call_connection_lost(slf, exc)
    }

    /// Sends `data` to `addr` (or to the connected peer).
    #[pyo3(signature = (data, addr=None))]
    fn sendto(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyAny>,
        addr: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        if let Ok(bytes) = data.cast::<PyBytes>() {
            return DatagramTransport::sendto_bytes(slf, bytes.as_bytes(), addr);
        }
        if data.is_instance_of::<PyByteArray>() || data.is_instance_of::<PyMemoryView>() {
            let owned = slf.py().get_type::<PyBytes>().call1((data,))?;
            return DatagramTransport::sendto_bytes(slf, owned.cast::<PyBytes>()?.as_bytes(), addr);
        }
        Err(PyTypeError::new_err(format!(
            "data argument must be a bytes-like object, not {:?}",
            data.get_type().name()?.to_string()
        )))
    }

    /// Closes after queued datagrams are sent; `connection_lost(None)` follows.
    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let lp = slf.get().inner.lock().begin_close(py);
        lp.map_or(Ok(()), |lp| {
            schedule_lost(lp.get(), slf.as_any(), py.None().into_bound(py))
        })
    }

    /// Closes at once, dropping queued datagrams.
    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        DatagramTransport::force_close(slf, slf.py().None().into_bound(slf.py()))
    }

    fn _force_close(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        DatagramTransport::force_close(slf, exc)
    }

    /// Whether the transport is closing or closed.
    fn is_closing(&self) -> bool {
        self.inner.lock().flow.closing
    }

    /// Bytes of datagrams waiting to be sent.
    fn get_write_buffer_size(&self) -> usize {
        self.inner.lock().queued
    }

    /// Sets the send queue's water marks.
    #[pyo3(signature = (high=None, low=None))]
    fn set_write_buffer_limits(&self, high: Option<i64>, low: Option<i64>) -> PyResult<()> {
        self.inner.lock().flow.set_limits(high, low)
    }

    /// `(low, high)` water marks.
    fn get_write_buffer_limits(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        inner.flow.limits()
    }

    /// Stops delivering datagrams until `resume_reading()`.
    fn pause_reading(&self) {
        self.inner.lock().flow.pause_reading();
    }

    /// Resumes delivering datagrams.
    fn resume_reading(&self) {
        let mut inner = self.inner.lock();
        if inner.flow.resume_reading() {
            self.slot.recheck(inner.lp.get());
        }
    }

    /// Whether datagrams are being delivered.
    fn is_reading(&self) -> bool {
        self.inner.lock().flow.is_reading()
    }

    /// Replaces the protocol.
    fn set_protocol(&self, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let callback = protocol
            .getattr("datagram_received")
            .ok()
            .map(Bound::unbind);
        let old = {
            let mut inner = self.inner.lock();
            (
                inner.protocol.replace(protocol.clone().unbind()),
                std::mem::replace(&mut inner.datagram_received, callback),
            )
        };
        drop(old);
        Ok(())
    }

    /// The current protocol.
    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.protocol(py)
    }
}
