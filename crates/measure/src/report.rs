//! One model measured for one device profile: sizes, memory, simulated
//! latency per power mode, host (or emulated) timings, an output agreement
//! check between builds, and the pass/fail line per constraint.
//!
//! This module takes built artifacts; building them is the toolchain's job
//! (kiln-codegen).

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use kiln_target::{Target, Triple};

use crate::host::{self, HostTiming};
use crate::power::{self, Footprint, PowerReport};
use crate::sim::{SimLimits, SimModule};
use crate::size::{self, ModelSize};
use crate::{MeasureError, Runner};
use crate::{Metric, Unit};

/// Largest absolute difference accepted between the outputs of two builds
/// of the same model (the wasm sim and a native or emulated program). Tighter
/// than the device program's own `--expect` check,
/// [`kiln_codegen::program::EXPECT_TOLERANCE`] (1e-4).
pub const OUTPUT_TOLERANCE: f32 = 1e-5;

/// The built forms of one generated model, and what the compiler knows of it.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The wasm32 cdylib (always needed: it is the simulated device).
    pub wasm: PathBuf,
    /// The program for the target's triple when it is not wasm32 (an
    /// aarch64 musl or host binary).
    pub program: Option<PathBuf>,
    /// Size of the generated crate's `weights.bin`, bytes.
    pub weight_bytes: u64,
    /// The planned arena size, bytes.
    pub arena_bytes: u64,
    /// Number of f32 input values (the NCHW input tensor's length).
    pub input_len: usize,
    /// Number of f32 output values the program must write.
    pub output_len: usize,
}

/// What to run besides the simulation.
#[derive(Debug, Clone)]
pub struct MeasureOptions {
    /// Fuel, memory and time limits of the simulated run.
    pub sim_limits: SimLimits,
    /// Bench-mode warm-up runs of the program (native or emulated); default
    /// 5. Under an emulator at most 1: see [`EMULATED_TIMING_BUDGET`].
    pub warmup: u64,
    /// Bench-mode timed runs; default 30; `0` skips timing. Under an
    /// emulator an upper bound: see [`EMULATED_TIMING_BUDGET`].
    pub runs: u64,
}

/// About how long the timing of an emulated program may take. Emulated times
/// say nothing about the device, so they get a few runs within this budget
/// (at least 3, at most the runs asked for, one warm-up) instead of a
/// device-sized run count; the report states the counts used.
pub const EMULATED_TIMING_BUDGET: Duration = Duration::from_secs(4);

/// Warm-up and timed runs for an emulated program one run of which took
/// `one_run`.
fn emulated_counts(warmup: u64, runs: u64, one_run: Duration) -> (u64, u64) {
    let per_run = one_run.as_secs_f64().max(1e-6);
    let fit = (EMULATED_TIMING_BUDGET.as_secs_f64() / per_run) as u64;
    let warmup = warmup.min(1);
    (
        warmup,
        fit.saturating_sub(warmup).clamp(3, runs.max(3)).min(runs),
    )
}

/// The last timing taken, so that profiles sharing a triple (jetson and pixel
/// both run the aarch64 program) time it once per process.
struct TimingMemo {
    program: PathBuf,
    stamp: (u64, Option<SystemTime>),
    runner: String,
    asked: (u64, u64),
    input_len: usize,
    timing: HostTiming,
}

static LAST_TIMING: Mutex<Option<TimingMemo>> = Mutex::new(None);

/// Size and modification time of `program`: a rebuilt program changes both
/// or at least the time.
fn file_stamp(program: &Path) -> (u64, Option<SystemTime>) {
    std::fs::metadata(program)
        .map(|m| (m.len(), m.modified().ok()))
        .unwrap_or((0, None))
}

