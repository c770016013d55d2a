//! Parameters of the ops beyond the CNN core ([`crate::OpKind::Unary`],
//! [`crate::OpKind::Resize`], [`crate::OpKind::Pad`],
//! [`crate::OpKind::ConvTranspose`], [`crate::OpKind::Lrn`]).

use crate::ConstId;

/// An element-wise function of one value (ONNX's unary math ops and the
/// activations tract writes as their own ops; see kiln-runtime's `UnaryOp`
/// for the formulas and their accuracy).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    /// `|x|`.
    Abs,
    /// `-x`.
    Neg,
    /// `e^x`.
    Exp,
    /// The natural logarithm (ONNX Log).
    Log,
    /// The square root (ONNX Sqrt, Pow by 0.5).
    Sqrt,
    /// `1 / sqrt(x)`.
    Rsqrt,
    /// `1 / x` (ONNX Reciprocal; tract writes Div by a tensor this way).
    Reciprocal,
    /// `x * x` (ONNX Pow by 2).
    Square,
    /// `x^exponent` for another constant exponent (ONNX Pow).
    Pow {
        /// The exponent.
        exponent: f32,
    },
    /// The hyperbolic tangent.
    Tanh,
    /// The error function.
    Erf,
    /// `x * sigmoid(x)` (SiLU / Swish, also written as Mul(x, Sigmoid(x))).
    Silu,
    /// `x * 0.5 * (1 + erf(x / sqrt 2))` (ONNX Gelu; PyTorch's erf form).
    Gelu,
    /// `0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))` (ONNX Gelu with
    /// approximate = "tanh"); `x^2` instead of `x^3` where `square`.
    GeluTanh {
        /// The inner polynomial uses `x^2`.
        square: bool,
    },
    /// ELU: `x` for `x > 0`, else `alpha * (e^x - 1)` (ONNX Elu; Selu is
    /// this followed by a multiplication by gamma).
    Elu {
        /// The scale of the negative side.
        alpha: f32,
    },
}

/// One output row (or column) of an [`crate::OpKind::Resize`]: it reads
/// `(1 - frac) * in[lo] + frac * in[hi]` (nearest neighbour: `frac = 0`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tap {
    /// First input row (column).
    pub lo: usize,
    /// Second input row (column): `lo` or `lo + 1`.
    pub hi: usize,
    /// Weight of `hi`, in [0, 1).
    pub frac: f32,
}

/// How [`crate::OpKind::Pad`] fills the border (ONNX Pad's modes).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// A constant value.
    Constant(f32),
    /// The image mirrored about its edge row / column (not repeated).
    Reflect,
    /// The edge row / column repeated.
    Edge,
}

/// A transposed 2-D convolution (ONNX ConvTranspose): `[1, in, H, W] ->
/// [1, out, OH, OW]` (or batch-less), both stored NHWC; input pixel
/// `(iy, ix)` adds its kernel-weighted values to output pixels
/// `(iy * stride + ky * dilation - pads[0], ix * stride + kx * dilation -
/// pads[1])`. The output size (output_padding included) is the output
/// tensor's.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvTranspose {
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Vertical and horizontal dilation.
    pub dilation: [usize; 2],
    /// Pixels taken off the top and the left of the full result.
    pub pads: [usize; 2],
    /// Number of groups.
    pub groups: usize,
    /// `[out, in / groups, kh, kw]` (a convolution's OIHW; ONNX stores
    /// `[in, out / groups, kh, kw]`, tract regroups it).
    pub weight: ConstId,
    /// `[out]`; `None` means zero.
    pub bias: Option<ConstId>,
}

/// ONNX LRN's attributes: `y = x / (bias + alpha / size * sum of x^2 over
/// channels c - floor((size - 1) / 2) ..= c + ceil((size - 1) / 2))^beta`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Lrn {
    /// Channels in the window.
    pub size: usize,
    /// Scale of the sum of squares (divided by `size`).
    pub alpha: f32,
    /// Exponent.
    pub beta: f32,
    /// Offset.
    pub bias: f32,
}
