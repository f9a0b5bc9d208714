//! `NativeTask`: a coroutine driven from Rust, for work whose result Rust consumes.
//!
//! An `asyncio.Task` costs a context copy, a weak-set registration, a `call_soon` to
//! start and another to report completion. A request handler needs none of that
//! ceremony: its coroutine starts at once (as 3.12's eager tasks do) and its outcome
//! goes straight to the Rust code that waits for it. What handler code can observe is
//! kept: `asyncio.current_task()` returns the task while it runs, and it has the
//! Task interface that `asyncio.timeout`, `TaskGroup` and anyio rely on (`cancel`,
//! `cancelling`, `uncancel`, `done`, `result`, `get_coro`, done callbacks...).
//!
//! The stepping rules are asyncio's `Task.__step`/`__wakeup`: an awaited future gets
//! `_wakeup` as its done callback, a bare `yield` reschedules the step, cancellation
//! is thrown into the coroutine at its next step, and a `CancelledError` that escapes
//! the coroutine cancels the task.

use parking_lot::Mutex;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString, PyTuple};
use pyo3::{PyTraverseError, PyVisit};

use crate::core::LoopCore;
use crate::handle::copy_context;

/// How a task ended, handed to its Rust owner.
pub enum TaskOutcome {
    /// The coroutine returned this value.
    Returned(Py<PyAny>),
    /// The coroutine raised.
    Raised(PyErr),
    /// The task was cancelled.
    Cancelled,
}

