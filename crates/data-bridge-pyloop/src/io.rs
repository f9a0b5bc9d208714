//! The loop's I/O registry: every source whose readiness Tokio reports to the loop,
//! and the level-triggered selector behind `add_reader`/`add_writer`.
//!
//! Each source gets a token (slab key + generation) and a waker that pushes the token
//! into the loop's queue; Tokio's reactor fires the waker when the descriptor becomes
//! ready, and the loop dispatches the source on its next tick. A token that outlives
//! its source (the source was removed and the slot reused) no longer matches and is
//! ignored.
//!
//! `add_reader` must behave like asyncio's: the callback runs on every iteration while
//! the descriptor stays readable, and never before it is. Tokio's readiness is edge
//! triggered, so user descriptors live in a private level-triggered epoll instance whose
//! own descriptor is registered with Tokio; after it reports events it is checked again
//! on the next tick until it reports none.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use pyo3::prelude::*;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use crate::core::LoopCore;
use crate::errors::LoopError;
use crate::handle::Handle;
use crate::runtime;
use crate::transports::datagram::DatagramTransport;
use crate::transports::stream::StreamTransport;
use crate::wake::{IoWaker, Shared};

/// Something the loop dispatches when Tokio reports it ready.
pub(crate) enum Source {
    /// The level-triggered selector for `add_reader`/`add_writer`.
    Selector,
    /// A socket transport.
    Stream(Py<StreamTransport>),
    /// A datagram transport.
    Datagram(Py<DatagramTransport>),
    /// A slot taken by a source that is still being set up.
    Reserved,
}

impl Source {
    fn clone_ref(&self, py: Python<'_>) -> Source {
        match self {
            Source::Selector => Source::Selector,
            Source::Stream(t) => Source::Stream(t.clone_ref(py)),
            Source::Datagram(t) => Source::Datagram(t.clone_ref(py)),
            Source::Reserved => Source::Reserved,
        }
    }
}

struct Entry {
    generation: u32,
    source: Source,
}

/// The sources registered with one loop.
#[derive(Default)]
pub(crate) struct Registry {
    slab: slab::Slab<Entry>,
    generation: u32,
    selector: Option<Selector>,
    /// Tokens to dispatch on the next tick without waiting for a wake-up.
    recheck: Vec<u64>,
    /// Descriptors owned by transports, which `add_reader` must refuse.
    transport_fds: HashMap<RawFd, Py<PyAny>>,
}

fn pack(key: usize, generation: u32) -> u64 {
    ((generation as u64) << 32) | key as u64
}

fn unpack(token: u64) -> (usize, u32) {
    ((token & 0xffff_ffff) as usize, (token >> 32) as u32)
}

/// A waker that reports `token` to the loop owning `shared`.
pub(crate) fn io_waker(shared: &Arc<Shared>, token: u64) -> Waker {
    Waker::from(Arc::new(IoWaker {
        token,
        shared: Arc::downgrade(shared),
    }))
}

impl Registry {
    /// Adds a source and returns its token.
    pub(crate) fn insert(&mut self, source: Source) -> u64 {
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        let key = self.slab.insert(Entry { generation, source });
        pack(key, generation)
    }

    /// Puts `source` in the slot of `token` (taken earlier as `Reserved`).
    pub(crate) fn fill(&mut self, token: u64, source: Source) {
        let (key, generation) = unpack(token);
        if let Some(e) = self.slab.get_mut(key) {
            if e.generation == generation {
                e.source = source;
            }
        }
    }

    /// Removes a source; returns it so the caller can release it outside the lock.
    pub(crate) fn remove(&mut self, token: u64) -> Option<Source> {
        let (key, generation) = unpack(token);
        match self.slab.get(key) {
            Some(e) if e.generation == generation => Some(self.slab.remove(key).source),
            _ => None,
        }
    }

    fn lookup(&self, py: Python<'_>, token: u64) -> Option<Source> {
        let (key, generation) = unpack(token);
        self.slab
            .get(key)
            .filter(|e| e.generation == generation)
            .map(|e| e.source.clone_ref(py))
    }

    /// Asks for `token` to be dispatched on the next tick even without a wake-up.
    pub(crate) fn recheck(&mut self, token: u64) {
        self.recheck.push(token);
    }

    /// Whether some source must be looked at on the next tick.
    pub(crate) fn needs_recheck(&self) -> bool {
        !self.recheck.is_empty()
    }

    /// Sources whose readiness must be polled on every tick.
    pub(crate) fn active_sources(&self) -> usize {
        let selector_active = self.selector.as_ref().is_some_and(|s| s.active > 0);
        let others = self.slab.len() - usize::from(self.selector.is_some());
        others + usize::from(selector_active)
    }

    /// Records that a transport owns `fd`.
    pub(crate) fn claim_fd(&mut self, fd: RawFd, transport: Py<PyAny>) -> Result<(), LoopError> {
        if self.transport_fds.contains_key(&fd)
            || self
                .selector
                .as_ref()
                .is_some_and(|s| s.fds.contains_key(&fd))
        {
            return Err(LoopError::FdInUse(fd));
        }
        self.transport_fds.insert(fd, transport);
        Ok(())
    }

