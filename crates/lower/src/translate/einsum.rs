//! tract `EinSum` with one constant operand -> a 1x1 [`kiln_ir::Conv`]
//! (contracting the channel axis of an image) or [`OpKind::Dense`]
//! (contracting every axis of the input that is not 1: `[1, K]`, or a whole
//! `C x H x W` map when tract folded a Flatten or Reshape into the product).
//! This is how Gemm, MatMul and 1x1 Conv arrive after decluttering.

use kiln_ir::{Activation, Conv, OpKind};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::einsum::EinSum;

use super::{Translator, Value, shape_only};
use crate::LowerError;

/// The axes of a matrix-vector einsum: `k` contracted (pairs of an axis of
/// the data `x` and one of the weight `w`), `n` produced (axis of `w` and of
/// the output).
struct Contraction {
    k: Vec<(usize, usize)>,
    nw: usize,
    no: usize,
}

/// Logical shapes of the einsum's data input, weight and output.
struct Shapes<'s> {
    x: &'s [usize],
    w: &'s [usize],
    out: &'s [usize],
}

fn row_major_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// The weight as a row-major `[n][k]` matrix. `walk` lists, outermost
/// first, the extent of each contracted axis in the order the kernel reads
/// the data and that axis's stride in `w`; `k` is the product of the extents.
fn weight_nk(data: &[f32], w_shape: &[usize], nw: usize, walk: &[(usize, usize)]) -> Vec<f32> {
    let n = w_shape[nw];
    let n_stride = row_major_strides(w_shape)[nw];
    let k: usize = walk.iter().map(|(e, _)| e).product();
    let mut offsets = Vec::with_capacity(k);
    let mut idx = vec![0usize; walk.len()];
    for _ in 0..k {
        offsets.push(idx.iter().zip(walk).map(|(i, (_, s))| i * s).sum::<usize>());
        for a in (0..walk.len()).rev() {
            idx[a] += 1;
            if idx[a] < walk[a].0 {
                break;
            }
            idx[a] = 0;
        }
    }
    let mut nk = vec![0.0; n * k];
    for r in 0..n {
        for (col, off) in offsets.iter().enumerate() {
            nk[r * k + col] = data[r * n_stride + off];
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
        let n = w_shape[c.nw];
        let data = self.const_f32(node, &w)?;
        let w_strides = row_major_strides(&w_shape);
        let xt = self.graph.tensors[x].clone();
        let ot = shape_only(out_shape.clone());
        let pointwise = match (xt.hwc(), ot.hwc(), &c.k[..]) {
            (Some((h, w, _)), Some((oh, ow, _)), [(kx, _)]) => {
                (h, w) == (oh, ow)
                    && xt.channel_axis() == Some(*kx)
                    && ot.channel_axis() == Some(c.no)
            }
            _ => false,
        };
        // tf2onnx's `[1, H, W, C]` maps: the last axis is contracted
        let channels_last = x_shape.len() == 4
            && x_shape[0] == 1
            && out_shape.len() == 4
            && x_shape[1..3] == out_shape[1..3]
            && c.k.len() == 1
            && c.k[0].0 == 3
            && c.no == 3;
        if channels_last && !pointwise {
            let (k, kw) = (x_shape[3], c.k[0].1);
            let nk = weight_nk(&data, &w_shape, c.nw, &[(k, w_strides[kw])]);
            let weight = format!("{}.weight", node.name);
            let weight = self.graph.add_constant(weight, vec![n, k, 1, 1], nk);
            return self.channels_last(node, pointwise_conv(weight, k, n), x);
        }
        let contracted: usize = c.k.iter().map(|(kx, _)| x_shape[*kx]).product();
        let weight_name = format!("{}.weight", node.name);
        let kind = if pointwise {
            let (kx, kw) = c.k[0];
            let k = x_shape[kx];
            let nk = weight_nk(&data, &w_shape, c.nw, &[(k, w_strides[kw])]);
            pointwise_conv(
                self.graph.add_constant(weight_name, vec![n, k, 1, 1], nk),
                k,
                n,
            )
        } else if xt.len() == contracted && ot.len() == n && ot.storage_is_logical() {
            // every axis of x that is not 1 is contracted: walk x as stored
            let mut x_to_w = vec![0; x_shape.len()];
            for (kx, kw) in &c.k {
                x_to_w[*kx] = w_strides[*kw];
            }
            let walk: Vec<(usize, usize)> = xt
                .storage_axes()
                .iter()
                .map(|a| (x_shape[*a], x_to_w[*a]))
                .collect();
            let nk = weight_nk(&data, &w_shape, c.nw, &walk);
            OpKind::Dense {
                weight: self.graph.add_constant(weight_name, vec![n, xt.len()], nk),
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

    /// Finds the contracted axes and the produced axis; every other axis must
    /// pass through from `x` to the output in order, or have extent 1.
    fn contraction(
        &self,
        node: &TypedNode,
        e: &EinSum,
        (xs, ws): (usize, usize),
        shapes: &Shapes<'_>,
    ) -> Result<Contraction, LowerError> {
        let (mut k_axes, mut n_axis) = (Vec::new(), None);
        let mut passthrough = Vec::new();
        for axis in e.axes.iter_all_axes() {
            let (ix, iw, o) = (&axis.inputs[xs], &axis.inputs[ws], &axis.outputs[0]);
            match (ix.len(), iw.len(), o.len()) {
                (1, 1, 0) => k_axes.push((ix[0], iw[0])),
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
        let (false, Some((nw, no))) = (k_axes.is_empty(), n_axis) else {
            return Err(self.unsupported(
                node,
                format!("einsum {} has no contracted/output axis pair", e.axes),
            ));
        };
        passthrough.sort_unstable();
        if passthrough.windows(2).any(|p| p[0].1 > p[1].1) {
            return Err(self.unsupported(node, format!("einsum {} moves axes", e.axes)));
        }
        Ok(Contraction { k: k_axes, nw, no })
    }
}
