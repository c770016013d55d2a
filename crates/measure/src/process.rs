//! How a built program is started here: natively or under a user-mode
//! emulator. Execution itself is kiln-process's; this module adds the
//! runner and turns its errors into [`MeasureError`]s naming the program.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kiln_process::{Cmd, Finished, ProcessError};
use kiln_target::Triple;

use crate::MeasureError;

/// How a built program is started: directly, or through an emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Runner {
    /// Run the binary itself (it was built for this machine).
    Native,
    /// Run the binary under a user-mode emulator such as `qemu-aarch64`.
    /// Times measured this way are emulated, never device latency.
    Emulator {
        /// The emulator program, found on PATH if relative.
        program: PathBuf,
        /// The command that installs the emulator, quoted in errors.
        install: String,
    },
}

impl Runner {
    /// Debian's user-mode qemu for aarch64 binaries.
    pub fn qemu_aarch64() -> Self {
        Runner::Emulator {
            program: PathBuf::from("qemu-aarch64"),
            install: "apt-get install -y qemu-user".to_string(),
        }
    }

    /// The runner for a program built for `triple` on this machine: native
    /// for the host's triple, the triple's emulator otherwise.
    ///
    /// Errors: a message for wasm32 (run under wasmtime, not as a program)
    /// or a triple this machine cannot run.
    pub fn for_triple(triple: Triple) -> Result<Self, String> {
        if triple.is_host() {
            return Ok(Runner::Native);
        }
        match triple.emulator() {
            Some((program, package)) => Ok(Runner::Emulator {
                program: PathBuf::from(program),
                install: format!("apt-get install -y {package}"),
            }),
            None if triple.is_wasm() => Err(format!(
                "{triple} builds run under wasmtime (the simulated device), not as programs"
            )),
            None => Err(format!("kiln cannot run {triple} programs on this machine")),
        }
    }

    /// A short name for reports: `native` or the emulator's file name.
    pub fn name(&self) -> String {
        match self {
            Runner::Native => "native".to_string(),
            Runner::Emulator { program, .. } => program
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| program.display().to_string()),
        }
    }

    /// Whether timings taken through this runner are emulated.
    pub fn is_emulated(&self) -> bool {
        matches!(self, Runner::Emulator { .. })
    }
}

/// Starts `binary` with `args` under `runner`, feeds `stdin`, and waits at
/// most `timeout` for it to exit.
pub(crate) fn execute(
    runner: &Runner,
    binary: &Path,
    args: &[String],
    stdin: Vec<u8>,
    timeout: Duration,
) -> Result<Finished, MeasureError> {
    if !binary.is_file() {
        return Err(MeasureError::BinaryMissing {
            path: binary.to_path_buf(),
        });
    }
    let cmd = match runner {
        Runner::Native => Cmd::new(binary),
        Runner::Emulator { program, .. } => Cmd::new(program).arg(binary),
    }
    .args(args);
    kiln_process::run(&cmd, Some(stdin), timeout).map_err(|e| match (runner, e) {
        (Runner::Emulator { program, install }, ProcessError::NotFound { .. }) => {
            MeasureError::ToolMissing {
                tool: program.display().to_string(),
                install: install.clone(),
            }
        }
        (_, ProcessError::NotFound { .. }) => MeasureError::BinaryMissing {
            path: binary.to_path_buf(),
        },
        (_, ProcessError::Timeout { timeout, .. }) => MeasureError::Timeout {
            program: binary.to_path_buf(),
            timeout,
        },
        (_, ProcessError::Spawn { source, .. }) => MeasureError::Spawn {
            program: binary.to_path_buf(),
            source,
        },
        (_, ProcessError::Io { source, .. }) => MeasureError::ProgramIo {
            program: binary.to_path_buf(),
            source,
        },
    })
}

/// Turns a non-zero exit into [`MeasureError::ProgramFailed`] with its stderr.
pub(crate) fn require_success(finished: &Finished, program: &Path) -> Result<(), MeasureError> {
    if finished.success() {
        return Ok(());
    }
    Err(MeasureError::ProgramFailed {
        program: program.to_path_buf(),
        status: finished.status_text(),
        stderr: finished.stderr_text(),
    })
}
