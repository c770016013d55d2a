//! The AVX-512F depthwise convolution: channels in the 16 lanes of a `zmm`
//! register, the channels past the last multiple of 16 through a
//! `__mmask16`. Twin of `conv::depthwise_portable` (same layout, bias then
//! taps in row-major order; fused multiply-adds round once).
//!
//! Square 3x3, 5x5 and 7x7 kernels of stride 1 or 2 and no dilation along
//! the row (every depthwise layer of kiln's spaces) slide along a row: runs
//! of 8 (then 4, 2, 1) interior output pixels, 16 channels a tile, kernel
//! width and stride compile-time constants, so every tap is unrolled and an
//! input vector is loaded once for all the run's pixels that read it
//! (`(P - 1) S + K` loads for `P K` multiply-adds a kernel row, against `P K`
//! before). Other shapes, and border pixels of all, take the general tiles:
//! 32 channels (two registers) or 16 of 8 output pixels along a row (then 4,
//! then 2 at the end of the interior) accumulated over every tap where all
//! taps are inside the input, 1 pixel (up to 64 channels) at the borders.

use core::arch::x86_64::*;

use crate::conv::Conv2d;
use crate::elementwise::activate;
use crate::gemm_avx512::epilogue;

/// Output pixels along a row one interior tile covers (twice that where
/// the interior allows).
const PIXELS: usize = 4;
/// Lanes of a vector.
const L: usize = 16;

/// The sliding kernels' (kernel width, stride) pairs; their height may be
/// anything.
fn sliding(p: &Conv2d) -> Option<(usize, usize)> {
    let ks = (p.k_w, p.stride_w);
    let known = matches!(ks.0, 3 | 5 | 7) && matches!(ks.1, 1 | 2);
    (known && p.dilation_w == 1).then_some(ks)
}

/// [`crate::depthwise_conv2d`] with AVX-512F.
///
/// # Safety
/// The CPU must support AVX-512F; `x`, `weights`, `bias` and `out` must be
/// as long as `depthwise_conv2d` demands (its asserts).
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn depthwise_avx512(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    p: &Conv2d,
) {
    // SAFETY: forwarded from the caller.
    unsafe { depthwise_with(x, weights, bias, out, p, sliding(p)) }
}

