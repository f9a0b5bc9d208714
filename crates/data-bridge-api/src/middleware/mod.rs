//! Built-in middleware that runs in Rust: CORS ([`cors`]), response compression
//! ([`compress`]), trusted hosts ([`trustedhost`]), the HTTPS redirect
//! ([`httpsredirect`]) and request ids ([`requestid`]). Each file has the name of the
//! Python module of its class (`python/data_bridge/middleware/<name>.py`) and holds
//! the typed options that class passes (`CorsOptions`, ...).
//!
//! Python declares the layers once, on the route table
//! (`RouteTable.add_middleware(options)`, outermost first), and the server runs
//! them around every request without the GIL: Python routes, native routes and the
//! server's own `404`/`405` answers alike. On the way in ([`Stack::enter`]) each layer,
//! outermost first, may answer the request itself (a CORS preflight, a bad host, a
//! redirect); on the way out ([`Pass::leave`]) the layers that let the request through
//! adjust the response, innermost first, as Starlette's middleware do.
//!
//! ```
//! use data_bridge_api::middleware::{Head, Stack};
//! let stack = Stack::default();
//! let (method, uri, headers) = (http::Method::GET, http::Uri::from_static("/"), http::HeaderMap::new());
//! let head = Head { method: &method, uri: &uri, headers: &headers, scheme: "http", host: "example.com" };
//! assert!(stack.enter(&head).answer.is_none());
//! ```

pub mod compress;
pub mod cors;
pub mod httpsredirect;
pub mod requestid;
pub mod trustedhost;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use pyo3::prelude::*;

use crate::body::Body;

use self::compress::{Compress, CompressOptions, Encoding};
use self::cors::{Cors, CorsOptions};
use self::httpsredirect::{HttpsRedirect, HttpsRedirectOptions};
use self::requestid::RequestIdOptions;
use self::trustedhost::{TrustedHostOptions, TrustedHosts};

/// The options of one built-in layer, as its Python class passes them to
/// `RouteTable.add_middleware`.
#[derive(FromPyObject)]
pub enum MiddlewareOptions {
    /// `CORSMiddleware`.
    Cors(CorsOptions),
    /// `GZipMiddleware` and `BrotliMiddleware`.
    Compress(CompressOptions),
    /// `TrustedHostMiddleware`.
    TrustedHost(TrustedHostOptions),
    /// `HTTPSRedirectMiddleware`.
    HttpsRedirect(HttpsRedirectOptions),
    /// `RequestIDMiddleware`.
    RequestId(RequestIdOptions),
}

/// What a layer sees of a request on the way in.
pub struct Head<'a> {
    /// The method.
    pub method: &'a Method,
    /// The target, as sent.
    pub uri: &'a Uri,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// `http`, or what a trusted proxy said (`X-Forwarded-Proto`).
    pub scheme: &'static str,
    /// The host the request was sent to (see [`crate::host`]).
    pub host: &'a str,
}

/// One configured layer.
enum Layer {
    Cors(Cors),
    Compress(Compress),
    TrustedHost(TrustedHosts),
    HttpsRedirect(HttpsRedirect),
}

/// What a layer that let the request through does to the response.
enum Exit<'a> {
    Cors(&'a Cors, Option<HeaderValue>),
    Compress(&'a Compress, Option<Encoding>),
}

/// The layers of an app, outermost first.
#[derive(Default)]
pub struct Stack {
    layers: Vec<Layer>,
    request_id: Option<HeaderName>,
}

/// A request on its way through the stack: the answer of a layer that stopped it, if
/// any, and what the layers it passed do to the response.
pub struct Pass<'a> {
    /// The response of the layer that answered the request itself.
    pub answer: Option<Response<Body>>,
    exits: Vec<Exit<'a>>,
}

impl Stack {
    /// Whether the app has no layers (request ids aside).
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The header carrying request ids: `RequestIDMiddleware`'s, else `x-request-id`
    /// when the access log is on (`logging`), else none (no ids are assigned).
    pub fn request_id_header(&self, logging: bool) -> Option<&HeaderName> {
        self.request_id
            .as_ref()
            .or(logging.then_some(&requestid::HEADER))
    }

