//! The access log: one line per request, written to standard error by a dedicated
//! thread, so a request never waits on I/O and never takes the GIL.
//!
//! The connection's task hands a [`Record`] (already-owned strings and numbers, no
//! formatting) to a queue: a vector behind a mutex that is held only to push a record
//! or to swap the vector out. The writer thread swaps the queue out every
//! [`FLUSH_EVERY`], formats the batch and writes it to standard error at once. Under
//! load a request therefore costs a push (no thread wake, no system call, no
//! formatting); only a request that finds the writer idle (nothing was logged for a
//! while) wakes it, so a quiet server's lines still appear at once.
//!
//! When standard error cannot keep up and [`CAPACITY`] records are waiting, the line
//! is dropped and counted instead of queued without bound; the writer reports the
//! drops in a line of its own and `/metrics` exposes the count.
//!
//! Text lines share the prefix of the Python server log (`<local time> INFO [pid]`);
//! JSON lines carry the server log's keys (`time`, `level`, `message`, `logger`,
//! `pid`) plus the request's fields. The time prefix is formatted once a second. The
//! local time zone is read once, when the log starts (as Python reads it once, at
//! `import time`), on the thread that starts it: the writer never reads the
//! environment, which would race with a `setenv` in another thread (the reason
//! libc's `localtime_r` is not used).

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::Thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, Version};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use parking_lot::Mutex;

use crate::errors::{push_json_escaped, push_json_string};

/// Lines that may wait for the writer before new ones are dropped.
pub const CAPACITY: usize = 16 * 1024;

/// How often a busy writer takes the waiting lines: short enough that lines appear
/// promptly, long enough that a batch holds many lines (one write for all of them)
/// and the writer wakes 50 times a second instead of once a request.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// How long dropping the log waits for the last lines to be written (standard error
/// may be a pipe nobody reads: shutting down must not hang on it).
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// The most bytes written at once: a batch is split at line ends, so a line written
/// by another part of the process to the same pipe lands between whole lines.
const WRITE_CHUNK: usize = 64 * 1024;

/// How a line is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `<time> INFO    [pid] <client> - "<method> <target> HTTP/<v>" <status> <bytes> <secs>s <id>`.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `"text"` or `"json"`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// The longest request target a record keeps: a 64 KiB target times the queue's
/// capacity would be memory a client chooses.
const MAX_TARGET: usize = 2048;

/// The path and query of `uri` as logged: cut at [`MAX_TARGET`] bytes, marked `...`.
pub fn logged_target(uri: &http::Uri) -> String {
    let full = uri
        .path_and_query()
        .map_or_else(|| uri.path(), |pq| pq.as_str());
    if full.len() <= MAX_TARGET {
        return full.to_owned();
    }
    // A request target is ASCII, so any byte is a character boundary.
    let mut cut = MAX_TARGET;
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}...", &full[..cut])
}

/// What is logged about one request.
#[derive(Clone, Debug)]
pub struct Record {
    /// When the request head arrived.
    pub time: SystemTime,
    /// The method.
    pub method: Method,
    /// Path and query as received (see [`logged_target`]).
    pub target: String,
    /// The HTTP version.
    pub version: Version,
    /// The status sent (499 if the client went away before a response existed).
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// From the request head to the end of the response.
    pub duration: Duration,
    /// The client (after proxy headers), if known.
    pub client: Option<SocketAddr>,
    /// The request id echoed in `x-request-id`.
    pub request_id: Option<HeaderValue>,
}

/// A [`Record`] as it waits in the queue: short strings are copied into the entry,
/// so their memory is freed by the thread that allocated it. Freeing on the writer
/// thread what the server thread allocated defeats the allocator's per-thread caches
/// on both sides, which costs more than formatting the line.
struct Entry {
    time: SystemTime,
    method: Method,
    target: Text,
    version: Version,
    status: u16,
    bytes: u64,
    duration: Duration,
    client: Option<SocketAddr>,
    /// `None` also for an id that is not visible ASCII (logged as absent, as before).
    request_id: Option<Text>,
}

