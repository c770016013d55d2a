//! The CI benchmark's baseline: figures of a fixed suite of models under the
//! simulated device, compared with a committed file. A figure that grows by
//! more than its stated tolerance fails the benchmark.
//!
//! Fuel is exact for a given toolchain, so its tolerance is tight; sizes get a
//! little room for toolchain noise; arena bytes are exact.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Errors reading or writing a baseline file.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    /// The file could not be read (e.g. it does not exist yet).
    #[error("cannot read baseline {path}: {source}; create it with `cargo xtask bench --update`")]
    Read {
        /// The baseline file.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a JSON [`Baseline`].
    #[error("baseline {path} is not valid: {detail}")]
    Parse {
        /// The baseline file.
        path: PathBuf,
        /// serde_json's message.
        detail: String,
    },
    /// Creating its folder, serialising or writing failed.
    #[error("cannot write baseline {path}: {source}")]
    Write {
        /// The baseline file.
        path: PathBuf,
        /// The operating system's (or serialiser's) error.
        #[source]
        source: std::io::Error,
    },
}

/// The figures kept for one model of the suite, from its wasm32 build: fuel
/// and peak memory are `sim`, section sizes are read from the file, the
/// arena is the compiler's plan. Plain numbers in the JSON file, no labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BenchEntry {
    /// The suite member's name; entries are matched by it.
    pub name: String,
    /// What the model is (e.g. a genome id): a changed identity means the
    /// suite changed, not that the model regressed.
    pub identity: String,
    /// Fuel of one simulated inference (wasm operators).
    pub fuel: u64,
    /// The wasm code section, bytes.
    pub wasm_code_bytes: u64,
    /// The wasm data section (weights and other constants), bytes.
    pub wasm_data_bytes: u64,
    /// The planned arena, bytes.
    pub arena_bytes: u64,
    /// Peak wasm linear memory of the simulated run, bytes.
    pub peak_memory_bytes: u64,
}

/// Allowed growth per figure, in percent of the baseline value (the
/// defaults: fuel 0.5, code 2, data 1, arena and peak memory 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tolerances {
    /// For [`BenchEntry::fuel`].
    pub fuel_pct: f64,
    /// For [`BenchEntry::wasm_code_bytes`].
    pub code_pct: f64,
    /// For [`BenchEntry::wasm_data_bytes`].
    pub data_pct: f64,
    /// For [`BenchEntry::arena_bytes`].
    pub arena_pct: f64,
    /// For [`BenchEntry::peak_memory_bytes`].
    pub peak_memory_pct: f64,
}

impl Default for Tolerances {
    fn default() -> Self {
        Self {
            fuel_pct: 0.5,
            code_pct: 2.0,
            data_pct: 1.0,
            arena_pct: 0.0,
            peak_memory_pct: 0.0,
        }
    }
}

/// The committed baseline file (e.g. `bench/baseline-wasm-sim.json`, pretty JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The profile the suite was measured for (e.g. `wasm-sim`).
    pub target: String,
    /// Says where the figures come from and how they are compared.
    pub note: String,
    /// Allowed growth per figure; stored in the file, so a baseline carries
    /// its own limits.
    pub tolerances: Tolerances,
    /// One entry per suite member.
    pub entries: Vec<BenchEntry>,
}

impl Baseline {
    /// A baseline for `target` with the standard note.
    pub fn new(target: &str, tolerances: Tolerances, entries: Vec<BenchEntry>) -> Self {
        Self {
            target: target.to_string(),
            note: "sim figures of the wasm32 build under wasmtime (fuel is exact per toolchain); \
                   a figure may grow by at most its tolerance in percent"
                .to_string(),
            tolerances,
            entries,
        }
    }

    /// Reads the JSON file at `path`.
    ///
    /// Errors: [`BaselineError::Read`], [`BaselineError::Parse`].
    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|e| BaselineError::Parse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Writes pretty JSON with a final newline to `path`, creating its folder.
    ///
    /// Errors: [`BaselineError::Write`].
    pub fn save(&self, path: &Path) -> Result<(), BaselineError> {
        let write = |source| BaselineError::Write {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write)?;
        }
        let mut text =
            serde_json::to_string_pretty(self).map_err(|e| write(std::io::Error::other(e)))?;
        text.push('\n');
        std::fs::write(path, text).map_err(write)
    }
}

/// How one figure moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Unchanged.
    Same,
    /// Smaller than the baseline.
    Improved,
    /// Grew, within tolerance.
    Within,
    /// Grew by more than the tolerance: fails the benchmark.
    Regressed,
}

/// One figure of one model, baseline against this run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FigureChange {
    /// The suite member's name.
    pub model: String,
    /// `fuel`, `wasm code bytes`, `wasm data bytes`, `arena bytes` or
    /// `peak memory bytes`.
    pub figure: &'static str,
    /// The baseline's value.
    pub baseline: u64,
    /// This run's value.
    pub current: u64,
    /// (current - baseline) / baseline x 100; infinite when the baseline is
    /// 0 and the figure is not.
    pub change_pct: f64,
    /// The allowed growth, percent.
    pub tolerance_pct: f64,
    /// How the figure moved.
    pub verdict: Verdict,
}

