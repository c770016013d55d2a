//! int8 element-wise kernels, pooling and the f32 <-> int8 boundary.
//!
//! int8 tensors are byte slices holding two's-complement i8 values; each
//! tensor has one scale and zero point (`real = scale * (q - zero_point)`).

use super::requant::{OutRange, multiply_by_quantized_multiplier, v};

/// Requantization of [`qadd`] (TensorFlow Lite's integer `Add`, `reference_ops::
/// AddElementwise` for int8): both inputs are shifted left by `left_shift`
/// (20), brought to a common scale `2 * max(s_a, s_b)` by their multipliers
/// (each <= 0.5), summed, and the sum scaled to the output by `out_mult`.
#[derive(Clone, Copy, Debug)]
pub struct QAdd {
    /// Zero point of input a.
    pub a_zero: i32,
    /// Zero point of input b.
    pub b_zero: i32,
    /// Left shift applied to both inputs (TFLite uses 20 for int8).
    pub left_shift: i32,
    /// Q0.31 multiplier and shift of input a (`s_a / (2 max(s_a, s_b))`).
    pub a_mult: i32,
    /// Shift of input a.
    pub a_shift: i32,
    /// Multiplier of input b (`s_b / (2 max(s_a, s_b))`).
    pub b_mult: i32,
    /// Shift of input b.
    pub b_shift: i32,
    /// Multiplier of the sum (`2 max(s_a, s_b) / (2^left_shift s_y)`).
    pub out_mult: i32,
    /// Shift of the sum.
    pub out_shift: i32,
    /// Output zero point and clamp range.
    pub out: OutRange,
}

/// `y = a + b` element-wise on int8 tensors of different scales (see
/// [`QAdd`]); `a`, `b`, `y` have the same length and storage.
///
/// # Panics
/// If the lengths differ.
pub fn qadd(p: &QAdd, a: &[u8], b: &[u8], y: &mut [u8]) {
    assert!(a.len() == y.len() && b.len() == y.len());
    for ((yv, av), bv) in y.iter_mut().zip(a).zip(b) {
        let sa = (v(*av) - p.a_zero) * (1 << p.left_shift);
        let sb = (v(*bv) - p.b_zero) * (1 << p.left_shift);
        let sa = multiply_by_quantized_multiplier(sa, p.a_mult, p.a_shift);
        let sb = multiply_by_quantized_multiplier(sb, p.b_mult, p.b_shift);
        *yv = p.out.put(multiply_by_quantized_multiplier(
            sa + sb,
            p.out_mult,
            p.out_shift,
        ));
    }
}

/// Requantization of [`qmul`]: `y = y_zero + (a - a_zero) * (b - b_zero) * M`
/// with `M = s_a * s_b / s_y`; the product (|p| <= 65,536) is shifted left
/// by `left` first and `M / 2^left` is `mult * 2^(shift - 31)`, so the
/// doubling high multiply keeps `left` more fraction bits (see
/// [`qglobal_avg_pool`]).
#[derive(Clone, Copy, Debug)]
pub struct QMul {
    /// Zero point of input a.
    pub a_zero: i32,
    /// Zero point of input b.
    pub b_zero: i32,
    /// Q0.31 multiplier of `M / 2^left`.
    pub mult: i32,
    /// Its shift.
    pub shift: i32,
    /// Left shift of the product (<= 14).
    pub left: i32,
    /// Output zero point and clamp range.
    pub out: OutRange,
}

impl QMul {
    #[inline]
    fn one(&self, a: u8, b: u8) -> u8 {
        let p = (v(a) - self.a_zero) * (v(b) - self.b_zero);
        self.out.put(multiply_by_quantized_multiplier(
            p << self.left,
            self.mult,
            self.shift,
        ))
    }
}

/// `y = a * b` element-wise on int8 tensors of the same length (see [`QMul`]).
///
/// # Panics
/// If the lengths differ.
pub fn qmul(p: &QMul, a: &[u8], b: &[u8], y: &mut [u8]) {
    assert!(a.len() == y.len() && b.len() == y.len());
    for ((yv, av), bv) in y.iter_mut().zip(a).zip(b) {
        *yv = p.one(*av, *bv);
    }
}

/// `y = a * b` where `a` is an `[hw][c]` image and `b` holds one value per
/// channel (a squeeze-excite gate): `y[p][ch] = a[p][ch] * b[ch]`.
///
/// # Panics
/// If `a` or `y` is shorter than `hw * c` or `b` than `c`.
pub fn qmul_channel(p: &QMul, hw: usize, c: usize, a: &[u8], b: &[u8], y: &mut [u8]) {
    assert!(a.len() >= hw * c && y.len() >= hw * c && b.len() >= c);
    for px in 0..hw {
        let (ar, yr) = (&a[px * c..][..c], &mut y[px * c..][..c]);
        for ((yv, av), bv) in yr.iter_mut().zip(ar).zip(&b[..c]) {
            *yv = p.one(*av, *bv);
        }
    }
}

