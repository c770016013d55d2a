//! The ONNX op table: every ONNX op type kiln lowers, with what it takes
//! and what it refuses, in float models and in quantized (QDQ / QOperator)
//! ones. One source: the lowering refuses a node whose op type is not
//! listed for its kind of model ([`check_listed`], before tract or the QDQ
//! reader sees it), errors print [`names`], `cargo xtask onnx-ops` and
//! `docs/onnx-ops.md` are [`markdown`], and a test lowers a small model for
//! every listed entry (`tests.rs`), so a row that stops working fails.

use crate::LowerError;

/// One ONNX op type and what kiln does with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpSupport {
    /// The ONNX `op_type` (default domain, or `com.microsoft` for the
    /// QOperator ops onnxruntime writes there).
    pub op: &'static str,
    /// In a float model: what lowers and what is refused; `None` when the
    /// op is refused in float models.
    pub float: Option<&'static str>,
    /// In a quantized model (any QuantizeLinear / DequantizeLinear, or a
    /// QOperator op): what lowers; `None` when refused there.
    pub quantized: Option<&'static str>,
}

const fn row(op: &'static str, f: &'static str, q: Option<&'static str>) -> OpSupport {
    OpSupport {
        op,
        float: Some(f),
        quantized: q,
    }
}

const fn qop(op: &'static str, q: &'static str) -> OpSupport {
    OpSupport {
        op,
        float: None,
        quantized: Some(q),
    }
}

const INT8_OP: Option<&str> = Some(
    "int8 between DequantizeLinear and QuantizeLinear (a following Relu/Clip folded); else f32 between an explicit dequantize and quantize",
);
const INT8_LUT: Option<&str> =
    Some("int8 as a 256-entry table between DequantizeLinear and QuantizeLinear; else f32");
const INT8_LUT_ONLY: Option<&str> = Some(
    "int8 as a 256-entry table between DequantizeLinear and QuantizeLinear only (no f32 fallback)",
);
/// An op tract-onnx rewrites into ops kiln lowers; the rewrite is tract's and
/// kiln's output for it has not been compared with onnxruntime.
const DECOMPOSED: &str =
    "as tract decomposes it into ops kiln lowers (not yet compared with onnxruntime)";
const F32_IN_QDQ: Option<&str> = Some("f32 between an explicit dequantize and quantize");

