//! tract `EinSum` with one constant operand -> a 1x1 [`kiln_ir::Conv`]
//! (contracting the channel axis of an image) or [`OpKind::Dense`]
//! (contracting the last axis of `[1, K]`). This is how Gemm, MatMul and 1x1
//! Conv arrive after decluttering.

use kiln_ir::{Activation, Conv, OpKind};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::{Translator, Value, shape_only};
use crate::LowerError;

/// The axes of a matrix-vector einsum: `k` contracted (axis of the data `x`
/// and of the weight `w`), `n` produced (axis of `w` and of the output).
struct Contraction {
    kx: usize,
    kw: usize,
    nw: usize,
    no: usize,
}

/// Logical shapes of the einsum's data input, weight and output.
struct Shapes<'s> {
    x: &'s [usize],
    w: &'s [usize],
    out: &'s [usize],
}

/// The weight as a row-major `[n][k]` matrix, from any layout of `w` whose
/// `n` axis is `nw` and `k` axis is `kw`.
fn weight_nk(data: &[f32], w_shape: &[usize], kw: usize, nw: usize) -> Vec<f32> {
    let (k, n) = (w_shape[kw], w_shape[nw]);
    let mut strides = vec![1usize; w_shape.len()];
    for i in (0..w_shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * w_shape[i + 1];
    }
    let mut nk = vec![0.0; n * k];
    for r in 0..n {
        for c in 0..k {
            nk[r * k + c] = data[r * strides[nw] + c * strides[kw]];
        }
    }
    nk
}

fn pointwise_conv(weight: usize, k: usize, n: usize) -> OpKind {
    OpKind::Conv(Conv {
        kernel: [1, 1],
        stride: [1, 1],
        dilation: [1, 1],
        pads: [0; 4],
        groups: 1,
        in_channels: k,
        out_channels: n,
        weight,
        bias: None,
        act: Activation::None,
    })
}

impl Translator<'_> {
    /// EinSum with one constant operand: a 1x1 convolution or a dense layer.
    pub(super) fn einsum(&mut self, node: &TypedNode, e: &EinSum) -> Result<(), LowerError> {
        if e.q_params.is_some() || node.inputs.len() != 2 {
            return Err(self.unsupported(node, "quantized or multi-operand einsum"));
        }
        let (xs, ws, w) = match (self.value(node, 0)?, self.value(node, 1)?) {
            (Value::Act(_), Value::Const(w)) => (0, 1, w),
            (Value::Const(w), Value::Act(_)) => (1, 0, w),
            _ => return Err(self.unsupported(node, "matrix product of two run-time tensors")),
        };
        let x = self.act_input(node, xs)?;
        let x_shape = self.graph.tensors[x].shape.clone();
        let out_shape = self.output_shape(node)?;
        let w_shape = w.shape().to_vec();
        let shapes = Shapes {
            x: &x_shape,
            w: &w_shape,
            out: &out_shape,
        };
        let c = self.contraction(node, e, (xs, ws), &shapes)?;
        let (k, n) = (w_shape[c.kw], w_shape[c.nw]);
        let nk = weight_nk(&self.const_f32(node, &w)?, &w_shape, c.kw, c.nw);
        let xt = self.graph.tensors[x].clone();
        let ot = shape_only(out_shape.clone());
        let pointwise = match (xt.hwc(), ot.hwc()) {
            (Some((h, w, _)), Some((oh, ow, _))) => {
                (h, w) == (oh, ow)
                    && xt.channel_axis() == Some(c.kx)
                    && ot.channel_axis() == Some(c.no)
            }
            _ => false,
        };
        let weight_name = format!("{}.weight", node.name);
        let kind = if pointwise {
            pointwise_conv(
                self.graph.add_constant(weight_name, vec![n, k, 1, 1], nk),
                k,
                n,
            )
        } else if xt.len() == k && ot.len() == n {
            OpKind::Dense {
                weight: self.graph.add_constant(weight_name, vec![n, k], nk),
                bias: None,
                act: Activation::None,
            }
        } else {
            return Err(self.unsupported(
                node,
                format!("einsum {} over a rank-{} tensor", e.axes, x_shape.len()),
            ));
        };
        self.emit(node, kind, vec![x])?;
        Ok(())
    }

    /// Finds the contracted and the produced axis; every other axis must pass
    /// through from `x` to the output in order, or have extent 1.
    fn contraction(
        &self,
        node: &TypedNode,
        e: &EinSum,
        (xs, ws): (usize, usize),
        shapes: &Shapes<'_>,
    ) -> Result<Contraction, LowerError> {
        let (mut k_axis, mut n_axis) = (None, None);
        let mut passthrough = Vec::new();
        for axis in e.axes.iter_all_axes() {
            let (ix, iw, o) = (&axis.inputs[xs], &axis.inputs[ws], &axis.outputs[0]);
            match (ix.len(), iw.len(), o.len()) {
                (1, 1, 0) if k_axis.is_none() => k_axis = Some((ix[0], iw[0])),
                (0, 1, 1) if n_axis.is_none() => n_axis = Some((iw[0], o[0])),
                (1, 0, 1) => passthrough.push((ix[0], o[0])),
                // axes of extent 1 that only one side carries
                (1, 0, 0) if shapes.x[ix[0]] == 1 => {}
                (0, 1, 0) if shapes.w[iw[0]] == 1 => {}
                (0, 0, 1) if shapes.out[o[0]] == 1 => {}
                _ => {
                    return Err(self.unsupported(
                        node,
                        format!("einsum {} is not a matrix-vector form kiln knows", e.axes),
                    ));
                }
            }
        }
        let (Some((kx, kw)), Some((nw, no))) = (k_axis, n_axis) else {
            return Err(self.unsupported(
                node,
                format!("einsum {} has no contracted/output axis pair", e.axes),
            ));
        };
        passthrough.sort_unstable();
        if passthrough.windows(2).any(|p| p[0].1 > p[1].1) {
            return Err(self.unsupported(node, format!("einsum {} moves axes", e.axes)));
        }
        Ok(Contraction { kx, kw, nw, no })
    }
}
