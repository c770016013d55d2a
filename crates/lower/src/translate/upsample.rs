//! ONNX Upsample (deprecated since opset 10, still in older Keras and
//! PyTorch exports), which tract-onnx does not register: opset 9's form,
//! inputs (X, scales) and a `mode` attribute, is the same operator as
//! opset 10's Resize, so it is parsed by tract's own Resize builder as
//! opset 10 (coordinate mode asymmetric: output pixel `i` reads
//! `i / scale`, which for integer nearest factors is Upsample's floor).

use tract_onnx::model::ParsingContext;
use tract_onnx::pb::NodeProto;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::InferenceOp;
use tract_onnx::tract_hir::internal::bail;

/// tract's ONNX front end with Upsample registered.
pub(crate) fn onnx_with_upsample() -> tract_onnx::Onnx {
    let mut onnx = tract_onnx::onnx();
    onnx.op_register.insert("Upsample", upsample);
    onnx
}

/// Upsample(X, scales) as Resize-10(X, scales); the older form with a
/// `scales` attribute (opsets 7 and 8) is refused.
fn upsample(
    ctx: &ParsingContext,
    node: &NodeProto,
) -> TractResult<(Box<dyn InferenceOp>, Vec<String>)> {
    if node.input.len() != 2 {
        bail!(
            "Upsample '{}' with {} inputs: kiln reads opset 9's Upsample(X, scales); \
             re-export with opset 9 or newer (where it is Resize)",
            node.name,
            node.input.len()
        );
    }
    let Some(resize) = ctx.framework.op_register.0.get("Resize") else {
        bail!("tract-onnx has no Resize builder");
    };
    let as_resize_10 = ParsingContext {
        onnx_operator_set_version: 10,
        framework: ctx.framework,
        model: ctx.model,
        parent_graphs: ctx.parent_graphs.clone(),
        model_dir: ctx.model_dir,
        template: ctx.template.clone(),
    };
    resize(&as_resize_10, node)
}
