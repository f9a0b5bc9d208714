//! Sending: `sendto` sends at once while nothing is queued and queues only what the
//! socket refuses; the queue is flushed when the socket becomes writable.

use std::task::{Context, Poll};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use socket2::{SockAddr, SockRef};

use super::address::addr_from_py;
use super::{DatagramTransport, Inner};
use crate::transports::base::{is_fatal, retry, Fd};

/// Sends one datagram, to `dest` or to the connected peer, without `SIGPIPE`.
fn send_to(fd: &Fd, data: &[u8], dest: Option<&SockAddr>) -> std::io::Result<usize> {
    let sock = SockRef::from(fd);
    match dest {
        Some(addr) => retry(|| sock.send_to_with_flags(data, addr, libc::MSG_NOSIGNAL)),
        None => retry(|| sock.send_with_flags(data, libc::MSG_NOSIGNAL)),
    }
}

impl DatagramTransport {
    pub(super) fn flush(&self, inner: &mut Inner) -> Result<(), std::io::Error> {
        let Some(io) = inner.io.as_ref() else {
            return Ok(());
        };
        let mut cx = Context::from_waker(&self.slot.waker);
        while let Some((data, dest)) = inner.queue.front() {
            let mut guard = match io.poll_write_ready(&mut cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            };
            let target = if self.connected { None } else { dest.as_ref() };
            match guard.try_io(|fd| send_to(fd.get_ref(), data, target)) {
                Ok(Ok(_)) => {
                    if let Some((data, _)) = inner.queue.pop_front() {
                        inner.queued -= data.len();
                    }
                }
                Ok(Err(e)) => {
                    if let Some((data, _)) = inner.queue.pop_front() {
                        inner.queued -= data.len();
                    }
                    return Err(e);
                }
                Err(_would_block) => {}
            }
        }
        Ok(())
    }

    pub(super) fn sendto_bytes(
        slf: &Bound<'_, Self>,
        data: &[u8],
        addr: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if data.is_empty() && !this.send_empty {
            return Ok(());
        }
        let mut inner = this.inner.lock();
        let mut dest = None;
        if let Some(expected) = inner.address.as_ref().map(|a| a.clone_ref(py)) {
            if let Some(addr) = addr {
                if !addr.is_none() && !addr.eq(expected.bind(py))? {
                    return Err(PyValueError::new_err(format!(
                        "Invalid address: must be None or {}",
                        expected.bind(py).repr()?
                    )));
                }
            }
            if inner.conn_lost > 0 {
                inner.conn_lost += 1;
                return Ok(());
            }
        } else if !this.connected {
            let Some(addr) = addr.filter(|a| !a.is_none()) else {
                return Err(PyValueError::new_err(
                    "Invalid address: must be specified for an unconnected socket",
                ));
            };
            dest = match &inner.last_dest {
                Some((obj, sa))
                    if obj.bind(py).is(addr) || obj.bind(py).eq(addr).unwrap_or(false) =>
                {
                    Some(sa.clone())
                }
                _ => match addr_from_py(addr) {
                    Some(sa) => {
                        inner.last_dest = Some((addr.clone().unbind(), sa.clone()));
                        Some(sa)
                    }
                    None => {
                        // Host names and unusual address forms: let Python's socket do it.
                        let sock = inner.sock.as_ref().map(|s| s.clone_ref(py));
                        drop(inner);
                        if let Some(sock) = sock {
                            match sock
                                .bind(py)
                                .call_method1("sendto", (PyBytes::new(py, data), addr))
                            {
                                Ok(_) => return Ok(()),
                                Err(e) if e.is_instance_of::<PyOSError>(py) => {
                                    let errno: Option<i32> = e
                                        .value(py)
                                        .getattr("errno")
                                        .ok()
                                        .and_then(|v| v.extract().ok());
                                    let err = std::io::Error::from_raw_os_error(
                                        errno.unwrap_or(libc::EINVAL),
                                    );
                                    return DatagramTransport::error_received(slf, &err);
                                }
                                Err(e) => return Err(e),
                            }
                        }
                        return Ok(());
                    }
                },
            };
        }
        if inner.flow.closing && inner.conn_lost > 0 {
            inner.conn_lost += 1;
            return Ok(());
        }
        if inner.queue.is_empty() {
            let Some(io) = inner.io.as_ref() else {
                return Ok(());
            };
            match send_to(io.get_ref(), data, dest.as_ref()) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let mut cx = Context::from_waker(&this.slot.waker);
                    if let Poll::Ready(Ok(mut g)) = io.poll_write_ready(&mut cx) {
                        g.clear_ready();
                    }
                    if io.poll_write_ready(&mut cx).is_ready() {
                        this.slot.recheck(inner.lp.get());
                    }
                }
                Err(e) => {
                    drop(inner);
                    return DatagramTransport::error_received(slf, &e);
                }
            }
        }
        inner.queue.push_back((data.to_vec(), dest));
        inner.queued += data.len();
        let queued = inner.queued;
        let pause = inner.flow.should_pause(queued);
        let protocol = inner.protocol.as_ref().map(|p| p.clone_ref(py));
        drop(inner);
        if let (true, Some(p)) = (pause, protocol) {
            if let Err(e) = p.bind(py).call_method0("pause_writing") {
                if is_fatal(py, &e) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}
