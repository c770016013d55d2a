//! The int8 step of a model's path, composed once for `search`, `train` and
//! `flash`: a trained f32 ONNX model is quantized (kiln-quant, calibrated on
//! training images) before it is built, and its int8 accuracy is then
//! measured, not assumed: the int8 build's own integer kernels (its wasm32
//! build under wasmtime, the simulated device) run the validation or test
//! images, so the figure is labelled `sim`.
//!
//! The f32 figures stay beside the int8 ones under `f32_` keys: accuracy as
//! trained (`host`), and the f32 model's planned weight and arena bytes
//! (its crate is generated into `crate-f32/`, not built: `predicted` by the
//! planner, like the int8 model's `weights_bytes` and `arena_bytes`).

use std::path::Path;

use kiln_data::{Dataset, Split};
use kiln_measure::sim::{SimLimits, SimModule};
use kiln_metric::{Metric, Source, Unit};
use kiln_quant::{QuantizeOptions, Quantized};
use kiln_search::Evaluation;
use kiln_search::evaluator::ACCURACY_KIND;
use kiln_search::objective::keys;

use crate::PipelineError;

/// Training images the quantizer calibrates on (the first of the split).
pub const CALIBRATION_IMAGES: usize = 500;

/// The number format a model is built and measured in; defined with the genome in
/// kiln-space (a space may list it as a decision), re-exported here.
pub use kiln_space::Precision;

/// Refuses, before anything is written, the searches a space's `precision` decision
/// cannot serve:
///
/// - `--precision int8` (`search_wide`) with a space that lists precisions: every genome's
///   own precision wins, so the flag would be silently ignored for the f32 ones (and the
///   run identity would say int8 of a run half f32). Drop the flag or the key.
/// - a judge-only search (a supernet and the latency table `judge_only`) over a space that
///   lists `int8`, when the table has no int8 entries and line (built before they existed):
///   int8 kernels cost 1.2-2.2x f32's fuel and more, so f32 entries cannot predict an int8
///   genome. `cargo xtask lut build` for the space measures them.
/// - a judge-only search with `--precision int8` over a space without the decision, when
///   the table has no int8 line: `cargo xtask lut build --precision int8` measures it.
///
/// `space_path` names the space file in the message, `lut_build` the command that builds
/// the table the search looks for (`cargo xtask lut build --target T --space S ...`).
/// Errors: [`PipelineError::Invalid`].
pub fn check_precision_decision(
    space: &kiln_space::Space,
    space_path: &Path,
    search_wide: Precision,
    judge_only: Option<&kiln_latency::LatencyTable>,
    lut_build: &str,
) -> Result<(), PipelineError> {
    let no_int8 = |t: &kiln_latency::LatencyTable| t.overhead_of(Precision::Int8).is_none();
    let Some(formats) = &space.precision else {
        if search_wide == Precision::Int8 && judge_only.is_some_and(no_int8) {
            return Err(PipelineError::Invalid(format!(
                "--precision int8: the latency table a judge-only search predicts every \
                 candidate's latency from has no int8 entries (int8 kernels cost 1.2-2.2x \
                 f32's fuel and more, so f32 entries would misjudge every candidate): run \
                 `{lut_build} --precision int8` to measure every layer in int8 too, or \
                 search with --evaluator train"
            )));
        }
        return Ok(());
    };
    let listed = per_genome_identity(formats);
    let file = space_path.display();
    if search_wide != Precision::F32 {
        return Err(PipelineError::Invalid(format!(
            "{file} chooses the precision per genome ({listed}), so --precision \
             {search_wide} would be overridden by every genome's own: drop --precision, or \
             search a space without the `precision` key"
        )));
    }
    if formats.contains(&Precision::Int8) && judge_only.is_some_and(no_int8) {
        return Err(PipelineError::Invalid(format!(
            "{file} chooses the precision per genome ({listed}), but the latency table a \
             judge-only search predicts every candidate's latency from has no int8 entries \
             (int8 kernels cost 1.2-2.2x f32's fuel and more): run `{lut_build}` to measure \
             every layer in int8 too, or search with --evaluator train (every candidate \
             built and measured in its own precision)"
        )));
    }
    Ok(())
}

