//! The weight-sharing search's second phase: candidates were judged by inherited accuracy
//! and predicted latency only; the front is now built and measured for real, and judged
//! on the measured figures, until every front model has been measured.

use kiln_search::driver::trial_dir;
use kiln_search::evaluator::FIGURES;
use kiln_search::objective::keys;
use kiln_search::report::front;
use kiln_search::{
    EvalError, Evaluation, Evaluator, Journal, Objective, Status, TrialRecord, TrialSpec,
};
use kiln_space::Genome;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::PipelineError;
use crate::evaluate::PipelineEvaluator;

/// [`kiln_search::Evaluation::labels`] value of a trial whose figures are predicted.
pub(crate) const PREDICTED_ONLY: &str = "judged only: accuracy inherited, latency predicted";

/// Builds and measures every front member of `journal` still judged only, with
/// `evaluator` (which must build), records the measured evaluation in its place (the
/// prediction kept as `predicted_latency_ms`), and repeats while the front changes;
/// `workers` build at once. Returns how many candidates were built and measured.
///
/// Errors: the journal; an evaluation that stops the search (a device that does not
/// answer).
pub(crate) fn confirm_front(
    run_dir: &std::path::Path,
    journal: &Journal,
    evaluator: &PipelineEvaluator,
    objectives: &[Objective],
    workers: usize,
    note: &mut dyn FnMut(&str),
) -> Result<usize, PipelineError> {
    let mut built = 0;
    // each round measures at least one trial, and there are finitely many
    loop {
        let trials = journal.trials()?;
        let pending: Vec<_> = front(&trials, objectives)
            .into_iter()
            .map(|(t, _)| t)
            .filter(|t| {
                t.evaluation
                    .as_ref()
                    .and_then(|e| e.labels.get(FIGURES))
                    .is_some_and(|f| f == PREDICTED_ONLY)
            })
            .collect();
        if pending.is_empty() {
            return Ok(built);
        }
        let results = re_evaluate_all(run_dir, evaluator, &pending, workers);
        for (t, result) in pending.into_iter().zip(results) {
            match result? {
                Ok(eval) => {
                    let status = if eval.violations.is_empty() {
                        Status::Done
                    } else {
                        Status::Infeasible
                    };
                    note(&format!(
                        "front candidate {} built and measured: {}",
                        t.number,
                        if status == Status::Done {
                            "feasible"
                        } else {
                            "infeasible as measured"
                        }
                    ));
                    journal.finish(t.number, status, Some(&eval), None)?;
                }
                Err(EvalError::Failed(msg)) => {
                    journal.finish(t.number, Status::Failed, None, Some(&msg))?;
                }
                Err(EvalError::Stop(msg)) => return Err(PipelineError::Invalid(msg)),
            }
            built += 1;
        }
    }
}

/// [`re_evaluate`] of each of `trials`, `workers` at a time (each with its own worker
/// number, so its own build folder), the results in the order of `trials`.
pub(crate) fn re_evaluate_all(
    run_dir: &std::path::Path,
    evaluator: &PipelineEvaluator,
    trials: &[TrialRecord],
    workers: usize,
) -> Vec<Result<Result<Evaluation, EvalError>, PipelineError>> {
    in_queue(trials, workers, |t, worker| {
        re_evaluate(run_dir, evaluator, t, worker)
    })
}

/// `f` of each of `items` with its worker number (0-based), `workers` threads (at least
/// one, at most one an item) taking the next item as they finish one; the results in the
/// order of `items`, one each. A panic in `f` panics here once the other workers have
/// emptied the queue.
pub(crate) fn in_queue<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T, usize) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..workers.clamp(1, items.len().max(1)))
            .map(|worker| {
                let (next, f) = (&next, &f);
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::SeqCst);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item, worker)));
                    }
                    mine
                })
            })
            .collect();
        let joined = threads.into_iter().map(|t| t.join());
        joined
            .flat_map(|r| r.unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

/// Evaluates journalled trial `t` again with `evaluator` in its own folder, keeping the
/// table's prediction it had (`predicted_latency_ms`) beside the new figures.
///
/// Errors: the trial's genome cannot be read (outer); the evaluation's (inner).
pub(crate) fn re_evaluate(
    run_dir: &std::path::Path,
    evaluator: &PipelineEvaluator,
    t: &TrialRecord,
    worker: usize,
) -> Result<Result<Evaluation, EvalError>, PipelineError> {
    let genome: Genome = serde_json::from_str(&t.genome)
        .map_err(|e| PipelineError::Invalid(format!("trial {}: {e}", t.number)))?;
    let spec = TrialSpec {
        number: t.number,
        point: genome,
        id: t.genome_id.clone(),
        dir: trial_dir(run_dir, t.number, &t.genome_id),
        worker,
    };
    let predicted = t
        .evaluation
        .as_ref()
        .and_then(|e| e.metrics.get(keys::PREDICTED_LATENCY_MS).copied());
    Ok(evaluator.evaluate(&spec).map(|mut eval| {
        if let Some(p) = predicted {
            eval.metrics.insert(keys::PREDICTED_LATENCY_MS.into(), p);
        }
        eval
    }))
}

#[cfg(test)]
mod tests {
    use super::in_queue;

    #[test]
    fn a_queue_gives_every_item_one_result_in_item_order() {
        // the first items take longest, so the workers finish out of order
        let items: Vec<u64> = (0..7).collect();
        let results = in_queue(&items, 2, |&i, worker| {
            std::thread::sleep(std::time::Duration::from_millis(3 * (7 - i)));
            (i * 10, worker)
        });
        let values: Vec<u64> = results.iter().map(|r| r.0).collect();
        assert_eq!(values, vec![0, 10, 20, 30, 40, 50, 60]);
        assert!(
            results.iter().all(|r| r.1 < 2),
            "worker numbers 0 and 1 only"
        );
        assert!(in_queue(&[] as &[u64], 2, |&i, _| i).is_empty());
    }
}
