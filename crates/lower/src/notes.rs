//! What lowering decided for the user without an error, said in
//! [`kiln_ir::Graph::notes`]: a symbolic batch compiled as 1.

use std::collections::HashSet;

use tract_onnx::pb;

use crate::LowerOptions;

/// The note for an NCHW input whose batch (axis 0) the file leaves symbolic
/// when no input shape is given: kiln compiles it for one image. `None`
/// otherwise (a fixed batch, a given shape, another rank).
pub(crate) fn symbolic_batch(proto: &pb::ModelProto, options: &LowerOptions) -> Option<String> {
    if options.input_shape.is_some() {
        return None;
    }
    let graph = proto.graph.as_ref()?;
    let inits: HashSet<&str> = graph.initializer.iter().map(|i| i.name.as_str()).collect();
    let input = graph
        .input
        .iter()
        .find(|i| !inits.contains(i.name.as_str()))?;
    let pb::type_proto::Value::TensorType(t) = input.r#type.as_ref()?.value.as_ref()?;
    let dims = &t.shape.as_ref()?.dim;
    if dims.len() != 4 {
        return None;
    }
    use pb::tensor_shape_proto::dimension::Value;
    let name = match &dims[0].value {
        Some(Value::DimValue(v)) if *v > 0 => return None,
        Some(Value::DimParam(p)) if !p.is_empty() => format!("'{p}'"),
        _ => "of unknown size".to_string(),
    };
    Some(format!(
        "input '{}' has a symbolic batch {name}: compiled for one image per call; give the \
         input shape (e.g. --input-shape 4,C,H,W) for a batch of several",
        input.name
    ))
}
