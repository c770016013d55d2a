//! Transposed 2-D convolution (ONNX ConvTranspose) over NHWC images.

/// Shape and geometry of [`conv_transpose2d`]. Each input pixel `(iy, ix)`
/// scatters into the output pixels `(iy * stride + ky * dilation - top,
/// ix * stride + kx * dilation - left)` that fall inside the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deconv2d {
    /// Input height, width and channels.
    pub input: [usize; 3],
    /// Output height, width and channels (ONNX's output shape: it includes
    /// output_padding).
    pub output: [usize; 3],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Vertical and horizontal stride.
    pub stride: [usize; 2],
    /// Vertical and horizontal dilation.
    pub dilation: [usize; 2],
    /// Padding taken off the top and left of the full result, in pixels.
    pub pads: [usize; 2],
    /// Number of groups; both channel counts are multiples of it.
    pub groups: usize,
}

/// `y` = the transposed convolution of the NHWC image `x` with `weights`
/// laid out `[groups][k_h][k_w][in_c / groups][out_c / groups]`, plus
/// `bias` (one per output channel; `None` is zero).
///
/// # Panics
/// If a slice is shorter than the shapes in `p` say or `p.groups` is 0.
pub fn conv_transpose2d(
    x: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    y: &mut [f32],
    p: &Deconv2d,
) {
    let [ih, iw, ic] = p.input;
    let [oh, ow, oc] = p.output;
    let [kh, kw] = p.kernel;
    let (icg, ocg) = (ic / p.groups, oc / p.groups);
    match bias {
        Some(b) => y[..oh * ow * oc]
            .chunks_exact_mut(oc)
            .for_each(|px| px.copy_from_slice(&b[..oc])),
        None => y[..oh * ow * oc].fill(0.0),
    }
    for iy in 0..ih {
        for ky in 0..kh {
            let oy = (iy * p.stride[0] + ky * p.dilation[0]) as isize - p.pads[0] as isize;
            if oy < 0 || oy >= oh as isize {
                continue;
            }
            for ix in 0..iw {
                let xin = &x[(iy * iw + ix) * ic..][..ic];
                for kx in 0..kw {
                    let ox = (ix * p.stride[1] + kx * p.dilation[1]) as isize - p.pads[1] as isize;
                    if ox < 0 || ox >= ow as isize {
                        continue;
                    }
                    let out = &mut y[(oy as usize * ow + ox as usize) * oc..][..oc];
                    for g in 0..p.groups {
                        let wk = &weights[((g * kh + ky) * kw + kx) * icg * ocg..][..icg * ocg];
                        let out = &mut out[g * ocg..][..ocg];
                        for (xv, row) in xin[g * icg..][..icg].iter().zip(wk.chunks_exact(ocg)) {
                            out.iter_mut().zip(row).for_each(|(o, w)| *o += xv * w);
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// The definition: y[o] = bias + sum over inputs and taps landing on o.
    fn naive(x: &[f32], w_onnx: &[f32], b: &[f32], p: &Deconv2d) -> Vec<f32> {
        let [ih, iw, ic] = p.input;
        let [oh, ow, oc] = p.output;
        let [kh, kw] = p.kernel;
        let (icg, ocg) = (ic / p.groups, oc / p.groups);
        let mut y = vec![0.0; oh * ow * oc];
        for oy in 0..oh {
            for ox in 0..ow {
                for o in 0..oc {
                    let g = o / ocg;
                    let mut s = b[o];
                    for iy in 0..ih {
                        for ix in 0..iw {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let ty = iy * p.stride[0] + ky * p.dilation[0];
                                    let tx = ix * p.stride[1] + kx * p.dilation[1];
                                    if ty != oy + p.pads[0] || tx != ox + p.pads[1] {
                                        continue;
                                    }
                                    for i in 0..icg {
                                        let ci = g * icg + i;
                                        // ONNX weight [ic][oc / g][kh][kw]
                                        let wv = w_onnx[((ci * ocg + o % ocg) * kh + ky) * kw + kx];
                                        s += x[(iy * iw + ix) * ic + ci] * wv;
                                    }
                                }
                            }
                        }
                    }
                    y[(oy * ow + ox) * oc + o] = s;
                }
            }
        }
        y
    }

    #[test]
    fn matches_the_definition_with_stride_groups_and_pads() {
        let p = Deconv2d {
            input: [3, 4, 4],
            output: [6, 8, 6],
            kernel: [3, 2],
            stride: [2, 2],
            dilation: [1, 1],
            pads: [1, 0],
            groups: 2,
        };
        let x: Vec<f32> = (0..48).map(|i| (i as f32 * 0.37).sin()).collect();
        let w_onnx: Vec<f32> = (0..4 * 3 * 3 * 2)
            .map(|i| (i as f32 * 0.11).cos())
            .collect();
        let b: Vec<f32> = (0..6).map(|i| i as f32 * 0.1).collect();
        // [ic][ocg][kh][kw] -> [g][kh][kw][icg][ocg]
        let (icg, ocg) = (2, 3);
        let mut w = vec![0.0; w_onnx.len()];
        for g in 0..2 {
            for ky in 0..3 {
                for kx in 0..2 {
                    for i in 0..icg {
                        for o in 0..ocg {
                            w[(((g * 3 + ky) * 2 + kx) * icg + i) * ocg + o] =
                                w_onnx[(((g * icg + i) * ocg + o) * 3 + ky) * 2 + kx];
                        }
                    }
                }
            }
        }
        let mut y = vec![0.0; 6 * 8 * 6];
        conv_transpose2d(&x, &w, Some(&b), &mut y, &p);
        let want = naive(&x, &w_onnx, &b, &p);
        for (i, (g, w)) in y.iter().zip(&want).enumerate() {
            assert!((g - w).abs() < 1e-5, "y[{i}] = {g}, want {w}");
        }
    }
}
