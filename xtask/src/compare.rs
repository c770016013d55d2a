//! `cargo xtask compare RUN_DIR... [--baseline RUN_DIR] -o OUT`: the search
//! quality benchmarks, from finished run folders.

use std::path::PathBuf;

use anyhow::Result;
use kiln_search::compare_runs::compare_runs;

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

pub fn run(args: Args) -> Result<()> {
    let files = compare_runs(
        &args.runs,
        args.baseline.as_deref(),
        args.tolerance,
        &args.out,
    )?;
    print!("{}", files.markdown);
    println!("wrote {}", files.html.display());
    Ok(())
}
