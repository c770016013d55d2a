//! `cargo xtask report RUN_DIR`: regenerate a search's outputs from its journal.

use std::path::PathBuf;

use anyhow::Result;
use kiln_search::Journal;
use kiln_search::report::write_report;

use crate::common::targets_dir;

/// Rewrite front.json, trials.csv, report.html and front/ of a search run
/// folder from its journal (journal.sqlite). Works on a finished, a killed
/// or a running search.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder of `cargo xtask search`.
    pub run_dir: PathBuf,
    /// Folder of device profiles (for the constraint lines).
    #[arg(long, value_name = "DIR")]
    pub targets_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let journal = Journal::open(&args.run_dir)?;
    let meta = journal.meta()?;
    let targets = args.targets_dir.unwrap_or_else(targets_dir);
    // Without its profile the report has no constraint line, nothing worse.
    let target = meta
        .get("target")
        .and_then(|name| kiln_target::load(&targets, name).ok());
    let files = write_report(&args.run_dir, &journal, target.as_ref(), &meta.objectives())?;
    println!(
        "{} models on the front; wrote {}, {}, {}",
        files.front.len(),
        files.front_json.display(),
        files.trials_csv.display(),
        files.report_html.display()
    );
    Ok(())
}
