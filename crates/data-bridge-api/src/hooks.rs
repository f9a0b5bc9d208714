//! The Python objects the server calls while serving: the JSON encoder, the
//! `Response`, `FileResponse`, `StreamingResponse` and `HTTPException` classes, the
//! error reporter and the background runner. The Python package registers them once at
//! import (`_native.http_setup`), so Rust never imports them.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// The registered Python objects.
pub struct Hooks {
    /// `pydantic_core.to_json`: Python value → JSON bytes.
    pub to_json: Py<PyAny>,
    /// `data_bridge.responses.Response`.
    pub response_cls: Py<PyAny>,
    /// `data_bridge.responses.FileResponse` (served from Rust, see `files`).
    pub file_response_cls: Py<PyAny>,
    /// `data_bridge.exceptions.HTTPException`.
    pub http_exception: Py<PyAny>,
    /// `report(exc) -> str`: logs a handler failure and returns its traceback text.
    pub report: Py<PyAny>,
    /// `run_background(background) -> Task`: schedules a response's background work
    /// on the running loop, once the response has been sent; the server counts the
    /// work in flight until the returned task is done.
    pub run_background: Py<PyAny>,
    /// `data_bridge.responses.StreamingResponse` (a `Response` subclass), if registered.
    pub streaming_response: Option<Py<PyAny>>,
}

static HOOKS: PyOnceLock<Hooks> = PyOnceLock::new();

/// Registers the hooks (first registration wins).
#[pyfunction]
#[pyo3(signature = (to_json, response_cls, file_response_cls, http_exception, report, run_background, *, streaming_response=None))]
pub fn http_setup(
    py: Python<'_>,
    to_json: Py<PyAny>,
    response_cls: Py<PyAny>,
    file_response_cls: Py<PyAny>,
    http_exception: Py<PyAny>,
    report: Py<PyAny>,
    run_background: Py<PyAny>,
    streaming_response: Option<Py<PyAny>>,
) {
    let _ = HOOKS.set(
        py,
        Hooks {
            to_json,
            response_cls,
            file_response_cls,
            http_exception,
            report,
            run_background,
            streaming_response,
        },
    );
}

/// The hooks, if registered.
pub fn get(py: Python<'_>) -> PyResult<&Hooks> {
    HOOKS.get(py).ok_or_else(|| {
        pyo3::exceptions::PyRuntimeError::new_err("data_bridge.http_setup() was not called")
    })
}
