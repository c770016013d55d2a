//! tract's decluttered TypedModel -> kiln IR, node by node.
//!
//! [`load`] is the front end (ONNX bytes -> decluttered model). [`translate`]
//! walks the model in tract's eval order and hands each node to the function
//! for its op kind: [`conv`] (Conv), [`einsum`] (1x1 convs and dense layers),
//! [`binary`] (element-wise binary ops), [`pool`] (pools and reductions),
//! [`activation`] (element-wise activations, Softmax), [`select`] (Iff on
//! a comparison with a constant: PRelu, Elu), [`resize`] (Resize, Upsample)
//! [`spatial`] (Pad, ConvTranspose) and [`shape`] (axis ops, copies, Concat,
//! Slice, Downsample). Constants are never translated on their
//! own: they are read from the facts where a node uses them.

mod activation;
mod batch;
mod binary;
mod conv;
mod einsum;
mod load;
mod names;
mod pool;
mod resize;
mod select;
mod shape;
mod spatial;
#[cfg(test)]
mod tests;
mod upsample;

use std::collections::HashMap;
use std::sync::Arc;

use kiln_ir::{Graph, OpKind, TensorId};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::Downsample;
use tract_onnx::tract_core::ops::array::{Pad, Slice, TypedConcat};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv as TractConv, Deconv, MaxPool, SumPool};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::identity::Identity;
use tract_onnx::tract_core::ops::konst::Const;
use tract_onnx::tract_core::ops::logic::Iff;
use tract_onnx::tract_core::ops::nn::{DataFormat, NearestUpsample, Reduce, Resize, Softmax};
use tract_onnx::tract_core::ops::source::TypedSource;

use crate::LowerError;

pub(crate) use load::load_decluttered;
pub(crate) use names::OnnxNodes;

/// A node input: a tensor computed at run time, or a constant tract folded.
#[derive(Clone)]
enum Value {
    Act(TensorId),
    Const(Arc<Tensor>),
}

/// The graph under construction and where each tract outlet went.
struct Translator<'a> {
    model: &'a TypedModel,
    source_name: &'a str,
    /// The ONNX nodes, to name the user's node in errors.
    onnx: &'a OnnxNodes,
    graph: Graph,
    values: HashMap<OutletId, TensorId>,
    /// Images per call: axis 0 of the model's NCHW input (1 for any other
    /// input); above 1, the graph is one image's (see `batch.rs`).
    batch: usize,
}

/// Translates the decluttered model into kiln IR (before fusion).
pub(crate) fn translate(
    model: &TypedModel,
    source_name: &str,
    onnx: &OnnxNodes,
) -> Result<Graph, LowerError> {
    let mut t = Translator {
        model,
        source_name,
        onnx,
        graph: Graph::default(),
        values: HashMap::new(),
        batch: batch::model_batch(model),
    };
    t.graph.batch = t.batch;
    let order = model.eval_order().map_err(|e| tract_err(source_name, e))?;
    for id in order {
        t.node(model.node(id))?;
    }
    let outputs = model
        .output_outlets()
        .map_err(|e| tract_err(source_name, e))?;
    if outputs.len() != 1 {
        return Err(LowerError::Input {
            source_name: source_name.into(),
            message: format!(
                "the model has {} outputs; kiln lowers models with exactly one",
                outputs.len()
            ),
        });
    }
    let out = *t.values.get(&outputs[0]).ok_or_else(|| LowerError::Input {
        source_name: source_name.into(),
        message: "the model output is a constant".into(),
    })?;
    t.graph.output = out;
    Ok(t.graph)
}

fn tract_err(source_name: &str, e: impl std::fmt::Display) -> LowerError {
    LowerError::Tract {
        source_name: source_name.to_string(),
        message: format!("{e:#}"),
    }
}

/// An image kiln can convolve or pool: `[1, C, H, W]` NCHW, or `[C, H, W]`
/// where tract dropped the batch axis.
fn image_format(fmt: DataFormat, shape: &[usize]) -> bool {
    (fmt == DataFormat::NCHW && shape.len() == 4 && shape[0] == 1)
        || (fmt == DataFormat::CHW && shape.len() == 3)
}

/// Same elements in the same storage order (leading unit axes aside).
fn same_storage(a: &kiln_ir::Tensor, b: &kiln_ir::Tensor) -> bool {
    let strip = |s: &[usize]| -> Vec<usize> { s.iter().copied().skip_while(|d| *d == 1).collect() };
    strip(&a.shape) == strip(&b.shape)
        && (a.is_nhwc() == b.is_nhwc() || (a.storage_is_logical() && b.storage_is_logical()))
}

