//! Prometheus metrics kept with atomics only, so recording a request never takes a
//! lock or the GIL, and rendered as the text exposition format by the native
//! `/metrics` route.
//!
//! Requests are counted per route *template* (`/users/{id}`, or `<unmatched>`), never
//! per raw path, so the number of series is bounded by the routes the app declares.
//! Each (route, method, status) counter and each route's latency histogram is a series
//! in a [`region`] of memory, created the first time it is seen and then found again
//! through a per-route table, so recording is a few atomic adds.
//!
//! Under a supervisor the region is a file every worker maps, so `/metrics` sums every
//! worker's series: any worker answers for the whole server, and a worker that dies
//! leaves its counts to its replacement (counters never go backwards). Gauges are per
//! worker slot: in-flight requests and queue depth are summed over live workers, the
//! loop lag is the largest.
//!
//! Why not prometheus-client (or the `prometheus` crate): their series live in one
//! process's heap, behind a lock-guarded map from label set to counter. Here every
//! worker process adds to the same shared-memory counters with one atomic each, so any
//! worker can answer `/metrics` for the whole server and a restarted worker's counts
//! are not lost; no library keeps its registry in memory shared across processes. The
//! text format written here is the small part of the exposition format those counters
//! need (label values escaped as the format says, which is not JSON escaping).
//!
//! ```
//! use data_bridge_api::metrics::Metrics;
//! let metrics = Metrics::new(vec!["/items/{id}".to_owned()], None)?;
//! metrics.record(0, &http::Method::GET, 200, std::time::Duration::from_millis(3));
//! let text = metrics.render(0, 0);
//! assert!(text.contains(
//!     "data_bridge_requests_total{method=\"GET\",route=\"/items/{id}\",status=\"200\"} 1"
//! ));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use http::Method;
use parking_lot::Mutex;

pub mod region;

use region::{monotonic_nanos, Kind, Region, Slot, MAX_SLOTS};

/// The label of requests that matched no route.
pub const UNMATCHED: &str = "<unmatched>";

/// Upper bounds of the latency histogram's buckets, in seconds (`+Inf` is implied).
pub const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Words of a latency series: one per bucket (not cumulative, `+Inf` last), then the
/// sum in nanoseconds.
const LATENCY_WORDS: usize = BUCKETS.len() + 2;
const SUM_WORD: usize = BUCKETS.len() + 1;

/// Where a series lives when the region is full: a spare word nothing reads.
const NOWHERE: usize = usize::MAX;

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

/// Offsets in the region of one route's request counters for one method, by status.
type StatusTable = Box<[OnceLock<usize>]>;

/// Where one route's series are, found once per process.
struct RouteStats {
    label: String,
    by_method: [OnceLock<StatusTable>; METHOD_SLOTS],
    latency: OnceLock<usize>,
}

impl RouteStats {
    fn new(label: String) -> Self {
        RouteStats {
            label,
            by_method: Default::default(),
            latency: OnceLock::new(),
        }
    }
}

type SeriesKey = (Kind, u8, u16, String);

/// Every metric of one server (and, in a shared region, of its sibling workers).
pub struct Metrics {
    /// One per route of the router (same index), then [`UNMATCHED`].
    routes: Vec<RouteStats>,
    region: Region,
    /// This worker's slot in `region`.
    slot: usize,
    /// Series a previous worker of this slot left, not yet taken over.
    adopted: Mutex<HashMap<SeriesKey, usize>>,
    /// Access log lines this slot's earlier workers dropped.
    dropped_before: u64,
    probing: AtomicBool,
}

