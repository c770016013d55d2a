//! A static batch of N > 1 images (an NCHW input `[N, C, H, W]`).
//!
//! kiln compiles such a model as its one-image graph, which the generated
//! `infer` runs once per image (see `kiln_ir::Graph::batch`). That is the
//! model's result only if no op mixes the images of the batch, which
//! [`Translator::check_batch`] proves node by node on tract's model at batch
//! N, before the node is translated: every run-time tensor keeps the batch
//! at axis 0 (the input's axis 0, carried by each op to its output's axis
//! 0), constants do not vary along it (they broadcast over the images), and
//! no op reduces, moves, reshapes, slices, pads, concatenates or normalises
//! across axis 0. By induction from the input, each output image is then
//! the one-image model applied to the same input image. The translation
//! itself sees every run-time shape with axis 0 set to 1
//! ([`Translator::output_shape`]), so the one-image graph is translated from
//! the batch-N model's own nodes (a Reshape to a constant `[N, -1]` that an
//! exporter wrote for a fixed batch is read as `[1, -1]`, not re-run at
//! batch 1).

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
use tract_onnx::tract_core::ops::logic::Iff;
use tract_onnx::tract_core::ops::nn::{NearestUpsample, Reduce, Resize, Softmax};
use tract_onnx::tract_core::ops::source::TypedSource;

use super::{Translator, dims};
use crate::LowerError;

/// The batch of tract's (decluttered) model: axis 0 of a rank-4 input when
/// it is above 1, else 1.
pub(super) fn model_batch(model: &TypedModel) -> usize {
    let Ok(fact) = model.input_fact(0) else {
        return 1;
    };
    match dims(fact).as_deref() {
        Some([n, _, _, _]) if *n > 1 => *n,
        _ => 1,
    }
}

impl Translator<'_> {
    /// Checks that `node` keeps the `self.batch` images of the batch apart
    /// (see the module doc); the error names the user's ONNX node, what mixes
    /// the images, and the way out.
    pub(super) fn check_batch(&self, node: &TypedNode) -> Result<(), LowerError> {
        let n = self.batch;
        let refuse = |why: String| {
            self.unsupported(
                node,
                format!(
                    "{why}: kiln compiles the input's batch of {n} images as one image at a \
                     time, so every op must treat the images apart and alike; export the \
                     model with batch 1 (or a symbolic batch) and call it once per image"
                ),
            )
        };
        let out_rank = node.outputs.first().map_or(0, |o| o.fact.rank());
        for (i, o) in node.outputs.iter().enumerate() {
            let shape = dims(&o.fact).unwrap_or_default();
            if shape.first() != Some(&n) {
                return Err(refuse(format!(
                    "its output {i} {shape:?} no longer has the batch of {n} at axis 0"
                )));
            }
        }
        for (slot, outlet) in node.inputs.iter().enumerate() {
            let fact = self.fact(*outlet)?;
            let shape = dims(fact).unwrap_or_default();
            if fact.konst.is_some() {
                // a constant operand broadcasts over the images (only
                // element-wise ops and concatenations align it with axis 0;
                // weights of convs and products are checked by their op)
                let aligned =
                    shape.len() == out_rank && (elementwise(node) || node.op.is::<TypedConcat>());
                if aligned && shape.first().is_some_and(|d| *d != 1) {
                    return Err(refuse(format!(
                        "its constant input {slot} {shape:?} differs along the batch axis"
                    )));
                }
            } else if elementwise(node) && shape.len() != out_rank {
                return Err(refuse(format!(
                    "input {slot} {shape:?} broadcasts against the output's rank {out_rank}"
                )));
            }
        }
        let op = &node.op;
        let axis_0 = |axes: &[usize], what: &str| {
            if axes.contains(&0) {
                Err(refuse(format!("{what} over axis 0")))
            } else {
                Ok(())
            }
        };
        if op.is::<TypedSource>() || elementwise(node) || op.name() == "Lrn" {
            Ok(())
        } else if let Some(c) = op.downcast_ref::<TractConv>() {
            self.batch_format(c.pool_spec.data_format.has_n(), &refuse)
        } else if let Some(p) = op.downcast_ref::<MaxPool>() {
            self.batch_format(p.pool_spec.data_format.has_n(), &refuse)
        } else if let Some(p) = op.downcast_ref::<SumPool>() {
            self.batch_format(p.pool_spec.data_format.has_n(), &refuse)
        } else if let Some(d) = op.downcast_ref::<Deconv>() {
            self.batch_format(d.pool_spec.data_format.has_n(), &refuse)
        } else if let Some(e) = op.downcast_ref::<EinSum>() {
            // axis 0 of the data input must pass through to axis 0 of the
            // output, absent from the other operand: a matrix product per row
            let data = usize::from(self.fact(node.inputs[0])?.konst.is_some());
            let batch_axis = e.axes.iter_all_axes().find(|a| a.inputs[data].contains(&0));
            match batch_axis {
                Some(a)
                    if a.inputs[data][..] == [0]
                        && a.inputs[1 - data].is_empty()
                        && a.outputs[0][..] == [0] =>
                {
                    Ok(())
                }
                _ => Err(refuse(format!(
                    "einsum {} contracts or moves axis 0",
                    e.axes
                ))),
            }
        } else if let Some(r) = op.downcast_ref::<Reduce>() {
            axis_0(&r.axes, "a reduction")
        } else if let Some(s) = op.downcast_ref::<Softmax>() {
            axis_0(&s.axes, "a softmax")
        } else if let Some(c) = op.downcast_ref::<TypedConcat>() {
            axis_0(&[c.axis], "a concatenation")
        } else if let Some(s) = op.downcast_ref::<Slice>() {
            axis_0(&[s.axis], "a slice")
        } else if let Some(d) = op.downcast_ref::<Downsample>() {
            axis_0(&[d.axis], "a subsampling")
        } else if let Some(p) = op.downcast_ref::<Pad>() {
            match p.pads.first() {
                Some((0, 0)) => Ok(()),
                _ => Err(refuse("padding of axis 0".into())),
            }
        } else if let Some(a) = op.downcast_ref::<AxisOp>() {
            let touched = match a {
                AxisOp::Add(x) | AxisOp::Rm(x) => *x == 0,
                AxisOp::Move(from, to) => *from == 0 || *to == 0,
                AxisOp::Reshape(at, _, _) => *at == 0,
            };
            if touched {
                Err(refuse(format!("the axis change {a:?} involves axis 0")))
            } else {
                Ok(())
            }
        } else if op.is::<Resize>() || op.is::<NearestUpsample>() {
            // the output keeps the N images (checked above); kiln resizes
            // only H and W (resize.rs)
            Ok(())
        } else {
            Err(refuse(format!(
                "kiln does not know whether {} keeps the images apart",
                op.name()
            )))
        }
    }

    fn batch_format(
        &self,
        has_n: bool,
        refuse: &dyn Fn(String) -> LowerError,
    ) -> Result<(), LowerError> {
        if has_n {
            Ok(())
        } else {
            Err(refuse("its image layout has no batch axis".into()))
        }
    }
}

/// Element-wise ops (their inputs aligned from the last axis, as ONNX
/// broadcasts): binary arithmetic and comparisons, unary functions,
/// selections, copies and casts.
fn elementwise(node: &TypedNode) -> bool {
    let op = &node.op;
    op.is::<TypedBinOp>()
        || op.is::<ElementWiseOp>()
        || op.is::<Iff>()
        || op.is::<Identity>()
        || op.is::<Cast>()
}
