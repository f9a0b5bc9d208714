//! `LoopCore`: the native half of PyLoop's event loop: the ready queue, timers,
//! I/O dispatch and the run loop itself.
//!
//! The Python class `data_bridge.pyloop.Loop` inherits from `LoopCore` and from
//! `asyncio.BaseEventLoop`, so methods defined here replace asyncio's hot paths
//! (`call_soon`, timers, `run_forever`'s iterations) while asyncio's own code keeps
//! providing the high-level API on top of them.
//!
//! One iteration ("tick") of the run loop:
//! 1. work out how long it may wait: not at all if callbacks are ready, else until the
//!    next timer, else until woken;
//! 2. release the GIL and let Tokio poll the reactor (I/O, timers, wake-ups) for at
//!    most that long; skipped when nothing is registered that Tokio could report;
//! 3. with the GIL held, as asyncio's `_run_once` does: run the callbacks that were
//!    ready when the poll returned, then dispatch the ready I/O sources (and take
//!    cross-thread work), then run the timers that came due; callbacks any of them
//!    schedule wait for the next tick, after the next I/O poll.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use pyo3::exceptions::{PyKeyboardInterrupt, PySystemExit, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::clock;
use crate::errors::LoopError;
use crate::handle::{Handle, TimerHandle};
use crate::io::{Registry, Side};
use crate::runtime;
use crate::timers::Timers;
use crate::wake::{Remote, Shared};

/// asyncio never waits longer than this in one select call.
const MAX_WAIT: f64 = 24.0 * 3600.0;
/// `time.get_clock_info("monotonic").resolution` on Linux.
const CLOCK_RESOLUTION: f64 = 1e-9;

/// Loop state touched only with the GIL held, mostly from the loop's own thread.
pub(crate) struct State {
    pub(crate) ready: VecDeque<Py<Handle>>,
    pub(crate) timers: Timers,
    pub(crate) io: Registry,
}

/// The native core of PyLoop; see the module documentation.
#[pyclass(module = "data_bridge._native", subclass, frozen)]
pub struct LoopCore {
    pub(crate) state: Mutex<State>,
    pub(crate) shared: Arc<Shared>,
    stopping: AtomicBool,
    closed: AtomicBool,
    running: AtomicBool,
    debug: AtomicBool,
    /// `time()` is replaced (a subclass's method, or one a test patched onto the
    /// instance): deadlines are then read from it, as asyncio's loop reads them.
    custom_time: AtomicBool,
    /// Registered sources whose readiness Tokio must be asked about every tick.
    pub(crate) io_sources: AtomicUsize,
    /// Rust work living on the runtime that needs the loop to keep polling it
    /// (a running HTTP server).
    external_sources: AtomicUsize,
}

impl LoopCore {
    fn new() -> Self {
        LoopCore {
            state: Mutex::new(State {
                ready: VecDeque::new(),
                timers: Timers::default(),
                io: Registry::default(),
            }),
            shared: Arc::new(Shared::default()),
            stopping: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            running: AtomicBool::new(false),
            debug: AtomicBool::new(false),
            custom_time: AtomicBool::new(false),
            io_sources: AtomicUsize::new(0),
            external_sources: AtomicUsize::new(0),
        }
    }

    pub(crate) fn check_closed(&self) -> Result<(), LoopError> {
        if self.closed.load(Ordering::Relaxed) {
            Err(LoopError::Closed)
        } else {
            Ok(())
        }
    }

    /// The loop's wake-up and cross-thread queue, for Rust code that hands work to it.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Tells the loop that Rust work on the runtime (a server's connections) needs
    /// it to poll Tokio on every iteration; undo with [`LoopCore::release_external`].
    pub fn hold_external(&self) {
        self.external_sources.fetch_add(1, Ordering::Relaxed);
    }

