//! The flash sequence: build the model here (the device's program and the
//! wasm simulation whose output the device must reproduce), measure it here
//! (`sim`, `host`), put it on the device, check its output there, benchmark
//! it there (`device`), and keep the figures side by side in `metrics.json`.

use std::path::{Path, PathBuf};

use kiln_codegen::program::BenchLine;
use kiln_deploy::{BenchSettings, Bundle, Device, FlashReport, PowerPlan};
use kiln_measure::report::{MeasureOptions, TargetReport, fixed_input};
use kiln_measure::sim::{SimLimits, SimModule};
use kiln_search::report::FrontFile;
use kiln_target::{Target, Triple};

use crate::PipelineError;
use crate::build::{ModelSource, build_model, content_dir};
use crate::files::{read, write};

/// What to flash where.
#[derive(Debug, Clone)]
pub struct FlashRequest<'a> {
    /// The device's profile.
    pub target: &'a Target,
    /// The device (with `dry_run` set, commands are recorded, not run).
    pub device: Device,
    /// The power mode to benchmark in, if one was asked for.
    pub power: Option<PowerPlan>,
    /// The ONNX model.
    pub model: &'a Path,
    /// Where the generated crate and `metrics.json` go.
    pub out: &'a Path,
    /// Warm-up and timed inferences on the device.
    pub warmup: u64,
    /// Timed inferences on the device.
    pub runs: u64,
    /// Cargo target dir of the builds.
    pub target_dir: &'a Path,
}

/// A model flashed and measured on the device.
#[derive(Debug, Clone)]
pub struct Flashed {
    /// What the device did: where the model went, the power outcome.
    pub report: FlashReport,
    /// The device's bench line (`device` figures, output check).
    pub bench: BenchLine,
    /// The same model measured here (`sim`, `host`/emulated).
    pub local: TargetReport,
    /// `out/metrics.json`.
    pub metrics: PathBuf,
}

/// The outcome of [`flash`]: the device commands (for a dry run's listing,
/// also when it failed) and the result.
#[derive(Debug)]
pub struct FlashOutcome {
    /// The device's name (`user@addr:port`, `adb:SERIAL`).
    pub device: String,
    /// Every device command run, or in a dry run that would run.
    pub commands: Vec<String>,
    /// `None` after a dry run that went through.
    pub result: Result<Option<Flashed>, PipelineError>,
}

/// Builds, measures here, flashes and benchmarks on the device. A program
/// that already disagrees with the simulation here is never shipped.
pub fn flash(req: FlashRequest<'_>) -> FlashOutcome {
    let mut device = req.device.clone();
    let result = flash_on(&mut device, &req);
    FlashOutcome {
        device: device.name(),
        commands: device.commands().to_vec(),
        result,
    }
}

