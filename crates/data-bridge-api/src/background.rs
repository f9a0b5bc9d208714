//! Background work that runs once a response has been sent: a `Response` whose
//! `background` is set (a `BackgroundTasks` or `BackgroundTask`) has its body wrapped
//! with an [`AfterBody`] observer; when Hyper is done with the body (written out, or abandoned with
//! the connection) the wrapper hands the background object to the Python hook
//! `run_background` on the loop thread. The client therefore never waits for it.
//!
//! [`Pending`] counts background objects whose body has not finished yet plus those
//! handed over but not yet scheduled, so a caller (the test client) can wait until
//! nothing is left in Rust's hands.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use data_bridge_pyloop::wake::{Remote, Shared};
use http::Response;
use pyo3::prelude::*;

use crate::body::{Body, BodyObserver};
use crate::hooks;

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

/// Runs `background` after `resp`'s body is finished with.
pub fn after_body(
    resp: Response<Body>,
    background: Py<PyAny>,
    shared: Arc<Shared>,
    pending: Pending,
) -> Response<Body> {
    pending.0.fetch_add(1, Ordering::AcqRel);
    resp.map(|body| {
        body.observed(AfterBody(Some(Start {
            background,
            shared,
            pending,
        })))
    })
}

struct Start {
    background: Py<PyAny>,
    shared: Arc<Shared>,
    pending: Pending,
}

impl Start {
    fn fire(self) {
        let Start {
            background,
            shared,
            pending,
        } = self;
        shared.push_remote(Remote::Call(Box::new(move |py| {
            // The hook logs failures itself; one it cannot even start is dropped.
            if let Ok(hooks) = hooks::get(py) {
                let _ = hooks.run_background.bind(py).call1((background,));
            }
            pending.0.fetch_sub(1, Ordering::AcqRel);
        })));
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
