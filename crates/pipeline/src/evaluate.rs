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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use kiln_codegen::program::BenchLine;
use kiln_data::Dataset;
use kiln_latency::LatencyTable;
use kiln_measure::power::{self, Footprint};
use kiln_measure::sim::{SimLimits, SimModule};
use kiln_measure::size;
use kiln_metric::{Metric, Source, Unit};
use kiln_search::constraints::{Violation, analytic_violations_at};
use kiln_search::objective::keys;
use kiln_search::{EvalError, Evaluation, Evaluator, TrialSpec};
use kiln_space::{Architecture, Genome, Space};
use kiln_target::{Target, Triple};
use kiln_train::{Silent, TrainConfig};

use crate::build::{BuiltModel, ModelSource, build_model};
use crate::finetune_store::StoredFineTune;
use crate::inherit::SupernetJudge;
use crate::judge::{device_latency, violations};
use crate::precision::Precision;
use crate::search_device::SearchDevice;
use crate::supernets::Supernets;

/// Train, build and measure genomes of one space for one target.
pub struct PipelineEvaluator {
    /// The space the genomes come from.
    pub space: Space,
    /// The device profile candidates are built and judged for.
    pub target: Target,
    /// The data every candidate trains on and is ranked on (validation split).
    pub data: Arc<Dataset>,
    /// Training settings; each trial's seed is this seed XOR its number.
    pub train: TrainConfig,
    /// Fuel and memory limits of the simulated inference.
    pub sim_limits: SimLimits,
    /// Cargo target dirs for the generated crates, one per worker (two
    /// concurrent builds of package `kiln-model` in one dir would overwrite
    /// each other's artifacts).
    pub build_root: PathBuf,
    /// Measure every candidate on this device too.
    pub device: Option<SearchDevice>,
    /// A latency lookup table for this space, input and target: the precheck rejects a
    /// genome whose predicted latency breaks a limit by more than the table's measured
    /// error, and every trial records the prediction (`predicted_latency_ms`) beside the
    /// measurement.
    pub latency_table: Option<Arc<LatencyTable>>,
    /// Inherit each candidate's weights and accuracy from this supernet (or the part of
    /// this few-shot split that holds it) instead of training it (it is still built and
    /// measured).
    pub supernet: Option<Arc<Supernets>>,
    /// With a supernet and a latency table: judge candidates only (inherited accuracy,
    /// latency predicted by the table, size and memory analytic bounds, all labelled),
    /// build nothing; the search then builds and measures its front.
    pub judge_only: bool,
    /// With a supernet: train each candidate this many epochs from its inherited weights
    /// instead of judging it (0: judge only); the search's last phase sets it for the
    /// front (see [`crate::finetune`]).
    pub fine_tune_epochs: usize,
    /// [`Precision::Int8`]: every built candidate is quantized first (see
    /// [`crate::precision`]) and its accuracy measured through the int8 build. A genome's
    /// own precision (its space lists `precision`) wins over this search-wide one.
    pub precision: Precision,
    /// The data at each candidate's resolution, when the space chooses it.
    per_resolution: crate::resolution::PerResolution,
    /// Fine-tunings trained ahead ([`Self::fine_tune_ahead`]) that the supernet's store
    /// could not keep, by genome id, with why: their evaluations take them from here
    /// instead of training them again.
    unstored: Mutex<HashMap<String, (StoredFineTune, String)>>,
}

impl PipelineEvaluator {
    /// An evaluator with default sim limits, building under
    /// `$CARGO_TARGET_DIR/kiln-models/search`, with no device.
    pub fn new(space: Space, target: Target, data: Arc<Dataset>, train: TrainConfig) -> Self {
        Self {
            space,
            target,
            data,
            train,
            sim_limits: SimLimits::default(),
            build_root: kiln_codegen::default_target_dir().join("search"),
            device: None,
            latency_table: None,
            supernet: None,
            judge_only: false,
            fine_tune_epochs: 0,
            precision: Precision::F32,
            per_resolution: Default::default(),
            unstored: Mutex::default(),
        }
    }

    /// The table's prediction for `arch` (at its genome's precision: an int8 genome sums the
    /// table's int8 entries); `None` without a table or when it cannot predict it (a table
    /// without int8 entries for an int8 genome; then the MAC bound stays the judge of latency
    /// before training).
    fn table_prediction(&self, arch: &Architecture) -> Option<kiln_latency::LatencyPrecheck> {
        let table = self.latency_table.as_ref()?;
        kiln_latency::precheck(arch, table, &self.target).ok()
    }

