//! Receiving: one `recvfrom` per call into a per-thread buffer, turned into the
//! `(data, address)` pair `datagram_received` takes, or the error `error_received` gets.

use std::cell::RefCell;
use std::mem::MaybeUninit;
use std::task::{Context, Poll};

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use socket2::{SockAddr, SockRef};

use super::address::addr_to_py;
use super::{DatagramTransport, Event};
use crate::transports::base::{retry, Fd};

/// Largest datagram; the per-thread receive buffer.
const MAX_DATAGRAM: usize = 64 * 1024;

thread_local! {
    static RECV_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

fn recv_from(fd: &Fd, buf: &mut [u8]) -> std::io::Result<(usize, SockAddr)> {
    // SAFETY: viewing initialised bytes as `MaybeUninit` is sound as long as nothing
    // writes uninitialised ones through the view, and `recvfrom(2)` writes only data.
    let buf = unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) };
    let sock = SockRef::from(fd);
    retry(|| sock.recv_from(buf))
}

impl DatagramTransport {
    /// Receives one datagram if the socket has one.
    pub(super) fn recv_one(&self, py: Python<'_>) -> Option<Event> {
        let mut inner = self.inner.lock();
        if !inner.flow.reading_started || !inner.flow.is_reading() {
            return None;
        }
        let io = inner.io.as_ref()?;
        let mut cx = Context::from_waker(&self.slot.waker);
        let mut guard = match io.poll_read_ready(&mut cx) {
            Poll::Ready(Ok(g)) => g,
            Poll::Ready(Err(e)) => return Some(Event::Error(e)),
            Poll::Pending => return None,
        };
        let received = RECV_BUF.with(|cell| {
            let mut buf = cell.borrow_mut();
            match guard.try_io(|fd| recv_from(fd.get_ref(), &mut buf[..])) {
                Ok(Ok((n, addr))) => {
                    Some(Ok((PyBytes::new(py, &buf[..n]).into_any().unbind(), addr)))
                }
                Ok(Err(e)) => Some(Err(e)),
                Err(_would_block) => None,
            }
        })?;
        let (data, addr) = match received {
            Ok(v) => v,
            Err(e) => return Some(Event::Error(e)),
        };
        let source = match &inner.last_source {
            Some((a, obj)) if *a == addr => obj.clone_ref(py),
            _ => {
                let obj = addr_to_py(py, &addr).unwrap_or_else(|_| py.None());
                inner.last_source = Some((addr, obj.clone_ref(py)));
                obj
            }
        };
        Some(Event::Datagram(data, source))
    }
}
