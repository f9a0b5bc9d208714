//! Conditional and range requests for files (RFC 9110 §13 and §14): given what the
//! client sent (`If-None-Match`, `If-Modified-Since`, `Range`, `If-Range`) and the
//! file's validators (size and modification time), decide between `200`, `206`,
//! `304` and `416`. Pure functions, so every rule is unit-tested without a server.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use data_bridge_api::conditional::{decide, Conditions, Decision, Validators};
//! let v = Validators::new(100, Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
//! let mut req = http::HeaderMap::new();
//! req.insert(http::header::RANGE, http::HeaderValue::from_static("bytes=-10"));
//! let cond = Conditions::from_request(&http::Method::GET, &req);
//! assert_eq!(decide(&cond, &v, true), Decision::Partial { start: 90, end: 99 });
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, HeaderValue, Method};

/// The last second `httpdate` can format (31 December 9999, 23:59:59 UTC).
const LAST_HTTP_DATE: u64 = 253_402_300_799;

/// The request headers that decide how a file is answered, copied out of the
/// request before its head is handed to a Python handler.
#[derive(Clone, Debug, Default)]
pub struct Conditions {
    /// A `HEAD` request: headers only.
    pub head: bool,
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
    range: Option<HeaderValue>,
    if_range: Option<HeaderValue>,
}

impl Conditions {
    /// The conditions of a request with `method` and `headers`.
    pub fn from_request(method: &Method, headers: &HeaderMap) -> Self {
        Conditions {
            head: method == Method::HEAD,
            if_none_match: headers.get(header::IF_NONE_MATCH).cloned(),
            if_modified_since: headers.get(header::IF_MODIFIED_SINCE).cloned(),
            range: headers.get(header::RANGE).cloned(),
            if_range: headers.get(header::IF_RANGE).cloned(),
        }
    }
}

/// What identifies one version of a file.
#[derive(Clone, Debug)]
pub struct Validators {
    /// The length in bytes.
    pub len: u64,
    /// The modification time in whole seconds since the epoch, if it can be written
    /// as an HTTP date.
    modified: Option<u64>,
    etag: String,
}

impl Validators {
    /// The validators of a file of `len` bytes last modified at `modified`.
    pub fn new(len: u64, modified: Option<SystemTime>) -> Self {
        let since_epoch = modified
            .and_then(|m| m.duration_since(UNIX_EPOCH).ok())
            .unwrap_or_default();
        // Size plus modification time to the nanosecond, as nginx does (in seconds):
        // cheap to compute and changes whenever the file is rewritten.
        let etag = format!(
            "\"{:x}-{:x}-{:x}\"",
            since_epoch.as_secs(),
            since_epoch.subsec_nanos(),
            len
        );
        let secs = since_epoch.as_secs();
        Validators {
            len,
            modified: (modified.is_some() && secs <= LAST_HTTP_DATE).then_some(secs),
            etag,
        }
    }

    /// The `ETag` header (a strong entity tag).
    pub fn etag(&self) -> HeaderValue {
        // Only hex digits, '-' and quotes: always a valid header value.
        HeaderValue::from_str(&self.etag).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
    }

    /// The `Last-Modified` header, if the modification time is known.
    pub fn last_modified(&self) -> Option<HeaderValue> {
        let secs = self.modified?;
        let date = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(secs));
        HeaderValue::from_str(&date).ok()
    }
}

/// How to answer a request for a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// `304 Not Modified`: the client's copy is current.
    NotModified,
    /// `200` with the whole file.
    Full,
    /// `206` with bytes `start..=end`.
    Partial {
        /// The first byte.
        start: u64,
        /// The last byte (inclusive).
        end: u64,
    },
    /// `416`: no requested byte lies within the file.
    Unsatisfiable,
}

/// Decides how to answer; `ranges` is false when the response would not be a `200`
/// anyway (a `FileResponse` with another status), which also disables `304`.
pub fn decide(cond: &Conditions, v: &Validators, ranges: bool) -> Decision {
    if !ranges {
        return Decision::Full;
    }
    // RFC 9110 §13.2.2: If-None-Match first; If-Modified-Since only without it.
    if let Some(inm) = &cond.if_none_match {
        if none_match_fails(inm, &v.etag) {
            return Decision::NotModified;
        }
    } else if let (Some(ims), Some(modified)) = (&cond.if_modified_since, v.modified) {
        if parse_date(ims).is_some_and(|since| modified <= since) {
            return Decision::NotModified;
        }
    }
    let Some(range) = &cond.range else {
        return Decision::Full;
    };
    if let Some(if_range) = &cond.if_range {
        if !if_range_holds(if_range, v) {
            return Decision::Full;
        }
    }
    parse_range(range.as_bytes(), v.len).unwrap_or(Decision::Full)
}

fn opaque(tag: &str) -> &str {
    tag.trim().strip_prefix("W/").unwrap_or(tag.trim())
}

