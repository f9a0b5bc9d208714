//! The server: accepts on a TCP or Unix listening socket on PyLoop's Tokio runtime,
//! serves HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) on the same port with
//! Hyper, and drains gracefully on shutdown.
//!
//! Python binds the socket (`python/data_bridge/listener.py`, before the app's
//! start-up hooks run, or in a supervisor) and the server adopts a duplicate of it
//! (`Server.start(lp, fd)`), so that several worker processes accept from one queue
//! and a worker that stops accepting leaves waiting connections to the others.
//! Its settings are one [`ServerOptions`].
//!
//! With a metrics route, the server also posts a probe to the event loop every second
//! and records how late the loop ran it (`data_bridge_event_loop_lag_seconds`).

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use data_bridge_pyloop::bridge::LoopHandle;
use data_bridge_pyloop::{runtime, LoopCore};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use pyo3::prelude::*;
use socket2::{Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Notify};

use crate::access_log::{AccessLog, LogFormat};
use crate::background::Pending;
use crate::completion::Observers;
use crate::connection::{sniff, Activity, ConnIo, ConnLimits};
use crate::dispatch::Dispatcher;
use crate::endpoint::Endpoint;
use crate::errors::ApiError;
use crate::metrics::Metrics;
use crate::options::{seconds, ServerOptions};
use crate::proxy::TrustedProxies;
use crate::routes::RouteTable;
use crate::service::{handle, AppState, Limits};
use crate::tls::{PemBundle, Tls, TlsMaterial};
use tokio_rustls::TlsAcceptor;

/// How long connections accepted right before shutdown get to start their first request.
const FIRST_REQUEST_SETTLE: Duration = Duration::from_millis(100);

/// How long an HTTP/2 keep-alive ping may go unanswered before the connection is
/// closed.
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// How often the event loop's lag is measured.
const LAG_PROBE_EVERY: Duration = Duration::from_secs(1);

/// What `Server.start()` accepts on.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// Where a listener accepts, as `Server.start()` reports it.
enum Address {
    Tcp(SocketAddr),
    Unix(String),
}

impl Listener {
    /// Adopts the listening socket `fd` (see [`adopt_fd`]) on the runtime entered by
    /// the caller.
    fn adopt(fd: i32) -> Result<(Listener, Address), ApiError> {
        let socket = adopt_fd(fd)?;
        let local = socket.local_addr().map_err(ApiError::Bind)?;
        if let Some(addr) = local.as_socket() {
            let l = tokio::net::TcpListener::from_std(socket.into()).map_err(ApiError::Bind)?;
            return Ok((Listener::Tcp(l), Address::Tcp(addr)));
        }
        let path = local
            .as_pathname()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let l = tokio::net::UnixListener::from_std(socket.into()).map_err(ApiError::Bind)?;
        Ok((Listener::Unix(l), Address::Unix(path)))
    }
}

impl Address {
    /// `(host, port)` or the socket path.
    fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Address::Tcp(a) => (a.ip().to_string(), a.port())
                .into_pyobject(py)?
                .into_any()
                .unbind(),
            Address::Unix(path) => path.into_pyobject(py)?.into_any().unbind(),
        })
    }
}

struct Running {
    stop: Arc<Notify>,
    kill: watch::Sender<bool>,
    graceful: Arc<Mutex<Option<GracefulShutdown>>>,
    done: Arc<Notify>,
    lp: Py<LoopCore>,
}

/// An HTTP server for one app (`data_bridge._native.Server`).
#[pyclass(module = "data_bridge._native", frozen)]
pub struct Server {
    table: Mutex<Option<RouteTable>>,
    limits: Limits,
    max_pending: usize,
    sync_threads: usize,
    debug: bool,
    access_log: Option<LogFormat>,
    proxies: Option<TrustedProxies>,
    restarts: Option<File>,
    ready: Arc<AtomicBool>,
    served: Arc<AtomicU64>,
    running: Mutex<Option<Running>>,
    background: Pending,
    tls: Option<Arc<Tls>>,
}

