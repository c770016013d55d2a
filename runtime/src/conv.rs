//! Convolutions and dense layers (NHWC activations, bias and activation fused).

use crate::elementwise::{Activation, activate};

/// Shape and attributes of a 2-D convolution over one NHWC image (batch 1).
///
/// The input is stored `[in_h][in_w][in_c]` and the output
/// `[out_h][out_w][out_c]`, channels innermost. Sizes are counts of pixels,
/// channels or kernel taps. Padding is implicit zeros: only the top and left
/// amounts are given, the bottom and right ones follow from `out_h` and
/// `out_w`. kiln-codegen writes one as a `const` per convolution.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2d {
    /// Input height in pixels.
    pub in_h: usize,
    /// Input width in pixels.
    pub in_w: usize,
    /// Input channels (a multiple of `groups`).
    pub in_c: usize,
    /// Output height in pixels.
    pub out_h: usize,
    /// Output width in pixels.
    pub out_w: usize,
    /// Output channels (a multiple of `groups`).
    pub out_c: usize,
    /// Kernel height in taps.
    pub k_h: usize,
    /// Kernel width in taps.
    pub k_w: usize,
    /// Vertical step between output rows, in input rows (at least 1).
    pub stride_h: usize,
    /// Horizontal step between output columns, in input columns (at least 1).
    pub stride_w: usize,
    /// Vertical distance between kernel taps, in input rows (at least 1).
    pub dilation_h: usize,
    /// Horizontal distance between kernel taps, in input columns (at least 1).
    pub dilation_w: usize,
    /// Zero rows above the input.
    pub pad_top: usize,
    /// Zero columns left of the input.
    pub pad_left: usize,
    /// Channel groups: 1 for a full convolution, `in_c` (== `out_c`) for a
    /// depthwise one.
    pub groups: usize,
    /// Activation applied to every output after the bias.
    pub act: Activation,
}

impl Conv2d {
    /// The input rows (or columns) an output position reads: the range of
    /// kernel taps `k` with `0 <= o*stride + k*dilation - pad < size`.
    #[inline(always)]
    pub(crate) fn taps(
        o: usize,
        stride: usize,
        dil: usize,
        pad: usize,
        k: usize,
        size: usize,
    ) -> (usize, usize) {
        let start = o * stride;
        // first tap with start + k*dil >= pad
        let lo = if start >= pad {
            0
        } else {
            (pad - start).div_ceil(dil)
        };
        // last tap + 1 with start + k*dil - pad < size
        let limit = size + pad; // start + k*dil < limit
        let hi = if start >= limit {
            0
        } else {
            (limit - start).div_ceil(dil).min(k)
        };
        (lo, hi.max(lo))
    }

    /// The output columns `lo..hi` whose horizontal taps are all inside the
    /// input (`lo <= hi <= out_w`): the SIMD depthwise kernels run these in
    /// runs of several pixels sharing every tap.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    pub(crate) fn interior(&self) -> (usize, usize) {
        let lo = self.pad_left.div_ceil(self.stride_w);
        let span = (self.k_w - 1) * self.dilation_w;
        // ox * stride + span - pad < in_w
        let hi = if self.in_w + self.pad_left > span {
            (self.in_w + self.pad_left - span - 1) / self.stride_w + 1
        } else {
            0
        };
        (lo, hi.min(self.out_w).max(lo))
    }
}

#[inline(always)]
fn init_bias(out: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        out.fill(0.0);
    } else {
        out.copy_from_slice(bias);
    }
}

