//! The AVX2+FMA depthwise convolution: channels in the 8 lanes of a `ymm`
//! register, 16 channels (two registers) of 4 output pixels along a row
//! accumulated over every tap where all taps are inside the input, 1 pixel
//! at the borders; the channels past the last multiple of 8 through masked
//! loads and stores. Twin of `conv::depthwise_conv2d` (same layout, bias then
//! taps in row-major order; fused multiply-adds round once).

use core::arch::x86_64::*;

use crate::conv::Conv2d;
use crate::elementwise::activate;
use crate::gemm_avx2::epilogue;

/// Output pixels along a row one interior tile covers.
const PIXELS: usize = 4;

/// [`crate::depthwise_conv2d`] with AVX2+FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA; `x`, `weights`, `bias` and `out` must
/// be as long as `depthwise_conv2d` demands (its `check`).
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn depthwise_avx2(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    p: &Conv2d,
) {
    let c = p.out_c;
    let (lo, hi) = p.interior();
    let zeros = [0.0f32; 32];
    let full = c / 8 * 8;
    // Lanes of the last, partial vector: all ones for the first c % 8.
    let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32((c - full) as i32), {
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
    });
    for oy in 0..p.out_h {
        let (ky0, ky1) = Conv2d::taps(oy, p.stride_h, p.dilation_h, p.pad_top, p.k_h, p.in_h);
        let mut ox = 0;
        while ox < p.out_w {
            // A run of 4 (or 2) interior pixels shares all taps; a border
            // pixel goes alone with twice the channels, so either way at
            // least 4 independent accumulator chains hide the FMA latency.
            let n = if ox >= lo && ox + PIXELS <= hi {
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
                let wide = if n == 1 { 32 } else { 16 };
                let step = if j + wide <= full {
                    wide
                } else if j + 16 <= full {
                    16
                } else {
                    8
                };
                // SAFETY: the caller guarantees AVX2+FMA and the lengths
                // `check` demands; `t` covers output pixels ox..ox+n < out_w
                // whose taps t.ky x t.kx are inside the input, and channels
                // j..j+step of c, read in full vectors only below `full`.
                fast = unsafe {
                    match (n, step, j < full) {
                        (PIXELS, 16, _) => tile::<PIXELS, 2, false>(a, p, t, j, o, mask),
                        (PIXELS, _, true) => tile::<PIXELS, 1, false>(a, p, t, j, o, mask),
                        (PIXELS, _, false) => tile::<PIXELS, 1, true>(a, p, t, j, o, mask),
                        (2, 16, _) => tile::<2, 2, false>(a, p, t, j, o, mask),
                        (2, _, true) => tile::<2, 1, false>(a, p, t, j, o, mask),
                        (2, _, false) => tile::<2, 1, true>(a, p, t, j, o, mask),
                        (_, 32, _) => tile::<1, 4, false>(a, p, t, j, o, mask),
                        (_, 16, _) => tile::<1, 2, false>(a, p, t, j, o, mask),
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

/// Loads 8 lanes, or only the masked ones (the others read as 0).
///
/// # Safety
/// AVX2; the 8 (or masked) lanes at `p` are readable.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn load<const MASKED: bool>(p: *const f32, mask: __m256i) -> __m256 {
    // SAFETY: the caller guarantees the lanes read are in bounds.
    unsafe {
        if MASKED {
            _mm256_maskload_ps(p, mask)
        } else {
            _mm256_loadu_ps(p)
        }
    }
}

/// `P` pixels from `t.ox` of row `t.oy`, channels `j..j + 8V` (the last
/// vector masked when `MASKED`), output at `a.o + o` (pixels `c` apart);
/// false when the activation is still to be applied.
///
/// # Safety
/// As `depthwise_avx2`'s body states for its calls.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const P: usize, const V: usize, const MASKED: bool>(
    a: Args,
    p: &Conv2d,
    t: Tile,
    j: usize,
    o: usize,
    mask: __m256i,
) -> bool {
    let c = p.out_c;
    // SAFETY (whole body): every pointer below stays inside the slices
    // `depthwise_avx2`'s caller vouched for: taps are inside the input, and
    // lanes past c are only touched through `mask`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); V]; P];
        for px in acc.iter_mut() {
            for (v, lane) in px.iter_mut().enumerate() {
                *lane = load::<MASKED>(a.b.add(v * 8), mask);
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
                let mut w = [_mm256_setzero_ps(); V];
                for (v, lane) in w.iter_mut().enumerate() {
                    *lane = load::<MASKED>(wp.add(v * 8), mask);
                }
                for (q, px) in acc.iter_mut().enumerate() {
                    for (v, lane) in px.iter_mut().enumerate() {
                        let xv = load::<MASKED>(xp.add(q * step + v * 8), mask);
                        *lane = _mm256_fmadd_ps(xv, w[v], *lane);
                    }
                }
            }
        }
        let fast = epilogue(&mut acc, p.act);
        for (q, px) in acc.iter().enumerate() {
            let op = a.o.add(o + q * c + j);
            for (v, lane) in px.iter().enumerate() {
                if MASKED {
                    _mm256_maskstore_ps(op.add(v * 8), mask, *lane);
                } else {
                    _mm256_storeu_ps(op.add(v * 8), *lane);
                }
            }
        }
        fast
    }
}
