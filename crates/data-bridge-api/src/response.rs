//! Turning what a Python handler returned (or raised) into an HTTP response. JSON is
//! encoded by pydantic-core (in Rust), which handles datetimes, UUIDs, decimals, enums
//! and models the way FastAPI's encoder does.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::body::Body;
use crate::conditional::Conditions;
use crate::errors::ApiError;
use crate::files::FileTarget;
use crate::hooks;
use crate::streaming::{self, LoopRef, Producer};

/// A response made on the loop thread, sent back to the connection's task.
pub struct Reply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Body,
    /// A `FileResponse`: the file is opened by the connection's task, off the loop.
    file: Option<FileTarget>,
    /// What fills a streamed body, started by [`Reply::start_stream`].
    producer: Option<Producer>,
    /// A `Response`'s `background`, run once the response has been sent.
    background: Option<Py<PyAny>>,
}

/// The file a `FileResponse` names, read without touching the file system here.
fn file_target(
    value: &Bound<'_, PyAny>,
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> PyResult<FileTarget> {
    let path: PathBuf = value.getattr("path")?.extract()?;
    let name: Option<PathBuf> = value.getattr("filename")?.extract()?;
    Ok(FileTarget {
        name: name.unwrap_or_else(|| path.clone()),
        path,
        status,
        headers,
    })
}

/// A response's `background` (absent or `None` means none).
fn background_of(value: &Bound<'_, PyAny>) -> PyResult<Option<Py<PyAny>>> {
    match value.getattr(pyo3::intern!(value.py(), "background")) {
        Ok(bg) if !bg.is_none() => Ok(Some(bg.unbind())),
        Ok(_) => Ok(None),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(value.py()) => Ok(None),
        Err(e) => Err(e),
    }
}

fn json_bytes(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    let hooks = hooks::get(py)?;
    let out = hooks.to_json.bind(py).call1((obj,))?;
    Ok(Bytes::copy_from_slice(out.cast::<PyBytes>()?.as_bytes()))
}

/// Whether a header a handler set describes the message's framing. The server
/// frames every response from the body it really sends (Hyper writes
/// `Content-Length` or chunked encoding from it), so a handler's own
/// `Content-Length` or `Transfer-Encoding` is dropped: one that contradicted the
/// body would let the surplus bytes be read as the next response on a kept-alive
/// connection (response splitting).
fn is_framing(name: &HeaderName) -> bool {
    *name == header::CONTENT_LENGTH || *name == header::TRANSFER_ENCODING
}

/// A handler's response headers, framing headers left out (see [`is_framing`]).
fn headers_from(raw: &Bound<'_, PyAny>) -> PyResult<Vec<(HeaderName, HeaderValue)>> {
    let mut out = Vec::new();
    if raw.is_none() {
        return Ok(out);
    }
    let items = if let Ok(d) = raw.cast::<PyDict>() {
        d.items().into_any()
    } else {
        raw.clone()
    };
    for item in items.try_iter()? {
        let (k, v): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        let text = |o: &Bound<'_, PyAny>| -> PyResult<Vec<u8>> {
            match o.cast::<PyBytes>() {
                Ok(b) => Ok(b.as_bytes().to_vec()),
                Err(_) => Ok(o.str()?.to_string().into_bytes()),
            }
        };
        let name = HeaderName::from_bytes(&text(&k)?).map_err(|e| {
            pyo3::exceptions::PyValueError::new_err(format!("bad header name: {e}"))
        })?;
        let value = HeaderValue::from_bytes(&text(&v)?).map_err(|e| {
            pyo3::exceptions::PyValueError::new_err(format!("bad header value: {e}"))
        })?;
        if !is_framing(&name) {
            out.push((name, value));
        }
    }
    Ok(out)
}

