//! The weight-sharing search's last phase: the front's models, their accuracy so far
//! inherited from the supernet, are trained a few epochs more from the inherited weights
//! (Once-for-All's fine-tuning of a specialised sub-network), then built and measured
//! again, so the front a user deploys carries fine-tuned weights and says so.

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

/// The shards a fine-tuning step splits its batch into ([`TrainConfig::shards`]): two, so
/// that a model fine-tuned alone trains on two cores
/// ([`first_alone`](crate::finetune_ahead::first_alone)).
pub const FINE_TUNE_SHARDS: usize = 2;

/// Beginning of [`ACCURACY_KIND`] for an accuracy inherited from a supernet.
const INHERITED: &str = "inherited";

/// Beginning of [`ACCURACY_KIND`] for an accuracy fine-tuned from inherited weights.
const FINE_TUNED: &str = "fine-tuned";

/// Fine-tuning settings of a weight-sharing search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FineTune {
    /// Epochs of training from the inherited weights (0: no fine-tuning).
    pub epochs: usize,
    /// At most this many front models are fine-tuned, the most accurate first.
    pub models: usize,
    /// Fine-tune the `models` most accurate even when a front model an earlier search on
    /// the supernet fine-tuned dominates one of them within the judge's noise ([`choose`]).
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
    /// Among the most accurate, left with inherited weights: dominated within the judge's
    /// noise by a front model an earlier search fine-tuned ([`choose`]).
    pub left_inherited: usize,
}

/// One standard error of a top-1 fraction `p` measured on `n` images, `sqrt(p (1 - p) / n)`
/// (binomial): the judge's noise. For 89% on the 400 validation images of the bundled
/// data, 0.016 (1.6 points).
pub fn standard_error(p: f64, n: usize) -> f64 {
    (p * (1.0 - p) / n.max(1) as f64).sqrt()
}

/// A front model whose accuracy is inherited: its trial number, validation top-1, latency
/// and whether a search before this one stored its fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Inherited {
    /// The trial's number in the journal.
    pub number: u64,
    /// Inherited validation top-1, a fraction (`host`).
    pub accuracy: f64,
    /// Its latency in ms as the front was judged on it (measured, `sim` or `device`, once
    /// the front is built); `None` when not recorded.
    pub latency_ms: Option<f64>,
    /// A search begun before this one stored its fine-tuning in the supernet's folder.
    pub fine_tuned_earlier: bool,
}

/// A front model [`choose`] leaves with its inherited weights, and the earlier-fine-tuned
/// model it was not told apart from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeftInherited {
    /// The model left inherited.
    pub model: Inherited,
    /// An earlier-fine-tuned front model at least as fast, whose inherited top-1 is at
    /// most the judge's noise below `model`'s.
    pub like: Inherited,
}

