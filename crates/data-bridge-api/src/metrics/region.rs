//! The memory the metrics live in, so that `/metrics` can answer for every worker of a
//! supervisor at once: a file the supervisor creates and every worker maps shared
//! (`MAP_SHARED`), or a private anonymous mapping of the same layout for a server
//! running alone.
//!
//! ```text
//! 0       restarts (written by the supervisor) | arena bytes used | newest series
//! 64      MAX_SLOTS slots of 64 bytes: one per live worker (its gauges)
//! ARENA   series, each published once and never freed:
//!         next | kind, method, status, slot | label length, value count | values | label
//! ```
//!
//! Series are appended lock-free (a `fetch_add` reserves the bytes, a compare-and-swap
//! links the entry into a list), so a worker killed at any point leaves at worst an
//! unreachable entry. A worker takes a free slot when it starts and adopts the series
//! that slot's previous workers left, so counters carry on where a dead worker stopped
//! instead of going backwards. The supervisor frees a dead worker's slot by zeroing its
//! gauges and then its pid (`shared_metrics.py` mirrors this layout).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

/// Worker slots in a region; a worker finding none free keeps private metrics.
pub const MAX_SLOTS: usize = 256;
const SLOT_BYTES: usize = 64;
const SLOTS_AT: usize = 64;
const ARENA_AT: usize = SLOTS_AT + MAX_SLOTS * SLOT_BYTES;
const ENTRY_HEAD: usize = 24;
/// Size of a private region (reserved, not committed, until series are written).
const PRIVATE_BYTES: usize = 16 << 20;

const RESTARTS: usize = 0;
const USED: usize = 8;
const NEWEST: usize = 16;

/// The words of a worker's slot, in order.
#[derive(Clone, Copy)]
pub enum Slot {
    /// The worker's pid; 0 when the slot is free.
    Pid = 0,
    /// Requests being answered (a signed count).
    InFlight = 1,
    /// The last measured loop lag, in nanoseconds.
    LagNanos = 2,
    /// When the outstanding loop probe was due (`CLOCK_MONOTONIC` ns), or 0.
    ProbeDue = 3,
    /// Python handlers queued or running, as last published.
    QueueDepth = 4,
    /// Access log lines dropped by this slot's workers so far (a counter).
    LogDropped = 5,
}

/// What a series counts.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum Kind {
    /// One counter: requests of a method and status on a route.
    Requests = 1,
    /// A route's latency histogram: bucket counts then the sum in nanoseconds.
    Latency = 2,
}

/// A series as read back from the region.
pub struct Series<'a> {
    /// What it counts.
    pub kind: Kind,
    /// Index of the method (see `metrics.rs`).
    pub method: u8,
    /// Status code (for [`Kind::Requests`]).
    pub status: u16,
    /// The slot of the workers that wrote it.
    pub slot: u32,
    /// The route template.
    pub label: &'a str,
    /// Offset of its first value word.
    pub values_at: usize,
    /// Number of value words.
    pub values: usize,
}

/// A mapping holding the metrics of one or more workers.
pub struct Region {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is only accessed through atomics and through label bytes written
// once before the entry holding them is published (release) and read after (acquire).
unsafe impl Send for Region {}
// SAFETY: see `Send`.
unsafe impl Sync for Region {}

impl Region {
    /// A private region for a server without a supervisor.
    pub fn private() -> std::io::Result<Region> {
        Self::map(None, PRIVATE_BYTES)
    }

