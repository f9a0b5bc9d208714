//! Request ids: the client's (or the proxy's) `X-Request-ID` when it is usable, else a
//! new one, so that a line in the access log, the handler's own logs (it sees the id
//! in `request.headers`) and the client's response (`x-request-id`) can be matched.
//!
//! Ids are assigned in the header `RequestIDMiddleware` names, else in
//! [`HEADER`] when the access log is on (see [`super::Stack::request_id_header`]).

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use http::{HeaderMap, HeaderName, HeaderValue};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// What `RequestIDMiddleware` passes to the server
/// (`data_bridge._native.RequestIdOptions`). Building one checks the header name.
#[pyclass(module = "data_bridge._native", frozen, from_py_object)]
#[derive(Clone, Debug)]
pub struct RequestIdOptions {
    /// The header carrying the id (lower case).
    pub header_name: HeaderName,
}

#[pymethods]
impl RequestIdOptions {
    #[new]
    #[pyo3(signature = (*, header_name))]
    fn py_new(header_name: &str) -> PyResult<Self> {
        let header_name = HeaderName::from_bytes(header_name.as_bytes()).map_err(|_| {
            PyValueError::new_err(format!("bad request id header name {header_name:?}"))
        })?;
        Ok(RequestIdOptions { header_name })
    }

    /// The header carrying the id, in lower case.
    #[getter]
    fn header_name(&self) -> &str {
        self.header_name.as_str()
    }
}

/// The header carrying the id, in requests and responses.
pub static HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id that is kept as is.
pub const MAX_LEN: usize = 128;

/// The id of the request with `headers`, carried in header `name`: the incoming one
/// if it is 1 to [`MAX_LEN`] visible ASCII characters, else a new one, which is then
/// added to `headers` so the handler sees the same id.
pub fn assign(name: &HeaderName, headers: &mut HeaderMap) -> HeaderValue {
    if let Some(given) = headers.get(name) {
        let bytes = given.as_bytes();
        if !bytes.is_empty()
            && bytes.len() <= MAX_LEN
            && bytes.iter().all(|b| (0x21..=0x7e).contains(b))
        {
            return given.clone();
        }
    }
    let id = generate();
    headers.insert(name.clone(), id.clone());
    id
}

fn mix(mut z: u64) -> u64 {
    // splitmix64's finaliser: consecutive counters give unrelated-looking ids.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A new id: 32 hex digits, unique within the process (a counter) and, with
/// overwhelming probability, across processes (a random per-process seed).
pub fn generate() -> HeaderValue {
    static SEED: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let seed = *SEED.get_or_init(|| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.finish()
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Written by hand: this runs for every request while the access log is on, and
    // `format!` would cost more than the rest of the id's work.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (i, word) in [seed, mix(seed ^ n)].into_iter().enumerate() {
        for (j, digit) in text[i * 16..(i + 1) * 16].iter_mut().enumerate() {
            *digit = HEX[(word >> (60 - 4 * j) & 0xf) as usize];
        }
    }
    // One allocation whose clones (request, response, access log) share a count;
    // copied bytes would take a second one on the first clone. Hex digits are always
    // a valid header value.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .unwrap_or_else(|_| HeaderValue::from_static("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_a_usable_incoming_id() {
        let mut h = HeaderMap::new();
        h.insert(HEADER.clone(), HeaderValue::from_static("abc-123"));
        assert_eq!(assign(&HEADER, &mut h), "abc-123");
    }

    #[test]
    fn replaces_a_missing_or_unusable_id() {
        let mut h = HeaderMap::new();
        let id = assign(&HEADER, &mut h);
        assert_eq!(id.len(), 32);
        assert_eq!(h.get(&HEADER), Some(&id));
        let mut h = HeaderMap::new();
        h.insert(HEADER.clone(), HeaderValue::from_static("has space"));
        assert_ne!(assign(&HEADER, &mut h), "has space");
        assert_ne!(generate(), generate());
        let id = generate();
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
        // The first half is the process's seed.
        assert_eq!(id.as_bytes()[..16], generate().as_bytes()[..16]);
    }
}
