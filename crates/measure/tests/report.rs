//! One model measured for a device profile, from fixture builds.

mod common;

use std::path::Path;

use kiln_measure::MeasureError;
use kiln_measure::Source;
use kiln_measure::report::{Artifacts, MeasureOptions, measure};
use kiln_target::Target;

fn profile(triple: &str, method: &str) -> Target {
    let text = format!(
        r#"
description = "test device"
triple = "{triple}"

[constraints]
max_latency_p50_ms = 50.0
max_size_mb = 4.0
max_peak_memory_mb = 8.0

[[power_mode]]
name = "fast"
watts = 4.0
cores = 1
clock_mhz = 1000

[[power_mode]]
name = "slow"
watts = 1.0
cores = 1
clock_mhz = 200

[sim]
cycles_per_fuel = 1.0

[deploy]
method = "{method}"
"#
    );
    Target::from_toml(&text, Path::new("targets/test-device.toml")).unwrap()
}

fn artifacts(program: Option<std::path::PathBuf>) -> Artifacts {
    Artifacts {
        wasm: common::wasm("fixture_model"),
        program,
        weight_bytes: common::WEIGHT_BYTES,
        arena_bytes: 0,
        input_len: common::INPUT_LEN,
        output_len: common::OUTPUT_LEN,
    }
}

#[test]
fn aarch64_target_is_measured_under_qemu_and_agrees_with_the_sim() {
    let target = profile("aarch64-unknown-linux-musl", "ssh");
    let options = MeasureOptions {
        warmup: 1,
        runs: 5,
        ..MeasureOptions::default()
    };
    let report = measure(&target, &artifacts(Some(common::aarch64_model())), &options).unwrap();
    let check = report.output_check.as_ref().unwrap();
    assert!(check.passed, "{check:?}");
    assert!(check.compared.contains("qemu-aarch64"));
    let timing = report.host_timing.as_ref().unwrap();
    assert!(timing.emulated);
    assert_eq!(
        report.size.sections.format,
        kiln_measure::size::BinaryFormat::Elf
    );
    assert!(report.wasm_size.is_some());
    assert_eq!(report.fuel.source, Source::Sim);
    assert_eq!(report.power.chosen_mode.as_deref(), Some("fast"));
    assert!(report.passes(), "{report}");
    let text = report.to_string();
    for expected in [
        "[sim]",
        "[host]",
        "p50 = p95 by construction",
        "emulated under qemu-aarch64",
        "PASS",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["fuel"]["source"], "sim");
}

#[test]
fn wasm_sim_target_needs_only_the_wasm_build() {
    let target = profile("wasm32-unknown-unknown", "wasmtime");
    let report = measure(&target, &artifacts(None), &MeasureOptions::default()).unwrap();
    assert!(report.host_timing.is_none() && report.output_check.is_none());
    assert_eq!(
        report.size.sections.format,
        kiln_measure::size::BinaryFormat::Wasm
    );
    assert_eq!(report.power.modes.len(), 2);
}

#[test]
fn aarch64_target_without_its_program_is_an_error() {
    let target = profile("aarch64-unknown-linux-musl", "ssh");
    let err = measure(&target, &artifacts(None), &MeasureOptions::default()).unwrap_err();
    assert!(matches!(err, MeasureError::Artifacts { .. }), "{err:?}");
    assert!(err.to_string().contains("test-device"), "{err}");
}
