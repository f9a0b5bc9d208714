//! Prometheus metrics kept with atomics only, so recording a request never takes a
//! lock or the GIL, and rendered as the text exposition format by the native
//! `/metrics` route.
//!
//! Requests are counted per route *template* (`/users/{id}`, or `<unmatched>`), never
//! per raw path, so the number of series is bounded by the routes the app declares.
//! Each route has one counter table per method, allocated the first time that method
//! is seen on it, indexed by status code; and one latency histogram with fixed buckets.
//!
//! ```
//! use data_bridge_api::metrics::Metrics;
//! let metrics = Metrics::new(vec!["/items/{id}".to_owned()]);
//! metrics.record(0, &http::Method::GET, 200, std::time::Duration::from_millis(3));
//! let text = metrics.render(0, 0);
//! assert!(text.contains(
//!     "data_bridge_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"200\"} 1"
//! ));
//! ```

use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use http::Method;

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "<unmatched>";

/// Upper bounds of the latency histogram's buckets, in seconds (`+Inf` is implied).
pub const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The methods counted under their own name; anything else is `OTHER`.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];
const METHOD_SLOTS: usize = METHODS.len() + 1;

/// Status codes 100..=599 each have a counter.
const FIRST_STATUS: u16 = 100;
const STATUS_SLOTS: usize = 500;

fn method_index(method: &Method) -> usize {
    METHODS
        .iter()
        .position(|m| m == method)
        .unwrap_or(METHODS.len())
}

fn method_name(index: usize) -> &'static str {
    METHODS.get(index).map(Method::as_str).unwrap_or("OTHER")
}

type StatusTable = Box<[AtomicU64]>;

