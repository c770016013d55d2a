//! Pooling over NHWC images.

/// Shape and attributes of a 2-D max or average pool over one NHWC image.
///
/// The input is stored `[in_h][in_w][c]` and the output `[out_h][out_w][c]`,
/// channels innermost. Sizes are counts of pixels, channels or window taps.
/// Only the top and left padding are given; the bottom and right ones follow
/// from `out_h` and `out_w`. Padded positions are never read. kiln-codegen
/// writes one as a `const` per pool.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pool2d {
    /// Input height in pixels.
    pub in_h: usize,
    /// Input width in pixels.
    pub in_w: usize,
    /// Channels (input and output).
    pub c: usize,
    /// Output height in pixels.
    pub out_h: usize,
    /// Output width in pixels.
    pub out_w: usize,
    /// Window height in taps.
    pub k_h: usize,
    /// Window width in taps.
    pub k_w: usize,
    /// Vertical step between output rows, in input rows (at least 1).
    pub stride_h: usize,
    /// Horizontal step between output columns, in input columns (at least 1).
    pub stride_w: usize,
    /// Vertical distance between window taps, in input rows (at least 1).
    pub dilation_h: usize,
    /// Horizontal distance between window taps, in input columns (at least 1).
    pub dilation_w: usize,
    /// Padding rows above the input.
    pub pad_top: usize,
    /// Padding columns left of the input.
    pub pad_left: usize,
    /// Average pool only: divide by the full window (padding counts as zeros)
    /// instead of the number of in-bounds taps.
    pub count_include_pad: bool,
}

/// Kernel taps of output position `o` that fall inside the input.
#[inline(always)]
fn taps(o: usize, stride: usize, dil: usize, pad: usize, k: usize, size: usize) -> (usize, usize) {
    let start = o * stride;
    let lo = if start >= pad {
        0
    } else {
        (pad - start).div_ceil(dil)
    };
    let limit = size + pad;
    let hi = if start >= limit {
        0
    } else {
        (limit - start).div_ceil(dil).min(k)
    };
    (lo, hi.max(lo))
}

fn pool(x: &[f32], out: &mut [f32], p: &Pool2d, max: bool) {
    let c = p.c;
    for oy in 0..p.out_h {
        let (ky0, ky1) = taps(oy, p.stride_h, p.dilation_h, p.pad_top, p.k_h, p.in_h);
        for ox in 0..p.out_w {
            let (kx0, kx1) = taps(ox, p.stride_w, p.dilation_w, p.pad_left, p.k_w, p.in_w);
            let o = &mut out[(oy * p.out_w + ox) * c..][..c];
            o.fill(if max { f32::NEG_INFINITY } else { 0.0 });
            for ky in ky0..ky1 {
                let iy = oy * p.stride_h + ky * p.dilation_h - p.pad_top;
                for kx in kx0..kx1 {
                    let ix = ox * p.stride_w + kx * p.dilation_w - p.pad_left;
                    let xin = &x[(iy * p.in_w + ix) * c..][..c];
                    if max {
                        o.iter_mut().zip(xin).for_each(|(a, v)| *a = a.max(*v));
                    } else {
                        o.iter_mut().zip(xin).for_each(|(a, v)| *a += v);
                    }
                }
            }
            if !max {
                let n = if p.count_include_pad {
                    p.k_h * p.k_w
                } else {
                    (ky1 - ky0) * (kx1 - kx0)
                };
                let inv = 1.0 / n.max(1) as f32;
                o.iter_mut().for_each(|a| *a *= inv);
            }
        }
    }
}

/// Max pool; padded positions never win (a window wholly in the padding gives
/// `f32::NEG_INFINITY`). `x` is `[in_h][in_w][c]`, `out` `[out_h][out_w][c]`
/// (see [`Pool2d`]); every output element is written.
///
/// # Panics
/// If `x` or `out` is shorter than the shapes in `p` say, or a dilation is 0.
pub fn max_pool2d(x: &[f32], out: &mut [f32], p: &Pool2d) {
    pool(x, out, p, true)
}

/// Average pool: the mean of the in-bounds taps of each window, or their sum
/// over `k_h * k_w` with [`Pool2d::count_include_pad`] (a window wholly in the
/// padding gives 0). `x` is `[in_h][in_w][c]`, `out` `[out_h][out_w][c]` (see
/// [`Pool2d`]); every output element is written.
///
/// # Panics
/// If `x` or `out` is shorter than the shapes in `p` say, or a dilation is 0.
pub fn avg_pool2d(x: &[f32], out: &mut [f32], p: &Pool2d) {
    pool(x, out, p, false)
}

/// `out[c] = scale * sum over pixels of x[pixel][c]`; `scale = 1 / pixels`
/// gives the global average pool.
///
/// `x` is an NHWC image `[pixels][c]` (a trailing partial pixel is ignored);
/// the first `c` elements of `out` are written.
///
/// # Panics
/// If `c` is 0 or `out` is shorter than `c`.
pub fn global_avg_pool(x: &[f32], out: &mut [f32], c: usize, scale: f32) {
    out[..c].fill(0.0);
    for px in x.chunks_exact(c) {
        out.iter_mut().zip(px).for_each(|(a, v)| *a += v);
    }
    out[..c].iter_mut().for_each(|a| *a *= scale);
}

/// `out[c] = max over pixels of x[pixel][c]` (`f32::NEG_INFINITY` when `x` has
/// no whole pixel).
///
/// `x` is an NHWC image `[pixels][c]` (a trailing partial pixel is ignored);
/// the first `c` elements of `out` are written.
///
/// # Panics
/// If `c` is 0 or `out` is shorter than `c`.
pub fn global_max_pool(x: &[f32], out: &mut [f32], c: usize) {
    out[..c].fill(f32::NEG_INFINITY);
    for px in x.chunks_exact(c) {
        out.iter_mut().zip(px).for_each(|(a, v)| *a = a.max(*v));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_match_hand_computed_windows() {
        // 3x3 image, 1 channel, values 1..9; 2x2 window, stride 2, pad 1 all round.
        let x: [f32; 9] = core::array::from_fn(|i| (i + 1) as f32);
        let p = Pool2d {
            in_h: 3,
            in_w: 3,
            c: 1,
            out_h: 2,
            out_w: 2,
            k_h: 2,
            k_w: 2,
            stride_h: 2,
            stride_w: 2,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: 1,
            pad_left: 1,
            count_include_pad: false,
        };
        let mut out = [0.0; 4];
        max_pool2d(&x, &mut out, &p);
        assert_eq!(out, [1.0, 3.0, 7.0, 9.0]);
        avg_pool2d(&x, &mut out, &p);
        assert_eq!(out, [1.0, 2.5, 5.5, 7.0]);
        avg_pool2d(
            &x,
            &mut out,
            &Pool2d {
                count_include_pad: true,
                ..p
            },
        );
        assert_eq!(out, [0.25, 1.25, 2.75, 7.0]);
    }

    #[test]
    fn global_pools_reduce_each_channel() {
        let x = [1.0, -1.0, 3.0, 5.0, 2.0, 0.0];
        let mut out = [0.0; 2];
        global_avg_pool(&x, &mut out, 2, 1.0 / 3.0);
        assert_eq!(out, [2.0, 4.0 / 3.0]);
        global_max_pool(&x, &mut out, 2);
        assert_eq!(out, [3.0, 5.0]);
    }
}
