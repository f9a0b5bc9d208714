//! `Handle` and `TimerHandle`: a scheduled callback, as returned by `call_soon`,
//! `call_later` and `call_at`.
//!
//! Handles are `frozen` pyclasses (no borrow checking when the loop runs them); the
//! callback and its arguments sit behind a small lock so `cancel()` can release them,
//! as asyncio does, and so the garbage collector can break the common cycle
//! `self._timer = loop.call_later(t, self._on_timeout)`.

use std::ptr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use pyo3::{PyTraverseError, PyVisit};

type Callback = (Py<PyAny>, Py<PyTuple>);

/// A callback scheduled on the loop with its arguments and `contextvars.Context`.
///
/// Calling `cancel()` before the loop reaches the handle skips the callback.
#[pyclass(module = "data_bridge._native", frozen, subclass, weakref)]
pub struct Handle {
    slot: Mutex<Option<Callback>>,
    context: Py<PyAny>,
    cancelled: AtomicBool,
    source_traceback: OnceLock<Py<PyAny>>,
}

impl Handle {
    /// Makes a handle; `context` of `None` captures a copy of the current context,
    /// as asyncio does (any other object is used as given, and fails when run if it
    /// is not a `contextvars.Context`).
    pub fn new(
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let context = match context {
            Some(ctx) if !ctx.is_none(py) => ctx,
            _ => copy_context(py)?,
        };
        Ok(Handle {
            slot: Mutex::new(Some((callback, args))),
            context,
            cancelled: AtomicBool::new(false),
            source_traceback: OnceLock::new(),
        })
    }

    /// Whether `cancel()` was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }

    /// Cancels the handle and releases its callback; returns whether it was live.
    /// The callback is dropped after the lock is released (dropping may run Python).
    pub fn mark_cancelled(&self) -> bool {
        let was_live = !self.cancelled.swap(true, Ordering::Relaxed);
        let released = self.slot.lock().take();
        drop(released);
        was_live
    }

    /// Remembers where the handle was scheduled (debug mode).
    pub fn set_source_traceback(&self, tb: Py<PyAny>) {
        let _ = self.source_traceback.set(tb);
    }

    /// Runs the callback inside its context, like `context.run(callback, *args)`.
    pub fn run(&self, py: Python<'_>) -> PyResult<()> {
        let Some((callback, args)) = self
            .slot
            .lock()
            .as_ref()
            .map(|(c, a)| (c.clone_ref(py), a.clone_ref(py)))
        else {
            return Ok(());
        };
        let ctx = self.context.as_ptr();
        // SAFETY: the GIL is held; `callback`, `args` and `ctx` are live references;
        // Enter/Exit are paired, and a failing Enter leaves nothing to undo.
        unsafe {
            if ffi::PyContext_Enter(ctx) < 0 {
                return Err(PyErr::fetch(py));
            }
            let res = ffi::PyObject_Call(callback.as_ptr(), args.as_ptr(), ptr::null_mut());
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
        let callback = self.slot.lock().as_ref().map(|(c, _)| c.clone_ref(py));
        match callback.map(|c| c.bind(py).repr().map(|r| r.to_string())) {
            Some(Ok(r)) => r,
            _ => "<callback>".to_owned(),
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
        self.mark_cancelled();
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
        self.slot.lock().as_ref().map(|(c, _)| c.clone_ref(py))
    }

    #[getter]
    fn _args(&self, py: Python<'_>) -> Option<Py<PyTuple>> {
        self.slot.lock().as_ref().map(|(_, a)| a.clone_ref(py))
    }

    #[getter]
    fn _source_traceback(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.source_traceback.get().map(|t| t.clone_ref(py))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        if let Some(slot) = self.slot.try_lock() {
            if let Some((callback, args)) = slot.as_ref() {
                visit.call(callback)?;
                visit.call(args)?;
            }
        }
        visit.call(&self.context)?;
        if let Some(tb) = self.source_traceback.get() {
            visit.call(tb)?;
        }
        Ok(())
    }

    fn __clear__(&self) {
        let released = self.slot.lock().take();
        drop(released);
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
    /// In the loop's heap (cleared when it leaves the heap), as asyncio's `_scheduled`.
    scheduled: AtomicBool,
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
            scheduled: AtomicBool::new(true),
            cancelled_count,
        });
        Py::new(py, init)
    }

    /// When the timer is due.
    pub fn deadline(&self) -> f64 {
        self.when
    }

    /// Records that the timer left the loop's heap.
    pub fn unschedule(&self) {
        self.scheduled.store(false, Ordering::Relaxed);
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
        let this = slf.get();
        if slf.as_super().get().mark_cancelled() && this.scheduled.load(Ordering::Relaxed) {
            this.cancelled_count.fetch_add(1, Ordering::Relaxed);
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
