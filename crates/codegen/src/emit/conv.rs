//! Convolutions and dense layers: their weights go into the blob in the
//! layout the kernel reads (pointwise and dense: packed with their bias for
//! `rt::gemm`), their shapes into a `const` (general and depthwise
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

    /// Op `i`, a convolution: pointwise ones call `rt::gemm`, the others
    /// `rt::depthwise_conv2d`, `rt::conv2d_gemm` (one group, a patch of at
    /// most `MAX_PATCH` values: the stem) or `rt::conv2d` with a `const P{i}`.
    pub(super) fn conv(&mut self, i: usize, op: &Op, c: &Conv) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (ih, iw, _) = self.image(op, x, "conv input")?;
        let (oh, ow, _) = self.image(op, y, "conv output")?;
        let g = self.graph;
        let io = self.io1(x, y);
        let arranged = weights::conv_weights(c, &g.constants[c.weight].data);
        if c.is_pointwise() {
            let bias = c.bias.map(|b| g.constants[b].data.as_slice());
            let (k, n) = (c.in_channels, c.out_channels);
            let w = self.weights(&weights::gemm_weights(&arranged, bias, k, n));
            self.kernels.insert("gemm");
            return Ok(format!(
                "{{ {io} rt::gemm(x, {w}, y, {}, {k}, {n}, {}); }}",
                oh * ow,
                act(c.act)
            ));
        }
        let p = format!("P{i}");
        let patch = c.kernel[0] * c.kernel[1] * c.in_channels;
        let im2col = c.groups == 1 && patch <= kiln_runtime::MAX_PATCH;
        let call = if im2col {
            let bias = c.bias.map(|b| g.constants[b].data.as_slice());
            let packed = weights::gemm_weights(&arranged, bias, patch, c.out_channels);
            let w = self.weights(&packed);
            self.kernels.insert("conv2d_gemm");
            format!("rt::conv2d_gemm(x, {w}, y, &{p})")
        } else {
            let w = self.weights(&arranged);
            let b = self.bias(c.bias);
            let kernel = if c.is_depthwise() {
                "depthwise_conv2d"
            } else {
                "conv2d"
            };
            self.kernels.insert(kernel);
            format!("rt::{kernel}(x, {w}, {b}, y, &{p})")
        };
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
        Ok(format!("{{ {io} {call}; }}"))
    }

    /// A dense layer: `[out][in]` weights transposed to `[in][out]` and
    /// packed with the bias for `rt::gemm` (one row).
    pub(super) fn dense(
        &mut self,
        op: &Op,
        weight: ConstId,
        bias: Option<ConstId>,
        a: Activation,
    ) -> String {
        let (x, y) = (op.inputs[0], op.output);
        let g = self.graph;
        let n = g.tensors[y].len();
        let wdata = weights::dense_weights(&g.constants[weight].data, n);
        let k = wdata.len() / n.max(1);
        let bias = bias.map(|b| g.constants[b].data.as_slice());
        let w = self.weights(&weights::gemm_weights(&wdata, bias, k, n));
        self.kernels.insert("gemm");
        format!(
            "{{ {} rt::gemm(x, {w}, y, 1, {k}, {n}, {}); }}",
            self.io1(x, y),
            act(a)
        )
    }
}
