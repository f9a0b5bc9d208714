//! The dispatcher: where every Python handler is started, HTTP and WebSocket alike,
//! under the same limit on work in flight and cancelled the same way when its client
//! goes away or its time runs out. [`Dispatcher::spawn_python_handler`] runs a
//! handler for a request and gives the connection's task a future of the response;
//! [`Dispatcher::spawn_websocket_handler`] starts a WebSocket handler, which answers
//! the handshake itself and then outlives it.
//!
//! `async def` handlers are handed to PyLoop through its cross-thread queue: the loop
//! takes every queued request in the same tick, with the GIL taken once, creates the
//! coroutine and steps it with a [`NativeTask`] (the current task while it runs, so
//! `current_task()`, timeouts and cancellation behave as in any asyncio program, but
//! without an `asyncio.Task`'s start and completion callbacks). The response travels
//! back through a one-shot channel. `def` handlers run on Tokio's blocking pool, off
//! the loop thread, at most `sync_threads` at once (the default matches FastAPI's thread
//! limiter): more threads would only queue on the GIL. A `StreamingResponse`'s producer
//! is started as soon as its reply exists (see `streaming`), so the head goes out
//! without waiting for the first chunk.
//!
//! Queued work is bounded: past `max_pending` units of work in flight (see
//! [`crate::in_flight`]) the server answers 503 instead of queueing more. A client that
//! goes away, or a route timeout, cancels the task; the request stays counted until
//! its handler has really ended (a cancelled coroutine has finished unwinding, a `def`
//! handler's thread has returned, or a queued one was dropped without running),
//! because until then it still holds its request and body.
//!
//! A WebSocket handler runs as an `asyncio.Task` rather than a [`NativeTask`]: it
//! lives as long as its connection, so it must be among `asyncio.all_tasks()` for the
//! loop's shutdown to cancel it (the handler then closes with 1012), and the task's
//! cost is paid once per connection, not per message.

use std::sync::Arc;

use data_bridge_pyloop::bridge::LoopHandle;
use data_bridge_pyloop::task::{NativeTask, TaskOutcome};
use data_bridge_pyloop::wake::Shared;
use parking_lot::Mutex;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyCFunction, PyTuple};
use tokio::sync::{oneshot, Semaphore};

use crate::background::{self, Pending};
use crate::body::Body;
use crate::endpoint::{CallMode, PyEndpoint};
use crate::errors::ApiError;
use crate::hooks;
use crate::in_flight::{InFlight, Slot};
use crate::request::{param_to_py, PyRequest, RequestData};
use crate::response::Reply;
use crate::streaming::LoopRef;

type Outcome = Result<Reply, ApiError>;

/// Hands requests to Python handlers; one per server.
pub struct Dispatcher {
    lp: Arc<LoopRef>,
    /// Threads that may run `def` handlers at once; more wait for a permit.
    sync_permits: Arc<Semaphore>,
    debug: bool,
    /// Responses sent or being sent whose background work has not been scheduled.
    background: Pending,
}

/// The task running a request, so it can be cancelled from the connection's side.
/// Shared by the response future and the handler's task or thread; the request is
/// counted in flight until both have let go.
struct Job {
    task: Mutex<Option<Task>>,
    _slot: Slot,
}

/// What runs an `async def` handler.
enum Task {
    /// An HTTP handler's coroutine, stepped from Rust.
    Native(Py<NativeTask>),
    /// A WebSocket handler's `asyncio.Task`.
    Asyncio(Py<PyAny>),
}

impl Task {
    fn cancel(self, py: Python<'_>) {
        let _ = match self {
            Task::Native(task) => NativeTask::cancel_now(task.bind(py)),
            Task::Asyncio(task) => task
                .bind(py)
                .call_method0(intern!(py, "cancel"))
                .map(|_| true),
        };
    }
}

/// Cancels the job's task if the response future is dropped before it completes
/// (the client disconnected, or the route timed out).
struct CancelOnDrop {
    job: Arc<Job>,
    lp: Arc<LoopRef>,
    armed: bool,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let job = self.job.clone();
        self.lp.handle.call(move |py| {
            let task = job.task.lock().take();
            if let Some(task) = task {
                task.cancel(py);
            }
        });
    }
}

