//! Runs a strategy against an evaluator with N workers, journalling every
//! step. Nothing here knows what a point is or how it is evaluated.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::constraints::Violation;
use crate::objective::{keys, objective_vector};
use crate::strategy::Origin;
use crate::{
    EvalError, Evaluation, Evaluator, Fitness, Journal, Objective, Outcome, SearchError,
    SearchSpace, Status, Strategy, TrialRecord, TrialSpec,
};

/// When a search stops and how it runs.
#[derive(Debug, Clone)]
pub struct SearchConfig {
    /// Stop asking once this many trials were evaluated (analytic rejections,
    /// which cost nothing, do not count).
    pub trials: Option<usize>,
    /// Stop asking once this much time passed (running trials finish).
    pub time_budget: Option<Duration>,
    /// Worker threads evaluating at once (0 counts as 1).
    pub workers: usize,
    /// What a strategy's tournament compares.
    pub fitness: Fitness,
    /// The objective values told with a feasible outcome (NSGA-II parent
    /// selection ranks by them); accuracy and latency by default.
    pub objectives: Vec<Objective>,
    /// Stop when this many proposals in a row were already in the journal
    /// (the space, or the strategy's reach, is exhausted) or analytically
    /// rejected.
    pub max_fruitless_asks: usize,
    /// Set from outside (a Ctrl-C handler) to stop the search early: no new
    /// trial starts, and a trial whose evaluation fails from then on goes
    /// back to pending instead of being recorded as failed (the interrupt
    /// may have killed its build or benchmark), so `--resume` evaluates it.
    pub interrupt: Option<Arc<AtomicBool>>,
}

impl SearchConfig {
    fn interrupted(&self) -> bool {
        self.interrupt
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::SeqCst))
    }

    /// Whether a failed evaluation was the interrupt's doing. A terminal's Ctrl-C
    /// reaches the trial's build and the handler that sets the flag at once, and the
    /// build may die first: with an interrupt to watch, a failure waits up to half a
    /// second for the flag before it counts as the trial's own.
    fn failure_was_interrupt(&self) -> bool {
        if self.interrupt.is_none() {
            return false;
        }
        for _ in 0..10 {
            if self.interrupted() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        self.interrupted()
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        Self {
            trials: Some(16),
            time_budget: None,
            workers: 2,
            fitness: Fitness::Accuracy,
            objectives: vec![Objective::Accuracy, Objective::Latency],
            max_fruitless_asks: 500,
            interrupt: None,
        }
    }
}

/// Counts shown while a search runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProgressState {
    /// Evaluated trials finished (done + infeasible + failed, analytic
    /// rejections excluded).
    pub finished: usize,
    /// Finished trials that met every hard constraint.
    pub feasible: usize,
    /// Trials that could not be evaluated.
    pub failed: usize,
    /// Measured trials that broke a hard constraint.
    pub infeasible: usize,
    /// Rejected before training by an analytic bound.
    pub rejected_analytic: usize,
    /// Trials being evaluated now.
    pub running: usize,
    /// Best validation accuracy (fraction in 0..1) of a feasible trial.
    pub best_accuracy: Option<f64>,
    /// [`SearchConfig::trials`], for the bar's length.
    pub budget: Option<usize>,
}

/// Receives progress; the CLI draws a bar with it.
pub trait Progress: Sync {
    /// The counts changed (a trial started or ended).
    fn update(&self, state: &ProgressState);
    /// A trial finished; one line for a log.
    fn trial_finished(&self, _record_line: &str) {}
}

/// Ignores progress.
pub struct NoProgress;
impl Progress for NoProgress {
    fn update(&self, _state: &ProgressState) {}
}

/// How a search ended.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchSummary {
    /// The final counts (earlier runs of a resumed search included).
    pub state: ProgressState,
    /// Trials evaluated by this call (not by an earlier, resumed run).
    pub evaluated_now: usize,
    /// Why asking stopped.
    pub stopped: String,
    /// Trials an interrupt sent back to pending (they wait for `--resume`).
    pub requeued_now: usize,
}

