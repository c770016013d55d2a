//! ONNX writing for kiln.
//!
//! - [`GraphBuilder`]: a small builder for any ONNX graph (used by the
//!   exporter and by tests that need single-op models).
//! - [`export`]: a search-space [`kiln_space::Architecture`] plus [`Weights`]
//!   -> an ONNX model (opset 17) that tract-onnx and other runtimes load.
//! - [`Weights`]: named f32 tensors, seeded random or trained, stored as
//!   safetensors.
//!
//! The protobuf messages are a hand-written subset of the ONNX schema for
//! prost ([`proto`]), so writing a model needs neither protoc nor tract.

mod builder;
mod export;
pub mod proto;
mod weights;

pub use builder::{Attribute, DEFAULT_OPSET, Dim, GraphBuilder};
pub use export::{ExportOptions, INPUT_NAME, Normalization, OUTPUT_NAME, export};
pub use weights::{Tensor, Weights};

/// What can go wrong writing a model or reading weights.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A weight tensor is missing, extra, of the wrong shape or not finite.
    #[error("weight `{name}` {message}")]
    Weight { name: String, message: String },
    #[error("{origin}: not a valid safetensors file: {message}")]
    Safetensors { origin: String, message: String },
}
