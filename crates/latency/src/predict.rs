//! The predictor: a network's latency as the sum of its layers' entries plus the fitted
//! per-network constant (nn-Meter's additive kernel model, FBNet's per-operator sum), and
//! the search's rejection by prediction.

use kiln_metric::{Metric, Source, Unit};
use kiln_space::{Architecture, LayerKey};
use kiln_target::{ConstraintCheck, Figures, Target};

use crate::{LatencyError, LatencyTable};

/// The sum of `arch`'s layer entries, in the table's cost unit (fuel or microseconds),
/// without the per-network constant.
///
/// Errors: [`LatencyError::Missing`] naming the first layer the table lacks.
pub fn sum_of_layers(arch: &Architecture, table: &LatencyTable) -> Result<f64, LatencyError> {
    sum_of(&arch.layer_keys(), table)
}

fn sum_of(keys: &[LayerKey], table: &LatencyTable) -> Result<f64, LatencyError> {
    keys.iter().try_fold(0.0, |sum, key| {
        let e = table.get(key).ok_or_else(|| LatencyError::Missing {
            key: key.to_string(),
        })?;
        Ok(sum + e.cost.value)
    })
}

/// The predicted cost of `arch`: the fitted line of its precision applied to
/// [`sum_of_layers`] (`scale x sum + per_layer x layers + constant`, see
/// [`crate::Overhead`]; an int8 network sums its int8 entries on the int8 line), labelled
/// `predicted`, in the table's cost unit (`fuel` for a `sim` table, `us` otherwise).
///
/// Errors: [`LatencyError::Missing`] (an int8 network in a table without int8 entries
/// names its first int8 layer); [`LatencyError::NotFitted`] when the table has no fitted
/// line for the network's precision yet.
pub fn predict_cost(arch: &Architecture, table: &LatencyTable) -> Result<Metric, LatencyError> {
    let keys = arch.layer_keys();
    let sum = sum_of(&keys, table)?;
    let overhead = table
        .overhead_of(arch.precision)
        .ok_or(LatencyError::NotFitted)?;
    let value = overhead.scale * sum + overhead.per_layer * keys.len() as f64 + overhead.cost.value;
    Ok(Metric::new(value, overhead.cost.unit, Source::Predicted))
}

/// The predicted latency of `arch` in power mode `mode`, ms, labelled `predicted`. A
/// `sim` table turns fuel into ms with the mode's clock and the profile's cycles per
/// fuel (as the simulated device does); a `host` or `device` table has one clock and
/// takes any mode name. One prediction is a few hash lookups (well under 100 us).
///
/// Errors: as [`predict_cost`]; [`LatencyError::UnknownMode`] for a mode a `sim` table
/// was not built for.
pub fn predict(
    arch: &Architecture,
    table: &LatencyTable,
    mode: &str,
) -> Result<Metric, LatencyError> {
    let cost = predict_cost(arch, table)?;
    let ms = cost_ms(table, mode, cost.value)?;
    Ok(Metric::new(ms, Unit::Milliseconds, Source::Predicted))
}

/// `cost` in `table`'s cost unit (fuel of a `sim` table, microseconds otherwise) as ms
/// in power mode `mode`: a `sim` table's fuel through the mode's clock and the
/// profile's cycles per fuel (as the simulated device does), any other table's
/// microseconds / 1000 in any mode.
///
/// Errors: [`LatencyError::UnknownMode`] for a mode a `sim` table was not built for.
pub fn cost_ms(table: &LatencyTable, mode: &str, cost: f64) -> Result<f64, LatencyError> {
    if table.identity.source != Source::Sim {
        return Ok(cost / 1e3);
    }
    let m = (table.identity.sim_modes.iter().find(|m| m.name == mode)).ok_or_else(|| {
        LatencyError::UnknownMode {
            mode: mode.into(),
            known: (table.identity.sim_modes.iter().map(|m| m.name.clone()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    })?;
    Ok(cost * m.cycles_per_fuel / (m.clock_mhz * 1e3))
}

/// What the search learns of a genome from the table before training it.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyPrecheck {
    /// The predicted latency at the fastest power mode the budget allows, ms, `predicted`.
    pub latency: Metric,
    /// The mode it was predicted for.
    pub mode: String,
    /// Latency constraints (p50, p95, FPS) that even the lower edge of the prediction's
    /// error band breaks: predicted / (1 + margin), judged by kiln-target. A genome with
    /// any is infeasible by more than the table's measured error.
    pub violations: Vec<ConstraintCheck>,
}

/// Predicts `arch`'s latency for `target` and judges the latency limits on
/// predicted / (1 + `table.margin_of(arch.precision)`), the most favourable latency the table's measured
/// error allows, so a candidate is rejected only when it breaks a limit by more than
/// that error.
///
/// Errors: as [`predict`]; [`LatencyError::NotFitted`] when the table has no margin.
pub fn precheck(
    arch: &Architecture,
    table: &LatencyTable,
    target: &Target,
) -> Result<LatencyPrecheck, LatencyError> {
    let margin = table
        .margin_of(arch.precision)
        .ok_or(LatencyError::NotFitted)?;
    let mode = target
        .modes_within_budget()
        .first()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let latency = predict(arch, table, &mode)?;
    let low = latency.value / (1.0 + margin);
    let bound = |v, u| Some(Metric::new(v, u, Source::Predicted));
    let figures = Figures {
        latency_p50: bound(low, Unit::Milliseconds),
        latency_p95: bound(low, Unit::Milliseconds),
        fps: (low > 0.0)
            .then(|| bound(1000.0 / low, Unit::FramesPerSecond))
            .flatten(),
        ..Figures::default()
    };
    let violations = target
        .constraints
        .check(&figures)
        .into_iter()
        .filter(|c| c.passed == Some(false))
        .collect();
    Ok(LatencyPrecheck {
        latency,
        mode,
        violations,
    })
}
