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
pub mod metadata;
pub mod proto;
mod weights;

pub use builder::{Attribute, DEFAULT_OPSET, Dim, GraphBuilder};
pub use export::{ExportOptions, INPUT_NAME, Normalization, OUTPUT_NAME, export, export_layer};
pub use weights::{Tensor, Weights};

/// What can go wrong writing a model or reading weights.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// A weights file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// A weight tensor is missing, extra, of the wrong shape or not finite.
    #[error("weight `{name}` {message}")]
    Weight {
        /// The tensor's name (`normalization` for the export's input normalisation).
        name: String,
        /// What is wrong with it.
        message: String,
    },
    /// Bytes that are not an ONNX model.
    #[error("{origin} is not an ONNX model: {message}")]
    Model {
        /// The file path, or the name the caller gave the bytes.
        origin: String,
        /// The protobuf decoder's message.
        message: String,
    },
    /// Bytes that are not a safetensors file kiln can read (or cannot be written as one).
    #[error("{origin}: not a valid safetensors file: {message}")]
    Safetensors {
        /// The file path, or the name the caller gave the bytes.
        origin: String,
        /// The safetensors library's message, or the unsupported dtype.
        message: String,
    },
}