    /// Undoes one [`LoopCore::hold_external`].
    pub fn release_external(&self) {
        let _ = self
            .external_sources
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Whether debug mode is on.
    pub fn is_debug(&self) -> bool {
        self.debug.load(Ordering::Relaxed)
    }

    /// Schedules `callback(*args)` for the next tick (Rust-side `call_soon`).
    pub fn schedule(
        &self,
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<Handle>> {
        self.check_closed()?;
        let handle = Py::new(py, Handle::new(py, callback, args, context)?)?;
        self.state.lock().ready.push_back(handle.clone_ref(py));
        Ok(handle)
    }

    /// Makes a handle, recording where it was scheduled when debug mode is on.
    fn debug_handle(
        slf: &Bound<'_, Self>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let handle = Py::new(py, Handle::new(py, callback, args, context)?)?;
        if slf.get().is_debug() {
            let tb = slf.call_method0("_extract_stack")?;
            handle.get().set_source_traceback(tb.unbind());
        }
        Ok(handle)
    }

    /// Queues a handle that is already made (from the loop thread).
    pub(crate) fn push_ready(&self, handle: Py<Handle>) {
        self.state.lock().ready.push_back(handle);
    }

    fn add_timer(
        slf: &Bound<'_, Self>,
        when: f64,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
        method: &str,
    ) -> PyResult<Py<TimerHandle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        if this.is_debug() {
            slf.call_method0("_check_thread")?;
            slf.call_method1("_check_callback", (callback.bind(py), method))?;
        }
        if when.is_nan() {
            return Err(LoopError::Invalid("when must not be NaN".into()).into());
        }
        let handle = Handle::new(py, callback, args, context)?;
        // Python objects are never made while the lock is held: allocation may run the
        // garbage collector, and a finalizer may call back into the loop.
        let counter = this.state.lock().timers.cancelled_counter();
        let timer = TimerHandle::create(py, when, handle, counter)?;
        if this.is_debug() {
            let tb = slf.call_method0("_extract_stack")?;
            timer
                .bind(py)
                .as_super()
                .get()
                .set_source_traceback(tb.unbind());
        }
        this.state.lock().timers.push(when, timer.clone_ref(py));
        Ok(timer)
    }

    /// The loop's time: the monotonic clock, or the replaced `time()`.
    #[inline]
    fn now(slf: &Bound<'_, Self>) -> PyResult<f64> {
        if slf.get().custom_time.load(Ordering::Relaxed) {
            slf.call_method0("time")?.extract()
        } else {
            Ok(clock::now())
        }
    }

    /// How long the next wait may block, or `None` for "until woken".
    fn next_timeout(slf: &Bound<'_, Self>) -> PyResult<Option<Duration>> {
        let py = slf.py();
        let this = slf.get();
        let mut trash = Vec::new();
        let (has_ready, deadline) = {
            let mut st = this.state.lock();
            let deadline = st.timers.next_deadline(py, &mut trash);
            (!st.ready.is_empty() || st.io.needs_recheck(), deadline)
        };
        drop(trash);
        if has_ready || this.stopping.load(Ordering::Relaxed) || this.shared.is_pending() {
            return Ok(Some(Duration::ZERO));
        }
        // The clock is read only when a timer decides the wait.
        let Some(when) = deadline else {
            return Ok(None);
        };
        let now = LoopCore::now(slf)?;
        Ok(Some(Duration::from_secs_f64(
            (when - now).clamp(0.0, MAX_WAIT),
        )))
    }

    /// One tick's wait: lets Tokio poll for I/O and timers with the GIL released.
    fn wait(&self, py: Python<'_>, timeout: Option<Duration>) {
        if timeout == Some(Duration::ZERO)
            && self.io_sources.load(Ordering::Relaxed) == 0
            && self.external_sources.load(Ordering::Relaxed) == 0
        {
            // Nothing is registered that Tokio could report as ready, so there is
            // nothing to poll; cross-thread work is checked after every tick anyway.
            return;
        }
        let shared = self.shared.clone();
        py.detach(move || runtime::block_on(shared.wait(timeout)));
    }

    /// Takes work queued from other threads into the ready queue.
    fn process_remote(&self, py: Python<'_>) {
        let mut items = Vec::new();
        self.shared.take_remote(&mut items);
        for item in items {
            match item {
                Remote::Call(f) => f(py),
            }
        }
    }

    fn run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let timeout = LoopCore::next_timeout(slf)?;
        this.wait(py, timeout);
        py.check_signals()?;

        // asyncio's order within a tick: the callbacks that were ready before the poll,
        // then the I/O callbacks the poll reported, then the timers that came due; what
        // any of them schedules waits for the next tick. Libraries rely on it (a task
        // woken before a peer's data arrives runs before that data is delivered).
        let mut trash = Vec::new();
        let mut due = VecDeque::new();
        let end = LoopCore::now(slf)? + CLOCK_RESOLUTION;
        let ntodo = {
            let mut st = this.state.lock();
            st.timers.pop_due(py, end, &mut due, &mut trash);
            st.ready.len()
        };
        drop(trash);

        let debug = this.is_debug();
        for _ in 0..ntodo {
            let Some(handle) = this.state.lock().ready.pop_front() else {
                break;
            };
            LoopCore::run_handle(slf, &handle, debug)?;
        }
        let mut io_callbacks = Vec::new();
        if this.shared.is_pending() {
            this.shared.clear_pending();
            Registry::dispatch(slf, &mut io_callbacks)?;
            this.process_remote(py);
        } else if this.state.lock().io.needs_recheck() {
            Registry::dispatch(slf, &mut io_callbacks)?;
        }
        for handle in io_callbacks.iter().chain(&due) {
            LoopCore::run_handle(slf, handle, debug)?;
        }
        Ok(())
    }

