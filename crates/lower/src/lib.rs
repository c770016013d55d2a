//! kiln-lower: ONNX -> kiln IR.
//!
//! tract-onnx parses, types and declutters the model (batch norm folded into
//! conv weights, constants folded). The decluttered graph is then translated
//! node by node into [`kiln_ir::Graph`]; a fusion pass afterwards folds
//! per-channel arithmetic and activations into the convolutions before them.
//!
//! Shapes in the result are ONNX-logical (images `[1, C, H, W]`) while images
//! are stored NHWC; the program's input and output stay in ONNX (NCHW) order.
//! A static batch of N images lowers as the one-image graph with
//! `Graph::batch = N` when no op mixes the images (checked node by node,
//! `translate/batch.rs`); a symbolic batch is 1 unless the input shape is
//! given. f32, and int8 for QDQ (quantized) models of batch 1, which are
//! read from their ONNX graph instead (see `lower_bytes_reported`).

mod fuse;
mod notes;
pub mod ops;
mod qdq;
mod translate;

use std::path::Path;

/// The lowered model (re-exported from kiln-ir).
pub use kiln_ir::Graph;

/// What went wrong while lowering. Every variant names the model
/// (`source_name`: the path, or the name given to [`lower_bytes`]).
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    /// The file could not be read.
    #[error("cannot read {source_name}: {message}")]
    Io {
        /// The model's path.
        source_name: String,
        /// The I/O error.
        message: String,
    },
    /// The bytes are not an ONNX model tract can parse (garbage, truncated).
    #[error("{source_name} is not a valid ONNX model: {message}")]
    Parse {
        /// The model's name.
        source_name: String,
        /// tract's parse error.
        message: String,
    },
    /// The model's inputs or outputs are outside what kiln compiles: not
    /// exactly one input and one output, a quantized model's batch other
    /// than 1, no declared rank, a given shape contradicting the declared one, a constant output.
    #[error("{source_name}: {message}")]
    Input {
        /// The model's name.
        source_name: String,
        /// What is wrong, naming the input.
        message: String,
    },
    /// A symbolic dimension other than the batch (axis 0) and no
    /// [`LowerOptions::input_shape`] to fix it.
    #[error(
        "{source_name}: input '{input}' has symbolic dimension '{dim}' at axis {axis}; give the input shape explicitly"
    )]
    SymbolicDim {
        /// The model's name.
        source_name: String,
        /// The ONNX input's name.
        input: String,
        /// The symbol (e.g. `H`), or `?`.
        dim: String,
        /// Its axis in the ONNX (NCHW) input shape.
        axis: usize,
    },
    /// tract failed to type, declutter or order the model.
    #[error("{source_name}: tract could not analyse the model: {message}")]
    Tract {
        /// The model's name.
        source_name: String,
        /// tract's error chain.
        message: String,
    },
    /// A node kiln (or tract-onnx) cannot lower; the message lists the op
    /// types of float models ([`ops::names`]; notes in `docs/onnx-ops.md`).
    #[error(
        "{source_name}: node '{node}' ({op}) is not supported: {reason}. kiln supports: {} (docs/onnx-ops.md)",
        ops::names()
    )]
    Unsupported {
        /// The model's name.
        source_name: String,
        /// The ONNX node's name (`#index op_type` when it has none), found
        /// from tract's name for the decluttered node (the ONNX name, or one
        /// derived from it); tract's name when no ONNX node matches.
        node: String,
        /// The ONNX node's op_type (e.g. `ReduceMean`, `PRelu`); tract's
        /// name for the decluttered op when no ONNX node matches.
        op: String,
        /// Why, e.g. `reduction over axes [1]; kiln reduces H and W of images
        /// only`, followed by tract's op and node name when the failing piece
        /// is one tract derived from the ONNX node.
        reason: String,
    },
    /// A QDQ model's quantization parameters are invalid or outside what
    /// kiln lowers (zero or negative scale, zero point out of range or of
    /// another type, per-axis scales on an unsupported axis, scale and zero
    /// point (or data) shapes that do not match).
    #[error("{source_name}: node '{node}' ({op}): {message}")]
    Quantization {
        /// The model's name.
        source_name: String,
        /// The ONNX node's name (`#index op` when it has none).
        node: String,
        /// Its op_type.
        op: String,
        /// What is wrong, with the values.
        message: String,
    },
}

/// A bad QuantizeLinear / DequantizeLinear parameter or quantized pattern
/// (zero or negative scale, zero point out of range, per-axis scales on an
/// axis kiln does not take, scale and zero point shapes that differ); see
/// [`LowerError::Quantization`].
pub use qdq::QdqReport;

