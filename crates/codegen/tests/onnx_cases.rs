//! Models as other exporters write them (tests/fixtures/onnx-cases, see its
//! README) and one small model per ONNX op kiln claims beyond the CNN core
//! (tests/fixtures/onnx-ops, written by its make.py): each is lowered,
//! generated into one bundle, built once for the host and run on its
//! `input.npy`; the output must match onnxruntime's `output.npy` within 1e-4
//! absolute + 1e-3 relative (numpy's `allclose`; NaN where onnxruntime has
//! NaN), and the op cases within 1e-5 + 1e-4 relative (a conv output near 0
//! carries a relative error of about 1e-5 into Reciprocal and Div).

mod common;

use std::path::{Path, PathBuf};

use common::{run_binary, scratch};
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_lower::LowerOptions;

/// The cases of tests/fixtures/onnx-cases, each a pattern kiln once refused.
const CASES: &[&str] = &[
    "onnx-cases/06-prelu-per-channel",
    "onnx-cases/10-nhwc-input-transpose-conv",
    "onnx-cases/12-split-branch-concat",
    "onnx-cases/14-gemm-transb0-alpha-beta",
];

/// The cases of tests/fixtures/onnx-ops: one ONNX op each (see make.py for
/// the graphs: the op on the input and after a conv, or the op between a
/// tensor, a conv's output and constants).
const OP_CASES: &[&str] = &[
    "onnx-ops/abs",
    "onnx-ops/neg",
    "onnx-ops/exp",
    "onnx-ops/log",
    "onnx-ops/sqrt",
    "onnx-ops/reciprocal",
    "onnx-ops/tanh",
    "onnx-ops/erf",
    "onnx-ops/softplus",
    "onnx-ops/softsign",
    "onnx-ops/elu",
    "onnx-ops/selu",
    "onnx-ops/mish",
    "onnx-ops/gelu",
    "onnx-ops/gelu-tanh",
    "onnx-ops/gelu-erf",
    "onnx-ops/silu",
    "onnx-ops/pow-2",
    "onnx-ops/pow-0.5",
    "onnx-ops/pow-3",
    "onnx-ops/pow-1.5",
    "onnx-ops/sub",
    "onnx-ops/div",
    "onnx-ops/max",
    "onnx-ops/min",
    "onnx-ops/max-3",
    "onnx-ops/min-3",
    "onnx-ops/sum-3",
    "onnx-ops/mean-3",
    "onnx-ops/global-max-pool",
    "onnx-ops/reduce-max-hw",
    "onnx-ops/reduce-max-hw-flat",
    "onnx-ops/reduce-mean-hw-flat",
    "onnx-ops/resize-nearest-x2",
    "onnx-ops/resize-nearest-x2-half-pixel",
    "onnx-ops/resize-linear-x2",
    "onnx-ops/resize-linear-x2-align-corners",
    "onnx-ops/resize-linear-sizes",
    "onnx-ops/softmax-flat-chw",
    "onnx-ops/pad-reflect",
    "onnx-ops/pad-edge",
    "onnx-ops/pad-constant",
    "onnx-ops/conv-transpose-s2",
    "onnx-ops/conv-transpose-s1",
    "onnx-ops/conv-transpose-grouped",
    "onnx-ops/lrn",
    "onnx-ops/value-info-batch",
    "onnx-ops/upsample-nearest-x2",
    "onnx-ops/softmax-w",
    "onnx-ops/batch3-cnn",
    "onnx-ops/batch2-flatten-gemm",
    "onnx-ops/batch4-reshape-matmul",
    "onnx-ops/batch2-se-resize-concat",
    "onnx-ops/nan-relu-sigmoid-softmax",
];

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(case)
}

/// An f32 .npy file in C order: (shape, values).
fn read_npy(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(&bytes[..]).expect("a .npy file");
    assert_eq!(npy.order(), npyz::Order::C, "{}", path.display());
    let shape = npy.shape().iter().map(|d| *d as usize).collect();
    (shape, npy.into_vec::<f32>().expect("f32 values"))
}

/// Elements outside `|got - want| <= abs + rel * |want|` (or NaN on one side
/// only), as messages.
fn mismatches(case: &str, got: &[f32], want: &[f32], (abs, rel): (f32, f32)) -> Vec<String> {
    if got.len() != want.len() {
        return vec![format!(
            "{case}: {} outputs, onnxruntime has {}",
            got.len(),
            want.len()
        )];
    }
    got.iter()
        .zip(want)
        .enumerate()
        .filter(|(_, (g, w))| g.is_nan() != w.is_nan() || (*g - *w).abs() > abs + rel * w.abs())
        .take(5)
        .map(|(i, (g, w))| format!("{case}: output[{i}] = {g}, onnxruntime {w}"))
        .collect()
}

