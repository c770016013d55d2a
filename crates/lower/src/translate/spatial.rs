//! tract `Pad` -> [`OpKind::Pad`] (H and W of an image, any ONNX mode) and
//! tract `Deconv` (ONNX ConvTranspose) -> [`OpKind::ConvTranspose`], and
//! ONNX LRN (tract's `Lrn`, its attributes read from the ONNX node) ->
//! [`OpKind::Lrn`].

use kiln_ir::{ConvTranspose, Lrn, OpKind, PadMode};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::{Pad, PadMode as TractPadMode};
use tract_onnx::tract_core::ops::cnn::{Deconv, KernelFormat, PaddingSpec};

use super::{Translator, Value, image_format};
use crate::LowerError;

impl Translator<'_> {
    /// Pad of an image's H and W; other axes must stay as they are.
    pub(super) fn pad(&mut self, node: &TypedNode, p: &Pad) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        let t = &self.graph.tensors[x];
        let r = t.shape.len();
        let other_axes_padded = p.pads[..r.saturating_sub(2)]
            .iter()
            .any(|(b, a)| *b != 0 || *a != 0);
        if !t.is_nhwc() || p.pads.len() != r || other_axes_padded {
            return Err(self.unsupported(
                node,
                format!(
                    "Pad {:?} of a {:?} tensor; kiln pads H and W of an NCHW image only",
                    p.pads, t.shape
                ),
            ));
        }
        let mode = match &p.mode {
            TractPadMode::Constant(v) => {
                let v = self.const_f32(node, v)?;
                PadMode::Constant(v.first().copied().unwrap_or(0.0))
            }
            TractPadMode::Reflect => PadMode::Reflect,
            TractPadMode::Edge => PadMode::Edge,
        };
        let (h, w) = (t.shape[r - 2], t.shape[r - 1]);
        let [(top, bottom), (left, right)] = [p.pads[r - 2], p.pads[r - 1]];
        if mode == PadMode::Reflect && (top.max(bottom) >= h || left.max(right) >= w) {
            return Err(self.unsupported(
                node,
                format!(
                    "reflect Pad wider than the {h}x{w} image (pads {:?}); ONNX needs each below the side",
                    p.pads
                ),
            ));
        }
        let kind = OpKind::Pad {
            pads: [top, left, bottom, right],
            mode,
        };
        self.emit(node, kind, vec![x])?;
        Ok(())
    }

    /// ConvTranspose over an NCHW image with constant weights, explicit
    /// (or no) padding; the output size is the one tract computed.
    pub(super) fn conv_transpose(
        &mut self,
        node: &TypedNode,
        d: &Deconv,
    ) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        let xs = self.graph.tensors[x].shape.clone();
        let spec = &d.pool_spec;
        if !image_format(spec.data_format, &xs) || spec.kernel_shape.len() != 2 {
            return Err(self.unsupported(
                node,
                format!(
                    "ConvTranspose over a {:?} {xs:?} tensor; kiln runs 2-D ones over NCHW images",
                    spec.data_format
                ),
            ));
        }
        if !matches!(d.kernel_format, KernelFormat::OIHW) {
            return Err(self.unsupported(node, format!("kernel layout {:?}", d.kernel_format)));
        }
        let pads =
            match &spec.padding {
                PaddingSpec::Valid => [0, 0],
                PaddingSpec::Explicit(before, _) | PaddingSpec::ExplicitOnnxPool(before, _, _) => {
                    [before[0], before[1]]
                }
                other => {
                    return Err(self.unsupported(node, format!(
                    "auto_pad {other:?}; kiln takes explicit pads (or none) for ConvTranspose"
                )));
                }
            };
        let Value::Const(k) = self.value(node, 1)? else {
            return Err(self.unsupported(node, "weights computed at run time"));
        };
        let ks = k.shape().to_vec();
        let w = self.const_f32(node, &k)?;
        let os = self.output_shape(node)?;
        let co = os[os.len() - 3];
        if ks.len() != 4 || ks[0] != co || ks[1] * d.group != xs[xs.len() - 3] {
            return Err(self.unsupported(node, format!("weight {ks:?} for {co} output channels")));
        }
        let bias = self.conv_bias(node, co)?.map(|b| {
            self.graph
                .add_constant(format!("{}.bias", node.name), vec![co], b)
        });
        let weight = self
            .graph
            .add_constant(format!("{}.weight", node.name), ks.clone(), w);
        let (s, dl) = (spec.strides(), spec.dilations());
        let kind = OpKind::ConvTranspose(ConvTranspose {
            kernel: [ks[2], ks[3]],
            stride: [s[0], s[1]],
            dilation: [dl[0], dl[1]],
            pads,
            groups: d.group,
            weight,
            bias,
        });
        self.emit(node, kind, vec![x])?;
        Ok(())
    }

    /// LRN over the channels of an NCHW image; alpha, beta and bias default
    /// as ONNX says (1e-4, 0.75, 1), size is required.
    pub(super) fn lrn(&mut self, node: &TypedNode) -> Result<(), LowerError> {
        let x = self.act_input(node, 0)?;
        if !self.graph.tensors[x].is_nhwc() {
            return Err(self.unsupported(
                node,
                format!(
                    "LRN of a {:?} tensor; kiln normalises NCHW images",
                    self.graph.tensors[x].shape
                ),
            ));
        }
        let n = &node.name;
        let size = match self.onnx.int_attr(n, "size") {
            Some(s) if s > 0 => s as usize,
            other => return Err(self.unsupported(node, format!("LRN size {other:?}"))),
        };
        let lrn = Lrn {
            size,
            alpha: self.onnx.float_attr(n, "alpha", 1e-4),
            beta: self.onnx.float_attr(n, "beta", 0.75),
            bias: self.onnx.float_attr(n, "bias", 1.0),
        };
        self.emit(node, OpKind::Lrn(lrn), vec![x])?;
        Ok(())
    }
}
