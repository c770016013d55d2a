//! Full (one-group) convolutions as the packed GEMM: the patches of a few
//! output pixels are gathered into a buffer on the stack (zeros where a tap
//! falls in the padding), then multiplied by the packed `[kh][kw][ci][co]`
//! weights with the same microkernel as pointwise layers.

use crate::conv::Conv2d;
use crate::gemm::{GemmShape, check, gemm_rows};

/// Output pixels gathered per GEMM call.
const PIXELS: usize = 12;
/// Largest patch (`k_h * k_w * in_c`) [`conv2d_gemm`] takes: its buffer is
/// `PIXELS * MAX_PATCH` f32 on the stack (13.5 KiB).
pub const MAX_PATCH: usize = 288;

/// `out = act(conv(x, W) + bias)` for a one-group convolution whose patch
/// (`k_h * k_w * in_c`) is at most [`MAX_PATCH`]; `packed` is
/// [`crate::pack_gemm`] of the `[k_h][k_w][in_c][out_c]` weights and the bias
/// (`k = k_h * k_w * in_c`, `n = out_c`). `x` and `out` are NHWC as for
/// [`crate::conv2d`].
///
/// # Panics
/// If `p.groups != 1`, the patch is larger than [`MAX_PATCH`], a stride or
/// dilation is 0, or a slice is shorter than the shapes say.
pub fn conv2d_gemm(x: &[f32], packed: &[f32], out: &mut [f32], p: &Conv2d) {
    assert_eq!(p.groups, 1, "one group");
    let k = p.k_h * p.k_w * p.in_c;
    assert!(k <= MAX_PATCH, "patch of {k} values");
    assert!(p.stride_h * p.stride_w * p.dilation_h * p.dilation_w > 0);
    let x = &x[..p.in_h * p.in_w * p.in_c];
    let pixels = p.out_h * p.out_w;
    let mut buf = [0.0f32; PIXELS * MAX_PATCH];
    let mut first = 0;
    while first < pixels {
        let m = PIXELS.min(pixels - first);
        for r in 0..m {
            gather(x, p, first + r, &mut buf[r * k..(r + 1) * k]);
        }
        let s = GemmShape {
            m,
            k,
            n: p.out_c,
            x_stride: k,
            out_stride: p.out_c,
            add: false,
        };
        let o = &mut out[first * p.out_c..(first + m) * p.out_c];
        check(&buf, packed, o, &s);
        gemm_rows(&buf, packed, o, &s, p.act);
        first += m;
    }
}

/// The patch of output pixel `at` in `[ky][kx][ci]` order, zeros outside.
///
/// Stems (1 to 4 channels, kernels 3, 5 or 7 wide, no dilation along the
/// row) copy a kernel row of taps inside the input as one run of `K C`
/// values, both compile-time constants, so a few vector moves; other
/// layers copy tap by tap. A copy of a length known only at run time is a
/// `memcpy` call: where LLVM inlines this function into a program's one
/// call site it sees the layer's constants and makes the moves itself, but
/// with several call sites (a bundle of five networks) it did not, and
/// 20,736 calls of 12 bytes took 6% of MobileNetV2-0.5's time (host,
/// `perf`).
fn gather(x: &[f32], p: &Conv2d, at: usize, patch: &mut [f32]) {
    let k = if p.dilation_w == 1 { p.k_w } else { 0 };
    match (p.in_c, k) {
        (1, 3) => gather_rows::<1, 3>(x, p, at, patch),
        (1, 5) => gather_rows::<1, 5>(x, p, at, patch),
        (1, 7) => gather_rows::<1, 7>(x, p, at, patch),
        (2, 3) => gather_rows::<2, 3>(x, p, at, patch),
        (3, 3) => gather_rows::<3, 3>(x, p, at, patch),
        (3, 5) => gather_rows::<3, 5>(x, p, at, patch),
        (3, 7) => gather_rows::<3, 7>(x, p, at, patch),
        (4, 3) => gather_rows::<4, 3>(x, p, at, patch),
        (1, _) => gather_any(x, p, at, patch, 1),
        (2, _) => gather_any(x, p, at, patch, 2),
        (3, _) => gather_any(x, p, at, patch, 3),
        (4, _) => gather_any(x, p, at, patch, 4),
        (c, _) => gather_any(x, p, at, patch, c),
    }
}

