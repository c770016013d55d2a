//! The generated program's command-line contract, owned here beside its
//! template (`templates/model_main.rs`): what its bench mode prints and how
//! that line is read back, on this machine (kiln-measure) and on a device
//! (kiln-deploy).
//!
//! Protocol: `kiln-model [--bench --warmup W --runs N [--expect FILE]
//! [--source LABEL]] [INPUT_FILE]`. The program reads raw little-endian f32
//! input (NCHW, batch 1; exactly `INPUT_LEN` x 4 bytes) from INPUT_FILE or
//! stdin and writes raw little-endian f32 output (ONNX order) on stdout. With
//! `--bench` it runs the model W + N times (defaults 10 and 100; N at most
//! 10,000, 0 taken as 1) and prints one JSON line, [`BenchLine`], instead of
//! the output; with `--expect` it compares its output with FILE (LE f32) and
//! exits [`EXIT_OUTPUT_MISMATCH`] when they differ by more than
//! [`EXPECT_TOLERANCE`]. Other exit statuses: 0 success, 1 stdout could not
//! be written, 2 a usage error or input of the wrong size.
//!
//! The wasm32 build has no command line: its exports come from
//! `kiln_runtime::wasm_entry!`, which [`crate::generate`] writes into the
//! generated `src/lib.rs` (a bundle's, from `kiln_runtime::wasm_bundle_entry!`;
//! see [`crate::generate_bundle`]).

use serde::{Deserialize, Serialize};

/// Largest absolute difference the program's `--expect` check accepts
/// between its output and the expected one (the wasm simulation's).
pub const EXPECT_TOLERANCE: f32 = 1e-4;

/// Exit status of a bench run whose output check failed (the JSON line is
/// still printed).
pub const EXIT_OUTPUT_MISMATCH: i32 = 3;

/// The output check a program reports when given `--expect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgramOutputCheck {
    /// Largest absolute difference to the expected output; `None` when it is
    /// not a number (a NaN output fails the check).
    pub max_abs_err: Option<f64>,
    /// The tolerance the program applied ([`EXPECT_TOLERANCE`]).
    pub tolerance: f64,
    /// `max_abs_err <= tolerance`.
    pub passed: bool,
}

/// The JSON line a generated program prints in bench mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchLine {
    /// The `--source` label: `host` when run here (natively or under an
    /// emulator), `device` when run on the device.
    pub source: String,
    /// Timed runs (after the warm-up).
    pub runs: u64,
    /// Median wall-clock time of one inference (nearest rank), microseconds
    /// with three decimals (the program times in nanoseconds).
    pub p50_us: f64,
    /// 95th percentile (nearest rank), microseconds.
    pub p95_us: f64,
    /// Fastest run, microseconds.
    pub min_us: f64,
    /// Slowest run, microseconds.
    pub max_us: f64,
    /// VmHWM of the process (includes a runner such as qemu, if any), KiB;
    /// `None` where /proc/self/status has none.
    #[serde(default)]
    pub peak_rss_kib: Option<u64>,
    /// Present when the program was given `--expect`.
    #[serde(default)]
    pub output_check: Option<ProgramOutputCheck>,
}

impl BenchLine {
    /// Reads the last line of `stdout` that starts with `{` (other lines,
    /// such as power samples, may be interleaved) and checks it is coherent:
    /// runs > 0, min <= p50 <= p95 <= max, finite and not negative, and
    /// labelled `expected_source`.
    ///
    /// Errors: the message for the user (no such line, not JSON, a field
    /// missing, figures out of order, wrong label).
    pub fn parse(stdout: &str, expected_source: &str) -> Result<BenchLine, String> {
        let line = stdout
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| l.starts_with('{'))
            .ok_or_else(|| "no bench JSON line (no line starting with `{`)".to_string())?;
        let b: BenchLine = serde_json::from_str(line)
            .map_err(|e| format!("`{line}` is not a bench report: {e}"))?;
        if b.source != expected_source {
            return Err(format!(
                "source is `{}`: the program labelled its figures `{}`, not `{expected_source}`",
                b.source, b.source
            ));
        }
        let ordered = b.min_us <= b.p50_us && b.p50_us <= b.p95_us && b.p95_us <= b.max_us;
        if b.runs == 0 || !ordered || !b.min_us.is_finite() || b.min_us < 0.0 {
            return Err(format!(
                "figures are not ordered min <= p50 <= p95 <= max with runs > 0: `{line}`"
            ));
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"source":"device","runs":3,"p50_us":10.000,"p95_us":12.000,"min_us":9.000,"max_us":12.000,"peak_rss_kib":812,"output_check":{"max_abs_err":1.2e-7,"tolerance":1e-4,"passed":true}}"#;

    #[test]
    fn reads_the_last_json_line_among_others() {
        let out = format!("kiln-power-mw 5000\n{LINE}\nkiln-power-mw 5100\n");
        let b = BenchLine::parse(&out, "device").unwrap();
        assert_eq!(b.runs, 3);
        assert_eq!(b.peak_rss_kib, Some(812));
        assert!(b.output_check.unwrap().passed);
    }

    #[test]
    fn refuses_wrong_labels_and_disordered_figures() {
        let err = BenchLine::parse(LINE, "host").unwrap_err();
        assert!(err.contains("`device`, not `host`"), "{err}");
        let bad = LINE.replace("\"min_us\":9.000", "\"min_us\":11.000");
        assert!(
            BenchLine::parse(&bad, "device")
                .unwrap_err()
                .contains("ordered")
        );
        assert!(BenchLine::parse("nothing", "device").is_err());
    }

    #[test]
    fn the_template_applies_the_same_tolerance() {
        let template = include_str!("templates/model_main.rs");
        assert!(
            template.contains("const EXPECT_TOLERANCE: f32 = 1e-4;") && EXPECT_TOLERANCE == 1e-4,
            "templates/model_main.rs and program.rs disagree on the --expect tolerance"
        );
        assert!(template.contains(&format!("fail({EXIT_OUTPUT_MISMATCH},")));
    }

    #[test]
    fn older_lines_without_rss_or_check_still_read() {
        let line =
            r#"{"source":"host","runs":1,"p50_us":1.0,"p95_us":1.0,"min_us":1.0,"max_us":1.0}"#;
        let b = BenchLine::parse(line, "host").unwrap();
        assert_eq!(b.peak_rss_kib, None);
        assert!(b.output_check.is_none());
    }
}
