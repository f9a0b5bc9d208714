//! The one way Rust code on Tokio hands work and results to a PyLoop loop.
//!
//! Tokio tasks (connections, body readers, WebSocket writers) run without the GIL and
//! often on another thread than the loop. Whatever they must do with Python objects
//! goes through a [`LoopHandle`]: [`LoopHandle::call`] runs a closure on the loop
//! thread with the GIL held (queued on the loop's cross-thread queue, see
//! [`crate::wake`]), and [`LoopHandle::create_future`] makes an asyncio future for
//! Python code to await together with the [`LoopFuture`] that resolves it, once, from
//! any thread.
//!
//! ```text
//!  loop thread (GIL)                           Tokio task (no GIL)
//!  let (fut, tx) = lp.create_future(py)?
//!  return fut to Python ── awaited ──┐          tx moved into the task
//!                                    │          ... waits for a chunk / room ...
//!  fut.set_result(v) ◀── next tick ──┴───────── tx.resolve(v)   (one loop wake-up)
//! ```
//!
//! A future is only resolved while it is still pending: its awaiter may have been
//! cancelled meanwhile, and then [`LoopFuture::settle`] hands the value back so that
//! nothing read from the network is lost.

use std::sync::Arc;

use pyo3::exceptions::PyRuntimeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::IntoPyObjectExt;

use crate::core::LoopCore;
use crate::wake::{Remote, Shared};

/// A PyLoop loop as seen from Tokio: its cross-thread queue and the loop object.
/// Cloning it is cheap (two reference counts) and needs no GIL.
///
/// ```no_run
/// use data_bridge_pyloop::bridge::LoopHandle;
/// use pyo3::prelude::*;
///
/// # fn demo(py: Python<'_>) -> PyResult<Py<PyAny>> {
/// let lp = LoopHandle::running(py)?;
/// let (future, done) = lp.create_future(py)?;
/// data_bridge_pyloop::runtime::get().spawn(async move {
///     // ... work without the GIL ...
///     done.resolve(42);
/// });
/// Ok(future.unbind())
/// # }
/// ```
#[derive(Clone)]
pub struct LoopHandle {
    shared: Arc<Shared>,
    event_loop: Arc<Py<PyAny>>,
}

static GET_RUNNING_LOOP: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

impl LoopHandle {
    /// The handle of `core` (a `data_bridge.pyloop.Loop`).
    pub fn new(core: &Bound<'_, LoopCore>) -> Self {
        LoopHandle {
            shared: core.get().shared(),
            event_loop: Arc::new(core.clone().into_any().unbind()),
        }
    }

    /// The handle of a loop from its parts: its queue and the loop object.
    pub fn from_parts(shared: Arc<Shared>, event_loop: Py<PyAny>) -> Self {
        LoopHandle {
            shared,
            event_loop: Arc::new(event_loop),
        }
    }

    /// The handle of the running loop, which must be a PyLoop loop.
    pub fn running(py: Python<'_>) -> PyResult<Self> {
        let lp = GET_RUNNING_LOOP
            .import(py, "asyncio", "get_running_loop")?
            .call0()?;
        let core = lp
            .cast::<LoopCore>()
            .map_err(|_| PyRuntimeError::new_err("the running loop is not a PyLoop loop"))?;
        Ok(LoopHandle::new(core))
    }

    /// The loop object.
    pub fn event_loop(&self) -> &Py<PyAny> {
        &self.event_loop
    }

    /// The loop's cross-thread queue.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Runs `f` on the loop thread with the GIL held, at the loop's next tick; callable
    /// from any thread. Calls run in the order they were made.
    pub fn call(&self, f: impl FnOnce(Python<'_>) + Send + 'static) {
        self.shared.push_remote(Remote::Call(Box::new(f)));
    }

    /// Drops `value` on the loop thread, so the Python objects it holds are released
    /// with the GIL held rather than from a Tokio thread.
    pub fn release<T: Send + 'static>(&self, value: T) {
        self.call(move |_py| drop(value));
    }

    /// A new future of this loop (called on the loop thread), and the [`LoopFuture`]
    /// that resolves it from anywhere.
    pub fn create_future<'py>(&self, py: Python<'py>) -> PyResult<(Bound<'py, PyAny>, LoopFuture)> {
        let future = self
            .event_loop
            .bind(py)
            .call_method0(intern!(py, "create_future"))?;
        let tx = LoopFuture {
            future: future.clone().unbind(),
            shared: self.shared.clone(),
        };
        Ok((future, tx))
    }
}

/// The resolving end of an asyncio future made by [`LoopHandle::create_future`]: sent
/// to any thread, used once. Dropping it leaves the future pending.
pub struct LoopFuture {
    future: Py<PyAny>,
    shared: Arc<Shared>,
}