/// Duplicates `fd` (close-on-exec): the copy is the caller's to own, and `fd` stays
/// the lender's.
fn dup_fd(fd: i32) -> Result<File, ApiError> {
    // `BorrowedFd` may not hold -1 (its niche); any other bad number yields EBADF.
    if fd < 0 {
        return Err(std::io::Error::from_raw_os_error(libc::EBADF).into());
    }
    // SAFETY: the descriptor comes from Python, which keeps it open during this call;
    // it is only borrowed for the duplication on the next line.
    let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
    Ok(File::from(borrowed.try_clone_to_owned()?))
}

/// Posts a probe to the loop every [`LAG_PROBE_EVERY`] until `kill` fires; the loop
/// running it records its lag in `metrics`. Also publishes the gauges that the other
/// workers' `/metrics` read.
async fn probe_loop_lag(
    metrics: Arc<Metrics>,
    state: Arc<AppState>,
    event_loop: LoopHandle,
    mut kill: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(LAG_PROBE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = tokio::select! {
            due = every.tick() => due.into_std(),
            _ = kill.wait_for(|killed| *killed) => return,
        };
        crate::service::publish_metrics(&metrics, &state);
        if metrics.probe_start(due) {
            let metrics = metrics.clone();
            event_loop.call(move |_py| metrics.probe_done());
        }
    }
}

/// Adopts the listening stream socket `fd` (for example one inherited from a
/// supervisor). The descriptor is duplicated, so the caller keeps ownership of `fd`.
fn adopt_fd(fd: i32) -> Result<Socket, ApiError> {
    let socket = Socket::from(OwnedFd::from(dup_fd(fd)?));
    if socket.r#type()? != Type::STREAM || !socket.is_listener()? {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is not a listening stream socket"),
        )
        .into());
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Serves one connection until it ends, or until `kill` says the grace period is over.
async fn serve_conn<IO, S>(
    builder: &auto::Builder<TokioExecutor>,
    io: IO,
    service: S,
    watcher: Option<hyper_util::server::graceful::Watcher>,
    mut kill: watch::Receiver<bool>,
) where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<
            http::Request<hyper::body::Incoming>,
            Response = http::Response<crate::body::Body>,
            Error = std::convert::Infallible,
        > + Send
        + 'static,
    S::Future: Send + 'static,
{
    // With upgrades, so that a WebSocket handshake can take the connection over.
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let run = async move {
        match watcher {
            Some(w) => {
                let _ = w.watch(conn.into_owned()).await;
            }
            None => {
                let _ = conn.await;
            }
        }
    };
    tokio::select! {
        _ = run => {}
        // Dropping the connection cancels its handlers.
        _ = kill.wait_for(|killed| *killed) => {}
    }
}

/// The answer to a connection past `--limit-connections`, written without reading
/// its request (HTTP/1; an HTTP/2 client just sees the connection close).
const OVER_CAPACITY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
retry-after: 1\r\nconnection: close\r\ncontent-length: 33\r\n\r\n{\"detail\":\"Service Unavailable\"}";

/// Tells a connection over capacity to come back later, within a bounded time.
async fn refuse<IO: AsyncWrite + Unpin>(mut io: IO) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        io.write_all(OVER_CAPACITY).await?;
        io.shutdown().await
    })
    .await;
}

/// An open connection, counted until it is dropped.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What serving one accepted connection needs besides the connection itself.
struct Accepted {
    state: Arc<AppState>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    watcher: Option<hyper_util::server::graceful::Watcher>,
    kill: watch::Receiver<bool>,
}

/// Serves one accepted connection, after its TLS handshake when the server has TLS
/// settings; the handshake must end within the header timeout.
async fn serve_accepted<IO>(io: IO, tls: Option<TlsAcceptor>, conn: Accepted)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    match tls {
        None => serve_http(io, false, conn).await,
        Some(acceptor) => {
            let handshake = acceptor.accept(io);
            if let Ok(Ok(stream)) =
                tokio::time::timeout(conn.state.limits.header_timeout, handshake).await
            {
                serve_http(stream, true, conn).await;
            }
        }
    }
}

