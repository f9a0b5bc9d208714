//! One request's way through the server: apply proxy headers from a trusted peer,
//! assign a request id, route in Rust, answer native routes at once, read a small body
//! within its limit (or leave a large one for the handler to stream), hand Python
//! routes to the dispatcher, and turn every failure into its status code with a JSON
//! body; the built-in middleware ([`crate::middleware`]) wraps all of it. With metrics
//! or the access log on, the response body is observed by a [`Completion`] that
//! records the request once it is sent.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};

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
use crate::request::RequestData;
use crate::request_body::{BodyReadError, RequestBody, TimedIncoming, PREREAD_LIMIT};
use crate::router::Router;
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
    pub observers: Observers,
    /// Peers whose `X-Forwarded-*` headers are applied (`None`: proxy headers off).
    pub proxies: Option<TrustedProxies>,
    /// The built-in middleware.
    pub middleware: Stack,
}

fn status_json(status: StatusCode, body: &'static str) -> Response<Body> {
    json_response(status, Bytes::from_static(body.as_bytes()))
}

async fn read_body(body: Incoming, limits: &Limits) -> Result<Bytes, ApiError> {
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
fn preread(ep: &PyEndpoint, declared: Option<usize>, body: &Incoming) -> bool {
    ep.mode != CallMode::Request
        || ep.buffer_body
        || body.is_end_stream()
        || declared.is_some_and(|n| n <= PREREAD_LIMIT)
}

/// Serves one request and counts it (`secure`: it came over TLS).
pub async fn handle(
    state: Arc<AppState>,
    mut req: Request<Incoming>,
    peer: Option<SocketAddr>,
    server: Option<SocketAddr>,
    secure: bool,
) -> Response<Body> {
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
    let mut done = Completion::start(state.clone(), req.method(), req.version(), target, client);
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
async fn layered(
    state: &AppState,
    req: Request<Incoming>,
    client: Option<SocketAddr>,
    server: Option<SocketAddr>,
    forwarded: Forwarded,
    route: &mut Option<usize>,
) -> Response<Body> {
    let host = match host::resolve(
        req.uri(),
        req.version(),
        req.headers(),
        forwarded.host.as_deref(),
    ) {
        Ok(host) => host,
        Err(e) => return e.into_response(),
    };
    if state.middleware.is_empty() {
        return respond(state, req, client, server, forwarded.scheme, host, route).await;
    }
    let head = Head {
        method: req.method(),
        uri: req.uri(),
        headers: req.headers(),
        scheme: forwarded.scheme.unwrap_or("http"),
        host: &host,
    };
    let mut pass = state.middleware.enter(&head);
    let response = match pass.answer.take() {
        Some(answer) => answer,
        None => respond(state, req, client, server, forwarded.scheme, host, route).await,
    };
    pass.leave(response).await
}

async fn respond(
    state: &AppState,
    req: Request<Incoming>,
    client: Option<SocketAddr>,
    server: Option<SocketAddr>,
    scheme: Option<&'static str>,
    host: String,
    route: &mut Option<usize>,
) -> Response<Body> {
    if websocket::is_upgrade(&req) {
        return websocket::handle(state, req, client, server, scheme.unwrap_or("http"), host).await;
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
            return dir.clone().serve(parts.uri.path(), cond).await;
        }
        Endpoint::Python(ep) => ep.clone(),
        // Only reachable by a request whose method is literally the pseudo-method.
        Endpoint::WebSocket(_) => return ApiError::NotFound.into_response(),
    };
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
        RequestBody::streamed(
            TimedIncoming::new(body, state.limits.body_timeout),
            state.limits.max_body_size,
        )
    };
    // Kept for a `FileResponse`, which answers ranges and conditions like static files.
    let cond = Conditions::from_request(&parts.method, &parts.headers);
    let data = RequestData {
        method: parts.method,
        uri: parts.uri,
        version: parts.version,
        headers: parts.headers,
        body,
        client,
        server,
        params: found.params,
        scheme: scheme.unwrap_or("http"),
        host,
    };
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
