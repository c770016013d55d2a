//! kiln's int8 results against onnxruntime's own on QDQ models kiln-quant
//! wrote: per op (conv, conv + ReLU / ReLU6, depthwise, pointwise, Gemm,
//! Add, global average pool, hard swish and sigmoid tables), output by
//! output in quantization steps; and a whole network (the reference MNIST
//! genome, seeded weights) by argmax on the bundled test split.
//!
//! onnxruntime runs through `KILN_ORT_PYTHON` (an interpreter with the
//! `onnxruntime` and `numpy` wheels, e.g. /work/venv-ort/bin/python) and
//! scripts/ort-run.py; without it the comparisons are skipped with a note.
//!
//! Where the two round differently: onnxruntime requantizes in f32 (the
//! accumulator times `s_x * s_w / s_y` rounded half to even), kiln in fixed
//! point (gemmlowp's doubling high multiply then a rounding shift, two
//! roundings); onnxruntime's QLinearAdd also adds in f32. So a value whose
//! real result lies near a rounding boundary may come out one step apart.

mod common;

use std::path::PathBuf;

use common::{argmax, ort, python, repo, run, scratch};
use kiln_onnx::{Attribute, Dim, GraphBuilder};
use kiln_quant::{QuantizeOptions, quantize};

/// Deterministic values in `[lo, hi)` (xorshift).
fn values(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            lo + (hi - lo) * ((s >> 40) as f32 / (1u64 << 24) as f32)
        })
        .collect()
}

/// Builds the models as one bundle; returns the program and each model's
/// output scale (its final Dequantize).
fn build(name: &str, models: &[Vec<u8>]) -> (PathBuf, Vec<f32>) {
    let graphs = common::lower_all(name, models);
    let scales = graphs
        .iter()
        .map(|g| match &g.ops.last().expect("ops").kind {
            kiln_ir::OpKind::Int8(kiln_ir::QOp::Dequantize(p)) => p.scale,
            k => panic!("the last op is {k}, not a Dequantize"),
        })
        .collect();
    (common::build_bundle(name, &graphs), scales)
}

/// One f32 single-op model: input `[1, 4, 6, 6]`, `body` from "x" to "y".
fn model(body: impl FnOnce(&mut GraphBuilder)) -> Vec<u8> {
    let mut g = GraphBuilder::new("op");
    g.input("x", &[1, 4, 6, 6].map(Dim::Fixed));
    body(&mut g);
    g.output("y", None);
    g.encode()
}

fn conv(
    g: &mut GraphBuilder,
    name: &str,
    x: &str,
    y: &str,
    (o, i, k, s, groups): (usize, usize, usize, usize, usize),
) {
    let w = format!("{name}.w");
    let b = format!("{name}.b");
    g.initializer(
        &w,
        &[o, i / groups, k, k],
        &values(o * i / groups * k * k, o as u64 * 31 + k as u64, -0.5, 0.5),
    );
    g.initializer(&b, &[o], &values(o, 5, -0.2, 0.2));
    let p = (k / 2) as i64;
    g.node(
        name,
        "Conv",
        &[x, &w, &b],
        &[y],
        vec![
            Attribute::ints("kernel_shape", &[k as i64, k as i64]),
            Attribute::ints("strides", &[s as i64, s as i64]),
            Attribute::ints("pads", &[p, p, p, p]),
            Attribute::int("group", groups as i64),
        ],
    );
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    // directly on the (quantized) input, so a step off in a conv before
    // cannot grow through the function's slope
    let unary = |op: &'static str| {
        model(move |g| {
            g.node("act", op, &["x"], &["y"], vec![]);
        })
    };
    vec![
        (
            "conv 3x3 s2",
            model(|g| conv(g, "c", "x", "y", (8, 4, 3, 2, 1))),
        ),
        (
            "conv + relu",
            model(|g| {
                conv(g, "c", "x", "h", (8, 4, 3, 1, 1));
                g.node("r", "Relu", &["h"], &["y"], vec![]);
            }),
        ),
        (
            "conv + relu6",
            model(|g| {
                conv(g, "c", "x", "h", (8, 4, 3, 1, 1));
                g.initializer("lo", &[], &[0.0]);
                g.initializer("hi", &[], &[6.0]);
                g.node("r", "Clip", &["h", "lo", "hi"], &["y"], vec![]);
            }),
        ),
        (
            "depthwise 3x3",
            model(|g| conv(g, "c", "x", "y", (4, 4, 3, 1, 4))),
        ),
        (
            "pointwise",
            model(|g| conv(g, "c", "x", "y", (12, 4, 1, 1, 1))),
        ),
        (
            "add",
            model(|g| {
                conv(g, "a", "x", "ha", (4, 4, 3, 1, 1));
                conv(g, "b", "x", "hb", (4, 4, 1, 1, 1));
                g.node("add", "Add", &["ha", "hb"], &["y"], vec![]);
            }),
        ),
        (
            "gap + gemm",
            model(|g| {
                conv(g, "c", "x", "h", (8, 4, 3, 1, 1));
                g.node("pool", "GlobalAveragePool", &["h"], &["p"], vec![]);
                g.node(
                    "flat",
                    "Flatten",
                    &["p"],
                    &["f"],
                    vec![Attribute::int("axis", 1)],
                );
                g.initializer("fc.w", &[5, 8], &values(40, 3, -0.5, 0.5));
                g.initializer("fc.b", &[5], &values(5, 4, -0.1, 0.1));
                g.node(
                    "fc",
                    "Gemm",
                    &["f", "fc.w", "fc.b"],
                    &["y"],
                    vec![Attribute::int("transB", 1)],
                );
            }),
        ),
        (
            "gap",
            model(|g| {
                conv(g, "c", "x", "h", (8, 4, 3, 1, 1));
                g.node("pool", "GlobalAveragePool", &["h"], &["y"], vec![]);
            }),
        ),
        (
            "gemm",
            model(|g| {
                g.node(
                    "flat",
                    "Flatten",
                    &["x"],
                    &["f"],
                    vec![Attribute::int("axis", 1)],
                );
                g.initializer("fc.w", &[5, 144], &values(720, 3, -0.2, 0.2));
                g.initializer("fc.b", &[5], &values(5, 4, -0.1, 0.1));
                g.node(
                    "fc",
                    "Gemm",
                    &["f", "fc.w", "fc.b"],
                    &["y"],
                    vec![Attribute::int("transB", 1)],
                );
            }),
        ),
        (
            "mul",
            model(|g| {
                g.node("mul", "Mul", &["x", "x"], &["y"], vec![]);
            }),
        ),
        (
            "se: gap + sigmoid + mul per channel",
            model(|g| {
                conv(g, "a", "x", "h", (6, 4, 3, 1, 1));
                g.node("pool", "GlobalAveragePool", &["h"], &["p"], vec![]);
                g.node("gate", "Sigmoid", &["p"], &["s"], vec![]);
                g.node("se", "Mul", &["h", "s"], &["y"], vec![]);
            }),
        ),
        ("hard swish", unary("HardSwish")),
        ("sigmoid", unary("Sigmoid")),
    ]
}

