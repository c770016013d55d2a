//! ONNX Pad of an NHWC image's height and width: constant, reflect or edge.

/// How [`pad2d`] fills the border.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PadMode {
    /// Every border value is this constant.
    Constant(f32),
    /// The input mirrored about its first and last row / column, which are
    /// not repeated (ONNX `reflect`: `[a b c]` padded by 2 is `c b a b c b a`).
    Reflect,
    /// The first and last row / column repeated (ONNX `edge`).
    Edge,
}

/// The input index an output index `o` of a padded axis reads, or `None`
/// for a constant border: `o - before` reflected or clamped into `0..n`.
#[inline(always)]
fn source(o: usize, before: usize, n: usize, mode: PadMode) -> Option<usize> {
    let i = o as isize - before as isize;
    let last = n as isize - 1;
    if (0..=last).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        PadMode::Constant(_) => None,
        PadMode::Edge => Some(i.clamp(0, last) as usize),
        PadMode::Reflect => {
            if last == 0 {
                return Some(0);
            }
            // fold into 0..=last with period 2 * last
            let p = 2 * last;
            let m = i.rem_euclid(p);
            Some((if m > last { p - m } else { m }) as usize)
        }
    }
}

/// Pads the NHWC image `x` of `(h, w, c)` by `pads` = `[top, left, bottom,
/// right]` pixels into `y` of `(h + top + bottom) x (w + left + right) x c`.
/// Reflect pads wider than the image keep folding back and forth (ONNX
/// leaves that undefined; onnxruntime refuses it).
///
/// # Panics
/// If `x` or `y` is shorter than these shapes say, or `h` or `w` is 0
/// with a non-constant mode.
pub fn pad2d(
    x: &[f32],
    y: &mut [f32],
    (h, w, c): (usize, usize, usize),
    pads: [usize; 4],
    mode: PadMode,
) {
    let [top, left, bottom, right] = pads;
    let (oh, ow) = (h + top + bottom, w + left + right);
    for oy in 0..oh {
        let sy = source(oy, top, h, mode);
        for ox in 0..ow {
            let px = &mut y[(oy * ow + ox) * c..][..c];
            match (sy, source(ox, left, w, mode)) {
                (Some(sy), Some(sx)) => px.copy_from_slice(&x[(sy * w + sx) * c..][..c]),
                _ => px.fill(match mode {
                    PadMode::Constant(v) => v,
                    _ => 0.0,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(mode: PadMode, before: usize, after: usize) -> [f32; 9] {
        // one row [1 2 3], one channel
        let mut y = [0.0; 9];
        pad2d(
            &[1.0, 2.0, 3.0],
            &mut y[..3 + before + after],
            (1, 3, 1),
            [0, before, 0, after],
            mode,
        );
        y
    }

    #[test]
    fn modes_follow_onnx() {
        assert_eq!(
            row(PadMode::Reflect, 2, 2)[..7],
            [3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]
        );
        assert_eq!(
            row(PadMode::Edge, 2, 1)[..6],
            [1.0, 1.0, 1.0, 2.0, 3.0, 3.0]
        );
        assert_eq!(
            row(PadMode::Constant(-1.0), 1, 2)[..6],
            [-1.0, 1.0, 2.0, 3.0, -1.0, -1.0]
        );
    }

    #[test]
    fn rows_and_channels_pad_together() {
        // 2x1 image, 2 channels: [[a0 a1], [b0 b1]] padded 1 above by reflect
        let x = [1.0, 10.0, 2.0, 20.0];
        let mut y = [0.0; 6];
        pad2d(&x, &mut y, (2, 1, 2), [1, 0, 0, 0], PadMode::Reflect);
        assert_eq!(y, [2.0, 20.0, 1.0, 10.0, 2.0, 20.0]);
    }
}
