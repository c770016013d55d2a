//! Element-wise ops: activations, softmax and binary ops. They run in place
//! when the planner put their output on their data input; otherwise the data
//! is copied to the output first and the kernel runs there.

use kiln_ir::{Activation, BinaryOp, Op, Operand, TensorId};

use super::{Emitter, act, binop, f};
use crate::weights;

impl Emitter<'_> {
    /// A one-input kernel that works in place: `call(target)` on the output's
    /// slice (`in_place`) or on `y` after copying the input there.
    fn in_place_or_copy(&self, op: &Op, in_place: bool, call: impl Fn(&str) -> String) -> String {
        let (x, y) = (op.inputs[0], op.output);
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

    pub(super) fn activation(&mut self, op: &Op, a: Activation, in_place: bool) -> String {
        self.kernels.insert("activate");
        self.in_place_or_copy(op, in_place, |y| format!("rt::activate({y}, {});", act(a)))
    }

    /// Softmax over the channels of an image, else over the last axis.
    pub(super) fn softmax(&mut self, op: &Op, in_place: bool) -> String {
        self.kernels.insert("softmax");
        let yt = &self.graph.tensors[op.output];
        let n = match yt.hwc() {
            Some((_, _, c)) => c,
            None => *yt.shape.last().unwrap_or(&1),
        };
        self.in_place_or_copy(op, in_place, |y| format!("rt::softmax({y}, {n});"))
    }

    /// `y op rhs` (or `rhs op y`), with `y` the output already holding the data
    /// input; a tensor operand is read through a second arena view `r`.
    pub(super) fn binary(
        &mut self,
        op: &Op,
        bop: BinaryOp,
        rhs: &Operand,
        data_is_lhs: bool,
        in_place: bool,
    ) -> String {
        let (x, y) = (op.inputs[0], op.output);
        let (read, apply) = self.binary_apply(op, bop, rhs, data_is_lhs);
        match (in_place, read) {
            (true, None) => format!("{{ let y = &mut {}; {apply} }}", self.slice(y)),
            (true, Some(r)) => format!(
                "{{ let ([r], y) = rt::io2(a, [{}], {}); {apply} }}",
                self.region(r),
                self.region(y)
            ),
            (false, None) => {
                format!("{{ {} y.copy_from_slice(x); {apply} }}", self.io1(x, y))
            }
            (false, Some(r)) => format!(
                "{{ let ([x, r], y) = rt::io2(a, [{}, {}], {}); y.copy_from_slice(x); {apply} }}",
                self.region(x),
                self.region(r),
                self.region(y)
            ),
        }
    }

    /// The kernel call applying `rhs` to `y`, and the tensor it reads as `r`
    /// if the operand is one; constant operands go into the blob (a full one
    /// in the output's storage order).
    fn binary_apply(
        &mut self,
        op: &Op,
        bop: BinaryOp,
        rhs: &Operand,
        lhs: bool,
    ) -> (Option<TensorId>, String) {
        let g = self.graph;
        let bop_s = binop(bop);
        match rhs {
            Operand::Scalar(s) => {
                self.kernels.insert("binary_scalar");
                let apply = format!("rt::binary_scalar({bop_s}, y, {}, {lhs});", f(*s));
                (None, apply)
            }
            Operand::ChannelConst(k) => {
                self.kernels.insert("binary_broadcast_channel");
                let wk = self.weights(&g.constants[*k].data);
                let apply = format!("rt::binary_broadcast_channel({bop_s}, y, {wk}, {lhs});");
                (None, apply)
            }
            Operand::Const(k) => {
                self.kernels.insert("binary_inplace");
                let yt = &g.tensors[op.output];
                let data = if yt.storage_is_logical() {
                    g.constants[*k].data.clone()
                } else {
                    weights::chw_to_hwc(&g.constants[*k].data, yt.hwc())
                };
                let wk = self.weights(&data);
                (
                    None,
                    format!("rt::binary_inplace({bop_s}, y, {wk}, {lhs});"),
                )
            }
            Operand::Tensor(t) => {
                self.kernels.insert("binary_inplace");
                let apply = format!("rt::binary_inplace({bop_s}, y, r, {lhs});");
                (Some(*t), apply)
            }
            Operand::ChannelTensor(t) => {
                self.kernels.insert("binary_broadcast_channel");
                let apply = format!("rt::binary_broadcast_channel({bop_s}, y, r, {lhs});");
                (Some(*t), apply)
            }
        }
    }
}
