//! The weight-sharing search's last phase: the front's models, their accuracy so far
//! inherited from the supernet, are trained a few epochs more from the inherited weights
//! (Once-for-All's fine-tuning of a specialised sub-network), then built and measured
//! again, so the front a user deploys carries fine-tuned weights and says so.

use std::time::Instant;

use kiln_metric::{Metric, Source, Unit};
use kiln_search::driver::trial_dir;
use kiln_search::evaluator::ACCURACY_KIND;
use kiln_search::objective::keys;
use kiln_search::report::front;
use kiln_search::{EvalError, Evaluation, Evaluator, Journal, Objective, Status, TrialSpec};
use kiln_space::{Architecture, Genome};
use kiln_train::{Silent, TrainConfig};

use crate::PipelineError;
use crate::evaluate::PipelineEvaluator;
use crate::inherit::SupernetJudge;

/// Metric key of the validation top-1 a fine-tuned model had when it was only inherited
/// (a fraction, `host`), kept beside the fine-tuned one.
pub const INHERITED_ACCURACY: &str = "inherited_accuracy";

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

/// The training settings of fine-tuning from `base` (the search's): `epochs` epochs at a
/// tenth of the learning rate without warm-up, as one continues training a network that
/// already fits rather than starting one.
pub fn fine_tune_config(base: &TrainConfig, epochs: usize, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs,
        lr: base.lr / 10.0,
        warmup_epochs: 0.0,
        seed,
        ..base.clone()
    }
}

/// Trains `arch` from the weights `judge` gives `genome` for `config.epochs` epochs,
/// records in `eval` the fine-tuned validation and test top-1 (`host`), the inherited
/// validation top-1 ([`INHERITED_ACCURACY`]) and what the accuracy is, writes
/// `metrics.json` and returns the ONNX model.
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
    let (inherited, start) = judge
        .inherited_weights(&trial.point, data)
        .map_err(|e| e.to_string())?;
    let trained = kiln_train::train_from(arch, Some(&start), &trial.id, data, config, &mut Silent)
        .map_err(|e| format!("fine-tuning: {e}"))?;
    eval.timings
        .insert("fine_tune_s".into(), t.elapsed().as_secs_f64());
    let m = &trained.metrics;
    let fraction = |v: f64| Metric::new(v, Unit::Fraction, Source::Host);
    eval.metrics.insert(
        keys::ACCURACY.into(),
        fraction(m.validation_top1.unwrap_or(m.test_top1)),
    );
    eval.metrics
        .insert(keys::TEST_ACCURACY.into(), fraction(m.test_top1));
    eval.metrics
        .insert(INHERITED_ACCURACY.into(), fraction(inherited));
    eval.labels.insert(
        ACCURACY_KIND.into(),
        format!(
            "fine-tuned {} epochs from weights inherited from the supernet in {}",
            config.epochs,
            judge.dir.display()
        ),
    );
    if let Ok(json) = serde_json::to_string_pretty(m) {
        crate::files::write(&trial.dir.join("metrics.json"), json.as_bytes())
            .map_err(|e| format!("cannot write {e}"))?;
    }
    kiln_train::export_onnx(&trained).map_err(|e| format!("ONNX export: {e}"))
}

/// Fine-tunes up to `models` front models of `journal` whose accuracy is inherited, the
/// most accurate first, with `evaluator` (a supernet and `fine_tune_epochs` set), and
/// records each fine-tuned, built and measured evaluation in its trial's place. Returns
/// how many were fine-tuned.
///
/// Errors: the journal; an evaluation that stops the search (a device that does not
/// answer).
pub(crate) fn fine_tune_front(
    run_dir: &std::path::Path,
    journal: &Journal,
    evaluator: &PipelineEvaluator,
    objectives: &[Objective],
    models: usize,
    note: &mut dyn FnMut(&str),
) -> Result<usize, PipelineError> {
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
    let mut done = 0;
    for t in chosen {
        let genome: Genome = serde_json::from_str(&t.genome)
            .map_err(|e| PipelineError::Invalid(format!("trial {}: {e}", t.number)))?;
        let spec = TrialSpec {
            number: t.number,
            point: genome,
            id: t.genome_id.clone(),
            dir: trial_dir(run_dir, t.number, &t.genome_id),
            worker: 0,
        };
        let before = accuracy(&t);
        match evaluator.evaluate(&spec) {
            Ok(mut eval) => {
                if let Some(p) = t
                    .evaluation
                    .as_ref()
                    .and_then(|e| e.metrics.get(keys::PREDICTED_LATENCY_MS))
                {
                    eval.metrics.insert(keys::PREDICTED_LATENCY_MS.into(), *p);
                }
                let status = if eval.violations.is_empty() {
                    Status::Done
                } else {
                    Status::Infeasible
                };
                note(&format!(
                    "front candidate {} fine-tuned: validation top-1 {:.2}% inherited -> \
                     {:.2}% fine-tuned (host)",
                    t.number,
                    100.0 * before,
                    100.0 * eval.metrics.get(keys::ACCURACY).map_or(0.0, |m| m.value)
                ));
                journal.finish(t.number, status, Some(&eval), None)?;
                done += 1;
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
    Ok(done)
}
