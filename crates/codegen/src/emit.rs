//! Rendering src/lib.rs and the weight blob.
//!
//! [`render`] walks the schedule and gives each op to the function that emits
//! its kernel call, grouped as the runtime's kernels are: convolutions and
//! dense layers (`emit/conv.rs`), pools (`emit/pool.rs`), element-wise ops
//! (`emit/elementwise.rs`) and layout moves (`emit/moves.rs`). Each returns
//! the statement for `infer`'s body; [`Emitter::op`] appends it with a comment
//! naming the ONNX node and shapes.

mod conv;
mod elementwise;
mod int8;
mod moves;
mod pool;
mod resize;
mod spatial;
mod unary;

use std::collections::BTreeSet;
use std::fmt::Write as _;

use kiln_ir::{Activation, ArenaPlan, BinaryOp, Graph, Op, OpKind, Tensor, TensorId};

use crate::CodegenError;

pub(crate) struct Rendered {
    pub lib_rs: String,
    /// The crate-independent part (consts, statics, `infer`), for bundles.
    pub header: String,
    pub items: String,
    pub weights: Vec<u8>,
    pub kernels: Vec<&'static str>,
}

struct Emitter<'a> {
    graph: &'a Graph,
    plan: &'a ArenaPlan,
    blob: Vec<f32>,
    params: String,
    body: String,
    /// The `Input` op's statement (the input into the arena), repeated by `io`.
    input_code: Option<String>,
    kernels: BTreeSet<&'static str>,
    /// Residual sums fused into the pointwise convolution before them:
    /// (convolution's op index, sum's op index) (see `emit/conv.rs`).
    fused: std::collections::BTreeMap<usize, usize>,
}

/// An f32 literal of the generated code.
fn f(v: f32) -> String {
    if v == f32::INFINITY {
        "f32::INFINITY".into()
    } else if v == f32::NEG_INFINITY {
        "f32::NEG_INFINITY".into()
    } else if v.is_nan() {
        "f32::NAN".into()
    } else {
        format!("{v:?}_f32")
    }
}

/// The `rt::Activation` expression for `a`.
fn act(a: Activation) -> String {
    match a {
        Activation::None => "rt::Activation::None".into(),
        Activation::Relu => "rt::Activation::Relu".into(),
        Activation::Clip { min, max } => format!(
            "rt::Activation::Clip {{ min: {}, max: {} }}",
            f(min),
            f(max)
        ),
        Activation::HardSwish => "rt::Activation::HardSwish".into(),
        Activation::HardSigmoid { alpha, beta } => {
            format!(
                "rt::Activation::HardSigmoid {{ alpha: {}, beta: {} }}",
                f(alpha),
                f(beta)
            )
        }
        Activation::Sigmoid => "rt::Activation::Sigmoid".into(),
    }
}

/// The `rt::BinaryOp` expression for `op`.
fn binop(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "rt::BinaryOp::Add",
        BinaryOp::Sub => "rt::BinaryOp::Sub",
        BinaryOp::Mul => "rt::BinaryOp::Mul",
        BinaryOp::Div => "rt::BinaryOp::Div",
        BinaryOp::Max => "rt::BinaryOp::Max",
        BinaryOp::Min => "rt::BinaryOp::Min",
        BinaryOp::PRelu => "rt::BinaryOp::PRelu",
    }
}

/// `[d0,d1,..]`, the logical shape as the comments show it.
fn shape(t: &Tensor) -> String {
    let d: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", d.join(","))
}

