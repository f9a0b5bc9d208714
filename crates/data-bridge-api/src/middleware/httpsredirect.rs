//! Starlette's `HTTPSRedirectMiddleware`: `307` from `http` to `https` (`ws` to
//! `wss`), to the host [`crate::host`] decided for the request, a default port
//! dropped; the scheme is `X-Forwarded-Proto`'s from a trusted proxy, else `http`.

use http::{header, Response, StatusCode};
use pyo3::prelude::*;

use super::{plain_text, redirect, target_of, Head, INVALID_HOST};
use crate::body::Body;

/// What `HTTPSRedirectMiddleware` passes to the server
/// (`data_bridge._native.HttpsRedirectOptions`): it has no options.
#[pyclass(module = "data_bridge._native", frozen, from_py_object)]
#[derive(Clone, Debug, Default)]
pub struct HttpsRedirectOptions;

#[pymethods]
impl HttpsRedirectOptions {
    #[new]
    fn py_new() -> Self {
        HttpsRedirectOptions
    }
}

/// Starlette's `HTTPSRedirectMiddleware`.
pub struct HttpsRedirect;

/// `netloc` without a default port (`:80`, `:443`), whose host is then lower-cased
/// (as `urllib` reports it).
fn without_default_port(netloc: &str) -> String {
    let (host, port) = match netloc.rsplit_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (netloc, None),
    };
    match port {
        Some("80" | "443") => host.to_lowercase(),
        _ => netloc.to_owned(),
    }
}

impl HttpsRedirect {
    /// `None` for a request that came over `https`, else the redirect to it.
    pub fn check(&self, head: &Head<'_>) -> Option<Response<Body>> {
        if head.scheme != "http" && head.scheme != "ws" {
            return None;
        }
        let netloc = head.host;
        if netloc.is_empty() {
            return Some(plain_text(StatusCode::BAD_REQUEST, INVALID_HOST));
        }
        let websocket = head.scheme == "ws"
            || head
                .headers
                .get(header::UPGRADE)
                .is_some_and(|u| u.as_bytes().eq_ignore_ascii_case(b"websocket"));
        let scheme = if websocket { "wss" } else { "https" };
        let location = format!(
            "{scheme}://{}{}",
            without_default_port(netloc),
            target_of(head)
        );
        Some(redirect(&location))
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderValue, Uri};

    use super::*;
    use crate::middleware::testing::{head_for, host};

    #[test]
    fn redirects_plain_http_to_https() {
        let uri = Uri::from_static("/a/b?x=1");
        let h = host("Example.com:80");
        let resp = HttpsRedirect.check(&head_for(&uri, &h, "http"));
        let resp = resp.unwrap_or_else(|| panic!("no redirect"));
        assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://example.com/a/b?x=1"
        );
        let h = host("example.com:8080");
        let resp = HttpsRedirect.check(&head_for(&uri, &h, "http"));
        assert_eq!(
            resp.map(|r| r.headers()[header::LOCATION].clone()),
            Some(HeaderValue::from_static("https://example.com:8080/a/b?x=1"))
        );
        assert!(HttpsRedirect.check(&head_for(&uri, &h, "https")).is_none());
    }
}