    /// The table's predicted latency of `genome` for the target, ms (`predicted`), when it
    /// meets the target's latency limits by the table (its error margin included); `None`
    /// without a table, for a genome outside the space, one the table cannot predict, or
    /// one the prediction says breaks a limit.
    pub(crate) fn feasible_latency_ms(&self, genome: &Genome) -> Option<f64> {
        let arch = self.architecture(genome).ok()?;
        let p = self.table_prediction(&arch)?;
        (p.violations.is_empty() && p.latency.value.is_finite()).then_some(p.latency.value)
    }

    /// The supernet (of a split, the part that holds `genome`) and training settings of the
    /// fine-tuning of `genome` (id `genome_id`), when this evaluator fine-tunes (a supernet
    /// and `fine_tune_epochs > 0`) and a supernet holds the genome.
    fn fine_tuning(
        &self,
        genome: &Genome,
        genome_id: &str,
    ) -> Option<(&SupernetJudge, TrainConfig)> {
        let judge = self.supernet.as_deref()?.for_genome(genome).ok()?;
        let seed = self.train.seed ^ crate::finetune::genome_seed(genome_id);
        (self.fine_tune_epochs > 0).then(|| {
            let config =
                crate::finetune::fine_tune_config(&self.train, self.fine_tune_epochs, seed);
            (judge, config)
        })
    }

    /// When the fine-tuning of `genome` (id `genome_id`) with this evaluator's settings was
    /// stored in its supernet's folder (by this search or another); `None` when it was not,
    /// or when this evaluator does not fine-tune.
    pub(crate) fn fine_tune_stored_at(
        &self,
        genome: &Genome,
        genome_id: &str,
    ) -> Option<std::time::SystemTime> {
        let (judge, config) = self.fine_tuning(genome, genome_id)?;
        let key = judge.fine_tune_key(genome_id, &config);
        crate::finetune_store::stored_at(&judge.dir, &key)
    }

    /// Fine-tunes `genome` (id `genome_id`, one the store lacks: the caller checks
    /// [`Self::fine_tune_stored_at`]) on `threads` threads into its supernet's store, where
    /// its evaluation then finds it (or in memory, when the store cannot keep it); nothing
    /// when this evaluator does not fine-tune.
    ///
    /// Errors: the message for the fine-tuning's failure.
    pub(crate) fn fine_tune_ahead(
        &self,
        genome: &Genome,
        genome_id: &str,
        threads: usize,
    ) -> Result<(), String> {
        let Some((judge, config)) = self.fine_tuning(genome, genome_id) else {
            return Ok(());
        };
        let arch = self.architecture(genome)?;
        let data = self.data_for(genome);
        let (entry, unkept) = crate::finetune::train_and_store(
            judge, &arch, genome, genome_id, &data, &config, threads,
        )?;
        if let (Some(why), Ok(mut unstored)) = (unkept, self.unstored.lock()) {
            unstored.insert(genome_id.to_string(), (entry, why));
        }
        Ok(())
    }

    /// The data `genome` trains and is measured on: [`Self::data`], resized to the genome's
    /// resolution when its space chooses one ([`crate::resolution`]).
    fn data_for(&self, genome: &Genome) -> Arc<Dataset> {
        self.per_resolution.data_for(&self.data, genome)
    }

    fn architecture(&self, genome: &Genome) -> Result<Architecture, String> {
        genome
            .validate(&self.space, "genome")
            .map_err(|e| e.to_string())?;
        let mut arch = kiln_train::architecture_for(&self.space, genome, &self.data)
            .map_err(|e| e.to_string())?;
        // A search-wide `--precision int8` builds every genome in int8, so its latency
        // table keys (and line) are the int8 ones, not the f32 ones the genome alone names.
        arch.precision = genome.precision_or(self.precision);
        Ok(arch)
    }
}

/// Records a trained network in `eval` ([`record_metrics`]), writes its `metrics.json`
/// into `dir` and returns its ONNX model.
///
/// Errors: the message for the trial's failure (a file or the export).
pub(crate) fn record_trained(
    trained: &kiln_train::Trained,
    kind: String,
    dir: &Path,
    eval: &mut Evaluation,
) -> Result<Vec<u8>, String> {
    record_metrics(&trained.metrics, kind, dir, eval)?;
    kiln_train::export_onnx(trained).map_err(|e| format!("ONNX export: {e}"))
}

