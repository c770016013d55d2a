//! Element-wise functions of one value that ONNX models use besides the
//! activations kiln fuses into convolutions (see [`crate::Activation`]):
//! Abs, Neg, Exp, Log, Sqrt, Tanh, Erf, Pow by a constant, SiLU, GELU, ELU.
//!
//! `no_std` has no libm, so the transcendental functions are kiln's own:
//! `exp` from `elementwise.rs` (relative error below 2e-7), a logarithm
//! from the exponent bits and an atanh series, tanh through expm1's series
//! near 0, erf from its series below 1 and Abramowitz and Stegun's formula
//! 7.1.26 above (absolute error below 1.5e-7), and a square root by Newton's
//! method in f64. Each follows the ONNX operator's definition for NaN (a NaN
//! input gives NaN), infinities and the edges of its domain
//! (`Log(0) = -inf`, `Sqrt(-1) = NaN`).

use crate::elementwise::exp;

/// A function of one f32, applied element by element by [`unary`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// |x|.
    Abs,
    /// -x.
    Neg,
    /// e^x (`inf` above 88.72, 0 below -87).
    Exp,
    /// The natural logarithm (`-inf` at 0, NaN below 0).
    Log,
    /// The square root (NaN below 0).
    Sqrt,
    /// 1 / sqrt(x).
    Rsqrt,
    /// 1 / x.
    Reciprocal,
    /// x * x.
    Square,
    /// x to a constant power (ONNX Pow with a constant exponent): NaN for a
    /// negative x and a non-integer exponent, as C's `powf`.
    Pow {
        /// The exponent.
        exponent: f32,
    },
    /// The hyperbolic tangent.
    Tanh,
    /// The error function.
    Erf,
    /// x * sigmoid(x) (SiLU, Swish).
    Silu,
    /// x * 0.5 * (1 + erf(x / sqrt 2)) (ONNX Gelu, exact form).
    Gelu,
    /// 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^p))) with p = 3 (ONNX
    /// Gelu, approximate = "tanh"), or p = 2 where `square` (a form tract
    /// recognises in hand-written graphs).
    GeluTanh {
        /// Use x^2 instead of x^3 in the inner polynomial.
        square: bool,
    },
    /// ELU: x for x > 0, else alpha * (e^x - 1) (SELU is gamma times it).
    Elu {
        /// The scale of the negative side.
        alpha: f32,
    },
}

impl UnaryOp {
    /// The function of one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            UnaryOp::Abs => f32::from_bits(x.to_bits() & 0x7fff_ffff),
            UnaryOp::Neg => -x,
            UnaryOp::Exp => exp_full(x),
            UnaryOp::Log => ln(x),
            UnaryOp::Sqrt => sqrt(x),
            UnaryOp::Rsqrt => 1.0 / sqrt(x),
            UnaryOp::Reciprocal => 1.0 / x,
            UnaryOp::Square => x * x,
            UnaryOp::Pow { exponent } => pow(x, exponent),
            UnaryOp::Tanh => tanh(x),
            UnaryOp::Erf => erf(x),
            UnaryOp::Silu => x * sigmoid(x),
            UnaryOp::Gelu => 0.5 * x * (1.0 + erf(x * core::f32::consts::FRAC_1_SQRT_2)),
            UnaryOp::GeluTanh { square } => {
                // sqrt(2 / pi)
                const K: f32 = 0.797_884_6;
                let p = if square { x * x } else { x * x * x };
                0.5 * x * (1.0 + tanh(K * (x + 0.044715 * p)))
            }
            UnaryOp::Elu { alpha } => {
                if x > 0.0 {
                    x
                } else {
                    alpha * expm1(x)
                }
            }
        }
    }
}

/// Applies `op` to every element of `data` in place (any length, any
/// layout). Never panics.
#[inline]
pub fn unary(data: &mut [f32], op: UnaryOp) {
    // One loop per op, so that each is specialised (the simple ones vectorise).
    macro_rules! each {
        ($($p:pat),*) => {
            match op {
                $($p => data.iter_mut().for_each(|v| *v = op.apply(*v)),)*
            }
        };
    }
    each!(
        UnaryOp::Abs,
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Reciprocal,
        UnaryOp::Square,
        UnaryOp::Pow { .. },
        UnaryOp::Tanh,
        UnaryOp::Erf,
        UnaryOp::Silu,
        UnaryOp::Gelu,
        UnaryOp::GeluTanh { .. },
        UnaryOp::Elu { .. }
    )
}

