//! Packed matrix products for pointwise (1x1) convolutions and dense layers:
//! `out[m][n] = act(bias[n] + sum_k x[m][k] * w[k][n])`.
//!
//! The weights and bias are packed ahead of time (kiln-codegen packs them
//! into the blob with [`pack_gemm`]) into column panels, each stored as its
//! bias row then its `k` weight rows, so a microkernel streams one panel
//! front to back. The microkernel holds a tile of rows by one panel (or a
//! block of its columns) in registers for the whole `k` loop: per step it
//! loads one panel row and broadcasts one `x` value per row.
//!
//! Every instruction set's microkernel has this file's portable one as its
//! twin: the same packed layout and the same summation order (bias, then
//! `k` ascending), so they differ only where fused multiply-adds round once
//! and the portable code twice. The tile is each one's own: the AVX2 kernel
//! holds 6 rows by a 16-column panel, the portable one what suits the
//! target it is compiled for ([`PORTABLE`]).

use crate::elementwise::{Activation, activate};

/// Width of a full column panel: two 8-lane vectors.
pub const PANEL: usize = 16;
/// Columns of one 8-lane vector: the AVX2 kernel covers a last panel this
/// narrow or narrower with tiles of [`MR_NARROW`] rows.
pub const NARROW: usize = 8;
/// Rows of `x` (pixels) one AVX2 tile covers with a panel of two vectors.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) const MR: usize = 6;
/// Rows one AVX2 tile covers with a panel of one vector.
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) const MR_NARROW: usize = 8;

/// The panels of an `n`-column matrix as (first column, width): full panels
/// of [`PANEL`], then the `n % PANEL` remaining columns as one narrower
/// panel, unpadded (a 10-class classifier stays 10 columns wide).
pub fn gemm_panels(n: usize) -> impl Iterator<Item = (usize, usize)> {
    let full = n / PANEL;
    let rest = n % PANEL;
    let last = (rest > 0).then_some((full * PANEL, rest));
    (0..full).map(|p| (p * PANEL, PANEL)).chain(last)
}

/// Length in f32 of the packed form of a `k` x `n` matrix and its bias.
pub fn packed_gemm_len(k: usize, n: usize) -> usize {
    gemm_panels(n).map(|(_, w)| (k + 1) * w).sum()
}

/// Packs `w` (`[k][n]`, row `i` holding input `i`'s weights) and `bias` (`n`
/// values, or empty for none) into `out` (at least [`packed_gemm_len`]
/// long): for each panel of [`gemm_panels`], its bias (zeros for none) then
/// its `k` rows.
///
/// # Panics
/// If `w` is shorter than `k * n`, `bias` neither empty nor `n` long, or
/// `out` too short.
pub fn pack_gemm(w: &[f32], bias: &[f32], k: usize, n: usize, out: &mut [f32]) {
    let mut at = 0;
    for (c0, width) in gemm_panels(n) {
        let panel = &mut out[at..at + (k + 1) * width];
        if bias.is_empty() {
            panel[..width].fill(0.0);
        } else {
            panel[..width].copy_from_slice(&bias[c0..c0 + width]);
        }
        for (row, dst) in w[..k * n]
            .chunks_exact(n)
            .zip(panel[width..].chunks_exact_mut(width))
        {
            dst.copy_from_slice(&row[c0..c0 + width]);
        }
        at += (k + 1) * width;
    }
}

/// Shape of one packed product: `m` rows of `k` inputs, `x` rows `x_stride`
/// apart, `n` outputs, `out` rows `out_stride` apart; with `add`, each
/// activated result is added to the value `out` holds (a residual) instead
/// of replacing it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
    pub x_stride: usize,
    pub out_stride: usize,
    pub add: bool,
}

/// `out = act(x . W + bias)` over packed weights, `m` rows: the pointwise
/// convolution of `m` pixels (`x` is `[m][k]`, `out` `[m][n]`) or, with
/// `m = 1`, a dense layer. `packed` is [`pack_gemm`]'s output for `k`, `n`.
/// Uses the AVX-512F microkernel when the build enables that feature (or,
/// with the `std` feature, the CPU has it), else the AVX2+FMA one likewise,
/// the NEON one on aarch64, the portable one otherwise.
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
        add: false,
    };
    gemm_rows(x, packed, out, &s, act)
}

/// [`gemm`] with row strides of its own: the microkernel this build selects.
///
/// # Panics
/// As `check`.
#[inline(always)]
pub(crate) fn gemm_rows(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    act: Activation,
) {
    if s.add {
        crate::gemm_add::add_blocks(x, packed, out, s, act);
    } else {
        kernel(x, packed, out, s, act);
    }
}