/// [`depthwise_avx512`] with the sliding kernels for `slide`'s (kernel
/// width, stride), or with the general tiles only (`None`; tests compare
/// the two).
///
/// # Safety
/// As [`depthwise_avx512`]'s; `slide` is `None` or `sliding(p)`.
#[target_feature(enable = "avx512f")]
unsafe fn depthwise_with(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    p: &Conv2d,
    slide: Option<(usize, usize)>,
) {
    let c = p.out_c;
    let (lo, hi) = p.interior();
    let zeros = [0.0f32; 4 * L];
    let full = c / L * L;
    // Lanes of the last, partial vector: the first c % 16.
    let mask: __mmask16 = ((1u32 << (c - full)) - 1) as u16;
    for oy in 0..p.out_h {
        let (ky0, ky1) = Conv2d::taps(oy, p.stride_h, p.dilation_h, p.pad_top, p.k_h, p.in_h);
        let mut ox = 0;
        while ox < p.out_w {
            // A short interior goes to the general tiles of up to 64
            // channels (1 pixel) or 32 (2): sliding 16 at a time took 1.17x
            // their time on 3x3 x 480 (3x3 kernel, interior 1 pixel) and
            // 1.15x on 12x12 x 288, 7x7 stride 2 (interior 3; host,
            // `kernel_bench`). At least 2 pixels for 3-wide kernels, 4 for
            // wider ones.
            let least = if p.k_w == 3 { 2 } else { 4 };
            if let Some(ks) = slide.filter(|_| ox == lo && lo + least <= hi) {
                let t = Tile {
                    oy,
                    ox,
                    ky: (ky0, ky1),
                    kx: (lo, hi),
                };
                let a = Args {
                    x: x.as_ptr(),
                    w: weights.as_ptr(),
                    b: if bias.is_empty() {
                        zeros.as_ptr()
                    } else {
                        bias.as_ptr()
                    },
                    o: out.as_mut_ptr(),
                };
                // SAFETY: the caller guarantees AVX-512F and the lengths
                // `depthwise_conv2d` asserts; pixels lo..hi are the
                // interior (every horizontal tap inside the input), the
                // vertical taps t.ky are inside the input, and `ks` is the
                // layer's kernel width and stride with dilation 1.
                let fast = unsafe { slide_run(ks, a, !bias.is_empty(), p, t, mask) };
                if !fast {
                    let row = oy * p.out_w;
                    activate(&mut out[(row + lo) * c..(row + hi) * c], p.act);
                }
                ox = hi;
                continue;
            }
            // A run of 8 (or 4, or 2) interior pixels shares all taps: 8 or
            // 16 accumulator chains hide the FMA latency, and the tap loop's
            // cost is shared by more pixels (8 rather than 4 with 32
            // channels: whole-process user time 0.90-0.99x on 3x3 layers of
            // 48 and 96 channels); a border pixel goes alone with up to four
            // vectors of channels.
            let n = if ox >= lo && ox + 2 * PIXELS <= hi {
                2 * PIXELS
            } else if ox >= lo && ox + PIXELS <= hi {
                PIXELS
            } else if ox >= lo && ox + 2 <= hi {
                2
            } else {
                1
            };
            let kx = if n > 1 {
                (0, p.k_w)
            } else {
                Conv2d::taps(ox, p.stride_w, p.dilation_w, p.pad_left, p.k_w, p.in_w)
            };
            let t = Tile {
                oy,
                ox,
                ky: (ky0, ky1),
                kx,
            };
            let o = (oy * p.out_w + ox) * c;
            let mut j = 0;
            let mut fast = true;
            while j < c {
                let b = if bias.is_empty() {
                    zeros.as_ptr()
                } else {
                    // SAFETY: j < c = bias.len().
                    unsafe { bias.as_ptr().add(j) }
                };
                let a = Args {
                    x: x.as_ptr(),
                    w: weights.as_ptr(),
                    b,
                    o: out.as_mut_ptr(),
                };
                let wide = if n == 1 { 4 * L } else { 2 * L };
                let step = if j + wide <= full {
                    wide
                } else if j + 2 * L <= full {
                    2 * L
                } else {
                    L
                };
                // SAFETY: the caller guarantees AVX-512F and the lengths
                // `depthwise_conv2d` asserts; `t` covers output pixels
                // ox..ox+n < out_w whose taps t.ky x t.kx are inside the
                // input, and channels j..j+step of c, read in full vectors
                // only below `full`, past it through `mask`.
                fast = unsafe {
                    match (n, step, j < full) {
                        (8, 32, _) => tile::<8, 2, false>(a, p, t, j, o, mask),
                        (8, _, true) => tile::<8, 1, false>(a, p, t, j, o, mask),
                        (8, _, false) => tile::<8, 1, true>(a, p, t, j, o, mask),
                        (PIXELS, 32, _) => tile::<PIXELS, 2, false>(a, p, t, j, o, mask),
                        (PIXELS, _, true) => tile::<PIXELS, 1, false>(a, p, t, j, o, mask),
                        (PIXELS, _, false) => tile::<PIXELS, 1, true>(a, p, t, j, o, mask),
                        (2, 32, _) => tile::<2, 2, false>(a, p, t, j, o, mask),
                        (2, _, true) => tile::<2, 1, false>(a, p, t, j, o, mask),
                        (2, _, false) => tile::<2, 1, true>(a, p, t, j, o, mask),
                        (_, 64, _) => tile::<1, 4, false>(a, p, t, j, o, mask),
                        (_, 32, _) => tile::<1, 2, false>(a, p, t, j, o, mask),
                        (_, _, true) => tile::<1, 1, false>(a, p, t, j, o, mask),
                        (_, _, false) => tile::<1, 1, true>(a, p, t, j, o, mask),
                    }
                } && fast;
                j += step;
            }
            if !fast {
                activate(&mut out[o..o + n * c], p.act);
            }
            ox += n;
        }
    }
}

