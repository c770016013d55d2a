//! The forward pass of a [`SubNet`] over a batch of NHWC images on kiln-runtime's
//! kernels, batch norm as a [`BnContext`] says (the same three modes as the burn path).

use kiln_runtime::{Activation as Act, MAX_PATCH};

use super::subnet::{ConvKind, SubConv, SubNet, SubSe};
use crate::SupernetError;
use crate::bn::{BN_EPSILON, BnContext, BnMode};

/// A batch of feature maps, NHWC `[n][h][w][c]`.
pub(crate) struct Maps {
    pub data: Vec<f32>,
    pub n: usize,
    pub pixels: usize,
    pub c: usize,
}

impl Maps {
    fn image(&self, i: usize) -> &[f32] {
        let len = self.pixels * self.c;
        &self.data[i * len..(i + 1) * len]
    }
}

/// Logits `[n][classes]` of `net` for `images` (NHWC, normalised).
///
/// Errors: [`SupernetError::Stats`] in fixed mode for a layer without statistics of its
/// width.
pub(crate) fn forward(
    net: &SubNet,
    images: Maps,
    bn: &mut BnContext,
) -> Result<Vec<f32>, SupernetError> {
    let mut x = conv_bn(&net.stem, &images, bn)?;
    for b in &net.blocks {
        let expanded = match &b.expand {
            Some(e) => Some(conv_bn(e, &x, bn)?),
            None => None,
        };
        let mut y = conv_bn(&b.depthwise, expanded.as_ref().unwrap_or(&x), bn)?;
        if let Some(se) = &b.se {
            squeeze_excite(se, &mut y);
        }
        let mut out = conv_bn(&b.project, &y, bn)?;
        if b.residual {
            for (o, i) in out.data.iter_mut().zip(&x.data) {
                *o += i;
            }
        }
        x = out;
    }
    if let Some(h) = &net.head {
        x = conv_bn(h, &x, bn)?;
    }
    let mut logits = vec![0.0; x.n * net.classes];
    let mut pooled = vec![0.0; x.c];
    let scale = 1.0 / x.pixels as f32;
    for (i, row) in logits.chunks_exact_mut(net.classes).enumerate() {
        kiln_runtime::global_avg_pool(x.image(i), &mut pooled, x.c, scale);
        kiln_runtime::dense(
            &pooled,
            &net.classifier_weight,
            &net.classifier_bias,
            row,
            Act::None,
        );
    }
    Ok(logits)
}

/// `conv`, then batch norm and the activation. In fixed mode batch norm is folded into
/// the weights and the activation fused into the kernel; otherwise the batch's own
/// statistics normalise it (accumulated in `Collect` mode).
fn conv_bn(conv: &SubConv, x: &Maps, bn: &mut BnContext) -> Result<Maps, SupernetError> {
    let g = &conv.geometry;
    let c = g.out_c;
    if bn.mode == BnMode::Fixed {
        let s = bn.fixed(&conv.name, c)?;
        let (w, b) = conv.folded(&s.mean(), &s.var());
        return Ok(run(conv, x, &w, &b, conv.act));
    }
    let mut y = run(conv, x, &conv.weight, &[], Act::None);
    let (mean, var) = channel_stats(&y.data, c);
    if bn.mode == BnMode::Collect {
        bn.accumulate(&conv.name, &mean, &var, (y.n * y.pixels) as f64);
    }
    let scale: Vec<f32> = (0..c)
        .map(|o| conv.gamma[o] / (var[o] as f32 + BN_EPSILON as f32).sqrt())
        .collect();
    let shift: Vec<f32> = (0..c)
        .map(|o| conv.beta[o] - mean[o] as f32 * scale[o])
        .collect();
    for row in y.data.chunks_exact_mut(c) {
        for ((v, s), t) in row.iter_mut().zip(&scale).zip(&shift) {
            *v = *v * s + t;
        }
    }
    kiln_runtime::activate(&mut y.data, conv.act);
    Ok(y)
}

/// Per-channel mean and biased variance of `[pixels][c]` rows (two passes, f64 sums).
fn channel_stats(data: &[f32], c: usize) -> (Vec<f64>, Vec<f64>) {
    let rows = (data.len() / c).max(1) as f64;
    let mut mean = vec![0.0f64; c];
    for row in data.chunks_exact(c) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += f64::from(*v);
        }
    }
    mean.iter_mut().for_each(|m| *m /= rows);
    let mut var = vec![0.0f64; c];
    for row in data.chunks_exact(c) {
        for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
            let d = f64::from(*v) - m;
            *s += d * d;
        }
    }
    var.iter_mut().for_each(|v| *v /= rows);
    (mean, var)
}

/// The convolution alone, weights `w` in `conv.kind`'s layout, bias `b` (or none).
fn run(conv: &SubConv, x: &Maps, w: &[f32], b: &[f32], act: Act) -> Maps {
    let g = kiln_runtime::Conv2d {
        act,
        ..conv.geometry
    };
    let (pixels, c) = (g.out_h * g.out_w, g.out_c);
    let mut out = vec![0.0; x.n * pixels * c];
    match conv.kind {
        ConvKind::Pointwise => {
            let mut packed = vec![0.0; kiln_runtime::packed_gemm_len(g.in_c, c)];
            kiln_runtime::pack_gemm(w, b, g.in_c, c, &mut packed);
            kiln_runtime::gemm(&x.data, &packed, &mut out, x.n * x.pixels, g.in_c, c, act);
        }
        ConvKind::Full if g.k_h * g.k_w * g.in_c <= MAX_PATCH => {
            let k = g.k_h * g.k_w * g.in_c;
            let mut packed = vec![0.0; kiln_runtime::packed_gemm_len(k, c)];
            kiln_runtime::pack_gemm(w, b, k, c, &mut packed);
            for (i, o) in out.chunks_exact_mut(pixels * c).enumerate() {
                kiln_runtime::conv2d_gemm(x.image(i), &packed, o, &g);
            }
        }
        ConvKind::Full => {
            for (i, o) in out.chunks_exact_mut(pixels * c).enumerate() {
                kiln_runtime::conv2d(x.image(i), w, b, o, &g);
            }
        }
        ConvKind::Depthwise => {
            for (i, o) in out.chunks_exact_mut(pixels * c).enumerate() {
                kiln_runtime::depthwise_conv2d(x.image(i), w, b, o, &g);
            }
        }
    }
    Maps {
        data: out,
        n: x.n,
        pixels,
        c,
    }
}

/// Scales each image's channels by `sigmoid(expand(relu(reduce(mean over pixels))))`.
fn squeeze_excite(se: &SubSe, x: &mut Maps) {
    let len = x.pixels * x.c;
    let (mut pooled, mut reduced, mut gate) = (
        vec![0.0; se.channels],
        vec![0.0; se.reduced],
        vec![0.0; se.channels],
    );
    let scale = 1.0 / x.pixels as f32;
    for image in x.data.chunks_exact_mut(len) {
        kiln_runtime::global_avg_pool(image, &mut pooled, x.c, scale);
        kiln_runtime::dense(
            &pooled,
            &se.reduce_weight,
            &se.reduce_bias,
            &mut reduced,
            Act::Relu,
        );
        kiln_runtime::dense(
            &reduced,
            &se.expand_weight,
            &se.expand_bias,
            &mut gate,
            Act::Sigmoid,
        );
        for pixel in image.chunks_exact_mut(x.c) {
            for (v, g) in pixel.iter_mut().zip(&gate) {
                *v *= g;
            }
        }
    }
}
