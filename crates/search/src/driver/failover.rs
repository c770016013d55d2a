//! A shared run's ask side moves to a worker when the search process dies.
//!
//! The strategy runs in one place, the process holding the run's search lease. A
//! worker started with a [`Takeover`] watches that lease while its threads evaluate:
//! when the lease is stale (its holder's heartbeat older than twice the run's grace period,
//! or its process gone from this host) and the run is not finished, the worker takes
//! the lease itself ([`Journal::resume_at`], which refuses every worker but the
//! first), rebuilds the strategy from the journal as `--resume` would, and asks until
//! the run's budget is spent. A search that stopped cleanly (Ctrl-C) gives its lease
//! up, so its run waits for `--resume` instead of moving.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::shared::{WorkConfig, WorkSummary, flag_set, run_shared_search, work};
use super::{Progress, SearchConfig, SearchSummary};
use crate::journal::{LeaseOptions, Location};
use crate::{Evaluator, Journal, RunMeta, SearchError, SearchSpace, Strategy};

/// Builds the run's strategy and search settings for a worker that takes the ask side
/// over (from what the search stored in the run).
pub type StrategyFactory<'a, P> =
    &'a (dyn Fn() -> Result<(Box<dyn Strategy<P>>, SearchConfig), SearchError> + Sync);

/// What a worker needs to take the ask side over.
pub struct Takeover<'a, P> {
    /// The run.
    pub location: &'a Location,
    /// Its identity (as stored: the takeover resumes it).
    pub meta: &'a RunMeta,
    /// Its lease settings.
    pub options: LeaseOptions,
    /// The strategy and settings the search asked with.
    pub strategy: StrategyFactory<'a, P>,
}

/// What a worker did, and the search it took over, if it did.
#[derive(Debug, Default)]
pub struct WorkerOutcome {
    /// Its evaluations.
    pub work: WorkSummary,
    /// The ask side's summary when this worker took it over.
    pub asked: Option<SearchSummary>,
}

/// [`work`], and meanwhile, with `takeover`, the watch described in the module doc
/// (every half grace period while the run is unfinished).
///
/// Errors: as [`work`]; the takeover's journal and strategy errors.
pub fn work_with_takeover<S: SearchSpace, E: Evaluator<S::Point>>(
    space: &S,
    evaluator: &E,
    journal: &Journal,
    work_dir: &Path,
    config: &WorkConfig,
    progress: &dyn Progress,
    takeover: Option<Takeover<'_, S::Point>>,
) -> Result<WorkerOutcome, SearchError> {
    let Some(takeover) = takeover else {
        let work = work(space, evaluator, journal, work_dir, config, progress)?;
        return Ok(WorkerOutcome { work, asked: None });
    };
    // the threads leave when the ask side fails here, so its error is not held back
    let leave = config
        .leave
        .clone()
        .unwrap_or_else(|| Arc::new(AtomicBool::new(false)));
    let config = &WorkConfig {
        leave: Some(leave.clone()),
        ..config.clone()
    };
    let done = AtomicBool::new(false);
    let watch =
        (takeover.options.grace / 2).clamp(Duration::from_millis(100), Duration::from_secs(10));
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let r = work(space, evaluator, journal, work_dir, config, progress);
            done.store(true, Ordering::SeqCst);
            r
        });
        let mut asked = None;
        let mut failed = None;
        while !done.load(Ordering::SeqCst) && asked.is_none() && failed.is_none() {
            std::thread::sleep(watch);
            if flag_set(&config.interrupt) {
                break;
            }
            match ask_if_orphaned(
                space, evaluator, journal, work_dir, config, progress, &takeover,
            ) {
                Ok(summary) => asked = summary,
                Err(e) => failed = Some(e),
            }
        }
        if failed.is_some() {
            leave.store(true, Ordering::SeqCst);
        }
        let work = worker
            .join()
            .unwrap_or_else(|_| Err(SearchError::Config("a worker thread panicked".into())));
        match failed {
            Some(e) => Err(e),
            None => Ok(WorkerOutcome { work: work?, asked }),
        }
    })
}

/// Takes the ask side over if the run is unfinished and its search died; `None` when it
/// did not (nothing to take, or another worker was first).
fn ask_if_orphaned<S: SearchSpace, E: Evaluator<S::Point>>(
    space: &S,
    evaluator: &E,
    journal: &Journal,
    work_dir: &Path,
    config: &WorkConfig,
    progress: &dyn Progress,
    takeover: &Takeover<'_, S::Point>,
) -> Result<Option<SearchSummary>, SearchError> {
    if journal.is_finished()? || !journal.search_died(&takeover.options)? {
        return Ok(None);
    }
    let ask = match Journal::resume_at(takeover.location, takeover.meta, &takeover.options) {
        Ok(j) => j,
        // another worker took it first
        Err(SearchError::Busy { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    progress.trial_finished(&format!(
        "the search process of {} stopped heart-beating: this worker ({}) asks from now on",
        takeover.location.display(),
        ask.holder().describe()
    ));
    let (mut strategy, mut search) = (takeover.strategy)()?;
    // this worker's threads evaluate; the ask side only asks
    search.workers = 0;
    search.interrupt = config.interrupt.clone();
    let summary = run_shared_search(
        space,
        strategy.as_mut(),
        evaluator,
        &ask,
        work_dir,
        &search,
        progress,
    )?;
    Ok(Some(summary))
}
