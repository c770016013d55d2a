//! Activations, element-wise binary ops, softmax.

/// An activation applied element-wise, alone or fused after a conv / dense.
///
/// No variant panics, whatever its parameters: clamps are a lower bound
/// then an upper one, each a comparison that keeps a NaN `x` NaN (as ONNX's
/// Relu and Clip and onnxruntime do), not `f32::max`/`min`, which drop a NaN
/// and which wasm32 has no instruction for (a call each).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// The identity: x.
    None,
    /// max(x, 0).
    Relu,
    /// clamp(x, min, max); ReLU6 is `Clip { min: 0, max: 6 }`.
    Clip {
        /// Lower bound (may be `f32::NEG_INFINITY`).
        min: f32,
        /// Upper bound (may be `f32::INFINITY`).
        max: f32,
    },
    /// x * clamp(x + 3, 0, 6) / 6
    HardSwish,
    /// clamp(alpha * x + beta, 0, 1)
    HardSigmoid {
        /// Slope (ONNX's default is 0.2).
        alpha: f32,
        /// Offset (ONNX's default is 0.5).
        beta: f32,
    },
    /// 1 / (1 + e^-x), with kiln's own `exp` (relative error below 2e-7;
    /// 0 below x = -87).
    Sigmoid,
}

// `f32::clamp` panics when min > max or on NaN bounds; max/min never panic.
#[allow(clippy::manual_clamp)]
impl Activation {
    /// The activation of one value.
    #[inline(always)]
    pub fn apply(self, x: f32) -> f32 {
        match self {
            Activation::None => x,
            Activation::Relu => above(x, 0.0),
            Activation::Clip { min, max } => below(above(x, min), max),
            Activation::HardSwish => x * below(above(x + 3.0, 0.0), 6.0) * (1.0 / 6.0),
            Activation::HardSigmoid { alpha, beta } => below(above(alpha * x + beta, 0.0), 1.0),
            Activation::Sigmoid => sigmoid(x),
        }
    }
}

/// `lo` if `x` is less than it, else `x` (a NaN `x` stays NaN).
#[inline(always)]
fn above(x: f32, lo: f32) -> f32 {
    if x < lo { lo } else { x }
}

/// `hi` if `x` is greater than it, else `x` (a NaN `x` stays NaN).
#[inline(always)]
fn below(x: f32, hi: f32) -> f32 {
    if x > hi { hi } else { x }
}

/// Applies `act` to every element of `data` in place (any length, any
/// layout). Each variant gets its own loop so that the simple ones vectorise.
#[inline]
#[allow(clippy::manual_clamp)]
pub fn activate(data: &mut [f32], act: Activation) {
    match act {
        Activation::None => {}
        Activation::Relu => data.iter_mut().for_each(|v| *v = above(*v, 0.0)),
        Activation::Clip { min, max } => data
            .iter_mut()
            .for_each(|v| *v = below(above(*v, min), max)),
        Activation::HardSwish => data
            .iter_mut()
            .for_each(|v| *v = Activation::HardSwish.apply(*v)),
        Activation::HardSigmoid { .. } => data.iter_mut().for_each(|v| *v = act.apply(*v)),
        Activation::Sigmoid => data.iter_mut().for_each(|v| *v = sigmoid(*v)),
    }
}

#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    // Symmetric form keeps exp's argument <= 0, so it never overflows.
    let e = exp(-x.max(-x));
    if x >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// exp(x) for f32 without libm: x = k ln2 + r with |r| <= ln2/2, a degree-6
