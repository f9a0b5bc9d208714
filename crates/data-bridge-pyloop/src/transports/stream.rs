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

use std::cell::RefCell;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use parking_lot::Mutex;
use pyo3::exceptions::{PyConnectionAbortedError, PyOSError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyTuple, PyType};
use tokio::io::unix::AsyncFd;

use crate::core::LoopCore;
use crate::errors::os_error;
use crate::handle::copy_context;
use crate::io::Source;
use crate::transports::base::{
    finish_lost, in_context, is_fatal, report, retry, schedule_lost, schedule_start, Fd, Flow, Slot,
};

/// asyncio's read size for socket transports.
const READ_SIZE: usize = 256 * 1024;
/// Reads at least this large go straight into the `bytes` object handed to Python.
const LARGE_READ: usize = 16 * 1024;
/// asyncio's default high-water mark for the write buffer.
/// Writes after the connection is lost are counted and, past this many, logged.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_SIZE]);
}

enum Reader {
    Plain(Py<PyAny>),
    Buffered {
        get_buffer: Py<PyAny>,
        buffer_updated: Py<PyAny>,
    },
}

/// A `loop.sendfile()` in progress: data goes from `file` straight to the socket.
struct SendfileJob {
    /// A duplicate of the caller's descriptor, owned by the job: the caller may close
    /// its file (and the number be reused) while the job still runs or after it was
    /// cancelled, and the job must never read another file through that number.
    file: OwnedFd,
    offset: u64,
    remaining: Option<u64>,
    sent: u64,
    future: Py<PyAny>,
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

/// Native socket transport core; see the module documentation.
#[pyclass(module = "data_bridge._native", frozen)]
pub struct StreamTransport {
    inner: Mutex<Inner>,
    slot: Slot,
    /// The last read was large: size the next one with FIONREAD and skip a copy.
    large_reads: AtomicBool,
}

static BUFFERED_PROTOCOL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static SET_RESULT_UNLESS_CANCELLED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

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

fn sys_recv(fd: RawFd, buf: &mut [u8]) -> std::io::Result<usize> {
    // SAFETY: `buf` is valid for writes of its length.
    retry(|| unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) })
}

