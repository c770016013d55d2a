//! The aarch64 NEON microkernel of [`crate::gemm`]: a tile of 6 rows by a
//! 16-column panel in 24 `q` accumulators (4 lanes each; 8 rows by two
//! vectors for a last panel of at most 8 columns, 1 row by four vectors
//! for a single row such as a dense layer), one panel row loaded and one `x`
//! value broadcast (`ld1r`) per row and step, fused multiply-adds. NEON has
//! no masked loads: a last panel narrower than its vectors reads a partial
//! vector's spare lanes from the panel's next row where that row exists (the
//! lanes are computed and never stored) and through a zero-padded copy for
//! the rows at the panel's end. Twin of `gemm::gemm_portable` (same layout
//! and summation order; fused multiply-adds round once, the portable code
//! twice). Every aarch64 core has NEON, so builds for the target use it
//! unconditionally.

use core::arch::aarch64::*;

use crate::elementwise::{Activation, activate};
use crate::gemm::{GemmShape, MR, MR_NARROW, NARROW, PANEL, gemm_panels};

/// The product of [`crate::gemm::gemm`] with NEON.
///
/// # Safety
/// The slices must be as long as `gemm::check` demands.
pub(crate) unsafe fn gemm_neon(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    act: Activation,
) {
    let mut at = 0;
    for (c0, width) in gemm_panels(s.n) {
        let panel = &packed[at..at + (s.k + 1) * width];
        let mut r0 = 0;
        while r0 < s.m {
            let tall = if width > NARROW { MR } else { MR_NARROW };
            let rows = tall.min(s.m - r0);
            let t = Tile {
                r0,
                rows,
                c0,
                cols: width,
            };
            // SAFETY (each call): the caller guarantees the lengths
            // `gemm::check` asks for, which cover every row of this tile and
            // the whole panel, `(k + 1) * width` values; `tile` reads a
            // partial vector past `width` only where the panel goes on.
            unsafe {
                match (rows, width) {
                    (1, PANEL) => tile::<1, 4, false>(x, panel, out, s, t, act),
                    (1, _) => tile::<1, 4, true>(x, panel, out, s, t, act),
                    (_, PANEL) => tile::<MR, 4, false>(x, panel, out, s, t, act),
                    (_, NARROW) => tile::<MR_NARROW, 2, false>(x, panel, out, s, t, act),
                    (_, w) if w < NARROW => tile::<MR_NARROW, 2, true>(x, panel, out, s, t, act),
                    _ => tile::<MR, 4, true>(x, panel, out, s, t, act),
                }
            }
            r0 += rows;
        }
        at += (s.k + 1) * width;
    }
}

/// Where one tile sits: rows `r0..r0 + rows`, the panel's `cols` columns
/// from `c0`.
#[derive(Clone, Copy)]
struct Tile {
    r0: usize,
    rows: usize,
    c0: usize,
    cols: usize,
}

