//! `cargo xtask lut build / check` on a tiny space, as a user runs them: the table
//! predicts whole networks measured on the same path; an interrupted table resumes; bad
//! tables are refused by name; a search with a binding latency limit rejects candidates
//! by prediction before training any.

use std::path::{Path, PathBuf};
#[path = "common/cli.rs"]
mod cli;

use cli::{lut_build, lut_check, text, tiny_space, xtask};

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Builds the tiny space's sim table for jetson at `dir/table.json`.
fn build(dir: &Path) -> PathBuf {
    let table = dir.join("table.json");
    let o = lut_build("jetson", &table, &["--fit", "6"]);
    assert!(o.status.success(), "{}", text(&o));
    table
}

#[test]
fn a_tiny_table_predicts_measured_networks_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let table = build(dir.path());
    let t = json(&table);
    let entries = t["entries"].as_array().unwrap();
    assert!(entries.len() > 20, "{t}");
    for e in entries {
        assert_eq!(e["cost"]["source"], "sim", "{e}");
        assert_eq!(e["cost"]["unit"], "fuel", "{e}");
        assert!(e["cost"]["value"].as_f64().unwrap() > 0.0, "{e}");
        assert_eq!(e["per_mode_ms"]["10W"]["source"], "sim", "{e}");
    }
    assert_eq!(t["overhead"]["fitted_on"], 6);

    // Genomes sampled with another seed, measured whole. The tiny space's networks are
    // small enough that the compiler's per-program choices (a kernel specialised for the
    // constant arguments of its few call sites) move them by up to ~15% around the
    // fitted line; the default space at 28x28 stays within 1.4% (README).
    let report = dir.path().join("check.json");
    let o = lut_check(
        "jetson",
        &table,
        &["--samples", "6", "--json", report.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("within 5%"), "{}", text(&o));
    let r = json(&report);
    assert_eq!(r["rows"].as_array().unwrap().len(), 6);
    let a = &r["agreement"];
    assert!(a["within_10"].as_f64().unwrap() >= 0.5, "{r}");
    assert!(a["max_relative_error"].as_f64().unwrap() < 0.25, "{r}");
    assert!(a["kendall_tau"].as_f64().unwrap() > 0.5, "{r}");
    for row in r["rows"].as_array().unwrap() {
        // the MAC bound is a lower bound of the measured latency
        assert!(row["mac_bound_ms"].as_f64().unwrap() <= row["measured_ms"].as_f64().unwrap());
    }
    // the check's error is the table's margin from now on
    assert_eq!(json(&table)["agreement"], r["agreement"]);

    // An interrupted build (entries missing) resumes and measures only what is missing.
    let mut t = json(&table);
    let all = t["entries"].as_array().unwrap().len();
    t["entries"].as_array_mut().unwrap().truncate(all - 5);
    std::fs::write(&table, t.to_string()).unwrap();
    let o = build(dir.path());
    assert_eq!(json(&o)["entries"].as_array().unwrap().len(), all);

    // Another target lends the fuel: nothing is measured, the milliseconds follow pixel.
    let pixel = dir.path().join("pixel.json");
    let o = lut_build("pixel", &pixel, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("measured"), "{}", text(&o));
    assert_eq!(json(&pixel)["identity"]["target"], "pixel");

    // A table of an older runtime (a kernel changed) is measured again, and says so.
    let mut t = json(&pixel);
    let runtime = t["identity"]["runtime"].clone();
    t["identity"]["runtime"] = "an older runtime".into();
    std::fs::write(&pixel, t.to_string()).unwrap();
    let o = lut_build("pixel", &pixel, &["--fit", "2"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("measured with another runtime"),
        "{}",
        text(&o)
    );
    assert_eq!(json(&pixel)["identity"]["runtime"], runtime);
}

#[test]
fn bad_tables_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table.json");
    std::fs::write(&table, "{\"format_version\": 1, \"entries\": [").unwrap();
    let args = |t: &Path, input: &str| lut_check("jetson", t, &["--input", input]);
    let o = args(&table, "1x28x28");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("is not a valid latency table"),
        "{}",
        text(&o)
    );

    // a table of another input shape names the field
    let mut t: serde_json::Value = serde_json::json!({
        "format_version": 1,
        "identity": {"source": "sim", "space": "tiny", "space_fingerprint": "x",
            "input": {"channels": 3, "height": 32, "width": 32, "classes": 10},
            "target": "jetson", "runtime": "r", "sim_modes": []},
        "overhead": null, "agreement": null, "entries": []
    });
    std::fs::write(&table, t.to_string()).unwrap();
    let o = args(&table, "1x28x28");
    assert!(!o.status.success());
    assert!(
        text(&o).contains("input: table 3x32x32 (10 classes), wanted 1x28x28 (10 classes)"),
        "{}",
        text(&o)
    );
    t["format_version"] = 7.into();
    std::fs::write(&table, t.to_string()).unwrap();
    let o = args(&table, "1x28x28");
    assert!(text(&o).contains("format version 7"), "{}", text(&o));

    let o = xtask(&["lut", "build", "--target", "jetson", "--source", "host"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("not device latency"), "{}", text(&o));
}

