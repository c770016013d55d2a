//! The power and constraint model: simulated latency per power mode of a
//! device profile, energy per inference, and a pass/fail per constraint.
//!
//! Simulated latency = fuel x the profile's cycles per fuel / the mode's
//! clock. It is one number per mode: the simulation is deterministic, so its
//! p50 and p95 are equal by construction and no spread is invented.

use serde::Serialize;

use kiln_target::Target;

use crate::metric::{Metric, Source, Unit};

/// Said wherever simulated p50/p95 are shown.
pub const SIM_SPREAD_NOTE: &str =
    "sim latency is deterministic (fuel x cycles per fuel / clock): p50 = p95 by construction";

/// Bytes in the profiles' megabytes (`max_size_mb`, `max_peak_memory_mb`):
/// SI megabytes. Of the two readings of "MB" this is the stricter limit, so a
/// model that passes meets it whichever one the profile's author meant.
pub const BYTES_PER_MB: f64 = 1_000_000.0;

/// Simulated figures of one power mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeFigures {
    pub mode: String,
    pub watts: Metric,
    pub clock_mhz: f64,
    pub latency_p50: Metric,
    /// Equal to `latency_p50` (see [`SIM_SPREAD_NOTE`]).
    pub latency_p95: Metric,
    pub fps: Metric,
    pub energy_per_inference: Metric,
    /// Mode power within the profile's `max_power_w` (true if none is set).
    pub within_power_budget: bool,
    /// Every latency, FPS and power constraint passes in this mode.
    pub meets_constraints: bool,
}

/// Whether one constraint of the profile holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConstraintCheck {
    /// The profile's field, e.g. `max_latency_p50_ms`.
    pub constraint: &'static str,
    pub limit: f64,
    pub limit_unit: Unit,
    /// The figure compared, with its source; `None` when it was not measured.
    pub actual: Option<Metric>,
    /// `None` when the figure was not measured (never counted as a pass).
    pub passed: Option<bool>,
}

/// Figures the constraint model needs besides fuel.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Footprint {
    /// The deployed binary's file size for the target.
    pub binary_bytes: Option<Metric>,
    /// Peak memory while running (wasm peak linear memory, or the ELF static
    /// footprint).
    pub peak_memory_bytes: Option<Metric>,
}

/// The whole power/constraint evaluation for one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerReport {
    pub target: String,
    pub fuel: Metric,
    pub cycles_per_fuel: f64,
    pub modes: Vec<ModeFigures>,
    /// The fastest mode within the power budget, if any mode is.
    pub chosen_mode: Option<String>,
    /// Constraint checks in the chosen mode (latency/FPS/power in the fastest
    /// mode when none is within budget), plus size and memory.
    pub checks: Vec<ConstraintCheck>,
    pub note: &'static str,
}

impl PowerReport {
    /// All constraints measured and passing.
    pub fn passes(&self) -> bool {
        self.chosen_mode.is_some() && self.checks.iter().all(|c| c.passed == Some(true))
    }
}

/// Simulated latency in milliseconds of `fuel` on a core at `clock_mhz`.
pub fn sim_latency_ms(fuel: u64, cycles_per_fuel: f64, clock_mhz: f64) -> f64 {
    fuel as f64 * cycles_per_fuel / (clock_mhz * 1e3)
}

/// Evaluates `fuel` (from one simulated inference) under every power mode of
/// `target`, and checks its constraints.
pub fn evaluate(target: &Target, fuel: u64, footprint: Footprint) -> PowerReport {
    let constraints = &target.constraints;
    let cycles_per_fuel = target.sim.cycles_per_fuel;
    let sim = |value, unit| Metric::new(value, unit, Source::Sim);
    let modes: Vec<ModeFigures> = target
        .power_modes
        .iter()
        .map(|mode| {
            let latency_ms = sim_latency_ms(fuel, cycles_per_fuel, mode.clock_mhz);
            let latency = sim(latency_ms, Unit::Milliseconds);
            let fps = sim(1000.0 / latency_ms, Unit::FramesPerSecond);
            let within_power_budget = constraints.max_power_w.is_none_or(|max| mode.watts <= max);
            let meets = within_power_budget
                && constraints
                    .max_latency_p50_ms
                    .is_none_or(|max| latency_ms <= max)
                && constraints
                    .max_latency_p95_ms
                    .is_none_or(|max| latency_ms <= max)
                && constraints.min_fps.is_none_or(|min| fps.value >= min);
            ModeFigures {
                mode: mode.name.clone(),
                // The profile's rated watts for the mode: a figure given, not
                // measured, so it is `predicted`.
                watts: Metric::new(mode.watts, Unit::Watts, Source::Predicted),
                clock_mhz: mode.clock_mhz,
                latency_p50: latency,
                latency_p95: latency,
                fps,
                energy_per_inference: sim(mode.watts * latency_ms, Unit::Millijoules),
                within_power_budget,
                meets_constraints: meets,
            }
        })
        .collect();

    let fastest = |candidates: &mut dyn Iterator<Item = &ModeFigures>| {
        candidates
            .min_by(|a, b| a.latency_p50.value.total_cmp(&b.latency_p50.value))
            .cloned()
    };
    let chosen = fastest(&mut modes.iter().filter(|m| m.within_power_budget));
    let shown = chosen.clone().or_else(|| fastest(&mut modes.iter()));

    let mut checks = Vec::new();
    let mut check = |constraint,
                     limit: Option<f64>,
                     limit_unit,
                     actual: Option<Metric>,
                     holds: &dyn Fn(f64, f64) -> bool| {
        if let Some(limit) = limit {
            checks.push(ConstraintCheck {
                constraint,
                limit,
                limit_unit,
                passed: actual.map(|a| holds(a.value, limit)),
                actual,
            });
        }
    };
    let at_most = |actual: f64, limit: f64| actual <= limit;
    let at_least = |actual: f64, limit: f64| actual >= limit;
    let in_mb = |m: Metric| Metric::new(m.value / BYTES_PER_MB, Unit::Megabytes, m.source);
    check(
        "max_latency_p50_ms",
        constraints.max_latency_p50_ms,
        Unit::Milliseconds,
        shown.as_ref().map(|m| m.latency_p50),
        &at_most,
    );
    check(
        "max_latency_p95_ms",
        constraints.max_latency_p95_ms,
        Unit::Milliseconds,
        shown.as_ref().map(|m| m.latency_p95),
        &at_most,
    );
    check(
        "min_fps",
        constraints.min_fps,
        Unit::FramesPerSecond,
        shown.as_ref().map(|m| m.fps),
        &at_least,
    );
    check(
        "max_power_w",
        constraints.max_power_w,
        Unit::Watts,
        shown.as_ref().map(|m| m.watts),
        &at_most,
    );
    // Sizes are compared in MB but keep their byte metric's source.
    let size_mb = footprint.binary_bytes.map(in_mb);
    check(
        "max_size_mb",
        constraints.max_size_mb,
        Unit::Megabytes,
        size_mb,
        &at_most,
    );
    let memory_mb = footprint.peak_memory_bytes.map(in_mb);
    check(
        "max_peak_memory_mb",
        constraints.max_peak_memory_mb,
        Unit::Megabytes,
        memory_mb,
        &at_most,
    );

    PowerReport {
        target: target.name.clone(),
        fuel: Metric::new(fuel as f64, Unit::Fuel, Source::Sim),
        cycles_per_fuel,
        modes,
        chosen_mode: chosen.map(|m| m.mode),
        checks,
        note: SIM_SPREAD_NOTE,
    }
}
