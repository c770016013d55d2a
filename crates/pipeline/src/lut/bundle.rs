//! Measuring many models per build: ONNX models -> one generated bundle -> one build ->
//! each member measured on its own, whole (`infer`) and its I/O alone (`io`).

use std::path::Path;

use kiln_codegen::program::BenchLine;
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_measure::report::fixed_input;
use kiln_measure::sim::{BundlePart, SimBundle, SimLimits};
use kiln_metric::Source;
use kiln_process::Cmd;

use super::OnDevice;
use crate::PipelineError;

/// Where and how a bundle's members are measured.
#[derive(Debug, Clone)]
pub enum MeasurePath {
    /// The wasm32 build under wasmtime: fuel (deterministic).
    Sim,
    /// The native build on this machine: wall clock, `runs` timed runs after `warmup`.
    Host {
        /// Untimed runs first.
        warmup: u32,
        /// Timed runs.
        runs: u32,
    },
    /// The device's own build over the deploy path (ssh/adb): wall clock there, under
    /// the profile's runner.
    Device(Box<OnDevice>),
}

/// One member's figures: the whole program (`infer`) and its input/output moves alone
/// (`io`). Sim: fuel in `median` (and `best`, equal). Host, device: microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemberCost {
    /// `infer`: median (host) or fuel (sim).
    pub infer_median: f64,
    /// `infer`: best run (host) or fuel (sim).
    pub infer_best: f64,
    /// `io`: median (host) or fuel (sim).
    pub io_median: f64,
    /// `io`: best run (host) or fuel (sim).
    pub io_best: f64,
}

impl MemberCost {
    /// The layers' own cost: `infer` - `io` (medians).
    pub fn ops(&self) -> f64 {
        (self.infer_median - self.io_median).max(0.0)
    }

    /// The layers' own best: `infer` - `io` (best runs).
    pub fn ops_best(&self) -> f64 {
        (self.infer_best - self.io_best).max(0.0)
    }
}

impl MeasurePath {
    /// The label of the figures this path measures.
    pub fn source(&self) -> Source {
        match self {
            MeasurePath::Sim => Source::Sim,
            MeasurePath::Host { .. } => Source::Host,
            MeasurePath::Device(_) => Source::Device,
        }
    }
}

/// Lowers `models` (name, ONNX bytes), writes them as one bundle crate in `crate_dir`,
/// builds it once for `path` into `target_dir` and measures every member, in order.
///
/// Errors: lowering (naming the model and node), code generation, the build, or a run.
pub fn measure_models(
    models: &[(String, Vec<u8>)],
    crate_dir: &Path,
    target_dir: &Path,
    path: &MeasurePath,
) -> Result<Vec<MemberCost>, PipelineError> {
    let mut graphs = Vec::with_capacity(models.len());
    for (name, onnx) in models {
        graphs.push(kiln_lower::lower_bytes(onnx, name, &Default::default())?);
    }
    let refs: Vec<&kiln_ir::Graph> = graphs.iter().collect();
    let generated =
        kiln_codegen::generate_bundle(&refs, crate_dir, &GenerateOptions::new("latency table"))?;
    match path {
        MeasurePath::Sim => {
            let wasm =
                kiln_codegen::build_bin(crate_dir, "kiln-bundle", BuildTarget::Wasm32, target_dir)?;
            let bundle = SimBundle::load(&wasm)?;
            let limits = SimLimits::default();
            generated
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let input = fixed_input(g.input_len);
                    let infer = bundle.run(i, &input, BundlePart::Infer, &limits)?.fuel as f64;
                    let io = bundle.run(i, &input, BundlePart::Io, &limits)?.fuel as f64;
                    Ok(MemberCost {
                        infer_median: infer,
                        infer_best: infer,
                        io_median: io,
                        io_best: io,
                    })
                })
                .collect()
        }
        MeasurePath::Device(on) => {
            let build = crate::build::build_target(on.triple).ok_or_else(|| {
                PipelineError::Invalid(format!("kiln cannot build {} programs", on.triple))
            })?;
            let program = kiln_codegen::build_bin(crate_dir, "kiln-bundle", build, target_dir)?;
            let lens: Vec<usize> = generated.iter().map(|g| g.input_len).collect();
            let work = target_dir.parent().unwrap_or(crate_dir);
            on.measure_members(&program, &lens, work)
        }
        &MeasurePath::Host { warmup, runs } => {
            let program =
                kiln_codegen::build_bin(crate_dir, "kiln-bundle", BuildTarget::Host, target_dir)?;
            generated
                .iter()
                .enumerate()
                .map(|(i, g)| {
                    let input = kiln_measure::host::encode_f32_le(&fixed_input(g.input_len));
                    // alternate the two so a slow spell of the machine hits both
                    let infer = host_bench(&program, i, false, warmup, runs, &input)?;
                    let io = host_bench(&program, i, true, warmup, runs, &input)?;
                    Ok(MemberCost {
                        infer_median: infer.p50_us,
                        infer_best: infer.min_us,
                        io_median: io.p50_us,
                        io_best: io.min_us,
                    })
                })
                .collect()
        }
    }
}