    /// Releases a descriptor claimed by a transport.
    pub(crate) fn release_fd(&mut self, fd: RawFd) -> Option<Py<PyAny>> {
        self.transport_fds.remove(&fd)
    }

    /// The transport using `fd`, if any.
    pub(crate) fn fd_owner(&self, py: Python<'_>, fd: RawFd) -> Option<Py<PyAny>> {
        self.transport_fds.get(&fd).map(|t| t.clone_ref(py))
    }

    /// Takes every source out (on close).
    pub(crate) fn drain(&mut self) -> Vec<Source> {
        self.recheck.clear();
        self.selector = None;
        self.transport_fds.clear();
        self.slab.drain().map(|e| e.source).collect()
    }

    /// Closes the transports and servers of a closed loop.
    pub(crate) fn close_all(py: Python<'_>, sources: Vec<Source>) {
        for source in sources {
            match source {
                Source::Stream(t) => StreamTransport::loop_closed(t.bind(py)),
                Source::Datagram(t) => DatagramTransport::loop_closed(t.bind(py)),
                Source::Selector | Source::Reserved => {}
            }
        }
    }

    /// Dispatches every source reported ready since the last tick.
    /// Dispatches the sources Tokio reported: transports handle their readiness at once,
    /// and the callbacks of ready `add_reader`/`add_writer` descriptors are appended to
    /// `callbacks` for the caller to run in this tick.
    pub(crate) fn dispatch(
        lp: &Bound<'_, LoopCore>,
        callbacks: &mut Vec<Py<Handle>>,
    ) -> PyResult<()> {
        let py = lp.py();
        let this = lp.get();
        let mut tokens = Vec::new();
        this.shared.take_io(&mut tokens);
        {
            let mut st = this.state.lock();
            tokens.append(&mut st.io.recheck);
        }
        for token in tokens {
            let source = this.state.lock().io.lookup(py, token);
            match source {
                Some(Source::Selector) => Selector::dispatch(this, py, callbacks),
                Some(Source::Stream(t)) => StreamTransport::on_ready(t.bind(py))?,
                Some(Source::Datagram(t)) => DatagramTransport::on_ready(t.bind(py))?,
                Some(Source::Reserved) | None => {}
            }
        }
        Ok(())
    }