/// The interior pixels `t.kx.0..t.kx.1` of row `t.oy` of a layer whose
/// kernel width and stride are `ks` (one of [`sliding`]'s), in runs of 8
/// (then 4, 2, 1), every block of 16 channels of a run before the next run;
/// `a.b` is the bias when `has_bias`, else 16 zeros. False when the
/// activation is still to be applied.
///
/// # Safety
/// As `depthwise_avx512`'s body states for its call.
#[target_feature(enable = "avx512f")]
unsafe fn slide_run(
    ks: (usize, usize),
    a: Args,
    has_bias: bool,
    p: &Conv2d,
    t: Tile,
    mask: __mmask16,
) -> bool {
    // SAFETY: forwarded from the caller; `ks` names the instance.
    unsafe {
        match ks {
            (3, 1) => slide_row::<3, 1>(a, has_bias, p, t, mask),
            (3, _) => slide_row::<3, 2>(a, has_bias, p, t, mask),
            (5, 1) => slide_row::<5, 1>(a, has_bias, p, t, mask),
            (5, _) => slide_row::<5, 2>(a, has_bias, p, t, mask),
            (7, 1) => slide_row::<7, 1>(a, has_bias, p, t, mask),
            _ => slide_row::<7, 2>(a, has_bias, p, t, mask),
        }
    }
}

/// [`slide_run`] for kernel width `K` and stride `S`.
///
/// # Safety
/// As [`slide_run`]'s.
#[target_feature(enable = "avx512f")]
unsafe fn slide_row<const K: usize, const S: usize>(
    a: Args,
    has_bias: bool,
    p: &Conv2d,
    t: Tile,
    mask: __mmask16,
) -> bool {
    let c = p.out_c;
    let full = c / L * L;
    let mut fast = true;
    let mut ox = t.kx.0;
    while ox < t.kx.1 {
        let n = match t.kx.1 - ox {
            8.. => 8,
            4..8 => 4,
            2..4 => 2,
            _ => 1,
        };
        let run = Tile { ox, ..t };
        let o = (t.oy * p.out_w + ox) * c;
        let mut j = 0;
        while j < c {
            let a = Args {
                // SAFETY: j < c = the bias's length when there is one.
                b: if has_bias { unsafe { a.b.add(j) } } else { a.b },
                ..a
            };
            // SAFETY: channels j..j+16 of c, read in full below `full`,
            // past it through `mask`; pixels ox..ox+n inside the interior,
            // taps as the caller guarantees.
            fast = unsafe {
                match (n, j < full) {
                    (8, true) => slide::<8, K, S, false>(a, p, run, j, o, mask),
                    (8, false) => slide::<8, K, S, true>(a, p, run, j, o, mask),
                    (4, true) => slide::<4, K, S, false>(a, p, run, j, o, mask),
                    (4, false) => slide::<4, K, S, true>(a, p, run, j, o, mask),
                    (2, true) => slide::<2, K, S, false>(a, p, run, j, o, mask),
                    (2, false) => slide::<2, K, S, true>(a, p, run, j, o, mask),
                    (_, true) => slide::<1, K, S, false>(a, p, run, j, o, mask),
                    (_, false) => slide::<1, K, S, true>(a, p, run, j, o, mask),
                }
            } && fast;
            j += L;
        }
        ox += n;
    }
    fast
}

