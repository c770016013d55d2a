//! Rearranging ONNX-layout constants into the layouts the kernels read.

use kiln_ir::Conv;

/// OIHW -> the layout `kiln_runtime::conv2d` / `depthwise_conv2d` /
/// `pointwise_conv2d` expects for this conv.
pub(crate) fn conv_weights(c: &Conv, oihw: &[f32]) -> Vec<f32> {
    let [kh, kw] = c.kernel;
    let (cig, cog) = (c.in_channels / c.groups, c.out_channels / c.groups);
    let mut out = vec![0.0; oihw.len()];
    if c.is_depthwise() {
        // [kh][kw][c]
        for ch in 0..c.out_channels {
            for y in 0..kh {
                for x in 0..kw {
                    out[(y * kw + x) * c.out_channels + ch] = oihw[(ch * kh + y) * kw + x];
                }
            }
        }
    } else {
        // [g][kh][kw][cig][cog]; pointwise is the g=1, 1x1 case: [ci][co]
        for oc in 0..c.out_channels {
            let (g, o) = (oc / cog, oc % cog);
            for i in 0..cig {
                for y in 0..kh {
                    for x in 0..kw {
                        out[(((g * kh + y) * kw + x) * cig + i) * cog + o] =
                            oihw[((oc * cig + i) * kh + y) * kw + x];
                    }
                }
            }
        }
    }
    out
}

/// `[k][n]` weights and their bias (or none) packed for `kiln_runtime::gemm`.
pub(crate) fn gemm_weights(w: &[f32], bias: Option<&[f32]>, k: usize, n: usize) -> Vec<f32> {
    let mut out = vec![0.0; kiln_runtime::packed_gemm_len(k, n)];
    kiln_runtime::pack_gemm(w, bias.unwrap_or(&[]), k, n, &mut out);
    out
}

/// `[out][in]` -> `[in][out]`.
pub(crate) fn dense_weights(w: &[f32], out_features: usize) -> Vec<f32> {
    let in_features = w.len() / out_features.max(1);
    let mut t = vec![0.0; w.len()];
    for o in 0..out_features {
        for i in 0..in_features {
            t[i * out_features + o] = w[o * in_features + i];
        }
    }
    t
}

/// A constant of an image's logical shape, in the image's HWC storage order.
pub(crate) fn chw_to_hwc(data: &[f32], hwc: Option<(usize, usize, usize)>) -> Vec<f32> {
    let Some((h, w, c)) = hwc else {
        return data.to_vec();
    };
    let mut out = vec![0.0; data.len()];
    for ch in 0..c {
        for p in 0..h * w {
            out[p * c + ch] = data[ch * h * w + p];
        }
    }
    out
}
