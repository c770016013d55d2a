//! The benchmark on the device: the program's bench mode run in its version
//! folder (under the profile's runner, with the power sampler beside it when
//! rails are named), and its output read back with kiln-codegen's
//! [`BenchLine`], the one reader of that line.

use kiln_codegen::program::{BenchLine, EXIT_OUTPUT_MISMATCH, EXPECT_TOLERANCE};
use kiln_process::{Finished, shell_quote};

use crate::transport::last_lines;
use crate::{
    DeployError, Device, EXPECTED_NAME, INPUT_NAME, PROGRAM_NAME, PowerOutcome, PowerPlan,
    Transport,
};

/// The `--source` label of figures measured on the device.
const DEVICE_SOURCE: &str = "device";

/// How the benchmark runs on the device.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchSettings {
    /// Untimed runs before the timed ones (`--warmup`).
    pub warmup: u64,
    /// Timed runs (`--runs`, at least 1).
    pub runs: u64,
    /// A program the device runs the binary under (`qemu-aarch64` for an
    /// emulated device): a shell fragment from the device profile.
    pub runner: Option<String>,
    /// The power mode to benchmark in and the rails to sample; `None` runs
    /// at the device's current mode and measures no power.
    pub power: Option<PowerPlan>,
}

impl Device {
    /// Runs the benchmark of the installed `version`, under the power mode
    /// if one was asked for (restored afterwards), and reads its figures;
    /// `None` in a dry run. A failure is the message for the user.
    pub(crate) fn run_benchmark(
        &mut self,
        version: &str,
        bench: &BenchSettings,
    ) -> Result<(Option<BenchLine>, PowerOutcome), String> {
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
        let script = self.bench_script(version, bench);
        let result = self.run_shell(&script, self.timeouts.bench);
        if let Some(prev_mode) = restore {
            self.restore_power_mode(prev_mode, &mut power);
        }
        let figures = match result {
            Ok(f) => self.read_bench(&f, bench, &mut power)?,
            Err(e) => return Err(e.to_string()),
        };
        Ok((figures, power))
    }

    /// Runs the program of `version` (installed with
    /// [`Device::install_program`]) in its folder, under `runner` when given
    /// (the profile's, e.g. `qemu-aarch64`), with `args` and the first
    /// `input_bytes` bytes of its input on stdin, within the benchmark
    /// deadline; returns what it printed. kiln-pipeline's latency tables run
    /// a bundle's members this way (`INDEX [--io] --bench ...`).
    ///
    /// Errors: [`DeployError::Unreachable`] when the device stops answering;
    /// [`DeployError::Remote`] (step `running the installed program`) when
    /// the program exits non-zero; [`DeployError::Spawn`],
    /// [`DeployError::Timeout`], [`DeployError::Io`].
    pub fn run_installed(
        &mut self,
        version: &str,
        runner: Option<&str>,
        args: &[String],
        input_bytes: usize,
    ) -> Result<String, DeployError> {
        let runner = runner.map(|r| format!("{r} ")).unwrap_or_default();
        let args: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        let script = format!(
            "cd {}/{} && head -c {input_bytes} {INPUT_NAME} | {runner}./{PROGRAM_NAME} {}",
            shell_quote(&self.dir),
            shell_quote(version),
            args.join(" ")
        );
        let f = self.remote_within(
            "running the installed program",
            &script,
            self.timeouts.bench,
        )?;
        Ok(f.stdout_text())
    }

