//! Built-in middleware that runs in Rust: CORS ([`cors`]), response compression
//! ([`compress`]), trusted hosts and the HTTPS redirect ([`hosts`]), and request ids.
//!
//! Python declares the layers once, on the route table
//! (`RouteTable.add_middleware(kind, options)`, outermost first), and the server runs
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
pub mod hosts;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode, Uri};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::body::Body;
use crate::request_id;
use crate::routes::RouteTable;

use self::compress::{Compress, Encoding};
use self::cors::Cors;
use self::hosts::{HttpsRedirect, TrustedHosts};

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
            .or(logging.then_some(&request_id::HEADER))
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

    /// Adds `layer` inside the ones already declared.
    fn push(&mut self, kind: &str, options: &Bound<'_, PyDict>) -> PyResult<()> {
        let layer = match kind {
            "cors" => Layer::Cors(Cors::from_options(options)?),
            "compress" => Layer::Compress(Compress::from_options(options)?),
            "trusted_host" => Layer::TrustedHost(TrustedHosts::from_options(options)?),
            "https_redirect" => Layer::HttpsRedirect(HttpsRedirect),
            "request_id" => {
                let name: String = option(options, "header_name")?;
                let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
                    PyValueError::new_err(format!("bad request id header name {name:?}"))
                })?;
                self.request_id = Some(name);
                return Ok(());
            }
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown native middleware {other:?}"
                )))
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

/// The option `key`, which the Python class always passes.
pub(crate) fn option<'py, T>(options: &Bound<'py, PyDict>, key: &str) -> PyResult<T>
where
    T: FromPyObjectOwned<'py>,
{
    let value = options
        .get_item(key)?
        .ok_or_else(|| PyValueError::new_err(format!("missing middleware option {key:?}")))?;
    value.extract::<T>().map_err(Into::into)
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

#[pymethods]
impl RouteTable {
    /// Adds a built-in middleware layer inside those already added: `kind` is
    /// `"cors"`, `"compress"`, `"trusted_host"`, `"https_redirect"` or `"request_id"`,
    /// with the options its Python class collected.
    fn add_middleware(&self, kind: &str, options: &Bound<'_, PyDict>) -> PyResult<()> {
        self.with_middleware(|stack| stack.push(kind, options))
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
        assert_eq!(stack.request_id_header(true), Some(&request_id::HEADER));
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
