//! The write path: `write()` sends at once while nothing is buffered and keeps only
//! what the socket refuses; the buffer is flushed when the socket becomes writable,
//! with asyncio's flow control (`pause_writing` / `resume_writing`) around it. After
//! the buffer empties, `write_eof()` shuts the write side down.

use std::net::Shutdown;
use std::task::{Context, Poll};

use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use socket2::SockRef;
use tokio::io::unix::AsyncFd;

use super::{After, Inner, StreamTransport};
use crate::errors::os_error;
use crate::transports::base::{retry, Fd};

/// Writes after the connection is lost are counted and, past this many, logged.
const LOG_THRESHOLD_FOR_CONNLOST_WRITES: u32 = 5;

/// `send(2)` without `SIGPIPE`: a peer that went away is an `EPIPE` error instead.
fn sys_send(fd: &Fd, data: &[u8]) -> std::io::Result<usize> {
    retry(|| SockRef::from(fd).send_with_flags(data, libc::MSG_NOSIGNAL))
}

/// Shuts the write side down (`write_eof`). A failure is left alone: it means the
/// connection is gone, which the next read or write reports.
pub(super) fn shut_write(io: &AsyncFd<Fd>) {
    let _ = SockRef::from(io.get_ref()).shutdown(Shutdown::Write);
}

impl StreamTransport {
    /// Sends as much of the buffer as the socket takes. Returns `Err` on a socket error.
    pub(super) fn flush(&self, inner: &mut Inner) -> std::io::Result<()> {
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
            match guard.try_io(|fd| sys_send(fd.get_ref(), data)) {
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
    pub(super) fn write_ready(&self, inner: &mut Inner, after: &mut After) {
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
                shut_write(io);
            }
        }
    }

    pub(super) fn data_bytes(data: &Bound<'_, PyAny>) -> PyResult<Option<Vec<u8>>> {
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

    pub(super) fn write_slice(slf: &Bound<'_, Self>, data: &[u8]) -> PyResult<()> {
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
                        match guard.try_io(|fd| sys_send(fd.get_ref(), data)) {
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
                    _ => match sys_send(io.get_ref(), data) {
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
