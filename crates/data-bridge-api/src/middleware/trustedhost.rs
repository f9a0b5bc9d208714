//! Starlette's `TrustedHostMiddleware`: `400 Invalid host header` for a request whose
//! host is not listed, or a redirect to its `www.` form.
//!
//! The host is the one [`crate::host`] decided for the request (already checked to
//! be `host[:port]`, so a redirect's `Location` cannot be steered elsewhere); the
//! scheme is `X-Forwarded-Proto`'s from a trusted proxy, else `http`: what the
//! handler sees in `request.url`.

use http::{Response, StatusCode};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::{plain_text, redirect, target_of, Head, INVALID_HOST};
use crate::body::Body;

/// Why a host pattern is refused (Starlette's message).
const ENFORCE_DOMAIN_WILDCARD: &str = "Domain wildcard patterns must be like '*.example.com'.";

/// What `TrustedHostMiddleware` passes to the server
/// (`data_bridge._native.TrustedHostOptions`). Building one checks the patterns.
#[pyclass(module = "data_bridge._native", frozen, get_all, from_py_object)]
#[derive(Clone, Debug)]
pub struct TrustedHostOptions {
    /// Exact host names, `*.domain` for its subdomains, or `*` for any host.
    pub allowed_hosts: Vec<String>,
    /// Whether a host whose `www.` form is allowed is redirected there.
    pub www_redirect: bool,
}

#[pymethods]
impl TrustedHostOptions {
    /// Why a host pattern is refused (Python's `trustedhost.ENFORCE_DOMAIN_WILDCARD`).
    #[classattr]
    const ENFORCE_DOMAIN_WILDCARD: &'static str = ENFORCE_DOMAIN_WILDCARD;

    #[new]
    #[pyo3(signature = (*, allowed_hosts, www_redirect))]
    fn py_new(allowed_hosts: Vec<String>, www_redirect: bool) -> PyResult<Self> {
        let options = TrustedHostOptions {
            allowed_hosts,
            www_redirect,
        };
        TrustedHosts::from_options(&options)?;
        Ok(options)
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
                return Err(PyValueError::new_err(ENFORCE_DOMAIN_WILDCARD));
            }
        }
        Ok(TrustedHosts {
            allow_any: patterns.iter().any(|p| p == "*"),
            patterns,
            www_redirect,
        })
    }

    /// The layer for the options `TrustedHostMiddleware` passed.
    pub fn from_options(options: &TrustedHostOptions) -> PyResult<TrustedHosts> {
        TrustedHosts::new(options.allowed_hosts.clone(), options.www_redirect)
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

#[cfg(test)]
mod tests {
    use http::{header, Uri};

    use super::*;
    use crate::middleware::testing::{head_for, host};

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
}
