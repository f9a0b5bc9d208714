//! WebSockets (RFC 6455 over HTTP/1.1 `Upgrade`): the handshake is routed and its
//! request built by [`crate::service`] like any request, its handler started by the
//! [`Dispatcher`]; the handshake is answered by the handler's `accept()` (or refused by
//! a `close()` before it), then a Tokio task owns the connection and frames are read
//! and written without the GIL.
//!
//! ```text
//!   socket ──▶ reader task ──▶ inbox (≤ QUEUE, ──▶ WebSocketConn.receive()
//!                 │              ≤ INBOX_BYTES)
//!                 │ full: stops reading             empty: a future, resolved by the
//!                 │ (TCP backpressure)              next message (one loop wake-up)
//!   socket ◀── writer task ◀── outbox (≤ QUEUE) ◀── WebSocketConn.send()
//!                                                   full: a future, resolved once
//!                                                   the message is queued
//! ```
//!
//! Pings are answered and fragments reassembled by the codec; a message larger than
//! the server's body size limit closes the connection with 1009, invalid UTF-8 with
//! 1007, a protocol error with 1002. The reader records the client's close code (1006
//! when the connection just dropped) so the handler's next `receive` reports it.
//! The Python side (`data_bridge.websockets.WebSocket`) keeps Starlette's states and
//! always ends with a close: 1000 when the handler returns, 1011 when it raises.
//!
//! Limits ([`WsLimits`]): a connection counts as work in flight (see
//! [`crate::in_flight`]) from its handshake until both the connection and its handler
//! have ended, so past the limit a handshake is answered 503. A handler that neither
//! accepts nor refuses within the handshake timeout is cancelled and the client gets
//! 403. The server pings an open connection every ping interval and closes it (1011)
//! when nothing comes back within the ping timeout; a write the client does not take
//! within the interval plus the timeout ends it too. Below Hyper, upgraded connections
//! have no other time limit, so this is what frees a vanished client's connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use data_bridge_pyloop::bridge::LoopFuture;
use data_bridge_pyloop::runtime;
use futures_util::{SinkExt, StreamExt};
use http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version,
};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{error::ProtocolError, Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;

use crate::body::Body;
use crate::dispatch::Dispatcher;
use crate::endpoint::PyEndpoint;
use crate::errors::ApiError;
use crate::request::RequestData;
use crate::streaming::LoopRef;

/// Messages buffered in each direction between the connection and the handler.
const QUEUE: usize = 16;

/// Bytes of received messages buffered for the handler before the reader stops
/// reading; one message of up to the size limit may still go past it.
const INBOX_BYTES: usize = 1024 * 1024;

/// How long a close handshake we started may wait for the client's reply.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The close code reported when the connection ended without a close frame.
const ABNORMAL: u16 = 1006;

/// The close code sent to a client that stopped answering pings.
const KEEPALIVE_FAILED: u16 = 1011;

/// WebSocket time limits (settings of `_native.Server`).
#[derive(Clone, Copy, Debug)]
pub struct WsLimits {
    /// How long the handler may take to accept or refuse the handshake (403 past it).
    pub handshake_timeout: Duration,
    /// How often an open connection is pinged (`None`: never).
    pub ping_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed.
    pub ping_timeout: Duration,
}

impl Default for WsLimits {
    fn default() -> Self {
        use crate::options::default;
        WsLimits {
            handshake_timeout: Duration::from_secs_f64(default::WS_HANDSHAKE_TIMEOUT),
            ping_interval: default::WS_PING_INTERVAL.map(Duration::from_secs_f64),
            ping_timeout: Duration::from_secs_f64(default::WS_PING_TIMEOUT),
        }
    }
}

/// Whether `req` asks for a WebSocket (`GET`, HTTP/1.1, `Upgrade: websocket`).
pub fn is_upgrade<B>(req: &Request<B>) -> bool {
    let has_token = |name: HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    req.method() == Method::GET
        && req.version() == Version::HTTP_11
        && has_token(header::UPGRADE, "websocket")
        && has_token(header::CONNECTION, "upgrade")
}

/// What the handler decided about the handshake.
enum Decision {
    Accept {
        subprotocol: Option<HeaderValue>,
        headers: Vec<(HeaderName, HeaderValue)>,
    },
    Reject(StatusCode),
}

/// A message from the client, or the end of the connection.
enum Inbound {
    Text(String),
    Binary(Bytes),
    Closed(u16, String),
}

impl Inbound {
    /// Bytes of payload it holds.
    fn len(&self) -> usize {
        match self {
            Inbound::Text(t) => t.len(),
            Inbound::Binary(b) => b.len(),
            Inbound::Closed(..) => 0,
        }
    }

    /// `str`, `bytes`, or `(code, reason)` for the end.
    fn into_py(self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(match self {
            Inbound::Text(t) => PyString::new(py, &t).into_any().unbind(),
            Inbound::Binary(b) => PyBytes::new(py, &b).into_any().unbind(),
            Inbound::Closed(code, reason) => (code, reason).into_pyobject(py)?.into_any().unbind(),
        })
    }
}

/// What the handler sends.
enum Outbound {
    Message(Message),
    Close(u16, String),
}

struct Inbox {
    queue: VecDeque<Inbound>,
    /// Payload bytes in `queue`.
    bytes: usize,
    /// The future `receive()` handed out while the queue was empty.
    waiter: Option<LoopFuture>,
    /// How the connection ended, once it has.
    closed: Option<(u16, String)>,
}

impl Inbox {
    fn has_space(&self) -> bool {
        self.queue.len() < QUEUE && self.bytes < INBOX_BYTES
    }

    fn push_back(&mut self, msg: Inbound) {
        self.bytes += msg.len();
        self.queue.push_back(msg);
    }

    fn push_front(&mut self, msg: Inbound) {
        self.bytes += msg.len();
        self.queue.push_front(msg);
    }

    fn pop_front(&mut self) -> Option<Inbound> {
        let msg = self.queue.pop_front()?;
        self.bytes = self.bytes.saturating_sub(msg.len());
        Some(msg)
    }
}

/// What the keepalive check needs to know about the reader.
#[derive(Default)]
struct Heard {
    /// When a frame last arrived, in milliseconds since `Session::epoch`.
    last_ms: AtomicU64,
    /// Whether the reader is waiting for room in the inbox (and so reads nothing,
    /// pongs included).
    paused: AtomicBool,
}

/// One connection's state, shared by its Python object and its Tokio tasks.
struct Session {
    lp: Arc<LoopRef>,
    decision: Mutex<Option<oneshot::Sender<Decision>>>,
    inbox: Mutex<Inbox>,
    /// Notified when the handler takes a message from a full inbox.
    space: Notify,
    outbox: mpsc::Sender<Outbound>,
    outbox_rx: Mutex<Option<mpsc::Receiver<Outbound>>>,
    epoch: Instant,
    heard: Heard,
}

impl Session {
    /// Hands `msg` to a waiting `receive()`, or queues it; says whether there is
    /// room for more.
    fn deliver(self: &Arc<Self>, msg: Inbound) -> bool {
        let mut inbox = self.inbox.lock();
        if inbox.closed.is_some() {
            return false;
        }
        if let Inbound::Closed(code, reason) = &msg {
            inbox.closed = Some((*code, reason.clone()));
        }
        match inbox.waiter.take() {
            Some(waiter) => {
                drop(inbox);
                let me = self.clone();
                waiter.settle(
                    msg,
                    |py, msg| msg.into_py(py),
                    // The receive was cancelled: the next one gets the message.
                    move |_, msg| me.inbox.lock().push_front(msg),
                );
                true
            }
            None => {
                inbox.push_back(msg);
                inbox.has_space()
            }
        }
    }

    /// Records the end of the connection (the first reason wins).
    fn finish(self: &Arc<Self>, code: u16, reason: String) {
        self.deliver(Inbound::Closed(code, reason));
    }

    fn has_space(&self) -> bool {
        self.inbox.lock().has_space()
    }

    /// Notes that a frame arrived now.
    fn heard_now(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heard.last_ms.store(ms, Ordering::Release);
    }

    /// Whether a frame arrived at or after `since`, or the reader is not reading
    /// because the handler is behind (then the client's silence says nothing).
    fn heard_since(&self, since: Instant) -> bool {
        if self.heard.paused.load(Ordering::Acquire) {
            return true;
        }
        let since_ms =
            u64::try_from(since.saturating_duration_since(self.epoch).as_millis()).unwrap_or(0);
        self.heard.last_ms.load(Ordering::Acquire) >= since_ms
    }

    fn closed(&self) -> Option<(u16, String)> {
        self.inbox.lock().closed.clone()
    }
}

/// The native side of a `WebSocket` (`data_bridge._native.WebSocketConn`).
#[pyclass(module = "data_bridge._native", frozen)]
pub struct WebSocketConn {
    session: Arc<Session>,
}

fn header_value(s: &str) -> PyResult<HeaderValue> {
    HeaderValue::from_str(s).map_err(|_| PyTypeError::new_err(format!("bad header value {s:?}")))
}

impl WebSocketConn {
    fn queue(&self, py: Python<'_>, item: Outbound) -> PyResult<Option<Py<PyAny>>> {
        if self.session.closed().is_some() {
            return Err(ApiError::ClientDisconnected.into());
        }
        match self.session.outbox.try_send(item) {
            Ok(()) => Ok(None),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(ApiError::ClientDisconnected.into()),
            Err(mpsc::error::TrySendError::Full(item)) => {
                let (future, queued) = self.session.lp.handle.create_future(py)?;
                let tx = self.session.outbox.clone();
                runtime::get().spawn(async move {
                    queued.resolve(tx.send(item).await.is_ok());
                });
                Ok(Some(future.unbind()))
            }
        }
    }
}

#[pymethods]
impl WebSocketConn {
    /// Completes the handshake with `subprotocol` and extra `headers`. Returns
    /// `False` if the client already went away.
    #[pyo3(signature = (subprotocol=None, headers=Vec::new()))]
    fn accept(&self, subprotocol: Option<&str>, headers: Vec<(String, String)>) -> PyResult<bool> {
        let subprotocol = subprotocol.map(header_value).transpose()?;
        let mut extra = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| PyTypeError::new_err(format!("bad header name {name:?}")))?;
            extra.push((name, header_value(&value)?));
        }
        let tx = self
            .session
            .decision
            .lock()
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("the handshake was already answered"))?;
        let decision = Decision::Accept {
            subprotocol,
            headers: extra,
        };
        if tx.send(decision).is_err() {
            self.session.finish(ABNORMAL, String::new());
            return Ok(false);
        }
        Ok(true)
    }

    /// Refuses the handshake: the client gets an HTTP `status` response.
    fn reject(&self, status: u16) -> PyResult<()> {
        let status = StatusCode::from_u16(status)
            .map_err(|_| PyTypeError::new_err(format!("bad status code {status}")))?;
        if let Some(tx) = self.session.decision.lock().take() {
            let _ = tx.send(Decision::Reject(status));
        }
        self.session.finish(ABNORMAL, String::new());
        Ok(())
    }

    /// The next message: `str`, `bytes`, or `(code, reason)` once the connection has
    /// ended; as a future if none has arrived yet.
    fn receive(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let session = &self.session;
        let taken = |inbox: &mut Inbox| -> Option<Inbound> {
            let was_full = !inbox.has_space();
            let msg = inbox.pop_front();
            if msg.is_some() && was_full {
                session.space.notify_one();
            }
            msg.or_else(|| {
                inbox
                    .closed
                    .clone()
                    .map(|(code, reason)| Inbound::Closed(code, reason))
            })
        };
        if let Some(msg) = taken(&mut session.inbox.lock()) {
            return msg.into_py(py);
        }
        // Made without the lock held: the reader may deliver meanwhile.
        let (future, waiter) = session.lp.handle.create_future(py)?;
        let mut inbox = session.inbox.lock();
        if let Some(msg) = taken(&mut inbox) {
            drop(inbox);
            return msg.into_py(py);
        }
        if inbox.waiter.is_some() {
            return Err(PyRuntimeError::new_err(
                "another coroutine is already waiting for the next message",
            ));
        }
        inbox.waiter = Some(waiter);
        Ok(future.unbind())
    }

    /// Sends `data` (`str` as a text message, `bytes` as a binary one). Returns
    /// `None`, or a future (of whether the message was queued) to await while the
    /// client is slower than the handler. Raises `ConnectionResetError` once the
    /// connection has ended.
    fn send(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
        let msg = if let Ok(s) = data.cast::<PyString>() {
            Message::Text(s.to_str()?.to_owned().into())
        } else if let Ok(b) = data.cast::<PyBytes>() {
            Message::Binary(Bytes::copy_from_slice(b.as_bytes()))
        } else {
            return Err(PyTypeError::new_err("a WebSocket message is str or bytes"));
        };
        self.queue(py, Outbound::Message(msg))
    }

    /// Starts the closing handshake with `code` and `reason`; `None` or a future as
    /// `send`.
    #[pyo3(signature = (code=1000, reason=String::new()))]
    fn close(&self, py: Python<'_>, code: u16, reason: String) -> PyResult<Option<Py<PyAny>>> {
        self.queue(py, Outbound::Close(code, reason))
    }

    /// `(code, reason)` once the connection has ended, else `None`.
    #[getter]
    fn close_status(&self) -> Option<(u16, String)> {
        self.session.closed()
    }
}

