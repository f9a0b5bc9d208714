//! `ServerOptions`: every setting of a server, with its default, defined once.
//!
//! The defaults are the constants in [`default`]. Python reads them from
//! `data_bridge._native.ServerOptions()` (see `python/data_bridge/serve/defaults.py`), so the
//! keyword defaults of `data_bridge.start()`, the fields of `data-bridge serve`'s
//! `Config` and its `--help` all show the values the server uses when nothing is said.
//! Python then passes the chosen values back as one `ServerOptions` to
//! `Server(table, options)`.
//!
//! Building an options value checks it, so a bad setting is a `ValueError` naming it
//! before anything starts.
//!
//! ```
//! use data_bridge_api::options::ServerOptions;
//! let options = ServerOptions::default();
//! assert_eq!(options.max_body_size, 16 * 1024 * 1024);
//! assert!(options.limits().is_ok());
//! ```

use std::time::Duration;

use pyo3::prelude::*;

use crate::access_log::LogFormat;
use crate::errors::ApiError;
use crate::proxy::TrustedProxies;
use crate::service::Limits;
use crate::websocket::WsLimits;

/// The longest duration any setting accepts, in seconds (a year): longer ones are
/// surely mistakes, and adding them to the clock could overflow it. Python's
/// `data_bridge.durations` checks against the same bound (`_native.MAX_SECONDS`).
pub const MAX_SECONDS: u64 = 365 * 24 * 3600;

/// `value` seconds of the setting `name`, or why it cannot be used.
pub fn seconds(name: &str, value: f64) -> Result<Duration, ApiError> {
    let max = MAX_SECONDS as f64;
    if !(0.0..=max).contains(&value) {
        return Err(ApiError::Config(format!(
            "{name} must be a number of seconds from 0 to {max}, not {value}"
        )));
    }
    Ok(Duration::from_secs_f64(value))
}

/// `value` seconds, where `None` or 0 mean never.
fn optional_seconds(name: &str, value: Option<f64>) -> Result<Option<Duration>, ApiError> {
    value
        .filter(|s| *s > 0.0)
        .map(|s| seconds(name, s))
        .transpose()
}

/// The default of each setting: the one place these values are written.
pub mod default {
    /// Largest request body, in bytes (16 MiB).
    pub const MAX_BODY_SIZE: usize = 16 * 1024 * 1024;
    /// Python work in flight (handlers queued or running, ...) past which requests
    /// get 503.
    pub const MAX_PENDING: usize = 1024;
    /// `def` handlers running at once (FastAPI's thread pool has 40 threads).
    pub const SYNC_THREADS: usize = 40;
    /// Seconds a client may take to send a request head.
    pub const HEADER_TIMEOUT: f64 = 30.0;
    /// Largest request head, in bytes.
    pub const MAX_HEADER_BYTES: usize = 64 * 1024;
    /// Seconds a request body may make no progress (408 past it).
    pub const BODY_TIMEOUT: f64 = 60.0;
    /// Seconds a connection with no request in flight may stay silent.
    pub const KEEP_ALIVE_TIMEOUT: f64 = 75.0;
    /// Seconds a client may take none of its response.
    pub const WRITE_TIMEOUT: f64 = 60.0;
    /// Open connections past which new ones get 503.
    pub const LIMIT_CONNECTIONS: Option<usize> = Some(4096);
    /// Seconds between HTTP/2 pings.
    pub const HTTP2_KEEP_ALIVE_INTERVAL: Option<f64> = Some(30.0);
    /// Seconds a WebSocket handler may take to accept or refuse (403 past it).
    pub const WS_HANDSHAKE_TIMEOUT: f64 = 10.0;
    /// Seconds between pings of an open WebSocket.
    pub const WS_PING_INTERVAL: Option<f64> = Some(20.0);
    /// Seconds a WebSocket ping may go unanswered.
    pub const WS_PING_TIMEOUT: f64 = 20.0;
    /// Proxies whose forwarded headers are trusted (with `proxy_headers`).
    pub const FORWARDED_ALLOW_IPS: &str = "127.0.0.1";
}

