//! Errors raised by the loop, and their mapping to the Python exceptions asyncio raises
//! in the same situations (so code written against asyncio catches the same types).

use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::PyErr;

/// Everything that can go wrong inside PyLoop's Rust core.
#[derive(Debug, thiserror::Error)]
pub enum LoopError {
    /// The loop was used after `close()`.
    #[error("Event loop is closed")]
    Closed,
    /// `run_forever()` was called while the loop runs.
    #[error("This event loop is already running")]
    AlreadyRunning,
    /// The runtime was configured after it had started.
    #[error("the Tokio runtime is already running; configure it before first use")]
    RuntimeStarted,
    /// A descriptor is already watched by a transport.
    #[error("File descriptor {0} is used by transport")]
    FdInUse(i32),
    /// An argument asyncio would reject with `ValueError`.
    #[error("{0}")]
    Invalid(String),
    /// A system call failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl From<LoopError> for PyErr {
    fn from(err: LoopError) -> PyErr {
        match err {
            LoopError::Io(e) => os_error(&e),
            LoopError::Invalid(msg) => PyValueError::new_err(msg),
            other => PyRuntimeError::new_err(other.to_string()),
        }
    }
}

/// Builds the `OSError` subclass Python itself would raise for `err`
/// (`OSError(errno, strerror)` picks `ConnectionResetError` and friends from the errno).
pub fn os_error(err: &std::io::Error) -> PyErr {
    match err.raw_os_error() {
        Some(code) => {
            let text = err.to_string();
            // std appends " (os error N)"; Python's strerror does not.
            let strerror = text.split(" (os error").next().unwrap_or(&text).to_owned();
            PyOSError::new_err((code, strerror))
        }
        None => PyOSError::new_err(err.to_string()),
    }
}
