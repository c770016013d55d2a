//! Element-wise activations tract keeps as their own ops (Sigmoid, HardSwish,
//! LeakyRelu) and Softmax. ReLU and Clip arrive as Max/Min with constants and go through
//! [`super::binary`]; fusion turns them into activations afterwards.

use kiln_ir::{Activation, BinaryOp, OpKind, Operand};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::{LeakyRelu, Softmax, SoftmaxKind};

use super::Translator;
use crate::LowerError;

impl Translator<'_> {
    /// Sigmoid or HardSwish -> [`OpKind::Activation`]; LeakyRelu -> a
    /// [`BinaryOp::PRelu`] with a scalar slope.
    pub(super) fn element_wise(
        &mut self,
        node: &TypedNode,
        e: &ElementWiseOp,
    ) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        if let Some(l) = e.0.downcast_ref::<LeakyRelu>() {
            let kind = OpKind::Binary {
                op: BinaryOp::PRelu,
                rhs: Operand::Scalar(l.alpha),
                data_is_lhs: true,
            };
            self.emit(node, kind, vec![x])?;
            return Ok(());
        }
        let act = match e.0.name().as_ref() {
            "Sigmoid" => Activation::Sigmoid,
            "HardSwish" => Activation::HardSwish,
            other => return Err(self.unsupported(node, format!("element-wise {other}"))),
        };
        self.emit(node, OpKind::Activation(act), vec![x])?;
        Ok(())
    }

    /// Softmax over the channel axis of an image or the last axis otherwise.
    pub(super) fn softmax(&mut self, node: &TypedNode, s: &Softmax) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        let xt = &self.graph.tensors[x];
        let rank = xt.shape.len();
        let ok_axis = match xt.channel_axis() {
            Some(c) => s.axes[..] == [c],
            None => rank >= 1 && s.axes[..] == [rank - 1],
        };
        if s.kind != SoftmaxKind::Softmax || !ok_axis {
            return Err(self.unsupported(
                node,
                format!(
                    "{:?} over axes {:?} of a rank-{rank} tensor",
                    s.kind, s.axes
                ),
            ));
        }
        self.emit(node, OpKind::Softmax, vec![x])?;
        Ok(())
    }
}
