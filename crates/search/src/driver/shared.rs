//! A shared run (a PostgreSQL journal): the search process asks, workers on
//! any machine claim and evaluate.
//!
//! - [`run_shared_search`] is the ask side, in one place: it replays the
//!   journal into the strategy, keeps one pending trial per live evaluator
//!   (the workers' leases plus its own threads), tells the strategy each
//!   outcome as workers record it, and marks the run finished once the
//!   budget is spent and nothing is pending or running. Its own threads
//!   evaluate too (`SearchConfig::workers`, may be 0).
//! - [`work`] is a worker: threads that claim a pending trial (`SKIP
//!   LOCKED`), evaluate it in a folder of their own and record it, while the
//!   journal's heartbeat keeps their lease fresh; they leave when the run is
//!   finished and nothing is left to claim. A trial whose worker died goes
//!   back to pending when the next claim sees its lease stale.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{
    Progress, SearchConfig, SearchSummary, State, count, evaluate_caught, is_analytic_rejection,
    outcome_of, propose, replay_history, trial_dir, trial_line,
};
use crate::{
    EvalError, Evaluator, Journal, Outcome, SearchError, SearchSpace, Status, Strategy, TrialSpec,
};

/// How a worker works a shared run.
#[derive(Debug, Clone)]
pub struct WorkConfig {
    /// Evaluation threads (0 counts as 1).
    pub threads: usize,
    /// How long to wait before asking again when nothing is pending.
    pub poll: Duration,
    /// Set from outside (Ctrl-C): claim nothing more; a trial whose
    /// evaluation then fails goes back to pending for another worker.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Set by the caller to make the threads leave once their current trial
    /// is recorded, whether or not the run is finished.
    pub leave: Option<Arc<AtomicBool>>,
}

impl Default for WorkConfig {
    fn default() -> Self {
        Self {
            threads: 1,
            poll: Duration::from_millis(250),
            interrupt: None,
            leave: None,
        }
    }
}

/// What a worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkSummary {
    /// Trials it evaluated and recorded.
    pub evaluated: usize,
    /// Trials it evaluated but could not record: they were taken back
    /// (this worker was taken for dead) and another worker had them.
    pub taken_back: usize,
    /// Trials it sent back to pending (interrupted, or its evaluator stopped).
    pub sent_back: usize,
    /// Why its evaluator stopped it, if it did.
    pub stopped: Option<String>,
}

