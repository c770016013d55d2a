//! kiln-latency: latency lookup tables and the predictor that sums them.
//!
//! FBNet (Wu et al., 2019) chose its blocks with a per-operator latency table measured
//! on the phone; nn-Meter (Zhang et al., 2021) predicts a network's latency from
//! per-kernel measurements. kiln does the same per layer: a [`LatencyTable`] holds one
//! [`Entry`] per [`LayerKey`] (stem or head conv, inverted-residual block, pooled
//! classifier, each with its shapes and choices) measured on a target's own path, and
//! [`predict`] sums a network's entries and adds a constant fitted on whole networks.
//! A search can then judge thousands of candidates without building one.
//!
//! This crate owns the table file (JSON, [`FORMAT_VERSION`]) and the arithmetic; it
//! measures nothing. kiln-pipeline's `lut` module builds tables (one generated bundle per
//! batch of layers) and checks them against whole-network measurements.
//!
//! Every prediction is labelled `predicted`; the entries keep the source they were
//! measured from (`sim`, `host` or `device`).

mod predict;
mod stats;
mod table;

pub use predict::{LatencyPrecheck, cost_ms, precheck, predict, predict_cost, sum_of_layers};
pub use stats::{agreement, fit_overhead, kendall_tau, relative_errors};
pub use table::{
    Agreement, Entry, FORMAT_VERSION, FieldMismatch, LatencyTable, Overhead, SimMode, TableIdentity,
};

/// Why a table cannot be read or used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LatencyError {
    /// The file is not a latency table.
    #[error("{origin} is not a valid latency table: {message}")]
    Corrupt {
        /// The file.
        origin: String,
        /// What is wrong (serde's message with line and column).
        message: String,
    },
    /// The file was written by another version of the format.
    #[error(
        "{origin} is a latency table of format version {found}; this kiln reads version \
         {expected}: build it again with `cargo xtask lut build`"
    )]
    Version {
        /// The file.
        origin: String,
        /// Its version.
        found: u32,
        /// The version this crate reads.
        expected: u32,
    },
    /// The table was measured for another space, input, target, runtime or sim model.
    #[error(
        "{origin} was measured for something else ({details}); build a table for this run \
         with `cargo xtask lut build`"
    )]
    Mismatch {
        /// The file.
        origin: String,
        /// Each differing field with the table's and the wanted value.
        details: String,
    },
    /// A network uses a layer the table has no entry for.
    #[error(
        "the latency table has no entry for layer `{key}`: it was built for another space or \
         input, or its build was interrupted (run `cargo xtask lut build` to finish it)"
    )]
    Missing {
        /// The layer key, as text.
        key: String,
    },
    /// The per-network constant (and so the error margin) has not been fitted yet.
    #[error(
        "the latency table has no fitted per-network constant yet: its build did not finish \
         (run `cargo xtask lut build` again to resume it)"
    )]
    NotFitted,
    /// A power mode the `sim` table has no clock for.
    #[error("the latency table has no power mode `{mode}` (it has {known})")]
    UnknownMode {
        /// The mode asked for.
        mode: String,
        /// The modes it has.
        known: String,
    },
}

#[cfg(test)]
mod tests;
