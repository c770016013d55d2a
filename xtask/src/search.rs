//! `cargo xtask search --target T -o RUN_DIR`: the hardware-aware search.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_search::driver::ProgressState;
use kiln_search::pipeline::PipelineEvaluator;
use kiln_search::report::{impossible_message, write_report};
use kiln_search::strategy::EvolutionConfig;
use kiln_search::{
    AgingEvolution, Fitness, GenomeSpace, Journal, Objective, Progress, RandomSearch, RunMeta,
    SearchConfig, Strategy, StrategyKind, run_search,
};
use kiln_space::Genome;
use kiln_train::TrainConfig;
use rand::SeedableRng;

use crate::common::{load_space, targets_dir};

/// Search the space for models that meet every hard constraint of a device.
///
/// Each candidate is trained on the data (short budget), exported to ONNX,
/// compiled into a no_std Rust program, built for the target's triple and for
/// wasm, and measured (sizes; simulated latency per power mode; peak memory).
/// Candidates that break a constraint are recorded infeasible and never join
/// the Pareto front or the parents. The run folder gets journal.sqlite (every
/// trial, resumable), front.json, trials.csv, report.html and front/ (ONNX,
/// generated crate and binaries of each front model).
///
/// With no options beyond --target and -o it searches for 30 minutes on the
/// bundled MNIST subset.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Device profile name (targets/NAME.toml; `cargo xtask targets` lists them).
    #[arg(long)]
    pub target: String,
    /// Folder of device profiles.
    #[arg(long, value_name = "DIR")]
    pub targets_dir: Option<PathBuf>,
    /// Search space file (default spaces/mobile.toml).
    #[arg(long)]
    pub space: Option<PathBuf>,
    #[command(flatten)]
    pub data: crate::train::DataArgs,
    /// Stop after this many evaluated trials.
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
    /// Stop asking after this long (e.g. 30m, 90s, 1h30m); running trials finish.
    /// Default 30m when --trials is not given.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub time_budget: Option<Duration>,
    /// Search strategy.
    #[arg(long, value_enum, default_value = "evolution")]
    pub strategy: StrategyArg,
    /// Aging evolution: population size (the first P trials are random).
    #[arg(long, default_value_t = 12)]
    pub population: usize,
    /// Aging evolution: tournament size.
    #[arg(long, default_value_t = 4)]
    pub tournament: usize,
    /// Aging evolution: probability a child is a crossover of two winners.
    #[arg(long, default_value_t = 0.2)]
    pub crossover: f64,
    /// Training epochs per candidate.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Training batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Seed of the strategy and of every candidate's training.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Candidates evaluated at once (each trains on one thread).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Objectives of the Pareto front: accuracy, latency, size, memory.
    #[arg(long, value_delimiter = ',', default_value = "accuracy,latency")]
    pub objectives: Vec<String>,
    /// What the evolution's tournament compares: `accuracy`, or `mnas`
    /// (ACC x (LAT/T)^-0.07, T = the target's latency limit).
    #[arg(long, value_enum, default_value = "accuracy")]
    pub reward: RewardArg,
    /// Continue the search journalled in RUN_DIR (same target, space, data,
    /// seed and strategy); trials that were running are evaluated again.
    #[arg(long)]
    pub resume: bool,
    /// Run folder.
    #[arg(short = 'o', long = "out", value_name = "RUN_DIR")]
    pub out: PathBuf,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyArg {
    Evolution,
    Random,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardArg {
    Accuracy,
    Mnas,
}

/// `30m`, `90s`, `1h30m`, `2h`; a bare number is minutes.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(m) = s.parse::<f64>() {
        return Ok(Duration::from_secs_f64(m * 60.0));
    }
    let mut total = 0.0;
    let mut number = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let n: f64 = number
            .parse()
            .map_err(|_| format!("`{s}` is not a duration like 30m, 90s or 1h30m"))?;
        total += n * match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => return Err(format!("`{s}`: unknown unit `{c}` (use h, m or s)")),
        };
        number.clear();
    }
    if !number.is_empty() {
        return Err(format!(
            "`{s}`: a number without a unit at the end (use h, m or s)"
        ));
    }
    if total <= 0.0 {
        return Err(format!("`{s}` must be longer than zero"));
    }
    Ok(Duration::from_secs_f64(total))
}