/// The run identity's `precision` of a search over a space that chooses it, e.g.
/// `per genome (f32, int8)`: resuming with another list is refused like any identity field.
pub fn per_genome_identity(formats: &[Precision]) -> String {
    let names: Vec<&str> = formats.iter().map(|p| p.name()).collect();
    format!("{PER_GENOME} ({})", names.join(", "))
}

const PER_GENOME: &str = "per genome";

/// The search-wide precision a run identity's `precision` value stands for: `f32` or
/// `int8`, or f32 for [`per_genome_identity`]'s value (each genome's own precision wins).
///
/// Errors: any other value (quoted).
pub fn search_wide_of_identity(value: &str) -> Result<Precision, String> {
    if value.starts_with(PER_GENOME) {
        return Ok(Precision::F32);
    }
    Precision::parse(value)
}

/// Refuses a space that chooses the precision for a strategy (`what`) that does not
/// choose it (the differentiable search's relaxation covers the architecture only).
///
/// Errors: [`PipelineError::Invalid`] naming the space file (`path`) and its list.
pub fn refuse_precision_decision(
    space: &kiln_space::Space,
    path: &Path,
    what: &str,
) -> Result<(), PipelineError> {
    let Some(formats) = &space.precision else {
        return Ok(());
    };
    Err(PipelineError::Invalid(format!(
        "{}: {what} does not choose the precision, which this space does ({}); search it \
         with another strategy, or use --precision on a space without the key",
        path.display(),
        per_genome_identity(formats)
    )))
}

/// What a search over a space that lists precisions does, for the user.
pub fn per_genome_note(formats: &[Precision]) -> String {
    format!(
        "precision is a decision of this space ({}): each candidate is built and measured in \
         its genome's precision; an int8 one is trained in f32, quantized (kiln-quant, {} \
         training images for calibration), built, and its accuracy measured through the int8 \
         build (sim), its f32 figures beside as f32_*",
        per_genome_identity(formats),
        CALIBRATION_IMAGES
    )
}

/// Quantizes the f32 model `onnx` with kiln-quant (min/max ranges) calibrated
/// on the first [`CALIBRATION_IMAGES`] training images of `data` (raw pixels
/// 0..255, NCHW, as kiln's trained models take them).
///
/// Errors: the quantizer's, naming the node ([`PipelineError::Quant`]).
pub fn quantize_model(onnx: &[u8], data: &Dataset) -> Result<Quantized, PipelineError> {
    let (shape, images) = kiln_quant::calibration_images(data, CALIBRATION_IMAGES);
    Ok(kiln_quant::quantize(
        onnx,
        &shape,
        &images,
        &QuantizeOptions::default(),
    )?)
}

/// Top-1 (a fraction) of the wasm32 build at `wasm` on the first `n` images
/// of `split` (raw pixel values 0..255 as f32, NCHW), each run through the
/// simulated device (a fresh instance per image, `limits` per run).
///
/// Errors: a module that does not compile, a run that traps or writes
/// other than `classes` values (naming the image).
pub fn sim_top1(
    wasm: &Path,
    split: &Split,
    n: usize,
    classes: usize,
    limits: &SimLimits,
) -> Result<f64, PipelineError> {
    let module = SimModule::load(wasm)?;
    let mut correct = 0;
    for i in 0..n.min(split.len()) {
        let input: Vec<f32> = split.image(i).iter().map(|&p| f32::from(p)).collect();
        let run = module.run(&input, limits)?;
        if run.output.len() != classes {
            return Err(PipelineError::Invalid(format!(
                "{}: image {i}: {} outputs, the data set has {classes} classes",
                wasm.display(),
                run.output.len()
            )));
        }
        if kiln_train::argmax(&run.output) == split.label(i) {
            correct += 1;
        }
    }
    Ok(correct as f64 / n.min(split.len()).max(1) as f64)
}

