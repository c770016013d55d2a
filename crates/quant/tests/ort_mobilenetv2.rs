//! The whole-network bar on MobileNetV2-0.5: quantized by kiln and
//! by onnxruntime's `quantize_static`, run through kiln, compared with
//! onnxruntime: the argmax is the same on the bundled test split (1,000
//! images) for at least 99.5% of them.
//!
//! The f32 model (fixtures/mobilenetv2-28px.onnx) is MobileNetV2-0.5 as
//! spaces/mobilenetv2-28px.toml adapts it to 28x28 inputs, trained 10
//! epochs on the bundled MNIST subset, so its argmaxes mean something: the
//! baseline of docs/quality-dnas/front-vs-mobilenetv2.md (`cargo xtask
//! search --target jetson --space spaces/mobilenetv2-28px.toml --evaluator
//! train --strategy random --trials 1 --epochs 10 --seed 1 --workers 1 -o
//! runs/mbv2-10`, its trial's model.onnx; validation top-1 97.0%, test
//! 97.6%, host).
//!
//! - kiln's quantization (kiln-quant, min/max on the first 500 training
//!   images, as `cargo xtask quantize`) is done here, and its QDQ model run
//!   by kiln and by onnxruntime (needs `KILN_ORT_PYTHON`; skipped with a
//!   note otherwise, unless `KILN_REQUIRE_ORT` is set).
//! - onnxruntime's (fixtures/mobilenetv2-28px.ort-int8.onnx, QDQ, the same
//!   500 images) is run by kiln and compared with onnxruntime's argmaxes,
//!   run now or, without Python, as stored beside it
//!   (`mobilenetv2-28px.ort-int8.argmax.txt`).
//!
//! `KILN_UPDATE_FIXTURES=1` with `KILN_ORT_PYTHON` remakes the onnxruntime
//! model (scripts/ort-quantize.py --raw on the calibration images this test
//! writes) and its argmaxes.
//!
//! The three models (f32, kiln int8, onnxruntime int8) build as one host
//! program; each of the 3,000 runs is a process (about a minute and a half
//! with the build).

mod common;

use std::process::Command;

use common::{argmax, python, repo, run, scratch};
use kiln_quant::{QuantizeOptions, quantize};

const DIR: &str = "crates/quant/tests/fixtures";

#[test]
fn mobilenetv2_int8_argmax_agrees_with_onnxruntime() {
    let py = python();
    let data = common::mnist();
    let f32_path = repo(&format!("{DIR}/mobilenetv2-28px.onnx"));
    let ort_path = repo(&format!("{DIR}/mobilenetv2-28px.ort-int8.onnx"));
    let f32_model = std::fs::read(&f32_path).expect("f32 fixture");
    let (shape, calib) = kiln_quant::calibration_images(&data, 500);
    let kiln_q =
        quantize(&f32_model, &shape, &calib, &QuantizeOptions::default()).expect("kiln quantizes");
    if let (Some(py), Some(_)) = (&py, std::env::var_os("KILN_UPDATE_FIXTURES")) {
        let raw = scratch("quant_mbv2/calib").join("calib.f32");
        common::write_f32s(&raw, &calib);
        let out = Command::new(py)
            .arg(repo("scripts/ort-quantize.py"))
            .arg(&f32_path)
            .arg(&ort_path)
            .arg("--raw")
            .arg(&raw)
            .args(["--images", "500", "--shape", "1,1,28,28"])
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "ort-quantize.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let ort_q = std::fs::read(&ort_path).expect("onnxruntime-quantized fixture");
    let tests = common::test_images(&data);
    let ort_on_ort_q = common::ort_argmaxes(
        "quant_mbv2/ort-int8",
        &ort_q,
        &repo(&format!("{DIR}/mobilenetv2-28px.ort-int8.argmax.txt")),
        &tests,
    );
    let models = [f32_model, kiln_q.onnx.clone(), ort_q];
    let graphs = common::lower_all("quant_mbv2_", &models);
    let bin = common::build_bundle("quant_mbv2", &graphs);
    let kiln: Vec<Vec<usize>> = (0..models.len())
        .map(|m| tests.iter().map(|t| argmax(&run(&bin, m, t))).collect())
        .collect();
    let top1 = |got: &[usize]| {
        let right = (0..tests.len())
            .filter(|i| data.test.label(*i) == got[*i])
            .count();
        100.0 * right as f64 / tests.len() as f64
    };
    let same = |a: &[usize], b: &[usize]| a.iter().zip(b).filter(|(x, y)| x == y).count();
    let n = tests.len();
    eprintln!(
        "test top-1 through kiln (host): f32 {:.2}%, kiln int8 {:.2}%, onnxruntime int8 {:.2}%",
        top1(&kiln[0]),
        top1(&kiln[1]),
        top1(&kiln[2])
    );
    eprintln!(
        "int8 argmaxes as f32's: kiln's quantization {} of {n}, onnxruntime's {} of {n}",
        same(&kiln[1], &kiln[0]),
        same(&kiln[2], &kiln[0])
    );
    let ort_agree = same(&kiln[2], &ort_on_ort_q);
    eprintln!(
        "onnxruntime's quantization: kiln and onnxruntime agree on {ort_agree} of {n} argmaxes"
    );
    let mut failures = Vec::new();
    if ort_agree * 1000 < n * 995 {
        failures.push(format!("onnxruntime's model: {ort_agree} of {n} agree"));
    }
    if let Some(py) = &py {
        let want: Vec<usize> = common::ort(py, &scratch("quant_mbv2/kiln"), &kiln_q.onnx, &tests)
            .iter()
            .map(|o| argmax(o))
            .collect();
        let kiln_agree = same(&kiln[1], &want);
        eprintln!(
            "kiln's quantization: kiln and onnxruntime agree on {kiln_agree} of {n} argmaxes; \
             onnxruntime's top-1 on it {:.2}%",
            top1(&want)
        );
        if kiln_agree * 1000 < n * 995 {
            failures.push(format!("kiln's model: {kiln_agree} of {n} agree"));
        }
    }
    assert!(failures.is_empty(), "{failures:?}");
}
