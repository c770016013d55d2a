//! A model of a fixed batch of 3 images (kiln-codegen's fixture
//! onnx-ops/batch3-cnn: Conv, BatchNormalization, Relu, depthwise, Clip,
//! GlobalAveragePool, Flatten, Gemm, Softmax) built for wasm32 and run once
//! on the simulated device: one `infer` takes the 3 images and gives the 3
//! outputs onnxruntime gives, and costs three times the work of one image.

use std::path::{Path, PathBuf};

use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_measure::sim::{SimLimits, SimModule};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../codegen/tests/fixtures/onnx-ops/batch3-cnn")
}

/// The f32 values of a little-endian `<f4` .npy file (version 1: a 10-byte
/// preamble whose last two bytes are the header's length, then the header).
fn npy_f32(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + header_len]).expect("ascii header");
    assert!(
        header.contains("'<f4'") && header.contains("False"),
        "{header}"
    );
    bytes[10 + header_len..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[test]
fn one_infer_runs_the_batch_of_three_like_onnxruntime() {
    let graph =
        kiln_lower::lower_file(&fixture().join("model.onnx"), &Default::default()).expect("lowers");
    assert_eq!(graph.batch, 3);
    let dir = kiln_codegen::default_target_dir().join("tests/sim-batch3");
    let generated =
        kiln_codegen::generate(&graph, &dir, &GenerateOptions::new("batch3")).expect("generates");
    let wasm = kiln_codegen::build(
        &dir,
        BuildTarget::Wasm32,
        &kiln_codegen::default_target_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let module = SimModule::load(&wasm).unwrap();
    let input = npy_f32(&fixture().join("input.npy"));
    let want = npy_f32(&fixture().join("output.npy"));
    assert_eq!(
        (generated.input_len, generated.output_len),
        (3 * 3 * 8 * 8, 3 * 5)
    );
    let limits = SimLimits::default();
    let run = module.run(&input, &limits).unwrap();
    assert_eq!(run.output.len(), want.len());
    for (i, (g, w)) in run.output.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-5 + 1e-4 * w.abs(),
            "output[{i}] = {g}, onnxruntime {w}"
        );
    }
    // the same image three times: three equal outputs, for three times the
    // fuel of the one-image program (the same graph with batch 1) on it, up
    // to the loop (fuel is exact on the simulated device)
    let one = &input[..3 * 8 * 8];
    let thrice: Vec<f32> = one.iter().chain(one).chain(one).copied().collect();
    let same = module.run(&thrice, &limits).unwrap();
    assert_eq!(same.output[..5], same.output[5..10]);
    assert_eq!(same.output[..5], same.output[10..]);
    assert_eq!(same.output[..5], run.output[..5]);
    let mut single = graph.clone();
    single.batch = 1;
    let dir = kiln_codegen::default_target_dir().join("tests/sim-batch1");
    kiln_codegen::generate(&single, &dir, &GenerateOptions::new("batch1")).expect("generates");
    let wasm = kiln_codegen::build(
        &dir,
        BuildTarget::Wasm32,
        &kiln_codegen::default_target_dir(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let alone = SimModule::load(&wasm).unwrap().run(one, &limits).unwrap();
    assert_eq!(alone.output, same.output[..5]);
    let ratio = same.fuel as f64 / (3 * alone.fuel) as f64;
    eprintln!(
        "fuel (sim): batch of 3 {}, one image {}, ratio to 3x {ratio:.4}",
        same.fuel, alone.fuel
    );
    assert!((ratio - 1.0).abs() < 0.01, "{ratio}");
}