/// Whether `future` is still pending (a future that cannot say counts as done, so it
/// is left alone).
fn pending(future: &Bound<'_, PyAny>) -> bool {
    let py = future.py();
    future
        .call_method0(intern!(py, "done"))
        .and_then(|d| d.is_truthy())
        .map(|done| !done)
        .unwrap_or(false)
}

impl LoopFuture {
    /// Resolves the future with `value` (converted on the loop thread), unless it is
    /// already done.
    pub fn resolve<T>(self, value: T)
    where
        T: for<'py> IntoPyObject<'py> + Send + 'static,
    {
        self.settle(value, |py, v| v.into_py_any(py), |_, _| {});
    }

    /// Resolves the future with `None`, unless it is already done.
    pub fn resolve_none(self) {
        self.settle((), |py, ()| Ok(py.None()), |_, ()| {});
    }

    /// Hands `value` to the loop thread. If the future is still pending, `claim` turns
    /// the value into its result (an `Err` becomes its exception); if it is already
    /// done (its awaiter was cancelled), `unclaimed` gets the value back instead.
    pub fn settle<T, C, U>(self, value: T, claim: C, unclaimed: U)
    where
        T: Send + 'static,
        C: FnOnce(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
        U: FnOnce(Python<'_>, T) + Send + 'static,
    {
        let LoopFuture { future, shared } = self;
        shared.push_remote(Remote::Call(Box::new(move |py| {
            let future = future.bind(py);
            if !pending(future) {
                return unclaimed(py, value);
            }
            let _ = match claim(py, value) {
                Ok(result) => future.call_method1(intern!(py, "set_result"), (result,)),
                Err(err) => future.call_method1(intern!(py, "set_exception"), (err.value(py),)),
            };
        })));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs what was queued for the loop, as its tick would.
    fn drain(py: Python<'_>, shared: &Shared) {
        let mut queued = Vec::new();
        shared.take_remote(&mut queued);
        for Remote::Call(f) in queued {
            f(py);
        }
    }

    /// Runs `test` with a handle on a fresh asyncio loop (the bridge only needs its
    /// `create_future`), closing the loop afterwards.
    fn on_a_loop(test: impl FnOnce(Python<'_>, &LoopHandle) -> PyResult<()>) -> PyResult<()> {
        Python::initialize();
        Python::attach(|py| {
            let event_loop = py.import("asyncio")?.call_method0("new_event_loop")?;
            let lp =
                LoopHandle::from_parts(Arc::new(Shared::default()), event_loop.clone().unbind());
            let outcome = test(py, &lp);
            event_loop.call_method0("close")?;
            outcome
        })
    }

    #[test]
    fn a_future_is_resolved_on_the_loop_from_another_thread() -> PyResult<()> {
        on_a_loop(|py, lp| {
            let (future, tx) = lp.create_future(py)?;
            py.detach(|| std::thread::spawn(move || tx.resolve(7)).join())
                .map_err(|_| PyRuntimeError::new_err("the thread panicked"))?;
            // Nothing happened yet: the result is set on the loop's next tick.
            assert!(pending(&future));
            drain(py, lp.shared());
            assert_eq!(future.call_method0("result")?.extract::<i32>()?, 7);
            Ok(())
        })
    }

    #[test]
    fn a_cancelled_future_hands_the_value_back() -> PyResult<()> {
        on_a_loop(|py, lp| {
            let (future, tx) = lp.create_future(py)?;
            future.call_method0("cancel")?;
            let kept = Arc::new(parking_lot::Mutex::new(None));
            let keep = kept.clone();
            tx.settle(
                "chunk",
                |_, _| Err(PyRuntimeError::new_err("must not be claimed")),
                move |_, v| *keep.lock() = Some(v),
            );
            drain(py, lp.shared());
            assert_eq!(*kept.lock(), Some("chunk"));
            assert!(future.call_method0("cancelled")?.is_truthy()?);
            Ok(())
        })
    }

    #[test]
    fn a_failed_claim_becomes_the_futures_exception() -> PyResult<()> {
        on_a_loop(|py, lp| {
            let (future, tx) = lp.create_future(py)?;
            tx.settle((), |_, ()| Err(PyRuntimeError::new_err("boom")), |_, ()| {});
            drain(py, lp.shared());
            let exc = future.call_method0("exception")?;
            assert!(exc.is_instance_of::<PyRuntimeError>());
            Ok(())
        })
    }

    #[test]
    fn calls_run_in_order_and_none_resolves_once() -> PyResult<()> {
        on_a_loop(|py, lp| {
            let (future, tx) = lp.create_future(py)?;
            let order = Arc::new(parking_lot::Mutex::new(Vec::new()));
            let first = order.clone();
            lp.call(move |_| first.lock().push(1));
            tx.resolve_none();
            let second = order.clone();
            lp.call(move |_| second.lock().push(2));
            drain(py, lp.shared());
            assert_eq!(*order.lock(), vec![1, 2]);
            assert!(future.call_method0("result")?.is_none());
            Ok(())
        })
    }
}
