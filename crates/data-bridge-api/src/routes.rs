//! `RouteTable`: how Python declares routes before the server starts. It checks every
//! definition (conflicts, parameter types) at once, so a bad app fails at start-up.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::endpoint::{CallMode, Constant, Endpoint, PyEndpoint};
use crate::errors::ApiError;
use crate::files::StaticDir;
use crate::middleware::{MiddlewareOptions, Stack};
use crate::router::{ParamKind, Router, WEBSOCKET_METHOD};

/// A path parameter as Python declares it: `(name, type, choices, converter)`.
type ParamDecl = (String, String, Option<Vec<String>>, Option<Py<PyAny>>);
/// What the router converts per path parameter, and the Python converters.
type SplitParams = (Vec<(String, ParamKind)>, Vec<(String, Py<PyAny>)>);

/// Routes being declared (`data_bridge._native.RouteTable`).
#[pyclass(module = "data_bridge._native", frozen)]
pub struct RouteTable {
    router: Mutex<Option<Router<Endpoint>>>,
    /// The built-in middleware, outermost first (see [`crate::middleware`]).
    middleware: Mutex<Stack>,
}

impl RouteTable {
    fn add(
        &self,
        methods: &[String],
        path: &str,
        params: &[(String, ParamKind)],
        ep: Endpoint,
    ) -> PyResult<()> {
        let mut guard = self.router.lock();
        let router = guard.as_mut().ok_or(ApiError::State(
            "the route table was already used by a server",
        ))?;
        let methods: Vec<&str> = methods.iter().map(String::as_str).collect();
        let params: Vec<(&str, ParamKind)> = params
            .iter()
            .map(|(n, k)| (n.as_str(), k.clone()))
            .collect();
        router.add(&methods, path, &params, ep).map_err(Into::into)
    }

    /// Takes the routes out for a server.
    pub fn take(&self) -> PyResult<RouteTable> {
        let router = self.router.lock().take().ok_or(ApiError::State(
            "the route table was already used by a server",
        ))?;
        Ok(RouteTable {
            router: Mutex::new(Some(router)),
            middleware: Mutex::new(std::mem::take(&mut *self.middleware.lock())),
        })
    }

    /// The middleware stack (for the server).
    pub fn take_middleware(&self) -> Stack {
        std::mem::take(&mut *self.middleware.lock())
    }

    /// The router (for the server).
    pub fn into_router(self) -> Router<Endpoint> {
        self.router.into_inner().unwrap_or_default()
    }
}

fn kind_of(kind: &str, choices: Option<Vec<String>>) -> PyResult<ParamKind> {
    Ok(match kind {
        "str" => ParamKind::Str,
        "int" => ParamKind::Int,
        "float" => ParamKind::Float,
        "bool" => ParamKind::Bool,
        "uuid" => ParamKind::Uuid,
        "path" => ParamKind::Path,
        "choice" => ParamKind::Choice(choices.unwrap_or_default()),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown parameter type {other:?}"
            )))
        }
    })
}

/// Path parameter declarations split into what the router converts (name and kind)
/// and the Python converters some of them name.
fn split_params(params: Vec<ParamDecl>) -> PyResult<SplitParams> {
    let mut kinds = Vec::with_capacity(params.len());
    let mut converters = Vec::new();
    for (name, kind, choices, converter) in params {
        kinds.push((name.clone(), kind_of(&kind, choices)?));
        if let Some(conv) = converter {
            converters.push((name, conv));
        }
    }
    Ok((kinds, converters))
}

#[pymethods]
impl RouteTable {
    #[new]
    fn py_new() -> Self {
        RouteTable {
            router: Mutex::new(Some(Router::default())),
            middleware: Mutex::new(Stack::default()),
        }
    }

