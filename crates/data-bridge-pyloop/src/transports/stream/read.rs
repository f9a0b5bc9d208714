//! The read path: one `recv` per readiness report into a per-thread buffer (or straight
//! into a `bytes` object while the peer sends large messages, or into the buffer of a
//! `BufferedProtocol`), then `data_received` / `buffer_updated`, or `eof_received` at
//! end of stream.

use std::cell::RefCell;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use socket2::SockRef;

use super::{Reader, StreamTransport};
use crate::errors::os_error;
use crate::transports::base::{is_fatal, retry, Fd};

/// asyncio's read size for socket transports.
const READ_SIZE: usize = 256 * 1024;
/// Reads at least this large go straight into the `bytes` object handed to Python.
const LARGE_READ: usize = 16 * 1024;

thread_local! {
    static READ_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_SIZE]);
}

fn sys_recv(fd: &Fd, buf: &mut [u8]) -> std::io::Result<usize> {
    let sock = SockRef::from(fd);
    retry(|| (&*sock).read(buf))
}

impl StreamTransport {
    /// Reads once and delivers the data; returns whether the socket may have more.
    pub(super) fn read_once(slf: &Bound<'_, Self>) -> PyResult<()> {
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
                StreamTransport::deliver(
                    slf,
                    outcome,
                    |data| data_received.bind(py).call1((data,)),
                    "Fatal error: protocol.data_received() call failed.",
                )
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
                    Err(err) => {
                        return StreamTransport::protocol_failed(
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
                StreamTransport::deliver(
                    slf,
                    res.map(|n| n.map(|n| (n, n))),
                    |n| buffer_updated.bind(py).call1((n,)),
                    "Fatal error: protocol.buffer_updated() call failed.",
                )
            }
        }
    }

    /// While the peer sends large messages: how much is waiting, if it is large enough
    /// to read straight into a `bytes` object (skipping the copy from the read buffer).
    pub(super) fn pending_large(&self) -> Option<(usize, bool)> {
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
    pub(super) fn recv_large<'py>(
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
    pub(super) fn recv_into(
        &self,
        buf: &mut [u8],
        drained: bool,
    ) -> std::io::Result<Option<usize>> {
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
        match guard.try_io(|fd| sys_recv(fd.get_ref(), buf)) {
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

    pub(super) fn on_eof(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let protocol = slf.get().get_protocol(py);
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
            Err(err) => StreamTransport::protocol_failed(
                slf,
                err,
                "Fatal error: protocol.eof_received() call failed.",
            ),
        }
    }

    /// Hands a read's outcome to the protocol: nothing (the socket had no data), end of
    /// file, or `call` with what was read (its length first); a socket error is fatal.
    fn deliver<'py, T>(
        slf: &Bound<'py, Self>,
        outcome: std::io::Result<Option<(usize, T)>>,
        call: impl FnOnce(T) -> PyResult<Bound<'py, PyAny>>,
        failed: &str,
    ) -> PyResult<()> {
        match outcome {
            Ok(None) => Ok(()),
            Ok(Some((0, _))) => StreamTransport::on_eof(slf),
            Ok(Some((_, data))) => match call(data) {
                Ok(_) => Ok(()),
                Err(err) => StreamTransport::protocol_failed(slf, err, failed),
            },
            Err(e) => StreamTransport::fatal_error(
                slf,
                os_error(&e),
                "Fatal read error on socket transport",
            ),
        }
    }

    /// A protocol callback raised: `KeyboardInterrupt` and `SystemExit` propagate,
    /// anything else closes the transport as asyncio's `_fatal_error` does.
    fn protocol_failed(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
        if is_fatal(slf.py(), &err) {
            return Err(err);
        }
        StreamTransport::fatal_error(slf, err, message)
    }
}
