//! `compare.md`, `compare.svg` and `compare.html` from finished run folders:
//! the quality benchmarks of [`crate::compare`] written out.

use std::path::{Path, PathBuf};

use crate::compare::{RunCurve, curves_svg, markdown, seed_pairs, versus_baseline};
use crate::{Journal, SearchError};

/// What [`compare_runs`] wrote.
#[derive(Debug, Clone)]
pub struct ComparisonFiles {
    /// The tables, as written to `compare.md`.
    pub markdown: String,
    /// `compare.html` (curves and tables).
    pub html: PathBuf,
}

fn label(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

fn open(dir: &Path) -> Result<Journal, SearchError> {
    if !Journal::exists_in(dir) {
        return Err(SearchError::Config(format!(
            "{}: no journal.sqlite here; give the run folder of `cargo xtask search`",
            dir.display()
        )));
    }
    Journal::open(dir)
}

/// Compares the searches journalled in `runs` (one target), optionally
/// against the single trial of a `baseline` run within `tolerance_points`
/// percentage points of accuracy, and writes the three files into `out`.
///
/// Errors: [`SearchError::Config`] for a folder without a journal, a run that began
/// from earlier searches' judgments (`search --no-warm-start` makes runs to compare), runs for
/// different targets, a baseline for another target or a tolerance outside
/// 0..100; [`SearchError::Report`] for a baseline without an evaluated trial
/// or a failed plot; [`SearchError::Io`] for a file that cannot be written;
/// [`SearchError::Journal`] for a journal that cannot be read.
pub fn compare_runs(
    runs: &[PathBuf],
    baseline: Option<&Path>,
    tolerance_points: f64,
    out: &Path,
) -> Result<ComparisonFiles, SearchError> {
    if !(0.0..=100.0).contains(&tolerance_points) {
        return Err(SearchError::Config(format!(
            "--tolerance {tolerance_points} is not a number of percentage points in 0..100"
        )));
    }
    let mut curves = Vec::new();
    for dir in runs {
        curves.push(RunCurve::from_journal(&label(dir), &open(dir)?)?);
    }
    let targets: Vec<&str> = curves.iter().map(|c| c.target.as_str()).collect();
    if targets.windows(2).any(|w| w[0] != w[1]) {
        return Err(SearchError::Config(format!(
            "the runs searched for different targets ({}); compare runs of one target",
            targets.join(", ")
        )));
    }
    let pairs = seed_pairs(&curves);
    let baseline = match baseline {
        None => None,
        Some(dir) => {
            let journal = open(dir)?;
            let target = journal.meta()?.get("target").unwrap_or("?").to_string();
            if let Some(t) = targets.first()
                && *t != target
            {
                return Err(SearchError::Config(format!(
                    "baseline {} was evaluated for `{target}`, the runs for `{t}`",
                    dir.display()
                )));
            }
            let trials = journal.trials()?;
            Some(versus_baseline(
                &curves,
                &label(dir),
                &trials,
                tolerance_points / 100.0,
            )?)
        }
    };
    let md = markdown(&curves, &pairs, baseline.as_ref());
    let svg = curves_svg(&curves)?;
    std::fs::create_dir_all(out).map_err(|e| SearchError::io(out, e))?;
    let write = |name: &str, text: &str| -> Result<PathBuf, SearchError> {
        let path = out.join(name);
        std::fs::write(&path, text).map_err(|e| SearchError::io(&path, e))?;
        Ok(path)
    };
    write("compare.md", &md)?;
    write("compare.svg", &svg)?;
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>kiln search comparison</title>\
         <style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #bbb;padding:4px 8px}}</style></head><body>\
         <h1>Search comparison</h1>{svg}<pre>{}</pre></body></html>\n",
        md.replace('&', "&amp;").replace('<', "&lt;")
    );
    let html = write("compare.html", &html)?;
    Ok(ComparisonFiles { markdown: md, html })
}