/// Lowers the fixtures in `folders`, builds them as one bundle and runs each
/// on its input: the mismatches against onnxruntime's outputs within `tol`.
fn run_cases(bundle: &str, folders: &[PathBuf], tol: (f32, f32)) -> Vec<String> {
    let name = |d: &PathBuf| -> String {
        let mut parts = d.iter().rev().take(2).collect::<Vec<_>>();
        parts.reverse();
        parts
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join("/")
    };
    let graphs: Vec<_> = folders
        .iter()
        .map(|d| {
            kiln_lower::lower_file(&d.join("model.onnx"), &LowerOptions::default())
                .unwrap_or_else(|e| panic!("lowering {}: {e}", name(d)))
        })
        .collect();
    let refs: Vec<_> = graphs.iter().collect();
    let dir = scratch(bundle);
    kiln_codegen::generate_bundle(&refs, &dir, &GenerateOptions::new(bundle))
        .expect("bundle generates");
    let bin = kiln_codegen::build_bin(
        &dir,
        "kiln-bundle",
        BuildTarget::Host,
        &kiln_codegen::default_target_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut bad = Vec::new();
    for (i, d) in folders.iter().enumerate() {
        let c = name(d);
        let (in_shape, input) = read_npy(&d.join("input.npy"));
        let (_, want) = read_npy(&d.join("output.npy"));
        assert_eq!(in_shape, graphs[i].input_shape(), "{c}");
        let got = run_binary(&bin, &[&i.to_string()], &input);
        let worst = got
            .iter()
            .zip(&want)
            .filter(|(g, w)| !g.is_nan() && !w.is_nan())
            .map(|(g, w)| (g - w).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{c:<42} max abs err {worst:.2e}");
        bad.extend(mismatches(&c, &got, &want, tol));
    }
    bad
}

fn fixtures(cases: &[&str]) -> Vec<PathBuf> {
    cases.iter().map(|c| fixture(c)).collect()
}

#[test]
fn exported_patterns_match_onnxruntime() {
    let bad = run_cases("onnx-cases", &fixtures(CASES), (1e-4, 1e-3));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn single_ops_match_onnxruntime() {
    let bad = run_cases("onnx-ops", &fixtures(OP_CASES), (1e-5, 1e-4));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Every batch-1 fixture above at a fixed batch of 3 (the fixture's input
/// then two more images), written with onnxruntime's outputs by
/// tests/fixtures/batch3.py through `KILN_ORT_PYTHON` (skipped without it
/// unless `KILN_REQUIRE_ORT` is set, as in CI): one `infer` over the 3
/// images must give onnxruntime's 3 outputs within each list's tolerance.
#[test]
fn every_fixture_at_batch_3_matches_onnxruntime() {
    let py = std::env::var_os("KILN_ORT_PYTHON");
    let Some(py) = py else {
        assert!(
            std::env::var_os("KILN_REQUIRE_ORT").is_none(),
            "KILN_REQUIRE_ORT is set but KILN_ORT_PYTHON is not (scripts/setup.sh makes the venv)"
        );
        eprintln!("KILN_ORT_PYTHON not set: batch-3 fixtures skipped (tests/fixtures/batch3.py)");
        return;
    };
    let dir = scratch("onnx-batch3-cases");
    let status = std::process::Command::new(py)
        .arg(fixture("batch3.py"))
        .arg(&dir)
        .status()
        .expect("python runs");
    assert!(status.success(), "tests/fixtures/batch3.py failed");
    let list = std::fs::read_to_string(dir.join("cases.txt")).expect("cases.txt");
    let names: Vec<&str> = list.lines().filter(|l| !l.is_empty()).collect();
    // every batch-1 fixture but resize-linear-sizes (its sizes fix batch 1)
    let batch1 = CASES
        .iter()
        .chain(OP_CASES)
        .filter(|c| !c.contains("/batch"))
        .count();
    assert_eq!(names.len(), batch1 - 1, "{list}");
    assert!(!names.contains(&"resize-linear-sizes"), "{list}");
    let (ops, exported): (Vec<&str>, Vec<&str>) = names
        .iter()
        .partition(|n| OP_CASES.iter().any(|c| c.ends_with(&format!("/{n}"))));
    let folders = |ns: &[&str]| -> Vec<PathBuf> { ns.iter().map(|n| dir.join(n)).collect() };
    let mut bad = run_cases("onnx-ops-batch3", &folders(&ops), (1e-5, 1e-4));
    bad.extend(run_cases(
        "onnx-cases-batch3",
        &folders(&exported),
        (1e-4, 1e-3),
    ));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Five real CNN graphs exported by others (SqueezeNet 1.0, ShuffleNet v1,
/// Inception v1 / GoogLeNet, ResNet-50, DenseNet-121: the "light" model-zoo
/// files the `onnx` package ships, their topology unchanged), with seeded
/// weights in place of their ConstantOfShape fills, written with onnxruntime's
/// outputs by tests/fixtures/light_cnns.py through `KILN_ORT_PYTHON` (skipped
/// without it unless `KILN_REQUIRE_ORT` is set). Each 1x3x224x224 network is
/// lowered, all five are built as one bundle, and each output must match
/// onnxruntime's within the whole-network tolerance (1e-4 abs + 1e-3 rel).
#[test]
fn exported_zoo_cnns_match_onnxruntime() {
    let Some(py) = std::env::var_os("KILN_ORT_PYTHON") else {
        assert!(
            std::env::var_os("KILN_REQUIRE_ORT").is_none(),
            "KILN_REQUIRE_ORT is set but KILN_ORT_PYTHON is not (scripts/setup.sh makes the venv)"
        );
        eprintln!("KILN_ORT_PYTHON not set: zoo CNNs skipped (tests/fixtures/light_cnns.py)");
        return;
    };
    let dir = scratch("onnx-zoo-cnns");
    let status = std::process::Command::new(py)
        .arg(fixture("light_cnns.py"))
        .arg(&dir)
        .status()
        .expect("python runs");
    assert!(status.success(), "tests/fixtures/light_cnns.py failed");
    let list = std::fs::read_to_string(dir.join("cases.txt")).expect("cases.txt");
    let names: Vec<&str> = list.lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(
        names,
        [
            "squeezenet",
            "shufflenet",
            "inception_v1",
            "resnet50",
            "densenet121"
        ],
        "{list}"
    );
    let folders: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    let bad = run_cases("onnx-zoo-cnns", &folders, (1e-4, 1e-3));
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