/// Global average pool of an int8 `[hw][c]` image into `[c]`: per channel
/// `y = clamp(y_zero + sum (x - x_zero) * M)` with `M = s_x / (s_y * hw)` as
/// `(mult, shift, left)`: the sum is first shifted left by `left` and
/// `M / 2^left` is `mult * 2^(shift - 31)`, so the high multiply keeps
/// `left` more fraction bits (as TFLite's Add shifts its inputs by 20): with
/// `M` near 1/8 the doubling high multiply would otherwise round at 1/8
/// of a step and the double rounding would be off by one on ~1 value in 6.
/// kiln-codegen takes the largest `left` (<= 20) with `255 * hw * 2^left < 2^30`.
///
/// # Panics
/// If `x` is shorter than `hw * c` or `y` than `c`.
pub fn qglobal_avg_pool(
    hw: usize,
    c: usize,
    x: &[u8],
    x_zero: i32,
    (mult, shift, left): (i32, i32, i32),
    out: OutRange,
    y: &mut [u8],
) {
    assert!(x.len() >= hw * c && y.len() >= c);
    for (ch, yv) in y[..c].iter_mut().enumerate() {
        let mut acc = 0i32;
        for p in 0..hw {
            acc += v(x[p * c + ch]) - x_zero;
        }
        *yv = out.put(multiply_by_quantized_multiplier(acc << left, mult, shift));
    }
}

/// Table lookup for any element-wise function of one int8 tensor (hard
/// swish, sigmoid, ...): `y[i] = table[x[i] as u8]`, the table's 256 entries
/// indexed by the input's byte (two's complement: index 128 is -128) and
/// computed at codegen from the input's and output's scales and zero points.
///
/// # Panics
/// If the lengths differ.
pub fn qlut(table: &[u8; 256], x: &[u8], y: &mut [u8]) {
    assert_eq!(x.len(), y.len());
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv = table[*xv as usize];
    }
}

/// `round(r)` with ties to even, for `|r| < 2^23` (callers clamp first).
#[inline]
fn round_half_even(r: f32) -> i32 {
    let t = r as i32; // toward zero
    let frac = r - t as f32; // exact
    let odd = t & 1 != 0;
    if frac > 0.5 || (frac == 0.5 && odd) {
        t + 1
    } else if frac < -0.5 || (frac == -0.5 && odd) {
        t - 1
    } else {
        t
    }
}

/// ONNX `QuantizeLinear` to int8: `y = saturate(round_half_even(x / scale) +
/// zero_point)` (NaN gives the zero point).
///
/// # Panics
/// If the lengths differ.
pub fn quantize(x: &[f32], scale: f32, zero_point: i32, y: &mut [u8]) {
    assert_eq!(x.len(), y.len());
    for (yv, xv) in y.iter_mut().zip(x) {
        let r = (*xv / scale).clamp(-1.0e6, 1.0e6);
        let r = if r.is_nan() { 0 } else { round_half_even(r) };
        *yv = (r + zero_point).clamp(-128, 127) as i8 as u8;
    }
}

