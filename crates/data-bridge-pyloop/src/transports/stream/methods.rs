//! What Python calls on the core: the `asyncio.Transport` methods the Python
//! `SocketTransport` binds straight to it, and the hooks its loop uses.

use std::os::fd::RawFd;
use std::sync::atomic::AtomicBool;

use parking_lot::Mutex;
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::sendfile::SendfileJob;
use super::write::shut_write;
use super::{make_reader, After, Inner, StreamTransport};
use crate::core::LoopCore;
use crate::errors::os_error;
use crate::handle::copy_context;
use crate::io::Source;
use crate::transports::base::{schedule_start, Flow, Slot};

#[pymethods]
impl StreamTransport {
    /// Wraps the connected, non-blocking socket `sock` for `protocol`. `transport` is the
    /// Python transport object the protocol sees; `on_lost` runs after
    /// `connection_lost` (servers use it to forget the connection). Protocol callbacks
    /// run in a copy of the context current now.
    #[new]
    #[pyo3(signature = (lp, sock, protocol, transport, on_lost=None))]
    fn py_new(
        lp: &Bound<'_, LoopCore>,
        sock: &Bound<'_, PyAny>,
        protocol: &Bound<'_, PyAny>,
        transport: &Bound<'_, PyAny>,
        on_lost: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let reader = make_reader(protocol)?;
        let context = copy_context(lp.py())?;
        let (io, slot) = Slot::register(lp.get(), sock, transport)?;
        Ok(StreamTransport {
            inner: Mutex::new(Inner {
                io: Some(io),
                sendfile: None,
                read_eof: false,
                lp: lp.clone().unbind(),
                protocol: Some(protocol.clone().unbind()),
                context: Some(context),
                reader: Some(reader),
                transport: Some(transport.clone().unbind()),
                sock: Some(sock.clone().unbind()),
                on_lost,
                flow: Flow::new(),
                eof: false,
                conn_lost: 0,
                buf: Vec::new(),
                buf_off: 0,
            }),
            slot,
            large_reads: AtomicBool::new(false),
        })
    }