/// Every ONNX op type kiln lowers (see the module doc). Float-model notes
/// describe the decluttered graph tract-onnx produces from the node.
pub const OPS: &[OpSupport] = &[
    row(
        "Conv",
        "2-D, any kernel, stride, dilation, padding, groups (depthwise included); NCHW, or NHWC between tf2onnx's Transposes; constant weights and bias. Refused: 1-D/3-D, weights computed at run time",
        Some("int8, weights int8 symmetric per output channel or per tensor, int32 bias; else f32"),
    ),
    row(
        "ConvTranspose",
        "2-D, stride, dilation, explicit pads, output_padding, groups. Refused: auto_pad SAME, weights computed at run time",
        None,
    ),
    row(
        "Gemm",
        "constant weights, transA 0, any transB, alpha, beta; also over a whole flattened CxHxW map. Refused: both operands computed at run time",
        Some("int8 (constant int8 weights); else f32"),
    ),
    row(
        "MatMul",
        "constant right-hand side (+ Add as bias); also over a flattened or reshaped CxHxW map. Refused: a product of two run-time tensors",
        Some("int8 (constant int8 weights); else f32"),
    ),
    row(
        "BatchNormalization",
        "inference form after a Conv (folded into its weights)",
        None,
    ),
    row("Relu", "", INT8_LUT),
    row("Clip", "constant min and max", INT8_LUT),
    row("LeakyRelu", "any alpha", INT8_LUT_ONLY),
    row(
        "PRelu",
        "slope per channel ([C,1,1]) or scalar. Refused: other slope shapes",
        None,
    ),
    row("HardSwish", "opset 14+", INT8_LUT),
    row("HardSigmoid", "any alpha, beta", INT8_LUT),
    row(
        "Sigmoid",
        "also SiLU/Swish written as x*Sigmoid(x)",
        INT8_LUT,
    ),
    row("Tanh", "", INT8_LUT_ONLY),
    row("Elu", "any alpha", None),
    row("Selu", "any alpha, gamma", None),
    row("Abs", "", None),
    row("Neg", "", None),
    row("Exp", "", None),
    row("Log", "", None),
    row("Sqrt", "", None),
    row("Reciprocal", "", None),
    row("Erf", "also PyTorch's exact Gelu written with Erf", None),
    row(
        "Pow",
        "constant scalar exponent (2 and 0.5 as square and square root). Refused: a run-time exponent",
        None,
    ),
    row("Softplus", "", None),
    row("Softsign", "", None),
    row("Mish", "opset 18+", None),
    row("Gelu", "opset 20+, approximate none or tanh", None),
    row(
        "Add",
        "two tensors of one shape, or a per-channel, scalar or broadcasting constant. Refused: two constants, a run-time tensor broadcast up",
        INT8_OP,
    ),
    row("Sub", "as Add", F32_IN_QDQ),
    row("Mul", "as Add", INT8_OP),
    row("Div", "as Add", F32_IN_QDQ),
    row(
        "Max",
        "two or more tensors of one shape, or a broadcasting constant",
        None,
    ),
    row("Min", "as Max", None),
    row("Sum", "two or more tensors of one shape", None),
    row("Mean", "two or more tensors of one shape", None),
    row(
        "MaxPool",
        "2-D over NCHW images. Refused: 1-D/3-D, the Indices output",
        None,
    ),
    row(
        "AveragePool",
        "2-D over NCHW images. Refused: 1-D/3-D",
        None,
    ),
    row("GlobalAveragePool", "NCHW images", INT8_OP),
    row("GlobalMaxPool", "NCHW images", None),
    row(
        "ReduceMean",
        "over H and W of images (axes as attribute or constant input), any keepdims. Refused: other axes",
        None,
    ),
    row("ReduceSum", "as ReduceMean", None),
    row("ReduceMax", "as ReduceMean", None),
    row(
        "Resize",
        "of H and W, mode nearest or linear, any coordinate_transformation_mode, constant scales or sizes. Refused: cubic, scales computed at run time, resizing N or C",
        None,
    ),
    row(
        "Upsample",
        "opset 9 (scales as an input) over H and W, which tract-onnx alone does not read. Refused: opsets 7-8 (scales as an attribute)",
        None,
    ),
    row(
        "Pad",
        "of H and W, modes constant, reflect, edge. Refused: padding N or C, pads computed at run time",
        None,
    ),
    row(
        "LRN",
        "over the channels of NCHW images, any size, alpha, beta, bias",
        None,
    ),
    row(
        "Softmax",
        "over C of images, over the last axis, and (opset < 13) over a flattened CxHxW. Refused: other axes (the middle axis of a rank-3 tensor)",
        None,
    ),
    row(
        "Concat",
        "along any axis but the batch (of a batch above 1)",
        None,
    ),
    row(
        "Split",
        "along any axis but the batch (ShuffleNetV2's Split then Concat)",
        None,
    ),
    row("Slice", "constant starts/ends/axes, step 1", None),
    row(
        "Flatten",
        "one that keeps the batch axis apart (axis 1 for images)",
        Some("int8 view (a Reshape, no arithmetic); else f32"),
    ),
    row(
        "Reshape",
        "constant target shape keeping the batch axis",
        Some("int8 view (a Reshape, no arithmetic); else f32"),
    ),
    row(
        "Transpose",
        "as part of the NHWC/NCHW moves tf2onnx writes, or of a flattened head",
        None,
    ),
    row("Squeeze", "constant axes other than the batch", None),
    row("Unsqueeze", "constant axes other than the batch", None),
    row("Identity", "", Some("passed through")),
    row("Dropout", "inference: an identity", None),
    row(
        "Constant",
        "",
        Some("passed through (quantized constants folded)"),
    ),
    row(
        "Shape",
        "only where it folds into a constant (PyTorch's Flatten head: Shape, Gather, Unsqueeze, Concat, Reshape)",
        None,
    ),
    row(
        "Gather",
        "only where it folds into a constant (shape arithmetic)",
        None,
    ),
    row(
        "Cast",
        "only where it folds into a constant (shape arithmetic)",
        None,
    ),
    row(
        "Where",
        "only in the forms of PRelu (x < 0 ? x * slope : x, either way round) and Elu (x > 0 ? x : alpha * (exp(x) - 1)), the condition comparing the tensor with a constant. Refused: other selections",
        None,
    ),
    row(
        "Greater",
        "only as the condition of a Where kiln lowers",
        None,
    ),
    row("GreaterOrEqual", "as Greater", None),
    row("Less", "as Greater", None),
    row("LessOrEqual", "as Greater", None),
    row("LogSoftmax", DECOMPOSED, None),
    row("Celu", DECOMPOSED, None),
    row(
        "ReduceL1",
        "over H and W; as tract decomposes it (not yet compared with onnxruntime)",
        None,
    ),
    row("ReduceL2", "as ReduceL1", None),
    row("ReduceSumSquare", "as ReduceL1", None),
    row("ReduceLogSumExp", "as ReduceL1", None),
    row("DepthToSpace", DECOMPOSED, None),
    row("SpaceToDepth", DECOMPOSED, None),
    OpSupport {
        op: "QuantizeLinear",
        float: None,
        quantized: Some("per tensor, int8 or uint8 (uint8 moved by -128); of a constant: folded"),
    },
    OpSupport {
        op: "DequantizeLinear",
        float: None,
        quantized: Some(
            "activations per tensor; weights int8 per tensor or per output channel; biases int32 with zero point 0",
        ),
    },
    qop("QLinearConv", "as int8 Conv"),
    qop("QLinearMatMul", "as int8 MatMul"),
    qop("QGemm", "com.microsoft; as int8 Gemm"),
    qop(
        "QLinearAdd",
        "com.microsoft; two tensors of one shape, or a constant operand",
    ),
    qop(
        "QLinearMul",
        "com.microsoft; two tensors of one shape, per-channel constant",
    ),
    qop("QLinearGlobalAveragePool", "com.microsoft; channels_last 0"),
    qop("QLinearSigmoid", "com.microsoft; as a 256-entry table"),
];

