//! Response compression, as Starlette's `GZipMiddleware` (and `BrotliMiddleware`,
//! which prefers Brotli when the client accepts it and falls back to gzip).
//!
//! A response is left alone when it already has a `Content-Encoding`, is a `206`, has
//! an excluded content type (already compressed formats, `text/event-stream`), or has
//! a body known to be under `minimum_size`. Otherwise it gets `Vary: Accept-Encoding`
//! and, when the client accepts an encoding, is compressed: a whole body at once
//! (large ones on Tokio's blocking pool, off the connection's task), with its
//! `Content-Length` fixed; a streamed body chunk by chunk, each chunk flushed so the
//! client sees it without waiting for the next.
//!
//! Why not tower-http's `CompressionLayer`: it compresses a streamed body through
//! async-compression's encoder, which holds the output until its buffer fills or the
//! stream ends (tower-http issue #292, open), so a slow stream would reach the client
//! in one burst at the end. Starlette's exclusions (`text/event-stream`, a `206`, an
//! existing encoding, `minimum_size` on the known length) and the Brotli-first choice
//! of `BrotliMiddleware` would also have to be rebuilt around it as predicates.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use flate2::write::GzEncoder;
use flate2::Compression;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use hyper::body::{Body as _, Frame};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use super::{add_vary, latin1};
use crate::body::{Body, Frames, PollFrame};

/// Brotli's window (`lgwin`), as the `brotli` Python package's default.
const BROTLI_WINDOW: u32 = 22;

/// A content coding the server can produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// `gzip`.
    Gzip,
    /// `br`.
    Brotli,
}

impl Encoding {
    fn token(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
        }
    }
}

/// What `GZipMiddleware` or `BrotliMiddleware` passes to the server
/// (`data_bridge._native.CompressOptions`), every option given (the Python classes
/// hold the defaults). Building one checks the codings.
#[pyclass(module = "data_bridge._native", frozen, get_all, from_py_object)]
#[derive(Clone, Debug)]
pub struct CompressOptions {
    /// The content codings to use, preferred first: `"gzip"` and `"br"`.
    pub encodings: Vec<String>,
    /// Bodies known to be smaller are left alone.
    pub minimum_size: usize,
    /// Whole bodies this large are compressed off the connection's task.
    pub thread_minimum_size: usize,
    /// zlib's level, 0-9 (below 0: zlib's default, 6).
    pub gzip_level: i32,
    /// Brotli's quality, 0-11.
    pub brotli_quality: u32,
    /// Media types left alone (`major/*` wildcards allowed; parameters ignored).
    pub exclude_content_types: Vec<String>,
}

#[pymethods]
impl CompressOptions {
    #[new]
    #[pyo3(signature = (*, encodings, minimum_size, thread_minimum_size, gzip_level, brotli_quality, exclude_content_types))]
    fn py_new(
        encodings: Vec<String>,
        minimum_size: usize,
        thread_minimum_size: usize,
        gzip_level: i32,
        brotli_quality: u32,
        exclude_content_types: Vec<String>,
    ) -> PyResult<Self> {
        let options = CompressOptions {
            encodings,
            minimum_size,
            thread_minimum_size,
            gzip_level,
            brotli_quality,
            exclude_content_types,
        };
        Compress::from_options(&options)?;
        Ok(options)
    }
}

/// A configured compression layer.
pub struct Compress {
    /// What may be used, preferred first.
    encodings: Vec<Encoding>,
    minimum_size: usize,
    /// Whole bodies this large are compressed off the connection's task.
    thread_minimum_size: usize,
    gzip_level: u32,
    brotli_quality: u32,
    /// Lower-cased media types, `major/*` wildcards included.
    exclude: Vec<String>,
}

/// Whether `accept` (an `Accept-Encoding` value) lists `token` with a non-zero q.
fn accepts_token(accept: &str, token: &str) -> bool {
    accept.split(',').any(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        name.eq_ignore_ascii_case(token) && !refused
    })
}

impl Compress {
    /// A layer using `encodings` (preferred first), as `GZipMiddleware` does with
    /// `[Gzip]`.
    pub fn new(
        encodings: Vec<Encoding>,
        minimum_size: usize,
        thread_minimum_size: usize,
        gzip_level: u32,
        brotli_quality: u32,
        exclude: &[String],
    ) -> Compress {
        Compress {
            encodings,
            minimum_size,
            thread_minimum_size,
            gzip_level: gzip_level.min(9),
            brotli_quality: brotli_quality.min(11),
            exclude: exclude
                .iter()
                .map(|t| t.split(';').next().unwrap_or("").trim().to_lowercase())
                .collect(),
        }
    }