/// General grouped convolution: `out = act(conv(x, weights) + bias)`.
///
/// `x` is the NHWC input `[in_h][in_w][in_c]`, `out` the NHWC output
/// `[out_h][out_w][out_c]`; every output element is written.
/// `weights` layout: `[groups][k_h][k_w][in_c/groups][out_c/groups]`, so the
/// innermost loop runs over contiguous output channels. `bias` has `out_c`
/// values or is empty (no bias).
///
/// # Panics
/// If `x`, `weights` or `out` is shorter than the shapes in `p` say, if `bias`
/// is neither empty nor `out_c` long, or if `groups` or a dilation is 0. The
/// generated code passes consistent shapes.
pub fn conv2d(x: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32], p: &Conv2d) {
    let (cig, cog) = (p.in_c / p.groups, p.out_c / p.groups);
    for oy in 0..p.out_h {
        let (ky0, ky1) = Conv2d::taps(oy, p.stride_h, p.dilation_h, p.pad_top, p.k_h, p.in_h);
        for ox in 0..p.out_w {
            let (kx0, kx1) = Conv2d::taps(ox, p.stride_w, p.dilation_w, p.pad_left, p.k_w, p.in_w);
            let o = &mut out[(oy * p.out_w + ox) * p.out_c..][..p.out_c];
            init_bias(o, bias);
            for ky in ky0..ky1 {
                let iy = oy * p.stride_h + ky * p.dilation_h - p.pad_top;
                for kx in kx0..kx1 {
                    let ix = ox * p.stride_w + kx * p.dilation_w - p.pad_left;
                    let xin = &x[(iy * p.in_w + ix) * p.in_c..][..p.in_c];
                    for g in 0..p.groups {
                        let og = &mut o[g * cog..][..cog];
                        let wg =
                            &weights[((g * p.k_h + ky) * p.k_w + kx) * cig * cog..][..cig * cog];
                        for (v, wr) in xin[g * cig..][..cig].iter().zip(wg.chunks_exact(cog)) {
                            og.iter_mut().zip(wr).for_each(|(a, w)| *a += v * w);
                        }
                    }
                }
            }
            activate(o, p.act);
        }
    }
}

/// Depthwise convolution (groups == in_c == out_c):
/// `out = act(conv(x, weights) + bias)`, channel by channel.
///
/// `x` is the NHWC input `[in_h][in_w][c]`, `out` the NHWC output
/// `[out_h][out_w][c]`, with `c = p.out_c` (`p.in_c` and `p.groups` are not
/// read); every output element is written. `weights` layout: `[k_h][k_w][c]`;
/// `bias` has `c` values or is empty (no bias).
///
/// With AVX-512F enabled in the build (or, with the `std` feature, present
/// in the CPU), `depthwise_avx512` runs, else with AVX2+FMA likewise
/// `depthwise_avx2`; on aarch64
/// the NEON one (`depthwise_neon`); otherwise this file's loop, their twin.
///
/// # Panics
/// If `x`, `weights` or `out` is shorter than the shapes in `p` say, if `bias`
/// is neither empty nor `c` long, or if a stride or dilation is 0.
pub fn depthwise_conv2d(x: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32], p: &Conv2d) {
    let c = p.out_c;
    assert!(x.len() >= p.in_h * p.in_w * c, "x too short");
    assert!(weights.len() >= p.k_h * p.k_w * c, "weights too short");
    assert!(out.len() >= p.out_h * p.out_w * c, "out too short");
    assert!(bias.is_empty() || bias.len() == c, "bias length");
    assert!(p.stride_h * p.stride_w * p.dilation_h * p.dilation_w > 0);
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx512() {
        // SAFETY: `avx512` is true only when the build enables AVX-512F or
        // the CPU was found to have it; the asserts above are the lengths
        // the kernel needs.
        unsafe { crate::depthwise_avx512::depthwise_avx512(x, weights, bias, out, p) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx2_fma() {
        // SAFETY: `avx2_fma` is true only when the build enables AVX2 and
        // FMA or the CPU was found to have them; the asserts above are the
        // lengths the kernel needs.
        unsafe { crate::depthwise_avx2::depthwise_avx2(x, weights, bias, out, p) };
        return;
    }
    // SAFETY: every aarch64 core has NEON; the asserts above are the lengths
    // the kernel needs.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        crate::depthwise_neon::depthwise_neon(x, weights, bias, out, p)
    };
    #[cfg(not(target_arch = "aarch64"))]
    depthwise_portable(x, weights, bias, out, p);
}

/// The portable depthwise loop (see [`depthwise_conv2d`]); on aarch64 only
/// the NEON kernel's twin in tests.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub(crate) fn depthwise_portable(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    p: &Conv2d,
) {
    let c = p.out_c;
    for oy in 0..p.out_h {
        let (ky0, ky1) = Conv2d::taps(oy, p.stride_h, p.dilation_h, p.pad_top, p.k_h, p.in_h);
        for ox in 0..p.out_w {
            let (kx0, kx1) = Conv2d::taps(ox, p.stride_w, p.dilation_w, p.pad_left, p.k_w, p.in_w);
            let o = &mut out[(oy * p.out_w + ox) * c..][..c];
            init_bias(o, bias);
            for ky in ky0..ky1 {
                let iy = oy * p.stride_h + ky * p.dilation_h - p.pad_top;
                for kx in kx0..kx1 {
                    let ix = ox * p.stride_w + kx * p.dilation_w - p.pad_left;
                    let xin = &x[(iy * p.in_w + ix) * c..][..c];
                    let wr = &weights[(ky * p.k_w + kx) * c..][..c];
                    for ((a, v), w) in o.iter_mut().zip(xin).zip(wr) {
                        *a += v * w;
                    }
                }
            }
            activate(o, p.act);
        }
    }
}

