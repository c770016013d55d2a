//! The error type of every measurement in this crate.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while running or inspecting a built program.
///
/// Each variant names the file or program involved and, where there is one,
/// the command that fixes it.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The built program to run does not exist.
    #[error(
        "built program {path} does not exist; build it first (kiln-codegen builds the generated crate)"
    )]
    BinaryMissing { path: PathBuf },

    /// A tool kiln runs (a runner such as `qemu-aarch64`) is not installed.
    #[error("`{tool}` is not installed or not on PATH; install it with `{install}`")]
    ToolMissing { tool: String, install: String },

    /// Starting a program failed for a reason other than it being missing.
    #[error("could not start {program}: {source}")]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Talking to a running program (its stdin/stdout/stderr) failed.
    #[error("i/o with {program} failed: {source}")]
    ProgramIo {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The program exited unsuccessfully; its stderr says why.
    #[error("{program} exited with {status}; its stderr:\n{stderr}")]
    ProgramFailed {
        program: PathBuf,
        status: String,
        stderr: String,
    },

    /// The program ran longer than allowed and was stopped.
    #[error(
        "{program} did not finish within {timeout:?} and was killed; a runaway model or a too-large --runs"
    )]
    Timeout { program: PathBuf, timeout: Duration },

    /// The program's output is not the number of f32 values expected.
    #[error("{program} wrote {bytes} bytes to stdout: {detail}")]
    WrongOutputLength {
        program: PathBuf,
        bytes: usize,
        detail: String,
    },

    /// The program's bench-mode report could not be understood.
    #[error(
        "{program} --bench printed no valid JSON report line ({detail}); its stdout:\n{stdout}"
    )]
    BadBenchReport {
        program: PathBuf,
        detail: String,
        stdout: String,
    },

    /// Running the wasm build under the simulated device failed.
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),

    /// Reading a binary's section sizes failed.
    #[error(transparent)]
    Size(#[from] crate::size::SizeError),

    /// The artifacts handed over do not fit the target being measured.
    #[error("measuring target `{target}`: {detail}")]
    Artifacts { target: String, detail: String },
}