/// The microkernel this build selects, storing its results (`s.add` is not
/// read: [`crate::gemm_add`] adds).
///
/// # Panics
/// As `check`.
#[inline(always)]
pub(crate) fn kernel(x: &[f32], packed: &[f32], out: &mut [f32], s: &GemmShape, act: Activation) {
    check(x, packed, out, s);
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx512() {
        // SAFETY: `avx512` is true only when the build enables AVX-512F,
        // AVX2 and FMA or the CPU was found to have them; `check` proved
        // every slice long enough.
        unsafe { crate::gemm_avx512::gemm_avx512(x, packed, out, s, act) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx2_fma() {
        // SAFETY: `avx2_fma` is true only when the build enables AVX2 and
        // FMA or the CPU was found to have them; `check` proved every slice
        // long enough.
        unsafe { crate::gemm_avx2::gemm_avx2(x, packed, out, s, act) };
        return;
    }
    // SAFETY: every aarch64 core has NEON; `check` proved every slice long
    // enough.
    #[cfg(target_arch = "aarch64")]
    unsafe {
        crate::gemm_neon::gemm_neon(x, packed, out, s, act)
    };
    #[cfg(not(target_arch = "aarch64"))]
    gemm_portable(x, packed, out, s, act);
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

/// Rows and columns of the portable microkernel's tiles on this build's
/// target, for a full panel and for the narrower last one: on aarch64 (32
/// vector registers, which the compiler fills from the portable loops) the
/// AVX2 kernel's [`MR`] x [`PANEL`] and [`MR_NARROW`] x [`NARROW`]; on every
/// other target (wasm32 without SIMD, whose locals the compiler keeps the
/// accumulators in up to about 48 of them; x86-64 without AVX2, 16
/// registers) 6 x 8 for a full panel (walked as two 8-column halves) and
/// 4 x 8 for the last one. Measured with `cargo xtask bench` (wasm fuel):
/// 4 x 16 and 8 x 8 spill the accumulators and cost 40-60% more.
#[cfg(target_arch = "aarch64")]
pub(crate) const PORTABLE: [(usize, usize); 2] = [(MR, PANEL), (MR_NARROW, NARROW)];
/// See the aarch64 variant.
#[cfg(not(target_arch = "aarch64"))]
pub(crate) const PORTABLE: [(usize, usize); 2] = [(6, 8), (4, 8)];

/// The portable product with this build's tiles ([`PORTABLE`]); on
/// aarch64 only the NEON kernel's twin in tests.
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
#[inline(always)]
pub(crate) fn gemm_portable(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    act: Activation,
) {
    portable_args(
        x,
        packed,
        out,
        [s.m, s.k, s.n, s.x_stride, s.out_stride],
        s.add,
        act,
    )
}

/// [`gemm_portable`] with the shape as plain arguments (passed in registers,
/// where a shape behind a reference is read from memory).
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
fn portable_args(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    [m, k, n, x_stride, out_stride]: [usize; 5],
    add: bool,
    act: Activation,
) {
    const F: (usize, usize) = PORTABLE[0];
    const N: (usize, usize) = PORTABLE[1];
    let s = GemmShape {
        m,
        k,
        n,
        x_stride,
        out_stride,
        add,
    };
    gemm_tiled::<{ F.0 }, { F.1 }, { N.0 }, { N.1 }>(x, packed, out, &s, act)
}

/// The portable product in tiles of `RF` rows by `WF` columns of a full
/// panel and `RN` by `WN` of the last, narrower one (`WF` divides
/// [`PANEL`]; a last block narrower than `WN` is read through a zero-padded
/// copy of each panel row). Leftover rows: one row by a one-row tile (a
/// dense layer is one row), up to 4 by a 4-row tile, more repeat the last.
pub(crate) fn gemm_tiled<const RF: usize, const WF: usize, const RN: usize, const WN: usize>(
    x: &[f32],
    packed: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    act: Activation,
) {
    const { assert!(PANEL.is_multiple_of(WF) && RF > 0 && RN > 0 && WN > 0) };
    let mut at = 0;
    for (c0, width) in gemm_panels(s.n) {
        let panel = &packed[at..at + (s.k + 1) * width];
        let mut h = 0;
        while h < width {
            let b = Block { c0, h, width };
            if width == PANEL {
                rows::<RF, WF, false>(x, panel, out, s, b, act);
                h += WF;
            } else {
                rows::<RN, WN, true>(x, panel, out, s, b, act);
                h += WN;
            }
        }
        at += (s.k + 1) * width;
    }
}

/// A block of columns: those from `h` of the `width`-wide panel whose first
/// column is the output's column `c0`.
#[derive(Clone, Copy)]
struct Block {
    c0: usize,
    h: usize,
    width: usize,
}

/// Every row of `x` by one block of at most `W` columns of a panel, `R`
/// rows a tile; a block narrower than `W` only where `NARROWER` says so.
#[inline(always)]
fn rows<const R: usize, const W: usize, const NARROWER: bool>(
    x: &[f32],
    panel: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    b: Block,
    act: Activation,
) {
    let cols = W.min(b.width - b.h);
    let mut r0 = 0;
    while r0 < s.m {
        let rows = R.min(s.m - r0);
        let t = Rows { r0, rows, cols };
        if NARROWER && cols < W {
            match rows {
                1 if R > 1 => tile::<1, W, true>(x, panel, out, s, b, t, act),
                ..=4 if R > 4 => tile::<4, W, true>(x, panel, out, s, b, t, act),
                _ => tile::<R, W, true>(x, panel, out, s, b, t, act),
            }
        } else {
            match rows {
                1 if R > 1 => tile::<1, W, false>(x, panel, out, s, b, t, act),
                ..=4 if R > 4 => tile::<4, W, false>(x, panel, out, s, b, t, act),
                _ => tile::<R, W, false>(x, panel, out, s, b, t, act),
            }
        }
        r0 += rows;
    }
}

/// Rows `r0..r0 + rows` of `x` and the `cols` output columns of a block.
#[derive(Clone, Copy)]
struct Rows {
    r0: usize,
    rows: usize,
    cols: usize,
}

/// Rows `t.r0..t.r0 + t.rows` (at most `R`) by columns `b.h..b.h + W` of
/// the panel at column `b.c0`, `t.cols` of them real (all `W` unless
/// `PART`, which reads each panel row through a zero-padded copy). Rows
/// past `t.rows` repeat the last real one, so the loop body has no branch;
/// only real rows and columns are stored.
#[inline(always)]
fn tile<const R: usize, const W: usize, const PART: bool>(
    x: &[f32],
    panel: &[f32],
    out: &mut [f32],
    s: &GemmShape,
    b: Block,
    t: Rows,
    act: Activation,
) {
    let xr: [&[f32]; R] =
        core::array::from_fn(|r| &x[(t.r0 + r.min(t.rows - 1)) * s.x_stride..][..s.k]);
    let (bias, w) = panel.split_at(b.width);
    let block = |row: &[f32]| -> [f32; W] {
        let mut v = [0.0; W];
        if PART {
            v[..t.cols].copy_from_slice(&row[b.h..b.h + t.cols]);
        } else {
            v.copy_from_slice(&row[b.h..b.h + W]);
        }
        v
    };
    let mut acc = [block(bias); R];
    for (i, wr) in (0..s.k).zip(w.chunks_exact(b.width)) {
        let wr = block(wr);
        for r in 0..R {
            let v = xr[r][i];
            for j in 0..W {
                acc[r][j] += v * wr[j];
            }
        }
    }
    let fast = activate_tile(&mut acc, act);
    let cols = if PART { t.cols } else { W };
    // A loop of constant length, so the accumulators stay in registers.
    for (r, a) in acc.iter().enumerate() {
        if r < t.rows {
            let o = &mut out[(t.r0 + r) * s.out_stride + b.c0 + b.h..][..cols];
            o.copy_from_slice(&a[..cols]);
            if !fast {
                activate(o, act);
            }
        }
    }
}

/// `act` on every accumulator of a tile, the variant chosen once; false
/// for the activations left to the stored values (those with a long body).
#[inline(always)]
fn activate_tile<const R: usize, const W: usize>(acc: &mut [[f32; W]; R], act: Activation) -> bool {
    #[inline(always)]
    fn each<const R: usize, const W: usize>(acc: &mut [[f32; W]; R], f: impl Fn(f32) -> f32) {
        for a in acc.iter_mut() {
            for v in a.iter_mut() {
                *v = f(*v);
            }
        }
    }
    match act {
        Activation::None => {}
        Activation::Relu => each(acc, |v| Activation::Relu.apply(v)),
        Activation::Clip { min, max } => each(acc, |v| Activation::Clip { min, max }.apply(v)),
        _ => return false,
    }
    true
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
    pub(crate) const SHAPES: [(usize, usize, usize); 11] = [
        (1, 1, 1),
        (11, 6, 12),
        (4, 8, 52),
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
            assert!(c0 < n && c0 + w == n, "n = {n}: {p:?}");
            assert!(p.iter().all(|&(_, w)| w <= PANEL));
            assert_eq!(packed_gemm_len(3, n), 4 * n);
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
                add: false,
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
    fn every_targets_portable_tiles_match_naive() {
        // Both tile sets of `PORTABLE`, whichever this build uses, and a
        // 4 x 8 one; every activation that is applied in registers or after.
        type Tiled = fn(&[f32], &[f32], &mut [f32], &GemmShape, Activation);
        let tiles: [Tiled; 3] = [
            gemm_tiled::<MR, PANEL, MR_NARROW, NARROW>,
            gemm_tiled::<6, 8, 4, 8>,
            gemm_tiled::<4, 8, 4, 8>,
        ];
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
            let b = values(n, 200 + t as u32);
            let p = packed(&w, &b, k, n);
            let s = GemmShape {
                m,
                k,
                n,
                x_stride: k,
                out_stride: n,
                add: false,
            };
            for act in acts {
                let want: Vec<f32> = naive(&x, &w, &b, m, k, n)
                    .iter()
                    .map(|&v| act.apply(v))
                    .collect();
                for (i, tiled) in tiles.iter().enumerate() {
                    let mut got = std::vec![f32::NAN; m * n];
                    tiled(&x, &p, &mut got, &s, act);
                    for (e, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!((g - w).abs() <= 1e-5, "tiles {i} {m}x{k}x{n} {act:?} [{e}]");
                    }
                }
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
            add: false,
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
