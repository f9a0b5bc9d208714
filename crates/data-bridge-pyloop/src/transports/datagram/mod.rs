//! The native core of PyLoop's datagram transport (UDP and Unix datagram sockets).
//!
//! Python sees `data_bridge.pyloop.datagram.DatagramTransport`, whose methods are
//! bound to this core like the socket transport's. On readiness the core receives up
//! to [`BATCH`] datagrams (stopping at `EAGAIN`) and hands each to
//! `protocol.datagram_received(data, addr)`; `sendto` sends at once and queues only
//! what the socket refuses. Socket errors go to `protocol.error_received(exc)`, as in
//! asyncio. Like the stream transport's, these callbacks run in the transport's context.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::task::{Context, Poll};

use parking_lot::Mutex;
use pyo3::exceptions::{PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString, PyTuple};
use socket2::{SockAddr, SockRef};
use tokio::io::unix::AsyncFd;

use crate::core::LoopCore;
use crate::errors::os_error;
use crate::handle::copy_context;
use crate::io::Source;
use crate::transports::base::{
    finish_lost, in_context, is_fatal, report, retry, schedule_lost, schedule_start, Fd, Flow, Slot,
};

/// Datagrams received per readiness report before giving other sources a turn.
const BATCH: usize = 16;
/// Largest datagram; the per-thread receive buffer.
const MAX_DATAGRAM: usize = 64 * 1024;

thread_local! {
    static RECV_BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; MAX_DATAGRAM]);
}

struct Inner {
    io: Option<AsyncFd<Fd>>,
    lp: Py<LoopCore>,
    protocol: Option<Py<PyAny>>,
    /// The context protocol callbacks run in (see `in_context`), released with the
    /// protocol.
    context: Option<Py<PyAny>>,
    datagram_received: Option<Py<PyAny>>,
    transport: Option<Py<PyAny>>,
    sock: Option<Py<PyAny>>,
    /// The connected peer (`remote_addr`), which `sendto` must match if given.
    address: Option<Py<PyAny>>,
    queue: VecDeque<(Vec<u8>, Option<SockAddr>)>,
    queued: usize,
    /// The last destination converted from Python, reused while it repeats.
    last_dest: Option<(Py<PyAny>, SockAddr)>,
    /// The last source address converted to Python, reused while it repeats.
    last_source: Option<(SockAddr, Py<PyAny>)>,
    flow: Flow,
    conn_lost: u32,
}

/// Native datagram transport core; see the module documentation.
#[pyclass(module = "data_bridge._native", frozen)]
pub struct DatagramTransport {
    inner: Mutex<Inner>,
    slot: Slot,
    /// `sendto` on a connected socket uses `send`.
    connected: bool,
    /// Python 3.12 started sending empty datagrams; 3.11 silently drops them.
    send_empty: bool,
}

fn addr_to_py(py: Python<'_>, addr: &SockAddr) -> PyResult<Py<PyAny>> {
    if let Some(sa) = addr.as_socket() {
        return Ok(match sa {
            SocketAddr::V4(v4) => (v4.ip().to_string(), v4.port())
                .into_pyobject(py)?
                .into_any()
                .unbind(),
            SocketAddr::V6(v6) => (v6.ip().to_string(), v6.port(), v6.flowinfo(), v6.scope_id())
                .into_pyobject(py)?
                .into_any()
                .unbind(),
        });
    }
    if addr.is_unix() {
        if let Some(path) = addr.as_pathname() {
            return Ok(PyString::new(py, &path.to_string_lossy())
                .into_any()
                .unbind());
        }
        if let Some(name) = addr.as_abstract_namespace() {
            let mut raw = vec![0u8];
            raw.extend_from_slice(name);
            return Ok(PyBytes::new(py, &raw).into_any().unbind());
        }
    }
    Ok(py.None())
}

/// Converts a Python address to a socket address when that needs no name lookup.
fn addr_from_py(addr: &Bound<'_, PyAny>) -> Option<SockAddr> {
    if let Ok(t) = addr.cast::<PyTuple>() {
        let host: String = t.get_item(0).ok()?.extract().ok()?;
        let port: u16 = t.get_item(1).ok()?.extract().ok()?;
        let ip: IpAddr = match host.as_str() {
            "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            h => h.parse().ok()?,
        };
        return Some(match ip {
            IpAddr::V4(v4) => SockAddr::from(SocketAddr::new(IpAddr::V4(v4), port)),
            IpAddr::V6(v6) => {
                let flow: u32 = t.get_item(2).and_then(|v| v.extract()).unwrap_or(0);
                let scope: u32 = t.get_item(3).and_then(|v| v.extract()).unwrap_or(0);
                SockAddr::from(std::net::SocketAddrV6::new(v6, port, flow, scope))
            }
        });
    }
    if let Ok(path) = addr.extract::<String>() {
        return SockAddr::unix(path).ok();
    }
    None
}

fn recv_from(fd: &Fd, buf: &mut [u8]) -> std::io::Result<(usize, SockAddr)> {
    // SAFETY: viewing initialised bytes as `MaybeUninit` is sound as long as nothing
    // writes uninitialised ones through the view, and `recvfrom(2)` writes only data.
    let buf = unsafe { &mut *(std::ptr::from_mut::<[u8]>(buf) as *mut [MaybeUninit<u8>]) };
    let sock = SockRef::from(fd);
    retry(|| sock.recv_from(buf))
}

