//! int8 convolutions and matrix products with i32 accumulation.
//!
//! Activations are asymmetric per tensor (`real = scale * (q - zero_point)`),
//! weights symmetric per output channel (zero point 0). Every kernel computes,
//! per output channel `o`, `acc = bias[o] + sum (x - x_zero) * w` over the
//! taps inside the input (a padded tap is a real zero, `x = x_zero`, so it
//! adds nothing), then `y = clamp(y_zero + acc * M[o])` with `M[o] = s_x *
//! s_w[o] / s_y` applied as [`multiply_by_quantized_multiplier`]`(acc,
//! mult[o], shift[o])`. Biases are i32 in units of `s_x * s_w[o]`.
//!
//! int8 tensors are byte slices holding two's-complement i8 values, images
//! NHWC as the f32 ones. Portable code (the loops are plain so the compiler
//! can vectorise them), but for [`qgemm`]'s dot products, which have x86-64
//! SIMD kernels in `gemm_x86`.

use super::requant::{OutRange, multiply_by_quantized_multiplier, v};

/// Shape and quantization of an int8 2-D convolution (NHWC in and out).
#[derive(Clone, Copy, Debug)]
pub struct QConv2d {
    /// Input height, width, channels.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub in_c: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// Output channels.
    pub out_c: usize,
    /// Kernel height and width.
    pub k: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Vertical and horizontal dilation.
    pub dilation: [usize; 2],
    /// Padding above and left of the input, in pixels.
    pub pad: [usize; 2],
    /// Groups; `in_c` and `out_c` are multiples of it.
    pub groups: usize,
    /// Input zero point.
    pub x_zero: i32,
    /// Output zero point and clamp range.
    pub out: OutRange,
}

/// Per-output-channel requantization: i32 bias, fixed-point multiplier and
/// shift, each `out_c` long.
#[derive(Clone, Copy, Debug)]
pub struct PerChannel<'a> {
    /// Bias in accumulator units (`s_x * s_w[o]`).
    pub bias: &'a [i32],
    /// Q0.31 multipliers (see [`multiply_by_quantized_multiplier`]).
    pub mult: &'a [i32],
    /// Shifts (negative: right).
    pub shift: &'a [i32],
}

impl PerChannel<'_> {
    #[inline]
    fn scale(&self, o: usize, acc: i32) -> i32 {
        multiply_by_quantized_multiplier(acc + self.bias[o], self.mult[o], self.shift[o])
    }
}

/// The input row/column of output `o`'s tap `k`, if inside `0..n`.
#[inline]
fn tap(o: usize, k: usize, stride: usize, dil: usize, pad: usize, n: usize) -> Option<usize> {
    let i = (o * stride + k * dil).checked_sub(pad)?;
    (i < n).then_some(i)
}

/// General int8 convolution (any kernel, stride, dilation, padding, groups):
/// `x` is `[in_h][in_w][in_c]`, `w` is `[out_c][k_h][k_w][in_c/groups]`
/// (i8 bytes), `y` is `[out_h][out_w][out_c]`.
///
/// # Panics
/// If a slice is shorter than its shape says.
pub fn qconv2d(p: &QConv2d, x: &[u8], w: &[u8], pc: PerChannel<'_>, y: &mut [u8]) {
    let cig = p.in_c / p.groups;
    let cog = p.out_c / p.groups;
    let wlen = p.k[0] * p.k[1] * cig;
    assert!(x.len() >= p.in_h * p.in_w * p.in_c && w.len() >= p.out_c * wlen);
    assert!(y.len() >= p.out_h * p.out_w * p.out_c && pc.bias.len() >= p.out_c);
    // per output pixel and block of output channels: each tap's position is
    // found once, then every channel of the block accumulates over it
    let mut acc = [0i32; DW_CHUNK];
    for oy in 0..p.out_h {
        for ox in 0..p.out_w {
            let mut o0 = 0;
            while o0 < p.out_c {
                let g = o0 / cog;
                let nb = DW_CHUNK.min((g + 1) * cog - o0);
                let acc = &mut acc[..nb];
                acc.fill(0);
                for ky in 0..p.k[0] {
                    let Some(iy) = tap(oy, ky, p.stride[0], p.dilation[0], p.pad[0], p.in_h) else {
                        continue;
                    };
                    for kx in 0..p.k[1] {
                        let Some(ix) = tap(ox, kx, p.stride[1], p.dilation[1], p.pad[1], p.in_w)
                        else {
                            continue;
                        };
                        let xs = &x[(iy * p.in_w + ix) * p.in_c + g * cig..][..cig];
                        let t = (ky * p.k[1] + kx) * cig;
                        for (j, a) in acc.iter_mut().enumerate() {
                            let ws = &w[(o0 + j) * wlen + t..][..cig];
                            for (xb, wb) in xs.iter().zip(ws) {
                                *a += (v(*xb) - p.x_zero) * v(*wb);
                            }
                        }
                    }
                }
                let yrow = &mut y[(oy * p.out_w + ox) * p.out_c + o0..][..nb];
                for (j, (yv, a)) in yrow.iter_mut().zip(acc.iter()).enumerate() {
                    *yv = p.out.put(pc.scale(o0 + j, *a));
                }
                o0 += nb;
            }
        }
    }
}