/// Records a training run's figures in `eval` (validation top-1 as the accuracy ranked
/// by, test top-1, both `host` fractions, and what the accuracy is: `kind`) and writes
/// them as `metrics.json` into `dir`.
///
/// Errors: the message for the trial's failure (the file).
pub(crate) fn record_metrics(
    m: &kiln_train::Metrics,
    kind: String,
    dir: &Path,
    eval: &mut Evaluation,
) -> Result<(), String> {
    let fraction = |v: f64| Metric::new(v, Unit::Fraction, Source::Host);
    eval.metrics.insert(
        keys::ACCURACY.into(),
        fraction(m.validation_top1.unwrap_or(m.test_top1)),
    );
    eval.metrics
        .insert(keys::TEST_ACCURACY.into(), fraction(m.test_top1));
    eval.labels
        .insert(kiln_search::evaluator::ACCURACY_KIND.into(), kind);
    if let Ok(json) = serde_json::to_string_pretty(m) {
        write(&dir.join("metrics.json"), json.as_bytes())?;
    }
    Ok(())
}

/// [`crate::files::write`] with the error as a trial's failure text.
fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    crate::files::write(path, bytes).map_err(|e| format!("cannot write {e}"))
}

impl Evaluator<Genome> for PipelineEvaluator {
    fn precheck(&self, genome: &Genome) -> Vec<Violation> {
        // A genome that does not fit the input is an evaluation error, not a
        // constraint: let `evaluate` record it as failed with the reason.
        let Ok(arch) = self.architecture(genome) else {
            return Vec::new();
        };
        let bytes = genome.precision_or(self.precision).bytes_per_value();
        let mut violations = analytic_violations_at(&self.target, &arch.totals(), bytes);
        // The analytic latency bound comes from the profile's uncalibrated
        // sim model; with a device the device decides latency.
        if self.device.is_some() {
            violations.retain(|v| !v.constraint.is_latency());
        } else if let Some(p) = self.table_prediction(&arch) {
            // The table is the tighter judge of latency, its error margin included.
            violations.retain(|v| !v.constraint.is_latency());
            violations.extend(p.violations);
        }
        violations
    }

    fn evaluate(&self, trial: &TrialSpec<Genome>) -> Result<Evaluation, EvalError> {
        let mut eval = Evaluation::default();
        let data = self.data_for(&trial.point);
        let onnx = self.train_and_export(trial, &mut eval)?;
        if self.judge_only {
            self.predicted_figures(trial, &mut eval)?;
            return Ok(eval);
        }

        let t = Instant::now();
        let precision = trial.point.precision_or(self.precision);
        let (onnx, file) = match precision {
            Precision::F32 => (onnx, "model.onnx"),
            Precision::Int8 => {
                let int8 = crate::precision::quantize_trial(&onnx, &data, &trial.dir, &mut eval)?;
                eval.timings
                    .insert("quantize_s".into(), t.elapsed().as_secs_f64());
                (int8, "model.int8.onnx")
            }
        };
        let t = Instant::now();
        let onnx_path = trial.dir.join(file);
        let name = onnx_path.display().to_string();
        let target_dir = self.build_root.join(format!("worker-{}", trial.worker));
        let built = build_model(
            &ModelSource {
                onnx: &onnx,
                name: &name,
                crate_dir: &trial.dir.join("crate"),
                target_dir: &target_dir,
                input_shape: None,
            },
            &[Triple::Wasm32, self.target.triple],
        )
        .map_err(|e| e.to_string())?;
        eval.timings
            .insert("build_s".into(), t.elapsed().as_secs_f64());
        self.measure(trial, &built, &mut eval)?;
        if precision == Precision::Int8 {
            let (t, wasm) = (Instant::now(), built.wasm().map_err(|e| e.to_string())?);
            crate::precision::measure_int8_accuracy(wasm, &data, &self.sim_limits, &mut eval)?;
            eval.timings
                .insert("int8_accuracy_s".into(), t.elapsed().as_secs_f64());
        }
        Ok(eval)
    }
}

