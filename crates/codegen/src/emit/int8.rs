//! int8 ops ([`kiln_ir::QOp`]): their calls into `kiln_runtime::int8`.
//!
//! int8 tensors live in the f32 arena as bytes (`rt::f32_bytes_mut`), at 4x
//! the tensor's arena offset. Weights go into the blob as i8 bytes (four per
//! blob element, zero-padded) and are read from `WEIGHTS.0` as bytes; biases,
//! fixed-point multipliers and shifts (computed here with
//! [`kiln_ir::quantize_multiplier`], in f64) and lookup tables become
//! `static` arrays of the generated crate.

use std::fmt::Write as _;

use kiln_ir::{Op, QOp, QParams, QWeights, TensorId, quantize_multiplier};

use super::Emitter;
use crate::CodegenError;

/// `(offset, len)` of i8 tensor data in bytes.
fn list<T: std::fmt::Display>(v: &[T]) -> String {
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// `(mult, shift, left)` of a pool over `n` values (see
/// `rt::int8::qglobal_avg_pool`; a product of two int8 values is bounded as
/// a sum of 256): `mult * 2^(shift - 31) = m / 2^left` with
/// the largest `left` (at most 20) keeping `255 * n * 2^left` below 2^30 (the
/// shifted sum fits an i32) and `m / 2^left` above 2^-30.
fn pool_multiplier(m: f64, n: usize) -> (i32, i32, i32) {
    let mut left = 0;
    while left < 20
        && (255 * n as u64) << (left + 1) < 1 << 30
        && m / ((1u64 << (left + 1)) as f64) > 1.0 / (1u64 << 30) as f64
    {
        left += 1;
    }
    let (q, s) = quantize_multiplier(m / (1u64 << left) as f64);
    (q, s, left)
}

fn range(out: QParams, clamp: (i32, i32)) -> String {
    format!(
        "rt::int8::OutRange {{ zero_point: {}, lo: {}, hi: {} }}",
        out.zero_point, clamp.0, clamp.1
    )
}

impl Emitter<'_> {
    /// `(byte offset, byte len)` of i8 tensor `t`.
    fn bregion(&self, t: TensorId) -> String {
        format!(
            "({}, {})",
            self.plan.offsets[t] * 4,
            self.graph.tensors[t].len()
        )
    }

    /// `(offset, len)` of tensor `t`'s whole storage in arena elements.
    fn sregion(&self, t: TensorId) -> String {
        format!(
            "({}, {})",
            self.plan.offsets[t],
            self.graph.tensors[t].storage_len()
        )
    }

    /// Appends i8 `data` to the blob (padded to 4 bytes); the byte slice
    /// expression of it.
    fn weights_i8(&mut self, data: &[i8]) -> String {
        let start = self.blob.len() * 4;
        for chunk in data.chunks(4) {
            let mut b = [0u8; 4];
            for (d, s) in b.iter_mut().zip(chunk) {
                *d = *s as u8;
            }
            self.blob.push(f32::from_bits(u32::from_le_bytes(b)));
        }
        format!("&WEIGHTS.0[{start}..{}]", start + data.len())
    }

    /// A `static` array of the generated crate; returns its name.
    fn static_array(&mut self, i: usize, what: &str, ty: &str, values: &str, n: usize) -> String {
        let name = format!("Q{i}_{what}");
        let _ = writeln!(self.params, "static {name}: [{ty}; {n}] = [{values}];");
        name
    }

    /// The per-channel bias / multiplier / shift statics of a layer.
    fn per_channel(&mut self, i: usize, q: &QWeights) -> String {
        let (mut m, mut s) = (Vec::new(), Vec::new());
        for sw in &q.weight_scales {
            let (qm, sh) =
                quantize_multiplier(q.input.scale as f64 * *sw as f64 / q.output.scale as f64);
            m.push(qm);
            s.push(sh);
        }
        let n = q.bias.len();
        let b = self.static_array(i, "BIAS", "i32", &list(&q.bias), n);
        let m = self.static_array(i, "MULT", "i32", &list(&m), n);
        let s = self.static_array(i, "SHIFT", "i32", &list(&s), n);
        format!("rt::int8::PerChannel {{ bias: &{b}, mult: &{m}, shift: &{s} }}")
    }

    /// `let b = bytes; let ([x..], y) = split_io(...)` for i8 -> i8 ops.
    fn bio(&self, reads: &[TensorId], y: TensorId) -> String {
        let r: Vec<String> = reads.iter().map(|t| self.bregion(*t)).collect();
        let names: Vec<String> = (0..reads.len()).map(|k| format!("x{k}")).collect();
        format!(
            "let b = rt::f32_bytes_mut(a); let ([{}], y) = rt::int8::split_io(b, [{}], {});",
            names.join(", "),
            r.join(", "),
            self.bregion(y)
        )
    }

    /// Emits int8 op `i`.
    pub(super) fn int8(&mut self, i: usize, op: &Op, q: &QOp) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let name = |k: &str| -> &'static str {
            match k {
                "quantize" => "int8::quantize",
                "dequantize" => "int8::dequantize",
                "qconv2d" => "int8::qconv2d",
                "qdepthwise_conv2d" => "int8::qdepthwise_conv2d",
                "qgemm" => "int8::qgemm",
                "qadd" => "int8::qadd",
                "qglobal_avg_pool" => "int8::qglobal_avg_pool",
                _ => "int8::qlut",
            }
        };
        Ok(match q {
            QOp::Quantize(p) => {
                self.kernels.insert(name("quantize"));
                format!(
                    "{{ let ([x], yw) = rt::io2(a, [{}], {}); let y = &mut rt::f32_bytes_mut(yw)[..{}]; rt::int8::quantize(x, {}, {}, y); }}",
                    self.region(x),
                    self.sregion(y),
                    self.graph.tensors[y].len(),
                    super::f(p.scale),
                    p.zero_point
                )
            }
            QOp::Dequantize(p) => {
                self.kernels.insert(name("dequantize"));
                format!(
                    "{{ let ([xw], y) = rt::io2(a, [{}], {}); let x = &rt::f32_bytes(xw)[..{}]; rt::int8::dequantize(x, {}, {}, y); }}",
                    self.sregion(x),
                    self.region(y),
                    self.graph.tensors[x].len(),
                    super::f(p.scale),
                    p.zero_point
                )
            }
            QOp::Conv { conv, q } => self.qconv(i, op, conv, q)?,
            QOp::Dense(q) => {
                self.kernels.insert(name("qgemm"));
                let k = self.graph.tensors[x].len();
                let n = q.bias.len();
                let weight = match self.graph.tensors[x].hwc() {
                    Some((h, w, c)) if !self.graph.tensors[x].storage_is_logical() => {
                        // columns from CHW (ONNX Flatten) to the HWC storage
                        let mut r = vec![0i8; q.weight.len()];
                        for o in 0..n {
                            for ci in 0..c {
                                for p in 0..h * w {
                                    r[o * k + p * c + ci] = q.weight[o * k + ci * h * w + p];
                                }
                            }
                        }
                        r
                    }
                    _ => q.weight.clone(),
                };
                let wexpr = self.weights_i8(&weight);
                let pc = self.per_channel(i, q);
                format!(
                    "{{ {} rt::int8::qgemm(1, {k}, {n}, x0, {}, {wexpr}, {pc}, {}, y); }}",
                    self.bio(&[x], y),
                    q.input.zero_point,
                    range(q.output, q.clamp)
                )
            }
            QOp::Add {
                a,
                b,
                output,
                clamp,
            } => {
                self.kernels.insert(name("qadd"));
                let twice = 2.0 * (a.scale as f64).max(b.scale as f64);
                let (am, ash) = quantize_multiplier(a.scale as f64 / twice);
                let (bm, bsh) = quantize_multiplier(b.scale as f64 / twice);
                let (om, osh) =
                    quantize_multiplier(twice / ((1u64 << 20) as f64 * output.scale as f64));
                format!(
                    "{{ {} rt::int8::qadd(&rt::int8::QAdd {{ a_zero: {}, b_zero: {}, left_shift: 20, a_mult: {am}, a_shift: {ash}, b_mult: {bm}, b_shift: {bsh}, out_mult: {om}, out_shift: {osh}, out: {} }}, x0, x1, y); }}",
                    self.bio(&[x, op.inputs[1]], y),
                    a.zero_point,
                    b.zero_point,
                    range(*output, *clamp)
                )
            }
            QOp::Mul {
                a,
                b,
                output,
                clamp,
                per_channel,
            } => {
                let m = a.scale as f64 * b.scale as f64 / output.scale as f64;
                let (m, s, l) = pool_multiplier(m, 256);
                let p = format!(
                    "rt::int8::QMul {{ a_zero: {}, b_zero: {}, mult: {m}, shift: {s}, left: {l}, out: {} }}",
                    a.zero_point,
                    b.zero_point,
                    range(*output, *clamp)
                );
                let io = self.bio(&[x, op.inputs[1]], y);
                if *per_channel {
                    self.kernels.insert("int8::qmul_channel");
                    let (h, w, c) = self.image(op, x, "the scaled input")?;
                    format!(
                        "{{ {io} rt::int8::qmul_channel(&{p}, {}, {c}, x0, x1, y); }}",
                        h * w
                    )
                } else {
                    self.kernels.insert("int8::qmul");
                    format!("{{ {io} rt::int8::qmul(&{p}, x0, x1, y); }}")
                }
            }
            QOp::GlobalAvgPool { input, output } => {
                self.kernels.insert(name("qglobal_avg_pool"));
                let (h, w, c) = self.image(op, x, "the pooled input")?;
                let m = input.scale as f64 / (output.scale as f64 * (h * w) as f64);
                let (m, s, l) = pool_multiplier(m, h * w);
                format!(
                    "{{ {} rt::int8::qglobal_avg_pool({}, {c}, x0, {}, ({m}, {s}, {l}), {}, y); }}",
                    self.bio(&[x], y),
                    h * w,
                    input.zero_point,
                    range(*output, (-128, 127))
                )
            }
            QOp::Lut { table, .. } => {
                self.kernels.insert(name("qlut"));
                let bytes: Vec<u8> = table.iter().map(|v| *v as u8).collect();
                let t = self.static_array(i, "LUT", "u8", &list(&bytes), 256);
                format!("{{ {} rt::int8::qlut(&{t}, x0, y); }}", self.bio(&[x], y))
            }
        })
    }

    /// An int8 convolution: depthwise, pointwise (GEMM) or general kernel.
    fn qconv(
        &mut self,
        i: usize,
        op: &Op,
        c: &kiln_ir::Conv,
        q: &QWeights,
    ) -> Result<String, CodegenError> {
        let (x, y) = (op.inputs[0], op.output);
        let (ih, iw, ic) = self.image(op, x, "the conv input")?;
        let (oh, ow, oc) = self.image(op, y, "the conv output")?;
        let [kh, kw] = c.kernel;
        let pc = self.per_channel(i, q);
        let io = self.bio(&[x], y);
        if c.is_pointwise() {
            self.kernels.insert("int8::qgemm");
            let w = self.weights_i8(&q.weight);
            return Ok(format!(
                "{{ {io} rt::int8::qgemm({}, {ic}, {oc}, x0, {}, {w}, {pc}, {}, y); }}",
                ih * iw,
                q.input.zero_point,
                range(q.output, q.clamp)
            ));
        }
        let (kernel, weight) = if c.is_depthwise() {
            let mut r = vec![0i8; q.weight.len()];
            for ch in 0..oc {
                for t in 0..kh * kw {
                    r[t * oc + ch] = q.weight[ch * kh * kw + t];
                }
            }
            ("qdepthwise_conv2d", r)
        } else {
            // OIHW -> [o][kh][kw][cig]
            let cig = ic / c.groups;
            let mut r = vec![0i8; q.weight.len()];
            for o in 0..oc {
                for ci in 0..cig {
                    for t in 0..kh * kw {
                        r[(o * kh * kw + t) * cig + ci] = q.weight[(o * cig + ci) * kh * kw + t];
                    }
                }
            }
            ("qconv2d", r)
        };
        self.kernels.insert(if kernel == "qconv2d" {
            "int8::qconv2d"
        } else {
            "int8::qdepthwise_conv2d"
        });
        let w = self.weights_i8(&weight);
        let p = format!(
            "rt::int8::QConv2d {{ in_h: {ih}, in_w: {iw}, in_c: {ic}, out_h: {oh}, out_w: {ow}, out_c: {oc}, k: [{kh}, {kw}], stride: [{}, {}], dilation: [{}, {}], pad: [{}, {}], groups: {}, x_zero: {}, out: {} }}",
            c.stride[0],
            c.stride[1],
            c.dilation[0],
            c.dilation[1],
            c.pads[0],
            c.pads[1],
            c.groups,
            q.input.zero_point,
            range(q.output, q.clamp)
        );
        Ok(format!(
            "{{ {io} rt::int8::{kernel}(&{p}, x0, {w}, {pc}, y); }}"
        ))
    }

    /// A reshape of an i8 tensor: no code when the storage is kept, else the
    /// bytes moved between NHWC and logical order.
    pub(super) fn int8_reshape(&mut self, op: &Op) -> Result<String, CodegenError> {
        let g = self.graph;
        let (x, y) = (op.inputs[0], op.output);
        let (xt, yt) = (&g.tensors[x], &g.tensors[y]);
        let (kernel, (h, w, c)) = if op.is_alias(g) {
            return Ok("/* same memory, no code */".to_string());
        } else if !xt.storage_is_logical() && yt.storage_is_logical() {
            ("hwc_to_chw", self.image(op, x, "the reshaped input")?)
        } else if xt.storage_is_logical() && !yt.storage_is_logical() {
            ("chw_to_hwc", self.image(op, y, "the reshaped output")?)
        } else {
            return Err(Self::unsupported(
                op,
                "an int8 reshape between two image layouts",
            ));
        };
        self.kernels.insert(if kernel == "hwc_to_chw" {
            "int8::hwc_to_chw"
        } else {
            "int8::chw_to_hwc"
        });
        Ok(format!(
            "{{ {} rt::int8::{kernel}(x0, y, {h}, {w}, {c}); }}",
            self.bio(&[x], y)
        ))
    }
}
