//! [`OpKind::Pad`](kiln_ir::OpKind::Pad) -> `rt::pad2d` and
//! [`OpKind::ConvTranspose`](kiln_ir::OpKind::ConvTranspose) ->
//! `rt::conv_transpose2d` (weights rearranged into the blob as
//! `[groups][kh][kw][in/groups][out/groups]`), and
//! [`OpKind::Lrn`](kiln_ir::OpKind::Lrn) -> `rt::lrn`.

use kiln_ir::{ConvTranspose, Lrn, Op, PadMode};

use super::{Emitter, f};
use crate::CodegenError;

/// The IR's `[out, in/groups, kh, kw]` as the kernel reads it:
/// `[groups][kh][kw][in/groups][out/groups]`.
fn deconv_weights(w: &[f32], [co, icg, kh, kw]: [usize; 4], groups: usize) -> Vec<f32> {
    let ocg = co / groups;
    let mut out = vec![0.0; w.len()];
    for g in 0..groups {
        for ky in 0..kh {
            for kx in 0..kw {
                for i in 0..icg {
                    for o in 0..ocg {
                        out[(((g * kh + ky) * kw + kx) * icg + i) * ocg + o] =
                            w[(((g * ocg + o) * icg + i) * kh + ky) * kw + kx];
                    }
                }
            }
        }
    }
    out
}

impl Emitter<'_> {
    /// `rt::pad2d` from the input image into the (larger) output image.
    pub(super) fn pad(
        &mut self,
        op: &Op,
        pads: [usize; 4],
        mode: PadMode,
    ) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (h, w, c) = self.image(op, x, "pad input")?;
        let (oh, ow, _) = self.image(op, y, "pad output")?;
        if oh != h + pads[0] + pads[2] || ow != w + pads[1] + pads[3] {
            return Err(Self::unsupported(
                op,
                format!("pads {pads:?} do not give {oh}x{ow}"),
            ));
        }
        let mode = match mode {
            PadMode::Constant(v) => format!("rt::PadMode::Constant({})", f(v)),
            PadMode::Reflect => "rt::PadMode::Reflect".into(),
            PadMode::Edge => "rt::PadMode::Edge".into(),
        };
        self.kernels.insert("pad2d");
        Ok(format!(
            "{{ {} rt::pad2d(x, y, ({h}, {w}, {c}), {pads:?}, {mode}); }}",
            self.io1(x, y)
        ))
    }

    /// `rt::conv_transpose2d` with the rearranged weights and the bias.
    pub(super) fn conv_transpose(
        &mut self,
        op: &Op,
        d: &ConvTranspose,
    ) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (h, w, c) = self.image(op, x, "ConvTranspose input")?;
        let (oh, ow, oc) = self.image(op, y, "ConvTranspose output")?;
        let graph = self.graph;
        let k = &graph.constants[d.weight];
        let ks: [usize; 4] = k
            .shape
            .clone()
            .try_into()
            .map_err(|_| Self::unsupported(op, "ConvTranspose weight is not rank 4"))?;
        if d.groups == 0 || ks[0] != oc || ks[1] * d.groups != c || oc % d.groups != 0 {
            return Err(Self::unsupported(
                op,
                format!("weight {ks:?} for {c} -> {oc} channels"),
            ));
        }
        let wk = self.weights(&deconv_weights(&k.data, ks, d.groups));
        let bias = match d.bias {
            Some(b) => format!("Some({})", self.weights(&graph.constants[b].data)),
            None => "None".into(),
        };
        self.kernels.insert("conv_transpose2d");
        Ok(format!(
            "{{ {} rt::conv_transpose2d(x, {wk}, {bias}, y, &rt::Deconv2d {{ input: [{h}, {w}, {c}], output: [{oh}, {ow}, {oc}], kernel: {:?}, stride: {:?}, dilation: {:?}, pads: {:?}, groups: {} }}); }}",
            self.io1(x, y),
            d.kernel,
            d.stride,
            d.dilation,
            d.pads,
            d.groups
        ))
    }

    /// `rt::lrn` over the pixels of the image (not in place: each output
    /// reads its neighbouring channels).
    pub(super) fn lrn(&mut self, op: &Op, l: Lrn) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (_, _, c) = self.image(op, x, "LRN input")?;
        self.kernels.insert("lrn");
        Ok(format!(
            "{{ {} rt::lrn(x, y, {c}, {}, {}, {}, {}); }}",
            self.io1(x, y),
            l.size,
            f(l.alpha),
            f(l.beta),
            f(l.bias)
        ))
    }
}
