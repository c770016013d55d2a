//! `cargo xtask compare RUN_DIR... [--baseline RUN_DIR] -o OUT`: the search
//! quality benchmarks, from finished run folders.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kiln_search::Journal;
use kiln_search::compare::{RunCurve, curves_svg, markdown, seed_pairs, versus_baseline};

/// Compare searches: best feasible accuracy against trials for every run,
/// evolution against random search of the same seed (how many trials
/// evolution needed to reach the random search's best, as a fraction of the
/// shared budget; the goal is a median <= 0.5), and optionally the
/// runs' fronts against a baseline run (a search of a one-point space such
/// as spaces/mobilenetv2-28px.toml, same target, data and epochs): the
/// fastest front model within --tolerance points of the baseline's accuracy
/// and its speed-up (goal >= 1.5x).
///
/// Writes OUT/compare.md (tables), OUT/compare.svg (curves) and
/// OUT/compare.html (both), and prints the tables.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Run folders of `cargo xtask search` (journal.sqlite in each).
    #[arg(required = true, value_name = "RUN_DIR")]
    pub runs: Vec<PathBuf>,
    /// Run folder of the baseline's search (its first evaluated trial is the baseline).
    #[arg(long, value_name = "RUN_DIR")]
    pub baseline: Option<PathBuf>,
    /// Accuracy tolerance against the baseline, in percentage points.
    #[arg(long, default_value_t = 0.5)]
    pub tolerance: f64,
    /// Where to write compare.md, compare.svg and compare.html.
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    pub out: PathBuf,
}

fn label(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string())
}

fn open(dir: &Path) -> Result<Journal> {
    if !Journal::exists_in(dir) {
        bail!(
            "{}: no journal.sqlite here; give the run folder of `cargo xtask search`",
            dir.display()
        );
    }
    Journal::open(dir).with_context(|| format!("opening the journal of {}", dir.display()))
}

pub fn run(args: Args) -> Result<()> {
    if !(0.0..=100.0).contains(&args.tolerance) {
        bail!(
            "--tolerance {} is not a number of percentage points in 0..100",
            args.tolerance
        );
    }
    let mut curves = Vec::new();
    for dir in &args.runs {
        let journal = open(dir)?;
        curves.push(
            RunCurve::from_journal(&label(dir), &journal)
                .with_context(|| format!("reading {}", dir.display()))?,
        );
    }
    let targets: Vec<&str> = curves.iter().map(|c| c.target.as_str()).collect();
    if targets.windows(2).any(|w| w[0] != w[1]) {
        bail!(
            "the runs searched for different targets ({}); compare runs of one target",
            targets.join(", ")
        );
    }
    let pairs = seed_pairs(&curves);
    let baseline = match &args.baseline {
        None => None,
        Some(dir) => {
            let journal = open(dir)?;
            let target = journal.meta()?.get("target").unwrap_or("?").to_string();
            if let Some(t) = targets.first()
                && *t != target
            {
                bail!(
                    "baseline {} was evaluated for `{target}`, the runs for `{t}`",
                    dir.display()
                );
            }
            let trials = journal.trials()?;
            Some(
                versus_baseline(&curves, &label(dir), &trials, args.tolerance / 100.0)
                    .with_context(|| format!("baseline {}", dir.display()))?,
            )
        }
    };
    let md = markdown(&curves, &pairs, baseline.as_ref());
    let svg = curves_svg(&curves)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
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
    let html_path = write("compare.html", &html)?;
    print!("{md}");
    println!("wrote {}", html_path.display());
    Ok(())
}
