//! Resampling of an NHWC image's height and width (ONNX Resize / Upsample,
//! nearest and linear): each output row and column reads at most two input
//! rows and columns, given as [`Tap`] tables that kiln-codegen computes from
//! the ONNX coordinate transformation (so one kernel serves every mode).

/// Where one output row (or column) reads: `(1 - frac) * in[lo] + frac *
/// in[hi]`; nearest neighbour is `frac = 0` (then `hi` is not read).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tap {
    /// The first input row (column).
    pub lo: u32,
    /// The second input row (column), `lo` or `lo + 1`.
    pub hi: u32,
    /// The weight of `hi`, in [0, 1).
    pub frac: f32,
}

/// `y[oy][ox][c]` = the bilinear blend of the up to four input pixels
/// `rows[oy]` x `cols[ox]` of the NHWC image `x` of width `w` and `c` channels (its height is what the
/// taps read); `y` is
/// `rows.len() x cols.len() x c`. Nearest taps (`frac = 0`) copy their
/// pixel, so infinities and NaN pass unchanged, as ONNX's nearest mode does.
///
/// # Panics
/// If a tap's `lo` or `hi` is outside the input (a row past its height,
/// a column `>= w`), or `x` / `y` are shorter than these shapes.
pub fn resize2d(x: &[f32], y: &mut [f32], (w, c): (usize, usize), rows: &[Tap], cols: &[Tap]) {
    let ow = cols.len();
    for (oy, r) in rows.iter().enumerate() {
        let top = &x[r.lo as usize * w * c..][..w * c];
        let bottom = &x[r.hi as usize * w * c..][..w * c];
        let out_row = &mut y[oy * ow * c..][..ow * c];
        for (t, px) in cols.iter().zip(out_row.chunks_exact_mut(c)) {
            let (l, rr) = (t.lo as usize * c, t.hi as usize * c);
            let (a, b) = (&top[l..l + c], &top[rr..rr + c]);
            match (r.frac == 0.0, t.frac == 0.0) {
                (true, true) => px.copy_from_slice(a),
                (true, false) => blend(px, a, b, t.frac),
                (false, true) => blend(px, a, &bottom[l..l + c], r.frac),
                (false, false) => {
                    let (d, e) = (&bottom[l..l + c], &bottom[rr..rr + c]);
                    let (fx, fy) = (t.frac, r.frac);
                    for (((o, a), b), (d, e)) in px.iter_mut().zip(a).zip(b).zip(d.iter().zip(e)) {
                        let upper = a * (1.0 - fx) + b * fx;
                        let lower = d * (1.0 - fx) + e * fx;
                        *o = upper * (1.0 - fy) + lower * fy;
                    }
                }
            }
        }
    }
}

/// `out = a * (1 - f) + b * f`, element by element.
#[inline(always)]
fn blend(out: &mut [f32], a: &[f32], b: &[f32], f: f32) {
    for ((o, a), b) in out.iter_mut().zip(a).zip(b) {
        *o = a * (1.0 - f) + b * f;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nearest(n_out: usize, scale: usize) -> [Tap; 8] {
        let mut t = [Tap {
            lo: 0,
            hi: 0,
            frac: 0.0,
        }; 8];
        for (o, tap) in t.iter_mut().enumerate().take(n_out) {
            let i = (o / scale) as u32;
            *tap = Tap {
                lo: i,
                hi: i,
                frac: 0.0,
            };
        }
        t
    }

    #[test]
    fn nearest_x2_repeats_each_pixel_and_keeps_nan() {
        // 2x3 image, 2 channels
        let x = [
            1.0,
            -1.0,
            2.0,
            -2.0,
            3.0,
            f32::NAN,
            4.0,
            -4.0,
            5.0,
            -5.0,
            6.0,
            f32::INFINITY,
        ];
        let mut y = [0.0; 4 * 6 * 2];
        resize2d(&x, &mut y, (3, 2), &nearest(4, 2)[..4], &nearest(6, 2)[..6]);
        for oy in 0..4 {
            for ox in 0..6 {
                for ch in 0..2 {
                    let want = x[((oy / 2) * 3 + ox / 2) * 2 + ch];
                    let got = y[(oy * 6 + ox) * 2 + ch];
                    assert!(
                        got == want || (got.is_nan() && want.is_nan()),
                        "{oy},{ox},{ch}"
                    );
                }
            }
        }
    }

    #[test]
    fn bilinear_blends_four_pixels() {
        // 2x2 image, 1 channel: 0 1 / 2 3
        let x = [0.0, 1.0, 2.0, 3.0];
        let rows = [
            Tap {
                lo: 0,
                hi: 0,
                frac: 0.0,
            },
            Tap {
                lo: 0,
                hi: 1,
                frac: 0.25,
            },
            Tap {
                lo: 1,
                hi: 1,
                frac: 0.0,
            },
        ];
        let cols = [
            Tap {
                lo: 0,
                hi: 1,
                frac: 0.5,
            },
            Tap {
                lo: 1,
                hi: 1,
                frac: 0.0,
            },
        ];
        let mut y = [0.0; 6];
        resize2d(&x, &mut y, (2, 1), &rows, &cols);
        // row 0: 0.5, 1; row 0.25: 0.5 + 0.25*2 = 1.0, 1 + 0.5 = 1.5; row 1: 2.5, 3
        assert_eq!(y, [0.5, 1.0, 1.0, 1.5, 2.5, 3.0]);
    }
}
