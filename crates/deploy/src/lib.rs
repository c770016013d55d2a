//! kiln-deploy: the device side of measurement. It puts a built kiln program
//! on a device the way its users reach it (ssh/scp for Linux boards such as
//! Jetson, adb for Android phones), proves it arrived intact, runs its bench
//! mode there and reads back figures labelled `device`.
//!
//! The protocol on the device, in the kiln folder `dir`:
//! 1. upload the program, its fixed input and its expected output into
//!    `dir/.incoming-<nonce>/` (a temporary name);
//! 2. check their sha256 there (`sha256sum`) against the local files;
//! 3. rename the folder to `dir/<version>/` (one atomic rename; the version is
//!    derived from the three files' hashes) and point `dir/current` at it
//!    (written to a temporary file, then renamed), the old `current` becoming
//!    `dir/previous`;
//! 4. run the bench mode; if it fails, put both pointers back and remove the
//!    new version, so the device is as it was; if it succeeds, remove
//!    versions other than `current` and `previous`.
//!
//! An upload cut off mid-way never touches `current`, so the old version
//! keeps working. External programs run with `BatchMode=yes`, a connect
//! timeout and an overall deadline each.

mod command;
mod power;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use command::{Cmd, Finished, execute, shell_quote};
pub use power::{PowerOutcome, PowerPlan};

