//! Native transports: the socket stream transport (TCP and Unix streams, `stream/`)
//! and the datagram transport (UDP and Unix datagrams, `datagram/`), which carry the
//! traffic that benchmarks and servers care about, on shared plumbing (`base`). Both
//! are split the same way: `read`, `write`, `close` and `methods` (what Python calls)
//! around the shared state and readiness dispatch in `mod.rs`. Pipes and listening
//! sockets are Python classes on top of the loop's readiness callbacks.

pub(crate) mod base;
pub mod datagram;
pub mod stream;