/// Which front models to fine-tune, of `front` (any order): the `models` most accurate,
/// except that in a later search on the same supernet (`all` false) a model no earlier
/// search fine-tuned is left with its inherited weights when an earlier-fine-tuned front
/// model is at least as fast and at most `noise(that model's accuracy)` (a fraction) less
/// accurate by inherited top-1: dominated within the judge's noise, it would cost minutes of
/// fine-tuning (a stored fine-tuning is free) for an accuracy lead the judge cannot tell
/// apart from noise (measured: the Kendall tau of inherited against stand-alone accuracy
/// is 0.25, README "Issue 14's goals"). Faster models and clearer leads are fine-tuned
/// as in a first search. A place a left model frees goes to an earlier-fine-tuned model
/// ranked below the `models` most accurate, if there is one (free to reuse), never to a
/// new one.
///
/// Returns (chosen, most accurate first; the models among the `models` most accurate
/// left inherited, each with the model it was not told apart from).
pub fn choose(
    mut front: Vec<Inherited>,
    models: usize,
    all: bool,
    noise: impl Fn(f64) -> f64,
) -> (Vec<Inherited>, Vec<LeftInherited>) {
    front.sort_by(|a, b| b.accuracy.total_cmp(&a.accuracy));
    let like = |m: &Inherited| -> Option<Inherited> {
        if all || m.fine_tuned_earlier {
            return None;
        }
        let faster =
            |r: &Inherited| matches!((r.latency_ms, m.latency_ms), (Some(a), Some(b)) if a <= b);
        front
            .iter()
            .filter(|r| r.fine_tuned_earlier && faster(r))
            // a lead of exactly one noise counts as within it, whatever the rounding
            .find(|r| m.accuracy - r.accuracy <= noise(r.accuracy) + 1e-9)
            .copied()
    };
    let (mut chosen, mut left) = (Vec::new(), Vec::new());
    for m in front.iter().take(models) {
        match like(m) {
            Some(like) => left.push(LeftInherited { model: *m, like }),
            None => chosen.push(*m),
        }
    }
    // the places left models free go to earlier-fine-tuned models further down (free to
    // reuse), not to new ones: a later search fine-tunes nothing a first would not
    let free = front.iter().skip(models).filter(|m| m.fine_tuned_earlier);
    chosen.extend(free.take(left.len()));
    (chosen, left)
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
///
/// Each batch is split in [`FINE_TUNE_SHARDS`] shards (batch norm per shard), so that a
/// model fine-tuned alone trains on two cores; the figures above are whole batches'. On
/// one genome (2 epochs, same seed, `examples/fine_tune.rs`, host) two shards ended at the
/// same validation top-1 as whole batches (97.00%) and 0.40 points lower on test (97.40%
/// vs 97.80%, within one standard error at 1,000 test images).
pub fn fine_tune_config(base: &TrainConfig, epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        seed,
        shards: FINE_TUNE_SHARDS,
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
/// validation top-1 ([`INHERITED_ACCURACY`]), what the accuracy is and the training's
/// seconds (timing `fine_tune_s`, from its metrics, whichever search trained it), writes
/// `metrics.json` and returns the ONNX model. `ahead` is a result trained ahead that the
/// store could not keep, with why. Else a result stored in the supernet's folder for the
/// same weights, genome, data and settings is used instead of training again
/// ([`REUSED_FROM`] names its folder; the caller removes it when this search stored it);
/// a new one is stored there.
///
/// Errors: the message for the trial's failure.
pub(crate) fn fine_tune_into(
    judge: &SupernetJudge,
    arch: &Architecture,
    trial: &TrialSpec<Genome>,
    data: &kiln_data::Dataset,
    config: &TrainConfig,
    ahead: Option<(StoredFineTune, String)>,
    eval: &mut Evaluation,
) -> Result<Vec<u8>, String> {
    if let Some((entry, why)) = ahead {
        let note = format!("not kept for later searches: {why}");
        eval.labels.insert(STORE_NOTE.into(), note);
        return record_fine_tuning(judge, config, entry, trial, eval);
    }
    let key = judge.fine_tune_key(&trial.id, config);
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
            let (entry, unkept) = train_and_store(
                judge,
                arch,
                &trial.point,
                &trial.id,
                data,
                config,
                config.threads,
            )?;
            if let Some(e) = unkept {
                eval.labels.insert(
                    STORE_NOTE.into(),
                    format!("not kept for later searches: {e}"),
                );
            }
            entry
        }
    };
    record_fine_tuning(judge, config, entry, trial, eval)
}

/// Records the fine-tuning `entry` of `trial` in `eval` and its folder (see
/// [`fine_tune_into`]) and returns its ONNX model.
///
/// Errors: the message for the trial's failure (its `metrics.json`).
fn record_fine_tuning(
    judge: &SupernetJudge,
    config: &TrainConfig,
    entry: StoredFineTune,
    trial: &TrialSpec<Genome>,
    eval: &mut Evaluation,
) -> Result<Vec<u8>, String> {
    // the training's own time, whichever search ran it (the store is read in moments)
    eval.timings
        .insert("fine_tune_s".into(), entry.metrics.train_seconds);
    eval.metrics.insert(
        INHERITED_ACCURACY.into(),
        Metric::new(entry.inherited, Unit::Fraction, Source::Host),
    );
    crate::evaluate::record_metrics(&entry.metrics, kind(judge, config), &trial.dir, eval)?;
    Ok(entry.onnx)
}

/// What a fine-tuned accuracy is, as its trial's label and the ONNX model's metadata say.
fn kind(judge: &SupernetJudge, config: &TrainConfig) -> String {
    format!(
        "{FINE_TUNED} {} from weights inherited from the supernet in {}",
        kiln_onnx::metadata::epochs_in_words(config.epochs),
        judge.dir.display()
    )
}

