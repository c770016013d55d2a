//! Which hard constraints a measured candidate breaks. The judging itself is
//! kiln-target's ([`Constraints::check`](kiln_target::Constraints::check));
//! this module only picks the figures: the simulation's, or a device's
//! latency in place of the simulated one when the candidate ran on a device.

use kiln_codegen::program::BenchLine;
use kiln_measure::power::{Footprint, PowerReport};
use kiln_metric::{Metric, Source, Unit};
use kiln_search::constraints::Violation;
use kiln_target::{Constraint, ConstraintCheck, Figures, Target};

/// The device's latency figures from its bench line: p50, p95 (ms) and FPS.
pub fn device_latency(bench: &BenchLine) -> (Metric, Metric, Option<Metric>) {
    let ms = |us: f64| Metric::new(us / 1000.0, Unit::Milliseconds, Source::Device);
    let p50 = ms(bench.p50_us);
    let fps = (p50.value > 0.0)
        .then(|| Metric::new(1000.0 / p50.value, Unit::FramesPerSecond, Source::Device));
    (p50, ms(bench.p95_us), fps)
}

/// The constraints the candidate breaks (failed or not measured). Without a
/// device these are the power report's failed checks; with one, latency,
/// p95 and FPS are judged on the device's figures and the rest (power,
/// size, memory) as measured here.
pub fn violations(
    target: &Target,
    report: &PowerReport,
    footprint: &Footprint,
    device: Option<&BenchLine>,
) -> Vec<Violation> {
    let checks: Vec<ConstraintCheck> = match device {
        None => report.checks.clone(),
        Some(bench) => {
            let (p50, p95, fps) = device_latency(bench);
            // Judged only when the profile has a budget, so its check exists.
            let power = report
                .checks
                .iter()
                .find(|c| c.constraint == Constraint::MaxPowerW)
                .and_then(|c| c.actual);
            target.constraints.check(&Figures {
                latency_p50: Some(p50),
                latency_p95: Some(p95),
                fps,
                power_w: power,
                size_bytes: footprint.binary_bytes,
                peak_memory_bytes: footprint.peak_memory_bytes,
            })
        }
    };
    // No power mode within the budget fails max_power_w itself: the report
    // judges the fastest mode then, whose watts exceed the budget.
    checks.into_iter().filter(|c| !c.holds()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_measure::power::evaluate;
    use std::path::Path;

    fn target(constraints: &str) -> Target {
        let text = format!(
            "description = \"test\"\ntriple = \"wasm32-unknown-unknown\"\n[constraints]\n{constraints}\n[[power_mode]]\nname = \"fast\"\nwatts = 10.0\ncores = 1\nclock_mhz = 1000\n[sim]\ncycles_per_fuel = 1.0\n[deploy]\nmethod = \"wasmtime\"\n"
        );
        Target::from_toml(&text, Path::new("t.toml")).unwrap()
    }

    fn bytes(v: f64) -> Option<Metric> {
        Some(Metric::new(v, Unit::Bytes, Source::Host))
    }

    fn bench(p50_us: f64, p95_us: f64) -> BenchLine {
        BenchLine {
            source: "device".into(),
            runs: 10,
            p50_us,
            p95_us,
            min_us: p50_us,
            max_us: p95_us,
            peak_rss_kib: None,
            output_check: None,
        }
    }

    #[test]
    fn measured_checks_that_fail_or_are_missing_are_violations() {
        let t = target("max_latency_p50_ms = 10.0\nmax_size_mb = 1.0");
        let small = Footprint {
            binary_bytes: bytes(1000.0),
            peak_memory_bytes: None,
        };
        let fast = evaluate(&t, 1_000_000, small);
        assert!(violations(&t, &fast, &small, None).is_empty());
        let unmeasured = Footprint::default();
        let slow = evaluate(&t, 100_000_000, unmeasured);
        let v = violations(&t, &slow, &unmeasured, None);
        let names: Vec<&str> = v.iter().map(|v| v.constraint.field()).collect();
        assert_eq!(names, ["max_latency_p50_ms", "max_size_mb"]);
        assert_eq!(v[0].actual.unwrap().source, Source::Sim);
        assert_eq!(v[1].actual, None);
    }

    #[test]
    fn device_figures_decide_latency_when_there_are_some() {
        let t = target(
            "max_latency_p50_ms = 10.0\nmax_latency_p95_ms = 12.0\nmin_fps = 50.0\nmax_size_mb = 1.0",
        );
        // Slow in the simulation (100 ms) and too big.
        let big = Footprint {
            binary_bytes: bytes(2e6),
            peak_memory_bytes: None,
        };
        let sim = evaluate(&t, 100_000_000, big);
        // Fast on the device: only the size is left.
        let v = violations(&t, &sim, &big, Some(&bench(5_000.0, 8_000.0)));
        let names: Vec<&str> = v.iter().map(|v| v.constraint.field()).collect();
        assert_eq!(names, ["max_size_mb"]);
        // Slow on the device: p50 breaks p50 and FPS, p95 breaks p95.
        let v = violations(&t, &sim, &big, Some(&bench(25_000.0, 30_000.0)));
        let names: Vec<&str> = v.iter().map(|v| v.constraint.field()).collect();
        assert_eq!(
            names,
            [
                "max_latency_p50_ms",
                "max_latency_p95_ms",
                "min_fps",
                "max_size_mb"
            ]
        );
        assert!(
            v[..3]
                .iter()
                .all(|v| v.actual.unwrap().source == Source::Device)
        );
        assert_eq!(v[2].actual.unwrap().value, 40.0);
    }
}
