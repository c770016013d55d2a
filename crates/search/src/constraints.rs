//! Hard constraints of a device profile.
//!
//! Two moments: before training, from a genome's analytic figures (weights
//! alone bound the binary size from below; weights plus the largest layer's
//! input and output bound peak memory from below; MACs bound simulated
//! latency from below because every multiply-accumulate costs at least one
//! unit of wasm fuel); and after measuring, from kiln-measure's checks. A
//! lower bound that already breaks a limit rejects the genome without
//! training it.

use kiln_space::Totals;
use kiln_target::Target;
use serde::{Deserialize, Serialize};

/// One broken hard constraint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Violation {
    /// The profile field, e.g. `max_latency_p50_ms`.
    pub constraint: String,
    pub limit: f64,
    /// The figure compared (absent when it could not be measured).
    pub actual: Option<f64>,
    pub unit: String,
    /// `predicted` (analytic bound), `sim`, `host` or `device`.
    pub source: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.actual {
            Some(a) => write!(
                f,
                "{}: {:.3} {} ({}) vs limit {} {}",
                self.constraint, a, self.unit, self.source, self.limit, self.unit
            ),
            None => write!(
                f,
                "{}: not measured (limit {})",
                self.constraint, self.limit
            ),
        }
    }
}

/// The profiles' megabytes are SI megabytes, as `measure` reads them.
const MB: f64 = kiln_measure::power::BYTES_PER_MB;

/// The fastest clock among power modes within the power budget, if any.
fn fastest_allowed_clock_mhz(target: &Target) -> Option<f64> {
    target.modes_within_budget().first().map(|m| m.clock_mhz)
}

/// Constraints the analytic figures of a network already break (lower bounds,
/// labelled `predicted`).
pub fn analytic_violations(target: &Target, totals: &Totals) -> Vec<Violation> {
    let c = &target.constraints;
    let mut out = Vec::new();
    let weight_bytes = totals.params as f64 * 4.0;
    let mut check = |name: &str, limit: Option<f64>, bound: f64, unit: &str| {
        if let Some(limit) = limit
            && bound > limit
        {
            out.push(Violation {
                constraint: name.into(),
                limit,
                actual: Some(bound),
                unit: unit.into(),
                source: "predicted".into(),
            });
        }
    };
    check("max_size_mb", c.max_size_mb, weight_bytes / MB, "MB");
    check(
        "max_peak_memory_mb",
        c.max_peak_memory_mb,
        (weight_bytes + totals.max_layer_io_bytes as f64) / MB,
        "MB",
    );
    if let Some(clock) = fastest_allowed_clock_mhz(target) {
        let min_ms =
            kiln_measure::power::sim_latency_ms(totals.macs, target.sim.cycles_per_fuel, clock);
        check("max_latency_p50_ms", c.max_latency_p50_ms, min_ms, "ms");
        check("max_latency_p95_ms", c.max_latency_p95_ms, min_ms, "ms");
        if let Some(min_fps) = c.min_fps
            && min_ms > 0.0
            && 1000.0 / min_ms < min_fps
        {
            out.push(Violation {
                constraint: "min_fps".into(),
                limit: min_fps,
                actual: Some(1000.0 / min_ms),
                unit: "FPS".into(),
                source: "predicted".into(),
            });
        }
    } else if let Some(budget) = c.max_power_w {
        out.push(Violation {
            constraint: "max_power_w".into(),
            limit: budget,
            actual: None,
            unit: "W".into(),
            source: "predicted".into(),
        });
    }
    out
}

/// The measured checks kiln-measure made that did not pass (unmeasured
/// counts as broken: it never passes).
pub fn measured_violations(report: &kiln_measure::power::PowerReport) -> Vec<Violation> {
    let mut out: Vec<Violation> = report
        .checks
        .iter()
        .filter(|c| c.passed != Some(true))
        .map(|c| Violation {
            constraint: c.constraint.to_string(),
            limit: c.limit,
            actual: c.actual.map(|a| a.value),
            unit: c.limit_unit.to_string(),
            source: c
                .actual
                .map(|a| a.source.to_string())
                .unwrap_or_else(|| "none".into()),
        })
        .collect();
    if report.chosen_mode.is_none() && !out.iter().any(|v| v.constraint == "max_power_w") {
        out.push(Violation {
            constraint: "max_power_w".into(),
            limit: 0.0,
            actual: None,
            unit: "W".into(),
            source: "predicted".into(),
        });
    }
    out
}

/// The constraints a device's measured latency decides when there is one.
pub const DEVICE_JUDGED: [&str; 3] = ["max_latency_p50_ms", "max_latency_p95_ms", "min_fps"];

