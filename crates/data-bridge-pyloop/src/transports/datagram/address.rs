//! Socket addresses between Python and the kernel: `(host, port)` tuples (and IPv6's
//! four-tuples) and Unix paths, converted without name lookups.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use socket2::SockAddr;

pub(super) fn addr_to_py(py: Python<'_>, addr: &SockAddr) -> PyResult<Py<PyAny>> {
    if let Some(sa) = addr.as_socket() {
        return Ok(match sa {
            SocketAddr::V4(v4) => (v4.ip().to_string(), v4.port())
                .into_pyobject(py)?
                .into_any()
                .unbind(),
            SocketAddr::V6(v6) => (v6.ip().to_string(), v6.port(), v6.flowinfo(), v6.scope_id())
                .into_pyobject(py)?
                .into_any()
                .unbind(),
        });
    }
    if addr.is_unix() {
        if let Some(path) = addr.as_pathname() {
            return Ok(PyString::new(py, &path.to_string_lossy())
                .into_any()
                .unbind());
        }
        if let Some(name) = addr.as_abstract_namespace() {
            let mut raw = vec![0u8];
            raw.extend_from_slice(name);
            return Ok(PyBytes::new(py, &raw).into_any().unbind());
        }
    }
    Ok(py.None())
}

/// Converts a Python address to a socket address when that needs no name lookup.
pub(super) fn addr_from_py(addr: &Bound<'_, PyAny>) -> Option<SockAddr> {
    if let Ok(t) = addr.cast::<PyTuple>() {
        let host: String = t.get_item(0).ok()?.extract().ok()?;
        let port: u16 = t.get_item(1).ok()?.extract().ok()?;
        let ip: IpAddr = match host.as_str() {
            "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
            h => h.parse().ok()?,
        };
        return Some(match ip {
            IpAddr::V4(v4) => SockAddr::from(SocketAddr::new(IpAddr::V4(v4), port)),
            IpAddr::V6(v6) => {
                let flow: u32 = t.get_item(2).and_then(|v| v.extract()).unwrap_or(0);
                let scope: u32 = t.get_item(3).and_then(|v| v.extract()).unwrap_or(0);
                SockAddr::from(std::net::SocketAddrV6::new(v6, port, flow, scope))
            }
        });
    }
    if let Ok(path) = addr.extract::<String>() {
        return SockAddr::unix(path).ok();
    }
    None
}