/// `P` interior pixels from `t.ox` of row `t.oy`, channels `j..j + 16`
/// (masked when `MASKED`), a kernel `K` wide of stride `S` along the row,
/// rows `t.ky`; output at `a.o + o` (pixels `c` apart). Per kernel row the
/// `K` weight vectors are loaded once and each of the `(P - 1) S + K` input
/// vectors once (the unrolled loads of one address are one load): the
/// same products and summation order as [`tile`]. False when the
/// activation is still to be applied.
///
/// # Safety
/// As `depthwise_avx512`'s body states for its `slide_run` call.
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::needless_range_loop)]
unsafe fn slide<const P: usize, const K: usize, const S: usize, const MASKED: bool>(
    a: Args,
    p: &Conv2d,
    t: Tile,
    j: usize,
    o: usize,
    mask: __mmask16,
) -> bool {
    let c = p.out_c;
    // SAFETY (whole body): every pointer below stays inside the slices
    // `depthwise_avx512`'s caller vouched for: the run's taps are inside
    // the input, and lanes past c are only touched through `mask`.
    unsafe {
        let b = load::<MASKED>(a.b, mask);
        let mut acc = [[b]; P];
        for ky in t.ky.0..t.ky.1 {
            let iy = t.oy * p.stride_h + ky * p.dilation_h - p.pad_top;
            let wp = a.w.add(ky * K * c + j);
            let mut w = [_mm512_setzero_ps(); K];
            for kx in 0..K {
                w[kx] = load::<MASKED>(wp.add(kx * c), mask);
            }
            let xp = a.x.add((iy * p.in_w + t.ox * S - p.pad_left) * c + j);
            // pixel by pixel, taps in order: pixel q + 1 reads K - S of
            // pixel q's input vectors again, which the unrolled code loads
            // once
            for q in 0..P {
                for kx in 0..K {
                    let xv = load::<MASKED>(xp.add((q * S + kx) * c), mask);
                    acc[q][0] = _mm512_fmadd_ps(xv, w[kx], acc[q][0]);
                }
            }
        }
        let fast = epilogue(&mut acc, p.act);
        for (q, px) in acc.iter().enumerate() {
            let op = a.o.add(o + q * c + j);
            if MASKED {
                _mm512_mask_storeu_ps(op, mask, px[0]);
            } else {
                _mm512_storeu_ps(op, px[0]);
            }
        }
        fast
    }
}

#[derive(Clone, Copy)]
struct Tile {
    oy: usize,
    ox: usize,
    ky: (usize, usize),
    kx: (usize, usize),
}

/// Base pointers of the input, weights, this block's bias and the output.
#[derive(Clone, Copy)]
struct Args {
    x: *const f32,
    w: *const f32,
    b: *const f32,
    o: *mut f32,
}

/// Loads 16 lanes, or only the masked ones (the others read as 0 and are
/// not accessed).
///
/// # Safety
/// AVX-512F; the 16 (or masked) lanes at `p` are readable.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load<const MASKED: bool>(p: *const f32, mask: __mmask16) -> __m512 {
    // SAFETY: the caller guarantees the lanes read are in bounds.
    unsafe {
        if MASKED {
            _mm512_maskz_loadu_ps(mask, p)
        } else {
            _mm512_loadu_ps(p)
        }
    }
}

