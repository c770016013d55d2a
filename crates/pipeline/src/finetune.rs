//! The weight-sharing search's last phase: the front's models, their accuracy so far
//! inherited from the supernet, are trained a few epochs more from the inherited weights
//! (Once-for-All's fine-tuning of a specialised sub-network), then built and measured
//! again, so the front a user deploys carries fine-tuned weights and says so.

use std::time::Instant;

use kiln_metric::{Metric, Source, Unit};
use kiln_search::evaluator::ACCURACY_KIND;
use kiln_search::objective::keys;
use kiln_search::report::front;
use kiln_search::{EvalError, Evaluation, Journal, Objective, Status, TrialRecord, TrialSpec};
use kiln_space::{Architecture, Genome};
use kiln_train::{Silent, TrainConfig};

use crate::PipelineError;
use crate::evaluate::PipelineEvaluator;
use crate::finetune_store::{self as store, StoredFineTune};
use crate::inherit::SupernetJudge;

/// Metric key of the validation top-1 a fine-tuned model had when it was only inherited
/// (a fraction, `host`), kept beside the fine-tuned one.
pub const INHERITED_ACCURACY: &str = "inherited_accuracy";

/// Label of a fine-tuned model whose fine-tuning an earlier search did: the stored
/// result's folder (`SUPERNET/fine-tuned/ID`).
pub const REUSED_FROM: &str = "fine_tune_reused_from";

/// Label saying why a fine-tuning result was not read from, or not kept in, the store.
const STORE_NOTE: &str = "fine_tune_store";

/// Beginning of [`ACCURACY_KIND`] for an accuracy inherited from a supernet.
const INHERITED: &str = "inherited";

/// Fine-tuning settings of a weight-sharing search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FineTune {
    /// Epochs of training from the inherited weights (0: no fine-tuning).
    pub epochs: usize,
    /// At most this many front models are fine-tuned, the most accurate first.
    pub models: usize,
    /// Fine-tune the `models` most accurate even when they do not beat, by more than the
    /// judge's noise, a front model an earlier search on the supernet fine-tuned
    /// ([`choose`]).
    pub all: bool,
}

impl Default for FineTune {
    fn default() -> Self {
        FineTune {
            epochs: 2,
            models: 5,
            all: false,
        }
    }
}

/// How many front models a search fine-tuned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FineTuned {
    /// Fine-tuned (trained here or reused).
    pub done: usize,
    /// Of those, reused from an earlier search's fine-tuning (the supernet's store).
    pub reused: usize,
    /// Among the most accurate, left with inherited weights: not above the most accurate
    /// model an earlier search fine-tuned by more than the judge's noise ([`choose`]).
    pub left_inherited: usize,
}

/// One standard error of a top-1 fraction `p` measured on `n` images, `sqrt(p (1 - p) / n)`
/// (binomial): the judge's noise. For 89% on the 400 validation images of the bundled
/// data, 0.016 (1.6 points).
pub fn standard_error(p: f64, n: usize) -> f64 {
    (p * (1.0 - p) / n.max(1) as f64).sqrt()
}

/// A front model whose accuracy is inherited: its trial number, validation top-1 (a
/// fraction) and whether a search before this one stored its fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inherited {
    /// The trial's number in the journal.
    pub number: u64,
    /// Inherited validation top-1, a fraction (`host`).
    pub accuracy: f64,
    /// A search begun before this one stored its fine-tuning in the supernet's folder.
    pub fine_tuned_earlier: bool,
}

/// Which front models to fine-tune, of `front` (any order): the `models` most accurate,
/// except, in a later search on the same supernet (`all` false), a model no earlier
/// search fine-tuned is fine-tuned only when its inherited top-1 beats the most accurate
/// earlier-fine-tuned front model's by more than `noise` at that accuracy; the others
/// keep their inherited weights. New fine-tuning (minutes a model; a stored one is free)
/// is spent only where the front may gain a model more accurate than any fine-tuned
/// before; a lead within one standard error does not say which would end more accurate
/// (measured: the Kendall tau of inherited against stand-alone accuracy is 0.25, README
/// "Issue 14's goals"). Earlier-fine-tuned models are always taken, within `models`. A
/// first search, which has no earlier fine-tunings, fine-tunes the `models` most
/// accurate.
///
/// Returns (chosen, most accurate first; the new models among the `models` most accurate
/// left inherited; the earlier-fine-tuned model they were compared with).
pub fn choose(
    mut front: Vec<Inherited>,
    models: usize,
    all: bool,
    noise: impl Fn(f64) -> f64,
) -> (Vec<Inherited>, Vec<Inherited>, Option<Inherited>) {
    front.sort_by(|a, b| b.accuracy.total_cmp(&a.accuracy));
    let reference = front.iter().find(|m| m.fine_tuned_earlier).copied();
    let worth = |m: &Inherited| match reference {
        Some(r) if !all && !m.fine_tuned_earlier => m.accuracy > r.accuracy + noise(r.accuracy),
        _ => true,
    };
    let left: Vec<_> = front
        .iter()
        .take(models)
        .filter(|m| !worth(m))
        .copied()
        .collect();
    let chosen = front.into_iter().filter(worth).take(models).collect();
    (chosen, left, reference)
}