    /// Finishes setup: takes the registry slot and schedules `connection_made`, the
    /// start of reading and the optional `waiter` future, in asyncio's order.
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
        let lpc = lp.get();
        this.slot
            .activate(lpc, Source::Stream(slf.clone().unbind()));
        let start = slf.getattr("_start_reading")?.unbind();
        schedule_start(py, lpc, protocol, transport, start, waiter)
    }

    fn _start_reading(&self) {
        let inner = &mut *self.inner.lock();
        if inner.io.is_none() || inner.flow.closing {
            return;
        }
        inner.flow.reading_started = true;
        if !inner.flow.reading_paused {
            self.slot.recheck(inner.lp.get());
        }
    }

    fn _call_connection_lost(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
        StreamTransport::call_connection_lost(slf, exc)
    }

    /// Writes `data` (bytes-like) to the socket, buffering what it cannot take now.
    fn write(slf: &Bound<'_, Self>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        match StreamTransport::data_bytes(data)? {
            None => {
                let bytes = data.cast::<PyBytes>()?;
                StreamTransport::write_slice(slf, bytes.as_bytes())
            }
            Some(owned) => StreamTransport::write_slice(slf, &owned),
        }
    }

    /// Writes each bytes-like item of `list_of_data`, in order.
    fn writelines(slf: &Bound<'_, Self>, list_of_data: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut joined = Vec::new();
        for item in list_of_data.try_iter()? {
            let item = item?;
            match StreamTransport::data_bytes(&item)? {
                None => joined.extend_from_slice(item.cast::<PyBytes>()?.as_bytes()),
                Some(owned) => joined.extend_from_slice(&owned),
            }
        }
        StreamTransport::write_slice(slf, &joined)
    }

    /// Closes the write side after the buffer is flushed.
    fn write_eof(&self) {
        let mut inner = self.inner.lock();
        if inner.flow.closing || inner.eof {
            return;
        }
        inner.eof = true;
        if inner.buffered() == 0 {
            if let Some(io) = inner.io.as_ref() {
                shut_write(io);
            }
        }
    }

    /// Sockets support half-close.
    fn can_write_eof(&self) -> bool {
        true
    }

    /// Closes after buffered data is sent; `connection_lost(None)` follows.
    #[pyo3(name = "close")]
    fn py_close(slf: &Bound<'_, Self>) -> PyResult<()> {
        StreamTransport::close(slf)
    }

    /// Closes at once, dropping buffered data.
    fn abort(slf: &Bound<'_, Self>) -> PyResult<()> {
        StreamTransport::force_close(slf, slf.py().None().into_bound(slf.py()))
    }

    /// Closes at once because of `exc` (asyncio's `_force_close`, used by TLS).
    fn _force_close(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        StreamTransport::force_close(slf, exc)
    }

    /// Starts sending `count` bytes (all to end of file if `None`) of the file
    /// `file_fd` from `offset` once buffered data is out; `future` gets
    /// `(bytes sent, OSError or None)`. The job works on its own duplicate of `file_fd`.
    #[pyo3(signature = (file_fd, offset, count, future))]
    fn _start_sendfile(
        &self,
        file_fd: RawFd,
        offset: u64,
        count: Option<u64>,
        future: Py<PyAny>,
    ) -> PyResult<()> {
        let mut inner = self.inner.lock();
        if inner.io.is_none() || inner.flow.closing {
            return Err(PyRuntimeError::new_err("transport is closing"));
        }
        if inner.sendfile.is_some() {
            return Err(PyRuntimeError::new_err("sendfile is already in progress"));
        }
        let job = SendfileJob::new(file_fd, offset, count, future).map_err(|e| os_error(&e))?;
        inner.sendfile = Some(job);
        self.slot.recheck(inner.lp.get());
        Ok(())
    }

    /// Stops a running `sendfile` (its caller was cancelled); returns the bytes sent.
    /// Its future is left alone.
    fn _cancel_sendfile(&self) -> u64 {
        let job = self.inner.lock().sendfile.take();
        job.map_or(0, |job| job.sent)
    }

    /// Whether the transport is closing or closed.
    fn is_closing(&self) -> bool {
        self.inner.lock().flow.closing
    }

    /// Stops calling `data_received` until `resume_reading()`.
    fn pause_reading(&self) {
        self.inner.lock().flow.pause_reading();
    }

    /// Resumes calling `data_received`.
    fn resume_reading(&self) {
        let mut inner = self.inner.lock();
        if inner.flow.resume_reading() {
            self.slot.recheck(inner.lp.get());
        }
    }

    /// Whether the transport is receiving.
    fn is_reading(&self) -> bool {
        let inner = self.inner.lock();
        inner.flow.is_reading() && inner.io.is_some()
    }

    /// Sets the write buffer's high- and low-water marks (asyncio's defaults apply).
    #[pyo3(signature = (high=None, low=None))]
    fn set_write_buffer_limits(
        slf: &Bound<'_, Self>,
        high: Option<i64>,
        low: Option<i64>,
    ) -> PyResult<()> {
        let mut after = After::default();
        {
            let mut inner = slf.get().inner.lock();
            inner.flow.set_limits(high, low)?;
            let buffered = inner.buffered();
            if inner.flow.should_pause(buffered) {
                after.pause = true;
            }
        }
        StreamTransport::after(slf, after)
    }

    /// `(low, high)` water marks.
    fn get_write_buffer_limits(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        inner.flow.limits()
    }

    /// Bytes waiting in the write buffer.
    fn get_write_buffer_size(&self) -> usize {
        self.inner.lock().buffered()
    }

    /// Replaces the protocol that receives data.
    fn set_protocol(&self, protocol: &Bound<'_, PyAny>) -> PyResult<()> {
        let reader = make_reader(protocol)?;
        let old = {
            let mut inner = self.inner.lock();
            (
                inner.protocol.replace(protocol.clone().unbind()),
                inner.reader.replace(reader),
            )
        };
        drop(old);
        Ok(())
    }

    /// The current protocol.
    pub(super) fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.inner.lock().protocol.as_ref().map(|p| p.clone_ref(py))
    }

    /// The socket's descriptor.
    #[getter]
    fn fd(&self) -> RawFd {
        self.slot.fd
    }

    /// Whether the protocol is paused for writing (asyncio's `_protocol_paused`).
    #[getter]
    fn _writing_paused(&self) -> bool {
        self.inner.lock().flow.writing_paused()
    }

    /// Whether `connection_lost` has been scheduled or run.
    #[getter]
    fn _conn_lost(&self) -> u32 {
        self.inner.lock().conn_lost
    }
}
