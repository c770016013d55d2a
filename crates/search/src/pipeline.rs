//! The real evaluator: train (short budget) -> export ONNX -> lower ->
//! generate the crate -> build for wasm32 and the target's triple ->
//! measure (sizes, simulated latency per power mode, peak memory).
//!
//! With a [`SearchDevice`] the target build is also flashed to the device
//! and benchmarked there: latency p50/p95 and peak RSS labelled `device`.
//! Then the latency constraints (p50, p95, FPS) are judged on the device's
//! figures and `latency_ms` (the latency objective, the MnasNet reward) is
//! the device's p50; the simulated figures stay beside them as
//! `sim_latency_ms` and `sim_fps`. Size and memory constraints stay on the
//! build's file size and the simulated peak memory (the device's RSS
//! includes the process and any runner, so it is recorded, not judged).
//!
//! A trial's folder ends up holding `model.onnx`, `metrics.json` (training),
//! `crate/` (the generated crate, its builds in `crate/out/`),
//! `measure.json` (the power report) and, with a device, `input.bin`,
//! `expected.bin` (what the device's output is checked against) and
//! `device.json` (the device's bench line and where the model went).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use kiln_codegen::BuildTarget;
use kiln_data::Dataset;
use kiln_measure::power::{self, Footprint};
use kiln_measure::sim::{SimLimits, SimModule};
use kiln_measure::size;
use kiln_space::{Architecture, Genome, Space};
use kiln_target::Target;
use kiln_train::{Silent, TrainConfig};

use crate::constraints::{
    DEVICE_JUDGED, Violation, analytic_violations, device_violations, measured_violations,
};
use crate::device::SearchDevice;
use crate::objective::keys;
use crate::{EvalError, Evaluation, Evaluator, Figure, TrialSpec};

/// Train, build and measure genomes of one space for one target.
pub struct PipelineEvaluator {
    pub space: Space,
    pub target: Target,
    pub data: Arc<Dataset>,
    pub train: TrainConfig,
    pub sim_limits: SimLimits,
    /// Cargo target dirs for the generated crates, one per worker (two
    /// concurrent builds of package `kiln-model` in one dir would overwrite
    /// each other's artifacts).
    pub build_root: PathBuf,
    /// Measure every candidate on this device too.
    pub device: Option<SearchDevice>,
}

impl PipelineEvaluator {
    pub fn new(space: Space, target: Target, data: Arc<Dataset>, train: TrainConfig) -> Self {
        Self {
            space,
            target,
            data,
            train,
            sim_limits: SimLimits::default(),
            build_root: kiln_codegen::default_target_dir().join("search"),
            device: None,
        }
    }

    fn architecture(&self, genome: &Genome) -> Result<Architecture, String> {
        genome
            .validate(&self.space, "genome")
            .map_err(|e| e.to_string())?;
        kiln_train::architecture_for(&self.space, genome, &self.data).map_err(|e| e.to_string())
    }

    /// The build for the target's own triple, if it is not the wasm sim.
    fn program_target(&self) -> Option<BuildTarget> {
        match self.target.triple.as_str() {
            "aarch64-unknown-linux-musl" => Some(BuildTarget::Aarch64Musl),
            "x86_64-unknown-linux-gnu" => Some(BuildTarget::Host),
            _ => None,
        }
    }
}

