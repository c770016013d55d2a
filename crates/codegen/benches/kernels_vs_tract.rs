//! kiln-runtime's convolution kernels vs tract on single-op ONNX models, on
//! this machine (source: host).
//!
//! Shapes are those of a MobileNetV2-style network on 56x56 and 28x28 feature
//! maps (a 112x112 stem):
//! - conv 3x3: the stem (3 -> 32, 112x112, stride 2) and a mid-network conv
//!   (32 -> 32, 28x28, stride 1);
//! - depthwise 3x3 (56x56x48 and 28x28x96, stride 1; 56x56x96 stride 2),
//!   5x5 and 7x7 (28x28x96, stride 1);
//! - pointwise: expand 16 -> 96 and project 96 -> 24 at 56x56, expand 32 -> 192
//!   and project 192 -> 32 at 28x28.
//!
//! No bias, no activation. kiln's kernel gets its input in NHWC (the layout
//! generated code keeps activations in) and its weights pre-arranged, as
//! generated code does; tract gets the NCHW single-op ONNX model, optimized,
//! run on one thread through a state spawned once. Before timing, both outputs
//! are compared, so the two sides cannot silently do different work.
//!
//! Caveat for reading the ratios: this bench links the kernels as a normal
//! dependency compiled for the baseline x86-64 CPU (SSE2, no FMA), with shapes
//! as run-time values, while generated host programs are built with
//! `-Ctarget-cpu=native`, LTO and constant shapes; tract picks its AVX2/FMA
//! kernels at run time. On aarch64 both sides have NEON.
//!
//! Besides the criterion groups (kiln and tract per shape, alternating group by
//! group), a paired run prints per shape the median of kiln/tract ratios of
//! back-to-back batches.
//!
//! A second paired table times what kiln ships instead: each single-op model
//! lowered, generated and built for the host like any candidate (native CPU,
//! LTO, constant shapes), timed by the program's own `--bench` loop against
//! tract. Its time includes the program's NCHW -> NHWC input and NHWC -> NCHW
//! output conversions, which a whole network pays once, not per op.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_main};
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_onnx::{Attribute, Dim, GraphBuilder};
use kiln_runtime::{Activation, Conv2d};
use tract_onnx::prelude::*;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    General,
    Depthwise,
    Pointwise,
}

/// One convolution: NCHW input `[1, in_c, h, w]`, square kernel, symmetric
/// padding `k / 2`.
#[derive(Clone, Copy)]
struct Shape {
    name: &'static str,
    kind: Kind,
    in_c: usize,
    out_c: usize,
    hw: usize,
    k: usize,
    stride: usize,
}

