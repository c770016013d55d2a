//! Issue 20's done-when search: `cargo xtask search --target jetson --images DIR --resolution
//! 96x96` on a folder of PNG and JPEG files written here, with a latency limit that binds:
//! the journal records infeasible trials and the front is feasible.

use std::path::Path;
use std::process::{Command, Output};

use image::{Rgb, RgbImage};

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

/// `n` images per class of 120x100 (cropped and scaled to 96x96 by the loader): a stripe
/// direction per class, PNG and JPEG alternating.
fn folder(dir: &Path, n: usize) {
    for (c, class) in ["horizontal", "vertical"].iter().enumerate() {
        std::fs::create_dir_all(dir.join(class)).unwrap();
        for i in 0..n {
            let ext = if i % 2 == 0 { "png" } else { "jpg" };
            let img = RgbImage::from_fn(120, 100, |x, y| {
                let t = if c == 0 { y } else { x };
                let on = ((t + i as u32) / 6).is_multiple_of(2);
                let v = if on { 220 } else { 30 };
                Rgb([v, v / 2, 255 - v])
            });
            img.save(dir.join(class).join(format!("{i:02}.{ext}")))
                .unwrap();
        }
    }
}

/// The tiny space of the search tests (tests/fixtures/tiny-space.toml): its networks span
/// about 1.7x in simulated jetson latency at 96x96.
fn tiny_space() -> String {
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/fixtures/tiny-space.toml"
    )
    .to_string()
}

/// Between the tiny space's fastest and slowest networks at 96x96 on jetson (sim, seed 0:
/// 3.1 to 7.0 ms), far below jetson's own 100 ms and 30 FPS, which every one of them meets.
const LIMIT_MS: f64 = 4.5;

#[test]
fn jetson_search_at_96x96_with_a_binding_latency_limit_records_infeasible_trials() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("stripes");
    folder(&data, 12);
    let run = dir.path().join("run");
    let supernets = dir.path().join("supernets");
    let space = tiny_space();
    let limit = LIMIT_MS.to_string();
    // The done-when command (the default supernet evaluator), kept cheap: the tiny space, one
    // supernet epoch, no fine-tuning.
    let args = [
        "search",
        "--target",
        "jetson",
        "--images",
        data.to_str().unwrap(),
        "--resolution",
        "96x96",
        "--trials",
        "8",
        "--latency-limit",
        &limit,
        "--space",
        &space,
        "--supernet-cache",
        supernets.to_str().unwrap(),
        "--supernet-epochs",
        "1",
        "--fine-tune",
        "0",
        "-o",
        run.to_str().unwrap(),
    ];
    let o = xtask(&args);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    assert!(out.contains("decoding images: 24/24"), "{out}");
    assert!(out.contains(&format!("p50 < {limit} ms")), "{out}");

    // Every trial is journalled; some broke the limit (measured, labelled sim), some met it.
    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert_eq!(rows.len(), 8, "{csv}");
    let infeasible: Vec<&&str> = rows.iter().filter(|r| r.contains(",infeasible,")).collect();
    let done = rows.iter().filter(|r| r.contains(",done,")).count();
    assert!(
        !infeasible.is_empty() && done > 0,
        "the limit of {limit} ms does not bind (retune LIMIT_MS to the latencies here):\n{csv}\n{out}"
    );
    for row in &infeasible {
        assert!(
            row.contains("max_latency_p50_ms: ")
                && row.contains(&format!("(sim) vs limit {limit} ms")),
            "{row}"
        );
    }

    // The report's scatter: the limit's red line cuts it, the feasible trials (blue) left of
    // it, the infeasible ones (grey) right of it.
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    let (line, circles) = scatter(&html);
    let side = |fill: &str, left: bool| {
        let of = circles.iter().filter(|(f, _)| f == fill);
        of.filter(|(_, x)| (*x < line) == left).count()
    };
    // the legend (lower right) holds one circle of each colour
    assert_eq!(side("#0000FF", true), done, "{html}");
    assert_eq!(side("#AAAAAA", false), infeasible.len() + 1, "{html}");
    assert_eq!(side("#AAAAAA", true), 0, "{html}");

    // The front: feasible, within the limit, and built for 3x96x96 input.
    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("front.json")).unwrap()).unwrap();
    assert_eq!(front["run"]["latency_limit_ms"], limit.as_str());
    let models = front["front"].as_array().unwrap();
    assert!(!models.is_empty(), "empty front:\n{out}");
    for m in models {
        let latency = &m["metrics"]["latency_ms"];
        assert_eq!(latency["source"], "sim", "{m}");
        assert!(latency["value"].as_f64().unwrap() <= LIMIT_MS, "{m}");
        let folder = run.join(m["folder"].as_str().unwrap());
        let model = std::fs::read(folder.join("model.onnx")).unwrap();
        let meta = kiln_onnx::metadata::read(&model, "model.onnx").unwrap();
        assert!(
            meta[kiln_onnx::metadata::DATASET].ends_with("(3x96x96, crop)"),
            "{meta:?}"
        );
        assert_eq!(
            meta.get(kiln_onnx::metadata::CLASS_NAMES)
                .map(String::as_str),
            Some(r#"["horizontal","vertical"]"#)
        );
    }

    // The same images in another folder are the same data: a new search there reuses the
    // cached supernet, nothing trained (before, the folder's name was part of its key).
    let moved = dir.path().join("stripes-moved");
    folder(&moved, 12);
    let run2 = dir.path().join("run-moved");
    let moved_args: Vec<&str> = args
        .iter()
        .map(|a| match *a {
            a if a == data.to_str().unwrap() => moved.to_str().unwrap(),
            a if a == run.to_str().unwrap() => run2.to_str().unwrap(),
            "8" => "2",
            a => a,
        })
        .collect();
    let o = xtask(&moved_args);
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("cached, reused"), "{out}");
    assert!(!out.contains("supernet epoch"), "{out}");

    // One image of the folder redrawn: the same data name over other pixels. Resuming is
    // refused before anything is trained, naming the content (the journal's judgments and
    // the cached supernet were made on the old images).
    RgbImage::from_pixel(120, 100, Rgb([0, 0, 0]))
        .save(data.join("vertical").join("00.png"))
        .unwrap();
    let o = xtask(&[&args[..], &["--resume"]].concat());
    let out = text(&o);
    assert!(!o.status.success(), "{out}");
    assert!(out.contains("data_content"), "{out}");
    assert!(!out.contains("supernet epoch"), "{out}");
}