/// FNV-1a of the space file, so resuming with an edited space is refused.
fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn update(&self, s: &ProgressState) {
        self.0.set_position(s.finished as u64);
        let best = s
            .best_accuracy
            .map_or("-".to_string(), |a| format!("{:.2}%", a * 100.0));
        self.0.set_message(format!(
            "feasible {} | infeasible {} | failed {} | running {} | best acc {best}",
            s.feasible, s.infeasible, s.failed, s.running
        ));
    }
    fn trial_finished(&self, line: &str) {
        // A hidden bar (output not a terminal) drops println: log plainly.
        if self.0.is_hidden() {
            eprintln!("{line}");
        } else {
            self.0.println(line);
        }
    }
}

fn objectives(names: &[String]) -> Result<Vec<Objective>> {
    let mut out = Vec::new();
    for n in names {
        let o = Objective::parse(n.trim()).with_context(|| {
            format!("--objectives: unknown objective `{n}` (accuracy, latency, size, memory)")
        })?;
        if !out.contains(&o) {
            out.push(o);
        }
    }
    if out.is_empty() {
        bail!("--objectives: give at least one of accuracy, latency, size, memory");
    }
    Ok(out)
}

pub fn run(args: Args) -> Result<()> {
    let targets = args.targets_dir.clone().unwrap_or_else(targets_dir);
    let target = kiln_target::load(&targets, &args.target)?;
    let space_path = args
        .space
        .clone()
        .unwrap_or_else(|| crate::common::space_path("mobile"));
    let space_text = std::fs::read_to_string(&space_path)
        .with_context(|| format!("reading {}", space_path.display()))?;
    let space = load_space(Some(&space_path))?;
    let objectives = objectives(&args.objectives)?;
    if args.workers == 0 {
        bail!("--workers must be at least 1");
    }
    if args.trials == Some(0) {
        bail!("--trials must be at least 1");
    }
    let time_budget = match (args.trials, args.time_budget) {
        (None, None) => Some(Duration::from_secs(30 * 60)),
        (_, t) => t,
    };

    let source = args.data.source();
    let data = args.data.load()?;
    // A space whose networks downsample more than the images allow is refused
    // up front rather than failing every trial.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(args.seed);
    for _ in 0..8 {
        let g = Genome::sample(&space, &mut rng);
        kiln_train::architecture_for(&space, &g, &data).with_context(|| {
            format!(
                "space {} does not fit data set {} ({}x{}x{}, {} classes)",
                space_path.display(),
                data.name,
                data.shape.channels,
                data.shape.height,
                data.shape.width,
                data.classes
            )
        })?;
    }

    let reward = match args.reward {
        RewardArg::Accuracy => Fitness::Accuracy,
        RewardArg::Mnas => Fitness::Mnas {
            target_ms: kiln_search::report::latency_limit_ms(&target).with_context(|| {
                format!(
                    "--reward mnas needs a latency limit, and `{}` has none",
                    target.name
                )
            })?,
            w: Fitness::MNAS_W,
        },
    };
    let strategy_kind = match args.strategy {
        StrategyArg::Evolution => StrategyKind::Evolution,
        StrategyArg::Random => StrategyKind::Random,
    };
    let mut meta = RunMeta::default()
        .with("target", &target.name)
        .with("space", &space.name)
        .with("space_file", fingerprint(&space_text))
        .with(
            "data",
            format!(
                "{} (validation {}, split seed {}, train limit {})",
                source.name(),
                args.data.validation,
                args.data.split_seed,
                args.data
                    .train_limit
                    .map_or("none".into(), |n| n.to_string())
            ),
        )
        .with("seed", args.seed)
        .with("strategy", strategy_kind.name())
        .with("epochs", args.epochs)
        .with("batch_size", args.batch_size)
        .with(
            "objectives",
            objectives
                .iter()
                .map(|o| o.name())
                .collect::<Vec<_>>()
                .join(","),
        )
        .with("reward", format!("{reward:?}"));
    if strategy_kind == StrategyKind::Evolution {
        meta = meta.with(
            "evolution",
            format!(
                "population {}, tournament {}, crossover {}",
                args.population, args.tournament, args.crossover
            ),
        );
    }
    let journal = if args.resume {
        Journal::resume(&args.out, &meta)?
    } else {
        Journal::create(&args.out, &meta)?
    };

    let genome_space = Arc::new(GenomeSpace::new(space.clone()));
    let mut strategy: Box<dyn Strategy<Genome>> = match strategy_kind {
        StrategyKind::Evolution => Box::new(AgingEvolution::new(
            genome_space.clone(),
            EvolutionConfig {
                population: args.population,
                tournament: args.tournament,
                crossover: args.crossover,
            },
            args.seed,
        )),
        StrategyKind::Random => Box::new(RandomSearch::new(genome_space.clone(), args.seed)),
    };
    let train = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        seed: args.seed,
        threads: 1,
        ..TrainConfig::default()
    };
    train.validate()?;
    let evaluator = PipelineEvaluator::new(space, target.clone(), Arc::new(data), train);
    let config = SearchConfig {
        trials: args.trials,
        time_budget,
        workers: args.workers,
        fitness: reward,
        ..SearchConfig::default()
    };
    let bar = match args.trials {
        Some(n) => ProgressBar::new(n as u64),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} trials | {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    eprintln!(
        "searching {} for `{}` ({}); run folder {}",
        meta.get("space").unwrap_or("?"),
        target.name,
        target.constraint_summary(),
        args.out.display()
    );
    let progress = Bar(bar);
    let summary = run_search(
        &*genome_space,
        strategy.as_mut(),
        &evaluator,
        &journal,
        &args.out,
        &config,
        &progress,
    )?;
    progress.0.finish();
    let files = write_report(&args.out, &journal, Some(&target), &objectives)?;
    let s = &summary.state;
    println!(
        "stopped: {}. {} trials evaluated ({} this run): {} feasible, {} infeasible, {} failed; {} rejected before training.",
        summary.stopped,
        s.finished,
        summary.evaluated_now,
        s.feasible,
        s.infeasible,
        s.failed,
        s.rejected_analytic
    );
    if files.front.is_empty() {
        bail!("{}", impossible_message(&journal.trials()?, &target.name));
    }
    println!("Pareto front ({} models):", files.front.len());
    for m in &files.front {
        let fig = |k: &str| {
            m.metrics.get(k).map_or("-".into(), |f| {
                format!("{:.3} {} ({})", f.value, f.unit, f.source)
            })
        };
        println!(
            "  {}  accuracy {}  latency {}  size {}",
            m.folder,
            fig("accuracy"),
            fig("latency_ms"),
            fig("size_bytes")
        );
    }
    println!("report: {}", files.report_html.display());
    Ok(())
}

/// Used by `report`: the objectives a journal was searched with.
pub fn journal_objectives(journal_meta: &RunMeta) -> Vec<Objective> {
    journal_meta
        .get("objectives")
        .map(|s| {
            s.split(',')
                .filter_map(Objective::parse)
                .collect::<Vec<_>>()
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| vec![Objective::Accuracy, Objective::Latency])
}

/// Used by `report`: the target a journal was searched for, if its profile loads.
pub fn journal_target(journal_meta: &RunMeta, dir: &Path) -> Option<kiln_target::Target> {
    kiln_target::load(dir, journal_meta.get("target")?).ok()
}