/// `s` with control characters (a newline would end a comment) as spaces.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Emitter<'_> {
    /// `(offset, len)` of tensor `t` in the arena, in f32.
    fn region(&self, t: TensorId) -> String {
        format!(
            "({}, {})",
            self.plan.offsets[t],
            self.graph.tensors[t].len()
        )
    }

    /// `a[start..end]`, tensor `t`'s slice of the arena.
    fn slice(&self, t: TensorId) -> String {
        let (o, l) = (self.plan.offsets[t], self.graph.tensors[t].len());
        format!("a[{o}..{}]", o + l)
    }

    /// Appends `data` to the blob at the next multiple of 16 values (zeros
    /// between) and returns the expression slicing it. The blob starts on a
    /// 64-byte boundary on x86-64 and aarch64 (`rt::Aligned`), so a
    /// constant starts on one too, and the vector kernels' loads of its
    /// rows (16-value GEMM panels, depthwise rows of a multiple of 16
    /// channels) split no cache line.
    fn weights(&mut self, data: &[f32]) -> String {
        let at = self.blob.len().next_multiple_of(16);
        self.blob.resize(at, 0.0);
        self.blob.extend_from_slice(data);
        format!("&w[{at}..{}]", at + data.len())
    }

    /// Appends `code` to `infer`'s body with a comment naming the op.
    fn line(&mut self, op: &Op, code: &str) {
        let t = |id: &TensorId| shape(&self.graph.tensors[*id]);
        let ins: Vec<String> = op.reads().iter().map(t).collect();
        let _ = writeln!(
            self.body,
            "    {code} // {}: {} {} -> {}",
            sanitize(&op.node),
            op.kind,
            ins.join(" "),
            t(&op.output)
        );
    }

    fn unsupported(op: &Op, reason: impl Into<String>) -> CodegenError {
        CodegenError::Unsupported {
            node: op.node.clone(),
            reason: reason.into(),
        }
    }

    /// `(h, w, c)` of image `t`, or "`what` is not an image".
    fn image(
        &self,
        op: &Op,
        t: TensorId,
        what: &str,
    ) -> Result<(usize, usize, usize), CodegenError> {
        self.graph.tensors[t]
            .hwc()
            .ok_or_else(|| Self::unsupported(op, format!("{what} is not an image")))
    }

    /// `(x, y)` views for a one-input op that does not run in place.
    fn io1(&self, x: TensorId, y: TensorId) -> String {
        format!(
            "let (x, y) = rt::io1(a, {}, {});",
            self.region(x),
            self.region(y)
        )
    }

    /// Emits op `i` of the schedule.
    fn op(&mut self, i: usize, op: &Op) -> Result<(), CodegenError> {
        let in_place = self.plan.in_place[i];
        let code = match &op.kind {
            OpKind::Input => {
                let code = self.input(op);
                self.input_code = Some(code.clone());
                code
            }
            OpKind::Conv(c) => self.conv(i, op, c)?,
            OpKind::Binary { .. } if self.fused.values().any(|&j| j == i) => {
                "/* added by the convolution above */".into()
            }
            OpKind::Dense { weight, bias, act } => self.dense(op, *weight, *bias, *act),
            OpKind::MaxPool(p) => self.pool(i, op, p, "max_pool2d")?,
            OpKind::AvgPool(p) => self.pool(i, op, p, "avg_pool2d")?,
            OpKind::GlobalSumPool { scale } => self.global_sum_pool(op, *scale)?,
            OpKind::GlobalMaxPool => self.global_max_pool(op)?,
            OpKind::Activation(a) => self.activation(op, *a, in_place),
            OpKind::Unary(u) => self.unary(op, *u, in_place),
            OpKind::Softmax => self.softmax(op, in_place),
            OpKind::Binary {
                op: bop,
                rhs,
                data_is_lhs,
            } => self.binary(op, *bop, rhs, *data_is_lhs, in_place),
            OpKind::Reshape if self.graph.tensors[op.output].dtype == kiln_ir::DType::I8 => {
                self.int8_reshape(op)?
            }
            OpKind::Reshape => self.reshape(op)?,
            OpKind::Transpose { perm } => self.transpose(op, perm)?,
            OpKind::Concat { axis } => self.concat(op, *axis)?,
            OpKind::Slice { axis, start, end } => self.slice_op(op, *axis, *start, *end)?,
            OpKind::Downsample { stride } => self.downsample(op, *stride)?,
            OpKind::Resize { rows, cols } => self.resize(i, op, rows, cols)?,
            OpKind::Pad { pads, mode } => self.pad(op, *pads, *mode)?,
            OpKind::ConvTranspose(d) => self.conv_transpose(op, d)?,
            OpKind::Lrn(l) => self.lrn(op, *l)?,
            OpKind::Int8(q) => self.int8(i, op, q)?,
        };
        self.line(op, &code);
        Ok(())
    }
}

pub(crate) fn render(
    graph: &Graph,
    plan: &ArenaPlan,
    source_name: &str,
) -> Result<Rendered, CodegenError> {
    let mut e = Emitter {
        graph,
        plan,
        blob: Vec::new(),
        params: String::new(),
        body: String::new(),
        input_code: None,
        kernels: BTreeSet::new(),
        fused: conv::residual_fusions(graph, plan),
    };
    for (i, op) in graph.ops.iter().enumerate() {
        e.op(i, op)?;
    }
    let copy_out = e.copy_out();
    let header = format!(
        "//! Generated by kiln-codegen from {source}. Do not edit.\n//!\n//! {ops} ops; arena {arena} f32 ({arena_b} bytes), lower bound {lb} f32 ({lb_b} bytes);\n//! weights {wn} f32. Kernels: {kernels}.\n",
        source = sanitize(source_name),
        ops = graph.ops.len(),
        arena = plan.arena_len,
        arena_b = plan.arena_bytes(),
        lb = plan.lower_bound,
        lb_b = plan.lower_bound_bytes(),
        wn = e.blob.len(),
        kernels = e.kernels.iter().copied().collect::<Vec<_>>().join(", "),
    );
    let items = e.items(&copy_out);
    let lib_items = items.replace("@WEIGHTS_FILE@", "../weights.bin");
    let lib = format!(
        "{header}#![no_std]\n#![allow(clippy::all, unused_variables)]\n\nuse kiln_runtime as rt;\n{lib_items}\nkiln_runtime::wasm_entry!(crate::infer, crate::INPUT_LEN, crate::OUTPUT_LEN);\n"
    );
    let weights: Vec<u8> = e.blob.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(Rendered {
        lib_rs: lib,
        header,
        items,
        weights,
        kernels: e.kernels.into_iter().collect(),
    })
}

