//! Element-wise activations tract keeps as their own ops (Sigmoid, HardSwish,
//! LeakyRelu), the unary math ops (Abs, Exp, Tanh, Pow by a constant...,
//! see [`unary_op`]) and Softmax. ReLU and Clip arrive as Max/Min with constants and go through
//! [`super::binary`]; fusion turns them into activations afterwards.

use kiln_ir::{Activation, BinaryOp, OpKind, Operand, UnaryOp};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math::PowConst;
use tract_onnx::tract_core::ops::nn::{GeluApproximate, LeakyRelu, Softmax, SoftmaxKind};

use super::Translator;
use crate::LowerError;

/// The [`UnaryOp`] of a tract element-wise op: ONNX Abs, Neg, Exp, Log
/// (tract's Ln), Sqrt, Reciprocal (Recip), Tanh, Erf, Pow by a constant
/// (Square for 2, Sqrt for 0.5, else PowConst), Gelu (GeluExact; tract also
/// finds PyTorch's erf form), Gelu tanh (GeluApproximate), SiLU (tract's
/// Silu: Swish, and Mul(x, Sigmoid(x)) which it recognises), and Rsqrt.
fn unary_op(e: &ElementWiseOp) -> Option<UnaryOp> {
    if let Some(p) = e.0.downcast_ref::<PowConst>() {
        return Some(UnaryOp::Pow {
            exponent: p.exponent,
        });
    }
    if let Some(g) = e.0.downcast_ref::<GeluApproximate>() {
        // tract's fast form is the one with x^2 in the polynomial
        return Some(UnaryOp::GeluTanh {
            square: g.fast_impl,
        });
    }
    Some(match e.0.name().as_ref() {
        "Abs" => UnaryOp::Abs,
        "Neg" => UnaryOp::Neg,
        "Exp" => UnaryOp::Exp,
        "Ln" => UnaryOp::Log,
        "Sqrt" => UnaryOp::Sqrt,
        "Rsqrt" => UnaryOp::Rsqrt,
        "Recip" => UnaryOp::Reciprocal,
        "Square" => UnaryOp::Square,
        "Tanh" => UnaryOp::Tanh,
        "Erf" => UnaryOp::Erf,
        "Silu" => UnaryOp::Silu,
        "GeluExact" => UnaryOp::Gelu,
        _ => return None,
    })
}

impl Translator<'_> {
    /// Sigmoid or HardSwish -> [`OpKind::Activation`]; LeakyRelu -> a
    /// [`BinaryOp::PRelu`] with a scalar slope; the unary math ops ->
    /// [`OpKind::Unary`].
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
        if let Some(u) = unary_op(e) {
            self.emit(node, OpKind::Unary(u), vec![x])?;
            return Ok(());
        }
        let act = match e.0.name().as_ref() {
            "Sigmoid" => Activation::Sigmoid,
            "HardSwish" => Activation::HardSwish,
            other => {
                return Err(self.unsupported(
                    node,
                    format!("no kiln kernel for the element-wise function {other}"),
                ));
            }
        };
        self.emit(node, OpKind::Activation(act), vec![x])?;
        Ok(())
    }

    /// Softmax over the channel axis of an image or the last axis otherwise;
    /// over all axes but a unit batch (opset < 13's Softmax of a flattened
    /// C*H*W) as Reshape to `[1, n]`, Softmax, Reshape back, and over an
    /// image's last axis (W) as Reshape to `[n / W, W]`, Softmax, Reshape
    /// back.
    pub(super) fn softmax(&mut self, node: &TypedNode, s: &Softmax) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        let xt = &self.graph.tensors[x];
        let rank = xt.shape.len();
        let ok_axis = match xt.channel_axis() {
            Some(c) => s.axes[..] == [c],
            None => rank >= 1 && s.axes[..] == [rank - 1],
        };
        // opset < 13: Softmax(axis = 1) of [1, C, H, W] is over all of C*H*W;
        // the last axis of an image (W) is a softmax over rows of a matrix
        let shape = xt.shape.clone();
        let lead = shape.iter().take_while(|d| **d == 1).count().min(1);
        let all: Vec<usize> = (lead..rank).collect();
        let n: usize = shape.iter().product();
        let rows = if s.axes[..] == all[..] {
            Some([1, n])
        } else if s.axes[..] == [rank - 1] && shape[rank - 1] > 0 {
            Some([n / shape[rank - 1], shape[rank - 1]])
        } else {
            None
        };
        if let (SoftmaxKind::Softmax, false, true, Some(m)) = (&s.kind, ok_axis, rank > 1, rows) {
            let flat = self.push(node, "rows", (OpKind::Reshape, vec![x]), m.to_vec());
            let soft = self.push(node, "softmax", (OpKind::Softmax, vec![flat]), m.to_vec());
            self.emit(node, OpKind::Reshape, vec![soft])?;
            return Ok(());
        }
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
