//! Windowed and global pools over NHWC images.

use std::fmt::Write as _;

use kiln_ir::{Op, Pool};

use super::{Emitter, f};
use crate::CodegenError;

impl Emitter<'_> {
    /// Op `i`, a max or average pool (`kernel` names which): a `const P{i}`
    /// with its shape, and the call.
    pub(super) fn pool(
        &mut self,
        i: usize,
        op: &Op,
        p: &Pool,
        kernel: &'static str,
    ) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (ih, iw, c) = self.image(op, x, "pool input")?;
        let (oh, ow, _) = self.image(op, y, "pool output")?;
        let name = format!("P{i}");
        let _ = writeln!(
            self.params,
            "const {name}: rt::Pool2d = rt::Pool2d {{ in_h: {ih}, in_w: {iw}, c: {c}, out_h: {oh}, out_w: {ow}, k_h: {}, k_w: {}, \
stride_h: {}, stride_w: {}, dilation_h: {}, dilation_w: {}, pad_top: {}, pad_left: {}, count_include_pad: {} }};",
            p.kernel[0],
            p.kernel[1],
            p.stride[0],
            p.stride[1],
            p.dilation[0],
            p.dilation[1],
            p.pads[0],
            p.pads[1],
            p.count_include_pad
        );
        self.kernels.insert(kernel);
        Ok(format!(
            "{{ {} rt::{kernel}(x, y, &{name}); }}",
            self.io1(x, y)
        ))
    }

    /// `scale` times the per-channel sum over all pixels (the global average
    /// pool when `scale` is 1 / pixels).
    pub(super) fn global_sum_pool(&mut self, op: &Op, scale: f32) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (_, _, c) = self.image(op, x, "global pool input")?;
        self.kernels.insert("global_avg_pool");
        Ok(format!(
            "{{ {} rt::global_avg_pool(x, y, {c}, {}); }}",
            self.io1(x, y),
            f(scale)
        ))
    }

    /// The per-channel maximum over all pixels.
    pub(super) fn global_max_pool(&mut self, op: &Op) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (_, _, c) = self.image(op, x, "global pool input")?;
        self.kernels.insert("global_max_pool");
        Ok(format!(
            "{{ {} rt::global_max_pool(x, y, {c}); }}",
            self.io1(x, y)
        ))
    }
}
