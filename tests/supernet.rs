//! `cargo xtask supernet` as a user runs it: train a tiny supernet for one epoch on the
//! bundled data, export a sub-network, and check the generated program's predictions
//! against the supernet's; resume; bad input.

use std::path::Path;
#[path = "common/cli.rs"]
mod cli;

use std::process::Output;

use cli::{lut_build, text, tiny_space, xtask};

fn train(dir: &Path, epochs: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "supernet",
        "train",
        "--space",
        "",
        "--epochs",
        epochs,
        "--train-limit",
        "300",
        "-o",
        dir.to_str().unwrap(),
    ];
    let space = tiny_space();
    args[3] = &space;
    args.extend_from_slice(extra);
    xtask(&args)
}

/// Asserts that the command behind `o` failed and said `says`.
fn refused_saying(o: &Output, says: &str) {
    assert!(!o.status.success(), "{}", text(o));
    assert!(text(o).contains(says), "{}", text(o));
}

/// `supernet export` of `genome` from the supernet in `net` to `model`, on the bundled
/// data limited to `train_limit` training images.
fn export(net: &Path, genome: &Path, train_limit: &str, model: &Path) -> Output {
    xtask(&[
        "supernet",
        "export",
        "--supernet",
        net.to_str().unwrap(),
        "--genome",
        genome.to_str().unwrap(),
        "--train-limit",
        train_limit,
        "-o",
        model.to_str().unwrap(),
    ])
}

