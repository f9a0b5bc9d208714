//! The access log: one line per request, written to standard error by a dedicated
//! thread, so a request never waits on I/O and never takes the GIL.
//!
//! The connection's task hands a [`Record`] (already-owned strings and numbers, no
//! formatting) to a bounded channel. The writer thread formats it, batches lines in a
//! buffer and flushes whenever the channel is empty. When standard error cannot keep up
//! and the channel is full, the line is dropped and counted instead of queued without
//! bound; the writer reports the drops in a line of its own and `/metrics` exposes the
//! count.
//!
//! Text lines share the prefix of the Python server log (`<local time> INFO [pid]`);
//! JSON lines carry the server log's keys (`time`, `level`, `message`, `logger`,
//! `pid`) plus the request's fields.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderValue, Method, Version};

use crate::errors::json_string;

/// Lines that may wait for the writer before new ones are dropped.
pub const CAPACITY: usize = 16 * 1024;

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
#[derive(Debug)]
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

/// The sending side of the access log (one per server).
pub struct AccessLog {
    tx: SyncSender<Record>,
    dropped: Arc<AtomicU64>,
}

impl AccessLog {
    /// Starts the writer thread, writing `format` lines to standard error.
    pub fn to_stderr(format: LogFormat) -> std::io::Result<Self> {
        Self::spawn(format, CAPACITY, std::io::stderr())
    }

    /// Starts a writer thread writing to `out`, with room for `capacity` waiting lines.
    /// The thread ends once every `AccessLog` handle is dropped and the lines are out.
    pub fn spawn<W: Write + Send + 'static>(
        format: LogFormat,
        capacity: usize,
        out: W,
    ) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let seen = dropped.clone();
        std::thread::Builder::new()
            .name("data-bridge-access-log".into())
            .spawn(move || write_lines(rx, format, out, &seen))?;
        Ok(AccessLog { tx, dropped })
    }

    /// Queues `record`; if the writer is behind, drops it and counts the drop.
    pub fn send(&self, record: Record) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_lines<W: Write>(rx: Receiver<Record>, format: LogFormat, out: W, dropped: &AtomicU64) {
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, out);
    let mut reported = 0;
    let mut line = String::with_capacity(256);
    let pid = std::process::id();
    // Blocks while idle; ends when every sender is gone.
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(record) = next {
            line.clear();
            format_record(&mut line, format, pid, &record);
            // A failing stderr has nowhere to report to: the line is lost.
            let _ = out.write_all(line.as_bytes());
            next = rx.try_recv().ok();
        }
        let now = dropped.load(Ordering::Relaxed);
        if now > reported {
            line.clear();
            format_drops(&mut line, format, pid, now - reported);
            let _ = out.write_all(line.as_bytes());
            reported = now;
        }
        let _ = out.flush();
    }
    let _ = out.flush();
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

/// Appends the line (with its newline) for `record`.
pub fn format_record(out: &mut String, format: LogFormat, pid: u32, r: &Record) {
    use std::fmt::Write as _;
    let client = r.client.map(|c| c.to_string());
    let id = r.request_id.as_ref().and_then(|v| v.to_str().ok());
    let secs = r.duration.as_secs_f64();
    match format {
        LogFormat::Text => {
            local_time(out, r.time);
            let _ = writeln!(
                out,
                " INFO    [{pid}] {} - \"{} {} HTTP/{}\" {} {} {secs:.6}s {}",
                client.as_deref().unwrap_or("-"),
                r.method,
                escape_text(&r.target),
                version_str(r.version),
                r.status,
                r.bytes,
                id.unwrap_or("-"),
            );
        }
        LogFormat::Json => {
            out.push_str("{\"time\":\"");
            utc_time(out, r.time);
            let message = format!("{} {} {}", r.method, r.target, r.status);
            let _ = writeln!(
                out,
                "\",\"level\":\"info\",\"message\":{},\"logger\":\"data_bridge.access\",\"pid\":{pid},\
                 \"method\":{},\"path\":{},\"http_version\":\"{}\",\"status\":{},\"bytes\":{},\
                 \"duration\":{secs:.6},\"client\":{},\"request_id\":{}}}",
                json_string(&message),
                json_string(r.method.as_str()),
                json_string(&r.target),
                version_str(r.version),
                r.status,
                r.bytes,
                client.as_deref().map(json_string).unwrap_or_else(|| "null".into()),
                id.map(json_string).unwrap_or_else(|| "null".into()),
            );
        }
    }
}

