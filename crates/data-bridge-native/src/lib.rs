//! The `data_bridge._native` extension module. It only registers what the library
//! crates export; all logic lives in those crates.

use pyo3::prelude::*;

/// `data_bridge._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    data_bridge_pyloop::register(m)?;
    data_bridge_api::register(m)?;
    Ok(())
}