    /// Refreshes the loop's count of sources that need polling every tick.
    pub(crate) fn publish_count(&self, lp: &LoopCore) {
        lp.io_sources
            .store(self.active_sources(), std::sync::atomic::Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Watch {
    reader: Option<Py<Handle>>,
    writer: Option<Py<Handle>>,
    passive: bool,
    /// The object (not an int) first registered for the descriptor: once it is closed
    /// its `fileno()` is -1 and removal finds the descriptor through it, as asyncio's
    /// selector does.
    fileobj: Option<Py<PyAny>>,
}

impl Watch {
    fn events(&self) -> u32 {
        let mut ev = 0;
        if self.reader.is_some() {
            ev |= libc::EPOLLIN as u32;
        }
        if self.writer.is_some() {
            ev |= libc::EPOLLOUT as u32;
        }
        ev
    }
}

/// A private level-triggered epoll instance for user-registered descriptors.
struct Selector {
    epoll: AsyncFd<OwnedFd>,
    token: u64,
    waker: Waker,
    fds: HashMap<RawFd, Watch>,
    /// Descriptors that are not `passive` (the signal wake-up descriptor is).
    active: usize,
}

impl Selector {
    fn create(registry: &mut Registry, shared: &Arc<Shared>) -> Result<(), LoopError> {
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let raw = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        let epoll = {
            let _guard = runtime::get().enter();
            // SAFETY: the AsyncFd owns the epoll descriptor, so it stays open for as
            // long as the registration exists.
            unsafe { AsyncFd::register_with_interest(owned, Interest::READABLE) }
                .map_err(|e| e.into_parts().1)?
        };
        let token = registry.insert(Source::Selector);
        registry.selector = Some(Selector {
            epoll,
            token,
            waker: io_waker(shared, token),
            fds: HashMap::new(),
            active: 0,
        });
        // Arm the waker so the first readiness is reported.
        registry.recheck(token);
        Ok(())
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32) -> std::io::Result<()> {
        let mut ev = libc::epoll_event {
            events,
            u64: fd as u64,
        };
        // SAFETY: the epoll descriptor is live; `ev` is a valid event struct.
        let rc = unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut ev) };
        if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Drains the private epoll without blocking and collects the callbacks of ready
    /// descriptors, like asyncio's `_process_events`.
    fn dispatch(lp: &LoopCore, py: Python<'_>, callbacks: &mut Vec<Py<Handle>>) {
        let mut st = lp.state.lock();
        let st = &mut *st;
        let Some(sel) = st.io.selector.as_mut() else {
            return;
        };
        let mut cx = Context::from_waker(&sel.waker);
        let mut events: [libc::epoll_event; 64] = [libc::epoll_event { events: 0, u64: 0 }; 64];
        loop {
            let mut guard = match sel.epoll.poll_read_ready(&mut cx) {
                Poll::Ready(Ok(g)) => g,
                Poll::Ready(Err(_)) | Poll::Pending => return,
            };
            // SAFETY: valid epoll descriptor and a buffer of 64 events.
            let n = unsafe {
                libc::epoll_wait(guard.get_inner().as_raw_fd(), events.as_mut_ptr(), 64, 0)
            };
            if n <= 0 {
                guard.clear_ready();
                continue;
            }
            for ev in &events[..n as usize] {
                let fd = ev.u64 as RawFd;
                let Some(watch) = sel.fds.get(&fd) else {
                    continue;
                };
                let flags = ev.events;
                let err = (libc::EPOLLHUP | libc::EPOLLERR) as u32;
                if flags & (libc::EPOLLIN as u32 | err) != 0 {
                    if let Some(h) = &watch.reader {
                        callbacks.push(h.clone_ref(py));
                    }
                }
                if flags & (libc::EPOLLOUT as u32 | err) != 0 {
                    if let Some(h) = &watch.writer {
                        callbacks.push(h.clone_ref(py));
                    }
                }
            }
            // Level-triggered: look again next tick in case the callbacks left data.
            let token = sel.token;
            st.io.recheck(token);
            return;
        }
    }
}

/// Which side of a descriptor a callback watches.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// `add_reader`.
    Read,
    /// `add_writer`.
    Write,
}

impl Registry {
    /// Sets the reader or writer callback of `fd`; returns the one it replaces.
    /// `fileobj` is the object the caller passed, when it was not a bare descriptor.
    pub(crate) fn watch(
        &mut self,
        shared: &Arc<Shared>,
        fd: RawFd,
        side: Side,
        handle: Py<Handle>,
        passive: bool,
        fileobj: Option<Py<PyAny>>,
    ) -> Result<Option<Py<Handle>>, LoopError> {
        if self.selector.is_none() {
            Selector::create(self, shared)?;
        }
        let Some(sel) = self.selector.as_mut() else {
            return Err(LoopError::Closed);
        };
        let existed = sel.fds.contains_key(&fd);
        let watch = sel.fds.entry(fd).or_default();
        let old_events = watch.events();
        let previous = match side {
            Side::Read => watch.reader.replace(handle),
            Side::Write => watch.writer.replace(handle),
        };
        if !existed {
            watch.passive = passive;
            watch.fileobj = fileobj;
        }
        let new_events = watch.events();
        let counts = !watch.passive;
        let op = if existed && old_events != 0 {
            libc::EPOLL_CTL_MOD
        } else {
            libc::EPOLL_CTL_ADD
        };
        if let Err(e) = sel.ctl(op, fd, new_events) {
            // Undo so the table matches what epoll watches.
            let watch = sel.fds.entry(fd).or_default();
            let _undone = match side {
                Side::Read => std::mem::replace(&mut watch.reader, previous),
                Side::Write => std::mem::replace(&mut watch.writer, previous),
            };
            if watch.events() == 0 {
                sel.fds.remove(&fd);
            }
            return Err(e.into());
        }
        if !existed && counts {
            sel.active += 1;
        }
        Ok(previous)
    }

    /// The descriptor `fileobj` was registered under (by identity), for an object that
    /// no longer knows its own descriptor because it was closed.
    pub(crate) fn watched_fd_of(&self, fileobj: &Bound<'_, PyAny>) -> Option<RawFd> {
        let sel = self.selector.as_ref()?;
        sel.fds.iter().find_map(|(fd, watch)| {
            watch
                .fileobj
                .as_ref()
                .filter(|obj| obj.as_ptr() == fileobj.as_ptr())
                .map(|_| *fd)
        })
    }

    /// Removes the reader or writer callback of `fd`; returns it if there was one.
    pub(crate) fn unwatch(&mut self, fd: RawFd, side: Side) -> Option<Py<Handle>> {
        let sel = self.selector.as_mut()?;
        let watch = sel.fds.get_mut(&fd)?;
        let previous = match side {
            Side::Read => watch.reader.take(),
            Side::Write => watch.writer.take(),
        };
        previous.as_ref()?;
        let events = watch.events();
        if events == 0 {
            let passive = watch.passive;
            sel.fds.remove(&fd);
            if !passive {
                sel.active -= 1;
            }
            // The descriptor may already be closed; epoll then forgot it by itself.
            let _ = sel.ctl(libc::EPOLL_CTL_DEL, fd, 0);
        } else {
            let _ = sel.ctl(libc::EPOLL_CTL_MOD, fd, events);
        }
        previous
    }
}

#[cfg(test)]
mod tests {
    use super::{pack, unpack};

    #[test]
    fn tokens_round_trip() {
        for (key, generation) in [
            (0usize, 0u32),
            (1, 1),
            (12345, u32::MAX),
            (u32::MAX as usize, 7),
        ] {
            assert_eq!(unpack(pack(key, generation)), (key, generation));
        }
    }
}