/// [`gather`] of `C` channels, a kernel `K` wide (`p.k_w`, dilation 1
/// along the row).
#[inline(always)]
fn gather_rows<const C: usize, const K: usize>(
    x: &[f32],
    p: &Conv2d,
    at: usize,
    patch: &mut [f32],
) {
    let (oy, ox) = (at / p.out_w, at % p.out_w);
    let ix0 = (ox * p.stride_w).wrapping_sub(p.pad_left);
    // every tap of a kernel row inside the input horizontally
    let inside = ix0 < p.in_w && ix0 + K <= p.in_w;
    for ky in 0..p.k_h {
        let iy = (oy * p.stride_h + ky * p.dilation_h).wrapping_sub(p.pad_top);
        let dst = &mut patch[ky * K * C..][..K * C];
        if iy >= p.in_h {
            dst.fill(0.0);
        } else if inside {
            dst.copy_from_slice(&x[(iy * p.in_w + ix0) * C..][..K * C]);
        } else {
            for (kx, d) in dst.chunks_exact_mut(C).enumerate() {
                let ix = ix0.wrapping_add(kx);
                if ix < p.in_w {
                    d.copy_from_slice(&x[(iy * p.in_w + ix) * C..][..C]);
                } else {
                    d.fill(0.0);
                }
            }
        }
    }
}

/// [`gather`] of `c` (`p.in_c`) channels.
#[inline(always)]
fn gather_any(x: &[f32], p: &Conv2d, at: usize, patch: &mut [f32], c: usize) {
    let (oy, ox) = (at / p.out_w, at % p.out_w);
    for ky in 0..p.k_h {
        let iy = (oy * p.stride_h + ky * p.dilation_h).wrapping_sub(p.pad_top);
        for kx in 0..p.k_w {
            let ix = (ox * p.stride_w + kx * p.dilation_w).wrapping_sub(p.pad_left);
            let dst = &mut patch[(ky * p.k_w + kx) * c..][..c];
            if iy < p.in_h && ix < p.in_w {
                dst.copy_from_slice(&x[(iy * p.in_w + ix) * c..][..c]);
            } else {
                dst.fill(0.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::elementwise::Activation;
    use crate::gemm::tests::values;
    use std::vec::Vec;

    #[test]
    fn matches_the_direct_convolution() {
        // (in h, w, c), (out c), kernel, stride, pads (top, left, bottom, right)
        let cases = [
            ((13, 11, 3), 16, (3, 3), (2, 2), [1, 1, 1, 1]),
            ((7, 9, 5), 9, (3, 5), (1, 2), [0, 2, 1, 1]),
            ((5, 5, 2), 24, (1, 1), (1, 1), [0, 0, 0, 0]),
            ((6, 6, 32), 8, (3, 3), (1, 1), [1, 1, 1, 1]),
            // stems copied a kernel row at a time (1-4 channels, 3/5/7 wide)
            ((9, 10, 1), 8, (5, 5), (1, 1), [2, 2, 2, 2]),
            ((8, 7, 4), 12, (3, 3), (1, 1), [1, 1, 1, 1]),
            ((12, 13, 3), 16, (7, 7), (2, 2), [3, 3, 3, 2]),
            ((10, 9, 2), 5, (3, 3), (2, 2), [0, 0, 1, 1]),
        ];
        for (n, ((h, w, ci), co, (kh, kw), (sh, sw), pads)) in cases.into_iter().enumerate() {
            let p = Conv2d {
                in_h: h,
                in_w: w,
                in_c: ci,
                out_h: (h + pads[0] + pads[2] - kh) / sh + 1,
                out_w: (w + pads[1] + pads[3] - kw) / sw + 1,
                out_c: co,
                k_h: kh,
                k_w: kw,
                stride_h: sh,
                stride_w: sw,
                dilation_h: 1,
                dilation_w: 1,
                pad_top: pads[0],
                pad_left: pads[1],
                groups: 1,
                act: Activation::Clip { min: 0.0, max: 6.0 },
            };
            let x = values(h * w * ci, n as u32);
            let wt = values(kh * kw * ci * co, 10 + n as u32);
            let b = values(co, 20 + n as u32);
            let len = p.out_h * p.out_w * co;
            let mut want = std::vec![f32::NAN; len];
            crate::conv2d(&x, &wt, &b, &mut want, &p);
            let k = kh * kw * ci;
            let mut packed: Vec<f32> = std::vec![0.0; crate::packed_gemm_len(k, co)];
            crate::pack_gemm(&wt, &b, k, co, &mut packed);
            let mut got = std::vec![f32::NAN; len];
            conv2d_gemm(&x, &packed, &mut got, &p);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-5, "case {n} [{i}]: {g} vs {w}");
            }
        }
    }
}
