//! The convolution kiln trains with: burn's `conv2d` semantics (no bias), routed to kiln's
//! depthwise op or the 1x1 matrix product where those apply. kiln-train's layers and
//! kiln-supernet's sliced convs both call [`conv2d_no_bias`], so the choice is made once.

use burn::tensor::Tensor;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::depthwise::depthwise_conv2d;
use crate::pointwise::pointwise_conv2d;

/// A 2-D convolution without bias, as burn's `conv2d` with `ConvOptions::new([stride;
/// 2], [pad; 2], [1, 1], groups)`: `x` NCHW `[n, in, h, w]`, `weight` `[out, in / groups, k,
/// k]` -> `[n, out, (h + 2 pad - k) / stride + 1, (w + 2 pad - k) / stride + 1]`.
///
/// A depthwise conv (`groups` = in = out channels) runs [`depthwise_conv2d`], a 1x1 stride-1
/// ungrouped unpadded one [`pointwise_conv2d`] (their backward passes are several times
/// faster than burn's: `cargo bench -p kiln-train --bench train_ops`, host); any other, or a
/// weight that does not fit `x`, burn's conv (which reports the mismatch).
pub fn conv2d_no_bias(
    x: Tensor<4>,
    weight: Tensor<4>,
    stride: usize,
    pad: usize,
    groups: usize,
) -> Tensor<4> {
    let channels = x.dims()[1];
    let [out, in_per_group, k, k2] = weight.dims();
    let square = k == k2;
    if square && groups > 1 && groups == channels && out == channels && in_per_group == 1 {
        depthwise_conv2d(x, weight, stride, pad)
    } else if square && k == 1 && groups == 1 && stride == 1 && pad == 0 && in_per_group == channels
    {
        pointwise_conv2d(x, weight)
    } else {
        let options = ConvOptions::new([stride, stride], [pad, pad], [1, 1], groups);
        conv2d(x, weight, None, options)
    }
}
