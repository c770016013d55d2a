//! The front end: ONNX bytes -> tract's typed, decluttered model, with the
//! input shape fixed (a symbolic batch becomes 1, a static one stays), shape hints that
//! contradict it dropped, and tract's failures turned into [`LowerError`]s
//! that name the source and, when possible, the node.

use std::collections::HashMap;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_hir::infer::Factoid;

use super::tract_err;
use crate::{LowerError, LowerOptions};

/// Parses, fixes the input shape, types and declutters.
pub(crate) fn load_decluttered(
    bytes: &[u8],
    source_name: &str,
    options: &LowerOptions,
) -> Result<TypedModel, LowerError> {
    let mut model = super::upsample::onnx_with_upsample()
        .model_for_read(&mut &bytes[..])
        .map_err(|e| LowerError::Parse {
            source_name: source_name.to_string(),
            message: format!("{e:#}"),
        })?;
    let inputs = model
        .input_outlets()
        .map_err(|e| tract_err(source_name, e))?
        .to_vec();
    if inputs.len() != 1 {
        return Err(input_err(
            source_name,
            format!(
                "the model has {} inputs; kiln lowers models with exactly one",
                inputs.len()
            ),
        ));
    }
    let input_name = model.node(inputs[0].node).name.clone();
    let fact = model
        .input_fact(0)
        .map_err(|e| tract_err(source_name, e))?
        .clone();
    let shape = match &options.input_shape {
        Some(given) => given_shape(source_name, &input_name, &fact, given)?,
        None => declared_shape(source_name, input_name.clone(), &fact)?,
    };
    if let Some(axis) = shape.iter().position(|d| *d == 0) {
        return Err(input_err(
            source_name,
            format!(
                "input '{input_name}' {shape:?} has a zero-sized dimension at axis {axis}: \
                 there is nothing to compute; give the input's real shape"
            ),
        ));
    }
    // Only an NCHW image's axis 0 is a batch (of any static size: see
    // `batch.rs`); the first axis of a rank-2 or rank-3 input is data like
    // any other.
    model
        .set_input_fact(0, f32::fact(&shape).into())
        .map_err(|e| tract_err(source_name, e))?;
    let onnx_types = onnx_op_types(&model);
    let typed = match model.clone().into_typed() {
        Ok(typed) => typed,
        // Exporters write intermediate value_info (or output shapes) with a
        // symbolic or other batch that contradicts the fixed input; like
        // onnxruntime, kiln then ignores those hints and infers the shapes
        // from the input alone. The first error stands if that fails too.
        Err(first) => relax_shape_hints(model, bytes)
            .and_then(|m| m.into_typed().ok())
            .ok_or_else(|| typed_err(source_name, &onnx_types, first))?,
    };
    typed
        .into_decluttered()
        .map_err(|e| tract_err(source_name, e))
}

/// `model` with the shapes its value_info and graph outputs declared
/// forgotten (element types kept); `None` if the ONNX cannot be reread.
fn relax_shape_hints(mut model: InferenceModel, bytes: &[u8]) -> Option<InferenceModel> {
    let proto = tract_onnx::onnx()
        .proto_model_for_read(&mut &bytes[..])
        .ok()?;
    let graph = proto.graph?;
    for info in graph.value_info.iter().chain(&graph.output) {
        let Some(outlet) = model.find_outlet_label(&info.name) else {
            continue;
        };
        if model.input_outlets().ok()?.contains(&outlet) {
            continue; // the input's fact is the one kiln fixed
        }
        let old = model.outlet_fact(outlet).ok()?;
        if old.value.concretize().is_some() {
            continue; // a constant: its shape is its value's
        }
        let relaxed = match old.datum_type.concretize() {
            Some(dt) => InferenceFact::dt(dt),
            None => InferenceFact::default(),
        };
        model.set_outlet_fact(outlet, relaxed).ok()?;
    }
    Some(model)
}

fn input_err(source_name: &str, message: String) -> LowerError {
    LowerError::Input {
        source_name: source_name.to_string(),
        message,
    }
}

/// A shape the user gave: it fills in symbolic dimensions but may not
/// contradict one the model fixes (a CNN with global pooling would otherwise
/// silently run at another resolution than it was made for).
fn given_shape(
    source_name: &str,
    input_name: &str,
    fact: &InferenceFact,
    given: &[usize],
) -> Result<Vec<usize>, LowerError> {
    if fact.shape.is_open() {
        return Ok(given.to_vec());
    }
    let declared: Vec<Option<usize>> = fact
        .shape
        .dims()
        .map(|d| d.concretize().and_then(|d| d.to_usize().ok()))
        .collect();
    let clash = declared.len() != given.len()
        || declared
            .iter()
            .zip(given)
            .any(|(d, given)| d.is_some_and(|d| d != *given));
    if clash {
        let shown: Vec<String> = declared
            .iter()
            .map(|d| d.map_or("?".to_string(), |d| d.to_string()))
            .collect();
        return Err(input_err(
            source_name,
            format!(
                "input '{input_name}' is declared [{}], the given shape is {given:?}",
                shown.join(", ")
            ),
        ));
    }
    Ok(given.to_vec())
}

/// The shape the model declares; a symbolic batch (axis 0) becomes 1, any
/// other symbolic dimension is an error.
fn declared_shape(
    source_name: &str,
    input_name: String,
    fact: &InferenceFact,
) -> Result<Vec<usize>, LowerError> {
    if fact.shape.is_open() {
        return Err(input_err(
            source_name,
            format!("input '{input_name}' has no declared rank; give the input shape explicitly"),
        ));
    }
    let mut shape = Vec::new();
    for (axis, d) in fact.shape.dims().enumerate() {
        match d.concretize().and_then(|d| d.to_usize().ok()) {
            Some(v) => shape.push(v),
            None if axis == 0 => shape.push(1),
            None => {
                return Err(LowerError::SymbolicDim {
                    source_name: source_name.to_string(),
                    input: input_name,
                    dim: d
                        .concretize()
                        .map(|d| d.to_string())
                        .unwrap_or_else(|| "?".into()),
                    axis,
                });
            }
        }
    }
    Ok(shape)
}

/// tract fails typing on ops it does not implement; name the node when possible.
fn typed_err(source_name: &str, onnx_types: &HashMap<String, String>, e: TractError) -> LowerError {
    let message = format!("{e:#}");
    for (node, op) in onnx_types {
        if op.starts_with("Unimplemented") && message.contains(node.as_str()) {
            return LowerError::Unsupported {
                source_name: source_name.to_string(),
                node: node.clone(),
                op: op.clone(),
                reason: "tract-onnx does not implement it".into(),
            };
        }
    }
    tract_err(source_name, message)
}

/// ONNX-level op name of each node of the inference model.
fn onnx_op_types(model: &InferenceModel) -> HashMap<String, String> {
    model
        .nodes()
        .iter()
        .map(|n| (n.name.clone(), n.op.name().to_string()))
        .collect()
}