/// The training settings of fine-tuning from `base` (the search's): `epochs` epochs of
/// `base`'s own schedule (peak learning rate, warm-up, cosine decay), started from the
/// inherited weights instead of a random initialisation.
///
/// Measured (the 2-epoch supernet of the default settings, five DNAS front genomes,
/// `examples/fine_tune.rs`, host): a 2-epoch supernet's sub-networks inherit 77-79%
/// validation top-1, far from trained, and a tenth of the learning rate without warm-up
/// (this function's first rule) left them 0.75-1.75 points below the same architecture
/// trained from scratch for 10 epochs; the full schedule ends within -0.75..+0.75 points
/// of it on validation and -0.2..+0.3 on test, and 2 epochs of it gain 2.0-2.5 points
/// of validation top-1 over 2 epochs at a tenth (four of the genomes).
pub fn fine_tune_config(base: &TrainConfig, epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        seed,
        ..base.clone()
    }
}

/// A seed of `genome_id`'s own (its first 16 hex digits; 0 for an id that has none), so
/// the same sub-network fine-tuned by two searches gets the same seed and the same
/// weights, whatever its trial number: what lets [`crate::finetune_store`] reuse it.
pub fn genome_seed(genome_id: &str) -> u64 {
    let digits: String = genome_id.chars().take(16).collect();
    u64::from_str_radix(&digits, 16).unwrap_or(0)
}

/// Trains `arch` from the weights `judge` gives `genome` for `config.epochs` epochs,
/// records in `eval` the fine-tuned validation and test top-1 (`host`), the inherited
/// validation top-1 ([`INHERITED_ACCURACY`]) and what the accuracy is, writes
/// `metrics.json` and returns the ONNX model. A result an earlier search stored in the
/// supernet's folder for the same weights, genome, data and settings is reused instead
/// of trained again ([`REUSED_FROM`] names its folder); a new one is stored there.
///
/// Errors: the message for the trial's failure.
pub(crate) fn fine_tune_into(
    judge: &SupernetJudge,
    arch: &Architecture,
    trial: &TrialSpec<Genome>,
    data: &kiln_data::Dataset,
    config: &TrainConfig,
    eval: &mut Evaluation,
) -> Result<Vec<u8>, String> {
    let t = Instant::now();
    let kind = format!(
        "fine-tuned {} epochs from weights inherited from the supernet in {}",
        config.epochs,
        judge.dir.display()
    );
    let key = store::key(&judge.weights_id, &trial.id, &judge.data_identity, config);
    let stored = store::get(&judge.dir, &key).unwrap_or_else(|e| {
        eval.labels.insert(
            STORE_NOTE.into(),
            format!("the stored result was unreadable ({e}); fine-tuned again"),
        );
        None
    });
    let entry = match stored {
        Some(entry) => {
            let dir = store::entry_dir(&judge.dir, &key);
            eval.labels
                .insert(REUSED_FROM.into(), dir.display().to_string());
            entry
        }
        None => {
            let (inherited, start) = judge
                .inherited_weights(&trial.point, data)
                .map_err(|e| e.to_string())?;
            let trained =
                kiln_train::train_from(arch, Some(&start), &trial.id, data, config, &mut Silent)
                    .map_err(|e| format!("fine-tuning: {e}"))?;
            let onnx = kiln_train::export_onnx_as(&trained, &kind)
                .map_err(|e| format!("ONNX export: {e}"))?;
            let entry = StoredFineTune {
                onnx,
                metrics: trained.metrics,
                inherited,
            };
            if let Err(e) = store::put(&judge.dir, &key, &entry) {
                eval.labels.insert(
                    STORE_NOTE.into(),
                    format!("not kept for later searches: {e}"),
                );
            }
            entry
        }
    };
    eval.timings
        .insert("fine_tune_s".into(), t.elapsed().as_secs_f64());
    eval.metrics.insert(
        INHERITED_ACCURACY.into(),
        Metric::new(entry.inherited, Unit::Fraction, Source::Host),
    );
    crate::evaluate::record_metrics(&entry.metrics, kind, &trial.dir, eval)?;
    Ok(entry.onnx)
}

