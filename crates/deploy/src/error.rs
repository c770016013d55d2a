//! What can go wrong while reaching, flashing or benchmarking a device.

use std::path::PathBuf;

use kiln_process::ProcessError;

/// Why a device step failed. Every message names the device (or the local
/// program or file) and, where the device was touched, what state it was
/// left in.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// ssh, scp or adb could not be started on this machine (not installed,
    /// or the OS refused). The message names the program and the variable
    /// (`KILN_SSH`, `KILN_SCP`, `KILN_ADB`) that points kiln at another one.
    #[error("cannot run `{program}`: {source} (install it, or point {hint} at it)", hint = tool_hint(program))]
    Spawn {
        /// The program as kiln tried to start it.
        program: String,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// A command ran past its deadline ([`crate::Timeouts`]) and was killed.
    #[error("`{command}` did not finish within {seconds} s and was stopped")]
    Timeout {
        /// The whole command line, shell-quoted.
        command: String,
        /// The deadline it was given, seconds.
        seconds: f64,
    },
    /// The output of a started ssh, scp or adb could not be read, or waiting
    /// for it failed.
    #[error("cannot read the output of `{program}`: {source}")]
    Io {
        /// The program as kiln started it.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The transport answered but the device did not: ssh exited 255, or adb
    /// said the phone is missing, offline, unauthorized or not the only one.
    #[error("cannot reach the device {device}: {detail}")]
    Unreachable {
        /// The device as [`crate::Device::name`] shows it.
        device: String,
        /// The last lines the transport printed, or `no answer`.
        detail: String,
    },
    /// A local file of the bundle cannot be read.
    #[error("cannot read {path}: {source}")]
    Local {
        /// The file on this machine.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Copying a file to the device failed; the half-done upload folder was
    /// removed and `current` was not touched.
    #[error("upload of {file} to {device} failed: {detail}; the device keeps its previous version")]
    Upload {
        /// The file's name on the device ([`crate::PROGRAM_NAME`], ...).
        file: String,
        /// The device as [`crate::Device::name`] shows it.
        device: String,
        /// Why, from scp/adb (or `no message`).
        detail: String,
    },
    /// A file arrived changed; the upload was discarded.
    #[error(
        "checksum mismatch for {file} on {device}: local sha256 {local}, device has {remote}; the upload was discarded and the device keeps its previous version"
    )]
    ChecksumMismatch {
        /// The file's name on the device.
        file: String,
        /// The device as [`crate::Device::name`] shows it.
        device: String,
        /// sha256 of the local file, lower-case hex.
        local: String,
        /// What `sha256sum` said on the device (`nothing` when it named no
        /// such file).
        remote: String,
    },
    /// A short step of the protocol (prepare, verify, install, nvpmodel, ...)
    /// exited non-zero on the device.
    #[error("{step} on {device} failed (exit {code}): {detail}")]
    Remote {
        /// The step, as the message names it (`installing the new version`).
        step: String,
        /// The device as [`crate::Device::name`] shows it.
        device: String,
        /// The exit status, or `signal`.
        code: String,
        /// The last lines of its stdout and stderr.
        detail: String,
    },
    /// The benchmark did not give figures: it failed to start or run, its
    /// output check failed, or its output could not be read. The device was
    /// rolled back (`rollback` says how, or that it could not be).
    #[error("the benchmark on {device} failed{rollback}: {detail}")]
    Bench {
        /// The device as [`crate::Device::name`] shows it.
        device: String,
        /// Why, for the user.
        detail: String,
        /// `; rolled back to ...`, or what went wrong rolling back.
        rollback: String,
    },
}

/// The environment variable that names another `program`.
fn tool_hint(program: &str) -> &'static str {
    if program.contains("adb") {
        "KILN_ADB"
    } else if program.contains("scp") {
        "KILN_SCP"
    } else {
        "KILN_SSH"
    }
}

impl DeployError {
    /// A failure of kiln-process to run ssh, scp or adb, as a deploy error.
    pub(crate) fn from_process(e: ProcessError) -> DeployError {
        match e {
            ProcessError::NotFound { program } => DeployError::Spawn {
                program,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no such file or directory",
                ),
            },
            ProcessError::Spawn { program, source } => DeployError::Spawn { program, source },
            ProcessError::Timeout { command, timeout } => DeployError::Timeout {
                command,
                seconds: timeout.as_secs_f64(),
            },
            ProcessError::Io { program, source } => DeployError::Io { program, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use kiln_process::{Cmd, run};

    use super::*;

    #[test]
    fn a_missing_program_is_named_with_its_variable() {
        let err = run(&Cmd::new("kiln-no-such-adb"), None, Duration::from_secs(5)).unwrap_err();
        let msg = DeployError::from_process(err).to_string();
        assert_eq!(
            msg,
            "cannot run `kiln-no-such-adb`: no such file or directory (install it, or point KILN_ADB at it)"
        );
    }

    #[test]
    fn a_hanging_program_reads_as_a_timeout() {
        let err = run(
            &Cmd::new("sleep").arg("30"),
            None,
            Duration::from_millis(200),
        )
        .unwrap_err();
        let err = DeployError::from_process(err);
        assert!(matches!(err, DeployError::Timeout { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "`sleep 30` did not finish within 0.2 s and was stopped"
        );
    }
}
