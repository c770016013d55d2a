//! x86-64 dot-product kernels of [`super::qgemm`]: each fills a block of
//! `dot(x row, w row)` sums (the [`Dots`] contract), which `qgemm_with`
//! then corrects for the input zero point and requantizes exactly as the
//! portable path does. Integer arithmetic throughout, so the results are
//! bit-identical to the portable twin (`dots_portable`), which the tests
//! check on random shapes.
//!
//! - AVX2 ([`dots_avx2`]): 16 bytes of a row sign-extended to i16
//!   (`vpmovsxbw`), products summed in pairs into i32 (`vpmaddwd`, exact:
//!   two products of at most 2^14 each); tiles of 2 rows by 4 outputs in 8
//!   `ymm` accumulators, an 8-byte step and scalar products for the rest
//!   of `k`.
//! - AVX-512 VNNI ([`dots_vnni`]): 64 bytes a step with `vpdpbusd`, which
//!   multiplies unsigned by signed bytes and sums four products into i32
//!   without saturation; `x` is made unsigned by flipping its sign bit
//!   (`x + 128`), and `128 * sum(w)` is taken off afterwards. Tiles of 4
//!   rows by 4 outputs in 16 `zmm` accumulators; the last part of `k` is
//!   read through a byte mask (masked-off lanes are not read).
//!
//! Four sums are reduced at once (`vphaddd` of four accumulators) into the
//! four outputs of a tile row.

use core::arch::x86_64::*;

use super::conv::{Block, DotAcc};

/// True when the AVX-512 VNNI kernel may run: the build enables
/// `avx512f`, `avx512bw` and `avx512vnni` (with AVX2 and FMA, as a host
/// program built with `target-cpu=native` on such a CPU), or (with `std`)
/// [`crate::cpu::avx512`] is true (so `KILN_RUNTIME_NO_AVX512` turns this
/// off too) and the CPU has AVX512BW and AVX512-VNNI.
#[inline(always)]
pub(crate) fn vnni() -> bool {
    if cfg!(all(
        target_feature = "avx512f",
        target_feature = "avx512bw",
        target_feature = "avx512vnni",
        target_feature = "avx2",
        target_feature = "fma"
    )) {
        return true;
    }
    #[cfg(feature = "std")]
    {
        crate::cpu::avx512()
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
    }
    #[cfg(not(feature = "std"))]
    {
        false
    }
}

/// Walks a block in tiles of `RT` rows (then single rows) by 4 outputs
/// (then single outputs), calling `tile(i0, j0, rows, cols)`.
#[inline(always)]
fn tiles<const RT: usize>(b: &Block<'_>, mut tile: impl FnMut(usize, usize, usize, usize)) {
    let mut j = 0;
    while j < b.nb {
        let cols = if b.nb - j >= 4 { 4 } else { 1 };
        let mut i = 0;
        while i < b.rows {
            let rows = if b.rows - i >= RT { RT } else { 1 };
            tile(i, j, rows, cols);
            i += rows;
        }
        j += cols;
    }
}

/// [`Dots`](super::conv::Dots) with AVX2.
///
/// # Safety
/// The CPU must support AVX2; `b`'s rows must lie inside `b.x` and `b.w`
/// (`qgemm` asserts `x.len() >= m * k` and `w.len() >= n * k`, and the
/// rows `r0 + rows <= m`, `o0 + nb <= n`).
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn dots_avx2(b: &Block<'_>, acc: &mut DotAcc) {
    tiles::<2>(b, |i0, j0, rows, cols| {
        // SAFETY: AVX2 is present (this function's contract); the tile's
        // rows are inside the block.
        unsafe {
            match (rows, cols) {
                (2, 4) => tile_avx2::<2, 4>(b, i0, j0, acc),
                (2, _) => tile_avx2::<2, 1>(b, i0, j0, acc),
                (_, 4) => tile_avx2::<1, 4>(b, i0, j0, acc),
                _ => tile_avx2::<1, 1>(b, i0, j0, acc),
            }
        }
    });
}