    /// Runs the layers' way in, outermost first, until one answers.
    pub fn enter(&self, head: &Head<'_>) -> Pass<'_> {
        let mut exits = Vec::new();
        for layer in &self.layers {
            let answer = match layer {
                Layer::Cors(cors) => match cors.preflight(head) {
                    Some(answer) => Some(answer),
                    None => {
                        let origin = head.headers.get(header::ORIGIN).cloned();
                        exits.push(Exit::Cors(cors, origin));
                        None
                    }
                },
                Layer::Compress(c) => {
                    exits.push(Exit::Compress(c, c.choose(head.headers)));
                    None
                }
                Layer::TrustedHost(hosts) => hosts.check(head),
                Layer::HttpsRedirect(redirect) => redirect.check(head),
            };
            if answer.is_some() {
                return Pass { answer, exits };
            }
        }
        Pass {
            answer: None,
            exits,
        }
    }

    /// Adds the layer `options` describe inside the ones already declared.
    pub fn push(&mut self, options: MiddlewareOptions) -> PyResult<()> {
        let layer = match options {
            MiddlewareOptions::Cors(o) => Layer::Cors(Cors::from_options(&o)?),
            MiddlewareOptions::Compress(o) => Layer::Compress(Compress::from_options(&o)?),
            MiddlewareOptions::TrustedHost(o) => {
                Layer::TrustedHost(TrustedHosts::from_options(&o)?)
            }
            MiddlewareOptions::HttpsRedirect(HttpsRedirectOptions) => {
                Layer::HttpsRedirect(HttpsRedirect)
            }
            // Not a layer: the id is assigned before any layer runs, wherever the
            // middleware was added.
            MiddlewareOptions::RequestId(o) => {
                self.request_id = Some(o.header_name);
                return Ok(());
            }
        };
        self.layers.push(layer);
        Ok(())
    }
}

impl Pass<'_> {
    /// Runs the way out of the layers the request passed, innermost first.
    pub async fn leave(self, mut response: Response<Body>) -> Response<Body> {
        for exit in self.exits.into_iter().rev() {
            response = match exit {
                Exit::Cors(cors, origin) => cors.simple(origin.as_ref(), response),
                Exit::Compress(c, encoding) => c.apply(encoding, response).await,
            };
        }
        response
    }
}

/// A `text/plain` response, as Starlette's `PlainTextResponse`.
pub(crate) fn plain_text(status: StatusCode, text: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Body::full(text.into()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The body of the `400` for a host that is not allowed.
pub(crate) const INVALID_HOST: &str = "Invalid host header";

/// The path and query the request was sent to.
pub(crate) fn target_of<'a>(head: &Head<'a>) -> &'a str {
    head.uri
        .path_and_query()
        .map_or_else(|| head.uri.path(), |pq| pq.as_str())
}

/// A `307 Temporary Redirect` to `location`, as Starlette's `RedirectResponse`.
pub(crate) fn redirect(location: &str) -> Response<Body> {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    match HeaderValue::from_str(location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
            resp
        }
        Err(_) => plain_text(StatusCode::BAD_REQUEST, INVALID_HOST),
    }
}

/// Adds `token` to the response's `Vary`, merging what is there into one header.
pub(crate) fn add_vary(headers: &mut HeaderMap, token: &str) {
    let mut joined = String::new();
    for value in headers.get_all(header::VARY) {
        joined.push_str(&latin1(value));
        joined.push_str(", ");
    }
    joined.push_str(token);
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(header::VARY, v);
    }
}

/// A header value as text, each byte a character (as ASGI servers decode them).
pub(crate) fn latin1(value: &HeaderValue) -> String {
    value.as_bytes().iter().map(|&b| char::from(b)).collect()
}

/// Builders the layers' tests share.
#[cfg(test)]
pub(crate) mod testing {
    use http::{header, HeaderMap, HeaderValue, Method, Uri};

    use super::Head;

    /// A `GET` of `uri` with `headers`, sent to their `Host` over `scheme`.
    pub(crate) fn head_for<'a>(
        uri: &'a Uri,
        headers: &'a HeaderMap,
        scheme: &'static str,
    ) -> Head<'a> {
        Head {
            method: &Method::GET,
            uri,
            headers,
            scheme,
            host: headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or(""),
        }
    }

    /// Headers with just `Host: value`.
    pub(crate) fn host(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(value));
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_values_are_merged() {
        let mut h = HeaderMap::new();
        add_vary(&mut h, "Origin");
        assert_eq!(h[header::VARY], "Origin");
        h.append(header::VARY, HeaderValue::from_static("Cookie"));
        add_vary(&mut h, "Accept-Encoding");
        assert_eq!(h[header::VARY], "Origin, Cookie, Accept-Encoding");
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
    }

    #[test]
    fn request_ids_follow_the_middleware_or_the_access_log() {
        let stack = Stack::default();
        assert_eq!(stack.request_id_header(false), None);
        assert_eq!(stack.request_id_header(true), Some(&requestid::HEADER));
        let stack = Stack {
            request_id: Some(HeaderName::from_static("x-correlation-id")),
            ..Stack::default()
        };
        assert_eq!(
            stack.request_id_header(true).map(HeaderName::as_str),
            Some("x-correlation-id")
        );
    }
}
