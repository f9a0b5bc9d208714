//! The loop's timer heap: `call_at`/`call_later` handles ordered by deadline, with
//! ties kept in scheduling order.
//!
//! Cancelled timers stay in the heap until they reach its top, unless they make up
//! most of it, in which case the heap is rebuilt without them (asyncio's rule, which
//! keeps memory bounded when many timeouts are set and cancelled).

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pyo3::prelude::*;

use crate::handle::{Handle, TimerHandle};

/// Heaps smaller than this are never compacted.
const MIN_COMPACT_SIZE: usize = 100;

struct Entry {
    when: f64,
    seq: u64,
    handle: Py<TimerHandle>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    // BinaryHeap is a max-heap; reverse so the earliest deadline is on top.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other
            .when
            .total_cmp(&self.when)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Deadline-ordered timers.
#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Entry>,
    seq: u64,
    cancelled: Arc<AtomicUsize>,
}

impl Timers {
    /// The counter each timer handle bumps when it is cancelled.
    pub fn cancelled_counter(&self) -> Arc<AtomicUsize> {
        self.cancelled.clone()
    }

    /// Adds a timer.
    pub fn push(&mut self, when: f64, handle: Py<TimerHandle>) {
        self.seq += 1;
        self.heap.push(Entry {
            when,
            seq: self.seq,
            handle,
        });
    }

    /// Number of timers in the heap, cancelled ones included.
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether the heap is empty.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Drops cancelled timers (from the top, or all of them when they dominate) and
    /// returns the earliest live deadline. Dropped handles go to `trash`, to be released
    /// once the caller no longer holds the loop's lock (releasing one may run Python code).
    pub fn next_deadline(
        &mut self,
        py: Python<'_>,
        trash: &mut Vec<Py<TimerHandle>>,
    ) -> Option<f64> {
        let cancelled = self.cancelled.load(Ordering::Relaxed);
        if self.heap.len() > MIN_COMPACT_SIZE && cancelled * 2 > self.heap.len() {
            let mut live = Vec::with_capacity(self.heap.len() - cancelled.min(self.heap.len()));
            for e in std::mem::take(&mut self.heap).into_vec() {
                if e.handle.bind(py).as_super().get().is_cancelled() {
                    e.handle.get().unschedule();
                    trash.push(e.handle);
                } else {
                    live.push(e);
                }
            }
            self.heap = BinaryHeap::from(live);
            self.cancelled.store(0, Ordering::Relaxed);
        } else {
            while let Some(top) = self.heap.peek() {
                if !top.handle.bind(py).as_super().get().is_cancelled() {
                    break;
                }
                if let Some(dead) = self.heap.pop() {
                    dead.handle.get().unschedule();
                    trash.push(dead.handle);
                }
                let _ = self
                    .cancelled
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
            }
        }
        self.heap.peek().map(|e| e.when)
    }

    /// Moves every timer due before `end` into `ready`, in deadline order; cancelled
    /// ones go to `trash`.
    pub fn pop_due(
        &mut self,
        py: Python<'_>,
        end: f64,
        ready: &mut impl Extend<Py<Handle>>,
        trash: &mut Vec<Py<TimerHandle>>,
    ) {
        while let Some(top) = self.heap.peek() {
            if top.when >= end {
                break;
            }
            if let Some(entry) = self.heap.pop() {
                entry.handle.get().unschedule();
                if entry.handle.bind(py).as_super().get().is_cancelled() {
                    let _ =
                        self.cancelled
                            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                n.checked_sub(1)
                            });
                    trash.push(entry.handle);
                    continue;
                }
                ready.extend(std::iter::once(
                    entry.handle.into_bound(py).into_super().unbind(),
                ));
            }
        }
    }

    /// Takes every timer out (on `close()`), for the caller to release.
    pub fn drain(&mut self) -> Vec<Py<TimerHandle>> {
        self.cancelled.store(0, Ordering::Relaxed);
        std::mem::take(&mut self.heap)
            .into_vec()
            .into_iter()
            .map(|e| e.handle)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::Handle;
    use pyo3::types::PyTuple;

    fn timer(py: Python<'_>, timers: &Timers, when: f64, tag: i64) -> Py<TimerHandle> {
        let args = PyTuple::new(py, [tag]).map(Bound::unbind).ok();
        let handle = Handle::new(
            py,
            py.None(),
            args.unwrap_or_else(|| PyTuple::empty(py).unbind()),
            None,
        );
        let handle = handle
            .ok()
            .map(|h| TimerHandle::create(py, when, h, timers.cancelled_counter()));
        match handle {
            Some(Ok(t)) => t,
            _ => panic!("cannot make a timer handle"),
        }
    }

    fn tags(py: Python<'_>, ready: &[Py<Handle>]) -> Vec<i64> {
        ready
            .iter()
            .filter_map(|h| h.bind(py).getattr("_args").ok())
            .filter_map(|a| a.get_item(0).ok())
            .filter_map(|v| v.extract::<i64>().ok())
            .collect()
    }

    #[test]
    fn due_timers_come_out_by_deadline_then_insertion_order() {
        Python::initialize();
        Python::attach(|py| {
            let mut timers = Timers::default();
            for (when, tag) in [(3.0, 1), (1.0, 2), (2.0, 3), (1.0, 4), (9.0, 5)] {
                let t = timer(py, &timers, when, tag);
                timers.push(when, t);
            }
            let mut ready = Vec::new();
            let mut trash = Vec::new();
            timers.pop_due(py, 5.0, &mut ready, &mut trash);
            assert_eq!(tags(py, &ready), vec![2, 4, 3, 1]);
            assert_eq!(timers.len(), 1);
            assert_eq!(timers.next_deadline(py, &mut trash), Some(9.0));
        });
    }

    #[test]
    fn cancelled_timers_are_skipped_and_compacted() {
        Python::initialize();
        Python::attach(|py| {
            let mut timers = Timers::default();
            let mut handles = Vec::new();
            for i in 0..300 {
                let t = timer(py, &timers, i as f64, i);
                handles.push(t.clone_ref(py));
                timers.push(i as f64, t);
            }
            for h in handles.iter().take(250) {
                h.bind(py).call_method0("cancel").ok();
            }
            let mut trash = Vec::new();
            // Most of the heap is cancelled: it is rebuilt without them.
            assert_eq!(timers.next_deadline(py, &mut trash), Some(250.0));
            assert_eq!(timers.len(), 50);
            assert_eq!(trash.len(), 250);
        });
    }
}
