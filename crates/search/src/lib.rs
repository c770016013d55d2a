//! kiln-search: how the search space is explored and how trials are kept.
//!
//! - [`SearchSpace`]: what a strategy needs of a space (sample, mutate,
//!   crossover, content id); [`GenomeSpace`] wraps a kiln-space [`Space`].
//! - [`Strategy`]: ask/tell. [`AgingEvolution`] (regularized evolution,
//!   Real et al. 2019: tournament parents, mutation and optional crossover,
//!   the oldest member leaves; optionally NSGA-II parent selection),
//!   [`Reinforce`] (MnasNet's REINFORCE controller), [`Tpe`] (Tree-structured
//!   Parzen Estimator) and [`RandomSearch`], the baseline. Strategies never see storage
//!   or evaluation, so both can change without touching them.
//! - [`pareto`]: NSGA-II non-dominated sorting and crowding distance (Deb
//!   et al. 2002) over configurable [`Objective`]s; [`Fitness`] is the scalar
//!   tournaments compare (accuracy, or the MnasNet reward of Tan et al. 2019).
//! - Units throughout: accuracy a fraction in 0..1, latency in ms, sizes in
//!   bytes; every figure is a [`Metric`] labelled with its [`Source`].
//! - [`constraints`]: the analytic precheck of a device profile's hard
//!   constraints (lower bounds judged by kiln-target before training).
//! - [`Journal`]: the SQLite trial database of a run folder.
//! - [`Evaluator`]: turns a point into measured figures. The real one
//!   (train, export, lower, build, measure, optionally on a device) is
//!   kiln-pipeline's; this crate holds no heavy dependency.
//! - [`driver`]: runs a strategy against an evaluator with N workers,
//!   journalling every step; [`report`] writes front.json, trials.csv and
//!   report.html from a journal; [`compare`] and [`compare_runs`] set
//!   finished runs against each other and a baseline; [`quality`] draws the
//!   strategy benchmark's curves (best feasible accuracy, hypervolume).
//!
//! [`Space`]: kiln_space::Space

pub mod compare;
pub mod compare_runs;
pub mod constraints;
pub mod driver;
mod error;
pub mod evaluator;
pub mod front_file;
pub mod journal;
pub mod objective;
pub mod pareto;
pub mod quality;
pub mod report;
pub mod scatter;
mod space;
pub mod strategy;

pub use driver::{Progress, SearchConfig, SearchSummary, run_search};
pub use error::SearchError;
pub use evaluator::{EvalError, Evaluation, Evaluator, TrialSpec};
pub use journal::{Journal, RunMeta, Status, TrialRecord};
pub use kiln_metric::{Metric, Source, Unit};
pub use objective::{Fitness, Objective};
pub use space::{CategoricalSpace, GenomeSpace, SearchSpace};
pub use strategy::{AgingEvolution, Outcome, RandomSearch, Reinforce, Strategy, StrategyKind, Tpe};
