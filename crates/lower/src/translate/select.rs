//! tract's `Iff` (ONNX Where, and how tract expands PRelu): a condition that
//! compares a tensor with a constant picks, element by element, one of two
//! tensors. kiln lowers the form PRelu takes, `x < 0 ? x * slope : x`, into
//! one [`BinaryOp::PRelu`], and the form of Elu and Selu,
//! `x > 0 ? x : alpha * (e^x - 1)`, into one [`UnaryOp::Elu`]; the
//! comparison itself is never computed, and fusion drops the arithmetic tract
//! wired for the negative branch.

use kiln_ir::{BinaryOp, OpKind, Operand, TensorId, UnaryOp};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;

use super::{Translator, Value};
use crate::LowerError;

/// The comparisons a condition may use, as tract names them.
const COMPARISONS: [&str; 4] = ["LT", "LTE", "GT", "GTE"];

impl Translator<'_> {
    /// A comparison producing booleans, left for the `Iff` reading it.
    pub(super) fn is_condition(&self, node: &TypedNode) -> bool {
        node.op
            .downcast_ref::<TypedBinOp>()
            .is_some_and(|b| COMPARISONS.contains(&b.0.name()))
            && node.outputs[0].fact.datum_type == bool::datum_type()
    }

    /// `Iff(x < 0, x * slope, x)` (or `x > 0 ? x : x * slope`) -> PRelu.
    pub(super) fn iff(&mut self, node: &TypedNode) -> Result<(), LowerError> {
        let not_prelu = || {
            "kiln lowers a selection (Where) only in the forms of PRelu, x < 0 ? x * slope : x, \
             and Elu, x > 0 ? x : alpha * (exp(x) - 1)"
        };
        let cond = self.model.node(node.inputs[0].node);
        let Some(cmp) = cond.op.downcast_ref::<TypedBinOp>() else {
            return Err(self.unsupported(node, not_prelu()));
        };
        // normalise to `x cmp c`
        let (x, c, name) = match (self.value(cond, 0)?, self.value(cond, 1)?) {
            (Value::Act(x), Value::Const(k)) => (x, k, cmp.0.name().to_string()),
            (Value::Const(k), Value::Act(x)) => {
                let flipped = match cmp.0.name() {
                    "LT" => "GT",
                    "LTE" => "GTE",
                    "GT" => "LT",
                    _ => "LTE",
                };
                (x, k, flipped.to_string())
            }
            _ => return Err(self.unsupported(node, not_prelu())),
        };
        let zero = self.const_f32(node, &c)?.iter().all(|v| *v == 0.0);
        let (negative, positive) = match name.as_str() {
            "LT" | "LTE" => (self.value(node, 1)?, self.value(node, 2)?),
            _ => (self.value(node, 2)?, self.value(node, 1)?),
        };
        let (slope, elu) = match (negative, positive) {
            (Value::Act(n), Value::Act(p)) if zero && p == x => {
                (self.slope_of(n, x), self.elu_alpha(n, x))
            }
            _ => (None, None),
        };
        if let Some(alpha) = elu {
            self.emit(node, OpKind::Unary(UnaryOp::Elu { alpha }), vec![x])?;
            return Ok(());
        }
        let Some(rhs) = slope else {
            return Err(self.unsupported(node, not_prelu()));
        };
        let kind = OpKind::Binary {
            op: BinaryOp::PRelu,
            rhs,
            data_is_lhs: true,
        };
        self.emit(node, kind, vec![x])?;
        Ok(())
    }

    /// The op computing tensor `t`, if it is `kind op` of a scalar with `t`'s
    /// data input: `(scalar, data input)`.
    fn scalar_op(&self, t: TensorId, kind: BinaryOp) -> Option<(f32, TensorId)> {
        let op = self.graph.ops.iter().find(|op| op.output == t)?;
        match &op.kind {
            OpKind::Binary {
                op: b,
                rhs: Operand::Scalar(s),
                data_is_lhs,
            } if *b == kind && (*data_is_lhs || matches!(kind, BinaryOp::Mul | BinaryOp::Add)) => {
                Some((*s, op.inputs[0]))
            }
            _ => None,
        }
    }

    /// `alpha` when tensor `n` is `alpha * (e^x - 1)` (tract's Elu; just
    /// `e^x - 1` for alpha 1) or `alpha * e^x - alpha` (tract's Selu before
    /// its gamma).
    fn elu_alpha(&self, n: TensorId, x: TensorId) -> Option<f32> {
        let is_exp_of_x = |t: TensorId| {
            self.graph.ops.iter().any(|op| {
                op.output == t && op.kind == OpKind::Unary(UnaryOp::Exp) && op.inputs[0] == x
            })
        };
        // e^x - 1 (as Sub 1 or Add -1): the Exp it reads
        let minus_one = |t: TensorId| match self.scalar_op(t, BinaryOp::Sub) {
            Some((1.0, e)) => Some(e),
            _ => match self.scalar_op(t, BinaryOp::Add) {
                Some((-1.0, e)) => Some(e),
                _ => None,
            },
        };
        if minus_one(n).is_some_and(is_exp_of_x) {
            return Some(1.0); // alpha 1: tract dropped the multiplication
        }
        if let Some((alpha, m)) = self.scalar_op(n, BinaryOp::Mul)
            && minus_one(m).is_some_and(is_exp_of_x)
        {
            return Some(alpha);
        }
        let (alpha, m) = self.scalar_op(n, BinaryOp::Sub)?;
        let (scale, e) = self.scalar_op(m, BinaryOp::Mul)?;
        (scale == alpha && is_exp_of_x(e)).then_some(alpha)
    }

    /// The other operand when tensor `t` is computed as `x * operand`.
    fn slope_of(&self, t: TensorId, x: TensorId) -> Option<Operand> {
        let op = self.graph.ops.iter().find(|op| op.output == t)?;
        match &op.kind {
            OpKind::Binary {
                op: BinaryOp::Mul,
                rhs: rhs @ (Operand::Scalar(_) | Operand::ChannelConst(_)),
                ..
            } if op.inputs[0] == x => Some(rhs.clone()),
            _ => None,
        }
    }
}
