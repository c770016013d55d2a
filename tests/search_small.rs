//! End-to-end tests of `cargo xtask search` and `cargo xtask report`, run as a
//! user runs them: a small real search on the bundled data for `jetson`, every
//! front model re-measured against every hard constraint; bad input.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kiln_measure::power::{self, Footprint};
use kiln_measure::sim::{SimLimits, SimModule};
use kiln_measure::{Metric, Source, Unit};

/// A small space whose networks train and build in seconds (the default
/// space's random samples are mostly too slow for jetson's 30 FPS; a real
/// search finds the fast corner with more trials than a test can afford).
fn tiny_space() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/tiny-space.toml"
    )
    .to_string()
}

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask starts")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Re-measures a front model's wasm build and its aarch64 binary under
/// `jetson` and returns the failed checks.
fn remeasure(model_dir: &Path) -> Vec<String> {
    let target = kiln_target::load(&root().join("targets"), "jetson").unwrap();
    let out = model_dir.join("crate/out");
    let wasm = out.join("kiln_model.wasm");
    let program = out.join("kiln-model-aarch64-unknown-linux-musl");
    assert!(wasm.is_file(), "{} missing", wasm.display());
    assert!(program.is_file(), "{} missing", program.display());
    assert!(model_dir.join("model.onnx").is_file());
    let module = SimModule::load(&wasm).unwrap();
    // Fuel does not depend on the input values.
    let input = vec![0.5f32; 28 * 28];
    let run = module.run(&input, &SimLimits::default()).unwrap();
    let size = std::fs::metadata(&program).unwrap().len() as f64;
    let report = power::evaluate(
        &target,
        run.fuel,
        Footprint {
            binary_bytes: Some(Metric::new(size, Unit::Bytes, Source::Host)),
            peak_memory_bytes: Some(run.peak_memory_metric()),
        },
    );
    let mut failed: Vec<String> = report
        .checks
        .iter()
        .filter(|c| c.passed != Some(true))
        .map(|c| format!("{} {:?} vs {}", c.constraint, c.actual, c.limit))
        .collect();
    if report.chosen_mode.is_none() {
        failed.push("no power mode within budget".into());
    }
    failed
}

#[test]
fn small_search_front_meets_every_jetson_constraint_when_remeasured() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let space = tiny_space();
    let o = xtask(&[
        "search",
        "--evaluator",
        "train",
        "--target",
        "jetson",
        "--trials",
        "8",
        "--epochs",
        "1",
        "--train-limit",
        "400",
        "--population",
        "4",
        "--seed",
        "3",
        "--space",
        &space,
        "-o",
        run_s,
    ]);
    assert!(o.status.success(), "{}", text(&o));

    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("front.json")).unwrap()).unwrap();
    let models = front["front"].as_array().unwrap();
    assert!(!models.is_empty(), "empty front:\n{}", text(&o));
    for m in models {
        for key in ["accuracy", "latency_ms", "size_bytes", "peak_memory_bytes"] {
            let source = m["metrics"][key]["source"].as_str().unwrap_or("");
            assert!(
                ["host", "sim", "device", "predicted"].contains(&source),
                "{key} has no source: {m}"
            );
        }
        let folder = run.join(m["folder"].as_str().unwrap());
        let failed = remeasure(&folder);
        assert!(failed.is_empty(), "{}: {failed:?}", folder.display());
    }

    // Every trial is journalled and listed; 8 were evaluated.
    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    let evaluated = rows
        .iter()
        .filter(|r| !r.contains("(predicted) vs limit"))
        .count();
    assert_eq!(evaluated, 8, "{csv}");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Pareto front"));

    // The report regenerates from the journal alone.
    std::fs::remove_file(run.join("report.html")).unwrap();
    std::fs::remove_file(run.join("front.json")).unwrap();
    let o = xtask(&["report", run_s]);
    assert!(o.status.success(), "{}", text(&o));
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("front.json")).unwrap()).unwrap();
    assert_eq!(again["front"], front["front"]);
    assert!(run.join("report.html").is_file());

    // Resuming this run as a different search is refused, naming the difference.
    let o = xtask(&[
        "search",
        "--evaluator",
        "train",
        "--target",
        "pixel",
        "--trials",
        "9",
        "--epochs",
        "1",
        "--train-limit",
        "400",
        "--population",
        "4",
        "--seed",
        "3",
        "--space",
        &space,
        "--resume",
        "-o",
        run_s,
    ]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("target: journal has `jetson`, this run has `pixel`"),
        "{}",
        text(&o)
    );
    // And a new search into the same folder without --resume is refused.
    let o = xtask(&[
        "search",
        "--evaluator",
        "train",
        "--target",
        "jetson",
        "--trials",
        "1",
        "--space",
        &space,
        "-o",
        run_s,
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("--resume"), "{}", text(&o));
}

#[test]
fn bad_input_gets_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let o = xtask(&[
        "search",
        "--evaluator",
        "train",
        "--target",
        "nosuch",
        "--trials",
        "1",
        "-o",
        run_s,
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown target `nosuch`"), "{}", text(&o));

    let o = xtask(&[
        "search",
        "--evaluator",
        "train",
        "--target",
        "jetson",
        "--resume",
        "--trials",
        "1",
        "-o",
        run_s,
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no search journal at"), "{}", text(&o));

    let o = xtask(&[
        "search",
        "--evaluator",
        "train",
        "--target",
        "jetson",
        "--time-budget",
        "5x",
        "-o",
        run_s,
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("unknown unit `x`"), "{}", text(&o));

    let o = xtask(&["report", run_s]);
    assert!(!o.status.success());
}
