//! Layout moves: NCHW <-> NHWC, general permutation, concat, strided picks.

/// out = x, element for element.
///
/// # Panics
/// If the two lengths differ.
#[inline]
pub fn copy(x: &[f32], out: &mut [f32]) {
    out.copy_from_slice(x);
}

/// `[C][H][W]` -> `[H][W][C]`: an image from ONNX (NCHW, batch 1) order into
/// kiln's NHWC storage. Writes the first `c * h * w` elements of `out`.
///
/// # Panics
/// If `c` is 0, or `x` or `out` is shorter than `c * h * w`.
pub fn nchw_to_nhwc(x: &[f32], out: &mut [f32], c: usize, h: usize, w: usize) {
    let hw = h * w;
    for (p, px) in out[..hw * c].chunks_exact_mut(c).enumerate() {
        for (ch, v) in px.iter_mut().enumerate() {
            *v = x[ch * hw + p];
        }
    }
}

/// `[H][W][C]` -> `[C][H][W]`: an image from kiln's NHWC storage back into ONNX
/// (NCHW, batch 1) order. Writes the first `c * h * w` elements of `out`.
///
/// # Panics
/// If `c` is 0, or `x` or `out` is shorter than `c * h * w`.
pub fn nhwc_to_nchw(x: &[f32], out: &mut [f32], h: usize, w: usize, c: usize) {
    let hw = h * w;
    for (p, px) in x[..hw * c].chunks_exact(c).enumerate() {
        for (ch, v) in px.iter().enumerate() {
            out[ch * hw + p] = *v;
        }
    }
}

/// Maximum rank `permute` handles.
pub const MAX_RANK: usize = 6;

/// out = x transposed: output axis `i` is input axis `perm[i]`.
/// `dims` are the input dims; rank <= 6 (`MAX_RANK`).
///
/// `x` and `out` are dense row-major (last axis fastest) in the order given:
/// kiln-codegen passes storage order, so an NHWC image's dims are `[H, W, C]`.
/// Writes the first `dims.iter().product()` elements of `out` (fewer if `out`
/// is shorter).
///
/// # Panics
/// If the rank exceeds 6, `perm` is shorter than `dims` or names an
/// axis `>= dims.len()`, or `x` is shorter than the product of `dims`.
pub fn permute(x: &[f32], out: &mut [f32], dims: &[usize], perm: &[usize]) {
    let rank = dims.len();
    let mut in_strides = [0usize; MAX_RANK];
    let mut s = 1;
    for i in (0..rank).rev() {
        in_strides[i] = s;
        s *= dims[i];
    }
    let mut out_dims = [1usize; MAX_RANK];
    let mut strides = [0usize; MAX_RANK];
    for i in 0..rank {
        out_dims[i] = dims[perm[i]];
        strides[i] = in_strides[perm[i]];
    }
    let mut idx = [0usize; MAX_RANK];
    let mut src = 0usize;
    for o in out.iter_mut().take(s) {
        *o = x[src];
        // increment the output multi-index, last axis fastest
        let mut a = rank;
        while a > 0 {
            a -= 1;
            idx[a] += 1;
            src += strides[a];
            if idx[a] < out_dims[a] {
                break;
            }
            src -= strides[a] * out_dims[a];
            idx[a] = 0;
        }
    }
}

/// Concatenation: each input viewed as `[outer][inner_i]`, output
/// `[outer][sum of inner_i]`. Channel concat of NHWC images has
/// `outer = H * W` and `inner_i = C_i`. `inputs` and `inners` pair up in
/// order (an input without an inner length is skipped).
///
/// # Panics
/// If an input is shorter than `outer * inner_i`, or `out` shorter than
/// `outer * sum of inner_i`.
pub fn concat(inputs: &[&[f32]], inners: &[usize], outer: usize, out: &mut [f32]) {
    let total: usize = inners.iter().sum();
    for o in 0..outer {
        let mut at = o * total;
        for (x, &n) in inputs.iter().zip(inners) {
            out[at..at + n].copy_from_slice(&x[o * n..][..n]);
            at += n;
        }
    }
}

