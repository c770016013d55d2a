//! kiln-search: how the search space is explored and how trials are kept.
//!
//! - [`SearchSpace`]: what a strategy needs of a space (sample, mutate,
//!   crossover, content id); [`GenomeSpace`] wraps a kiln-space [`Space`].
//! - [`Strategy`]: ask/tell. [`AgingEvolution`] (regularized evolution:
//!   tournament parents, mutation and optional crossover, the oldest member
//!   leaves) and [`RandomSearch`], the baseline. Strategies never see storage
//!   or evaluation, so both can change without touching them.
//! - [`pareto`]: NSGA-II non-dominated sorting and crowding distance over
//!   configurable [`Objective`]s.
//! - [`constraints`]: hard constraints of a device profile, judged
//!   analytically before training and on measured figures after.
//! - [`Journal`]: the SQLite trial database of a run folder.
//! - [`Evaluator`]: turns a point into measured figures; [`pipeline`] is the
//!   real one (train, export, lower, build, measure), optionally on a real
//!   device through [`device`] (kiln-deploy).
//! - [`driver`]: runs a strategy against an evaluator with N workers,
//!   journalling every step; [`report`] writes front.json, trials.csv and
//!   report.html from a journal.
//!
//! [`Space`]: kiln_space::Space

pub mod compare;
pub mod constraints;
pub mod device;
pub mod driver;
mod error;
pub mod evaluator;
pub mod journal;
pub mod objective;
pub mod pareto;
pub mod pipeline;
pub mod report;
mod space;
pub mod strategy;

pub use driver::{Progress, SearchConfig, SearchSummary, run_search};
pub use error::SearchError;
pub use evaluator::{EvalError, Evaluation, Evaluator, Figure, TrialSpec};
pub use journal::{Journal, RunMeta, Status, TrialRecord};
pub use objective::{Fitness, Objective};
pub use space::{GenomeSpace, SearchSpace};
pub use strategy::{AgingEvolution, Outcome, RandomSearch, Strategy, StrategyKind};
