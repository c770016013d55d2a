//! `cargo xtask search --precision int8` end to end on the tiny space, as a
//! user runs it: every front model is an int8 QDQ model built and measured,
//! its weights and arena smaller than its f32 twin's, its accuracy measured
//! through the int8 build (labelled `sim`) beside the f32 one (`host`); the
//! reports show both; resuming with another precision is refused.

use std::path::Path;
use std::process::Output;

#[path = "common/cli.rs"]
mod cli;

use cli::{text, xtask};

fn tiny_space() -> std::path::PathBuf {
    cli::tiny_space().into()
}

/// The train-evaluator search of these tests: `trials` trials of one epoch on 400 images
/// at seed 5 over `space` into `run`, then `extra` flags.
fn train_search<'a>(
    space: &'a str,
    run: &'a str,
    trials: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "search",
        "--evaluator",
        "train",
        "--target",
        "pixel",
        "--trials",
        trials,
        "--epochs",
        "1",
        "--train-limit",
        "400",
        "--population",
        "4",
        "--seed",
        "5",
        "--space",
        space,
        "-o",
        run,
    ];
    args.extend_from_slice(extra);
    args
}

fn search(run: &str, precision: &str, trials: &str, resume: bool) -> Output {
    let space = tiny_space();
    let mut extra = vec!["--precision", precision];
    if resume {
        extra.push("--resume");
    }
    xtask(&train_search(space.to_str().unwrap(), run, trials, &extra))
}

/// The tiny space with `precision = ["f32", "int8"]`, written into `dir`.
fn tiny_int8_space(dir: &Path) -> std::path::PathBuf {
    let tiny = std::fs::read_to_string(tiny_space()).unwrap();
    let space = dir.join("tiny-int8.toml");
    std::fs::write(&space, format!("precision = [\"f32\", \"int8\"]\n{tiny}")).unwrap();
    space
}

fn file_len(p: &Path) -> f64 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .len() as f64
}

#[test]
fn int8_search_front_is_quantized_measured_and_smaller_than_f32() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let o = search(run_s, "int8", "4", false);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("precision int8"), "{out}");
    assert!(out.contains("int8 vs f32: accuracy"), "{out}");

    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("front.json")).unwrap()).unwrap();
    assert_eq!(front["run"]["precision"], "int8", "{front}");
    let models = front["front"].as_array().unwrap();
    assert!(!models.is_empty(), "empty front:\n{out}");
    for m in models {
        let metric = |k: &str| -> (f64, String) {
            let f = &m["metrics"][k];
            let v = f["value"]
                .as_f64()
                .unwrap_or_else(|| panic!("{k} missing: {m}"));
            (v, f["source"].as_str().unwrap_or("").to_string())
        };
        // accuracy: measured through the int8 build; the f32 one stays beside it
        let (acc, acc_source) = metric("accuracy");
        assert_eq!(acc_source, "sim", "{m}");
        assert!((0.0..=1.0).contains(&acc), "{m}");
        let (f32_acc, f32_source) = metric("f32_accuracy");
        assert_eq!(f32_source, "host", "{m}");
        assert!((0.0..=1.0).contains(&f32_acc), "{m}");
        assert!(
            m["metrics"]["size_bytes"]["source"] == "host",
            "size not measured: {m}"
        );

        // the built crate is the int8 model's: its weights.bin, read here, is
        // the figure recorded and under a third of the f32 crate's
        let folder = run.join(m["folder"].as_str().unwrap());
        let int8_onnx = std::fs::read(folder.join("model.int8.onnx")).unwrap();
        assert!(
            int8_onnx.windows(14).any(|w| w == b"QuantizeLinear"),
            "model.int8.onnx has no QuantizeLinear"
        );
        let int8_weights = file_len(&folder.join("crate/weights.bin"));
        let f32_weights = file_len(&folder.join("crate-f32/weights.bin"));
        assert_eq!(metric("weights_bytes").0, int8_weights, "{m}");
        assert_eq!(metric("f32_weights_bytes").0, f32_weights, "{m}");
        assert!(
            int8_weights * 3.0 < f32_weights,
            "int8 weights {int8_weights} B vs f32 {f32_weights} B"
        );
        let (arena, f32_arena) = (metric("arena_bytes").0, metric("f32_arena_bytes").0);
        assert!(arena * 2.0 < f32_arena, "arena {arena} vs f32 {f32_arena}");
        let lib = std::fs::read_to_string(folder.join("crate/src/lib.rs")).unwrap();
        assert!(
            lib.contains("int8::"),
            "the generated crate calls no int8 kernel"
        );
        assert!(folder.join("crate/out/kiln_model.wasm").is_file());
    }

    // trials.csv and report.html show both, labelled
    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    let header = csv.lines().next().unwrap();
    for col in [
        "accuracy,accuracy_source",
        "f32_accuracy,f32_accuracy_source",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(csv.contains("then quantized to int8"), "{csv}");
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(html.contains("f32_accuracy") && html.contains("f32_weights_bytes"));
    assert!(
        html.contains("<b>precision</b>: int8"),
        "no precision in the report"
    );

    // Resuming the int8 run as an f32 search is refused, naming the precision.
    let o = search(run_s, "f32", "5", true);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("precision: journal has `int8`, this run has `f32`"),
        "{}",
        text(&o)
    );
    // A wrong word is named.
    let o = search(run_s, "fp16", "5", true);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("unknown precision `fp16`"),
        "{}",
        text(&o)
    );
}

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap()
}