/// An empty response with `status`.
pub fn plain(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// What a WebSocket connection is allowed (from the server's settings).
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Handshake and keepalive limits.
    pub limits: WsLimits,
    /// The largest message (the server's body size limit).
    pub max_message: usize,
}

/// The `Sec-WebSocket-Accept` value for a version 13 handshake; `None` for any other
/// (answered with [`unsupported`]).
pub fn accept_key(headers: &HeaderMap) -> Option<String> {
    let key = headers.get("sec-websocket-key")?;
    headers
        .get("sec-websocket-version")
        .is_some_and(|v| v == "13")
        .then(|| derive_accept_key(key.as_bytes()))
}

/// The answer to a handshake of another version than 13, or without a key.
pub fn unsupported() -> Response<Body> {
    let mut resp = ApiError::BadRequest("unsupported WebSocket handshake".into()).into_response();
    resp.headers_mut().insert(
        HeaderName::from_static("sec-websocket-version"),
        HeaderValue::from_static("13"),
    );
    resp
}

/// Answers a routed WebSocket handshake: starts the route's handler through the
/// dispatcher and waits for its decision; on `accept()`, answers 101 and starts the
/// connection's tasks. `key` is the [`accept_key`].
pub async fn handshake(
    dispatcher: &Dispatcher,
    settings: Settings,
    endpoint: Arc<PyEndpoint>,
    data: RequestData,
    key: String,
    on_upgrade: OnUpgrade,
) -> Response<Body> {
    let (decision_tx, decision_rx) = oneshot::channel();
    let (outbox, outbox_rx) = mpsc::channel(QUEUE);
    let session = Arc::new(Session {
        lp: dispatcher.loop_ref().clone(),
        decision: Mutex::new(Some(decision_tx)),
        inbox: Mutex::new(Inbox {
            queue: VecDeque::new(),
            bytes: 0,
            waiter: None,
            closed: None,
        }),
        space: Notify::new(),
        outbox,
        outbox_rx: Mutex::new(Some(outbox_rx)),
        epoch: Instant::now(),
        heard: Heard::default(),
    });
    let conn = session.clone();
    let failed = session.clone();
    let running = dispatcher.spawn_websocket_handler(
        endpoint,
        data,
        move |py| Ok(Py::new(py, WebSocketConn { session: conn })?.into_any()),
        // Dropping the decision sender answers the handshake with 500.
        move || drop(failed.decision.lock().take()),
    );
    let running = match running {
        Ok(running) => running,
        Err(e) => return e.into_response(),
    };
    let limits = settings.limits;
    let decision = match tokio::time::timeout(limits.handshake_timeout, decision_rx).await {
        Ok(decision) => decision,
        // Dropping `running` cancels the handler; a late `accept()` finds the client
        // gone. (So does the client leaving first: this future is then dropped.)
        Err(_elapsed) => return plain(StatusCode::FORBIDDEN),
    };
    // Counted in flight until both the handler and the connection have ended.
    let held = running.detach();
    let (subprotocol, headers) = match decision {
        Ok(Decision::Accept {
            subprotocol,
            headers,
        }) => (subprotocol, headers),
        Ok(Decision::Reject(status)) => return plain(status),
        // The handler could not start, or ended without answering.
        Err(_) => return plain(StatusCode::INTERNAL_SERVER_ERROR),
    };
    let mut resp = plain(StatusCode::SWITCHING_PROTOCOLS);
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    if let Ok(v) = HeaderValue::from_str(&key) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, v);
    }
    if let Some(p) = subprotocol {
        h.insert(header::SEC_WEBSOCKET_PROTOCOL, p);
    }
    for (name, value) in headers {
        h.append(name, value);
    }
    let max_message = settings.max_message;
    tokio::spawn(async move {
        let _held = held;
        match on_upgrade.await {
            Ok(upgraded) => run(TokioIo::new(upgraded), session, max_message, limits).await,
            Err(_) => session.finish(ABNORMAL, String::new()),
        }
    });
    resp
}

