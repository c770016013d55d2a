//! What turns a point into figures: the [`Evaluator`] trait.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::constraints::Violation;

/// One figure with its unit and where it came from (`device`, `host`, `sim`,
/// `predicted`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub value: f64,
    pub unit: String,
    pub source: String,
}

impl Figure {
    pub fn new(value: f64, unit: impl Into<String>, source: impl Into<String>) -> Self {
        Self {
            value,
            unit: unit.into(),
            source: source.into(),
        }
    }
}

impl From<kiln_measure::Metric> for Figure {
    fn from(m: kiln_measure::Metric) -> Self {
        Figure::new(m.value, m.unit.to_string(), m.source.to_string())
    }
}

/// One trial handed to an evaluator.
#[derive(Debug, Clone)]
pub struct TrialSpec<P> {
    /// Trial number in the journal (1-based, order of asking).
    pub number: u64,
    pub point: P,
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
    /// Figures by name (see [`crate::objective::keys`]), each labelled.
    pub metrics: BTreeMap<String, Figure>,
    /// Broken hard constraints; empty means feasible.
    pub violations: Vec<Violation>,
    /// Seconds spent per stage (`train`, `build`, `measure`), host wall clock.
    pub timings: BTreeMap<String, f64>,
}

/// Evaluates points. Must be shareable between worker threads.
pub trait Evaluator<P>: Send + Sync {
    /// Constraints a point breaks before anything is trained (analytic
    /// figures); a non-empty answer records the trial infeasible at once.
    fn precheck(&self, _point: &P) -> Vec<Violation> {
        Vec::new()
    }
    /// Trains, builds and measures. An `Err` records the trial failed with
    /// the error text; the search goes on.
    fn evaluate(&self, trial: &TrialSpec<P>) -> Result<Evaluation, String>;
}
