//! The response body type: a buffer for the common case (no allocation beyond the
//! bytes themselves), or a stream of chunks for files and streaming responses.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Frame, SizeHint};

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

    /// A body streamed from `inner`.
    pub fn stream<B>(inner: B) -> Self
    where
        B: hyper::body::Body<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        Body::Stream(UnsyncBoxBody::new(inner))
    }
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
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