    /// The layer for the options `GZipMiddleware` or `BrotliMiddleware` passed.
    pub fn from_options(options: &CompressOptions) -> PyResult<Compress> {
        let encodings = options
            .encodings
            .iter()
            .map(|n| match n.as_str() {
                "gzip" => Ok(Encoding::Gzip),
                "br" => Ok(Encoding::Brotli),
                other => Err(PyValueError::new_err(format!(
                    "unknown content coding {other:?}"
                ))),
            })
            .collect::<PyResult<_>>()?;
        // zlib's -1 is its default level.
        let level = if options.gzip_level < 0 {
            6
        } else {
            options.gzip_level.unsigned_abs()
        };
        Ok(Compress::new(
            encodings,
            options.minimum_size,
            options.thread_minimum_size,
            level,
            options.brotli_quality,
            &options.exclude_content_types,
        ))
    }

    /// The coding to use for a request with `headers`. gzip is chosen when
    /// `Accept-Encoding` mentions it at all (as Starlette does); `br` when it is
    /// listed with a non-zero quality.
    pub fn choose(&self, headers: &HeaderMap) -> Option<Encoding> {
        let accept = latin1(headers.get(header::ACCEPT_ENCODING)?);
        self.encodings.iter().copied().find(|e| match e {
            Encoding::Gzip => accept.contains("gzip"),
            Encoding::Brotli => accepts_token(&accept, "br"),
        })
    }

    fn excluded(&self, headers: &HeaderMap) -> bool {
        let Some(ct) = headers.get(header::CONTENT_TYPE) else {
            return false;
        };
        let ct = latin1(ct);
        let media = ct.split(';').next().unwrap_or("").trim().to_lowercase();
        let major = format!("{}/*", media.split('/').next().unwrap_or(""));
        let grpc = media.starts_with("application/grpc+");
        self.exclude
            .iter()
            .any(|e| *e == media || *e == major || (grpc && e == "application/grpc"))
    }

    fn encoder(&self, encoding: Encoding) -> Encoder {
        match encoding {
            Encoding::Gzip => Encoder::Gzip(GzEncoder::new(
                Vec::new(),
                Compression::new(self.gzip_level),
            )),
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                self.brotli_quality,
                BROTLI_WINDOW,
            ))),
        }
    }

    /// Compresses `resp` with `encoding` (or only marks it as varying by
    /// `Accept-Encoding` when the client accepts none) if it qualifies.
    pub async fn apply(&self, encoding: Option<Encoding>, resp: Response<Body>) -> Response<Body> {
        let headers = resp.headers();
        if headers.contains_key(header::CONTENT_ENCODING)
            || resp.status() == StatusCode::PARTIAL_CONTENT
            || self.excluded(headers)
        {
            return resp;
        }
        let (mut parts, body) = resp.into_parts();
        match body {
            Body::Full(bytes) => {
                let bytes = bytes.unwrap_or_default();
                if bytes.len() < self.minimum_size {
                    return Response::from_parts(parts, Body::full(bytes));
                }
                add_vary(&mut parts.headers, "Accept-Encoding");
                let Some(encoding) = encoding else {
                    return Response::from_parts(parts, Body::full(bytes));
                };
                let encoder = self.encoder(encoding);
                let compressed = if bytes.len() >= self.thread_minimum_size {
                    let input = bytes.clone();
                    tokio::task::spawn_blocking(move || encoder.whole(&input))
                        .await
                        .map_err(std::io::Error::other)
                        .and_then(|r| r)
                } else {
                    encoder.whole(&bytes)
                };
                // Compressing into memory only fails if memory does: send it as it is.
                let Ok(compressed) = compressed else {
                    return Response::from_parts(parts, Body::full(bytes));
                };
                parts.headers.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(encoding.token()),
                );
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(compressed.len()));
                Response::from_parts(parts, Body::full(compressed))
            }
            body @ Body::Stream(_) => {
                let known = body.size_hint().exact();
                if known.is_some_and(|n| n < self.minimum_size as u64) {
                    return Response::from_parts(parts, body);
                }
                add_vary(&mut parts.headers, "Accept-Encoding");
                let Some(encoding) = encoding else {
                    return Response::from_parts(parts, body);
                };
                parts.headers.insert(
                    header::CONTENT_ENCODING,
                    HeaderValue::from_static(encoding.token()),
                );
                parts.headers.remove(header::CONTENT_LENGTH);
                let stream = Compressed {
                    inner: body,
                    encoder: Some(self.encoder(encoding)),
                };
                Response::from_parts(parts, Body::stream(stream))
            }
        }
    }
}

/// A compressor writing into memory.
enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    /// `data` compressed and flushed: everything the client needs to decode it so far.
    fn chunk(&mut self, data: &[u8]) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(enc) => {
                enc.write_all(data)?;
                enc.flush()?;
                std::mem::take(enc.get_mut())
            }
            Encoder::Brotli(enc) => {
                enc.write_all(data)?;
                enc.flush()?;
                std::mem::take(enc.get_mut())
            }
        };
        Ok(Bytes::from(out))
    }

    /// The end of the compressed stream.
    fn finish(self) -> std::io::Result<Bytes> {
        Ok(Bytes::from(match self {
            Encoder::Gzip(enc) => enc.finish()?,
            Encoder::Brotli(enc) => enc.into_inner(),
        }))
    }

    /// All of `data`, compressed.
    fn whole(mut self, data: &[u8]) -> std::io::Result<Bytes> {
        match &mut self {
            Encoder::Gzip(enc) => enc.write_all(data)?,
            Encoder::Brotli(enc) => enc.write_all(data)?,
        }
        self.finish()
    }
}