/// Sums of the four `i32` lanes of each of `a`, `b`, `c`, `d`, in that
/// order.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum4_256(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
    let ab = _mm256_hadd_epi32(a, b);
    let cd = _mm256_hadd_epi32(c, d);
    let abcd = _mm256_hadd_epi32(ab, cd);
    _mm_add_epi32(
        _mm256_castsi256_si128(abcd),
        _mm256_extracti128_si256::<1>(abcd),
    )
}

/// The sum of the eight `i32` lanes of `a`.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum_256(a: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// The exact dot products of the part of `k` from `t` on, scalar.
#[inline(always)]
fn tail(x: &[u8], w: &[u8], t: usize) -> i32 {
    x[t..]
        .iter()
        .zip(&w[t..])
        .map(|(a, b)| super::requant::v(*a) * super::requant::v(*b))
        .sum()
}

/// `R` rows from `i0` by `C` outputs from `j0` (`C` is 4 or 1).
///
/// # Safety
/// AVX2 present; rows `b.r0 + i0 + R <= m`, outputs `b.o0 + j0 + C <= n`.
#[target_feature(enable = "avx2")]
#[inline]
// Indexed loops of constant bounds on purpose (unrolled into registers).
#[allow(clippy::needless_range_loop)]
unsafe fn tile_avx2<const R: usize, const C: usize>(
    b: &Block<'_>,
    i0: usize,
    j0: usize,
    acc: &mut DotAcc,
) {
    let k = b.k;
    let xr: [&[u8]; R] = core::array::from_fn(|i| &b.x[(b.r0 + i0 + i) * k..][..k]);
    let wr: [&[u8]; C] = core::array::from_fn(|j| &b.w[(b.o0 + j0 + j) * k..][..k]);
    let mut s = [[_mm256_setzero_si256(); C]; R];
    let mut t = 0;
    while t + 16 <= k {
        // SAFETY: `t + 16 <= k`, every row slice is `k` bytes long, so each
        // 16-byte unaligned load stays inside its row.
        unsafe {
            let mut xv = [_mm256_setzero_si256(); R];
            for i in 0..R {
                xv[i] = _mm256_cvtepi8_epi16(_mm_loadu_si128(xr[i].as_ptr().add(t).cast()));
            }
            for j in 0..C {
                let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(wr[j].as_ptr().add(t).cast()));
                for i in 0..R {
                    s[i][j] = _mm256_add_epi32(s[i][j], _mm256_madd_epi16(xv[i], wv));
                }
            }
        }
        t += 16;
    }
    if t + 8 <= k {
        // SAFETY: `t + 8 <= k`: each 8-byte load stays inside its row.
        unsafe {
            let mut xv = [_mm_setzero_si128(); R];
            for i in 0..R {
                xv[i] = _mm_cvtepi8_epi16(_mm_loadl_epi64(xr[i].as_ptr().add(t).cast()));
            }
            for j in 0..C {
                let wv = _mm_cvtepi8_epi16(_mm_loadl_epi64(wr[j].as_ptr().add(t).cast()));
                for i in 0..R {
                    let p = _mm256_inserti128_si256::<0>(
                        _mm256_setzero_si256(),
                        _mm_madd_epi16(xv[i], wv),
                    );
                    s[i][j] = _mm256_add_epi32(s[i][j], p);
                }
            }
        }
        t += 8;
    }
    for i in 0..R {
        let row = &mut acc[i0 + i][j0..j0 + C];
        if C == 4 {
            let sums = hsum4_256(s[i][0], s[i][1], s[i][2], s[i][3]);
            let mut lanes = [0i32; 4];
            // SAFETY: `lanes` is 16 bytes, an unaligned store fills it.
            unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), sums) };
            for j in 0..C {
                row[j] = lanes[j].wrapping_add(tail(xr[i], wr[j], t));
            }
        } else {
            for j in 0..C {
                row[j] = hsum_256(s[i][j]).wrapping_add(tail(xr[i], wr[j], t));
            }
        }
    }
}

