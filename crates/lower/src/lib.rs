//! kiln-lower: ONNX -> kiln IR.
//!
//! tract-onnx parses, types and declutters the model (batch norm folded into
//! conv weights, constants folded). The decluttered graph is then translated
//! node by node into [`kiln_ir::Graph`]; [`fuse`] afterwards folds per-channel
//! arithmetic and activations into the convolutions before them.

mod fuse;
mod translate;

use std::path::Path;

pub use kiln_ir::Graph;

/// The ONNX operations (after tract's decluttering) kiln can lower.
pub const SUPPORTED: &str = "Conv (any kernel, stride, dilation, padding, groups), Gemm/MatMul with constant weights, \
BatchNormalization after Conv, Relu, Clip, HardSwish, HardSigmoid, Sigmoid, Add, Sub, Mul, Div, Max, Min \
(same shape, per-channel or scalar operands), MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool, \
ReduceMean/ReduceSum/ReduceMax over H and W, Softmax, Concat, Flatten, Reshape, Transpose, Squeeze, Unsqueeze, \
Identity, Constant";

/// What went wrong while lowering.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    #[error("cannot read {source_name}: {message}")]
    Io {
        source_name: String,
        message: String,
    },
    #[error("{source_name} is not a valid ONNX model: {message}")]
    Parse {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: {message}")]
    Input {
        source_name: String,
        message: String,
    },
    #[error(
        "{source_name}: input '{input}' has symbolic dimension '{dim}' at axis {axis}; give the input shape explicitly"
    )]
    SymbolicDim {
        source_name: String,
        input: String,
        dim: String,
        axis: usize,
    },
    #[error("{source_name}: tract could not analyse the model: {message}")]
    Tract {
        source_name: String,
        message: String,
    },
    #[error(
        "{source_name}: node '{node}' ({op}) is not supported: {reason}. kiln supports: {SUPPORTED}"
    )]
    Unsupported {
        source_name: String,
        node: String,
        op: String,
        reason: String,
    },
}

/// Options for [`lower_bytes`] / [`lower_file`].
#[derive(Clone, Debug, Default)]
pub struct LowerOptions {
    /// Full input shape (ONNX order, batch first). Needed when the model has
    /// symbolic dimensions other than the batch.
    pub input_shape: Option<Vec<usize>>,
}

/// Lowers an ONNX file.
pub fn lower_file(path: &Path, options: &LowerOptions) -> Result<Graph, LowerError> {
    let source_name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| LowerError::Io {
        source_name: source_name.clone(),
        message: e.to_string(),
    })?;
    lower_bytes(&bytes, &source_name, options)
}

/// Lowers an in-memory ONNX model; `source_name` names it in errors.
pub fn lower_bytes(
    bytes: &[u8],
    source_name: &str,
    options: &LowerOptions,
) -> Result<Graph, LowerError> {
    let typed = translate::load_decluttered(bytes, source_name, options)?;
    let mut graph = translate::translate(&typed, source_name)?;
    fuse::fuse(&mut graph);
    Ok(graph)
}

/// Loads the ONNX model with tract and returns the typed, decluttered model
/// kiln lowers from (also what tests use as the reference).
pub fn decluttered_model(
    bytes: &[u8],
    source_name: &str,
    options: &LowerOptions,
) -> Result<tract_onnx::prelude::TypedModel, LowerError> {
    translate::load_decluttered(bytes, source_name, options)
}