#[test]
fn per_op_int8_outputs_match_onnxruntime() {
    let Some(py) = python() else { return };
    let calib: Vec<Vec<f32>> = (0..64).map(|s| values(144, s, -2.0, 2.0)).collect();
    let tests: Vec<Vec<f32>> = (100..164).map(|s| values(144, s, -2.0, 2.0)).collect();
    let cases = cases();
    let qdq: Vec<Vec<u8>> = cases
        .iter()
        .map(|(name, m)| {
            quantize(
                m,
                &[1, 4, 6, 6],
                &calib,
                &QuantizeOptions {
                    min_images: 1,
                    ..Default::default()
                },
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .onnx
        })
        .collect();
    let (bin, scales) = build("quant_ort_ops", &qdq);
    let mut failures = Vec::new();
    for (i, ((name, _), m)) in cases.iter().zip(&qdq).enumerate() {
        let dir = scratch(&format!("quant_ort_ops/{i}"));
        let want = ort(&py, &dir, m, &tests);
        let (mut n, mut off, mut max) = (0usize, 0usize, 0f32);
        for (t, w) in tests.iter().zip(&want) {
            let got = run(&bin, i, t);
            assert_eq!(got.len(), w.len(), "{name}: output length");
            for (a, b) in got.iter().zip(w) {
                let steps = ((a - b) / scales[i]).abs();
                n += 1;
                if steps > 0.5 {
                    off += 1;
                }
                max = max.max(steps);
            }
        }
        let pct = 100.0 * off as f64 / n as f64;
        eprintln!(
            "{name:<35} {n:>5} values: {off} ({pct:.2}%) one step off onnxruntime, largest {max:.2} steps"
        );
        // a chain passes an earlier op's step on: the pool's to every output
        // of the Gemm it feeds, a gate's step times the product
        let chain = name.starts_with("gap +") || name.starts_with("se:");
        let (steps, limit) = if chain { (2.01, 2.0) } else { (1.01, 1.0) };
        if max > steps || pct > limit {
            failures.push(format!(
                "{name}: {off} of {n} off ({pct:.2}%), largest {max:.2} steps"
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The reference MNIST genome (seeded weights, normalisation as kiln's
/// trained models bake it in), quantized on 200 training images: kiln's
/// int8 program and onnxruntime agree on the argmax of the bundled test
/// split. `KILN_QUANT_TEST_MODEL` names a trained f32 model to use instead.
#[test]
fn whole_network_argmax_agrees_with_onnxruntime() {
    let Some(py) = python() else { return };
    let root = repo("");
    let data = common::mnist();
    let onnx = match std::env::var_os("KILN_QUANT_TEST_MODEL") {
        Some(p) => std::fs::read(p).expect("model"),
        None => {
            let space = kiln_space::Space::load(&root.join("spaces/mobile.toml")).expect("space");
            let genome = kiln_space::Genome::load(
                &root.join("crates/train/genomes/mnist-reference.json"),
                &space,
            )
            .expect("genome");
            let input = kiln_space::InputSpec {
                channels: 1,
                height: 28,
                width: 28,
                classes: 10,
            };
            let arch = kiln_space::Architecture::new(&space, &genome, input).expect("fits");
            let n = &data.normalization;
            let options = kiln_onnx::ExportOptions {
                normalization: Some(kiln_onnx::Normalization {
                    mean: n.mean.iter().map(|m| m / n.scale).collect(),
                    std: n.std.iter().map(|s| s / n.scale).collect(),
                }),
                ..Default::default()
            };
            kiln_onnx::export(&arch, &kiln_onnx::Weights::random(&arch, 3), &options)
                .expect("exports")
        }
    };
    let image = |split: &kiln_data::Split, i: usize| -> Vec<f32> {
        split.image(i).iter().map(|p| *p as f32).collect()
    };
    let calib: Vec<Vec<f32>> = (0..200).map(|i| image(&data.train, i)).collect();
    let q =
        quantize(&onnx, &[1, 1, 28, 28], &calib, &QuantizeOptions::default()).expect("quantizes");
    let (bin, _) = build("quant_ort_net", std::slice::from_ref(&q.onnx));
    let tests: Vec<Vec<f32>> = (0..data.test.len()).map(|i| image(&data.test, i)).collect();
    let want = ort(&py, &scratch("quant_ort_net/ort"), &q.onnx, &tests);
    let same = tests
        .iter()
        .zip(&want)
        .filter(|(t, w)| argmax(&run(&bin, 0, t)) == argmax(w))
        .count();
    let pct = 100.0 * same as f64 / tests.len() as f64;
    eprintln!(
        "whole network: kiln int8 and onnxruntime agree on {same} of {} argmaxes ({pct:.2}%)",
        tests.len()
    );
    assert!(pct >= 99.5, "{same} of {} argmaxes agree", tests.len());
}

/// A model quantized by onnxruntime's own `quantize_static`
/// (scripts/ort-quantize.py) lowers and runs through kiln's integer kernels
/// with the same argmax as onnxruntime on the bundled test split. The
/// argmaxes onnxruntime gave are kept beside the fixture
/// (`NAME.argmax.txt`), so the test also runs without Python
/// (`KILN_UPDATE_FIXTURES=1` with `KILN_ORT_PYTHON` rewrites them).
fn onnxruntime_fixture(name: &str) {
    let dir = "crates/quant/tests/fixtures";
    let onnx = std::fs::read(repo(&format!("{dir}/{name}.onnx"))).expect("fixture");
    let argmax_file = repo(&format!("{dir}/{name}.argmax.txt"));
    let (_, report) =
        kiln_lower::lower_bytes_reported(&onnx, name, &Default::default()).expect("lowers");
    eprintln!(
        "{name}: kept in f32: {:?}",
        report.expect("quantized").float_ops
    );
    let data = common::mnist();
    let tests = common::test_images(&data);
    let want = common::ort_argmaxes(&format!("quant_ort_{name}"), &onnx, &argmax_file, &tests);
    let (bin, _) = build(&format!("quant_ort_{name}"), std::slice::from_ref(&onnx));
    let got: Vec<usize> = tests.iter().map(|t| argmax(&run(&bin, 0, t))).collect();
    let same = got.iter().zip(&want).filter(|(a, b)| a == b).count();
    let right = got
        .iter()
        .enumerate()
        .filter(|(i, a)| data.test.label(*i) == **a)
        .count();
    eprintln!(
        "{name}: {same} of {} argmaxes as onnxruntime's; kiln top-1 {:.2}%",
        tests.len(),
        100.0 * right as f64 / tests.len() as f64
    );
    assert!(
        same * 1000 >= tests.len() * 995,
        "{same} of {} agree",
        tests.len()
    );
}

/// QDQ format: batch norm folded by onnxruntime's pre-processing, hard
/// swish inlined as HardSigmoid and Mul.
#[test]
fn onnxruntime_quantized_model_matches_onnxruntime() {
    onnxruntime_fixture("mnist-reference.ort-int8");
}

/// QOperator format: QLinearConv, QLinearMul, QLinearAdd (the input
/// normalisation's, against a constant, kept in f32), QLinearGlobalAveragePool,
/// QGemm.
#[test]
fn onnxruntime_qoperator_model_matches_onnxruntime() {
    onnxruntime_fixture("mnist-reference.ort-qop");
}
