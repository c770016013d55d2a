//! Rendering src/lib.rs and the weight blob.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use kiln_ir::{Activation, ArenaPlan, BinaryOp, Graph, Op, OpKind, Operand, Tensor, TensorId};

use crate::CodegenError;
use crate::weights;

pub(crate) struct Rendered {
    pub lib_rs: String,
    /// The crate-independent part (consts, statics, `infer`), for bundles.
    pub header: String,
    pub items: String,
    pub weights: Vec<u8>,
    pub kernels: Vec<&'static str>,
}

/// Renders only the lib.rs text (for `xtask lower` printing and tests).
pub fn render_lib(graph: &Graph, source_name: &str) -> Result<String, CodegenError> {
    let plan = kiln_ir::plan(graph)?;
    Ok(render(graph, &plan, source_name)?.lib_rs)
}

struct Emitter<'a> {
    graph: &'a Graph,
    plan: &'a ArenaPlan,
    blob: Vec<f32>,
    params: String,
    body: String,
    kernels: BTreeSet<&'static str>,
}

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

fn binop(op: BinaryOp) -> &'static str {
    match op {
        BinaryOp::Add => "rt::BinaryOp::Add",
        BinaryOp::Sub => "rt::BinaryOp::Sub",
        BinaryOp::Mul => "rt::BinaryOp::Mul",
        BinaryOp::Div => "rt::BinaryOp::Div",
        BinaryOp::Max => "rt::BinaryOp::Max",
        BinaryOp::Min => "rt::BinaryOp::Min",
    }
}

fn shape(t: &Tensor) -> String {
    let d: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
    format!("[{}]", d.join(","))
}

