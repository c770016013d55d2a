//! kiln-measure: the only kiln crate that runs built programs (host binaries,
//! `qemu-aarch64`, wasm under wasmtime) and external tools.
//!
//! Every figure it reports carries the source it came from (`device`, `host`,
//! `sim`, `predicted`) so that one is never presented as another.

pub mod error;
pub mod host;
mod process;

pub use error::MeasureError;
pub use process::Runner;