/// Output channels whose weight sums [`qgemm`] keeps at once.
pub(crate) const GEMM_BLOCK: usize = 64;

/// Channels processed together by [`qdepthwise_conv2d`]'s accumulators.
const DW_CHUNK: usize = 64;

/// int8 depthwise convolution (groups = channels, multiplier 1): `x` is
/// `[in_h][in_w][c]`, `w` is `[k_h][k_w][c]` (i8 bytes), `y` is
/// `[out_h][out_w][c]`; `p.in_c == p.out_c == p.groups`.
///
/// # Panics
/// If a slice is shorter than its shape says.
pub fn qdepthwise_conv2d(p: &QConv2d, x: &[u8], w: &[u8], pc: PerChannel<'_>, y: &mut [u8]) {
    let c = p.out_c;
    assert!(x.len() >= p.in_h * p.in_w * c && w.len() >= p.k[0] * p.k[1] * c);
    assert!(y.len() >= p.out_h * p.out_w * c && pc.bias.len() >= c);
    let mut acc = [0i32; DW_CHUNK];
    for oy in 0..p.out_h {
        for ox in 0..p.out_w {
            let mut c0 = 0;
            while c0 < c {
                let n = DW_CHUNK.min(c - c0);
                let acc = &mut acc[..n];
                acc.fill(0);
                for ky in 0..p.k[0] {
                    let Some(iy) = tap(oy, ky, p.stride[0], p.dilation[0], p.pad[0], p.in_h) else {
                        continue;
                    };
                    for kx in 0..p.k[1] {
                        let Some(ix) = tap(ox, kx, p.stride[1], p.dilation[1], p.pad[1], p.in_w)
                        else {
                            continue;
                        };
                        let xs = &x[(iy * p.in_w + ix) * c + c0..][..n];
                        let ws = &w[(ky * p.k[1] + kx) * c + c0..][..n];
                        for ((a, xb), wb) in acc.iter_mut().zip(xs).zip(ws) {
                            *a += (v(*xb) - p.x_zero) * v(*wb);
                        }
                    }
                }
                let yrow = &mut y[(oy * p.out_w + ox) * c + c0..][..n];
                for (j, (yv, a)) in yrow.iter_mut().zip(acc.iter()).enumerate() {
                    *yv = p.out.put(pc.scale(c0 + j, *a));
                }
                c0 += n;
            }
        }
    }
}

/// Rows of `x` one [`Block`] spans.
pub(crate) const ROWS: usize = 4;

/// The dot products of one block: `[row][output]`, `ROWS` by [`GEMM_BLOCK`].
pub(crate) type DotAcc = [[i32; GEMM_BLOCK]; ROWS];