/// Options for [`lower_bytes`] / [`lower_file`].
#[derive(Clone, Debug, Default)]
pub struct LowerOptions {
    /// Full input shape (ONNX order, batch first, e.g. `[1, 3, 96, 96]`
    /// NCHW). Needed when the model has symbolic dimensions other than the
    /// batch; may not contradict a dimension the model fixes. `None`: the
    /// declared shape, a symbolic batch taken as 1.
    pub input_shape: Option<Vec<usize>>,
}

/// Lowers an ONNX file into a fused [`Graph`] (see [`lower_bytes`]).
///
/// # Errors
/// [`LowerError::Io`] when the file cannot be read (naming the path), else
/// as [`lower_bytes`].
pub fn lower_file(path: &Path, options: &LowerOptions) -> Result<Graph, LowerError> {
    let source_name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| LowerError::Io {
        source_name: source_name.clone(),
        message: e.to_string(),
    })?;
    lower_bytes(&bytes, &source_name, options)
}

/// Lowers an in-memory ONNX model into a fused [`Graph`]: ONNX-logical
/// shapes of one image, images stored NHWC, f32; a static batch of N images
/// (an NCHW input `[N, C, H, W]`) gives `batch = N`. `source_name` names the
/// model in errors.
///
/// # Errors
/// [`LowerError::Parse`] for bytes that are not ONNX; [`LowerError::Input`] /
/// [`LowerError::SymbolicDim`] for inputs and outputs kiln cannot fix;
/// [`LowerError::Unsupported`] naming the first node (and its op) kiln cannot
/// lower, or, for a batch above 1, the first that mixes the images (an op
/// over axis 0, a constant that differs per image); [`LowerError::Tract`] when tract cannot analyse the model.
pub fn lower_bytes(
    bytes: &[u8],
    source_name: &str,
    options: &LowerOptions,
) -> Result<Graph, LowerError> {
    lower_bytes_reported(bytes, source_name, options).map(|(g, _)| g)
}

/// [`lower_bytes`], also saying what a QDQ (quantized) model kept in f32:
/// the report is `None` for a float model. A QDQ model (any
/// QuantizeLinear/DequantizeLinear node) is read from its ONNX graph
/// directly, not through tract (see the `qdq` module): int8 ops where a
/// float op sits between DequantizeLinear and QuantizeLinear, f32 with an
/// explicit Dequantize/Quantize elsewhere.
///
/// # Errors
/// As [`lower_bytes`], and [`LowerError::Quantization`] naming the node of a
/// bad scale or zero point.
pub fn lower_bytes_reported(
    bytes: &[u8],
    source_name: &str,
    options: &LowerOptions,
) -> Result<(Graph, Option<QdqReport>), LowerError> {
    let proto = qdq::parse(bytes, source_name)?;
    if qdq::is_qdq(&proto) {
        if let Some(g) = &proto.graph {
            ops::check_listed(g, source_name, true)?;
        }
        let (graph, report) = qdq::lower(&proto, source_name, options)?;
        return Ok((graph, Some(report)));
    }
    // An op the table does not list is refused only if the model then fails to lower:
    // exporters write shape arithmetic (ConstantOfShape, Equal, Range, Expand ...) that
    // tract folds into constants before kiln sees it, and such a model lowers fine.
    let unlisted =
        (proto.graph.as_ref()).and_then(|g| ops::check_listed(g, source_name, false).err());
    let lowered = translate::load_decluttered(bytes, source_name, options).and_then(|typed| {
        let onnx = translate::OnnxNodes::new(&proto);
        translate::translate(&typed, source_name, &onnx)
    });
    let mut graph = match lowered {
        Ok(graph) => graph,
        Err(e) => return Err(unlisted.unwrap_or(e)),
    };
    if let Some(LowerError::Unsupported { node, op, .. }) = &unlisted {
        graph.notes.push(format!(
            "{op} (node {node}) is not in kiln's op table; tract folded it into constants \
             before lowering"
        ));
    }
    fuse::fuse(&mut graph);
    graph.notes.extend(notes::symbolic_batch(&proto, options));
    Ok((graph, None))
}

/// Loads the ONNX model with tract and returns the typed, decluttered model
/// kiln lowers from (also what tests use as the reference), with the input
/// fixed to its static NCHW shape (symbolic batch = 1, a static batch kept).
///
/// # Errors
/// As [`lower_bytes`], except that nothing is translated, so no
/// [`LowerError::Unsupported`] for ops tract implements.
pub fn decluttered_model(
    bytes: &[u8],
    source_name: &str,
    options: &LowerOptions,
) -> Result<tract_onnx::prelude::TypedModel, LowerError> {
    translate::load_decluttered(bytes, source_name, options)
}
