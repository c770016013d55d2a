//! Convolutions and dense layers: their weights go into the blob in the
//! layout the kernel reads, their shapes into a `const` (general and depthwise
//! convolutions) or the call itself (pointwise, dense).

use std::fmt::Write as _;

use kiln_ir::{Activation, ConstId, Conv, Op};

use super::{Emitter, act};
use crate::CodegenError;
use crate::weights;

impl Emitter<'_> {
    /// The bias expression: the constant's slice of the blob, or `&[]`.
    fn bias(&mut self, bias: Option<ConstId>) -> String {
        match bias {
            Some(b) => {
                let g = self.graph;
                self.weights(&g.constants[b].data)
            }
            None => "&[]".into(),
        }
    }

    /// Op `i`, a convolution: pointwise ones call `rt::pointwise_conv2d`, the
    /// others `rt::depthwise_conv2d` / `rt::conv2d` with a `const P{i}`.
    pub(super) fn conv(&mut self, i: usize, op: &Op, c: &Conv) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (ih, iw, _) = self.image(op, x, "conv input")?;
        let (oh, ow, _) = self.image(op, y, "conv output")?;
        let g = self.graph;
        let w = self.weights(&weights::conv_weights(c, &g.constants[c.weight].data));
        let b = self.bias(c.bias);
        let io = self.io1(x, y);
        if c.is_pointwise() {
            self.kernels.insert("pointwise_conv2d");
            return Ok(format!(
                "{{ {io} rt::pointwise_conv2d(x, {w}, {b}, y, {}, {}, {}, {}); }}",
                oh * ow,
                c.in_channels,
                c.out_channels,
                act(c.act)
            ));
        }
        let p = format!("P{i}");
        let _ = writeln!(
            self.params,
            "const {p}: rt::Conv2d = rt::Conv2d {{ in_h: {ih}, in_w: {iw}, in_c: {}, out_h: {oh}, out_w: {ow}, out_c: {}, \
k_h: {}, k_w: {}, stride_h: {}, stride_w: {}, dilation_h: {}, dilation_w: {}, pad_top: {}, pad_left: {}, groups: {}, act: {} }};",
            c.in_channels,
            c.out_channels,
            c.kernel[0],
            c.kernel[1],
            c.stride[0],
            c.stride[1],
            c.dilation[0],
            c.dilation[1],
            c.pads[0],
            c.pads[1],
            c.groups,
            act(c.act)
        );
        let kernel = if c.is_depthwise() {
            "depthwise_conv2d"
        } else {
            "conv2d"
        };
        self.kernels.insert(kernel);
        Ok(format!("{{ {io} rt::{kernel}(x, {w}, {b}, y, &{p}); }}"))
    }

    /// A dense layer: `[out][in]` weights transposed to `[in][out]`.
    pub(super) fn dense(
        &mut self,
        op: &Op,
        weight: ConstId,
        bias: Option<ConstId>,
        a: Activation,
    ) -> String {
        let (x, y) = (op.inputs[0], op.output);
        let g = self.graph;
        let wdata = weights::dense_weights(&g.constants[weight].data, g.tensors[y].len());
        let w = self.weights(&wdata);
        let b = self.bias(bias);
        self.kernels.insert("dense");
        format!(
            "{{ {} rt::dense(x, {w}, {b}, y, {}); }}",
            self.io1(x, y),
            act(a)
        )
    }
}
