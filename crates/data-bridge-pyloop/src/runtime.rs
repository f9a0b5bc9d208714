//! The process-wide Tokio runtime shared by every PyLoop and by the HTTP server.
//!
//! By default the runtime is a current-thread runtime: whichever PyLoop is waiting
//! (with the GIL released) drives Tokio's reactor and timers itself, so socket
//! readiness reaches the loop without a thread hop, exactly as epoll does for uvloop.
//! `configure(threads)` may switch to a multi-thread runtime before first use, for
//! servers that want Rust work spread over several cores.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

use crate::errors::LoopError;

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static THREADS: OnceLock<usize> = OnceLock::new();

/// Chooses how many Tokio worker threads the runtime gets (0 = current-thread).
///
/// Must be called before the runtime is first used; later calls fail.
pub fn configure(threads: usize) -> Result<(), LoopError> {
    if RUNTIME.get().is_some() {
        return Err(LoopError::RuntimeStarted);
    }
    THREADS.set(threads).map_err(|_| LoopError::RuntimeStarted)
}

/// Number of worker threads the runtime runs with (0 means current-thread).
pub fn threads() -> usize {
    *THREADS.get_or_init(|| {
        std::env::var("DATA_BRIDGE_THREADS")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    })
}

/// The runtime, built on first use.
pub fn get() -> &'static Runtime {
    RUNTIME.get_or_init(|| {
        let threads = threads();
        let mut builder = if threads == 0 {
            Builder::new_current_thread()
        } else {
            let mut b = Builder::new_multi_thread();
            b.worker_threads(threads);
            b
        };
        builder.enable_all().thread_name("data-bridge-rt");
        match builder.build() {
            Ok(rt) => rt,
            // Without a runtime nothing can run; this only fails when the OS refuses
            // an epoll instance or a thread, which leaves nothing sensible to do.
            Err(e) => panic!("data-bridge: cannot start the Tokio runtime: {e}"),
        }
    })
}

/// Runs `future` to completion on the calling thread, driving the runtime meanwhile.
pub fn block_on<F: Future>(future: F) -> F::Output {
    get().block_on(future)
}
