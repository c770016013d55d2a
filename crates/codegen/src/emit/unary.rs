//! Element-wise functions of one value ([`kiln_ir::UnaryOp`]): one call of
//! `rt::unary` on the output, in place when the planner put the output on
//! the input, else after copying the input there.

use kiln_ir::{Op, UnaryOp};

use super::{Emitter, f};

/// The `rt::UnaryOp` expression for `u`.
fn unary_op(u: UnaryOp) -> String {
    match u {
        UnaryOp::Abs => "rt::UnaryOp::Abs".into(),
        UnaryOp::Neg => "rt::UnaryOp::Neg".into(),
        UnaryOp::Exp => "rt::UnaryOp::Exp".into(),
        UnaryOp::Log => "rt::UnaryOp::Log".into(),
        UnaryOp::Sqrt => "rt::UnaryOp::Sqrt".into(),
        UnaryOp::Rsqrt => "rt::UnaryOp::Rsqrt".into(),
        UnaryOp::Reciprocal => "rt::UnaryOp::Reciprocal".into(),
        UnaryOp::Square => "rt::UnaryOp::Square".into(),
        UnaryOp::Pow { exponent } => format!("rt::UnaryOp::Pow {{ exponent: {} }}", f(exponent)),
        UnaryOp::Tanh => "rt::UnaryOp::Tanh".into(),
        UnaryOp::Erf => "rt::UnaryOp::Erf".into(),
        UnaryOp::Silu => "rt::UnaryOp::Silu".into(),
        UnaryOp::Gelu => "rt::UnaryOp::Gelu".into(),
        UnaryOp::GeluTanh { square } => format!("rt::UnaryOp::GeluTanh {{ square: {square} }}"),
        UnaryOp::Elu { alpha } => format!("rt::UnaryOp::Elu {{ alpha: {} }}", f(alpha)),
    }
}

impl Emitter<'_> {
    /// `rt::unary` over the output (same length and storage as the input).
    pub(super) fn unary(&mut self, op: &Op, u: UnaryOp, in_place: bool) -> String {
        self.kernels.insert("unary");
        let (x, y) = (op.inputs[0], op.output);
        let call = |target: &str| format!("rt::unary({target}, {});", unary_op(u));
        if in_place {
            call(&format!("&mut {}", self.slice(y)))
        } else {
            format!(
                "{{ {} y.copy_from_slice(x); {} }}",
                self.io1(x, y),
                call("y")
            )
        }
    }
}