    /// The shell line that runs the bench mode in the version folder; with
    /// power rails, a sampler loop in the same shell prints
    /// `kiln-power-mw N` (the rails' sum, milliwatts) every 50 ms until the
    /// program ends.
    fn bench_script(&self, version: &str, bench: &BenchSettings) -> String {
        let dir = shell_quote(&self.dir);
        let runner = bench
            .runner
            .as_deref()
            .map(|r| format!("{r} "))
            .unwrap_or_default();
        let run = format!(
            "{runner}./{PROGRAM_NAME} --bench --warmup {} --runs {} --expect {EXPECTED_NAME} --source {DEVICE_SOURCE} {INPUT_NAME}",
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

    /// Parses the bench output; a failure is the message for the user. The
    /// line is read even when the program failed, to report a failed output
    /// check with its figures.
    fn read_bench(
        &self,
        f: &Finished,
        bench: &BenchSettings,
        power: &mut PowerOutcome,
    ) -> Result<Option<BenchLine>, String> {
        if self.dry_run {
            return Ok(None);
        }
        if let Some(e) = self.unreachable(f) {
            return Err(e.to_string());
        }
        let stdout = f.stdout_text();
        let parsed = BenchLine::parse(&stdout, DEVICE_SOURCE);
        if !f.success() {
            return Err(failure(f, &stdout, parsed.ok().as_ref(), bench));
        }
        let b = parsed.map_err(|e| {
            if stdout.lines().any(|l| l.trim().starts_with('{')) {
                e
            } else {
                format!(
                    "no bench JSON line in the output: {}",
                    last_lines(&stdout, 3)
                )
            }
        })?;
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
        power.read_samples(&stdout, b.p50_us, bench.power.as_ref());
        Ok(Some(b))
    }
}

/// Why a bench run that exited non-zero failed, with the last lines of what
/// the program said.
fn failure(f: &Finished, stdout: &str, line: Option<&BenchLine>, bench: &BenchSettings) -> String {
    let why = match (f.code, line) {
        (Some(EXIT_OUTPUT_MISMATCH), Some(b)) => format!(
            "output check failed: max abs error {} > tolerance {}",
            b.output_check
                .as_ref()
                .and_then(|c| c.max_abs_err)
                .map_or("NaN".to_string(), |e| format!("{e:e}")),
            b.output_check
                .as_ref()
                .map_or(EXPECT_TOLERANCE.to_string(), |c| c.tolerance.to_string())
        ),
        (Some(126 | 127), _) => format!(
            "the program or its runner `{}` cannot be started on the device",
            bench.runner.as_deref().unwrap_or(PROGRAM_NAME)
        ),
        (Some(c), _) => format!("exit {c}"),
        (None, _) => "killed by a signal".to_string(),
    };
    let mut tail = last_lines(&f.stderr_text(), 4);
    if tail.is_empty() {
        // adb without shell protocol v2 puts the program's stderr in stdout.
        let messages: String = stdout
            .lines()
            .map(str::trim)
            .filter(|l| !l.starts_with('{') && !l.starts_with("kiln-"))
            .map(|l| format!("{l}\n"))
            .collect();
        tail = last_lines(&messages, 4);
    }
    if tail.is_empty() {
        why
    } else {
        format!("{why}: {tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AdbTarget;

    fn settings() -> BenchSettings {
        BenchSettings {
            warmup: 1,
            runs: 3,
            runner: None,
            power: None,
        }
    }

    fn finished(code: Option<i32>, stdout: &str, stderr: &str) -> Finished {
        Finished {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    const LINE: &str = r#"{"source":"device","runs":3,"p50_us":10.0,"p95_us":12.0,"min_us":9.0,"max_us":12.0,"peak_rss_kib":812,"output_check":{"max_abs_err":null,"tolerance":1e-4,"passed":false}}"#;

    #[test]
    fn a_failed_check_is_reported_from_the_line_of_a_failed_run() {
        let d = Device::new(
            Transport::Adb(AdbTarget { serial: None }),
            "/data/local/tmp/k",
        );
        let f = finished(
            Some(EXIT_OUTPUT_MISMATCH),
            &format!("{LINE}\nmismatch\n"),
            "",
        );
        let err = d
            .read_bench(&f, &settings(), &mut PowerOutcome::default())
            .unwrap_err();
        assert_eq!(
            err,
            "output check failed: max abs error NaN > tolerance 0.0001: mismatch"
        );
        // The same line from a run that exited 0 still fails the check.
        let f = finished(Some(0), LINE, "");
        let err = d
            .read_bench(&f, &settings(), &mut PowerOutcome::default())
            .unwrap_err();
        assert_eq!(err, "output check failed: max abs error None > 0.0001");
    }

    #[test]
    fn a_mislabelled_or_missing_line_is_refused() {
        let d = Device::new(
            Transport::Adb(AdbTarget { serial: None }),
            "/data/local/tmp/k",
        );
        let host = LINE.replace("\"device\"", "\"host\"");
        let err = d
            .read_bench(
                &finished(Some(0), &host, ""),
                &settings(),
                &mut PowerOutcome::default(),
            )
            .unwrap_err();
        assert!(
            err.contains("the program labelled its figures `host`, not `device`"),
            "{err}"
        );
        let err = d
            .read_bench(
                &finished(Some(0), "a\nb\nc\nd\n", ""),
                &settings(),
                &mut PowerOutcome::default(),
            )
            .unwrap_err();
        assert_eq!(err, "no bench JSON line in the output: b | c | d");
    }
}
