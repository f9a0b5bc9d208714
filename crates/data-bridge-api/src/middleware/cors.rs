//! CORS, as Starlette's `CORSMiddleware`: a preflight (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) is answered here, `200 OK` with the
//! `access-control-allow-*` headers or `400 Disallowed CORS <what>`; every other
//! response gets the `access-control-*` headers an allowed `Origin` calls for, and
//! `Vary: Origin`.
//!
//! Why not tower-http's `CorsLayer`: apps are ported from Starlette and their tests
//! check Starlette's exact answers: a refused preflight is a `400` whose body names
//! what was refused (origin, method or headers), `allow_origin_regex` is matched as
//! Python's `re.fullmatch`, and the options arrive from Python as Starlette's keyword
//! arguments; `CorsLayer` has its own answers and builder, and matching Starlette
//! through it would take as much code as this module.

use http::{header, HeaderName, HeaderValue, Method, Response, StatusCode};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use regex::Regex;

use super::{add_vary, latin1, plain_text, Head};
use crate::body::Body;

/// The methods `allow_methods=["*"]` stands for (Starlette's list).
const ALL_METHODS: [&str; 8] = [
    "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY",
];

/// Request headers a preflight may always ask for.
const SAFELISTED_HEADERS: [&str; 4] = [
    "Accept",
    "Accept-Language",
    "Content-Language",
    "Content-Type",
];

const PREFLIGHT_VARY: &str = "Origin, Access-Control-Request-Method, \
     Access-Control-Request-Headers, Access-Control-Request-Private-Network";

const REQUEST_METHOD: HeaderName = HeaderName::from_static("access-control-request-method");
const REQUEST_HEADERS: HeaderName = HeaderName::from_static("access-control-request-headers");
const REQUEST_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-request-private-network");
const ALLOW_PRIVATE_NETWORK: HeaderName =
    HeaderName::from_static("access-control-allow-private-network");

type Headers = Vec<(HeaderName, HeaderValue)>;

/// What `CORSMiddleware` passes to the server (`data_bridge._native.CorsOptions`):
/// Starlette's options, every one given (the Python class holds the defaults).
///
/// Building one checks it: a bad `allow_origin_regex` or header value is a
/// `ValueError` when the middleware is added, not when the server starts.
#[pyclass(module = "data_bridge._native", frozen, get_all, from_py_object)]
#[derive(Clone, Debug)]
pub struct CorsOptions {
    /// Origins allowed (`*`: any).
    pub allow_origins: Vec<String>,
    /// Methods a preflight may ask for (`*`: Starlette's list).
    pub allow_methods: Vec<String>,
    /// Request headers a preflight may ask for (`*`: any).
    pub allow_headers: Vec<String>,
    /// Whether credentialed requests are allowed.
    pub allow_credentials: bool,
    /// A regular expression (Rust `regex` syntax) that allowed origins match whole.
    pub allow_origin_regex: Option<String>,
    /// Whether `Access-Control-Request-Private-Network` is granted.
    pub allow_private_network: bool,
    /// Response headers the browser may show the page.
    pub expose_headers: Vec<String>,
    /// How long a preflight answer may be cached, in seconds.
    pub max_age: u64,
}