    /// Adds a Python handler. `params` lists `(name, type, choices, converter)` for the
    /// path parameters; `mode` is `"none"`, `"path"` or `"request"`; `buffer_body` says
    /// the handler needs the whole body before it runs (a pydantic body parameter).
    #[pyo3(signature = (methods, path, func, *, is_async, mode, params, timeout=None, status_code=200, buffer_body=false))]
    fn add_python(
        &self,
        methods: Vec<String>,
        path: &str,
        func: Py<PyAny>,
        is_async: bool,
        mode: &str,
        params: Vec<ParamDecl>,
        timeout: Option<f64>,
        status_code: u16,
        buffer_body: bool,
    ) -> PyResult<()> {
        let mode = match mode {
            "none" => CallMode::NoArgs,
            "path" => CallMode::PathArgs,
            "request" => CallMode::Request,
            other => {
                return Err(PyValueError::new_err(format!(
                    "unknown call mode {other:?}"
                )))
            }
        };
        let (kinds, converters) = split_params(params)?;
        let status = StatusCode::from_u16(status_code)
            .map_err(|_| PyValueError::new_err(format!("bad status code {status_code}")))?;
        let ep = PyEndpoint {
            func,
            is_async,
            mode,
            converters,
            timeout: timeout
                .filter(|t| *t > 0.0)
                .map(|t| crate::options::seconds("timeout", t))
                .transpose()?,
            status,
            buffer_body,
        };
        self.add(&methods, path, &kinds, Endpoint::Python(Arc::new(ep)))
    }

    /// Adds a WebSocket handler: `func(request, connection)` returns the coroutine that
    /// serves one connection (see `websocket`). `params` as for `add_python`.
    #[pyo3(signature = (path, func, *, params))]
    fn add_websocket(&self, path: &str, func: Py<PyAny>, params: Vec<ParamDecl>) -> PyResult<()> {
        let (kinds, converters) = split_params(params)?;
        let ep = PyEndpoint {
            func,
            is_async: true,
            mode: CallMode::Request,
            converters,
            timeout: None,
            status: StatusCode::SWITCHING_PROTOCOLS,
            buffer_body: false,
        };
        let methods = [WEBSOCKET_METHOD.to_owned()];
        self.add(&methods, path, &kinds, Endpoint::WebSocket(Arc::new(ep)))
    }

    /// Adds a response computed now and served from Rust on every request.
    #[pyo3(signature = (methods, path, body, *, status_code=200, content_type="application/json"))]
    fn add_constant(
        &self,
        methods: Vec<String>,
        path: &str,
        body: Vec<u8>,
        status_code: u16,
        content_type: &str,
    ) -> PyResult<()> {
        let status = StatusCode::from_u16(status_code)
            .map_err(|_| PyValueError::new_err(format!("bad status code {status_code}")))?;
        let content_type = HeaderValue::from_str(content_type)
            .map_err(|_| PyValueError::new_err(format!("bad content type {content_type:?}")))?;
        let constant = Constant::new(status, content_type, Bytes::from(body));
        self.add(&methods, path, &[], Endpoint::Constant(Arc::new(constant)))
    }

    /// Serves the files below `directory` at `{prefix}/{path:path}` (GET and HEAD)
    /// from Rust; with `html`, a directory's `index.html` answers for it, including
    /// `{prefix}/` itself.
    #[pyo3(signature = (prefix, directory, *, html=false))]
    fn add_static(&self, prefix: &str, directory: std::path::PathBuf, html: bool) -> PyResult<()> {
        let dir = StaticDir::new(prefix, &directory, html).map_err(|e| {
            PyValueError::new_err(format!(
                "cannot serve directory {}: {e}",
                directory.display()
            ))
        })?;
        let template = dir.template();
        let root = dir.root_template();
        let ep = Endpoint::Static(Arc::new(dir));
        let get = ["GET".to_owned()];
        self.add(&get, &template, &[], ep.clone())?;
        // The catch-all parameter never matches an empty rest, so the mount's own
        // index needs a route of its own.
        if html {
            self.add(&get, &root, &[], ep)?;
        }
        Ok(())
    }

    /// Adds the native Prometheus metrics endpoint (`GET path`).
    fn add_metrics(&self, path: &str) -> PyResult<()> {
        self.add(&["GET".to_owned()], path, &[], Endpoint::Metrics)
    }

    /// Adds the native liveness (`kind="health"`) or readiness (`kind="ready"`) check.
    fn add_probe(&self, path: &str, kind: &str) -> PyResult<()> {
        let ep = match kind {
            "health" => Endpoint::Health,
            "ready" => Endpoint::Ready,
            other => return Err(PyValueError::new_err(format!("unknown probe {other:?}"))),
        };
        self.add(&["GET".to_owned()], path, &[], ep)
    }

    /// Adds a built-in middleware layer inside those already added, with the options
    /// its Python class passed (`CorsOptions`, `CompressOptions`, ...).
    fn add_middleware(&self, options: MiddlewareOptions) -> PyResult<()> {
        if self.router.lock().is_none() {
            return Err(ApiError::State("the route table was already used by a server").into());
        }
        self.middleware.lock().push(options)
    }
}