/// The folder of a trial's artifacts inside a run folder:
/// `trials/NNNN-ID`, with the number zero-padded to 4 digits and the id cut
/// to its first 16 characters.
pub fn trial_dir(run_dir: &Path, number: u64, id: &str) -> PathBuf {
    run_dir
        .join("trials")
        .join(format!("{number:04}-{}", &id[..id.len().min(16)]))
}

/// True for a trial rejected before training (no metrics, only predicted violations).
pub fn is_analytic_rejection(t: &TrialRecord) -> bool {
    t.status == Status::Infeasible
        && t.evaluation.as_ref().is_some_and(|e| {
            e.metrics.is_empty()
                && e.violations.iter().all(|v| {
                    v.actual
                        .is_some_and(|a| a.source == crate::Source::Predicted)
                })
        })
}

/// The outcome a finished record means for a strategy under `config`'s
/// fitness and objectives: `None` for pending or running trials. A `done`
/// trial whose fitness cannot be computed (a metric missing) counts as
/// [`Outcome::Failed`]; one missing an objective is told without objective values.
pub fn outcome_of(t: &TrialRecord, config: &SearchConfig) -> Option<Outcome> {
    match t.status {
        Status::Done => Some(t.evaluation.as_ref().map_or(Outcome::Failed, |e| {
            config
                .fitness
                .of(&e.metrics)
                .map_or(Outcome::Failed, |fitness| Outcome::Feasible {
                    fitness,
                    objectives: objective_vector(&e.metrics, &config.objectives)
                        .unwrap_or_default(),
                })
        })),
        Status::Infeasible => Some(Outcome::Infeasible),
        Status::Failed => Some(Outcome::Failed),
        Status::Pending | Status::Running => None,
    }
}

struct Job<P> {
    number: u64,
    point: P,
    id: String,
}

struct State<'a, P> {
    strategy: &'a mut dyn Strategy<P>,
    pending: std::collections::VecDeque<Job<P>>,
    progress: ProgressState,
    /// Evaluations started, counted against `trials` (includes earlier runs).
    started: usize,
    evaluated_now: usize,
    requeued_now: usize,
    stopped: Option<String>,
    /// Why an evaluator stopped the search ([`EvalError::Stop`]).
    fatal: Option<String>,
}