/// The settings of a server (`data_bridge._native.ServerOptions`); see [`default`]
/// for what each one is when not given.
#[pyclass(module = "data_bridge._native", frozen, get_all, from_py_object)]
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Largest request body, in bytes (413 past it).
    pub max_body_size: usize,
    /// Python work in flight past which requests get 503: handlers queued or running,
    /// sync streaming producers, open WebSockets and unfinished background tasks.
    pub max_pending: usize,
    /// `def` handlers (and, separately, sync streaming producers) running at once.
    pub sync_threads: usize,
    /// Seconds a client may take to send a request head.
    pub header_timeout: f64,
    /// Largest request head, in bytes (431 past it).
    pub max_header_bytes: usize,
    /// Seconds a request body may make no progress (408 past it).
    pub body_timeout: f64,
    /// Seconds a connection with no request in flight may stay silent.
    pub keep_alive_timeout: f64,
    /// Seconds a client may take none of its response.
    pub write_timeout: f64,
    /// Open connections past which new ones get 503 (`None`: no limit).
    pub limit_connections: Option<usize>,
    /// Seconds between HTTP/2 pings (`None` or 0: none).
    pub http2_keep_alive_interval: Option<f64>,
    /// Seconds a WebSocket handler may take to accept or refuse (403 past it).
    pub ws_handshake_timeout: f64,
    /// Seconds between pings of an open WebSocket (`None` or 0: none).
    pub ws_ping_interval: Option<f64>,
    /// Seconds a WebSocket ping may go unanswered before the connection is closed.
    pub ws_ping_timeout: f64,
    /// The access log's format, `"text"` or `"json"`; `None`: no access log.
    pub access_log: Option<String>,
    /// Whether `X-Forwarded-For` and `-Proto` from `forwarded_allow_ips` apply.
    pub proxy_headers: bool,
    /// Comma-separated addresses and networks of trusted proxies, or `*`.
    pub forwarded_allow_ips: String,
    /// Whether `X-Forwarded-Host` from trusted proxies applies too.
    pub forwarded_host: bool,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_body_size: default::MAX_BODY_SIZE,
            max_pending: default::MAX_PENDING,
            sync_threads: default::SYNC_THREADS,
            header_timeout: default::HEADER_TIMEOUT,
            max_header_bytes: default::MAX_HEADER_BYTES,
            body_timeout: default::BODY_TIMEOUT,
            keep_alive_timeout: default::KEEP_ALIVE_TIMEOUT,
            write_timeout: default::WRITE_TIMEOUT,
            limit_connections: default::LIMIT_CONNECTIONS,
            http2_keep_alive_interval: default::HTTP2_KEEP_ALIVE_INTERVAL,
            ws_handshake_timeout: default::WS_HANDSHAKE_TIMEOUT,
            ws_ping_interval: default::WS_PING_INTERVAL,
            ws_ping_timeout: default::WS_PING_TIMEOUT,
            access_log: None,
            proxy_headers: false,
            forwarded_allow_ips: default::FORWARDED_ALLOW_IPS.to_owned(),
            forwarded_host: false,
        }
    }
}

impl ServerOptions {
    /// The connection, request and WebSocket limits, or the first setting that
    /// cannot be used.
    pub fn limits(&self) -> Result<Limits, ApiError> {
        Ok(Limits {
            max_body_size: self.max_body_size,
            // Zero would time out every connection before its first byte.
            header_timeout: seconds("header_timeout", self.header_timeout)?
                .max(Duration::from_millis(1)),
            max_header_bytes: self.max_header_bytes,
            body_timeout: seconds("body_timeout", self.body_timeout)?,
            keep_alive_timeout: seconds("keep_alive_timeout", self.keep_alive_timeout)?,
            write_timeout: seconds("write_timeout", self.write_timeout)?,
            max_connections: self.limit_connections,
            http2_keep_alive_interval: optional_seconds(
                "http2_keep_alive_interval",
                self.http2_keep_alive_interval,
            )?,
            websocket: WsLimits {
                handshake_timeout: seconds("ws_handshake_timeout", self.ws_handshake_timeout)?,
                ping_interval: optional_seconds("ws_ping_interval", self.ws_ping_interval)?,
                ping_timeout: seconds("ws_ping_timeout", self.ws_ping_timeout)?,
            },
        })
    }

    /// The access log's format, if it is on.
    pub fn log_format(&self) -> Result<Option<LogFormat>, ApiError> {
        self.access_log
            .as_deref()
            .map(|name| {
                LogFormat::parse(name).ok_or_else(|| {
                    ApiError::Config(format!(
                        "access_log must be \"text\", \"json\" or None, not {name:?}"
                    ))
                })
            })
            .transpose()
    }

    /// The trusted proxies, with `proxy_headers`.
    pub fn proxies(&self) -> Result<Option<TrustedProxies>, ApiError> {
        if !self.proxy_headers {
            return Ok(None);
        }
        Ok(Some(
            TrustedProxies::parse(&self.forwarded_allow_ips)?
                .with_forwarded_host(self.forwarded_host),
        ))
    }

