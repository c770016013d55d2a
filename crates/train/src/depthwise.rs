//! Depthwise convolution for training, with a backward pass of its own.
//!
//! burn 0.22's autodiff differentiates a grouped convolution generically: the input gradient
//! as a transposed convolution that runs one GEMM per (image, channel), the weight gradient as
//! one convolution per channel. For the depthwise layers of a MobileNet-style network that is
//! 5-10x the forward pass and most of a training step (measured with `perf` on a fine-tuning
//! here: conv backward 57% of the time). [`depthwise_conv2d`] registers the same convolution as
//! an autodiff operation of its own whose backward runs the two direct loops below, each channel
//! independent of the others (`cargo bench -p kiln-train --bench train_ops`: a training step
//! 2.0-6.6x faster than burn's at the default space's shapes, host).
//!
//! The kernels are plain safe Rust over contiguous NCHW slices, each plane padded and split into
//! its stride phases ([`Phases`]) so that a kernel tap is one contiguous run over all output
//! rows. Each value is summed in a fixed order whatever the number of threads, so a seed still
//! gives the same weights.

use burn::backend::Flex;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::tensor::DType;
use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use rayon::prelude::*;

use crate::flex::{Train, TrainTensor, f32s, flex};

/// The sizes of one depthwise convolution: input NCHW `[n, c, h, w]`, weight `[c, 1, k, k]`,
/// zero padding `pad` on every side, output `[n, c, oh, ow]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl Geometry {
    /// Output height: `(h + 2 pad - k) / stride + 1`.
    pub fn oh(&self) -> usize {
        (self.h + 2 * self.pad - self.k) / self.stride + 1
    }

    /// Output width: `(w + 2 pad - k) / stride + 1`.
    pub fn ow(&self) -> usize {
        (self.w + 2 * self.pad - self.k) / self.stride + 1
    }
}

/// One image plane, zero-padded and split into its `stride x stride` phases (polyphase
/// decomposition): padded pixel `(py, px)` is element `(py / s, px / s)` of phase
/// `(py % s, px % s)`, each phase `hq x wq`. In this layout the pixel that output `(oy, ox)`
/// reads under kernel tap `(ky, kx)` sits at `tap(ky, kx) + oy * wq + ox`: every tap is one
/// contiguous run of [`Phases::run`] values over all output rows at once (the `wq - ow` values
/// between rows are computed and dropped), which vectorises where a row of 7 or 14 would not.
struct Phases {
    g: Geometry,
    hq: usize,
    wq: usize,
    /// Where each tap's run starts, `[ky * k + kx]`.
    taps: Vec<usize>,
}

impl Phases {
    fn new(g: Geometry) -> Phases {
        let s = g.stride;
        let (hq, wq) = ((g.h + 2 * g.pad).div_ceil(s), (g.w + 2 * g.pad).div_ceil(s));
        let taps = (0..g.k * g.k)
            .map(|t| {
                let (ky, kx) = (t / g.k, t % g.k);
                ((ky % s) * s + kx % s) * hq * wq + (ky / s) * wq + kx / s
            })
            .collect();
        Phases { g, hq, wq, taps }
    }

    /// Length of a padded, decomposed plane.
    fn len(&self) -> usize {
        self.g.stride * self.g.stride * self.hq * self.wq
    }

    /// Length of one tap's run: the output rows at pitch `wq`.
    fn run(&self) -> usize {
        (self.g.oh() - 1) * self.wq + self.g.ow()
    }

    /// Where input pixel `(iy, ix)` sits in the decomposed plane.
    fn index(&self, iy: usize, ix: usize) -> usize {
        let s = self.g.stride;
        let (py, px) = (iy + self.g.pad, ix + self.g.pad);
        ((py % s) * s + px % s) * self.hq * self.wq + (py / s) * self.wq + px / s
    }

    /// Row `iy` of the image as runs of the decomposed plane: for each column phase `px % s`,
    /// `(first ix, where it sits)`; that phase's pixels are every `s`-th from `first ix`, at
    /// consecutive places from there (what [`Phases::index`] gives, without a division per
    /// pixel).
    fn row_runs(&self, iy: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let (s, pad) = (self.g.stride, self.g.pad);
        (0..s).filter_map(move |phase| {
            // the first column whose padded position falls in this phase
            let first = (phase + s - pad % s) % s;
            (first < self.g.w).then(|| (first, self.index(iy, first)))
        })
    }