/// Trains `arch` (the sub-network `genome`, id `genome_id`) from the weights `judge` gives
/// it for `config.epochs` epochs on `threads` threads (the weights do not depend on them;
/// with `config.shards` of 2, two threads take about 0.63 of the wall time of whole
/// batches on one, [`first_alone`](crate::finetune_ahead::first_alone)) and stores the
/// result in the supernet's folder under `config`'s key. Returns the result and, when it
/// could not be stored, why.
///
/// Errors: the message for the fine-tuning's failure (inherited weights, training, export).
pub(crate) fn train_and_store(
    judge: &SupernetJudge,
    arch: &Architecture,
    genome: &Genome,
    genome_id: &str,
    data: &kiln_data::Dataset,
    config: &TrainConfig,
    threads: usize,
) -> Result<(StoredFineTune, Option<String>), String> {
    let key = judge.fine_tune_key(genome_id, config);
    let (inherited, start) = judge
        .inherited_weights(genome, data)
        .map_err(|e| e.to_string())?;
    let run = TrainConfig {
        threads,
        ..config.clone()
    };
    let trained = kiln_train::train_from(arch, Some(&start), genome_id, data, &run, &mut Silent)
        .map_err(|e| format!("fine-tuning: {e}"))?;
    let onnx = kiln_train::export_onnx_as(&trained, &kind(judge, config))
        .map_err(|e| format!("ONNX export: {e}"))?;
    let entry = StoredFineTune {
        onnx,
        metrics: trained.metrics,
        inherited,
    };
    let unkept = store::put(&judge.dir, &key, &entry)
        .err()
        .map(|e| e.to_string());
    Ok((entry, unkept))
}