fn format_drops(out: &mut String, format: LogFormat, pid: u32, count: u64) {
    use std::fmt::Write as _;
    let now = SystemTime::now();
    let message = format!("access log: {count} line(s) dropped, standard error is too slow");
    match format {
        LogFormat::Text => {
            local_time(out, now);
            let _ = writeln!(out, " WARNING [{pid}] {message}");
        }
        LogFormat::Json => {
            out.push_str("{\"time\":\"");
            utc_time(out, now);
            let _ = writeln!(
                out,
                "\",\"level\":\"warning\",\"message\":{},\"logger\":\"data_bridge.access\",\"pid\":{pid}}}",
                json_string(&message)
            );
        }
    }
}

/// Quotes and backslashes in the target would break the quoted request field.
fn escape_text(s: &str) -> std::borrow::Cow<'_, str> {
    if s.contains(['"', '\\']) {
        s.replace('\\', "\\\\").replace('"', "\\\"").into()
    } else {
        s.into()
    }
}

/// Days since 1970-01-01 to (year, month, day), in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2024-05-01T12:00:00.123` (UTC; the caller adds `Z`).
fn utc_time(out: &mut String, t: SystemTime) {
    use std::fmt::Write as _;
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    );
}

/// `2024-05-01 14:00:00,123` in local time, as Python logging's `asctime`.
fn local_time(out: &mut String, t: SystemTime) {
    use std::fmt::Write as _;
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills in; both pointers are valid
    // for the call, and localtime_r is the thread-safe variant.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            None
        } else {
            Some(tm)
        }
    };
    match tm {
        Some(tm) => {
            let _ = write!(
                out,
                "{:04}-{:02}-{:02} {:02}:{:02}:{:02},{:03}",
                tm.tm_year + 1900,
                tm.tm_mon + 1,
                tm.tm_mday,
                tm.tm_hour,
                tm.tm_min,
                tm.tm_sec,
                since.subsec_millis()
            );
        }
        None => utc_time(out, t),
    }
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

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_844), (2024, 5, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        let mut s = String::new();
        utc_time(
            &mut s,
            UNIX_EPOCH + Duration::from_millis(1_714_564_800_123),
        );
        assert_eq!(s, "2024-05-01T12:00:00.123Z");
    }

    #[test]
    fn text_line() {
        let mut s = String::new();
        format_record(&mut s, LogFormat::Text, 7, &record());
        assert!(
            s.ends_with(
                " INFO    [7] 127.0.0.1:5000 - \"GET /items/1?q=\\\"x\\\" HTTP/1.1\" 200 17 0.000412s abc\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn json_line() {
        let mut s = String::new();
        format_record(&mut s, LogFormat::Json, 7, &record());
        assert!(s.starts_with("{\"time\":\"2024-05-01T12:00:00.123Z\",\"level\":\"info\""));
        assert!(s.contains("\"path\":\"/items/1?q=\\\"x\\\"\""));
        assert!(s.contains("\"status\":200,\"bytes\":17,\"duration\":0.000412"));
        assert!(s.contains("\"client\":\"127.0.0.1:5000\",\"request_id\":\"abc\"}"));
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
                let mut line = String::new();
                format_record(&mut line, LogFormat::Json, 7, &r);
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
                let mut line = String::new();
                format_record(&mut line, LogFormat::Text, 7, &r);
                prop_assert!(line.ends_with('\n'));
                prop_assert!(!line[..line.len() - 1].contains(['\n', '\r']), "{line:?}");
                // The quoted request field ends at the first unescaped quote.
                let request = format!("\"{} {} HTTP/", r.method, escape_text(&r.target));
                prop_assert!(line.contains(&request), "{line:?}");
                prop_assert!(r.target.len() <= MAX_TARGET + 3);
            }
        }
    }

    /// A writer whose first two flushes wait for the test, to fill the channel.
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
        drop(log);
        std::thread::sleep(Duration::from_millis(50));
        let text = String::from_utf8_lossy(&written.lock()).into_owned();
        assert_eq!(text.matches("\"GET ").count(), 3, "{text}");
        assert!(text.contains("3 line(s) dropped"), "{text}");
    }
}