/// The result of comparing a run with the baseline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// Every figure of every model found in both, in baseline order.
    pub changes: Vec<FigureChange>,
    /// One message per model in the baseline but not in this run, whose
    /// identity changed, or in this run but not in the baseline.
    pub suite_mismatch: Vec<String>,
}

impl Comparison {
    /// The changes whose verdict is [`Verdict::Regressed`].
    pub fn regressions(&self) -> impl Iterator<Item = &FigureChange> {
        self.changes
            .iter()
            .filter(|c| c.verdict == Verdict::Regressed)
    }

    /// No regression and the suite matches the baseline.
    pub fn passes(&self) -> bool {
        self.suite_mismatch.is_empty() && self.regressions().next().is_none()
    }
}

/// Checks that [`compare`] catches a regression: raises the fuel of the
/// first model of `current` to twice the fuel tolerance over its baseline
/// and compares again. `Ok` carries a line for the user; `Err` says the
/// planted regression went unnoticed.
pub fn self_test(baseline: &Baseline, current: &[BenchEntry]) -> Result<String, String> {
    let mut planted = current.to_vec();
    let first = planted
        .first_mut()
        .ok_or_else(|| "self-test: the suite is empty".to_string())?;
    let name = first.name.clone();
    let base_fuel = baseline
        .entries
        .iter()
        .find(|b| b.name == name)
        .map_or(first.fuel, |b| b.fuel);
    let raise_pct = 2.0 * baseline.tolerances.fuel_pct.max(0.01);
    first.fuel = (base_fuel as f64 * (1.0 + raise_pct / 100.0)).ceil() as u64;
    let caught = compare(baseline, &planted)
        .regressions()
        .any(|c| c.model == name && c.figure == "fuel" && c.verdict == Verdict::Regressed);
    if caught {
        Ok(format!(
            "self-test: a planted fuel regression on {name} (+{raise_pct:.2}%) is caught"
        ))
    } else {
        Err(format!(
            "self-test FAILED: a planted fuel regression on {name} was not caught"
        ))
    }
}

/// Compares `current` with `baseline` figure by figure, models matched by
/// name; a model whose identity changed is a suite mismatch, not compared.
pub fn compare(baseline: &Baseline, current: &[BenchEntry]) -> Comparison {
    let t = baseline.tolerances;
    let mut changes = Vec::new();
    let mut suite_mismatch = Vec::new();
    for base in &baseline.entries {
        let Some(now) = current.iter().find(|e| e.name == base.name) else {
            suite_mismatch.push(format!("{}: not in this run", base.name));
            continue;
        };
        if now.identity != base.identity {
            suite_mismatch.push(format!(
                "{}: model changed ({} -> {})",
                base.name, base.identity, now.identity
            ));
            continue;
        }
        let figures = [
            ("fuel", base.fuel, now.fuel, t.fuel_pct),
            (
                "wasm code bytes",
                base.wasm_code_bytes,
                now.wasm_code_bytes,
                t.code_pct,
            ),
            (
                "wasm data bytes",
                base.wasm_data_bytes,
                now.wasm_data_bytes,
                t.data_pct,
            ),
            (
                "arena bytes",
                base.arena_bytes,
                now.arena_bytes,
                t.arena_pct,
            ),
            (
                "peak memory bytes",
                base.peak_memory_bytes,
                now.peak_memory_bytes,
                t.peak_memory_pct,
            ),
        ];
        for (figure, was, is, tolerance_pct) in figures {
            let change_pct = if was == 0 {
                if is == 0 { 0.0 } else { f64::INFINITY }
            } else {
                (is as f64 - was as f64) / was as f64 * 100.0
            };
            let verdict = if is == was {
                Verdict::Same
            } else if is < was {
                Verdict::Improved
            } else if change_pct <= tolerance_pct {
                Verdict::Within
            } else {
                Verdict::Regressed
            };
            changes.push(FigureChange {
                model: base.name.clone(),
                figure,
                baseline: was,
                current: is,
                change_pct,
                tolerance_pct,
                verdict,
            });
        }
    }
    for now in current {
        if !baseline.entries.iter().any(|b| b.name == now.name) {
            suite_mismatch.push(format!("{}: not in the baseline", now.name));
        }
    }
    Comparison {
        changes,
        suite_mismatch,
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::new();
        for c in &self.changes {
            let verdict = match c.verdict {
                Verdict::Same => "same",
                Verdict::Improved => "improved",
                Verdict::Within => "within tolerance",
                Verdict::Regressed => "REGRESSED",
            };
            let _ = writeln!(
                out,
                "  {:<28} {:<18} {:>14} -> {:>14} {:>+8.3}% (limit +{}%) {verdict}",
                c.model, c.figure, c.baseline, c.current, c.change_pct, c.tolerance_pct
            );
        }
        for m in &self.suite_mismatch {
            let _ = writeln!(
                out,
                "  suite mismatch: {m}; run `cargo xtask bench --update` if intended"
            );
        }
        f.write_str(&out)
    }
}
