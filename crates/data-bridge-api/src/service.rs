//! One request's way through the server: apply proxy headers from a trusted peer,
//! assign a request id, route in Rust, answer native routes at once, read a small body
//! within its limit (or leave a large one for the handler to stream), hand Python
//! routes to the dispatcher, and turn every failure into its status code with a JSON
//! body; the built-in middleware ([`crate::middleware`]) wraps all of it. With metrics
//! or the access log on, the response body is observed by a [`Completion`] that
//! records the request once it is sent.
//!
//! A WebSocket handshake takes the same way up to routing: it is routed by the same
//! router (under [`WEBSOCKET_METHOD`]), its request is built by the same
//! [`RequestData::new`], and its handler is started by the same [`Dispatcher`];
//! [`websocket`] then serves the connection.
//!
//! [`AppService`] is this as a [`tower::Service`] over any request body, so the whole
//! path runs without a socket (see the tests below); connections call [`handle`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Body as HttpBody;

use crate::access_log;
use crate::body::Body;
use crate::completion::{Completion, Observers};
use crate::conditional::Conditions;
use crate::dispatch::Dispatcher;
use crate::endpoint::{CallMode, Endpoint, PyEndpoint};
use crate::errors::{json_response, ApiError};
use crate::host;
use crate::metrics::Metrics;
use crate::middleware::requestid as request_id;
use crate::middleware::{Head, Stack};
use crate::proxy::{Forwarded, TrustedProxies};
use crate::request::{Origin, RequestData};
use crate::request_body::{BodyReadError, IncomingBody, RequestBody, TimedIncoming, PREREAD_LIMIT};
use crate::router::{ParamValue, Router, WEBSOCKET_METHOD};
use crate::websocket;

/// Request limits.
#[derive(Clone)]
pub struct Limits {
    /// Largest accepted body (413 beyond).
    pub max_body_size: usize,
    /// How long a client may take to send the request head.
    pub header_timeout: Duration,
    /// Largest request head.
    pub max_header_bytes: usize,
    /// How long a request body may make no progress (408 past it).
    pub body_timeout: Duration,
    /// How long a connection without a request in flight may stay silent.
    pub keep_alive_timeout: Duration,
    /// How long a response write may make no progress.
    pub write_timeout: Duration,
    /// Open connections past which new ones get 503 (`None`: no limit).
    pub max_connections: Option<usize>,
    /// How often an HTTP/2 connection is pinged (`None`: never).
    pub http2_keep_alive_interval: Option<Duration>,
    /// WebSocket handshake and keepalive limits.
    pub websocket: websocket::WsLimits,
}

/// Everything a connection needs to serve requests.
pub struct AppState {
    /// The routes.
    pub router: Router<Endpoint>,
    /// Python handlers' entry point.
    pub dispatcher: Dispatcher,
    /// Request limits.
    pub limits: Limits,
    /// Whether `/ready` answers 200.
    pub ready: Arc<AtomicBool>,
    /// Requests answered so far; read by `Server.requests_served` (for `--max-requests`).
    pub served: Arc<AtomicU64>,
    /// Metrics and access log.
    pub observers: Arc<Observers>,
    /// Peers whose `X-Forwarded-*` headers are applied (`None`: proxy headers off).
    pub proxies: Option<TrustedProxies>,
    /// The built-in middleware.
    pub middleware: Stack,
}

fn status_json(status: StatusCode, body: &'static str) -> Response<Body> {
    json_response(status, Bytes::from_static(body.as_bytes()))
}

async fn read_body<B>(body: B, limits: &Limits) -> Result<Bytes, ApiError>
where
    B: IncomingBody,
{
    if body.is_end_stream() {
        return Ok(Bytes::new());
    }
    let body = TimedIncoming::new(body, limits.body_timeout);
    match Limited::new(body, limits.max_body_size).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => Err(match e.downcast::<BodyReadError>() {
            Ok(e) => e.into_api(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => ApiError::PayloadTooLarge,
            Err(e) => ApiError::BadRequest(format!("cannot read the request body: {e}")),
        }),
    }
}

