//! ONNX Resize (opset 10+) and what tract makes of it -> [`OpKind::Resize`]:
//! tract's `NearestUpsample` (integer nearest factors that replicate pixels)
//! and its core `Resize` (nearest or linear, any coordinate transformation
//! mode, scales or sizes). The per-row and per-column taps are computed here
//! from the ONNX operator's definition of the coordinate transformation
//! (<https://onnx.ai/onnx/operators/onnx__Resize.html>); cubic mode is
//! refused.

use kiln_ir::{OpKind, Tap};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::nn::{
    CoordTransformer, Interpolator, Nearest, NearestUpsample, Resize,
};

use super::{Translator, Value};
use crate::LowerError;

/// The input coordinate of output index `x` along an axis of `len_in`
/// resized to `len_out` with `scale` (ONNX Resize's formulas).
fn source_coord(
    mode: &CoordTransformer,
    x: usize,
    scale: f32,
    len_in: usize,
    len_out: usize,
) -> f32 {
    let x = x as f32;
    match mode {
        CoordTransformer::HalfPixel => (x + 0.5) / scale - 0.5,
        CoordTransformer::PytorchHalfPixel => {
            if len_out > 1 {
                (x + 0.5) / scale - 0.5
            } else {
                0.0
            }
        }
        CoordTransformer::AlignCorners => {
            if len_out > 1 {
                x * (len_in as f32 - 1.0) / (len_out as f32 - 1.0)
            } else {
                0.0
            }
        }
        CoordTransformer::Asymmetric => x / scale,
        CoordTransformer::HalfPixelSymmetric => {
            let adjustment = len_out as f32 / (scale * len_in as f32);
            let offset = len_in as f32 / 2.0 * (1.0 - adjustment);
            offset + (x + 0.5) / scale - 0.5
        }
        CoordTransformer::TfHalfPixelForNn => (x + 0.5) / scale,
    }
}

/// The taps of one axis: linear blends the two neighbours of the source
/// coordinate clamped into the axis; nearest picks one by `nearest`'s rule.
fn axis_taps(
    mode: &CoordTransformer,
    linear: Option<()>,
    nearest: Nearest,
    (len_in, len_out, scale): (usize, usize, f32),
) -> Vec<Tap> {
    let last = len_in.saturating_sub(1);
    (0..len_out)
        .map(|o| {
            let c = source_coord(mode, o, scale, len_in, len_out);
            if linear.is_some() {
                let c = c.clamp(0.0, last as f32);
                let lo = (c.floor() as usize).min(last);
                let frac = c - lo as f32;
                // an exact source row reads only itself
                let hi = if frac == 0.0 { lo } else { (lo + 1).min(last) };
                Tap { lo, hi, frac }
            } else {
                let i = match nearest {
                    Nearest::Floor => c.floor(),
                    Nearest::RoundPreferCeil => (c + 0.5).floor(),
                };
                let i = (i.max(0.0) as usize).min(last);
                Tap {
                    lo: i,
                    hi: i,
                    frac: 0.0,
                }
            }
        })
        .collect()
}

impl Translator<'_> {
    /// `(h, w)` of the image input and `(oh, ow)` of the output, or why not:
    /// only H and W of an NCHW image may change.
    fn resize_dims(&self, node: &TypedNode, x: usize) -> Result<[usize; 4], LowerError> {
        let xs = self.graph.tensors[x].shape.clone();
        let os = self.output_shape(node)?;
        let r = xs.len();
        let image = self.graph.tensors[x].is_nhwc();
        if !image || os.len() != r || xs[..r - 2] != os[..r - 2] {
            return Err(self.unsupported(
                node,
                format!(
                    "resize of {xs:?} to {os:?}; kiln resizes only H and W of an NCHW image \
                     (batch 1)"
                ),
            ));
        }
        Ok([xs[r - 2], xs[r - 1], os[r - 2], os[r - 1]])
    }

    /// tract's pixel replication by integer factors (nearest, floor).
    pub(super) fn nearest_upsample(
        &mut self,
        node: &TypedNode,
        u: &NearestUpsample,
    ) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        let [h, w, oh, ow] = self.resize_dims(node, x)?;
        let r = u.scales.len();
        let (sh, sw) = (u.scales[r - 2] as f32, u.scales[r - 1] as f32);
        let floor = |n_in, n_out, s| {
            axis_taps(
                &CoordTransformer::Asymmetric,
                None,
                Nearest::Floor,
                (n_in, n_out, s),
            )
        };
        let kind = OpKind::Resize {
            rows: floor(h, oh, sh),
            cols: floor(w, ow, sw),
        };
        self.emit(node, kind, vec![x])?;
        Ok(())
    }

    /// tract's core Resize: nearest or linear, scales from a constant input
    /// or, given sizes, the ratio of output to input.
    pub(super) fn resize(&mut self, node: &TypedNode, r: &Resize) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        let [h, w, oh, ow] = self.resize_dims(node, x)?;
        let linear = match r.interpolator {
            Interpolator::Linear => Some(()),
            Interpolator::Nearest => None,
            Interpolator::Cubic => {
                return Err(self.unsupported(
                    node,
                    "Resize mode cubic; kiln resizes with mode nearest or linear",
                ));
            }
        };
        let given = match r.optional_scales_input {
            Some(slot) if slot < node.inputs.len() => match self.value(node, slot)? {
                Value::Const(k) if k.len() > 0 => Some(self.const_f32(node, &k)?),
                Value::Const(_) => None,
                Value::Act(_) => {
                    return Err(self.unsupported(node, "Resize scales computed at run time"));
                }
            },
            _ => None,
        };
        let (sh, sw) = match given {
            Some(s) if s.len() >= 2 => (s[s.len() - 2], s[s.len() - 1]),
            _ => (oh as f32 / h as f32, ow as f32 / w as f32),
        };
        let mode = &r.coord_transformer;
        let kind = OpKind::Resize {
            rows: axis_taps(mode, linear, r.nearest, (h, oh, sh)),
            cols: axis_taps(mode, linear, r.nearest, (w, ow, sw)),
        };
        self.emit(node, kind, vec![x])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taps_follow_onnx_coordinate_modes() {
        let hp = CoordTransformer::HalfPixel;
        // 2 -> 4 half_pixel linear: -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1)
        let t = axis_taps(&hp, Some(()), Nearest::Floor, (2, 4, 2.0));
        let got: Vec<(usize, usize, f32)> = t.iter().map(|t| (t.lo, t.hi, t.frac)).collect();
        assert_eq!(got, [(0, 0, 0.0), (0, 1, 0.25), (0, 1, 0.75), (1, 1, 0.0)]);
        // 3 -> 5 align_corners: 0, 0.5, 1, 1.5, 2
        let ac = CoordTransformer::AlignCorners;
        let t = axis_taps(&ac, Some(()), Nearest::Floor, (3, 5, 5.0 / 3.0));
        let fr: Vec<f32> = t.iter().map(|t| t.lo as f32 + t.frac).collect();
        assert_eq!(fr, [0.0, 0.5, 1.0, 1.5, 2.0]);
        // nearest asymmetric floor x3
        let t = axis_taps(
            &CoordTransformer::Asymmetric,
            None,
            Nearest::Floor,
            (2, 6, 3.0),
        );
        let lo: Vec<usize> = t.iter().map(|t| t.lo).collect();
        assert_eq!(lo, [0, 0, 0, 1, 1, 1]);
    }
}
