//! Packed matrix products for pointwise (1x1) convolutions and dense layers:
//! `out[m][n] = act(bias[n] + sum_k x[m][k] * w[k][n])`.
//!
//! The weights and bias are packed ahead of time (kiln-codegen packs them
//! into the blob with [`pack_gemm`]) into column panels, each stored as its
//! bias row then its `k` weight rows, so a microkernel streams one panel
//! front to back. The microkernel holds a tile of `MR` rows by one panel in
//! registers for the whole `k` loop: per step it loads one panel row and
//! broadcasts one `x` value per row.
//!
//! Every instruction set's microkernel has this file's portable one as its
//! twin: the same tiles, the same packed layout, the same summation order
//! (bias, then `k` ascending); only fused multiply-adds round once where the
//! portable code rounds twice.

use crate::elementwise::{Activation, activate};

/// Width of a full column panel: two 8-lane vectors.
pub const PANEL: usize = 16;
/// Width of the narrow panel that ends a matrix whose last columns fit in it.
pub const NARROW: usize = 8;
/// Rows of `x` (pixels) one tile covers with a full panel.
pub(crate) const MR: usize = 6;
/// Rows one tile covers with a narrow panel (half the accumulators a row).
pub(crate) const MR_NARROW: usize = 8;

/// The panels of an `n`-column matrix as (first column, width): full panels
/// of [`PANEL`], then the remaining columns padded to [`NARROW`] when they
/// fit in it and to [`PANEL`] otherwise.
pub fn gemm_panels(n: usize) -> impl Iterator<Item = (usize, usize)> {
    let full = n / PANEL;
    let rest = n % PANEL;
    let last = match rest {
        0 => None,
        r if r <= NARROW => Some((full * PANEL, NARROW)),
        _ => Some((full * PANEL, PANEL)),
    };
    (0..full).map(|p| (p * PANEL, PANEL)).chain(last)
}

/// Length in f32 of the packed form of a `k` x `n` matrix and its bias.
pub fn packed_gemm_len(k: usize, n: usize) -> usize {
    gemm_panels(n).map(|(_, w)| (k + 1) * w).sum()
}

/// Packs `w` (`[k][n]`, row `i` holding input `i`'s weights) and `bias` (`n`
/// values, or empty for none) into `out` (at least [`packed_gemm_len`]
/// long): for each panel of [`gemm_panels`], its bias then its `k` rows,
/// columns past `n` zero.
///
/// # Panics
/// If `w` is shorter than `k * n`, `bias` neither empty nor `n` long, or
/// `out` too short.
pub fn pack_gemm(w: &[f32], bias: &[f32], k: usize, n: usize, out: &mut [f32]) {
    let mut at = 0;
    for (c0, width) in gemm_panels(n) {
        let cols = width.min(n - c0);
        let panel = &mut out[at..at + (k + 1) * width];
        panel.fill(0.0);
        if !bias.is_empty() {
            panel[..cols].copy_from_slice(&bias[c0..c0 + cols]);
        }
        for (row, dst) in w[..k * n]
            .chunks_exact(n)
            .zip(panel[width..].chunks_exact_mut(width))
        {
            dst[..cols].copy_from_slice(&row[c0..c0 + cols]);
        }
        at += (k + 1) * width;
    }
}

/// Shape of one packed product: `m` rows of `k` inputs, `x` rows `x_stride`
/// apart, `n` outputs, `out` rows `out_stride` apart.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub x_stride: usize,
    pub out_stride: usize,
}

/// `out = act(x . W + bias)` over packed weights, `m` rows: the pointwise
/// convolution of `m` pixels (`x` is `[m][k]`, `out` `[m][n]`) or, with
/// `m = 1`, a dense layer. `packed` is [`pack_gemm`]'s output for `k`, `n`.
/// Uses the AVX2+FMA microkernel when the build enables those features, the
/// portable one otherwise.
///
/// # Panics
/// If `x`, `packed` or `out` is shorter than the shapes say, or `k` or `n`
/// is 0.
#[allow(clippy::too_many_arguments)]
pub fn gemm(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    m: usize,
    k: usize,
    n: usize,
    act: Activation,
) {
    let s = GemmShape {
        m,
        k,
        n,
        x_stride: k,
        out_stride: n,
    };
    gemm_rows(x, packed, out, &s, act)
}