fn write(path: PathBuf, bytes: &[u8]) -> Result<(), String> {
    std::fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Evaluator<Genome> for PipelineEvaluator {
    fn precheck(&self, genome: &Genome) -> Vec<Violation> {
        // A genome that does not fit the input is an evaluation error, not a
        // constraint: let `evaluate` record it as failed with the reason.
        let mut violations = match self.architecture(genome) {
            Ok(arch) => analytic_violations(&self.target, &arch.totals()),
            Err(_) => Vec::new(),
        };
        // The analytic latency bound comes from the profile's uncalibrated
        // sim model; with a device the device decides latency.
        if self.device.is_some() {
            violations.retain(|v| !DEVICE_JUDGED.contains(&v.constraint.as_str()));
        }
        violations
    }

    fn evaluate(&self, trial: &TrialSpec<Genome>) -> Result<Evaluation, EvalError> {
        let mut eval = Evaluation::default();
        let arch = self.architecture(&trial.point)?;
        let totals = arch.totals();
        eval.metrics.insert(
            "params".into(),
            Figure::new(totals.params as f64, "count", "predicted"),
        );
        eval.metrics.insert(
            "macs".into(),
            Figure::new(totals.macs as f64, "count", "predicted"),
        );
        write(
            trial.dir.join("genome.json"),
            trial.point.to_json().as_bytes(),
        )?;

        let t = Instant::now();
        let config = TrainConfig {
            seed: self.train.seed ^ trial.number,
            ..self.train.clone()
        };
        let trained = kiln_train::train(&arch, &trial.id, &self.data, &config, &mut Silent)
            .map_err(|e| format!("training: {e}"))?;
        eval.timings
            .insert("train_s".into(), t.elapsed().as_secs_f64());
        let m = &trained.metrics;
        let accuracy = m.validation_top1.unwrap_or(m.test_top1);
        let acc_source = "host";
        eval.metrics.insert(
            keys::ACCURACY.into(),
            Figure::new(accuracy, "fraction", acc_source),
        );
        eval.metrics.insert(
            keys::TEST_ACCURACY.into(),
            Figure::new(m.test_top1, "fraction", acc_source),
        );
        if let Ok(json) = serde_json::to_string_pretty(m) {
            write(trial.dir.join("metrics.json"), json.as_bytes())?;
        }

        let t = Instant::now();
        let onnx = kiln_train::export_onnx(&trained).map_err(|e| format!("ONNX export: {e}"))?;
        let onnx_path = trial.dir.join("model.onnx");
        write(onnx_path.clone(), &onnx)?;
        let source_name = onnx_path.display().to_string();
        let graph = kiln_lower::lower_bytes(&onnx, &source_name, &Default::default())
            .map_err(|e| format!("lowering: {e}"))?;
        let crate_dir = trial.dir.join("crate");
        let generated = kiln_codegen::generate(
            &graph,
            &crate_dir,
            &kiln_codegen::GenerateOptions::new(&source_name),
        )
        .map_err(|e| format!("code generation: {e}"))?;
        let target_dir = self.build_root.join(format!("worker-{}", trial.worker));
        let wasm = kiln_codegen::build(&crate_dir, BuildTarget::Wasm32, &target_dir)
            .map_err(|e| format!("wasm build: {e}"))?;
        let program = match self.program_target() {
            Some(bt) => Some(
                kiln_codegen::build(&crate_dir, bt, &target_dir)
                    .map_err(|e| format!("{} build: {e}", self.target.triple))?,
            ),
            None => None,
        };
        eval.timings
            .insert("build_s".into(), t.elapsed().as_secs_f64());

        let t = Instant::now();
        let arena = generated.plan.arena_bytes() as u64;
        let weights = generated.weight_bytes as u64;
        let deployed = program.as_ref().unwrap_or(&wasm);
        let deployed_size =
            size::model_size(deployed, Some(weights), Some(arena)).map_err(|e| e.to_string())?;
        let wasm_size =
            size::model_size(&wasm, Some(weights), Some(arena)).map_err(|e| e.to_string())?;
        let module = SimModule::load(&wasm).map_err(|e| format!("wasm sim: {e}"))?;
        // Fuel does not depend on the values (no data-dependent branches in the
        // kernels); any fixed input will do.
        let input: Vec<f32> = (0..generated.input_len)
            .map(|i| ((i * 37 % 255) as f32) / 255.0)
            .collect();
        let sim = module
            .run(&input, &self.sim_limits)
            .map_err(|e| format!("wasm sim run: {e}"))?;
        let report = power::evaluate(
            &self.target,
            sim.fuel,
            Footprint {
                binary_bytes: Some(deployed_size.file),
                peak_memory_bytes: Some(sim.peak_memory_metric()),
            },
        );
        eval.timings
            .insert("measure_s".into(), t.elapsed().as_secs_f64());

        if let Some(mode) = report
            .chosen_mode
            .as_ref()
            .and_then(|c| report.modes.iter().find(|m| &m.mode == c))
            .or_else(|| report.modes.first())
        {
            eval.metrics
                .insert(keys::LATENCY_MS.into(), mode.latency_p50.into());
            eval.metrics
                .insert(keys::LATENCY_P95_MS.into(), mode.latency_p95.into());
            eval.metrics.insert("fps".into(), mode.fps.into());
            eval.metrics
                .insert(keys::SIM_LATENCY_MS.into(), mode.latency_p50.into());
            eval.metrics.insert("sim_fps".into(), mode.fps.into());
            eval.metrics.insert("power_w".into(), mode.watts.into());
            eval.metrics
                .insert("energy_mj".into(), mode.energy_per_inference.into());
        }

        let on_device = match (&self.device, &program) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(EvalError::Stop(format!(
                    "target {} has no native build ({}) to put on a device",
                    self.target.name, self.target.triple
                )));
            }
            (Some(device), Some(program)) => {
                let t = Instant::now();
                let input_path = trial.dir.join("input.bin");
                let expected_path = trial.dir.join("expected.bin");
                write(
                    input_path.clone(),
                    &kiln_measure::host::encode_f32_le(&input),
                )?;
                write(
                    expected_path.clone(),
                    &kiln_measure::host::encode_f32_le(&sim.output),
                )?;
                let flashed = device.measure(
                    trial.worker,
                    &kiln_deploy::Bundle {
                        program: program.clone(),
                        input: input_path,
                        expected: expected_path,
                    },
                )?;
                eval.timings
                    .insert("device_s".into(), t.elapsed().as_secs_f64());
                let bench = flashed
                    .bench
                    .clone()
                    .ok_or("the device returned no benchmark figures")?;
                let record = serde_json::json!({
                    "source": "device",
                    "device": flashed.device,
                    "dir": flashed.dir,
                    "version": flashed.version,
                    "runner": device.bench.runner,
                    "power_mode": device.power_mode,
                    "bench": bench,
                });
                if let Ok(json) = serde_json::to_string_pretty(&record) {
                    write(trial.dir.join("device.json"), json.as_bytes())?;
                }
                Some(bench)
            }
        };
        if let Some(b) = &on_device {
            let p50_ms = b.p50_us / 1000.0;
            eval.metrics
                .insert(keys::LATENCY_MS.into(), Figure::new(p50_ms, "ms", "device"));
            eval.metrics.insert(
                keys::LATENCY_P95_MS.into(),
                Figure::new(b.p95_us / 1000.0, "ms", "device"),
            );
            if p50_ms > 0.0 {
                eval.metrics
                    .insert("fps".into(), Figure::new(1000.0 / p50_ms, "FPS", "device"));
            }
            if let Some(kib) = b.peak_rss_kib {
                eval.metrics.insert(
                    "device_peak_rss_bytes".into(),
                    Figure::new(kib as f64 * 1024.0, "B", "device"),
                );
            }
        }
        eval.metrics
            .insert(keys::SIZE_BYTES.into(), deployed_size.file.into());
        eval.metrics
            .insert("wasm_size_bytes".into(), wasm_size.file.into());
        eval.metrics.insert(
            keys::PEAK_MEMORY_BYTES.into(),
            sim.peak_memory_metric().into(),
        );
        eval.metrics.insert("fuel".into(), sim.fuel_metric().into());
        eval.metrics.insert(
            "arena_bytes".into(),
            Figure::new(arena as f64, "B", "predicted"),
        );
        eval.metrics.insert(
            "weights_bytes".into(),
            Figure::new(weights as f64, "B", "predicted"),
        );
        if let Ok(json) = serde_json::to_string_pretty(&report) {
            write(trial.dir.join("measure.json"), json.as_bytes())?;
        }
        eval.violations = match &on_device {
            Some(b) => {
                device_violations(&self.target, &report, b.p50_us / 1000.0, b.p95_us / 1000.0)
            }
            None => measured_violations(&report),
        };
        Ok(eval)
    }
}