/// One route's counters and histogram.
struct RouteStats {
    label: String,
    by_method: [OnceLock<StatusTable>; METHOD_SLOTS],
    /// Observations per bucket (not cumulative; the last one is `+Inf`).
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl RouteStats {
    fn new(label: String) -> Self {
        RouteStats {
            label,
            by_method: Default::default(),
            buckets: Default::default(),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

/// Every metric of one server.
pub struct Metrics {
    /// One per route of the router (same index), then [`UNMATCHED`].
    routes: Vec<RouteStats>,
    in_flight: AtomicI64,
    loop_lag_nanos: AtomicU64,
    /// When the outstanding loop probe was posted (nanoseconds since `epoch`), or 0.
    probe_sent: AtomicU64,
    probing: AtomicBool,
    epoch: Instant,
    /// Written by the supervisor: how many workers it restarted (see `supervisor.py`).
    restarts: Option<File>,
}

impl Metrics {
    /// Metrics for a router whose routes have these templates, in route order.
    pub fn new(templates: Vec<String>) -> Self {
        let mut routes: Vec<RouteStats> = templates.into_iter().map(RouteStats::new).collect();
        routes.push(RouteStats::new(UNMATCHED.to_owned()));
        Metrics {
            routes,
            in_flight: AtomicI64::new(0),
            loop_lag_nanos: AtomicU64::new(0),
            probe_sent: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            epoch: Instant::now(),
            restarts: None,
        }
    }

    /// Reads the worker restart count from `file` (8 bytes, little-endian, at offset 0)
    /// on every scrape.
    pub fn with_restarts(mut self, file: File) -> Self {
        self.restarts = Some(file);
        self
    }

    /// The index requests that matched no route are recorded under.
    pub fn unmatched(&self) -> usize {
        self.routes.len() - 1
    }

    /// A request started.
    pub fn started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// A request started with [`Metrics::started`] ended with `status` after `elapsed`
    /// on route `route` (an index out of range counts as unmatched).
    pub fn finished(&self, route: usize, method: &Method, status: u16, elapsed: Duration) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.record(route, method, status, elapsed);
    }

    /// Counts one request without touching the in-flight gauge.
    pub fn record(&self, route: usize, method: &Method, status: u16, elapsed: Duration) {
        let Some(stats) = self
            .routes
            .get(route)
            .or_else(|| self.routes.get(self.unmatched()))
        else {
            return;
        };
        let slot = usize::from(status.clamp(FIRST_STATUS, 599) - FIRST_STATUS);
        let table = stats.by_method[method_index(method)]
            .get_or_init(|| (0..STATUS_SLOTS).map(|_| AtomicU64::new(0)).collect());
        table[slot].fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|upper| secs <= *upper)
            .unwrap_or(BUCKETS.len());
        stats.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        stats.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Starts a loop probe that was due at `due` unless one is outstanding; returns
    /// whether one was started. The caller then runs [`Metrics::probe_done`] on the
    /// loop thread. Lag counts from `due`, not from now: when the runtime is driven by
    /// the loop thread itself, a blocked loop also delays the timer that posts probes.
    pub fn probe_start(&self, due: Instant) -> bool {
        if self.probing.swap(true, Ordering::AcqRel) {
            return false;
        }
        let due = u64::try_from(due.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.probe_sent.store(due, Ordering::Release);
        true
    }

    /// The loop ran the probe posted by [`Metrics::probe_start`].
    pub fn probe_done(&self) {
        let sent = self.probe_sent.swap(0, Ordering::AcqRel);
        if sent != 0 {
            let lag = self.now_nanos().saturating_sub(sent);
            self.loop_lag_nanos.store(lag, Ordering::Release);
        }
        self.probing.store(false, Ordering::Release);
    }

    /// The last measured loop lag, or the age of the outstanding probe if it is larger
    /// (a loop that is stuck shows a growing lag, not the last good value).
    pub fn loop_lag(&self) -> Duration {
        let last = self.loop_lag_nanos.load(Ordering::Acquire);
        let sent = self.probe_sent.load(Ordering::Acquire);
        let waiting = if sent == 0 {
            0
        } else {
            self.now_nanos().saturating_sub(sent)
        };
        Duration::from_nanos(last.max(waiting))
    }

    fn restarts(&self) -> u64 {
        let mut buf = [0u8; 8];
        match &self.restarts {
            Some(file) => match file.read_at(&mut buf, 0) {
                Ok(8) => u64::from_le_bytes(buf),
                _ => 0,
            },
            None => 0,
        }
    }

    /// The exposition text (format 0.0.4); `queue_depth` is the Python work queued or
    /// running, `access_log_dropped` the access log lines dropped so far.
    pub fn render(&self, queue_depth: usize, access_log_dropped: u64) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP data_bridge_requests_total Requests answered, by method, route template and status.\n\
             # TYPE data_bridge_requests_total counter\n",
        );
        for stats in &self.routes {
            let route = escape(&stats.label);
            for (m, table) in stats.by_method.iter().enumerate() {
                let Some(table) = table.get() else { continue };
                for (slot, count) in table.iter().enumerate() {
                    let n = count.load(Ordering::Relaxed);
                    if n > 0 {
                        let status = slot + usize::from(FIRST_STATUS);
                        let _ = writeln!(
                            out,
                            "data_bridge_requests_total{{method=\"{}\",route=\"{route}\",status=\"{status}\"}} {n}",
                            method_name(m)
                        );
                    }
                }
            }
        }
        out.push_str(
            "# HELP data_bridge_request_duration_seconds Time from the request head to the end of the response, by route template.\n\
             # TYPE data_bridge_request_duration_seconds histogram\n",
        );
        for stats in &self.routes {
            let counts: Vec<u64> = stats
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let route = escape(&stats.label);
            let mut cumulative = 0;
            for (upper, n) in BUCKETS.iter().zip(&counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "data_bridge_request_duration_seconds_bucket{{route=\"{route}\",le=\"{upper}\"}} {cumulative}"
                );
            }
            let sum = Duration::from_nanos(stats.sum_nanos.load(Ordering::Relaxed)).as_secs_f64();
            let _ = writeln!(
                out,
                "data_bridge_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}\n\
                 data_bridge_request_duration_seconds_sum{{route=\"{route}\"}} {sum}\n\
                 data_bridge_request_duration_seconds_count{{route=\"{route}\"}} {total}"
            );
        }
        let _ = write!(
            out,
            "# HELP data_bridge_requests_in_flight Requests being answered.\n\
             # TYPE data_bridge_requests_in_flight gauge\n\
             data_bridge_requests_in_flight {}\n\
             # HELP data_bridge_python_queue_depth Python work in flight: handlers queued or running, sync stream producers, open WebSockets, unfinished background tasks.\n\
             # TYPE data_bridge_python_queue_depth gauge\n\
             data_bridge_python_queue_depth {queue_depth}\n\
             # HELP data_bridge_event_loop_lag_seconds How late the event loop ran its last probe (posted every second).\n\
             # TYPE data_bridge_event_loop_lag_seconds gauge\n\
             data_bridge_event_loop_lag_seconds {}\n\
             # HELP data_bridge_access_log_dropped_total Access log lines dropped because standard error was too slow.\n\
             # TYPE data_bridge_access_log_dropped_total counter\n\
             data_bridge_access_log_dropped_total {}\n\
             # HELP data_bridge_worker_restarts_total Workers the supervisor restarted after they died.\n\
             # TYPE data_bridge_worker_restarts_total counter\n\
             data_bridge_worker_restarts_total {}\n",
            self.in_flight.load(Ordering::Relaxed).max(0),
            self.loop_lag().as_secs_f64(),
            access_log_dropped,
            self.restarts(),
        );
        out
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_method_route_and_status() {
        let m = Metrics::new(vec!["/a".into(), "/b/{id}".into()]);
        for _ in 0..3 {
            m.started();
            m.finished(1, &Method::GET, 200, Duration::from_millis(2));
        }
        m.record(
            1,
            &Method::from_bytes(b"PURGE").unwrap_or(Method::GET),
            405,
            Duration::ZERO,
        );
        m.record(m.unmatched(), &Method::GET, 404, Duration::ZERO);
        m.record(99, &Method::POST, 404, Duration::ZERO);
        let text = m.render(0, 0);
        assert!(text.contains(
            "data_bridge_requests_total{method=\"GET\",route=\"/b/{id}\",status=\"200\"} 3"
        ));
        assert!(text.contains(
            "data_bridge_requests_total{method=\"OTHER\",route=\"/b/{id}\",status=\"405\"} 1"
        ));
        assert!(text.contains(
            "data_bridge_requests_total{method=\"POST\",route=\"<unmatched>\",status=\"404\"} 1"
        ));
        assert!(text.contains("data_bridge_requests_in_flight 0"));
        assert!(!text.contains("route=\"/a\""));
    }

    #[test]
    fn histogram_is_cumulative() {
        let m = Metrics::new(vec!["/a".into()]);
        m.record(0, &Method::GET, 200, Duration::from_millis(3));
        m.record(0, &Method::GET, 200, Duration::from_secs(20));
        let text = m.render(0, 0);
        assert!(text
            .contains("data_bridge_request_duration_seconds_bucket{route=\"/a\",le=\"0.001\"} 0"));
        assert!(text
            .contains("data_bridge_request_duration_seconds_bucket{route=\"/a\",le=\"0.005\"} 1"));
        assert!(
            text.contains("data_bridge_request_duration_seconds_bucket{route=\"/a\",le=\"10\"} 1")
        );
        assert!(text
            .contains("data_bridge_request_duration_seconds_bucket{route=\"/a\",le=\"+Inf\"} 2"));
        assert!(text.contains("data_bridge_request_duration_seconds_count{route=\"/a\"} 2"));
    }

    #[test]
    fn an_outstanding_probe_shows_as_lag() {
        let m = Metrics::new(vec![]);
        assert!(m.probe_start(Instant::now()));
        assert!(!m.probe_start(Instant::now()));
        std::thread::sleep(Duration::from_millis(5));
        assert!(m.loop_lag() >= Duration::from_millis(5));
        m.probe_done();
        assert!(m.loop_lag() >= Duration::from_millis(5));
        assert!(m.probe_start(Instant::now()));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