impl Metrics {
    /// Metrics for a router whose routes have these templates, in route order; in the
    /// supervisor's `shared` file when there is one (else, or if it cannot be used,
    /// this process's own memory).
    pub fn new(templates: Vec<String>, shared: Option<&File>) -> std::io::Result<Self> {
        let mut routes: Vec<RouteStats> = templates.into_iter().map(RouteStats::new).collect();
        routes.push(RouteStats::new(UNMATCHED.to_owned()));
        let pid = u64::from(std::process::id()).max(1);
        let in_shared = shared
            .and_then(|file| Region::shared(file).ok())
            .and_then(|region| region.claim(pid).map(|slot| (region, slot)));
        let (region, slot) = match in_shared {
            Some(found) => found,
            None => {
                let region = Region::private()?;
                let slot = region.claim(pid).unwrap_or(0);
                (region, slot)
            }
        };
        let adopted = region
            .series()
            .filter(|s| s.slot as usize == slot)
            .map(|s| {
                (
                    (s.kind, s.method, s.status, s.label.to_owned()),
                    s.values_at,
                )
            })
            .collect();
        let dropped_before = region.slot(slot, Slot::LogDropped).load(Ordering::Relaxed);
        Ok(Metrics {
            routes,
            region,
            slot,
            adopted: Mutex::new(adopted),
            dropped_before,
            probing: AtomicBool::new(false),
        })
    }

    /// The index requests that matched no route are recorded under.
    pub fn unmatched(&self) -> usize {
        self.routes.len() - 1
    }

    fn gauge(&self, field: Slot) -> &AtomicU64 {
        self.region.slot(self.slot, field)
    }

    /// Word `index` of the series at `at`.
    fn value(&self, at: usize, index: usize) -> &AtomicU64 {
        self.region.word(at.saturating_add(8 * index))
    }

    /// The series for this key: the one this slot's previous worker left, or a new one.
    fn series(&self, kind: Kind, method: u8, status: u16, label: &str, words: usize) -> usize {
        let key = (kind, method, status, label.to_owned());
        if let Some(at) = self.adopted.lock().remove(&key) {
            return at;
        }
        let slot = u32::try_from(self.slot).unwrap_or(u32::MAX);
        self.region
            .append(kind, method, status, slot, label, words)
            .unwrap_or(NOWHERE)
    }

    /// A request started.
    pub fn started(&self) {
        self.gauge(Slot::InFlight).fetch_add(1, Ordering::Relaxed);
    }