/// `host::bench` with the `asked` warm-up and runs (an emulated program's
/// counts fitted to one run taking `one_run`), reusing the previous result for
/// the same unchanged program, runner, asked counts and input length.
fn timed(
    runner: &Runner,
    program: &Path,
    input: &[f32],
    asked: (u64, u64),
    one_run: Duration,
) -> Result<HostTiming, MeasureError> {
    let stamp = file_stamp(program);
    let same = |m: &TimingMemo| {
        m.program == program
            && m.stamp == stamp
            && stamp.1.is_some()
            && m.runner == runner.name()
            && m.asked == asked
            && m.input_len == input.len()
    };
    let last = || {
        LAST_TIMING
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    };
    if let Some(memo) = last().as_ref().filter(|m| same(m)) {
        return Ok(memo.timing.clone());
    }
    let (warmup, runs) = if runner.is_emulated() {
        emulated_counts(asked.0, asked.1, one_run)
    } else {
        asked
    };
    // Not holding the memo while timing: other threads may time their own
    // programs meanwhile.
    let timing = host::bench(
        runner,
        program,
        input,
        warmup,
        runs,
        host::DEFAULT_BENCH_TIMEOUT,
    )?;
    *last() = Some(TimingMemo {
        program: program.to_path_buf(),
        stamp,
        runner: runner.name(),
        asked,
        input_len: input.len(),
        timing: timing.clone(),
    });
    Ok(timing)
}

impl Default for MeasureOptions {
    fn default() -> Self {
        Self {
            sim_limits: SimLimits::default(),
            warmup: 5,
            runs: 30,
        }
    }
}

/// Agreement of two builds' outputs on the same input, checked here (the
/// program's own `--expect` check on a device is
/// [`kiln_codegen::program::ProgramOutputCheck`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BuildAgreement {
    /// What was compared, e.g. `aarch64-unknown-linux-musl program under
    /// qemu-aarch64 vs wasm sim`.
    pub compared: String,
    /// Largest absolute difference between the two outputs.
    pub max_abs_diff: f32,
    /// [`OUTPUT_TOLERANCE`].
    pub tolerance: f32,
    /// Within the tolerance and of equal length. A NaN difference is
    /// skipped by the maximum, so it does not fail the check.
    pub passed: bool,
}

/// Everything measured for one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetReport {
    /// The profile's name.
    pub target: String,
    /// The profile's triple.
    pub triple: Triple,
    /// Sizes of the binary deployed to the target (the wasm file for
    /// wasm32), bytes, `host`.
    pub size: ModelSize,
    /// Sizes of the wasm build when the target deploys something else.
    pub wasm_size: Option<ModelSize>,
    /// Fuel of one simulated inference (unit `fuel`, `sim`).
    pub fuel: Metric,
    /// wasm peak linear memory (stack, statics, weights, arena), bytes,
    /// `sim`; the figure judged against `max_peak_memory_mb`.
    pub sim_peak_memory: Metric,
    /// Per-mode simulated latency, FPS, energy; constraint checks.
    pub power: PowerReport,
    /// Wall-clock timings of the program here (possibly emulated), us,
    /// `host`; `None` for wasm32 targets or when `runs` is 0.
    pub host_timing: Option<HostTiming>,
    /// The native or emulated program's output against the wasm sim's;
    /// `None` for wasm32 targets.
    pub output_check: Option<BuildAgreement>,
}

impl TargetReport {
    /// Every constraint measured and met, and the builds agree.
    pub fn passes(&self) -> bool {
        self.power.passes() && self.output_check.as_ref().is_none_or(|c| c.passed)
    }
}

/// A fixed, deterministic input for `len` values in [-1, 1) (xorshift32 from
/// a fixed seed), the same on every platform.
pub fn fixed_input(len: usize) -> Vec<f32> {
    let mut state: u32 = 0x9E37_79B9;
    (0..len)
        .map(|_| {
            // xorshift32: deterministic on every platform.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 8) as f32 / (1u32 << 23) as f32 - 1.0
        })
        .collect()
}