/// [`gemm`] with row strides of its own: the microkernel this build selects.
///
/// # Panics
/// As `check`.
pub(crate) fn gemm_rows(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    act: Activation,
) {
    check(x, packed, out, s);
    #[cfg(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ))]
    {
        // SAFETY: this build enables AVX2 and FMA for every function, so the
        // CPU it runs on has them; `check` proved every slice long enough.
        unsafe { crate::gemm_avx2::gemm_avx2(x, packed, out, s, act) }
    }
    #[cfg(not(all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    )))]
    gemm_portable(x, packed, out, s, act)
}

/// Panics unless every row and panel the product touches is in bounds.
pub(crate) fn check(x: &[f32], packed: &[f32], out: &[f32], s: &GemmShape) {
    assert!(s.k > 0 && s.n > 0, "empty product");
    assert!(s.x_stride >= s.k && s.out_stride >= s.n);
    if s.m > 0 {
        assert!(x.len() >= (s.m - 1) * s.x_stride + s.k, "x too short");
        assert!(out.len() >= (s.m - 1) * s.out_stride + s.n, "out too short");
    }
    assert!(
        packed.len() >= packed_gemm_len(s.k, s.n),
        "packed too short"
    );
}

/// The portable product: tiles of [`MR`] rows by a full panel,
/// [`MR_NARROW`] by a narrow one.
#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ),
    allow(dead_code)
)]
pub(crate) fn gemm_portable(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    act: Activation,
) {
    let mut at = 0;
    for (c0, width) in gemm_panels(s.n) {
        let panel = &packed[at..at + (s.k + 1) * width];
        let cols = width.min(s.n - c0);
        let mut r0 = 0;
        while r0 < s.m {
            if width == PANEL {
                let rows = MR.min(s.m - r0);
                tile::<MR, PANEL>(x, panel, out, s, r0, rows, c0, cols, act);
                r0 += rows;
            } else {
                let rows = MR_NARROW.min(s.m - r0);
                tile::<MR_NARROW, NARROW>(x, panel, out, s, r0, rows, c0, cols, act);
                r0 += rows;
            }
        }
        at += (s.k + 1) * width;
    }
}