/// Runs the search until its budget is spent; resumes whatever `journal`
/// already holds (pending trials first), after replaying its history into
/// `strategy`. A panic or [`EvalError::Failed`] in an evaluation records the
/// trial failed and the search goes on.
///
/// Errors: [`SearchError::Stopped`] when the evaluator answered
/// [`EvalError::Stop`]; [`SearchError::Journal`] for a journal error or a
/// stored genome that does not parse; [`SearchError::Io`] when a trial
/// folder cannot be created; [`SearchError::Config`] when a worker panicked
/// outside an evaluation.
pub fn run_search<S: SearchSpace, E: Evaluator<S::Point>>(
    space: &S,
    strategy: &mut dyn Strategy<S::Point>,
    evaluator: &E,
    journal: &Journal,
    run_dir: &Path,
    config: &SearchConfig,
    progress: &dyn Progress,
) -> Result<SearchSummary, SearchError> {
    let begun = Instant::now();
    let (state, started, pending) = replay_history(space, strategy, journal, config)?;

    let shared = Mutex::new(State {
        strategy,
        pending,
        progress: state,
        started,
        evaluated_now: 0,
        requeued_now: 0,
        stopped: None,
        fatal: None,
    });
    let abort = AtomicBool::new(false);
    let workers = config.workers.max(1);
    let results: Vec<Result<(), SearchError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                let shared = &shared;
                let abort = &abort;
                scope.spawn(move || {
                    let r = worker_loop(
                        space, evaluator, journal, run_dir, config, progress, shared, worker, begun,
                    );
                    if r.is_err() {
                        abort.store(true, Ordering::SeqCst);
                    }
                    r
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(SearchError::Config("a search worker panicked".into())))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    let state = shared
        .into_inner()
        .map_err(|_| SearchError::Config("a search worker panicked".into()))?;
    if let Some(reason) = state.fatal {
        return Err(SearchError::Stopped {
            reason,
            finished: state.progress.finished,
        });
    }
    Ok(SearchSummary {
        state: state.progress,
        evaluated_now: state.evaluated_now,
        stopped: state.stopped.unwrap_or_else(|| "budget spent".into()),
        requeued_now: state.requeued_now,
    })
}

/// What a journal's history left: counts, evaluations started, trials to evaluate.
type Replayed<P> = (ProgressState, usize, std::collections::VecDeque<Job<P>>);

/// Replays a journal's history into `strategy`: the counts so far, the
/// evaluations started (against the budget) and the trials still to
/// evaluate (pending or running), by number.
fn replay_history<S: SearchSpace>(
    _space: &S,
    strategy: &mut dyn Strategy<S::Point>,
    journal: &Journal,
    config: &SearchConfig,
) -> Result<Replayed<S::Point>, SearchError> {
    let history = journal.trials()?;
    let mut replay = Vec::with_capacity(history.len());
    let mut pending = std::collections::VecDeque::new();
    let mut state = ProgressState {
        budget: config.trials,
        ..ProgressState::default()
    };
    let mut started = 0;
    for t in &history {
        let point: S::Point =
            serde_json::from_str(&t.genome).map_err(|e| SearchError::Journal {
                path: journal.path().to_path_buf(),
                message: format!("trial {}: genome: {e}", t.number),
            })?;
        let outcome = outcome_of(t, config);
        if is_analytic_rejection(t) {
            state.rejected_analytic += 1;
        } else {
            started += 1;
            count(&mut state, t.status, t.evaluation.as_ref());
        }
        if outcome.is_none() {
            pending.push_back(Job {
                number: t.number,
                point: point.clone(),
                id: t.genome_id.clone(),
            });
        }
        replay.push((point, outcome));
    }
    strategy.replay(&replay);
    Ok((state, started, pending))
}

fn count(state: &mut ProgressState, status: Status, evaluation: Option<&Evaluation>) {
    match status {
        Status::Done => {
            state.finished += 1;
            state.feasible += 1;
            if let Some(acc) = evaluation.and_then(|e| e.metrics.get(keys::ACCURACY)) {
                state.best_accuracy =
                    Some(state.best_accuracy.map_or(acc.value, |b| b.max(acc.value)));
            }
        }
        Status::Infeasible => {
            state.finished += 1;
            state.infeasible += 1;
        }
        Status::Failed => {
            state.finished += 1;
            state.failed += 1;
        }
        Status::Pending | Status::Running => {}
    }
}

#[allow(clippy::too_many_arguments)]
fn worker_loop<S: SearchSpace, E: Evaluator<S::Point>>(
    space: &S,
    evaluator: &E,
    journal: &Journal,
    run_dir: &Path,
    config: &SearchConfig,
    progress: &dyn Progress,
    shared: &Mutex<State<'_, S::Point>>,
    worker: usize,
    begun: Instant,
) -> Result<(), SearchError> {
    let poisoned = || SearchError::Config("a search worker panicked".into());
    loop {
        let job = {
            let mut st = shared.lock().map_err(|_| poisoned())?;
            let job = next_job(space, evaluator, journal, config, &mut st, begun)?;
            if job.is_some() {
                st.progress.running += 1;
                progress.update(&st.progress);
            }
            job
        };
        let Some(job) = job else { return Ok(()) };
        journal.start(job.number)?;
        let dir = trial_dir(run_dir, job.number, &job.id);
        std::fs::create_dir_all(&dir).map_err(|e| SearchError::io(&dir, e))?;
        let spec = TrialSpec {
            number: job.number,
            point: job.point,
            id: job.id,
            dir,
            worker,
        };
        let result = evaluate_caught(evaluator, &spec);
        let (status, evaluation, error) = match result {
            Ok(e) if e.violations.is_empty() => (Status::Done, Some(e), None),
            Ok(e) => (Status::Infeasible, Some(e), None),
            Err(EvalError::Failed(_)) if config.failure_was_interrupt() => {
                progress.trial_finished(&format!(
                    "trial {} {}: interrupted, back to pending",
                    spec.number, spec.id
                ));
                return send_back(journal, shared, progress, spec.number, |st| {
                    st.requeued_now += 1;
                    st.stopped.get_or_insert_with(|| "interrupted".into());
                });
            }
            Err(EvalError::Failed(msg)) => (Status::Failed, None, Some(msg)),
            Err(EvalError::Stop(reason)) => {
                return send_back(journal, shared, progress, spec.number, |st| {
                    if st.fatal.is_none() {
                        st.fatal = Some(format!("trial {} {}: {reason}", spec.number, spec.id));
                    }
                    st.stopped = Some("stopped by the evaluator".into());
                });
            }
        };
        journal.finish(spec.number, status, evaluation.as_ref(), error.as_deref())?;
        let line = trial_line(
            spec.number,
            &spec.id,
            status,
            evaluation.as_ref(),
            error.as_deref(),
        );
        let mut st = shared.lock().map_err(|_| poisoned())?;
        let record = TrialRecord {
            number: spec.number,
            genome_id: spec.id.clone(),
            genome: String::new(),
            origin: String::new(),
            status,
            evaluation,
            error,
            created_at: 0.0,
            started_at: None,
            finished_at: None,
            attempts: 0,
        };
        let outcome = outcome_of(&record, config).unwrap_or(Outcome::Failed);
        st.strategy.tell(&spec.point, outcome);
        st.progress.running = st.progress.running.saturating_sub(1);
        count(&mut st.progress, status, record.evaluation.as_ref());
        st.evaluated_now += 1;
        progress.trial_finished(&line);
        progress.update(&st.progress);
    }
}

/// Puts a trial that is not the candidate's fault (the device went away, or
/// a Ctrl-C killed its build or benchmark) back to pending for `--resume`,
/// and records why in the shared state.
fn send_back<'a, P>(
    journal: &Journal,
    shared: &Mutex<State<'a, P>>,
    progress: &dyn Progress,
    number: u64,
    record: impl FnOnce(&mut State<'a, P>),
) -> Result<(), SearchError> {
    journal.requeue(number)?;
    let mut st = shared
        .lock()
        .map_err(|_| SearchError::Config("a search worker panicked".into()))?;
    st.progress.running = st.progress.running.saturating_sub(1);
    record(&mut st);
    progress.update(&st.progress);
    Ok(())
}

/// Evaluates one trial; a panic becomes [`EvalError::Failed`].
fn evaluate_caught<P, E: Evaluator<P>>(
    evaluator: &E,
    spec: &TrialSpec<P>,
) -> Result<Evaluation, EvalError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| evaluator.evaluate(spec)))
        .unwrap_or_else(|panic| {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(EvalError::Failed(format!("evaluator panicked: {msg}")))
        })
}