/// Sends one datagram, to `dest` or to the connected peer, without `SIGPIPE`.
fn send_to(fd: &Fd, data: &[u8], dest: Option<&SockAddr>) -> std::io::Result<usize> {
    let sock = SockRef::from(fd);
    match dest {
        Some(addr) => retry(|| sock.send_to_with_flags(data, addr, libc::MSG_NOSIGNAL)),
        None => retry(|| sock.send_with_flags(data, libc::MSG_NOSIGNAL)),
    }
}

/// What to call once the lock is released.
enum Event {
    Datagram(Py<PyAny>, Py<PyAny>),
    Error(std::io::Error),
}

impl DatagramTransport {
    fn protocol(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.inner.lock().protocol.as_ref().map(|p| p.clone_ref(py))
    }

    fn error_received(slf: &Bound<'_, Self>, err: &std::io::Error) -> PyResult<()> {
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

    fn fatal_error(slf: &Bound<'_, Self>, err: PyErr, message: &str) -> PyResult<()> {
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

    fn force_close(slf: &Bound<'_, Self>, exc: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let lp = {
            let mut inner = slf.get().inner.lock();
            if inner.conn_lost > 0 {
                return Ok(());
            }
            inner.queue.clear();
            inner.queued = 0;
            inner.flow.closing = true;
            inner.conn_lost += 1;
            inner.lp.clone_ref(py)
        };
        schedule_lost(lp.get(), slf.as_any(), exc)
    }

    /// Receives one datagram if the socket has one.
    fn recv_one(&self, py: Python<'_>) -> Option<Event> {
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

    fn flush(&self, inner: &mut Inner) -> Result<(), std::io::Error> {
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

    /// Called by the loop when Tokio reported the socket ready (or on a recheck).
    pub(crate) fn on_ready(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let context = slf
            .get()
            .inner
            .lock()
            .context
            .as_ref()
            .map(|c| c.clone_ref(py));
        in_context(py, context.as_ref(), || DatagramTransport::dispatch(slf))
    }

    /// Flushes queued datagrams, then receives a batch, calling the protocol.
    fn dispatch(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let (flush_err, resume, lost) = {
            let mut inner = this.inner.lock();
            if inner.queue.is_empty() {
                (None, false, false)
            } else {
                let err = this.flush(&mut inner).err();
                let queued = inner.queued;
                let resume = inner.flow.should_resume(queued);
                let lost = inner.queue.is_empty() && inner.flow.closing && inner.conn_lost == 0;
                if lost {
                    inner.conn_lost += 1;
                }
                (err, resume, lost)
            }
        };
        if let Some(e) = flush_err {
            DatagramTransport::error_received(slf, &e)?;
        }
        if resume {
            if let Some(p) = this.protocol(py) {
                if let Err(e) = p.bind(py).call_method0("resume_writing") {
                    if is_fatal(py, &e) {
                        return Err(e);
                    }
                }
            }
        }
        if lost {
            DatagramTransport::call_connection_lost(slf, py.None())?;
            return Ok(());
        }
        let mut more = true;
        for _ in 0..BATCH {
            match this.recv_one(py) {
                None => {
                    more = false;
                    break;
                }
                Some(Event::Error(e)) => DatagramTransport::error_received(slf, &e)?,
                Some(Event::Datagram(data, addr)) => {
                    let cached = this
                        .inner
                        .lock()
                        .datagram_received
                        .as_ref()
                        .map(|c| c.clone_ref(py));
                    let cb = match cached {
                        Some(cb) => Ok(cb.into_bound(py)),
                        None => match this.protocol(py) {
                            Some(p) => p.into_bound(py).getattr("datagram_received"),
                            None => continue,
                        },
                    };
                    {
                        match cb.and_then(|cb| cb.call1((data, addr))) {
                            Ok(_) => {}
                            Err(e) if is_fatal(py, &e) => return Err(e),
                            Err(e) => {
                                return DatagramTransport::fatal_error(
                                    slf,
                                    e,
                                    "Fatal error: protocol.datagram_received() call failed.",
                                )
                            }
                        }
                    }
                }
            }
        }
        let inner = this.inner.lock();
        if let Some(io) = inner.io.as_ref() {
            let mut cx = Context::from_waker(&this.slot.waker);
            let reading = inner.flow.reading_started && inner.flow.is_reading();
            let again = (reading && (more || io.poll_read_ready(&mut cx).is_ready()))
                || (!inner.queue.is_empty() && io.poll_write_ready(&mut cx).is_ready());
            if again {
                this.slot.recheck(inner.lp.get());
            }
        }
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
                    inner.context.take(),
                ),
            )
        };
        if let Some(sock) = sock {
            let _ = sock.bind(py).call_method0("close");
        }
    }

    fn call_connection_lost(slf: &Bound<'_, Self>, exc: Py<PyAny>) -> PyResult<()> {
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

    fn sendto_bytes(
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
        let lp = {
            let mut inner = slf.get().inner.lock();
            if inner.flow.closing {
                return Ok(());
            }
            inner.flow.closing = true;
            if !inner.queue.is_empty() {
                return Ok(());
            }
            inner.conn_lost += 1;
            inner.lp.clone_ref(py)
        };
        schedule_lost(lp.get(), slf.as_any(), py.None().into_bound(py))
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