/// Taylor polynomial for e^r (relative error < 2e-7), and 2^k built from the
/// exponent bits. Above 88 it is e^88 (no overflow); a NaN `x` gives NaN
/// (a comparison, not `f32::min`, which would turn it into 88).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    if x < -87.0 {
        return 0.0;
    }
    let x = if x > 88.0 { 88.0 } else { x };
    let k = (x * core::f32::consts::LOG2_E + if x >= 0.0 { 0.5 } else { -0.5 }) as i32;
    let kf = k as f32;
    // ln2 split in a high part exact in f32 and a low correction.
    let r = x - kf * 0.693_145_75 - kf * 1.428_606_8e-6;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let scale = f32::from_bits(((k + 127).clamp(1, 254) as u32) << 23);
    p * scale
}

/// An element-wise binary operation on f32 (IEEE arithmetic: nothing panics,
/// division by zero gives an infinity or NaN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    /// a + b.
    Add,
    /// a - b.
    Sub,
    /// a * b.
    Mul,
    /// a / b.
    Div,
    /// The larger of a and b (`f32::max`: a NaN operand yields the other).
    Max,
    /// The smaller of a and b (`f32::min`: a NaN operand yields the other).
    Min,
    /// ONNX PRelu / LeakyRelu with slope b: `a * b` where `a < 0`, else `a`
    /// (a NaN `a` stays NaN).
    PRelu,
}

impl BinaryOp {
    /// `a op b`.
    #[inline(always)]
    pub fn apply(self, a: f32, b: f32) -> f32 {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Max => a.max(b),
            BinaryOp::Min => a.min(b),
            BinaryOp::PRelu => prelu(a, b),
        }
    }
}

/// `x * slope` for negative `x`, else `x`; NaN stays NaN.
#[inline(always)]
fn prelu(x: f32, slope: f32) -> f32 {
    if x < 0.0 { x * slope } else { x }
}

macro_rules! per_op {
    ($op:expr, |$f:ident| $body:expr) => {
        match $op {
            BinaryOp::Add => {
                let $f = |a: f32, b: f32| a + b;
                $body
            }
            BinaryOp::Sub => {
                let $f = |a: f32, b: f32| a - b;
                $body
            }
            BinaryOp::Mul => {
                let $f = |a: f32, b: f32| a * b;
                $body
            }
            BinaryOp::Div => {
                let $f = |a: f32, b: f32| a / b;
                $body
            }
            BinaryOp::Max => {
                let $f = |a: f32, b: f32| a.max(b);
                $body
            }
            BinaryOp::Min => {
                let $f = |a: f32, b: f32| a.min(b);
                $body
            }
            BinaryOp::PRelu => {
                let $f = prelu;
                $body
            }
        }
    };
}

/// out = a op b, element by element, in any layout (all three the same
/// length; past the shortest, nothing is read or written). Never panics.
#[inline]
pub fn binary(op: BinaryOp, a: &[f32], b: &[f32], out: &mut [f32]) {
    per_op!(op, |f| out
        .iter_mut()
        .zip(a.iter().zip(b))
        .for_each(|(o, (x, y))| *o = f(*x, *y)))
}

/// In place, data = data op other (`data_is_lhs`) or other op data, element by
/// element in any layout (both the same length; past the shorter, nothing is
/// read or written). Never panics.
#[inline]
pub fn binary_inplace(op: BinaryOp, data: &mut [f32], other: &[f32], data_is_lhs: bool) {
    per_op!(op, |f| if data_is_lhs {
        data.iter_mut().zip(other).for_each(|(d, o)| *d = f(*d, *o))
    } else {
        data.iter_mut().zip(other).for_each(|(d, o)| *d = f(*o, *d))
    })
}

/// In place, `data` viewed as `[pixels][channels.len()]` combined with a
/// per-channel vector (NHWC broadcast of a [1, C, 1, 1] operand): each pixel's
/// `data[p][c] = data[p][c] op channels[c]` (`data_is_lhs`) or
/// `channels[c] op data[p][c]`. A trailing partial pixel is left unchanged;
/// empty `channels` leaves `data` unchanged. Never panics.
#[inline]
pub fn binary_broadcast_channel(
    op: BinaryOp,
    data: &mut [f32],
    channels: &[f32],
    data_is_lhs: bool,
) {
    let c = channels.len();
    if c == 0 {
        return;
    }
    per_op!(op, |f| for px in data.chunks_exact_mut(c) {
        if data_is_lhs {
            px.iter_mut()
                .zip(channels)
                .for_each(|(d, o)| *d = f(*d, *o))
        } else {
            px.iter_mut()
                .zip(channels)
                .for_each(|(d, o)| *d = f(*o, *d))
        }
    })
}

