//! The request as Python handlers see it: a native object that copies nothing into
//! Python until the handler asks (`data_bridge.Request` wraps it with the familiar API).
//!
//! HTTP requests and WebSocket handshakes are built the same way, by
//! [`RequestData::new`], from the head Hyper parsed, where the request came from
//! ([`Origin`]) and what routing found.

use std::net::SocketAddr;
use std::sync::Arc;

use http::request::Parts;
use http::{HeaderMap, Method, Uri, Version};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::endpoint::PyEndpoint;
use crate::request_body::RequestBody;
use crate::router::ParamValue;

/// Everything Rust parsed about a request.
pub struct RequestData {
    /// The method.
    pub method: Method,
    /// The request target.
    pub uri: Uri,
    /// The HTTP version.
    pub version: Version,
    /// The headers.
    pub headers: HeaderMap,
    /// The body: read before the handler runs, or left on the connection.
    pub body: RequestBody,
    /// The peer's address (`None` on Unix sockets).
    pub client: Option<SocketAddr>,
    /// The local address (`None` on Unix sockets).
    pub server: Option<SocketAddr>,
    /// The converted path parameters, in template order.
    pub params: Vec<(String, ParamValue)>,
    /// The scheme the client used: `http`, or what a trusted proxy said.
    pub scheme: &'static str,
    /// The host the request was sent to (see [`crate::host`]).
    pub host: String,
}

/// Where a request came from and where it was sent, as the server resolved them (after
/// a trusted proxy's headers).
#[derive(Clone, Debug)]
pub struct Origin {
    /// The client's address (`None` on Unix sockets).
    pub client: Option<SocketAddr>,
    /// The local address (`None` on Unix sockets).
    pub server: Option<SocketAddr>,
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The host the request was sent to (see [`crate::host`]).
    pub host: String,
}

impl RequestData {
    /// The request a handler gets: `head` as parsed (its extensions are dropped),
    /// `body`, where it came from and the converted path parameters.
    ///
    /// ```
    /// use data_bridge_api::request::{Origin, RequestData};
    /// use data_bridge_api::request_body::RequestBody;
    ///
    /// let (head, ()) = http::Request::get("/items/7?full=1").body(())?.into_parts();
    /// let origin = Origin { client: None, server: None, scheme: "http", host: "example.com".into() };
    /// let data = RequestData::new(head, RequestBody::empty(), origin, Vec::new());
    /// assert_eq!(data.uri.query(), Some("full=1"));
    /// assert_eq!(data.host, "example.com");
    /// # Ok::<(), http::Error>(())
    /// ```
    pub fn new(
        head: Parts,
        body: RequestBody,
        origin: Origin,
        params: Vec<(String, ParamValue)>,
    ) -> Self {
        RequestData {
            method: head.method,
            uri: head.uri,
            version: head.version,
            headers: head.headers,
            body,
            client: origin.client,
            server: origin.server,
            params,
            scheme: origin.scheme,
            host: origin.host,
        }
    }
}

/// Converts a path parameter to Python, through the endpoint's converter if any.
pub fn param_to_py(
    py: Python<'_>,
    endpoint: &PyEndpoint,
    name: &str,
    value: &ParamValue,
) -> PyResult<Py<PyAny>> {
    let raw: Py<PyAny> = match value {
        ParamValue::Str(s) => PyString::new(py, s).into_any().unbind(),
        ParamValue::Int(i) => i.into_pyobject(py)?.into_any().unbind(),
        ParamValue::Float(f) => f.into_pyobject(py)?.into_any().unbind(),
        ParamValue::Bool(b) => b.into_pyobject(py)?.to_owned().into_any().unbind(),
    };
    match endpoint.converters.iter().find(|(n, _)| n == name) {
        Some((_, conv)) => Ok(conv.bind(py).call1((raw,))?.unbind()),
        None => Ok(raw),
    }
}

/// The native request object (`data_bridge._native.RequestData`).
#[pyclass(module = "data_bridge._native", frozen, name = "RequestData")]
pub struct PyRequest {
    data: Arc<RequestData>,
    endpoint: Arc<PyEndpoint>,
}

impl PyRequest {
    /// Wraps parsed request data for `endpoint`.
    pub fn new(data: Arc<RequestData>, endpoint: Arc<PyEndpoint>) -> Self {
        PyRequest { data, endpoint }
    }
}

fn addr(py: Python<'_>, a: Option<SocketAddr>) -> PyResult<Py<PyAny>> {
    match a {
        Some(a) => Ok((a.ip().to_string(), a.port())
            .into_pyobject(py)?
            .into_any()
            .unbind()),
        None => Ok(py.None()),
    }
}

#[pymethods]
impl PyRequest {
    /// The method, e.g. `"GET"`.
    #[getter]
    fn method(&self) -> &str {
        self.data.method.as_str()
    }

    /// The path, percent-encoded as received.
    #[getter]
    fn path(&self) -> &str {
        self.data.uri.path()
    }

    /// The query string without `?` (empty if none).
    #[getter]
    fn query_string(&self) -> &str {
        self.data.uri.query().unwrap_or("")
    }

