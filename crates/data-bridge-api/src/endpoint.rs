//! What a route runs: a native handler answered in Rust without the GIL (probes,
//! metrics, constants, static files), or a Python handler run on PyLoop (`async def`) or in a
//! worker thread (`def`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use pyo3::prelude::*;

use crate::body::Body;
use crate::files::StaticDir;

/// How a Python handler is called.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallMode {
    /// `handler()`.
    NoArgs,
    /// `handler(*path_params)`, converted, in template order.
    PathArgs,
    /// `handler(request)`: the Python layer extracts everything else.
    Request,
}

/// A Python handler and how to call it.
pub struct PyEndpoint {
    /// The callable.
    pub func: Py<PyAny>,
    /// `async def` (runs on PyLoop) or `def` (runs in a worker thread).
    pub is_async: bool,
    /// The calling convention.
    pub mode: CallMode,
    /// Python callables turning a parameter's text into its value (UUID, enums).
    pub converters: Vec<(String, Py<PyAny>)>,
    /// The route's timeout; past it the handler is cancelled and the client gets 504.
    pub timeout: Option<Duration>,
    /// The status of a successful response that is not a `Response` object.
    pub status: StatusCode,
    /// Whether the handler needs the whole body before it runs (it validates a
    /// pydantic body); otherwise a large or unsized body is streamed to it.
    pub buffer_body: bool,
}

#[cfg(test)]
impl PyEndpoint {
    /// An endpoint whose handler is `None`, for tests that never run it.
    pub(crate) fn stub(py: Python<'_>, mode: CallMode, timeout: Option<Duration>) -> Self {
        PyEndpoint {
            func: py.None(),
            is_async: true,
            mode,
            converters: Vec::new(),
            timeout,
            status: StatusCode::OK,
            buffer_body: false,
        }
    }
}

/// A response computed once at start-up and served from Rust.
pub struct Constant {
    status: StatusCode,
    content_type: HeaderValue,
    body: Bytes,
}

impl Constant {
    /// A constant response.
    pub fn new(status: StatusCode, content_type: HeaderValue, body: Bytes) -> Self {
        Constant {
            status,
            content_type,
            body,
        }
    }

    /// The response (cloning `Bytes` only bumps a reference count).
    pub fn respond(&self) -> Response<Body> {
        let mut resp = Response::new(Body::full(self.body.clone()));
        *resp.status_mut() = self.status;
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, self.content_type.clone());
        resp
    }
}

/// What a route runs.
#[derive(Clone)]
pub enum Endpoint {
    /// Liveness: `{"status": "ok"}`.
    Health,
    /// Readiness: `{"status": "ready"}`, or 503 while starting or draining.
    Ready,
    /// Prometheus metrics in the text exposition format.
    Metrics,
    /// A precomputed response.
    Constant(Arc<Constant>),
    /// Files below a mounted directory.
    Static(Arc<StaticDir>),
    /// A Python handler.
    Python(Arc<PyEndpoint>),
    /// A Python WebSocket handler, called with the request and the connection (see
    /// `websocket`); routed under [`crate::router::WEBSOCKET_METHOD`].
    WebSocket(Arc<PyEndpoint>),
}
