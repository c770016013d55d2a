//! The AVX-512F microkernel of [`crate::gemm`]: one 16-column panel is one
//! `zmm` vector, and a tile covers a group of up to three consecutive
//! panels (48 columns) by 8 rows, or two or one panel by 12 rows (24 or 12
//! accumulators of the 32 registers), 4 rows when at most 4 are left. Per
//! step it loads one row of each panel and broadcasts one `x` value per
//! row. A last panel of 9 to 15 columns is read and written through a
//! `__mmask16` of its columns; one of at most 8 goes to `gemm_avx2`'s
//! 8-row tile of one 8-lane vector. Twin of `gemm::gemm_portable` (same
//! packed layout and summation order: bias, then `k` ascending, one fused
//! multiply-add per step, as `gemm_avx2` does).

use core::arch::x86_64::*;

use crate::elementwise::{Activation, activate};
use crate::gemm::{GemmShape, NARROW, PANEL};
use crate::gemm_avx2::gemm_avx2;

/// The product of [`crate::gemm::gemm`] with AVX-512F (a last panel of at
/// most 8 columns with the AVX2 kernel).
///
/// # Safety
/// The CPU must support AVX-512F, AVX2 and FMA, and the slices must be as
/// long as `gemm::check` demands.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn gemm_avx512(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    act: Activation,
) {
    let full = s.n / PANEL;
    let rest = s.n % PANEL;
    if rest > 0 && rest <= NARROW {
        // A last panel of at most 8 columns: the AVX2 kernel's 8-row tile of
        // one 8-lane vector, unmasked at 8 (half a `zmm` through a mask
        // measured 1.14x the AVX2 time on 2304 px x 16 -> 8).
        let at = full * (s.k + 1) * PANEL;
        let c0 = full * PANEL;
        let last = GemmShape { n: rest, ..*s };
        // SAFETY: the caller guarantees AVX2 and FMA; the last panel is
        // packed alone at `at` as `pack_gemm` of `rest` columns would, and
        // `out[c0..]` holds rows of `out_stride` with `rest` columns each.
        unsafe { gemm_avx2(x, &packed[at..], &mut out[c0..], &last, act) };
        if full == 0 {
            return;
        }
    }
    let rest = if rest <= NARROW { 0 } else { rest };
    let panels = full + usize::from(rest > 0);
    // Columns of the last panel's vector that exist: all 16 when every
    // panel is full.
    let mask: __mmask16 = if rest == 0 {
        0xffff
    } else {
        (1u16 << rest) - 1
    };
    let mut p = 0;
    while p < panels {
        let group = (panels - p).min(3);
        let masked = rest > 0 && p + group == panels;
        let cols = group * PANEL - if masked { PANEL - rest } else { 0 };
        let at = p * (s.k + 1) * PANEL;
        let mut r0 = 0;
        while r0 < s.m {
            let left = s.m - r0;
            let big = if group == 3 { 8 } else { 12 };
            let rows = if left <= 4 { left } else { left.min(big) };
            let t = Tile {
                r0,
                rows,
                c0: p * PANEL,
                cols,
                mask,
            };
            let g = &packed[at..];
            // SAFETY (each call): the caller guarantees AVX-512F and the
            // lengths `gemm::check` asks for: rows r0..r0 + rows of `x` and
            // `out`, and the group's panels, `(k + 1) * 16` values each but
            // a masked last one of `(k + 1) * rest`, read through `mask`.
            unsafe {
                match (group, masked, rows <= 4) {
                    (3, false, false) => tile::<8, 3, false>(x, g, out, s, t, act),
                    (3, true, false) => tile::<8, 3, true>(x, g, out, s, t, act),
                    (2, false, false) => tile::<12, 2, false>(x, g, out, s, t, act),
                    (2, true, false) => tile::<12, 2, true>(x, g, out, s, t, act),
                    (1, false, false) => tile::<12, 1, false>(x, g, out, s, t, act),
                    (1, true, false) => tile::<12, 1, true>(x, g, out, s, t, act),
                    (3, false, true) => tile::<4, 3, false>(x, g, out, s, t, act),
                    (3, true, true) => tile::<4, 3, true>(x, g, out, s, t, act),
                    (2, false, true) => tile::<4, 2, false>(x, g, out, s, t, act),
                    (2, true, true) => tile::<4, 2, true>(x, g, out, s, t, act),
                    (_, false, true) => tile::<4, 1, false>(x, g, out, s, t, act),
                    (_, true, _) => tile::<4, 1, true>(x, g, out, s, t, act),
                    (_, false, false) => unreachable!("groups are 1 to 3 panels"),
                }
            }
            r0 += rows;
        }
        p += group;
    }
}

/// Where one tile sits: rows `r0..r0 + rows`, `cols` columns from `c0`
/// (the group's panels), and the columns of the last panel's vector.
#[derive(Clone, Copy)]
struct Tile {
    r0: usize,
    rows: usize,
    c0: usize,
    cols: usize,
    mask: __mmask16,
}

