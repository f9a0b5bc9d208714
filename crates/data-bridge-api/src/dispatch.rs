//! `spawn_python_handler`: runs a Python handler for a request and gives the
//! connection's task a future of the response.
//!
//! `async def` handlers are handed to PyLoop through its cross-thread queue: the loop
//! takes every queued request in the same tick, with the GIL taken once, creates the
//! coroutine and runs it as an asyncio task (so `current_task()`, timeouts and
//! cancellation behave as in any asyncio program). The response travels back through
//! a one-shot channel. `def` handlers run on Tokio's blocking pool, off the loop thread.
//! A `StreamingResponse`'s producer is started as soon as its reply exists (see
//! `streaming`), so the head goes out without waiting for the first chunk.
//!
//! Queued work is bounded: past `max_pending` requests in flight the server answers
//! 503 instead of queueing more. A client that goes away, or a route timeout, cancels
//! the task.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use data_bridge_pyloop::wake::{Remote, Shared};
use parking_lot::Mutex;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tokio::sync::oneshot;

use crate::endpoint::{CallMode, PyEndpoint};
use crate::errors::ApiError;
use crate::request::{param_to_py, PyRequest, RequestData};
use crate::response::Reply;
use crate::streaming::LoopRef;

type Outcome = Result<Reply, ApiError>;

/// Hands requests to Python handlers; one per server.
pub struct Dispatcher {
    lp: Arc<LoopRef>,
    in_flight: AtomicUsize,
    max_pending: usize,
    debug: bool,
}

/// The task running a request, so it can be cancelled from the connection's side.
#[derive(Default)]
struct Job {
    task: Mutex<Option<Py<PyAny>>>,
}

/// Cancels the job's task if the response future is dropped before it completes
/// (the client disconnected, or the route timed out).
struct CancelOnDrop {
    job: Arc<Job>,
    shared: Arc<Shared>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let job = self.job.clone();
        self.shared.push_remote(Remote::Call(Box::new(move |py| {
            if let Some(task) = job.task.lock().take() {
                let _ = task.bind(py).call_method0("cancel");
            }
        })));
    }
}

struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The done-callback of a request's task: turns its outcome into a reply.
#[pyclass(module = "data_bridge._native", frozen)]
struct Finish {
    tx: Mutex<Option<oneshot::Sender<Outcome>>>,
    job: Arc<Job>,
    status: http::StatusCode,
    lp: Arc<LoopRef>,
    debug: bool,
}

#[pymethods]
impl Finish {
    fn __call__(&self, py: Python<'_>, task: &Bound<'_, PyAny>) {
        drop(self.job.task.lock().take());
        let Some(tx) = self.tx.lock().take() else {
            return;
        };
        let outcome = if task
            .call_method0("cancelled")
            .and_then(|c| c.is_truthy())
            .unwrap_or(false)
        {
            Err(ApiError::Timeout)
        } else {
            match task.call_method0("result") {
                Ok(value) => Reply::from_value(py, &value, self.status)
                    .map(|r| r.start_stream(py, &self.lp, true))
                    .or_else(|e| Reply::from_error(py, e, self.debug)),
                Err(err) => Reply::from_error(py, err, self.debug),
            }
        };
        let _ = tx.send(outcome);
    }
}

fn call_args<'py>(
    py: Python<'py>,
    ep: &Arc<PyEndpoint>,
    data: Arc<RequestData>,
) -> PyResult<Bound<'py, PyTuple>> {
    match ep.mode {
        CallMode::NoArgs => Ok(PyTuple::empty(py)),
        CallMode::PathArgs => {
            let mut args = Vec::with_capacity(data.params.len());
            for (name, value) in &data.params {
                args.push(param_to_py(py, ep, name, value)?);
            }
            PyTuple::new(py, args)
        }
        CallMode::Request => {
            let req = Py::new(py, PyRequest::new(data, ep.clone()))?;
            PyTuple::new(py, [req])
        }
    }
}

impl Dispatcher {
    /// A dispatcher for handlers running on `event_loop` (a PyLoop `Loop`).
    pub fn new(
        shared: Arc<Shared>,
        event_loop: Py<PyAny>,
        max_pending: usize,
        debug: bool,
    ) -> Self {
        Dispatcher {
            lp: Arc::new(LoopRef { shared, event_loop }),
            in_flight: AtomicUsize::new(0),
            max_pending,
            debug,
        }
    }

    /// Requests currently queued or running in Python.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Runs `ep` for the request and resolves to its response (or the error to send).
    pub async fn spawn_python_handler(&self, ep: Arc<PyEndpoint>, data: RequestData) -> Outcome {
        if self.in_flight.fetch_add(1, Ordering::AcqRel) >= self.max_pending {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(ApiError::Overloaded);
        }
        let _in_flight = InFlight(&self.in_flight);
        let (tx, rx) = oneshot::channel::<Outcome>();
        let job = Arc::new(Job::default());
        let data = Arc::new(data);
        let timeout = ep.timeout;
        if ep.is_async {
            let job2 = job.clone();
            let lp = self.lp.clone();
            let debug = self.debug;
            self.lp.shared.push_remote(Remote::Call(Box::new(move |py| {
                start_async(py, lp, ep, data, tx, job2, debug);
            })));
        } else {
            let debug = self.debug;
            let lp = self.lp.clone();
            tokio::task::spawn_blocking(move || {
                Python::attach(|py| {
                    let outcome = call_args(py, &ep, data)
                        .and_then(|args| ep.func.bind(py).call1(args))
                        .and_then(|value| Reply::from_value(py, &value, ep.status))
                        .map(|r| r.start_stream(py, &lp, false))
                        .or_else(|err| Reply::from_error(py, err, debug));
                    let _ = tx.send(outcome);
                })
            });
        }
        let mut guard = CancelOnDrop {
            job,
            shared: self.lp.shared.clone(),
            armed: true,
        };
        let result = match timeout {
            Some(limit) => match tokio::time::timeout(limit, rx).await {
                Ok(r) => r,
                // Dropping the guard below cancels the task.
                Err(_elapsed) => return Err(ApiError::Timeout),
            },
            None => rx.await,
        };
        guard.armed = false;
        result.unwrap_or(Err(ApiError::Internal(None)))
    }
}

fn start_async(
    py: Python<'_>,
    lp: Arc<LoopRef>,
    ep: Arc<PyEndpoint>,
    data: Arc<RequestData>,
    tx: oneshot::Sender<Outcome>,
    job: Arc<Job>,
    debug: bool,
) {
    let coro = match call_args(py, &ep, data).and_then(|args| ep.func.bind(py).call1(args)) {
        Ok(c) => c,
        Err(err) => {
            let _ = tx.send(Reply::from_error(py, err, debug));
            return;
        }
    };
    let task = match lp.event_loop.bind(py).call_method1("create_task", (coro,)) {
        Ok(t) => t,
        Err(err) => {
            let _ = tx.send(Reply::from_error(py, err, debug));
            return;
        }
    };
    let finish = Finish {
        tx: Mutex::new(Some(tx)),
        job: job.clone(),
        status: ep.status,
        lp,
        debug,
    };
    match Py::new(py, finish).and_then(|f| task.call_method1("add_done_callback", (f,))) {
        Ok(_) => *job.task.lock() = Some(task.unbind()),
        Err(err) => {
            let _ = task.call_method0("cancel");
            let _ = err;
        }
    }
}
