//! A judge-only search on a supernet that earlier searches judged starts from the best
//! of what they found: Once-for-All judges sub-networks once and specialises for each
//! device from an accuracy store and a latency table. The stored genomes that this
//! target's analytic checks allow are ranked by their stored inherited accuracy and this
//! target's predicted latency, and their Pareto front goes into the new journal first,
//! pending: each is judged again in no time (the accuracy is read back, the latency
//! predicted), then the strategy asks for new candidates as always.

use std::time::Duration;

use crate::search::{WARM_JUDGING, budget_or_default};
use kiln_search::{Evaluator, Journal, Status, StrategyKind};
use kiln_space::Genome;

use crate::PipelineError;
use crate::evaluate::PipelineEvaluator;
use crate::inherit::SupernetJudge;
use crate::supernets::Supernets;

use kiln_search::journal::JUDGED_EARLIER;

/// How many of `journal`'s trials have an accuracy an earlier search judged: put in by
/// [`warm_start`] and judged, or proposed again and found in the store.
///
/// Errors: the journal.
pub(crate) fn reused(journal: &Journal) -> Result<usize, PipelineError> {
    let trials = journal.trials()?;
    // put in by the warm start and judged, or proposed by the strategy and found stored
    let reused = |t: &&kiln_search::TrialRecord| {
        t.evaluation.as_ref().is_some_and(|e| {
            let judged = e
                .metrics
                .contains_key(kiln_search::objective::keys::ACCURACY);
            (t.origin == JUDGED_EARLIER && judged)
                || e.labels.contains_key(crate::inherit::REUSED_JUDGMENT)
        })
    };
    Ok(trials.iter().filter(reused).count())
}

/// How many of `journal`'s judgments could not be kept for later searches (the
/// supernet's folder read-only, say) and the first one's reason, or `None` when every
/// judgment was kept.
///
/// Errors: the journal.
pub(crate) fn not_kept(journal: &Journal) -> Result<Option<(usize, String)>, PipelineError> {
    let trials = journal.trials()?;
    let mut why = trials.iter().filter_map(|t| {
        let e = t.evaluation.as_ref()?;
        e.labels.get(crate::inherit::JUDGMENT_STORE)
    });
    Ok(why.next().map(|first| (1 + why.count(), first.clone())))
}

/// Says through `note` how many judgments of `journal` could not be kept for later
/// searches, and why ([`not_kept`]); nothing when all were kept or the journal cannot be
/// read (the report that follows says so).
pub(crate) fn say_not_kept(journal: &Journal, note: &mut dyn FnMut(&str)) {
    if let Some((n, why)) = not_kept(journal).ok().flatten() {
        let s = if n == 1 { "" } else { "s" };
        note(&format!(
            "{n} judged candidate{s} not kept for later searches: {why}"
        ));
    }
}

/// In a new judge-only search (not DNAS: it asks its learned argmax first, that is its
/// search), puts into the empty `journal` the Pareto front (stored inherited accuracy
/// up, this target's predicted latency down) of the genomes earlier searches judged on
/// `evaluator`'s supernet that pass this target's analytic checks and latency limits; at
/// most half of `trials` (the most accurate kept), so the strategy always gets to ask. A journal
/// that holds trials (a resumed run) is left alone. `note` says what was put in, for the
/// search of `target`. Returns how many were put in.
///
/// Errors: the journal.
pub(crate) fn warm_start(
    journal: &Journal,
    evaluator: &PipelineEvaluator,
    trials: Option<usize>,
    target: &str,
    strategy: StrategyKind,
    note: &mut dyn FnMut(&str),
) -> Result<usize, PipelineError> {
    let Some(judge) = &evaluator.supernet else {
        return Ok(0);
    };
    if !evaluator.judge_only || strategy == StrategyKind::Dnas {
        return Ok(0);
    }
    if let Some(put_in) = put_in_by_first_start(journal)? {
        return Ok(put_in);
    }
    let stored: usize = judge.parts().map(|j| j.judgments.genomes().len()).sum();
    let mut front = pareto_front(allowed(judge, evaluator));
    // the most accurate last: pending trials run in order, and aging evolution keeps the
    // youngest, so the best are still in its population when it first asks
    front.sort_by(|a, b| a.accuracy.total_cmp(&b.accuracy));
    let cap = trials.map_or(usize::MAX, |t| t / 2);
    front.drain(..front.len().saturating_sub(cap));
    for c in &front {
        journal.insert(&c.id, &c.json, JUDGED_EARLIER, Status::Pending, None)?;
    }
    if !front.is_empty() {
        let parts = judge.split.map_or("", |_| ", each part's");
        note(&format!(
            "{} of the {stored} candidates earlier searches judged on this supernet come \
             first (the front of their inherited accuracy, read from its {}{parts}, and \
             their latency predicted for `{target}`)",
            front.len(),
            crate::judgments::FILE,
        ));
    }
    Ok(front.len())
}

