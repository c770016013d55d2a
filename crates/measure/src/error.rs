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
    BinaryMissing {
        /// The path that was to be run.
        path: PathBuf,
    },

    /// A tool kiln runs (a runner such as `qemu-aarch64`) is not installed.
    #[error("`{tool}` is not installed or not on PATH; install it with `{install}`")]
    ToolMissing {
        /// The runner's program name or path, as configured.
        tool: String,
        /// The command that installs it (e.g. `apt-get install -y qemu-user`).
        install: String,
    },

    /// Starting a program failed for a reason other than it being missing.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The built program (not the emulator running it).
        program: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// Talking to a running program (its stdin/stdout/stderr) failed.
    #[error("i/o with {program} failed: {source}")]
    ProgramIo {
        /// The built program.
        program: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// The program exited unsuccessfully; its stderr says why.
    #[error("{program} exited with {status}; its stderr:\n{stderr}")]
    ProgramFailed {
        /// The built program.
        program: PathBuf,
        /// `exit status: N` or `killed by a signal`.
        status: String,
        /// What the program wrote to stderr, trailing white space removed.
        stderr: String,
    },

    /// The program ran longer than allowed and was stopped.
    #[error(
        "{program} did not finish within {timeout:?} and was killed; a runaway model or a too-large --runs"
    )]
    Timeout {
        /// The built program.
        program: PathBuf,
        /// The deadline it exceeded (wall clock).
        timeout: Duration,
    },

    /// The program's stdout is empty, not a whole number of 4-byte LE f32
    /// values, or not the number of values expected.
    #[error("{program} wrote {bytes} bytes to stdout: {detail}")]
    WrongOutputLength {
        /// The built program.
        program: PathBuf,
        /// Bytes it wrote to stdout.
        bytes: usize,
        /// What was expected instead.
        detail: String,
    },

    /// The program's bench-mode report could not be understood: no JSON
    /// line, or one [`kiln_codegen::program::BenchLine::parse`] refuses.
    #[error(
        "{program} --bench printed no valid JSON report line ({detail}); its stdout:\n{stdout}"
    )]
    BadBenchReport {
        /// The built program.
        program: PathBuf,
        /// `BenchLine::parse`'s message.
        detail: String,
        /// The program's stdout, trailing whitespace removed.
        stdout: String,
    },

    /// Running the wasm build under the simulated device failed.
    #[error(transparent)]
    Sim(#[from] crate::sim::SimError),

    /// Reading a binary's section sizes failed.
    #[error(transparent)]
    Size(#[from] crate::size::SizeError),

    /// The artifacts handed over do not fit the target being measured (no
    /// program for a non-wasm triple, or a triple this machine cannot run).
    #[error("measuring target `{target}`: {detail}")]
    Artifacts {
        /// The profile's name.
        target: String,
        /// What is missing or unrunnable.
        detail: String,
    },
}