/// e^x with IEEE edges: NaN stays NaN, overflow gives `inf`.
#[inline(always)]
fn exp_full(x: f32) -> f32 {
    if x.is_nan() {
        x
    } else if x > 88.722_83 {
        f32::INFINITY
    } else {
        exp(x)
    }
}

/// 1 / (1 + e^-x), keeping exp's argument at or below 0; NaN stays NaN.
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x >= 0.0 {
        1.0 / (1.0 + exp(-x))
    } else {
        let e = exp(x);
        e / (1.0 + e)
    }
}

/// k! for k = 0..=8.
const FACT: [f32; 9] = [1.0, 1.0, 2.0, 6.0, 24.0, 120.0, 720.0, 5_040.0, 40_320.0];

/// e^x - 1, accurate near 0 (a Taylor series for |x| < 0.35, where
/// `exp(x) - 1` would lose digits to cancellation).
#[inline(always)]
fn expm1(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    if x.abs() < 0.35 {
        // x + x^2/2! + ... + x^9/9!: the next term is below 3e-11 here.
        let mut s = 1.0 / 362_880.0;
        for k in (1..=8).rev() {
            s = s * x + 1.0 / FACT[k];
        }
        s * x
    } else {
        exp_full(x) - 1.0
    }
}

/// tanh(x) = sign(x) (1 - e^-2|x|) / (1 + e^-2|x|), through expm1 so that
/// small |x| keeps its precision; NaN stays NaN, +-inf gives +-1.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    let t = if a > 9.1 {
        1.0 // 1 - tanh(9.1) is below half an ulp of 1
    } else {
        let m = expm1(-2.0 * a);
        -m / (2.0 + m)
    };
    if x < 0.0 { -t } else { t }
}

/// 2/sqrt(pi) (-1)^n / (n! (2n + 1)) for n = 0..=12: erf's Maclaurin
/// coefficients of x^(2n+1).
const ERF_SERIES: [f32; 13] = {
    let mut c = [0.0f32; 13];
    let mut fact = 1.0f64;
    let mut n = 0;
    while n < 13 {
        if n > 0 {
            fact *= n as f64;
        }
        let sign = if n % 2 == 0 { 1.0 } else { -1.0 };
        c[n] = (sign * core::f64::consts::FRAC_2_SQRT_PI / (fact * (2 * n + 1) as f64)) as f32;
        n += 1;
    }
    c
};

/// erf(x): for |x| < 1 its Maclaurin series to x^25 (the next term is below
/// 1e-10), else Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7); odd in x.
#[inline(always)]
fn erf(x: f32) -> f32 {
    if x.is_nan() {
        return x;
    }
    let a = x.abs();
    if a < 1.0 {
        let x2 = x * x;
        let mut s = 0.0f32;
        for c in ERF_SERIES.iter().rev() {
            s = s * x2 + c;
        }
        return x * s;
    }
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    let y = 1.0 - poly * exp(-a * a);
    if x < 0.0 { -y } else { y }
}

/// The natural logarithm: x = m 2^k with m in [sqrt(1/2), sqrt(2)), then
/// ln m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, by its odd series
/// to s^11 (the next term is below 1e-10). Subnormals are scaled up first.
#[inline(always)]
fn ln(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return f32::NEG_INFINITY;
    }
    if x == f32::INFINITY {
        return x;
    }
    let (x, extra) = if x < f32::MIN_POSITIVE {
        (x * 8_388_608.0, -23) // 2^23
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    let mut k = ((bits >> 23) & 0xff) as i32 - 127 + extra;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000); // [1, 2)
    if m > core::f32::consts::SQRT_2 {
        m *= 0.5;
        k += 1;
    }
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let odd =
        2.0 / 3.0 + s2 * (2.0 / 5.0 + s2 * (2.0 / 7.0 + s2 * (2.0 / 9.0 + s2 * (2.0 / 11.0))));
    k as f32 * core::f32::consts::LN_2 + s * (2.0 + s2 * odd)
}

