//! The strategy quality benchmark (issue 15; outside CI): every strategy with several
//! seeds and the same budget of judged candidates on the default space, bundled data and
//! target `jetson`, judged as `cargo xtask search` judges by default (inherited accuracy
//! from the supernet, latency predicted by the table), under a latency limit at the
//! median predicted latency of 200 random genomes (so about half are infeasible).
//!
//! `cargo run -p kiln-pipeline --example quality -- --supernet DIR [--candidates 100]
//! [--seeds 3] [--workers 2] [--strategies random,evolution,nsga2,reinforce,tpe,dnas]
//! [--runs runs/quality] [--out docs/quality] [--latency-limit MS]`
//!
//! `DIR` is one supernet's folder or a few-shot split's (each candidate judged by its part,
//! as the search judges; dnas is refused with a split: it learns on one supernet).
//!
//! Each run is journalled in RUNS/<strategy>-<seed> (a killed benchmark resumes where it
//! stopped); curves.csv, best_accuracy.svg, hypervolume.svg, summary.md and identity.txt
//! go to OUT, rewritten after every run. A run whose journal is not in RUNS but whose
//! whole curve is in OUT/curves.csv, written for the same supernet weights, latency table
//! and latency limit (identity.txt), is taken from there: committed curves carry a benchmark across
//! machines (the journals, a few MB a run, are not committed).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_data::SplitOptions;
use kiln_pipeline::{PipelineEvaluator, Supernets, lut};
use kiln_search::driver::NoProgress;
use kiln_search::quality::{self, QualityCurve};
use kiln_search::strategy::EvolutionConfig;
use kiln_search::{Fitness, GenomeSpace, Journal, Objective, RunMeta, SearchConfig, StrategyKind};
use kiln_space::{Genome, Space};
use rand::SeedableRng;

type Error = Box<dyn std::error::Error>;

struct Args {
    supernet: PathBuf,
    candidates: usize,
    seeds: u64,
    workers: usize,
    strategies: Vec<StrategyKind>,
    runs: PathBuf,
    out: PathBuf,
    latency_limit: Option<f64>,
}

fn args(root: &Path) -> Result<Args, Error> {
    let mut a = Args {
        supernet: PathBuf::new(),
        candidates: 100,
        seeds: 3,
        workers: 2,
        strategies: StrategyKind::ALL.to_vec(),
        runs: root.join("runs/quality"),
        out: root.join("docs/quality"),
        latency_limit: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--supernet" => a.supernet = v.into(),
            "--candidates" => a.candidates = v.parse()?,
            "--seeds" => a.seeds = v.parse()?,
            "--workers" => a.workers = v.parse()?,
            "--runs" => a.runs = v.into(),
            "--out" => a.out = v.into(),
            "--latency-limit" => a.latency_limit = Some(v.parse()?),
            "--strategies" => {
                a.strategies = v
                    .split(',')
                    .map(StrategyKind::parse)
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown flag {flag}").into()),
        }
    }
    if a.supernet.as_os_str().is_empty() {
        return Err("--supernet DIR is required (runs/supernets/mobile-...)".into());
    }
    Ok(a)
}