    /// `plane` (`h x w`) padded and decomposed.
    fn split(&self, plane: &[f32]) -> Vec<f32> {
        let mut out = vec![0.0f32; self.len()];
        let s = self.g.stride;
        for (iy, row) in plane.chunks(self.g.w).enumerate() {
            for (first, at) in self.row_runs(iy) {
                let pixels = row[first..].iter().step_by(s);
                for (d, &v) in out[at..].iter_mut().zip(pixels) {
                    *d = v;
                }
            }
        }
        out
    }

    /// The inverse of [`Phases::split`] for the image's pixels (padding dropped).
    fn merge(&self, decomposed: &[f32], plane: &mut [f32]) {
        let s = self.g.stride;
        for (iy, row) in plane.chunks_mut(self.g.w).enumerate() {
            for (first, at) in self.row_runs(iy) {
                let pixels = row[first..].iter_mut().step_by(s);
                for (v, &d) in pixels.zip(&decomposed[at..]) {
                    *v = d;
                }
            }
        }
    }

    /// An output plane (`oh x ow`) at row pitch `wq`, zeros between rows.
    fn widen(&self, out_plane: &[f32]) -> Vec<f32> {
        let mut wide = vec![0.0f32; self.run()];
        for (oy, row) in out_plane.chunks(self.g.ow()).enumerate() {
            wide[oy * self.wq..][..row.len()].copy_from_slice(row);
        }
        wide
    }

    /// The inverse of [`Phases::widen`].
    fn narrow(&self, wide: &[f32], out_plane: &mut [f32]) {
        let ow = self.g.ow();
        for (oy, row) in out_plane.chunks_mut(ow).enumerate() {
            row.copy_from_slice(&wide[oy * self.wq..][..ow]);
        }
    }
}

/// Forward: `y[n, c, oy, ox] = sum over ky, kx of w[c, ky, kx] * x[n, c, oy s + ky - pad,
/// ox s + kx - pad]` (zero outside the image). `x` is `[n, c, h, w]`, `w` `[c, k, k]`; returns
/// `[n, c, oh, ow]`.
pub fn forward(g: &Geometry, x: &[f32], w: &[f32]) -> Vec<f32> {
    let ph = Phases::new(*g);
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh() * g.ow(), g.k * g.k);
    let mut y = vec![0.0f32; g.n * g.c * plane_out];
    y.par_chunks_mut(plane_out)
        .enumerate()
        .for_each(|(nc, out)| {
            let xs = ph.split(&x[nc * plane_in..][..plane_in]);
            let wc = &w[(nc % g.c) * kk..][..kk];
            let mut wide = vec![0.0f32; ph.run()];
            for (&tap, &wv) in ph.taps.iter().zip(wc) {
                axpy(&mut wide, wv, &xs[tap..]);
            }
            ph.narrow(&wide, out);
        });
    y
}

/// Input gradient: `dx[n, c, iy, ix] = sum of dy[n, c, oy, ox] * w[c, ky, kx]` over the
/// output positions that read `(iy, ix)`. `dy` is `[n, c, oh, ow]`; returns `[n, c, h, w]`.
pub fn input_grad(g: &Geometry, dy: &[f32], w: &[f32]) -> Vec<f32> {
    let ph = Phases::new(*g);
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh() * g.ow(), g.k * g.k);
    let mut dx = vec![0.0f32; g.n * g.c * plane_in];
    dx.par_chunks_mut(plane_in)
        .enumerate()
        .for_each(|(nc, dx_plane)| {
            let dys = ph.widen(&dy[nc * plane_out..][..plane_out]);
            let wc = &w[(nc % g.c) * kk..][..kk];
            let mut dxs = vec![0.0f32; ph.len()];
            for (&tap, &wv) in ph.taps.iter().zip(wc) {
                axpy(&mut dxs[tap..][..dys.len()], wv, &dys);
            }
            ph.merge(&dxs, dx_plane);
        });
    dx
}

/// Weight gradient: `dw[c, ky, kx] = sum over n, oy, ox of dy[n, c, oy, ox] * x[n, c,
/// oy s + ky - pad, ox s + kx - pad]`. Returns `[c, k, k]`.
pub fn weight_grad(g: &Geometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let ph = Phases::new(*g);
    let (plane_in, plane_out, kk) = (g.h * g.w, g.oh() * g.ow(), g.k * g.k);
    let mut dw = vec![0.0f32; g.c * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, dw_c)| {
        for n in 0..g.n {
            let nc = n * g.c + c;
            let xs = ph.split(&x[nc * plane_in..][..plane_in]);
            let dys = ph.widen(&dy[nc * plane_out..][..plane_out]);
            for (&tap, d) in ph.taps.iter().zip(dw_c.iter_mut()) {
                *d += dot(&dys, &xs[tap..]);
            }
        }
    });
    dw
}

