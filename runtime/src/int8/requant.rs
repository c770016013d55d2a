//! Fixed-point requantization as gemmlowp and TensorFlow Lite define it.
//!
//! A real multiplier `M` (e.g. `s_x * s_w / s_y`, positive) is written as
//! `q * 2^(shift - 31)` with `q` in `[2^30, 2^31)` (a Q0.31 fraction in
//! `[0.5, 1)`); kiln-ir's `quantize_multiplier` computes `(q, shift)` at
//! codegen. At run time an i32 accumulator is scaled by
//! [`multiply_by_quantized_multiplier`]: a left shift for `shift > 0`, the
//! saturating rounding doubling high multiply by `q`, then a rounding right
//! shift for `shift < 0`.
//!
//! Sources: gemmlowp `fixedpoint/fixedpoint.h` (`SaturatingRoundingDoublingHighMul`,
//! `RoundingDivideByPOT`) and TensorFlow Lite `kernels/internal/common.h`
//! (`MultiplyByQuantizedMultiplier`, the variant without double rounding's
//! `TFLITE_SINGLE_ROUNDING`): two roundings, so a result may be one step
//! off the exactly rounded product (e.g. 101/4 = 25.25 gives 26: 50.5 -> 51
//! in the high multiply, then 25.5 -> 26).

/// `round(a * b / 2^31)` (a positive tie rounds up, a negative tie toward
/// zero, as gemmlowp's nudge-and-truncate does), saturated: the one overflow
/// (`a = b = i32::MIN`) gives `i32::MAX` (gemmlowp's
/// `SaturatingRoundingDoublingHighMul`).
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == b && a == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    // Integer division truncates toward zero, as C++'s does.
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// `x / 2^exponent` rounded to nearest, ties away from zero (gemmlowp's
/// `RoundingDivideByPOT`); `exponent` in `0..=31`.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    debug_assert!((0..=31).contains(&exponent));
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + (x < 0) as i32;
    (x >> exponent) + (remainder > threshold) as i32
}

/// `x * q * 2^(shift - 31)`, rounded (TensorFlow Lite's
/// `MultiplyByQuantizedMultiplier`): `shift` in `-31..=30`; the left shift
/// for a positive `shift` wraps as TFLite's does (callers keep
/// `|x| * 2^shift` in range: accumulators of real layers are far below).
#[inline]
pub fn multiply_by_quantized_multiplier(x: i32, q: i32, shift: i32) -> i32 {
    let left = if shift > 0 { shift } else { 0 };
    let right = if shift > 0 { 0 } else { -shift };
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(x.wrapping_mul(1 << left), q),
        right,
    )
}

/// The output side of a requantized kernel: `zero_point + scaled`, clamped to
/// `[lo, hi]` (a subrange of `-128..=127` that folds ReLU, ReLU6 or Clip into
/// the output range), as the byte of an i8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutRange {
    /// Output zero point, in `-128..=127`.
    pub zero_point: i32,
    /// Smallest output value (>= -128).
    pub lo: i32,
    /// Largest output value (<= 127).
    pub hi: i32,
}

impl OutRange {
    /// `clamp(zero_point + v, lo, hi)` as an i8 byte.
    #[inline]
    pub fn put(&self, v: i32) -> u8 {
        (self.zero_point.saturating_add(v)).clamp(self.lo, self.hi) as i8 as u8
    }
}

/// An i8 stored as a byte (two's complement) back to i32.
#[inline]
pub(crate) fn v(b: u8) -> i32 {
    b as i8 as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `x * m` rounded half away from zero in exact rational arithmetic
    /// (i128), the value the fixed-point path approximates.
    fn exact(x: i32, q: i32, shift: i32) -> i64 {
        let num = x as i128 * q as i128;
        let den_log = 31 - shift;
        let den = 1i128 << den_log;
        let (a, neg) = if num < 0 { (-num, true) } else { (num, false) };
        let r = (a + den / 2) / den;
        (if neg { -r } else { r }) as i64
    }

    #[test]
    fn high_mul_matches_gemmlowp_cases() {
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(1 << 30, 1 << 30),
            1 << 29
        );
        // 3 * 2^30 / 2^31 = 1.5 -> 2; -1.5 -> -1: the negative nudge
        // (1 - 2^30) with truncating division rounds a negative tie up.
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(-5, 1 << 29), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(0, 12345), 0);
    }

    #[test]
    fn divide_by_pot_rounds_half_away_from_zero() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(4, 1), 2);
        assert_eq!(rounding_divide_by_pot(7, 2), 2);
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(6, 2), 2);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(123, 0), 123);
    }

    #[test]
    fn requantization_is_within_one_of_exact_rounding() {
        // deterministic pseudo-random sweep (xorshift)
        let mut s = 0x2545_f491_u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        for _ in 0..20_000 {
            let x = (next() as i32) >> (next() % 16);
            let q = (1 << 30) + (next() % (1 << 30)) as i32;
            let shift = -((next() % 20) as i32);
            let got = multiply_by_quantized_multiplier(x, q, shift) as i64;
            let want = exact(x, q, shift);
            // Two roundings (high mul, then the shift) may differ from one
            // exact rounding by one step.
            assert!((got - want).abs() <= 1, "x={x} q={q} shift={shift}");
        }
        // a positive shift scales up
        assert_eq!(multiply_by_quantized_multiplier(10, 1 << 30, 2), 20);
    }

    #[test]
    fn out_range_clamps_to_the_folded_activation() {
        let r = OutRange {
            zero_point: -128,
            lo: -128,
            hi: 0,
        };
        assert_eq!(r.put(-5), 128u8); // -128
        assert_eq!(r.put(300) as i8, 0);
        assert_eq!(r.put(100) as i8, -28);
    }
}
