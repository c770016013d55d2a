//! The AVX2+FMA microkernel of [`crate::gemm`]: a tile of 6 rows by a
//! 16-column panel in 12 `ymm` accumulators (8 rows by one vector for a
//! last panel of at most 8 columns), one panel row loaded and one `x` value
//! broadcast per row and step; a last panel narrower than its vectors is
//! read with masked loads. Twin of `gemm::gemm_portable` (same layout and
//! summation order).

use core::arch::x86_64::*;

use crate::elementwise::{Activation, activate};
use crate::gemm::{GemmShape, MR, MR_NARROW, NARROW, PANEL, gemm_panels};

/// The product of [`crate::gemm::gemm`] with AVX2+FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA, and the slices must be as long as
/// `gemm::check` demands.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn gemm_avx2(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    act: Activation,
) {
    let mut at = 0;
    for (c0, width) in gemm_panels(s.n) {
        let panel = &packed[at..at + (s.k + 1) * width];
        // Lanes of the last vector of a row that hold columns: all for a
        // panel of whole vectors, the first `width % 8` otherwise.
        let lanes = match width % 8 {
            0 => 8,
            l => l,
        };
        let mask = _mm256_cmpgt_epi32(
            _mm256_set1_epi32(lanes as i32),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        );
        let mut r0 = 0;
        while r0 < s.m {
            let rows = if width > NARROW { MR } else { MR_NARROW }.min(s.m - r0);
            let t = Tile {
                r0,
                rows,
                c0,
                cols: width,
                mask,
            };
            // SAFETY (each call): the caller guarantees AVX2+FMA and the
            // lengths `gemm::check` asks for, which cover every row of this
            // tile and the whole panel, `(k + 1) * width` values; a last
            // vector past `width` is read through `mask`.
            unsafe {
                match width {
                    PANEL => tile::<MR, 2, false>(x, panel, out, s, t, act),
                    NARROW => tile::<MR_NARROW, 1, false>(x, panel, out, s, t, act),
                    w if w < NARROW => tile::<MR_NARROW, 1, true>(x, panel, out, s, t, act),
                    _ => tile::<MR, 2, true>(x, panel, out, s, t, act),
                }
            }
            r0 += rows;
        }
        at += (s.k + 1) * width;
    }
}

/// Where one tile sits: rows `r0..r0 + rows`, the panel's `cols` columns
/// from `c0`, and the lanes of its last vector that hold columns.
#[derive(Clone, Copy)]
struct Tile {
    r0: usize,
    rows: usize,
    c0: usize,
    cols: usize,
    mask: __m256i,
}

/// Loads 8 lanes, or only those of `mask` (the others read as 0).
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