impl Shape {
    fn groups(&self) -> usize {
        if self.kind == Kind::Depthwise {
            self.in_c
        } else {
            1
        }
    }
    fn out_hw(&self) -> usize {
        (self.hw + 2 * (self.k / 2) - self.k) / self.stride + 1
    }
    fn params(&self) -> Conv2d {
        let o = self.out_hw();
        Conv2d {
            in_h: self.hw,
            in_w: self.hw,
            in_c: self.in_c,
            out_h: o,
            out_w: o,
            out_c: self.out_c,
            k_h: self.k,
            k_w: self.k,
            stride_h: self.stride,
            stride_w: self.stride,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: self.k / 2,
            pad_left: self.k / 2,
            groups: self.groups(),
            act: Activation::None,
        }
    }
    fn weight_shape(&self) -> [usize; 4] {
        [self.out_c, self.in_c / self.groups(), self.k, self.k]
    }
    fn macs(&self) -> u64 {
        let [o, i, kh, kw] = self.weight_shape();
        (self.out_hw() * self.out_hw() * o * i * kh * kw) as u64
    }
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "conv3x3_stem_3to32_112_s2",
        kind: Kind::General,
        in_c: 3,
        out_c: 32,
        hw: 112,
        k: 3,
        stride: 2,
    },
    Shape {
        name: "conv3x3_32to32_28",
        kind: Kind::General,
        in_c: 32,
        out_c: 32,
        hw: 28,
        k: 3,
        stride: 1,
    },
    Shape {
        name: "dw3x3_48_56",
        kind: Kind::Depthwise,
        in_c: 48,
        out_c: 48,
        hw: 56,
        k: 3,
        stride: 1,
    },
    Shape {
        name: "dw3x3_96_56_s2",
        kind: Kind::Depthwise,
        in_c: 96,
        out_c: 96,
        hw: 56,
        k: 3,
        stride: 2,
    },
    Shape {
        name: "dw3x3_96_28",
        kind: Kind::Depthwise,
        in_c: 96,
        out_c: 96,
        hw: 28,
        k: 3,
        stride: 1,
    },
    Shape {
        name: "dw5x5_96_28",
        kind: Kind::Depthwise,
        in_c: 96,
        out_c: 96,
        hw: 28,
        k: 5,
        stride: 1,
    },
    Shape {
        name: "dw7x7_96_28",
        kind: Kind::Depthwise,
        in_c: 96,
        out_c: 96,
        hw: 28,
        k: 7,
        stride: 1,
    },
    Shape {
        name: "pw_16to96_56",
        kind: Kind::Pointwise,
        in_c: 16,
        out_c: 96,
        hw: 56,
        k: 1,
        stride: 1,
    },
    Shape {
        name: "pw_96to24_56",
        kind: Kind::Pointwise,
        in_c: 96,
        out_c: 24,
        hw: 56,
        k: 1,
        stride: 1,
    },
    Shape {
        name: "pw_32to192_28",
        kind: Kind::Pointwise,
        in_c: 32,
        out_c: 192,
        hw: 28,
        k: 1,
        stride: 1,
    },
    Shape {
        name: "pw_192to32_28",
        kind: Kind::Pointwise,
        in_c: 192,
        out_c: 32,
        hw: 28,
        k: 1,
        stride: 1,
    },
];

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// The single-op ONNX model of `s` with weights `w` (OIHW).
fn onnx_model(s: &Shape, w: &[f32]) -> Vec<u8> {
    let mut g = GraphBuilder::new(s.name);
    g.input("x", &[1, s.in_c, s.hw, s.hw].map(Dim::Fixed));
    g.initializer("w", &s.weight_shape(), w);
    let (k, st, p) = (s.k as i64, s.stride as i64, (s.k / 2) as i64);
    g.node(
        s.name,
        "Conv",
        &["x", "w"],
        &["y"],
        vec![
            Attribute::ints("kernel_shape", &[k, k]),
            Attribute::ints("strides", &[st, st]),
            Attribute::ints("pads", &[p, p, p, p]),
            Attribute::int("group", s.groups() as i64),
        ],
    );
    g.output("y", None);
    g.encode()
}

/// OIHW -> the layout the kiln kernel of `s` reads (see runtime/src/conv.rs):
/// depthwise `[kh][kw][c]`, otherwise `[kh][kw][in_c][out_c]` (one group;
/// pointwise is its 1x1 case `[in_c][out_c]`).
fn kiln_weights(s: &Shape, oihw: &[f32]) -> Vec<f32> {
    let [o, i, kh, kw] = s.weight_shape();
    let mut out = vec![0.0; oihw.len()];
    for oc in 0..o {
        for ic in 0..i {
            for y in 0..kh {
                for x in 0..kw {
                    let src = ((oc * i + ic) * kh + y) * kw + x;
                    let dst = if s.kind == Kind::Depthwise {
                        (y * kw + x) * o + oc
                    } else {
                        ((y * kw + x) * i + ic) * o + oc
                    };
                    out[dst] = oihw[src];
                }
            }
        }
    }
    out
}

fn nchw_to_nhwc(x: &[f32], c: usize, hw: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    for ch in 0..c {
        for p in 0..hw {
            out[p * c + ch] = x[ch * hw + p];
        }
    }
    out
}

/// Both engines set up for one shape, on the same data.
struct Case {
    shape: Shape,
    onnx: Vec<u8>,
    x_nchw: Vec<f32>,
    x_nhwc: Vec<f32>,
    w_kiln: Vec<f32>,
    out: Vec<f32>,
    tract: TypedSimpleState,
    tract_input: TValue,
}