    /// `"1.1"` or `"2"`.
    #[getter]
    fn http_version(&self) -> &'static str {
        match self.data.version {
            Version::HTTP_2 => "2",
            Version::HTTP_10 => "1.0",
            _ => "1.1",
        }
    }

    /// `[(name, value), ...]` with lower-case names, in arrival order.
    fn header_pairs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for (name, value) in &self.data.headers {
            let value = String::from_utf8_lossy(value.as_bytes());
            list.append(PyTuple::new(py, [name.as_str(), value.as_ref()])?)?;
        }
        Ok(list)
    }

    /// The body as `bytes` if it was read before the handler ran, else `None`.
    fn body_bytes<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.data.body.buffered().map(|b| PyBytes::new(py, b))
    }

    /// The next chunk of a body left on the connection (`b""` at its end): `bytes` if
    /// it has arrived, else a future of it. Past the body size limit it raises (or the
    /// future fails with) `HTTPException(413)`.
    fn read_chunk(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.data.body.read_chunk(py)
    }

    /// The rest of the body: `bytes` if it was read before the handler ran, else a
    /// future of it (read in Rust, delivered at once).
    fn read_body(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.data.body.read_rest(py)
    }

    /// The converted path parameters.
    fn path_params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (name, value) in &self.data.params {
            dict.set_item(name, param_to_py(py, &self.endpoint, name, value)?)?;
        }
        Ok(dict)
    }

    /// The scheme the client used: `"http"`, or `X-Forwarded-Proto` from a trusted proxy.
    #[getter]
    fn scheme(&self) -> &'static str {
        self.data.scheme
    }

    /// The host (and port) the request was sent to: the request target's authority,
    /// else `Host`, unless the server believes a trusted proxy's `X-Forwarded-Host`;
    /// `""` for an HTTP/1.0 request that named none.
    #[getter]
    fn host(&self) -> &str {
        &self.data.host
    }

    /// `(host, port)` of the client (after proxy headers), or `None`.
    #[getter]
    fn client(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        addr(py, self.data.client)
    }

    /// `(host, port)` the server accepted on, or `None`.
    #[getter]
    fn server(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        addr(py, self.data.server)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn origin() -> Origin {
        Origin {
            client: "10.0.0.1:5000".parse().ok(),
            server: None,
            scheme: "https",
            host: "api.example.com".into(),
        }
    }

    fn endpoint(py: Python<'_>, converters: Vec<(String, Py<PyAny>)>) -> Arc<PyEndpoint> {
        let mode = crate::endpoint::CallMode::Request;
        let mut ep = PyEndpoint::stub(py, mode, Some(Duration::from_secs(1)));
        ep.converters = converters;
        Arc::new(ep)
    }

    fn head(version: Version) -> Parts {
        let mut req = http::Request::new(());
        *req.method_mut() = Method::PUT;
        *req.uri_mut() = Uri::from_static("/items/7?full=1");
        *req.version_mut() = version;
        req.headers_mut()
            .insert("x-token", http::HeaderValue::from_static("t"));
        req.into_parts().0
    }

    #[test]
    fn the_builder_keeps_the_head_and_where_it_came_from() {
        let params = vec![("id".to_owned(), ParamValue::Int(7))];
        let data = RequestData::new(
            head(Version::HTTP_11),
            RequestBody::empty(),
            origin(),
            params,
        );
        assert_eq!(data.method, Method::PUT);
        assert_eq!(data.uri.path(), "/items/7");
        assert_eq!(data.headers["x-token"], "t");
        assert_eq!(data.scheme, "https");
        assert_eq!(data.host, "api.example.com");
        assert_eq!(data.client.map(|a| a.port()), Some(5000));
        assert_eq!(data.params.len(), 1);
        assert_eq!(data.body.buffered().map(|b| b.len()), Some(0));
    }

    #[test]
    fn python_sees_the_request_as_parsed() -> PyResult<()> {
        Python::initialize();
        Python::attach(|py| {
            for (version, text) in [
                (Version::HTTP_10, "1.0"),
                (Version::HTTP_11, "1.1"),
                (Version::HTTP_2, "2"),
            ] {
                let data = RequestData::new(head(version), RequestBody::empty(), origin(), vec![]);
                let req = PyRequest::new(Arc::new(data), endpoint(py, vec![]));
                assert_eq!(req.http_version(), text);
                assert_eq!(req.method(), "PUT");
                assert_eq!(req.path(), "/items/7");
                assert_eq!(req.query_string(), "full=1");
                assert_eq!(req.host(), "api.example.com");
                let client: (String, u16) = req.client(py)?.extract(py)?;
                assert_eq!(client, ("10.0.0.1".to_owned(), 5000));
                assert!(req.server(py)?.is_none(py));
                let pairs = req.header_pairs(py)?;
                let first: (String, String) = pairs.get_item(0)?.extract()?;
                assert_eq!(first, ("x-token".to_owned(), "t".to_owned()));
            }
            Ok(())
        })
    }

    #[test]
    fn path_parameters_go_through_their_converter() -> PyResult<()> {
        Python::initialize();
        Python::attach(|py| {
            let plain = endpoint(py, vec![]);
            let seven = param_to_py(py, &plain, "id", &ParamValue::Int(7))?;
            assert_eq!(seven.extract::<i64>(py)?, 7);
            let to_str = py.import("builtins")?.getattr("str")?.unbind();
            let converted = endpoint(py, vec![("id".to_owned(), to_str)]);
            let text = param_to_py(py, &converted, "id", &ParamValue::Int(7))?;
            assert_eq!(text.extract::<String>(py)?, "7");
            let flag = param_to_py(py, &converted, "other", &ParamValue::Bool(true))?;
            assert!(flag.extract::<bool>(py)?);
            Ok(())
        })
    }
}