/// Serves HTTP on a connection (`secure`: inside TLS): tells HTTP/1 from HTTP/2 within
/// the header timeout, then serves it through [`ConnIo`] with the connection time
/// limits.
async fn serve_http<IO>(mut io: IO, secure: bool, conn: Accepted)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Accepted {
        state,
        builder,
        peer,
        local,
        watcher,
        kill,
    } = conn;
    let limits = &state.limits;
    // Hyper's header timeout starts once it knows the protocol, so a client that
    // sends nothing (or half an HTTP/2 preface) is timed out here.
    let sniffed = match tokio::time::timeout(limits.header_timeout, sniff(&mut io)).await {
        Ok(Ok(bytes)) if !bytes.is_empty() => bytes,
        _ => return,
    };
    let activity = Activity::default();
    let conn_limits = ConnLimits {
        keep_alive: limits.keep_alive_timeout,
        write: limits.write_timeout,
    };
    let io = ConnIo::new(io, sniffed, activity.clone(), conn_limits);
    let service = service_fn(move |req| {
        let state = state.clone();
        let busy = activity.begin();
        async move {
            let resp = handle(state, req, peer, local, secure).await;
            Ok::<_, std::convert::Infallible>(busy.until_sent(resp))
        }
    });
    serve_conn(&builder, io, service, watcher, kill).await;
}

/// Hyper's HTTP/1 and HTTP/2 connection settings for `limits`.
fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.http2_keep_alive_interval)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT)
        // The same header budget as HTTP/1 (Hyper's HTTP/2 default is 16 KiB): past
        // it a request gets 431.
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

/// Accepts connections until `stop`, serving each on its own task; past the
/// connection limit, a new one is told to come back later.
async fn accept_loop(
    listener: Listener,
    tls: Option<Arc<Tls>>,
    state: Arc<AppState>,
    stop: Arc<Notify>,
    graceful: Arc<Mutex<Option<GracefulShutdown>>>,
    done: Arc<Notify>,
    kill: watch::Receiver<bool>,
) {
    let builder = Arc::new(http_builder(&state.limits));
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let accepted = tokio::select! {
            _ = stop.notified() => break,
            r = accept(&listener) => r,
        };
        let (io, peer, local) = match accepted {
            Ok(v) => v,
            // Out of descriptors and the like: wait a little instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let count = open.fetch_add(1, Ordering::AcqRel) + 1;
        let slot = Open(open.clone());
        if state.limits.max_connections.is_some_and(|max| count > max) {
            if tls.is_some() {
                // Plain text would mean nothing inside TLS: just close.
                continue;
            }
            tokio::spawn(async move {
                let _slot = slot;
                match io {
                    Conn::Tcp(stream) => refuse(stream).await,
                    Conn::Unix(stream) => refuse(stream).await,
                }
            });
            continue;
        }
        let conn = Accepted {
            state: state.clone(),
            builder: builder.clone(),
            peer,
            local,
            watcher: graceful.lock().as_ref().map(|g| g.watcher()),
            kill: kill.clone(),
        };
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        tokio::spawn(async move {
            let _slot = slot;
            match io {
                Conn::Tcp(s) => serve_accepted(s, acceptor, conn).await,
                Conn::Unix(s) => serve_accepted(s, acceptor, conn).await,
            }
        });
    }
    drop(listener);
    done.notify_one();
}

