//! kiln-measure: the only kiln crate that runs built programs (host binaries,
//! `qemu-aarch64`, wasm under wasmtime) and external tools.
//!
//! Every figure it reports is a [`Metric`] carrying the source it came from
//! (`device`, `host`, `sim`, `predicted`) so that one is never presented as
//! another. Sizes and memory are in bytes (profile limits are judged in SI
//! MB, 10^6 bytes, by kiln-target); host timings in microseconds; simulated
//! latency in milliseconds, derived from wasm fuel by [`power`].
//!
//! The programs it runs speak the command line of
//! [`kiln_codegen::program`]: LE f32 input on stdin, LE f32 output on stdout,
//! and one JSON bench line. Their wasm builds export the functions of
//! `kiln_runtime::wasm_entry!` (a bundle's, `wasm_bundle_entry!`; see [`sim`]).

pub mod bench;
pub mod error;
pub mod host;
pub mod power;
mod process;
pub mod report;
pub mod sim;
mod sim_bundle;
pub mod size;

pub use error::MeasureError;
pub use kiln_metric::{Metric, Source, Unit};
pub use process::Runner;