impl From<Record> for Entry {
    fn from(r: Record) -> Self {
        let request_id = r
            .request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .map(|id| Text::copied(id).unwrap_or_else(|| Text::Heap(id.to_owned())));
        Entry {
            time: r.time,
            method: r.method,
            target: Text::copied(&r.target).unwrap_or(Text::Heap(r.target)),
            version: r.version,
            status: r.status,
            bytes: r.bytes,
            duration: r.duration,
            client: r.client,
            request_id,
        }
    }
}

/// The longest string an [`Entry`] holds in place (a generated request id is 32).
const INLINE: usize = 64;

/// A string held in place when short.
enum Text {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(String),
}

impl Text {
    /// `s` held in place, if it is short enough.
    fn copied(s: &str) -> Option<Self> {
        let len = u8::try_from(s.len())
            .ok()
            .filter(|&n| usize::from(n) <= INLINE)?;
        let mut bytes = [0; INLINE];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Some(Text::Inline { len, bytes })
    }

    fn as_str(&self) -> &str {
        match self {
            // Copied from a `str` whole, so always valid UTF-8.
            Text::Inline { len, bytes } => {
                std::str::from_utf8(&bytes[..usize::from(*len)]).unwrap_or_default()
            }
            Text::Heap(s) => s,
        }
    }
}

/// What the senders and the writer share.
struct Shared {
    queue: Mutex<Queue>,
    capacity: usize,
    dropped: AtomicU64,
    /// Set when the last sender is gone: the writer writes what is left and ends.
    closed: AtomicBool,
}

struct Queue {
    records: Vec<Entry>,
    /// The writer found nothing to write and sleeps until a sender wakes it.
    idle: bool,
}

/// The sending side of the access log (one per server).
pub struct AccessLog {
    shared: Arc<Shared>,
    writer: Thread,
    /// Disconnected once the writer thread has written its last line (in a mutex
    /// only to be `Sync`; it is used from `drop` alone).
    finished: Mutex<mpsc::Receiver<()>>,
}

impl AccessLog {
    /// Starts the writer thread, writing `format` lines to standard error.
    pub fn to_stderr(format: LogFormat) -> std::io::Result<Self> {
        Self::spawn(format, CAPACITY, std::io::stderr())
    }

