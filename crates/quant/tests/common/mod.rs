//! Helpers of kiln-quant's onnxruntime comparisons (ort.rs,
//! ort_mobilenetv2.rs): onnxruntime through `KILN_ORT_PYTHON` and
//! scripts/ort-run.py, kiln's programs built as one bundle and run per
//! input.

// Each test binary uses its own subset.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_codegen::{BuildTarget, GenerateOptions};

/// The interpreter with onnxruntime (`KILN_ORT_PYTHON`), or None with a
/// note; panics when `KILN_REQUIRE_ORT` is set without it (CI).
pub fn python() -> Option<PathBuf> {
    let p = std::env::var_os("KILN_ORT_PYTHON").map(PathBuf::from);
    // CI (.ci/run) sets up onnxruntime and requires the comparisons to run.
    if p.is_none() && std::env::var_os("KILN_REQUIRE_ORT").is_some() {
        panic!(
            "KILN_REQUIRE_ORT is set but KILN_ORT_PYTHON is not (scripts/setup.sh makes the venv)"
        );
    }
    if p.is_none() {
        eprintln!(
            "KILN_ORT_PYTHON not set: onnxruntime comparison skipped (see scripts/ort-run.py)"
        );
    }
    p
}

/// A path from the repository root.
pub fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A scratch directory under the build's target dir.
pub fn scratch(name: &str) -> PathBuf {
    let dir = kiln_codegen::default_target_dir().join("tests").join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Little-endian f32 values of `b`.
pub fn f32s(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Writes `inputs` back to back as little-endian f32.
pub fn write_f32s(path: &Path, inputs: &[Vec<f32>]) {
    let bytes: Vec<u8> = inputs
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(path, bytes).expect("write inputs");
}

/// onnxruntime's outputs of `onnx` on each input (scripts/ort-run.py: CPU
/// provider, all graph optimisations, one thread).
pub fn ort(py: &Path, dir: &Path, onnx: &[u8], inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
    let model = dir.join("model.onnx");
    let xs = dir.join("inputs.f32");
    std::fs::write(&model, onnx).expect("write model");
    write_f32s(&xs, inputs);
    let out = Command::new(py)
        .arg(repo("scripts/ort-run.py"))
        .arg(&model)
        .arg(&xs)
        .arg(inputs.len().to_string())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "ort-run.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = f32s(&out.stdout);
    let n = all.len() / inputs.len();
    all.chunks(n).map(|c| c.to_vec()).collect()
}

/// Each model lowered by kiln-lower (named `{name}{index}`).
pub fn lower_all(name: &str, models: &[Vec<u8>]) -> Vec<kiln_ir::Graph> {
    models
        .iter()
        .enumerate()
        .map(|(i, m)| {
            kiln_lower::lower_bytes(m, &format!("{name}{i}"), &Default::default())
                .unwrap_or_else(|e| panic!("lowering {name}{i}: {e}"))
        })
        .collect()
}

/// The graphs generated and built as one host bundle; returns the program
/// (`PROGRAM INDEX < input`).
pub fn build_bundle(name: &str, graphs: &[kiln_ir::Graph]) -> PathBuf {
    let refs: Vec<_> = graphs.iter().collect();
    let dir = scratch(name);
    kiln_codegen::generate_bundle(&refs, &dir, &GenerateOptions::new(name)).expect("generates");
    kiln_codegen::build_bin(
        &dir,
        "kiln-bundle",
        BuildTarget::Host,
        &kiln_codegen::default_target_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// Model `index` of the bundle `bin` on one input.
pub fn run(bin: &Path, index: usize, input: &[f32]) -> Vec<f32> {
    let mut child = Command::new(bin)
        .arg(index.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("program starts");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("input");
    let out = child.wait_with_output().expect("program runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    f32s(&out.stdout)
}

/// The index of the largest value (the first of equal ones).
pub fn argmax(v: &[f32]) -> usize {
    (0..v.len())
        .max_by(|a, b| v[*a].total_cmp(&v[*b]).then(b.cmp(a)))
        .unwrap_or(0)
}

/// The bundled MNIST subset, default split.
pub fn mnist() -> kiln_data::Dataset {
    kiln_data::load(
        &kiln_data::Source::Mnist5k,
        &kiln_data::SplitOptions::default(),
    )
    .expect("bundled MNIST")
}

/// The test split's images as f32 pixels (0..255, as kiln's models take
/// them).
pub fn test_images(data: &kiln_data::Dataset) -> Vec<Vec<f32>> {
    (0..data.test.len())
        .map(|i| data.test.image(i).iter().map(|p| *p as f32).collect())
        .collect()
}

/// onnxruntime's argmaxes of `onnx` on `tests`: run now when
/// `KILN_ORT_PYTHON` is set (and written to `stored` with
/// `KILN_UPDATE_FIXTURES`), else read from `stored` (one index a line).
pub fn ort_argmaxes(name: &str, onnx: &[u8], stored: &Path, tests: &[Vec<f32>]) -> Vec<usize> {
    match std::env::var_os("KILN_ORT_PYTHON").map(PathBuf::from) {
        Some(py) => {
            let w: Vec<usize> = ort(&py, &scratch(&format!("{name}/ort")), onnx, tests)
                .iter()
                .map(|o| argmax(o))
                .collect();
            if std::env::var_os("KILN_UPDATE_FIXTURES").is_some() {
                let text: Vec<String> = w.iter().map(|a| a.to_string()).collect();
                std::fs::write(stored, text.join("\n") + "\n").expect("write");
            }
            w
        }
        None => std::fs::read_to_string(stored)
            .expect("stored argmaxes")
            .lines()
            .map(|l| l.parse().expect("an index"))
            .collect(),
    }
}
