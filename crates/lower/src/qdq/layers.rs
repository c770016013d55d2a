//! Conv and Gemm/MatMul between DequantizeLinear and QuantizeLinear: int8
//! weights per output channel and i32 biases.

use kiln_ir::{QOp, QParams, QWeights};
use tract_onnx::prelude::DatumType;

use super::params::{QData, attr_float, attr_int, attr_ints, attr_str};
use super::quant::Emitted;
use super::{Qdq, Val};
use crate::LowerError;

impl Qdq<'_> {
    /// Conv node `i` on int8 input `x`: geometry, int8 weights and biases.
    pub(super) fn int8_conv(
        &self,
        i: usize,
        x: usize,
        px: QParams,
        out: QParams,
        clamp: (i32, i32),
    ) -> Result<Option<Emitted>, LowerError> {
        let Val::Const(w) = self.val(i, 1)? else {
            return Ok(None);
        };
        let Some(q) = &w.q else { return Ok(None) };
        let xs = self.graph.tensors[x].shape.clone();
        let (&[o, cig, kh, kw], &[1, c, h, wd]) = (&w.shape[..], &xs[..]) else {
            return Err(self.unsupported(
                i,
                format!(
                    "weights {:?} on input {xs:?}: kiln takes 2-D NCHW convolutions",
                    w.shape
                ),
            ));
        };
        let conv = self.conv_geometry(i, [o, cig, kh, kw], [c, h, wd])?;
        let weight = self.int8_weights(i, q, 0, o)?;
        let bias = self.int8_bias(i, 2, o, px.scale, &weight.1)?;
        let (oh, ow) = conv_out(&conv, h, wd);
        let qw = QWeights {
            weight: weight.0,
            weight_scales: weight.1,
            bias,
            input: px,
            output: out,
            clamp,
        };
        Ok(Some((
            QOp::Conv { conv, q: qw },
            vec![x],
            vec![1, o, oh, ow],
        )))
    }

    /// Gemm / MatMul node `i` on int8 input `x` (`[1, K]`).
    pub(super) fn int8_dense(
        &self,
        i: usize,
        x: usize,
        px: QParams,
        out: QParams,
        clamp: (i32, i32),
    ) -> Result<Option<Emitted>, LowerError> {
        let n = &self.nodes[i];
        let gemm = n.op_type == "Gemm";
        let trans_b = gemm && attr_int(n, "transB", 0) != 0;
        if gemm
            && (attr_int(n, "transA", 0) != 0
                || attr_float(n, "alpha", 1.0) != 1.0
                || attr_float(n, "beta", 1.0) != 1.0)
        {
            return Ok(None);
        }
        let Val::Const(w) = self.val(i, 1)? else {
            return Ok(None);
        };
        let Some(q) = &w.q else { return Ok(None) };
        let [r, cols] = w.shape[..] else {
            return Ok(None);
        };
        let (k, nout, out_axis) = if trans_b { (cols, r, 0) } else { (r, cols, 1) };
        let xs = &self.graph.tensors[x].shape;
        if xs.iter().product::<usize>() != k || xs.first() != Some(&1) {
            return Err(self.unsupported(i, format!("input {xs:?} against weights {:?}", w.shape)));
        }
        let (mut wq, scales) = self.int8_weights(i, q, out_axis, nout)?;
        if !trans_b {
            wq = (0..nout)
                .flat_map(|o| (0..k).map(move |j| (o, j)))
                .map(|(o, j)| wq[j * nout + o])
                .collect();
        }
        let bias = if gemm {
            self.int8_bias(i, 2, nout, px.scale, &scales)?
        } else {
            vec![0; nout]
        };
        let qw = QWeights {
            weight: wq,
            weight_scales: scales,
            bias,
            input: px,
            output: out,
            clamp,
        };
        Ok(Some((QOp::Dense(qw), vec![x], vec![1, nout])))
    }

    /// Symmetric int8 weights and one scale per output channel (`out_axis`).
    pub(super) fn int8_weights(
        &self,
        i: usize,
        q: &QData,
        out_axis: usize,
        n_out: usize,
    ) -> Result<(Vec<i8>, Vec<f32>), LowerError> {
        if q.dtype != DatumType::I8 {
            return Err(self.qerr(
                i,
                format!(
                    "weights are {:?}; kiln takes int8 symmetric weights",
                    q.dtype
                ),
            ));
        }
        if q.zero_points.iter().any(|z| *z != 0) {
            return Err(self.qerr(
                i,
                "weight zero point is not 0; kiln takes symmetric weights",
            ));
        }
        if let Some(a) = q.axis.filter(|a| *a != out_axis) {
            return Err(self.qerr(i, format!("weights quantized per axis {a}; kiln takes per output channel (axis {out_axis})")));
        }
        let scales = if q.scales.len() == 1 {
            vec![q.scales[0]; n_out]
        } else {
            q.scales.clone()
        };
        Ok((q.values.iter().map(|v| *v as i8).collect(), scales))
    }

    /// i32 biases of input `slot` in units of `sx * sw[o]`: the stored
    /// integers of an int32 DequantizeLinear whose scale is that product,
    /// else the real values rounded.
    fn int8_bias(
        &self,
        i: usize,
        slot: usize,
        n: usize,
        sx: f32,
        sw: &[f32],
    ) -> Result<Vec<i32>, LowerError> {
        let sw: Vec<f32> = if sw.len() == n {
            sw.to_vec()
        } else {
            vec![sw[0]; n]
        };
        if self.nodes[i].input.get(slot).is_none_or(|s| s.is_empty()) {
            return Ok(vec![0; n]);
        }
        let Val::Const(b) = self.val(i, slot)? else {
            return Err(self.unsupported(i, "the bias is not a constant"));
        };
        if b.real.len() != n && b.real.len() != 1 {
            return Err(self.qerr(
                i,
                format!("{} biases for {n} output channels", b.real.len()),
            ));
        }
        let at = |v: &[f32], o: usize| if v.len() == 1 { v[0] } else { v[o] };
        let stored = b.q.as_ref().filter(|q| {
            q.dtype == DatumType::I32
                && q.zero_points.iter().all(|z| *z == 0)
                && (0..n).all(|o| {
                    ((at(&q.scales, o) as f64) - sx as f64 * sw[o] as f64).abs()
                        <= 1e-6 * (sx as f64 * sw[o] as f64)
                })
        });
        Ok((0..n)
            .map(|o| match stored {
                Some(q) => q.values[if q.values.len() == 1 { 0 } else { o }] as i32,
                None => (at(&b.real, o) as f64 / (sx as f64 * sw[o] as f64))
                    .round()
                    .clamp(-2e9, 2e9) as i32,
            })
            .collect())
    }

    /// Geometry of Conv node `i` (weights OIHW `w`, input `[c, h, w]`).
    pub(super) fn conv_geometry(
        &self,
        i: usize,
        w: [usize; 4],
        x: [usize; 3],
    ) -> Result<kiln_ir::Conv, LowerError> {
        let n = &self.nodes[i];
        let ap = attr_str(n, "auto_pad").unwrap_or_default();
        if !(ap.is_empty() || ap == "NOTSET" || ap == "VALID") {
            return Err(self.unsupported(i, format!("auto_pad {ap}; give explicit pads")));
        }
        let two = |name: &str| -> Result<[usize; 2], LowerError> {
            match attr_ints(n, name).as_deref() {
                None => Ok([1, 1]),
                Some([a, b]) if *a > 0 && *b > 0 => Ok([*a as usize, *b as usize]),
                Some(v) => Err(self.unsupported(i, format!("{name} {v:?}"))),
            }
        };
        let pads = match attr_ints(n, "pads").as_deref() {
            None => [0; 4],
            Some([t, l, b, r]) if [*t, *l, *b, *r].iter().all(|p| *p >= 0) => {
                [*t as usize, *l as usize, *b as usize, *r as usize]
            }
            Some(v) => return Err(self.unsupported(i, format!("pads {v:?}"))),
        };
        let groups = attr_int(n, "group", 1).max(1) as usize;
        if x[0] != w[1] * groups || !w[0].is_multiple_of(groups) {
            return Err(self.unsupported(
                i,
                format!(
                    "weights {w:?} with {groups} groups on {} input channels",
                    x[0]
                ),
            ));
        }
        Ok(kiln_ir::Conv {
            kernel: [w[2], w[3]],
            stride: two("strides")?,
            dilation: two("dilations")?,
            pads,
            groups,
            in_channels: x[0],
            out_channels: w[0],
            weight: 0,
            bias: None,
            act: kiln_ir::Activation::None,
        })
    }
}

/// Output height and width of `conv` on an `h x w` input.
pub(super) fn conv_out(c: &kiln_ir::Conv, h: usize, w: usize) -> (usize, usize) {
    let o = |n: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize| {
        (n + p0 + p1 - d * (k - 1) - 1) / s + 1
    };
    (
        o(
            h,
            c.kernel[0],
            c.stride[0],
            c.dilation[0],
            c.pads[0],
            c.pads[2],
        ),
        o(
            w,
            c.kernel[1],
            c.stride[1],
            c.dilation[1],
            c.pads[1],
            c.pads[3],
        ),
    )
}
