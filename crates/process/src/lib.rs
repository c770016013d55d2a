//! kiln-process: the one place kiln starts an external program.
//!
//! cargo (kiln-codegen), built programs and `qemu-aarch64` (kiln-measure),
//! ssh, scp and adb (kiln-deploy) all run through [`run`]: stdin is fed from a
//! byte buffer (or closed), stdout and stderr are collected on their own
//! threads so a chatty program cannot block on a full pipe, and a deadline
//! kills the child this call started and nothing else. Errors name the
//! program; a program that is not installed says so.
//!
//! No other kiln crate uses `std::process::Command` (checked by
//! `tests/architecture.rs`).

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Why a program could not be run to its end.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program is not on PATH (or the path does not exist).
    #[error("`{program}` is not installed or not on PATH")]
    NotFound {
        /// The program as given.
        program: String,
    },
    /// The operating system refused to start it.
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        /// The program as given.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// It ran past its deadline and was killed.
    #[error("`{command}` did not finish within {:.0} s and was stopped", timeout.as_secs_f64())]
    Timeout {
        /// The whole command line, shell-quoted.
        command: String,
        /// The deadline it was given.
        timeout: Duration,
    },
    /// Reading its output or waiting for it failed.
    #[error("`{program}`: {source}")]
    Io {
        /// The program as given.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A program, its arguments, environment changes and working folder: what
/// [`run`] starts. Arguments are kept apart so that a dry run can print the
/// command as a shell line ([`Cmd::display`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    /// `(name, Some(value))` sets, `(name, None)` removes.
    env: Vec<(OsString, Option<OsString>)>,
    dir: Option<PathBuf>,
}

impl Cmd {
    /// `program` (found on PATH when it has no slash) with no arguments.
    pub fn new(program: impl Into<OsString>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    /// Appends arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), Some(value.into())));
        self
    }

    /// Removes an inherited environment variable from the child.
    pub fn env_remove(mut self, key: impl Into<OsString>) -> Self {
        self.env.push((key.into(), None));
        self
    }

    /// Runs the child in `dir`.
    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// The command as a shell line a user could paste (environment changes
    /// and working folder are not shown).
    pub fn display(&self) -> String {
        std::iter::once(&self.program)
            .chain(&self.args)
            .map(|a| shell_quote(&a.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn program_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }

    fn command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            match v {
                Some(v) => c.env(k, v),
                None => c.env_remove(k),
            };
        }
        if let Some(dir) = &self.dir {
            c.current_dir(dir);
        }
        c
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

/// What a finished program left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Finished {
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

impl Finished {
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }

    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (invalid UTF-8 replaced), trailing white space removed.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim_end().to_string()
    }

    /// `exit status: N` or `killed by a signal`, for messages.
    pub fn status_text(&self) -> String {
        match self.code {
            Some(c) => format!("exit status: {c}"),
            None => "killed by a signal".to_string(),
        }
    }

    /// The last `n` lines of stderr, for error messages about long outputs
    /// (a failed cargo build).
    pub fn stderr_tail(&self, n: usize) -> String {
        let text = self.stderr_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Runs `cmd`, writing `stdin` to it (`None` closes stdin), and waits at most
/// `timeout` for it to exit. A non-zero exit is not an error here: the caller
/// reads [`Finished::code`].
///
/// Errors: [`ProcessError::NotFound`] when the program does not exist,
/// [`ProcessError::Timeout`] after killing it at the deadline,
/// [`ProcessError::Spawn`]/[`ProcessError::Io`] for other OS errors.
pub fn run(cmd: &Cmd, stdin: Option<Vec<u8>>, timeout: Duration) -> Result<Finished, ProcessError> {
    let mut command = cmd.command();
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = spawn_retrying_busy(&mut command).map_err(|source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ProcessError::NotFound {
                program: cmd.program_name(),
            }
        } else {
            ProcessError::Spawn {
                program: cmd.program_name(),
                source,
            }
        }
    })?;
    let writer = match (child.stdin.take(), stdin) {
        (Some(mut pipe), Some(bytes)) => Some(thread::spawn(move || {
            // A program that rejects its input exits before reading it all;
            // the broken pipe is then expected and its exit status says why.
            let _ = pipe.write_all(&bytes);
        })),
        _ => None,
    };
    let out = child.stdout.take().map(read_all);
    let err = child.stderr.take().map(read_all);
    // At the deadline the child is killed and the call returns at once: a
    // grandchild it left running (a wrapper script's) may hold the pipes
    // open, and waiting for them would defeat the deadline. The reader and
    // writer threads end when the pipes close.
    let status = wait_until(&mut child, cmd, timeout)?;
    if let Some(w) = writer {
        let _ = w.join();
    }
    let stdout = collect(out, cmd)?;
    let stderr = collect(err, cmd)?;
    Ok(Finished {
        code: status.code(),
        stdout,
        stderr,
    })
}