/// `R` rows by a panel of `V` vectors, `t.cols` columns wide (`8V`, or
/// fewer when `MASKED`: then rows are `t.cols` apart and each row's last
/// vector is read through `t.mask`). Rows past `t.rows` read the last real
/// row and are not stored.
///
/// # Safety
/// AVX2+FMA present; `panel` holds `(k + 1) * t.cols` values; `x` holds
/// rows `t.r0 .. t.r0 + t.rows` of `k` values `x_stride` apart, `out` the
/// same rows of `out_stride`, with `t.c0 + t.cols <= n`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const R: usize, const V: usize, const MASKED: bool>(
    x: &[f32],
    panel: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    t: Tile,
    act: Activation,
) {
    let w = if MASKED { t.cols } else { V * 8 };
    debug_assert!(t.cols <= V * 8 && (MASKED || t.cols == V * 8));
    debug_assert!(panel.len() >= (s.k + 1) * w && t.rows >= 1 && t.rows <= R);
    debug_assert!(x.len() >= (t.r0 + t.rows - 1) * s.x_stride + s.k);
    let xp: [*const f32; R] = core::array::from_fn(|r| {
        // SAFETY: row r0 + min(r, rows - 1) is a real row, inside `x`.
        unsafe { x.as_ptr().add((t.r0 + r.min(t.rows - 1)) * s.x_stride) }
    });
    let pp = panel.as_ptr();
    // A loop, not `core::array::from_fn`: a closure passed to a function
    // without this function's target features is not inlined when the build
    // detects AVX2 at run time, and a call per load costs a fifth of the time.
    let row = |i: usize| -> [__m256; V] {
        let mut lanes = [_mm256_setzero_ps(); V];
        for (v, lane) in lanes.iter_mut().enumerate() {
            // SAFETY: vector v of row i (0 the bias) starts at i * w + 8v; all
            // of it is in the panel but for a masked last vector, read through
            // the mask.
            *lane = unsafe {
                if v + 1 == V {
                    load::<MASKED>(pp.add(i * w + v * 8), t.mask)
                } else {
                    _mm256_loadu_ps(pp.add(i * w + v * 8))
                }
            };
        }
        lanes
    };
    let mut acc = [row(0); R];
    for i in 0..s.k {
        let wr = row(i + 1);
        for r in 0..R {
            // SAFETY: i < k, so x row r's element i is in bounds.
            let xv = unsafe { _mm256_broadcast_ss(&*xp[r].add(i)) };
            for v in 0..V {
                acc[r][v] = _mm256_fmadd_ps(xv, wr[v], acc[r][v]);
            }
        }
    }
    let fast = epilogue(&mut acc, act);
    for (r, a) in acc.iter().enumerate().take(t.rows) {
        let o = &mut out[(t.r0 + r) * s.out_stride + t.c0..][..t.cols];
        if !MASKED {
            for (v, lane) in a.iter().enumerate() {
                // SAFETY: `o` has `w` = 8V values, so lanes v*8..v*8+8 fit.
                unsafe { _mm256_storeu_ps(o.as_mut_ptr().add(v * 8), *lane) };
            }
        } else {
            let mut buf = [0.0f32; 16];
            for (v, lane) in a.iter().enumerate() {
                // SAFETY: `buf` holds 16 >= 8V values.
                unsafe { _mm256_storeu_ps(buf.as_mut_ptr().add(v * 8), *lane) };
            }
            o.copy_from_slice(&buf[..t.cols]);
        }
        if !fast {
            activate(o, act);
        }
    }
}

/// [`crate::dense`] compiled with AVX2 and FMA enabled: the portable loop,
/// vectorised 8 lanes wide, with the portable rounding (a multiply then an
/// add; Rust never fuses them on its own).
///
/// # Safety
/// The CPU must support AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn dense_avx2(
    x: &[f32],
    weights: &[f32],
    bias: &[f32],
    out: &mut [f32],
    act: Activation,
) {
    crate::conv::dense_portable(x, weights, bias, out, act)
}

/// Applies the activations that have a vector form to the accumulators, in
/// the portable `Activation::apply`'s operation order; false for the others
/// (applied afterwards to the stored values).
#[target_feature(enable = "avx2,fma")]
#[inline]
pub(crate) fn epilogue<const R: usize, const V: usize>(
    acc: &mut [[__m256; V]; R],
    act: Activation,
) -> bool {
    // maxps/minps answer their second operand when either is NaN: the accumulator
    // goes second, so a NaN stays NaN as in the portable kernels and onnxruntime.
    let z = _mm256_setzero_ps();
    match act {
        Activation::None => {}
        Activation::Relu => {
            for a in acc.iter_mut().flatten() {
                *a = _mm256_max_ps(z, *a);
            }
        }
        Activation::Clip { min, max } => {
            let (lo, hi) = (_mm256_set1_ps(min), _mm256_set1_ps(max));
            for a in acc.iter_mut().flatten() {
                *a = _mm256_min_ps(hi, _mm256_max_ps(lo, *a));
            }
        }
        Activation::HardSwish => {
            let (three, six) = (_mm256_set1_ps(3.0), _mm256_set1_ps(6.0));
            let sixth = _mm256_set1_ps(1.0 / 6.0);
            for a in acc.iter_mut().flatten() {
                let c = _mm256_min_ps(six, _mm256_max_ps(z, _mm256_add_ps(*a, three)));
                *a = _mm256_mul_ps(_mm256_mul_ps(*a, c), sixth);
            }
        }
        _ => return false,
    }
    true
}

