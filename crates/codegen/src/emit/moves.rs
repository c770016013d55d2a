//! Layout moves: the input into the arena, reshapes that change storage
//! order, transposes, concats and strided picks.

use kiln_ir::Op;

use super::Emitter;
use crate::CodegenError;

impl Emitter<'_> {
    /// The program's input (ONNX order) into its tensor: transposed to NHWC
    /// for an image stored so, else copied.
    pub(super) fn input(&mut self, op: &Op) -> String {
        let y = op.output;
        let yt = &self.graph.tensors[y];
        match yt.hwc() {
            Some((h, w, c)) if !yt.storage_is_logical() => {
                self.kernels.insert("nchw_to_nhwc");
                format!(
                    "rt::nchw_to_nhwc(input, &mut {}, {c}, {h}, {w});",
                    self.slice(y)
                )
            }
            _ => format!("{}.copy_from_slice(input);", self.slice(y)),
        }
    }

    /// A reshape: no code when both sides keep logical order (the planner
    /// aliased them), else a move between NHWC and logical order.
    pub(super) fn reshape(&mut self, op: &Op) -> Result<String, CodegenError> {
        let g = self.graph;
        let (x, y) = (op.inputs[0], op.output);
        let (xt, yt) = (&g.tensors[x], &g.tensors[y]);
        if op.is_alias(g) {
            Ok("/* same memory, no code */".to_string())
        } else if !xt.storage_is_logical() && yt.storage_is_logical() {
            let (h, w, c) = xt
                .hwc()
                .ok_or_else(|| Self::unsupported(op, "bad reshape input"))?;
            self.kernels.insert("nhwc_to_nchw");
            Ok(format!(
                "{{ {} rt::nhwc_to_nchw(x, y, {h}, {w}, {c}); }}",
                self.io1(x, y)
            ))
        } else if xt.storage_is_logical() && !yt.storage_is_logical() {
            let (h, w, c) = yt
                .hwc()
                .ok_or_else(|| Self::unsupported(op, "bad reshape output"))?;
            self.kernels.insert("nchw_to_nhwc");
            Ok(format!(
                "{{ {} rt::nchw_to_nhwc(x, y, {c}, {h}, {w}); }}",
                self.io1(x, y)
            ))
        } else {
            Err(Self::unsupported(
                op,
                "reshape between two channel-last images with different shapes",
            ))
        }
    }

    /// A logical transpose, turned into a permutation of storage axes.
    pub(super) fn transpose(&mut self, op: &Op, perm: &[usize]) -> Result<String, CodegenError> {
        let g = self.graph;
        let (x, y) = (op.inputs[0], op.output);
        let xt = &g.tensors[x];
        if perm.len() > 6 || perm.len() != xt.shape.len() {
            return Err(Self::unsupported(op, "transpose of rank above 6"));
        }
        let s_in = xt.storage_axes();
        let s_out = g.tensors[y].storage_axes();
        let mut inv_in = vec![0; s_in.len()];
        for (pos, ax) in s_in.iter().enumerate() {
            inv_in[*ax] = pos;
        }
        let storage_perm: Vec<usize> = s_out.iter().map(|o| inv_in[perm[*o]]).collect();
        let in_dims: Vec<usize> = s_in.iter().map(|ax| xt.shape[*ax]).collect();
        self.kernels.insert("permute");
        Ok(format!(
            "{{ {} rt::permute(x, y, &{in_dims:?}, &{storage_perm:?}); }}",
            self.io1(x, y)
        ))
    }

    /// Concat along logical `axis`: in storage order, each input is
    /// `[outer][inner_i]` around that axis.
    pub(super) fn concat(&mut self, op: &Op, axis: usize) -> Result<String, CodegenError> {
        let g = self.graph;
        let yt = &g.tensors[op.output];
        let rank = yt.shape.len();
        let s = yt.storage_axes();
        let pos = s
            .iter()
            .position(|a| *a == axis)
            .ok_or_else(|| Self::unsupported(op, "concat axis out of range"))?;
        let outer: usize = s[..pos].iter().map(|a| yt.shape[*a]).product();
        let mut inners = Vec::new();
        for t in &op.inputs {
            let tt = &g.tensors[*t];
            if tt.shape.len() != rank {
                return Err(Self::unsupported(
                    op,
                    "concat of tensors with different ranks",
                ));
            }
            inners.push(s[pos..].iter().map(|a| tt.shape[*a]).product::<usize>());
        }
        let regions: Vec<String> = op.inputs.iter().map(|t| self.region(*t)).collect();
        let names: Vec<String> = (0..op.inputs.len()).map(|k| format!("x{k}")).collect();
        self.kernels.insert("concat");
        Ok(format!(
            "{{ let ([{}], y) = rt::io2(a, [{}], {}); rt::concat(&[{}], &{inners:?}, {outer}, y); }}",
            names.join(", "),
            regions.join(", "),
            self.region(op.output),
            names.join(", ")
        ))
    }

    /// Indices `start..end` of logical `axis`: in storage order the input is
    /// `[outer][extent][inner]` around that axis.
    pub(super) fn slice_op(
        &mut self,
        op: &Op,
        axis: usize,
        start: usize,
        end: usize,
    ) -> Result<String, CodegenError> {
        let g = self.graph;
        let (x, y) = (op.inputs[0], op.output);
        let xt = &g.tensors[x];
        let s = xt.storage_axes();
        if s != g.tensors[y].storage_axes() || start > end || end > xt.shape[axis] {
            return Err(Self::unsupported(op, "slice changes the storage order"));
        }
        let pos = s
            .iter()
            .position(|a| *a == axis)
            .ok_or_else(|| Self::unsupported(op, "slice axis out of range"))?;
        let outer: usize = s[..pos].iter().map(|a| xt.shape[*a]).product();
        let inner: usize = s[pos + 1..].iter().map(|a| xt.shape[*a]).product();
        self.kernels.insert("slice");
        Ok(format!(
            "{{ {} rt::slice(x, y, {outer}, {}, {inner}, {start}, {end}); }}",
            self.io1(x, y),
            xt.shape[axis]
        ))
    }

    /// Every `stride`-th row and column of an image.
    pub(super) fn downsample(
        &mut self,
        op: &Op,
        stride: [usize; 2],
    ) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (_, iw, c) = self.image(op, x, "downsample input")?;
        let (oh, ow, _) = self.image(op, y, "downsample output")?;
        self.kernels.insert("downsample_nhwc");
        Ok(format!(
            "{{ {} rt::downsample_nhwc(x, y, {iw}, {c}, {}, {}, {oh}, {ow}); }}",
            self.io1(x, y),
            stride[0],
            stride[1]
        ))
    }
}