fn flash_on(device: &mut Device, req: &FlashRequest<'_>) -> Result<Option<Flashed>, PipelineError> {
    let target = req.target;
    // Fail fast, before minutes of building, when the device does not answer.
    if !device.dry_run {
        device.check_reachable()?;
    }
    if target.triple.is_wasm() {
        return Err(PipelineError::Invalid(format!(
            "target {}: kiln cannot build {} programs for a device",
            target.name, target.triple
        )));
    }
    let onnx = read(req.model)?;
    let name = req.model.display().to_string();
    let built = build_model(
        &ModelSource {
            onnx: &onnx,
            name: &name,
            crate_dir: &req.out.join("crate"),
            target_dir: req.target_dir,
            input_shape: None,
        },
        &[Triple::Wasm32, target.triple],
    )?;
    let program = built
        .program(target.triple)
        .ok_or_else(|| PipelineError::Invalid(format!("no {} program was built", target.triple)))?
        .to_path_buf();
    let input = fixed_input(built.input_len);
    let sim = SimModule::load(built.wasm()?)?.run(&input, &SimLimits::default())?;
    let input_path = req.out.join("input.bin");
    let expected_path = req.out.join("expected.bin");
    write(&input_path, &kiln_measure::host::encode_f32_le(&input))?;
    write(
        &expected_path,
        &kiln_measure::host::encode_f32_le(&sim.output),
    )?;

    // sim and host figures of the same model (host under qemu for aarch64).
    let local_options = MeasureOptions {
        warmup: req.warmup.min(3),
        runs: req.runs.clamp(1, 10),
        ..Default::default()
    };
    let local =
        kiln_measure::report::measure(target, &built.artifacts_for(target)?, &local_options)?;
    if let Some(check) = local.output_check.as_ref().filter(|c| !c.passed) {
        return Err(PipelineError::Invalid(format!(
            "not flashing {}: {} differ by {:.2e} (tolerance {:.0e}) here already; rebuild (another build may have replaced the shared artifact)",
            program.display(),
            check.compared,
            check.max_abs_diff,
            check.tolerance
        )));
    }
    let bench = BenchSettings {
        warmup: req.warmup,
        runs: req.runs,
        runner: target.deploy.runner.clone(),
        power: req.power.clone(),
    };
    let bundle = Bundle {
        program,
        input: input_path,
        expected: expected_path,
    };
    let report = device.flash(&bundle, &bench).map_err(|e| {
        PipelineError::Invalid(format!(
            "flashing {} to {}: {e}",
            req.model.display(),
            device.name()
        ))
    })?;
    if device.dry_run {
        return Ok(None);
    }
    let bench = report
        .bench
        .clone()
        .ok_or_else(|| PipelineError::Invalid("the device returned no benchmark figures".into()))?;
    let metrics = serde_json::json!({
        "model": req.model.display().to_string(),
        "target": target.name,
        "device": {
            "source": "device",
            "address": report.device,
            "version": report.version,
            "previous": report.previous,
            "runner": target.deploy.runner,
            "bench": bench,
            "power": report.power,
        },
        "local": local,
    });
    let path = req.out.join("metrics.json");
    let text = serde_json::to_string_pretty(&metrics)
        .map_err(|e| PipelineError::Invalid(format!("metrics.json: {e}")))?;
    write(&path, text.as_bytes())?;
    Ok(Some(Flashed {
        report,
        bench,
        local,
        metrics: path,
    }))
}

/// The ONNX model to flash and the folder its figures go to: an ONNX file
/// (figures under `runs/flash/<target>/<name>-<hash>` unless `out` is
/// given), a search run folder (its front's most accurate model; figures
/// under `RUN_DIR/flash/<target>`), or with neither the newest run for
/// `target` under `runs`.
///
/// Errors: a path that does not exist, a folder without `front.json`, an
/// empty front, no run for the target.
pub fn resolve_model(
    model: Option<&Path>,
    out: Option<&Path>,
    runs: &Path,
    target: &str,
) -> Result<(PathBuf, PathBuf), PipelineError> {
    let run_dir = match model {
        Some(p) if p.is_file() => {
            let out = match out {
                Some(o) => o.to_path_buf(),
                None => content_dir(&runs.join("flash").join(target), p, &read(p)?, None),
            };
            return Ok((p.to_path_buf(), out));
        }
        Some(p) if p.is_dir() => p.to_path_buf(),
        Some(p) => {
            return Err(PipelineError::Invalid(format!(
                "--model {}: no such file or folder",
                p.display()
            )));
        }
        None => latest_run(runs, target)?,
    };
    let onnx = best_of_front(&run_dir)?;
    let out = out.map_or_else(|| run_dir.join("flash").join(target), Path::to_path_buf);
    Ok((onnx, out))
}

/// The front's most accurate model as the search built it: `model.onnx`, or
/// `model.int8.onnx` for an int8 genome (its own precision) or an int8 search (precision
/// in the run's identity).
fn best_of_front(run_dir: &Path) -> Result<PathBuf, PipelineError> {
    let front = FrontFile::read(run_dir)
        .map_err(|e| PipelineError::Invalid(format!("{e}; give --model MODEL.onnx instead")))?;
    let path = run_dir.join(FrontFile::NAME);
    let best = front.most_accurate().ok_or_else(|| {
        PipelineError::Invalid(format!(
            "{}: the front is empty (no model met every constraint)",
            path.display()
        ))
    })?;
    // The genome's own precision (its space chooses one) wins over the run's.
    let own = best.genome.get("precision").and_then(|p| p.as_str());
    let built = match own.or(front.run.get("precision").map(String::as_str)) {
        Some("int8") => "model.int8.onnx",
        _ => "model.onnx",
    };
    let onnx = run_dir.join(&best.folder).join(built);
    if !onnx.is_file() {
        return Err(PipelineError::Invalid(format!(
            "{}: the best model {} does not exist",
            path.display(),
            onnx.display()
        )));
    }
    Ok(onnx)
}