impl Reply {
    /// Converts a handler's return value: a `Response` as is, anything else as JSON.
    pub fn from_value(
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        status: StatusCode,
    ) -> PyResult<Reply> {
        let hooks = hooks::get(py)?;
        if value.is_instance(hooks.response_cls.bind(py))? {
            let code: u16 = value.getattr("status_code")?.extract()?;
            if value.is_instance(hooks.file_response_cls.bind(py))? {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let headers = headers_from(&value.getattr("raw_headers")?)?;
                return Ok(Reply {
                    status,
                    headers: Vec::new(),
                    body: Body::empty(),
                    file: Some(file_target(value, status, headers)?),
                    producer: None,
                    background: background_of(value)?,
                });
            }
            let (body, producer) = match streaming::open(py, value)? {
                Some((body, producer)) => (body, Some(producer)),
                None => {
                    let body = value.getattr("body")?;
                    let bytes = Bytes::copy_from_slice(body.cast::<PyBytes>()?.as_bytes());
                    (Body::full(bytes), None)
                }
            };
            return Ok(Reply {
                status: StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                headers: headers_from(&value.getattr("raw_headers")?)?,
                body,
                file: None,
                producer,
                background: background_of(value)?,
            });
        }
        Ok(Reply {
            status,
            headers: vec![(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body: Body::full(json_bytes(py, value)?),
            file: None,
            producer: None,
            background: None,
        })
    }

    /// Starts the producer of a streamed body on `lp` (`on_loop`: called on the loop
    /// thread). The status and headers do not wait for its first chunk.
    pub fn start_stream(mut self, py: Python<'_>, lp: &Arc<LoopRef>, on_loop: bool) -> Self {
        if let Some(producer) = self.producer.take() {
            producer.start(py, lp, on_loop);
        }
        self
    }

    /// Converts an exception raised by a handler: `HTTPException` becomes its status,
    /// detail and headers; anything else is logged and becomes a 500.
    pub fn from_error(py: Python<'_>, err: PyErr, debug: bool) -> Result<Reply, ApiError> {
        let hooks = hooks::get(py).map_err(|_| ApiError::Internal(None))?;
        let value = err.value(py);
        if value
            .is_instance(hooks.http_exception.bind(py))
            .unwrap_or(false)
        {
            let build = || -> PyResult<Reply> {
                let code: u16 = value.getattr("status_code")?.extract()?;
                let detail = value.getattr("detail")?;
                let body = PyDict::new(py);
                body.set_item("detail", detail)?;
                let mut headers = headers_from(&value.getattr("headers")?)?;
                // As in FastAPI, a content type among the exception's headers wins.
                if !headers
                    .iter()
                    .any(|(name, _)| *name == header::CONTENT_TYPE)
                {
                    headers.push((
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/json"),
                    ));
                }
                Ok(Reply {
                    status: StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                    headers,
                    body: Body::full(json_bytes(py, body.as_any())?),
                    file: None,
                    producer: None,
                    background: None,
                })
            };
            return build().map_err(|_| ApiError::Internal(None));
        }
        let traceback = hooks
            .report
            .bind(py)
            .call1((value,))
            .and_then(|t| t.extract::<String>())
            .ok();
        Err(ApiError::Internal(if debug { traceback } else { None }))
    }

    /// The background work to run once this reply has been sent, if any.
    pub fn take_background(&mut self) -> Option<Py<PyAny>> {
        self.background.take()
    }

    /// The HTTP response; a `FileResponse` is opened and read here, honouring the
    /// request's conditions and range like a static file.
    pub async fn respond(self, cond: Conditions) -> Response<Body> {
        match self.file {
            Some(target) => target.serve(cond).await,
            None => self.into_response(),
        }
    }

    /// The HTTP response (of anything but a `FileResponse`).
    pub fn into_response(self) -> Response<Body> {
        let mut resp = Response::new(self.body);
        *resp.status_mut() = self.status;
        let headers = resp.headers_mut();
        for (name, value) in self.headers {
            headers.append(name, value);
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use pyo3::types::{IntoPyDict, PyList};

    use super::*;

    #[test]
    fn framing_headers_are_never_taken_from_a_handler() {
        assert!(is_framing(&header::CONTENT_LENGTH));
        assert!(is_framing(&header::TRANSFER_ENCODING));
        assert!(!is_framing(&header::CONTENT_TYPE));
    }

    #[test]
    fn handler_headers_come_from_dicts_or_pairs() -> PyResult<()> {
        Python::initialize();
        Python::attach(|py| {
            let dict = PyDict::new(py);
            dict.set_item("x-one", "1")?;
            dict.set_item("content-length", "999")?;
            let got = headers_from(dict.as_any())?;
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].0, "x-one");
            let pairs = PyList::new(
                py,
                [
                    ("set-cookie", PyBytes::new(py, b"a=1")),
                    ("set-cookie", PyBytes::new(py, b"b=2")),
                    ("transfer-encoding", PyBytes::new(py, b"chunked")),
                ],
            )?;
            let got = headers_from(pairs.as_any())?;
            let values: Vec<_> = got.iter().map(|(_, v)| v.as_bytes()).collect();
            assert_eq!(values, [b"a=1", b"b=2"]);
            assert!(headers_from(&py.None().into_bound(py))?.is_empty());
            Ok(())
        })
    }

    #[test]
    fn a_bad_header_name_is_a_value_error() -> PyResult<()> {
        Python::initialize();
        Python::attach(|py| {
            let dict = PyDict::new(py);
            dict.set_item("bad name", "1")?;
            let err = headers_from(dict.as_any()).err();
            assert!(err.is_some_and(|e| e.is_instance_of::<pyo3::exceptions::PyValueError>(py)));
            Ok(())
        })
    }

    #[test]
    fn background_is_optional() -> PyResult<()> {
        Python::initialize();
        Python::attach(|py| {
            let ns = py.import("types")?.getattr("SimpleNamespace")?;
            assert!(background_of(&ns.call0()?)?.is_none());
            let none = ns.call((), Some(&[("background", py.None())].into_py_dict(py)?))?;
            assert!(background_of(&none)?.is_none());
            let task = ns.call((), Some(&[("background", 1)].into_py_dict(py)?))?;
            assert!(background_of(&task)?.is_some());
            Ok(())
        })
    }

    #[test]
    fn a_reply_becomes_its_response_with_every_header() {
        let reply = Reply {
            status: StatusCode::CREATED,
            headers: vec![
                (header::SET_COOKIE, HeaderValue::from_static("a=1")),
                (header::SET_COOKIE, HeaderValue::from_static("b=2")),
            ],
            body: Body::full("made"),
            file: None,
            producer: None,
            background: None,
        };
        let resp = reply.into_response();
        assert_eq!(resp.status(), StatusCode::CREATED);
        assert_eq!(resp.headers().get_all(header::SET_COOKIE).iter().count(), 2);
    }
}