/// The op types a float model may hold, comma-separated in table order
/// (what [`LowerError::Unsupported`] prints).
pub fn names() -> String {
    let v: Vec<&str> = OPS
        .iter()
        .filter(|o| o.float.is_some())
        .map(|o| o.op)
        .collect();
    v.join(", ")
}

/// The table's entry for `op`, if any.
pub fn find(op: &str) -> Option<&'static OpSupport> {
    OPS.iter().find(|o| o.op == op)
}

/// Refuses the first node of `graph` whose op type the table does not list
/// for this kind of model (`quantized`: a QDQ / QOperator model).
///
/// # Errors
/// [`LowerError::Unsupported`] naming the node (`#index op` when unnamed)
/// and its op type, saying the table does not list it.
pub(crate) fn check_listed(
    graph: &tract_onnx::pb::GraphProto,
    source_name: &str,
    quantized: bool,
) -> Result<(), LowerError> {
    for (i, n) in graph.node.iter().enumerate() {
        let entry = find(&n.op_type);
        let listed = entry.is_some_and(|e| {
            if quantized {
                e.quantized.is_some()
            } else {
                e.float.is_some()
            }
        });
        if listed {
            continue;
        }
        let kind = if quantized {
            "quantized (QDQ/QOperator)"
        } else {
            "float"
        };
        let reason = match entry {
            Some(_) => format!(
                "kiln lowers {} only in the other kind of model, not in a {kind} one",
                n.op_type
            ),
            None => format!("{} is not in kiln's op table (docs/onnx-ops.md)", n.op_type),
        };
        return Err(LowerError::Unsupported {
            source_name: source_name.into(),
            node: if n.name.is_empty() {
                format!("#{i} {}", n.op_type)
            } else {
                n.name.clone()
            },
            op: n.op_type.clone(),
            reason,
        });
    }
    Ok(())
}

/// The table as Markdown: what `docs/onnx-ops.md` holds and `cargo xtask
/// onnx-ops` prints.
pub fn markdown() -> String {
    let mut s = String::from(
        "# ONNX ops kiln lowers\n\n\
         Generated from `kiln_lower::ops::OPS` by `cargo xtask onnx-ops > docs/onnx-ops.md`; \
         do not edit by hand (a test in kiln-lower fails when this file differs). \
         The lowering refuses any node whose op type is not listed for its kind of model, \
         naming the node, and a test lowers a small model for every entry.\n\n\
         - Float models: tract-onnx parses, types and declutters the model first, so \
         shape arithmetic and constant subgraphs fold away; notes describe what is \
         left of the node. Any static batch N lowers when no op mixes the images \
         (an op over axis 0, a constant that differs per image is refused naming the node); \
         a symbolic batch is 1 unless the input shape is given; the first axis of a \
         rank-2 or rank-3 input is data, not a batch.\n\
         - Quantized models (any QuantizeLinear/DequantizeLinear or QOperator node): read \
         from the ONNX graph directly; batch 1 only; int8 where the pattern allows, \
         otherwise f32 between explicit dequantize and quantize (`cargo xtask lower` lists \
         those nodes). An op with no quantized entry is refused in such a model.\n\n\
         | ONNX op | float model | quantized model |\n|---|---|---|\n",
    );
    for o in OPS {
        // QuantizeLinear, DequantizeLinear and the QOperator ops make a model
        // a quantized one: "refused" would misread in the float column.
        let marks_quantized = o.float.is_none() && o.quantized.is_some();
        let cell = |c: Option<&str>| match c {
            None if marks_quantized => "n/a (makes the model quantized)".to_string(),
            None => "refused".to_string(),
            Some("") => "yes".to_string(),
            Some(t) => t.replace('|', "\\|"),
        };
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            o.op,
            cell(o.float),
            cell(o.quantized)
        ));
    }
    s
}

/// Writes [`markdown`] to `out` (what `cargo xtask onnx-ops` prints).
///
/// # Errors
/// The writer's I/O error.
pub fn write_markdown(mut out: impl std::io::Write) -> std::io::Result<()> {
    out.write_all(markdown().as_bytes())
}

#[cfg(test)]
mod tests;
