//! Background work that runs once a response has been sent: a `Response` whose
//! `background` is set (a `BackgroundTasks` or `BackgroundTask`) has its body wrapped
//! with an [`AfterBody`] observer; when Hyper is done with the body (written out, or abandoned with
//! the connection) the wrapper hands the background object to the Python hook
//! `run_background` on the loop thread. The client therefore never waits for it.
//!
//! [`Pending`] counts background objects whose body has not finished yet plus those
//! handed over but not yet scheduled, so a caller (the test client) can wait until
//! nothing is left in Rust's hands.
//!
//! Each background object is also counted as work in flight (see
//! [`crate::in_flight`]) from the moment its response is ready until the task running
//! it has finished, so that slow background work makes new requests wait (503 past the
//! limit) instead of piling up without bound.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use data_bridge_pyloop::bridge::LoopHandle;
use http::Response;
use parking_lot::Mutex;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyCFunction;

use crate::body::{Body, BodyObserver};
use crate::hooks;
use crate::in_flight::Slot;

/// Background objects armed but not yet handed to Python (shared by a server and its
/// dispatcher).
#[derive(Clone, Default)]
pub struct Pending(Arc<AtomicUsize>);

impl Pending {
    /// How many are armed now.
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Acquire)
    }
}

/// Runs `background` after `resp`'s body is finished with; `slot` counts it as work
/// in flight until it has run.
pub fn after_body(
    resp: Response<Body>,
    background: Py<PyAny>,
    lp: LoopHandle,
    pending: Pending,
    slot: Slot,
) -> Response<Body> {
    pending.0.fetch_add(1, Ordering::AcqRel);
    resp.map(|body| {
        body.observed(AfterBody(Some(Start {
            background,
            lp,
            pending,
            slot,
        })))
    })
}

struct Start {
    background: Py<PyAny>,
    lp: LoopHandle,
    pending: Pending,
    slot: Slot,
}

impl Start {
    fn fire(self) {
        let Start {
            background,
            lp,
            pending,
            slot,
        } = self;
        lp.call(move |py| {
            // The hook logs failures itself; one it cannot even start is dropped.
            if let Ok(hooks) = hooks::get(py) {
                if let Ok(task) = hooks.run_background.bind(py).call1((background,)) {
                    release_when_done(&task, slot);
                }
            }
            pending.0.fetch_sub(1, Ordering::AcqRel);
        });
    }
}

/// Keeps `slot` until `task` (what `run_background` returned: an asyncio task) is done.
/// Without a task to wait for, the slot is given back at once.
fn release_when_done(task: &Bound<'_, PyAny>, slot: Slot) {
    let py = task.py();
    let held = Mutex::new(Some(slot));
    let on_done = PyCFunction::new_closure(py, None, None, move |_args, _kwargs| {
        drop(held.lock().take());
    });
    if let Ok(on_done) = on_done {
        // If the callback cannot be added, dropping it gives the slot back.
        let _ = task.call_method1(intern!(py, "add_done_callback"), (on_done,));
    }
}

/// Starts the background work when the body it observes is dropped.
struct AfterBody(Option<Start>);

impl BodyObserver for AfterBody {}

impl Drop for AfterBody {
    fn drop(&mut self) {
        if let Some(start) = self.0.take() {
            start.fire();
        }
    }
}
