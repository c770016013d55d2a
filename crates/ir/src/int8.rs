//! int8 ops of the IR: post-training-quantized layers lowered from QDQ
//! graphs (ONNX QuantizeLinear/DequantizeLinear pairs around float ops).
//!
//! Quantization: `real = scale * (q - zero_point)`. Activations are i8,
//! asymmetric per tensor ([`QParams`]); weights i8, symmetric per output
//! channel (zero point 0, one scale per output channel); biases i32 in units
//! of `input scale * weight scale[o]`. An int8 tensor ([`crate::DType::I8`])
//! takes one byte per element in the arena.
//!
//! The ops own their integer data (the f32 [`crate::Constant`]s are not used);
//! kiln-codegen derives the fixed-point multipliers and shifts with
//! [`quantize_multiplier`].

use std::fmt;

/// Scale and zero point of a per-tensor quantized i8 tensor:
/// `real = scale * (q - zero_point)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QParams {
    /// Positive, finite (real units per step).
    pub scale: f32,
    /// In `-128..=127`.
    pub zero_point: i32,
}

impl QParams {
    /// `clamp(round_half_even(x / scale) + zero_point, -128, 127)`, ONNX
    /// QuantizeLinear for one value.
    pub fn quantize(&self, x: f32) -> i32 {
        let r = (x / self.scale).round_ties_even();
        if r.is_nan() {
            return self.zero_point;
        }
        (r.clamp(-1.0e6, 1.0e6) as i32 + self.zero_point).clamp(-128, 127)
    }
    /// `(q - zero_point) * scale`, ONNX DequantizeLinear for one value.
    pub fn dequantize(&self, q: i32) -> f32 {
        (q - self.zero_point) as f32 * self.scale
    }
}

/// A quantized convolution or dense layer's integer data: weights, per
/// output channel scales, biases and the output clamp.
#[derive(Clone, Debug, PartialEq)]
pub struct QWeights {
    /// i8 weights in ONNX layout (conv OIHW, dense `[out, in]`).
    pub weight: Vec<i8>,
    /// One scale per output channel (weight zero point 0).
    pub weight_scales: Vec<f32>,
    /// One i32 per output channel, in units of `input.scale * weight_scales[o]`.
    pub bias: Vec<i32>,
    /// The input's quantization.
    pub input: QParams,
    /// The output's quantization.
    pub output: QParams,
    /// Output range in quantized units (`-128..=127`, narrowed by a folded
    /// ReLU, ReLU6 or Clip).
    pub clamp: (i32, i32),
}

/// An int8 operation. Inputs and outputs are i8 tensors except where a
/// variant says f32.
#[derive(Clone, Debug, PartialEq)]
pub enum QOp {
    /// f32 tensor -> i8 (ONNX QuantizeLinear, round half to even, saturating).
    Quantize(QParams),
    /// i8 tensor -> f32 (ONNX DequantizeLinear).
    Dequantize(QParams),
    /// A 2-D convolution; `conv` gives the geometry (its `weight`, `bias`
    /// and `act` are unused: the data is in `q`, the activation in its clamp).
    Conv {
        /// Kernel, stride, dilation, pads, groups, channels.
        conv: crate::Conv,
        /// Weights, scales, biases.
        q: QWeights,
    },
    /// `in` inputs -> `out` outputs (`[1, in] -> [1, out]`, `in` over the
    /// input's storage order).
    Dense(QWeights),
    /// `inputs[0] + inputs[1]`, same shape and storage, different scales.
    Add {
        /// First input's quantization.
        a: QParams,
        /// Second input's quantization.
        b: QParams,
        /// Output quantization.
        output: QParams,
        /// Output range in quantized units.
        clamp: (i32, i32),
    },
    /// `inputs[0] * inputs[1]`: the same shape, or `inputs[1]` one value per
    /// channel of the image `inputs[0]` (`[1, C, 1, 1]`, a squeeze-excite gate).
    Mul {
        /// First input's quantization.
        a: QParams,
        /// Second input's quantization.
        b: QParams,
        /// Output quantization.
        output: QParams,
        /// Output range in quantized units.
        clamp: (i32, i32),
        /// True when `inputs[1]` has one value per channel.
        per_channel: bool,
    },
    /// `[1, C, H, W] -> [1, C, 1, 1]` mean over pixels.
    GlobalAvgPool {
        /// Input quantization.
        input: QParams,
        /// Output quantization.
        output: QParams,
    },
    /// Any element-wise function of one tensor as a 256-entry table.
    Lut {
        /// `table[b]` is the output for the input byte `b` (`q as u8`).
        table: Vec<i8>,
        /// The function tabulated, for listings (e.g. `HardSwish`).
        what: String,
    },
}