enum Conn {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(
    listener: &Listener,
) -> std::io::Result<(Conn, Option<SocketAddr>, Option<SocketAddr>)> {
    match listener {
        Listener::Tcp(l) => {
            let (stream, peer) = l.accept().await?;
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            Ok((Conn::Tcp(stream), Some(peer), local))
        }
        Listener::Unix(l) => {
            let (stream, _) = l.accept().await?;
            Ok((Conn::Unix(stream), None, None))
        }
    }
}

impl Server {
    /// Everything a connection needs, from the routes in `table` and the loop `lp`
    /// that runs Python handlers; also the metrics, when the app has a metrics route.
    fn app_state(
        &self,
        table: RouteTable,
        lp: &Bound<'_, LoopCore>,
    ) -> Result<(Arc<AppState>, Option<Arc<Metrics>>), ApiError> {
        let dispatcher = Dispatcher::new(
            lp.get().shared(),
            lp.clone().into_any().unbind(),
            self.max_pending,
            self.sync_threads,
            self.debug,
            self.background.clone(),
        );
        let middleware = table.take_middleware();
        let router = table.into_router();
        let metrics = router
            .endpoints()
            .any(|e| matches!(e, Endpoint::Metrics))
            .then(|| -> Result<Arc<Metrics>, ApiError> {
                Ok(Arc::new(Metrics::new(
                    router.templates(),
                    self.restarts.as_ref(),
                )?))
            })
            .transpose()?;
        let access_log = self
            .access_log
            .map(AccessLog::to_stderr)
            .transpose()
            .map_err(ApiError::Bind)?;
        let state = Arc::new(AppState {
            router,
            dispatcher,
            limits: self.limits.clone(),
            ready: self.ready.clone(),
            served: self.served.clone(),
            observers: Arc::new(Observers {
                metrics: metrics.clone(),
                access_log,
            }),
            proxies: self.proxies.clone(),
            middleware,
        });
        Ok((state, metrics))
    }

    /// Starts accepting on `listener` (and probing the loop's lag, with `metrics`) on
    /// the runtime, and records how to stop.
    fn run(
        &self,
        lp: &Bound<'_, LoopCore>,
        listener: Listener,
        state: Arc<AppState>,
        metrics: Option<Arc<Metrics>>,
    ) {
        let stop = Arc::new(Notify::new());
        let done = Arc::new(Notify::new());
        let graceful = Arc::new(Mutex::new(Some(GracefulShutdown::new())));
        let (kill, kill_rx) = watch::channel(false);
        lp.get().hold_external();
        if let Some(metrics) = metrics {
            runtime::get().spawn(probe_loop_lag(
                metrics,
                state.clone(),
                LoopHandle::new(lp),
                kill_rx.clone(),
            ));
        }
        runtime::get().spawn(accept_loop(
            listener,
            self.tls.clone(),
            state,
            stop.clone(),
            graceful.clone(),
            done.clone(),
            kill_rx,
        ));
        self.ready.store(true, Ordering::Release);
        *self.running.lock() = Some(Running {
            stop,
            kill,
            graceful,
            done,
            lp: lp.clone().unbind(),
        });
    }
}

#[pymethods]
impl Server {
    /// A server for the routes in `table` with the settings `options` (by default
    /// [`ServerOptions::default`]); `debug` puts tracebacks in 500 answers;
    /// `restarts_fd` is the supervisor's shared metrics file (its restart count and
    /// every worker's metrics, see `metrics/region.rs`); `tls` is the PEM certificate
    /// chain, key and client CA bundle to serve HTTPS.
    #[new]
    #[pyo3(signature = (table, options=None, *, debug=false, restarts_fd=None, tls=None))]
    fn py_new(
        table: &RouteTable,
        options: Option<ServerOptions>,
        debug: bool,
        restarts_fd: Option<i32>,
        tls: Option<PemBundle>,
    ) -> PyResult<Self> {
        let options = options.unwrap_or_default();
        let restarts = restarts_fd.map(dup_fd).transpose()?;
        Ok(Server {
            table: Mutex::new(Some(table.take()?)),
            limits: options.limits()?,
            max_pending: options.max_pending,
            sync_threads: options.sync_threads,
            debug,
            access_log: options.log_format()?,
            proxies: options.proxies()?,
            restarts,
            ready: Arc::new(AtomicBool::new(false)),
            served: Arc::new(AtomicU64::new(0)),
            running: Mutex::new(None),
            background: Pending::default(),
            tls: tls
                .map(|(cert_chain, key, client_ca)| {
                    Tls::new(&TlsMaterial {
                        cert_chain: &cert_chain,
                        key: &key,
                        client_ca: client_ca.as_deref(),
                    })
                })
                .transpose()?
                .map(Arc::new),
        })
    }

