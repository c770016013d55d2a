//! kiln-runtime: the inference kernels that kiln's generated code calls.
//!
//! `no_std`, no dependencies, no allocation. Tensors are f32, batch 1. Rank-4
//! activations are stored NHWC (channels innermost) so that depthwise and
//! pointwise convolutions run their innermost loop over contiguous channels,
//! which the compiler vectorises. Weights arrive pre-arranged by kiln-codegen in
//! the layout each kernel documents:
//!
//! | kernel | weights |
//! |---|---|
//! | [`conv2d`] | `[groups][k_h][k_w][in_c/groups][out_c/groups]` |
//! | [`depthwise_conv2d`] | `[k_h][k_w][c]` |
//! | [`conv2d_gemm`] (one group) | [`pack_gemm`] of `[k_h][k_w][in_c][out_c]` |
//! | [`pointwise_conv2d`] | `[in_c][out_c]` |
//! | [`dense`] | `[in_features][out_features]` |
//! | [`gemm`] (pointwise and dense) | [`pack_gemm`]'s panels: per 16 output columns (the last `n % 16` unpadded), bias then `[k][16]` |
//!
//! Biases and per-channel operands hold one value per output channel.
//! Tensor lengths and arena offsets are counts of f32 elements, not bytes.
//!
//! Every kernel takes its shape as plain parameters; the generated code passes
//! constants, so after inlining and LTO only the kernels a model uses remain in
//! its binary.
//!
//! On Linux, [`linux`] also provides what a generated model's `no_std`
//! program needs from the C library (I/O, clock, argv, its `main`), so that
//! program, like the model, has no `unsafe` of its own.
//!
//! With the `std` feature (for host libraries; generated programs never
//! enable it), an x86-64 build that does not enable AVX2 and FMA itself
//! detects them at run time and calls the AVX2 kernels where the CPU has
//! them (see `cpu.rs`), and the AVX-512F kernels (`gemm_avx512.rs`,
//! `depthwise_avx512.rs`) where it has AVX-512F (unless
//! `KILN_RUNTIME_NO_AVX512` is set); a build that enables `avx512f` calls
//! those without asking. The API is the same with or without it. aarch64
//! builds always call the NEON kernels (`gemm_neon.rs`, `depthwise_neon.rs`).
#![no_std]

#[cfg(feature = "std")]
extern crate std;

#[cfg(target_endian = "big")]
compile_error!("kiln-runtime reads its weight blob as little-endian f32");

mod arena;
mod conv;
#[cfg(target_arch = "x86_64")]
mod cpu;
mod deconv;
mod elementwise;
mod gemm;
mod gemm_add;
mod im2col;
pub mod int8;
// Compiled on every x86-64 build (`#[target_feature]` functions): called
// when `cpu::avx2_fma` says so, and tested wherever the CPU has the features.
#[cfg(target_arch = "x86_64")]
mod depthwise_avx2;
#[cfg(target_arch = "x86_64")]
mod gemm_avx2;
// Likewise, called when `cpu::avx512` says so.
#[cfg(target_arch = "x86_64")]
mod depthwise_avx512;
#[cfg(target_arch = "x86_64")]
mod gemm_avx512;
// Every aarch64 core has NEON: its kernels replace the portable ones there.
#[cfg(target_arch = "aarch64")]
mod depthwise_neon;
#[cfg(target_arch = "aarch64")]
mod gemm_neon;
#[cfg(target_os = "linux")]
pub mod linux;
mod lrn;
mod moves;
mod pad;
mod pool;
mod resize;
mod text;
mod timing;
mod unary;
mod wasm;

pub use arena::{
    Aligned, ArenaGuard, StaticArena, f32_bytes, f32_bytes_mut, io1, io2, weights_f32,
};
pub use conv::{Conv2d, conv2d, dense, depthwise_conv2d, pointwise_conv2d};
pub use deconv::{Deconv2d, conv_transpose2d};
pub use elementwise::{
    Activation, BinaryOp, activate, binary, binary_broadcast_channel, binary_inplace,
    binary_scalar, scale, softmax,
};
pub use gemm::{NARROW, PANEL, gemm, gemm_panels, pack_gemm, packed_gemm_len};
pub use gemm_add::gemm_add;
pub use im2col::{MAX_PATCH, conv2d_gemm};
pub use lrn::lrn;
pub use moves::{concat, copy, downsample_nhwc, nchw_to_nhwc, nhwc_to_nchw, permute, slice};
pub use pad::{PadMode, pad2d};
pub use pool::{Pool2d, avg_pool2d, global_avg_pool, global_max_pool, max_pool2d};
pub use resize::{Tap, resize2d};
pub use text::{TextOut, parse_usize};
pub use timing::{nearest_rank, sort_u64};
pub use unary::{UnaryOp, unary};
pub use wasm::{
    BundleCall, BundleMember, WasmBuffer, call_prefix, max_len, run_wasm_bundle, run_wasm_infer,
};
