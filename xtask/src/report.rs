//! `cargo xtask report RUN_DIR`: regenerate a search's outputs from its journal.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kiln_search::Journal;
use kiln_search::journal::Location;
use kiln_search::report::write_report;

use crate::common::targets_dir;

/// Rewrite front.json, trials.csv, report.html and front/ of a search run
/// folder from its journal (journal.sqlite). Works on a finished, a killed
/// or a running search. With --journal, from a shared run's database alone
/// (on any machine): the front's model files are the ones its workers stored.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run folder of `cargo xtask search`.
    pub run_dir: PathBuf,
    /// Folder of device profiles (for the constraint lines).
    #[arg(long, value_name = "DIR")]
    pub targets_dir: Option<PathBuf>,
    /// A shared run's database, postgres://USER@HOST/DB (also $KILN_JOURNAL); the run is
    /// --run, or RUN_DIR's folder name, as `search` names it; RUN_DIR receives the report.
    #[arg(long, value_name = "URL")]
    pub journal: Option<String>,
    /// The shared run's name (default: RUN_DIR's folder name).
    #[arg(long, value_name = "NAME", requires = "journal")]
    pub run: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    let url = args
        .journal
        .clone()
        .or_else(|| std::env::var("KILN_JOURNAL").ok());
    let journal = match url {
        None => Journal::open(&args.run_dir)?,
        Some(url) => {
            let run = args.run.clone().unwrap_or_else(|| {
                args.run_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            std::fs::create_dir_all(&args.run_dir)
                .with_context(|| format!("creating {}", args.run_dir.display()))?;
            Journal::open_at(&Location::parse(&url, &run)?)?
        }
    };
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