    /// Checks every setting, so a bad one fails where it is given.
    fn check(self) -> Result<Self, ApiError> {
        self.limits()?;
        self.log_format()?;
        self.proxies()?;
        Ok(self)
    }
}

#[pymethods]
impl ServerOptions {
    /// Settings from keywords, each defaulting to [`default`]'s; `ValueError` for a
    /// value that cannot be used.
    #[new]
    #[pyo3(signature = (
        *,
        max_body_size = default::MAX_BODY_SIZE,
        max_pending = default::MAX_PENDING,
        sync_threads = default::SYNC_THREADS,
        header_timeout = default::HEADER_TIMEOUT,
        max_header_bytes = default::MAX_HEADER_BYTES,
        body_timeout = default::BODY_TIMEOUT,
        keep_alive_timeout = default::KEEP_ALIVE_TIMEOUT,
        write_timeout = default::WRITE_TIMEOUT,
        limit_connections = default::LIMIT_CONNECTIONS,
        http2_keep_alive_interval = default::HTTP2_KEEP_ALIVE_INTERVAL,
        ws_handshake_timeout = default::WS_HANDSHAKE_TIMEOUT,
        ws_ping_interval = default::WS_PING_INTERVAL,
        ws_ping_timeout = default::WS_PING_TIMEOUT,
        access_log = None,
        proxy_headers = false,
        forwarded_allow_ips = default::FORWARDED_ALLOW_IPS.to_owned(),
        forwarded_host = false,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn py_new(
        max_body_size: usize,
        max_pending: usize,
        sync_threads: usize,
        header_timeout: f64,
        max_header_bytes: usize,
        body_timeout: f64,
        keep_alive_timeout: f64,
        write_timeout: f64,
        limit_connections: Option<usize>,
        http2_keep_alive_interval: Option<f64>,
        ws_handshake_timeout: f64,
        ws_ping_interval: Option<f64>,
        ws_ping_timeout: f64,
        access_log: Option<String>,
        proxy_headers: bool,
        forwarded_allow_ips: String,
        forwarded_host: bool,
    ) -> PyResult<Self> {
        let options = ServerOptions {
            max_body_size,
            max_pending,
            sync_threads,
            header_timeout,
            max_header_bytes,
            body_timeout,
            keep_alive_timeout,
            write_timeout,
            limit_connections,
            http2_keep_alive_interval,
            ws_handshake_timeout,
            ws_ping_interval,
            ws_ping_timeout,
            access_log,
            proxy_headers,
            forwarded_allow_ips,
            forwarded_host,
        };
        Ok(options.check()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_usable() -> Result<(), ApiError> {
        let options = ServerOptions::default().check()?;
        let limits = options.limits()?;
        assert_eq!(limits.header_timeout, Duration::from_secs(30));
        assert_eq!(
            limits.http2_keep_alive_interval,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            limits.websocket.ping_interval,
            Some(Duration::from_secs(20))
        );
        assert!(options.log_format()?.is_none());
        assert!(options.proxies()?.is_none());
        Ok(())
    }

    #[test]
    fn durations_no_clock_can_hold_are_refused() {
        for bad in [f64::INFINITY, f64::NAN, 1e300, -1.0] {
            let options = ServerOptions {
                body_timeout: bad,
                ..ServerOptions::default()
            };
            match options.check() {
                Ok(_) => panic!("{bad} was accepted"),
                Err(err) => assert!(err.to_string().contains("body_timeout"), "{err}"),
            }
        }
    }

    #[test]
    fn zero_means_never_for_intervals() -> Result<(), ApiError> {
        let options = ServerOptions {
            ws_ping_interval: Some(0.0),
            http2_keep_alive_interval: None,
            ..ServerOptions::default()
        };
        let limits = options.limits()?;
        assert_eq!(limits.websocket.ping_interval, None);
        assert_eq!(limits.http2_keep_alive_interval, None);
        Ok(())
    }

    #[test]
    fn bad_access_log_formats_and_proxies_are_refused() {
        let log = ServerOptions {
            access_log: Some("xml".into()),
            ..ServerOptions::default()
        };
        assert!(log.check().is_err());
        let proxies = ServerOptions {
            proxy_headers: true,
            forwarded_allow_ips: "not an address".into(),
            ..ServerOptions::default()
        };
        assert!(proxies.check().is_err());
    }
}