impl Emitter<'_> {
    /// The last statement of `infer`: the output tensor into `output`, back in
    /// ONNX order.
    fn copy_out(&mut self) -> String {
        let graph = self.graph;
        let out = &graph.tensors[graph.output];
        match out.hwc() {
            Some((h, w, c)) if !out.storage_is_logical() => {
                self.kernels.insert("nhwc_to_nchw");
                format!(
                    "rt::nhwc_to_nchw(&{}, output, {h}, {w}, {c});",
                    self.slice(graph.output)
                )
            }
            _ => format!("output.copy_from_slice(&{});", self.slice(graph.output)),
        }
    }

    /// The consts, statics, `infer` and `io` of the model, the weights file
    /// named `@WEIGHTS_FILE@`. A model of a batch of N > 1 images runs its
    /// body (and `io` its I/O) once per image, over consecutive
    /// `IMAGE_INPUT_LEN` / `IMAGE_OUTPUT_LEN` chunks of its input and
    /// output; batch 1 has no loop.
    fn items(&self, copy_out: &str) -> String {
        let graph = self.graph;
        let input_code = self.input_code.as_deref().unwrap_or("/* no input op */");
        let (batch_consts, infer_doc, open, close) = if graph.batch > 1 {
            (
                format!(
                    "/// Images per call (the input's axis 0).\npub const BATCH: usize = {};\n\
                     /// Input elements of one image.\npub const IMAGE_INPUT_LEN: usize = {};\n\
                     /// Output elements of one image.\npub const IMAGE_OUTPUT_LEN: usize = {};\n",
                    graph.batch,
                    graph.tensors[graph.input].len(),
                    graph.tensors[graph.output].len(),
                ),
                "Runs the model on the BATCH images of the input, one after the other, into \
                 the BATCH outputs",
                "for (input, output) in input.chunks_exact(IMAGE_INPUT_LEN).zip(output.chunks_exact_mut(IMAGE_OUTPUT_LEN)) {\n",
                "    }\n",
            )
        } else {
            (String::new(), "Runs the model on one input", "", "")
        };
        let indent = if graph.batch > 1 { "    " } else { "" };
        let mut items = String::new();
        let _ = write!(
            items,
            r#"
/// Input length: the {in_shape} tensor in ONNX (NCHW) order.
pub const INPUT_LEN: usize = {input_len};
/// Output length: the {out_shape} tensor in ONNX order.
pub const OUTPUT_LEN: usize = {output_len};
{batch_consts}const ARENA_LEN: usize = {arena};

static ARENA: rt::StaticArena<ARENA_LEN> = rt::StaticArena::new();
static WEIGHTS: &rt::Aligned<[u8]> = &rt::Aligned(*include_bytes!("@WEIGHTS_FILE@"));

{params}
/// {infer_doc}.
pub fn infer(input: &[f32; INPUT_LEN], output: &mut [f32; OUTPUT_LEN]) {{
    let mut arena = ARENA.lock();
    let a: &mut [f32] = &mut arena;
    let w = rt::weights_f32(&WEIGHTS.0);
{indent}{open}{body}{indent}    {copy_out}
{close}}}

/// Runs only the program's I/O: the input statement and the final copy out
/// of [`infer`], under the same arena lock, and nothing else. Inside a whole
/// network a layer has no such I/O, so latency tables measure a one-layer
/// model's `infer` and subtract this.
pub fn io(input: &[f32; INPUT_LEN], output: &mut [f32; OUTPUT_LEN]) {{
    let mut arena = ARENA.lock();
    let a: &mut [f32] = &mut arena;
    {open}{indent}{indent}{input_code}
{indent}    {copy_out}
{close}}}
"#,
            input_len = graph.input_len(),
            output_len = graph.output_len(),
            arena = self.plan.arena_len,
            in_shape = shape_batched(&graph.tensors[graph.input], graph.batch),
            out_shape = shape_batched(&graph.tensors[graph.output], graph.batch),
            params = self.params,
            body = if graph.batch > 1 {
                self.body.lines().map(|l| format!("    {l}\n")).collect()
            } else {
                self.body.clone()
            },
        );
        items
    }
}

/// `shape(t)` with axis 0 the batch when there are several images.
fn shape_batched(t: &Tensor, batch: usize) -> String {
    if batch > 1 && !t.shape.is_empty() {
        let mut b = t.clone();
        b.shape[0] *= batch;
        shape(&b)
    } else {
        shape(t)
    }
}

/// src/main.rs of every generated crate: the host / aarch64 program
/// (`#![no_std]`, on kiln-runtime's Linux module; see the template's header).
pub(crate) const MAIN_RS: &str = include_str!("templates/model_main.rs");

/// src/main.rs of a bundle: `kiln-bundle INDEX [--io] [--bench --warmup W
/// --runs N]`, its models' calls in place of `@ARMS@`.
pub(crate) const BUNDLE_MAIN_RS: &str = include_str!("templates/bundle_main.rs");
