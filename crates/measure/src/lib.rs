//! kiln-measure: the only kiln crate that runs built programs (host binaries,
//! `qemu-aarch64`, wasm under wasmtime) and external tools.
//!
//! Every figure it reports is a [`Metric`] carrying the source it came from
//! (`device`, `host`, `sim`, `predicted`) so that one is never presented as
//! another.

pub mod bench;
pub mod error;
pub mod host;
pub mod power;
mod process;
pub mod report;
pub mod sim;
pub mod size;

pub use error::MeasureError;
pub use kiln_metric::{Metric, Source, Unit};
pub use process::Runner;