/// A space that chooses the input resolution: every candidate is trained (or judged on the
/// supernet, whose sub-networks train at their own resolution) and measured at its own
/// resolution (the data resized from the folder's 64x64 cache), and the latency depends on
/// it; the differentiable search, which does not choose the resolution, is refused.
#[test]
fn a_space_with_resolutions_trains_and_measures_each_candidate_at_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("stripes");
    folder(&data, 8);
    let fixture = std::fs::read_to_string(tiny_space()).unwrap();
    let space = dir.path().join("sized.toml");
    std::fs::write(&space, format!("resolution = [32, 64]\n{fixture}")).unwrap();
    let supernets = dir.path().join("supernets");
    let base = [
        "search",
        "--target",
        "jetson",
        "--images",
        data.to_str().unwrap(),
        "--resolution",
        "64x64",
        "--space",
        space.to_str().unwrap(),
        "--supernet-cache",
        supernets.to_str().unwrap(),
        "--supernet-epochs",
        "1",
        "--fine-tune",
        "0",
        "--trials",
        "6",
        "--population",
        "6",
        "--seed",
        "2",
    ];
    let with = |extra: &[&'static str], run: &Path| {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        args.extend(["-o", run.to_str().unwrap()]);
        xtask(&args)
    };
    let refused = dir.path().join("dnas");
    let o = with(&["--strategy", "dnas", "--lut", "off"], &refused);
    assert!(!o.status.success());
    let out = text(&o);
    assert!(
        out.contains("sized.toml") && out.contains("[32, 64]") && out.contains("differentiable"),
        "{out}"
    );
    assert!(!refused.join("journal.sqlite").exists());

    for (evaluator, run) in [("supernet", "inherited"), ("train", "trained")] {
        let run = dir.path().join(run);
        let extra = [
            "--evaluator",
            evaluator,
            "--epochs",
            "1",
            "--batch-size",
            "4",
        ];
        let o = with(&extra, &run);
        let out = text(&o);
        assert!(o.status.success(), "{out}");
        let fuels = fuel_by_resolution(&run, evaluator);
        // A quarter of the pixels: every 32x32 candidate runs in less than any 64x64 one
        // (the tiny space's networks differ by under 2.5x in fuel at one resolution).
        let max32 = fuels[&32].iter().copied().fold(0.0, f64::max);
        let min64 = fuels[&64].iter().copied().fold(f64::INFINITY, f64::min);
        assert!(max32 < min64, "{evaluator}: {fuels:?}");
    }
}

/// Each trial's simulated fuel (the latency's measure) by the resolution its genome chose,
/// checking that its model was made for that resolution's data (trained, or inherited from
/// the supernet: `evaluator`) and that both resolutions were searched.
fn fuel_by_resolution(run: &Path, evaluator: &str) -> std::collections::BTreeMap<u64, Vec<f64>> {
    let json = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let mut fuels = std::collections::BTreeMap::<u64, Vec<f64>>::new();
    for entry in std::fs::read_dir(run.join("trials")).unwrap() {
        let trial = entry.unwrap().path();
        let side = json(&trial.join("genome.json"))["resolution"]
            .as_u64()
            .expect("the genome records it");
        let model = std::fs::read(trial.join("model.onnx")).unwrap();
        let meta = kiln_onnx::metadata::read(&model, "model.onnx").unwrap();
        let dataset = &meta[kiln_onnx::metadata::DATASET];
        if side == 32 {
            assert!(dataset.ends_with("resized to 32x32"), "{dataset}");
        } else {
            assert!(dataset.ends_with("(3x64x64, crop)"), "{dataset}");
        }
        if evaluator == "train" {
            assert!(trial.join("metrics.json").exists(), "{}", trial.display());
        } else {
            let kind = &meta[kiln_onnx::metadata::ACCURACY_KIND];
            assert!(kind.starts_with("inherited"), "{kind}");
        }
        let fuel = json(&trial.join("measure.json"))["fuel"]["value"].as_f64();
        fuels.entry(side).or_default().push(fuel.unwrap());
    }
    assert_eq!(
        fuels.keys().copied().collect::<Vec<_>>(),
        [32, 64],
        "{fuels:?}"
    );
    fuels
}

