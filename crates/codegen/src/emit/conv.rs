//! Convolutions and dense layers: their weights go into the blob in the
//! layout the kernel reads (pointwise and dense: packed with their bias for
//! `rt::gemm`), their shapes into a `const` (general and depthwise
//! convolutions) or the call itself (pointwise, dense).
//!
//! A residual sum right after a pointwise convolution (an inverted residual
//! block's projection) is fused into it when the planner put the sum's
//! output on the residual: the convolution calls `rt::gemm_add` on the
//! residual's memory, and the sum emits no code. That saves the store of
//! the convolution's output and the sum's pass over both tensors; the
//! values are the same (`residual + act(product)`, rounded once either way).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use kiln_ir::{
    Activation, ArenaPlan, BinaryOp, ConstId, Conv, DType, Graph, Op, OpKind, Operand, TensorId,
};

/// The residual sums to fuse, as (pointwise convolution's op index, sum's
/// op index): the sum is the next op, adds the convolution's f32 output
/// (read by nothing else, not the graph's output) to another tensor of the
/// same shape and storage, and writes its output over that tensor (the same
/// arena region, apart from the convolution's input), so the convolution
/// can add into it in place.
pub(super) fn residual_fusions(graph: &Graph, plan: &ArenaPlan) -> BTreeMap<usize, usize> {
    let mut readers = vec![0usize; graph.tensors.len()];
    for op in &graph.ops {
        for t in op.reads() {
            readers[t] += 1;
        }
    }
    let region = |t: TensorId| (plan.offsets[t], graph.tensors[t].len());
    let mut fused = BTreeMap::new();
    for (i, pair) in graph.ops.windows(2).enumerate() {
        let (conv, sum) = (&pair[0], &pair[1]);
        let pointwise = matches!(&conv.kind, OpKind::Conv(c) if c.is_pointwise());
        let OpKind::Binary {
            op: BinaryOp::Add,
            rhs: Operand::Tensor(r),
            ..
        } = &sum.kind
        else {
            continue;
        };
        let (c, d) = (conv.output, sum.inputs[0]);
        let res = match (d == c, *r == c) {
            (true, false) => *r,
            (false, true) => d,
            _ => continue,
        };
        let (tc, tr) = (&graph.tensors[c], &graph.tensors[res]);
        let same = tc.shape == tr.shape
            && tc.hwc() == tr.hwc()
            && tc.storage_is_logical() == tr.storage_is_logical()
            && tc.dtype == DType::F32
            && tr.dtype == DType::F32;
        let (xo, xl) = region(conv.inputs[0]);
        let (ro, rl) = region(res);
        let apart = xo + xl <= ro || ro + rl <= xo;
        if pointwise
            && same
            && apart
            && readers[c] == 1
            && c != graph.output
            && region(sum.output) == region(res)
        {
            fused.insert(i, i + 1);
        }
    }
    fused
}

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
            // Fused with the residual sum after it: write (add) over the
            // sum's output, which is the residual's memory.
            let (kernel, io) = match self.fused.get(&i) {
                Some(&j) => ("gemm_add", self.io1(x, g.ops[j].output)),
                None => ("gemm", io),
            };
            self.kernels.insert(kernel);
            return Ok(format!(
                "{{ {io} rt::{kernel}(x, {w}, y, {}, {k}, {n}, {}); }}",
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
