//! Files served from Rust: directories mounted with `app.static(...)` (answered
//! without the GIL) and `FileResponse` objects returned by handlers. Both go through
//! [`serve_file`]: the file is opened and checked on Tokio's blocking pool, never on
//! the loop thread; conditional and range requests are decided by
//! [`crate::conditional`]; small files are read at once and larger ones streamed in
//! [`CHUNK`]-sized pieces, each read on the blocking pool as the connection asks for it.
//!
//! A mounted directory only ever serves regular files below its root: the request
//! path is decoded segment by segment and refused if any segment is `..`, `.`,
//! empty, a dotfile (`.env`, `.git`: often secrets left in a web root; only
//! `.well-known`, RFC 8615, is served), or decodes to something containing `/`, `\`
//! or NUL; the joined path is
//! then resolved (symlinks included) and refused unless it is still under the root.
//! Every refusal is a `404`, indistinguishable from a missing file.
//!
//! Why not tower-http's `ServeDir`/`ServeFile`: the same code must also answer a
//! `FileResponse` built by a Python handler (its status, headers and `filename`
//! are Python's), follow Starlette's `StaticFiles` (html mode, every refusal a `404`,
//! dotfiles and symlinks leaving the root refused), and produce this crate's [`Body`]
//! so the access log and metrics observe file responses like any other.

use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};
use hyper::body::{Frame, SizeHint};
use tokio::task::JoinHandle;

use crate::body::{Body, Frames, PollFrame};
use crate::conditional::{decide, Conditions, Decision, Validators};
use crate::errors::ApiError;
use crate::mime;

/// How much of a file is read at once; files up to this size are sent in one piece.
pub const CHUNK: usize = 64 * 1024;

/// A directory mounted at a path prefix (`app.static("/static", "assets")`).
#[derive(Debug)]
pub struct StaticDir {
    prefix: String,
    root: PathBuf,
    html: bool,
}

impl StaticDir {
    /// Mounts `directory` at `prefix` (e.g. `/static`, no trailing slash). With
    /// `html`, a request for a directory serves its `index.html`. Fails if the
    /// directory does not exist.
    pub fn new(prefix: &str, directory: &Path, html: bool) -> io::Result<Self> {
        // Resolved once, so the check that a file lies under the root compares two
        // canonical paths.
        let root = std::fs::canonicalize(directory)?;
        if !root.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", directory.display()),
            ));
        }
        Ok(StaticDir {
            prefix: prefix.trim_end_matches('/').to_owned(),
            root,
            html,
        })
    }

    /// The route template this directory is served under.
    pub fn template(&self) -> String {
        format!("{}/{{path:path}}", self.prefix)
    }

    /// The route of the directory itself (`{prefix}/`).
    pub fn root_template(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// Answers a request for `uri_path` (the raw, still percent-encoded path).
    pub async fn serve(self: Arc<Self>, uri_path: &str, cond: Conditions) -> Response<Body> {
        let Some(rel) = uri_path
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(relative_path)
        else {
            return ApiError::NotFound.into_response();
        };
        run_blocking(move || {
            let (file, meta, name) = self.locate(&rel)?;
            let head = Head {
                status: StatusCode::OK,
                headers: HeaderMap::new(),
                content_type: mime::content_type(&name),
            };
            prepare(file, &meta, &cond, head)
        })
        .await
    }

    /// Opens the regular file `rel` names (blocking); the path whose name gives the
    /// content type comes back with it.
    fn locate(&self, rel: &Path) -> Result<(File, Metadata, PathBuf), ApiError> {
        let requested = self.root.join(rel);
        let (file, meta) = self.open_below_root(&requested)?;
        if meta.is_file() {
            return Ok((file, meta, requested));
        }
        if !(meta.is_dir() && self.html) {
            return Err(ApiError::NotFound);
        }
        let index = requested.join("index.html");
        let (file, meta) = self.open_below_root(&index)?;
        if !meta.is_file() {
            return Err(ApiError::NotFound);
        }
        Ok((file, meta, index))
    }

    fn open_below_root(&self, path: &Path) -> Result<(File, Metadata), ApiError> {
        let real = std::fs::canonicalize(path).map_err(not_found_or_internal)?;
        if !real.starts_with(&self.root) {
            return Err(ApiError::NotFound);
        }
        open(&real).map_err(not_found_or_internal)
    }
}

