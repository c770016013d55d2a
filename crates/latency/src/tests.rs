//! A synthetic table (a layer's fuel = a function of its key) predicts whole networks
//! exactly; files round-trip; mismatches, gaps and corruption are refused by name.

use std::path::Path;

use kiln_metric::{Metric, Source, Unit};
use kiln_space::{Architecture, Genome, InputSpec, LayerKey, Space};
use kiln_target::Target;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

fn space() -> Space {
    Space::from_toml(include_str!("../../../spaces/mobile.toml"), "mobile.toml").unwrap()
}

fn target(p50_ms: f64) -> Target {
    let text = format!(
        r#"description = "test"
triple = "wasm32-unknown-unknown"
[constraints]
max_latency_p50_ms = {p50_ms}
[[power_mode]]
name = "fast"
watts = 10.0
cores = 1
clock_mhz = 1000
[sim]
cycles_per_fuel = 1.0
[deploy]
method = "wasmtime"
"#
    );
    Target::from_toml(&text, Path::new("t.toml")).unwrap()
}

fn identity() -> TableIdentity {
    TableIdentity {
        source: Source::Sim,
        space: "mobile".into(),
        space_fingerprint: "abc".into(),
        input: InputSpec::MNIST,
        target: "t".into(),
        runtime: "r1".into(),
        sim_modes: vec![SimMode {
            name: "fast".into(),
            clock_mhz: 1000.0,
            cycles_per_fuel: 1.0,
        }],
        device: None,
        runner: None,
        power_mode: None,
    }
}

/// A made-up cost per key, different for every field.
fn fake_fuel(k: &LayerKey) -> f64 {
    let [c, h, w] = k.input_shape();
    (c * h * w) as f64 * 3.0 + k.to_string().len() as f64 * 1000.0
}

fn full_table() -> LatencyTable {
    let mut t = LatencyTable::new(identity());
    for k in space().layer_keys(InputSpec::MNIST).unwrap() {
        let e = t.entry(k, Metric::new(fake_fuel(&k), Unit::Fuel, Source::Sim), None);
        t.insert(e);
    }
    t
}

fn genomes(n: usize) -> Vec<Architecture> {
    let space = space();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    (0..n)
        .map(|_| {
            let g = Genome::sample(&space, &mut rng);
            Architecture::new(&space, &g, InputSpec::MNIST).unwrap()
        })
        .collect()
}

#[test]
fn an_additive_cost_is_predicted_exactly_after_the_constant_is_fitted() {
    let mut t = full_table();
    let archs = genomes(20);
    let truth = |a: &Architecture| a.layer_keys().iter().map(fake_fuel).sum::<f64>() + 5000.0;
    assert_eq!(predict(&archs[0], &t, "fast"), Err(LatencyError::NotFitted));
    let sums: Vec<f64> = archs[..5]
        .iter()
        .map(|a| sum_of_layers(a, &t).unwrap())
        .collect();
    let measured: Vec<f64> = archs[..5].iter().map(truth).collect();
    let layers: Vec<usize> = archs[..5].iter().map(|a| a.layer_keys().len()).collect();
    t.overhead = fit_overhead(&sums, &layers, &measured, Unit::Fuel);
    for a in &archs {
        let p = predict_cost(a, &t).unwrap();
        assert_eq!(p.source, Source::Predicted);
        assert_eq!(p.unit, Unit::Fuel);
        assert!((p.value - truth(a)).abs() < 1e-6);
        // 1 cycle per fuel at 1000 MHz: fuel / 1e6 ms
        let ms = predict(a, &t, "fast").unwrap();
        assert_eq!(
            (ms.unit, ms.source),
            (Unit::Milliseconds, Source::Predicted)
        );
        assert!((ms.value - truth(a) / 1e6).abs() < 1e-9);
    }
    assert!(matches!(
        predict(&archs[0], &t, "turbo"),
        Err(LatencyError::UnknownMode { .. })
    ));
}

#[test]
fn a_missing_layer_is_named() {
    let mut t = full_table();
    let arch = &genomes(1)[0];
    let stem = arch.layer_keys()[0];
    t.entries.retain(|e| e.key != stem);
    let t = LatencyTable::from_json(&t.to_json(), "t.json").unwrap();
    let err = sum_of_layers(arch, &t).unwrap_err();
    assert_eq!(
        err,
        LatencyError::Missing {
            key: stem.to_string()
        }
    );
    assert!(err.to_string().contains("conv 1->"), "{err}");
}

#[test]
fn tables_round_trip_and_refuse_other_identities_by_field() {
    let mut t = full_table();
    t.overhead = fit_overhead(&[1.0], &[1], &[2.0], Unit::Fuel);
    let back = LatencyTable::from_json(&t.to_json(), "t.json").unwrap();
    assert_eq!(back.entries.len(), t.entries.len());
    let k = t.entries[3].key;
    assert_eq!(back.get(&k), t.get(&k));
    back.check_identity(&identity(), "t.json").unwrap();

    let mut other = identity();
    other.input = InputSpec {
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
    };
    other.runtime = "r2".into();
    let err = back
        .check_identity(&other, "t.json")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("input: table 1x28x28 (10 classes), wanted 3x32x32"),
        "{err}"
    );
    assert!(err.contains("runtime: table r1, wanted r2"), "{err}");
    assert!(!err.contains("space_fingerprint"), "{err}");
    assert!(!back.costs_reusable_for(&other));

    // fuel serves another target: only the target and its clocks differ
    let mut pixel = identity();
    pixel.target = "pixel".into();
    pixel.sim_modes[0].clock_mhz = 2000.0;
    assert!(back.check_identity(&pixel, "t.json").is_err());
    assert!(back.costs_reusable_for(&pixel));
    let moved = back.retarget(&pixel).unwrap();
    moved.check_identity(&pixel, "pixel").unwrap();
    let e = moved.get(&k).unwrap();
    assert_eq!(e.cost, back.get(&k).unwrap().cost);
    // twice the clock: half the milliseconds
    let ms = |t: &LatencyTable| t.get(&k).unwrap().per_mode_ms["fast"].value;
    assert!((ms(&moved) * 2.0 - ms(&back)).abs() < 1e-12);
    assert_eq!(moved.overhead, back.overhead);
    assert!(back.retarget(&other).is_none());
}