    /// Starts a writer thread writing to `out`, with room for `capacity` waiting lines.
    /// The thread ends once the `AccessLog` is dropped and the lines are out.
    pub fn spawn<W: Write + Send + 'static>(
        format: LogFormat,
        capacity: usize,
        out: W,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                records: Vec::new(),
                idle: false,
            }),
            capacity: capacity.max(1),
            dropped: AtomicU64::new(0),
            closed: AtomicBool::new(false),
        });
        let (done, finished) = mpsc::channel::<()>();
        let writer = Writer {
            shared: shared.clone(),
            lines: Lines::new(format),
            out,
        };
        let handle = std::thread::Builder::new()
            .name("data-bridge-access-log".into())
            .spawn(move || {
                writer.run();
                drop(done);
            })?;
        Ok(AccessLog {
            shared,
            writer: handle.thread().clone(),
            finished: Mutex::new(finished),
        })
    }

    /// Queues `record`; if the writer is behind, drops it and counts the drop. Never
    /// blocks on the writer or on standard error.
    pub fn send(&self, record: Record) {
        let shared = &*self.shared;
        let entry = Entry::from(record);
        let wake = {
            let mut queue = shared.queue.lock();
            if queue.records.len() >= shared.capacity {
                drop(queue);
                shared.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            queue.records.push(entry);
            // Half full: the writer takes the batch now rather than at its next tick.
            let wake = queue.idle || queue.records.len() == shared.capacity.div_ceil(2);
            queue.idle = false;
            wake
        };
        if wake {
            self.writer.unpark();
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.writer.unpark();
        // The lines of the last moments are written before the process may exit.
        let _ = self.finished.get_mut().recv_timeout(DRAIN_WAIT);
    }
}

/// The writer thread's side.
struct Writer<W> {
    shared: Arc<Shared>,
    lines: Lines,
    out: W,
}

impl<W: Write> Writer<W> {
    fn run(mut self) {
        let mut batch = Vec::new();
        let mut text = String::new();
        let mut reported = 0;
        loop {
            // Read before taking the queue: every record sent before the close is in it.
            let closing = self.shared.closed.load(Ordering::Acquire);
            let idle = {
                let mut queue = self.shared.queue.lock();
                std::mem::swap(&mut queue.records, &mut batch);
                queue.idle = batch.is_empty();
                queue.idle
            };
            text.clear();
            for record in batch.drain(..) {
                self.lines.record(&mut text, &record);
            }
            let dropped = self.shared.dropped.load(Ordering::Relaxed);
            if dropped > reported {
                self.lines.drops(&mut text, dropped - reported);
                reported = dropped;
            }
            if !text.is_empty() {
                self.write(&text);
            }
            if closing {
                return;
            }
            if idle {
                std::thread::park();
            } else {
                std::thread::park_timeout(FLUSH_EVERY);
            }
        }
    }

    /// Writes `text` (whole lines) in chunks of at most [`WRITE_CHUNK`] bytes.
    fn write(&mut self, text: &str) {
        let mut rest = text.as_bytes();
        while !rest.is_empty() {
            let window = &rest[..rest.len().min(WRITE_CHUNK)];
            let cut = if window.len() == rest.len() {
                window.len()
            } else {
                window
                    .iter()
                    .rposition(|&b| b == b'\n')
                    .map_or(window.len(), |i| i + 1)
            };
            // A failing stderr has nowhere to report to: the lines are lost.
            let _ = self.out.write_all(&rest[..cut]);
            rest = &rest[cut..];
        }
        let _ = self.out.flush();
    }
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "0.9",
        Version::HTTP_10 => "1.0",
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Formats lines, reusing the date and time of the second before.
struct Lines {
    format: LogFormat,
    pid: u32,
    /// The local time zone, read when the log started.
    zone: TimeZone,
    local: Cached,
    utc: Cached,
}

/// A second's date and time as text, kept until the second changes.
#[derive(Default)]
struct Cached {
    second: Option<u64>,
    text: String,
}

impl Cached {
    /// Appends `t` to `out`, its date and time formatted by `fmt` (once a second) and
    /// its milliseconds after `sep`.
    fn push(
        &mut self,
        out: &mut String,
        t: SystemTime,
        sep: char,
        fmt: impl FnOnce(&mut String, u64),
    ) {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let second = since.as_secs();
        if self.second != Some(second) {
            self.text.clear();
            fmt(&mut self.text, second);
            self.second = Some(second);
        }
        out.push_str(&self.text);
        out.push(sep);
        push_padded(out, since.subsec_millis(), 3);
    }
}

/// `second` (since the epoch) in `zone`; out of range (past 9999) is the epoch.
fn civil(second: u64, zone: &TimeZone) -> jiff::civil::DateTime {
    let t = i64::try_from(second)
        .ok()
        .and_then(|s| Timestamp::from_second(s).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH);
    zone.to_datetime(t)
}

/// `2024-05-01T12:00:00` (UTC).
fn utc_text(out: &mut String, second: u64) {
    let t = civil(second, &TimeZone::UTC);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
}

/// `2024-05-01 14:00:00` in `zone`, as Python logging's `asctime`.
fn local_text(out: &mut String, second: u64, zone: &TimeZone) {
    let t = civil(second, zone);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
}

impl Lines {
    fn new(format: LogFormat) -> Self {
        Lines {
            format,
            pid: std::process::id(),
            zone: TimeZone::system(),
            local: Cached::default(),
            utc: Cached::default(),
        }
    }

    /// Appends the line (with its newline) for `r`. Numbers and addresses are
    /// written without `core::fmt`, which would be most of the writer's time.
    fn record(&mut self, out: &mut String, r: &Entry) {
        let id = r.request_id.as_ref().map(Text::as_str);
        let target = r.target.as_str();
        match self.format {
            LogFormat::Text => {
                self.local
                    .push(out, r.time, ',', |o, s| local_text(o, s, &self.zone));
                out.push_str(" INFO    [");
                push_int(out, self.pid);
                out.push_str("] ");
                match r.client {
                    Some(c) => push_addr(out, c),
                    None => out.push('-'),
                }
                out.push_str(" - \"");
                out.push_str(r.method.as_str());
                out.push(' ');
                push_text_escaped(out, target);
                out.push_str(" HTTP/");
                out.push_str(version_str(r.version));
                out.push_str("\" ");
                push_int(out, r.status);
                out.push(' ');
                push_int(out, r.bytes);
                out.push(' ');
                push_seconds(out, r.duration);
                out.push_str("s ");
                out.push_str(id.unwrap_or("-"));
                out.push('\n');
            }
            LogFormat::Json => {
                out.push_str("{\"time\":\"");
                self.utc.push(out, r.time, '.', utc_text);
                out.push_str("Z\",\"level\":\"info\",\"message\":\"");
                push_json_escaped(out, r.method.as_str());
                out.push(' ');
                push_json_escaped(out, target);
                out.push(' ');
                push_int(out, r.status);
                out.push_str("\",\"logger\":\"data_bridge.access\",\"pid\":");
                push_int(out, self.pid);
                out.push_str(",\"method\":");
                push_json_string(out, r.method.as_str());
                out.push_str(",\"path\":");
                push_json_string(out, target);
                out.push_str(",\"http_version\":\"");
                out.push_str(version_str(r.version));
                out.push_str("\",\"status\":");
                push_int(out, r.status);
                out.push_str(",\"bytes\":");
                push_int(out, r.bytes);
                out.push_str(",\"duration\":");
                push_seconds(out, r.duration);
                out.push_str(",\"client\":");
                match r.client {
                    // An address has nothing to escape.
                    Some(c) => {
                        out.push('"');
                        push_addr(out, c);
                        out.push('"');
                    }
                    None => out.push_str("null"),
                }
                out.push_str(",\"request_id\":");
                match id {
                    Some(id) => push_json_string(out, id),
                    None => out.push_str("null"),
                }
                out.push_str("}\n");
            }
        }
    }

    /// Appends the line reporting `count` dropped lines.
    fn drops(&mut self, out: &mut String, count: u64) {
        let now = SystemTime::now();
        let pid = self.pid;
        let message = format!("access log: {count} line(s) dropped, standard error is too slow");
        match self.format {
            LogFormat::Text => {
                self.local
                    .push(out, now, ',', |o, s| local_text(o, s, &self.zone));
                let _ = writeln!(out, " WARNING [{pid}] {message}");
            }
            LogFormat::Json => {
                out.push_str("{\"time\":\"");
                self.utc.push(out, now, '.', utc_text);
                out.push_str("Z\",\"level\":\"warning\",\"message\":");
                push_json_string(out, &message);
                let _ = writeln!(out, ",\"logger\":\"data_bridge.access\",\"pid\":{pid}}}");
            }
        }
    }
}

fn push_int(out: &mut String, n: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `1.2.3.4:5` or `[::1]:5`, as `SocketAddr`'s `Display`.
fn push_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(a) => {
            for (i, octet) in a.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_int(out, octet);
            }
            out.push(':');
            push_int(out, a.port());
        }
        SocketAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// `d` in seconds with six decimals (rounded to the microsecond), without going
/// through floating point.
fn push_seconds(out: &mut String, d: Duration) {
    let mut secs = d.as_secs();
    let mut micros = (d.subsec_nanos() + 500) / 1000;
    if micros == 1_000_000 {
        secs = secs.saturating_add(1);
        micros = 0;
    }
    push_int(out, secs);
    out.push('.');
    push_padded(out, micros, 6);
}

/// `n` with leading zeros to `width` digits.
fn push_padded(out: &mut String, n: u32, width: usize) {
    let mut buf = itoa::Buffer::new();
    let digits = buf.format(n);
    for _ in digits.len()..width {
        out.push('0');
    }
    out.push_str(digits);
}

/// Appends `s` with quotes and backslashes escaped, which would otherwise end or
/// break the quoted request field.
fn push_text_escaped(out: &mut String, s: &str) {
    let mut clean = 0;
    for (i, b) in s.bytes().enumerate() {
        if matches!(b, b'"' | b'\\') {
            out.push_str(&s[clean..i]);
            out.push('\\');
            clean = i;
        }
    }
    out.push_str(&s[clean..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_targets_are_cut() -> Result<(), http::uri::InvalidUri> {
        let short: http::Uri = "/a?b=1".parse()?;
        assert_eq!(logged_target(&short), "/a?b=1");
        let long: http::Uri = format!("/{}", "x".repeat(10_000)).parse()?;
        let logged = logged_target(&long);
        assert_eq!(logged.len(), MAX_TARGET + 3);
        assert!(logged.ends_with("..."));
        Ok(())
    }

    fn record() -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_millis(1_714_564_800_123),
            method: Method::GET,
            target: "/items/1?q=\"x\"".into(),
            version: Version::HTTP_11,
            status: 200,
            bytes: 17,
            duration: Duration::from_micros(412),
            client: "127.0.0.1:5000".parse().ok(),
            request_id: Some(HeaderValue::from_static("abc")),
        }
    }

    /// The line `Lines` makes for `r`.
    fn line(format: LogFormat, r: &Record) -> String {
        let mut lines = Lines::new(format);
        lines.pid = 7;
        let mut s = String::new();
        lines.record(&mut s, &Entry::from(r.clone()));
        s
    }

    #[test]
    fn dates() {
        let mut s = String::new();
        let mut utc = Cached::default();
        let t = UNIX_EPOCH + Duration::from_millis(1_714_564_800_123);
        utc.push(&mut s, t, '.', utc_text);
        assert_eq!(s, "2024-05-01T12:00:00.123");
        // The same second again comes from the cache, with its own milliseconds.
        utc.push(&mut s, t + Duration::from_millis(5), '.', utc_text);
        assert_eq!(s, "2024-05-01T12:00:00.1232024-05-01T12:00:00.128");
        s.clear();
        utc_text(&mut s, 0);
        assert_eq!(s, "1970-01-01T00:00:00");
        s.clear();
        utc_text(&mut s, u64::MAX);
        assert_eq!(s, "1970-01-01T00:00:00");
        s.clear();
        local_text(&mut s, 1_714_564_800, &TimeZone::UTC);
        assert_eq!(s, "2024-05-01 12:00:00");
        s.clear();
        let paris = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap_or(TimeZone::UTC);
        local_text(&mut s, 1_714_564_800, &paris);
        assert_eq!(s, "2024-05-01 14:00:00");
    }

    #[test]
    fn seconds_have_six_decimals() {
        for (d, want) in [
            (Duration::from_micros(412), "0.000412"),
            (Duration::from_nanos(1_999_999_600), "2.000000"),
            (Duration::from_secs(75), "75.000000"),
            (Duration::ZERO, "0.000000"),
            (
                Duration::new(u64::MAX, 999_999_999),
                "18446744073709551615.000000",
            ),
        ] {
            let mut s = String::new();
            push_seconds(&mut s, d);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn text_line() {
        let s = line(LogFormat::Text, &record());
        assert!(
            s.ends_with(
                " INFO    [7] 127.0.0.1:5000 - \"GET /items/1?q=\\\"x\\\" HTTP/1.1\" 200 17 0.000412s abc\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn json_line() {
        let s = line(LogFormat::Json, &record());
        assert_eq!(
            s,
            "{\"time\":\"2024-05-01T12:00:00.123Z\",\"level\":\"info\",\
             \"message\":\"GET /items/1?q=\\\"x\\\" 200\",\"logger\":\"data_bridge.access\",\
             \"pid\":7,\"method\":\"GET\",\"path\":\"/items/1?q=\\\"x\\\"\",\
             \"http_version\":\"1.1\",\"status\":200,\"bytes\":17,\"duration\":0.000412,\
             \"client\":\"127.0.0.1:5000\",\"request_id\":\"abc\"}\n"
        );
    }

    #[test]
    fn drop_lines() {
        let mut s = String::new();
        Lines::new(LogFormat::Text).drops(&mut s, 3);
        assert!(s.ends_with("] access log: 3 line(s) dropped, standard error is too slow\n"));
        assert!(s.contains(" WARNING ["), "{s}");
        s.clear();
        Lines::new(LogFormat::Json).drops(&mut s, 3);
        let parsed: serde_json::Value = serde_json::from_str(&s).unwrap_or_default();
        assert_eq!(parsed["level"], "warning", "{s}");
        assert_eq!(parsed["logger"], "data_bridge.access", "{s}");
    }

    mod proptests {
        use std::net::IpAddr;

        use proptest::prelude::*;
        use proptest::test_runner::TestCaseError;

        use super::*;

        /// A record with any method, version, client, id, numbers and time; the
        /// target is `target` unless `from_uri` asks for what a parsed URI would log.
        fn record_with(target: String, from_uri: bool) -> impl Strategy<Value = Record> {
            let method = prop_oneof![
                Just(Method::GET),
                Just(Method::POST),
                "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}"
                    .prop_filter_map("not a token", |m| Method::from_bytes(m.as_bytes()).ok()),
            ];
            let version = prop::sample::select(vec![
                Version::HTTP_09,
                Version::HTTP_10,
                Version::HTTP_11,
                Version::HTTP_2,
                Version::HTTP_3,
            ]);
            let client = prop::option::of(
                (any::<IpAddr>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::new(ip, port)),
            );
            let id = prop::option::of(prop::collection::vec(any::<u8>(), 0..40))
                .prop_map(|id| id.and_then(|bytes| HeaderValue::from_bytes(&bytes).ok()));
            (
                method,
                version,
                client,
                id,
                any::<u16>(),
                any::<u64>(),
                any::<u64>(),
                any::<u64>(),
                any::<u32>(),
            )
                .prop_map(
                    move |(
                        method,
                        version,
                        client,
                        request_id,
                        status,
                        bytes,
                        micros,
                        secs,
                        nanos,
                    )| {
                        let target = if from_uri {
                            target
                                .parse::<http::Uri>()
                                .map(|u| logged_target(&u))
                                .unwrap_or_default()
                        } else {
                            target.clone()
                        };
                        Record {
                            time: UNIX_EPOCH
                                + Duration::new(secs % 400_000_000_000, nanos % 1_000_000_000),
                            method,
                            target,
                            version,
                            status,
                            bytes,
                            duration: Duration::from_micros(micros),
                            client,
                            request_id,
                        }
                    },
                )
        }

        /// Targets with quotes, backslashes, controls, non-ASCII and over-long runs.
        fn target() -> impl Strategy<Value = String> {
            prop_oneof![
                "/[ -~]{0,40}",
                "\\PC{0,40}",
                "[\\x00-\\x1f\"\\\\\u{7f}\u{2028}]{0,10}",
                "/[a-z?=&%]{2040,2060}",
            ]
        }

        proptest! {
            #[test]
            fn prop_json_lines_are_one_json_object(r in target().prop_flat_map(|t| record_with(t, false))) {
                let line = line(LogFormat::Json, &r);
                prop_assert!(line.ends_with('\n'));
                prop_assert_eq!(line.matches('\n').count(), 1);
                let parsed: serde_json::Value = serde_json::from_str(&line)
                    .map_err(|e| TestCaseError::fail(format!("{e}: {line}")))?;
                prop_assert_eq!(&parsed["path"], &serde_json::Value::String(r.target.clone()));
                prop_assert_eq!(&parsed["status"], &serde_json::Value::from(r.status));
                prop_assert_eq!(&parsed["client"], &r.client.map_or(serde_json::Value::Null, |c| c.to_string().into()));
            }

            #[test]
            fn prop_text_lines_are_one_line(r in target().prop_flat_map(|t| record_with(t, true))) {
                let line = line(LogFormat::Text, &r);
                prop_assert!(line.ends_with('\n'));
                prop_assert!(!line[..line.len() - 1].contains(['\n', '\r']), "{line:?}");
                // The quoted request field ends at the first unescaped quote.
                let mut request = format!("\"{} ", r.method);
                push_text_escaped(&mut request, &r.target);
                request.push_str(" HTTP/");
                prop_assert!(line.contains(&request), "{line:?}");
                prop_assert!(r.target.len() <= MAX_TARGET + 3);
            }
        }
    }

    /// A writer whose first two flushes wait for the test, to fill the queue.
    struct Gate(
        Arc<std::sync::Barrier>,
        Arc<parking_lot::Mutex<Vec<u8>>>,
        usize,
    );

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.1.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            if self.2 < 2 {
                self.2 += 1;
                self.0.wait();
            }
            Ok(())
        }
    }

    #[test]
    fn a_slow_writer_drops_and_counts_lines() {
        let barrier = Arc::new(std::sync::Barrier::new(2));
        let written = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let log = AccessLog::spawn(
            LogFormat::Text,
            2,
            Gate(barrier.clone(), written.clone(), 0),
        );
        let Ok(log) = log else {
            panic!("cannot start the writer")
        };
        log.send(record());
        // The writer has taken the first line and waits in flush: two more fit.
        std::thread::sleep(Duration::from_millis(50));
        for _ in 0..5 {
            log.send(record());
        }
        assert_eq!(log.dropped(), 3);
        barrier.wait();
        barrier.wait();
        // Dropping the log waits for the writer to write what is left.
        drop(log);
        let text = String::from_utf8_lossy(&written.lock()).into_owned();
        assert_eq!(text.matches("\"GET ").count(), 3, "{text}");
        assert!(text.contains("3 line(s) dropped"), "{text}");
    }

    /// A writer that keeps each write apart.
    struct Writes(Arc<parking_lot::Mutex<Vec<Vec<u8>>>>);

    impl Write for Writes {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_are_written_in_batches_of_whole_lines() {
        let writes = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let Ok(log) = AccessLog::spawn(LogFormat::Json, CAPACITY, Writes(writes.clone())) else {
            panic!("cannot start the writer")
        };
        let mut r = record();
        r.target = format!("/{}", "x".repeat(1000));
        let lines = 2000;
        for _ in 0..lines {
            log.send(r.clone());
        }
        drop(log);
        let writes = writes.lock();
        // Two megabytes at most 64 KiB at a time, not a write per line.
        assert!(writes.len() < lines / 10, "{} writes", writes.len());
        assert!(writes
            .iter()
            .all(|w| w.len() <= WRITE_CHUNK && w.ends_with(b"\n")));
        let all: Vec<u8> = writes.concat();
        assert_eq!(
            all.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(),
            lines
        );
    }
}