/// Names of the deployed files inside a version folder.
pub const PROGRAM_NAME: &str = "kiln-model";
pub const INPUT_NAME: &str = "input.bin";
pub const EXPECTED_NAME: &str = "expected.bin";

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("cannot run `{program}`: {source} (install it, or point {hint} at it)", hint = tool_hint(program))]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` did not finish within {seconds} s and was stopped")]
    Timeout { command: String, seconds: f64 },
    #[error("cannot reach the device {device}: {detail}")]
    Unreachable { device: String, detail: String },
    #[error("cannot read {path}: {source}")]
    Local {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("upload of {file} to {device} failed: {detail}; the device keeps its previous version")]
    Upload {
        file: String,
        device: String,
        detail: String,
    },
    #[error(
        "checksum mismatch for {file} on {device}: local sha256 {local}, device has {remote}; the upload was discarded and the device keeps its previous version"
    )]
    ChecksumMismatch {
        file: String,
        device: String,
        local: String,
        remote: String,
    },
    #[error("{step} on {device} failed (exit {code}): {detail}")]
    Remote {
        step: String,
        device: String,
        code: String,
        detail: String,
    },
    #[error("the benchmark on {device} failed{rollback}: {detail}")]
    Bench {
        device: String,
        detail: String,
        rollback: String,
    },
}

fn tool_hint(program: &str) -> &'static str {
    if program.contains("adb") {
        "KILN_ADB"
    } else if program.contains("scp") {
        "KILN_SCP"
    } else {
        "KILN_SSH"
    }
}

/// How the device is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Ssh(SshTarget),
    Adb(AdbTarget),
}

/// A Linux board reached with ssh/scp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// `user@address`.
    pub destination: String,
    pub port: Option<u16>,
    /// Private key file (`-i`).
    pub identity: Option<PathBuf>,
    /// Extra `-o` options, e.g. `UserKnownHostsFile=...`.
    pub options: Vec<String>,
}

/// An Android device reached with adb; `serial` picks one of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdbTarget {
    pub serial: Option<String>,
}

/// The external programs, overridable with KILN_SSH, KILN_SCP and KILN_ADB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tools {
    pub ssh: OsString,
    pub scp: OsString,
    pub adb: OsString,
}

impl Tools {
    pub fn from_env() -> Self {
        let get =
            |var: &str, default: &str| std::env::var_os(var).unwrap_or_else(|| default.into());
        Self {
            ssh: get("KILN_SSH", "ssh"),
            scp: get("KILN_SCP", "scp"),
            adb: get("KILN_ADB", "adb"),
        }
    }
}

/// Deadlines for each kind of step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// ssh ConnectTimeout.
    pub connect: Duration,
    /// A short remote command (prepare, verify, install, rollback).
    pub command: Duration,
    /// One file upload.
    pub upload: Duration,
    /// The benchmark run.
    pub bench: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            command: Duration::from_secs(60),
            upload: Duration::from_secs(300),
            bench: Duration::from_secs(900),
        }
    }
}

/// The files that travel to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub program: PathBuf,
    /// The fixed input (LE f32) the benchmark runs on.
    pub input: PathBuf,
    /// The expected output (LE f32) the program checks its own against.
    pub expected: PathBuf,
}

/// How the benchmark runs on the device.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchSettings {
    pub warmup: u64,
    pub runs: u64,
    /// A program the device runs the binary under (`qemu-aarch64` for an
    /// emulated device): a shell fragment from the device profile.
    pub runner: Option<String>,
    pub power: Option<PowerPlan>,
}

/// The output check the program reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputCheck {
    /// `None` when the difference is not a number.
    pub max_abs_err: Option<f64>,
    pub tolerance: f64,
    pub passed: bool,
}

/// The bench-mode JSON line of the program, as run on the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceBench {
    /// Always `device` here.
    pub source: String,
    pub runs: u64,
    pub p50_us: f64,
    pub p95_us: f64,
    pub min_us: f64,
    pub max_us: f64,
    /// VmHWM of the process on the device (includes the runner, if any).
    pub peak_rss_kib: Option<u64>,
    pub output_check: Option<OutputCheck>,
}

/// What a flash did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlashReport {
    /// e.g. `root@10.0.0.2:22` or `adb:SERIAL`.
    pub device: String,
    pub dir: String,
    /// The version folder now in place.
    pub version: String,
    /// The version kept for rollback, if there was one.
    pub previous: Option<String>,
    /// `None` in a dry run.
    pub bench: Option<DeviceBench>,
    pub power: PowerOutcome,
    /// Every command run (or, in a dry run, that would run), in order.
    pub commands: Vec<String>,
    pub dry_run: bool,
}

/// A device and how to talk to it.
#[derive(Debug, Clone)]
pub struct Device {
    pub transport: Transport,
    pub tools: Tools,
    pub timeouts: Timeouts,
    /// The kiln folder on the device (absolute).
    pub dir: String,
    /// Print-only: commands are recorded, none is run.
    pub dry_run: bool,
    commands: Vec<String>,
}

/// sha256 of a local file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String, DeployError> {
    let bytes = std::fs::read(path).map_err(|source| DeployError::Local {
        path: path.to_owned(),
        source,
    })?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Device {
    pub fn new(transport: Transport, dir: impl Into<String>) -> Self {
        Self {
            transport,
            tools: Tools::from_env(),
            timeouts: Timeouts::default(),
            dir: dir.into(),
            dry_run: false,
            commands: Vec::new(),
        }
    }

    /// How the device is named in messages.
    pub fn name(&self) -> String {
        match &self.transport {
            Transport::Ssh(s) => format!("{}:{}", s.destination, s.port.unwrap_or(22)),
            Transport::Adb(a) => format!("adb:{}", a.serial.as_deref().unwrap_or("(only device)")),
        }
    }

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

    fn adb_base(&self, a: &AdbTarget) -> Cmd {
        let mut c = Cmd::new(self.tools.adb.clone());
        if let Some(s) = &a.serial {
            c = c.arg("-s").arg(s.clone());
        }
        c
    }

    /// The command that runs `script` under `sh` on the device.
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

    /// The command that copies `local` to `remote` on the device.
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

    /// Runs (or in a dry run records) `cmd`; a dry run answers with an empty success.
    fn run(&mut self, cmd: Cmd, timeout: Duration) -> Result<Finished, DeployError> {
        self.commands.push(cmd.display());
        if self.dry_run {
            return Ok(Finished {
                code: Some(0),
                ..Finished::default()
            });
        }
        execute(&cmd, timeout)
    }

    /// Runs `script` on the device; over adb the exit status is the one the
    /// script reported (see [`adb_status_script`]).
    fn run_shell(&mut self, script: &str, timeout: Duration) -> Result<Finished, DeployError> {
        let f = self.run(self.shell_command(script), timeout)?;
        if self.dry_run || !matches!(self.transport, Transport::Adb(_)) {
            return Ok(f);
        }
        Ok(adb_status(f))
    }

    /// A failed connection reads as unreachable: ssh exits 255, adb names the device.
    fn unreachable(&self, f: &Finished) -> Option<DeployError> {
        let mut detail = last_lines(&f.stderr, 3);
        if f.stderr.contains("more than one device") {
            detail.push_str("; pick one with --serial SERIAL (`adb devices` lists them)");
        }
        let adb_down = matches!(self.transport, Transport::Adb(_)) && adb_own_failure(&f.stderr);
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
    fn remote(&mut self, step: &str, script: &str) -> Result<Finished, DeployError> {
        let f = self.run_shell(script, self.timeouts.command)?;
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
            detail: last_lines(&format!("{}{}", f.stdout, f.stderr), 4),
        })
    }

    /// Checks the device answers: `echo` through the transport.
    pub fn check_reachable(&mut self) -> Result<(), DeployError> {
        self.remote("connection check", "echo kiln-ready")
            .map(|_| ())
    }

    /// Uploads, verifies, installs and benchmarks `bundle`; see the crate docs.
    pub fn flash(
        &mut self,
        bundle: &Bundle,
        bench: &BenchSettings,
    ) -> Result<FlashReport, DeployError> {
        self.commands.clear();
        let files = [
            (PROGRAM_NAME, &bundle.program),
            (INPUT_NAME, &bundle.input),
            (EXPECTED_NAME, &bundle.expected),
        ];
        let mut hashes = Vec::new();
        for (name, path) in files {
            hashes.push((name, sha256_file(path)?));
        }
        let version = {
            let joined: String = hashes.iter().map(|(n, h)| format!("{n} {h}\n")).collect();
            format!("m-{}", &hex(&Sha256::digest(joined.as_bytes()))[..16])
        };
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let dir = shell_quote(&self.dir);
        let incoming = format!(".incoming-{nonce}");

        // 1. prepare: a fresh upload folder; stale ones from cut-off uploads go.
        let prep = self.remote(
            "preparing the kiln folder",
            &format!(
                "mkdir -p {dir} && cd {dir} && rm -rf .incoming-* && mkdir {incoming} && echo \"kiln-current $(cat current 2>/dev/null)\" && echo \"kiln-previous $(cat previous 2>/dev/null)\""
            ),
        )?;
        let old_current = tagged(&prep.stdout, "kiln-current");
        let old_previous = tagged(&prep.stdout, "kiln-previous");

        // 2. upload under the temporary name.
        for (name, path) in files {
            let remote = format!("{}/{incoming}/{name}", self.dir);
            let cmd = self.upload_command(path, &remote);
            let f = self.run(cmd, self.timeouts.upload);
            let failure = match f {
                Ok(f) if f.success() => None,
                Ok(f) => Some(
                    self.unreachable(&f)
                        .map_or_else(|| last_lines(&f.stderr, 3), |e| e.to_string()),
                ),
                Err(e) => Some(e.to_string()),
            };
            if let Some(detail) = failure {
                self.discard(&incoming);
                return Err(DeployError::Upload {
                    file: name.to_string(),
                    device: self.name(),
                    detail: if detail.is_empty() {
                        "no message".into()
                    } else {
                        detail
                    },
                });
            }
        }

        // 3. verify there.
        let names: Vec<&str> = files.iter().map(|(n, _)| *n).collect();
        let sums = self.remote(
            "sha256sum of the upload",
            &format!("cd {dir}/{incoming} && sha256sum {}", names.join(" ")),
        );
        let sums = match sums {
            Ok(s) => s,
            Err(e) => {
                self.discard(&incoming);
                return Err(e);
            }
        };
        if !self.dry_run {
            for (name, local) in &hashes {
                let remote = sums
                    .stdout
                    .lines()
                    .filter_map(|l| l.split_once(char::is_whitespace))
                    .find(|(_, file)| file.trim().trim_start_matches('*') == *name)
                    .map(|(h, _)| h.to_ascii_lowercase())
                    .unwrap_or_else(|| "nothing".to_string());
                if &remote != local {
                    self.discard(&incoming);
                    return Err(DeployError::ChecksumMismatch {
                        file: name.to_string(),
                        device: self.name(),
                        local: local.clone(),
                        remote,
                    });
                }
            }
        }

        // 4. install: one rename of the folder, then the pointers.
        let install = self.remote(
            "installing the new version",
            &format!(
                "cd {dir} && if [ -d {version} ]; then rm -rf {incoming}; echo kiln-existed; else mv {incoming} {version}; fi && chmod 755 {version}/{PROGRAM_NAME} && cur=$(cat current 2>/dev/null); if [ \"$cur\" != {version} ]; then if [ -n \"$cur\" ]; then echo \"$cur\" > previous.tmp && mv previous.tmp previous; fi; echo {version} > current.tmp && mv current.tmp current; fi"
            ),
        );
        let install = match install {
            Ok(f) => f,
            Err(e) => {
                self.discard(&incoming);
                return Err(e);
            }
        };
        let existed = install.stdout.lines().any(|l| l.trim() == "kiln-existed");
        let previous = if old_current.as_deref() == Some(version.as_str()) {
            old_previous.clone()
        } else {
            old_current.clone()
        };

        // 5. benchmark, under the power mode if one was asked for.
        let mut power = PowerOutcome::default();
        let restore = match (&bench.power, &self.transport) {
            (Some(plan), Transport::Ssh(_)) => self.set_power_mode(plan, &mut power),
            (Some(plan), Transport::Adb(_)) => {
                power.note(format!(
                    "power mode `{}` not set: kiln sets modes only on Jetson-class boards (nvpmodel over ssh); figures are at the phone's current governor setting",
                    plan.mode
                ));
                None
            }
            (None, _) => None,
        };
        let script = self.bench_script(&version, bench);
        let result = self.run_shell(&script, self.timeouts.bench);
        if let Some(prev_mode) = restore {
            self.restore_power_mode(prev_mode, &mut power);
        }
        let parsed = match result {
            Ok(f) => self.read_bench(&f, bench, &mut power),
            Err(e) => Err(e.to_string()),
        };
        let bench_report = match parsed {
            Ok(b) => b,
            Err(detail) => {
                let rollback = self.rollback(
                    &version,
                    existed,
                    old_current.as_deref(),
                    old_previous.as_deref(),
                );
                return Err(DeployError::Bench {
                    device: self.name(),
                    detail,
                    rollback,
                });
            }
        };

        // 6. keep only the new and the previous version.
        let keep_prev = previous.clone().unwrap_or_default();
        self.remote(
            "removing old versions",
            &format!(
                "cd {dir} && for d in m-*; do case \"$d\" in {version}|{}) ;; *) rm -rf \"$d\" ;; esac; done",
                if keep_prev.is_empty() { version.clone() } else { shell_quote(&keep_prev) }
            ),
        )?;
        Ok(FlashReport {
            device: self.name(),
            dir: self.dir.clone(),
            version,
            previous,
            bench: bench_report,
            power,
            commands: self.commands.clone(),
            dry_run: self.dry_run,
        })
    }

    /// The commands of the last flash (also of a failed one).
    pub fn commands(&self) -> &[String] {
        &self.commands
    }

    /// Best effort: remove a half-finished upload.
    fn discard(&mut self, incoming: &str) {
        let script = format!("rm -rf {}/{incoming}", shell_quote(&self.dir));
        let _ = self.run_shell(&script, self.timeouts.command);
    }

    /// Puts the pointers back as they were and removes the new version.
    fn rollback(
        &mut self,
        version: &str,
        existed: bool,
        current: Option<&str>,
        previous: Option<&str>,
    ) -> String {
        let dir = shell_quote(&self.dir);
        let set = |name: &str, value: Option<&str>| match value {
            Some(v) => format!(
                "echo {} > {name}.tmp && mv {name}.tmp {name}",
                shell_quote(v)
            ),
            None => format!("rm -f {name}"),
        };
        let remove = if existed || current == Some(version) || previous == Some(version) {
            ":".to_string()
        } else {
            format!("rm -rf {version}")
        };
        let script = format!(
            "cd {dir} && {} && {} && {remove}",
            set("current", current),
            set("previous", previous)
        );
        match self.remote("rolling back", &script) {
            Ok(_) => match current {
                Some(c) => format!("; rolled back to the previous version {c}"),
                None => "; the new version was removed (there was no previous one)".to_string(),
            },
            Err(e) => format!(
                "; ROLLBACK FAILED ({e}): {}/current may name the failed version",
                self.dir
            ),
        }
    }

    fn bench_script(&self, version: &str, bench: &BenchSettings) -> String {
        let dir = shell_quote(&self.dir);
        let runner = bench
            .runner
            .as_deref()
            .map(|r| format!("{r} "))
            .unwrap_or_default();
        let run = format!(
            "{runner}./{PROGRAM_NAME} --bench --warmup {} --runs {} --expect {EXPECTED_NAME} --source device {INPUT_NAME}",
            bench.warmup,
            bench.runs.max(1)
        );
        let rails: Vec<String> = bench
            .power
            .as_ref()
            .map(|p| p.rails.iter().map(|r| shell_quote(r)).collect())
            .unwrap_or_default();
        if rails.is_empty() {
            return format!("cd {dir}/{version} && {run}");
        }
        // At most one sample per 50 ms for the whole bench deadline.
        let max_samples = self.timeouts.bench.as_millis() / 50 + 1;
        format!(
            "cd {dir}/{version} || exit 125; rails='{}'; ok=1; for r in $rails; do [ -r \"$r\" ] || {{ echo \"kiln-rail-unreadable $r\"; ok=0; }}; done; rm -f .bench-done; sp=; if [ $ok = 1 ]; then ( n=0; while [ ! -e .bench-done ] && [ $n -lt {max_samples} ]; do s=0; for r in $rails; do read v < \"$r\"; s=$((s+v)); done; echo \"kiln-power-mw $s\"; n=$((n+1)); sleep 0.05; done ) & sp=$!; fi; {run}; rc=$?; touch .bench-done; [ -z \"$sp\" ] || wait $sp; rm -f .bench-done; exit $rc",
            rails.join(" ").replace('\'', "")
        )
    }

    /// Parses the bench output; a failure is the message for the user.
    fn read_bench(
        &self,
        f: &Finished,
        bench: &BenchSettings,
        power: &mut PowerOutcome,
    ) -> Result<Option<DeviceBench>, String> {
        if self.dry_run {
            return Ok(None);
        }
        if let Some(e) = self.unreachable(f) {
            return Err(e.to_string());
        }
        let json = f
            .stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('{'));
        let parsed: Option<DeviceBench> = json.and_then(|l| serde_json::from_str(l).ok());
        if !f.success() {
            let why = match (f.code, &parsed) {
                (Some(3), Some(b)) => format!(
                    "output check failed: max abs error {} > tolerance {}",
                    b.output_check
                        .as_ref()
                        .and_then(|c| c.max_abs_err)
                        .map_or("NaN".to_string(), |e| format!("{e:e}")),
                    b.output_check.as_ref().map_or(1e-4, |c| c.tolerance)
                ),
                (Some(126 | 127), _) => format!(
                    "the program or its runner `{}` cannot be started on the device",
                    bench.runner.as_deref().unwrap_or(PROGRAM_NAME)
                ),
                (Some(c), _) => format!("exit {c}"),
                (None, _) => "killed by a signal".to_string(),
            };
            let mut tail = last_lines(&f.stderr, 4);
            if tail.is_empty() {
                // adb without shell protocol v2 puts the program's stderr in stdout.
                let messages: String = f
                    .stdout
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.starts_with('{') && !l.starts_with("kiln-"))
                    .map(|l| format!("{l}\n"))
                    .collect();
                tail = last_lines(&messages, 4);
            }
            return Err(if tail.is_empty() {
                why
            } else {
                format!("{why}: {tail}")
            });
        }
        let b = parsed.ok_or_else(|| {
            format!(
                "no bench JSON line in the output: {}",
                last_lines(&f.stdout, 3)
            )
        })?;
        if b.source != "device" {
            return Err(format!(
                "the program labelled its figures `{}`, not `device`",
                b.source
            ));
        }
        match &b.output_check {
            Some(c) if c.passed => {}
            Some(c) => {
                return Err(format!(
                    "output check failed: max abs error {:?} > {}",
                    c.max_abs_err, c.tolerance
                ));
            }
            None => return Err("the program reported no output check".to_string()),
        }
        power.read_samples(&f.stdout, b.p50_us, bench.power.as_ref());
        Ok(Some(b))
    }
}

/// The line an adb shell script ends with: its exit status.
const ADB_STATUS_TAG: &str = "kiln-exit-status ";

/// `script` in a subshell followed by a line with its exit status. adb before
/// its shell protocol v2 (Android < 7, or an old adb) exits 0 whatever the
/// command did and mixes the command's stderr into stdout, so over adb kiln
/// takes the status from this line, never from adb's exit code alone.
fn adb_status_script(script: &str) -> String {
    format!("( {script}\n); echo \"{ADB_STATUS_TAG}$?\"")
}

/// Reads the status line [`adb_status_script`] printed and removes it. No
/// line while adb says all went well means the phone's shell never got to
/// the end (the connection dropped): not a success.
fn adb_status(mut f: Finished) -> Finished {
    let found = f.stdout.rfind(ADB_STATUS_TAG).map(|pos| {
        let code = f.stdout[pos + ADB_STATUS_TAG.len()..]
            .lines()
            .next()
            .and_then(|l| l.trim().parse::<i32>().ok());
        (pos, code)
    });
    match found {
        Some((pos, Some(code))) => {
            f.stdout.truncate(pos);
            // adb's own failure (its exit 1 with `adb: ...`) stays a failure.
            if f.code == Some(0) || !adb_own_failure(&f.stderr) {
                f.code = Some(code);
            }
        }
        _ if f.code == Some(0) => {
            f.code = None;
            f.stderr.push_str(
                "\nkiln: the phone's shell ended without reporting its exit status (adb connection lost?)",
            );
        }
        _ => {}
    }
    f
}

/// True when adb itself (not the program it ran on the phone) says the phone
/// cannot be reached. A program's own `sh: x: not found` on the phone is not
/// that: only adb's lines (`adb: ...`, `error: ...`) count.
fn adb_own_failure(stderr: &str) -> bool {
    stderr.lines().map(str::trim).any(|l| {
        (l.starts_with("adb: ") || l.starts_with("error: "))
            && [
                "no devices",
                "not found",
                "offline",
                "unauthorized",
                "more than one device",
                "no emulators",
            ]
            .iter()
            .any(|p| l.contains(p))
    })
}

/// The value after `tag ` on a line of `text`, if not empty.
fn tagged(text: &str, tag: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(tag))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adb_exit_status_comes_from_the_scripts_own_line() {
        let done = |code, stdout: &str, stderr: &str| Finished {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        };
        // An old adb: exit 0, CRLF line ends, the script failed with 3.
        let f = adb_status(done(Some(0), "{\"x\":1}\r\nkiln-exit-status 3\r\n", ""));
        assert_eq!(f.code, Some(3));
        assert_eq!(f.stdout, "{\"x\":1}\r\n");
        // A new adb agrees with the line.
        assert_eq!(
            adb_status(done(Some(0), "ok\nkiln-exit-status 0\n", "")).code,
            Some(0)
        );
        // No line although adb says 0: the shell never finished.
        let f = adb_status(done(Some(0), "partial output", ""));
        assert_eq!(f.code, None);
        assert!(f.stderr.contains("without reporting its exit status"));
        // adb's own failure stays one.
        let f = adb_status(done(Some(1), "", "adb: device 'X' not found"));
        assert_eq!(f.code, Some(1));
        // The wrapped script still runs under sh, exit included.
        let out = execute(
            &Cmd::new("sh")
                .arg("-c")
                .arg(adb_status_script("echo hi; exit 7")),
            Duration::from_secs(10),
        )
        .unwrap();
        let f = adb_status(Finished {
            code: Some(0),
            ..out
        });
        assert_eq!((f.code, f.stdout.as_str()), (Some(7), "hi\n"));
    }

    #[test]
    fn only_adbs_own_messages_mean_the_phone_is_unreachable() {
        for down in [
            "adb: device 'FAKE' not found",
            "adb: no devices/emulators found",
            "error: device offline",
            "error: device unauthorized.\nThis adb server's $ADB_VENDOR_KEYS is not set",
            "adb: more than one device/emulator",
        ] {
            assert!(adb_own_failure(down), "{down}");
        }
        // The program on the phone failing is the program's failure.
        for program in [
            "sh: ./kiln-model: not found",
            "/system/bin/sh: sha256sum: not found",
            "adb: error: failed to copy 'a' to '/data/local/tmp/x': remote No space left on device",
        ] {
            assert!(!adb_own_failure(program), "{program}");
        }
    }
}