impl fmt::Display for QOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QOp::Quantize(p) => write!(f, "quantize s{} z{}", p.scale, p.zero_point),
            QOp::Dequantize(p) => write!(f, "dequantize s{} z{}", p.scale, p.zero_point),
            QOp::Conv { conv, .. } => {
                let kind = if conv.is_depthwise() {
                    "qdwconv"
                } else if conv.is_pointwise() {
                    "qpwconv"
                } else {
                    "qconv"
                };
                write!(
                    f,
                    "{kind} {}x{} s{}x{} pad{:?} g{}",
                    conv.kernel[0],
                    conv.kernel[1],
                    conv.stride[0],
                    conv.stride[1],
                    conv.pads,
                    conv.groups
                )
            }
            QOp::Dense(_) => write!(f, "qdense"),
            QOp::Add { .. } => write!(f, "qadd"),
            QOp::Mul { per_channel, .. } => {
                write!(f, "qmul{}", if *per_channel { " per channel" } else { "" })
            }
            QOp::GlobalAvgPool { .. } => write!(f, "qglobal-avg-pool"),
            QOp::Lut { what, .. } => write!(f, "qlut {what}"),
        }
    }
}

/// A positive real multiplier `m` as `(q, shift)` with `m ~= q * 2^(shift -
/// 31)`, `q` in `[2^30, 2^31)` (TensorFlow Lite's `QuantizeMultiplier`:
/// frexp, round the fraction to Q0.31, carry a rounding to 2^31 into the
/// exponent). `m = 0` (or below 2^-32) gives `(0, 0)`.
///
/// # Panics
/// If `m` is negative, NaN or so large the shift exceeds 30 (`m >= 2^30`).
pub fn quantize_multiplier(m: f64) -> (i32, i32) {
    assert!(
        m >= 0.0 && m < (1u64 << 30) as f64,
        "multiplier {m} out of range"
    );
    if m == 0.0 {
        return (0, 0);
    }
    let (mut frac, mut exp) = (m, 0i32);
    while frac < 0.5 {
        frac *= 2.0;
        exp -= 1;
    }
    while frac >= 1.0 {
        frac /= 2.0;
        exp += 1;
    }
    let mut q = (frac * (1u64 << 31) as f64).round() as i64;
    if q == 1 << 31 {
        q /= 2;
        exp += 1;
    }
    if exp < -31 {
        return (0, 0);
    }
    (q as i32, exp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipliers_round_trip() {
        for m in [0.75, 0.5, 0.25, 1.0, 3.0, 1e-5, 0.999_999_999_9, 0.0003] {
            let (q, s) = quantize_multiplier(m);
            assert!((1 << 30..=i32::MAX).contains(&q), "{m}: {q}");
            let back = q as f64 * 2f64.powi(s - 31);
            assert!((back - m).abs() <= m * 1e-9, "{m}: {back}");
        }
        assert_eq!(quantize_multiplier(0.0), (0, 0));
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
    }

    #[test]
    fn qparams_quantize_as_onnx() {
        let p = QParams {
            scale: 0.5,
            zero_point: -3,
        };
        assert_eq!(p.quantize(0.25), -3); // 0.5 -> 0 (even)
        assert_eq!(p.quantize(0.75), -1); // 1.5 -> 2
        assert_eq!(p.quantize(1000.0), 127);
        assert_eq!(p.dequantize(-1), 1.0);
    }
}

#[cfg(test)]
mod plan_tests {
    use crate::{Graph, Op, OpKind, QOp, QParams, plan};

    #[test]
    fn the_planner_sizes_int8_tensors_at_one_byte() {
        let mut g = Graph::default();
        let x = g.add_tensor("x", vec![1, 10]);
        let q = g.add_tensor_i8("q", vec![1, 10]);
        let y = g.add_tensor("y", vec![1, 10]);
        let p = QParams {
            scale: 0.1,
            zero_point: 0,
        };
        let op = |kind, i, o| Op {
            node: "n".into(),
            kind,
            inputs: i,
            output: o,
        };
        g.ops = vec![
            op(OpKind::Input, vec![], x),
            op(OpKind::Int8(QOp::Quantize(p)), vec![x], q),
            op(OpKind::Int8(QOp::Dequantize(p)), vec![q], y),
        ];
        g.output = y;
        assert_eq!(g.tensors[q].storage_len(), 3);
        let plan = plan(&g).expect("plans");
        // x (10) and q (3) live together, then q (3) and y (10)
        assert_eq!(plan.lower_bound, 13);
        assert_eq!(plan.arena_len, 13);
    }
}