/// Whether the body is read before the handler runs: when the handler cannot see it
/// (read anyway so the size limit answers 413 as before), needs it whole (pydantic
/// body), or it is small or absent. Anything else is streamed on demand.
fn preread<B: HttpBody>(ep: &PyEndpoint, declared: Option<usize>, body: &B) -> bool {
    ep.mode != CallMode::Request
        || ep.buffer_body
        || body.is_end_stream()
        || declared.is_some_and(|n| n <= PREREAD_LIMIT)
}

/// Serves one request and counts it (`secure`: it came over TLS).
pub async fn handle<B>(
    state: Arc<AppState>,
    mut req: Request<B>,
    peer: Option<SocketAddr>,
    server: Option<SocketAddr>,
    secure: bool,
) -> Response<Body>
where
    B: IncomingBody,
{
    let mut forwarded = state
        .proxies
        .as_ref()
        .and_then(|trusted| trusted.resolve(peer, req.headers()))
        .unwrap_or_default();
    if secure {
        // A trusted proxy's word on the scheme wins; otherwise TLS means https.
        forwarded.scheme = forwarded.scheme.or(Some("https"));
    }
    let client = forwarded.client.unwrap_or(peer);
    let logging = state.observers.access_log.is_some();
    // Ids go with the access log (to match its lines with the client's) or with
    // `RequestIDMiddleware`.
    let id = state
        .middleware
        .request_id_header(logging)
        .map(|name| (name, request_id::assign(name, req.headers_mut())));
    if !state.observers.any() {
        let mut response = layered(&state, req, client, server, forwarded, &mut None).await;
        if let Some((name, id)) = id {
            response.headers_mut().insert(name.clone(), id);
        }
        state.served.fetch_add(1, Ordering::Relaxed);
        return response;
    }
    let target = logging.then(|| access_log::logged_target(req.uri()));
    let mut done = Completion::start(
        state.observers.clone(),
        req.method(),
        req.version(),
        target,
        client,
    );
    let mut response = layered(&state, req, client, server, forwarded, &mut done.route).await;
    if let Some((name, id)) = id {
        response.headers_mut().insert(name.clone(), id.clone());
        done.request_id = logging.then_some(id);
    }
    state.served.fetch_add(1, Ordering::Relaxed);
    done.attach(response)
}

fn access_log_dropped(state: &AppState) -> u64 {
    state
        .observers
        .access_log
        .as_ref()
        .map_or(0, |log| log.dropped())
}

/// Publishes this worker's gauges for the other workers' `/metrics`.
pub(crate) fn publish_metrics(metrics: &Metrics, state: &AppState) {
    metrics.publish(state.dispatcher.in_flight(), access_log_dropped(state));
}

fn metrics_response(state: &AppState) -> Response<Body> {
    let Some(metrics) = &state.observers.metrics else {
        return ApiError::NotFound.into_response();
    };
    let text = metrics.render(state.dispatcher.in_flight(), access_log_dropped(state));
    let mut resp = Response::new(Body::full(text));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}

/// [`respond`] inside the built-in middleware, which may answer first.
async fn layered<B>(
    state: &AppState,
    req: Request<B>,
    client: Option<SocketAddr>,
    server: Option<SocketAddr>,
    forwarded: Forwarded,
    route: &mut Option<usize>,
) -> Response<Body>
where
    B: IncomingBody,
{
    let host = match host::resolve(
        req.uri(),
        req.version(),
        req.headers(),
        forwarded.host.as_deref(),
    ) {
        Ok(host) => host,
        Err(e) => return e.into_response(),
    };
    let origin = Origin {
        client,
        server,
        scheme: forwarded.scheme.unwrap_or("http"),
        host,
    };
    if state.middleware.is_empty() {
        return respond(state, req, origin, route).await;
    }
    let head = Head {
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        scheme: origin.scheme,
        host: &origin.host,
    };
    let mut pass = state.middleware.enter(&head);
    let response = match pass.answer.take() {
        Some(answer) => answer,
        None => respond(state, req, origin, route).await,
    };
    Box::pin(pass.leave(response)).await
}

