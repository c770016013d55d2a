//! The analytic precheck of a device profile's hard constraints.
//!
//! Before training, a genome's analytic figures bound the measured ones from
//! below: weights alone bound the binary size (f32, 4 bytes a parameter);
//! weights plus the largest layer's input and output bound peak memory; MACs
//! bound simulated latency, because every multiply-accumulate costs at least
//! one unit of wasm fuel (measured: about 14.5). A bound that already breaks
//! a limit rejects the genome without training it. The bounds are judged by
//! kiln-target's [`Constraints::check`](kiln_target::Constraints::check), the
//! same judge the measured figures meet later (in kiln-pipeline).

use kiln_metric::{Metric, Source, Unit};
use kiln_space::Totals;
use kiln_target::{ConstraintCheck, Figures, Target};

/// One broken hard constraint: a [`ConstraintCheck`] that did not hold
/// (failed, or not measured).
pub type Violation = ConstraintCheck;

/// Constraints the analytic figures of a network already break (lower bounds,
/// labelled `predicted`). Only failed bounds count: a constraint with no
/// bound (power, for instance) is left to the measurement.
///
/// The bounds: size = params x 4 bytes; peak memory = that + the largest
/// layer's input + output bytes; p50 and p95 latency = MACs taken as fuel
/// through the profile's sim model (ms) at the fastest clock the power budget
/// allows; FPS = 1000 / that latency.
pub fn analytic_violations(target: &Target, totals: &Totals) -> Vec<Violation> {
    analytic_violations_at(target, totals, 4)
}

/// [`analytic_violations`] for a network stored with `bytes_per_value` bytes per weight
/// and activation (4 for f32, 1 for int8): size and memory bounds scaled by
/// `bytes_per_value / 4`.
pub fn analytic_violations_at(
    target: &Target,
    totals: &Totals,
    bytes_per_value: u32,
) -> Vec<Violation> {
    let figures = analytic_bounds_at(target, totals, bytes_per_value);
    target
        .constraints
        .check(&figures)
        .into_iter()
        .filter(|c| c.passed == Some(false))
        .collect()
}

/// The analytic lower bounds of [`analytic_violations`] (size, peak memory, p50/p95
/// latency, FPS), each labelled `predicted`.
pub fn analytic_bounds(target: &Target, totals: &Totals) -> Figures {
    analytic_bounds_at(target, totals, 4)
}

/// [`analytic_bounds`] with `bytes_per_value` bytes per weight and activation (see
/// [`analytic_violations_at`]).
pub fn analytic_bounds_at(target: &Target, totals: &Totals, bytes_per_value: u32) -> Figures {
    let bound = |value, unit| Some(Metric::new(value, unit, Source::Predicted));
    let weight_bytes = totals.params as f64 * f64::from(bytes_per_value);
    let io_bytes = totals.max_layer_io_bytes as f64 * f64::from(bytes_per_value) / 4.0;
    let mut figures = Figures {
        size_bytes: bound(weight_bytes, Unit::Bytes),
        peak_memory_bytes: bound(weight_bytes + io_bytes, Unit::Bytes),
        ..Figures::default()
    };
    // The fastest clock the power budget allows (profiles always have one:
    // kiln-target refuses a budget no mode fits).
    if let Some(mode) = target.modes_within_budget().first() {
        let min_ms = target.sim.latency_ms(totals.macs, mode.clock_mhz);
        figures.latency_p50 = bound(min_ms, Unit::Milliseconds);
        figures.latency_p95 = bound(min_ms, Unit::Milliseconds);
        if min_ms > 0.0 {
            figures.fps = bound(1000.0 / min_ms, Unit::FramesPerSecond);
        }
    }
    figures
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn target(constraints: &str) -> Target {
        let text = format!(
            r#"description = "test"
triple = "wasm32-unknown-unknown"
[constraints]
{constraints}
[[power_mode]]
name = "fast"
watts = 10.0
cores = 1
clock_mhz = 1000
[[power_mode]]
name = "slow"
watts = 2.0
cores = 1
clock_mhz = 100
[sim]
cycles_per_fuel = 1.0
[deploy]
method = "wasmtime"
"#
        );
        Target::from_toml(&text, Path::new("t.toml")).unwrap()
    }

    fn totals(params: u64, macs: u64, io: u64) -> Totals {
        Totals {
            params,
            macs,
            max_activation_bytes: io / 2,
            max_layer_io_bytes: io,
        }
    }

    #[test]
    fn analytic_bounds_reject_only_what_cannot_fit() {
        let t = target("max_size_mb = 1.0\nmax_peak_memory_mb = 2.0\nmax_latency_p50_ms = 10.0");
        // 100k params = 0.4 MB, 1e6 MACs = 1 ms at 1000 MHz: fits.
        assert!(analytic_violations(&t, &totals(100_000, 1_000_000, 100_000)).is_empty());
        // 1M params = 4 MB of weights: breaks size and memory.
        let v = analytic_violations(&t, &totals(1_000_000, 1_000_000, 100_000));
        let names: Vec<&str> = v.iter().map(|v| v.constraint.field()).collect();
        assert_eq!(names, ["max_size_mb", "max_peak_memory_mb"]);
        assert!(
            v.iter()
                .all(|v| v.actual.is_some_and(|a| a.source == Source::Predicted))
        );
        // 2e7 MACs >= 20 ms at the fastest clock: breaks latency.
        let v = analytic_violations(&t, &totals(1000, 20_000_000, 1000));
        assert_eq!(v[0].constraint.field(), "max_latency_p50_ms");
        assert!((v[0].actual.unwrap().value - 20.0).abs() < 1e-9);
    }

    #[test]
    fn int8_bounds_count_one_byte_a_value() {
        let t = target("max_size_mb = 1.0\nmax_peak_memory_mb = 2.0");
        // 500k params: 2 MB in f32 breaks size and memory, 0.5 MB in int8 fits both.
        let big = totals(500_000, 1000, 400_000);
        assert_eq!(analytic_violations_at(&t, &big, 4).len(), 2);
        assert!(analytic_violations_at(&t, &big, 1).is_empty());
        let b = analytic_bounds_at(&t, &big, 1);
        assert_eq!(b.size_bytes.unwrap().value, 500_000.0);
        assert_eq!(b.peak_memory_bytes.unwrap().value, 600_000.0);
    }

    #[test]
    fn power_budget_limits_the_clock_of_the_latency_bound() {
        // Within 5 W only the 100 MHz mode is allowed: 2e6 MACs >= 20 ms.
        let t = target("max_power_w = 5.0\nmax_latency_p50_ms = 10.0");
        let v = analytic_violations(&t, &totals(1000, 2_000_000, 1000));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].constraint.field(), "max_latency_p50_ms");
    }
}
