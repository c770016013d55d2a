//! Models as other exporters write them (tests/fixtures/onnx-cases, see its
//! README): each is lowered, generated into one bundle, built once for the
//! host and run on its `input.npy`; the output must match onnxruntime's
//! `output.npy` within 1e-4 absolute + 1e-3 relative (numpy's `allclose`).

mod common;

use std::path::{Path, PathBuf};

use common::{run_binary, scratch};
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_lower::LowerOptions;

/// The cases of tests/fixtures/onnx-cases, each a pattern kiln once refused.
const CASES: &[&str] = &[
    "06-prelu-per-channel",
    "10-nhwc-input-transpose-conv",
    "12-split-branch-concat",
    "14-gemm-transb0-alpha-beta",
];

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/onnx-cases")
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

/// Elements outside `|got - want| <= 1e-4 + 1e-3 * |want|`, as messages.
fn mismatches(case: &str, got: &[f32], want: &[f32]) -> Vec<String> {
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
        .filter(|(_, (g, w))| g.is_nan() != w.is_nan() || (*g - *w).abs() > 1e-4 + 1e-3 * w.abs())
        .take(5)
        .map(|(i, (g, w))| format!("{case}: output[{i}] = {g}, onnxruntime {w}"))
        .collect()
}

#[test]
fn exported_patterns_match_onnxruntime() {
    let graphs: Vec<_> = CASES
        .iter()
        .map(|c| {
            let path = fixture(c).join("model.onnx");
            kiln_lower::lower_file(&path, &LowerOptions::default())
                .unwrap_or_else(|e| panic!("lowering {c}: {e}"))
        })
        .collect();
    let refs: Vec<_> = graphs.iter().collect();
    let dir = scratch("onnx-cases");
    kiln_codegen::generate_bundle(&refs, &dir, &GenerateOptions::new("onnx-cases"))
        .expect("bundle generates");
    let bin = kiln_codegen::build_bin(
        &dir,
        "kiln-bundle",
        BuildTarget::Host,
        &kiln_codegen::default_target_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut bad = Vec::new();
    for (i, c) in CASES.iter().enumerate() {
        let (in_shape, input) = read_npy(&fixture(c).join("input.npy"));
        let (_, want) = read_npy(&fixture(c).join("output.npy"));
        assert_eq!(in_shape, graphs[i].tensors[graphs[i].input].shape, "{c}");
        let got = run_binary(&bin, &[&i.to_string()], &input);
        let worst = got
            .iter()
            .zip(&want)
            .map(|(g, w)| (g - w).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{c:<32} max abs err {worst:.2e}");
        bad.extend(mismatches(c, &got, &want));
    }
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}