/// A range of one axis: `x` viewed as `[outer][extent][inner]` (storage
/// order), `out` as `[outer][end - start][inner]` holding
/// `x[o][start..end][..]`. Channels `start..end` of an NHWC image have
/// `outer = H * W`, `inner = 1`.
///
/// # Panics
/// If `start > end`, or `x` or `out` is too short for those views.
pub fn slice(
    x: &[f32],
    out: &mut [f32],
    outer: usize,
    extent: usize,
    inner: usize,
    start: usize,
    end: usize,
) {
    let n = (end - start) * inner;
    for o in 0..outer {
        out[o * n..][..n].copy_from_slice(&x[(o * extent + start) * inner..][..n]);
    }
}

/// Keeps every `stride_h`-th row and `stride_w`-th column of an NHWC image,
/// starting at 0: `out[oy][ox][..] = x[oy * stride_h][ox * stride_w][..]`.
///
/// `x` is `[in_h][in_w][c]` (the height is not needed), `out` is
/// `[out_h][out_w][c]`; sizes in pixels and channels.
///
/// # Panics
/// If `out` is shorter than `out_h * out_w * c`, or a picked pixel lies
/// outside `x`.
#[allow(clippy::too_many_arguments)]
pub fn downsample_nhwc(
    x: &[f32],
    out: &mut [f32],
    in_w: usize,
    c: usize,
    stride_h: usize,
    stride_w: usize,
    out_h: usize,
    out_w: usize,
) {
    for oy in 0..out_h {
        for ox in 0..out_w {
            let src = ((oy * stride_h) * in_w + ox * stride_w) * c;
            out[(oy * out_w + ox) * c..][..c].copy_from_slice(&x[src..][..c]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trip_and_known_positions() {
        let x: [f32; 24] = core::array::from_fn(|i| i as f32); // C=2,H=3,W=4
        let mut nhwc = [0.0; 24];
        nchw_to_nhwc(&x, &mut nhwc, 2, 3, 4);
        assert_eq!(nhwc[..4], [0.0, 12.0, 1.0, 13.0]);
        let mut back = [0.0; 24];
        nhwc_to_nchw(&nhwc, &mut back, 3, 4, 2);
        assert_eq!(back, x);
    }

    #[test]
    fn permute_matches_index_formula() {
        let dims = [2, 3, 4];
        let perm = [2, 0, 1];
        let x: [f32; 24] = core::array::from_fn(|i| i as f32);
        let mut out = [0.0; 24];
        permute(&x, &mut out, &dims, &perm);
        for k in 0..4 {
            for i in 0..2 {
                for j in 0..3 {
                    assert_eq!(out[(k * 2 + i) * 3 + j], x[(i * 3 + j) * 4 + k]);
                }
            }
        }
    }

    #[test]
    fn concat_interleaves_channel_blocks() {
        let a = [1.0, 2.0, 3.0, 4.0]; // 2 pixels x 2 channels
        let b = [9.0, 8.0]; // 2 pixels x 1 channel
        let mut out = [0.0; 6];
        concat(&[&a, &b], &[2, 1], 2, &mut out);
        assert_eq!(out, [1.0, 2.0, 9.0, 3.0, 4.0, 8.0]);
    }

    #[test]
    fn slice_keeps_a_range_of_the_middle_axis() {
        let x: [f32; 24] = core::array::from_fn(|i| i as f32); // [2][4][3]
        let mut out = [0.0; 12];
        slice(&x, &mut out, 2, 4, 3, 1, 3);
        assert_eq!(out[..6], [3.0, 4.0, 5.0, 6.0, 7.0, 8.0]);
        assert_eq!(out[6..], [15.0, 16.0, 17.0, 18.0, 19.0, 20.0]);
    }

    #[test]
    fn downsample_picks_strided_pixels() {
        let x: [f32; 16] = core::array::from_fn(|i| i as f32); // 4x4, c=1
        let mut out = [0.0; 4];
        downsample_nhwc(&x, &mut out, 4, 1, 2, 2, 2, 2);
        assert_eq!(out, [0.0, 2.0, 8.0, 10.0]);
    }
}