#[cfg(all(test, not(miri)))]
mod tests {
    extern crate std;
    use super::*;
    use crate::gemm::gemm_portable;
    use crate::gemm::tests::{SHAPES, naive, packed, values};
    use std::vec::Vec;

    fn have_avx2() -> bool {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }

    #[test]
    fn avx2_matches_portable_twin_and_naive() {
        if !have_avx2() {
            return;
        }
        let acts = [
            Activation::None,
            Activation::Relu,
            Activation::Clip {
                min: -0.5,
                max: 0.7,
            },
            Activation::HardSwish,
            Activation::Sigmoid,
        ];
        for (t, &(m, k, n)) in SHAPES.iter().enumerate() {
            let x = values(m * k, t as u32);
            let w = values(k * n, 100 + t as u32);
            let b = if t % 2 == 0 {
                values(n, 200 + t as u32)
            } else {
                Vec::new()
            };
            let p = packed(&w, &b, k, n);
            let s = GemmShape {
                m,
                k,
                n,
                x_stride: k,
                out_stride: n,
                add: false,
            };
            let act = acts[t % acts.len()];
            let want: Vec<f32> = naive(&x, &w, &b, m, k, n)
                .iter()
                .map(|&v| act.apply(v))
                .collect();
            let mut simd = std::vec![f32::NAN; m * n];
            let mut twin = std::vec![f32::NAN; m * n];
            // SAFETY: AVX2 and FMA were detected; the slices have the lengths
            // `check` asks for.
            unsafe { gemm_avx2(&x, &p, &mut simd, &s, act) };
            gemm_portable(&x, &p, &mut twin, &s, act);
            for i in 0..m * n {
                assert!(
                    (simd[i] - twin[i]).abs() <= 1e-5,
                    "{m}x{k}x{n} [{i}]: {} vs {}",
                    simd[i],
                    twin[i]
                );
                assert!((simd[i] - want[i]).abs() <= 1e-5, "{m}x{k}x{n} [{i}]");
            }
        }
    }

    #[test]
    fn avx2_activations_equal_the_portable_ones() {
        if !have_avx2() {
            return;
        }
        // k = 1 and a bias of zero: the accumulator is x * w exactly, so the
        // activation is the only difference and must be none.
        let (m, k, n) = (6, 1, 16);
        let mut x = values(m, 5).iter().map(|v| v * 8.0).collect::<Vec<_>>();
        let w = std::vec![1.0; n];
        // a NaN row: the activation must keep it NaN, as the portable twin does
        x[1] = f32::NAN;
        let p = packed(&w, &[], k, n);
        let s = GemmShape {
            m,
            k,
            n,
            x_stride: k,
            out_stride: n,
            add: false,
        };
        for act in [
            Activation::Relu,
            Activation::Clip {
                min: -1.0,
                max: 2.0,
            },
            Activation::HardSwish,
        ] {
            let mut simd = std::vec![0.0; m * n];
            let mut twin = std::vec![0.0; m * n];
            // SAFETY: as above.
            unsafe { gemm_avx2(&x, &p, &mut simd, &s, act) };
            gemm_portable(&x, &p, &mut twin, &s, act);
            let same = |a: &f32, b: &f32| a == b || (a.is_nan() && b.is_nan());
            assert!(
                simd.iter().zip(&twin).all(|(a, b)| same(a, b)),
                "{act:?}: {simd:?} vs {twin:?}"
            );
            assert!(simd[n..2 * n].iter().all(|v| v.is_nan()), "{act:?}");
        }
    }
}