impl PipelineEvaluator {
    /// Judge-only figures: the table's latency (p50 = p95, FPS) at the precheck's power
    /// mode and the analytic size and memory bounds, all `predicted`; the trial is
    /// labelled so the search measures it later if it reaches the front.
    fn predicted_figures(
        &self,
        trial: &TrialSpec<Genome>,
        eval: &mut Evaluation,
    ) -> Result<(), EvalError> {
        let table = self
            .latency_table
            .as_ref()
            .ok_or("judging without building needs a latency table")?;
        let arch = self.architecture(&trial.point)?;
        let p = kiln_latency::precheck(&arch, table, &self.target).map_err(|e| e.to_string())?;
        let totals = arch.totals();
        let bound = |v: f64, u| Metric::new(v, u, Source::Predicted);
        let m = &mut eval.metrics;
        m.insert(keys::LATENCY_MS.into(), p.latency);
        m.insert(keys::LATENCY_P95_MS.into(), p.latency);
        if p.latency.value > 0.0 {
            m.insert(
                "fps".into(),
                bound(1000.0 / p.latency.value, Unit::FramesPerSecond),
            );
        }
        // size and memory: the analytic lower bounds the precheck judges
        let bytes = trial.point.precision_or(self.precision).bytes_per_value();
        let bounds = kiln_search::constraints::analytic_bounds_at(&self.target, &totals, bytes);
        if let Some(size) = bounds.size_bytes {
            m.insert(keys::SIZE_BYTES.into(), size);
        }
        if let Some(memory) = bounds.peak_memory_bytes {
            m.insert(keys::PEAK_MEMORY_BYTES.into(), memory);
        }
        eval.violations = p.violations;
        eval.labels.insert(
            kiln_search::evaluator::FIGURES.into(),
            crate::confirm::PREDICTED_ONLY.into(),
        );
        if trial.point.precision_or(self.precision) == Precision::Int8 {
            // The supernet judges the f32 sub-network; the int8 accuracy needs the int8 build.
            let kind = eval
                .labels
                .entry(kiln_search::evaluator::ACCURACY_KIND.into())
                .or_default();
            kind.push_str(
                "; of the f32 network: this genome is int8, its int8 accuracy is measured \
                 through its int8 build if it reaches the front",
            );
        }
        Ok(())
    }

    /// Trains the trial's network and writes genome.json, metrics.json and
    /// model.onnx into its folder; records params, MACs (`predicted`) and
    /// validation/test accuracy (`host`, trained from scratch).
    fn train_and_export(
        &self,
        trial: &TrialSpec<Genome>,
        eval: &mut Evaluation,
    ) -> Result<Vec<u8>, EvalError> {
        let arch = self.architecture(&trial.point)?;
        let totals = arch.totals();
        let count = |v: u64| Metric::new(v as f64, Unit::Count, Source::Predicted);
        eval.metrics.insert("params".into(), count(totals.params));
        eval.metrics.insert("macs".into(), count(totals.macs));
        if let Some(p) = self.table_prediction(&arch) {
            eval.metrics
                .insert(keys::PREDICTED_LATENCY_MS.into(), p.latency);
        }
        write(
            &trial.dir.join("genome.json"),
            trial.point.to_json().as_bytes(),
        )?;
        if let Some((judge, config)) = self.fine_tuning(&trial.point, &trial.id) {
            let data = self.data_for(&trial.point);
            let ahead = self
                .unstored
                .lock()
                .ok()
                .and_then(|mut u| u.remove(&trial.id));
            let onnx =
                crate::finetune::fine_tune_into(judge, &arch, trial, &data, &config, ahead, eval)?;
            write(&trial.dir.join("model.onnx"), &onnx)?;
            return Ok(onnx);
        }
        if let Some(supernets) = &self.supernet {
            let export = !self.judge_only;
            let judge = supernets
                .for_genome(&trial.point)
                .map_err(|e| e.to_string())?;
            let onnx = judge
                .judge_into(&trial.point, &self.data_for(&trial.point), eval, export)?
                .unwrap_or_default();
            if export {
                write(&trial.dir.join("model.onnx"), &onnx)?;
            }
            return Ok(onnx);
        }

        let t = Instant::now();
        let config = TrainConfig {
            seed: self.train.seed ^ trial.number,
            ..self.train.clone()
        };
        let data = self.data_for(&trial.point);
        let trained = kiln_train::train(&arch, &trial.id, &data, &config, &mut Silent)
            .map_err(|e| format!("training: {e}"))?;
        eval.timings
            .insert("train_s".into(), t.elapsed().as_secs_f64());
        let epochs = kiln_onnx::metadata::epochs_in_words(config.epochs);
        let kind = format!("trained from scratch ({epochs})");
        let onnx = record_trained(&trained, kind, &trial.dir, eval)?;
        write(&trial.dir.join("model.onnx"), &onnx)?;
        Ok(onnx)
    }