fn storage_axes(t: &Tensor) -> Vec<usize> {
    t.storage_axes()
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl Emitter<'_> {
    fn region(&self, t: TensorId) -> String {
        format!(
            "({}, {})",
            self.plan.offsets[t],
            self.graph.tensors[t].len()
        )
    }

    fn slice(&self, t: TensorId) -> String {
        let (o, l) = (self.plan.offsets[t], self.graph.tensors[t].len());
        format!("a[{o}..{}]", o + l)
    }

    /// Appends `data` to the blob and returns the expression slicing it.
    fn weights(&mut self, data: &[f32]) -> String {
        let at = self.blob.len();
        self.blob.extend_from_slice(data);
        format!("&w[{at}..{}]", at + data.len())
    }

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

    /// `(x, y)` views for a one-input op that does not run in place.
    fn io1(&self, x: TensorId, y: TensorId) -> String {
        format!(
            "let (x, y) = rt::io1(a, {}, {});",
            self.region(x),
            self.region(y)
        )
    }

    fn op(&mut self, i: usize, op: &Op) -> Result<(), CodegenError> {
        let g = self.graph;
        let y = op.output;
        let yt = &g.tensors[y];
        let in_place = self.plan.in_place[i];
        match &op.kind {
            OpKind::Input => {
                let code = match yt.hwc() {
                    Some((h, w, c)) if !yt.storage_is_logical() => {
                        self.kernels.insert("nchw_to_nhwc");
                        format!(
                            "rt::nchw_to_nhwc(input, &mut {}, {c}, {h}, {w});",
                            self.slice(y)
                        )
                    }
                    _ => format!("{}.copy_from_slice(input);", self.slice(y)),
                };
                self.line(op, &code);
            }
            OpKind::Conv(c) => {
                let x = op.inputs[0];
                let (ih, iw, _) = g.tensors[x]
                    .hwc()
                    .ok_or_else(|| Self::unsupported(op, "conv input is not an image"))?;
                let (oh, ow, _) = yt
                    .hwc()
                    .ok_or_else(|| Self::unsupported(op, "conv output is not an image"))?;
                let w = self.weights(&weights::conv_weights(c, &g.constants[c.weight].data));
                let b = match c.bias {
                    Some(b) => {
                        let data = g.constants[b].data.clone();
                        self.weights(&data)
                    }
                    None => "&[]".into(),
                };
                let io = self.io1(x, y);
                let code = if c.is_pointwise() {
                    self.kernels.insert("pointwise_conv2d");
                    format!(
                        "{{ {io} rt::pointwise_conv2d(x, {w}, {b}, y, {}, {}, {}, {}); }}",
                        oh * ow,
                        c.in_channels,
                        c.out_channels,
                        act(c.act)
                    )
                } else {
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
                    format!("{{ {io} rt::{kernel}(x, {w}, {b}, y, &{p}); }}")
                };
                self.line(op, &code);
            }
            OpKind::Dense {
                weight,
                bias,
                act: a,
            } => {
                let x = op.inputs[0];
                let wdata = weights::dense_weights(&g.constants[*weight].data, yt.len());
                let w = self.weights(&wdata);
                let b = match bias {
                    Some(b) => {
                        let data = g.constants[*b].data.clone();
                        self.weights(&data)
                    }
                    None => "&[]".into(),
                };
                self.kernels.insert("dense");
                let code = format!(
                    "{{ {} rt::dense(x, {w}, {b}, y, {}); }}",
                    self.io1(x, y),
                    act(*a)
                );
                self.line(op, &code);
            }
            OpKind::MaxPool(p) | OpKind::AvgPool(p) => {
                let x = op.inputs[0];
                let (ih, iw, c) = g.tensors[x]
                    .hwc()
                    .ok_or_else(|| Self::unsupported(op, "pool input is not an image"))?;
                let (oh, ow, _) = yt
                    .hwc()
                    .ok_or_else(|| Self::unsupported(op, "pool output is not an image"))?;
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
                let kernel = if matches!(op.kind, OpKind::MaxPool(_)) {
                    "max_pool2d"
                } else {
                    "avg_pool2d"
                };
                self.kernels.insert(kernel);
                let code = format!("{{ {} rt::{kernel}(x, y, &{name}); }}", self.io1(x, y));
                self.line(op, &code);
            }
            OpKind::GlobalSumPool { scale } => {
                let x = op.inputs[0];
                let (_, _, c) = g.tensors[x]
                    .hwc()
                    .ok_or_else(|| Self::unsupported(op, "global pool input is not an image"))?;
                self.kernels.insert("global_avg_pool");
                let code = format!(
                    "{{ {} rt::global_avg_pool(x, y, {c}, {}); }}",
                    self.io1(x, y),
                    f(*scale)
                );
                self.line(op, &code);
            }
            OpKind::GlobalMaxPool => {
                let x = op.inputs[0];
                let (_, _, c) = g.tensors[x]
                    .hwc()
                    .ok_or_else(|| Self::unsupported(op, "global pool input is not an image"))?;
                self.kernels.insert("global_max_pool");
                let code = format!("{{ {} rt::global_max_pool(x, y, {c}); }}", self.io1(x, y));
                self.line(op, &code);
            }
            OpKind::Activation(a) => {
                self.kernels.insert("activate");
                let x = op.inputs[0];
                let code = if in_place {
                    format!("rt::activate(&mut {}, {});", self.slice(y), act(*a))
                } else {
                    format!(
                        "{{ {} y.copy_from_slice(x); rt::activate(y, {}); }}",
                        self.io1(x, y),
                        act(*a)
                    )
                };
                self.line(op, &code);
            }
            OpKind::Softmax => {
                self.kernels.insert("softmax");
                let x = op.inputs[0];
                let n = match yt.hwc() {
                    Some((_, _, c)) => c,
                    None => *yt.shape.last().unwrap_or(&1),
                };
                let code = if in_place {
                    format!("rt::softmax(&mut {}, {n});", self.slice(y))
                } else {
                    format!(
                        "{{ {} y.copy_from_slice(x); rt::softmax(y, {n}); }}",
                        self.io1(x, y)
                    )
                };
                self.line(op, &code);
            }
            OpKind::Binary {
                op: bop,
                rhs,
                data_is_lhs,
            } => {
                let x = op.inputs[0];
                let bop_s = binop(*bop);
                let lhs = data_is_lhs;
                let (reads, apply) = match rhs {
                    Operand::Scalar(s) => {
                        self.kernels.insert("binary_scalar");
                        (
                            vec![],
                            format!("rt::binary_scalar({bop_s}, y, {}, {lhs});", f(*s)),
                        )
                    }
                    Operand::ChannelConst(k) => {
                        self.kernels.insert("binary_broadcast_channel");
                        let data = g.constants[*k].data.clone();
                        let wk = self.weights(&data);
                        (
                            vec![],
                            format!("rt::binary_broadcast_channel({bop_s}, y, {wk}, {lhs});"),
                        )
                    }
                    Operand::Const(k) => {
                        self.kernels.insert("binary_inplace");
                        let data = if yt.storage_is_logical() {
                            g.constants[*k].data.clone()
                        } else {
                            weights::chw_to_hwc(&g.constants[*k].data, yt.hwc())
                        };
                        let wk = self.weights(&data);
                        (
                            vec![],
                            format!("rt::binary_inplace({bop_s}, y, {wk}, {lhs});"),
                        )
                    }
                    Operand::Tensor(t) => {
                        self.kernels.insert("binary_inplace");
                        (
                            vec![*t],
                            format!("rt::binary_inplace({bop_s}, y, r, {lhs});"),
                        )
                    }
                    Operand::ChannelTensor(t) => {
                        self.kernels.insert("binary_broadcast_channel");
                        (
                            vec![*t],
                            format!("rt::binary_broadcast_channel({bop_s}, y, r, {lhs});"),
                        )
                    }
                };
                let code = match (in_place, reads.first()) {
                    (true, None) => format!("{{ let y = &mut {}; {apply} }}", self.slice(y)),
                    (true, Some(r)) => format!(
                        "{{ let ([r], y) = rt::io2(a, [{}], {}); {apply} }}",
                        self.region(*r),
                        self.region(y)
                    ),
                    (false, None) => {
                        format!("{{ {} y.copy_from_slice(x); {apply} }}", self.io1(x, y))
                    }
                    (false, Some(r)) => format!(
                        "{{ let ([x, r], y) = rt::io2(a, [{}, {}], {}); y.copy_from_slice(x); {apply} }}",
                        self.region(x),
                        self.region(*r),
                        self.region(y)
                    ),
                };
                self.line(op, &code);
            }
            OpKind::Reshape => {
                let x = op.inputs[0];
                let xt = &g.tensors[x];
                let code = if op.is_alias(g) {
                    "/* same memory, no code */".to_string()
                } else if !xt.storage_is_logical() && yt.storage_is_logical() {
                    let (h, w, c) = xt
                        .hwc()
                        .ok_or_else(|| Self::unsupported(op, "bad reshape input"))?;
                    self.kernels.insert("nhwc_to_nchw");
                    format!(
                        "{{ {} rt::nhwc_to_nchw(x, y, {h}, {w}, {c}); }}",
                        self.io1(x, y)
                    )
                } else if xt.storage_is_logical() && !yt.storage_is_logical() {
                    let (h, w, c) = yt
                        .hwc()
                        .ok_or_else(|| Self::unsupported(op, "bad reshape output"))?;
                    self.kernels.insert("nchw_to_nhwc");
                    format!(
                        "{{ {} rt::nchw_to_nhwc(x, y, {c}, {h}, {w}); }}",
                        self.io1(x, y)
                    )
                } else {
                    return Err(Self::unsupported(
                        op,
                        "reshape between two channel-last images with different shapes",
                    ));
                };
                self.line(op, &code);
            }
            OpKind::Transpose { perm } => {
                let x = op.inputs[0];
                let xt = &g.tensors[x];
                if perm.len() > 6 || perm.len() != xt.shape.len() {
                    return Err(Self::unsupported(op, "transpose of rank above 6"));
                }
                let s_in = storage_axes(xt);
                let s_out = storage_axes(yt);
                let mut inv_in = vec![0; s_in.len()];
                for (pos, ax) in s_in.iter().enumerate() {
                    inv_in[*ax] = pos;
                }
                let storage_perm: Vec<usize> = s_out.iter().map(|o| inv_in[perm[*o]]).collect();
                let in_dims: Vec<usize> = s_in.iter().map(|ax| xt.shape[*ax]).collect();
                self.kernels.insert("permute");
                let code = format!(
                    "{{ {} rt::permute(x, y, &{in_dims:?}, &{storage_perm:?}); }}",
                    self.io1(x, y)
                );
                self.line(op, &code);
            }
            OpKind::Concat { axis } => {
                let rank = yt.shape.len();
                let s = storage_axes(yt);
                let pos = s
                    .iter()
                    .position(|a| a == axis)
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
                let code = format!(
                    "{{ let ([{}], y) = rt::io2(a, [{}], {}); rt::concat(&[{}], &{inners:?}, {outer}, y); }}",
                    names.join(", "),
                    regions.join(", "),
                    self.region(y),
                    names.join(", ")
                );
                self.line(op, &code);
            }
            OpKind::Downsample { stride } => {
                let x = op.inputs[0];
                let (_, iw, c) = g.tensors[x]
                    .hwc()
                    .ok_or_else(|| Self::unsupported(op, "downsample input is not an image"))?;
                let (oh, ow, _) = yt
                    .hwc()
                    .ok_or_else(|| Self::unsupported(op, "downsample output is not an image"))?;
                self.kernels.insert("downsample_nhwc");
                let code = format!(
                    "{{ {} rt::downsample_nhwc(x, y, {iw}, {c}, {}, {}, {oh}, {ow}); }}",
                    self.io1(x, y),
                    stride[0],
                    stride[1]
                );
                self.line(op, &code);
            }
        }
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
        kernels: BTreeSet::new(),
    };
    for (i, op) in graph.ops.iter().enumerate() {
        e.op(i, op)?;
    }
    let out = &graph.tensors[graph.output];
    let copy_out = match out.hwc() {
        Some((h, w, c)) if !out.storage_is_logical() => {
            e.kernels.insert("nhwc_to_nchw");
            format!(
                "rt::nhwc_to_nchw(&{}, output, {h}, {w}, {c});",
                e.slice(graph.output)
            )
        }
        _ => format!("output.copy_from_slice(&{});", e.slice(graph.output)),
    };
    let input_len = graph.tensors[graph.input].len();
    let output_len = out.len();
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
    let mut items = String::new();
    let _ = write!(
        items,
        r#"
/// Input length: the {in_shape} tensor in ONNX (NCHW) order.
pub const INPUT_LEN: usize = {input_len};
/// Output length: the {out_shape} tensor in ONNX order.
pub const OUTPUT_LEN: usize = {output_len};
const ARENA_LEN: usize = {arena};

static ARENA: rt::StaticArena<ARENA_LEN> = rt::StaticArena::new();
static WEIGHTS: &rt::Aligned<[u8]> = &rt::Aligned(*include_bytes!("@WEIGHTS_FILE@"));

{params}
/// Runs the model on one input.
pub fn infer(input: &[f32; INPUT_LEN], output: &mut [f32; OUTPUT_LEN]) {{
    let mut arena = ARENA.lock();
    let a: &mut [f32] = &mut arena;
    let w = rt::weights_f32(&WEIGHTS.0);
{body}    {copy_out}
}}
"#,
        arena = plan.arena_len,
        in_shape = shape(&graph.tensors[graph.input]),
        out_shape = shape(out),
        params = e.params,
        body = e.body,
    );
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

/// src/main.rs of every generated crate: the host / aarch64 program
/// (`#![no_std]`, on kiln-runtime's Linux module; see the template's header).
pub(crate) const MAIN_RS: &str = include_str!("templates/model_main.rs");

/// src/main.rs of a bundle: `kiln-bundle INDEX [--bench --warmup W --runs N]`.
pub(crate) const BUNDLE_MAIN_RS: &str = r#"//! Generated by kiln-codegen: runs model INDEX of the bundle on LE f32 stdin.
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Instant;

fn run<const I: usize, const O: usize>(infer: fn(&[f32; I], &mut [f32; O]), input: &[f32], bench: Option<(usize, usize)>) -> ExitCode {
    let Ok(x) = <&[f32; I]>::try_from(input) else {
        eprintln!("kiln-bundle: expected {} bytes ({I} f32), got {}", I * 4, input.len() * 4);
        return ExitCode::from(2);
    };
    let mut y = Box::new([0f32; O]);
    if let Some((warmup, runs)) = bench {
        for _ in 0..warmup {
            infer(x, &mut y);
        }
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                infer(std::hint::black_box(x), &mut y);
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        times.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| times[((q * runs as f64).ceil() as usize).clamp(1, runs) - 1];
        println!(
            "{{\"source\":\"host\",\"runs\":{runs},\"p50_us\":{:.3},\"p95_us\":{:.3},\"min_us\":{:.3},\"max_us\":{:.3}}}",
            pick(0.5), pick(0.95), times[0], times[runs - 1]
        );
        return ExitCode::SUCCESS;
    }
    infer(x, &mut y);
    let out: Vec<u8> = y.iter().flat_map(|v| v.to_le_bytes()).collect();
    match std::io::stdout().lock().write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(1),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(index) = args.first().and_then(|a| a.parse::<usize>().ok()) else {
        eprintln!("usage: kiln-bundle INDEX [--bench --warmup W --runs N] < input");
        return ExitCode::from(2);
    };
    let num = |name: &str, default: usize| {
        args.iter().position(|a| a == name).and_then(|p| args.get(p + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
    };
    let bench = args.iter().any(|a| a == "--bench").then(|| (num("--warmup", 10), num("--runs", 100).max(1)));
    let mut bytes = Vec::new();
    if std::io::stdin().read_to_end(&mut bytes).is_err() || bytes.len() % 4 != 0 {
        eprintln!("kiln-bundle: cannot read f32 input from stdin");
        return ExitCode::from(2);
    }
    let input: Vec<f32> = bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    match index {
@ARMS@        _ => {
            eprintln!("kiln-bundle: no model {index}");
            ExitCode::from(2)
        }
    }
}
"#;