/// [`measured_violations`] with the latency constraints (p50, p95, FPS)
/// judged on a device's figures instead of the simulation's.
pub fn device_violations(
    target: &Target,
    report: &kiln_measure::power::PowerReport,
    p50_ms: f64,
    p95_ms: f64,
) -> Vec<Violation> {
    let c = &target.constraints;
    let device = |constraint: &str, limit: f64, actual: f64, unit: &str| Violation {
        constraint: constraint.into(),
        limit,
        actual: Some(actual),
        unit: unit.into(),
        source: "device".into(),
    };
    let mut out = Vec::new();
    if let Some(limit) = c.max_latency_p50_ms.filter(|&l| p50_ms > l) {
        out.push(device("max_latency_p50_ms", limit, p50_ms, "ms"));
    }
    if let Some(limit) = c.max_latency_p95_ms.filter(|&l| p95_ms > l) {
        out.push(device("max_latency_p95_ms", limit, p95_ms, "ms"));
    }
    if let Some(min) = c.min_fps {
        let fps = if p50_ms > 0.0 {
            1000.0 / p50_ms
        } else {
            f64::INFINITY
        };
        if fps < min {
            out.push(device("min_fps", min, fps, "FPS"));
        }
    }
    out.extend(
        measured_violations(report)
            .into_iter()
            .filter(|v| !DEVICE_JUDGED.contains(&v.constraint.as_str())),
    );
    out
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
        let names: Vec<&str> = v.iter().map(|v| v.constraint.as_str()).collect();
        assert_eq!(names, ["max_size_mb", "max_peak_memory_mb"]);
        assert!(v.iter().all(|v| v.source == "predicted"));
        // 2e7 MACs >= 20 ms at the fastest clock: breaks latency.
        let v = analytic_violations(&t, &totals(1000, 20_000_000, 1000));
        assert_eq!(v[0].constraint, "max_latency_p50_ms");
        assert!((v[0].actual.unwrap() - 20.0).abs() < 1e-9);
    }

    #[test]
    fn power_budget_limits_the_clock_of_the_latency_bound() {
        // Within 5 W only the 100 MHz mode is allowed: 2e6 MACs >= 20 ms.
        let t = target("max_power_w = 5.0\nmax_latency_p50_ms = 10.0");
        let v = analytic_violations(&t, &totals(1000, 2_000_000, 1000));
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].constraint, "max_latency_p50_ms");
    }

    #[test]
    fn measured_checks_that_fail_or_are_missing_are_violations() {
        let t = target("max_latency_p50_ms = 10.0\nmax_size_mb = 1.0");
        let fast = kiln_measure::power::evaluate(
            &t,
            1_000_000,
            kiln_measure::power::Footprint {
                binary_bytes: Some(kiln_measure::Metric::new(
                    1000.0,
                    kiln_measure::Unit::Bytes,
                    kiln_measure::Source::Host,
                )),
                peak_memory_bytes: None,
            },
        );
        assert!(measured_violations(&fast).is_empty());
        let slow = kiln_measure::power::evaluate(
            &t,
            100_000_000,
            kiln_measure::power::Footprint {
                binary_bytes: None,
                peak_memory_bytes: None,
            },
        );
        let v = measured_violations(&slow);
        let names: Vec<&str> = v.iter().map(|v| v.constraint.as_str()).collect();
        assert_eq!(names, ["max_latency_p50_ms", "max_size_mb"]);
        assert_eq!(v[0].source, "sim");
        assert_eq!(v[1].actual, None);
    }

    #[test]
    fn device_figures_decide_latency_when_there_are_some() {
        let t = target(
            "max_latency_p50_ms = 10.0\nmax_latency_p95_ms = 12.0\nmin_fps = 50.0\nmax_size_mb = 1.0",
        );
        // Slow in the simulation (100 ms), too big.
        let sim = kiln_measure::power::evaluate(
            &t,
            100_000_000,
            kiln_measure::power::Footprint {
                binary_bytes: Some(kiln_measure::Metric::new(
                    2.0 * MB,
                    kiln_measure::Unit::Bytes,
                    kiln_measure::Source::Host,
                )),
                peak_memory_bytes: None,
            },
        );
        // Fast on the device: only the size is left.
        let v = device_violations(&t, &sim, 5.0, 8.0);
        let names: Vec<&str> = v.iter().map(|v| v.constraint.as_str()).collect();
        assert_eq!(names, ["max_size_mb"]);
        // Slow on the device: p50 breaks p50 and FPS, p95 breaks p95.
        let v = device_violations(&t, &sim, 25.0, 30.0);
        let names: Vec<&str> = v.iter().map(|v| v.constraint.as_str()).collect();
        assert_eq!(
            names,
            [
                "max_latency_p50_ms",
                "max_latency_p95_ms",
                "min_fps",
                "max_size_mb"
            ]
        );
        assert!(v[..3].iter().all(|v| v.source == "device"));
        assert_eq!(v[2].actual, Some(40.0));
    }
}
