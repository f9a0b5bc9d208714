//! The server: binds TCP or Unix listeners, accepts on PyLoop's Tokio runtime, serves
//! HTTP/1.1 and HTTP/2 (cleartext, prior knowledge) on the same port with Hyper, and
//! drains gracefully on shutdown.
//!
//! A server either binds its own socket or adopts a listening socket inherited from a
//! supervisor process (`fd=`), so that several worker processes accept from one queue
//! and a worker that stops accepting leaves waiting connections to the others.
//!
//! With a metrics route, the server also posts a probe to the event loop every second
//! and records how late the loop ran it (`data_bridge_event_loop_lag_seconds`).

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use data_bridge_pyloop::wake::Remote;
use data_bridge_pyloop::{runtime, LoopCore};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use parking_lot::Mutex;
use pyo3::prelude::*;
use socket2::{Domain, Socket, Type};
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
use crate::proxy::TrustedProxies;
use crate::routes::RouteTable;
use crate::service::{handle, AppState, Limits};
use crate::tls::{PemBundle, Tls, TlsMaterial};
use crate::websocket::WsLimits;
use tokio_rustls::TlsAcceptor;

/// How long connections accepted right before shutdown get to start their first request.
const FIRST_REQUEST_SETTLE: Duration = Duration::from_millis(100);

/// How long an HTTP/2 keep-alive ping may go unanswered before the connection is
/// closed.
const HTTP2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The longest duration any setting accepts (a year): longer ones are surely
/// mistakes, and adding them to the clock could overflow it.
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// `value` seconds of the setting `name`, or why it cannot be used.
pub(crate) fn seconds(name: &str, value: f64) -> Result<Duration, ApiError> {
    if !(0.0..=MAX_SECONDS).contains(&value) {
        return Err(ApiError::Config(format!(
            "{name} must be a number of seconds from 0 to {MAX_SECONDS}, not {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

/// How often the event loop's lag is measured.
const LAG_PROBE_EVERY: Duration = Duration::from_secs(1);

/// What `Server.start()` bound.
enum Listener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
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

fn bind_tcp(
    host: &str,
    port: u16,
    backlog: i32,
    reuse_port: bool,
) -> Result<std::net::TcpListener, ApiError> {
    let addr: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address for host")
        })?;
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

fn bind_unix(path: &str, backlog: i32) -> Result<std::os::unix::net::UnixListener, ApiError> {
    use std::os::unix::fs::FileTypeExt;
    // A stale socket from an earlier run is replaced; any other file is left alone.
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)?,
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{path} exists and is not a socket"),
            )
            .into())
        }
        Err(_) => {}
    }
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.bind(&socket2::SockAddr::unix(path)?)?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
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
    shared: Arc<data_bridge_pyloop::wake::Shared>,
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
            shared.push_remote(Remote::Call(Box::new(move |_py| metrics.probe_done())));
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

