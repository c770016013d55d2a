//! The weight-sharing search's fine-tunings on the machine's cores: the chosen front models
//! the store lacks are trained ahead of their build and measurement, the ones that would
//! otherwise train beside an idle core first, sharing the cores, the others one a core.

use std::collections::BTreeMap;

use kiln_search::TrialRecord;
use kiln_space::Genome;

use crate::evaluate::PipelineEvaluator;
use crate::finetune::FINE_TUNE_SHARDS;

/// How `k` fine-tunings share `workers` cores: `(alone, threads)`, the first `alone` of
/// them run at once on `threads` threads each (at most [`FINE_TUNE_SHARDS`]), then the
/// others `workers` at a time on one thread each, a queue. `alone` is `k % workers`: the
/// fine-tunings that, queued last, would run beside idle cores. Two shards on two
/// threads fine-tune a model in 0.63 of the wall time of whole batches on one thread (two
/// shards on one thread: 1.09; whole process, one genome, 2 alternating pairs, host,
/// README), and in a search a model alone on two threads trained in 242 s where one of
/// the same size beside another took 454 s: about the same models per hour, so whole
/// rounds keep one model a core.
pub(crate) fn first_alone(k: usize, workers: usize) -> (usize, usize) {
    let alone = k % workers.max(1);
    let threads = match alone {
        0 => 1,
        _ => (workers / alone).clamp(1, FINE_TUNE_SHARDS),
    };
    (alone, threads)
}

/// Fine-tunes into the supernet's store each of `trials` whose fine-tuning is not stored
/// yet, on `workers` cores as [`first_alone`] plans, so that each one's evaluation (build
/// and measurement) reads it from there. Returns the trials that could not be
/// fine-tuned, by number, with why; `note` hears the plan first.
pub(crate) fn fine_tune_ahead(
    evaluator: &PipelineEvaluator,
    trials: &[TrialRecord],
    workers: usize,
    note: &mut dyn FnMut(&str),
) -> BTreeMap<u64, String> {
    let todo: Vec<(u64, Genome, &str)> = trials
        .iter()
        // a genome that cannot be read is the evaluation's to report
        .filter_map(|t| {
            Some((
                t.number,
                serde_json::from_str(&t.genome).ok()?,
                &*t.genome_id,
            ))
        })
        .filter(|(_, genome, id)| evaluator.fine_tune_stored_at(genome, id).is_none())
        .collect();
    let (alone, threads) = first_alone(todo.len(), workers);
    if !todo.is_empty() {
        note(&plan_note(todo.len(), workers, alone, threads));
    }
    let (first, rest) = todo.split_at(alone);
    let run = |threads| {
        move |(number, genome, id): &(u64, Genome, &str), _| {
            let r = evaluator.fine_tune_ahead(genome, id, threads);
            r.err().map(|e| (*number, e))
        }
    };
    let mut failed = crate::confirm::in_queue(first, alone, run(threads));
    failed.extend(crate::confirm::in_queue(rest, workers, run(1)));
    failed.into_iter().flatten().collect()
}

/// What [`fine_tune_ahead`] is about to do, in the user's words.
fn plan_note(k: usize, workers: usize, alone: usize, threads: usize) -> String {
    let models = |n: usize| format!("{n} model{}", if n == 1 { "" } else { "s" });
    let queued = |n: usize| {
        let at_once = workers.clamp(1, n.max(1));
        format!("{} {at_once} at a time, one thread each", models(n))
    };
    let plan = if alone > 0 && threads > 1 {
        let each = if alone == 1 { "" } else { " each" };
        let first = format!("{} first on {threads} threads{each}", models(alone));
        match k - alone {
            0 => first,
            rest => format!("{first}, then {}", queued(rest)),
        }
    } else {
        queued(k)
    };
    format!(
        "fine-tuning {} of the front from inherited weights: {plan}",
        models(k)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lone_fine_tuning_takes_both_cores_whole_rounds_one_each() {
        // (models, workers) -> (how many run first, alone, and on how many threads each)
        assert_eq!(first_alone(1, 2), (1, 2), "a second search's one new model");
        assert_eq!(first_alone(2, 2), (0, 1));
        assert_eq!(first_alone(3, 2), (1, 2));
        assert_eq!(first_alone(5, 2), (1, 2), "a first search's five");
        assert_eq!(first_alone(0, 2), (0, 1));
        assert_eq!(first_alone(3, 1), (0, 1), "one worker: a queue");
        assert_eq!(
            first_alone(5, 4),
            (1, FINE_TUNE_SHARDS),
            "threads beyond the shards idle"
        );
        assert_eq!(first_alone(6, 4), (2, 2));
        assert_eq!(first_alone(3, 0), (0, 1));
    }

    #[test]
    fn the_plan_is_said_before_the_long_wait() {
        assert_eq!(
            plan_note(1, 2, 1, 2),
            "fine-tuning 1 model of the front from inherited weights: 1 model first on 2 \
             threads"
        );
        assert_eq!(
            plan_note(5, 2, 1, 2),
            "fine-tuning 5 models of the front from inherited weights: 1 model first on 2 \
             threads, then 4 models 2 at a time, one thread each"
        );
        assert_eq!(
            plan_note(2, 2, 0, 1),
            "fine-tuning 2 models of the front from inherited weights: 2 models 2 at a time, \
             one thread each"
        );
        assert_eq!(
            plan_note(6, 4, 2, 2),
            "fine-tuning 6 models of the front from inherited weights: 2 models first on 2 \
             threads each, then 4 models 4 at a time, one thread each"
        );
    }
}
