//! The count of Python work in flight, bounded by `max_pending` (`--limit-concurrency`):
//! handlers queued or running, sync streaming producers, open WebSockets and
//! background tasks not yet finished. Past the limit, new requests and WebSocket
//! handshakes are answered 503 instead of queueing more.
//!
//! Each unit of work holds a [`Slot`] that gives its place back when dropped, so the
//! count follows the work itself (a `def` handler still waiting for a thread, or an
//! `async def` one still unwinding its cancellation, stays counted) rather than the
//! connection that asked for it. Work that has already been answered (a response's
//! background task, the producer of a streamed body) is counted without being refused.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Work in flight and its limit; one per server.
///
/// ```
/// use std::sync::Arc;
/// use data_bridge_api::in_flight::InFlight;
///
/// let work = Arc::new(InFlight::new(1));
/// let slot = work.try_acquire().expect("below the limit");
/// assert!(work.try_acquire().is_none());
/// drop(slot);
/// assert_eq!(work.get(), 0);
/// ```
pub struct InFlight {
    count: AtomicUsize,
    max: usize,
}

impl InFlight {
    /// A counter refusing work past `max` units.
    pub fn new(max: usize) -> Self {
        InFlight {
            count: AtomicUsize::new(0),
            max,
        }
    }

    /// Units of work counted now.
    pub fn get(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// A slot, or `None` if the limit is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Slot> {
        if self.count.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(self.clone()))
    }

    /// A slot even past the limit, for work that cannot be refused any more (its
    /// response is already on its way); it still makes new requests wait their turn.
    pub fn acquire(self: &Arc<Self>) -> Slot {
        self.count.fetch_add(1, Ordering::AcqRel);
        Slot(self.clone())
    }
}

/// One unit of work, counted until dropped.
pub struct Slot(Arc<InFlight>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_limit_until_a_slot_is_given_back() {
        let work = Arc::new(InFlight::new(2));
        let a = work.try_acquire();
        let b = work.try_acquire();
        assert!(a.is_some() && b.is_some());
        assert!(work.try_acquire().is_none());
        assert_eq!(work.get(), 2);
        drop(a);
        assert!(work.try_acquire().is_some());
        assert_eq!(work.get(), 1);
    }

    #[test]
    fn work_already_answered_is_counted_past_the_limit() {
        let work = Arc::new(InFlight::new(0));
        assert!(work.try_acquire().is_none());
        let forced = work.acquire();
        assert_eq!(work.get(), 1);
        drop(forced);
        assert_eq!(work.get(), 0);
    }
}