/// Pixels one tile of the pointwise kernel covers: each weight row is
/// loaded once per tile and each input value once per channel block.
const PW_PIXELS: usize = 4;
/// Output channels of the widest tile. A 4 x 8 tile of f32 accumulators fits
/// the registers of every target (16 SSE registers, 32 NEON, wasm locals),
/// so the accumulators stay there for the whole `in_c` loop instead of
/// being loaded and stored once per input channel.
const PW_CHANNELS: usize = 8;

/// 1x1 convolution, stride 1, no padding, one group: a `[pixels, in_c] x
/// [in_c, out_c]` matrix product, plus `bias`, then `act`.
///
/// `x` is `[pixels][in_c]` (an NHWC image with `pixels = H * W`), `out` is
/// `[pixels][out_c]`; elements past those lengths are neither read nor
/// written. `weights` layout: `[in_c][out_c]`; `bias` has `out_c` values or
/// is empty (no bias).
///
/// # Panics
/// If `in_c` or `out_c` is 0, if `x`, `weights` or `out` is shorter than the
/// shapes say, or if `bias` is neither empty nor `out_c` long.
#[allow(clippy::too_many_arguments)]
pub fn pointwise_conv2d(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    pixels: usize,
    in_c: usize,
    out_c: usize,
    act: Activation,
) {
    let x = &x[..pixels * in_c];
    let weights = &weights[..in_c * out_c];
    let out = &mut out[..pixels * out_c];
    let full = pixels / PW_PIXELS * PW_PIXELS;
    let (out_full, out_rest) = out.split_at_mut(full * out_c);
    for (xb, ob) in x[..full * in_c]
        .chunks_exact(PW_PIXELS * in_c)
        .zip(out_full.chunks_exact_mut(PW_PIXELS * out_c))
    {
        let rows = [
            &xb[..in_c],
            &xb[in_c..2 * in_c],
            &xb[2 * in_c..3 * in_c],
            &xb[3 * in_c..],
        ];
        // Channel blocks of 8, then 4, then single channels.
        let mut j = 0;
        while j + PW_CHANNELS <= out_c {
            pointwise_tile::<PW_CHANNELS>(rows, weights, bias, ob, out_c, j);
            j += PW_CHANNELS;
        }
        if j + 4 <= out_c {
            pointwise_tile::<4>(rows, weights, bias, ob, out_c, j);
            j += 4;
        }
        while j < out_c {
            pointwise_tile::<1>(rows, weights, bias, ob, out_c, j);
            j += 1;
        }
        activate(ob, act);
    }
    for (xp, o) in x[full * in_c..]
        .chunks_exact(in_c)
        .zip(out_rest.chunks_exact_mut(out_c))
    {
        init_bias(o, bias);
        for (v, wr) in xp.iter().zip(weights.chunks_exact(out_c)) {
            o.iter_mut().zip(wr).for_each(|(a, w)| *a += v * w);
        }
        activate(o, act);
    }
}