/// `table`'s latency for `genome` (JSON) of `space` at MNIST's shape, ms in jetson's 10W
/// mode, built in int8 and in f32.
fn predictions(
    table: &kiln_latency::LatencyTable,
    space: &kiln_space::Space,
    genome: &serde_json::Value,
) -> [f64; 2] {
    let g = kiln_space::Genome::from_json(&genome.to_string(), "genome", space).unwrap();
    let mut arch = kiln_space::Architecture::new(space, &g, kiln_space::InputSpec::MNIST).unwrap();
    [kiln_space::Precision::Int8, kiln_space::Precision::F32].map(|p| {
        arch.precision = p;
        kiln_latency::predict(&arch, table, "10W").unwrap().value
    })
}

/// The default evaluator (weight sharing) with int8: a tiny supernet trained into a
/// cache, candidates judged by inherited (f32) accuracy and the latency table's int8
/// entries, then each front model quantized before it is built, measured and fine-tuned;
/// the front ends int8 with its accuracy measured through the int8 build. A table
/// without int8 entries is refused before anything is trained.
#[test]
fn int8_with_weight_sharing_quantizes_the_judged_front() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("table.json");
    let o = cli::lut_build("jetson", &table, &["--fit", "4"]);
    assert!(o.status.success(), "{}", text(&o));
    let run = dir.path().join("run");
    let space = tiny_space();
    let cache = dir.path().join("cache");
    // the int8 weight-sharing search of this test, into `out`, with `extra` flags
    let search = |out: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "search",
            "--target",
            "jetson",
            "--precision",
            "int8",
            "--space",
            space.to_str().unwrap(),
            "--supernet-cache",
            cache.to_str().unwrap(),
            "--supernet-epochs",
            "1",
            "--lut",
            table.to_str().unwrap(),
            "--train-limit",
            "300",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        xtask(&args)
    };
    let judged_front = ["--fine-tune", "1", "--trials", "8"];
    // f32 entries would judge every int8 candidate about 2x too fast: refused at once
    let o = search(&run, &judged_front);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("has no int8 entries"), "{}", text(&o));
    assert!(text(&o).contains("--precision int8"), "{}", text(&o));
    assert!(!cache.exists() && !run.join("journal.sqlite").exists());
    // the same table file, resumed: every layer measured in int8 too, an int8 line fitted
    let o = cli::lut_build("jetson", &table, &["--fit", "4", "--precision", "int8"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("whole int8 program"), "{}", text(&o));
    let o = search(&run, &judged_front);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("int8 latency predicted"), "{out}");
    assert!(out.contains("int8 vs f32: accuracy"), "{out}");
    assert!(!out.contains(" 0 fine-tuned"), "{out}");
    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("front.json")).unwrap()).unwrap();
    let models = front["front"].as_array().unwrap();
    assert!(!models.is_empty(), "{front}");
    // the run identity says so: a run judged on f32 entries (before) is not resumed into
    let judged = &front["run"]["int8_latency"];
    assert_eq!(judged, "the table's int8 entries and line", "{front}");
    let t = kiln_latency::LatencyTable::from_json(&read(&table), "table").unwrap();
    let tiny = kiln_space::Space::from_toml(&read(&space), "tiny").unwrap();
    for m in models {
        assert_eq!(m["metrics"]["accuracy"]["source"], "sim", "{m}");
        assert_eq!(m["metrics"]["size_bytes"]["source"], "host", "{m}");
        // judged on the table's int8 entries and line, not the f32 ones (which predict
        // the int8 build 1.5-6x too fast)
        let judged = m["metrics"]["predicted_latency_ms"]["value"]
            .as_f64()
            .unwrap();
        let [int8, f32] = predictions(&t, &tiny, &m["genome"]);
        assert!(
            (judged - int8).abs() < 1e-9 * int8,
            "{judged} vs {int8} (int8): {m}"
        );
        assert!(f32 < 0.9 * int8, "f32 {f32} vs int8 {int8}");
        let (w8, w32) = (
            m["metrics"]["weights_bytes"]["value"].as_f64().unwrap(),
            m["metrics"]["f32_weights_bytes"]["value"].as_f64().unwrap(),
        );
        assert!(w8 * 3.0 < w32, "{m}");
        let folder = run.join(m["folder"].as_str().unwrap());
        assert!(
            folder.join("model.int8.onnx").is_file(),
            "{}",
            folder.display()
        );
    }
    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    assert!(
        csv.lines()
            .any(|r| r.contains("then quantized to int8") && r.contains(",\"fine-tuned")),
        "no fine-tuned int8 model:\n{csv}"
    );
    // the table keeps its int8 line without the flag: a check samples both precisions
    // and stores a margin for each
    let o = cli::lut_check("jetson", &table, &["--samples", "8"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("% int8)"), "{}", text(&o));
    let t: serde_json::Value = serde_json::from_str(&read(&table)).unwrap();
    assert!(
        t["int8_agreement"]["samples"].as_u64() >= Some(2),
        "no int8 check"
    );
    // the differentiable search prices every layer by its int8 entry and the int8 line
    let dnas = dir.path().join("dnas");
    let o = search(
        &dnas,
        &["--strategy", "dnas", "--fine-tune", "0", "--trials", "2"],
    );
    assert!(o.status.success(), "{}", text(&o));
    let found: serde_json::Value = serde_json::from_str(&read(&dnas.join("dnas.json"))).unwrap();
    let t = kiln_latency::LatencyTable::from_json(&read(&table), "table").unwrap();
    let [int8, f32] = predictions(&t, &tiny, &found["genome"]);
    let priced = found["predicted_ms"].as_f64().unwrap();
    assert!(
        (priced - int8).abs() < 1e-6 * int8,
        "dnas {priced} vs int8 {int8} (f32 {f32})"
    );
}