/// One block of [`qgemm`]'s product: rows `r0..r0 + rows` of `x` (`[m][k]`
/// bytes) against weight rows `o0..o0 + nb` of `w` (`[n][k]` bytes), whose
/// sums are `wsum[..nb]`; `rows <= ROWS`, `nb <= GEMM_BLOCK`.
pub(crate) struct Block<'a> {
    pub(crate) x: &'a [u8],
    pub(crate) w: &'a [u8],
    pub(crate) k: usize,
    pub(crate) r0: usize,
    pub(crate) rows: usize,
    pub(crate) o0: usize,
    pub(crate) nb: usize,
    /// Read by the VNNI kernel (x86-64) only.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    pub(crate) wsum: &'a [i32],
}

/// The portable dot-product kernel: `acc[i][j] = sum_t x[r0 + i][t] *
/// w[o0 + j][t]` (i8 values, i32 sums) for `i < rows`, `j < nb`. The SIMD
/// kernels (`gemm_x86`) compute the same sums.
pub(crate) fn dots_portable(b: &Block<'_>, acc: &mut DotAcc) {
    for (i, row) in acc[..b.rows].iter_mut().enumerate() {
        let xs = &b.x[(b.r0 + i) * b.k..][..b.k];
        for (j, a) in row[..b.nb].iter_mut().enumerate() {
            let ws = &b.w[(b.o0 + j) * b.k..][..b.k];
            *a = xs.iter().zip(ws).map(|(a, b)| v(*a) * v(*b)).sum();
        }
    }
}