/// Measures `artifacts` for `target` on [`fixed_input`]: sizes of the wasm
/// build and of the target's program, one simulated run (fuel, peak linear
/// memory), and for a non-wasm triple one run of the program (native or under
/// its emulator) compared with the sim's output, then bench-mode timings.
/// [`power::evaluate`] turns the fuel into per-mode figures and judges the
/// constraints, with the deployed file's size and the sim's peak memory.
///
/// Timings of an unchanged program with the same runner, counts and input
/// length are reused from the previous call in this process.
///
/// Errors: [`MeasureError::Size`] and [`MeasureError::Sim`] from the wasm
/// build; [`MeasureError::Artifacts`] when no program was given or the triple
/// cannot run here; the errors of [`host::run_with`] and [`host::bench`].
pub fn measure(
    target: &Target,
    artifacts: &Artifacts,
    options: &MeasureOptions,
) -> Result<TargetReport, MeasureError> {
    let input = fixed_input(artifacts.input_len);
    let wasm_size = size::model_size(
        &artifacts.wasm,
        Some(artifacts.weight_bytes),
        Some(artifacts.arena_bytes),
    )?;
    let module = SimModule::load(&artifacts.wasm)?;
    let sim = module.run(&input, &options.sim_limits)?;

    let is_wasm = target.triple.is_wasm();
    let (size, wasm_size, host_timing, output_check) = if is_wasm {
        (wasm_size, None, None, None)
    } else {
        let program = artifacts
            .program
            .as_ref()
            .ok_or_else(|| MeasureError::Artifacts {
                target: target.name.clone(),
                detail: format!("no {} program was built", target.triple),
            })?;
        let runner =
            Runner::for_triple(target.triple).map_err(|detail| MeasureError::Artifacts {
                target: target.name.clone(),
                detail,
            })?;
        let size = size::model_size(
            program,
            Some(artifacts.weight_bytes),
            Some(artifacts.arena_bytes),
        )?;
        let started = Instant::now();
        let output = host::run_with(
            &runner,
            program,
            &input,
            Some(artifacts.output_len),
            host::DEFAULT_RUN_TIMEOUT,
        )?;
        let one_run = started.elapsed();
        let max_abs_diff = output
            .iter()
            .zip(&sim.output)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let what = match &runner {
            Runner::Native => format!("{} program (native)", target.triple),
            Runner::Emulator { .. } => format!("{} program under {}", target.triple, runner.name()),
        };
        let check = BuildAgreement {
            compared: format!("{what} vs wasm sim"),
            max_abs_diff,
            tolerance: OUTPUT_TOLERANCE,
            passed: max_abs_diff <= OUTPUT_TOLERANCE && output.len() == sim.output.len(),
        };
        let timing = if options.runs > 0 {
            let asked = (options.warmup, options.runs);
            Some(timed(&runner, program, &input, asked, one_run)?)
        } else {
            None
        };
        (size, Some(wasm_size), timing, Some(check))
    };

    let footprint = Footprint {
        binary_bytes: Some(size.file),
        peak_memory_bytes: Some(sim.peak_memory_metric()),
    };
    let power = power::evaluate(target, sim.fuel, footprint);
    Ok(TargetReport {
        target: target.name.clone(),
        triple: target.triple,
        size,
        wasm_size,
        fuel: sim.fuel_metric(),
        sim_peak_memory: sim.peak_memory_metric(),
        power,
        host_timing,
        output_check,
    })
}

