//! `cargo xtask worker --journal postgres://...`: evaluate trials of a search
//! run shared through a database, on this machine.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use kiln_pipeline::worker::{WorkerRequest, worker};
use kiln_search::driver::ProgressState;

use crate::common::{DataArgs, DeviceArgs, targets_dir};

/// Join a search started with `cargo xtask search --journal URL -o RUN_DIR` and evaluate its
/// trials here: claim a pending trial, train, build and measure it with the run's settings,
/// record the result, until the search marks the run finished. Start as many as you like, on
/// any machine with this kiln checkout and the run's data; a worker whose kiln runtime or data
/// differ from the run's refuses to join, naming the difference. A worker that dies is noticed
/// after a grace period (60 s, or $KILN_JOURNAL_GRACE_S) and its trial goes to another.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run's database: postgres://USER@HOST[:PORT]/DB (also $KILN_JOURNAL).
    #[arg(long, value_name = "URL")]
    pub journal: Option<String>,
    /// The run to join (RUN_DIR's folder name); may be left out when the database holds one
    /// unfinished run.
    #[arg(long, value_name = "NAME")]
    pub run: Option<String>,
    /// Candidates evaluated at once (each trains on one thread).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    #[command(flatten)]
    pub data: Box<DataArgs>,
    /// Folder of device profiles (the run's target is found by name).
    #[arg(long, value_name = "DIR")]
    pub targets_dir: Option<PathBuf>,
    #[command(flatten)]
    pub dev: DeviceArgs,
    /// Where this worker writes its trials' folders (DIR/<run>/trials/...).
    #[arg(
        short = 'o',
        long = "out",
        value_name = "DIR",
        default_value = "kiln-worker"
    )]
    pub out: PathBuf,
}

struct Lines;

impl kiln_search::Progress for Lines {
    fn update(&self, _state: &ProgressState) {}
    fn trial_finished(&self, line: &str) {
        eprintln!("{line}");
    }
}

pub fn run(args: Args) -> Result<()> {
    let journal = args
        .journal
        .clone()
        .or_else(|| std::env::var("KILN_JOURNAL").ok())
        .context("--journal postgres://USER@HOST/DB (or $KILN_JOURNAL) names the run's database")?;
    let interrupt = Arc::new(AtomicBool::new(false));
    let flag = interrupt.clone();
    let set = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\nCtrl-C: no new trials; finishing the running ones (Ctrl-C again stops at once)"
        );
    });
    if let Err(e) = set {
        eprintln!("warning: Ctrl-C cannot be caught ({e}); it will stop the worker at once");
    }
    let request = WorkerRequest {
        journal,
        run: args.run.clone(),
        data: args.data.load()?,
        data_identity: args.data.identity(),
        targets_dir: args.targets_dir.clone().unwrap_or_else(targets_dir),
        threads: args.workers.max(1),
        work_dir: args.out.clone(),
        interrupt,
        device: args.dev.spec(),
    };
    let summary = worker(request, &Lines, &mut |line| eprintln!("{line}"))?;
    println!(
        "worker done: {} trials evaluated, {} taken back by the run, {} sent back to pending",
        summary.evaluated, summary.taken_back, summary.sent_back
    );
    if let Some(reason) = summary.stopped {
        anyhow::bail!("stopped: {reason}");
    }
    Ok(())
}