/// Whether `If-None-Match` matches the current entity tag (weak comparison), which
/// makes the condition fail and the answer a `304`.
fn none_match_fails(header: &HeaderValue, etag: &str) -> bool {
    let Ok(text) = header.to_str() else {
        return false;
    };
    if text.trim() == "*" {
        return true;
    }
    text.split(',').any(|tag| opaque(tag) == etag)
}

/// `If-Range` holds when it names the current version: a strong entity tag equal to
/// ours, or exactly our `Last-Modified` date (RFC 9110 §13.1.5).
fn if_range_holds(header: &HeaderValue, v: &Validators) -> bool {
    let Ok(text) = header.to_str() else {
        return false;
    };
    let text = text.trim();
    if text.starts_with('"') {
        return text == v.etag;
    }
    if text.starts_with("W/") {
        return false;
    }
    matches!((parse_date(header), v.modified), (Some(d), Some(m)) if d == m)
}

fn parse_date(header: &HeaderValue) -> Option<u64> {
    let text = header.to_str().ok()?;
    let time = httpdate::parse_http_date(text.trim()).ok()?;
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Parses a `Range` header for a file of `len` bytes into `Partial` or
/// `Unsatisfiable`; `None` to ignore it (malformed, another unit, or several ranges,
/// which RFC 9110 §14.2 lets a server answer with the whole file).
fn parse_range(header: &[u8], len: u64) -> Option<Decision> {
    let text = std::str::from_utf8(header).ok()?.trim();
    let (unit, spec) = text.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if first.is_empty() {
        // `-n`: the last n bytes.
        if !digits(last) {
            return None;
        }
        let n: u64 = last.parse().ok()?;
        if n == 0 || len == 0 {
            return Some(Decision::Unsatisfiable);
        }
        return Some(Decision::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        });
    }
    if !digits(first) || !(last.is_empty() || digits(last)) {
        return None;
    }
    let start: u64 = first.parse().ok()?;
    let end = if last.is_empty() {
        u64::MAX
    } else {
        let end: u64 = last.parse().ok()?;
        if end < start {
            return None;
        }
        end
    };
    if start >= len {
        return Some(Decision::Unsatisfiable);
    }
    Some(Decision::Partial {
        start,
        end: end.min(len - 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validators() -> Validators {
        Validators::new(1000, Some(UNIX_EPOCH + Duration::new(1_700_000_000, 5)))
    }

    fn cond(pairs: &[(header::HeaderName, &'static str)]) -> Conditions {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(name.clone(), HeaderValue::from_static(value));
        }
        Conditions::from_request(&Method::GET, &headers)
    }

    #[test]
    fn etag_and_date() {
        let v = validators();
        assert_eq!(v.etag(), "\"6553f100-5-3e8\"");
        assert_eq!(
            v.last_modified()
                .map(|h| h.to_str().map(str::to_owned).ok()),
            Some(Some("Tue, 14 Nov 2023 22:13:20 GMT".to_owned()))
        );
        let far = UNIX_EPOCH + Duration::from_secs(LAST_HTTP_DATE + 1);
        assert!(Validators::new(1, Some(far)).last_modified().is_none());
        assert!(Validators::new(1, None).last_modified().is_none());
    }

    #[test]
    fn if_none_match() {
        let v = validators();
        let cases = [
            ("\"6553f100-5-3e8\"", Decision::NotModified),
            ("W/\"6553f100-5-3e8\"", Decision::NotModified),
            ("\"x\", \"6553f100-5-3e8\"", Decision::NotModified),
            ("*", Decision::NotModified),
            ("\"other\"", Decision::Full),
        ];
        for (value, want) in cases {
            let c = cond(&[(header::IF_NONE_MATCH, value)]);
            assert_eq!(decide(&c, &v, true), want, "{value}");
        }
        // A non-matching If-None-Match wins over a matching If-Modified-Since.
        let c = cond(&[
            (header::IF_NONE_MATCH, "\"other\""),
            (header::IF_MODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:20 GMT"),
        ]);
        assert_eq!(decide(&c, &v, true), Decision::Full);
        // Not for a response that is not a 200 anyway.
        let c = cond(&[(header::IF_NONE_MATCH, "*")]);
        assert_eq!(decide(&c, &v, false), Decision::Full);
    }

    #[test]
    fn if_modified_since() {
        let v = validators();
        let cases = [
            ("Tue, 14 Nov 2023 22:13:20 GMT", Decision::NotModified),
            ("Wed, 15 Nov 2023 00:00:00 GMT", Decision::NotModified),
            ("Tue, 14 Nov 2023 22:13:19 GMT", Decision::Full),
            ("yesterday", Decision::Full),
        ];
        for (value, want) in cases {
            let c = cond(&[(header::IF_MODIFIED_SINCE, value)]);
            assert_eq!(decide(&c, &v, true), want, "{value}");
        }
    }

    #[test]
    fn ranges() {
        let partial = |start, end| Some(Decision::Partial { start, end });
        let unsatisfiable = Some(Decision::Unsatisfiable);
        let cases = [
            ("bytes=0-9", partial(0, 9)),
            ("bytes=990-", partial(990, 999)),
            ("bytes=990-5000", partial(990, 999)),
            ("bytes=-10", partial(990, 999)),
            ("bytes=-5000", partial(0, 999)),
            ("Bytes = 5-5", partial(5, 5)),
            ("bytes=1000-", unsatisfiable),
            ("bytes=-0", unsatisfiable),
            ("bytes=9-0", None),
            ("bytes=0-1,5-6", None),
            ("items=0-1", None),
            ("bytes=a-b", None),
            ("bytes=-", None),
            ("bytes=+1-2", None),
        ];
        for (value, want) in cases {
            assert_eq!(parse_range(value.as_bytes(), 1000), want, "{value}");
        }
        assert_eq!(parse_range(b"bytes=-1", 0), unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-", 0), unsatisfiable);
    }

    #[test]
    fn if_range() {
        let v = validators();
        let cases = [
            ("\"6553f100-5-3e8\"", Decision::Partial { start: 0, end: 0 }),
            ("W/\"6553f100-5-3e8\"", Decision::Full),
            ("\"old\"", Decision::Full),
            (
                "Tue, 14 Nov 2023 22:13:20 GMT",
                Decision::Partial { start: 0, end: 0 },
            ),
            ("Tue, 14 Nov 2023 22:13:21 GMT", Decision::Full),
        ];
        for (value, want) in cases {
            let c = cond(&[(header::RANGE, "bytes=0-0"), (header::IF_RANGE, value)]);
            assert_eq!(decide(&c, &v, true), want, "{value}");
        }
        let c = cond(&[(header::RANGE, "bytes=5000-")]);
        assert_eq!(decide(&c, &v, true), Decision::Unsatisfiable);
    }

    mod proptests {
        use proptest::prelude::*;

        use super::*;

        /// `Range` values near the grammar: units, numbers at the edges of `u64`,
        /// suffixes, lists, spaces, and arbitrary bytes.
        fn range_value() -> impl Strategy<Value = Vec<u8>> {
            let number = prop_oneof![
                Just(String::new()),
                (0u64..2000).prop_map(|n| n.to_string()),
                any::<u64>().prop_map(|n| n.to_string()),
                Just("18446744073709551616".to_owned()),
                "[0-9+ -]{1,4}",
            ];
            let spec = (
                number.clone(),
                prop::sample::select(vec!["-", "--", "", " - "]),
                number,
            )
                .prop_map(|(a, dash, b)| format!("{a}{dash}{b}"));
            let unit = prop::sample::select(vec!["bytes", "BYTES", " bytes ", "items", ""]);
            prop_oneof![
                (unit, prop::collection::vec(spec, 1..3)).prop_map(|(unit, specs)| {
                    format!("{unit}={}", specs.join(",")).into_bytes()
                }),
                prop::collection::vec(any::<u8>(), 0..24),
            ]
        }

        fn header(bytes: &[u8]) -> Option<HeaderValue> {
            HeaderValue::from_bytes(bytes).ok()
        }

        proptest! {
            #[test]
            fn prop_satisfiable_ranges_lie_within_the_file(value in range_value(), len in prop_oneof![0u64..3000, any::<u64>()]) {
                match parse_range(&value, len) {
                    Some(Decision::Partial { start, end }) => {
                        prop_assert!(start <= end && end < len, "{start}-{end} of {len}");
                    }
                    Some(Decision::Unsatisfiable) | None => {}
                    Some(other) => prop_assert!(false, "{other:?}"),
                }
            }

            #[test]
            fn prop_conditional_requests_never_panic(
                range in range_value(),
                if_range in prop::collection::vec(any::<u8>(), 0..40),
                if_none_match in prop::collection::vec(any::<u8>(), 0..40),
                if_modified_since in prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..40),
                    Just(b"Tue, 14 Nov 2023 22:13:20 GMT".to_vec()),
                    Just(b"Fri, 31 Dec 9999 23:59:59 GMT".to_vec()),
                ],
                len in prop_oneof![0u64..3000, any::<u64>()],
                secs in prop_oneof![any::<u32>().prop_map(u64::from), any::<u64>()],
                nanos in 0u32..1_000_000_000,
            ) {
                let modified = UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
                let v = Validators::new(len, modified);
                let mut headers = HeaderMap::new();
                let pairs = [
                    (header::RANGE, &range),
                    (header::IF_RANGE, &if_range),
                    (header::IF_NONE_MATCH, &if_none_match),
                    (header::IF_MODIFIED_SINCE, &if_modified_since),
                ];
                for (name, value) in pairs {
                    if let Some(value) = header(value) {
                        headers.insert(name, value);
                    }
                }
                let cond = Conditions::from_request(&Method::GET, &headers);
                if let Decision::Partial { start, end } = decide(&cond, &v, true) {
                    prop_assert!(start <= end && end < len, "{start}-{end} of {len}");
                }
                prop_assert_eq!(decide(&cond, &v, false), Decision::Full);
                let _ = (v.etag(), v.last_modified());
            }
        }
    }
}
