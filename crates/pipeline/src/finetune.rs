//! The weight-sharing search's last phase: the front's models, their accuracy so far
//! inherited from the supernet, are trained a few epochs more from the inherited weights
//! (Once-for-All's fine-tuning of a specialised sub-network), then built and measured
//! again, so the front a user deploys carries fine-tuned weights and says so.

use std::time::Instant;

use kiln_metric::{Metric, Source, Unit};
use kiln_search::evaluator::ACCURACY_KIND;
use kiln_search::objective::keys;
use kiln_search::report::front;
use kiln_search::{EvalError, Evaluation, Journal, Objective, Status, TrialSpec};
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
}

impl Default for FineTune {
    fn default() -> Self {
        FineTune {
            epochs: 2,
            models: 5,
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

/// Fine-tunes up to `models` front models of `journal` whose accuracy is inherited, the
/// most accurate first, with `evaluator` (a supernet and `fine_tune_epochs` set), and
/// records each fine-tuned, built and measured evaluation in its trial's place;
/// `workers` fine-tune at once. Returns how many were fine-tuned, and how many of those
/// reused an earlier search's fine-tuning (stored in the supernet's folder).
///
/// Errors: the journal; an evaluation that stops the search (a device that does not
/// answer).
pub(crate) fn fine_tune_front(
    run_dir: &std::path::Path,
    journal: &Journal,
    evaluator: &PipelineEvaluator,
    objectives: &[Objective],
    models: usize,
    workers: usize,
    note: &mut dyn FnMut(&str),
) -> Result<FineTuned, PipelineError> {
    let trials = journal.trials()?;
    let mut chosen: Vec<_> = front(&trials, objectives)
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| {
            t.evaluation
                .as_ref()
                .and_then(|e| e.labels.get(ACCURACY_KIND))
                .is_some_and(|k| k.starts_with(INHERITED))
        })
        .collect();
    let accuracy = |t: &kiln_search::TrialRecord| {
        t.evaluation
            .as_ref()
            .and_then(|e| e.metrics.get(keys::ACCURACY))
            .map_or(0.0, |m| m.value)
    };
    chosen.sort_by(|a, b| accuracy(b).total_cmp(&accuracy(a)));
    chosen.truncate(models);
    let mut count = FineTuned::default();
    let results = crate::confirm::re_evaluate_all(run_dir, evaluator, &chosen, workers);
    for (t, result) in chosen.into_iter().zip(results) {
        let before = accuracy(&t);
        match result? {
            Ok(eval) => {
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
