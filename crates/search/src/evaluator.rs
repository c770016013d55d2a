//! What turns a point into figures: the [`Evaluator`] trait.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use kiln_metric::Metric;

use crate::constraints::Violation;

/// One trial handed to an evaluator.
#[derive(Debug, Clone)]
pub struct TrialSpec<P> {
    /// Trial number in the journal (1-based, order of asking).
    pub number: u64,
    /// The point to evaluate.
    pub point: P,
    /// Its content id ([`crate::SearchSpace::id`]).
    pub id: String,
    /// A folder of its own for artifacts (created by the driver).
    pub dir: PathBuf,
    /// Which worker runs it (0-based); evaluators use it to keep per-worker
    /// build folders apart.
    pub worker: usize,
}

/// What an evaluation measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Figures by name (see [`crate::objective::keys`]), each with its unit
    /// and source (`host`, `sim`, `device`, `predicted`).
    pub metrics: BTreeMap<String, Metric>,
    /// Broken hard constraints, as judged by kiln-target; empty means
    /// feasible. Journals written before the checks were typed (a plain
    /// `actual` number, `unit` and `source` strings) still read.
    #[serde(deserialize_with = "legacy::violations")]
    pub violations: Vec<Violation>,
    /// Seconds spent per stage, host wall clock. kiln-pipeline writes
    /// `train_s`, `build_s`, `measure_s` and, on a device, `device_s` (the
    /// keys trials.csv reads).
    pub timings: BTreeMap<String, f64>,
    /// What a figure is, in words, by key: `accuracy_kind` says whether the accuracy was
    /// trained from scratch, inherited from a supernet or fine-tuned (trials.csv shows
    /// it). Journals written before it read as empty.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// [`Evaluation::labels`] key of what the accuracy is.
pub const ACCURACY_KIND: &str = "accuracy_kind";

/// [`Evaluation::labels`] key of the device that measured the trial's `device` figures
/// (`ssh user@host:port`, `adb SERIAL`); a shared run's workers each bring their own.
pub const MEASURED_ON: &str = "device";
/// [`Evaluation::labels`] key saying whether the figures were measured or only
/// predicted (a weight-sharing search judges first and measures its front after).
pub const FIGURES: &str = "figures";

/// An [`ACCURACY_KIND`] label in a few words, for a line of console output: `inherited`,
/// `fine-tuned 2 epochs`, `trained from scratch`, followed by `, int8` for a model
/// quantized after (the label's `; then quantized to int8` part) or `, of the f32 network`
/// for an int8 genome judged on its f32 sub-network only. The whole label names the
/// supernet, epochs and images; the report and `trials.csv` show it.
pub fn accuracy_kind_in_brief(kind: &str) -> String {
    let suffixes = [
        ("; then quantized to int8", ", int8"),
        ("; of the f32 network", ", of the f32 network"),
    ];
    let (f32_part, suffix) = suffixes
        .iter()
        .find_map(|(at, says)| kind.split_once(at).map(|(before, _)| (before, *says)))
        .unwrap_or((kind, ""));
    // where the details begin: the weights' origin, or a parenthesis of settings
    let end = [
        " from weights",
        " from the supernet",
        " from a supernet",
        " (",
    ]
    .iter()
    .filter_map(|at| f32_part.find(at))
    .min()
    .unwrap_or(f32_part.len());
    format!("{}{suffix}", f32_part[..end].trim())
}

/// Why an evaluation did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// The candidate failed (build error, trap, a failed output check on the
    /// device): the trial is recorded failed with this text and the search
    /// goes on.
    Failed(String),
    /// Something outside the candidate broke (the measuring device does not
    /// answer): the trial goes back to pending and the search stops with
    /// this text, to be continued with `--resume` once it is fixed.
    Stop(String),
}

impl From<String> for EvalError {
    fn from(message: String) -> Self {
        EvalError::Failed(message)
    }
}

impl From<&str> for EvalError {
    fn from(message: &str) -> Self {
        EvalError::Failed(message.to_string())
    }
}

impl std::fmt::Display for EvalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EvalError::Failed(m) | EvalError::Stop(m) => f.write_str(m),
        }
    }
}

