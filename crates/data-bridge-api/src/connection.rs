//! What bounds one client connection in time, below Hyper: the bytes read to tell
//! HTTP/1 from HTTP/2 are replayed to Hyper, a connection on which no request has
//! started or been in flight for the keep-alive timeout is closed (HTTP/1 between
//! requests, HTTP/2 with no open stream), and a write that makes no progress past the
//! write timeout (a client that stopped reading its response) fails the connection.
//!
//! Idleness is about requests, not bytes: pings, SETTINGS frames or a HEADERS frame
//! trickled a byte at a time do not keep an HTTP/2 connection open (Hyper has no
//! header timeout for HTTP/2), nor do the server's own keep-alive pings.
//!
//! A client can also stop taking a response without stalling a single socket write:
//! over HTTP/2 it just never reopens the stream's flow-control window, and Hyper stops
//! asking the body for more. So a streamed body that has handed Hyper a chunk and is
//! not asked for the next one within the write timeout fails the connection too.
//!
//! Requests in flight are counted by [`Activity`]: a request counts from the moment
//! Hyper hands it to the service until its response body has been written or dropped,
//! and an upgraded connection (a WebSocket) counts for as long as it lives, so a
//! handler that takes its time or a quiet event stream is never mistaken for an idle
//! connection. Silence while a request body is read is bounded separately (see
//! [`crate::request_body::TimedIncoming`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::{sleep, Sleep};

use crate::body::{Body, BodyObserver};

/// The first bytes of an HTTP/2 connection (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Reads from `io` until the bytes tell HTTP/1 from a complete HTTP/2 preface, or the
/// client closes. Returns what was read, for [`ConnIo`] to replay; waits on readiness,
/// so a silent client costs nothing until the caller's timeout ends the wait.
pub async fn sniff<T: AsyncRead + Unpin>(io: &mut T) -> io::Result<Bytes> {
    let mut buf = Vec::with_capacity(PREFACE.len());
    while buf.len() < PREFACE.len() && PREFACE.starts_with(&buf) {
        let mut chunk = [0u8; PREFACE.len()];
        let want = PREFACE.len() - buf.len();
        let n = io.read(&mut chunk[..want]).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(Bytes::from(buf))
}

/// The requests of one connection: how many are in flight, and how many have started.
#[derive(Clone, Default)]
pub struct Activity(Arc<Counts>);

#[derive(Default)]
struct Counts {
    in_flight: AtomicUsize,
    started: AtomicUsize,
    /// Streamed bodies holding a chunk Hyper has not come back after.
    waiting: AtomicUsize,
    /// How often a waiting body was asked for more.
    taken: AtomicUsize,
}

impl Activity {
    /// Counts a request until the returned guard is dropped.
    pub fn begin(&self) -> InFlight {
        self.0.started.fetch_add(1, Ordering::AcqRel);
        self.0.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight {
            counts: Some(self.0.clone()),
            handed: false,
        }
    }

    /// `Some(requests started so far)` when none is in flight.
    fn idle_since(&self) -> Option<usize> {
        let started = self.0.started.load(Ordering::Acquire);
        (self.0.in_flight.load(Ordering::Acquire) == 0).then_some(started)
    }

    /// `Some(times a waiting body was asked for more)` while one is waiting.
    fn waiting_since(&self) -> Option<usize> {
        let taken = self.0.taken.load(Ordering::Acquire);
        (self.0.waiting.load(Ordering::Acquire) > 0).then_some(taken)
    }
}

/// One request in flight (see [`Activity::begin`]).
pub struct InFlight {
    counts: Option<Arc<Counts>>,
    /// Its streamed body handed Hyper a chunk and was not asked for more since.
    handed: bool,
}

impl InFlight {
    /// Keeps counting until `resp`'s body is written or dropped; an upgrade (101)
    /// keeps the connection busy for good, since the upgraded protocol now owns it
    /// and keeps its own time.
    pub fn until_sent(mut self, resp: http::Response<Body>) -> http::Response<Body> {
        if resp.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            self.counts = None;
            return resp;
        }
        match resp.body() {
            Body::Full(_) => resp,
            Body::Stream(_) => resp.map(|body| body.observed(self)),
        }
    }
}

