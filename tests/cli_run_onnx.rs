//! `cargo xtask run-onnx` as a user runs it: .npy in, .npy out, compared with
//! tract running the same ONNX file.

use std::path::Path;
use std::process::Command;

use npyz::WriterBuilder;
use tract_onnx::prelude::*;

fn xtask(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask starts")
}

fn write_npy(path: &Path, shape: &[usize], values: &[f32]) {
    let dims: Vec<u64> = shape.iter().map(|d| *d as u64).collect();
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&dims)
        .writer(std::fs::File::create(path).unwrap())
        .begin_nd()
        .unwrap();
    w.extend(values.iter().copied()).unwrap();
    w.finish().unwrap();
}

fn read_npy(path: &Path) -> (Vec<u64>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<f32>().unwrap())
}

fn tract_logits(model: &Path, shape: &[usize], input: &[f32]) -> Vec<f32> {
    let plan = tract_onnx::onnx()
        .model_for_path(model)
        .unwrap()
        .into_optimized()
        .unwrap()
        .into_runnable()
        .unwrap();
    let x = tract_ndarray::ArrayD::from_shape_vec(shape.to_vec(), input.to_vec()).unwrap();
    let out = plan.run(tvec!(Tensor::from(x).into())).unwrap();
    out[0]
        .to_plain_array_view::<f32>()
        .unwrap()
        .iter()
        .copied()
        .collect()
}

/// Exports a genome's network with seeded random weights to `dir/model.onnx`.
fn export(genome: &str, input_arg: &str, dir: &Path) -> std::path::PathBuf {
    let model = dir.join("model.onnx");
    let o = xtask(&[
        "export-onnx",
        "--genome",
        genome,
        "--input",
        input_arg,
        "--seed",
        "7",
        "-o",
        model.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    model
}

/// Exports a genome, runs it through `run-onnx` and through tract.
fn check(genome: &str, input_arg: &str, shape: [usize; 4], dir: &Path) {
    let model = export(genome, input_arg, dir);
    let n: usize = shape.iter().product();
    let input: Vec<f32> = (0..n)
        .map(|i| ((i * 31) % 97) as f32 / 97.0 - 0.3)
        .collect();
    let (x, y) = (dir.join("x.npy"), dir.join("y.npy"));
    write_npy(&x, &shape, &input);
    let o = xtask(&[
        "run-onnx",
        model.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
        "--work-dir",
        dir.join("crate").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (out_shape, ours) = read_npy(&y);
    assert_eq!(out_shape, [1, 10]);
    let reference = tract_logits(&model, &shape, &input);
    let err = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(err <= 1e-4, "{genome}: max abs error {err} vs tract");
}

#[test]
fn mobilenetv2_matches_tract_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let genome = root.join("spaces/mobilenetv2-0.5.json");
    check(
        genome.to_str().unwrap(),
        "3x96x96",
        [1, 3, 96, 96],
        dir.path(),
    );
}

#[test]
fn random_genome_matches_tract_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let sampled = xtask(&["space", "sample", "--seed", "11"]);
    assert!(sampled.status.success());
    let genome = dir.path().join("g.json");
    std::fs::write(&genome, &sampled.stdout).unwrap();
    check(
        genome.to_str().unwrap(),
        "1x28x28",
        [1, 1, 28, 28],
        dir.path(),
    );
}

/// A model of a fixed batch of 3 (kiln-codegen's fixture onnx-ops/batch3-cnn:
/// Conv, BatchNormalization, Relu, depthwise, Clip, GlobalAveragePool,
/// Flatten, Gemm, Softmax) through the CLI: one program call runs the 3
/// images and writes onnxruntime's `[3, 5]` (issue 19).
#[test]
fn a_batch_of_three_matches_onnxruntime_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../crates/codegen/tests/fixtures/onnx-ops/batch3-cnn");
    let y = dir.path().join("y.npy");
    let o = xtask(&[
        "run-onnx",
        case.join("model.onnx").to_str().unwrap(),
        "--input",
        case.join("input.npy").to_str().unwrap(),
        "--output",
        y.to_str().unwrap(),
        "--work-dir",
        dir.path().join("crate").to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (shape, ours) = read_npy(&y);
    let (want_shape, want) = read_npy(&case.join("output.npy"));
    assert_eq!(
        (shape.as_slice(), want_shape.as_slice()),
        (&[3, 5][..], &[3, 5][..])
    );
    for (i, (a, b)) in ours.iter().zip(&want).enumerate() {
        assert!(
            (a - b).abs() <= 1e-5 + 1e-4 * b.abs(),
            "y[{i}] = {a}, onnxruntime {b}"
        );
    }
}

#[test]
fn wrong_input_shape_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let genome = root.join("spaces/mobilenetv2-0.5.json");
    let model = export(genome.to_str().unwrap(), "3x96x96", dir.path());
    let x = dir.path().join("x.npy");
    write_npy(&x, &[1, 3, 32, 32], &vec![0.0; 3 * 32 * 32]);
    let o = xtask(&[
        "run-onnx",
        model.to_str().unwrap(),
        "--input",
        x.to_str().unwrap(),
        "--output",
        dir.path().join("y.npy").to_str().unwrap(),
        "--work-dir",
        dir.path().join("crate").to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("x.npy") && !err.contains("panicked"), "{err}");
}