/// Evaluates points. Must be shareable between worker threads.
pub trait Evaluator<P>: Send + Sync {
    /// Constraints a point breaks before anything is trained (analytic
    /// figures); a non-empty answer records the trial infeasible at once.
    fn precheck(&self, _point: &P) -> Vec<Violation> {
        Vec::new()
    }
    /// Trains, builds and measures. [`EvalError::Failed`] records the trial
    /// failed with the error text and the search goes on;
    /// [`EvalError::Stop`] stops the search.
    fn evaluate(&self, trial: &TrialSpec<P>) -> Result<Evaluation, EvalError>;
}

/// Reading the violations of journals written before `Violation` became
/// kiln-target's `ConstraintCheck`, so old runs can still be reported.
mod legacy {
    use kiln_metric::{Metric, Source, Unit};
    use kiln_target::{Constraint, ConstraintCheck};
    use serde::{Deserialize, Deserializer};

    /// The earlier form: `{constraint, limit, actual: f64?, unit, source}`,
    /// `source` `none` when nothing was measured.
    #[derive(Deserialize)]
    struct Old {
        constraint: Constraint,
        limit: f64,
        actual: Option<f64>,
        unit: String,
        source: String,
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Now(ConstraintCheck),
        Old(Old),
    }

    pub(super) fn violations<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<ConstraintCheck>, D::Error> {
        let all = Vec::<Either>::deserialize(d)?;
        Ok(all
            .into_iter()
            .map(|v| match v {
                Either::Now(c) => c,
                Either::Old(o) => {
                    let unit = o.unit.parse::<Unit>().unwrap_or(o.constraint.unit());
                    let actual = match (o.actual, o.source.parse::<Source>()) {
                        (Some(value), Ok(source)) => Some(Metric::new(value, unit, source)),
                        _ => None,
                    };
                    ConstraintCheck {
                        constraint: o.constraint,
                        limit: o.limit,
                        limit_unit: o.constraint.unit(),
                        passed: actual.map(|_| false),
                        actual,
                    }
                }
            })
            .collect())
    }

    #[cfg(test)]
    mod tests {
        use crate::Evaluation;

        #[test]
        fn journals_from_before_typed_checks_still_read() {
            let old = r#"{"metrics":{},"violations":[
                {"constraint":"max_latency_p50_ms","limit":10.0,"actual":12.5,"unit":"ms","source":"sim"},
                {"constraint":"max_size_mb","limit":1.0,"actual":null,"unit":"MB","source":"none"}
            ],"timings":{}}"#;
            let e: Evaluation = serde_json::from_str(old).unwrap();
            assert_eq!(e.violations.len(), 2);
            assert_eq!(e.violations[0].actual.unwrap().value, 12.5);
            assert_eq!(e.violations[0].passed, Some(false));
            assert_eq!(e.violations[1].actual, None);
            let again: Evaluation =
                serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
            assert_eq!(again, e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::accuracy_kind_in_brief;

    #[test]
    fn an_accuracy_kind_in_brief_keeps_what_it_is_and_drops_where_from() {
        let inherited = "inherited from the supernet in runs/supernets/mobile-split-head-6d65/head0 \
                         (4 epochs), batch norm recalibrated on 250 training images";
        assert_eq!(accuracy_kind_in_brief(inherited), "inherited");
        let tuned = "fine-tuned 2 epochs from weights inherited from the supernet in runs/x/head0";
        assert_eq!(accuracy_kind_in_brief(tuned), "fine-tuned 2 epochs");
        let scratch = "trained from scratch (10 epochs)";
        assert_eq!(accuracy_kind_in_brief(scratch), "trained from scratch");
        let int8 = format!("{tuned}; then quantized to int8 (calibrated on 100 training images)");
        assert_eq!(accuracy_kind_in_brief(&int8), "fine-tuned 2 epochs, int8");
        let judged = format!("{inherited}; of the f32 network: this genome is int8, ...");
        assert_eq!(
            accuracy_kind_in_brief(&judged),
            "inherited, of the f32 network"
        );
        assert_eq!(accuracy_kind_in_brief("something new"), "something new");
    }
}
