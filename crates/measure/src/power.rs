//! The power and constraint model: simulated latency per power mode of a
//! device profile, energy per inference, and a pass/fail per constraint.
//!
//! Simulated latency (ms) = fuel x the profile's `cycles_per_fuel` / (the
//! mode's clock in MHz x 1000), computed by
//! [`kiln_target::SimModel::latency_ms`]. It is one number per mode: the
//! simulation is deterministic, so its p50 and p95 are equal by construction
//! and no spread is invented.

use serde::Serialize;

use kiln_target::{Constraint, ConstraintCheck, Figures, Target};

use crate::{Metric, Source, Unit};

/// Said wherever simulated p50/p95 are shown: why they are equal.
pub const SIM_SPREAD_NOTE: &str =
    "sim latency is deterministic (fuel x cycles per fuel / clock): p50 = p95 by construction";

/// Bytes per MB in the profiles' limits: SI (10^6), re-exported from kiln-target.
pub use kiln_target::BYTES_PER_MB;

/// Simulated figures of one power mode.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModeFigures {
    /// The profile's name of the mode.
    pub mode: String,
    /// The mode's rated watts (`predicted`: taken from the profile).
    pub watts: Metric,
    /// The mode's clock, MHz (from the profile).
    pub clock_mhz: f64,
    /// Simulated latency, ms, `sim`: fuel x cycles_per_fuel / (clock_mhz x 1000).
    pub latency_p50: Metric,
    /// Equal to `latency_p50` (see [`SIM_SPREAD_NOTE`]).
    pub latency_p95: Metric,
    /// 1000 / latency in ms, FPS, `sim`.
    pub fps: Metric,
    /// Rated watts x latency in ms, mJ, `sim`.
    pub energy_per_inference: Metric,
    /// Mode power within the profile's `max_power_w` (true if none is set).
    pub within_power_budget: bool,
    /// Every latency, FPS and power constraint passes in this mode (a
    /// constraint the profile does not set passes).
    pub meets_constraints: bool,
}

/// Figures the constraint model needs besides fuel.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Footprint {
    /// The deployed binary's file size for the target, bytes; judged against
    /// `max_size_mb` in SI MB. `None` is NOT MEASURED, never a pass.
    pub binary_bytes: Option<Metric>,
    /// Peak memory while running, bytes (wasm peak linear memory, or the ELF
    /// static footprint); judged against `max_peak_memory_mb` in SI MB.
    pub peak_memory_bytes: Option<Metric>,
}

/// The whole power/constraint evaluation for one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerReport {
    /// The profile's name.
    pub target: String,
    /// Fuel of one simulated inference (unit `fuel`, `sim`).
    pub fuel: Metric,
    /// The profile's device cycles per unit of fuel (`[sim] cycles_per_fuel`).
    pub cycles_per_fuel: f64,
    /// Figures per power mode, in the profile's order.
    pub modes: Vec<ModeFigures>,
    /// The fastest mode within the power budget, if any mode is.
    pub chosen_mode: Option<String>,
    /// Constraint checks in the chosen mode (latency/FPS/power in the fastest
    /// mode when none is within budget), plus size and memory.
    pub checks: Vec<ConstraintCheck>,
    /// [`SIM_SPREAD_NOTE`].
    pub note: &'static str,
}

impl PowerReport {
    /// A mode is within the power budget and every constraint is measured
    /// and passing.
    pub fn passes(&self) -> bool {
        self.chosen_mode.is_some() && self.checks.iter().all(ConstraintCheck::holds)
    }

    /// The figures of the chosen mode, or of the first mode when none is
    /// within the power budget.
    pub fn chosen_or_first(&self) -> Option<&ModeFigures> {
        self.chosen_mode
            .as_ref()
            .and_then(|c| self.modes.iter().find(|m| &m.mode == c))
            .or_else(|| self.modes.first())
    }
}

/// Evaluates `fuel` (from one simulated inference) under every power mode of
/// `target`, chooses the fastest mode within `max_power_w`, and has
/// [`kiln_target::Constraints::check`] judge the chosen mode's figures (the
/// fastest mode's when none is within budget) with `footprint`'s size and
/// memory. Latency, FPS and energy are `sim`; watts are `predicted`.
pub fn evaluate(target: &Target, fuel: u64, footprint: Footprint) -> PowerReport {
    let constraints = &target.constraints;
    let cycles_per_fuel = target.sim.cycles_per_fuel;
    let sim = |value, unit| Metric::new(value, unit, Source::Sim);
    let modes: Vec<ModeFigures> = target
        .power_modes
        .iter()
        .map(|mode| {
            let latency_ms = target.sim.latency_ms(fuel, mode.clock_mhz);
            let latency = sim(latency_ms, Unit::Milliseconds);
            let fps = sim(1000.0 / latency_ms, Unit::FramesPerSecond);
            let within_power_budget = constraints.max_power_w.is_none_or(|max| mode.watts <= max);
            let watts = Metric::new(mode.watts, Unit::Watts, Source::Predicted);
            // Size and memory do not depend on the mode: judged once below.
            let meets = constraints
                .check(&Figures {
                    latency_p50: Some(latency),
                    latency_p95: Some(latency),
                    fps: Some(fps),
                    power_w: Some(watts),
                    ..Figures::default()
                })
                .iter()
                .filter(|c| c.constraint.is_latency() || c.constraint == Constraint::MaxPowerW)
                .all(ConstraintCheck::holds);
            ModeFigures {
                mode: mode.name.clone(),
                // The profile's rated watts for the mode: a figure given, not
                // measured, so it is `predicted`.
                watts,
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

    let checks = constraints.check(&Figures {
        latency_p50: shown.as_ref().map(|m| m.latency_p50),
        latency_p95: shown.as_ref().map(|m| m.latency_p95),
        fps: shown.as_ref().map(|m| m.fps),
        power_w: shown.as_ref().map(|m| m.watts),
        size_bytes: footprint.binary_bytes,
        peak_memory_bytes: footprint.peak_memory_bytes,
    });

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
