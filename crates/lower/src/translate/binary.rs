//! tract `TypedBinOp` -> [`OpKind::Binary`]: the data input has the output's
//! storage; the other operand is a same-shape tensor, a per-channel tensor or
//! constant, a full constant or a scalar.

use kiln_ir::{BinaryOp, OpKind, Operand, TensorId};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;

use super::{Translator, Value, same_storage, shape_only};
use crate::LowerError;

/// Whether an operand of shape `s` holds one value per channel of `out`:
/// `[1, C, 1, 1]` / `[C, 1, 1]` for images, `[1, C]` / `[C]` for vectors,
/// with its non-unit axis lined up with the channel axis.
fn per_channel(out: &kiln_ir::Tensor, s: &[usize]) -> bool {
    let out_shape = &out.shape;
    let n: usize = s.iter().product();
    let c = match out.hwc() {
        Some((_, _, c)) => c,
        None if out.len() == *out_shape.last().unwrap_or(&0) => out.len(),
        None => return false,
    };
    if n != c || n == 1 {
        return false;
    }
    let chan = out
        .channel_axis()
        .unwrap_or(out_shape.len().saturating_sub(1));
    let offset = out_shape.len() as isize - s.len() as isize;
    s.iter()
        .enumerate()
        .all(|(i, d)| *d == 1 || i as isize + offset == chan as isize)
}

/// `vals` of shape `from` broadcast (numpy rules) to shape `to`, row-major;
/// `None` when the shapes do not broadcast.
fn broadcast(vals: &[f32], from: &[usize], to: &[usize]) -> Option<Vec<f32>> {
    if from.len() > to.len() {
        return None;
    }
    let pad = to.len() - from.len();
    let mut strides = vec![0usize; to.len()];
    let mut s = 1;
    for i in (0..from.len()).rev() {
        let (f, t) = (from[i], to[i + pad]);
        if f != t && f != 1 {
            return None;
        }
        strides[i + pad] = if f == 1 { 0 } else { s };
        s *= f;
    }
    let n: usize = to.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; to.len()];
    for _ in 0..n {
        out.push(vals[idx.iter().zip(&strides).map(|(i, s)| i * s).sum::<usize>()]);
        for a in (0..to.len()).rev() {
            idx[a] += 1;
            if idx[a] < to[a] {
                break;
            }
            idx[a] = 0;
        }
    }
    Some(out)
}

impl Translator<'_> {
    /// Add, Sub, Mul, Div, Max, Min of a tensor and a tensor or constant.
    pub(super) fn binary(&mut self, node: &TypedNode, b: &TypedBinOp) -> Result<(), LowerError> {
        let op = match b.0.name() {
            "Add" => BinaryOp::Add,
            "Sub" => BinaryOp::Sub,
            "Mul" => BinaryOp::Mul,
            "Div" => BinaryOp::Div,
            "Max" => BinaryOp::Max,
            "Min" => BinaryOp::Min,
            other => return Err(self.unsupported(node, format!("binary {other}"))),
        };
        let out_t = shape_only(self.output_shape(node)?);
        let (data, rhs, data_is_lhs) = match (self.value(node, 0)?, self.value(node, 1)?) {
            (Value::Act(x), Value::Act(y)) => self.tensor_operands(node, x, y, &out_t)?,
            (Value::Act(x), Value::Const(k)) => (x, self.const_operand(node, x, &k, &out_t)?, true),
            (Value::Const(k), Value::Act(x)) => {
                (x, self.const_operand(node, x, &k, &out_t)?, false)
            }
            _ => return Err(self.unsupported(node, "both operands constant")),
        };
        let kind = OpKind::Binary {
            op,
            rhs,
            data_is_lhs,
        };
        self.emit(node, kind, vec![data])?;
        Ok(())
    }

    /// Two run-time tensors: `(data, operand, data_is_lhs)`; the data input is
    /// the one with the output's storage.
    fn tensor_operands(
        &self,
        node: &TypedNode,
        x: TensorId,
        y: TensorId,
        out_t: &kiln_ir::Tensor,
    ) -> Result<(TensorId, Operand, bool), LowerError> {
        let (tx, ty) = (&self.graph.tensors[x], &self.graph.tensors[y]);
        if same_storage(tx, out_t) && same_storage(ty, out_t) {
            Ok((x, Operand::Tensor(y), true))
        } else if same_storage(tx, out_t) && per_channel(out_t, &ty.shape) {
            Ok((x, Operand::ChannelTensor(y), true))
        } else if same_storage(ty, out_t) && per_channel(out_t, &tx.shape) {
            Ok((y, Operand::ChannelTensor(x), false))
        } else {
            Err(self.unsupported(
                node,
                format!("broadcast of {:?} with {:?}", tx.shape, ty.shape),
            ))
        }
    }

    /// The constant operand `k` against the run-time tensor `x`: a scalar, a
    /// per-channel constant `[C]` or a constant of the output's shape (any
    /// other broadcastable constant is expanded to that shape).
    fn const_operand(
        &mut self,
        node: &TypedNode,
        x: TensorId,
        k: &Tensor,
        out_t: &kiln_ir::Tensor,
    ) -> Result<Operand, LowerError> {
        let x_shape = self.graph.tensors[x].shape.clone();
        if !same_storage(&self.graph.tensors[x], out_t) {
            return Err(self.unsupported(
                node,
                format!("tensor {x_shape:?} broadcast up to {:?}", out_t.shape),
            ));
        }
        let vals = self.const_f32(node, k)?;
        let ks = k.shape().to_vec();
        let name = format!("{}.operand", node.name);
        if vals.len() == 1 {
            Ok(Operand::Scalar(vals[0]))
        } else if per_channel(out_t, &ks) {
            let shape = vec![vals.len()];
            Ok(Operand::ChannelConst(
                self.graph.add_constant(name, shape, vals),
            ))
        } else if same_storage(&shape_only(ks.clone()), out_t) {
            let shape = out_t.shape.clone();
            Ok(Operand::Const(self.graph.add_constant(name, shape, vals)))
        } else if let Some(full) = broadcast(&vals, &ks, &out_t.shape) {
            // e.g. a conv bias [1, 1, 1, C] over a channels-last [1, H, W, C]
            let shape = out_t.shape.clone();
            Ok(Operand::Const(self.graph.add_constant(name, shape, full)))
        } else {
            Err(self.unsupported(
                node,
                format!("constant {ks:?} broadcast against {x_shape:?}"),
            ))
        }
    }
}