fn main() -> Result<(), Error> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let a = args(&root)?;
    let mut target = kiln_target::load(&root.join("targets"), "jetson")?;
    let space_path = root.join("spaces/mobile.toml");
    let space = Space::load(&space_path)?;
    let source = kiln_data::Source::Mnist5k;
    let split = SplitOptions::default();
    let data = Arc::new(kiln_data::load(&source, &split)?);
    let input = kiln_train::input_spec(&data);
    let wanted = lut::identity(
        &space_path,
        &space,
        input,
        &target,
        kiln_metric::Source::Sim,
    )?;
    let table_path = lut::default_table_path(
        &root,
        kiln_metric::Source::Sim,
        &target.name,
        &space.name,
        input,
    );
    let table = Arc::new(table_for(&table_path, &wanted)?);
    let limit = match a.latency_limit {
        Some(ms) => ms,
        None => median_latency(&space, &data, &table, &target)?,
    };
    target.constraints.set_latency_limit_ms(limit);
    eprintln!("latency limit {limit:.3} ms (p50, p95) on {}", target.name);
    let judge = Supernets::load(&a.supernet, Some(&space), &data, &source.identity(&split))?;
    if judge.split.is_some() && a.strategies.contains(&StrategyKind::Dnas) {
        return Err(format!(
            "{}: a few-shot split; dnas learns its distribution on one supernet: leave dnas \
             out of --strategies, or give one supernet",
            a.supernet.display()
        )
        .into());
    }
    // every part's weights for a split (one id for one supernet, as before splits)
    let weights = judge.weights_id();
    let train = kiln_train::TrainConfig {
        threads: 1,
        ..Default::default()
    };
    let mut evaluator = PipelineEvaluator::new(space.clone(), target.clone(), data, train);
    evaluator.latency_table = Some(table);
    evaluator.supernet = Some(Arc::new(judge));
    evaluator.judge_only = true;
    let genome_space = Arc::new(GenomeSpace::new(space));
    let objectives = [Objective::Accuracy, Objective::Latency];
    let identity = benchmark_identity(&weights, &table_path, limit)?;
    let committed = committed_curves(&a.out, &identity)?;
    let mut curves = Vec::new();
    // Seed-major, so a benchmark stopped early has every strategy on the first seeds.
    for seed in 0..a.seeds {
        for &kind in &a.strategies {
            let dir = a.runs.join(format!("{}-{seed}", kind.name()));
            let kept = committed.iter().find(|c| {
                c.strategy == kind.name() && c.seed == seed && c.hypervolume.len() >= a.candidates
            });
            if let Some(c) = kept.filter(|_| !Journal::exists_in(&dir)) {
                let mut c = c.clone();
                c.best_accuracy.truncate(a.candidates);
                c.hypervolume.truncate(a.candidates);
                eprintln!(
                    "{} seed {seed}: {} judged, taken from {} (no journal in {})",
                    kind.name(),
                    a.candidates,
                    a.out.join("curves.csv").display(),
                    dir.display()
                );
                curves.push(c);
                continue;
            }
            let meta = RunMeta::default()
                .with("target", &target.name)
                .with("strategy", kind.name())
                .with("seed", seed)
                .with("latency_limit_ms", limit)
                // the weights and table by content: an old journal under the same folder
                // names is not resumed into another supernet's run
                .with("measured_with", identity.trim());
            let journal = if Journal::exists_in(&dir) {
                Journal::resume(&dir, &meta)?
            } else {
                Journal::create(&dir, &meta)?
            };
            let config = EvolutionConfig {
                population: 12,
                tournament: 4,
                crossover: 0.2,
            };
            // dnas learns its distribution first, on the same supernet and table
            let learned = match kind {
                StrategyKind::Dnas => Some(
                    kiln_pipeline::dnas::run(
                        &a.supernet,
                        evaluator.latency_table.as_deref().ok_or("no table")?,
                        &target,
                        &evaluator.data,
                        (seed, kiln_pipeline::Precision::F32),
                        None,
                        &mut |m| eprintln!("{m}"),
                    )?
                    .probabilities,
                ),
                _ => None,
            };
            let mut strategy = kiln_search::strategy::build(
                kind,
                genome_space.clone(),
                config,
                &objectives,
                learned,
                seed,
            );
            let fitness = match kind {
                StrategyKind::Reinforce => Fitness::Mnas {
                    target_ms: limit,
                    w: Fitness::MNAS_W,
                },
                _ => Fitness::Accuracy,
            };
            let search = SearchConfig {
                trials: Some(a.candidates),
                workers: a.workers,
                fitness,
                ..SearchConfig::default()
            };
            let begun = std::time::Instant::now();
            let s = kiln_search::run_search(
                &*genome_space,
                strategy.as_mut(),
                &evaluator,
                &journal,
                &dir,
                &search,
                &NoProgress,
            )?;
            let mut curve = QualityCurve::from_trials(kind.name(), seed, &journal.trials()?, limit);
            // A journal that ran with a larger budget counts only to this one.
            curve.best_accuracy.truncate(a.candidates);
            curve.hypervolume.truncate(a.candidates);
            eprintln!(
                "{} seed {seed}: {} judged ({} now, {:.0} s), {} rejected by predicted latency, best feasible {:?}, hypervolume {:.4}",
                kind.name(),
                curve.hypervolume.len(),
                s.evaluated_now,
                begun.elapsed().as_secs_f64(),
                s.state.rejected_analytic,
                curve.best_accuracy.last().copied().flatten(),
                curve.hypervolume.last().copied().unwrap_or(0.0)
            );
            curves.push(curve);
            // committed runs outside this call's strategies and seeds are kept
            let mut all = curves.clone();
            all.extend(committed.iter().filter(|c| !ran(&a, c)).cloned());
            write(&a.out, &all, limit, a.candidates, &identity)?;
        }
    }
    Ok(())
}

/// The run's latency table. One built for another runtime (the runtime's sources changed
/// since, as they do while kernels are being worked on) is used with a note: the
/// benchmark compares strategies, and every one of them sees the same table.
fn table_for(
    path: &Path,
    wanted: &kiln_latency::TableIdentity,
) -> Result<kiln_latency::LatencyTable, Error> {
    match lut::load_table(path, wanted) {
        Ok(t) => Ok(t),
        Err(e) => {
            let text = std::fs::read_to_string(path)?;
            let t = kiln_latency::LatencyTable::from_json(&text, &path.display().to_string())?;
            let off = t.mismatches(wanted);
            if off.iter().any(|m| m.field != "runtime") {
                return Err(e.into());
            }
            eprintln!(
                "note: {} was built for runtime {}; used as it is",
                path.display(),
                off.first().map_or("", |m| m.table.as_str())
            );
            Ok(t)
        }
    }
}