async fn accept_loop(
    listener: Listener,
    tls: Option<Arc<Tls>>,
    state: Arc<AppState>,
    stop: Arc<Notify>,
    graceful: Arc<Mutex<Option<GracefulShutdown>>>,
    done: Arc<Notify>,
    kill: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(state.limits.header_timeout)
        .max_buf_size(state.limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(state.limits.http2_keep_alive_interval)
        .keep_alive_timeout(HTTP2_PING_TIMEOUT)
        // The same header budget as HTTP/1 (Hyper's HTTP/2 default is 16 KiB): past
        // it a request gets 431.
        .max_header_list_size(u32::try_from(state.limits.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
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

#[pymethods]
impl Server {
    /// A server for the routes in `table`. `access_log` is `"text"`, `"json"` or
    /// `None` (off); with `proxy_headers`, `X-Forwarded-For` and `-Proto` from peers
    /// listed in `forwarded_allow_ips` set the client and scheme (and
    /// `X-Forwarded-Host` the host, with `forwarded_host`); `restarts_fd` is the
    /// supervisor's shared metrics file (its restart count and every worker's
    /// metrics, see `metrics/region.rs`).
    #[new]
    #[pyo3(signature = (table, *, max_body_size=16 * 1024 * 1024, max_pending=1024, sync_threads=40, header_timeout=30.0, max_header_bytes=65536, body_timeout=60.0, keep_alive_timeout=75.0, write_timeout=60.0, limit_connections=Some(4096), http2_keep_alive_interval=Some(30.0), ws_handshake_timeout=10.0, ws_ping_interval=Some(20.0), ws_ping_timeout=20.0, debug=false, access_log=None, proxy_headers=false, forwarded_allow_ips="127.0.0.1", forwarded_host=false, restarts_fd=None, tls=None))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        table: &RouteTable,
        max_body_size: usize,
        max_pending: usize,
        sync_threads: usize,
        header_timeout: f64,
        max_header_bytes: usize,
        body_timeout: f64,
        keep_alive_timeout: f64,
        write_timeout: f64,
        limit_connections: Option<usize>,
        http2_keep_alive_interval: Option<f64>,
        ws_handshake_timeout: f64,
        ws_ping_interval: Option<f64>,
        ws_ping_timeout: f64,
        debug: bool,
        access_log: Option<&str>,
        proxy_headers: bool,
        forwarded_allow_ips: &str,
        forwarded_host: bool,
        restarts_fd: Option<i32>,
        tls: Option<PemBundle>,
    ) -> PyResult<Self> {
        let access_log = access_log
            .map(|name| {
                LogFormat::parse(name).ok_or_else(|| {
                    ApiError::Config(format!(
                        "access_log must be \"text\", \"json\" or None, not {name:?}"
                    ))
                })
            })
            .transpose()?;
        let proxies = if proxy_headers {
            Some(TrustedProxies::parse(forwarded_allow_ips)?.with_forwarded_host(forwarded_host))
        } else {
            None
        };
        let restarts = restarts_fd.map(dup_fd).transpose()?;
        Ok(Server {
            table: Mutex::new(Some(table.take()?)),
            limits: Limits {
                max_body_size,
                header_timeout: seconds("header_timeout", header_timeout)?
                    .max(Duration::from_millis(1)),
                max_header_bytes,
                body_timeout: seconds("body_timeout", body_timeout)?,
                keep_alive_timeout: seconds("keep_alive_timeout", keep_alive_timeout)?,
                write_timeout: seconds("write_timeout", write_timeout)?,
                max_connections: limit_connections,
                http2_keep_alive_interval: http2_keep_alive_interval
                    .filter(|s| *s > 0.0)
                    .map(|s| seconds("http2_keep_alive_interval", s))
                    .transpose()?,
                websocket: WsLimits {
                    handshake_timeout: seconds("ws_handshake_timeout", ws_handshake_timeout)?,
                    ping_interval: ws_ping_interval
                        .filter(|s| *s > 0.0)
                        .map(|s| seconds("ws_ping_interval", s))
                        .transpose()?,
                    ping_timeout: seconds("ws_ping_timeout", ws_ping_timeout)?,
                },
            },
            max_pending,
            sync_threads,
            debug,
            access_log,
            proxies,
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

    /// Binds (TCP on `host:port`, or the Unix socket `uds`), or adopts the listening
    /// socket `fd`, and starts accepting on the runtime that `lp` drives. Returns the
    /// bound address (`(host, port)` or the socket path).
    #[pyo3(signature = (lp, host="127.0.0.1", port=8000, *, uds=None, backlog=2048, reuse_port=false, fd=None))]
    fn start(
        &self,
        py: Python<'_>,
        lp: &Bound<'_, LoopCore>,
        host: &str,
        port: u16,
        uds: Option<&str>,
        backlog: i32,
        reuse_port: bool,
        fd: Option<i32>,
    ) -> PyResult<Py<PyAny>> {
        let table = self
            .table
            .lock()
            .take()
            .ok_or(ApiError::State("the server was already started"))?;
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
            observers: Observers {
                metrics: metrics.clone(),
                access_log,
            },
            proxies: self.proxies.clone(),
            middleware,
        });
        let _guard = runtime::get().enter();
        let adopted = fd.map(adopt_fd).transpose()?;
        let (listener, bound): (Listener, Py<PyAny>) = match (adopted, uds) {
            (Some(socket), _) => match socket.local_addr().map_err(ApiError::Bind)?.as_socket() {
                Some(local) => {
                    let l =
                        tokio::net::TcpListener::from_std(socket.into()).map_err(ApiError::Bind)?;
                    (
                        Listener::Tcp(l),
                        (local.ip().to_string(), local.port())
                            .into_pyobject(py)?
                            .into_any()
                            .unbind(),
                    )
                }
                None => {
                    let path = socket
                        .local_addr()?
                        .as_pathname()
                        .map(|p| p.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    let l = tokio::net::UnixListener::from_std(socket.into())
                        .map_err(ApiError::Bind)?;
                    (
                        Listener::Unix(l),
                        path.into_pyobject(py)?.into_any().unbind(),
                    )
                }
            },
            (None, Some(path)) => {
                let std_listener = bind_unix(path, backlog)?;
                let l = tokio::net::UnixListener::from_std(std_listener).map_err(ApiError::Bind)?;
                (
                    Listener::Unix(l),
                    path.into_pyobject(py)?.into_any().unbind(),
                )
            }
            (None, None) => {
                let std_listener = bind_tcp(host, port, backlog, reuse_port)?;
                let local = std_listener.local_addr().map_err(ApiError::Bind)?;
                let l = tokio::net::TcpListener::from_std(std_listener).map_err(ApiError::Bind)?;
                (
                    Listener::Tcp(l),
                    (local.ip().to_string(), local.port())
                        .into_pyobject(py)?
                        .into_any()
                        .unbind(),
                )
            }
        };
        let stop = Arc::new(Notify::new());
        let done = Arc::new(Notify::new());
        let graceful = Arc::new(Mutex::new(Some(GracefulShutdown::new())));
        let (kill, kill_rx) = watch::channel(false);
        lp.get().hold_external();
        if let Some(metrics) = metrics {
            runtime::get().spawn(probe_loop_lag(
                metrics,
                state.clone(),
                lp.get().shared(),
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
        Ok(bound)
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
        let lp = running.lp.bind(py);
        let future = lp.call_method0("create_future")?.unbind();
        let shared = lp.get().shared();
        let lp_ref = running.lp.clone_ref(py);
        let fut_ref = future.clone_ref(py);
        let graceful = running.graceful.lock().take();
        running.stop.notify_one();
        let done = running.done.clone();
        let kill = running.kill;
        let lp_for_task = Arc::new(lp_ref);
        let fut_for_task = Arc::new(fut_ref);
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
            shared.push_remote(Remote::Call(Box::new(move |py| {
                lp_for_task.get().release_external();
                let fut = fut_for_task.bind(py);
                if !fut
                    .call_method0("done")
                    .and_then(|d| d.is_truthy())
                    .unwrap_or(true)
                {
                    let _ = fut.call_method1("set_result", (py.None(),));
                }
            })));
        });
        Ok(future)
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
        let unbound = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        assert!(adopt_fd(unbound.as_raw_fd()).is_err());
        assert!(adopt_fd(-1).is_err());
        Ok(())
    }
}