fn close_message(code: u16, reason: String) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// How the loop serving a connection ended.
enum Ended {
    /// The handler closed (or its connection object went away): the client's close
    /// reply is still to be read.
    Handler,
    /// The reader stopped (the client closed, left, or broke the protocol).
    Reader,
    /// The client stopped answering pings or taking data.
    Unresponsive,
}

/// When to ping, and whether the last ping was answered in time.
struct Keepalive {
    interval: Option<Duration>,
    timeout: Duration,
    /// When the unanswered ping was sent.
    sent: Option<Instant>,
    deadline: Instant,
}

impl Keepalive {
    fn new(limits: WsLimits) -> Self {
        let now = Instant::now();
        Keepalive {
            interval: limits.ping_interval,
            timeout: limits.ping_timeout,
            sent: None,
            deadline: now + limits.ping_interval.unwrap_or(Duration::ZERO),
        }
    }

    /// How long one write may take: a client that takes nothing for a ping interval
    /// plus its timeout could not have answered a ping either.
    fn write_limit(&self) -> Option<Duration> {
        self.interval.map(|i| i + self.timeout)
    }
}

/// What became of a write.
#[derive(PartialEq, Eq)]
enum Written {
    Sent,
    /// The connection failed (the client is gone or closed).
    Failed,
    /// The client took nothing within the limit.
    Stalled,
}