/// `dst[i] += a * src[i]` for every `i` of `dst`.
fn axpy(dst: &mut [f32], a: f32, src: &[f32]) {
    let src = &src[..dst.len()];
    for (d, &v) in dst.iter_mut().zip(src) {
        *d += a * v;
    }
}

/// `sum of a[i] * b[i]` over `a`, in 16 partial sums so that the compiler may vectorise it (a
/// single running sum fixes the order of the additions and keeps it scalar).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let b = &b[..a.len()];
    let mut acc = [0.0f32; LANES];
    let (a16, b16) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a16
        .remainder()
        .iter()
        .zip(b16.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a16.zip(b16) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Depthwise 2-D convolution (`groups` = channels, one `k x k` filter per channel, no bias):
/// `x` NCHW `[n, c, h, w]`, `weight` `[c, 1, k, k]`, zero padding `pad` on every side ->
/// `[n, c, (h + 2 pad - k) / stride + 1, (w + 2 pad - k) / stride + 1]`.
///
/// On the training backend (flex under autodiff, f32) the operation carries its own backward
/// pass (module docs); on plain flex (evaluation) it runs the same forward kernel (burn's own
/// depthwise kernel took a tenth of a k7 fine-tuning's time in evaluation); anywhere else, or
/// for a weight not shaped `[c, 1, k, k]`, it is burn's grouped `conv2d`, with the same result.
pub fn depthwise_conv2d(x: Tensor<4>, weight: Tensor<4>, stride: usize, pad: usize) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let k = weight.dims()[2];
    let g = Geometry {
        n,
        c,
        h,
        w,
        k,
        stride,
        pad,
    };
    let on_train_backend = (
        x.clone().try_into_primitive::<Train>(),
        weight.clone().try_into_primitive::<Train>(),
    );
    let shape_is_depthwise = weight.dims() == [c, 1, k, k];
    match on_train_backend {
        (Ok(x), Ok(weight))
            if shape_is_depthwise
                && x.primitive().dtype() == DType::F32
                && weight.primitive().dtype() == DType::F32 =>
        {
            // tracked when a gradient is wanted; untracked (kiln-train's batch-norm
            // recalibration, `no_grad`) it still runs kiln's forward
            Tensor::from_primitive::<Train>(tracked(g, x, weight))
        }
        _ => plain(g, x, weight),
    }
}

/// Off the training backend: on plain flex (evaluation, f32) kiln's forward kernel; anything
/// else (another shape, dtype or backend) burn's grouped conv, which checks and reports it.
fn plain(g: Geometry, x: Tensor<4>, weight: Tensor<4>) -> Tensor<4> {
    let on_flex = (
        x.clone().try_into_primitive::<Flex>(),
        weight.clone().try_into_primitive::<Flex>(),
    );
    match on_flex {
        (Ok(xs), Ok(ws))
            if weight.dims() == [g.c, 1, g.k, g.k]
                && xs.dtype() == DType::F32
                && ws.dtype() == DType::F32 =>
        {
            let y = forward(&g, &f32s(&xs), &f32s(&ws));
            Tensor::from_primitive::<Flex>(flex(y, &[g.n, g.c, g.oh(), g.ow()]))
        }
        _ => conv2d(
            x,
            weight,
            None,
            ConvOptions::new([g.stride, g.stride], [g.pad, g.pad], [1, 1], g.c),
        ),
    }
}

fn tracked(g: Geometry, x: TrainTensor, weight: TrainTensor) -> TrainTensor {
    let out = |x: &FlexTensor, w: &FlexTensor| {
        let y = forward(&g, &f32s(x), &f32s(w));
        flex(y, &[g.n, g.c, g.oh(), g.ow()])
    };
    match DepthwiseBackward
        .prepare::<NoCheckpointing>([x.node(), weight.node()])
        .compute_bound()
        .stateful()
    {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&x), prep.checkpoint(&weight), g);
            prep.finish(state, out(x.primitive(), weight.primitive()))
        }
        OpsKind::UnTracked(prep) => prep.finish(out(x.primitive(), weight.primitive())),
    }
}

#[derive(Debug)]
struct DepthwiseBackward;