/// A shape-only tensor (no name) for the layout questions of [`kiln_ir::Tensor`].
fn shape_only(shape: Vec<usize>) -> kiln_ir::Tensor {
    kiln_ir::Tensor {
        name: String::new(),
        shape,
        dtype: kiln_ir::DType::F32,
    }
}

fn dims(fact: &TypedFact) -> Option<Vec<usize>> {
    fact.shape.as_concrete().map(|s| s.to_vec())
}

impl Translator<'_> {
    /// Dispatches one node to the translation of its op kind.
    fn node(&mut self, node: &TypedNode) -> Result<(), LowerError> {
        // Constant-valued outlets are read from their facts where used.
        if node.outputs.iter().all(|o| o.fact.konst.is_some()) || node.op_is::<Const>() {
            return Ok(());
        }
        if self.batch > 1 {
            self.check_batch(node)?;
        }
        let op = &node.op;
        if op.is::<TypedSource>() {
            self.input(node)
        } else if let Some(conv) = op.downcast_ref::<TractConv>() {
            self.conv(node, conv)
        } else if let Some(e) = op.downcast_ref::<EinSum>() {
            self.einsum(node, e)
        } else if self.is_condition(node) {
            // read by the Iff that uses it (see select.rs)
            Ok(())
        } else if let Some(b) = op.downcast_ref::<TypedBinOp>() {
            self.binary(node, b)
        } else if let Some(e) = op.downcast_ref::<ElementWiseOp>() {
            self.element_wise(node, e)
        } else if let Some(r) = op.downcast_ref::<Reduce>() {
            self.reduce(node, r)
        } else if let Some(p) = op.downcast_ref::<MaxPool>() {
            self.max_pool(node, p)
        } else if let Some(p) = op.downcast_ref::<SumPool>() {
            self.sum_pool(node, p)
        } else if let Some(a) = op.downcast_ref::<AxisOp>() {
            self.axis_op(node, a)
        } else if op.is::<Identity>()
            || op
                .downcast_ref::<Cast>()
                .is_some_and(|c| c.to == f32::datum_type())
        {
            self.copy(node)
        } else if let Some(c) = op.downcast_ref::<TypedConcat>() {
            self.concat(node, c)
        } else if let Some(s) = op.downcast_ref::<Softmax>() {
            self.softmax(node, s)
        } else if let Some(d) = op.downcast_ref::<Downsample>() {
            self.downsample(node, d)
        } else if let Some(s) = op.downcast_ref::<Slice>() {
            self.slice(node, s)
        } else if op.is::<Iff>() {
            self.iff(node)
        } else if let Some(u) = op.downcast_ref::<NearestUpsample>() {
            self.nearest_upsample(node, u)
        } else if let Some(r) = op.downcast_ref::<Resize>() {
            self.resize(node, r)
        } else if let Some(p) = op.downcast_ref::<Pad>() {
            self.pad(node, p)
        } else if let Some(d) = op.downcast_ref::<Deconv>() {
            self.conv_transpose(node, d)
        } else if op.name() == "Lrn" {
            // tract-onnx-opl's op; its attributes are read from the ONNX node
            self.lrn(node)
        } else {
            Err(self.unsupported(node, "no kiln kernel for this operation"))
        }
    }

    /// The model input: becomes [`OpKind::Input`] and the graph's input.
    fn input(&mut self, node: &TypedNode) -> Result<(), LowerError> {
        let out = self.emit(node, OpKind::Input, vec![])?;
        self.graph.input = out;
        Ok(())
    }

    /// The error for `node`, naming the user's ONNX node and op type (and
    /// tract's piece of it, when the failing node is one tract derived).
    fn unsupported(&self, node: &TypedNode, reason: impl Into<String>) -> LowerError {
        let tract_op = node.op.name().to_string();
        let mut reason = reason.into();
        let (name, op) = match self.onnx.source(&node.name) {
            Some((shown, op)) => {
                if shown != node.name || op != tract_op {
                    reason = format!("{reason} (at tract's {tract_op} '{}')", node.name);
                }
                (shown.to_string(), op.to_string())
            }
            None => (node.name.clone(), tract_op),
        };
        LowerError::Unsupported {
            source_name: self.source_name.into(),
            node: name,
            op,
            reason,
        }
    }

    fn fact(&self, outlet: OutletId) -> Result<&TypedFact, LowerError> {
        self.model
            .outlet_fact(outlet)
            .map_err(|e| tract_err(self.source_name, e))
    }

    fn value(&self, node: &TypedNode, slot: usize) -> Result<Value, LowerError> {
        let outlet = node.inputs[slot];
        let fact = self.fact(outlet)?;
        if let Some(k) = &fact.konst {
            return Ok(Value::Const(k.clone()));
        }
        self.values
            .get(&outlet)
            .map(|t| Value::Act(*t))
            .ok_or_else(|| self.unsupported(node, "input is not computed by a supported op"))
    }

    fn act_input(&self, node: &TypedNode, slot: usize) -> Result<TensorId, LowerError> {
        match self.value(node, slot)? {
            Value::Act(t) => Ok(t),
            Value::Const(_) => Err(self.unsupported(
                node,
                format!("input {slot} is a constant where kiln expects a tensor"),
            )),
        }
    }

    /// A constant's values as f32, in its own (row-major) layout.
    fn const_f32(&self, node: &TypedNode, t: &Tensor) -> Result<Vec<f32>, LowerError> {
        let c = t
            .cast_to::<f32>()
            .map_err(|e| self.unsupported(node, format!("constant is not numeric: {e}")))?;
        let view = c
            .to_plain_array_view::<f32>()
            .map_err(|e| self.unsupported(node, e.to_string()))?;
        Ok(view.iter().copied().collect())
    }

    /// The static ONNX-logical shape of output 0, of one image (axis 0 is
    /// 1 when the model has a batch of several, see `batch.rs`); f32 only.
    fn output_shape(&self, node: &TypedNode) -> Result<Vec<usize>, LowerError> {
        let fact = self.fact(OutletId::new(node.id, 0))?;
        if fact.datum_type != f32::datum_type() {
            return Err(self.unsupported(
                node,
                format!("output type {:?}; kiln computes f32 only", fact.datum_type),
            ));
        }
        let mut shape =
            dims(fact).ok_or_else(|| self.unsupported(node, "output shape is not static"))?;
        if self.batch > 1 {
            // check_batch saw the batch at axis 0
            shape[0] = 1;
        }
        Ok(shape)
    }

    /// Appends an op writing a new tensor of logical `shape` that no tract
    /// outlet names: a step kiln adds inside one node (the transposes around
    /// a channels-last convolution). Named after the node and `suffix`.
    fn push(
        &mut self,
        node: &TypedNode,
        suffix: &str,
        (kind, inputs): (OpKind, Vec<TensorId>),
        shape: Vec<usize>,
    ) -> TensorId {
        let out = self
            .graph
            .add_tensor(format!("{}.{suffix}", node.name), shape);
        self.graph.ops.push(kiln_ir::Op {
            node: node.name.clone(),
            kind,
            inputs,
            output: out,
        });
        out
    }

    /// Emits `kind` for a node whose input `x` and output are channels-last
    /// `[1, H, W, C]` (tf2onnx's layout, which tract keeps): `x` is
    /// transposed to `[1, C, H, W]`, `kind` computes the `[1, C', H', W']`
    /// image, and that is transposed back into the node's output.
    fn channels_last(
        &mut self,
        node: &TypedNode,
        kind: OpKind,
        x: TensorId,
    ) -> Result<(), LowerError> {
        let xs = self.graph.tensors[x].shape.clone();
        let os = self.output_shape(node)?;
        let nchw = self.push(
            node,
            "nchw",
            (
                OpKind::Transpose {
                    perm: vec![0, 3, 1, 2],
                },
                vec![x],
            ),
            vec![1, xs[3], xs[1], xs[2]],
        );
        let y = self.push(node, "op", (kind, vec![nchw]), vec![1, os[3], os[1], os[2]]);
        self.emit(
            node,
            OpKind::Transpose {
                perm: vec![0, 2, 3, 1],
            },
            vec![y],
        )?;
        Ok(())
    }

    /// Appends the op computing `node`'s output 0 and records that tensor.
    fn emit(
        &mut self,
        node: &TypedNode,
        kind: OpKind,
        inputs: Vec<TensorId>,
    ) -> Result<TensorId, LowerError> {
        let shape = self.output_shape(node)?;
        let out = self.graph.add_tensor(node.name.clone(), shape);
        self.graph.ops.push(kiln_ir::Op {
            node: node.name.clone(),
            kind,
            inputs,
            output: out,
        });
        self.values.insert(OutletId::new(node.id, 0), out);
        Ok(out)
    }
}