impl BodyObserver for InFlight {
    fn sent(&mut self, _len: usize) {
        if let (Some(counts), false) = (&self.counts, self.handed) {
            self.handed = true;
            counts.waiting.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn polled(&mut self) {
        if let (Some(counts), true) = (&self.counts, self.handed) {
            self.handed = false;
            counts.taken.fetch_add(1, Ordering::AcqRel);
            counts.waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(counts) = self.counts.take() {
            if self.handed {
                counts.waiting.fetch_sub(1, Ordering::AcqRel);
            }
            counts.in_flight.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Time limits of a connection.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// How long a connection with no request in flight may stay silent.
    pub keep_alive: Duration,
    /// How long a write may make no progress.
    pub write: Duration,
}

/// A client connection as Hyper sees it (see the module docs).
pub struct ConnIo<T> {
    inner: T,
    replay: Bytes,
    activity: Activity,
    limits: ConnLimits,
    /// Runs while no request is in flight; armed when the `usize`-th request had
    /// started, so a request started since then means the connection was not idle.
    idle_timer: Option<(usize, Pin<Box<Sleep>>)>,
    /// Runs while a streamed body waits for Hyper to take more; keyed like the idle
    /// timer, on how often waiting bodies were asked for more.
    stall_timer: Option<(usize, Pin<Box<Sleep>>)>,
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<T> ConnIo<T> {
    /// `inner`, after `sniffed` (replayed first), watched with `limits`.
    pub fn new(inner: T, sniffed: Bytes, activity: Activity, limits: ConnLimits) -> Self {
        ConnIo {
            inner,
            replay: sniffed,
            activity,
            limits,
            idle_timer: None,
            stall_timer: None,
            write_timer: None,
        }
    }
}

/// Whether the timer in `slot` (armed for `after` if it was not) has run out.
fn expired(slot: &mut Option<Pin<Box<Sleep>>>, after: Duration, cx: &mut Context<'_>) -> bool {
    let timer = slot.get_or_insert_with(|| Box::pin(sleep(after)));
    timer.as_mut().poll(cx).is_ready()
}

/// Whether `slot`'s timer, armed for `after` while `key` stays the same (re-armed when
/// it changes, dropped when there is none), has run out; arranges a wake-up if not.
fn lasted(
    slot: &mut Option<(usize, Pin<Box<Sleep>>)>,
    key: Option<usize>,
    after: Duration,
    cx: &mut Context<'_>,
) -> bool {
    let Some(key) = key else {
        *slot = None;
        return false;
    };
    match slot {
        Some((armed, timer)) if *armed == key => timer.as_mut().poll(cx).is_ready(),
        slot => {
            let mut timer = Box::pin(sleep(after));
            let expired = timer.as_mut().poll(cx).is_ready();
            *slot = Some((key, timer));
            expired
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ConnIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replay.has_remaining() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.replay[..n]);
            this.replay.advance(n);
            return Poll::Ready(Ok(()));
        }
        if let Poll::Ready(result) = Pin::new(&mut this.inner).poll_read(cx, buf) {
            return Poll::Ready(result);
        }
        let (keep_alive, write) = (this.limits.keep_alive, this.limits.write);
        if lasted(
            &mut this.idle_timer,
            this.activity.idle_since(),
            keep_alive,
            cx,
        ) {
            // End of input: Hyper closes the connection as if the client had.
            return Poll::Ready(Ok(()));
        }
        if lasted(
            &mut this.stall_timer,
            this.activity.waiting_since(),
            write,
            cx,
        ) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took none of its response in time",
            )));
        }
        Poll::Pending
    }
}

impl<T: AsyncWrite + Unpin> ConnIo<T> {
    /// `polled`'s outcome, failing the write once it has been pending too long.
    fn bounded<R>(
        &mut self,
        polled: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(r) => {
                self.write_timer = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                if expired(&mut self.write_timer, self.limits.write, cx) {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client did not read its response in time",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ConnIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, data);
        this.bounded(polled, cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.bounded(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.bounded(polled, cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{duplex, AsyncWriteExt};

    use super::*;

    fn limits(ms: u64) -> ConnLimits {
        ConnLimits {
            keep_alive: Duration::from_millis(ms),
            write: Duration::from_millis(ms),
        }
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn sniffing_stops_at_the_first_byte_that_is_not_the_preface() -> io::Result<()> {
        let (mut client, mut server) = duplex(64);
        client.write_all(b"GET / HTTP/1.1\r\n").await?;
        assert_eq!(&sniff(&mut server).await?[..], b"GET / HTTP/1.1\r\n");
        let (mut client, mut server) = duplex(64);
        client.write_all(PREFACE).await?;
        client.write_all(b"more").await?;
        assert_eq!(&sniff(&mut server).await?[..], PREFACE);
        let (client, mut server) = duplex(64);
        drop(client);
        assert!(sniff(&mut server).await?.is_empty());
        Ok(())
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn sniffed_bytes_are_replayed_then_idle_connections_end() -> io::Result<()> {
        let (mut client, server) = duplex(64);
        let activity = Activity::default();
        let mut conn = ConnIo::new(
            server,
            Bytes::from_static(b"GE"),
            activity.clone(),
            limits(50),
        );
        client.write_all(b"T /").await?;
        let mut got = Vec::new();
        let mut buf = [0u8; 8];
        while got.len() < 5 {
            let n = conn.read(&mut buf).await?;
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"GET /");
        // In flight: silence is not idleness.
        let busy = activity.begin();
        assert!(
            tokio::time::timeout(Duration::from_millis(200), conn.read(&mut buf))
                .await
                .is_err()
        );
        drop(busy);
        // Idle: the keep-alive timeout reads as the end of input.
        assert_eq!(conn.read(&mut buf).await?, 0);
        drop(client);
        Ok(())
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn bytes_without_a_request_do_not_keep_a_connection() -> io::Result<()> {
        let (mut client, server) = duplex(1024);
        let activity = Activity::default();
        let mut conn = ConnIo::new(server, Bytes::new(), activity.clone(), limits(100));
        let mut buf = [0u8; 8];
        // A byte every 40 ms, no request ever starting: closed after 100 ms all the same.
        let trickle = tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                if client.write_all(b"x").await.is_err() {
                    break;
                }
            }
        });
        let start = tokio::time::Instant::now();
        while conn.read(&mut buf).await? > 0 {
            assert!(start.elapsed() < Duration::from_millis(500), "never closed");
        }
        assert!(start.elapsed() >= Duration::from_millis(100));
        trickle.abort();
        // A request that starts and ends makes the connection idle afresh.
        let (_client, server) = duplex(64);
        let mut conn = ConnIo::new(server, Bytes::new(), activity.clone(), limits(100));
        let _ = tokio::time::timeout(Duration::from_millis(80), conn.read(&mut buf)).await;
        drop(activity.begin());
        let start = tokio::time::Instant::now();
        assert_eq!(conn.read(&mut buf).await?, 0);
        assert!(start.elapsed() >= Duration::from_millis(100));
        Ok(())
    }

    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_write_the_client_does_not_take_times_out() -> io::Result<()> {
        let (_client, server) = duplex(16);
        let mut conn = ConnIo::new(server, Bytes::new(), Activity::default(), limits(50));
        let err = conn.write_all(&[0u8; 64]).await.err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::TimedOut));
        Ok(())
    }
}
