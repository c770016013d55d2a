//! `cargo xtask report RUN_DIR`: regenerate a search's outputs from its journal.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kiln_search::Journal;
use kiln_search::journal::Location;
use kiln_search::report::write_report;

use crate::common::targets_dir;

/// Rewrite front.json, trials.csv, report.html and front/ of a search run folder from its
/// journal (a finished, killed or running search; with --journal, a shared run's database).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder of `cargo xtask search`.
    pub run_dir: PathBuf,
    /// Folder of device profiles (for the constraint lines).
    #[arg(long, value_name = "DIR")]
    pub targets_dir: Option<PathBuf>,
    /// A shared run's database, postgres://USER@HOST/DB (also $KILN_JOURNAL).
    #[arg(long, value_name = "URL")]
    pub journal: Option<String>,
    /// The shared run's name (default: RUN_DIR's folder name, as `search` names it).
    #[arg(long, value_name = "NAME")]
    pub run: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let url = (args.journal.clone()).or_else(|| std::env::var("KILN_JOURNAL").ok());
    let location = Location::of_run(&args.run_dir, url.as_deref(), args.run.as_deref())?;
    let journal = Journal::open_at(&location)?;
    std::fs::create_dir_all(&args.run_dir).context("creating the report's folder")?;
    let meta = journal.meta()?;
    let targets = args.targets_dir.unwrap_or_else(targets_dir); // else no constraint line
    let target = (meta.get("target")).and_then(|name| kiln_target::load(&targets, name).ok());
    let files = write_report(&args.run_dir, &journal, target.as_ref(), &meta.objectives())?;
    let (json, csv) = (files.front_json.display(), files.trials_csv.display());
    let (n, html) = (files.front.len(), files.report_html.display());
    println!("{n} models on the front; wrote {json}, {csv}, {html}");
    Ok(())
}