async fn respond<B>(
    state: &AppState,
    req: Request<B>,
    origin: Origin,
    route: &mut Option<usize>,
) -> Response<Body>
where
    B: IncomingBody,
{
    if websocket::is_upgrade(&req) {
        return Box::pin(handshake(state, req, origin)).await;
    }
    let (parts, body) = req.into_parts();
    let found = state.router.find(&parts.method, parts.uri.path());
    *route = match &found {
        Ok(f) => Some(f.route),
        Err(ApiError::NotFound) => None,
        Err(_) => state.router.route_of(parts.uri.path()),
    };
    let found = match found {
        Ok(found) => found,
        Err(ApiError::MethodNotAllowed { allow }) if parts.method == Method::OPTIONS => {
            let mut resp = Response::new(Body::empty());
            *resp.status_mut() = StatusCode::NO_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&allow) {
                resp.headers_mut().insert(header::ALLOW, v);
            }
            return resp;
        }
        Err(e) => return e.into_response(),
    };
    let endpoint = match found.endpoint {
        Endpoint::Health => return status_json(StatusCode::OK, "{\"status\":\"ok\"}"),
        Endpoint::Ready => {
            return if state.ready.load(Ordering::Acquire) {
                status_json(StatusCode::OK, "{\"status\":\"ready\"}")
            } else {
                status_json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "{\"status\":\"unavailable\"}",
                )
            }
        }
        Endpoint::Metrics => return metrics_response(state),
        Endpoint::Constant(c) => return c.respond(),
        Endpoint::Static(dir) => {
            let cond = Conditions::from_request(&parts.method, &parts.headers);
            return Box::pin(dir.clone().serve(parts.uri.path(), cond)).await;
        }
        Endpoint::Python(ep) => ep.clone(),
        // Only reachable by a request whose method is literally the pseudo-method.
        Endpoint::WebSocket(_) => return ApiError::NotFound.into_response(),
    };
    // Boxed: its state is most of a request future's size, and a native answer should
    // not carry (and move) it.
    Box::pin(python(state, parts, body, endpoint, origin, found.params)).await
}

/// Reads (or streams) the body and runs the Python handler of `endpoint`.
async fn python<B>(
    state: &AppState,
    parts: http::request::Parts,
    body: B,
    endpoint: Arc<PyEndpoint>,
    origin: Origin,
    params: Vec<(String, ParamValue)>,
) -> Response<Body>
where
    B: IncomingBody,
{
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > state.limits.max_body_size) {
        return ApiError::PayloadTooLarge.into_response();
    }
    let body = if preread(&endpoint, declared, &body) {
        match read_body(body, &state.limits).await {
            Ok(b) => RequestBody::Buffered(b),
            Err(e) => return e.into_response(),
        }
    } else {
        RequestBody::streamed(body, state.limits.body_timeout, state.limits.max_body_size)
    };
    // Kept for a `FileResponse`, which answers ranges and conditions like static files.
    let cond = Conditions::from_request(&parts.method, &parts.headers);
    let data = RequestData::new(parts, body, origin, params);
    match state.dispatcher.spawn_python_handler(endpoint, data).await {
        Ok(mut reply) => match reply.take_background() {
            None => reply.respond(cond).await,
            Some(background) => {
                let resp = reply.respond(cond).await;
                state.dispatcher.after_body(resp, background)
            }
        },
        Err(e) => e.into_response(),
    }
}