/// `P` pixels from `t.ox` of row `t.oy`, channels `j..j + 16V` (the last
/// vector masked when `MASKED`, which only `V = 1` tiles are), output at
/// `a.o + o` (pixels `c` apart); false when the activation is still to be
/// applied.
///
/// # Safety
/// As `depthwise_avx512`'s body states for its calls.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn tile<const P: usize, const V: usize, const MASKED: bool>(
    a: Args,
    p: &Conv2d,
    t: Tile,
    j: usize,
    o: usize,
    mask: __mmask16,
) -> bool {
    let c = p.out_c;
    // SAFETY (whole body): every pointer below stays inside the slices
    // `depthwise_avx512`'s caller vouched for: taps are inside the input,
    // and lanes past c are only touched through `mask`.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); V]; P];
        for px in acc.iter_mut() {
            for (v, lane) in px.iter_mut().enumerate() {
                *lane = load::<MASKED>(a.b.add(v * L), mask);
            }
        }
        let step = p.stride_w * c;
        for ky in t.ky.0..t.ky.1 {
            let iy = t.oy * p.stride_h + ky * p.dilation_h - p.pad_top;
            for kx in t.kx.0..t.kx.1 {
                let ix = t.ox * p.stride_w + kx * p.dilation_w - p.pad_left;
                let wp = a.w.add((ky * p.k_w + kx) * c + j);
                let xp = a.x.add((iy * p.in_w + ix) * c + j);
                // a loop, not `array::from_fn`, so it inlines (see gemm_avx2's `tile`)
                let mut w = [_mm512_setzero_ps(); V];
                for (v, lane) in w.iter_mut().enumerate() {
                    *lane = load::<MASKED>(wp.add(v * L), mask);
                }
                for (q, px) in acc.iter_mut().enumerate() {
                    for (v, lane) in px.iter_mut().enumerate() {
                        let xv = load::<MASKED>(xp.add(q * step + v * L), mask);
                        *lane = _mm512_fmadd_ps(xv, w[v], *lane);
                    }
                }
            }
        }
        let fast = epilogue(&mut acc, p.act);
        for (q, px) in acc.iter().enumerate() {
            let op = a.o.add(o + q * c + j);
            for (v, lane) in px.iter().enumerate() {
                if MASKED {
                    _mm512_mask_storeu_ps(op.add(v * L), mask, *lane);
                } else {
                    _mm512_storeu_ps(op.add(v * L), *lane);
                }
            }
        }
        fast
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    extern crate std;
    use super::*;
    use crate::conv::depthwise_portable;
    use crate::elementwise::Activation;
    use crate::gemm::tests::values;

    /// Against the portable twin: channel counts with 1-4 whole vectors and
    /// a partial one (every step of both tile kinds), borders, strides,
    /// dilation, asymmetric padding, kernels wider than the input, with and
    /// without bias, activations fused in registers and applied after.
    #[test]
    fn avx512_matches_portable_twin() {
        if !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        let acts = [
            Activation::None,
            Activation::Clip { min: 0.0, max: 6.0 },
            Activation::HardSwish,
            Activation::Sigmoid,
        ];
        let shapes = [
            // (in h, w), c, (k_h, k_w), (stride, dilation), [top, left, bottom, right]
            ((9, 11), 1, (3, 3), (1, 1), [1, 1, 1, 1]),
            ((7, 10), 16, (3, 3), (1, 1), [1, 1, 1, 1]),
            ((8, 9), 24, (3, 3), (2, 1), [0, 0, 1, 1]),
            ((5, 21), 24, (3, 3), (1, 1), [1, 1, 1, 1]),
            ((12, 12), 48, (5, 5), (1, 1), [2, 2, 2, 2]),
            ((6, 13), 72, (3, 3), (2, 1), [1, 1, 1, 1]),
            ((5, 14), 80, (7, 7), (1, 1), [3, 3, 3, 3]),
            ((6, 6), 100, (3, 5), (1, 2), [1, 4, 1, 3]),
            ((3, 2), 33, (3, 3), (1, 1), [1, 1, 1, 1]),
            ((10, 10), 65, (3, 3), (2, 2), [2, 2, 2, 2]),
            ((4, 20), 129, (1, 3), (1, 1), [0, 1, 0, 1]),
        ];
        for (case, &((h, w), c, (kh, kw), (st, dil), pad)) in shapes.iter().enumerate() {
            let out_h = (h + pad[0] + pad[2] - dil * (kh - 1) - 1) / st + 1;
            let out_w = (w + pad[1] + pad[3] - dil * (kw - 1) - 1) / st + 1;
            let p = Conv2d {
                in_h: h,
                in_w: w,
                in_c: c,
                out_h,
                out_w,
                out_c: c,
                k_h: kh,
                k_w: kw,
                stride_h: st,
                stride_w: st,
                dilation_h: dil,
                dilation_w: dil,
                pad_top: pad[0],
                pad_left: pad[1],
                groups: c,
                act: acts[case % acts.len()],
            };
            let x = values(h * w * c, case as u32);
            let wt = values(kh * kw * c, 50 + case as u32);
            let b = if case % 2 == 0 {
                values(c, 90 + case as u32)
            } else {
                std::vec::Vec::new()
            };
            let mut simd = std::vec![f32::NAN; out_h * out_w * c];
            let mut twin = std::vec![f32::NAN; out_h * out_w * c];
            // SAFETY: AVX-512F detected; the lengths are those
            // `depthwise_conv2d` asserts.
            unsafe { depthwise_avx512(&x, &wt, &b, &mut simd, &p) };
            depthwise_portable(&x, &wt, &b, &mut twin, &p);
            for (i, (s, t)) in simd.iter().zip(&twin).enumerate() {
                assert!((s - t).abs() <= 1e-5, "case {case} [{i}]: {s} vs {t}");
            }
        }
    }

    /// The sliding kernels against the general tiles, which run the same
    /// multiply-adds in the same order: bit for bit equal, NaN included (a
    /// NaN input pixel and every activation kind), for each kernel width
    /// and stride they cover, runs of 8, 4, 2 and 1 pixels, whole and
    /// partial channel blocks, with and without bias, tall and short
    /// kernels (`k_h` is not a constant of theirs).
    #[test]
    fn sliding_kernels_equal_the_general_tiles() {
        if !std::is_x86_feature_detected!("avx512f") {
            return;
        }
        let acts = [
            Activation::Clip { min: 0.0, max: 6.0 },
            Activation::None,
            Activation::HardSwish,
            Activation::Sigmoid,
            Activation::Relu,
        ];
        let mut case = 0;
        for (k, s) in [(3, 1), (3, 2), (5, 1), (5, 2), (7, 1), (7, 2)] {
            for &(h, w, c, kh) in &[
                (9, 27, 16, 0),
                (6, 22, 24, 0),
                (5, 19, 40, 1),
                (4, 12, 129, 0),
            ] {
                // kh 1: a 1 x K kernel; otherwise square
                let kh = if kh == 1 { 1 } else { k };
                let (pt, pl) = (kh / 2, k / 2);
                let out_h = (h + 2 * pt - kh) / s + 1;
                let out_w = (w + 2 * pl - k) / s + 1;
                let p = Conv2d {
                    in_h: h,
                    in_w: w,
                    in_c: c,
                    out_h,
                    out_w,
                    out_c: c,
                    k_h: kh,
                    k_w: k,
                    stride_h: s,
                    stride_w: s,
                    dilation_h: 1,
                    dilation_w: 1,
                    pad_top: pt,
                    pad_left: pl,
                    groups: c,
                    act: acts[case % acts.len()],
                };
                assert_eq!(sliding(&p), Some((k, s)));
                let mut x = values(h * w * c, 7 + case as u32);
                // one NaN in an interior pixel's last channel
                x[((h / 2) * w + w / 2) * c + c - 1] = f32::NAN;
                let wt = values(kh * k * c, 60 + case as u32);
                let b = if case % 2 == 0 {
                    values(c, 95 + case as u32)
                } else {
                    std::vec::Vec::new()
                };
                let mut slid = std::vec![0.5f32; out_h * out_w * c];
                let mut general = std::vec![-0.5f32; out_h * out_w * c];
                // SAFETY: AVX-512F detected; the lengths are those
                // `depthwise_conv2d` asserts; `Some` is `sliding(&p)`.
                unsafe {
                    depthwise_with(&x, &wt, &b, &mut slid, &p, Some((k, s)));
                    depthwise_with(&x, &wt, &b, &mut general, &p, None);
                }
                assert!(slid.iter().any(|v| v.is_nan()), "case {case}: no NaN");
                for (i, (a, g)) in slid.iter().zip(&general).enumerate() {
                    assert!(
                        a.to_bits() == g.to_bits() || (a.is_nan() && g.is_nan()),
                        "case {case} (k {k}, s {s}, c {c}) [{i}]: {a} vs {g}"
                    );
                }
                case += 1;
            }
        }
    }
}
