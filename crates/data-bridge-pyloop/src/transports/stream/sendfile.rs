//! `loop.sendfile()`: once the write buffer is empty, file data goes from the file to
//! the socket with `sendfile(2)` while the socket takes it; the caller's future gets
//! `(bytes sent, error or None)`.

use std::num::NonZeroUsize;
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::task::{Context, Poll};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;
use socket2::SockRef;

use super::{After, Inner, StreamTransport};
use crate::core::LoopCore;
use crate::transports::base::retry;

/// A `loop.sendfile()` in progress: data goes from `file` straight to the socket.
pub(super) struct SendfileJob {
    /// A duplicate of the caller's descriptor, owned by the job: the caller may close
    /// its file (and the number be reused) while the job still runs or after it was
    /// cancelled, and the job must never read another file through that number.
    pub(super) file: OwnedFd,
    pub(super) offset: u64,
    pub(super) remaining: Option<u64>,
    pub(super) sent: u64,
    pub(super) future: Py<PyAny>,
}

impl SendfileJob {
    /// A job sending `count` bytes (to end of file if `None`) of the file `file_fd`
    /// from `offset`, on a duplicate of the descriptor; `future` gets the outcome.
    pub(super) fn new(
        file_fd: RawFd,
        offset: u64,
        count: Option<u64>,
        future: Py<PyAny>,
    ) -> std::io::Result<Self> {
        if file_fd < 0 {
            return Err(std::io::Error::from_raw_os_error(libc::EBADF));
        }
        // SAFETY: the caller's file stays open during this call, and the borrow ends
        // once the descriptor is duplicated.
        let file = unsafe { BorrowedFd::borrow_raw(file_fd) }.try_clone_to_owned()?;
        Ok(SendfileJob {
            file,
            offset,
            remaining: count,
            sent: 0,
            future,
        })
    }
}

static SET_RESULT_UNLESS_CANCELLED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl StreamTransport {
    /// Sends file data with `sendfile(2)` while the socket takes it.
    pub(super) fn sendfile_step(&self, inner: &mut Inner, after: &mut After) {
        let Some(io) = inner.io.as_ref() else { return };
        let Some(job) = inner.sendfile.as_mut() else {
            return;
        };
        let mut cx = Context::from_waker(&self.slot.waker);
        let outcome = loop {
            // At most 1 GiB a call (lossless as `usize`), so other sources get a turn.
            let want = match job.remaining {
                Some(0) => break Ok(true),
                Some(n) => n.min(1 << 30) as usize,
                None => 1 << 30,
            };
            let mut guard = match io.poll_write_ready(&mut cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => break Err(e),
                Poll::Pending => break Ok(false),
            };
            let res = guard.try_io(|fd| {
                let offset = usize::try_from(job.offset)
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
                let sock = SockRef::from(fd.get_ref());
                retry(|| sock.sendfile(&job.file, offset, NonZeroUsize::new(want)))
                    .map(|n| n as u64)
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
    pub(super) fn finish_sendfile(
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
}