#[pymethods]
impl CorsOptions {
    /// The methods `allow_methods=["*"]` stands for (Python's `cors.ALL_METHODS`).
    #[classattr]
    const ALL_METHODS: [&'static str; 8] = ALL_METHODS;

    /// Request headers a preflight may always ask for (`cors.SAFELISTED_HEADERS`).
    #[classattr]
    const SAFELISTED_HEADERS: [&'static str; 4] = SAFELISTED_HEADERS;

    #[new]
    #[pyo3(signature = (*, allow_origins, allow_methods, allow_headers, allow_credentials, allow_origin_regex, allow_private_network, expose_headers, max_age))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        allow_origins: Vec<String>,
        allow_methods: Vec<String>,
        allow_headers: Vec<String>,
        allow_credentials: bool,
        allow_origin_regex: Option<String>,
        allow_private_network: bool,
        expose_headers: Vec<String>,
        max_age: u64,
    ) -> PyResult<Self> {
        let options = CorsOptions {
            allow_origins,
            allow_methods,
            allow_headers,
            allow_credentials,
            allow_origin_regex,
            allow_private_network,
            expose_headers,
            max_age,
        };
        Cors::from_options(&options)?;
        Ok(options)
    }
}

/// A configured CORS policy.
pub struct Cors {
    allow_origins: Vec<String>,
    allow_all_origins: bool,
    origin_regex: Option<Regex>,
    allow_methods: Vec<String>,
    /// Lower-cased, the safelisted headers included.
    allow_headers: Vec<String>,
    allow_all_headers: bool,
    allow_credentials: bool,
    allow_private_network: bool,
    preflight_explicit_origin: bool,
    simple_headers: Headers,
    preflight_headers: Headers,
}

fn value(text: &str) -> PyResult<HeaderValue> {
    HeaderValue::from_str(text)
        .map_err(|_| PyValueError::new_err(format!("bad CORS header value {text:?}")))
}

impl Cors {
    /// The policy for Starlette's options: `allow_origins`, `allow_methods`,
    /// `allow_headers`, `allow_credentials`, `allow_origin_regex`,
    /// `allow_private_network`, `expose_headers` and `max_age`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        allow_origins: Vec<String>,
        allow_methods: Vec<String>,
        allow_headers: Vec<String>,
        allow_credentials: bool,
        allow_origin_regex: Option<&str>,
        allow_private_network: bool,
        expose_headers: Vec<String>,
        max_age: u64,
    ) -> PyResult<Cors> {
        let allow_methods: Vec<String> = if allow_methods.iter().any(|m| m == "*") {
            ALL_METHODS.iter().map(|m| (*m).to_owned()).collect()
        } else {
            allow_methods
        };
        let origin_regex = allow_origin_regex
            .map(|re| Regex::new(&format!("^(?:{re})$")))
            .transpose()
            .map_err(|e| PyValueError::new_err(format!("bad allow_origin_regex: {e}")))?;
        let allow_all_origins = allow_origins.iter().any(|o| o == "*");
        let allow_all_headers = allow_headers.iter().any(|h| h == "*");
        let preflight_explicit_origin = !allow_all_origins || allow_credentials;

        let mut simple_headers = Headers::new();
        if allow_all_origins {
            simple_headers.push((
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ));
        }
        if allow_credentials {
            simple_headers.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        if !expose_headers.is_empty() {
            simple_headers.push((
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                value(&expose_headers.join(", "))?,
            ));
        }

        let mut preflight_headers: Headers =
            vec![(header::VARY, HeaderValue::from_static(PREFLIGHT_VARY))];
        if !preflight_explicit_origin {
            preflight_headers.push((
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            ));
        }
        preflight_headers.push((
            header::ACCESS_CONTROL_ALLOW_METHODS,
            value(&allow_methods.join(", "))?,
        ));
        preflight_headers.push((header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(max_age)));
        let mut allowed: Vec<String> = SAFELISTED_HEADERS
            .iter()
            .map(|h| (*h).to_owned())
            .chain(allow_headers)
            .collect();
        allowed.sort();
        allowed.dedup();
        if !allow_all_headers {
            preflight_headers.push((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                value(&allowed.join(", "))?,
            ));
        }
        if allow_credentials {
            preflight_headers.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        Ok(Cors {
            allow_origins,
            allow_all_origins,
            origin_regex,
            allow_methods,
            allow_headers: allowed.iter().map(|h| h.to_lowercase()).collect(),
            allow_all_headers,
            allow_credentials,
            allow_private_network,
            preflight_explicit_origin,
            simple_headers,
            preflight_headers,
        })
    }

    /// The policy for the options `CORSMiddleware` passed.
    pub fn from_options(options: &CorsOptions) -> PyResult<Cors> {
        let o = options.clone();
        Cors::new(
            o.allow_origins,
            o.allow_methods,
            o.allow_headers,
            o.allow_credentials,
            o.allow_origin_regex.as_deref(),
            o.allow_private_network,
            o.expose_headers,
            o.max_age,
        )
    }

    fn is_allowed_origin(&self, origin: &str) -> bool {
        self.allow_all_origins
            || self
                .origin_regex
                .as_ref()
                .is_some_and(|re| re.is_match(origin))
            || self.allow_origins.iter().any(|o| o == origin)
    }

    /// The answer to a preflight request, or `None` for any other request.
    pub fn preflight(&self, head: &Head<'_>) -> Option<Response<Body>> {
        if head.method != Method::OPTIONS {
            return None;
        }
        let origin = head.headers.get(header::ORIGIN)?;
        let method = head.headers.get(REQUEST_METHOD)?;
        let requested_headers = head.headers.get(REQUEST_HEADERS);
        let mut headers = self.preflight_headers.clone();
        let mut failures = Vec::new();
        if self.is_allowed_origin(&latin1(origin)) {
            if self.preflight_explicit_origin {
                headers.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
            }
        } else {
            failures.push("origin");
        }
        let method = latin1(method);
        if !self.allow_methods.contains(&method) {
            failures.push("method");
        }
        match requested_headers {
            Some(requested) if self.allow_all_headers => {
                headers.push((header::ACCESS_CONTROL_ALLOW_HEADERS, requested.clone()));
            }
            Some(requested) => {
                let requested = latin1(requested).to_lowercase();
                if requested
                    .split(',')
                    .any(|h| !self.allow_headers.iter().any(|a| a == h.trim()))
                {
                    failures.push("headers");
                }
            }
            None => {}
        }
        if head.headers.contains_key(REQUEST_PRIVATE_NETWORK) {
            if self.allow_private_network {
                headers.push((ALLOW_PRIVATE_NETWORK, HeaderValue::from_static("true")));
            } else {
                failures.push("private-network");
            }
        }
        let mut resp = if failures.is_empty() {
            plain_text(StatusCode::OK, "OK")
        } else {
            plain_text(
                StatusCode::BAD_REQUEST,
                format!("Disallowed CORS {}", failures.join(", ")),
            )
        };
        for (name, value) in headers {
            resp.headers_mut().insert(name, value);
        }
        Some(resp)
    }

    /// Adds what an ordinary (not preflight) response needs for a request from `origin`.
    pub fn simple(&self, origin: Option<&HeaderValue>, mut resp: Response<Body>) -> Response<Body> {
        let headers = resp.headers_mut();
        if let Some(origin) = origin {
            for (name, value) in &self.simple_headers {
                headers.insert(name.clone(), value.clone());
            }
            let explicit = if self.allow_all_origins {
                self.allow_credentials
            } else {
                self.is_allowed_origin(&latin1(origin))
            };
            if explicit {
                headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            }
        }
        add_vary(headers, "Origin");
        resp
    }
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, Uri};

    use super::*;

    fn cors(origins: &[&str], methods: &[&str], headers: &[&str], credentials: bool) -> Cors {
        let strings = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect();
        Cors::new(
            strings(origins),
            strings(methods),
            strings(headers),
            credentials,
            Some(r"https://.*\.example\.org"),
            false,
            vec!["X-Total".into()],
            600,
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn preflight(cors: &Cors, pairs: &[(&'static str, &'static str)]) -> Option<Response<Body>> {
        let mut headers = HeaderMap::new();
        for (k, v) in pairs {
            headers.insert(*k, HeaderValue::from_static(v));
        }
        let uri = Uri::from_static("/x");
        cors.preflight(&Head {
            method: &Method::OPTIONS,
            uri: &uri,
            headers: &headers,
            scheme: "http",
            host: "example.com",
        })
    }

    #[test]
    fn preflight_from_an_allowed_origin() {
        let c = cors(&["https://a.test"], &["*"], &["X-Token"], false);
        let resp = preflight(
            &c,
            &[
                ("origin", "https://a.test"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-token, content-type"),
            ],
        );
        let resp = resp.unwrap_or_else(|| panic!("not a preflight"));
        assert_eq!(resp.status(), StatusCode::OK);
        let h = resp.headers();
        assert_eq!(h["access-control-allow-origin"], "https://a.test");
        assert_eq!(
            h["access-control-allow-methods"],
            "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT, QUERY"
        );
        assert_eq!(
            h["access-control-allow-headers"],
            "Accept, Accept-Language, Content-Language, Content-Type, X-Token"
        );
        assert_eq!(h["access-control-max-age"], "600");
    }

    #[test]
    fn preflight_failures_are_listed() {
        let c = cors(&["https://a.test"], &["GET"], &[], false);
        let resp = preflight(
            &c,
            &[
                ("origin", "https://b.test"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-other"),
            ],
        );
        let resp = resp.unwrap_or_else(|| panic!("not a preflight"));
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert!(!resp.headers().contains_key("access-control-allow-origin"));
        assert!(preflight(&c, &[("origin", "https://a.test")]).is_none());
    }

    #[test]
    fn simple_responses_echo_allowed_origins() {
        let c = cors(&["https://a.test"], &["GET"], &[], false);
        let echoed = c.simple(
            Some(&HeaderValue::from_static("https://x.example.org")),
            Response::new(Body::empty()),
        );
        assert_eq!(
            echoed.headers()["access-control-allow-origin"],
            "https://x.example.org"
        );
        assert_eq!(echoed.headers()["access-control-expose-headers"], "X-Total");
        assert_eq!(echoed.headers()["vary"], "Origin");
        let refused = c.simple(
            Some(&HeaderValue::from_static("https://evil.test")),
            Response::new(Body::empty()),
        );
        assert!(!refused
            .headers()
            .contains_key("access-control-allow-origin"));
        let any = cors(&["*"], &["GET"], &[], false);
        let star = any.simple(
            Some(&HeaderValue::from_static("https://b.test")),
            Response::new(Body::empty()),
        );
        assert_eq!(star.headers()["access-control-allow-origin"], "*");
    }
}