/// Rows `r0..r0 + rows` (at most `R`) by the panel at column `c0` (`cols`
/// of its `W` columns real). Rows past `rows` repeat the last real one, so
/// the loop body has no branch; only real rows and columns are stored.
#[cfg_attr(
    all(
        target_arch = "x86_64",
        target_feature = "avx2",
        target_feature = "fma"
    ),
    allow(dead_code)
)]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn tile<const R: usize, const W: usize>(
    x: &[f32],
    panel: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    r0: usize,
    rows: usize,
    c0: usize,
    cols: usize,
    act: Activation,
) {
    let xr: [&[f32]; R] =
        core::array::from_fn(|r| &x[(r0 + r.min(rows - 1)) * s.x_stride..][..s.k]);
    let (bias, w) = panel.split_at(W);
    let mut acc = [[0.0f32; W]; R];
    for a in acc.iter_mut() {
        a.copy_from_slice(bias);
    }
    for (i, wr) in w.chunks_exact(W).enumerate() {
        for r in 0..R {
            let v = xr[r][i];
            for j in 0..W {
                acc[r][j] += v * wr[j];
            }
        }
    }
    for (r, a) in acc.iter().enumerate().take(rows) {
        let o = &mut out[(r0 + r) * s.out_stride + c0..][..cols];
        o.copy_from_slice(&a[..cols]);
        activate(o, act);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// Deterministic pseudo-random values in [-1, 1).
    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
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

    /// The product done plainly, in f64.
    pub(crate) fn naive(x: &[f32], w: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = std::vec![0.0; m * n];
        for r in 0..m {
            for c in 0..n {
                let mut acc = if b.is_empty() { 0.0 } else { b[c] as f64 };
                for i in 0..k {
                    acc += x[r * k + i] as f64 * w[i * n + c] as f64;
                }
                out[r * n + c] = acc as f32;
            }
        }
        out
    }

    pub(crate) fn packed(w: &[f32], b: &[f32], k: usize, n: usize) -> Vec<f32> {
        let mut p = std::vec![f32::NAN; packed_gemm_len(k, n)];
        pack_gemm(w, b, k, n, &mut p);
        p
    }

    /// Shapes with full and leftover rows and every kind of last panel.
    pub(crate) const SHAPES: [(usize, usize, usize); 9] = [
        (1, 1, 1),
        (6, 4, 16),
        (7, 5, 8),
        (13, 9, 24),
        (5, 3, 3),
        (1, 40, 10),
        (17, 16, 40),
        (9, 7, 29),
        (20, 33, 13),
    ];

    #[test]
    fn panels_cover_every_column_once() {
        for n in 1..70 {
            let p: Vec<_> = gemm_panels(n).collect();
            assert_eq!(p[0].0, 0);
            for w in p.windows(2) {
                assert_eq!(w[0].0 + w[0].1, w[1].0);
            }
            let (c0, w) = *p.last().expect("a panel");
            assert!(c0 < n && c0 + w >= n && c0 + w - n < NARROW.max(PANEL - NARROW));
        }
    }

    #[test]
    fn portable_matches_naive() {
        for (t, &(m, k, n)) in SHAPES.iter().enumerate() {
            let x = values(m * k, t as u32);
            let w = values(k * n, 100 + t as u32);
            let b = if t % 2 == 0 {
                values(n, 200 + t as u32)
            } else {
                Vec::new()
            };
            let act = Activation::Clip {
                min: -0.5,
                max: 0.7,
            };
            let want: Vec<f32> = naive(&x, &w, &b, m, k, n)
                .iter()
                .map(|&v| act.apply(v))
                .collect();
            let mut got = std::vec![f32::NAN; m * n];
            gemm(&x, &packed(&w, &b, k, n), &mut got, m, k, n, act);
            let s = GemmShape {
                m,
                k,
                n,
                x_stride: k,
                out_stride: n,
            };
            let mut twin = std::vec![f32::NAN; m * n];
            gemm_portable(&x, &packed(&w, &b, k, n), &mut twin, &s, act);
            for (i, ((g, t), w)) in got.iter().zip(&twin).zip(&want).enumerate() {
                assert!((g - w).abs() <= 1e-5, "{m}x{k}x{n} element {i}: {g} vs {w}");
                assert!((t - w).abs() <= 1e-5, "{m}x{k}x{n} element {i}: {t} vs {w}");
            }
        }
    }

    #[test]
    fn strided_rows_are_read_and_written_in_place() {
        // x rows 7 apart (k = 5), out rows 11 apart (n = 9): the gaps stay.
        let (m, k, n) = (8, 5, 9);
        let x = values(m * 7, 1);
        let w = values(k * n, 2);
        let s = GemmShape {
            m,
            k,
            n,
            x_stride: 7,
            out_stride: 11,
        };
        let mut out = std::vec![-9.0; m * 11];
        gemm_portable(&x, &packed(&w, &[], k, n), &mut out, &s, Activation::None);
        for r in 0..m {
            let xr: Vec<f32> = x[r * 7..r * 7 + k].to_vec();
            let want = naive(&xr, &w, &[], 1, k, n);
            for c in 0..11 {
                let g = out[r * 11 + c];
                if c < n {
                    assert!((g - want[c]).abs() <= 1e-5);
                } else {
                    assert_eq!(g, -9.0);
                }
            }
        }
    }
}