/// The log line of a finished trial.
fn trial_line(
    number: u64,
    id: &str,
    status: Status,
    evaluation: Option<&Evaluation>,
    error: Option<&str>,
) -> String {
    match (evaluation, error) {
        (_, Some(e)) => format!(
            "trial {number} {id}: failed: {}",
            e.lines().next().unwrap_or("")
        ),
        (Some(e), None) => format!("trial {number} {id}: {}{}", status.as_str(), brief(e)),
        (None, None) => format!("trial {number} {id}: {}", status.as_str()),
    }
}

fn brief(e: &Evaluation) -> String {
    let mut parts = Vec::new();
    for (k, label) in [
        (keys::ACCURACY, "acc"),
        (keys::LATENCY_MS, "latency"),
        (keys::SIZE_BYTES, "size"),
    ] {
        if let Some(f) = e.metrics.get(k) {
            parts.push(format!("{label} {} ({})", f.value_with_unit(), f.source));
        }
    }
    for v in &e.violations {
        parts.push(format!("broke {v}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(": {}", parts.join(", "))
    }
}

fn next_job<S: SearchSpace, E: Evaluator<S::Point>>(
    space: &S,
    evaluator: &E,
    journal: &Journal,
    config: &SearchConfig,
    st: &mut State<'_, S::Point>,
    begun: Instant,
) -> Result<Option<Job<S::Point>>, SearchError> {
    if st.stopped.is_some() {
        return Ok(None);
    }
    if config.interrupted() {
        st.stopped = Some("interrupted".into());
        return Ok(None);
    }
    if let Some(job) = st.pending.pop_front() {
        // Re-queued from an earlier run: it already counts as started.
        return Ok(Some(job));
    }
    if config.trials.is_some_and(|n| st.started >= n) {
        st.stopped = Some(format!("{} trials evaluated", st.started));
        return Ok(None);
    }
    if config.time_budget.is_some_and(|b| begun.elapsed() >= b) {
        st.stopped = Some("time budget spent".into());
        return Ok(None);
    }
    propose(space, evaluator, journal, config, st)
}

/// Asks the strategy until it proposes a point that is new and passes the
/// precheck, journals it pending and returns it; analytic rejections are
/// journalled and told on the way. `None` (with [`State::stopped`] set)
/// when too many proposals in a row were fruitless.
fn propose<S: SearchSpace, E: Evaluator<S::Point>>(
    space: &S,
    evaluator: &E,
    journal: &Journal,
    config: &SearchConfig,
    st: &mut State<'_, S::Point>,
) -> Result<Option<Job<S::Point>>, SearchError> {
    let mut fruitless = 0;
    loop {
        if fruitless >= config.max_fruitless_asks {
            st.stopped = Some(format!(
                "{fruitless} proposals in a row were already evaluated or broke a constraint analytically; the space looks exhausted"
            ));
            return Ok(None);
        }
        let (point, origin) = st.strategy.ask();
        let id = space.id(&point);
        if let Some(existing) = journal.find(&id)? {
            // Evaluated once only: a finished duplicate is told again from
            // the journal (it ages the population like a re-evaluation would).
            if let Some(outcome) = outcome_of(&existing, config) {
                st.strategy.tell(&point, outcome);
            }
            fruitless += 1;
            continue;
        }
        let genome = serde_json::to_string(&point).map_err(|e| SearchError::Journal {
            path: journal.path().to_path_buf(),
            message: format!("genome {id}: {e}"),
        })?;
        let violations: Vec<Violation> = evaluator.precheck(&point);
        if !violations.is_empty() {
            let eval = Evaluation {
                violations,
                ..Evaluation::default()
            };
            journal.insert(
                &id,
                &genome,
                origin_name(origin),
                Status::Infeasible,
                Some(&eval),
            )?;
            st.strategy.tell(&point, Outcome::Infeasible);
            st.progress.rejected_analytic += 1;
            fruitless += 1;
            continue;
        }
        let number = journal.insert(&id, &genome, origin_name(origin), Status::Pending, None)?;
        st.started += 1;
        return Ok(Some(Job { number, point, id }));
    }
}

fn origin_name(o: Origin) -> &'static str {
    o.as_str()
}

mod failover;
mod shared;
pub use failover::{StrategyFactory, Takeover, WorkerOutcome, work_with_takeover};
pub use shared::{WorkConfig, WorkSummary, run_shared_search, work};

#[cfg(test)]
mod tests;
