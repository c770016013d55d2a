//! Pointwise (1x1, stride 1, no bias) convolution as a batched matrix product.
//!
//! In NCHW an image is a `[c, h w]` matrix, so a 1x1 convolution is `W [o, c] x X [c, h w]`
//! per image: burn's `matmul`, whose backward is two more matrix products. burn 0.22's
//! `conv2d` backward instead differentiates the 1x1 conv as a general one (a transposed conv
//! for the input gradient, a conv over swapped batch and channel axes for the weight's, with
//! transposing copies around each); `perf` on a fine-tuning, depthwise convs already kiln's,
//! put the weight gradient of the remaining convs (pointwise, and the stem) at 13% of the time.
//! `cargo bench -p kiln-train --bench train_ops`: a training step 1.6-2.8x faster than burn's
//! conv at the default space's shapes (host).

use burn::tensor::Tensor;

/// Pointwise convolution: `x` NCHW `[n, c, h, w]`, `weight` `[o, c, 1, 1]` -> `[n, o, h, w]`,
/// `y[n, o, :, :] = sum over c of weight[o, c] * x[n, c, :, :]`.
pub fn pointwise_conv2d(x: Tensor<4>, weight: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let o = weight.dims()[0];
    let w2 = weight.reshape([1, o, c]);
    w2.matmul(x.reshape([n, c, h * w])).reshape([n, o, h, w])
}