/// A resumed run (`journal` holds trials): how many of them its first start's warm start
/// put in, so the resumed run keeps that run's budget; `None` for a new (empty) journal.
///
/// Errors: the journal.
fn put_in_by_first_start(journal: &Journal) -> Result<Option<usize>, PipelineError> {
    let earlier = journal.trials()?;
    if earlier.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        earlier
            .iter()
            .filter(|t| t.origin == JUDGED_EARLIER)
            .count(),
    ))
}

/// How many candidates the warm start must put in for the shorter budget: as many as a
/// search fine-tunes by default, so the earlier front alone offers a whole set. Fewer means
/// this target's limits allow little of what earlier searches judged, and the search is
/// nearly a first one (`WARM_JUDGING` was measured on a warm start of 18).
const WARM_ENOUGH: usize = 5;

/// The judging budget of a search that asked for `(time budget, trials, weight sharing)` and
/// whose warm start put `warmed` candidates in ([`budget_for`]); `note` says when it is
/// [`WARM_JUDGING`].
pub(crate) fn judging_budget(
    (given, trials, weight_sharing): (Option<Duration>, Option<usize>, bool),
    warmed: usize,
    note: &mut dyn FnMut(&str),
) -> Option<Duration> {
    let (budget, warm) = budget_for(given, trials, weight_sharing, warmed);
    if warm {
        note(&format!(
            "judging for {} s: a search that starts from earlier searches' front needs less \
             (--time-budget to judge longer)",
            WARM_JUDGING.as_secs()
        ));
    }
    budget
}

/// A search's time budget: `given`, else [`budget_or_default`]'s default, or
/// [`WARM_JUDGING`] (and `true`) when the warm start put at least [`WARM_ENOUGH`] candidates
/// in and neither `given` nor `trials` is set.
fn budget_for(
    given: Option<Duration>,
    trials: Option<usize>,
    weight_sharing: bool,
    warmed: usize,
) -> (Option<Duration>, bool) {
    if warmed >= WARM_ENOUGH && given.is_none() && trials.is_none() {
        return (Some(WARM_JUDGING), true);
    }
    (budget_or_default(given, trials, weight_sharing), false)
}

/// A stored judgment as this target sees it.
#[derive(Debug, Clone, PartialEq)]
struct Known {
    id: String,
    json: String,
    accuracy: f64,
    latency_ms: f64,
}

/// The stored genomes of `supernets` (every part of a split) that parse, match their id,
/// pass `evaluator`'s analytic checks and meet the target's latency limits by the table
/// (also when a device, not the table, judges the search's own candidates), with their
/// predicted latency.
fn allowed(supernets: &Supernets, evaluator: &PipelineEvaluator) -> Vec<Known> {
    let mut out = Vec::new();
    for judge in supernets.parts() {
        out.extend(allowed_of(judge, evaluator));
    }
    out
}

/// [`allowed`] of one supernet.
fn allowed_of(judge: &SupernetJudge, evaluator: &PipelineEvaluator) -> Vec<Known> {
    let mut out = Vec::new();
    for (id, json) in judge.judgments.genomes() {
        let Ok(genome) = serde_json::from_str::<Genome>(&json) else {
            continue;
        };
        let (Some(accuracy), true) = (judge.judgments.get(&id), genome.id() == id) else {
            continue;
        };
        if !evaluator.precheck(&genome).is_empty() {
            continue;
        }
        if let Some(latency_ms) = evaluator.feasible_latency_ms(&genome) {
            out.push(Known {
                id,
                json,
                accuracy,
                latency_ms,
            });
        }
    }
    out
}