/// Builds each model alone, as the search builds a candidate (one generated crate, one
/// build for `path` into `target_dir`), and measures the whole program: fuel of one
/// simulated inference (`Sim`) or the median of the timed native runs in microseconds
/// (`Host`), on [`fixed_input`]; on a device, flashed and timed there
/// ([`OnDevice::measure_alone`], microseconds).
///
/// Errors: lowering, building or running a model (naming it).
pub fn measure_alone(
    models: &[(String, Vec<u8>)],
    work_dir: &Path,
    path: &MeasurePath,
) -> Result<Vec<f64>, PipelineError> {
    let crate_dir = work_dir.join(format!("alone-{}", std::process::id()));
    let target_dir = work_dir.join("target");
    let mut out = Vec::with_capacity(models.len());
    for (name, onnx) in models {
        let source = crate::ModelSource {
            onnx,
            name,
            crate_dir: &crate_dir,
            target_dir: &target_dir,
            input_shape: None,
        };
        let figure = match path {
            MeasurePath::Sim => {
                let built = crate::build_model(&source, &[kiln_target::Triple::Wasm32])?;
                let module = kiln_measure::sim::SimModule::load(built.wasm()?)?;
                module
                    .run(&fixed_input(built.input_len), &SimLimits::default())?
                    .fuel as f64
            }
            MeasurePath::Device(on) => on.measure_alone(&source, work_dir)?,
            &MeasurePath::Host { warmup, runs } => {
                let triple = kiln_target::Triple::host().ok_or_else(|| {
                    PipelineError::Invalid("this machine's triple is not one kiln builds".into())
                })?;
                let built = crate::build_model(&source, &[triple])?;
                let program = built.program(triple).ok_or_else(|| {
                    PipelineError::Invalid(format!("{name}: no native program was built"))
                })?;
                let runner =
                    kiln_measure::Runner::for_triple(triple).map_err(PipelineError::Invalid)?;
                kiln_measure::host::bench(
                    &runner,
                    program,
                    &fixed_input(built.input_len),
                    u64::from(warmup),
                    u64::from(runs),
                    std::time::Duration::from_secs(600),
                )?
                .p50
                .value
            }
        };
        out.push(figure);
    }
    Ok(out)
}

/// `kiln-bundle INDEX [--io] --bench --warmup W --runs N < input`, its bench line read.
fn host_bench(
    program: &Path,
    index: usize,
    io: bool,
    warmup: u32,
    runs: u32,
    input: &[u8],
) -> Result<BenchLine, PipelineError> {
    let mut cmd = Cmd::new(program.as_os_str()).arg(index.to_string());
    if io {
        cmd = cmd.arg("--io");
    }
    let cmd = cmd
        .args(["--bench", "--warmup"])
        .arg(warmup.to_string())
        .arg("--runs")
        .arg(runs.to_string());
    let failed = |message: String| {
        PipelineError::Invalid(format!("{} (member {index}): {message}", program.display()))
    };
    let out = kiln_process::run(
        &cmd,
        Some(input.to_vec()),
        std::time::Duration::from_secs(600),
    )
    .map_err(|e| failed(e.to_string()))?;
    if !out.success() {
        return Err(failed(format!(
            "exited {}: {}",
            out.status_text(),
            out.stderr_tail(10)
        )));
    }
    BenchLine::parse(&out.stdout_text(), "host").map_err(failed)
}