    /// The region in `file`, shared with every process that maps it.
    pub fn shared(file: &File) -> std::io::Result<Region> {
        let len = usize::try_from(file.metadata()?.len()).unwrap_or(0);
        if len < ARENA_AT + 4096 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the shared metrics file is too small",
            ));
        }
        Self::map(Some(file), len)
    }

    fn map(file: Option<&File>, len: usize) -> std::io::Result<Region> {
        let (flags, fd) = match file {
            Some(file) => (libc::MAP_SHARED, file.as_raw_fd()),
            None => (
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
            ),
        };
        // SAFETY: a fresh mapping chosen by the kernel; nothing else refers to it yet.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or_else(std::io::Error::last_os_error)?;
        Ok(Region { base, len })
    }

    /// The word at `offset` (8-aligned, inside the region; anything else gets a spare
    /// word that nothing reads).
    pub fn word(&self, offset: usize) -> &AtomicU64 {
        static SPARE: AtomicU64 = AtomicU64::new(0);
        if offset % 8 != 0 || offset.saturating_add(8) > self.len {
            return &SPARE;
        }
        // SAFETY: aligned and inside the mapping (checked above), which lives as long
        // as `self`; every process touches these words only atomically.
        unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// The restart count the supervisor keeps at offset 0.
    pub fn restarts(&self) -> u64 {
        self.word(RESTARTS).load(Ordering::Relaxed)
    }

    fn slot_at(slot: usize, field: Slot) -> usize {
        SLOTS_AT + slot * SLOT_BYTES + field as usize * 8
    }

    /// Word `field` of slot `slot` (below [`MAX_SLOTS`]).
    pub fn slot(&self, slot: usize, field: Slot) -> &AtomicU64 {
        self.word(Self::slot_at(slot.min(MAX_SLOTS - 1), field))
    }

    /// Takes the first free slot for the process `pid`, resetting its gauges.
    pub fn claim(&self, pid: u64) -> Option<usize> {
        let slot = (0..MAX_SLOTS).find(|&i| {
            self.slot(i, Slot::Pid)
                .compare_exchange(0, pid, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        })?;
        for field in [
            Slot::InFlight,
            Slot::LagNanos,
            Slot::ProbeDue,
            Slot::QueueDepth,
        ] {
            self.slot(slot, field).store(0, Ordering::Relaxed);
        }
        Some(slot)
    }

    /// Slots whose worker is alive.
    pub fn live_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_SLOTS).filter(|&i| self.slot(i, Slot::Pid).load(Ordering::Acquire) != 0)
    }

    /// Appends a series with `values` zeroed words; returns the offset of the first
    /// one, or `None` when the region is full.
    pub fn append(
        &self,
        kind: Kind,
        method: u8,
        status: u16,
        slot: u32,
        label: &str,
        values: usize,
    ) -> Option<usize> {
        let label_words = label.len().div_ceil(8);
        let bytes = ENTRY_HEAD + 8 * (values + label_words);
        let used = self
            .word(USED)
            .fetch_add(u64::try_from(bytes).ok()?, Ordering::Relaxed);
        let at = ARENA_AT.checked_add(usize::try_from(used).ok()?)?;
        if at.checked_add(bytes)? > self.len {
            return None;
        }
        let key = u64::from(kind as u8)
            | u64::from(method) << 8
            | u64::from(status) << 16
            | u64::from(slot) << 32;
        self.word(at + 8).store(key, Ordering::Relaxed);
        let sizes = u64::try_from(label.len()).ok()? | u64::try_from(values).ok()? << 32;
        self.word(at + 16).store(sizes, Ordering::Relaxed);
        let label_at = at + ENTRY_HEAD + 8 * values;
        // SAFETY: `label_at..label_at + label.len()` lies inside the bytes reserved
        // above, which no other process writes or reads until the entry is published.
        unsafe {
            std::ptr::copy_nonoverlapping(
                label.as_ptr(),
                self.base.as_ptr().add(label_at),
                label.len(),
            );
        }
        let newest = self.word(NEWEST);
        let mut head = newest.load(Ordering::Acquire);
        loop {
            self.word(at).store(head, Ordering::Relaxed);
            match newest.compare_exchange_weak(
                head,
                u64::try_from(at).ok()?,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(at + ENTRY_HEAD),
                Err(now) => head = now,
            }
        }
    }

    /// Every published series, newest first. Entries that do not fit the region
    /// (a corrupted file) end the walk.
    pub fn series(&self) -> impl Iterator<Item = Series<'_>> + '_ {
        let mut next = self.word(NEWEST).load(Ordering::Acquire);
        let mut budget = self.len / ENTRY_HEAD;
        std::iter::from_fn(move || {
            budget = budget.checked_sub(1)?;
            let at = usize::try_from(next).ok()?;
            if at < ARENA_AT || at % 8 != 0 || at + ENTRY_HEAD > self.len {
                return None;
            }
            next = self.word(at).load(Ordering::Acquire);
            let key = self.word(at + 8).load(Ordering::Relaxed);
            let sizes = self.word(at + 16).load(Ordering::Relaxed);
            let label_len = usize::try_from(sizes & 0xffff_ffff).ok()?;
            let values = usize::try_from(sizes >> 32).ok()?;
            let label_at = at + ENTRY_HEAD + 8 * values;
            if label_at.checked_add(label_len)? > self.len {
                return None;
            }
            // SAFETY: inside the mapping (checked above), written before the entry was
            // published and never written again.
            let bytes =
                unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(label_at), label_len) };
            let kind = match key & 0xff {
                1 => Kind::Requests,
                _ => Kind::Latency,
            };
            Some(Series {
                kind,
                method: ((key >> 8) & 0xff) as u8,
                status: ((key >> 16) & 0xffff) as u16,
                slot: (key >> 32) as u32,
                label: std::str::from_utf8(bytes).unwrap_or("<invalid>"),
                values_at: at + ENTRY_HEAD,
                values,
            })
        })
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `map`, unmapped once; nothing borrowed from it
        // outlives `self`.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the same clock in every process, unlike
/// `Instant`'s opaque values.
pub fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    u64::try_from(ts.tv_sec)
        .unwrap_or(0)
        .saturating_mul(1_000_000_000)
        .saturating_add(u64::try_from(ts.tv_nsec).unwrap_or(0))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_read_back_newest_first() -> std::io::Result<()> {
        let region = Region::private()?;
        let a = region.append(Kind::Requests, 0, 200, 3, "/a", 1);
        let b = region.append(Kind::Latency, 0, 0, 3, "/items/{id}", 14);
        let (Some(a), Some(b)) = (a, b) else {
            panic!("append failed");
        };
        region.word(a).fetch_add(5, Ordering::Relaxed);
        let found: Vec<_> = region
            .series()
            .map(|s| (s.kind, s.label.to_owned(), s.values_at, s.values, s.slot))
            .collect();
        assert_eq!(
            found,
            vec![
                (Kind::Latency, "/items/{id}".to_owned(), b, 14, 3),
                (Kind::Requests, "/a".to_owned(), a, 1, 3),
            ]
        );
        assert_eq!(region.word(a).load(Ordering::Relaxed), 5);
        Ok(())
    }

    #[test]
    fn slots_are_claimed_once() -> std::io::Result<()> {
        let region = Region::private()?;
        assert_eq!(region.claim(10), Some(0));
        assert_eq!(region.claim(11), Some(1));
        region.slot(0, Slot::Pid).store(0, Ordering::Release);
        assert_eq!(region.claim(12), Some(0));
        assert_eq!(region.live_slots().count(), 2);
        Ok(())
    }

    #[test]
    fn a_full_region_refuses_series() -> std::io::Result<()> {
        let region = Region::private()?;
        assert!(region
            .append(Kind::Requests, 0, 200, 0, "/", PRIVATE_BYTES / 8)
            .is_none());
        Ok(())
    }
}
