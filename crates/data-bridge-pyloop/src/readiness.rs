//! `add_reader`/`add_writer` and their removal: callbacks that run on every
//! iteration while a descriptor is readable (writable), and never before.
//!
//! The Python methods themselves are in `LoopCore`'s one `#[pymethods]` block
//! ([`crate::core`]); they call [`LoopCore::watch`] and [`LoopCore::unwatch`] here.

use std::os::fd::RawFd;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyInt, PyTuple};

use crate::core::LoopCore;
use crate::handle::Handle;
use crate::io::Side;

/// asyncio's `selectors._fileobj_to_fd`: an int, or an object with `fileno()`.
fn fileobj_to_fd(obj: &Bound<'_, PyAny>) -> PyResult<RawFd> {
    let fd: i64 = match obj.extract::<i64>() {
        Ok(fd) => fd,
        Err(_) => match obj.call_method0("fileno").and_then(|n| n.extract::<i64>()) {
            Ok(n) => n,
            Err(_) => {
                return Err(PyValueError::new_err(format!(
                    "Invalid file object: {}",
                    obj.repr()?
                )))
            }
        },
    };
    if fd < 0 || fd > RawFd::MAX as i64 {
        return Err(PyValueError::new_err(format!(
            "Invalid file descriptor: {fd}"
        )));
    }
    Ok(fd as RawFd)
}

impl LoopCore {
    /// asyncio's `_ensure_fd_no_transport`: the public reader/writer methods must not
    /// touch a descriptor a transport reads and writes.
    fn ensure_no_transport(slf: &Bound<'_, Self>, fd: RawFd) -> PyResult<()> {
        let py = slf.py();
        let owner = slf.get().state.lock().io.fd_owner(py, fd);
        if let Some(owner) = owner {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "File descriptor {fd} is used by transport {}",
                owner.bind(py).repr()?
            )));
        }
        Ok(())
    }

    pub(crate) fn watch(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        side: Side,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        passive: bool,
        public: bool,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        let fileobj = (!fd.is_instance_of::<PyInt>()).then(|| fd.clone().unbind());
        let fd = fileobj_to_fd(fd)?;
        if public {
            LoopCore::ensure_no_transport(slf, fd)?;
        }
        if this.is_debug() {
            slf.call_method1("_check_callback", (callback.bind(py), "add_reader"))?;
        }
        let handle = Py::new(py, Handle::new(py, callback, args, None)?)?;
        let previous = {
            let mut st = this.state.lock();
            let res = st.io.watch(
                &this.shared,
                fd,
                side,
                handle.clone_ref(py),
                passive,
                fileobj,
            );
            st.io.publish_count(this);
            res
        };
        match previous {
            Ok(Some(old)) => {
                old.get().mark_cancelled();
            }
            Ok(None) => {}
            // epoll refuses regular files with EPERM, surfacing as PermissionError as
            // it does from asyncio's selector.
            Err(e) => return Err(e.into()),
        }
        Ok(handle)
    }

    pub(crate) fn unwatch(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        side: Side,
        public: bool,
    ) -> PyResult<bool> {
        let this = slf.get();
        if this.check_closed().is_err() {
            return Ok(false);
        }
        let (fd, closed) = match fileobj_to_fd(fd) {
            Ok(fd) => (fd, false),
            // A closed socket or file: found by identity, as selectors' `_fileobj_lookup`.
            Err(err) => match this.state.lock().io.watched_fd_of(fd) {
                Some(fd) => (fd, true),
                None => return Err(err),
            },
        };
        // asyncio looks the closed object's transport up under -1 and finds none; the
        // number may belong to a new transport by now.
        if public && !closed {
            LoopCore::ensure_no_transport(slf, fd)?;
        }
        let previous = {
            let mut st = this.state.lock();
            let res = st.io.unwatch(fd, side);
            st.io.publish_count(this);
            res
        };
        match previous {
            Some(old) => {
                old.get().mark_cancelled();
                Ok(true)
            }
            None => Ok(false),
        }
    }
}