/// Fine-tunes up to `ft.models` front models of `journal` whose accuracy is inherited,
/// the ones [`choose`] picks, with `evaluator` (a supernet and `fine_tune_epochs` set),
/// and records each fine-tuned, built and measured evaluation in its trial's place;
/// `workers` fine-tune at once. Returns how many were fine-tuned, how many of those
/// reused an earlier search's fine-tuning (stored in the supernet's folder), and how many
/// were left inherited. A resumed search counts the fine-tunings it journaled before it
/// was stopped ([`journaled`]): `ft.models` in all, as if it had not been.
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
    let before = journaled(&trials);
    let front = inherited_front(&trials, objectives, evaluator);
    let images = evaluator.data.validation.len();
    let (picked, left) = choose(
        front.iter().map(|(_, m)| *m).collect(),
        ft.models.saturating_sub(before.done),
        ft.all,
        |p| standard_error(p, images),
    );
    let mut count = FineTuned {
        left_inherited: left.len(),
        ..before
    };
    if !left.is_empty() {
        note(&left_inherited_note(&left, images));
    }
    let chosen: Vec<_> = picked
        .iter()
        .filter_map(|m| front.iter().find(|(t, _)| t.number == m.number).cloned())
        .collect();
    let records: Vec<_> = chosen.iter().map(|(t, _)| t.clone()).collect();
    let failed = crate::finetune_ahead::fine_tune_ahead(evaluator, &records, workers, note);
    // the failures keep their place in front order; the others are built and measured
    let results =
        crate::confirm::in_queue(&records, workers, |t, worker| match failed.get(&t.number) {
            Some(msg) => Ok(Err(EvalError::Failed(msg.clone()))),
            None => crate::confirm::re_evaluate(run_dir, evaluator, t, worker),
        });
    for ((t, m), result) in chosen.into_iter().zip(results) {
        let before = m.accuracy;
        match result? {
            Ok(mut eval) => {
                if !m.fine_tuned_earlier {
                    // read back from the store, but this run's own fine-tuning (trained
                    // ahead, or before a kill it resumes from), not an earlier search's
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
/// before its kill as its own, not an earlier search's (a resume judges for a budget of
/// its own, so its front, and then the choice, can still change).
fn inherited_front(
    trials: &[TrialRecord],
    objectives: &[Objective],
    evaluator: &PipelineEvaluator,
) -> Vec<(TrialRecord, Inherited)> {
    let began = trials
        .iter()
        .map(|t| t.created_at)
        .fold(f64::INFINITY, f64::min);
    let stored_before_run = |t: &TrialRecord| {
        let Ok(genome) = serde_json::from_str::<Genome>(&t.genome) else {
            return false;
        };
        evaluator
            .fine_tune_stored_at(&genome, &t.genome_id)
            .is_some_and(|at| {
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
                latency_ms: e.metrics.get(keys::LATENCY_MS).map(|m| m.value),
                fine_tuned_earlier: stored_before_run(&t),
            };
            Some((t, m))
        })
        .collect()
}

/// The fine-tunings `trials` already holds (a search stopped while its front was being
/// fine-tuned, then resumed): how many, and how many of them reused an earlier search's.
fn journaled(trials: &[TrialRecord]) -> FineTuned {
    let mut count = FineTuned::default();
    for e in trials.iter().filter_map(|t| t.evaluation.as_ref()) {
        if e.labels
            .get(ACCURACY_KIND)
            .is_some_and(|k| k.starts_with(FINE_TUNED))
        {
            count.done += 1;
            count.reused += usize::from(e.labels.contains_key(REUSED_FROM));
        }
    }
    count
}

/// The note on front models left with inherited weights by [`choose`]: which, their
/// inherited accuracy against the earlier-fine-tuned model each was not told apart from
/// (the noise computed at that model's accuracy on `images` validation images), and how
/// to fine-tune them anyway.
fn left_inherited_note(left: &[LeftInherited], images: usize) -> String {
    let pairs: Vec<_> = left
        .iter()
        .map(|l| {
            format!(
                "{} ({:.2}% vs {:.2}% of candidate {}, noise {:.1} points)",
                l.model.number,
                100.0 * l.model.accuracy,
                100.0 * l.like.accuracy,
                l.like.number,
                100.0 * standard_error(l.like.accuracy, images),
            )
        })
        .collect();
    let (s, them) = if left.len() == 1 {
        ("", "it")
    } else {
        ("s", "them")
    };
    format!(
        "front candidate{s} {} left with inherited weights: by inherited validation top-1 (host), \
         not more accurate beyond the judge's noise (one standard error at {images} \
         validation images) than a front model at least as fast that an earlier search \
         fine-tuned (--fine-tune-all fine-tunes {them} too)",
        pairs.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A finished trial whose accuracy is of `kind` (`None`: not evaluated), reused from an
    /// earlier search's fine-tuning when `reused`.
    fn trial(number: u64, kind: Option<&str>, reused: bool) -> TrialRecord {
        let evaluation = kind.map(|k| {
            let mut e = Evaluation::default();
            e.labels.insert(ACCURACY_KIND.into(), k.into());
            if reused {
                e.labels
                    .insert(REUSED_FROM.into(), "runs/supernets/x/fine-tuned/y".into());
            }
            e
        });
        TrialRecord {
            number,
            genome_id: format!("g{number}"),
            genome: "{}".into(),
            origin: "random".into(),
            status: Status::Done,
            evaluation,
            error: None,
            created_at: 0.0,
            started_at: None,
            finished_at: None,
            attempts: 1,
        }
    }

    #[test]
    fn a_resumed_search_counts_the_fine_tunings_it_journaled() {
        let tuned = "fine-tuned 2 epochs from weights inherited from the supernet in s";
        let int8 = format!("{tuned}; then quantized to int8 (calibrated on 500 images)");
        let trials = [
            trial(
                1,
                Some("inherited from the supernet in s (2 epochs)"),
                false,
            ),
            trial(2, Some(tuned), false),
            trial(3, Some(tuned), true),
            trial(4, Some(&int8), false),
            trial(5, None, false),
            trial(6, Some("trained from scratch"), false),
        ];
        let count = journaled(&trials);
        assert_eq!((count.done, count.reused, count.left_inherited), (3, 1, 0));
        assert_eq!(journaled(&trials[..2]).done, 1);
        assert_eq!(journaled(&[]), FineTuned::default());
    }

    /// A front model whose latency grows with its accuracy, as on a front of the two.
    fn model(number: u64, accuracy: f64, fine_tuned_earlier: bool) -> Inherited {
        Inherited {
            number,
            accuracy,
            latency_ms: Some(100.0 * accuracy),
            fine_tuned_earlier,
        }
    }

    fn numbers(models: &[Inherited]) -> Vec<u64> {
        models.iter().map(|m| m.number).collect()
    }

    fn left_numbers(left: &[LeftInherited]) -> Vec<(u64, u64)> {
        left.iter()
            .map(|l| (l.model.number, l.like.number))
            .collect()
    }

    #[test]
    fn a_first_search_fine_tunes_the_most_accurate() {
        let front = vec![
            model(1, 0.80, false),
            model(2, 0.90, false),
            model(3, 0.85, false),
            model(4, 0.70, false),
        ];
        let (chosen, left) = choose(front, 3, false, |_| 0.016);
        assert_eq!(numbers(&chosen), [2, 3, 1]);
        assert!(left.is_empty());
    }

    #[test]
    fn a_later_search_leaves_inherited_a_new_model_an_earlier_one_dominates_within_noise() {
        // the second search of the README's 11 min 21 s: two new genomes 1.25 and 0.5
        // points above (and so slower than) one fine-tuned before; noise 1.6 points
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
        let (chosen, left) = choose(front.clone(), 5, false, noise);
        // 93% is 4 points above: fine-tuned; 17 and 16 are reused; 15, fine-tuned earlier,
        // takes a place the two left free; 14, new and below the five, does not
        assert_eq!(numbers(&chosen), [3, 17, 16, 15]);
        assert_eq!(left_numbers(&left), [(259, 17), (220, 17)]);
        // among the six most accurate, 14 (new, faster than every earlier one) is a
        // trade-off of its own: fine-tuned; 9, new and below the six, takes no freed place
        let mut six = front.clone();
        six.retain(|m| m.number != 15);
        six.push(model(9, 0.80, false));
        let (chosen, left) = choose(six, 6, false, noise);
        assert_eq!(numbers(&chosen), [3, 17, 16, 14]);
        assert_eq!(left.len(), 2);
        // --fine-tune-all: the five most accurate, whatever was fine-tuned before
        let (chosen, left) = choose(front.clone(), 5, true, noise);
        assert_eq!(numbers(&chosen), [3, 259, 220, 17, 16]);
        assert!(left.is_empty());
        // with no noise every lead counts: both new ones are fine-tuned
        let (chosen, left) = choose(front, 5, false, |_| 0.0);
        assert_eq!(numbers(&chosen), [3, 259, 220, 17, 16]);
        assert!(left.is_empty());
    }

    #[test]
    fn only_a_model_at_least_as_fast_and_within_noise_leaves_one_inherited() {
        let earlier = model(1, 0.5, true);
        // exactly one noise above: left; a hair more: fine-tuned
        let edge = model(2, 0.5 + 1.0 / 64.0, false);
        let (_, left) = choose(vec![earlier, edge], 5, false, |_| 1.0 / 64.0);
        assert_eq!(left_numbers(&left), [(2, 1)]);
        let (_, left) = choose(vec![earlier, edge], 5, false, |_| 1.0 / 128.0);
        assert!(left.is_empty());
        // the same edge where the subtraction rounds up: 0.915 - 0.9 > 0.015 in f64
        let (r, m) = (model(1, 0.9, true), model(2, 0.915, false));
        let (_, left) = choose(vec![r, m], 5, false, |_| 0.015);
        assert_eq!(left_numbers(&left), [(2, 1)]);
        // the earlier model slower than the new one (a front of more objectives): no
        // reason to leave the new one, nor when a latency is missing
        let slower = Inherited {
            latency_ms: Some(99.0),
            ..earlier
        };
        let (chosen, left) = choose(vec![slower, edge], 5, false, |_| 0.1);
        assert!(left.is_empty());
        assert_eq!(numbers(&chosen), [2, 1]);
        let unknown = Inherited {
            latency_ms: None,
            ..edge
        };
        let (_, left) = choose(vec![earlier, unknown], 5, false, |_| 0.1);
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
        let like = model(17, 0.89, true);
        let left = [
            LeftInherited {
                model: model(259, 0.9025, false),
                like,
            },
            LeftInherited {
                model: model(220, 0.895, false),
                like,
            },
        ];
        assert_eq!(
            left_inherited_note(&left, 400),
            "front candidates 259 (90.25% vs 89.00% of candidate 17, noise 1.6 points), 220 \
             (89.50% vs 89.00% of candidate 17, noise 1.6 points) left with inherited weights: \
             by inherited validation top-1 (host), not more accurate beyond the judge's noise (one \
             standard error at 400 validation images) than a front model at least as fast \
             that an earlier search fine-tuned (--fine-tune-all fine-tunes them too)"
        );
    }
}
