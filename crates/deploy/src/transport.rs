//! The commands that reach the device (ssh/scp with `BatchMode=yes`, a connect
//! timeout and keep-alives; adb with its serial), run through kiln-process
//! with stdin closed and a deadline, or only recorded in a dry run.

use std::path::Path;
use std::time::Duration;

use kiln_process::{Cmd, Finished, shell_quote};

use crate::adb::{adb_own_failure, adb_status, adb_status_script};
use crate::{AdbTarget, DeployError, Device, SshTarget, Transport};

impl Device {
    /// The options ssh and scp share; `port_flag` is `-p` for ssh, `-P` for scp.
    fn ssh_options(&self, s: &SshTarget, port_flag: &str) -> Vec<String> {
        let mut o = vec![
            "-o".to_string(),
            "BatchMode=yes".to_string(),
            "-o".to_string(),
            format!("ConnectTimeout={}", self.timeouts.connect.as_secs().max(1)),
            "-o".to_string(),
            "ServerAliveInterval=5".to_string(),
            "-o".to_string(),
            "ServerAliveCountMax=3".to_string(),
        ];
        if let Some(p) = s.port {
            o.push(port_flag.to_string());
            o.push(p.to_string());
        }
        if let Some(i) = &s.identity {
            o.push("-i".to_string());
            o.push(i.display().to_string());
        }
        for opt in &s.options {
            o.push("-o".to_string());
            o.push(opt.clone());
        }
        o
    }

    /// `adb [-s SERIAL]`.
    fn adb_base(&self, a: &AdbTarget) -> Cmd {
        let mut c = Cmd::new(self.tools.adb.clone());
        if let Some(s) = &a.serial {
            c = c.arg("-s").arg(s.clone());
        }
        c
    }

    /// The command that runs `script` under `sh` on the device. Over adb the
    /// script is wrapped so that it reports its own exit status (adb before
    /// its shell protocol v2 does not).
    pub fn shell_command(&self, script: &str) -> Cmd {
        match &self.transport {
            Transport::Ssh(s) => Cmd::new(self.tools.ssh.clone())
                .args(self.ssh_options(s, "-p"))
                .arg(s.destination.clone())
                .arg("--")
                .arg(format!("sh -c {}", shell_quote(script))),
            Transport::Adb(a) => self
                .adb_base(a)
                .arg("shell")
                .arg(format!("sh -c {}", shell_quote(&adb_status_script(script)))),
        }
    }

    /// The command that copies the local file `local` to the path `remote`
    /// on the device (`scp` or `adb push`).
    pub fn upload_command(&self, local: &Path, remote: &str) -> Cmd {
        match &self.transport {
            Transport::Ssh(s) => Cmd::new(self.tools.scp.clone())
                .arg("-q")
                .args(self.ssh_options(s, "-P"))
                .arg(local.display().to_string())
                .arg(format!("{}:{remote}", s.destination)),
            Transport::Adb(a) => self
                .adb_base(a)
                .arg("push")
                .arg(local.display().to_string())
                .arg(remote.to_string()),
        }
    }

    /// Runs (or in a dry run records) `cmd`; a dry run answers with an empty
    /// success.
    pub(crate) fn run(&mut self, cmd: Cmd, timeout: Duration) -> Result<Finished, DeployError> {
        self.commands.push(cmd.display());
        if self.dry_run {
            return Ok(Finished {
                code: Some(0),
                ..Finished::default()
            });
        }
        kiln_process::run(&cmd, None, timeout).map_err(DeployError::from_process)
    }

    /// Runs `script` on the device; over adb the exit status is the one the
    /// script reported (see [`adb_status_script`]).
    pub(crate) fn run_shell(
        &mut self,
        script: &str,
        timeout: Duration,
    ) -> Result<Finished, DeployError> {
        let f = self.run(self.shell_command(script), timeout)?;
        if self.dry_run || !matches!(self.transport, Transport::Adb(_)) {
            return Ok(f);
        }
        Ok(adb_status(f))
    }

    /// A failed connection reads as unreachable: ssh exits 255, adb names the
    /// device.
    pub(crate) fn unreachable(&self, f: &Finished) -> Option<DeployError> {
        let stderr = f.stderr_text();
        let mut detail = last_lines(&stderr, 3);
        if stderr.contains("more than one device") {
            detail.push_str("; pick one with --serial SERIAL (`adb devices` lists them)");
        }
        let adb_down = matches!(self.transport, Transport::Adb(_)) && adb_own_failure(&stderr);
        let ssh_down = matches!(self.transport, Transport::Ssh(_)) && f.code == Some(255);
        (ssh_down || adb_down).then(|| DeployError::Unreachable {
            device: self.name(),
            detail: if detail.is_empty() {
                "no answer".to_string()
            } else {
                detail
            },
        })
    }

    /// Runs a short script; a non-zero exit is an error naming `step`.
    pub(crate) fn remote(&mut self, step: &str, script: &str) -> Result<Finished, DeployError> {
        self.remote_within(step, script, self.timeouts.command)
    }

    /// [`Device::remote`] with its own deadline.
    pub(crate) fn remote_within(
        &mut self,
        step: &str,
        script: &str,
        timeout: Duration,
    ) -> Result<Finished, DeployError> {
        let f = self.run_shell(script, timeout)?;
        if f.success() {
            return Ok(f);
        }
        if let Some(e) = self.unreachable(&f) {
            return Err(e);
        }
        Err(DeployError::Remote {
            step: step.to_string(),
            device: self.name(),
            code: f.code.map_or("signal".to_string(), |c| c.to_string()),
            detail: last_lines(&format!("{}{}", f.stdout_text(), f.stderr_text()), 4),
        })
    }

    /// Checks the device answers: `echo` through the transport.
    ///
    /// Errors: [`DeployError::Unreachable`] when the transport cannot reach
    /// it, [`DeployError::Spawn`] when ssh/adb cannot be started,
    /// [`DeployError::Timeout`], or [`DeployError::Remote`] when the device's
    /// shell fails.
    pub fn check_reachable(&mut self) -> Result<(), DeployError> {
        self.remote("connection check", "echo kiln-ready")
            .map(|_| ())
    }
}

/// The last `n` non-empty lines of `text`, trimmed, joined with ` | `.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
