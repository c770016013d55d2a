//! Ops that move or select elements without arithmetic: axis ops (reshape,
//! transpose), Identity and f32 casts (copies), Concat, Slice and Downsample.

use kiln_ir::OpKind;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;
use tract_onnx::tract_core::ops::Downsample;
use tract_onnx::tract_core::ops::array::{Slice, TypedConcat};
use tract_onnx::tract_core::ops::change_axes::AxisOp;

use super::{Translator, shape_only};
use crate::LowerError;

impl Translator<'_> {
    /// `AxisOp::Move` -> [`OpKind::Transpose`]; every other axis op (add,
    /// remove, reshape) -> [`OpKind::Reshape`].
    pub(super) fn axis_op(&mut self, node: &TypedNode, a: &AxisOp) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        let kind = match a {
            AxisOp::Move(from, to) => {
                let rank = self.graph.tensors[x].shape.len();
                let mut perm: Vec<usize> = (0..rank).collect();
                let moved = perm.remove(*from);
                perm.insert(*to, moved);
                OpKind::Transpose { perm }
            }
            _ => OpKind::Reshape,
        };
        self.emit(node, kind, vec![x])?;
        Ok(())
    }

    /// Identity or a cast to f32: a [`OpKind::Reshape`] to the same shape.
    pub(super) fn copy(&mut self, node: &TypedNode) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        self.emit(node, OpKind::Reshape, vec![x])?;
        Ok(())
    }

    /// Concat of run-time tensors along a logical axis.
    pub(super) fn concat(&mut self, node: &TypedNode, c: &TypedConcat) -> Result<(), LowerError> {
        let inputs = (0..node.inputs.len())
            .map(|i| self.act_input(node, i))
            .collect::<Result<Vec<_>, _>>()?;
        self.emit(node, OpKind::Concat { axis: c.axis }, inputs)?;
        Ok(())
    }

    /// A range of one axis (ONNX Slice with step 1; tract writes each
    /// output of a Split as one).
    pub(super) fn slice(&mut self, node: &TypedNode, s: &Slice) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        let range = (s.start.to_usize(), s.end.to_usize());
        let (Ok(start), Ok(end)) = range else {
            return Err(self.unsupported(node, "slice bounds are not constant"));
        };
        let out = shape_only(self.output_shape(node)?);
        if out.storage_axes() != self.graph.tensors[x].storage_axes() {
            return Err(self.unsupported(
                node,
                format!(
                    "slice of axis {} from {:?} changes kiln's storage order",
                    s.axis, self.graph.tensors[x].shape
                ),
            ));
        }
        let kind = OpKind::Slice {
            axis: s.axis,
            start,
            end,
        };
        self.emit(node, kind, vec![x])?;
        Ok(())
    }

    /// Every `stride`-th row or column of an image (what tract leaves of a
    /// strided 1x1 conv).
    pub(super) fn downsample(
        &mut self,
        node: &TypedNode,
        d: &Downsample,
    ) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        let rank = self.graph.tensors[x].shape.len();
        if !self.graph.tensors[x].is_nhwc()
            || !(rank - 2..rank).contains(&d.axis)
            || d.modulo != 0
            || d.stride <= 0
        {
            return Err(self.unsupported(
                node,
                format!(
                    "downsample on axis {} stride {} modulo {}",
                    d.axis, d.stride, d.modulo
                ),
            ));
        }
        let mut stride = [1, 1];
        stride[d.axis + 2 - rank] = d.stride as usize;
        self.emit(node, OpKind::Downsample { stride }, vec![x])?;
        Ok(())
    }
}