/// `R` rows by a panel of `V` 4-lane vectors, `t.cols` columns wide (`4V`,
/// or fewer when `PART`: then rows are `t.cols` apart and the vectors past
/// `t.cols` hold lanes that are never stored). Rows past `t.rows` read the
/// last real row and are not stored.
///
/// # Safety
/// `panel` holds `(k + 1) * t.cols` values; `x` holds rows
/// `t.r0 .. t.r0 + t.rows` of `k` values `x_stride` apart, `out` the same
/// rows of `out_stride`, with `t.c0 + t.cols <= out_stride`.
#[inline]
unsafe fn tile<const R: usize, const V: usize, const PART: bool>(
    x: &[f32],
    panel: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    t: Tile,
    act: Activation,
) {
    let w = if PART { t.cols } else { V * 4 };
    debug_assert!(t.cols <= V * 4 && (PART || t.cols == V * 4));
    debug_assert!(panel.len() >= (s.k + 1) * w && t.rows >= 1 && t.rows <= R);
    debug_assert!(x.len() >= (t.r0 + t.rows - 1) * s.x_stride + s.k);
    let xp: [*const f32; R] = core::array::from_fn(|r| {
        // SAFETY: row r0 + min(r, rows - 1) is a real row, inside `x`.
        unsafe { x.as_ptr().add((t.r0 + r.min(t.rows - 1)) * s.x_stride) }
    });
    let pp = panel.as_ptr();
    let len = (s.k + 1) * w;
    // Vectors that hold columns, and the panel rows whose last such vector
    // may be read whole (its spare lanes are the next row's first values).
    let used = w.div_ceil(4).min(V);
    let whole_rows = if PART {
        (len + w).saturating_sub(used * 4) / w
    } else {
        s.k + 1
    };
    let row = |i: usize| -> [float32x4_t; V] {
        // SAFETY: a vector v < used of row i starts at i * w + 4v < len; it
        // is read whole only when it ends inside the panel (full panels
        // always; `i < whole_rows` for the last vector of a partial one),
        // else its real lanes are copied to a zeroed buffer. Vectors from
        // `used` on read nothing.
        unsafe {
            let mut lanes = [vdupq_n_f32(0.0); V];
            for (v, lane) in lanes.iter_mut().enumerate() {
                let p = pp.add(i * w + v * 4);
                if !PART || v + 1 < used || (v + 1 == used && i < whole_rows) {
                    *lane = vld1q_f32(p);
                } else if v + 1 == used {
                    let mut buf = [0.0f32; 4];
                    core::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), w - v * 4);
                    *lane = vld1q_f32(buf.as_ptr());
                }
            }
            lanes
        }
    };
    let mut acc = [row(0); R];
    for i in 0..s.k {
        let wr = row(i + 1);
        for r in 0..R {
            // SAFETY: i < k, so x row r's element i is in bounds; the
            // multiply-adds compute on registers (NEON is always there).
            unsafe {
                let xv = vld1q_dup_f32(xp[r].add(i));
                for v in 0..V {
                    acc[r][v] = vfmaq_f32(acc[r][v], xv, wr[v]);
                }
            }
        }
    }
    let fast = epilogue(&mut acc, act);
    for (r, a) in acc.iter().enumerate().take(t.rows) {
        let o = &mut out[(t.r0 + r) * s.out_stride + t.c0..][..t.cols];
        if !PART {
            for (v, lane) in a.iter().enumerate() {
                // SAFETY: `o` has `w` = 4V values, so lanes 4v..4v+4 fit.
                unsafe { vst1q_f32(o.as_mut_ptr().add(v * 4), *lane) };
            }
        } else {
            let mut buf = [0.0f32; 16];
            for (v, lane) in a.iter().enumerate() {
                // SAFETY: `buf` holds 16 >= 4V values.
                unsafe { vst1q_f32(buf.as_mut_ptr().add(v * 4), *lane) };
            }
            o.copy_from_slice(&buf[..t.cols]);
        }
        if !fast {
            activate(o, act);
        }
    }
}