    /// A request started with [`Metrics::started`] ended with `status` after `elapsed`
    /// on route `route` (an index out of range counts as unmatched).
    pub fn finished(&self, route: usize, method: &Method, status: u16, elapsed: Duration) {
        // Wrapping: the word holds a signed count.
        self.gauge(Slot::InFlight).fetch_sub(1, Ordering::Relaxed);
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
        let status = status.clamp(FIRST_STATUS, 599);
        let m = method_index(method);
        let table =
            stats.by_method[m].get_or_init(|| (0..STATUS_SLOTS).map(|_| OnceLock::new()).collect());
        let at = *table[usize::from(status - FIRST_STATUS)]
            .get_or_init(|| self.series(Kind::Requests, m as u8, status, &stats.label, 1));
        self.value(at, 0).fetch_add(1, Ordering::Relaxed);
        let secs = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|upper| secs <= *upper)
            .unwrap_or(BUCKETS.len());
        let at = *stats
            .latency
            .get_or_init(|| self.series(Kind::Latency, 0, 0, &stats.label, LATENCY_WORDS));
        self.value(at, bucket).fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.value(at, SUM_WORD).fetch_add(nanos, Ordering::Relaxed);
    }

    /// Starts a loop probe that was due at `due` unless one is outstanding; returns
    /// whether one was started. The caller then runs [`Metrics::probe_done`] on the
    /// loop thread. Lag counts from `due`, not from now: when the runtime is driven by
    /// the loop thread itself, a blocked loop also delays the timer that posts probes.
    pub fn probe_start(&self, due: Instant) -> bool {
        if self.probing.swap(true, Ordering::AcqRel) {
            return false;
        }
        let late = u64::try_from(due.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let due = monotonic_nanos().saturating_sub(late).max(1);
        self.gauge(Slot::ProbeDue).store(due, Ordering::Release);
        true
    }

    /// The loop ran the probe posted by [`Metrics::probe_start`].
    pub fn probe_done(&self) {
        let due = self.gauge(Slot::ProbeDue).swap(0, Ordering::AcqRel);
        if due != 0 {
            let lag = monotonic_nanos().saturating_sub(due);
            self.gauge(Slot::LagNanos).store(lag, Ordering::Release);
        }
        self.probing.store(false, Ordering::Release);
    }

    fn lag_of(&self, slot: usize) -> u64 {
        let last = self
            .region
            .slot(slot, Slot::LagNanos)
            .load(Ordering::Acquire);
        let due = self
            .region
            .slot(slot, Slot::ProbeDue)
            .load(Ordering::Acquire);
        let waiting = if due == 0 {
            0
        } else {
            monotonic_nanos().saturating_sub(due)
        };
        last.max(waiting)
    }

    /// This worker's last measured loop lag, or the age of the outstanding probe if it
    /// is larger (a loop that is stuck shows a growing lag, not the last good value).
    pub fn loop_lag(&self) -> Duration {
        Duration::from_nanos(self.lag_of(self.slot))
    }

    /// Makes this worker's queue depth and dropped access log lines visible to the
    /// other workers' `/metrics` (they change without a request being recorded).
    pub fn publish(&self, queue_depth: usize, access_log_dropped: u64) {
        let depth = u64::try_from(queue_depth).unwrap_or(u64::MAX);
        self.gauge(Slot::QueueDepth).store(depth, Ordering::Relaxed);
        let dropped = self.dropped_before.saturating_add(access_log_dropped);
        self.gauge(Slot::LogDropped)
            .store(dropped, Ordering::Relaxed);
    }

    /// The exposition text (format 0.0.4) for every worker sharing the region;
    /// `queue_depth` is this worker's Python work queued or running,
    /// `access_log_dropped` its access log lines dropped so far.
    pub fn render(&self, queue_depth: usize, access_log_dropped: u64) -> String {
        self.publish(queue_depth, access_log_dropped);
        let mut requests: BTreeMap<(&str, u8, u16), u64> = BTreeMap::new();
        let mut latency: BTreeMap<&str, [u64; LATENCY_WORDS]> = BTreeMap::new();
        for series in self.region.series() {
            match series.kind {
                Kind::Requests => {
                    let n = self.value(series.values_at, 0).load(Ordering::Relaxed);
                    *requests
                        .entry((series.label, series.method, series.status))
                        .or_default() += n;
                }
                Kind::Latency => {
                    let sums = latency.entry(series.label).or_default();
                    for (i, sum) in sums.iter_mut().enumerate().take(series.values) {
                        *sum += self.value(series.values_at, i).load(Ordering::Relaxed);
                    }
                }
            }
        }
        let mut out = String::with_capacity(4096);
        out.push_str(
            "# HELP data_bridge_requests_total Requests answered, by method, route template and status.\n\
             # TYPE data_bridge_requests_total counter\n",
        );
        for ((label, method, status), n) in requests {
            if n > 0 {
                let _ = writeln!(
                    out,
                    "data_bridge_requests_total{{method=\"{}\",route=\"{}\",status=\"{status}\"}} {n}",
                    method_name(usize::from(method)),
                    escape(label),
                );
            }
        }
        out.push_str(
            "# HELP data_bridge_request_duration_seconds Time from the request head to the end of the response, by route template.\n\
             # TYPE data_bridge_request_duration_seconds histogram\n",
        );
        for (label, words) in latency {
            let counts = &words[..=BUCKETS.len()];
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let route = escape(label);
            let mut cumulative = 0;
            for (upper, n) in BUCKETS.iter().zip(counts) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "data_bridge_request_duration_seconds_bucket{{route=\"{route}\",le=\"{upper}\"}} {cumulative}"
                );
            }
            let sum = Duration::from_nanos(words[SUM_WORD]).as_secs_f64();
            let _ = writeln!(
                out,
                "data_bridge_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {total}\n\
                 data_bridge_request_duration_seconds_sum{{route=\"{route}\"}} {sum}\n\
                 data_bridge_request_duration_seconds_count{{route=\"{route}\"}} {total}"
            );
        }
        let live: Vec<usize> = self.region.live_slots().collect();
        let in_flight: i64 = live
            .iter()
            .map(|&i| self.region.slot(i, Slot::InFlight).load(Ordering::Relaxed) as i64)
            .sum();
        let queued: u64 = live
            .iter()
            .map(|&i| {
                self.region
                    .slot(i, Slot::QueueDepth)
                    .load(Ordering::Relaxed)
            })
            .sum();
        let lag = live.iter().map(|&i| self.lag_of(i)).max().unwrap_or(0);
        let dropped: u64 = (0..MAX_SLOTS)
            .map(|i| {
                self.region
                    .slot(i, Slot::LogDropped)
                    .load(Ordering::Relaxed)
            })
            .sum();
        let _ = write!(
            out,
            "# HELP data_bridge_requests_in_flight Requests being answered.\n\
             # TYPE data_bridge_requests_in_flight gauge\n\
             data_bridge_requests_in_flight {}\n\
             # HELP data_bridge_python_queue_depth Python work in flight: handlers queued or running, sync stream producers, open WebSockets, unfinished background tasks.\n\
             # TYPE data_bridge_python_queue_depth gauge\n\
             data_bridge_python_queue_depth {queued}\n\
             # HELP data_bridge_event_loop_lag_seconds How late the event loop ran its last probe (posted every second); the largest over the workers.\n\
             # TYPE data_bridge_event_loop_lag_seconds gauge\n\
             data_bridge_event_loop_lag_seconds {}\n\
             # HELP data_bridge_access_log_dropped_total Access log lines dropped because standard error was too slow.\n\
             # TYPE data_bridge_access_log_dropped_total counter\n\
             data_bridge_access_log_dropped_total {dropped}\n\
             # HELP data_bridge_worker_restarts_total Workers the supervisor restarted after they died.\n\
             # TYPE data_bridge_worker_restarts_total counter\n\
             data_bridge_worker_restarts_total {}\n",
            in_flight.max(0),
            Duration::from_nanos(lag).as_secs_f64(),
            self.region.restarts(),
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
    fn counts_by_method_route_and_status() -> std::io::Result<()> {
        let m = Metrics::new(vec!["/a".into(), "/b/{id}".into()], None)?;
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
        Ok(())
    }

    #[test]
    fn histogram_is_cumulative() -> std::io::Result<()> {
        let m = Metrics::new(vec!["/a".into()], None)?;
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
        Ok(())
    }

    #[test]
    fn an_outstanding_probe_shows_as_lag() -> std::io::Result<()> {
        let m = Metrics::new(vec![], None)?;
        assert!(m.probe_start(Instant::now()));
        assert!(!m.probe_start(Instant::now()));
        std::thread::sleep(Duration::from_millis(5));
        assert!(m.loop_lag() >= Duration::from_millis(5));
        m.probe_done();
        assert!(m.loop_lag() >= Duration::from_millis(5));
        assert!(m.probe_start(Instant::now()));
        Ok(())
    }

    #[test]
    fn workers_sharing_a_file_answer_for_each_other() -> std::io::Result<()> {
        let path = std::env::temp_dir().join(format!("metrics-{}", std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)?;
        std::fs::remove_file(&path)?;
        file.set_len(1 << 20)?;
        let a = Metrics::new(vec!["/a".into()], Some(&file))?;
        let b = Metrics::new(vec!["/a".into()], Some(&file))?;
        assert_ne!(a.slot, b.slot);
        a.record(0, &Method::GET, 200, Duration::from_millis(2));
        b.record(0, &Method::GET, 200, Duration::from_millis(2));
        b.started();
        let text = a.render(1, 0);
        assert!(text
            .contains("data_bridge_requests_total{method=\"GET\",route=\"/a\",status=\"200\"} 2"));
        assert!(text.contains("data_bridge_request_duration_seconds_count{route=\"/a\"} 2"));
        assert!(text.contains("data_bridge_requests_in_flight 1"));
        // `b` dies; the supervisor frees its slot and the next worker takes it over.
        let slot = b.slot;
        drop(b);
        a.region
            .slot(slot, Slot::InFlight)
            .store(0, Ordering::Relaxed);
        a.region.slot(slot, Slot::Pid).store(0, Ordering::Release);
        let c = Metrics::new(vec!["/a".into()], Some(&file))?;
        assert_eq!(c.slot, slot);
        c.record(0, &Method::GET, 200, Duration::from_millis(2));
        let text = c.render(0, 0);
        assert!(text
            .contains("data_bridge_requests_total{method=\"GET\",route=\"/a\",status=\"200\"} 3"));
        assert!(text.contains("data_bridge_requests_in_flight 0"));
        assert_eq!(c.region.series().count(), 4);
        Ok(())
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