/// Turns a finished handler's outcome into the reply to send.
fn reply_for(
    py: Python<'_>,
    outcome: TaskOutcome,
    status: http::StatusCode,
    lp: &Arc<LoopRef>,
    debug: bool,
) -> Outcome {
    match outcome {
        TaskOutcome::Returned(value) => Reply::from_value(py, value.bind(py), status)
            .map(|r| r.start_stream(py, lp, true))
            .or_else(|e| Reply::from_error(py, e, debug)),
        TaskOutcome::Raised(err) => Reply::from_error(py, err, debug),
        // Only the server cancels handlers: on a timeout, or when the client is gone
        // (and then nobody reads the reply).
        TaskOutcome::Cancelled => Err(ApiError::Timeout),
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
    /// A dispatcher for handlers running on `event_loop` (a PyLoop `Loop`), with at
    /// most `sync_threads` `def` handlers (and as many sync streaming producers)
    /// running at once, and at most `max_pending` units of work in flight.
    pub fn new(
        shared: Arc<Shared>,
        event_loop: Py<PyAny>,
        max_pending: usize,
        sync_threads: usize,
        debug: bool,
        background: Pending,
    ) -> Self {
        let sync_threads = sync_threads.max(1);
        Dispatcher {
            lp: Arc::new(LoopRef {
                handle: LoopHandle::from_parts(shared, event_loop),
                work: Arc::new(InFlight::new(max_pending)),
                stream_threads: Arc::new(Semaphore::new(sync_threads)),
            }),
            sync_permits: Arc::new(Semaphore::new(sync_threads)),
            debug,
            background,
        }
    }

    /// The loop that runs the handlers.
    pub fn loop_ref(&self) -> &Arc<LoopRef> {
        &self.lp
    }

    /// Units of Python work in flight: handlers queued or running, sync streaming
    /// producers, open WebSockets and unfinished background tasks.
    pub fn in_flight(&self) -> usize {
        self.lp.work.get()
    }

    /// The count that bounds Python work, for work started outside
    /// [`Dispatcher::spawn_python_handler`].
    pub fn work(&self) -> &Arc<InFlight> {
        &self.lp.work
    }

    /// `resp` with `background_work` started on the loop once its body is finished.
    pub fn after_body(
        &self,
        resp: http::Response<Body>,
        background_work: Py<PyAny>,
    ) -> http::Response<Body> {
        background::after_body(
            resp,
            background_work,
            self.lp.handle.clone(),
            self.background.clone(),
            self.lp.work.acquire(),
        )
    }

    /// Runs `ep` for the request and resolves to its response (or the error to send).
    pub async fn spawn_python_handler(&self, ep: Arc<PyEndpoint>, data: RequestData) -> Outcome {
        let Some(slot) = self.lp.work.try_acquire() else {
            return Err(ApiError::Overloaded);
        };
        let (tx, rx) = oneshot::channel::<Outcome>();
        let job = Arc::new(Job {
            task: Mutex::new(None),
            _slot: slot,
        });
        let data = Arc::new(data);
        let timeout = ep.timeout;
        if ep.is_async {
            let job2 = job.clone();
            let lp = self.lp.clone();
            let debug = self.debug;
            self.lp.handle.call(move |py| {
                start_async(py, lp, ep, data, tx, job2, debug);
            });
        } else {
            let debug = self.debug;
            let permits = self.sync_permits.clone();
            let lp = self.lp.clone();
            let held = job.clone();
            let mut tx = tx;
            tokio::spawn(async move {
                let permit = tokio::select! {
                    permit = permits.acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                    // Timed out or lost its client while waiting for a thread: the
                    // request and its body are let go now rather than when a thread
                    // frees up.
                    () = tx.closed() => return,
                };
                tokio::task::spawn_blocking(move || {
                    let _held = held;
                    let _permit = permit;
                    // The request may have timed out or lost its client while it
                    // waited for a thread; then nobody wants the handler to run.
                    if tx.is_closed() {
                        return;
                    }
                    Python::attach(|py| {
                        let outcome = call_args(py, &ep, data)
                            .and_then(|args| ep.func.bind(py).call1(args))
                            .and_then(|value| Reply::from_value(py, &value, ep.status))
                            .map(|r| r.start_stream(py, &lp, false))
                            .or_else(|err| Reply::from_error(py, err, debug));
                        let _ = tx.send(outcome);
                    })
                });
            });
        }
        let mut guard = CancelOnDrop {
            job,
            lp: self.lp.clone(),
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

    /// Starts `ep`, a WebSocket handler, with the handshake's request and the
    /// connection object `conn` makes; it answers the handshake itself. Fails with
    /// 503 past the limit on work in flight. If the handler cannot even start, the
    /// error is reported and `failed` runs (on the loop thread).
    pub fn spawn_websocket_handler<C, F>(
        &self,
        ep: Arc<PyEndpoint>,
        data: RequestData,
        conn: C,
        failed: F,
    ) -> Result<Running, ApiError>
    where
        C: FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send + 'static,
        F: FnOnce() + Send + 'static,
    {
        let Some(slot) = self.lp.work.try_acquire() else {
            return Err(ApiError::Overloaded);
        };
        let job = Arc::new(Job {
            task: Mutex::new(None),
            _slot: slot,
        });
        let data = Arc::new(data);
        let started = job.clone();
        let lp = self.lp.clone();
        self.lp.handle.call(move |py| {
            if let Err(err) = start_session(py, &lp, &ep, data, conn, &started) {
                started.task.lock().take();
                if let Ok(hooks) = hooks::get(py) {
                    let _ = hooks.report.bind(py).call1((err.value(py),));
                }
                failed();
            }
        });
        Ok(Running(CancelOnDrop {
            job,
            lp: self.lp.clone(),
            armed: true,
        }))
    }
}

/// A WebSocket handler being started: cancelled if this is dropped before
/// [`Running::detach`] (the handshake timed out, or the client left first).
pub struct Running(CancelOnDrop);

impl Running {
    /// Lets the handler run on past the handshake. The work stays counted in flight
    /// until both the handler has ended and the returned token is dropped.
    pub fn detach(mut self) -> InFlightToken {
        self.0.armed = false;
        InFlightToken {
            _job: self.0.job.clone(),
        }
    }
}

/// Keeps a detached handler's work counted in flight while held (by its connection).
pub struct InFlightToken {
    _job: Arc<Job>,
}

/// Calls a WebSocket handler with the request and the connection and runs it as a
/// task; the job is let go once the task is done.
fn start_session<C>(
    py: Python<'_>,
    lp: &LoopRef,
    ep: &Arc<PyEndpoint>,
    data: Arc<RequestData>,
    conn: C,
    job: &Arc<Job>,
) -> PyResult<()>
where
    C: FnOnce(Python<'_>) -> PyResult<Py<PyAny>>,
{
    let req = Py::new(py, PyRequest::new(data, ep.clone()))?;
    let coro = ep
        .func
        .bind(py)
        .call1(PyTuple::new(py, [req.into_any(), conn(py)?])?)?;
    let task = lp
        .handle
        .event_loop()
        .bind(py)
        .call_method1(intern!(py, "create_task"), (coro,))?;
    *job.task.lock() = Some(Task::Asyncio(task.clone().unbind()));
    // The callback holds the job until the task is done, then also breaks the cycle
    // job -> task -> callback -> job.
    let held = Mutex::new(Some(job.clone()));
    let on_done = PyCFunction::new_closure(py, None, None, move |_args, _kwargs| {
        if let Some(job) = held.lock().take() {
            job.task.lock().take();
        }
    })?;
    task.call_method1(intern!(py, "add_done_callback"), (on_done,))?;
    Ok(())
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
    let status = ep.status;
    let finished = job.clone();
    let finished_lp = lp.clone();
    let on_done = move |py: Python<'_>, outcome: TaskOutcome| {
        drop(finished.task.lock().take());
        let _ = tx.send(reply_for(py, outcome, status, &finished_lp, debug));
    };
    match NativeTask::start(
        py,
        lp.handle.event_loop().clone_ref(py),
        coro.unbind(),
        on_done,
    ) {
        Ok(task) => {
            if !task.get().is_finished() {
                *job.task.lock() = Some(Task::Native(task));
            }
        }
        // The first step could not even begin (e.g. the context could not be
        // entered); the reply channel is dropped and the request answers 500.
        Err(err) => drop(Reply::from_error(py, err, debug)),
    }
}

#[cfg(test)]
mod tests {
    //! What the dispatcher decides on the connection's side: the limit, timeouts and
    //! cancellations, and how long work stays counted. No loop runs: closures queued
    //! for it are taken out and dropped, as a loop that finished them would.

    use std::time::Duration;

    use data_bridge_pyloop::wake::Remote;

    use super::*;
    use crate::request::Origin;
    use crate::request_body::RequestBody;

    fn dispatcher(max_pending: usize) -> (Dispatcher, Arc<Shared>) {
        Python::initialize();
        let shared = Arc::new(Shared::default());
        let event_loop = Python::attach(|py| py.None());
        let d = Dispatcher::new(
            shared.clone(),
            event_loop,
            max_pending,
            1,
            false,
            Pending::default(),
        );
        (d, shared)
    }

    fn endpoint(timeout: Option<Duration>) -> Arc<PyEndpoint> {
        Python::attach(|py| Arc::new(PyEndpoint::stub(py, CallMode::NoArgs, timeout)))
    }

    fn data() -> RequestData {
        let (head, ()) = http::Request::new(()).into_parts();
        let origin = Origin {
            client: None,
            server: None,
            scheme: "http",
            host: String::new(),
        };
        RequestData::new(head, RequestBody::empty(), origin, Vec::new())
    }

    /// Takes what waits for the loop and drops it with the GIL held.
    fn drain(shared: &Shared) -> usize {
        let mut queued: Vec<Remote> = Vec::new();
        shared.take_remote(&mut queued);
        let n = queued.len();
        Python::attach(|_py| drop(queued));
        n
    }

    #[tokio::test]
    async fn past_the_limit_nothing_reaches_the_loop() {
        let (d, shared) = dispatcher(0);
        let outcome = d.spawn_python_handler(endpoint(None), data()).await;
        assert!(matches!(outcome, Err(ApiError::Overloaded)));
        let ws = d.spawn_websocket_handler(endpoint(None), data(), |py| Ok(py.None()), || {});
        assert!(matches!(ws, Err(ApiError::Overloaded)));
        assert_eq!(drain(&shared), 0);
        assert_eq!(d.in_flight(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_timed_out_handler_stays_counted_until_the_loop_lets_go() {
        let (d, shared) = dispatcher(1);
        let outcome = d
            .spawn_python_handler(endpoint(Some(Duration::from_secs(1))), data())
            .await;
        assert!(matches!(outcome, Err(ApiError::Timeout)));
        // Its coroutine may still be unwinding: the next request waits its turn.
        assert_eq!(d.in_flight(), 1);
        let next = d.spawn_python_handler(endpoint(None), data()).await;
        assert!(matches!(next, Err(ApiError::Overloaded)));
        // The start, then the cancellation.
        assert_eq!(drain(&shared), 2);
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn a_websocket_handler_left_before_its_answer_is_cancelled() {
        let (d, shared) = dispatcher(1);
        let running = d.spawn_websocket_handler(endpoint(None), data(), |py| Ok(py.None()), || {});
        assert!(running.is_ok());
        drop(running);
        assert_eq!(drain(&shared), 2);
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn a_detached_websocket_handler_runs_on_and_stays_counted() {
        let (d, shared) = dispatcher(1);
        let running = d.spawn_websocket_handler(endpoint(None), data(), |py| Ok(py.None()), || {});
        let Ok(running) = running else {
            panic!("below the limit");
        };
        let token = running.detach();
        // Only the start was queued: no cancellation.
        assert_eq!(drain(&shared), 1);
        assert_eq!(d.in_flight(), 1, "the connection still holds it");
        drop(token);
        assert_eq!(d.in_flight(), 0);
    }
}
