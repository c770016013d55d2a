//! The official ONNX backend node tests for the ops kiln claims: generated
//! by the `onnx` package's own test-case code (scripts/onnx-node-cases.py,
//! through `KILN_ORT_PYTHON`; skipped without it unless `KILN_REQUIRE_ORT`
//! is set, as in CI), each lowered, built into one host bundle and run on
//! its input; outputs must match the reference within 1e-4 absolute + 1e-3
//! relative. Cases kiln does not pass are listed in [`EXPECTED_FAILURES`]
//! with the reason; the test fails on any other failure, and on a listed
//! case that passes (so the list stays true).

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::scratch;
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_lower::LowerOptions;

/// Cases kiln fails, and why (the reason classes: what kiln does not
/// compile, checked by the message it gives).
const EXPECTED_FAILURES: &[(&str, &str)] = &[
    ("test_averagepool_1d_default", D13),
    ("test_averagepool_3d_default", D13),
    (
        "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_False",
        D13,
    ),
    (
        "test_averagepool_3d_dilations_large_count_include_pad_is_0_ceil_mode_is_True",
        D13,
    ),
    (
        "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_False",
        D13,
    ),
    (
        "test_averagepool_3d_dilations_large_count_include_pad_is_1_ceil_mode_is_True",
        D13,
    ),
    ("test_averagepool_3d_dilations_small", D13),
    ("test_flatten_axis0", BATCH),
    ("test_flatten_axis2", BATCH),
    ("test_flatten_axis3", BATCH),
    ("test_flatten_negative_axis1", BATCH),
    ("test_flatten_negative_axis2", BATCH),
    ("test_flatten_negative_axis4", BATCH),
    ("test_identity_opt", SEQ),
    ("test_identity_sequence", SEQ),
    ("test_maxpool_1d_default", D13),
    ("test_maxpool_3d_default", D13),
    ("test_maxpool_3d_dilations", D13),
    ("test_maxpool_3d_dilations_use_ref_impl", D13),
    ("test_maxpool_3d_dilations_use_ref_impl_large", D13),
    ("test_reduce_max_default_axes_keepdim_example", ALLAXES),
    ("test_reduce_max_default_axes_keepdims_random", ALLAXES),
    ("test_softmax_axis_1", SOFTMAX3),
];

const BATCH: &str = "a Flatten that merges the batch axis of an NCHW input (batch above 1) with \
     others: kiln runs a batch image by image, so axis 0 must stay the images'";
const D13: &str = "1-D or 3-D pooling: kiln pools the H and W of 2-D images";
const SEQ: &str = "an optional or sequence input: kiln takes one f32 tensor";
const ALLAXES: &str = "a reduction over every axis: kiln reduces H and W of images";
const SOFTMAX3: &str = "Softmax over the middle axis of a rank-3 tensor (kiln takes the channel, the last or every axis)";

fn python() -> Option<PathBuf> {
    let p = std::env::var_os("KILN_ORT_PYTHON").map(PathBuf::from);
    if p.is_none() && std::env::var_os("KILN_REQUIRE_ORT").is_some() {
        panic!(
            "KILN_REQUIRE_ORT is set but KILN_ORT_PYTHON is not (scripts/setup.sh makes the venv)"
        );
    }
    if p.is_none() {
        eprintln!("KILN_ORT_PYTHON not set: ONNX node tests skipped (scripts/onnx-node-cases.py)");
    }
    p
}

fn f32s(path: &Path) -> Vec<f32> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn dims(s: &str) -> Vec<usize> {
    s.split(',')
        .filter(|d| !d.is_empty())
        .map(|d| d.parse().expect("dim"))
        .collect()
}

/// Runs model `index` of the bundle; `Err` with stderr when it fails.
fn run(bin: &Path, index: usize, input: &[f32]) -> Result<Vec<f32>, String> {
    let mut child = Command::new(bin)
        .arg(index.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("")
            .to_string());
    }
    Ok(out
        .stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect())
}

/// Why `got` is not `want` within 1e-4 + 1e-3 relative (NaN where NaN).
fn compare(got: &[f32], want: &[f32]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} outputs, the reference has {}",
            got.len(),
            want.len()
        ));
    }
    let bad = got
        .iter()
        .zip(want)
        .position(|(g, w)| g.is_nan() != w.is_nan() || (g - w).abs() > 1e-4 + 1e-3 * w.abs());
    match bad {
        Some(i) => Err(format!("output[{i}] = {}, reference {}", got[i], want[i])),
        None => Ok(()),
    }
}

#[test]
fn onnx_node_tests_pass_except_the_listed() {
    let Some(py) = python() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = scratch("onnx-node-cases");
    let status = Command::new(&py)
        .arg(root.join("scripts/onnx-node-cases.py"))
        .arg(&dir)
        .status()
        .expect("python runs");
    assert!(status.success(), "scripts/onnx-node-cases.py failed");
    let list = std::fs::read_to_string(dir.join("cases.tsv")).expect("cases.tsv");
    let mut outcome: BTreeMap<String, Result<(), String>> = BTreeMap::new();
    let mut built = Vec::new();
    for line in list.lines().filter(|l| !l.is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        let (name, shape) = (f[0].to_string(), dims(f[1]));
        let options = LowerOptions {
            input_shape: Some(shape.clone()),
        };
        let graph = match kiln_lower::lower_file(&dir.join(&name).join("model.onnx"), &options) {
            Ok(g) => g,
            Err(e) => {
                outcome.insert(name, Err(format!("lower: {e}")));
                continue;
            }
        };
        let check = scratch(&format!("onnx-node-check/{name}"));
        if let Err(e) = kiln_codegen::generate(&graph, &check, &GenerateOptions::new(&name)) {
            outcome.insert(name, Err(format!("codegen: {e}")));
            continue;
        }
        built.push((name, graph));
    }
    let refs: Vec<_> = built.iter().map(|(_, g)| g).collect();
    let bundle = scratch("onnx-node-bundle");
    kiln_codegen::generate_bundle(&refs, &bundle, &GenerateOptions::new("onnx-node"))
        .expect("bundle generates");
    let bin = kiln_codegen::build_bin(
        &bundle,
        "kiln-bundle",
        BuildTarget::Host,
        &kiln_codegen::default_target_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for (i, (name, _)) in built.iter().enumerate() {
        let input = f32s(&dir.join(name).join("input.f32"));
        let want = f32s(&dir.join(name).join("output.f32"));
        let result = run(&bin, i, &input).and_then(|got| compare(&got, &want));
        outcome.insert(name.clone(), result);
    }
    let expected: BTreeMap<&str, &str> = EXPECTED_FAILURES.iter().copied().collect();
    let mut wrong = Vec::new();
    for (name, r) in &outcome {
        match (r, expected.contains_key(name.as_str())) {
            (Err(e), false) => wrong.push(format!("{name}: fails unexpectedly: {e}")),
            (Err(e), true) if expected[name.as_str()] == BATCH && !e.contains("batch of") => {
                wrong.push(format!("{name}: fails, but not for its batch: {e}"))
            }
            (Ok(()), true) => {
                wrong.push(format!("{name}: passes but is listed as expected to fail"))
            }
            _ => {}
        }
    }
    let passed = outcome.values().filter(|r| r.is_ok()).count();
    eprintln!(
        "ONNX node tests: {} run, {passed} passed, {} expected failures",
        outcome.len(),
        outcome.len() - passed
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
