//! The process-wide Tokio runtime shared by every PyLoop and by the HTTP server.
//!
//! By default the runtime is a current-thread runtime: whichever PyLoop is waiting
//! (with the GIL released) drives Tokio's reactor and timers itself, so socket
//! readiness reaches the loop without a thread hop, exactly as epoll does for uvloop.
//! `configure(threads)` may switch to a multi-thread runtime before first use, for
//! servers that want Rust work spread over several cores.
//!
//! A forked child does not use its parent's runtime: the reactor's epoll instance is
//! shared with the parent across `fork()`, so the child's registrations would be
//! reported to the parent (whose reactor would read the child's pointers as its own),
//! and worker threads do not survive a fork. The child builds a runtime of its own on
//! first use; the parent's copy is leaked, never dropped, since dropping it could
//! deregister the parent's sockets from the shared epoll instance.

use std::future::Future;
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Once, OnceLock};

use tokio::runtime::{Builder, Runtime};

use crate::errors::LoopError;

/// The runtime of this process, or null until first use (and again after a fork).
/// Runtimes are boxes never freed, so a pointer once published stays valid forever.
static RUNTIME: AtomicPtr<Runtime> = AtomicPtr::new(ptr::null_mut());
static THREADS: OnceLock<usize> = OnceLock::new();
static AT_FORK: Once = Once::new();

/// Chooses how many Tokio worker threads the runtime gets (0 = current-thread).
///
/// Must be called before the runtime is first used; later calls fail.
pub fn configure(threads: usize) -> Result<(), LoopError> {
    if !RUNTIME.load(Ordering::Acquire).is_null() {
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

/// The runtime, built on first use (in this process: a forked child builds its own).
pub fn get() -> &'static Runtime {
    let current = RUNTIME.load(Ordering::Acquire);
    if !current.is_null() {
        // SAFETY: published pointers come from `Box::into_raw` and are never freed.
        return unsafe { &*current };
    }
    start()
}

#[cold]
fn start() -> &'static Runtime {
    AT_FORK.call_once(|| {
        // SAFETY: registers a handler that only stores to an atomic, which is
        // async-signal-safe as a fork handler must be.
        unsafe { libc::pthread_atfork(None, None, Some(forget_in_child)) };
    });
    let fresh = Box::into_raw(Box::new(build()));
    match RUNTIME.compare_exchange(ptr::null_mut(), fresh, Ordering::AcqRel, Ordering::Acquire) {
        // SAFETY: `fresh` was just leaked from a box and is now published for good.
        Ok(_) => unsafe { &*fresh },
        Err(winner) => {
            // Another thread started one first; ours was never shared, so it can go.
            // SAFETY: `fresh` came from `Box::into_raw` above and nothing else saw it.
            drop(unsafe { Box::from_raw(fresh) });
            // SAFETY: published pointers come from `Box::into_raw` and are never freed.
            unsafe { &*winner }
        }
    }
}

fn build() -> Runtime {
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
}

/// `fork()` handler run in the child: the next `get()` builds the child's runtime.
extern "C" fn forget_in_child() {
    RUNTIME.store(ptr::null_mut(), Ordering::Release);
}

/// Runs `future` to completion on the calling thread, driving the runtime meanwhile.
pub fn block_on<F: Future>(future: F) -> F::Output {
    get().block_on(future)
}