/// [`Dots`](super::conv::Dots) with AVX-512 VNNI.
///
/// # Safety
/// The CPU must support AVX-512F, AVX512BW and AVX512-VNNI; `b`'s rows
/// must lie inside `b.x` and `b.w` (as [`dots_avx2`]).
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(crate) unsafe fn dots_vnni(b: &Block<'_>, acc: &mut DotAcc) {
    tiles::<4>(b, |i0, j0, rows, cols| {
        // SAFETY: the features are present (this function's contract); the
        // tile's rows are inside the block.
        unsafe {
            match (rows, cols) {
                (4, 4) => tile_vnni::<4, 4>(b, i0, j0, acc),
                (4, _) => tile_vnni::<4, 1>(b, i0, j0, acc),
                (_, 4) => tile_vnni::<1, 4>(b, i0, j0, acc),
                _ => tile_vnni::<1, 1>(b, i0, j0, acc),
            }
        }
    });
}

/// The sum of the two 256-bit halves of `v`, lane by lane.
#[target_feature(enable = "avx512f,avx2")]
#[inline]
fn fold_512(v: __m512i) -> __m256i {
    _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64::<1>(v))
}

/// Sums of the sixteen `i32` lanes of each of `a`, `b`, `c`, `d`.
#[target_feature(enable = "avx512f,avx2")]
#[inline]
fn hsum4_512(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m128i {
    hsum4_256(fold_512(a), fold_512(b), fold_512(c), fold_512(d))
}

/// `R` rows from `i0` by `C` outputs from `j0` (`C` is 4 or 1), with
/// `vpdpbusd` on `x + 128` (unsigned) and `w`, less `128 * sum(w)`.
///
/// # Safety
/// AVX-512F, AVX512BW, AVX512-VNNI present; rows `b.r0 + i0 + R <= m`,
/// outputs `b.o0 + j0 + C <= n`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
#[inline]
#[allow(clippy::needless_range_loop)]
unsafe fn tile_vnni<const R: usize, const C: usize>(
    b: &Block<'_>,
    i0: usize,
    j0: usize,
    acc: &mut DotAcc,
) {
    let k = b.k;
    let xr: [&[u8]; R] = core::array::from_fn(|i| &b.x[(b.r0 + i0 + i) * k..][..k]);
    let wr: [&[u8]; C] = core::array::from_fn(|j| &b.w[(b.o0 + j0 + j) * k..][..k]);
    let flip = _mm512_set1_epi8(i8::MIN);
    let mut s = [[_mm512_setzero_si512(); C]; R];
    let mut t = 0;
    while t < k {
        let n = (k - t).min(64);
        // lanes `0..n` (all 64 but in the last step)
        let mask: __mmask64 = if n == 64 { !0 } else { (1u64 << n) - 1 };
        // SAFETY: `t + n <= k` and every row slice is `k` bytes long; the
        // masked loads do not read lanes outside `mask`, so no byte past a
        // row is accessed.
        unsafe {
            let mut xv = [_mm512_setzero_si512(); R];
            for i in 0..R {
                let raw = _mm512_maskz_loadu_epi8(mask, xr[i].as_ptr().add(t).cast());
                // masked-off lanes become 128 here, against 0 weights
                xv[i] = _mm512_xor_si512(raw, flip);
            }
            for j in 0..C {
                let wv = _mm512_maskz_loadu_epi8(mask, wr[j].as_ptr().add(t).cast());
                for i in 0..R {
                    s[i][j] = _mm512_dpbusd_epi32(s[i][j], xv[i], wv);
                }
            }
        }
        t += n;
    }
    for i in 0..R {
        let row = &mut acc[i0 + i][j0..j0 + C];
        if C == 4 {
            let sums = hsum4_512(s[i][0], s[i][1], s[i][2], s[i][3]);
            let mut lanes = [0i32; 4];
            // SAFETY: `lanes` is 16 bytes, an unaligned store fills it.
            unsafe { _mm_storeu_si128(lanes.as_mut_ptr().cast(), sums) };
            for j in 0..C {
                row[j] = lanes[j].wrapping_sub(b.wsum[j0 + j].wrapping_mul(128));
            }
        } else {
            for j in 0..C {
                row[j] =
                    _mm512_reduce_add_epi32(s[i][j]).wrapping_sub(b.wsum[j0 + j].wrapping_mul(128));
            }
        }
    }
}

#[cfg(all(test, not(miri)))]
mod tests {
    extern crate std;
    use super::super::conv::{PerChannel, qgemm, qgemm_portable, qgemm_with};
    use super::super::requant::OutRange;
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

    type Kernel<'a> = &'a dyn Fn(&Block<'_>, &mut DotAcc);

    /// One product through `kernel` (None: the public, dispatched `qgemm`)
    /// and through the portable twin.
    fn both(
        (m, k, n): (usize, usize, usize),
        x: &[u8],
        w: &[u8],
        x_zero: i32,
        kernel: Option<Kernel<'_>>,
    ) -> (Vec<u8>, Vec<u8>) {
        let bias: Vec<i32> = (0..n as i32).map(|o| o * 37 - 500).collect();
        let mult: Vec<i32> = (0..n as i32).map(|o| (1 << 30) + o * 7919).collect();
        let shift: Vec<i32> = (0..n as i32).map(|o| -6 - o % 5).collect();
        let pc = PerChannel {
            bias: &bias,
            mult: &mult,
            shift: &shift,
        };
        let out = OutRange {
            zero_point: -3,
            lo: -128,
            hi: 127,
        };
        let mut got = std::vec![0x55u8; m * n];
        let mut want = std::vec![0xaau8; m * n];
        match kernel {
            Some(kernel) => qgemm_with(m, k, n, x, x_zero, w, pc, out, &mut got, |b, a| {
                kernel(b, a)
            }),
            None => qgemm(m, k, n, x, x_zero, w, pc, out, &mut got),
        }
        qgemm_portable(m, k, n, x, x_zero, w, pc, out, &mut want);
        (got, want)
    }

    /// Odd and even rows, inner lengths around each step (8, 16, 64),
    /// output counts around the tile (4) and the block of 64 weight sums;
    /// random bytes, then the extremes (-128 and 127 everywhere).
    fn check(kernel: Option<Kernel<'_>>, what: &str) {
        let mut r = rng(29);
        let shapes = [
            (1, 1, 1),
            (3, 7, 5),
            (5, 8, 4),
            (4, 15, 9),
            (9, 16, 3),
            (2, 17, 70),
            (7, 63, 8),
            (6, 64, 65),
            (5, 65, 13),
            (13, 130, 6),
            (49, 96, 24),
            (3, 200, 129),
            (1, 1280, 10),
        ];
        for (m, k, n) in shapes {
            let x: Vec<u8> = (0..m * k).map(|_| r() as u8).collect();
            let w: Vec<u8> = (0..n * k).map(|_| r() as u8).collect();
            for x_zero in [-128, -5, 17] {
                let (got, want) = both((m, k, n), &x, &w, x_zero, kernel);
                assert_eq!(got, want, "{what} {m}x{k}x{n} zero {x_zero}");
            }
            for (xb, wb) in [(0x80u8, 0x80u8), (0x7f, 0x80), (0x80, 0x7f), (0x7f, 0x7f)] {
                let (x, w) = (std::vec![xb; m * k], std::vec![wb; n * k]);
                let (got, want) = both((m, k, n), &x, &w, 0, kernel);
                assert_eq!(got, want, "{what} {m}x{k}x{n} bytes {xb:#x} {wb:#x}");
            }
        }
    }

    #[test]
    fn avx2_dots_equal_the_portable_twin() {
        if !std::is_x86_feature_detected!("avx2") {
            std::eprintln!("no AVX2 on this CPU: the AVX2 int8 kernel is not tested");
            return;
        }
        // SAFETY: AVX2 was detected; `qgemm_with` passes blocks inside x and w.
        check(
            Some(&|b: &Block<'_>, a: &mut DotAcc| unsafe { dots_avx2(b, a) }),
            "avx2",
        );
    }

    #[test]
    fn vnni_dots_equal_the_portable_twin() {
        if !(std::is_x86_feature_detected!("avx512f")
            && std::is_x86_feature_detected!("avx512bw")
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx2"))
        {
            std::eprintln!("no AVX-512 VNNI on this CPU: the VNNI int8 kernel is not tested");
            return;
        }
        // SAFETY: the features were detected; blocks lie inside x and w.
        check(
            Some(&|b: &Block<'_>, a: &mut DotAcc| unsafe { dots_vnni(b, a) }),
            "vnni",
        );
    }

    /// The public `qgemm` (whichever kernel this build, and with `std` this
    /// CPU, selects) against the portable twin.
    #[test]
    fn dispatched_qgemm_equals_the_portable_twin() {
        check(None, "dispatched");
    }
}
