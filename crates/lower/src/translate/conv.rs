//! tract `Conv` -> [`kiln_ir::Conv`]: weights brought to OIHW, a zero bias
//! dropped, padding made explicit.

use kiln_ir::{Activation, Conv, OpKind};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::cnn::{Conv as TractConv, KernelFormat, PoolSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::{Translator, Value, image_format};
use crate::LowerError;

/// Stride, dilation and explicit pads (top, left, bottom, right) of a 2-D
/// conv or pool over an image whose spatial dims are `hw`.
pub(super) struct Window {
    pub(super) stride: [usize; 2],
    pub(super) dilation: [usize; 2],
    pub(super) pads: [usize; 4],
}

impl Window {
    pub(super) fn new(spec: &PoolSpec, hw: &[usize]) -> Window {
        let padded = spec.computed_padding(hw);
        let strides = spec.strides();
        let dil = spec.dilations();
        Window {
            stride: [strides[0], strides[1]],
            dilation: [dil[0], dil[1]],
            pads: [
                padded[0].pad_before,
                padded[1].pad_before,
                padded[0].pad_after,
                padded[1].pad_after,
            ],
        }
    }
}

/// Kernel `[out, in/groups, kh, kw]` from tract's layout (OIHW, HWIO or OHWI).
fn to_oihw(raw: Vec<f32>, fmt: KernelFormat, [co, cig, kh, kw]: [usize; 4]) -> Vec<f32> {
    if matches!(fmt, KernelFormat::OIHW) {
        return raw;
    }
    let mut out = vec![0.0; raw.len()];
    for o in 0..co {
        for i in 0..cig {
            for y in 0..kh {
                for xk in 0..kw {
                    let src = match fmt {
                        KernelFormat::HWIO => ((y * kw + xk) * cig + i) * co + o,
                        _ => ((o * kh + y) * kw + xk) * cig + i,
                    };
                    out[((o * cig + i) * kh + y) * kw + xk] = raw[src];
                }
            }
        }
    }
    out
}

impl Translator<'_> {
    /// A 2-D convolution with constant weights over an NCHW image, or over a
    /// channels-last `[1, H, W, C]` one (tract folds tf2onnx's input
    /// Transpose into the conv) between two transposes.
    pub(super) fn conv(&mut self, node: &TypedNode, conv: &TractConv) -> Result<(), LowerError> {
        if conv.q_params.is_some() {
            return Err(self.unsupported(node, "quantized convolution"));
        }
        let spec = &conv.pool_spec;
        let x = self.act_input(node, 0)?;
        let shape = self.graph.tensors[x].shape.clone();
        let channels_last = spec.data_format == DataFormat::NHWC
            && shape.len() == 4
            && shape[0] == 1
            && spec.kernel_shape.len() == 2;
        if channels_last {
            let ir = self.conv_params(node, conv, &shape[1..3])?;
            return self.channels_last(node, OpKind::Conv(ir), x);
        }
        if !image_format(spec.data_format, &shape) || spec.kernel_shape.len() != 2 {
            return Err(self.unsupported(
                node,
                format!(
                    "only 2-D convolution over NCHW or NHWC images ({:?} input {shape:?})",
                    spec.data_format
                ),
            ));
        }
        let ir = self.conv_params(node, conv, &shape[shape.len() - 2..])?;
        self.emit(node, OpKind::Conv(ir), vec![x])?;
        Ok(())
    }

    /// The IR conv of `conv` over an image of spatial size `hw`: weights in
    /// OIHW, explicit padding, the bias (a zero bias dropped).
    fn conv_params(
        &mut self,
        node: &TypedNode,
        conv: &TractConv,
        hw: &[usize],
    ) -> Result<Conv, LowerError> {
        let spec = &conv.pool_spec;
        let Value::Const(kernel) = self.value(node, 1)? else {
            return Err(self.unsupported(node, "weights are computed at run time"));
        };
        let (ci, co, g) = (spec.input_channels, spec.output_channels, conv.group);
        let (kh, kw) = (spec.kernel_shape[0], spec.kernel_shape[1]);
        let raw = self.const_f32(node, &kernel)?;
        let expected = co * (ci / g.max(1)) * kh * kw;
        if g == 0 || ci % g != 0 || co % g != 0 || raw.len() != expected {
            return Err(self.unsupported(
                node,
                format!(
                    "inconsistent weights: {} values for {co}x{ci}/{g}x{kh}x{kw}",
                    raw.len()
                ),
            ));
        }
        let oihw = to_oihw(raw, conv.kernel_fmt, [co, ci / g, kh, kw]);
        let bias = self.conv_bias(node, co)?;
        let window = Window::new(spec, hw);
        let weight = self.graph.add_constant(
            format!("{}.weight", node.name),
            vec![co, ci / g, kh, kw],
            oihw,
        );
        let bias = bias.map(|b| {
            self.graph
                .add_constant(format!("{}.bias", node.name), vec![co], b)
        });
        Ok(Conv {
            kernel: [kh, kw],
            stride: window.stride,
            dilation: window.dilation,
            pads: window.pads,
            groups: g,
            in_channels: ci,
            out_channels: co,
            weight,
            bias,
            act: Activation::None,
        })
    }

    /// The conv's bias (input 2) as `co` values; `None` when absent or all
    /// zero. A single value is broadcast to every channel.
    pub(super) fn conv_bias(
        &self,
        node: &TypedNode,
        co: usize,
    ) -> Result<Option<Vec<f32>>, LowerError> {
        let b = match node
            .inputs
            .get(2)
            .map(|_| self.value(node, 2))
            .transpose()?
        {
            None => return Ok(None),
            Some(Value::Act(_)) => {
                return Err(self.unsupported(node, "bias is computed at run time"));
            }
            Some(Value::Const(b)) => self.const_f32(node, &b)?,
        };
        if b.iter().all(|v| *v == 0.0) {
            Ok(None)
        } else if b.len() == 1 {
            Ok(Some(vec![b[0]; co]))
        } else if b.len() == co {
            Ok(Some(b))
        } else {
            Err(self.unsupported(
                node,
                format!("bias has {} values for {co} channels", b.len()),
            ))
        }
    }
}