type OnDone = Box<dyn FnOnce(Python<'_>, TaskOutcome) + Send>;

/// asyncio's helpers and exception classes, looked up once.
struct Asyncio {
    enter_task: Py<PyAny>,
    leave_task: Py<PyAny>,
    cancelled_error: Py<PyAny>,
    invalid_state: Py<PyAny>,
}

static ASYNCIO: PyOnceLock<Asyncio> = PyOnceLock::new();

fn asyncio(py: Python<'_>) -> PyResult<&'static Asyncio> {
    ASYNCIO.get_or_try_init(py, || {
        let tasks = py.import("asyncio.tasks")?;
        let exceptions = py.import("asyncio.exceptions")?;
        Ok(Asyncio {
            enter_task: tasks.getattr("_enter_task")?.unbind(),
            leave_task: tasks.getattr("_leave_task")?.unbind(),
            cancelled_error: exceptions.getattr("CancelledError")?.unbind(),
            invalid_state: exceptions.getattr("InvalidStateError")?.unbind(),
        })
    })
}

#[derive(Default)]
enum State {
    #[default]
    Pending,
    Returned(Py<PyAny>),
    Raised(Py<PyAny>),
    Cancelled(Option<Py<PyAny>>),
}

#[derive(Default)]
struct Inner {
    state: State,
    /// The future the coroutine waits on.
    fut_waiter: Option<Py<PyAny>>,
    must_cancel: bool,
    cancel_message: Option<Py<PyAny>>,
    cancels_requested: usize,
    callbacks: Vec<(Py<PyAny>, Py<PyAny>)>,
    name: Option<Py<PyAny>>,
}

/// A coroutine run by the loop on behalf of Rust code; see the module docs.
#[pyclass(module = "data_bridge._native", frozen, weakref)]
pub struct NativeTask {
    event_loop: Py<PyAny>,
    coro: Py<PyAny>,
    context: Py<PyAny>,
    inner: Mutex<Inner>,
    on_done: Mutex<Option<OnDone>>,
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl NativeTask {
    /// Starts `coro` on `event_loop` (the running loop; called on its thread): the
    /// first step runs now, in a copy of the current context, and `on_done` receives
    /// the outcome when the coroutine finishes (possibly before this returns).
    pub fn start(
        py: Python<'_>,
        event_loop: Py<PyAny>,
        coro: Py<PyAny>,
        on_done: impl FnOnce(Python<'_>, TaskOutcome) + Send + 'static,
    ) -> PyResult<Py<NativeTask>> {
        let context = copy_context(py)?;
        let task = Py::new(
            py,
            NativeTask {
                event_loop,
                coro,
                context,
                inner: Mutex::new(Inner::default()),
                on_done: Mutex::new(Some(Box::new(on_done))),
            },
        )?;
        let bound = task.bind(py);
        let ctx = bound.get().context.as_ptr();
        // SAFETY: the GIL is held and `ctx` is a live Context; Enter and Exit pair up.
        unsafe {
            if ffi::PyContext_Enter(ctx) < 0 {
                return Err(PyErr::fetch(py));
            }
        }
        let stepped = NativeTask::step(bound, None);
        // SAFETY: as above; the context was entered just before.
        let exited = unsafe { ffi::PyContext_Exit(ctx) };
        stepped?;
        if exited < 0 {
            return Err(PyErr::fetch(py));
        }
        Ok(task)
    }

    /// Cancels the task from Rust (like `task.cancel()`).
    pub fn cancel_now(slf: &Bound<'_, Self>) -> PyResult<bool> {
        NativeTask::cancel(slf, None)
    }

    /// Whether the coroutine has finished.
    pub fn is_finished(&self) -> bool {
        self.is_done()
    }

    fn is_done(&self) -> bool {
        !matches!(self.inner.lock().state, State::Pending)
    }

    fn cancelled_error(&self, py: Python<'_>) -> PyResult<PyErr> {
        let msg = self
            .inner
            .lock()
            .cancel_message
            .as_ref()
            .map(|m| m.clone_ref(py));
        let cls = asyncio(py)?.cancelled_error.bind(py);
        let exc = match msg {
            Some(m) => cls.call1((m,))?,
            None => cls.call0()?,
        };
        Ok(PyErr::from_value(exc))
    }

    /// One step of the coroutine: send `None` or throw `exc` into it and act on what
    /// it yields. Runs inside the task's context (entered by the caller).
    fn step(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.is_done() {
            return Err(asyncio(py)?
                .invalid_state
                .bind(py)
                .call1(("step(): already done",))
                .map(PyErr::from_value)?);
        }
        let mut exc = exc;
        let must_cancel = std::mem::take(&mut this.inner.lock().must_cancel);
        if must_cancel {
            let is_cancel = match &exc {
                Some(e) => e.is_instance(asyncio(py)?.cancelled_error.bind(py))?,
                None => false,
            };
            if !is_cancel {
                exc = Some(
                    this.cancelled_error(py)?
                        .into_value(py)
                        .into_bound(py)
                        .into_any(),
                );
            }
        }
        this.inner.lock().fut_waiter = None;

        let aio = asyncio(py)?;
        let lp = this.event_loop.bind(py);
        aio.enter_task.bind(py).call1((lp, slf))?;
        let sent = match exc {
            None => send_none(py, this.coro.bind(py)),
            Some(e) => match this.coro.bind(py).call_method1("throw", (e,)) {
                Ok(v) => Sent::Yielded(v),
                // `throw` reports a return as StopIteration, unlike PyIter_Send.
                Err(err) if err.is_instance_of::<PyStopIteration>(py) => {
                    match err.value(py).getattr(pyo3::intern!(py, "value")) {
                        Ok(v) => Sent::Returned(v),
                        Err(e) => Sent::Failed(e),
                    }
                }
                Err(err) => Sent::Failed(err),
            },
        };
        let handled = NativeTask::after_send(slf, sent);
        let left = aio.leave_task.bind(py).call1((lp, slf));
        if let Err(err) = handled {
            // Acting on what the coroutine yielded failed (e.g. the awaited object's
            // `add_done_callback` raised): end the task with that error rather than
            // leave its owner waiting for a step that will never come.
            if !this.is_done() {
                NativeTask::finish(slf, State::Raised(err.into_value(py).into_any()))?;
            }
        }
        left.map(drop)
    }

    fn after_send(slf: &Bound<'_, Self>, sent: Sent<'_>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        match sent {
            Sent::Returned(value) => {
                let cancel = std::mem::take(&mut this.inner.lock().must_cancel);
                if cancel {
                    // Cancelled right before the coroutine returned.
                    let msg = this.inner.lock().cancel_message.take();
                    NativeTask::finish(slf, State::Cancelled(msg))
                } else {
                    NativeTask::finish(slf, State::Returned(value.unbind()))
                }
            }
            Sent::Failed(err) => {
                if err.is_instance(py, asyncio(py)?.cancelled_error.bind(py)) {
                    let msg = err.value(py).getattr("args").ok().and_then(|a| {
                        let a = a.cast_into::<PyTuple>().ok()?;
                        a.get_item(0).ok().map(Bound::unbind)
                    });
                    return NativeTask::finish(slf, State::Cancelled(msg));
                }
                // Unlike an asyncio.Task, KeyboardInterrupt and SystemExit are not
                // re-raised into the loop: the owner receives them like any error (a
                // handler that calls sys.exit() fails its request, not the server).
                NativeTask::finish(slf, State::Raised(err.into_value(py).into_any()))
            }
            Sent::Yielded(result) => NativeTask::wait_on(slf, result),
        }
    }

    /// Acts on what the coroutine yielded, as `Task.__step` does.
    fn wait_on(slf: &Bound<'_, Self>, result: Bound<'_, PyAny>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if result.is_none() {
            // A bare `yield` (e.g. `asyncio.sleep(0)`): step again next tick.
            let step = slf.getattr(intern_step(py))?;
            return schedule(py, this, step.unbind(), None);
        }
        let blocking = result
            .getattr(pyo3::intern!(py, "_asyncio_future_blocking"))
            .ok();
        let problem = match blocking {
            Some(b) if b.is_truthy()? => {
                let fut_loop = result.call_method0(pyo3::intern!(py, "get_loop"))?;
                if !fut_loop.is(this.event_loop.bind(py)) {
                    Some(format!(
                        "Task {} got Future {} attached to a different loop",
                        slf.repr()?,
                        result.repr()?
                    ))
                } else if result.is(slf) {
                    Some(format!("Task cannot await on itself: {}", slf.repr()?))
                } else {
                    result.setattr(pyo3::intern!(py, "_asyncio_future_blocking"), false)?;
                    let kwargs = PyDict::new(py);
                    kwargs.set_item(pyo3::intern!(py, "context"), this.context.bind(py))?;
                    let wakeup = slf.getattr(pyo3::intern!(py, "_wakeup"))?;
                    result.call_method(
                        pyo3::intern!(py, "add_done_callback"),
                        (wakeup,),
                        Some(&kwargs),
                    )?;
                    let cancel = {
                        let mut inner = this.inner.lock();
                        inner.fut_waiter = Some(result.clone().unbind());
                        if inner.must_cancel {
                            Some(inner.cancel_message.as_ref().map(|m| m.clone_ref(py)))
                        } else {
                            None
                        }
                    };
                    if let Some(msg) = cancel {
                        let kw = PyDict::new(py);
                        kw.set_item("msg", msg)?;
                        if result.call_method("cancel", (), Some(&kw))?.is_truthy()? {
                            this.inner.lock().must_cancel = false;
                        }
                    }
                    None
                }
            }
            Some(_) => Some(format!(
                "yield was used instead of yield from in task {} with {}",
                slf.repr()?,
                result.repr()?
            )),
            None => Some(format!("Task got bad yield: {}", result.repr()?)),
        };
        match problem {
            None => Ok(()),
            Some(text) => {
                // As asyncio does: throw the error into the coroutine at the next step.
                let err = PyRuntimeError::new_err(text).into_value(py);
                let step = slf.getattr(intern_step(py))?;
                schedule(py, this, step.unbind(), Some(err.into_bound(py).into_any()))
            }
        }
    }

    /// Records the outcome, hands it to the Rust owner and schedules the Python done
    /// callbacks.
    fn finish(slf: &Bound<'_, Self>, state: State) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let outcome = match &state {
            State::Returned(v) => TaskOutcome::Returned(v.clone_ref(py)),
            State::Raised(e) => TaskOutcome::Raised(PyErr::from_value(e.bind(py).clone())),
            State::Cancelled(_) => TaskOutcome::Cancelled,
            State::Pending => return Ok(()),
        };
        let callbacks = {
            let mut inner = this.inner.lock();
            inner.state = state;
            inner.fut_waiter = None;
            std::mem::take(&mut inner.callbacks)
        };
        let on_done = this.on_done.lock().take();
        if let Some(f) = on_done {
            f(py, outcome);
        }
        for (cb, ctx) in callbacks {
            schedule_with(py, slf, cb, ctx)?;
        }
        Ok(())
    }
}

enum Sent<'py> {
    Returned(Bound<'py, PyAny>),
    Yielded(Bound<'py, PyAny>),
    Failed(PyErr),
}

/// `coro.send(None)` through `PyIter_Send`, which reports a return without raising
/// and catching a `StopIteration`.
fn send_none<'py>(py: Python<'py>, coro: &Bound<'py, PyAny>) -> Sent<'py> {
    let mut out: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: the GIL is held; `coro` is a live object and `Py_None` a valid argument;
    // PyIter_Send stores a new reference in `out` unless it fails.
    let status = unsafe { ffi::PyIter_Send(coro.as_ptr(), ffi::Py_None(), &mut out) };
    match status {
        ffi::PySendResult::PYGEN_RETURN => {
            // SAFETY: on PYGEN_RETURN `out` is a new reference to the return value.
            Sent::Returned(unsafe { Bound::from_owned_ptr(py, out) })
        }
        ffi::PySendResult::PYGEN_NEXT => {
            // SAFETY: on PYGEN_NEXT `out` is a new reference to the yielded value.
            Sent::Yielded(unsafe { Bound::from_owned_ptr(py, out) })
        }
        _ => Sent::Failed(PyErr::fetch(py)),
    }
}

fn intern_step(py: Python<'_>) -> &Bound<'_, PyString> {
    pyo3::intern!(py, "_step")
}

/// `loop.call_soon(callback, arg, context=task_context)`; `arg` of `None` calls it
/// with no argument.
fn schedule(
    py: Python<'_>,
    task: &NativeTask,
    callback: Py<PyAny>,
    arg: Option<Bound<'_, PyAny>>,
) -> PyResult<()> {
    let args = match arg {
        Some(a) => PyTuple::new(py, [a])?,
        None => PyTuple::empty(py),
    };
    let ctx = task.context.clone_ref(py);
    schedule_tuple(py, task, callback, args.unbind(), ctx)
}

/// `loop.call_soon(callback, task, context=ctx)`: a done callback.
fn schedule_with(
    py: Python<'_>,
    task: &Bound<'_, NativeTask>,
    callback: Py<PyAny>,
    ctx: Py<PyAny>,
) -> PyResult<()> {
    let args = PyTuple::new(py, [task])?.unbind();
    schedule_tuple(py, task.get(), callback, args, ctx)
}

fn schedule_tuple(
    py: Python<'_>,
    task: &NativeTask,
    callback: Py<PyAny>,
    args: Py<PyTuple>,
    ctx: Py<PyAny>,
) -> PyResult<()> {
    let lp = task.event_loop.bind(py);
    if let Ok(core) = lp.cast::<LoopCore>() {
        core.get().schedule(py, callback, args, Some(ctx))?;
        return Ok(());
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item("context", ctx)?;
    let mut all = vec![callback.into_bound(py)];
    all.extend(args.bind(py).iter());
    lp.call_method("call_soon", PyTuple::new(py, all)?, Some(&kwargs))?;
    Ok(())
}

#[pymethods]
impl NativeTask {
    /// Continues the coroutine (scheduled after a bare `yield`, or with an error).
    #[pyo3(signature = (exc=None))]
    fn _step(slf: &Bound<'_, Self>, exc: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        NativeTask::step(slf, exc)
    }

    /// The done callback of the awaited future: resume with its result or error.
    fn _wakeup(slf: &Bound<'_, Self>, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        match fut.call_method0(pyo3::intern!(slf.py(), "result")) {
            Ok(_) => NativeTask::step(slf, None),
            Err(err) => NativeTask::step(
                slf,
                Some(err.into_value(slf.py()).into_bound(slf.py()).into_any()),
            ),
        }
    }

    /// Requests cancellation: the awaited future is cancelled, or `CancelledError` is
    /// thrown into the coroutine at its next step. False when already done.
    #[pyo3(signature = (msg=None))]
    fn cancel(slf: &Bound<'_, Self>, msg: Option<Py<PyAny>>) -> PyResult<bool> {
        let py = slf.py();
        let this = slf.get();
        let waiter = {
            let mut inner = this.inner.lock();
            if !matches!(inner.state, State::Pending) {
                return Ok(false);
            }
            inner.cancels_requested += 1;
            inner.fut_waiter.as_ref().map(|w| w.clone_ref(py))
        };
        if let Some(waiter) = waiter {
            let kwargs = PyDict::new(py);
            kwargs.set_item("msg", msg.as_ref().map(|m| m.clone_ref(py)))?;
            if waiter
                .bind(py)
                .call_method("cancel", (), Some(&kwargs))?
                .is_truthy()?
            {
                // The waiter's done callback throws CancelledError into the coroutine.
                return Ok(true);
            }
        }
        let mut inner = this.inner.lock();
        inner.must_cancel = true;
        inner.cancel_message = msg;
        Ok(true)
    }

    /// How many cancellation requests are pending (`Task.cancelling`).
    fn cancelling(&self) -> usize {
        self.inner.lock().cancels_requested
    }

    /// Withdraws one cancellation request (`Task.uncancel`).
    fn uncancel(&self) -> usize {
        let mut inner = self.inner.lock();
        inner.cancels_requested = inner.cancels_requested.saturating_sub(1);
        inner.cancels_requested
    }

    /// Whether the task finished (returned, raised or was cancelled).
    fn done(&self) -> bool {
        self.is_done()
    }

    /// Whether the task was cancelled.
    fn cancelled(&self) -> bool {
        matches!(self.inner.lock().state, State::Cancelled(_))
    }

    /// The coroutine's return value; raises what it raised, or `CancelledError`.
    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let state = match &self.inner.lock().state {
            State::Pending => None,
            State::Returned(v) => Some(Ok(v.clone_ref(py))),
            State::Raised(e) => Some(Err(PyErr::from_value(e.bind(py).clone()))),
            State::Cancelled(_) => Some(Err(PyErr::from_value(
                asyncio(py)?.cancelled_error.bind(py).call0()?,
            ))),
        };
        match state {
            Some(r) => r,
            None => Err(PyErr::from_value(
                asyncio(py)?
                    .invalid_state
                    .bind(py)
                    .call1(("Result is not set.",))?,
            )),
        }
    }

    /// The exception the coroutine raised, or `None`.
    fn exception(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let state = match &self.inner.lock().state {
            State::Pending => None,
            State::Returned(_) => Some(Ok(None)),
            State::Raised(e) => Some(Ok(Some(e.clone_ref(py)))),
            State::Cancelled(_) => Some(Err(())),
        };
        match state {
            Some(Ok(v)) => Ok(v),
            Some(Err(())) => Err(PyErr::from_value(
                asyncio(py)?.cancelled_error.bind(py).call0()?,
            )),
            None => Err(PyErr::from_value(
                asyncio(py)?
                    .invalid_state
                    .bind(py)
                    .call1(("Exception is not set.",))?,
            )),
        }
    }

    /// Calls `fn(task)` when the task is done (next tick if it already is).
    #[pyo3(signature = (callback, *, context=None))]
    fn add_done_callback(
        slf: &Bound<'_, Self>,
        callback: Py<PyAny>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let ctx = match context {
            Some(c) if !c.is_none(py) => c,
            _ => copy_context(py)?,
        };
        if this.is_done() {
            return schedule_with(py, slf, callback, ctx);
        }
        this.inner.lock().callbacks.push((callback, ctx));
        Ok(())
    }

    /// Removes every registration of `fn`; returns how many there were.
    fn remove_done_callback(&self, py: Python<'_>, callback: &Bound<'_, PyAny>) -> PyResult<usize> {
        let current: Vec<(Py<PyAny>, Py<PyAny>)> = {
            let mut inner = self.inner.lock();
            std::mem::take(&mut inner.callbacks)
        };
        let mut kept = Vec::with_capacity(current.len());
        let mut removed = 0;
        for (cb, ctx) in current {
            if cb.bind(py).eq(callback)? {
                removed += 1;
            } else {
                kept.push((cb, ctx));
            }
        }
        self.inner.lock().callbacks.extend(kept);
        Ok(removed)
    }

    /// The coroutine.
    fn get_coro(&self, py: Python<'_>) -> Py<PyAny> {
        self.coro.clone_ref(py)
    }

    /// The `contextvars.Context` the coroutine runs in.
    fn get_context(&self, py: Python<'_>) -> Py<PyAny> {
        self.context.clone_ref(py)
    }

    /// The loop running the task.
    fn get_loop(&self, py: Python<'_>) -> Py<PyAny> {
        self.event_loop.clone_ref(py)
    }

    /// The task's name (`Task-<n>` unless set).
    fn get_name(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let mut inner = self.inner.lock();
        if let Some(n) = &inner.name {
            return Ok(n.clone_ref(py));
        }
        let id = NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = PyString::new(py, &format!("Task-native-{id}"))
            .into_any()
            .unbind();
        inner.name = Some(name.clone_ref(py));
        Ok(name)
    }

    /// Renames the task.
    fn set_name(&self, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let name = value.str()?.into_any().unbind();
        self.inner.lock().name = Some(name);
        Ok(())
    }

    /// The stack of the suspended coroutine (one frame at most, as for a Task).
    #[pyo3(signature = (*, limit=None))]
    fn get_stack(&self, py: Python<'_>, limit: Option<Py<PyAny>>) -> PyResult<Py<PyAny>> {
        let _ = limit;
        let frame = self.coro.bind(py).getattr("cr_frame").ok();
        let list = pyo3::types::PyList::empty(py);
        if let Some(f) = frame.filter(|f| !f.is_none()) {
            list.append(f)?;
        }
        Ok(list.into_any().unbind())
    }

    /// The future the coroutine is waiting on, if any (read by anyio).
    #[getter]
    fn _fut_waiter(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.inner
            .lock()
            .fut_waiter
            .as_ref()
            .map(|w| w.clone_ref(py))
    }

    /// Whether a cancellation will be thrown in at the next step.
    #[getter]
    fn _must_cancel(&self) -> bool {
        self.inner.lock().must_cancel
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let name = self.get_name(py)?;
        let state = match &self.inner.lock().state {
            State::Pending => "pending",
            State::Returned(_) | State::Raised(_) => "finished",
            State::Cancelled(_) => "cancelled",
        };
        let coro = self.coro.bind(py).repr()?;
        Ok(format!(
            "<NativeTask {state} name={} coro={coro}>",
            name.bind(py).str()?
        ))
    }

    fn __traverse__(&self, visit: PyVisit<'_>) -> Result<(), PyTraverseError> {
        visit.call(&self.event_loop)?;
        visit.call(&self.coro)?;
        visit.call(&self.context)?;
        // A task that is stepping holds its lock only briefly; skipping its contents
        // for one collection is safe (they are visited next time).
        if let Some(inner) = self.inner.try_lock() {
            visit.call(&inner.fut_waiter)?;
            for (cb, ctx) in &inner.callbacks {
                visit.call(cb)?;
                visit.call(ctx)?;
            }
            match &inner.state {
                State::Returned(v) | State::Raised(v) => visit.call(v)?,
                State::Cancelled(Some(m)) => visit.call(m)?,
                _ => {}
            }
        }
        Ok(())
    }

    fn __clear__(&self) {
        let taken = self.inner.try_lock().map(|mut i| {
            (
                i.fut_waiter.take(),
                std::mem::take(&mut i.callbacks),
                std::mem::take(&mut i.state),
            )
        });
        drop(taken);
    }
}
