//! How work reaches a waiting loop: from other threads (`call_soon_threadsafe`,
//! finished executor jobs, HTTP requests) and from Tokio's reactor (socket readiness).
//!
//! Producers push into a queue and then call [`Shared::notify`]. Only the first
//! notification after the loop last drained its queues wakes it, and waking a loop
//! that is busy running callbacks costs one atomic swap: the loop looks at the queues
//! after every tick anyway. A parked loop is woken through its Tokio waker, which
//! interrupts `epoll_wait` when the waker fires on another thread.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll, Wake};
use std::time::Duration;

use atomic_waker::AtomicWaker;
use parking_lot::Mutex;
use pyo3::prelude::*;

/// Work handed to the loop from outside its own thread.
pub enum Remote {
    /// A Rust closure to run on the loop thread with the GIL held.
    Call(Box<dyn FnOnce(Python<'_>) + Send>),
}

/// State shared between a loop and everything that may wake it.
#[derive(Default)]
pub struct Shared {
    pending: AtomicBool,
    waker: AtomicWaker,
    remote: Mutex<Vec<Remote>>,
    io_ready: Mutex<Vec<u64>>,
}

impl Shared {
    /// Tells the loop there is work; wakes it only if it may be parked.
    pub fn notify(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.waker.wake();
        }
    }

    /// Queues work from any thread and wakes the loop.
    pub fn push_remote(&self, item: Remote) {
        self.remote.lock().push(item);
        self.notify();
    }

    /// Records that the I/O source `token` may be ready and wakes the loop.
    pub fn push_io(&self, token: u64) {
        self.io_ready.lock().push(token);
        self.notify();
    }

    /// Marks the queues as seen; called by the loop right before draining them, so a
    /// push that races with the drain sets the flag again.
    pub fn clear_pending(&self) {
        self.pending.store(false, Ordering::Release);
    }

    /// Whether anything was queued since the last [`Shared::clear_pending`].
    pub fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes the queued cross-thread work (in arrival order) into `out`.
    pub fn take_remote(&self, out: &mut Vec<Remote>) {
        let mut q = self.remote.lock();
        if !q.is_empty() {
            std::mem::swap(&mut *q, out);
        }
    }

    /// Takes the tokens of I/O sources that became ready into `out`.
    pub fn take_io(&self, out: &mut Vec<u64>) {
        let mut q = self.io_ready.lock();
        if !q.is_empty() {
            std::mem::swap(&mut *q, out);
        }
    }

    /// Waits until notified or until `timeout` passes; `Some(ZERO)` only lets
    /// Tokio poll its reactor and timers once without blocking.
    pub async fn wait(self: &Arc<Self>, timeout: Option<Duration>) {
        match timeout {
            Some(d) if d.is_zero() => tokio::task::yield_now().await,
            Some(d) => {
                let sleep = tokio::time::sleep(d);
                Notified {
                    shared: self,
                    sleep: Some(Box::pin(sleep)),
                }
                .await
            }
            None => {
                Notified {
                    shared: self,
                    sleep: None,
                }
                .await
            }
        }
    }
}

struct Notified<'a> {
    shared: &'a Shared,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.is_pending() {
            return Poll::Ready(());
        }
        self.shared.waker.register(cx.waker());
        if self.shared.is_pending() {
            return Poll::Ready(());
        }
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

/// The waker given to Tokio for one I/O source: readiness pushes the source's token.
pub struct IoWaker {
    /// Slab key and generation of the source, packed by the registry.
    pub token: u64,
    /// Weak so a dropped loop is not kept alive by a stale registration.
    pub shared: Weak<Shared>,
}

impl Wake for IoWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if let Some(shared) = self.shared.upgrade() {
            shared.push_io(self.token);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn notify_wakes_only_once_until_cleared() {
        let shared = Shared::default();
        assert!(!shared.is_pending());
        shared.notify();
        shared.notify();
        assert!(shared.is_pending());
        shared.clear_pending();
        assert!(!shared.is_pending());
    }

    #[test]
    fn queued_work_is_taken_in_order() {
        let shared = Shared::default();
        shared.push_io(3);
        shared.push_io(7);
        let mut out = Vec::new();
        shared.take_io(&mut out);
        assert_eq!(out, vec![3, 7]);
        let mut again = Vec::new();
        shared.take_io(&mut again);
        assert!(again.is_empty());
    }

    #[test]
    fn wait_returns_when_another_thread_notifies() {
        let shared = Arc::new(Shared::default());
        let other = shared.clone();
        let started = Instant::now();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            other.notify();
        });
        crate::runtime::block_on(shared.wait(Some(Duration::from_secs(10))));
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(shared.is_pending());
        t.join().ok();
    }

    #[test]
    fn wait_times_out_without_notification() {
        let shared = Arc::new(Shared::default());
        let started = Instant::now();
        crate::runtime::block_on(shared.wait(Some(Duration::from_millis(30))));
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(!shared.is_pending());
    }
}
