//! The response body type: a buffer for the common case (no allocation beyond the
//! bytes themselves), or a stream of chunks for files and streaming responses.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body as _, Frame, SizeHint};

/// The error a streamed body may end with; the connection is then closed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body.
pub enum Body {
    /// The whole body at once (taken on the first poll).
    Full(Option<Bytes>),
    /// Chunks produced over time.
    Stream(UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    /// A body of `bytes`.
    pub fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Body::Full((!bytes.is_empty()).then_some(bytes))
    }

    /// An empty body.
    pub fn empty() -> Self {
        Body::Full(None)
    }

    /// This body, reporting to `observer` the size of each data frame the connection
    /// takes; the observer is dropped with the body, that is once the response is
    /// written out or the connection abandoned it.
    pub fn observed<O: BodyObserver>(self, observer: O) -> Self {
        Body::stream(Observed {
            inner: self,
            observer,
        })
    }

    /// A body streamed from `frames`.
    pub fn stream(frames: impl Frames) -> Self {
        Body::Stream(UnsyncBoxBody::new(FramesBody(frames)))
    }
}

/// What polling a body for its next frame gives (as hyper's `Body::poll_frame`).
pub type PollFrame = Poll<Option<Result<Frame<Bytes>, BoxError>>>;

/// A source of body frames (a file read chunk by chunk, a compressor, a stream fed
/// from Python), made a response body by [`Body::stream`]. Sources are `Unpin`, so
/// they are polled through `&mut self` rather than hyper's pinned `Body` methods, and
/// the frame and error types are the server's own.
pub trait Frames: Send + Unpin + 'static {
    /// The next frame, or `None` at the end.
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> PollFrame;

    /// Whether no frame is left, so that hyper can end the response without a poll.
    fn is_end_stream(&self) -> bool {
        false
    }

    /// Bounds on the length still to come.
    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// A [`Frames`] source as a hyper body.
struct FramesBody<F>(F);

impl<F: Frames> hyper::body::Body for FramesBody<F> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> PollFrame {
        self.get_mut().0.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0.size_hint()
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> PollFrame {
        match self.get_mut() {
            Body::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(inner) => Pin::new(inner).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Body::Full(bytes) => bytes.is_none(),
            Body::Stream(inner) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(inner) => inner.size_hint(),
        }
    }
}

/// Watches a body on its way out (see [`Body::observed`]): what happens when the body
/// is finished with belongs in the observer's `Drop`.
pub trait BodyObserver: Send + Unpin + 'static {
    /// The connection took `len` more bytes of the body.
    fn sent(&mut self, _len: usize) {}

    /// The connection asked for more of the body (called before each poll).
    fn polled(&mut self) {}
}

struct Observed<O> {
    inner: Body,
    observer: O,
}

impl<O: BodyObserver> Frames for Observed<O> {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> PollFrame {
        let this = self;
        this.observer.polled();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.observer.sent(data.len());
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
