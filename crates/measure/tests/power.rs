//! The power/constraint model on device profiles.

use std::path::Path;

use kiln_measure::power::{Footprint, SIM_SPREAD_NOTE, evaluate};
use kiln_measure::{Metric, Source, Unit};
use kiln_target::SimModel;
use kiln_target::Target;

const BOARD: &str = r#"
description = "test board"
triple = "aarch64-unknown-linux-musl"

[constraints]
max_latency_p50_ms = 40.0
max_latency_p95_ms = 60.0
max_power_w = 10.0
min_fps = 30.0
max_size_mb = 1.0
max_peak_memory_mb = 2.0

[[power_mode]]
name = "max"
watts = 15.0
cores = 4
clock_mhz = 2000

[[power_mode]]
name = "10W"
watts = 10.0
cores = 4
clock_mhz = 1000

[[power_mode]]
name = "5W"
watts = 5.0
cores = 2
clock_mhz = 500

[sim]
cycles_per_fuel = 2.0

[deploy]
method = "ssh"
"#;

fn board() -> Target {
    Target::from_toml(BOARD, Path::new("targets/board.toml")).unwrap()
}

fn bytes(value: f64) -> Option<Metric> {
    Some(Metric::new(value, Unit::Bytes, Source::Host))
}

fn small() -> Footprint {
    Footprint {
        binary_bytes: bytes(300_000.0),
        peak_memory_bytes: bytes(1_000_000.0),
    }
}

#[test]
fn latency_is_fuel_times_cycles_per_fuel_over_clock() {
    // 5e6 fuel x 2 cycles at 1000 MHz = 1e7 cycles / 1e9 Hz = 10 ms.
    let sim = SimModel {
        calibration: None,
        cycles_per_fuel: 2.0,
    };
    assert_eq!(sim.latency_ms(5_000_000, 1000.0), 10.0);
}

#[test]
fn each_mode_gets_latency_fps_and_energy_and_the_fastest_within_budget_is_chosen() {
    let report = evaluate(&board(), 5_000_000, small());
    let ten = report.modes.iter().find(|m| m.mode == "10W").unwrap();
    assert_eq!(ten.latency_p50.value, 10.0);
    assert_eq!(ten.latency_p50, ten.latency_p95);
    assert_eq!(ten.fps.value, 100.0);
    // 10 W x 10 ms = 100 mJ.
    assert_eq!(ten.energy_per_inference.value, 100.0);
    assert_eq!(ten.energy_per_inference.unit, Unit::Millijoules);
    assert!(
        [ten.latency_p50, ten.fps, ten.energy_per_inference]
            .iter()
            .all(|m| m.source == Source::Sim)
    );
    // "max" is faster (5 ms) but over the 10 W budget.
    let max = report.modes.iter().find(|m| m.mode == "max").unwrap();
    assert_eq!(max.latency_p50.value, 5.0);
    assert!(!max.within_power_budget && !max.meets_constraints);
    assert_eq!(report.chosen_mode.as_deref(), Some("10W"));
    assert!(report.passes(), "{:#?}", report.checks);
    assert_eq!(report.checks.len(), 6);
    assert_eq!(report.note, SIM_SPREAD_NOTE);
    assert!(report.note.contains("p50 = p95"));
}

#[test]
fn slow_model_fails_its_latency_and_fps_constraints() {
    // 10W mode: 5e7 x 2 / 1e9 = 100 ms: over 40/60 ms, 10 FPS < 30.
    let report = evaluate(&board(), 50_000_000, small());
    assert_eq!(report.chosen_mode.as_deref(), Some("10W"));
    let failed: Vec<_> = report
        .checks
        .iter()
        .filter(|c| c.passed == Some(false))
        .map(|c| c.constraint.field())
        .collect();
    assert_eq!(
        failed,
        ["max_latency_p50_ms", "max_latency_p95_ms", "min_fps"]
    );
    assert!(!report.passes());
}

#[test]
fn size_and_memory_are_compared_in_si_megabytes_with_their_source() {
    // The board allows 1 MB of binary and 2 MB of memory. 1 MiB (1,048,576
    // bytes) is over 1 MB: the stricter reading of a hard limit.
    let footprint = Footprint {
        binary_bytes: bytes(1_048_576.0),
        peak_memory_bytes: bytes(2_000_000.0),
    };
    let report = evaluate(&board(), 1_000_000, footprint);
    let size = report
        .checks
        .iter()
        .find(|c| c.constraint.field() == "max_size_mb")
        .unwrap();
    assert_eq!(size.passed, Some(false));
    assert_eq!(size.actual.unwrap().value, 1.048576);
    assert_eq!(size.actual.unwrap().unit, Unit::Megabytes);
    assert_eq!(size.actual.unwrap().source, Source::Host);
    let memory = report
        .checks
        .iter()
        .find(|c| c.constraint.field() == "max_peak_memory_mb")
        .unwrap();
    assert_eq!(memory.actual.unwrap().value, 2.0);
    assert_eq!(memory.passed, Some(true), "exactly at the limit passes");

    let over = Footprint {
        binary_bytes: bytes(1_000_001.0),
        peak_memory_bytes: bytes(2_000_001.0),
    };
    let report = evaluate(&board(), 1_000_000, over);
    assert!(
        report
            .checks
            .iter()
            .filter(|c| c.constraint.field().ends_with("_mb"))
            .all(|c| c.passed == Some(false)),
        "one byte over an SI megabyte limit fails: {:?}",
        report.checks
    );
}

#[test]
fn unmeasured_figures_are_never_counted_as_passing() {
    let report = evaluate(&board(), 1_000_000, Footprint::default());
    let size = report
        .checks
        .iter()
        .find(|c| c.constraint.field() == "max_size_mb")
        .unwrap();
    assert_eq!(size.passed, None);
    assert!(size.actual.is_none());
    assert!(!report.passes());
}

#[test]
fn no_mode_within_the_power_budget_means_no_chosen_mode() {
    // kiln-target rejects such a profile on load; a caller may still build one.
    let mut target = board();
    target.constraints.max_power_w = Some(2.0);
    let report = evaluate(&target, 1_000_000, small());
    assert_eq!(report.chosen_mode, None);
    let power = report
        .checks
        .iter()
        .find(|c| c.constraint.field() == "max_power_w")
        .unwrap();
    assert_eq!(power.passed, Some(false));
    assert!(!report.passes());
}

#[test]
fn every_shipped_profile_can_be_evaluated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../targets");
    let targets = kiln_target::load_all(&dir).unwrap();
    assert!(targets.len() >= 3);
    for target in targets {
        let report = evaluate(&target, 10_000_000, small());
        assert_eq!(
            report.modes.len(),
            target.power_modes.len(),
            "{}",
            target.name
        );
        assert!(
            report.chosen_mode.is_some(),
            "{}: no mode within budget",
            target.name
        );
        assert!(report.modes.iter().all(|m| m.latency_p50.value > 0.0));
    }
}