/// The candidates no other is at least as accurate and at least as fast as (and better
/// in one): sorted by latency, each kept when more accurate than every faster one.
fn pareto_front(mut known: Vec<Known>) -> Vec<Known> {
    known.sort_by(|a, b| {
        a.latency_ms
            .total_cmp(&b.latency_ms)
            .then(b.accuracy.total_cmp(&a.accuracy))
    });
    let mut best = f64::NEG_INFINITY;
    known.retain(|k| {
        let keep = k.accuracy > best;
        best = best.max(k.accuracy);
        keep
    });
    known
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(id: &str, accuracy: f64, latency_ms: f64) -> Known {
        Known {
            id: id.into(),
            json: String::new(),
            accuracy,
            latency_ms,
        }
    }

    /// A user's budget or trial count always holds; a search nothing warm-started keeps the
    /// default.
    #[test]
    fn a_warm_started_search_judges_half_as_long_by_default() {
        let (three, ten) = (Duration::from_secs(180), Duration::from_secs(600));
        assert_eq!(WARM_JUDGING, Duration::from_secs(90));
        assert_eq!(budget_for(None, None, true, 18), (Some(WARM_JUDGING), true));
        assert_eq!(budget_for(Some(ten), None, true, 18), (Some(ten), false));
        assert_eq!(budget_for(None, Some(40), true, 18), (None, false));
        assert_eq!(budget_for(None, None, true, 0), (Some(three), false));
        // a warm start of a few is nearly a first search
        assert_eq!(budget_for(None, None, true, 4), (Some(three), false));
        assert_eq!(budget_for(None, None, true, 5), (Some(WARM_JUDGING), true));
    }

    #[test]
    fn the_front_keeps_only_candidates_no_faster_one_matches() {
        let front = pareto_front(vec![
            k("slow-good", 0.9, 30.0),
            k("fast-poor", 0.7, 5.0),
            k("dominated", 0.6, 10.0),
            k("mid", 0.8, 10.0),
            k("tie-slower", 0.8, 12.0),
            k("same-latency-worse", 0.75, 10.0),
        ]);
        let ids: Vec<_> = front.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["fast-poor", "mid", "slow-good"]);
    }

    /// A resumed warm-started run keeps its shorter budget: the count is what its first
    /// start put in, judged yet or not, and the strategy's own trials do not count.
    #[test]
    fn a_resumed_run_counts_what_its_first_start_put_in() {
        use kiln_search::journal::RunMeta;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path(), &RunMeta::default()).unwrap();
        assert_eq!(put_in_by_first_start(&journal).unwrap(), None, "a new run");
        let done = kiln_search::Evaluation::default();
        for id in ["a", "b", "c", "d", "e", "f"] {
            journal
                .insert(id, "{}", JUDGED_EARLIER, Status::Pending, None)
                .unwrap();
        }
        journal
            .insert("g", "{}", "aging-evolution", Status::Done, Some(&done))
            .unwrap();
        assert_eq!(put_in_by_first_start(&journal).unwrap(), Some(6));
        let (budget, warm) = budget_for(None, None, true, 6);
        assert_eq!((budget, warm), (Some(WARM_JUDGING), true));
    }

    #[test]
    fn judgments_not_kept_are_counted_with_the_first_reason() {
        use kiln_search::journal::{RunMeta, Status};
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path(), &RunMeta::default()).unwrap();
        let eval = |why: Option<&str>| {
            let mut e = kiln_search::Evaluation::default();
            if let Some(why) = why {
                e.labels
                    .insert(crate::inherit::JUDGMENT_STORE.into(), why.into());
            }
            e
        };
        let put = |id: &str, why| {
            let e = eval(why);
            journal
                .insert(id, "{}", "random", Status::Done, Some(&e))
                .unwrap();
        };
        put("a", None);
        assert_eq!(not_kept(&journal).unwrap(), None);
        put("b", Some("judged.jsonl: read-only file system"));
        put("c", Some("judged.jsonl: disk full"));
        assert_eq!(
            not_kept(&journal).unwrap(),
            Some((2, "judged.jsonl: read-only file system".into()))
        );
        let mut notes = Vec::new();
        say_not_kept(&journal, &mut |n| notes.push(n.to_string()));
        assert_eq!(
            notes,
            [
                "2 judged candidates not kept for later searches: judged.jsonl: read-only file system"
            ]
        );
    }
}
