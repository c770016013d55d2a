//! Running a generated program on this machine (or under an emulator) with
//! the protocol of the generated crate: raw little-endian f32 on stdin (the
//! input in ONNX NCHW order), raw little-endian f32 on stdout, exit 0. The
//! command line and bench line are specified by [`kiln_codegen::program`].

use std::path::Path;
use std::time::Duration;

use kiln_codegen::program::BenchLine;

use crate::MeasureError;
use crate::process::{Runner, execute, require_success};
use crate::{Metric, Source, Unit};

/// How long one inference run may take before the program is killed. Generous
/// because runs under qemu are several times slower than native.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs the generated program `binary` natively on `input` (the model's
/// input in NCHW order) and returns its output values, in ONNX order.
///
/// Errors: the binary is missing, it exits non-zero (the error carries its
/// stderr), it hangs past [`DEFAULT_RUN_TIMEOUT`], or its output is not a
/// whole, non-empty number of f32 values.
pub fn run(binary: &Path, input: &[f32]) -> Result<Vec<f32>, MeasureError> {
    run_with(&Runner::Native, binary, input, None, DEFAULT_RUN_TIMEOUT)
}

/// Runs `binary` under `runner` on `input` (NCHW values, written to stdin as
/// LE f32) and returns the LE f32 values of its stdout. When `expected_len`
/// is given the output must hold exactly that many f32 values.
///
/// Errors: as [`run`], plus [`MeasureError::ToolMissing`] when the emulator
/// is not installed, [`MeasureError::Timeout`] after `timeout`, and
/// [`MeasureError::WrongOutputLength`] for a count other than `expected_len`.
pub fn run_with(
    runner: &Runner,
    binary: &Path,
    input: &[f32],
    expected_len: Option<usize>,
    timeout: Duration,
) -> Result<Vec<f32>, MeasureError> {
    let finished = execute(runner, binary, &[], encode_f32_le(input), timeout)?;
    require_success(&finished, binary)?;
    let bytes = finished.stdout.len();
    let wrong = |detail: String| MeasureError::WrongOutputLength {
        program: binary.to_path_buf(),
        bytes,
        detail,
    };
    if bytes == 0 {
        return Err(wrong(
            "expected little-endian f32 output, got nothing".into(),
        ));
    }
    if bytes % 4 != 0 {
        return Err(wrong("not a whole number of 4-byte f32 values".into()));
    }
    let output = decode_f32_le(&finished.stdout);
    if let Some(expected) = expected_len
        && output.len() != expected
    {
        return Err(wrong(format!(
            "expected {expected} f32 values ({} bytes), got {}",
            expected * 4,
            output.len()
        )));
    }
    Ok(output)
}

/// The wire form of the generated program's input: each value as 4
/// little-endian bytes, in order (4 x `values.len()` bytes).
pub fn encode_f32_le(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Reads whole 4-byte little-endian f32 values; trailing bytes are ignored
/// (callers check the length first).
pub fn decode_f32_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Timings of a program's bench mode, in microseconds (source `host`).
///
/// `emulated` is true when the program ran under an emulator such as
/// `qemu-aarch64`: such times say nothing about the device's latency.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HostTiming {
    /// Timed runs, as the program's bench line reports them.
    pub runs: u64,
    /// Warm-up runs asked for (`--warmup`), not timed.
    pub warmup: u64,
    /// Median wall-clock time of one inference, us, `host`.
    pub p50: Metric,
    /// 95th-percentile time of one inference, us, `host`.
    pub p95: Metric,
    /// Fastest timed run, us, `host`.
    pub min: Metric,
    /// Slowest timed run, us, `host`.
    pub max: Metric,
    /// The program ran under an emulator: the times are not device latency.
    pub emulated: bool,
    /// Which runner produced the times, e.g. `native` or `qemu-aarch64`.
    pub runner: String,
}

impl HostTiming {
    /// How the figures should be labelled in a report: `host`, or `host,
    /// emulated under RUNNER (not device latency)`.
    pub fn label(&self) -> String {
        if self.emulated {
            format!("host, emulated under {} (not device latency)", self.runner)
        } else {
            "host".to_string()
        }
    }
}

/// How long a bench-mode run (all warm-up and timed runs) may take before
/// it is killed.
pub const DEFAULT_BENCH_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `binary --bench --warmup W --runs N` under `runner`, `input` on stdin
/// as LE f32, and reads its JSON bench line with
/// [`BenchLine::parse`](kiln_codegen::program::BenchLine::parse), which must
/// carry the label `host` (the program's default `--source`).
///
/// Errors: the binary or emulator is missing, the program exits non-zero
/// (with its stderr) or outlives `timeout`, or
/// [`MeasureError::BadBenchReport`] when the line is missing or incoherent.
pub fn bench(
    runner: &Runner,
    binary: &Path,
    input: &[f32],
    warmup: u64,
    runs: u64,
    timeout: Duration,
) -> Result<HostTiming, MeasureError> {
    let args = [
        "--bench".to_string(),
        "--warmup".to_string(),
        warmup.to_string(),
        "--runs".to_string(),
        runs.to_string(),
    ];
    let finished = execute(runner, binary, &args, encode_f32_le(input), timeout)?;
    require_success(&finished, binary)?;
    let stdout = finished.stdout_text();
    let report =
        BenchLine::parse(&stdout, "host").map_err(|detail| MeasureError::BadBenchReport {
            program: binary.to_path_buf(),
            detail,
            stdout: stdout.trim_end().to_string(),
        })?;
    let us = |value: f64| Metric::new(value, Unit::Microseconds, Source::Host);
    Ok(HostTiming {
        runs: report.runs,
        warmup,
        p50: us(report.p50_us),
        p95: us(report.p95_us),
        min: us(report.min_us),
        max: us(report.max_us),
        emulated: runner.is_emulated(),
        runner: runner.name(),
    })
}