/// The newest run folder under `runs` whose front.json is for `target`.
///
/// Errors: [`PipelineError::Invalid`] when there is none, naming any front.json under
/// `runs` that could not be read (and why), which might have been the one.
fn latest_run(runs: &Path, target: &str) -> Result<PathBuf, PipelineError> {
    let mut unreadable = Vec::new();
    let none = |unreadable: &[String]| {
        let why = match unreadable {
            [] => String::new(),
            errors => format!(" (not read: {})", errors.join("; ")),
        };
        PipelineError::Invalid(format!(
            "no search run for target {target} with a front.json under {}{why}; give --model \
             MODEL.onnx (or a run folder)",
            runs.display()
        ))
    };
    let entries = std::fs::read_dir(runs).map_err(|_| none(&[]))?;
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in entries.flatten() {
        let file = e.path().join(FrontFile::NAME);
        if !file.is_file() {
            continue;
        }
        let front = match FrontFile::read(&e.path()) {
            Ok(front) => front,
            Err(err) => {
                unreadable.push(err.to_string());
                continue;
            }
        };
        let Ok(modified) = file.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        if front.target() == Some(target) && best.as_ref().is_none_or(|(t, _)| modified > *t) {
            best = Some((modified, e.path()));
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| none(&unreadable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_metric::{Metric, Source, Unit};
    use kiln_search::front_file::FrontModel;

    #[test]
    fn the_best_of_an_int8_front_is_its_int8_model() {
        let dir = tempfile::tempdir().unwrap();
        let model = |folder: &str, accuracy: f64, genome: &serde_json::Value| FrontModel {
            trial: 1,
            genome_id: folder.into(),
            genome: genome.clone(),
            metrics: [(
                "accuracy".to_string(),
                Metric::new(accuracy, Unit::Fraction, Source::Sim),
            )]
            .into(),
            folder: format!("front/{folder}"),
            crowding_distance: 0.0,
            labels: Default::default(),
        };
        // The run's precision, then a genome of a space that chooses it: its own wins.
        let own = serde_json::json!({ "precision": "int8" });
        for (precision, genome) in [
            ("f32", serde_json::Value::Null),
            ("int8", serde_json::Value::Null),
            ("f32", own.clone()),
        ] {
            let run = dir.path().join(format!("{precision}-{}", genome.is_null()));
            for f in ["a", "b"] {
                for file in ["model.onnx", "model.int8.onnx"] {
                    write(&run.join("front").join(f).join(file), b"x").unwrap();
                }
            }
            FrontFile {
                run: [("precision".to_string(), precision.to_string())].into(),
                objectives: vec!["accuracy".into()],
                front: vec![model("a", 0.5, &genome), model("b", 0.7, &genome)],
            }
            .write(&run)
            .unwrap();
            let want = if precision == "int8" || genome == own {
                "model.int8.onnx"
            } else {
                "model.onnx"
            };
            assert_eq!(best_of_front(&run).unwrap(), run.join("front/b").join(want));
        }
    }

    /// A front as the report writes it (its ends' crowding distances infinite, `null` in
    /// the file) is found for its target; a front.json that cannot be read is named.
    #[test]
    fn the_newest_run_for_a_target_is_found_and_an_unreadable_front_named() {
        let runs = tempfile::tempdir().unwrap();
        let front = |target: &str| FrontFile {
            run: [("target".to_string(), target.to_string())].into(),
            objectives: vec!["accuracy".into()],
            front: vec![FrontModel {
                trial: 1,
                genome_id: "g".into(),
                genome: serde_json::Value::Null,
                metrics: Default::default(),
                folder: "front/01-g".into(),
                crowding_distance: f64::INFINITY,
                labels: Default::default(),
            }],
        };
        for (target, folder) in [("jetson", "j"), ("pixel", "p")] {
            std::fs::create_dir(runs.path().join(folder)).unwrap();
            front(target).write(&runs.path().join(folder)).unwrap();
        }
        let text = std::fs::read_to_string(runs.path().join("j/front.json")).unwrap();
        assert!(text.contains("\"crowding_distance\": null"), "{text}");
        assert_eq!(
            latest_run(runs.path(), "jetson").unwrap(),
            runs.path().join("j")
        );
        write(&runs.path().join("broken/front.json"), b"{").unwrap();
        let e = latest_run(runs.path(), "jetson-orin")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no search run for target jetson-orin")
                && e.contains("broken/front.json: not a front file"),
            "{e}"
        );
    }
}