    /// Sizes, the simulated run, the power report, the device run if any,
    /// and the constraints judged.
    fn measure(
        &self,
        trial: &TrialSpec<Genome>,
        built: &BuiltModel,
        eval: &mut Evaluation,
    ) -> Result<(), EvalError> {
        let t = Instant::now();
        let (weights, arena) = (Some(built.weight_bytes), Some(built.arena_bytes));
        let program = built.program(self.target.triple);
        let wasm = built.wasm().map_err(|e| e.to_string())?;
        let deployed = program.unwrap_or(wasm);
        let deployed_size =
            size::model_size(deployed, weights, arena).map_err(|e| e.to_string())?;
        let wasm_size = size::model_size(wasm, weights, arena).map_err(|e| e.to_string())?;
        let module = SimModule::load(wasm).map_err(|e| format!("wasm sim: {e}"))?;
        // Fuel does not depend on the values (no data-dependent branches in the
        // kernels); any fixed input will do.
        let input: Vec<f32> = (0..built.input_len)
            .map(|i| ((i * 37 % 255) as f32) / 255.0)
            .collect();
        let sim = module
            .run(&input, &self.sim_limits)
            .map_err(|e| format!("wasm sim run: {e}"))?;
        let footprint = Footprint {
            binary_bytes: Some(deployed_size.file),
            peak_memory_bytes: Some(sim.peak_memory_metric()),
        };
        let report = power::evaluate(&self.target, sim.fuel, footprint);
        eval.timings
            .insert("measure_s".into(), t.elapsed().as_secs_f64());

        if let Some(mode) = report.chosen_or_first() {
            let m = &mut eval.metrics;
            m.insert(keys::LATENCY_MS.into(), mode.latency_p50);
            m.insert(keys::LATENCY_P95_MS.into(), mode.latency_p95);
            m.insert("fps".into(), mode.fps);
            m.insert(keys::SIM_LATENCY_MS.into(), mode.latency_p50);
            m.insert("sim_fps".into(), mode.fps);
            m.insert("power_w".into(), mode.watts);
            m.insert("energy_mj".into(), mode.energy_per_inference);
        }
        let on_device = match &self.device {
            None => None,
            Some(device) => {
                let program = program.ok_or_else(|| {
                    EvalError::Stop(format!(
                        "target {} has no native build ({}) to put on a device",
                        self.target.name, self.target.triple
                    ))
                })?;
                Some(self.run_on_device(device, trial, program, &input, &sim.output, eval)?)
            }
        };
        if let Some(b) = &on_device {
            let (p50, p95, fps) = device_latency(b);
            let m = &mut eval.metrics;
            m.insert(keys::LATENCY_MS.into(), p50);
            m.insert(keys::LATENCY_P95_MS.into(), p95);
            if let Some(fps) = fps {
                m.insert("fps".into(), fps);
            }
            if let Some(kib) = b.peak_rss_kib {
                m.insert(
                    "device_peak_rss_bytes".into(),
                    Metric::new(kib as f64 * 1024.0, Unit::Bytes, Source::Device),
                );
            }
        }
        let m = &mut eval.metrics;
        m.insert(keys::SIZE_BYTES.into(), deployed_size.file);
        m.insert("wasm_size_bytes".into(), wasm_size.file);
        m.insert(keys::PEAK_MEMORY_BYTES.into(), sim.peak_memory_metric());
        m.insert("fuel".into(), sim.fuel_metric());
        let planned = |v: u64| Metric::new(v as f64, Unit::Bytes, Source::Predicted);
        m.insert("arena_bytes".into(), planned(built.arena_bytes));
        m.insert("weights_bytes".into(), planned(built.weight_bytes));
        if let Ok(json) = serde_json::to_string_pretty(&report) {
            write(&trial.dir.join("measure.json"), json.as_bytes())?;
        }
        eval.violations = violations(&self.target, &report, &footprint, on_device.as_ref());
        Ok(())
    }

    /// Flashes the program with its input and the simulation's output to
    /// the worker's folder on the device, benchmarks it there and writes
    /// `device.json` into the trial's folder.
    fn run_on_device(
        &self,
        device: &SearchDevice,
        trial: &TrialSpec<Genome>,
        program: &Path,
        input: &[f32],
        expected: &[f32],
        eval: &mut Evaluation,
    ) -> Result<BenchLine, EvalError> {
        let t = Instant::now();
        let input_path = trial.dir.join("input.bin");
        let expected_path = trial.dir.join("expected.bin");
        write(&input_path, &kiln_measure::host::encode_f32_le(input))?;
        write(&expected_path, &kiln_measure::host::encode_f32_le(expected))?;
        let flashed = device.measure(
            trial.worker,
            &kiln_deploy::Bundle {
                program: program.to_path_buf(),
                input: input_path,
                expected: expected_path,
            },
        )?;
        eval.timings
            .insert("device_s".into(), t.elapsed().as_secs_f64());
        let on = kiln_search::evaluator::MEASURED_ON;
        eval.labels.insert(on.into(), flashed.device.clone());
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
            write(&trial.dir.join("device.json"), json.as_bytes())?;
        }
        Ok(bench)
    }
}
