//! One external program (ssh, scp, adb) run with a deadline, or only printed
//! in a dry run.

use std::ffi::OsString;
use std::io::Read;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::DeployError;

/// A program and its arguments, kept apart so a dry run can print them quoted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: OsString,
    pub args: Vec<String>,
}

impl Cmd {
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
        }
    }

    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The command as a shell line a user could paste.
    pub fn display(&self) -> String {
        let mut parts = vec![shell_quote(&self.program.to_string_lossy())];
        parts.extend(self.args.iter().map(|a| shell_quote(a)));
        parts.join(" ")
    }
}

/// Quotes `s` for a POSIX shell (single quotes unless it is plainly safe).
pub fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:@,+%".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, Default)]
pub struct Finished {
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `cmd` with stdin closed; kills it after `timeout`.
pub fn execute(cmd: &Cmd, timeout: Duration) -> Result<Finished, DeployError> {
    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_retrying_busy(&mut command).map_err(|source| DeployError::Spawn {
        program: cmd.program.to_string_lossy().into_owned(),
        source,
    })?;
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(o) = out.as_mut() {
            let _ = o.read_to_end(&mut buf);
        }
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(e) = err.as_mut() {
            let _ = e.read_to_end(&mut buf);
        }
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => break None,
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(_) => break None,
        }
    };
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(DeployError::Timeout {
            command: cmd.display(),
            seconds: timeout.as_secs_f64(),
        });
    };
    let text = |h: thread::JoinHandle<Vec<u8>>| {
        String::from_utf8_lossy(&h.join().unwrap_or_default()).into_owned()
    };
    Ok(Finished {
        code: status.code(),
        stdout: text(out_reader),
        stderr: text(err_reader),
    })
}

/// Spawns `command`, retrying briefly on ETXTBSY ("text file busy"): a program
/// written just before (a test's stand-in scp, a fresh build) can still be open
/// for writing in a child another thread is forking, until that child execs.
/// kiln-measure has the same guard; the crates do not depend on each other.
fn spawn_retrying_busy(command: &mut Command) -> std::io::Result<std::process::Child> {
    let mut attempt = 0;
    loop {
        match command.spawn() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && attempt < 20 => {
                attempt += 1;
                thread::sleep(Duration::from_millis(10 * attempt));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_a_shell() {
        let tricky = "a b'c$d";
        let out = execute(
            &Cmd::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(tricky))),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout, tricky);
        assert_eq!(shell_quote("/tmp/kiln-1"), "/tmp/kiln-1");
    }

    #[test]
    fn a_hanging_command_is_killed() {
        let err = execute(&Cmd::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, DeployError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("sleep 30"), "{err}");
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = execute(&Cmd::new("kiln-no-such-tool"), Duration::from_secs(5)).unwrap_err();
        assert!(err.to_string().contains("kiln-no-such-tool"), "{err}");
    }
}