#[test]
fn a_binding_latency_limit_rejects_by_prediction_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let table = build(dir.path());
    // A jetson whose p50 limit every tiny network breaks by more than the table's
    // margin: below overhead + the cheapest conv, classifier and two blocks.
    let t = json(&table);
    let cheapest = |kind: &str| {
        t["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["key"]["kind"] == kind)
            .map(|e| e["cost"]["value"].as_f64().unwrap())
            .fold(f64::INFINITY, f64::min)
    };
    let scale = t["overhead"]["scale"].as_f64().unwrap();
    let least_fuel = t["overhead"]["cost"]["value"].as_f64().unwrap()
        + scale * (cheapest("conv") + cheapest("classifier") + 2.0 * cheapest("block"));
    assert!(scale > 0.0 && least_fuel > 0.0, "{}", t["overhead"]);
    let margin = t["overhead"]["max_relative_error"].as_f64().unwrap();
    let ms_per_fuel = 0.25 / (1479.0 * 1e3); // jetson's sim model at 10 W
    let limit = least_fuel * ms_per_fuel / (1.0 + margin) / 1.5;
    let profile = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/jetson.toml"),
    )
    .unwrap()
    .replace(
        "max_latency_p50_ms = 100.0",
        &format!("max_latency_p50_ms = {limit}"),
    );
    let profile_path = dir.path().join("jetson.toml");
    std::fs::write(&profile_path, profile).unwrap();
    let run = dir.path().join("run");
    let o = xtask(&[
        "search",
        "--evaluator",
        "train",
        "--target",
        profile_path.to_str().unwrap(),
        "--space",
        &tiny_space(),
        "--lut",
        table.to_str().unwrap(),
        "--trials",
        "1",
        "--epochs",
        "1",
        "--train-limit",
        "200",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert!(text(&o).contains("latency table"), "{}", text(&o));
    // nothing was trained: no trial folder holds a model
    let trained = std::fs::read_dir(run.join("trials"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().join("model.onnx").exists())
                .count()
        })
        .unwrap_or(0);
    assert_eq!(trained, 0, "{}", text(&o));
    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    assert!(csv.lines().count() > 1, "{csv}");
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.contains("max_latency_p50_ms")),
        "{csv}"
    );
}

#[test]
fn calibration_fits_the_host_profile_to_native_runs() {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("host.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../targets/host.toml"),
        &profile,
    )
    .unwrap();
    let table = dir.path().join("table.json");
    let o = lut_check(
        profile.to_str().unwrap(),
        &table,
        &["--fit", "2", "--samples", "4", "--calibrate"],
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("calibrated host: cycles_per_fuel"),
        "{}",
        text(&o)
    );
    let c = json(&dir.path().join("host.calibration.json"));
    assert_eq!(c["measured_on"], "host");
    assert_eq!(c["samples"], 4);
    assert_eq!(c["assumed_cycles_per_fuel"], 0.5);
    let fitted = c["cycles_per_fuel"].as_f64().unwrap();
    assert!(fitted > 0.0 && fitted.is_finite(), "{c}");
    // the profile now carries it
    let t = kiln_target::load_file(&profile).unwrap();
    assert_eq!(t.sim.cycles_per_fuel, fitted);

    // an aarch64 board cannot be calibrated from this machine
    let o = lut_check(
        "jetson",
        &dir.path().join("j.json"),
        &["--samples", "2", "--calibrate"],
    );
    assert!(!o.status.success());
    assert!(
        text(&o).contains("only its device can calibrate it"),
        "{}",
        text(&o)
    );
}

/// The committed tables (tables/*.json) were measured with this checkout's runtime,
/// space files and profiles; a changed kernel or emitter makes them stale, and then a
/// search quietly falls back to the MAC bound. Rebuild with the command in the message.
#[test]
fn committed_tables_match_this_checkout() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut seen = 0;
    for entry in std::fs::read_dir(root.join("tables")).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // host tables belong to the machine they were timed on and are not committed
        if !name.starts_with("sim-") || !name.ends_with(".json") || name.ends_with(".check.json") {
            continue;
        }
        let t = json(&path);
        let id = &t["identity"];
        let target = id["target"].as_str().unwrap();
        let space_name = id["space"].as_str().unwrap();
        let space_path = root.join("spaces").join(format!("{space_name}.toml"));
        let space = kiln_space::Space::load(&space_path).unwrap();
        let input: kiln_space::InputSpec = serde_json::from_value(id["input"].clone()).unwrap();
        let profile = kiln_target::load(&root.join("targets"), target).unwrap();
        let source: kiln_measure::Source = id["source"].as_str().unwrap().parse().unwrap();
        let wanted =
            kiln_pipeline::lut::identity(&space_path, &space, input, &profile, source).unwrap();
        let table = kiln_pipeline::lut::load_table(&path, &wanted);
        // a table of a space without the `precision` key has int8 entries for
        // `search --precision int8` (`lut build --precision int8`)
        let int8 = if space.precision.is_none() {
            " --precision int8"
        } else {
            ""
        };
        let flags =
            format!("--target {target} --space spaces/{space_name}.toml --source {source}{int8}");
        assert!(
            table.is_ok(),
            "{}: {}\nrebuild it: cargo xtask lut build {flags} && cargo xtask lut check {flags} \
             --samples 50",
            path.display(),
            table.unwrap_err()
        );
        assert!(t["agreement"].is_object(), "{name} was never checked");
        assert!(
            t["int8_overhead"].is_object(),
            "{name} has no int8 line: {flags}"
        );
        assert!(
            t["int8_agreement"].is_object(),
            "{name}'s int8 line was never checked"
        );
        seen += 1;
    }
    assert!(seen >= 1, "no committed table");
}
