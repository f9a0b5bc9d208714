//! The request as Python handlers see it: a native object that copies nothing into
//! Python until the handler asks (`data_bridge.Request` wraps it with the familiar API).

use std::net::SocketAddr;
use std::sync::Arc;

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
