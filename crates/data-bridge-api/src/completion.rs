//! What is recorded when a request ends: its metrics and its access log line.
//!
//! A [`Completion`] is made when the request head arrives and travels inside the
//! response body ([`Tracked`]), counting the bytes Hyper takes; it records when Hyper
//! drops the body, that is once the response is fully written (or the connection is
//! gone). A request whose future is dropped before a response exists (the client left
//! while the handler ran) is recorded with status 499, as nginx does.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Response, Version};
use hyper::body::{Frame, SizeHint};

use crate::access_log::{AccessLog, Record};
use crate::body::{Body, BoxError};
use crate::metrics::Metrics;
use crate::service::AppState;

/// Status recorded for a request whose client went away before it was answered.
pub const CLIENT_CLOSED: u16 = 499;

/// The server's recorders; either may be off.
#[derive(Default)]
pub struct Observers {
    /// Prometheus metrics, when the app serves `/metrics`.
    pub metrics: Option<Arc<Metrics>>,
    /// The access log, when enabled.
    pub access_log: Option<AccessLog>,
}

impl Observers {
    /// Whether anything is recorded per request.
    pub fn any(&self) -> bool {
        self.metrics.is_some() || self.access_log.is_some()
    }
}

/// One request being recorded.
pub struct Completion {
    state: Arc<AppState>,
    start: Instant,
    time: SystemTime,
    method: Method,
    version: Version,
    /// Path and query, kept only for the access log.
    target: Option<String>,
    /// The route's index in the router (metrics), if it matched.
    pub route: Option<usize>,
    /// The status sent, once known.
    pub status: Option<u16>,
    bytes: u64,
    /// The client, after proxy headers.
    pub client: Option<SocketAddr>,
    /// The request id, if one was assigned.
    pub request_id: Option<HeaderValue>,
}

impl Completion {
    /// Starts recording a request.
    pub fn start(
        state: Arc<AppState>,
        method: &Method,
        version: Version,
        target: Option<String>,
        client: Option<SocketAddr>,
    ) -> Self {
        if let Some(m) = &state.observers.metrics {
            m.started();
        }
        Completion {
            state,
            start: Instant::now(),
            time: SystemTime::now(),
            method: method.clone(),
            version,
            target,
            route: None,
            status: None,
            bytes: 0,
            client,
            request_id: None,
        }
    }

    /// Puts `response`'s body in a [`Tracked`] body carrying this record.
    pub fn attach(mut self, response: Response<Body>) -> Response<Body> {
        self.status = Some(response.status().as_u16());
        let (parts, body) = response.into_parts();
        Response::from_parts(
            parts,
            Body::stream(Tracked {
                inner: body,
                done: self,
            }),
        )
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let observers = &self.state.observers;
        let status = self.status.unwrap_or(CLIENT_CLOSED);
        let elapsed = self.start.elapsed();
        if let Some(m) = &observers.metrics {
            let route = self.route.unwrap_or_else(|| m.unmatched());
            m.finished(route, &self.method, status, elapsed);
        }
        if let Some(log) = &observers.access_log {
            log.send(Record {
                time: self.time,
                method: self.method.clone(),
                target: self.target.take().unwrap_or_default(),
                version: self.version,
                status,
                bytes: self.bytes,
                duration: elapsed,
                client: self.client,
                request_id: self.request_id.take(),
            });
        }
    }
}

/// A response body that counts what it yields and records the request when dropped.
pub struct Tracked {
    inner: Body,
    done: Completion,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.done.bytes += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