/// The median latency (ms) the table predicts for 200 random genomes (seed 12345).
fn median_latency(
    space: &Space,
    data: &kiln_data::Dataset,
    table: &kiln_latency::LatencyTable,
    target: &kiln_target::Target,
) -> Result<f64, Error> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(12345);
    let mut v = Vec::new();
    for _ in 0..200 {
        let g = Genome::sample(space, &mut rng);
        let arch = kiln_train::architecture_for(space, &g, data)?;
        v.push(kiln_latency::precheck(&arch, table, target)?.latency.value);
    }
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

/// Whether this call runs `c`'s strategy and seed.
fn ran(a: &Args, c: &QualityCurve) -> bool {
    c.seed < a.seeds && a.strategies.iter().any(|k| k.name() == c.strategy)
}

/// What a committed curve must have been measured with to stand for a run: the
/// supernet's `weights` (content ids, a split's parts' joined by commas) and the latency
/// table (by content) and the latency limit.
fn benchmark_identity(weights: &str, table: &Path, limit: f64) -> Result<String, Error> {
    let table_bytes = std::fs::read(table).map_err(|e| format!("{}: {e}", table.display()))?;
    Ok(format!(
        "supernet weights {weights}, table {}, latency limit {limit:.6} ms\n",
        kiln_pipeline::content_id(&table_bytes)
    ))
}

/// OUT/curves.csv when OUT/identity.txt is `identity`; none otherwise (said why).
fn committed_curves(out: &Path, identity: &str) -> Result<Vec<QualityCurve>, Error> {
    let (csv, id) = (out.join("curves.csv"), out.join("identity.txt"));
    match std::fs::read_to_string(&id) {
        Ok(found) if found == identity => {
            let text = std::fs::read_to_string(&csv).map_err(|e| e.to_string());
            match text.and_then(|t| quality::parse_csv(&t)) {
                Ok(curves) => Ok(curves),
                Err(e) => {
                    eprintln!("note: {}: {e}; its curves are not reused", csv.display());
                    Ok(Vec::new())
                }
            }
        }
        Ok(found) => {
            eprintln!(
                "note: {} was written for {}, not {}: its curves are not reused",
                csv.display(),
                found.trim(),
                identity.trim()
            );
            Ok(Vec::new())
        }
        Err(_) => Ok(Vec::new()),
    }
}

/// Writes OUT's files. identity.txt goes last and curves.csv by rename, so a kill
/// between them leaves no identity (nothing reused), never new curves under an old one.
fn write(
    out: &Path,
    curves: &[QualityCurve],
    limit: f64,
    budget: usize,
    identity: &str,
) -> Result<(), Error> {
    std::fs::create_dir_all(out)?;
    let (id, csv) = (out.join("identity.txt"), out.join("curves.csv"));
    if id.exists() {
        std::fs::remove_file(&id)?;
    }
    let partial = out.join("curves.csv.partial");
    std::fs::write(&partial, quality::csv(curves))?;
    std::fs::rename(&partial, &csv)?;
    let acc = quality::spread(curves, quality::accuracy_at);
    let hv = quality::spread(curves, quality::hypervolume_at);
    std::fs::write(
        out.join("best_accuracy.svg"),
        quality::svg(&acc, "best feasible accuracy"),
    )?;
    std::fs::write(
        out.join("hypervolume.svg"),
        quality::svg(&hv, "hypervolume"),
    )?;
    let mut md = format!(
        "# Strategy quality benchmark\n\nTarget jetson, latency limit {limit:.3} ms (predicted by \
         the table), budget {budget} judged candidates, median (min-max) over seeds at the end. \
         Accuracy: validation top-1 inherited from the supernet (host); latency: predicted.\n\n\
         | strategy | seeds | best feasible accuracy (inherited, host) | hypervolume |\n\
         |---|---|---|---|\n"
    );
    for ((name, a), (_, h)) in acc.iter().zip(&hv) {
        let seeds = curves.iter().filter(|c| &c.strategy == name).count();
        let (am, alo, ahi) = a.last().copied().unwrap_or_default();
        let (hm, hlo, hhi) = h.last().copied().unwrap_or_default();
        md += &format!(
            "| {name} | {seeds} | {:.2}% ({:.2}-{:.2}) | {hm:.4} ({hlo:.4}-{hhi:.4}) |\n",
            100.0 * am,
            100.0 * alo,
            100.0 * ahi
        );
    }
    md += "\nAgainst random search of the same seed, at the shorter run's length: candidates \
           judged to reach random's final best feasible accuracy, and the final hypervolume's \
           difference.\n\n| strategy | seed | to reach random's best | hypervolume - random's |\n|---|---|---|---|\n";
    for v in quality::versus_random(curves) {
        let reach = v
            .to_reach
            .map_or("not reached".into(), |n| format!("{n} of {}", v.budget));
        md += &format!(
            "| {} | {} | {reach} | {:+.4} |\n",
            v.strategy, v.seed, v.hypervolume_gain
        );
    }
    std::fs::write(out.join("summary.md"), md)?;
    std::fs::write(id, identity)?;
    Ok(())
}