#[test]
fn a_device_table_serves_only_its_device_and_runner() {
    let mut measured = identity();
    measured.source = Source::Device;
    measured.sim_modes.clear();
    measured.device = Some("board-a:22".into());
    measured.runner = Some("qemu-aarch64".into());
    let t = LatencyTable::new(measured.clone());
    let back = LatencyTable::from_json(&t.to_json(), "d.json").unwrap();
    back.check_identity(&measured, "d.json").unwrap();
    let mut other = measured.clone();
    other.device = Some("board-b:22".into());
    other.runner = None;
    let err = back
        .check_identity(&other, "d.json")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("device: table board-a:22, wanted board-b:22"),
        "{err}"
    );
    assert!(
        err.contains("runner: table qemu-aarch64, wanted none"),
        "{err}"
    );
    assert!(!back.costs_reusable_for(&other));
    // tables of other sources keep their files as they were: no device fields
    assert!(!full_table().to_json().contains("\"device\""));
}

#[test]
fn corrupt_and_foreign_files_are_clear_errors() {
    let err = LatencyTable::from_json("{\"format_version\": 1, \"entries\": [", "t.json")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("t.json is not a valid latency table"),
        "{err}"
    );
    let err = LatencyTable::from_json("{\"format_version\": 99}", "t.json").unwrap_err();
    assert!(
        matches!(err, LatencyError::Version { found: 99, .. }),
        "{err}"
    );
    let t = full_table();
    let mut json: serde_json::Value = serde_json::from_str(&t.to_json()).unwrap();
    let first = json["entries"][0].clone();
    json["entries"].as_array_mut().unwrap().push(first);
    let err = LatencyTable::from_json(&json.to_string(), "t.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("listed twice"), "{err}");
}

/// A full table whose f32 line (fit error `error`) predicts one genome's network at
/// its layer sum + 1,000 fuel; the network and that prediction in ms.
fn fitted(error: f64) -> (LatencyTable, Architecture, f64) {
    let mut t = full_table();
    let arch = genomes(1).remove(0);
    let sum = sum_of_layers(&arch, &t).unwrap();
    t.overhead = fit_overhead(&[sum], &[4], &[sum + 1000.0], Unit::Fuel);
    t.overhead.as_mut().unwrap().max_relative_error = error;
    (t, arch, (sum + 1000.0) / 1e6)
}

#[test]
fn precheck_rejects_only_beyond_the_margin() {
    let (t, arch, ms) = fitted(0.10);
    let arch = &arch;
    // predicted 10% over the limit: inside the margin, kept
    let p = precheck(arch, &t, &target(ms / 1.09)).unwrap();
    assert!(p.violations.is_empty(), "{:?}", p.violations);
    assert_eq!(p.mode, "fast");
    assert!((p.latency.value - ms).abs() < 1e-12);
    // 12% over: beyond it, rejected, and the figure judged is labelled predicted
    let p = precheck(arch, &t, &target(ms / 1.12)).unwrap();
    assert_eq!(p.violations.len(), 1);
    let v = &p.violations[0];
    assert_eq!(v.constraint.field(), "max_latency_p50_ms");
    assert_eq!(v.actual.unwrap().source, Source::Predicted);
}

#[test]
fn each_precision_is_judged_with_its_own_margin() {
    let (mut t, arch, ms) = fitted(0.01);
    let arch = &arch;
    let checked = |e: f64| Agreement {
        samples: 10,
        seed: 1,
        within_5: 1.0,
        within_10: 1.0,
        max_relative_error: e,
        kendall_tau: 1.0,
        date: "d".into(),
    };
    // fits only: each precision's own line (int8 unfitted: no margin)
    assert_eq!(t.margin_of(kiln_space::Precision::F32), Some(0.01));
    assert_eq!(t.margin_of(kiln_space::Precision::Int8), None);
    t.agreement = Some(checked(0.02));
    // an int8 line never checked alone: the larger of its fit and the whole check
    let mut int8_line = t.overhead.clone().unwrap();
    int8_line.max_relative_error = 0.005;
    t.int8_overhead = Some(int8_line);
    assert_eq!(t.margin_of(kiln_space::Precision::Int8), Some(0.02));
    t.int8_agreement = Some(checked(0.15));
    assert_eq!(t.margin_of(kiln_space::Precision::F32), Some(0.02));
    assert_eq!(t.margin_of(kiln_space::Precision::Int8), Some(0.15));
    assert_eq!(t.margin(), Some(0.15));
    // an f32 network 10% over the limit is rejected by f32's 2%, not kept by int8's 15%
    let p = precheck(arch, &t, &target(ms / 1.10)).unwrap();
    assert_eq!(p.violations.len(), 1, "{:?}", p.violations);
}