/// Sends `msg`, within `limit` if there is one.
async fn write<Si>(sink: &mut Si, msg: Message, limit: Option<Duration>) -> Written
where
    Si: futures_util::Sink<Message> + Unpin,
{
    let sent = match limit {
        Some(limit) => match tokio::time::timeout(limit, sink.send(msg)).await {
            Ok(sent) => sent,
            Err(_elapsed) => return Written::Stalled,
        },
        None => sink.send(msg).await,
    };
    if sent.is_ok() {
        Written::Sent
    } else {
        Written::Failed
    }
}

/// Serves an upgraded connection until both sides are done.
async fn run<S>(io: S, session: Arc<Session>, max_message: usize, limits: WsLimits)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let config = WebSocketConfig::default()
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message));
    let ws = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
    let (mut sink, stream) = ws.split();
    let Some(mut outbox) = session.outbox_rx.lock().take() else {
        return;
    };
    let mut reader = tokio::spawn(read(stream, session.clone()));
    let mut keepalive = Keepalive::new(limits);
    let write_limit = keepalive.write_limit();
    let ping = tokio::time::sleep_until(keepalive.deadline);
    tokio::pin!(ping);
    let ended = loop {
        tokio::select! {
            item = outbox.recv() => {
                let (msg, last) = match item {
                    Some(Outbound::Message(m)) => (m, false),
                    Some(Outbound::Close(code, reason)) => (close_message(code, reason), true),
                    // The handler's connection object is gone without a close.
                    None => (close_message(1011, String::new()), true),
                };
                match write(&mut sink, msg, write_limit).await {
                    Written::Stalled => break Ended::Unresponsive,
                    // The reader may still have the client's close code to report.
                    Written::Failed => break Ended::Handler,
                    Written::Sent if last => break Ended::Handler,
                    Written::Sent => {}
                }
            }
            ended = &mut reader => {
                // The reader stopped on bad input: tell the client why.
                if let Ok(Some(code)) = ended {
                    let _ = write(&mut sink, close_message(code, String::new()), Some(CLOSE_TIMEOUT)).await;
                }
                break Ended::Reader;
            }
            () = &mut ping, if keepalive.interval.is_some() => {
                let now = Instant::now();
                let interval = keepalive.interval.unwrap_or(Duration::ZERO);
                match keepalive.sent.take() {
                    Some(sent) if !session.heard_since(sent) => break Ended::Unresponsive,
                    // Answered (or the client was busy sending): the next ping is due
                    // an interval after this one.
                    Some(sent) => keepalive.deadline = sent + interval,
                    None => {
                        match write(&mut sink, Message::Ping(Bytes::new()), write_limit).await {
                            Written::Sent => {}
                            Written::Failed => break Ended::Handler,
                            Written::Stalled => break Ended::Unresponsive,
                        }
                        keepalive.sent = Some(now);
                        keepalive.deadline = now + keepalive.timeout;
                    }
                }
                ping.as_mut().reset(keepalive.deadline);
            }
        }
    };
    // The handler cannot send any more: free whoever waits for room.
    outbox.close();
    session.finish(ABNORMAL, String::new());
    match ended {
        Ended::Handler => {
            if tokio::time::timeout(CLOSE_TIMEOUT, &mut reader)
                .await
                .is_err()
            {
                reader.abort();
            }
        }
        Ended::Reader => {}
        Ended::Unresponsive => {
            reader.abort();
            let close = close_message(KEEPALIVE_FAILED, "keepalive ping timeout".into());
            let _ = write(&mut sink, close, Some(CLOSE_TIMEOUT)).await;
        }
    }
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
}