/// The file a handler's `FileResponse` names, with the status and headers it set.
#[derive(Debug)]
pub struct FileTarget {
    /// The file, as given (not confined to any directory: the application chose it).
    pub path: PathBuf,
    /// The name the content type is guessed from (`filename=` or the path).
    pub name: PathBuf,
    /// The response status; ranges and `304` apply only to `200`.
    pub status: StatusCode,
    /// The response's own headers (`Content-Type` among them, if it set one).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl FileTarget {
    /// Answers with the file. A file that is missing or not a regular file is a
    /// `500`, as in Starlette, where `FileResponse` raises for it.
    pub async fn serve(self, cond: Conditions) -> Response<Body> {
        run_blocking(move || {
            let (file, meta) = open(&self.path).map_err(|_| ApiError::Internal(None))?;
            if !meta.is_file() {
                return Err(ApiError::Internal(None));
            }
            let mut headers = HeaderMap::with_capacity(self.headers.len() + 6);
            for (name, value) in self.headers {
                headers.append(name, value);
            }
            let head = Head {
                status: self.status,
                headers,
                content_type: mime::content_type(&self.name),
            };
            prepare(file, &meta, &cond, head)
        })
        .await
    }
}

/// The relative path a request names below a mount, or `None` if it is not a plain
/// path (traversal, encoded separators, NUL, empty segments).
fn relative_path(raw: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    let segments: Vec<&str> = raw.split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.into_iter().enumerate() {
        // A trailing slash names the directory itself (`docs/` → `docs`).
        if segment.is_empty() && i == last {
            break;
        }
        let decoded = percent_decode(segment)?;
        if decoded.is_empty()
            || (decoded.starts_with(b".") && decoded != b".well-known")
            || decoded.iter().any(|b| matches!(b, b'/' | b'\\' | 0))
        {
            return None;
        }
        out.push(OsStr::from_bytes(&decoded));
    }
    Some(out)
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits is malformed.
fn percent_decode(segment: &str) -> Option<Vec<u8>> {
    let well_formed = segment.split('%').skip(1).all(|after| {
        after
            .as_bytes()
            .get(..2)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    well_formed.then(|| percent_encoding::percent_decode_str(segment).collect())
}

/// Opens `path` for reading (blocking). `O_NONBLOCK` keeps a FIFO from blocking the
/// open; callers then refuse anything but regular files (and directories).
fn open(path: &Path) -> io::Result<(File, Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

/// Missing, unreadable or unresolvable paths are `404`; anything else (I/O errors)
/// is a `500`.
fn not_found_or_internal(err: io::Error) -> ApiError {
    let not_found = matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied | io::ErrorKind::NotADirectory
    ) || matches!(
        err.raw_os_error(),
        Some(libc::ELOOP | libc::ENAMETOOLONG | libc::EINVAL)
    );
    if not_found {
        ApiError::NotFound
    } else {
        ApiError::Internal(None)
    }
}

/// The status and headers a file response starts from.
struct Head {
    status: StatusCode,
    headers: HeaderMap,
    /// Used unless `headers` already has a `Content-Type`.
    content_type: HeaderValue,
}

/// A response decided on the blocking pool, its body not yet wrapped.
struct Prepared {
    status: StatusCode,
    headers: HeaderMap,
    body: Planned,
}

enum Planned {
    Empty,
    Whole(Bytes),
    Stream { file: File, len: u64 },
}

fn header_u64(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

/// Decides the response for an open file and reads it if it is small (blocking).
fn prepare(
    mut file: File,
    meta: &Metadata,
    cond: &Conditions,
    head: Head,
) -> Result<Prepared, ApiError> {
    let v = Validators::new(meta.len(), meta.modified().ok());
    let ranges = head.status == StatusCode::OK;
    let mut headers = head.headers;
    headers
        .entry(header::CONTENT_TYPE)
        .or_insert(head.content_type);
    headers.entry(header::ETAG).or_insert_with(|| v.etag());
    if let Some(date) = v.last_modified() {
        headers.entry(header::LAST_MODIFIED).or_insert(date);
    }
    if ranges {
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    let (status, start, len) = match decide(cond, &v, ranges) {
        Decision::NotModified => {
            // RFC 9110 §15.4.5: a 304 carries the validators, not the content's
            // metadata.
            for name in [
                header::CONTENT_TYPE,
                header::CONTENT_LENGTH,
                header::ACCEPT_RANGES,
            ] {
                headers.remove(name);
            }
            return Ok(Prepared {
                status: StatusCode::NOT_MODIFIED,
                headers,
                body: Planned::Empty,
            });
        }
        Decision::Unsatisfiable => return Err(ApiError::RangeNotSatisfiable { len: v.len }),
        Decision::Full => (head.status, 0, v.len),
        Decision::Partial { start, end } => {
            let range = format!("bytes {start}-{end}/{}", v.len);
            if let Ok(value) = HeaderValue::from_str(&range) {
                headers.insert(header::CONTENT_RANGE, value);
            }
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
    };
    headers.insert(header::CONTENT_LENGTH, header_u64(len));
    let body = if cond.head || len == 0 {
        Planned::Empty
    } else {
        if start > 0 {
            file.seek(SeekFrom::Start(start))
                .map_err(|_| ApiError::Internal(None))?;
        }
        if len <= CHUNK as u64 {
            Planned::Whole(
                read_chunk(&mut file, len as usize).map_err(|_| ApiError::Internal(None))?,
            )
        } else {
            Planned::Stream { file, len }
        }
    };
    Ok(Prepared {
        status,
        headers,
        body,
    })
}

/// Runs `work` on the blocking pool and turns its outcome into a response.
async fn run_blocking<F>(work: F) -> Response<Body>
where
    F: FnOnce() -> Result<Prepared, ApiError> + Send + 'static,
{
    let prepared = match tokio::task::spawn_blocking(work).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => return ApiError::Internal(None).into_response(),
    };
    let body = match prepared.body {
        Planned::Empty => Body::empty(),
        Planned::Whole(bytes) => Body::full(bytes),
        Planned::Stream { file, len } => Body::stream(FileChunks {
            state: ChunkState::Idle(Some(file)),
            remaining: len,
        }),
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = prepared.status;
    *resp.headers_mut() = prepared.headers;
    resp
}

fn read_chunk(file: &mut File, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0; len];
    // A file truncated while it is sent ends the body early with an error, which
    // closes the connection rather than sending fewer bytes than announced.
    file.read_exact(&mut buf)?;
    Ok(Bytes::from(buf))
}

enum ChunkState {
    Idle(Option<File>),
    Reading(JoinHandle<io::Result<(File, Bytes)>>),
}

/// The rest of a file, read one [`CHUNK`] at a time on the blocking pool; the next
/// read starts only when the connection polls for more, so a slow client holds one
/// chunk in memory and no thread.
struct FileChunks {
    state: ChunkState,
    remaining: u64,
}

impl Frames for FileChunks {
    fn poll_frame(&mut self, cx: &mut Context<'_>) -> PollFrame {
        let this = self;
        loop {
            match &mut this.state {
                ChunkState::Idle(file) => {
                    let Some(mut file) = file.take().filter(|_| this.remaining > 0) else {
                        return Poll::Ready(None);
                    };
                    let want = this.remaining.min(CHUNK as u64) as usize;
                    this.state = ChunkState::Reading(tokio::task::spawn_blocking(move || {
                        read_chunk(&mut file, want).map(|bytes| (file, bytes))
                    }));
                }
                ChunkState::Reading(task) => {
                    let outcome = ready!(Pin::new(task).poll(cx));
                    this.state = ChunkState::Idle(None);
                    return Poll::Ready(Some(match outcome {
                        Ok(Ok((file, bytes))) => {
                            this.remaining -= bytes.len() as u64;
                            this.state = ChunkState::Idle(Some(file));
                            Ok(Frame::data(bytes))
                        }
                        Ok(Err(e)) => Err(e.into()),
                        Err(e) => Err(e.into()),
                    }));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_paths_are_accepted() {
        let cases = [
            ("style.css", "style.css"),
            ("a/b/c.txt", "a/b/c.txt"),
            ("docs/", "docs"),
            ("", ""),
            ("with%20space.txt", "with space.txt"),
            (".well-known/x", ".well-known/x"),
        ];
        for (raw, want) in cases {
            assert_eq!(relative_path(raw), Some(PathBuf::from(want)), "{raw}");
        }
    }

    #[test]
    fn traversal_is_refused() {
        let cases = [
            "../secret",
            "a/../../secret",
            "%2e%2e/secret",
            "%2E%2E/secret",
            ".%2e/secret",
            "a%2f..%2fsecret",
            "..%2fsecret",
            "..%5csecret",
            "a\\..\\secret",
            "/etc/passwd",
            "a//b",
            "./a",
            "a/.",
            "nul%00.txt",
            "bad%zzescape",
            "cut%2",
            "sign%+1",
            "sign%-1",
            ".env",
            "a/.git/config",
            "%2egit/config",
            "..hidden",
        ];
        for raw in cases {
            assert_eq!(relative_path(raw), None, "{raw}");
        }
    }

    mod proptests {
        use std::path::Component;

        use proptest::prelude::*;

        use super::*;

        /// Request paths built from traversal pieces in every spelling, mixed with
        /// plain names and arbitrary text.
        fn raw_path() -> impl Strategy<Value = String> {
            let segment = prop_oneof![
                prop::sample::select(vec![
                    "",
                    ".",
                    "..",
                    "%2e",
                    "%2E%2e",
                    ".%2e",
                    "%2e.",
                    "...",
                    ".env",
                    ".well-known",
                    "%2ewell-known",
                    ".well-known%2f..",
                    "%2f",
                    "%2F",
                    "%5c",
                    "\\",
                    "..\\..",
                    "%00",
                    "%",
                    "%2",
                    "%zz",
                    "%+2",
                    "%-1",
                    "a",
                    "index.html",
                    "C:",
                    "~",
                    "%252e%252e",
                ])
                .prop_map(str::to_owned),
                "[a-zA-Z0-9._%~-]{1,10}",
                "\\PC{1,6}",
            ];
            (prop::bool::ANY, prop::collection::vec(segment, 0..6)).prop_map(|(lead, segments)| {
                let joined = segments.join("/");
                if lead {
                    format!("/{joined}")
                } else {
                    joined
                }
            })
        }

        proptest! {
            #[test]
            fn prop_relative_paths_stay_below_the_mount(raw in raw_path()) {
                let Some(path) = relative_path(&raw) else {
                    return Ok(());
                };
                prop_assert!(path.is_relative(), "{raw:?} -> {path:?}");
                prop_assert!(!path.as_os_str().as_bytes().contains(&0), "{raw:?} -> {path:?}");
                for component in path.components() {
                    let Component::Normal(name) = component else {
                        return Err(TestCaseError::fail(format!("{raw:?} -> {path:?}: {component:?}")));
                    };
                    let name = name.as_bytes();
                    prop_assert!(!name.contains(&b'\\'), "{raw:?} -> {path:?}");
                    prop_assert!(
                        !name.starts_with(b".") || name == b".well-known",
                        "{raw:?} -> {path:?}"
                    );
                }
            }

            #[test]
            fn prop_plain_names_are_kept(names in prop::collection::vec("[a-zA-Z0-9_-][a-zA-Z0-9._-]{0,10}", 1..5)) {
                let raw = names.join("/");
                prop_assert_eq!(relative_path(&raw), Some(PathBuf::from(&raw)));
            }
        }
    }

    #[test]
    fn io_errors_map_to_statuses() {
        let missing = io::Error::from(io::ErrorKind::NotFound);
        assert!(matches!(not_found_or_internal(missing), ApiError::NotFound));
        let looped = io::Error::from_raw_os_error(libc::ELOOP);
        assert!(matches!(not_found_or_internal(looped), ApiError::NotFound));
        let broken = io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(
            not_found_or_internal(broken),
            ApiError::Internal(None)
        ));
    }
}