    /// Runs one callback, reporting its failure to the exception handler; only
    /// `SystemExit` and `KeyboardInterrupt` stop the loop.
    #[inline]
    fn run_handle(slf: &Bound<'_, Self>, handle: &Py<Handle>, debug: bool) -> PyResult<()> {
        let py = slf.py();
        let h = handle.get();
        if h.is_cancelled() {
            return Ok(());
        }
        let result = if debug {
            let t0 = clock::now();
            let r = h.run(py);
            let dt = clock::now() - t0;
            slf.call_method1("_after_callback", (handle.bind(py), dt))?;
            r
        } else {
            h.run(py)
        };
        if let Err(err) = result {
            if err.is_instance_of::<PySystemExit>(py)
                || err.is_instance_of::<PyKeyboardInterrupt>(py)
            {
                return Err(err);
            }
            slf.call_method1("_callback_failed", (handle.bind(py), err.into_value(py)))?;
        }
        Ok(())
    }
}

#[pymethods]
impl LoopCore {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn py_new(_args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyAny>>) -> Self {
        LoopCore::new()
    }

    /// Schedules `callback(*args)` to run on the next iteration.
    #[pyo3(signature = (callback, *args, context=None))]
    fn call_soon(
        slf: &Bound<'_, Self>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let this = slf.get();
        if !this.is_debug() {
            return this.schedule(slf.py(), callback, args, context);
        }
        this.check_closed()?;
        slf.call_method0("_check_thread")?;
        slf.call_method1("_check_callback", (callback.bind(slf.py()), "call_soon"))?;
        let handle = LoopCore::debug_handle(slf, callback, args, context)?;
        this.push_ready(handle.clone_ref(slf.py()));
        Ok(handle)
    }

    /// Like `call_soon`, but safe to call from any thread; wakes the loop.
    #[pyo3(signature = (callback, *args, context=None))]
    fn call_soon_threadsafe(
        slf: &Bound<'_, Self>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<Handle>> {
        let py = slf.py();
        let this = slf.get();
        this.check_closed()?;
        if this.is_debug() {
            slf.call_method1(
                "_check_callback",
                (callback.bind(py), "call_soon_threadsafe"),
            )?;
        }
        let handle = LoopCore::debug_handle(slf, callback, args, context)?;
        // One ready queue, as in asyncio: order with call_soon is arrival order.
        this.push_ready(handle.clone_ref(py));
        this.shared.notify();
        Ok(handle)
    }

