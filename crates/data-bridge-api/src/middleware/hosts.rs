//! The layers that act on the host and scheme a request was sent to:
//! [`TrustedHosts`] (Starlette's `TrustedHostMiddleware`: `400 Invalid host header`
//! for a host not listed, or a redirect to its `www.` form) and [`HttpsRedirect`]
//! (`HTTPSRedirectMiddleware`: `307` from `http` to `https`, `ws` to `wss`).
//!
//! The host is the one [`crate::host`] decided for the request (already checked to
//! be `host[:port]`, so a redirect's `Location` cannot be steered elsewhere); the
//! scheme is `X-Forwarded-Proto`'s from a trusted proxy, else `http`: what the
//! handler sees in `request.url`.

use http::{header, HeaderValue, Response, StatusCode};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use super::{option, plain_text, Head};
use crate::body::Body;

/// The body of the `400` for a host that is not allowed.
const INVALID_HOST: &str = "Invalid host header";

/// The path and query the request was sent to.
fn target_of<'a>(head: &Head<'a>) -> &'a str {
    head.uri
        .path_and_query()
        .map_or_else(|| head.uri.path(), |pq| pq.as_str())
}

/// A `307 Temporary Redirect` to `location`, as Starlette's `RedirectResponse`.
fn redirect(location: &str) -> Response<Body> {
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

/// Starlette's `TrustedHostMiddleware`.
pub struct TrustedHosts {
    patterns: Vec<String>,
    allow_any: bool,
    www_redirect: bool,
}

impl TrustedHosts {
    /// The layer for `allowed_hosts` (exact names, `*.domain` or `*`); `www_redirect`
    /// sends a host whose `www.` form is allowed there.
    pub fn new(patterns: Vec<String>, www_redirect: bool) -> PyResult<TrustedHosts> {
        for p in &patterns {
            let wildcard_ok = !p.chars().skip(1).any(|c| c == '*')
                && (!p.starts_with('*') || p == "*" || p.starts_with("*."));
            if !wildcard_ok {
                return Err(PyValueError::new_err(
                    "Domain wildcard patterns must be like '*.example.com'.",
                ));
            }
        }
        Ok(TrustedHosts {
            allow_any: patterns.iter().any(|p| p == "*"),
            patterns,
            www_redirect,
        })
    }

    /// The layer for the options `TrustedHostMiddleware` collected.
    pub fn from_options(options: &Bound<'_, PyDict>) -> PyResult<TrustedHosts> {
        TrustedHosts::new(
            option(options, "allowed_hosts")?,
            option(options, "www_redirect")?,
        )
    }

    /// `None` for an allowed host, else the answer.
    pub fn check(&self, head: &Head<'_>) -> Option<Response<Body>> {
        if self.allow_any {
            return None;
        }
        let netloc = head.host;
        let host = netloc.split(':').next().unwrap_or("");
        let mut www = false;
        for pattern in &self.patterns {
            if host == pattern || (pattern.starts_with('*') && host.ends_with(&pattern[1..])) {
                return None;
            }
            if pattern.strip_prefix("www.") == Some(host) {
                www = true;
            }
        }
        if www && self.www_redirect {
            let location = format!("{}://www.{netloc}{}", head.scheme, target_of(head));
            return Some(redirect(&location));
        }
        Some(plain_text(StatusCode::BAD_REQUEST, INVALID_HOST))
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
    use http::{HeaderMap, Method, Uri};

    use super::*;

    fn head_for<'a>(uri: &'a Uri, headers: &'a HeaderMap, scheme: &'static str) -> Head<'a> {
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

    fn host(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(value));
        h
    }

    fn trusted(patterns: &[&str]) -> TrustedHosts {
        TrustedHosts::new(patterns.iter().map(|p| (*p).to_owned()).collect(), true)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn allows_listed_hosts_and_wildcards() {
        let t = trusted(&["example.com", "*.example.org", "www.example.net"]);
        let uri = Uri::from_static("/p?q=1");
        for ok in ["example.com", "example.com:8000", "a.example.org"] {
            let h = host(ok);
            assert!(t.check(&head_for(&uri, &h, "http")).is_none(), "{ok}");
        }
        let h = host("evil.com");
        let resp = t.check(&head_for(&uri, &h, "http"));
        assert_eq!(resp.map(|r| r.status()), Some(StatusCode::BAD_REQUEST));
        let h = host("example.net:8000");
        let resp = t.check(&head_for(&uri, &h, "http"));
        let resp = resp.unwrap_or_else(|| panic!("no redirect"));
        assert_eq!(
            resp.headers()[header::LOCATION],
            "http://www.example.net:8000/p?q=1"
        );
        assert!(TrustedHosts::new(vec!["a.*.com".into()], true).is_err());
    }

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