/// Fine-tunes up to `ft.models` front models of `journal` whose accuracy is inherited,
/// the ones [`choose`] picks, with `evaluator` (a supernet and `fine_tune_epochs` set),
/// and records each fine-tuned, built and measured evaluation in its trial's place;
/// `workers` fine-tune at once. Returns how many were fine-tuned, how many of those
/// reused an earlier search's fine-tuning (stored in the supernet's folder), and how many
/// were left inherited.
///
/// Errors: the journal; an evaluation that stops the search (a device that does not
/// answer).
pub(crate) fn fine_tune_front(
    run_dir: &std::path::Path,
    journal: &Journal,
    evaluator: &PipelineEvaluator,
    objectives: &[Objective],
    ft: FineTune,
    workers: usize,
    note: &mut dyn FnMut(&str),
) -> Result<FineTuned, PipelineError> {
    let trials = journal.trials()?;
    let front = inherited_front(&trials, objectives, evaluator);
    let images = evaluator.data.validation.len();
    let (picked, left, reference) = choose(
        front.iter().map(|(_, m)| *m).collect(),
        ft.models,
        ft.all,
        |p| standard_error(p, images),
    );
    let mut count = FineTuned {
        left_inherited: left.len(),
        ..FineTuned::default()
    };
    if let (Some(r), false) = (reference, left.is_empty()) {
        let noise = standard_error(r.accuracy, images);
        note(&left_inherited_note(&left, &r, noise, images));
    }
    let chosen: Vec<_> = picked
        .iter()
        .filter_map(|m| front.iter().find(|(t, _)| t.number == m.number).cloned())
        .collect();
    let records: Vec<_> = chosen.iter().map(|(t, _)| t.clone()).collect();
    let results = crate::confirm::re_evaluate_all(run_dir, evaluator, &records, workers);
    for ((t, m), result) in chosen.into_iter().zip(results) {
        let before = m.accuracy;
        match result? {
            Ok(mut eval) => {
                if !m.fine_tuned_earlier {
                    // read back from the store, but this run's own fine-tuning (stored
                    // before a kill it resumes from), not an earlier search's
                    eval.labels.remove(REUSED_FROM);
                }
                let status = if eval.violations.is_empty() {
                    Status::Done
                } else {
                    Status::Infeasible
                };
                let after = eval.metrics.get(keys::ACCURACY);
                let how = match eval.labels.get(REUSED_FROM) {
                    Some(dir) => {
                        count.reused += 1;
                        format!("; an earlier search's fine-tuning, reused from {dir}")
                    }
                    None => String::new(),
                };
                note(&format!(
                    "front candidate {} fine-tuned: validation top-1 {:.2}% inherited -> \
                     {:.2}% fine-tuned ({}{how})",
                    t.number,
                    100.0 * before,
                    100.0 * after.map_or(0.0, |m| m.value),
                    after.map_or("host".into(), |m| m.source.to_string())
                ));
                if let Some(why) = eval.labels.get(STORE_NOTE) {
                    note(&format!("front candidate {}: {why}", t.number));
                }
                journal.finish(t.number, status, Some(&eval), None)?;
                count.done += 1;
            }
            Err(EvalError::Failed(msg)) => {
                note(&format!(
                    "front candidate {} could not be fine-tuned ({msg}); it keeps its inherited \
                     weights",
                    t.number
                ));
            }
            Err(EvalError::Stop(msg)) => return Err(PipelineError::Invalid(msg)),
        }
    }
    Ok(count)
}

/// The Pareto front of `trials` (by `objectives`) whose accuracy is inherited, each with
/// its inherited top-1 and whether its fine-tuning with `evaluator`'s settings was stored
/// before this run's first trial: so a resumed search counts the fine-tunings it stored
/// before its kill as its own, and chooses as it first did.
fn inherited_front(
    trials: &[TrialRecord],
    objectives: &[Objective],
    evaluator: &PipelineEvaluator,
) -> Vec<(TrialRecord, Inherited)> {
    let began = trials
        .iter()
        .map(|t| t.created_at)
        .fold(f64::INFINITY, f64::min);
    let stored_before_run = |id: &str| {
        evaluator.fine_tune_stored_at(id).is_some_and(|at| {
            at.duration_since(std::time::UNIX_EPOCH)
                .is_ok_and(|d| d.as_secs_f64() < began)
        })
    };
    front(trials, objectives)
        .into_iter()
        .filter_map(|(t, _)| {
            let e = t.evaluation.as_ref()?;
            if !e.labels.get(ACCURACY_KIND)?.starts_with(INHERITED) {
                return None;
            }
            let m = Inherited {
                number: t.number,
                accuracy: e.metrics.get(keys::ACCURACY).map_or(0.0, |m| m.value),
                fine_tuned_earlier: stored_before_run(&t.genome_id),
            };
            Some((t, m))
        })
        .collect()
}