fn sys_send(fd: RawFd, data: &[u8]) -> std::io::Result<usize> {
    // SAFETY: `data` is valid for reads of its length.
    retry(|| unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) })
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
    /// Sends as much of the buffer as the socket takes. Returns `Err` on a socket error.
    fn flush(&self, inner: &mut Inner) -> std::io::Result<()> {
        let Some(io) = inner.io.as_ref() else {
            return Ok(());
        };
        let mut cx = Context::from_waker(&self.slot.waker);
        while inner.buffered() > 0 {
            let mut guard = match io.poll_write_ready(&mut cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            };
            let data = &inner.buf[inner.buf_off..];
            match guard.try_io(|fd| sys_send(fd.get_ref().0, data)) {
                Ok(Ok(n)) => {
                    inner.buf_off += n;
                    if n < data.len() {
                        // The socket took part of it: it is full now.
                        guard.clear_ready();
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => {}
            }
        }
        inner.buf.clear();
        inner.buf_off = 0;
        Ok(())
    }

    /// The write side became ready: flush the buffer, then feed a pending `sendfile`;
    /// resume the protocol at the low-water mark, finish a close or a `write_eof`.
    fn write_ready(&self, inner: &mut Inner, after: &mut After) {
        if let Err(e) = self.flush(inner) {
            after.fatal = Some((os_error(&e), "Fatal write error on socket transport"));
            return;
        }
        let buffered = inner.buffered();
        if inner.flow.should_resume(buffered) {
            after.resume = true;
        }
        if inner.buffered() > 0 {
            return;
        }
        if inner.sendfile.is_some() {
            self.sendfile_step(inner, after);
            if inner.sendfile.is_some() {
                return;
            }
        }
        if inner.flow.closing && inner.conn_lost == 0 {
            inner.conn_lost += 1;
            after.lost = true;
        } else if inner.eof {
            if let Some(io) = inner.io.as_ref() {
                // SAFETY: shutting down the write side of a live socket.
                unsafe { libc::shutdown(io.get_ref().0, libc::SHUT_WR) };
            }
        }
    }

    /// Sends file data with `sendfile(2)` while the socket takes it.
    fn sendfile_step(&self, inner: &mut Inner, after: &mut After) {
        let Some(io) = inner.io.as_ref() else { return };
        let Some(job) = inner.sendfile.as_mut() else {
            return;
        };
        let mut cx = Context::from_waker(&self.slot.waker);
        let outcome = loop {
            let want = match job.remaining {
                Some(0) => break Ok(true),
                Some(n) => n.min(1 << 30),
                None => 1 << 30,
            };
            let mut guard = match io.poll_write_ready(&mut cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => break Err(e),
                Poll::Pending => break Ok(false),
            };
            let mut offset = job.offset as libc::off_t;
            let res = guard.try_io(|fd| {
                // SAFETY: both descriptors are live; `offset` is a valid out-parameter.
                let n = unsafe {
                    libc::sendfile(
                        fd.get_ref().0,
                        job.file.as_raw_fd(),
                        &mut offset,
                        want as usize,
                    )
                };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as u64)
                }
            });
            match res {
                Ok(Ok(0)) => break Ok(true),
                Ok(Ok(n)) => {
                    job.offset += n;
                    job.sent += n;
                    if let Some(r) = job.remaining.as_mut() {
                        *r -= n.min(*r);
                    }
                }
                Ok(Err(e)) => break Err(e),
                Err(_would_block) => {}
            }
        };
        match outcome {
            Ok(false) => {}
            Ok(true) => {
                if let Some(job) = inner.sendfile.take() {
                    after.sendfile_done = Some((job.future, job.sent, None));
                }
            }
            Err(e) => {
                if let Some(job) = inner.sendfile.take() {
                    after.sendfile_done = Some((job.future, job.sent, Some(e)));
                }
            }
        }
    }

    /// Resolves a `sendfile` future with `(bytes sent, error or None)` on the next tick
    /// (unless it was cancelled meanwhile): the caller moves the file position by what
    /// was sent even when the transfer failed part-way.
    fn finish_sendfile(
        py: Python<'_>,
        lp: &LoopCore,
        future: Py<PyAny>,
        sent: u64,
        err: Option<PyErr>,
    ) -> PyResult<()> {
        let err = match err {
            Some(e) => e.into_value(py).into_any(),
            None => py.None(),
        };
        let outcome = (sent, err).into_pyobject(py)?.into_any().unbind();
        let set = SET_RESULT_UNLESS_CANCELLED
            .import(py, "asyncio.futures", "_set_result_unless_cancelled")?
            .clone()
            .unbind();
        lp.schedule(py, set, PyTuple::new(py, [future, outcome])?.unbind(), None)?;
        Ok(())
    }

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
            let protocol = slf
                .get()
                .inner
                .lock()
                .protocol
                .as_ref()
                .map(|p| p.clone_ref(py));
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

    /// Calls the loop's exception handler with this transport and its protocol.
    fn report(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
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
    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        let py = slf.py();
        let value = err.value(py).clone().unbind();
        if !err.is_instance_of::<PyOSError>(py) {
            StreamTransport::report(slf, err, message)?;
        }
        StreamTransport::force_close(slf, value.into_bound(py).into_any())
    }

    /// Closes now, dropping buffered data; `connection_lost(exc)` runs on the next tick.
    fn force_close(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let lp = {
            let mut inner = slf.get().inner.lock();
            if inner.conn_lost > 0 {
                return Ok(());
            }
            inner.buf.clear();
            inner.buf_off = 0;
            inner.flow.closing = true;
            inner.conn_lost += 1;
            inner.lp.clone_ref(py)
        };
        schedule_lost(lp.get(), slf.as_any(), exc)
    }

    /// Drops the reactor registration; must happen before the socket is closed.
    fn deregister(slf: &Bound<'_, Self>) {
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

    /// Reads once and delivers the data; returns whether the socket may have more.
    fn read_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let reader = {
            let inner = this.inner.lock();
            if !inner.wants_read() {
                return Ok(());
            }
            match inner.reader.as_ref() {
                Some(Reader::Plain(cb)) => Reader::Plain(cb.clone_ref(py)),
                Some(Reader::Buffered {
                    get_buffer,
                    buffer_updated,
                }) => Reader::Buffered {
                    get_buffer: get_buffer.clone_ref(py),
                    buffer_updated: buffer_updated.clone_ref(py),
                },
                None => return Ok(()),
            }
        };
        match reader {
            Reader::Plain(data_received) => {
                let outcome = match this.pending_large() {
                    Some((want, drained)) => this.recv_large(py, want, drained),
                    None => READ_BUF.with(|cell| {
                        let mut buf = cell.borrow_mut();
                        let res = this.recv_into(&mut buf[..], false);
                        if let Ok(Some(n)) = res {
                            this.large_reads.store(n >= LARGE_READ, Ordering::Relaxed);
                        }
                        res.map(|n| n.map(|n| (n, PyBytes::new(py, &buf[..n]))))
                    }),
                };
                match outcome {
                    Ok(None) => Ok(()),
                    Ok(Some((0, _))) => StreamTransport::on_eof(slf),
                    Ok(Some((_, data))) => match data_received.bind(py).call1((data,)) {
                        Ok(_) => Ok(()),
                        Err(err) if is_fatal(py, &err) => Err(err),
                        Err(err) => StreamTransport::fatal_error(
                            slf,
                            err,
                            "Fatal error: protocol.data_received() call failed.",
                        ),
                    },
                    Err(e) => StreamTransport::fatal_error(
                        slf,
                        os_error(&e),
                        "Fatal read error on socket transport",
                    ),
                }
            }
            Reader::Buffered {
                get_buffer,
                buffer_updated,
            } => {
                let buf = match get_buffer.bind(py).call1((-1,)).and_then(|b| {
                    let pybuf = pyo3::buffer::PyBuffer::<u8>::get(&b)?;
                    if pybuf.item_count() == 0 {
                        return Err(PyRuntimeError::new_err(
                            "get_buffer() returned an empty buffer",
                        ));
                    }
                    if pybuf.readonly() || !pybuf.is_c_contiguous() {
                        return Err(PyTypeError::new_err(
                            "get_buffer() must return a writable contiguous buffer",
                        ));
                    }
                    Ok(pybuf)
                }) {
                    Ok(b) => b,
                    Err(err) if is_fatal(py, &err) => return Err(err),
                    Err(err) => {
                        return StreamTransport::fatal_error(
                            slf,
                            err,
                            "Fatal error: protocol.get_buffer() call failed.",
                        )
                    }
                };
                // SAFETY: the buffer is writable and C-contiguous (checked above) and stays
                // alive while `buf` holds its view; the GIL is held so nothing else uses it.
                let slice = unsafe {
                    std::slice::from_raw_parts_mut(buf.buf_ptr().cast::<u8>(), buf.item_count())
                };
                let res = this.recv_into(slice, false);
                drop(buf);
                match res {
                    Ok(None) => Ok(()),
                    Ok(Some(0)) => StreamTransport::on_eof(slf),
                    Ok(Some(n)) => match buffer_updated.bind(py).call1((n,)) {
                        Ok(_) => Ok(()),
                        Err(err) if is_fatal(py, &err) => Err(err),
                        Err(err) => StreamTransport::fatal_error(
                            slf,
                            err,
                            "Fatal error: protocol.buffer_updated() call failed.",
                        ),
                    },
                    Err(e) => StreamTransport::fatal_error(
                        slf,
                        os_error(&e),
                        "Fatal read error on socket transport",
                    ),
                }
            }
        }
    }

    /// While the peer sends large messages: how much is waiting, if it is large enough
    /// to read straight into a `bytes` object (skipping the copy from the read buffer).
    fn pending_large(&self) -> Option<(usize, bool)> {
        if !self.large_reads.load(Ordering::Relaxed) {
            return None;
        }
        let mut avail: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int to `avail`.
        let rc = unsafe { libc::ioctl(self.slot.fd, libc::FIONREAD, &mut avail) };
        let avail = usize::try_from(avail).unwrap_or(0);
        if rc < 0 || avail < LARGE_READ {
            self.large_reads.store(false, Ordering::Relaxed);
            return None;
        }
        Some((avail.min(READ_SIZE), avail <= READ_SIZE))
    }

    /// Reads `want` bytes directly into a new `bytes` object; `drained` says that is
    /// everything queued.
    fn recv_large<'py>(
        &self,
        py: Python<'py>,
        want: usize,
        drained: bool,
    ) -> std::io::Result<Option<(usize, Bound<'py, PyBytes>)>> {
        let mut got = Ok(None);
        let bytes = PyBytes::new_with(py, want, |buf| {
            got = self.recv_into(buf, drained);
            Ok(())
        });
        let Ok(bytes) = bytes else {
            return Err(std::io::Error::from(std::io::ErrorKind::OutOfMemory));
        };
        match got? {
            Some(n) if n == want => Ok(Some((n, bytes))),
            // Fewer bytes than FIONREAD promised (the peer reset meanwhile): copy them.
            Some(n) => Ok(Some((n, PyBytes::new(py, &bytes.as_bytes()[..n])))),
            None => Ok(None),
        }
    }

    /// One `recv` if Tokio says the socket is readable: `Ok(None)` when it is not.
    /// `drained` says a full buffer still empties the socket (the caller sized it with
    /// FIONREAD), so readiness is cleared without another `recv`.
    fn recv_into(&self, buf: &mut [u8], drained: bool) -> std::io::Result<Option<usize>> {
        let inner = self.inner.lock();
        let Some(io) = inner.io.as_ref() else {
            return Ok(None);
        };
        let mut cx = Context::from_waker(&self.slot.waker);
        let mut guard = match io.poll_read_ready(&mut cx) {
            Poll::Ready(Ok(g)) => g,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(None),
        };
        let len = buf.len();
        match guard.try_io(|fd| sys_recv(fd.get_ref().0, buf)) {
            Ok(Ok(n)) => {
                if n > 0 && (n < len || drained) {
                    guard.clear_ready();
                }
                Ok(Some(n))
            }
            Ok(Err(e)) => Err(e),
            Err(_would_block) => Ok(None),
        }
    }

    fn on_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let protocol = slf
            .get()
            .inner
            .lock()
            .protocol
            .as_ref()
            .map(|p| p.clone_ref(py));
        let Some(protocol) = protocol else {
            return Ok(());
        };
        match protocol.bind(py).call_method0("eof_received") {
            Ok(keep_open) => {
                if keep_open.is_truthy()? {
                    // The peer will send nothing more; keep the connection for writing.
                    slf.get().inner.lock().read_eof = true;
                    Ok(())
                } else {
                    StreamTransport::close(slf)
                }
            }
            Err(err) if is_fatal(py, &err) => Err(err),
            Err(err) => StreamTransport::fatal_error(
                slf,
                err,
                "Fatal error: protocol.eof_received() call failed.",
            ),
        }
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

    /// The loop closed under the transport: release the socket without callbacks.
    pub(crate) fn loop_closed(slf: &Bound<'_, Self>) {
        let py = slf.py();
        let (sock, _keep) = {
            let mut inner = slf.get().inner.lock();
            inner.io = None;
            inner.flow.closing = true;
            (
                inner.sock.take(),
                (
                    inner.protocol.take(),
                    inner.transport.take(),
                    inner.reader.take(),
                    inner.context.take(),
                    inner.sendfile.take(),
                ),
            )
        };
        if let Some(sock) = sock {
            let _ = sock.bind(py).call_method0("close");
        }
    }

    fn close(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let lp = {
            let mut inner = slf.get().inner.lock();
            if inner.flow.closing {
                return Ok(());
            }
            inner.flow.closing = true;
            if inner.buffered() > 0 {
                // connection_lost waits until the buffer is flushed.
                return Ok(());
            }
            inner.conn_lost += 1;
            inner.lp.clone_ref(py)
        };
        schedule_lost(lp.get(), slf.as_any(), py.None().into_bound(py))
    }

    fn call_connection_lost(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
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

    fn data_bytes(data: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
        let py = data.py();
        if data.is_instance_of::<PyBytes>() {
            return Ok(None);
        }
        if data.is_instance_of::<pyo3::types::PyByteArray>()
            || data.is_instance_of::<pyo3::types::PyMemoryView>()
        {
            let bytes = py.get_type::<PyBytes>().call1((data,))?;
            return Ok(Some(bytes.cast::<PyBytes>()?.as_bytes().to_vec()));
        }
        Err(PyTypeError::new_err(format!(
            "data argument must be a bytes-like object, not {:?}",
            data.get_type().name()?.to_string()
        )))
    }

    fn write_slice(slf: &Bound<'_, Self>, data: &[u8]) -> PyResult<()> {
        let this = slf.get();
        let mut after = After::default();
        {
            let mut inner = this.inner.lock();
            if inner.eof {
                return Err(PyRuntimeError::new_err(
                    "Cannot call write() after write_eof()",
                ));
            }
            if inner.sendfile.is_some() {
                return Err(PyRuntimeError::new_err(
                    "unable to write; sendfile is in progress",
                ));
            }
            if data.is_empty() {
                return Ok(());
            }
            if inner.conn_lost > 0 || inner.io.is_none() {
                if inner.conn_lost >= LOG_THRESHOLD_FOR_CONNLOST_WRITES {
                    drop(inner);
                    let logging = slf.py().import("asyncio.log")?.getattr("logger")?;
                    logging.call_method1("warning", ("socket.send() raised exception.",))?;
                    inner = this.inner.lock();
                }
                inner.conn_lost += 1;
                return Ok(());
            }
            let mut sent = 0;
            if inner.buffered() == 0 {
                let Some(io) = inner.io.as_ref() else {
                    return Ok(());
                };
                let mut cx = Context::from_waker(&this.slot.waker);
                let res = match io.poll_write_ready(&mut cx) {
                    Poll::Ready(Ok(mut guard)) => {
                        match guard.try_io(|fd| sys_send(fd.get_ref().0, data)) {
                            Ok(r) => {
                                if matches!(r, Ok(n) if n < data.len()) {
                                    guard.clear_ready();
                                }
                                r
                            }
                            Err(_would_block) => Ok(0),
                        }
                    }
                    // Tokio has not seen the socket writable lately; try anyway, and the
                    // waker just registered reports when it is.
                    _ => match sys_send(io.get_ref().0, data) {
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
                        r => r,
                    },
                };
                match res {
                    Ok(n) if n == data.len() => return Ok(()),
                    Ok(n) => sent = n,
                    Err(e) => {
                        drop(inner);
                        return StreamTransport::fatal_error(
                            slf,
                            os_error(&e),
                            "Fatal write error on socket transport",
                        );
                    }
                }
                // Arm the write waker for the rest.
                if io.poll_write_ready(&mut cx).is_ready() {
                    this.slot.recheck(inner.lp.get());
                }
            }
            inner.buf.extend_from_slice(&data[sent..]);
            let buffered = inner.buffered();
            if inner.flow.should_pause(buffered) {
                after.pause = true;
            }
        }
        StreamTransport::after(slf, after)
    }
}

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
                // SAFETY: shutting down the write side of a live socket.
                unsafe { libc::shutdown(io.get_ref().0, libc::SHUT_WR) };
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
        // SAFETY: F_DUPFD_CLOEXEC only reads `file_fd`; an invalid one fails with EBADF.
        let dup = unsafe { libc::fcntl(file_fd, libc::F_DUPFD_CLOEXEC, 0) };
        if dup < 0 {
            return Err(os_error(&std::io::Error::last_os_error()));
        }
        // SAFETY: `dup` is a new descriptor that nothing else owns.
        let file = unsafe { OwnedFd::from_raw_fd(dup) };
        inner.sendfile = Some(SendfileJob {
            file,
            offset,
            remaining: count,
            sent: 0,
            future,
        });
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
    fn get_protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
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
