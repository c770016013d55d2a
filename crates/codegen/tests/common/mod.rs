//! Shared by the compile-path tests: tract as the reference, bundles of
//! generated models built once and run per model.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_lower::LowerOptions;
use tract_onnx::prelude::*;

/// Deterministic values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// tract's answer: optimized plan of the same ONNX bytes.
pub fn tract_run(onnx: &[u8], shape: &[usize], input: &[f32]) -> Vec<f32> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &onnx[..])
        .expect("tract parses the test model")
        .with_input_fact(0, f32::fact(shape).into())
        .expect("input fact")
        .into_optimized()
        .expect("tract optimizes the test model")
        .into_runnable()
        .expect("runnable");
    let x = Tensor::from_shape(shape, input).expect("input tensor");
    let out = model
        .run(tvec!(x.into()))
        .expect("tract runs the test model");
    out[0]
        .to_plain_array_view::<f32>()
        .expect("f32 output")
        .iter()
        .copied()
        .collect()
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "output lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// A scratch folder under the shared target dir (kept for inspection).
pub fn scratch(name: &str) -> PathBuf {
    let dir = kiln_codegen::default_target_dir().join("tests").join(name);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

pub struct Case {
    pub name: String,
    pub onnx: Vec<u8>,
    pub shape: Vec<usize>,
}

/// Lowers every case, generates one bundle, builds it once, runs each model
/// on a seeded input and returns (name, max abs error vs tract).
pub fn run_bundle(bundle: &str, cases: &[Case]) -> Vec<(String, f32)> {
    let graphs: Vec<_> = cases
        .iter()
        .map(|c| {
            kiln_lower::lower_bytes(&c.onnx, &c.name, &LowerOptions::default())
                .unwrap_or_else(|e| panic!("lowering {}: {e}", c.name))
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
    cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let n: usize = c.shape.iter().product();
            let input = values(n, i as u64 + 7);
            let want = tract_run(&c.onnx, &c.shape, &input);
            let got = run_binary(&bin, &[&i.to_string()], &input);
            (c.name.clone(), max_abs_diff(&got, &want))
        })
        .collect()
}

/// Runs a built program: LE f32 on stdin, LE f32 from stdout.
pub fn run_binary(bin: &Path, args: &[&str], input: &[f32]) -> Vec<f32> {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn generated program");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(&bytes)
        .expect("write input");
    let out = child.wait_with_output().expect("generated program runs");
    assert!(
        out.status.success(),
        "{}: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