/// The note on front models left with inherited weights by [`choose`]: which, their
/// accuracy, the earlier-fine-tuned model `reference` they did not beat by more than
/// `noise`, and how to fine-tune them anyway.
fn left_inherited_note(
    left: &[Inherited],
    reference: &Inherited,
    noise: f64,
    images: usize,
) -> String {
    let list = |f: &dyn Fn(&Inherited) -> String| left.iter().map(f).collect::<Vec<_>>().join(", ");
    format!(
        "front candidate{s} {} left with inherited weights: validation top-1 {} inherited, \
         not above candidate {}'s {:.2}%, which an earlier search fine-tuned, by more than \
         the judge's noise (one standard error, {:.1} points at {images} validation images) \
         (--fine-tune-all fine-tunes {them} too)",
        list(&|m| m.number.to_string()),
        list(&|m| format!("{:.2}%", 100.0 * m.accuracy)),
        reference.number,
        100.0 * reference.accuracy,
        100.0 * noise,
        s = if left.len() == 1 { "" } else { "s" },
        them = if left.len() == 1 { "it" } else { "them" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(number: u64, accuracy: f64, fine_tuned_earlier: bool) -> Inherited {
        Inherited {
            number,
            accuracy,
            fine_tuned_earlier,
        }
    }

    fn numbers(models: &[Inherited]) -> Vec<u64> {
        models.iter().map(|m| m.number).collect()
    }

    #[test]
    fn a_first_search_fine_tunes_the_most_accurate() {
        let front = vec![
            model(1, 0.80, false),
            model(2, 0.90, false),
            model(3, 0.85, false),
            model(4, 0.70, false),
        ];
        let (chosen, left, reference) = choose(front, 3, false, |_| 0.016);
        assert_eq!(numbers(&chosen), [2, 3, 1]);
        assert!(left.is_empty() && reference.is_none());
    }

    #[test]
    fn a_later_search_fine_tunes_a_new_model_only_when_it_beats_the_earlier_by_more_than_noise() {
        // the second search measured in the README: two new genomes 1.25 and 0.5 points
        // above the best one fine-tuned before, one standard error 1.6 points
        let front = vec![
            model(17, 0.89, true),
            model(259, 0.9025, false),
            model(220, 0.895, false),
            model(16, 0.8825, true),
            model(15, 0.8775, true),
            model(14, 0.86, false),
            model(3, 0.93, false),
        ];
        let noise = |p| standard_error(p, 400);
        let (chosen, left, reference) = choose(front.clone(), 5, false, noise);
        // 93% is 4 points above: fine-tuned; the earlier three are reused; 14 is below
        assert_eq!(numbers(&chosen), [3, 17, 16, 15]);
        assert_eq!(numbers(&left), [259, 220]);
        assert_eq!(reference.map(|r| r.number), Some(17));
        // --fine-tune-all: the five most accurate, whatever was fine-tuned before
        let (chosen, left, _) = choose(front.clone(), 5, true, noise);
        assert_eq!(numbers(&chosen), [3, 259, 220, 17, 16]);
        assert!(left.is_empty());
        // with no noise every lead counts: both new ones are fine-tuned again
        let (chosen, left, _) = choose(front, 5, false, |_| 0.0);
        assert_eq!(numbers(&chosen), [3, 259, 220, 17, 16]);
        assert!(left.is_empty());
    }

    #[test]
    fn the_judges_noise_is_one_binomial_standard_error() {
        assert!((standard_error(0.89, 400) - 0.015_644).abs() < 1e-5);
        assert_eq!(standard_error(1.0, 400), 0.0);
        // no images: a finite figure, not a division by zero
        assert!(standard_error(0.5, 0).is_finite());
    }

    #[test]
    fn the_note_names_the_models_left_inherited_and_how_to_fine_tune_them() {
        let left = [model(259, 0.9025, false), model(220, 0.895, false)];
        let text = left_inherited_note(&left, &model(17, 0.89, true), 0.0156, 400);
        assert_eq!(
            text,
            "front candidates 259, 220 left with inherited weights: validation top-1 90.25%, \
             89.50% inherited, not above candidate 17's 89.00%, which an earlier search \
             fine-tuned, by more than the judge's noise (one standard error, 1.6 points at 400 \
             validation images) (--fine-tune-all fine-tunes them too)"
        );
    }
}
