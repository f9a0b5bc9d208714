//! Native transports. Only the socket stream transport is native: it carries the
//! traffic that benchmarks and servers care about. Pipes, datagrams and listening
//! sockets are Python classes on top of the loop's readiness callbacks.

pub(crate) mod base;
pub mod datagram;
pub mod stream;