/// Applies the activations that have a vector form to the accumulators,
/// with the portable `Activation::apply`'s results (NaN stays NaN); false for
/// the others (applied afterwards to the stored values).
#[inline]
pub(crate) fn epilogue<const R: usize, const V: usize>(
    acc: &mut [[float32x4_t; V]; R],
    act: Activation,
) -> bool {
    // SAFETY: NEON is part of every aarch64 target; these intrinsics only
    // compute on registers.
    unsafe {
        // FMAX/FMIN (not the maxNum forms) give NaN for a NaN operand, as the
        // portable kernels and onnxruntime do
        let z = vdupq_n_f32(0.0);
        match act {
            Activation::None => {}
            Activation::Relu => {
                for a in acc.iter_mut().flatten() {
                    *a = vmaxq_f32(*a, z);
                }
            }
            Activation::Clip { min, max } => {
                let (lo, hi) = (vdupq_n_f32(min), vdupq_n_f32(max));
                for a in acc.iter_mut().flatten() {
                    *a = vminq_f32(vmaxq_f32(*a, lo), hi);
                }
            }
            Activation::HardSwish => {
                let (three, six) = (vdupq_n_f32(3.0), vdupq_n_f32(6.0));
                let sixth = vdupq_n_f32(1.0 / 6.0);
                for a in acc.iter_mut().flatten() {
                    let c = vminq_f32(vmaxq_f32(vaddq_f32(*a, three), z), six);
                    *a = vmulq_f32(vmulq_f32(*a, c), sixth);
                }
            }
            _ => return false,
        }
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

    const ACTS: [Activation; 5] = [
        Activation::None,
        Activation::Relu,
        Activation::Clip {
            min: -0.5,
            max: 0.7,
        },
        Activation::HardSwish,
        Activation::Sigmoid,
    ];

    /// The NEON kernel against its portable twin and the f64 product, on the
    /// shared shapes plus the awkward ones: last panels of 1, 3, 5, 9 and 15
    /// columns (partial vectors, read past the row or through the copy), k
    /// of 1 and 2 (a panel too short to read past its last row), one row
    /// (the dense tile) and leftover rows of every count.
    #[test]
    fn neon_matches_portable_twin_and_naive() {
        let extra = [
            (1, 1, 3),
            (1, 2, 5),
            (3, 1, 1),
            (7, 2, 9),
            (1, 1280, 10),
            (1, 17, 31),
            (9, 3, 15),
            (13, 64, 33),
            (5, 1, 7),
            (49, 24, 10),
        ];
        for (t, &(m, k, n)) in SHAPES.iter().chain(&extra).enumerate() {
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
            for act in ACTS {
                let want: Vec<f32> = naive(&x, &w, &b, m, k, n)
                    .iter()
                    .map(|&v| act.apply(v))
                    .collect();
                let mut simd = std::vec![f32::NAN; m * n];
                let mut twin = std::vec![f32::NAN; m * n];
                // SAFETY: the slices have the lengths `check` asks for.
                unsafe { gemm_neon(&x, &p, &mut simd, &s, act) };
                gemm_portable(&x, &p, &mut twin, &s, act);
                for i in 0..m * n {
                    let tol = 1e-5 * (1.0 + (k as f32).sqrt());
                    assert!(
                        (simd[i] - twin[i]).abs() <= tol,
                        "{m}x{k}x{n} {act:?} [{i}]: {} vs {}",
                        simd[i],
                        twin[i]
                    );
                    assert!((simd[i] - want[i]).abs() <= tol, "{m}x{k}x{n} [{i}]");
                }
            }
        }
    }

    #[test]
    fn strided_rows_keep_their_gaps() {
        // x rows 7 apart (k = 5), out rows 13 apart (n = 11): the gaps stay.
        let (m, k, n) = (8, 5, 11);
        let x = values(m * 7, 1);
        let w = values(k * n, 2);
        let s = GemmShape {
            m,
            k,
            n,
            x_stride: 7,
            out_stride: 13,
            add: false,
        };
        let mut simd = std::vec![-9.0; m * 13];
        let mut twin = simd.clone();
        let p = packed(&w, &[], k, n);
        // SAFETY: lengths as `check` asks for strided rows.
        unsafe { gemm_neon(&x, &p, &mut simd, &s, Activation::None) };
        gemm_portable(&x, &p, &mut twin, &s, Activation::None);
        for (i, (a, b)) in simd.iter().zip(&twin).enumerate() {
            assert!((a - b).abs() <= 1e-5, "[{i}] {a} vs {b}");
            if i % 13 >= n {
                assert_eq!(*a, -9.0, "gap [{i}] written");
            }
        }
    }

    #[test]
    fn neon_activations_equal_the_portable_ones() {
        // k = 1 and no bias: the accumulator is x * w exactly, so the
        // activation is the only difference and must be none.
        let (m, k, n) = (6, 1, 16);
        let mut x = values(m, 5).iter().map(|v| v * 8.0).collect::<Vec<_>>();
        let p = packed(&std::vec![1.0; n], &[], k, n);
        // a NaN row: the activation must keep it NaN, as the portable twin does
        x[1] = f32::NAN;
        let s = GemmShape {
            m,
            k,
            n,
            x_stride: k,
            out_stride: n,
            add: false,
        };
        for act in ACTS {
            let mut simd = std::vec![0.0; m * n];
            let mut twin = std::vec![0.0; m * n];
            // SAFETY: as above.
            unsafe { gemm_neon(&x, &p, &mut simd, &s, act) };
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