/// The square root by Newton's method in f64 from an estimate out of the
/// exponent bits (error below 4%, squared by each of four steps, so the
/// result is f32's correctly rounded root or one ulp from it); NaN below 0
/// and for NaN, `inf` for `inf`. (`f32::sqrt` is std's; the instructions
/// need `unsafe` on x86-64 and are unstable on wasm32.)
#[inline(always)]
fn sqrt(x: f32) -> f32 {
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 || x == f32::INFINITY {
        return x;
    }
    let xd = x as f64;
    // halve the exponent: a root within 4% (f32 subnormals are normal in f64)
    let mut y = f64::from_bits((xd.to_bits() >> 1) + (0x3ff_u64 << 51));
    for _ in 0..4 {
        y = 0.5 * (y + xd / y);
    }
    y as f32
}

/// x^e: integer exponents by repeated squaring (any sign of x), 0.5 as the
/// square root, others as e^(e ln x) (NaN for x < 0, as C's `powf`);
/// `x^0 = 1` even for NaN.
#[inline(always)]
pub(crate) fn pow(x: f32, e: f32) -> f32 {
    if e == 0.0 {
        return 1.0;
    }
    if e == 0.5 {
        return sqrt(x);
    }
    let n = e as i32;
    if n as f32 == e && n.unsigned_abs() <= 1 << 24 {
        let mut base = x;
        let mut left = n.unsigned_abs();
        let mut acc = 1.0;
        while left > 0 {
            if left & 1 == 1 {
                acc *= base;
            }
            base *= base;
            left >>= 1;
        }
        return if n < 0 { 1.0 / acc } else { acc };
    }
    if x.is_nan() || x < 0.0 {
        return f32::NAN;
    }
    if x == 0.0 {
        return if e > 0.0 { 0.0 } else { f32::INFINITY };
    }
    exp_full(e * ln(x))
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    /// erf by its Maclaurin series in f64: over |x| <= 4.5 (the tests'
    /// range) the largest term is about 5e7, so the sum keeps 1e-8.
    fn erf64(x: f64) -> f64 {
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..200 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        sum * core::f64::consts::FRAC_2_SQRT_PI
    }

    fn gelu_tanh64(x: f64, p: i32) -> f64 {
        let k = (2.0 / core::f64::consts::PI).sqrt();
        0.5 * x * (1.0 + (k * (x + 0.044715 * x.powi(p))).tanh())
    }

    type Reference = fn(f64) -> f64;

    /// Every op against std's f64 functions over -4.5..4.5 ((0, 4.5] for
    /// the ones defined there), within `tol * (1 + |want|)`.
    #[test]
    // Miri perturbs std's float functions on purpose; this checks arithmetic.
    #[cfg_attr(miri, ignore)]
    fn ops_match_std() {
        let cases: [(UnaryOp, Reference, f64); 16] = [
            (UnaryOp::Abs, |x| x.abs(), 0.0),
            (UnaryOp::Neg, |x| -x, 0.0),
            (UnaryOp::Exp, |x| x.exp(), 3e-7),
            (UnaryOp::Log, |x| x.ln(), 3e-7),
            (UnaryOp::Sqrt, |x| x.sqrt(), 1.2e-7),
            (UnaryOp::Rsqrt, |x| 1.0 / x.sqrt(), 2.4e-7),
            (UnaryOp::Reciprocal, |x| 1.0 / x, 1.2e-7),
            (UnaryOp::Square, |x| x * x, 1.2e-7),
            (UnaryOp::Pow { exponent: 1.5 }, |x| x.powf(1.5), 1e-6),
            (UnaryOp::Tanh, |x| x.tanh(), 3e-7),
            (UnaryOp::Erf, erf64, 3e-7),
            (UnaryOp::Silu, |x| x / (1.0 + (-x).exp()), 5e-7),
            (
                UnaryOp::Gelu,
                |x| 0.5 * x * (1.0 + erf64(x / 2f64.sqrt())),
                5e-7,
            ),
            (
                UnaryOp::GeluTanh { square: false },
                |x| gelu_tanh64(x, 3),
                5e-7,
            ),
            (
                UnaryOp::GeluTanh { square: true },
                |x| gelu_tanh64(x, 2),
                5e-7,
            ),
            (
                UnaryOp::Elu { alpha: 0.7 },
                |x| if x > 0.0 { x } else { 0.7 * x.exp_m1() },
                3e-7,
            ),
        ];
        for (op, want, tol) in cases {
            let positive_only = matches!(
                op,
                UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Rsqrt | UnaryOp::Pow { .. }
            );
            for i in -600..=600 {
                let x = i as f32 * 0.0075 + 0.00013;
                if positive_only && x <= 0.0 {
                    continue;
                }
                let w = want(x as f64);
                let mut d = [x];
                unary(&mut d, op);
                let err = (d[0] as f64 - w).abs();
                assert!(
                    err <= tol * (1.0 + w.abs()),
                    "{op:?}({x}) = {}, want {w} (error {err:e})",
                    d[0]
                );
            }
        }
    }

    #[test]
    fn edges_follow_ieee_and_onnx() {
        let nan_in = [
            UnaryOp::Abs,
            UnaryOp::Neg,
            UnaryOp::Exp,
            UnaryOp::Log,
            UnaryOp::Sqrt,
            UnaryOp::Tanh,
            UnaryOp::Erf,
            UnaryOp::Silu,
            UnaryOp::Gelu,
            UnaryOp::GeluTanh { square: true },
            UnaryOp::Elu { alpha: 1.0 },
            UnaryOp::Pow { exponent: 2.5 },
        ];
        for op in nan_in {
            assert!(op.apply(f32::NAN).is_nan(), "{op:?}(NaN)");
        }
        assert_eq!(UnaryOp::Exp.apply(100.0), f32::INFINITY);
        assert_eq!(UnaryOp::Exp.apply(-100.0), 0.0);
        assert_eq!(UnaryOp::Log.apply(0.0), f32::NEG_INFINITY);
        assert!(UnaryOp::Log.apply(-1.0).is_nan());
        assert_eq!(UnaryOp::Log.apply(f32::INFINITY), f32::INFINITY);
        let tiny = 1e-40f32; // subnormal
        assert!((UnaryOp::Log.apply(tiny) as f64 - (tiny as f64).ln()).abs() < 1e-4);
        assert!(UnaryOp::Sqrt.apply(-4.0).is_nan());
        assert_eq!(UnaryOp::Sqrt.apply(f32::INFINITY), f32::INFINITY);
        assert_eq!(UnaryOp::Tanh.apply(f32::INFINITY), 1.0);
        assert_eq!(UnaryOp::Tanh.apply(f32::NEG_INFINITY), -1.0);
        assert_eq!(UnaryOp::Erf.apply(10.0), 1.0);
        assert_eq!(UnaryOp::Pow { exponent: 3.0 }.apply(-2.0), -8.0);
        assert_eq!(UnaryOp::Pow { exponent: -2.0 }.apply(-2.0), 0.25);
        assert!(UnaryOp::Pow { exponent: 1.5 }.apply(-2.0).is_nan());
        assert_eq!(UnaryOp::Pow { exponent: 1.5 }.apply(0.0), 0.0);
        assert_eq!(UnaryOp::Reciprocal.apply(0.0), f32::INFINITY);
        assert_eq!(UnaryOp::Abs.apply(-0.0).to_bits(), 0);
        assert_eq!(UnaryOp::Elu { alpha: 2.0 }.apply(f32::NEG_INFINITY), -2.0);
    }

    #[test]
    fn newton_root_is_within_an_ulp() {
        for &x in &[1e-40f32, 1e-30, 0.5, 2.0, 3.0, 1e10, 3.4e38, 123.456] {
            let got = sqrt(x);
            let want = (x as f64).sqrt() as f32;
            assert!(
                got.to_bits().abs_diff(want.to_bits()) <= 1,
                "sqrt({x}) = {got}, want {want}"
            );
        }
        assert!(sqrt(-1.0).is_nan() && sqrt(f32::NAN).is_nan());
        assert_eq!(sqrt(0.0), 0.0);
        assert_eq!(sqrt(f32::INFINITY), f32::INFINITY);
    }
}