/// Output channels `j..j + C` of four pixels (`rows`, `in_c` values each),
/// written into `out` (four rows of `out_c`). The accumulators are a fixed
/// size array so the compiler keeps them in registers across the `in_c` loop.
#[inline(always)]
fn pointwise_tile<const C: usize>(
    rows: [&[f32]; PW_PIXELS],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    out_c: usize,
    j: usize,
) {
    let mut acc = [[0.0f32; C]; PW_PIXELS];
    if !bias.is_empty() {
        let b = &bias[j..j + C];
        for a in acc.iter_mut() {
            a.copy_from_slice(b);
        }
    }
    let [x0, x1, x2, x3] = rows;
    for ((((&v0, &v1), &v2), &v3), wr) in x0
        .iter()
        .zip(x1)
        .zip(x2)
        .zip(x3)
        .zip(weights.chunks_exact(out_c))
    {
        let w = &wr[j..j + C];
        for k in 0..C {
            acc[0][k] += v0 * w[k];
            acc[1][k] += v1 * w[k];
            acc[2][k] += v2 * w[k];
            acc[3][k] += v3 * w[k];
        }
    }
    for (p, a) in acc.iter().enumerate() {
        out[p * out_c + j..][..C].copy_from_slice(a);
    }
}

/// Fully connected layer on one vector: `out = act(x . W + bias)`.
///
/// `out.len()` is the number of output features and every element of `out` is
/// written. `weights` layout: `[in_features][out_features]` (row `i` holds the
/// weights of input `i`); the product runs over the first
/// `min(x.len(), weights.len() / out.len())` inputs. `bias` has
/// `out_features` values or is empty (no bias).
///
/// # Panics
/// If `out` is empty, or `bias` is neither empty nor `out.len()` long.
pub fn dense(x: &[f32], weights: &[f32], bias: &[f32], out: &mut [f32], act: Activation) {
    assert!(bias.is_empty() || bias.len() == out.len(), "bias length");
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx2_fma() {
        // SAFETY: `avx2_fma` is true only when the build enables AVX2 and
        // FMA or the CPU was found to have them; the loop checks its bounds.
        unsafe { crate::gemm_avx2::dense_avx2(x, weights, bias, out, act) };
        return;
    }
    dense_portable(x, weights, bias, out, act)
}