    /// Requests answered so far (every status, native routes included).
    #[getter]
    fn requests_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// Adopts the listening socket `fd` (bound by `data_bridge.serve.listener`; duplicated,
    /// so the caller keeps its own) and starts accepting on the runtime that `lp`
    /// drives. Returns the address: `(host, port)` or the socket path.
    fn start(&self, py: Python<'_>, lp: &Bound<'_, LoopCore>, fd: i32) -> PyResult<Py<PyAny>> {
        let table = self
            .table
            .lock()
            .take()
            .ok_or(ApiError::State("the server was already started"))?;
        let (state, metrics) = self.app_state(table, lp)?;
        let _guard = runtime::get().enter();
        let (listener, address) = Listener::adopt(fd)?;
        self.run(lp, listener, state, metrics);
        address.into_py(py)
    }

    /// Replaces the TLS certificate, key and client CA bundle (PEM bytes) for the
    /// connections accepted from now on (on `SIGHUP`); on error the old ones stay.
    #[pyo3(signature = (cert_chain, key, client_ca=None))]
    fn reload_tls(&self, cert_chain: &[u8], key: &[u8], client_ca: Option<&[u8]>) -> PyResult<()> {
        let tls = self
            .tls
            .as_ref()
            .ok_or(ApiError::State("the server has no TLS settings"))?;
        tls.reload(&TlsMaterial {
            cert_chain,
            key,
            client_ca,
        })?;
        Ok(())
    }

    /// Responses whose background work has not yet been handed to Python (their body
    /// is still being sent, or the hand-over is queued for the loop).
    fn background_pending(&self) -> usize {
        self.background.get()
    }

    /// Stops accepting, lets in-flight requests finish for up to `grace` seconds, then
    /// closes the remaining connections. Returns an asyncio future resolved when done.
    fn shutdown(&self, py: Python<'_>, grace: f64) -> PyResult<Py<PyAny>> {
        let grace = seconds("grace", grace)?;
        let running = self
            .running
            .lock()
            .take()
            .ok_or(ApiError::State("the server is not running"))?;
        self.ready.store(false, Ordering::Release);
        let handle = LoopHandle::new(running.lp.bind(py));
        let (future, finished) = handle.create_future(py)?;
        let lp = running.lp.clone_ref(py);
        let graceful = running.graceful.lock().take();
        running.stop.notify_one();
        let done = running.done.clone();
        let kill = running.kill;
        runtime::get().spawn(async move {
            done.notified().await;
            // Hyper's graceful shutdown closes an HTTP/1 connection that has not yet
            // parsed its first request, and closing it with that request unread resets
            // the client. Connections accepted just before the listener closed get a
            // moment to read their request first. (A per-connection "first request
            // started" signal would be exact; this covers what accept_loop has peeked.)
            tokio::time::sleep(FIRST_REQUEST_SETTLE).await;
            if let Some(g) = graceful {
                let _ = tokio::time::timeout(grace, g.shutdown()).await;
            }
            // Whatever is still running after the grace period is cut off.
            let _ = kill.send(true);
            // Queued in order: the loop stops polling for this server before the
            // awaiter of the shutdown resumes (both run in the same tick).
            handle.call(move |py| lp.bind(py).get().release_external());
            finished.resolve_none();
        });
        Ok(future.unbind())
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn adopts_a_listening_socket_as_a_duplicate() -> Result<(), ApiError> {
        let original = std::net::TcpListener::bind("127.0.0.1:0")?;
        let adopted = adopt_fd(original.as_raw_fd())?;
        assert_ne!(adopted.as_raw_fd(), original.as_raw_fd());
        assert_eq!(
            adopted.local_addr()?.as_socket(),
            Some(original.local_addr()?)
        );
        Ok(())
    }

    #[test]
    fn refuses_what_is_not_a_listening_stream_socket() -> Result<(), ApiError> {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
        assert!(adopt_fd(udp.as_raw_fd()).is_err());
        let unbound = Socket::new(socket2::Domain::IPV4, Type::STREAM, None)?;
        assert!(adopt_fd(unbound.as_raw_fd()).is_err());
        assert!(adopt_fd(-1).is_err());
        Ok(())
    }
}