/// In place, data = data op scalar (`data_is_lhs`) or scalar op data, for every
/// element in any layout. Never panics.
#[inline]
pub fn binary_scalar(op: BinaryOp, data: &mut [f32], scalar: f32, data_is_lhs: bool) {
    per_op!(op, |f| if data_is_lhs {
        data.iter_mut().for_each(|d| *d = f(*d, scalar))
    } else {
        data.iter_mut().for_each(|d| *d = f(scalar, *d))
    })
}

/// In place, data *= factor, for every element. Never panics.
#[inline]
pub fn scale(data: &mut [f32], factor: f32) {
    data.iter_mut().for_each(|d| *d *= factor);
}

/// In place softmax over consecutive groups of `n` elements (the last axis,
/// or the channels of an NHWC tensor): each group becomes
/// `e^(v - max) / sum(e^(u - max))`, so it sums to 1 and large values do not
/// overflow. A trailing partial group is left unchanged, as is everything when
/// `n` is 0. Never panics.
pub fn softmax(data: &mut [f32], n: usize) {
    if n == 0 {
        return;
    }
    for group in data.chunks_exact_mut(n) {
        let max = group.iter().fold(f32::NEG_INFINITY, |m, v| m.max(*v));
        let mut sum = 0.0;
        for v in group.iter_mut() {
            *v = exp(*v - max);
            sum += *v;
        }
        let inv = 1.0 / sum;
        group.iter_mut().for_each(|v| *v *= inv);
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;

    #[test]
    // Miri perturbs std's float functions on purpose, so the reference moves;
    // this test checks arithmetic, not memory safety.
    #[cfg_attr(miri, ignore)]
    fn exp_matches_std_closely() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let (got, want) = (exp(x), std::primitive::f32::exp(x));
            assert!(
                ((got - want) / want).abs() < 5e-7,
                "exp({x}) = {got}, want {want}"
            );
            x += 0.173;
        }
        assert_eq!(exp(-100.0), 0.0);
    }

    #[test]
    fn activations_match_their_definitions() {
        for i in -80..80 {
            let x = i as f32 * 0.1;
            let naive = [
                x,
                if x > 0.0 { x } else { 0.0 },
                x.clamp(0.0, 6.0),
                x * (x + 3.0).clamp(0.0, 6.0) / 6.0,
                (0.3 * x + 0.4).clamp(0.0, 1.0),
                1.0 / (1.0 + (-x).exp()),
            ];
            let acts = [
                Activation::None,
                Activation::Relu,
                Activation::Clip { min: 0.0, max: 6.0 },
                Activation::HardSwish,
                Activation::HardSigmoid {
                    alpha: 0.3,
                    beta: 0.4,
                },
                Activation::Sigmoid,
            ];
            for (act, want) in acts.iter().zip(naive) {
                let mut d = [x];
                activate(&mut d, *act);
                assert!(
                    (d[0] - want).abs() < 1e-6,
                    "{act:?}({x}) = {}, want {want}",
                    d[0]
                );
            }
        }
    }

    #[test]
    fn binary_variants_agree_with_naive() {
        let a = [1.0, -2.0, 3.0, 4.0, 0.5, -6.0];
        let b = [2.0, 2.0, -1.0, 0.5, 3.0, 1.0];
        let ops = [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Max,
            BinaryOp::Min,
            BinaryOp::PRelu,
        ];
        for op in ops {
            let mut out = [0.0; 6];
            binary(op, &a, &b, &mut out);
            let mut inpl = b;
            binary_inplace(op, &mut inpl, &a, false);
            let mut sc = a;
            binary_scalar(op, &mut sc, 2.0, true);
            let mut rsc = a;
            binary_scalar(op, &mut rsc, 2.0, false);
            let ch = [10.0, -1.0, 0.25];
            let mut bc = a;
            binary_broadcast_channel(op, &mut bc, &ch, true);
            let mut rbc = a;
            binary_broadcast_channel(op, &mut rbc, &ch, false);
            for i in 0..6 {
                assert_eq!(out[i], op.apply(a[i], b[i]));
                assert_eq!(inpl[i], op.apply(a[i], b[i]));
                assert_eq!(sc[i], op.apply(a[i], 2.0));
                assert_eq!(rsc[i], op.apply(2.0, a[i]));
                assert_eq!(bc[i], op.apply(a[i], ch[i % 3]));
                assert_eq!(rbc[i], op.apply(ch[i % 3], a[i]));
            }
        }
    }

    #[test]
    fn activations_exp_and_softmax_keep_nan_as_onnxruntime_does() {
        // onnxruntime 1.32 (CPU): Relu, Clip(0, 6), HardSigmoid, HardSwish
        // and Sigmoid of NaN are NaN; a Softmax row holding a NaN or +inf
        // is NaN throughout
        for act in [
            Activation::Relu,
            Activation::Clip { min: 0.0, max: 6.0 },
            Activation::HardSwish,
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            Activation::Sigmoid,
        ] {
            assert!(act.apply(f32::NAN).is_nan(), "{act:?}");
            let mut d = [f32::NAN, -1.0, 7.0];
            activate(&mut d, act);
            assert!(
                d[0].is_nan() && !d[1].is_nan() && !d[2].is_nan(),
                "{act:?}: {d:?}"
            );
        }
        let relu6 = Activation::Clip { min: 0.0, max: 6.0 };
        assert_eq!(
            [-1.0, 7.0, f32::INFINITY, f32::NEG_INFINITY, 2.5].map(|x| relu6.apply(x)),
            [0.0, 6.0, 6.0, 0.0, 2.5]
        );
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(1000.0), exp(88.0));
        let mut rows = [1.0, f32::NAN, 2.0, 1.0, f32::INFINITY, 2.0, 1.0, 2.0, 3.0];
        softmax(&mut rows, 3);
        assert!(rows[..6].iter().all(|v| v.is_nan()), "{rows:?}");
        assert!(
            (rows[6..].iter().sum::<f32>() - 1.0).abs() < 1e-6,
            "{rows:?}"
        );
    }

    #[test]
    fn prelu_scales_negatives_and_keeps_nan() {
        let mut d = [-2.0, 0.0, 3.0, f32::NAN];
        binary_broadcast_channel(BinaryOp::PRelu, &mut d, &[0.5, 2.0], true);
        assert_eq!(d[..3], [-1.0, 0.0, 3.0]);
        assert!(d[3].is_nan());
        let mut s = [-4.0, 1.0];
        binary_scalar(BinaryOp::PRelu, &mut s, 0.1, true);
        assert_eq!(s, [-0.4, 1.0]);
    }

    #[test]
    fn softmax_groups_sum_to_one_and_keep_order() {
        let mut d = [1.0, 2.0, 3.0, 0.0, 0.0, 100.0];
        softmax(&mut d, 3);
        let e: std::vec::Vec<f32> = [1.0f32, 2.0, 3.0].iter().map(|v| v.exp()).collect();
        let s: f32 = e.iter().sum();
        for i in 0..3 {
            assert!((d[i] - e[i] / s).abs() < 1e-6);
        }
        assert!((d[5] - 1.0).abs() < 1e-6 && d[3] < 1e-30);
    }
}