/// The weight blob and arena bytes of `onnx` (named `path` in messages) as
/// its generated crate, written to `crate_dir` but not built, has them:
/// `predicted` by the planner (weights.bin is exact, the arena planned).
///
/// Errors: lowering (naming the node) or code generation.
pub fn planned_bytes(
    onnx: &[u8],
    path: &Path,
    crate_dir: &Path,
) -> Result<(Metric, Metric), PipelineError> {
    let name = path.display().to_string();
    let graph = kiln_lower::lower_bytes(onnx, &name, &kiln_lower::LowerOptions::default())?;
    let generated = kiln_codegen::generate(
        &graph,
        crate_dir,
        &kiln_codegen::GenerateOptions::new(&name),
    )?;
    let planned = |v: usize| Metric::new(v as f64, Unit::Bytes, Source::Predicted);
    Ok((
        planned(generated.weight_bytes),
        planned(generated.plan.arena_bytes()),
    ))
}

/// Before an int8 candidate is built: quantizes its f32 model, writes
/// `model.int8.onnx` into `dir`, moves the trained (f32) accuracies to
/// `f32_accuracy` and `f32_test_accuracy`, records the f32 model's planned
/// weight and arena bytes (its crate generated into `dir/crate-f32`, not
/// built) and the quantizer's warnings. Returns the int8 model's bytes.
///
/// Errors: the message for the trial's failure (quantization naming the
/// node, lowering the f32 model, a file).
pub(crate) fn quantize_trial(
    onnx: &[u8],
    data: &Dataset,
    dir: &Path,
    eval: &mut Evaluation,
) -> Result<Vec<u8>, String> {
    let q = quantize_model(onnx, data).map_err(|e| format!("int8 quantization: {e}"))?;
    crate::files::write(&dir.join("model.int8.onnx"), &q.onnx)
        .map_err(|e| format!("cannot write {e}"))?;
    let m = &mut eval.metrics;
    for (from, to) in [
        (keys::ACCURACY, "f32_accuracy"),
        (keys::TEST_ACCURACY, "f32_test_accuracy"),
    ] {
        if let Some(v) = m.remove(from) {
            m.insert(to.into(), v);
        }
    }
    let (weights, arena) = planned_bytes(onnx, &dir.join("model.onnx"), &dir.join("crate-f32"))
        .map_err(|e| e.to_string())?;
    m.insert("f32_weights_bytes".into(), weights);
    m.insert("f32_arena_bytes".into(), arena);
    if !q.warnings.is_empty() {
        eval.labels
            .insert("quantization_warnings".into(), q.warnings.join("; "));
    }
    Ok(q.onnx)
}

/// After an int8 candidate is built: its validation top-1 through the int8
/// wasm build becomes `accuracy` (`sim`), and the accuracy's label (which
/// begins with the f32 model's kind: trained, inherited, fine-tuned) says so.
///
/// Errors: the message for the trial's failure (the run of an image).
pub(crate) fn measure_int8_accuracy(
    wasm: &Path,
    data: &Dataset,
    limits: &SimLimits,
    eval: &mut Evaluation,
) -> Result<(), String> {
    let split = &data.validation;
    let n = split.len();
    let top1 =
        sim_top1(wasm, split, n, data.classes, limits).map_err(|e| format!("int8 top-1: {e}"))?;
    eval.metrics.insert(
        keys::ACCURACY.into(),
        Metric::new(top1, Unit::Fraction, Source::Sim),
    );
    let f32_kind = eval
        .labels
        .get(ACCURACY_KIND)
        .cloned()
        .unwrap_or_else(|| "as trained".into());
    // The f32 kind stays first: later phases read it (fine-tuning picks inherited ones).
    eval.labels.insert(
        ACCURACY_KIND.into(),
        format!(
            "{f32_kind}; then quantized to int8 (calibrated on {} training images): accuracy is \
             the int8 build's top-1 on {n} validation images (sim), f32_accuracy the f32 model's",
            CALIBRATION_IMAGES.min(data.train.len())
        ),
    );
    Ok(())
}