pub(super) fn flag_set(flag: &Option<Arc<AtomicBool>>) -> bool {
    flag.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Claims and evaluates trials of a shared run until the run is finished
/// and nothing is pending, or `config.interrupt` is set. Trial folders go
/// under `work_dir/trials/`. A panic or [`EvalError::Failed`] records the
/// trial failed; [`EvalError::Stop`] sends it back and stops this worker.
///
/// Errors: [`SearchError::Config`] for a folder journal, journal errors
/// (after the back end's retries), a stored point that does not parse, a
/// trial folder that cannot be created.
pub fn work<S: SearchSpace, E: Evaluator<S::Point>>(
    space: &S,
    evaluator: &E,
    journal: &Journal,
    work_dir: &Path,
    config: &WorkConfig,
    progress: &dyn Progress,
) -> Result<WorkSummary, SearchError> {
    let summary = Mutex::new(WorkSummary::default());
    let stop = AtomicBool::new(false);
    let results: Vec<Result<(), SearchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..config.threads.max(1))
            .map(|worker| {
                let (summary, stop) = (&summary, &stop);
                scope.spawn(move || {
                    let r = claim_loop(
                        space, evaluator, journal, work_dir, config, progress, worker, summary,
                        stop,
                    );
                    if r.is_err() {
                        stop.store(true, Ordering::SeqCst);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(SearchError::Config("a worker thread panicked".into())))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    summary
        .into_inner()
        .map_err(|_| SearchError::Config("a worker thread panicked".into()))
}

#[allow(clippy::too_many_arguments)]
fn claim_loop<S: SearchSpace, E: Evaluator<S::Point>>(
    space: &S,
    evaluator: &E,
    journal: &Journal,
    work_dir: &Path,
    config: &WorkConfig,
    progress: &dyn Progress,
    worker: usize,
    summary: &Mutex<WorkSummary>,
    stop: &AtomicBool,
) -> Result<(), SearchError> {
    let _ = space;
    let poisoned = || SearchError::Config("a worker thread panicked".into());
    loop {
        if flag_set(&config.interrupt) || flag_set(&config.leave) || stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        let Some(trial) = journal.claim()? else {
            if journal.is_finished()? {
                return Ok(());
            }
            std::thread::sleep(config.poll);
            continue;
        };
        let point: S::Point =
            serde_json::from_str(&trial.genome).map_err(|e| SearchError::Journal {
                path: journal.path().to_path_buf(),
                message: format!("trial {}: genome: {e}", trial.number),
            })?;
        let dir = trial_dir(work_dir, trial.number, &trial.genome_id);
        std::fs::create_dir_all(&dir).map_err(|e| SearchError::io(&dir, e))?;
        let spec = TrialSpec {
            number: trial.number,
            point,
            id: trial.genome_id.clone(),
            dir,
            worker,
        };
        let (status, evaluation, error) = match evaluate_caught(evaluator, &spec) {
            Ok(e) if e.violations.is_empty() => (Status::Done, Some(e), None),
            Ok(e) => (Status::Infeasible, Some(e), None),
            Err(EvalError::Failed(_)) if flag_set(&config.interrupt) => {
                journal.requeue(spec.number)?;
                summary.lock().map_err(|_| poisoned())?.sent_back += 1;
                return Ok(());
            }
            Err(EvalError::Failed(msg)) => (Status::Failed, None, Some(msg)),
            Err(EvalError::Stop(reason)) => {
                journal.requeue(spec.number)?;
                let mut s = summary.lock().map_err(|_| poisoned())?;
                s.sent_back += 1;
                s.stopped
                    .get_or_insert(format!("trial {} {}: {reason}", spec.number, spec.id));
                stop.store(true, Ordering::SeqCst);
                return Ok(());
            }
        };
        let recorded =
            journal.finish_claimed(spec.number, status, evaluation.as_ref(), error.as_deref())?;
        // the front can only hold feasible trials: their files go to the database, so
        // the report can be made on any machine
        if recorded && status == Status::Done {
            journal.put_trial_files(&spec.id, &spec.dir)?;
        }
        let mut s = summary.lock().map_err(|_| poisoned())?;
        if recorded {
            s.evaluated += 1;
            progress.trial_finished(&trial_line(
                spec.number,
                &spec.id,
                status,
                evaluation.as_ref(),
                error.as_deref(),
            ));
        } else {
            s.taken_back += 1;
            progress.trial_finished(&format!(
                "trial {} {}: taken back while this worker evaluated it (its heartbeat was \
                 late); another worker's result stands",
                spec.number, spec.id
            ));
        }
    }
}

/// The ask side of a shared run (see the module doc). Resumes whatever the
/// journal holds; pending trials stay where they are for any worker to
/// claim. Stops asking at the budget, the time budget, an interrupt or an
/// exhausted space, then waits for pending and running trials to finish
/// (not after an interrupt: they stay for the workers and `--resume`).
///
/// Errors: as [`super::run_search`]; [`SearchError::Stopped`] when one of its
/// own threads' evaluator answered [`EvalError::Stop`].
pub fn run_shared_search<S: SearchSpace, E: Evaluator<S::Point>>(
    space: &S,
    strategy: &mut dyn Strategy<S::Point>,
    evaluator: &E,
    journal: &Journal,
    run_dir: &Path,
    config: &SearchConfig,
    progress: &dyn Progress,
) -> Result<SearchSummary, SearchError> {
    let begun = Instant::now();
    let (progress_state, started, _) = replay_history(space, strategy, journal, config)?;
    let mut told: HashSet<u64> = journal
        .trials()?
        .iter()
        .filter(|t| t.status.is_finished())
        .map(|t| t.number)
        .collect();
    let mut st = State {
        strategy,
        pending: Default::default(),
        progress: progress_state,
        started,
        evaluated_now: 0,
        requeued_now: 0,
        stopped: None,
        fatal: None,
    };
    let leave = Arc::new(AtomicBool::new(false));
    let work_config = WorkConfig {
        threads: config.workers,
        interrupt: config.interrupt.clone(),
        leave: Some(leave.clone()),
        ..WorkConfig::default()
    };
    let quiet = super::NoProgress;
    // Set when the search's own threads stopped early (an error, or their
    // evaluator's Stop): asking ends too rather than wait for other workers.
    let local_stopped = AtomicBool::new(false);
    let (asked, worked) = std::thread::scope(|scope| {
        let local = (config.workers > 0).then(|| {
            scope.spawn(|| {
                let r = work(space, evaluator, journal, run_dir, &work_config, &quiet);
                if !r.as_ref().is_ok_and(|w| w.stopped.is_none()) {
                    local_stopped.store(true, Ordering::SeqCst);
                }
                r
            })
        });
        let asked = ask_loop(
            space,
            evaluator,
            journal,
            config,
            progress,
            &mut st,
            &mut told,
            begun,
            &local_stopped,
        );
        // Done (the run is finished), interrupted or failed: the local
        // threads leave; an unfinished run stays open for the workers and
        // --resume.
        leave.store(true, Ordering::SeqCst);
        let worked = local.map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(SearchError::Config("a search worker panicked".into())))
        });
        (asked, worked)
    });
    asked?;
    if let Some(worked) = worked {
        let w = worked?;
        st.requeued_now += w.sent_back;
        if let Some(reason) = w.stopped {
            return Err(SearchError::Stopped {
                reason,
                finished: st.progress.finished,
            });
        }
    }
    Ok(SearchSummary {
        state: st.progress,
        evaluated_now: st.evaluated_now,
        stopped: st.stopped.unwrap_or_else(|| "budget spent".into()),
        requeued_now: st.requeued_now,
    })
}

#[allow(clippy::too_many_arguments)]
fn ask_loop<S: SearchSpace, E: Evaluator<S::Point>>(
    space: &S,
    evaluator: &E,
    journal: &Journal,
    config: &SearchConfig,
    progress: &dyn Progress,
    st: &mut State<'_, S::Point>,
    told: &mut HashSet<u64>,
    begun: Instant,
    local_stopped: &AtomicBool,
) -> Result<(), SearchError> {
    let poll = Duration::from_millis(200);
    loop {
        if local_stopped.load(Ordering::SeqCst) {
            st.stopped = Some("stopped by the evaluator".into());
            return Ok(());
        }
        let trials = journal.trials()?;
        let (mut pending, mut running) = (0, 0);
        for t in &trials {
            match t.status {
                Status::Pending => pending += 1,
                Status::Running => running += 1,
                // Analytic rejections were told when asked (here or in replay).
                _ if told.insert(t.number) && !is_analytic_rejection(t) => {
                    let point: S::Point =
                        serde_json::from_str(&t.genome).map_err(|e| SearchError::Journal {
                            path: journal.path().to_path_buf(),
                            message: format!("trial {}: genome: {e}", t.number),
                        })?;
                    let outcome = outcome_of(t, config).unwrap_or(Outcome::Failed);
                    st.strategy.tell(&point, outcome);
                    count(&mut st.progress, t.status, t.evaluation.as_ref());
                    st.evaluated_now += 1;
                    progress.trial_finished(&trial_line(
                        t.number,
                        &t.genome_id,
                        t.status,
                        t.evaluation.as_ref(),
                        t.error.as_deref(),
                    ));
                }
                _ => {}
            }
        }
        st.progress.running = running;
        progress.update(&st.progress);
        if config.interrupted() {
            st.stopped = Some("interrupted".into());
            return Ok(());
        }
        if st.stopped.is_none() {
            if config.trials.is_some_and(|n| st.started >= n) {
                st.stopped = Some(format!("{} trials evaluated", st.started));
            } else if config.time_budget.is_some_and(|b| begun.elapsed() >= b) {
                st.stopped = Some("time budget spent".into());
            }
        }
        // One pending trial per evaluator that could claim it now.
        let want = (journal.live_workers()? + config.workers).max(1);
        while st.stopped.is_none() && pending < want {
            // Journalled pending (and counted as started) by `propose`.
            if propose(space, evaluator, journal, config, st)?.is_none() {
                break;
            }
            pending += 1;
            if config.trials.is_some_and(|n| st.started >= n) {
                st.stopped = Some(format!("{} trials evaluated", st.started));
            }
        }
        if st.stopped.is_some() && pending == 0 && running == 0 {
            journal.set_finished(true)?;
            return Ok(());
        }
        std::thread::sleep(poll);
    }
}
