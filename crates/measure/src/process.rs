//! Running one external program with piped stdin/stdout/stderr and a timeout.
//!
//! All program execution in kiln goes through here, so that a missing tool,
//! a failed exit and a hang each become a [`MeasureError`] naming the program.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

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

/// What a finished program left behind.
#[derive(Debug)]
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
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
    let mut command = match runner {
        Runner::Native => Command::new(binary),
        Runner::Emulator { program, .. } => {
            let mut command = Command::new(program);
            command.arg(binary);
            command
        }
    };
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child =
        spawn_retrying_busy(&mut command).map_err(|source| match (runner, source.kind()) {
            (Runner::Emulator { program, install }, std::io::ErrorKind::NotFound) => {
                MeasureError::ToolMissing {
                    tool: program.display().to_string(),
                    install: install.clone(),
                }
            }
            _ => MeasureError::Spawn {
                program: binary.to_path_buf(),
                source,
            },
        })?;

    let writer = child.stdin.take().map(|mut pipe| {
        thread::spawn(move || {
            // A program that rejects its input exits before reading it all;
            // the broken pipe is then expected and its exit status says why.
            let _ = pipe.write_all(&stdin);
        })
    });
    let stdout_reader = child.stdout.take().map(read_all);
    let stderr_reader = child.stderr.take().map(read_all);

    let status = wait_with_timeout(&mut child, binary, timeout);
    if let Some(writer) = writer {
        let _ = writer.join();
    }
    let stdout = collect(stdout_reader, binary)?;
    let stderr = collect(stderr_reader, binary)?;
    Ok(Finished {
        status: status?,
        stdout,
        stderr,
    })
}

fn read_all<R: Read + Send + 'static>(mut pipe: R) -> JoinHandle<std::io::Result<Vec<u8>>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        pipe.read_to_end(&mut bytes)?;
        Ok(bytes)
    })
}

fn collect(
    reader: Option<JoinHandle<std::io::Result<Vec<u8>>>>,
    program: &Path,
) -> Result<Vec<u8>, MeasureError> {
    let Some(reader) = reader else {
        return Ok(Vec::new());
    };
    match reader.join() {
        Ok(result) => result.map_err(|source| MeasureError::ProgramIo {
            program: program.to_path_buf(),
            source,
        }),
        Err(_) => Err(MeasureError::ProgramIo {
            program: program.to_path_buf(),
            source: std::io::Error::other("pipe reader thread panicked"),
        }),
    }
}

fn wait_with_timeout(
    child: &mut Child,
    program: &Path,
    timeout: Duration,
) -> Result<ExitStatus, MeasureError> {
    let started = Instant::now();
    let io_error = |source| MeasureError::ProgramIo {
        program: program.to_path_buf(),
        source,
    };
    loop {
        if let Some(status) = child.try_wait().map_err(io_error)? {
            return Ok(status);
        }
        if started.elapsed() >= timeout {
            // Only the child this function started is killed.
            let _ = child.kill();
            let _ = child.wait();
            return Err(MeasureError::Timeout {
                program: program.to_path_buf(),
                timeout,
            });
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// Turns a non-zero exit into [`MeasureError::ProgramFailed`] with its stderr.
pub(crate) fn require_success(finished: &Finished, program: &Path) -> Result<(), MeasureError> {
    if finished.status.success() {
        return Ok(());
    }
    Err(MeasureError::ProgramFailed {
        program: program.to_path_buf(),
        status: finished.status.to_string(),
        stderr: String::from_utf8_lossy(&finished.stderr)
            .trim_end()
            .to_string(),
    })
}

/// Spawns `command`, retrying briefly on ETXTBSY ("text file busy"): a program
/// written just before (a freshly built binary, a test's script) can still be
/// open for writing in a child that another thread is forking, until that
/// child execs. The condition clears within milliseconds.
pub(crate) fn spawn_retrying_busy(command: &mut Command) -> std::io::Result<std::process::Child> {
    let mut attempt = 0;
    loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempt < 20 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(10 * attempt));
            }
            other => return other,
        }
    }
}