impl Case {
    fn new(s: Shape, seed: u64) -> Case {
        let x = values(s.in_c * s.hw * s.hw, seed);
        let w = values(s.weight_shape().iter().product(), seed + 1);
        let onnx = onnx_model(&s, &w);
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &onnx[..])
            .expect("tract parses the single-op model")
            .into_optimized()
            .expect("tract optimizes")
            .into_runnable()
            .expect("runnable");
        let tract = plan.spawn().expect("tract state");
        let input = Tensor::from_shape(&[1, s.in_c, s.hw, s.hw], &x).expect("input tensor");
        let o = s.out_hw();
        Case {
            shape: s,
            x_nchw: x.clone(),
            x_nhwc: nchw_to_nhwc(&x, s.in_c, s.hw * s.hw),
            w_kiln: kiln_weights(&s, &w),
            out: vec![0.0; o * o * s.out_c],
            tract,
            tract_input: Arc::new(input).into_tvalue(),
            onnx,
        }
    }

    fn run_kiln(&mut self) {
        let s = &self.shape;
        match s.kind {
            Kind::Pointwise => kiln_runtime::pointwise_conv2d(
                &self.x_nhwc,
                &self.w_kiln,
                &[],
                &mut self.out,
                s.hw * s.hw,
                s.in_c,
                s.out_c,
                Activation::None,
            ),
            Kind::Depthwise => kiln_runtime::depthwise_conv2d(
                &self.x_nhwc,
                &self.w_kiln,
                &[],
                &mut self.out,
                &s.params(),
            ),
            Kind::General => {
                kiln_runtime::conv2d(&self.x_nhwc, &self.w_kiln, &[], &mut self.out, &s.params())
            }
        }
        std::hint::black_box(&self.out);
    }

    fn tract_output(&mut self) -> Vec<f32> {
        let t = self.run_tract();
        let t = t.to_plain_array_view::<f32>().expect("f32 output");
        t.iter().copied().collect()
    }

    fn run_tract(&mut self) -> TValue {
        let mut out = self
            .tract
            .run(tvec!(self.tract_input.clone()))
            .expect("tract runs");
        std::hint::black_box(out.remove(0))
    }

    /// Max abs difference between the two outputs (tract's NCHW output
    /// compared in kiln's NHWC order), and the largest output magnitude.
    fn max_abs_diff(&mut self) -> (f32, f32) {
        self.run_kiln();
        let t = self.tract_output();
        let (c, o) = (self.shape.out_c, self.shape.out_hw());
        assert_eq!(t.len(), self.out.len(), "{}: output sizes", self.shape.name);
        let t = nchw_to_nhwc(&t, c, o * o);
        let diff = t
            .iter()
            .zip(&self.out)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let scale = t.iter().map(|v| v.abs()).fold(0.0, f32::max);
        (diff, scale)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Seconds per call of `f`, over `calls` calls.
fn batch_time(mut f: impl FnMut(), calls: u32) -> f64 {
    let start = Instant::now();
    for _ in 0..calls {
        f();
    }
    start.elapsed().as_secs_f64() / f64::from(calls)
}

/// Runs model `index` of the bundle program on `input`: its output, or with
/// `runs`, the p50 of its own timing loop in seconds.
fn run_program(bin: &Path, index: usize, input: &[f32], runs: Option<u32>) -> Vec<f32> {
    let mut cmd = Command::new(bin);
    cmd.arg(index.to_string());
    if let Some(runs) = runs {
        cmd.args(["--bench", "--warmup", "3", "--runs", &runs.to_string()]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the bundle");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("input");
    let out = child.wait_with_output().expect("bundle finishes");
    assert!(out.status.success(), "bundle model {index} failed");
    if runs.is_none() {
        return out
            .stdout
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let p50: Option<f32> = line
        .split("\"p50_us\":")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .and_then(|v| v.parse().ok());
    vec![p50.unwrap_or_else(|| panic!("no p50 in {line}")) * 1e-6]
}

/// The paired table of generated host programs vs tract.
fn generated_vs_tract(cases: &mut [Case]) {
    let graphs: Vec<_> = cases
        .iter()
        .map(|c| {
            kiln_lower::lower_bytes(&c.onnx, c.shape.name, &Default::default()).expect("lowers")
        })
        .collect();
    let refs: Vec<_> = graphs.iter().collect();
    let target_dir = kiln_codegen::default_target_dir();
    let dir = target_dir.join("bench").join("kernels");
    kiln_codegen::generate_bundle(&refs, &dir, &GenerateOptions::new("kernels")).expect("generate");
    let bin = kiln_codegen::build_bin(&dir, "kiln-bundle", BuildTarget::Host, &target_dir)
        .expect("build");
    println!("== generated host programs (native, LTO) vs tract, source: host ==");
    println!("{:<28} {:>10} {:>12}", "shape", "max|diff|", "kiln/tract");
    for (i, case) in cases.iter_mut().enumerate() {
        let want = case.tract_output();
        let got = run_program(&bin, i, &case.x_nchw, None);
        assert_eq!(got.len(), want.len(), "{}: output sizes", case.shape.name);
        let scale = want.iter().map(|v| v.abs()).fold(1.0, f32::max);
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(
            diff <= 1e-4 * scale,
            "{}: generated program and tract disagree (max abs diff {diff})",
            case.shape.name
        );
        let once = batch_time(
            || {
                case.run_tract();
            },
            3,
        );
        let runs = ((0.05 / once) as u32).clamp(5, 2000);
        let mut ratios = Vec::new();
        for _round in 0..7 {
            let mut t: Vec<f64> = (0..runs)
                .map(|_| {
                    batch_time(
                        || {
                            case.run_tract();
                        },
                        1,
                    )
                })
                .collect();
            t.sort_by(|a, b| a.total_cmp(b));
            let tract_p50 = t[t.len() / 2];
            let kiln_p50 = f64::from(run_program(&bin, i, &case.x_nchw, Some(runs))[0]);
            ratios.push(kiln_p50 / tract_p50);
        }
        println!(
            "{:<28} {:>10.1e} {:>12.2}",
            case.shape.name,
            diff,
            median(ratios)
        );
    }
    println!("(kiln/tract: median over 7 rounds of the p50 ratio, each round ~50 ms a side)\n");
}

fn bench(c: &mut Criterion) {
    let mut cases: Vec<Case> = SHAPES
        .iter()
        .enumerate()
        .map(|(i, s)| Case::new(*s, 11 + 2 * i as u64))
        .collect();

    println!("\n== kiln kernels vs tract, single op, source: host ==");
    println!(
        "{:<28} {:>8} {:>10} {:>10} {:>12}",
        "shape", "MMACs", "max|diff|", "max|y|", "kiln/tract"
    );
    for case in &mut cases {
        let (diff, scale) = case.max_abs_diff();
        assert!(
            diff <= 1e-5 * scale.max(1.0) * 10.0,
            "{}: kiln and tract disagree (max abs diff {diff}, max |y| {scale})",
            case.shape.name
        );
        // calls per batch so a batch lasts ~20 ms
        let once = batch_time(|| case.run_kiln(), 3);
        let calls = ((0.02 / once) as u32).clamp(1, 10_000);
        let mut ratios = Vec::new();
        for _round in 0..9 {
            let t = batch_time(
                || {
                    case.run_tract();
                },
                calls,
            );
            let k = batch_time(|| case.run_kiln(), calls);
            ratios.push(k / t);
        }
        println!(
            "{:<28} {:>8.2} {:>10.1e} {:>10.2} {:>12.2}",
            case.shape.name,
            case.shape.macs() as f64 / 1e6,
            diff,
            scale,
            median(ratios)
        );
    }
    println!("(kiln/tract: median of 9 paired batches, each ~20 ms; < 1 means kiln is faster)\n");
    generated_vs_tract(&mut cases);

    for case in &mut cases {
        let mut group = c.benchmark_group(case.shape.name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .throughput(Throughput::Elements(case.shape.macs()));
        group.bench_function("tract", |b| {
            b.iter(|| {
                case.run_tract();
            })
        });
        group.bench_function("kiln", |b| b.iter(|| case.run_kiln()));
        group.finish();
    }
}

// `criterion_group!` expands to an undocumented `pub fn`; inside a private
// module it is not public API, so `missing_docs` has nothing to report.
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