/// A WebSocket handshake: checked, routed under [`WEBSOCKET_METHOD`] (as a Starlette
/// app behind uvicorn, a handshake no WebSocket route takes is refused with 403), then
/// answered by the handler through [`websocket::handshake`].
async fn handshake<B: IncomingBody>(
    state: &AppState,
    mut req: Request<B>,
    origin: Origin,
) -> Response<Body> {
    let Some(key) = websocket::accept_key(req.headers()) else {
        return websocket::unsupported();
    };
    let Ok(ws_method) = Method::from_bytes(WEBSOCKET_METHOD.as_bytes()) else {
        return websocket::plain(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let (endpoint, params) = match state.router.find(&ws_method, req.uri().path()) {
        Ok(found) => match found.endpoint {
            Endpoint::WebSocket(ep) => (ep.clone(), found.params),
            _ => return websocket::plain(StatusCode::FORBIDDEN),
        },
        Err(_) => return websocket::plain(StatusCode::FORBIDDEN),
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let (parts, _body) = req.into_parts();
    let data = RequestData::new(parts, RequestBody::empty(), origin, params);
    let limits = websocket::Settings {
        limits: state.limits.websocket,
        max_message: state.limits.max_body_size,
    };
    websocket::handshake(&state.dispatcher, limits, endpoint, data, key, on_upgrade).await
}

/// The server's request handling as a [`tower::Service`] over any request body: what
/// a connection runs for each request (`peer`, `local` and `secure` are the
/// connection's), callable without one.
#[derive(Clone)]
pub struct AppService {
    state: Arc<AppState>,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    secure: bool,
}

impl AppService {
    /// The service of `state` for a connection from `peer` to `local`.
    pub fn new(
        state: Arc<AppState>,
        peer: Option<SocketAddr>,
        local: Option<SocketAddr>,
        secure: bool,
    ) -> Self {
        AppService {
            state,
            peer,
            local,
            secure,
        }
    }
}

impl<B> tower::Service<Request<B>> for AppService
where
    B: IncomingBody,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let state = self.state.clone();
        let (peer, local, secure) = (self.peer, self.local, self.secure);
        Box::pin(async move { Ok(handle(state, req, peer, local, secure).await) })
    }
}

#[cfg(test)]
mod tests {
    //! The request path without a socket: requests are built with `http::Request` and
    //! sent through [`AppService`] with `oneshot`. Python is initialised only to hold
    //! handler objects; no handler runs (there is no loop), so what is checked is what
    //! Rust decides before or around them: native answers, limits, timeouts and the
    //! cancellations queued for the loop.

    use bytes::Bytes;
    use data_bridge_pyloop::wake::{Remote, Shared};
    use http::{header, HeaderValue, Method, Request, StatusCode, Version};
    use http_body_util::{BodyExt, Empty, Full};
    use pyo3::prelude::*;
    use tower::ServiceExt;

    use super::*;
    use crate::background::Pending;
    use crate::endpoint::{CallMode, Constant};
    use crate::request_body::Silent;
    use crate::websocket::WsLimits;

    struct App {
        state: Arc<AppState>,
        shared: Arc<Shared>,
    }

    fn limits() -> Limits {
        Limits {
            max_body_size: 1024,
            header_timeout: Duration::from_secs(5),
            max_header_bytes: 8192,
            body_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(5),
            write_timeout: Duration::from_secs(5),
            max_connections: None,
            http2_keep_alive_interval: None,
            websocket: WsLimits::default(),
        }
    }

    /// An app with native routes, Python routes (never run) and a WebSocket route;
    /// at most `max_pending` units of Python work.
    fn app(max_pending: usize) -> Result<App, ApiError> {
        Python::initialize();
        Python::attach(|py| {
            let mut router = Router::default();
            router.add(&["GET"], "/health", &[], Endpoint::Health)?;
            router.add(&["GET"], "/ready", &[], Endpoint::Ready)?;
            let hello = Constant::new(
                StatusCode::OK,
                HeaderValue::from_static("text/plain"),
                Bytes::from_static(b"hello"),
            );
            router.add(&["GET"], "/hello", &[], Endpoint::Constant(Arc::new(hello)))?;
            let with_request = PyEndpoint::stub(py, CallMode::Request, None);
            router.add(
                &["POST"],
                "/upload",
                &[],
                Endpoint::Python(Arc::new(with_request)),
            )?;
            let no_args = PyEndpoint::stub(py, CallMode::NoArgs, None);
            router.add(&["POST"], "/form", &[], Endpoint::Python(Arc::new(no_args)))?;
            let slow = PyEndpoint::stub(py, CallMode::NoArgs, Some(Duration::from_secs(1)));
            router.add(&["GET"], "/slow", &[], Endpoint::Python(Arc::new(slow)))?;
            let ws = PyEndpoint::stub(py, CallMode::Request, None);
            router.add(
                &[WEBSOCKET_METHOD],
                "/ws",
                &[],
                Endpoint::WebSocket(Arc::new(ws)),
            )?;
            let shared = Arc::new(Shared::default());
            let dispatcher = Dispatcher::new(
                shared.clone(),
                py.None(),
                max_pending,
                1,
                false,
                Pending::default(),
            );
            let state = Arc::new(AppState {
                router,
                dispatcher,
                limits: limits(),
                ready: Arc::new(AtomicBool::new(false)),
                served: Arc::new(AtomicU64::new(0)),
                observers: Arc::new(Observers::default()),
                proxies: None,
                middleware: Stack::default(),
            });
            Ok(App { state, shared })
        })
    }

    impl App {
        fn service(&self) -> AppService {
            AppService::new(self.state.clone(), None, None, false)
        }

        async fn send<B: IncomingBody>(&self, req: Request<B>) -> Response<Body> {
            match self.service().oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        }

        /// How many closures wait for the loop (and drops them, with what they hold).
        fn queued(&self) -> usize {
            let mut queued: Vec<Remote> = Vec::new();
            self.shared.take_remote(&mut queued);
            let n = queued.len();
            Python::attach(|_py| drop(queued));
            n
        }
    }

    fn get(path: &str) -> Request<Empty<Bytes>> {
        request(Method::GET, path, Empty::new())
    }

    fn request<B>(method: Method, path: &str, body: B) -> Request<B> {
        let mut req = Request::new(body);
        *req.method_mut() = method;
        *req.uri_mut() = path.parse().unwrap_or_default();
        req.headers_mut()
            .insert(header::HOST, HeaderValue::from_static("example.com"));
        req
    }

    fn websocket(path: &str, key: bool) -> Request<Empty<Bytes>> {
        let mut req = get(path);
        let h = req.headers_mut();
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert("sec-websocket-version", HeaderValue::from_static("13"));
        if key {
            h.insert(
                "sec-websocket-key",
                HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
            );
        }
        req
    }

    async fn text(resp: Response<Body>) -> String {
        match resp.into_body().collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            Err(e) => format!("<body failed: {e}>"),
        }
    }

    #[tokio::test]
    async fn native_routes_answer_in_rust_and_count() -> Result<(), ApiError> {
        let app = app(4)?;
        let resp = app.send(get("/health")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(text(resp).await, r#"{"status":"ok"}"#);
        let resp = app.send(get("/hello")).await;
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/plain");
        assert_eq!(text(resp).await, "hello");
        assert_eq!(app.state.served.load(Ordering::Relaxed), 2);
        assert_eq!(app.queued(), 0, "nothing reached the loop");
        Ok(())
    }

    #[tokio::test]
    async fn readiness_follows_the_flag() -> Result<(), ApiError> {
        let app = app(4)?;
        let resp = app.send(get("/ready")).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        app.state.ready.store(true, Ordering::Release);
        assert_eq!(app.send(get("/ready")).await.status(), StatusCode::OK);
        Ok(())
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_get_their_status() -> Result<(), ApiError> {
        let app = app(4)?;
        let resp = app.send(get("/nowhere")).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert_eq!(text(resp).await, r#"{"detail":"Not Found"}"#);
        let resp = app
            .send(request(Method::DELETE, "/health", Empty::new()))
            .await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        let resp = app
            .send(request(Method::OPTIONS, "/health", Empty::new()))
            .await;
        assert_eq!(resp.status(), StatusCode::NO_CONTENT);
        assert!(resp.headers().contains_key(header::ALLOW));
        Ok(())
    }

    #[tokio::test]
    async fn a_request_without_host_is_refused() -> Result<(), ApiError> {
        let app = app(4)?;
        let mut req = get("/health");
        req.headers_mut().remove(header::HOST);
        assert_eq!(app.send(req).await.status(), StatusCode::BAD_REQUEST);
        // HTTP/1.0 may name no host.
        let mut req = get("/health");
        req.headers_mut().remove(header::HOST);
        *req.version_mut() = Version::HTTP_10;
        assert_eq!(app.send(req).await.status(), StatusCode::OK);
        Ok(())
    }

    #[tokio::test]
    async fn bodies_past_the_limit_get_413_before_the_handler() -> Result<(), ApiError> {
        let app = app(4)?;
        let big = Bytes::from(vec![b'x'; 2048]);
        // Declared too large: refused before reading.
        let mut req = request(Method::POST, "/upload", Full::new(big.clone()));
        req.headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("2048"));
        assert_eq!(app.send(req).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Undeclared, read before a handler that cannot stream it.
        let req = request(Method::POST, "/form", Full::new(big));
        assert_eq!(app.send(req).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(app.queued(), 0);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_makes_no_progress_gets_408() -> Result<(), ApiError> {
        let app = app(4)?;
        let resp = app.send(request(Method::POST, "/form", Silent)).await;
        assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(app.queued(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn python_work_past_the_limit_gets_503() -> Result<(), ApiError> {
        let app = app(0)?;
        let resp = app.send(get("/slow")).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key(header::RETRY_AFTER));
        let resp = app.send(websocket("/ws", true)).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(app.queued(), 0);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_route_timeout_answers_504_and_cancels_the_handler() -> Result<(), ApiError> {
        let app = app(4)?;
        let resp = app.send(get("/slow")).await;
        assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
        // The start of the handler, then its cancellation.
        assert_eq!(app.queued(), 2);
        assert_eq!(app.state.dispatcher.in_flight(), 0);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_leaves_cancels_its_handler() -> Result<(), ApiError> {
        let app = app(4)?;
        let req = request(Method::POST, "/upload", Empty::new());
        let gone = tokio::time::timeout(Duration::from_millis(10), app.send(req)).await;
        assert!(gone.is_err());
        assert_eq!(
            app.state.dispatcher.in_flight(),
            1,
            "until the loop lets go"
        );
        assert_eq!(app.queued(), 2);
        assert_eq!(app.state.dispatcher.in_flight(), 0);
        Ok(())
    }

    #[tokio::test]
    async fn websocket_handshakes_are_checked_and_routed() -> Result<(), ApiError> {
        let app = app(4)?;
        let resp = app.send(websocket("/ws", false)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(resp.headers()["sec-websocket-version"], "13");
        // Nothing takes a handshake on an HTTP route, or on no route.
        assert_eq!(
            app.send(websocket("/health", true)).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            app.send(websocket("/nowhere", true)).await.status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(app.queued(), 0);
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_handshake_gets_403_and_cancels_the_handler() -> Result<(), ApiError> {
        let app = app(4)?;
        let resp = app.send(websocket("/ws", true)).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_eq!(app.queued(), 2);
        assert_eq!(app.state.dispatcher.in_flight(), 0);
        Ok(())
    }
}
