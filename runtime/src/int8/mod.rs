//! int8 kernels: post-training-quantized models run with integer arithmetic
//! only (i32 accumulation, fixed-point requantization as TensorFlow Lite and
//! gemmlowp define it), f32 only at the boundaries ([`quantize`],
//! [`dequantize`]) and in ops a model keeps in f32.
//!
//! Quantization: `real = scale * (q - zero_point)`; activations asymmetric per
//! tensor (i8, any zero point), weights symmetric per output channel (zero
//! point 0). int8 tensors live in the same f32 arena as the others, as byte
//! slices (two's-complement i8 bytes, 4 per arena element) obtained with
//! [`crate::f32_bytes_mut`], so this module needs no `unsafe`.
//!
//! | kernel | weights |
//! |---|---|
//! | [`qconv2d`] | `[out_c][k_h][k_w][in_c/groups]` i8 |
//! | [`qdepthwise_conv2d`] | `[k_h][k_w][c]` i8 |
//! | [`qgemm`] (pointwise, dense) | `[out][in]` i8 |

mod conv;
mod elementwise;
#[cfg(target_arch = "x86_64")]
mod gemm_x86;
mod io;
mod requant;

pub use conv::{PerChannel, QConv2d, qconv2d, qdepthwise_conv2d, qgemm};
pub use elementwise::{
    QAdd, QMul, dequantize, qadd, qglobal_avg_pool, qlut, qmul, qmul_channel, quantize,
};
pub use io::{chw_to_hwc, hwc_to_chw, split_io};
pub use requant::{
    OutRange, multiply_by_quantized_multiplier, rounding_divide_by_pot,
    saturating_rounding_doubling_high_mul,
};