    /// Schedules `callback(*args)` to run after `delay` seconds.
    #[pyo3(signature = (delay, callback, *args, context=None))]
    fn call_later(
        slf: &Bound<'_, Self>,
        delay: Option<f64>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let Some(delay) = delay else {
            return Err(PyTypeError::new_err("delay must not be None"));
        };
        LoopCore::add_timer(
            slf,
            LoopCore::now(slf)? + delay,
            callback,
            args,
            context,
            "call_later",
        )
    }

    /// Schedules `callback(*args)` to run at `when` on `loop.time()`'s clock.
    #[pyo3(signature = (when, callback, *args, context=None))]
    fn call_at(
        slf: &Bound<'_, Self>,
        when: Option<f64>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
        context: Option<Py<PyAny>>,
    ) -> PyResult<Py<TimerHandle>> {
        let Some(when) = when else {
            return Err(PyTypeError::new_err("when cannot be None"));
        };
        LoopCore::add_timer(slf, when, callback, args, context, "call_at")
    }

    /// The loop's clock: `time.monotonic()`.
    fn time(&self) -> f64 {
        clock::now()
    }

    /// Reads deadlines from `time()` (`True`: it was replaced) or from the monotonic
    /// clock directly (`False`).
    fn _set_custom_time(&self, custom: bool) {
        self.custom_time.store(custom, Ordering::Relaxed);
    }

    /// Stops the loop after the callbacks of the current iteration have run.
    fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        // From another thread this is a wake-up; on the loop thread the flag is enough.
        self.shared.notify();
    }

    /// Whether debug mode is on.
    fn get_debug(&self) -> bool {
        self.is_debug()
    }

    fn _set_debug_flag(&self, enabled: bool) {
        self.debug.store(enabled, Ordering::Relaxed);
    }

    /// Runs iterations until `stop()`; the Python side sets up and tears down the
    /// running-loop state around it.
    fn _run(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.running.swap(true, Ordering::AcqRel) {
            return Err(LoopError::AlreadyRunning.into());
        }
        let result = loop {
            if let Err(e) = LoopCore::run_once(slf) {
                break Err(e);
            }
            if this.stopping.load(Ordering::Relaxed) {
                break Ok(());
            }
        };
        // However the run ends, a pending stop() belongs to it, not to the next run.
        this.stopping.store(false, Ordering::Relaxed);
        this.running.store(false, Ordering::Release);
        result
    }

    /// Runs a single iteration (asyncio's private `_run_once`).
    fn _run_once(slf: &Bound<'_, Self>) -> PyResult<()> {
        LoopCore::run_once(slf)
    }

    /// Wakes the loop if it is waiting (asyncio's `_write_to_self`).
    fn _wake(&self) {
        self.shared.notify();
    }

    /// Queues an existing handle from any thread (signal handlers use it).
    fn _call_handle_threadsafe(&self, py: Python<'_>, handle: Py<Handle>) -> PyResult<()> {
        self.check_closed()?;
        let _ = py;
        self.push_ready(handle);
        self.shared.notify();
        Ok(())
    }

    /// Makes a handle for `callback(*args)` in a copy of the current context.
    fn _make_handle(
        &self,
        py: Python<'_>,
        callback: Py<PyAny>,
        args: Py<PyTuple>,
    ) -> PyResult<Py<Handle>> {
        Py::new(py, Handle::new(py, callback, args, None)?)
    }

    /// Number of callbacks waiting in the ready queue.
    fn _ready_count(&self) -> usize {
        self.state.lock().ready.len()
    }

    /// Number of timers in the heap (cancelled ones included until they are dropped).
    fn _timer_count(&self) -> usize {
        self.state.lock().timers.len()
    }

    /// Marks the loop closed and releases queued callbacks, timers and I/O sources.
    fn _close_native(&self, py: Python<'_>) {
        self.closed.store(true, Ordering::Relaxed);
        let (ready, timers, sources) = {
            let mut st = self.state.lock();
            (
                std::mem::take(&mut st.ready),
                st.timers.drain(),
                st.io.drain(),
            )
        };
        drop((ready, timers));
        Registry::close_all(py, sources);
        let mut items = Vec::new();
        self.shared.take_remote(&mut items);
        drop(items);
    }

    // Readiness callbacks (see `readiness`).
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