/// A streamed body, compressed as its chunks arrive.
struct Compressed {
    inner: Body,
    /// `None` once the compressed stream has ended.
    encoder: Option<Encoder>,
}

impl Frames for Compressed {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> PollFrame {
        let this = self;
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        let out = encoder.chunk(&data)?;
                        if !out.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(out))));
                        }
                    }
                    // Trailers pass as they are (the server sends none today).
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Poll::Ready(None) => {
                    let Some(encoder) = this.encoder.take() else {
                        return Poll::Ready(None);
                    };
                    return Poll::Ready(Some(Ok(Frame::data(encoder.finish()?))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.encoder.is_none()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use http_body_util::BodyExt;

    use super::*;

    fn gzip() -> Compress {
        Compress::new(
            vec![Encoding::Gzip],
            500,
            1 << 20,
            9,
            4,
            &["text/event-stream".into(), "image/*".into()],
        )
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        out
    }

    fn accepting(value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(value));
        h
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn chooses_what_the_client_accepts() {
        let both = Compress::new(vec![Encoding::Brotli, Encoding::Gzip], 0, 0, 9, 4, &[]);
        assert_eq!(
            both.choose(&accepting("gzip, deflate, br")),
            Some(Encoding::Brotli)
        );
        assert_eq!(
            both.choose(&accepting("gzip, br;q=0")),
            Some(Encoding::Gzip)
        );
        assert_eq!(both.choose(&accepting("identity")), None);
        assert_eq!(both.choose(&HeaderMap::new()), None);
    }

    #[test]
    fn compresses_large_bodies_only() {
        let c = gzip();
        let big = "x".repeat(2048);
        let resp =
            rt().block_on(c.apply(Some(Encoding::Gzip), Response::new(Body::full(big.clone()))));
        assert_eq!(resp.headers()["content-encoding"], "gzip");
        assert_eq!(resp.headers()["vary"], "Accept-Encoding");
        let Body::Full(Some(bytes)) = resp.into_body() else {
            panic!("not a whole body")
        };
        assert_eq!(gunzip(&bytes), big.as_bytes());
        let small = rt().block_on(c.apply(Some(Encoding::Gzip), Response::new(Body::full("hi"))));
        assert!(!small.headers().contains_key("content-encoding"));
        assert!(!small.headers().contains_key("vary"));
    }

    #[test]
    fn leaves_encoded_and_excluded_bodies_alone() {
        let c = gzip();
        for (name, value) in [
            ("content-encoding", "br"),
            ("content-type", "text/event-stream"),
            ("content-type", "image/png"),
        ] {
            let mut resp = Response::new(Body::full("y".repeat(1000)));
            resp.headers_mut()
                .insert(name, HeaderValue::from_static(value));
            let out = rt().block_on(c.apply(Some(Encoding::Gzip), resp));
            assert_ne!(
                out.headers().get("content-encoding").map(|v| v.as_bytes()),
                Some(&b"gzip"[..])
            );
            assert!(!out.headers().contains_key("vary"));
        }
    }

    #[test]
    fn brotli_round_trips() {
        let c = Compress::new(vec![Encoding::Brotli], 10, 0, 9, 5, &[]);
        let text = "brotli ".repeat(100);
        let resp = rt().block_on(c.apply(
            Some(Encoding::Brotli),
            Response::new(Body::full(text.clone())),
        ));
        assert_eq!(resp.headers()["content-encoding"], "br");
        let Body::Full(Some(bytes)) = resp.into_body() else {
            panic!("not a whole body")
        };
        let mut out = Vec::new();
        brotli::Decompressor::new(&bytes[..], 4096)
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, text.as_bytes());
    }

    /// A streamed body of `chunks`.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Frames for Chunks {
        fn poll_frame(&mut self, _cx: &mut Context<'_>) -> PollFrame {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    #[test]
    fn streams_are_compressed_chunk_by_chunk() {
        let c = Compress::new(vec![Encoding::Brotli, Encoding::Gzip], 500, 0, 9, 4, &[]);
        let chunks = Chunks(
            [&b"hello "[..], &b"world"[..]]
                .into_iter()
                .map(Bytes::from_static)
                .collect(),
        );
        let collected = rt().block_on(async {
            let resp = c
                .apply(Some(Encoding::Gzip), Response::new(Body::stream(chunks)))
                .await;
            assert_eq!(resp.headers()["content-encoding"], "gzip");
            resp.into_body().collect().await
        });
        let bytes = collected.unwrap_or_else(|e| panic!("{e}")).to_bytes();
        assert_eq!(gunzip(&bytes), b"hello world");
    }
}