/// What `cargo xtask train --precision int8` adds to a run folder: the
/// int8 model's top-1 on the validation and test splits through its wasm32
/// build (`sim`) beside the f32 model's from training (`host`), and both
/// models' weight and arena bytes (`predicted` by the planner). Written as
/// `metrics.int8.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Int8Run {
    /// Training images calibrated on.
    pub calibration_images: usize,
    /// Figures keyed `int8_*` and `f32_*`, each with its unit and source.
    pub metrics: std::collections::BTreeMap<String, Metric>,
    /// The quantizer's summary line.
    pub summary: String,
    /// The quantizer's warnings (e.g. too few calibration images).
    pub warnings: Vec<String>,
}

/// Quantizes a training run's f32 model (`out/model.onnx`, trained with
/// `metrics` on `data`), writes `out/model.int8.onnx`, builds it for wasm32 (crate in
/// `out/kiln-model-int8`), measures its top-1 on the validation and test
/// splits there, and writes `out/metrics.int8.json` ([`Int8Run`]).
///
/// Errors: quantization (naming the node), the build, a simulated run, a file.
pub fn quantize_run(
    metrics: &kiln_train::Metrics,
    data: &Dataset,
    out: &Path,
) -> Result<Int8Run, PipelineError> {
    let onnx = &crate::files::read(&out.join("model.onnx"))?;
    let q = quantize_model(onnx, data)?;
    let int8_path = out.join("model.int8.onnx");
    crate::files::write(&int8_path, &q.onnx)?;
    let built = crate::build::build_model(
        &crate::build::ModelSource {
            onnx: &q.onnx,
            name: &int8_path.display().to_string(),
            crate_dir: &out.join("kiln-model-int8"),
            target_dir: &kiln_codegen::default_target_dir(),
            input_shape: None,
        },
        &[kiln_target::Triple::Wasm32],
    )?;
    let wasm = built.wasm()?;
    let limits = SimLimits::default();
    let fraction = |v: f64, s| Metric::new(v, Unit::Fraction, s);
    let planned = |v: u64| Metric::new(v as f64, Unit::Bytes, Source::Predicted);
    let (f32_weights, f32_arena) =
        planned_bytes(onnx, &out.join("model.onnx"), &out.join("kiln-model-f32"))?;
    let mut m = std::collections::BTreeMap::new();
    let (val, test) = (&data.validation, &data.test);
    if !val.is_empty() {
        let top1 = sim_top1(wasm, val, val.len(), data.classes, &limits)?;
        m.insert("int8_validation_top1".into(), fraction(top1, Source::Sim));
    }
    let top1 = sim_top1(wasm, test, test.len(), data.classes, &limits)?;
    m.insert("int8_test_top1".into(), fraction(top1, Source::Sim));
    if let Some(v) = metrics.validation_top1 {
        m.insert("f32_validation_top1".into(), fraction(v, Source::Host));
    }
    m.insert(
        "f32_test_top1".into(),
        fraction(metrics.test_top1, Source::Host),
    );
    m.insert("int8_weights_bytes".into(), planned(built.weight_bytes));
    m.insert("f32_weights_bytes".into(), f32_weights);
    m.insert("int8_arena_bytes".into(), planned(built.arena_bytes));
    m.insert("f32_arena_bytes".into(), f32_arena);
    let run = Int8Run {
        calibration_images: CALIBRATION_IMAGES.min(data.train.len()),
        metrics: m,
        summary: q.summary(),
        warnings: q.warnings,
    };
    let json = serde_json::to_string_pretty(&run)
        .map_err(|e| PipelineError::Invalid(format!("metrics.int8.json: {e}")))?;
    crate::files::write(&out.join("metrics.int8.json"), json.as_bytes())?;
    Ok(run)
}

