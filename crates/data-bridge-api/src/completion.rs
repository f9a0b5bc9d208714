//! What is recorded when a request ends: its metrics and its access log line.
//!
//! A [`Completion`] is made when the request head arrives and travels inside the
//! response body as its observer ([`Body::observed`]), counting the bytes Hyper takes; it records when Hyper
//! drops the body, that is once the response is fully written (or the connection is
//! gone). A request whose future is dropped before a response exists (the client left
//! while the handler ran) is recorded with status 499, as nginx does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{HeaderValue, Method, Response, Version};

use crate::access_log::{AccessLog, Record};
use crate::body::{Body, BodyObserver};
use crate::metrics::Metrics;

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
    observers: Arc<Observers>,
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
    /// Starts recording a request for `observers`.
    pub fn start(
        observers: Arc<Observers>,
        method: &Method,
        version: Version,
        target: Option<String>,
        client: Option<SocketAddr>,
    ) -> Self {
        if let Some(m) = &observers.metrics {
            m.started();
        }
        Completion {
            observers,
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

    /// Makes this record the observer of `response`'s body.
    pub fn attach(mut self, response: Response<Body>) -> Response<Body> {
        self.status = Some(response.status().as_u16());
        response.map(|body| body.observed(self))
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        let observers = &self.observers;
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

impl BodyObserver for Completion {
    fn sent(&mut self, len: usize) {
        self.bytes += len as u64;
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    fn observers() -> std::io::Result<Arc<Observers>> {
        Ok(Arc::new(Observers {
            metrics: Some(Arc::new(Metrics::new(vec!["/items".into()], None)?)),
            access_log: None,
        }))
    }

    fn recorded(observers: &Observers, status: &str) -> bool {
        let text = observers
            .metrics
            .as_ref()
            .map(|m| m.render(0, 0))
            .unwrap_or_default();
        let line = format!(
            "data_bridge_requests_total{{method=\"GET\",route=\"/items\",status=\"{status}\"}} 1"
        );
        text.contains(&line)
    }

    /// A completion for `GET /items`, matched to its route.
    fn get_items(observers: &Arc<Observers>) -> Completion {
        let mut done = Completion::start(
            observers.clone(),
            &Method::GET,
            Version::HTTP_11,
            None,
            None,
        );
        done.route = Some(0);
        done
    }

    #[tokio::test]
    async fn a_request_is_recorded_once_its_body_is_sent() -> std::io::Result<()> {
        let observers = observers()?;
        let resp = get_items(&observers).attach(Response::new(Body::full("abc")));
        assert!(!recorded(&observers, "200"), "not before the body is sent");
        let sent = resp.into_body().collect().await.map(|b| b.to_bytes());
        assert_eq!(sent.ok().as_deref(), Some(&b"abc"[..]));
        assert!(recorded(&observers, "200"));
        Ok(())
    }

    #[test]
    fn a_request_left_before_its_answer_is_recorded_as_499() -> std::io::Result<()> {
        let observers = observers()?;
        drop(get_items(&observers));
        assert!(recorded(&observers, "499"));
        Ok(())
    }
}