/// int8 matrix product for pointwise convolutions (`m` = pixels) and dense
/// layers (`m` = 1): `x` is `[m][k]`, `w` is `[n][k]` (one row per output
/// channel, i8 bytes), `y` is `[m][n]`; `x_zero` is the input zero point.
///
/// The dot products run on the widest kernel this build (or, with the
/// `std` feature, this CPU) has: AVX-512 VNNI, AVX2 (x86-64), else portable
/// code; all give the same bytes (integer sums).
///
/// # Panics
/// If a slice is shorter than its shape says.
#[allow(clippy::too_many_arguments)]
pub fn qgemm(
    m: usize,
    k: usize,
    n: usize,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    pc: PerChannel<'_>,
    out: OutRange,
    y: &mut [u8],
) {
    #[cfg(target_arch = "x86_64")]
    if super::gemm_x86::vnni() {
        // SAFETY: `vnni` is true only when the build enables (or the CPU
        // has) AVX-512F, AVX512BW and AVX512-VNNI; `qgemm_with` asserts the
        // slice lengths and passes blocks inside them.
        qgemm_with(m, k, n, x, x_zero, w, pc, out, y, |b, a| unsafe {
            super::gemm_x86::dots_vnni(b, a)
        });
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx2_fma() {
        // SAFETY: `avx2_fma` is true only when the build enables (or the
        // CPU has) AVX2 and FMA; blocks lie inside the checked slices.
        qgemm_with(m, k, n, x, x_zero, w, pc, out, y, |b, a| unsafe {
            super::gemm_x86::dots_avx2(b, a)
        });
        return;
    }
    qgemm_portable(m, k, n, x, x_zero, w, pc, out, y);
}

/// [`qgemm`] with the portable dot products only (the SIMD kernels' twin).
#[allow(clippy::too_many_arguments)]
pub(crate) fn qgemm_portable(
    m: usize,
    k: usize,
    n: usize,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    pc: PerChannel<'_>,
    out: OutRange,
    y: &mut [u8],
) {
    qgemm_with(m, k, n, x, x_zero, w, pc, out, y, dots_portable);
}

/// [`qgemm`] with the dot products of `dots` (called once per block of
/// [`ROWS`] rows and [`GEMM_BLOCK`] outputs).
///
/// # Panics
/// If a slice is shorter than its shape says.
#[allow(clippy::too_many_arguments)]
pub(crate) fn qgemm_with(
    m: usize,
    k: usize,
    n: usize,
    x: &[u8],
    x_zero: i32,
    w: &[u8],
    pc: PerChannel<'_>,
    out: OutRange,
    y: &mut [u8],
    mut dots: impl FnMut(&Block<'_>, &mut DotAcc),
) {
    assert!(x.len() >= m * k && w.len() >= n * k && y.len() >= m * n);
    assert!(pc.bias.len() >= n && pc.mult.len() >= n && pc.shift.len() >= n);
    // sum (x - z) w = sum x w - z sum w: the inner loop is a plain i8 dot
    // product, the zero point's share one product per output, its weight
    // sums computed once per block of outputs
    let mut wsum = [0i32; GEMM_BLOCK];
    let mut acc: DotAcc = [[0i32; GEMM_BLOCK]; ROWS];
    let mut o0 = 0;
    while o0 < n {
        let nb = GEMM_BLOCK.min(n - o0);
        for (j, s) in wsum[..nb].iter_mut().enumerate() {
            *s = w[(o0 + j) * k..][..k].iter().map(|b| v(*b)).sum();
        }
        let (bias, mult, shift) = (
            &pc.bias[o0..][..nb],
            &pc.mult[o0..][..nb],
            &pc.shift[o0..][..nb],
        );
        let mut r0 = 0;
        while r0 < m {
            let rows = ROWS.min(m - r0);
            let block = Block {
                x: &x[..m * k],
                w: &w[..n * k],
                k,
                r0,
                rows,
                o0,
                nb,
                wsum: &wsum[..nb],
            };
            // the dot products first, then the requantization of the whole
            // block in a loop of its own (so it can be vectorised)
            dots(&block, &mut acc);
            for (i, dots) in acc[..rows].iter().enumerate() {
                let yrow = &mut y[(r0 + i) * n + o0..][..nb];
                for (j, yv) in yrow.iter_mut().enumerate() {
                    let a = dots[j] - x_zero * wsum[j] + bias[j];
                    *yv = out.put(multiply_by_quantized_multiplier(a, mult[j], shift[j]));
                }
            }
            r0 += rows;
        }
        o0 += nb;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    fn rng(seed: u32) -> impl FnMut() -> u32 {
        let mut s = seed | 1;
        move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        }
    }

    fn bytes(n: usize, r: &mut impl FnMut() -> u32) -> Vec<u8> {
        (0..n).map(|_| r() as u8).collect()
    }

    /// Naive reference over logical indices: NCHW-free, straight from the
    /// definition, in i64 with the exact per-tap sum.
    fn naive(p: &QConv2d, x: &[u8], w: &[u8], pc: PerChannel<'_>) -> Vec<u8> {
        let (cig, cog) = (p.in_c / p.groups, p.out_c / p.groups);
        let mut y = std::vec![0u8; p.out_h * p.out_w * p.out_c];
        for oy in 0..p.out_h {
            for ox in 0..p.out_w {
                for o in 0..p.out_c {
                    let g = o / cog;
                    let mut acc = 0i64;
                    for ky in 0..p.k[0] {
                        for kx in 0..p.k[1] {
                            let iy =
                                (oy * p.stride[0] + ky * p.dilation[0]) as i64 - p.pad[0] as i64;
                            let ix =
                                (ox * p.stride[1] + kx * p.dilation[1]) as i64 - p.pad[1] as i64;
                            for ci in 0..cig {
                                let xv = if iy < 0
                                    || ix < 0
                                    || iy >= p.in_h as i64
                                    || ix >= p.in_w as i64
                                {
                                    p.x_zero as i64
                                } else {
                                    v(x[(iy as usize * p.in_w + ix as usize) * p.in_c
                                        + g * cig
                                        + ci]) as i64
                                };
                                let wv = v(w[((o * p.k[0] + ky) * p.k[1] + kx) * cig + ci]) as i64;
                                acc += (xv - p.x_zero as i64) * wv;
                            }
                        }
                    }
                    let s = multiply_by_quantized_multiplier(
                        acc as i32 + pc.bias[o],
                        pc.mult[o],
                        pc.shift[o],
                    );
                    y[(oy * p.out_w + ox) * p.out_c + o] = p.out.put(s);
                }
            }
        }
        y
    }

    fn params(r: &mut impl FnMut() -> u32, n: usize) -> (Vec<i32>, Vec<i32>, Vec<i32>) {
        let bias = (0..n).map(|_| (r() % 2001) as i32 - 1000).collect();
        let mult = (0..n)
            .map(|_| (1 << 30) + (r() % (1 << 30)) as i32)
            .collect();
        let shift = (0..n).map(|_| -7 - (r() % 4) as i32).collect();
        (bias, mult, shift)
    }

    fn geometry(in_hw: [usize; 2], k: usize, s: usize, pad: usize, d: usize) -> [usize; 2] {
        let o = |n: usize| (n + 2 * pad - d * (k - 1) - 1) / s + 1;
        [o(in_hw[0]), o(in_hw[1])]
    }

    #[test]
    fn general_and_depthwise_match_the_naive_reference() {
        let mut r = rng(7);
        // (in_c, out_c, groups, k, stride, pad, dilation)
        let cases = [
            (3, 8, 1, 3, 2, 1, 1),
            (4, 6, 2, 3, 1, 1, 1),
            (5, 5, 1, 1, 1, 0, 1),
            (8, 8, 8, 3, 1, 1, 1),
            (70, 70, 70, 5, 2, 2, 1),
            (6, 6, 6, 3, 1, 2, 2),
        ];
        for (in_c, out_c, groups, k, s, pad, d) in cases {
            let [oh, ow] = geometry([7, 6], k, s, pad, d);
            let p = QConv2d {
                in_h: 7,
                in_w: 6,
                in_c,
                out_h: oh,
                out_w: ow,
                out_c,
                k: [k, k],
                stride: [s, s],
                dilation: [d, d],
                pad: [pad, pad],
                groups,
                x_zero: -5,
                out: OutRange {
                    zero_point: 3,
                    lo: -128,
                    hi: 100,
                },
            };
            let x = bytes(7 * 6 * in_c, &mut r);
            let w = bytes(out_c * k * k * in_c / groups, &mut r);
            let (bias, mult, shift) = params(&mut r, out_c);
            let pc = PerChannel {
                bias: &bias,
                mult: &mult,
                shift: &shift,
            };
            let want = naive(&p, &x, &w, pc);
            let mut y = std::vec![0u8; want.len()];
            qconv2d(&p, &x, &w, pc, &mut y);
            assert_eq!(y, want, "general {in_c}->{out_c} g{groups} k{k}");
            if groups == in_c && groups == out_c {
                // depthwise layout [kh][kw][c] from [c][kh][kw][1]
                let mut wd = std::vec![0u8; w.len()];
                for c in 0..out_c {
                    for t in 0..k * k {
                        wd[t * out_c + c] = w[c * k * k + t];
                    }
                }
                let mut y2 = std::vec![0u8; want.len()];
                qdepthwise_conv2d(&p, &x, &wd, pc, &mut y2);
                assert_eq!(y2, want, "depthwise c{in_c} k{k}");
            }
        }
    }

    #[test]
    fn gemm_matches_a_1x1_convolution() {
        let mut r = rng(11);
        // (pixels as h x w, k, n): n = 70 spans two blocks of weight sums
        for (h, w, k, n) in [(3, 3, 13, 7), (1, 3, 20, 70)] {
            let m = h * w;
            let x = bytes(m * k, &mut r);
            let wt = bytes(n * k, &mut r);
            let (bias, mult, shift) = params(&mut r, n);
            let pc = PerChannel {
                bias: &bias,
                mult: &mult,
                shift: &shift,
            };
            let out = OutRange {
                zero_point: -20,
                lo: -20,
                hi: 127,
            };
            let p = QConv2d {
                in_h: h,
                in_w: w,
                in_c: k,
                out_h: h,
                out_w: w,
                out_c: n,
                k: [1, 1],
                stride: [1, 1],
                dilation: [1, 1],
                pad: [0, 0],
                groups: 1,
                x_zero: 17,
                out,
            };
            let want = naive(&p, &x, &wt, pc);
            let mut y = std::vec![0u8; m * n];
            qgemm(m, k, n, &x, 17, &wt, pc, out, &mut y);
            assert_eq!(y, want, "{m}x{k}x{n}");
        }
    }
}