/// Reads messages into the inbox until the connection ends; returns the close code to
/// send when it stopped because the client broke the protocol.
async fn read<S>(
    mut stream: futures_util::stream::SplitStream<WebSocketStream<S>>,
    session: Arc<Session>,
) -> Option<u16>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    loop {
        loop {
            let room = session.space.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            if session.has_space() {
                break;
            }
            session.heard.paused.store(true, Ordering::Release);
            room.await;
            session.heard.paused.store(false, Ordering::Release);
        }
        let msg = match stream.next().await {
            Some(Ok(m)) => {
                session.heard_now();
                m
            }
            Some(Err(e)) => {
                let code = match e {
                    WsError::Capacity(_) => Some(1009),
                    WsError::Utf8(_) => Some(1007),
                    // The connection just ended: there is nobody to tell.
                    WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
                    WsError::Protocol(_) => Some(1002),
                    _ => None,
                };
                session.finish(code.unwrap_or(ABNORMAL), String::new());
                return code;
            }
            None => {
                session.finish(ABNORMAL, String::new());
                return None;
            }
        };
        match msg {
            Message::Text(t) => {
                session.deliver(Inbound::Text(t.as_str().to_owned()));
            }
            Message::Binary(b) => {
                session.deliver(Inbound::Binary(b));
            }
            Message::Close(frame) => {
                let (code, reason) = match frame {
                    Some(f) => (u16::from(f.code), f.reason.as_str().to_owned()),
                    None => (1005, String::new()),
                };
                // The codec queues the reply; reading on sends it and ends the stream.
                session.finish(code, reason);
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}
