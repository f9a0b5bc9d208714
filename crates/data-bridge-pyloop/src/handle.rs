//! `Handle` and `TimerHandle`: a scheduled callback, as returned by `call_soon`,
//! `call_later` and `call_at`.
//!
//! Handles are immutable once made except for their cancelled flag, so they are
//! `frozen` pyclasses that need no borrow checking when the loop runs them.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// A callback scheduled on the loop with its arguments and `contextvars.Context`.
///
/// Calling `cancel()` before the loop reaches the handle skips the callback.
#[pyclass(module = "data_bridge._native", frozen, subclass, weakref)]
pub struct Handle {
    callback: Py<PyAny>,
    args: Py<PyTuple>,
    context: Py<PyAny>,
    cancelled: AtomicBool,
}

impl Handle {
    /// Makes a handle; `context` of `None` captures a copy of the current context,
    /// as asyncio does.
    pub fn new(
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let context = match context {
            Some(ctx) => ctx,
            None => copy_context(py)?,
        };
        Ok(Handle {
            callback,
            args,
            context,
            cancelled: AtomicBool::new(false),
        })
    }

    /// Whether `cancel()` was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Marks the handle cancelled (from Rust).
    pub fn mark_cancelled(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// The scheduled callable.
    pub fn callback(&self) -> &Py<PyAny> {
        &self.callback
    }

    /// Runs the callback inside its context, like `context.run(callback, *args)`.
    pub fn run(&self, py: Python<'_>) -> PyResult<()> {
        let ctx = self.context.as_ptr();
        // SAFETY: the GIL is held; `ctx` is a live contextvars.Context (checked when the
        // handle was made or produced by PyContext_CopyCurrent); Enter/Exit are paired.
        unsafe {
            if ffi::PyContext_Enter(ctx) < 0 {
                return Err(PyErr::fetch(py));
            }
            let res =
                ffi::PyObject_Call(self.callback.as_ptr(), self.args.as_ptr(), ptr::null_mut());
            let exited = ffi::PyContext_Exit(ctx);
            if res.is_null() {
                return Err(PyErr::fetch(py));
            }
            ffi::Py_DECREF(res);
            if exited < 0 {
                return Err(PyErr::fetch(py));
            }
        }
        Ok(())
    }

    fn describe(&self, py: Python<'_>) -> String {
        match self.callback.bind(py).repr() {
            Ok(r) => r.to_string(),
            Err(_) => "<callback>".to_owned(),
        }
    }
}

/// `contextvars.copy_context()`.
pub fn copy_context(py: Python<'_>) -> PyResult<Py<PyAny>> {
    // SAFETY: the GIL is held; PyContext_CopyCurrent returns a new reference or NULL
    // with an exception set.
    unsafe {
        let ctx = ffi::PyContext_CopyCurrent();
        Bound::from_owned_ptr_or_err(py, ctx).map(Bound::unbind)
    }
}

#[pymethods]
impl Handle {
    /// Cancels the callback; it will not run. Cancelling twice is harmless.
    fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether the handle was cancelled.
    fn cancelled(&self) -> bool {
        self.is_cancelled()
    }

    /// The `contextvars.Context` the callback runs in.
    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    /// Runs the callback now (what the loop does); errors propagate.
    fn _run(&self, py: Python<'_>) -> PyResult<()> {
        self.run(py)
    }

    #[getter]
    fn _callback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        (!self.is_cancelled()).then(|| self.callback.clone_ref(py))
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        (!self.is_cancelled()).then(|| self.args.clone_ref(py))
    }

    #[getter]
    fn _cancelled(&self) -> bool {
        self.is_cancelled()
    }

    fn __repr__(slf: &Bound<'_, Self>) -> String {
        let this = slf.get();
        let name = if slf.is_instance_of::<TimerHandle>() {
            "TimerHandle"
        } else {
            "Handle"
        };
        if this.is_cancelled() {
            format!("<{name} cancelled>")
        } else {
            format!("<{name} {}>", this.describe(slf.py()))
        }
    }
}

/// A handle scheduled for a point in time on the loop's clock (`loop.time()`).
#[pyclass(module = "data_bridge._native", frozen, extends = Handle)]
pub struct TimerHandle {
    when: f64,
    /// The loop's count of cancelled timers still in its heap, so it can compact the
    /// heap when most of it is dead weight (as asyncio does).
    cancelled_count: Arc<AtomicUsize>,
}

impl TimerHandle {
    /// Makes a timer handle object.
    pub fn create(
        py: Python<'_>,
        when: f64,
        handle: Handle,
        cancelled_count: Arc<AtomicUsize>,
    ) -> PyResult<Py<TimerHandle>> {
        let init = PyClassInitializer::from(handle).add_subclass(TimerHandle {
            when,
            cancelled_count,
        });
        Py::new(py, init)
    }

    /// When the timer is due.
    pub fn deadline(&self) -> f64 {
        self.when
    }
}

#[pymethods]
impl TimerHandle {
    /// The time (on `loop.time()`'s clock) at which the callback is due.
    fn when(&self) -> f64 {
        self.when
    }

    /// Cancels the timer; it will not run.
    fn cancel(slf: &Bound<'_, Self>) {
        let base = slf.as_super().get();
        if !base.cancelled.swap(true, Ordering::Relaxed) {
            slf.get().cancelled_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[getter]
    fn _when(&self) -> f64 {
        self.when
    }

    fn __lt__(&self, other: &Self) -> bool {
        self.when < other.when
    }

    fn __le__(&self, other: &Self) -> bool {
        self.when <= other.when
    }

    fn __gt__(&self, other: &Self) -> bool {
        self.when > other.when
    }

    fn __ge__(&self, other: &Self) -> bool {
        self.when >= other.when
    }
}
