//! The CI benchmark's comparison with its baseline, including a planted
//! regression that must fail it.

use kiln_measure::bench::{Baseline, BaselineError, BenchEntry, Tolerances, Verdict, compare};

fn entry(name: &str, fuel: u64) -> BenchEntry {
    BenchEntry {
        name: name.into(),
        identity: format!("{name}-id"),
        fuel,
        wasm_code_bytes: 20_000,
        wasm_data_bytes: 400_000,
        arena_bytes: 150_000,
        peak_memory_bytes: 1_048_576,
    }
}

fn baseline() -> Baseline {
    Baseline::new(
        "wasm-sim",
        Tolerances::default(),
        vec![entry("a", 10_000_000), entry("b", 2_000_000)],
    )
}

#[test]
fn identical_run_passes() {
    let result = compare(&baseline(), &baseline().entries);
    assert!(result.passes());
    assert!(result.changes.iter().all(|c| c.verdict == Verdict::Same));
}

#[test]
fn planted_fuel_regression_beyond_tolerance_fails() {
    let mut run = baseline().entries;
    run[1].fuel = 2_000_000 + 2_000_000 / 100; // +1 % against a 0.5 % tolerance
    let result = compare(&baseline(), &run);
    assert!(!result.passes());
    let regressed: Vec<_> = result.regressions().collect();
    assert_eq!(regressed.len(), 1);
    assert_eq!(
        (regressed[0].model.as_str(), regressed[0].figure),
        ("b", "fuel")
    );
    assert!(result.to_string().contains("REGRESSED"));
}

#[test]
fn growth_within_tolerance_and_improvements_pass() {
    let mut run = baseline().entries;
    run[0].fuel = 10_040_000; // +0.4 %
    run[0].wasm_code_bytes = 19_000;
    let result = compare(&baseline(), &run);
    assert!(result.passes(), "{result}");
    let verdict = |figure| {
        result
            .changes
            .iter()
            .find(|c| c.model == "a" && c.figure == figure)
            .unwrap()
            .verdict
    };
    assert_eq!(verdict("fuel"), Verdict::Within);
    assert_eq!(verdict("wasm code bytes"), Verdict::Improved);
}

#[test]
fn arena_growth_of_one_byte_fails() {
    let mut run = baseline().entries;
    run[0].arena_bytes += 4;
    assert!(!compare(&baseline(), &run).passes());
}

#[test]
fn changed_suite_is_reported_not_compared() {
    let mut run = baseline().entries;
    run[0].identity = "other-genome".into();
    run.push(entry("c", 1));
    let result = compare(&baseline(), &run);
    assert!(!result.passes());
    assert_eq!(
        result.suite_mismatch.len(),
        2,
        "{:?}",
        result.suite_mismatch
    );
    assert!(result.to_string().contains("--update"));
}

#[test]
fn baseline_round_trips_through_its_file_and_missing_file_says_how_to_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench/baseline-wasm-sim.json");
    baseline().save(&path).unwrap();
    assert_eq!(Baseline::load(&path).unwrap(), baseline());
    let err = Baseline::load(&dir.path().join("none.json")).unwrap_err();
    assert!(matches!(err, BaselineError::Read { .. }));
    assert!(
        err.to_string().contains("cargo xtask bench --update"),
        "{err}"
    );
}
