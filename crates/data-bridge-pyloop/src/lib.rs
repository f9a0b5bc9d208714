//! PyLoop: a complete asyncio event loop whose waiting, timers and socket readiness
//! are driven by a process-wide Tokio runtime.
//!
//! The crate exports Python classes (registered into `data_bridge._native` by the
//! extension crate) and a Rust API for other crates of the workspace: the shared
//! [`runtime`], [`LoopCore`], and [`bridge`] to hand work and results to a running
//! loop from Tokio.
//!
//! ```text
//!  Python thread (run_forever)                Tokio (same thread by default)
//!  ─────────────────────────────              ──────────────────────────────
//!  tick: I/O dispatch, timers, callbacks      epoll: sockets, timers, wake-ups
//!        │ GIL held                                 ▲ GIL released
//!        └── block_on(wait) ───────────────────────┘
//! ```

pub mod bridge;
pub mod clock;
pub mod core;
pub mod errors;
pub mod handle;
pub(crate) mod io;
mod readiness;
pub mod runtime;
pub mod task;
pub mod timers;
pub mod transports;
pub mod wake;

use pyo3::prelude::*;

pub use crate::core::LoopCore;
pub use crate::errors::LoopError;
pub use crate::handle::{Handle, TimerHandle};

/// Configures the process-wide runtime (see [`runtime::configure`]).
#[pyfunction]
fn configure_runtime(threads: usize) -> PyResult<()> {
    runtime::configure(threads).map_err(Into::into)
}

/// Adds PyLoop's classes and functions to `module`.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<LoopCore>()?;
    module.add_class::<Handle>()?;
    module.add_class::<TimerHandle>()?;
    module.add_class::<task::NativeTask>()?;
    module.add_class::<transports::stream::StreamTransport>()?;
    module.add_class::<transports::datagram::DatagramTransport>()?;
    module.add_function(wrap_pyfunction!(configure_runtime, module)?)?;
    Ok(())
}