/// `R` rows by a group of `V` panels starting at `group[0]`, all 16 wide
/// but the last when `MASKED` (then `t.cols - 16 (V - 1)` wide, its rows
/// that far apart, read and written through `t.mask`). Rows past `t.rows`
/// read the last real row and are not stored.
///
/// # Safety
/// AVX-512F present; `group` holds the `V` panels, `(k + 1)` rows each;
/// `x` holds rows `t.r0 .. t.r0 + t.rows` of `k` values `x_stride` apart,
/// `out` the same rows of `out_stride`, with `t.c0 + t.cols <= n`.
#[target_feature(enable = "avx512f")]
#[inline]
// Indexed loops of constant bounds on purpose (see the stores).
#[allow(clippy::needless_range_loop)]
unsafe fn tile<const R: usize, const V: usize, const MASKED: bool>(
    x: &[f32],
    group: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    t: Tile,
    act: Activation,
) {
    let last = if MASKED {
        t.cols - (V - 1) * PANEL
    } else {
        PANEL
    };
    debug_assert!((1..=R).contains(&t.rows) && (1..=PANEL).contains(&last));
    debug_assert!(group.len() >= (s.k + 1) * ((V - 1) * PANEL + last));
    debug_assert!(x.len() >= (t.r0 + t.rows - 1) * s.x_stride + s.k);
    let xp: [*const f32; R] = core::array::from_fn(|r| {
        // SAFETY: row r0 + min(r, rows - 1) is a real row, inside `x`.
        unsafe { x.as_ptr().add((t.r0 + r.min(t.rows - 1)) * s.x_stride) }
    });
    let gp = group.as_ptr();
    let len = (s.k + 1) * PANEL;
    // A loop, not `core::array::from_fn`, so it inlines (see gemm_avx2's
    // `tile`).
    let row = |i: usize| -> [__m512; V] {
        let mut lanes = [_mm512_setzero_ps(); V];
        for (v, lane) in lanes.iter_mut().enumerate() {
            // SAFETY: row i (0 the bias) of panel v starts at v * len + i *
            // 16, all 16 values inside the group, but for a masked last
            // panel, whose row i starts at i * last and is read through
            // the mask (masked-off lanes are not accessed).
            *lane = unsafe {
                if MASKED && v + 1 == V {
                    _mm512_maskz_loadu_ps(t.mask, gp.add(v * len + i * last))
                } else {
                    _mm512_loadu_ps(gp.add(v * len + i * PANEL))
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
            let xv = _mm512_set1_ps(unsafe { *xp[r].add(i) });
            for v in 0..V {
                acc[r][v] = _mm512_fmadd_ps(xv, wr[v], acc[r][v]);
            }
        }
    }
    let fast = epilogue(&mut acc, act);
    // A loop of constant length with the row count as a condition (not
    // `take(t.rows)`), and pointers rather than bounds-checked slices (whose
    // panic paths kept every accumulator on the stack: 24 stores and loads
    // more a tile), so the accumulators stay in registers.
    debug_assert!(out.len() >= (t.r0 + t.rows - 1) * s.out_stride + t.c0 + t.cols);
    let op = out.as_mut_ptr();
    for r in 0..R {
        if r >= t.rows {
            continue;
        }
        // SAFETY: row r0 + r < m of `out` holds columns c0..c0 + cols (the
        // caller's contract), so `o` and the 16 values from `o + 16 v` are in
        // it, but for the masked last panel, whose `last` values are written
        // through the mask.
        unsafe {
            let o = op.add((t.r0 + r) * s.out_stride + t.c0);
            for v in 0..V {
                if MASKED && v + 1 == V {
                    _mm512_mask_storeu_ps(o.add(v * PANEL), t.mask, acc[r][v]);
                } else {
                    _mm512_storeu_ps(o.add(v * PANEL), acc[r][v]);
                }
            }
        }
    }
    // Apart from the stores: a call among them makes the compiler keep every
    // accumulator on the stack (it clobbers the vector registers).
    if !fast {
        for r in 0..t.rows {
            activate(&mut out[(t.r0 + r) * s.out_stride + t.c0..][..t.cols], act);
        }
    }
}

/// Applies the activations that have a vector form to the accumulators, in
/// the portable `Activation::apply`'s operation order (as
/// `gemm_avx2::epilogue`); false for the others (applied afterwards to the
/// stored values). Indexed loops of constant bounds, which the compiler
/// unrolls on the registers (an iterator over the flattened array kept the
/// accumulators on the stack: 2304 px x 8 -> 48 spent a fifth of its time
/// there).
#[target_feature(enable = "avx512f")]
#[inline]
#[allow(clippy::needless_range_loop)]
pub(crate) fn epilogue<const R: usize, const V: usize>(
    acc: &mut [[__m512; V]; R],
    act: Activation,
) -> bool {
    // as in the AVX2 epilogue: the accumulator second, so NaN stays NaN
    let z = _mm512_setzero_ps();
    match act {
        Activation::None => {}
        Activation::Relu => {
            for r in 0..R {
                for v in 0..V {
                    acc[r][v] = _mm512_max_ps(z, acc[r][v]);
                }
            }
        }
        Activation::Clip { min, max } => {
            let (lo, hi) = (_mm512_set1_ps(min), _mm512_set1_ps(max));
            for r in 0..R {
                for v in 0..V {
                    acc[r][v] = _mm512_min_ps(hi, _mm512_max_ps(lo, acc[r][v]));
                }
            }
        }
        Activation::HardSwish => {
            let (three, six) = (_mm512_set1_ps(3.0), _mm512_set1_ps(6.0));
            let sixth = _mm512_set1_ps(1.0 / 6.0);
            for r in 0..R {
                for v in 0..V {
                    let a = acc[r][v];
                    let c = _mm512_min_ps(six, _mm512_max_ps(z, _mm512_add_ps(a, three)));
                    acc[r][v] = _mm512_mul_ps(_mm512_mul_ps(a, c), sixth);
                }
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

    fn have_avx512() -> bool {
        std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
    }

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

    /// Every group (1, 2, 3 panels, full or with a narrower last one), tiles
    /// of 4, 8 and 12 rows with and without leftover rows, strided rows.
    #[test]
    fn avx512_matches_portable_twin_and_naive() {
        if !have_avx512() {
            return;
        }
        let ns = [1, 5, 8, 15, 16, 17, 31, 32, 33, 40, 47, 48, 49, 64, 80, 97];
        let ms = [1, 2, 4, 5, 8, 9, 12, 13, 25];
        let mut cases: Vec<(usize, usize, usize)> = SHAPES.to_vec();
        for (a, &n) in ns.iter().enumerate() {
            for (b, &m) in ms.iter().enumerate() {
                cases.push((m, 1 + (a * 7 + b * 3) % 19, n));
            }
        }
        for (t, &(m, k, n)) in cases.iter().enumerate() {
            // Every third case with row gaps in x and out.
            let (xs, os) = if t % 3 == 2 { (k + 3, n + 5) } else { (k, n) };
            let x = values(m * xs, t as u32);
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
                x_stride: xs,
                out_stride: os,
                add: false,
            };
            let act = ACTS[t % ACTS.len()];
            let dense: Vec<f32> = (0..m)
                .flat_map(|r| x[r * xs..r * xs + k].iter().copied())
                .collect();
            let want: Vec<f32> = naive(&dense, &w, &b, m, k, n)
                .iter()
                .map(|&v| act.apply(v))
                .collect();
            let mut simd = std::vec![-7.0; m * os];
            let mut twin = std::vec![-7.0; m * os];
            // SAFETY: AVX-512F was detected; the slices have the lengths
            // `check` asks for.
            unsafe { gemm_avx512(&x, &p, &mut simd, &s, act) };
            gemm_portable(&x, &p, &mut twin, &s, act);
            for r in 0..m {
                for c in 0..os {
                    let (g, tw) = (simd[r * os + c], twin[r * os + c]);
                    if c >= n {
                        assert_eq!(g, -7.0, "{m}x{k}x{n} gap [{r}][{c}] written");
                        continue;
                    }
                    assert!(
                        (g - tw).abs() <= 1e-5,
                        "{m}x{k}x{n} [{r}][{c}]: {g} vs {tw}"
                    );
                    let wv = want[r * n + c];
                    assert!(
                        (g - wv).abs() <= 1e-5,
                        "{m}x{k}x{n} [{r}][{c}]: {g} vs {wv}"
                    );
                }
            }
        }
    }

    #[test]
    fn avx512_activations_equal_the_portable_ones() {
        if !have_avx512() {
            return;
        }
        // k = 1 and a bias of zero: the accumulator is x * w exactly, so the
        // activation is the only difference and must be none.
        let (m, k, n) = (13, 1, 40);
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
        for act in &ACTS[1..4] {
            let mut simd = std::vec![0.0; m * n];
            let mut twin = std::vec![0.0; m * n];
            // SAFETY: as above.
            unsafe { gemm_avx512(&x, &p, &mut simd, &s, *act) };
            gemm_portable(&x, &p, &mut twin, &s, *act);
            let same = |a: &f32, b: &f32| a == b || (a.is_nan() && b.is_nan());
            assert!(
                simd.iter().zip(&twin).all(|(a, b)| same(a, b)),
                "{act:?}: {simd:?} vs {twin:?}"
            );
            assert!(simd[n..2 * n].iter().all(|v| v.is_nan()), "{act:?}");
        }
    }
}