impl Backward<Flex, 2> for DepthwiseBackward {
    type State = (NodeId, NodeId, Geometry);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, cp: &mut Checkpointer) {
        let [node_x, node_w] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node);
        let dy = f32s(&dy);
        let (x_id, w_id, g) = ops.state;
        let x: FlexTensor = cp.retrieve_node_output(x_id);
        let w: FlexTensor = cp.retrieve_node_output(w_id);
        if let Some(node) = node_x {
            let dx = input_grad(&g, &dy, &f32s(&w));
            grads.register::<Flex>(node.id, flex(dx, &[g.n, g.c, g.h, g.w]));
        }
        if let Some(node) = node_w {
            let dw = weight_grad(&g, &f32s(&x), &dy);
            grads.register::<Flex>(node.id, flex(dw, &[g.c, 1, g.k, g.k]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, one output (or gradient) element at a time.
    fn naive(g: &Geometry, x: &[f32], w: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (oh, ow, k) = (g.oh(), g.ow(), g.k);
        let mut y = vec![0.0f32; g.n * g.c * oh * ow];
        let mut dx = vec![0.0f32; x.len()];
        let mut dw = vec![0.0f32; w.len()];
        for n in 0..g.n {
            for c in 0..g.c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let o = ((n * g.c + c) * oh + oy) * ow + ox;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * g.stride + ky) as isize - g.pad as isize;
                                let ix = (ox * g.stride + kx) as isize - g.pad as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let i = ((n * g.c + c) * g.h + iy as usize) * g.w + ix as usize;
                                let t = (c * k + ky) * k + kx;
                                y[o] += w[t] * x[i];
                                dx[i] += w[t] * dy[o];
                                dw[t] += dy[o] * x[i];
                            }
                        }
                    }
                }
            }
        }
        (y, dx, dw)
    }

    fn close(what: &str, g: &Geometry, a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len(), "{what} {g:?}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what} {g:?} [{i}]: {x} vs {y}"
            );
        }
    }

    /// Every small geometry kiln can produce (odd kernels, padding k / 2, strides 1 and 2, down
    /// to 1x1 images and kernels wider than the image) against the definition.
    #[test]
    fn the_kernels_compute_the_definition() {
        let value =
            |i: usize, salt: usize| ((i * 7919 + salt * 104_729) % 201) as f32 / 100.0 - 1.0;
        for k in [1, 3, 5, 7] {
            for stride in [1, 2] {
                for (h, w) in [(1, 1), (2, 3), (5, 4), (7, 7), (8, 6)] {
                    let g = Geometry {
                        n: 2,
                        c: 3,
                        h,
                        w,
                        k,
                        stride,
                        pad: k / 2,
                    };
                    let x: Vec<f32> = (0..2 * 3 * h * w).map(|i| value(i, 1)).collect();
                    let wt: Vec<f32> = (0..3 * k * k).map(|i| value(i, 2)).collect();
                    let dy: Vec<f32> = (0..2 * 3 * g.oh() * g.ow()).map(|i| value(i, 3)).collect();
                    let (y, dx, dw) = naive(&g, &x, &wt, &dy);
                    close("forward", &g, &forward(&g, &x, &wt), &y);
                    close("input gradient", &g, &input_grad(&g, &dy, &wt), &dx);
                    close("weight gradient", &g, &weight_grad(&g, &x, &dy), &dw);
                }
            }
        }
    }

    /// kiln-train's training device is the backend [`depthwise_conv2d`] recognises: otherwise
    /// every call would quietly take burn's slow path (the results would not tell).
    #[test]
    fn the_training_device_takes_kilns_path() {
        let dev = crate::device().autodiff();
        let x = Tensor::<4>::zeros([1, 2, 3, 3], &dev).require_grad();
        assert!(x.try_into_primitive::<Train>().is_ok());
    }

    /// Evaluation's device (plain flex) runs the forward kernel: the output is its bits.
    #[test]
    fn the_evaluation_device_runs_kilns_forward() {
        let g = Geometry {
            n: 2,
            c: 3,
            h: 6,
            w: 5,
            k: 5,
            stride: 2,
            pad: 2,
        };
        let x: Vec<f32> = (0..2 * 3 * 6 * 5)
            .map(|i| (i % 17) as f32 / 7.0 - 1.0)
            .collect();
        let w: Vec<f32> = (0..3 * 25).map(|i| (i % 11) as f32 / 5.0 - 1.0).collect();
        let dev = crate::device();
        let t = |v: &[f32], shape: [usize; 4]| {
            Tensor::<4>::from_data(burn::tensor::TensorData::new(v.to_vec(), shape), &dev)
        };
        let y = depthwise_conv2d(t(&x, [2, 3, 6, 5]), t(&w, [3, 1, 5, 5]), 2, 2);
        let got = crate::values(y, "output").expect("f32 values");
        assert_eq!(got, forward(&g, &x, &w));
    }
}