/// ONNX `DequantizeLinear` from int8: `y = (x - zero_point) * scale` in f32.
///
/// # Panics
/// If the lengths differ.
pub fn dequantize(x: &[u8], scale: f32, zero_point: i32, y: &mut [f32]) {
    assert_eq!(x.len(), y.len());
    for (yv, xv) in y.iter_mut().zip(x) {
        *yv = (v(*xv) - zero_point) as f32 * scale;
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn quantize_rounds_half_to_even_and_saturates() {
        let x = [
            0.5f32,
            1.5,
            2.5,
            -0.5,
            -1.5,
            -2.5,
            1000.0,
            -1000.0,
            f32::NAN,
            0.49,
        ];
        let mut y = [0u8; 10];
        quantize(&x, 1.0, 0, &mut y);
        let got: Vec<i8> = y.iter().map(|b| *b as i8).collect();
        assert_eq!(got, [0, 2, 2, 0, -2, -2, 127, -128, 0, 0]);
        quantize(&[0.3], 0.1, -10, &mut y[..1]);
        assert_eq!(y[0] as i8, -7);
    }

    #[test]
    fn dequantize_inverts_quantize_on_the_grid() {
        let q: Vec<u8> = (-128i32..=127).map(|i| i as i8 as u8).collect();
        let mut f = std::vec![0f32; 256];
        dequantize(&q, 0.05, 3, &mut f);
        let mut back = std::vec![0u8; 256];
        quantize(&f, 0.05, 3, &mut back);
        assert_eq!(back, q);
    }

    /// Float reference of an add: dequantize, add, quantize (round half
    /// even); the integer path may differ by one step where the float sum is
    /// near a rounding boundary.
    #[test]
    fn add_is_within_one_step_of_float_and_mostly_equal() {
        let (sa, sb, sy) = (0.02f64, 0.05f64, 0.06f64);
        let (za, zb, zy) = (3, -7, 5);
        let twice = 2.0 * sa.max(sb);
        let qm = |m: f64| {
            // simple quantize_multiplier for the test
            let mut e = 0;
            let mut f = m;
            while f < 0.5 {
                f *= 2.0;
                e -= 1;
            }
            while f >= 1.0 {
                f /= 2.0;
                e += 1;
            }
            let q = (f * (1u64 << 31) as f64).round() as i64;
            if q == 1 << 31 {
                ((q / 2) as i32, e + 1)
            } else {
                (q as i32, e)
            }
        };
        let (am, ash) = qm(sa / twice);
        let (bm, bsh) = qm(sb / twice);
        let (om, osh) = qm(twice / ((1 << 20) as f64 * sy));
        let p = QAdd {
            a_zero: za,
            b_zero: zb,
            left_shift: 20,
            a_mult: am,
            a_shift: ash,
            b_mult: bm,
            b_shift: bsh,
            out_mult: om,
            out_shift: osh,
            out: OutRange {
                zero_point: zy,
                lo: -128,
                hi: 127,
            },
        };
        let a: Vec<u8> = (0..256 * 256).map(|i| (i % 256) as u8).collect();
        let b: Vec<u8> = (0..256 * 256).map(|i| (i / 256) as u8).collect();
        let mut y = std::vec![0u8; a.len()];
        qadd(&p, &a, &b, &mut y);
        let (mut off, mut ties) = (0, 0);
        for i in 0..a.len() {
            let real = sa * (v(a[i]) - za) as f64 + sb * (v(b[i]) - zb) as f64;
            let r = real / sy;
            let want = (r.round_ties_even() as i32 + zy).clamp(-128, 127);
            let d = (v(y[i]) - want).abs();
            assert!(d <= 1, "a={} b={}", v(a[i]), v(b[i]));
            // exact ties: float rounds half to even, the integer path up
            if ((r - r.floor()) - 0.5).abs() < 1e-6 {
                ties += 1;
            } else {
                off += d as usize;
            }
        }
        assert!(
            off * 100 <= a.len(),
            "{off} of {} off by one ({ties} ties)",
            a.len()
        );
    }

    #[test]
    fn mul_matches_float_within_one_step() {
        let (sa, sb, sy) = (0.03f64, 0.02f64, 0.05f64);
        let m = sa * sb / sy / (1 << 14) as f64;
        let (mut q, mut e) = (m, 0);
        while q < 0.5 {
            q *= 2.0;
            e -= 1;
        }
        let p = QMul {
            a_zero: 7,
            b_zero: -3,
            mult: (q * (1u64 << 31) as f64).round() as i32,
            shift: e,
            left: 14,
            out: OutRange {
                zero_point: -2,
                lo: -128,
                hi: 127,
            },
        };
        let a: Vec<u8> = (0..65536).map(|i| (i % 256) as u8).collect();
        let b: Vec<u8> = (0..65536).map(|i| (i / 256) as u8).collect();
        let mut y = std::vec![0u8; a.len()];
        qmul(&p, &a, &b, &mut y);
        let mut off = 0;
        for i in 0..a.len() {
            let real = sa * (v(a[i]) - 7) as f64 * sb * (v(b[i]) + 3) as f64;
            let want = ((real / sy).round_ties_even() as i32 - 2).clamp(-128, 127);
            let d = (v(y[i]) - want).abs();
            assert!(d <= 1, "a={} b={}", v(a[i]), v(b[i]));
            off += d as usize;
        }
        assert!(off * 100 <= a.len(), "{off} off by one");
        // per channel: the same values with b broadcast over 3 pixels
        let (a2, b2) = (&a[..6], &b[..2]);
        let mut y2 = [0u8; 6];
        qmul_channel(&p, 3, 2, a2, b2, &mut y2);
        for px in 0..3 {
            for ch in 0..2 {
                let mut one = [0u8];
                qmul(&p, &a2[px * 2 + ch..][..1], &b2[ch..][..1], &mut one);
                assert_eq!(y2[px * 2 + ch], one[0]);
            }
        }
    }

    #[test]
    fn global_average_pool_and_lut() {
        // 4 pixels, 2 channels; M = 1/4 = 2^30 * 2^(-1-31)
        let x: Vec<u8> = [10i8, -4, 20, -4, 30, -4, 41, -5]
            .iter()
            .map(|v| *v as u8)
            .collect();
        let mut y = [0u8; 2];
        let out = OutRange {
            zero_point: 1,
            lo: -128,
            hi: 127,
        };
        qglobal_avg_pool(4, 2, &x, 0, (1 << 30, -1, 0), out, &mut y);
        // 101/4 = 25.25 rounds twice (50.5 -> 51, 25.5 -> 26), +1;
        // -17/4 = -4.25: -8.5 -> -8, -4 -> -4, +1
        assert_eq!([y[0] as i8, y[1] as i8], [27, -3]);
        let table: [u8; 256] = core::array::from_fn(|i| (i as u8).wrapping_add(1));
        let mut z = [0u8; 2];
        qlut(&table, &y, &mut z);
        assert_eq!([z[0] as i8, z[1] as i8], [28, -2]);
        // with 8 more fraction bits the same sums round once: 25.25 -> 25
        qglobal_avg_pool(4, 2, &x, 0, (1 << 30, -9, 8), out, &mut y);
        assert_eq!([y[0] as i8, y[1] as i8], [26, -3]);
    }
}