impl fmt::Display for TargetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        let _ = writeln!(out, "target {} ({})", self.target, self.triple);
        let _ = writeln!(
            out,
            "  sources: host = measured/read here, sim = wasm fuel under the profile, predicted = profile figure"
        );
        write_size(&mut out, "size", &self.size);
        if let Some(wasm) = &self.wasm_size {
            write_size(&mut out, "wasm size", wasm);
        }
        let _ = writeln!(out, "  memory");
        if let Some(arena) = self.size.arena {
            let _ = writeln!(out, "    arena               {arena}");
        }
        if self.size.sections.format == size::BinaryFormat::Elf {
            let _ = writeln!(out, "    static (data+bss)   {}", self.size.static_memory);
        }
        let _ = writeln!(out, "    wasm peak linear    {}", self.sim_peak_memory);
        let _ = writeln!(out, "  fuel                  {}", self.fuel);
        let _ = writeln!(
            out,
            "  latency per power mode ({}; cycles/fuel {})",
            self.power.note, self.power.cycles_per_fuel
        );
        for m in &self.power.modes {
            let chosen = if self.power.chosen_mode.as_deref() == Some(m.mode.as_str()) {
                "  <- chosen"
            } else {
                ""
            };
            let budget = if m.within_power_budget {
                ""
            } else {
                " (over power budget)"
            };
            let _ = writeln!(
                out,
                "    {:<10} {:>7.1} MHz  p50=p95 {}  {}  {} per inference  at {}{budget}{chosen}",
                m.mode, m.clock_mhz, m.latency_p50, m.fps, m.energy_per_inference, m.watts
            );
        }
        if self.power.chosen_mode.is_none() {
            let _ = writeln!(out, "    no power mode is within the power budget");
        }
        if let Some(t) = &self.host_timing {
            let _ = writeln!(
                out,
                "  timing [{}]: {} runs after {} warm-up: p50 {:.1} us, p95 {:.1} us, min {:.1} us, max {:.1} us",
                t.label(),
                t.runs,
                t.warmup,
                t.p50.value,
                t.p95.value,
                t.min.value,
                t.max.value
            );
        }
        if let Some(c) = &self.output_check {
            let _ = writeln!(
                out,
                "  output check: {}: max abs diff {:.2e} (tolerance {:.0e}) {}",
                c.compared,
                c.max_abs_diff,
                c.tolerance,
                if c.passed { "PASS" } else { "FAIL" }
            );
        }
        let _ = writeln!(out, "  constraints");
        for c in &self.power.checks {
            let verdict = match c.passed {
                Some(true) => "PASS",
                Some(false) => "FAIL",
                None => "NOT MEASURED",
            };
            let actual = c
                .actual
                .map(|a| {
                    if a.unit == Unit::Megabytes {
                        format!("{:.3} MB [{}]", a.value, a.source)
                    } else {
                        a.to_string()
                    }
                })
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "    {verdict:<12} {:<20} limit {} {}: {actual}",
                c.constraint, c.limit, c.limit_unit
            );
        }
        let _ = writeln!(
            out,
            "  verdict: {}",
            if self.passes() {
                "meets every constraint"
            } else {
                "does NOT meet every constraint"
            }
        );
        f.write_str(&out)
    }
}

fn write_size(out: &mut String, title: &str, size: &ModelSize) {
    let _ = writeln!(out, "  {title} ({:?})", size.sections.format);
    let _ = writeln!(out, "    file                {}", size.file);
    let _ = writeln!(out, "    code (text)         {}", size.code);
    if let Some(w) = size.weights {
        let _ = writeln!(out, "    weights             {w}");
    }
    if let Some(c) = size.constants_other_than_weights {
        let _ = writeln!(out, "    other constants     {c}");
    }
    let s = &size.sections;
    let _ = writeln!(
        out,
        "    sections (B)        text {} / rodata {} / data {} / bss {} [host]",
        s.text, s.rodata, s.data, s.bss
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulated_timing_fits_its_budget_within_the_asked_counts() {
        // a fast program: the asked counts, one warm-up
        assert_eq!(emulated_counts(5, 30, Duration::from_millis(10)), (1, 30));
        // 0.5 s a run: 8 runs fit in 4 s, one of them the warm-up
        assert_eq!(emulated_counts(5, 30, Duration::from_millis(500)), (1, 7));
        // slower than the budget: still 3 runs
        assert_eq!(emulated_counts(5, 30, Duration::from_secs(10)), (1, 3));
        // never more than asked
        assert_eq!(emulated_counts(0, 2, Duration::from_secs(10)), (0, 2));
    }
}
