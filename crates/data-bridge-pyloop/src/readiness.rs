//! `add_reader`/`add_writer` and their removal: callbacks that run on every
//! iteration while a descriptor is readable (writable), and never before.

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

    fn watch(
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

    fn unwatch(
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

#[pymethods]
impl LoopCore {
    /// Calls `callback(*args)` whenever `fd` is readable.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
    ) -> PyResult<()> {
        LoopCore::watch(slf, fd, Side::Read, callback, args, false, true).map(drop)
    }

    /// Like `add_reader`, returning the handle (asyncio's private `_add_reader`).
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
    ) -> PyResult<Py<Handle>> {
        LoopCore::watch(slf, fd, Side::Read, callback, args, false, false)
    }

    /// A reader that only matters while the loop waits (the signal wake-up
    /// descriptor): it does not make every iteration poll for I/O.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_passive_reader(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
    ) -> PyResult<Py<Handle>> {
        LoopCore::watch(slf, fd, Side::Read, callback, args, true, false)
    }

    /// Stops watching `fd` for reading; returns whether it was watched.
    fn remove_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        LoopCore::unwatch(slf, fd, Side::Read, true)
    }

    /// Calls `callback(*args)` whenever `fd` is writable.
    #[pyo3(signature = (fd, callback, *args))]
    fn add_writer(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
    ) -> PyResult<()> {
        LoopCore::watch(slf, fd, Side::Write, callback, args, false, true).map(drop)
    }

    /// Like `add_writer`, returning the handle.
    #[pyo3(signature = (fd, callback, *args))]
    fn _add_writer(
        slf: &Bound<'_, Self>,
        fd: &Bound<'_, PyAny>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
    ) -> PyResult<Py<Handle>> {
        LoopCore::watch(slf, fd, Side::Write, callback, args, false, false)
    }

    /// Stops watching `fd` for writing; returns whether it was watched.
    fn remove_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        LoopCore::unwatch(slf, fd, Side::Write, true)
    }

    /// Stops watching `fd` for reading, even if a transport owns it (asyncio's private
    /// `_remove_reader`, for transports themselves).
    fn _remove_reader(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        LoopCore::unwatch(slf, fd, Side::Read, false)
    }

    /// Stops watching `fd` for writing, even if a transport owns it.
    fn _remove_writer(slf: &Bound<'_, Self>, fd: &Bound<'_, PyAny>) -> PyResult<bool> {
        LoopCore::unwatch(slf, fd, Side::Write, false)
    }

    /// Records that the Python transport `transport` owns `fd`.
    fn _claim_fd(slf: &Bound<'_, Self>, fd: RawFd, transport: Py<PyAny>) -> PyResult<()> {
        slf.get()
            .state
            .lock()
            .io
            .claim_fd(fd, transport)
            .map_err(Into::into)
    }

    /// Forgets the owner of `fd`.
    fn _release_fd(slf: &Bound<'_, Self>, fd: RawFd) {
        let released = slf.get().state.lock().io.release_fd(fd);
        drop(released);
    }

    /// The transport object using `fd`, if a native transport does.
    fn _transport_for_fd(slf: &Bound<'_, Self>, fd: RawFd) -> Option<Py<PyAny>> {
        slf.get().state.lock().io.fd_owner(slf.py(), fd)
    }
}