/// A space with `precision = ["f32", "int8"]` searched with `--evaluator train` (issue 17's
/// precision as a decision): each genome records its precision, the int8 ones are
/// quantized before they are built (their weights and arena a fraction of their f32
/// twin's, their accuracy measured through the int8 build, `sim`), the f32 ones are built
/// as trained (`host`); its latency table has every layer in int8 too and predicts each
/// genome in its own precision; `--precision int8` with such a space is refused, and so is
/// a judge-only search whose table has no int8 entries.
#[test]
fn a_precision_decision_builds_each_genome_in_its_own_precision() {
    let dir = tempfile::tempdir().unwrap();
    let space = tiny_int8_space(dir.path());
    let run = dir.path().join("run");
    let (space_s, run_s) = (space.to_str().unwrap(), run.to_str().unwrap());
    let table = dir.path().join("table.json");
    let table_s = table.to_str().unwrap();
    let o = xtask(&[
        "lut", "build", "--target", "pixel", "--space", space_s, "--table", table_s,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("whole int8 program ="), "{}", text(&o));
    let mut t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&table).unwrap()).unwrap();
    let entries = t["entries"].as_array().unwrap();
    let int8: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["key"]["precision"] == "int8")
        .collect();
    // every layer once in each precision, each measured (int8 kernels cost other fuel)
    assert_eq!(2 * int8.len(), entries.len());
    for q in int8 {
        let mut key = q["key"].clone();
        key.as_object_mut().unwrap().remove("precision");
        let twin = entries.iter().find(|e| e["key"] == key).expect("f32 twin");
        assert_ne!(q["cost"]["value"], twin["cost"]["value"], "{key}");
    }
    // --precision int8 (a search-wide format) has no meaning for such a space's table
    let o = xtask(&[
        "lut",
        "build",
        "--target",
        "pixel",
        "--space",
        space_s,
        "--table",
        table_s,
        "--precision",
        "int8",
    ]);
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("chooses the precision per genome"),
        "{}",
        text(&o)
    );
    let flags = train_search(space_s, run_s, "6", &["--lut", table_s]);
    let o = xtask(&flags);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(
        out.contains("precision is a decision of this space"),
        "{out}"
    );
    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("front.json")).unwrap()).unwrap();
    assert_eq!(
        front["run"]["precision"], "per genome (f32, int8)",
        "{front}"
    );

    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(run.join("trials")).unwrap() {
        let folder = entry.unwrap().path();
        let genome: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("genome.json")).unwrap())
                .unwrap();
        let precision = genome["precision"].as_str().unwrap().to_string();
        let id = folder.file_name().unwrap().to_str().unwrap()[5..].to_string();
        // The trial's line: its accuracy and that accuracy's source.
        let line = out
            .lines()
            .find(|l| l.starts_with("trial ") && l.contains(&id))
            .unwrap_or_else(|| panic!("no line for {id}:\n{out}"));
        let lib = std::fs::read_to_string(folder.join("crate/src/lib.rs")).unwrap();
        if precision == "int8" {
            assert!(line.contains(" (sim), latency"), "{line}");
            assert!(lib.contains("int8::"), "{id}: no int8 kernel");
            let int8 = file_len(&folder.join("crate/weights.bin"));
            let f32 = file_len(&folder.join("crate-f32/weights.bin"));
            assert!(
                int8 * 3.0 < f32,
                "{id}: int8 weights {int8} B vs f32 {f32} B"
            );
        } else {
            assert_eq!(precision, "f32");
            assert!(line.contains(" (host), latency"), "{line}");
            assert!(
                !lib.contains("int8::"),
                "{id}: an f32 genome built with int8 kernels"
            );
            assert!(!folder.join("model.int8.onnx").exists(), "{id}");
        }
        seen.insert(precision);
    }
    assert_eq!(seen.len(), 2, "one precision only: {seen:?}\n{out}");
    // The front's figures: an int8 model's arena and weights beside its f32 twin's.
    for m in front["front"].as_array().unwrap() {
        let v = |k: &str| m["metrics"][k]["value"].as_f64();
        let int8 = m["genome"]["precision"] == "int8";
        assert_eq!(v("f32_accuracy").is_some(), int8, "{m}");
        if int8 {
            assert_eq!(m["metrics"]["accuracy"]["source"], "sim", "{m}");
            assert!(
                v("arena_bytes").unwrap() * 2.0 < v("f32_arena_bytes").unwrap(),
                "{m}"
            );
        }
        // predicted from the entries of its precision (int8's: within 25% on this space)
        let (predicted, measured) = (v("predicted_latency_ms").unwrap(), v("latency_ms").unwrap());
        let error = (predicted - measured).abs() / measured;
        assert!(error < if int8 { 0.25 } else { 0.02 }, "{error}: {m}");
    }
    // --precision int8 would be overridden by every genome's own: refused, naming the file.
    let mut flags = flags;
    flags.extend(["--precision", "int8", "--resume"]);
    let o = xtask(&flags);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("tiny-int8.toml chooses the precision per genome"),
        "{}",
        text(&o)
    );
    // A judge-only search with a table of f32 entries only is refused before the supernet
    // is read, saying what builds the int8 ones.
    t.as_object_mut().unwrap().remove("int8_overhead");
    let entries = t["entries"].as_array_mut().unwrap();
    entries.retain(|e| e["key"].get("precision").is_none());
    std::fs::write(&table, t.to_string()).unwrap();
    let o = xtask(&[
        "search",
        "--target",
        "pixel",
        "--space",
        space_s,
        "--lut",
        table_s,
        "--supernet",
        "no-such-supernet",
        "--trials",
        "4",
        "-o",
        run_s,
    ]);
    assert!(!o.status.success());
    // the command that mends it writes the table the search was given
    let want = format!("lut build --target pixel --space {space_s} --table {table_s}`");
    assert!(
        text(&o).contains("has no int8 entries") && text(&o).contains(&want),
        "{}",
        text(&o)
    );
}

