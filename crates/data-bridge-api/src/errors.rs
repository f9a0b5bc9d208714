//! Every error the HTTP server answers with, each carrying its status code and JSON
//! body in one place, and their mapping to Python exceptions for start-up errors.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use pyo3::exceptions::{PyConnectionResetError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::body::Body;
use crate::hooks;

/// What can go wrong while serving or setting up a server.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No route matches the path (404).
    #[error("Not Found")]
    NotFound,
    /// The path exists for other methods (405, with `Allow`).
    #[error("Method Not Allowed")]
    MethodNotAllowed {
        /// The methods the path accepts, comma-separated.
        allow: String,
    },
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// The client sent nothing of its request body for the body timeout (408).
    #[error("Request Timeout")]
    RequestTimeout,
    /// The body exceeds the configured limit (413).
    #[error("Request body too large")]
    PayloadTooLarge,
    /// No part of the requested range lies within the file (416, with
    /// `Content-Range: bytes */<len>`).
    #[error("Range Not Satisfiable")]
    RangeNotSatisfiable {
        /// The file's length in bytes.
        len: u64,
    },
    /// A path parameter (or other input) failed validation (422). Holds the JSON
    /// list that goes under `detail`.
    #[error("validation failed")]
    Validation(String),
    /// The handler failed (500); the traceback is included only in debug mode.
    #[error("Internal Server Error")]
    Internal(Option<String>),
    /// Too much Python work is queued (503, with `Retry-After`).
    #[error("Service Unavailable")]
    Overloaded,
    /// The handler did not finish within its timeout (504).
    #[error("Gateway Timeout")]
    Timeout,
    /// A route definition conflicts with another (raised at start-up).
    #[error("{0}")]
    RouteConflict(String),
    /// Binding or configuring the listening socket failed (raised at start-up).
    #[error("{0}")]
    Bind(#[from] std::io::Error),
    /// The server was used in a state that does not allow it.
    #[error("{0}")]
    State(&'static str),
    /// A server setting has a value that cannot be used (raised at start-up).
    #[error("{0}")]
    Config(String),
    /// The client went away while its request body was read or its response streamed.
    #[error("the client disconnected")]
    ClientDisconnected,
}

/// `s` as a JSON string literal: the one encoder of every string the server writes
/// into JSON by hand (error bodies, path-parameter errors, the access log). Metrics
/// labels are not JSON: they use the Prometheus text format's own escapes.
pub(crate) fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_string(&mut out, s);
    out
}

/// Appends `s` as a JSON string literal to `out` (see [`json_string`]).
pub(crate) fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    push_json_escaped(out, s);
    out.push('"');
}

/// Appends `s` to `out` escaped for the inside of a JSON string literal, for a
/// literal built from several pieces.
pub(crate) fn push_json_escaped(out: &mut String, s: &str) {
    use std::fmt::Write as _;
    // Only ASCII bytes are escaped, so the runs between them are whole characters
    // and are copied at once.
    let mut clean = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[clean..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        clean = i + 1;
    }
    out.push_str(&s[clean..]);
}

/// `{"detail": <detail>}` where `detail` is already JSON.
pub fn detail_body(detail_json: &str) -> Bytes {
    Bytes::from(format!("{{\"detail\":{detail_json}}}"))
}

/// A JSON response with `body`.
pub fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Body::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

impl ApiError {
    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) | ApiError::ClientDisconnected => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_)
            | ApiError::RouteConflict(_)
            | ApiError::Bind(_)
            | ApiError::State(_)
            | ApiError::Config(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The response a client gets: `{"detail": ...}` plus the headers the status needs.
    pub fn into_response(self) -> Response<Body> {
        let status = self.status();
        let body = match &self {
            ApiError::Validation(list) => detail_body(list),
            ApiError::Internal(Some(tb)) => Bytes::from(format!(
                "{{\"detail\":\"Internal Server Error\",\"traceback\":{}}}",
                json_string(tb)
            )),
            ApiError::Internal(None) => detail_body("\"Internal Server Error\""),
            other => detail_body(&json_string(&other.to_string())),
        };
        let mut resp = json_response(status, body);
        match &self {
            ApiError::MethodNotAllowed { allow } => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
            }
            ApiError::Overloaded => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            ApiError::RangeNotSatisfiable { len } => {
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    resp.headers_mut().insert(header::CONTENT_RANGE, v);
                }
            }
            // The unread body is still on the wire: the connection cannot be reused.
            ApiError::PayloadTooLarge | ApiError::RequestTimeout => {
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        resp
    }
}

impl ApiError {
    /// The error as the `HTTPException` a handler sees (when reading a streamed request
    /// body): if the handler lets it propagate, the client gets the same answer the
    /// server would have given before running the handler.
    pub fn to_http_exception(&self, py: Python<'_>) -> PyErr {
        if matches!(self, ApiError::ClientDisconnected) {
            return PyConnectionResetError::new_err(self.to_string());
        }
        let build = || -> PyResult<PyErr> {
            let hooks = hooks::get(py)?;
            let headers = PyDict::new(py);
            if matches!(self, ApiError::PayloadTooLarge | ApiError::RequestTimeout) {
                // The rest of the body is still on the wire.
                headers.set_item("connection", "close")?;
            }
            let exc = hooks.http_exception.bind(py).call1((
                self.status().as_u16(),
                self.to_string(),
                headers,
            ))?;
            Ok(PyErr::from_value(exc))
        };
        build().unwrap_or_else(|err| err)
    }
}

impl From<ApiError> for PyErr {
    fn from(err: ApiError) -> PyErr {
        match err {
            ApiError::Bind(e) => PyOSError::new_err((e.raw_os_error().unwrap_or(0), e.to_string())),
            ApiError::RouteConflict(msg) | ApiError::Config(msg) => PyValueError::new_err(msg),
            ApiError::ClientDisconnected => PyConnectionResetError::new_err(err.to_string()),
            other => PyRuntimeError::new_err(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_json_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(json_string("\u{1}"), "\"\\u0001\"");
    }

    proptest::proptest! {
        #[test]
        fn prop_any_string_round_trips_through_a_json_parser(s in "\\PC*|[\\x00-\\x1f\"\\\\\u{7f}\u{2028}\u{fffd}]*") {
            let parsed: String = serde_json::from_str(&json_string(&s))
                .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert_eq!(parsed, s);
        }

        #[test]
        fn prop_validation_bodies_are_json(raw in "\\PC*|[\\x00-\\x1f\"\\\\%]*") {
            let item = crate::router::convert("user_id", &crate::router::ParamKind::Int, &raw);
            if let Err(item) = item {
                let body = detail_body(&format!("[{item}]"));
                let parsed: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
                proptest::prop_assert_eq!(&parsed["detail"][0]["input"], &serde_json::Value::String(raw));
            }
        }
    }

    #[test]
    fn errors_carry_status_and_headers() {
        let resp = ApiError::MethodNotAllowed {
            allow: "GET, HEAD".into(),
        }
        .into_response();
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()[header::ALLOW], "GET, HEAD");
        let resp = ApiError::Overloaded.into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key(header::RETRY_AFTER));
        assert_eq!(ApiError::Timeout.status(), StatusCode::GATEWAY_TIMEOUT);
        let resp = ApiError::RangeNotSatisfiable { len: 42 }.into_response();
        assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(resp.headers()[header::CONTENT_RANGE], "bytes */42");
    }
}
