//! The aarch64 NEON depthwise convolution: channels in the 4 lanes of a `q`
//! register, 16 channels (four registers) of 4 output pixels along a row
//! accumulated in registers over every tap where all taps are inside the
//! input (runs of 2, then single pixels, at the borders), blocks of 4
//! channels after the last 16, and the `c % 4` channels past the last whole
//! vector in scalar code (NEON has no masked loads). Twin of
//! `conv::depthwise_portable` (same layout, bias then taps in row-major
//! order; the vector lanes use fused multiply-adds, which round once; the
//! scalar channels are the portable operations exactly).

use core::arch::aarch64::*;

use crate::conv::Conv2d;
use crate::elementwise::activate;
use crate::gemm_neon::epilogue;

/// Output pixels along a row one interior tile covers.
const PIXELS: usize = 4;
/// Channels of the widest block: four 4-lane vectors.
const WIDE: usize = 16;

/// [`crate::depthwise_conv2d`] with NEON.
///
/// # Safety
/// `x`, `weights`, `bias` and `out` must be as long as `depthwise_conv2d`
/// demands (its asserts).
#[inline(never)]
pub(crate) unsafe fn depthwise_neon(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    p: &Conv2d,
) {
    let c = p.out_c;
    let (lo, hi) = p.interior();
    let zeros = [0.0f32; WIDE];
    let full = c / 4 * 4;
    for oy in 0..p.out_h {
        let (ky0, ky1) = Conv2d::taps(oy, p.stride_h, p.dilation_h, p.pad_top, p.k_h, p.in_h);
        let mut ox = 0;
        while ox < p.out_w {
            // A run of 4 (or 2) interior pixels shares all taps; a border
            // pixel goes alone.
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
            while j < full {
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
                let step = if j + WIDE <= full { WIDE } else { 4 };
                // SAFETY: the caller guarantees the lengths `depthwise_conv2d`
                // asserts; `t` covers output pixels ox..ox+n <= out_w whose
                // taps t.ky x t.kx are inside the input, and channels
                // j..j+step <= full <= c, whole vectors.
                fast = unsafe {
                    match (n, step) {
                        (PIXELS, WIDE) => tile::<PIXELS, 4>(a, p, t, j, o),
                        (PIXELS, _) => tile::<PIXELS, 1>(a, p, t, j, o),
                        (2, WIDE) => tile::<2, 4>(a, p, t, j, o),
                        (2, _) => tile::<2, 1>(a, p, t, j, o),
                        (_, WIDE) => tile::<1, 4>(a, p, t, j, o),
                        _ => tile::<1, 1>(a, p, t, j, o),
                    }
                } && fast;
                j += step;
            }
            for q in 0..n {
                let px = o + q * c;
                if !fast {
                    activate(&mut out[px..px + full], p.act);
                }
                if full < c {
                    tail(x, weights, bias, &mut out[px + full..px + c], p, t, q, full);
                }
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

/// `P` pixels from `t.ox` of row `t.oy`, channels `j..j + 4V`, output at
/// `a.o + o` (pixels `c` apart); false when the activation is still to be
/// applied.
///
/// # Safety
/// As `depthwise_neon`'s body states for its calls.
#[inline]
unsafe fn tile<const P: usize, const V: usize>(
    a: Args,
    p: &Conv2d,
    t: Tile,
    j: usize,
    o: usize,
) -> bool {
    let c = p.out_c;
    // SAFETY (whole body): every pointer below stays inside the slices
    // `depthwise_neon`'s caller vouched for: taps are inside the input and
    // channels j..j+4V are whole vectors below c.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); V]; P];
        for v in 0..V {
            let b = vld1q_f32(a.b.add(v * 4));
            for px in acc.iter_mut() {
                px[v] = b;
            }
        }
        let step = p.stride_w * c;
        for ky in t.ky.0..t.ky.1 {
            let iy = t.oy * p.stride_h + ky * p.dilation_h - p.pad_top;
            for kx in t.kx.0..t.kx.1 {
                let ix = t.ox * p.stride_w + kx * p.dilation_w - p.pad_left;
                let wp = a.w.add((ky * p.k_w + kx) * c + j);
                let xp = a.x.add((iy * p.in_w + ix) * c + j);
                let mut w = [vdupq_n_f32(0.0); V];
                for (v, lane) in w.iter_mut().enumerate() {
                    *lane = vld1q_f32(wp.add(v * 4));
                }
                for (q, px) in acc.iter_mut().enumerate() {
                    for (v, lane) in px.iter_mut().enumerate() {
                        let xv = vld1q_f32(xp.add(q * step + v * 4));
                        *lane = vfmaq_f32(*lane, xv, w[v]);
                    }
                }
            }
        }
        let fast = epilogue(&mut acc, p.act);
        for (q, px) in acc.iter().enumerate() {
            let op = a.o.add(o + q * c + j);
            for (v, lane) in px.iter().enumerate() {
                vst1q_f32(op.add(v * 4), *lane);
            }
        }
        fast
    }
}

/// Channels `full..c` of pixel `t.ox + q` into `out` (those channels of it),
/// activation applied: the portable loop's operations, one channel at a time.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn tail(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    p: &Conv2d,
    t: Tile,
    q: usize,
    full: usize,
) {
    let c = p.out_c;
    let ox = t.ox + q;
    for (ch, o) in (full..c).zip(out.iter_mut()) {
        let mut a = if bias.is_empty() { 0.0 } else { bias[ch] };
        for ky in t.ky.0..t.ky.1 {
            let iy = t.oy * p.stride_h + ky * p.dilation_h - p.pad_top;
            for kx in t.kx.0..t.kx.1 {
                let ix = ox * p.stride_w + kx * p.dilation_w - p.pad_left;
                a += x[(iy * p.in_w + ix) * c + ch] * weights[(ky * p.k_w + kx) * c + ch];
            }
        }
        *o = p.act.apply(a);
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    extern crate std;
    use super::*;
    use crate::conv::depthwise_portable;
    use crate::elementwise::Activation;
    use crate::gemm::tests::values;

    /// A depthwise layer on `h` x `w` x `c` with a square `k`, stride `s`
    /// and padding `pad` on every side.
    fn layer(h: usize, w: usize, c: usize, k: usize, s: usize, pad: usize) -> Conv2d {
        Conv2d {
            in_h: h,
            in_w: w,
            in_c: c,
            out_h: (h + 2 * pad - k) / s + 1,
            out_w: (w + 2 * pad - k) / s + 1,
            out_c: c,
            k_h: k,
            k_w: k,
            stride_h: s,
            stride_w: s,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad,
            pad_left: pad,
            groups: c,
            act: Activation::None,
        }
    }

    /// NEON against the portable twin: channel counts with no whole vector
    /// (1, 3), a scalar tail after 16-channel blocks (19, 35), 4-channel
    /// blocks (8, 12, 28), stride 2, padding wider than the kernel's reach,
    /// rows too narrow for an interior run, dilation, with and without a
    /// bias, every activation; output lanes past the image stay untouched.
    #[test]
    fn neon_matches_portable_twin_on_awkward_shapes() {
        let mut cases = std::vec![
            layer(7, 9, 1, 3, 1, 1),
            layer(8, 8, 3, 3, 2, 1),
            layer(9, 11, 19, 3, 1, 1),
            layer(10, 13, 35, 5, 2, 2),
            layer(6, 6, 8, 3, 1, 0),
            layer(5, 17, 12, 7, 1, 3),
            layer(3, 2, 28, 3, 1, 1),
            layer(12, 12, 48, 3, 2, 1),
            layer(4, 5, 7, 5, 1, 4),
        ];
        cases.push(Conv2d {
            dilation_h: 2,
            dilation_w: 2,
            out_h: 6,
            out_w: 7,
            ..layer(10, 11, 21, 3, 1, 2)
        });
        let acts = [
            Activation::None,
            Activation::Relu,
            Activation::Clip { min: 0.0, max: 6.0 },
            Activation::HardSwish,
            Activation::Sigmoid,
        ];
        for (n, base) in cases.iter().enumerate() {
            let c = base.out_c;
            let x = values(base.in_h * base.in_w * c, n as u32);
            let w = values(base.k_h * base.k_w * c, 50 + n as u32);
            let len = base.out_h * base.out_w * c;
            for (a, &act) in acts.iter().enumerate() {
                let p = Conv2d { act, ..*base };
                let b = if (n + a) % 2 == 0 {
                    values(c, 90 + n as u32)
                } else {
                    std::vec::Vec::new()
                };
                let mut simd = std::vec![-7.0; len + 5];
                let mut twin = std::vec![-7.0; len + 5];
                // SAFETY: the slices are as long as `depthwise_conv2d` asserts.
                unsafe { depthwise_neon(&x, &w, &b, &mut simd, &p) };
                depthwise_portable(&x, &w, &b, &mut twin, &p);
                for (i, (s, t)) in simd.iter().zip(&twin).enumerate() {
                    assert!(
                        (s - t).abs() <= 1e-5,
                        "case {n} {act:?} [{i}] (channel {}): {s} vs {t}",
                        i % c
                    );
                }
                assert_eq!(simd[len..], [-7.0; 5], "case {n}: written past the output");
            }
        }
    }
}