/// [`dense`]'s loop, which the compiler vectorises for the features of the
/// function it is inlined into (`gemm_avx2::dense_avx2` enables AVX2): the
/// same operations in the same order either way (no fused multiply-add).
#[inline(always)]
pub(crate) fn dense_portable(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    act: Activation,
) {
    let n = out.len();
    init_bias(out, bias);
    for (v, wr) in x.iter().zip(weights.chunks_exact(n)) {
        out.iter_mut().zip(wr).for_each(|(a, w)| *a += v * w);
    }
    activate(out, act);
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// Deterministic pseudo-random values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2000) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Straightforward convolution: NHWC input, ONNX OIHW weights.
    fn naive_conv(x: &[f32], w_oihw: &[f32], bias: &[f32], p: &Conv2d) -> Vec<f32> {
        let (cig, cog) = (p.in_c / p.groups, p.out_c / p.groups);
        let mut out = std::vec![0.0; p.out_h * p.out_w * p.out_c];
        for oy in 0..p.out_h {
            for ox in 0..p.out_w {
                for oc in 0..p.out_c {
                    let g = oc / cog;
                    let mut acc = if bias.is_empty() { 0.0 } else { bias[oc] };
                    for ci in 0..cig {
                        for ky in 0..p.k_h {
                            for kx in 0..p.k_w {
                                let iy = (oy * p.stride_h + ky * p.dilation_h) as isize
                                    - p.pad_top as isize;
                                let ix = (ox * p.stride_w + kx * p.dilation_w) as isize
                                    - p.pad_left as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= p.in_h as isize
                                    || ix >= p.in_w as isize
                                {
                                    continue;
                                }
                                let xv =
                                    x[(iy as usize * p.in_w + ix as usize) * p.in_c + g * cig + ci];
                                acc += xv * w_oihw[((oc * cig + ci) * p.k_h + ky) * p.k_w + kx];
                            }
                        }
                    }
                    out[(oy * p.out_w + ox) * p.out_c + oc] = p.act.apply(acc);
                }
            }
        }
        out
    }

    /// OIHW -> [g][kh][kw][cig][cog], the `conv2d` layout.
    fn arrange_general(w: &[f32], p: &Conv2d) -> Vec<f32> {
        let (cig, cog) = (p.in_c / p.groups, p.out_c / p.groups);
        let mut out = std::vec![0.0; w.len()];
        for oc in 0..p.out_c {
            let (g, o) = (oc / cog, oc % cog);
            for ci in 0..cig {
                for ky in 0..p.k_h {
                    for kx in 0..p.k_w {
                        out[((((g * p.k_h + ky) * p.k_w + kx) * cig) + ci) * cog + o] =
                            w[((oc * cig + ci) * p.k_h + ky) * p.k_w + kx];
                    }
                }
            }
        }
        out
    }

    fn conv(
        in_hw: (usize, usize),
        c: (usize, usize),
        k: (usize, usize),
        s: (usize, usize),
        d: usize,
        pads: [usize; 4],
        groups: usize,
    ) -> Conv2d {
        let out_h = (in_hw.0 + pads[0] + pads[2] - d * (k.0 - 1) - 1) / s.0 + 1;
        let out_w = (in_hw.1 + pads[1] + pads[3] - d * (k.1 - 1) - 1) / s.1 + 1;
        Conv2d {
            in_h: in_hw.0,
            in_w: in_hw.1,
            in_c: c.0,
            out_h,
            out_w,
            out_c: c.1,
            k_h: k.0,
            k_w: k.1,
            stride_h: s.0,
            stride_w: s.1,
            dilation_h: d,
            dilation_w: d,
            pad_top: pads[0],
            pad_left: pads[1],
            groups,
            act: Activation::Clip {
                min: -0.5,
                max: 0.7,
            },
        }
    }

    fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5, "element {i}: {g} vs {w}");
        }
    }

    #[test]
    fn general_conv_matches_naive_across_attributes() {
        let cases = [
            conv((7, 6), (3, 8), (3, 3), (1, 1), 1, [1, 1, 1, 1], 1),
            conv((9, 9), (4, 6), (3, 3), (2, 2), 1, [1, 1, 1, 1], 1),
            conv((9, 8), (4, 6), (5, 5), (2, 1), 1, [2, 1, 0, 2], 2),
            conv((11, 11), (6, 6), (3, 3), (1, 1), 2, [2, 2, 2, 2], 3),
            conv((12, 12), (2, 5), (7, 7), (2, 2), 1, [3, 3, 3, 3], 1),
            conv((5, 5), (3, 4), (1, 1), (1, 1), 1, [0, 0, 0, 0], 1),
            conv((6, 7), (3, 4), (2, 3), (3, 2), 1, [0, 1, 1, 0], 1),
        ];
        for (n, p) in cases.iter().enumerate() {
            let x = values(p.in_h * p.in_w * p.in_c, n as u32);
            let w = values(p.out_c * p.in_c / p.groups * p.k_h * p.k_w, 100 + n as u32);
            let b = values(p.out_c, 200 + n as u32);
            let want = naive_conv(&x, &w, &b, p);
            let mut got = std::vec![f32::NAN; want.len()];
            conv2d(&x, &arrange_general(&w, p), &b, &mut got, p);
            assert_close(&got, &want);
        }
    }

    #[test]
    fn depthwise_matches_naive() {
        let cases = [
            conv((8, 8), (5, 5), (3, 3), (1, 1), 1, [1, 1, 1, 1], 5),
            conv((9, 10), (4, 4), (3, 3), (2, 2), 1, [0, 1, 1, 0], 4),
            conv((10, 10), (3, 3), (5, 5), (2, 2), 2, [4, 4, 4, 4], 3),
            conv((10, 10), (6, 6), (7, 7), (1, 1), 1, [3, 3, 3, 3], 6),
            // 16 + 16 + 8 + 5 channels; interior runs of 4 and leftovers.
            conv((7, 17), (45, 45), (3, 3), (1, 1), 1, [1, 1, 1, 1], 45),
            conv((9, 23), (40, 40), (5, 5), (2, 2), 1, [2, 2, 2, 2], 40),
            conv((6, 21), (20, 20), (3, 5), (1, 2), 1, [0, 2, 1, 1], 20),
            conv((3, 2), (16, 16), (3, 3), (1, 1), 1, [1, 1, 1, 1], 16),
        ];
        for (n, p) in cases.iter().enumerate() {
            let x = values(p.in_h * p.in_w * p.in_c, n as u32);
            let w = values(p.out_c * p.k_h * p.k_w, 300 + n as u32);
            let want = naive_conv(&x, &w, &[], p);
            let mut got = std::vec![f32::NAN; want.len()];
            // OIHW with I = 1 is [c][kh][kw]; the kernel wants [kh][kw][c].
            let hwc = arrange_general(
                &w,
                &Conv2d {
                    groups: 1,
                    in_c: 1,
                    ..*p
                },
            );
            depthwise_conv2d(&x, &hwc, &[], &mut got, p);
            assert_close(&got, &want);
            let mut twin = std::vec![f32::NAN; want.len()];
            depthwise_portable(&x, &hwc, &[], &mut twin, p);
            assert_close(&twin, &want);
            #[cfg(all(target_arch = "x86_64", not(miri)))]
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                for act in [Activation::Relu, Activation::HardSwish, Activation::Sigmoid] {
                    let q = Conv2d { act, ..*p };
                    let b = values(p.out_c, 400 + n as u32);
                    let mut simd = std::vec![f32::NAN; want.len()];
                    // SAFETY: AVX2 and FMA detected; lengths as asserted by
                    // `depthwise_conv2d`.
                    unsafe { crate::depthwise_avx2::depthwise_avx2(&x, &hwc, &b, &mut simd, &q) };
                    depthwise_portable(&x, &hwc, &b, &mut twin, &q);
                    assert_close(&simd, &twin);
                }
            }
        }
    }

    #[test]
    fn pointwise_matches_naive_including_leftover_pixels() {
        // Channel counts that exercise the 8-, 4- and 1-wide tiles and their
        // mixes; pixel counts with and without leftovers.
        for (n, (h, w, ci, co)) in [
            (3, 3, 5, 7),
            (2, 2, 16, 8),
            (1, 3, 4, 4),
            (3, 5, 12, 29),
            (4, 4, 3, 20),
            (1, 1, 9, 13),
        ]
        .into_iter()
        .enumerate()
        {
            let p = Conv2d {
                act: Activation::Relu,
                ..conv((h, w), (ci, co), (1, 1), (1, 1), 1, [0; 4], 1)
            };
            let x = values(h * w * ci, n as u32);
            let wt = values(co * ci, 50 + n as u32);
            // Every other case without a bias.
            let b = if n % 2 == 1 {
                Vec::new()
            } else {
                values(co, 60 + n as u32)
            };
            let want = naive_conv(&x, &wt, &b, &p);
            let mut got = std::vec![f32::NAN; want.len()];
            pointwise_conv2d(
                &x,
                &arrange_general(&wt, &p),
                &b,
                &mut got,
                h * w,
                ci,
                co,
                p.act,
            );
            assert_close(&got, &want);
        }
    }

    #[test]
    fn dense_matches_naive() {
        let (i, o) = (13, 5);
        let x = values(i, 1);
        let w_oi = values(o * i, 2);
        let b = values(o, 3);
        let mut w_io = std::vec![0.0; o * i];
        for r in 0..o {
            for c in 0..i {
                w_io[c * o + r] = w_oi[r * i + c];
            }
        }
        let mut got = [0.0; 5];
        dense(&x, &w_io, &b, &mut got, Activation::None);
        let want: Vec<f32> = (0..o)
            .map(|r| b[r] + (0..i).map(|c| w_oi[r * i + c] * x[c]).sum::<f32>())
            .collect();
        assert_close(&got, &want);
    }
}