/// One line of trials.csv split at the commas outside double quotes.
fn csv_fields(line: &str) -> Vec<String> {
    let (mut out, mut field, mut quoted) = (Vec::new(), String::new(), false);
    for c in line.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut field)),
            c => field.push(c),
        }
    }
    out.push(field);
    out
}

/// Weight sharing over a space with a precision decision: its table measured in both
/// precisions, candidates judged without building (latency from the entries of their own
/// precision, an int8 one's inherited accuracy labelled as the f32 network's), the front
/// built each in its precision, an int8 front model's accuracy measured through its int8
/// build.
#[test]
fn weight_sharing_judges_each_genome_in_its_precision_and_builds_the_front_so() {
    let dir = tempfile::tempdir().unwrap();
    let space = tiny_int8_space(dir.path());
    let (table, run, cache) = (
        dir.path().join("table.json"),
        dir.path().join("run"),
        dir.path().join("cache"),
    );
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let o = xtask(&[
        "lut",
        "build",
        "--target",
        "jetson",
        "--space",
        &s(&space),
        "--table",
        &s(&table),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let o = xtask(&[
        "search",
        "--target",
        "jetson",
        "--space",
        &s(&space),
        "--supernet-cache",
        &s(&cache),
        "--supernet-epochs",
        "1",
        "--fine-tune",
        "1",
        "--lut",
        &s(&table),
        "--trials",
        "8",
        "--train-limit",
        "300",
        "-o",
        &s(&run),
    ]);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("latency predicted"), "not judge-only: {out}");
    // Every trial folder has its genome; judged-only int8 ones say whose accuracy they have.
    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    let header = csv_fields(csv.lines().next().unwrap());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for line in csv.lines().skip(1) {
        let f = csv_fields(line);
        let folder = std::fs::read_dir(run.join("trials"))
            .unwrap()
            .flatten()
            .find(|e| {
                e.file_name()
                    .to_string_lossy()
                    .ends_with(&f[col("genome_id")])
            })
            .unwrap()
            .path();
        let genome: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(folder.join("genome.json")).unwrap())
                .unwrap();
        let precision = genome["precision"].as_str().unwrap().to_string();
        let kind = &f[col("accuracy_kind")];
        if precision == "int8" && f[col("latency_ms_source")] == "predicted" {
            assert!(
                kind.contains("of the f32 network: this genome is int8"),
                "{kind}"
            );
        }
        seen.insert(precision);
    }
    assert_eq!(seen.len(), 2, "{seen:?}\n{csv}");
    // The front: built in its precision, predicted from the entries of that precision.
    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("front.json")).unwrap()).unwrap();
    for m in front["front"].as_array().unwrap() {
        let v = |k: &str| m["metrics"][k]["value"].as_f64().unwrap();
        let int8 = m["genome"]["precision"] == "int8";
        assert_eq!(m["metrics"]["latency_ms"]["source"], "sim", "{m}");
        let error = (v("predicted_latency_ms") - v("latency_ms")).abs() / v("latency_ms");
        assert!(error < if int8 { 0.25 } else { 0.02 }, "{error}: {m}");
        let folder = run.join(m["folder"].as_str().unwrap());
        assert_eq!(folder.join("model.int8.onnx").is_file(), int8, "{m}");
        if int8 {
            assert_eq!(m["metrics"]["accuracy"]["source"], "sim", "{m}");
        }
    }
}