/// A latency table of a space that chooses the resolution holds the layers of every
/// resolution: `lut build` measures both, `lut check` predicts genomes of either, and a
/// search takes the table and records each candidate's prediction beside its measurement.
#[test]
fn a_latency_table_of_a_space_with_resolutions_predicts_each_resolution() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::fs::read_to_string(tiny_space()).unwrap();
    let space = dir.path().join("sized.toml");
    std::fs::write(&space, format!("resolution = [32, 64]\n{fixture}")).unwrap();
    let (space, table) = (space.to_str().unwrap(), dir.path().join("table.json"));
    let table = table.to_str().unwrap();
    let lut = |cmd: &str, extra: &[&str]| {
        let mut args = vec!["lut", cmd, "--target", "jetson", "--space", space];
        args.extend(["--input", "3x64x64", "--classes", "2", "--table", table]);
        args.extend_from_slice(extra);
        let o = xtask(&args);
        assert!(o.status.success(), "{}", text(&o));
        o
    };
    lut("build", &["--fit", "4"]);
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(table).unwrap()).unwrap();
    // the stems of both resolutions: 3 input channels at 32x32 and at 64x64
    let stems: std::collections::BTreeSet<u64> = t["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["key"])
        .filter(|k| k["kind"] == "conv" && k["in_channels"] == 3)
        .map(|k| k["height"].as_u64().unwrap())
        .collect();
    assert_eq!(stems.into_iter().collect::<Vec<_>>(), [32, 64], "{t}");

    let report = dir.path().join("check.json");
    lut(
        "check",
        &["--samples", "6", "--json", report.to_str().unwrap()],
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["rows"].as_array().unwrap().len(), 6);
    // as tests/lut.rs's tiny table: within 25% of the measured networks
    assert!(
        r["agreement"]["max_relative_error"].as_f64().unwrap() < 0.25,
        "{r}"
    );

    let data = dir.path().join("stripes");
    folder(&data, 8);
    let run = dir.path().join("run");
    let o = xtask(&[
        "search",
        "--target",
        "jetson",
        "--images",
        data.to_str().unwrap(),
        "--resolution",
        "64x64",
        "--space",
        space,
        "--evaluator",
        "train",
        "--lut",
        table,
        "--trials",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--population",
        "4",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    // Each front model records the table's prediction beside its measured latency (sim).
    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("front.json")).unwrap()).unwrap();
    let models = front["front"].as_array().unwrap();
    assert!(!models.is_empty(), "{}", text(&o));
    for m in models {
        let (p, l) = (
            &m["metrics"]["predicted_latency_ms"],
            &m["metrics"]["latency_ms"],
        );
        assert_eq!(p["source"], "predicted", "{m}");
        assert_eq!(l["source"], "sim", "{m}");
        let (p, l) = (p["value"].as_f64().unwrap(), l["value"].as_f64().unwrap());
        assert!(
            (p - l).abs() / l < 0.25,
            "predicted {p} ms, measured {l} ms: {m}"
        );
    }
}

/// The x of the scatter's latency-limit line (plotters' 2-pixel red polyline) and every
/// circle's fill colour and x, read from the report's inline SVG.
fn scatter(html: &str) -> (f64, Vec<(String, f64)>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let start = tag.find(&format!(" {name}=\""))? + name.len() + 3;
        Some(tag[start..].split('"').next()?.to_string())
    };
    let tags: Vec<&str> = html.split('<').collect();
    let line = tags
        .iter()
        .filter(|t| t.starts_with("polyline"))
        .filter(|t| attr(t, "stroke").as_deref() == Some("#FF0000"))
        .find(|t| attr(t, "stroke-width").as_deref() == Some("2"))
        .and_then(|t| attr(t, "points"))
        .expect("the latency limit's line");
    let x = line.split([',', ' ']).next().unwrap().parse().unwrap();
    let circles = tags
        .iter()
        .filter(|t| t.starts_with("circle"))
        .map(|t| {
            (
                attr(t, "fill").unwrap(),
                attr(t, "cx").unwrap().parse().unwrap(),
            )
        })
        .collect();
    (x, circles)
}
