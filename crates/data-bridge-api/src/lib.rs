//! The HTTP server of data-bridge: Hyper on PyLoop's process-wide Tokio runtime.
//!
//! A request is parsed by Hyper, routed by [`router::Router`] with its path parameters
//! converted and validated in Rust, then either answered by a native endpoint (health,
//! readiness, constants, static files) without the GIL, or handed to a Python handler
//! through [`dispatch::Dispatcher::spawn_python_handler`], whose response comes back as
//! a Rust future. Files, static or returned as `FileResponse`, are served by
//! [`files`]; WebSocket handshakes and connections by [`websocket`]. When enabled, each
//! request is counted in [`metrics`] and logged by [`access_log`] as it completes
//! ([`completion`]), forwarded headers from trusted proxies are applied by [`proxy`],
//! and the built-in [`middleware`] (CORS, compression, trusted hosts, HTTPS redirect,
//! request ids) wraps every request. A server's settings, and their defaults, are one
//! [`options::ServerOptions`].
//!
//! The request path is [`service`], also a `tower::Service` that tests drive without a
//! socket. Everything Rust hands to the event loop (handler starts, results, streamed
//! chunks, cancellations) goes through PyLoop's bridge, `data_bridge_pyloop::bridge`.

pub mod access_log;
pub mod background;
pub mod body;
pub mod completion;
pub mod conditional;
pub mod connection;
pub mod dispatch;
pub mod endpoint;
pub mod errors;
pub mod files;
pub mod hooks;
pub mod host;
pub mod in_flight;
pub mod metrics;
pub mod middleware;
pub mod mime;
pub mod options;
pub mod proxy;
pub mod request;
pub mod request_body;
pub mod response;
pub mod router;
pub mod routes;
pub mod server;
pub mod service;
pub mod streaming;
pub mod tls;
pub mod websocket;

use pyo3::prelude::*;

pub use crate::errors::ApiError;

/// Adds the HTTP server's classes and functions to `module`.
pub fn register(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<routes::RouteTable>()?;
    module.add_class::<middleware::cors::CorsOptions>()?;
    module.add_class::<middleware::compress::CompressOptions>()?;
    module.add_class::<middleware::trustedhost::TrustedHostOptions>()?;
    module.add_class::<middleware::httpsredirect::HttpsRedirectOptions>()?;
    module.add_class::<middleware::requestid::RequestIdOptions>()?;
    module.add_class::<server::Server>()?;
    module.add_class::<options::ServerOptions>()?;
    module.add("MAX_SECONDS", options::MAX_SECONDS)?;
    module.add_class::<request::PyRequest>()?;
    module.add_class::<streaming::BodyWriter>()?;
    module.add_class::<websocket::WebSocketConn>()?;
    module.add_function(wrap_pyfunction!(hooks::http_setup, module)?)?;
    Ok(())
}