/// Whether `program` is an executable file in a folder of PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Path::new(&dir).join(program).is_file())
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
    cmd: &Cmd,
) -> Result<Vec<u8>, ProcessError> {
    let io = |source| ProcessError::Io {
        program: cmd.program_name(),
        source,
    };
    match reader.map(JoinHandle::join) {
        None => Ok(Vec::new()),
        Some(Ok(result)) => result.map_err(io),
        Some(Err(_)) => Err(io(std::io::Error::other("pipe reader thread panicked"))),
    }
}

fn wait_until(child: &mut Child, cmd: &Cmd, timeout: Duration) -> Result<ExitStatus, ProcessError> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if started.elapsed() >= timeout => {
                // Only the child this call started is killed.
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProcessError::Timeout {
                    command: cmd.display(),
                    timeout,
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(5)),
            Err(source) => {
                return Err(ProcessError::Io {
                    program: cmd.program_name(),
                    source,
                });
            }
        }
    }
}

/// Spawns `command`, retrying briefly on ETXTBSY ("text file busy"): a program
/// written just before (a freshly built binary, a test's script) can still be
/// open for writing in a child that another thread is forking, until that
/// child execs. The condition clears within milliseconds.
fn spawn_retrying_busy(command: &mut Command) -> std::io::Result<Child> {
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
    fn stdin_reaches_the_program_and_stdout_comes_back() {
        let f = run(
            &Cmd::new("cat"),
            Some(b"abc".to_vec()),
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(f.success());
        assert_eq!(f.stdout, b"abc");
    }

    #[test]
    fn quoting_survives_a_shell() {
        let tricky = "a b'c$d";
        let cmd = Cmd::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote(tricky)));
        let out = run(&cmd, None, Duration::from_secs(10)).unwrap();
        assert_eq!(out.stdout_text(), tricky);
        assert_eq!(shell_quote("/tmp/kiln-1"), "/tmp/kiln-1");
    }

    #[test]
    fn a_hanging_program_is_killed_and_named() {
        let started = Instant::now();
        let err = run(
            &Cmd::new("sleep").arg("30"),
            None,
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(matches!(err, ProcessError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("sleep 30"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(20));
    }

    #[test]
    fn the_deadline_holds_when_a_grandchild_keeps_the_pipes_open() {
        let started = Instant::now();
        let cmd = Cmd::new("sh").arg("-c").arg("sleep 30 & sleep 30");
        let err = run(&cmd, None, Duration::from_millis(300)).unwrap_err();
        assert!(matches!(err, ProcessError::Timeout { .. }), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = run(&Cmd::new("kiln-no-such-tool"), None, Duration::from_secs(5)).unwrap_err();
        assert!(matches!(err, ProcessError::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("kiln-no-such-tool"), "{err}");
    }

    #[test]
    fn environment_and_folder_are_applied() {
        let dir = std::env::temp_dir();
        let cmd = Cmd::new("sh")
            .arg("-c")
            .arg("printf '%s|%s|%s' \"$KILN_A\" \"${KILN_B-unset}\" \"$(pwd -P)\"")
            .env("KILN_A", "1")
            .env("KILN_B", "x")
            .env_remove("KILN_B")
            .current_dir(&dir);
        let out = run(&cmd, None, Duration::from_secs(10)).unwrap();
        let expected = format!("1|unset|{}", dir.canonicalize().unwrap().display());
        assert_eq!(out.stdout_text(), expected);
    }

    #[test]
    fn exit_codes_and_stderr_are_kept() {
        let cmd = Cmd::new("sh").arg("-c").arg("echo oops >&2; exit 3");
        let out = run(&cmd, None, Duration::from_secs(10)).unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stderr_text(), "oops");
        assert_eq!(out.status_text(), "exit status: 3");
    }
}