impl Int8Run {
    /// Lines for the user: int8 beside f32, each figure with its source.
    pub fn lines(&self) -> Vec<String> {
        let fig = |k: &str| {
            self.metrics.get(k).map_or("-".into(), |f| {
                format!("{} ({})", f.value_with_unit(), f.source)
            })
        };
        let mut lines = vec![self.summary.clone()];
        for (what, key) in [
            ("validation top-1", "validation_top1"),
            ("test top-1", "test_top1"),
            ("weights", "weights_bytes"),
            ("arena", "arena_bytes"),
        ] {
            lines.push(format!(
                "{what}: int8 {} vs f32 {}",
                fig(&format!("int8_{key}")),
                fig(&format!("f32_{key}"))
            ));
        }
        lines.extend(self.warnings.iter().map(|w| format!("warning: {w}")));
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(precision: &str) -> kiln_space::Space {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("spaces/mobile.toml")).unwrap();
        kiln_space::Space::from_toml(&format!("{precision}{text}"), "q.toml").unwrap()
    }

    #[test]
    fn a_precision_decision_refuses_what_cannot_serve_it() {
        let (both, plain) = (space("precision = [\"f32\", \"int8\"]\n"), space(""));
        // A judge-only search's table: f32 entries only, or with an int8 line.
        let f32_only = kiln_latency::LatencyTable::new(kiln_latency::TableIdentity {
            source: Source::Sim,
            space: "mobile".into(),
            space_fingerprint: String::new(),
            input: kiln_space::InputSpec::MNIST,
            target: "pixel".into(),
            runtime: String::new(),
            sim_modes: Vec::new(),
            device: None,
            runner: None,
            power_mode: None,
        });
        let mut with_int8 = f32_only.clone();
        let line = kiln_latency::Overhead {
            cost: Metric::new(0.0, Unit::Fuel, Source::Predicted),
            scale: 1.0,
            per_layer: 0.0,
            fitted_on: 8,
            max_relative_error: 0.1,
        };
        with_int8.set_overhead(Precision::Int8, line);
        let path = Path::new("spaces/q.toml");
        let lut = "cargo xtask lut build --target pixel --space spaces/q.toml";
        let check = |s, p, table| check_precision_decision(s, path, p, table, lut);
        // Without the key, with --evaluator train, or judged with int8 entries: accepted.
        check(&plain, Precision::Int8, None).unwrap();
        check(&plain, Precision::Int8, Some(&with_int8)).unwrap();
        // search-wide int8 judged on f32 entries only: refused, naming the command
        let err = check(&plain, Precision::Int8, Some(&f32_only))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no int8 entries")
                && err.contains("lut build --target pixel --space spaces/q.toml --precision int8"),
            "{err}"
        );
        check(&both, Precision::F32, None).unwrap();
        check(&both, Precision::F32, Some(&with_int8)).unwrap();
        let f32_list = space("precision = [\"f32\"]\n");
        check(&f32_list, Precision::F32, Some(&f32_only)).unwrap();
        // The run identity names the list; a worker reads it as f32 search-wide.
        let id = per_genome_identity(both.precision.as_deref().unwrap());
        assert_eq!(id, "per genome (f32, int8)");
        assert_eq!(search_wide_of_identity(&id), Ok(Precision::F32));
        assert_eq!(search_wide_of_identity("int8"), Ok(Precision::Int8));
        assert!(search_wide_of_identity("fp16").is_err());
        let err = check(&both, Precision::Int8, None).unwrap_err().to_string();
        assert!(
            err.contains("spaces/q.toml") && err.contains("--precision int8"),
            "{err}"
        );
        let err = check(&both, Precision::F32, Some(&f32_only))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no int8 entries")
                && err.contains("cargo xtask lut build --target pixel --space spaces/q.toml")
                && err.contains("--evaluator train"),
            "{err}"
        );
        let err = refuse_precision_decision(&both, path, "the differentiable search")
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not choose the precision"), "{err}");
        refuse_precision_decision(&plain, path, "the differentiable search").unwrap();
    }
}