#[test]
fn a_tiny_supernet_trains_resumes_and_its_exported_sub_network_agrees_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    let o = train(&net, "1", &[]);
    assert!(o.status.success(), "{}", text(&o));
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(net.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["epochs"].as_array().unwrap().len(), 1, "{metrics}");
    assert_eq!(metrics["source"], "host");
    assert!(
        metrics["accuracy_kind"]
            .as_str()
            .unwrap()
            .contains("inherited")
    );

    // a second epoch, resumed from the checkpoint
    let o = train(&net, "2", &["--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("resumed after epoch 1"), "{}", text(&o));

    // a sub-network exported and run through the generated program, with the head conv
    // (seed 4's genome) and without it (its own classifier in the supernet)
    let genome = dir.path().join("g.json");
    let o = xtask(&["space", "sample", "--seed", "4", "--space", &tiny_space()]);
    std::fs::write(&genome, &o.stdout).unwrap();
    let mut headless: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_ne!(headless["head_width"], 0, "seed 4's genome has a head conv");
    headless["head_width"] = 0.into();
    let genome0 = dir.path().join("g0.json");
    std::fs::write(&genome0, headless.to_string()).unwrap();
    let model = dir.path().join("m.onnx");
    for genome in [&genome, &genome0] {
        let o = export(&net, genome, "300", &model);
        assert!(o.status.success(), "{}", text(&o));
        assert!(text(&o).contains("inherited"), "{}", text(&o));
        let o = xtask(&["eval-onnx", model.to_str().unwrap(), "--train-limit", "300"]);
        assert!(o.status.success(), "{}", text(&o));
        let stdout = String::from_utf8_lossy(&o.stdout);
        // the model's own accuracy is labelled for what it is
        assert!(
            stdout.contains("(inherited from a supernet): test top-1"),
            "{stdout}"
        );
        let report: serde_json::Value =
            serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
        // same parity bar as training: within 0.2 points of the supernet's own figure
        let diff = report["difference_points"].as_f64().unwrap();
        assert!(diff.abs() <= 0.2, "{}: {}", genome.display(), text(&o));
    }

    // a search whose candidates inherit from it: built and measured, not trained
    let run = dir.path().join("run");
    let o = xtask(&[
        "search",
        "--target",
        "jetson",
        "--space",
        &tiny_space(),
        "--supernet",
        net.to_str().unwrap(),
        "--trials",
        "3",
        "--train-limit",
        "300",
        "--lut",
        "off",
        "--fine-tune",
        "0",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("inherit weights and accuracy"),
        "{}",
        text(&o)
    );
    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().skip(1).collect();
    assert!(rows.iter().any(|r| r.contains(",done,")), "{csv}");
    for row in rows.iter().filter(|r| r.contains(",done,")) {
        assert!(row.contains("inherited from the supernet"), "{row}");
    }
    assert!(run.join("front.json").is_file());
    // judge only: inherited accuracy and predicted latency, then the front measured
    let table = dir.path().join("table.json");
    let o = lut_build("jetson", &table, &["--fit", "4"]);
    assert!(o.status.success(), "{}", text(&o));
    let fast = dir.path().join("fast");
    let o = xtask(&[
        "search",
        "--target",
        "jetson",
        "--space",
        &tiny_space(),
        "--supernet",
        net.to_str().unwrap(),
        "--fine-tune",
        "0",
        "--lut",
        table.to_str().unwrap(),
        "--trials",
        "12",
        "--train-limit",
        "300",
        "-o",
        fast.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("candidates judged (accuracy inherited, latency predicted")
            && text(&o).contains("0 fine-tuned"),
        "{}",
        text(&o)
    );
    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fast.join("front.json")).unwrap()).unwrap();
    let models = front["front"].as_array().unwrap();
    assert!(!models.is_empty(), "{front}");
    for m in models {
        // every front model was built and measured: its latency is the sim's, the
        // prediction kept beside it
        assert_eq!(m["metrics"]["latency_ms"]["source"], "sim", "{m}");
        assert_eq!(
            m["metrics"]["predicted_latency_ms"]["source"], "predicted",
            "{m}"
        );
    }
    let csv = std::fs::read_to_string(fast.join("trials.csv")).unwrap();
    assert!(csv.contains(",predicted,"), "{csv}");

    // FBNet's differentiable search: a distribution learned on the supernet and the
    // table, its argmax asked first, kept for --resume
    let dnas = dir.path().join("dnas");
    let tiny = tiny_space();
    let dnas_search = |trials: &str, resume: bool| {
        let mut args = vec![
            "search",
            "--target",
            "jetson",
            "--space",
            &tiny,
            "--supernet",
            net.to_str().unwrap(),
            "--fine-tune",
            "0",
            "--lut",
            table.to_str().unwrap(),
            "--strategy",
            "dnas",
            "--trials",
            trials,
            "--train-limit",
            "300",
            "-o",
            dnas.to_str().unwrap(),
        ];
        if resume {
            args.push("--resume");
        }
        xtask(&args)
    };
    let o = dnas_search("3", false);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("dnas: found"), "{}", text(&o));
    let found: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dnas.join("dnas.json")).unwrap()).unwrap();
    let first = found["genome"].to_string();
    assert!(found["latency_ms"].as_f64().unwrap() > 0.0, "{found}");
    let csv = std::fs::read_to_string(dnas.join("trials.csv")).unwrap();
    assert!(csv.lines().nth(1).unwrap().contains(",model,"), "{csv}");
    let o = dnas_search("5", true);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("dnas: the distribution of"),
        "{}",
        text(&o)
    );
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dnas.join("dnas.json")).unwrap()).unwrap();
    assert_eq!(again["genome"].to_string(), first);
    // the folder trained further holds other weights: its run is not resumed on them
    assert!(train(&net, "3", &["--resume"]).status.success());
    let o = dnas_search("6", true);
    assert!(!o.status.success(), "{}", text(&o));
    let says = "holds other weights than the run in";
    assert!(
        text(&o).contains(says) && text(&o).contains("(3 epochs)"),
        "{}",
        text(&o)
    );

    // the same search trained from scratch is another run
    let o = xtask(&[
        "search",
        "--target",
        "jetson",
        "--space",
        &tiny_space(),
        "--evaluator",
        "train",
        "--trials",
        "4",
        "--train-limit",
        "300",
        "--resume",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(text(&o).contains("evaluator"), "{}", text(&o));

    the_default_search_trains_a_cached_supernet_and_fine_tunes_its_front(dir.path(), &table);

    // bad input: other data, a genome of another space, a damaged checkpoint
    let o = export(&net, &genome, "200", &model);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("trained for another data"),
        "{}",
        text(&o)
    );
    let other = dir.path().join("other.json");
    let o = xtask(&["space", "sample", "--seed", "1"]);
    std::fs::write(&other, &o.stdout).unwrap();
    let o = export(&net, &other, "300", &model);
    assert!(!o.status.success());
    assert!(text(&o).contains("other.json"), "{}", text(&o));
    std::fs::write(net.join("supernet.json"), "{").unwrap();
    let o = train(&net, "3", &["--resume"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("supernet.json"), "{}", text(&o));
}

/// The README's main command in small: no `--supernet`, so a supernet is trained into the
/// cache (a few-shot split by the head conv, one epoch a part), candidates are judged by inherited accuracy and predicted latency,
/// the front is built, measured and fine-tuned; a second search for another target
/// reuses the cached supernet; each front model, measured again on its own, meets every
/// constraint of the target.
fn the_default_search_trains_a_cached_supernet_and_fine_tunes_its_front(dir: &Path, table: &Path) {
    let (cache, space) = (dir.join("cache"), tiny_space());
    // the tiny default search for `target` into `out`, its supernet in `cache`
    let search = |cache: &Path, target: &str, out: &Path, extra: &[&str]| {
        let mut args = vec![
            "search",
            "--target",
            target,
            "--space",
            &space,
            "--supernet-cache",
            cache.to_str().unwrap(),
            "--supernet-epochs",
            "1",
            "--fine-tune",
            "1",
            "--lut",
            table.to_str().unwrap(),
            "--trials",
            "10",
            "--train-limit",
            "300",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        xtask(&args)
    };
    // Bad settings are refused before the supernet is trained (minutes on a real space),
    // and nothing is written.
    let refused = dir.join("refused");
    let refuse = |flags: &[&str], message: &str| {
        let o = search(&cache, "jetson", &refused, flags);
        assert!(!o.status.success());
        assert!(text(&o).contains(message), "{}", text(&o));
        assert!(
            !cache.exists() && !refused.exists(),
            "a refused search trains and writes nothing: {flags:?}"
        );
    };
    refuse(
        &["--latency-limit", "0"],
        "--latency-limit must be a number of ms above 0",
    );
    refuse(
        &["--journal", "postgres://nobody@127.0.0.1:1/kiln"],
        "a supernet is not shared",
    );
    let run = dir.join("default");
    let o = search(&cache, "jetson", &run, &[]);
    assert!(o.status.success(), "{}", text(&o));
    let out = text(&o);
    // the default: a few-shot split by the head conv (the tiny space has two widths)
    assert!(
        out.contains("a few-shot split by `head`, trained 2 epochs over its parts"),
        "{out}"
    );
    assert!(out.contains("10 candidates judged"), "{out}");
    assert!(!out.contains(" 0 fine-tuned"), "{out}");
    let front: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("front.json")).unwrap()).unwrap();
    let models = front["front"].as_array().unwrap();
    assert!(!models.is_empty(), "{front}");
    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    assert!(
        csv.contains("fine-tuned 1 epoch from weights inherited"),
        "{csv}"
    );
    let html = std::fs::read_to_string(run.join("report.html")).unwrap();
    assert!(
        html.contains("fine-tuned"),
        "the report shows accuracy kinds apart"
    );
    for m in models {
        assert_eq!(m["metrics"]["latency_ms"]["source"], "sim", "{m}");
        // front.json and the closing summary say what each accuracy is, in full and in brief
        let tuned = m["metrics"].get("inherited_accuracy").is_some();
        let kind = m["labels"]["accuracy_kind"].as_str().unwrap_or_default();
        let full = ["inherited from the supernet", "fine-tuned 1 epoch from"];
        assert!(kind.starts_with(full[tuned as usize]), "{m}");
        let brief = ["(host, inherited)", "(host, fine-tuned 1 epoch)"][tuned as usize];
        let line = format!("  {}  accuracy ", m["folder"].as_str().unwrap());
        let said = |l: &str| l.starts_with(&line) && l.contains(brief);
        assert!(out.lines().any(said), "{brief} for {line}: {out}");
        let model = run.join(m["folder"].as_str().unwrap()).join("model.onnx");
        if tuned {
            // the deployed file says what its accuracy is, as the report does
            let bytes = std::fs::read(&model).unwrap();
            let says = |s: &str| bytes.windows(s.len()).any(|w| w == s.as_bytes());
            assert!(
                says("fine-tuned 1 epoch from weights inherited"),
                "{model:?}"
            );
            assert!(!says("trained from scratch"), "{model:?}");
        }
        let o = xtask(&[
            "measure",
            model.to_str().unwrap(),
            "--target",
            "jetson",
            "--json",
        ]);
        assert!(o.status.success(), "{}", text(&o));
        let reports: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let checks = &reports[0]["power"]["checks"];
        assert!(
            checks.as_array().is_some_and(|c| !c.is_empty()),
            "{reports}"
        );
        for c in checks.as_array().unwrap() {
            assert_eq!(
                c["passed"], true,
                "front model {model:?} measured alone: {c}"
            );
        }
    }
    // --resume with the same settings passes the checks before the cached supernet
    let o = search(&cache, "jetson", &run, &["--resume"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("10 trials evaluated"), "{}", text(&o));
    // --resume with another setting is refused before a supernet is trained for it
    let empty = dir.join("empty-cache");
    let o = search(&empty, "jetson", &run, &["--seed", "7", "--resume"]);
    refused_saying(&o, "seed: journal has `0`, this run has `7`");
    // the supernet's folder (another cache here) is compared before training too
    assert!(text(&o).contains("evaluator: journal has"), "{}", text(&o));
    assert!(!empty.exists(), "a refused resume trains nothing");
    // another target reuses the cached supernet, and the fine-tuning of every front model
    // the jetson search already fine-tuned: same genome, same fine-tuned accuracy
    let pixel = dir.join("pixel");
    let o = search(&cache, "pixel", &pixel, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("cached, reused"), "{}", text(&o));
    // it starts from the front of the jetson search's 10 judged candidates (at most 5 of
    // its 10 trials), their accuracy read back, before its strategy asks for new ones
    assert!(
        text(&o)
            .contains("of the 10 candidates earlier searches judged on this supernet come first"),
        "{}",
        text(&o)
    );
    // from the judgments of both parts of the default split
    assert!(
        text(&o).contains("judged.jsonl, each part's"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("of them judged by earlier searches"),
        "{}",
        text(&o)
    );
    assert!(
        text(&o).contains("reused from earlier searches of this supernet"),
        "{}",
        text(&o)
    );
    // every fine-tuned trial of a run (a reused one may leave the front to a better one)
    let fine_tuned = |run: &Path| -> Vec<(String, String)> {
        let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
        let rows: Vec<Vec<String>> = csv
            .lines()
            .map(|l| l.split(',').map(str::to_string).collect())
            .collect();
        // trial, genome_id, origin, status, accuracy_kind (fine-tuned ones hold no comma), ...
        assert_eq!(rows[0][4..6], ["accuracy_kind", "accuracy"], "{csv}");
        rows.into_iter()
            .filter(|r| r[4].starts_with("fine-tuned"))
            .map(|r| (r[1].clone(), r[5].clone()))
            .collect()
    };
    let (first, second) = (fine_tuned(&run), fine_tuned(&pixel));
    let shared: Vec<_> = second
        .iter()
        .filter_map(|(id, acc)| first.iter().find(|(i, _)| i == id).map(|(_, a)| (acc, a)))
        .collect();
    assert!(!shared.is_empty(), "{first:?} {second:?}\n{}", text(&o));
    for (a, b) in shared {
        assert_eq!(a, b, "a reused fine-tuning keeps its accuracy");
    }
    // a strategy's curve must be its own: compare refuses the warm-started run, and
    // --no-warm-start starts from nothing earlier searches judged
    let compare = |run: &Path| {
        let out = dir.join("compare");
        xtask(&[
            "compare",
            run.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ])
    };
    let o = compare(&pixel);
    refused_saying(&o, "--no-warm-start");
    let cold = dir.join("pixel-cold");
    let o = search(&cache, "pixel", &cold, &["--no-warm-start"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!text(&o).contains("come first"), "{}", text(&o));
    let o = compare(&cold);
    assert!(o.status.success(), "{}", text(&o));
}

/// `search --few-shot head`: a few-shot split trained into the cache (one supernet per
/// head-conv width), each candidate judged by the part that holds its head conv, and a
/// genome exported from the split by its part.
#[test]
fn a_few_shot_split_judges_each_candidate_on_the_part_that_holds_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cache, run) = (dir.path().join("cache"), dir.path().join("run"));
    let tiny = tiny_space();
    let o = xtask(&[
        "search",
        "--target",
        "jetson",
        "--space",
        &tiny,
        "--few-shot",
        "head",
        "--supernet-cache",
        cache.to_str().unwrap(),
        "--supernet-epochs",
        "1",
        "--trials",
        "4",
        "--train-limit",
        "300",
        "--lut",
        "off",
        "--fine-tune",
        "0",
        "-o",
        run.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("few-shot split: part head32 (2 of 2)")
            && text(&o).contains("by `head` (head0, head32; 1 epoch each)"),
        "{}",
        text(&o)
    );
    let split = std::fs::read_dir(&cache)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(split.join("split.json").is_file(), "{}", split.display());
    let csv = std::fs::read_to_string(run.join("trials.csv")).unwrap();
    let mut done = 0;
    for trial in std::fs::read_dir(run.join("trials")).unwrap() {
        let trial = trial.unwrap().path();
        let genome: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(trial.join("genome.json")).unwrap())
                .unwrap();
        let id = trial.file_name().unwrap().to_str().unwrap()[5..].to_string();
        let row = csv.lines().find(|r| r.contains(&id)).unwrap();
        if row.contains(",done,") {
            let part = split.join(format!("head{}", genome["head_width"]));
            let kind = format!("inherited from the supernet in {} (", part.display());
            assert!(row.contains(&kind), "{row}");
            done += 1;
        }
    }
    assert!(done > 0, "{csv}");

    what_cannot_use_a_split_is_refused_before_training(dir.path(), &cache, &split);
    // export from the split: the genome's own part judges it
    let genome = dir.path().join("g.json");
    let o = xtask(&["space", "sample", "--seed", "4", "--space", &tiny]);
    let mut value: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    value["head_width"] = 0.into();
    std::fs::write(&genome, value.to_string()).unwrap();
    let o = export(&split, &genome, "300", &dir.path().join("m.onnx"));
    assert!(o.status.success(), "{}", text(&o));
    let part = split.join("head0");
    assert!(
        text(&o).contains(&format!(
            "inherited from the supernet in {}",
            part.display()
        )),
        "{}",
        text(&o)
    );

    // a run judged by one supernet is not resumed once a split stands in its folder
    let one = dir.path().join("one");
    let o = train(&one, "1", &["--few-shot", "none"]);
    assert!(
        o.status.success() && !one.join("split.json").exists(),
        "{}",
        text(&o)
    );
    // `supernet train --few-shot auto` trains what the search's default would
    let auto = dir.path().join("auto");
    let o = train(&auto, "1", &["--few-shot", "auto"]);
    let parts = ["split.json", "head0", "head32"].map(|p| auto.join(p).exists());
    assert!(o.status.success() && parts == [true; 3], "{}", text(&o));
    let (single, path) = (dir.path().join("single"), one.to_str().unwrap());
    let mut search = vec![
        "search",
        "--target",
        "jetson",
        "--space",
        &tiny,
        "--supernet",
        path,
    ];
    search.extend_from_slice(&["--trials", "2", "--train-limit", "300", "--lut", "off"]);
    search.extend_from_slice(&["--fine-tune", "0", "-o", single.to_str().unwrap()]);
    let o = xtask(&search);
    assert!(o.status.success(), "{}", text(&o));
    // resumed by the default (a split, in the cache): refused, naming the way back
    let mut by_default: Vec<&str> = search.iter().filter(|a| **a != path).copied().collect();
    by_default.retain(|a| *a != "--supernet");
    by_default.extend_from_slice(&["--supernet-cache", cache.to_str().unwrap(), "--resume"]);
    let o = xtask(&by_default);
    refused_saying(&o, "`--few-shot none` resumes a run judged by one supernet");
    std::fs::remove_dir_all(&one).unwrap();
    std::fs::rename(&split, &one).unwrap();
    // `auto` given with --supernet: the folder as it is (here a split, refused to resume)
    search.extend_from_slice(&["--resume", "--few-shot", "auto"]);
    let o = xtask(&search);
    refused_saying(&o, "few-shot split by `head`");
}

/// What cannot use the trained split in `split` (cached in `cache`) is refused before any
/// training, saying what to do: a split asked for with `--evaluator train` or `--strategy
/// dnas` (also the split's folder given with `--supernet`); `--evaluator train` or the
/// cache's epochs beside `--supernet`; `--few-shot none` with the split's folder; a split
/// of a space with one head width; one of its parts given for the whole space.
fn what_cannot_use_a_split_is_refused_before_training(dir: &Path, cache: &Path, split: &Path) {
    let tiny = tiny_space();
    let out = dir.join("refused");
    let search = |space: &str, extra: &[&str]| {
        let mut args = vec!["search", "--target", "jetson", "--space", space];
        // the cache's settings are refused beside a given supernet
        if !extra.contains(&"--supernet") {
            args.extend_from_slice(&["--supernet-cache", cache.to_str().unwrap()]);
            args.extend_from_slice(&["--supernet-epochs", "2"]);
        }
        args.extend_from_slice(&["--trials", "2", "--train-limit"]);
        args.extend_from_slice(&["300", "-o", out.to_str().unwrap()]);
        args.extend_from_slice(extra);
        xtask(&args)
    };
    let cached = || std::fs::read_dir(cache).unwrap().count();
    let before = cached();
    let refused = |space: &str, extra: &[&str], why: &str| {
        let o = search(space, extra);
        refused_saying(&o, why);
        assert!(!text(&o).contains("few-shot split: part"), "{}", text(&o));
        assert!(!out.exists(), "{}", text(&o));
    };
    fn head<'a>(extra: &[&'a str]) -> Vec<&'a str> {
        [&["--few-shot", "head"], extra].concat()
    }
    let (train, dnas) = (["--evaluator", "train"], ["--strategy", "dnas"]);
    refused(&tiny, &head(&train), "not with --evaluator train");
    let given = split.to_str().unwrap();
    let both = [&train[..], &["--supernet", given]].concat();
    refused(
        &tiny,
        &both,
        "--evaluator train trains each candidate, --supernet",
    );
    refused(
        &tiny,
        &["--supernet", given, "--supernet-epochs", "3"],
        "cannot be used with",
    );
    let learns = "--strategy dnas learns its distribution";
    refused(&tiny, &head(&dnas), learns);
    let holds = format!("--few-shot none, but --supernet {given} holds a few-shot split by `head`");
    refused(&tiny, &["--few-shot", "none", "--supernet", given], &holds);
    refused(&tiny, &[&dnas[..], &["--supernet", given]].concat(), learns);
    let one_head = dir.join("one-head.toml");
    let text_of = std::fs::read_to_string(&tiny).unwrap();
    std::fs::write(
        &one_head,
        text_of.replace("widths = [0, 32]", "widths = [32]"),
    )
    .unwrap();
    let one_head = one_head.to_str().unwrap();
    refused(one_head, &head(&[]), "needs at least two choices");
    assert_eq!(
        cached(),
        before,
        "a refused split leaves nothing in the cache"
    );
    // a part given for the whole space: refused, saying it is a part and what to give
    let part = split.join("head0");
    refused(
        &tiny,
        &["--supernet", part.to_str().unwrap()],
        "give the split's folder",
    );
    let o = search(
        &tiny,
        &["--supernet", part.to_str().unwrap(), "--few-shot", "head"],
    );
    let says = format!(
        "is part `head0` of the few-shot split in {}: it holds only the genomes of that part",
        split.display()
    );
    assert!(text(&o).contains(&says), "{}", text(&o));
}
