//! `cargo xtask search --target T -o RUN_DIR`: the hardware-aware search.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Result, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_pipeline::device::SearchDeviceChoice;
use kiln_pipeline::finetune::FineTune;
use kiln_pipeline::search::{Reward, SearchRequest, TableChoice, search};
use kiln_search::driver::ProgressState;
use kiln_search::report::impossible_message;
use kiln_search::strategy::EvolutionConfig;
use kiln_search::{Objective, Progress, StrategyKind};
use kiln_train::TrainConfig;

use crate::common::{DataArgs, DeviceArgs, space_path, targets_dir};

/// Search the space for models that meet every hard constraint of a device.
///
/// By default with weight sharing: a supernet for the space and data (trained once,
/// then cached; a few-shot split by the head conv, see --few-shot) gives every
/// candidate its weights and inherited accuracy;
/// the latency lookup table predicts its latency, so candidates are judged in a
/// second or two without being built. The front is then built and measured for
/// real (the hard constraints are judged on measured figures) and its best
/// models fine-tuned from their inherited weights. `--evaluator train` trains,
/// builds and measures every candidate instead. Candidates that break a
/// constraint are recorded infeasible and never join the Pareto front or the
/// parents. The run folder gets journal.sqlite (every trial, resumable),
/// front.json, trials.csv, report.html and front/ (ONNX, generated crate and
/// binaries of each front model).
///
/// With --device (ssh boards) or --serial (adb phones) every candidate is also
/// flashed to that device and benchmarked there, as MnasNet did on phones:
/// latency p50/p95 and peak RSS labelled `device`, output checked against the
/// simulation; the latency constraints and the latency objective then use the
/// device's figures (the simulated ones stay beside them in the journal).
///
/// With no options beyond --target and -o it searches the bundled MNIST subset:
/// about 12 minutes the first time (the supernet's training), then a few minutes.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Device profile: a name from targets/ (`cargo xtask targets` lists
    /// them) or a profile file such as ./myboard.toml.
    #[arg(long)]
    pub target: String,
    /// Folder of device profiles.
    #[arg(long, value_name = "DIR")]
    pub targets_dir: Option<PathBuf>,
    /// Search space file (default spaces/mobile.toml).
    #[arg(long)]
    pub space: Option<PathBuf>,
    #[command(flatten)]
    pub data: Box<DataArgs>,
    /// Stop after this many evaluated trials.
    #[arg(long, value_name = "N")]
    pub trials: Option<usize>,
    /// Stop asking after this long (e.g. 30m, 90s, 1h30m); running trials finish.
    /// Default without --trials: 3m judging with a supernet (90s when warm-started), else 30m.
    #[arg(long, value_name = "DURATION", value_parser = kiln_pipeline::search::parse_budget)]
    pub time_budget: Option<Duration>,
    /// Search strategy: evolution (aging), nsga2 (aging evolution, parents by Pareto rank
    /// and crowding), reinforce (MnasNet's REINFORCE controller, rewarded ACC x
    /// (LAT/T)^-0.07), tpe (Tree-structured Parzen Estimator), dnas (FBNet's
    /// differentiable search on the supernet and the latency table, then its argmax and
    /// draws from the learned distribution) or random.
    #[arg(long, default_value = "evolution", value_parser = StrategyKind::parse)]
    pub strategy: StrategyKind,
    /// Aging evolution: population size (the first P trials are random).
    #[arg(long, default_value_t = 12)]
    pub population: usize,
    /// Aging evolution: tournament size.
    #[arg(long, default_value_t = 4)]
    pub tournament: usize,
    /// Aging evolution: probability a child is a crossover of two winners.
    #[arg(long, default_value_t = 0.2)]
    pub crossover: f64,
    /// Training epochs per candidate (`--evaluator train`).
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Training batch size.
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Seed of the strategy and of every candidate's training.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Candidates evaluated at once (at most 256), one thread each (the supernet trains, and a front model fine-tuned alone trains, on 2 at most).
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Objectives of the Pareto front: accuracy, latency, size, memory.
    #[arg(long, value_delimiter = ',', default_value = "accuracy,latency")]
    pub objectives: Vec<String>,
    /// What the evolution's tournament compares: `accuracy`, or `mnas`
    /// (ACC x (LAT/T)^-0.07, T = the target's latency limit).
    #[arg(long, value_enum, default_value = "accuracy")]
    pub reward: RewardArg,
    /// Replace the target's latency limits with this many ms (p50, p95; FPS dropped; recorded in
    /// the run's identity).
    #[arg(long, value_name = "MS")]
    pub latency_limit: Option<f64>,
    /// Continue the search journalled in RUN_DIR (same target, space, data,
    /// seed and strategy); trials that were running are evaluated again.
    #[arg(long)]
    pub resume: bool,
    /// Share the run through this database (also $KILN_JOURNAL): postgres://USER@HOST/DB; the
    /// run is named after RUN_DIR. `cargo xtask worker --journal URL` on any machine joins it;
    /// --workers 0 leaves evaluation to them.
    #[arg(long, value_name = "URL")]
    pub journal: Option<String>,
    /// f32, or int8: each built candidate and the front quantized, int8 accuracy measured, f32
    /// figures beside (f32_*). A space listing `precision` decides per genome (int8 refused).
    #[arg(long, default_value = "f32", value_parser = kiln_pipeline::Precision::parse)]
    pub precision: kiln_pipeline::Precision,
    /// Run folder.
    #[arg(short = 'o', long = "out", value_name = "RUN_DIR")]
    pub out: PathBuf,
    /// Latency lookup table to reject candidates by predicted latency before training
    /// (default: tables/sim-<target>-<space>-<CxHxW>-<classes>.json when it matches the
    /// run; `cargo xtask lut build` writes it). `off` uses none.
    #[arg(long, value_name = "FILE | off")]
    pub lut: Option<PathBuf>,
    /// How candidates get their accuracy: `supernet` (inherited from a supernet,
    /// weight sharing) or `train` (each trained from scratch for --epochs).
    #[arg(long, value_enum, default_value = "supernet")]
    pub evaluator: EvaluatorArg,
    /// Use this supernet (`cargo xtask supernet train -o DIR`, trained for this space
    /// and data) instead of the cached one.
    #[arg(long, value_name = "DIR")]
    pub supernet: Option<PathBuf>,
    /// Where supernets are cached, one per space, data and training settings.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "runs/supernets",
        conflicts_with = "supernet"
    )]
    pub supernet_cache: PathBuf,
    /// Epochs a cached supernet trains (a split's: each part): more rank better (docs/ranking).
    #[arg(long, default_value_t = 4, conflicts_with = "supernet")]
    pub supernet_epochs: usize,
    /// Few-shot split (Zhao et al., 2021): `head`, a supernet per head conv width, each trained
    /// --supernet-epochs; `none`; `auto`: `head` when the space has 2+ widths (not with dnas),
    /// and a --supernet folder as it is.
    #[arg(long, default_value = "auto")]
    pub few_shot: kiln_pipeline::supernet_cache::FewShot,
    /// Epochs of fine-tuning of the front's models from their inherited weights (the
    /// 5 most accurate; 0: none).
    #[arg(long, default_value_t = 2)]
    pub fine_tune: usize,
    /// Fine-tune the front's 5 most accurate even where a model an earlier search fine-tuned
    /// dominates one within the judge's noise (else that one stays inherited).
    #[arg(long)]
    pub fine_tune_all: bool,
    /// Start from nothing earlier searches judged on the supernet (to compare strategies).
    #[arg(long)]
    pub no_warm_start: bool,
    #[command(flatten)]
    pub dev: DeviceArgs,
    /// Warm-up inferences per candidate on the device.
    #[arg(long, default_value_t = 5, help_heading = "Device")]
    pub device_warmup: u64,
    /// Timed inferences per candidate on the device (p50/p95 over these).
    #[arg(long, default_value_t = 30, help_heading = "Device")]
    pub device_runs: u64,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvaluatorArg {
    Supernet,
    Train,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RewardArg {
    Accuracy,
    Mnas,
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

pub fn run(args: Args) -> Result<()> {
    let targets = args.targets_dir.clone().unwrap_or_else(targets_dir);
    let target = kiln_target::load(&targets, &args.target)?;
    let objectives = Objective::parse_list(&args.objectives)
        .map_err(|e| anyhow::anyhow!("--objectives: {e}"))?;
    let journal = (args.journal.clone()).or_else(|| std::env::var("KILN_JOURNAL").ok());
    let device = device_for(&args, &target)?;
    let holds_power_mode = device.as_ref().is_some_and(|d| d.plan.is_some());
    let interrupt = Arc::new(AtomicBool::new(false));
    let data = args.data.load()?;
    let space = args.space.clone().unwrap_or_else(|| space_path("mobile"));
    if let (EvaluatorArg::Train, Some(dir)) = (args.evaluator, &args.supernet) {
        let dir = dir.display();
        bail!("--evaluator train trains each candidate, --supernet {dir} inherits: not both");
    }
    let uses_supernet = args.evaluator != EvaluatorArg::Train;
    let mut request = SearchRequest {
        target: target.clone(),
        space_path: space,
        data,
        data_identity: args.data.identity(),
        strategy: args.strategy,
        evolution: EvolutionConfig {
            population: args.population,
            tournament: args.tournament,
            crossover: args.crossover,
        },
        train: TrainConfig {
            epochs: args.epochs,
            batch_size: args.batch_size,
            seed: args.seed,
            threads: 1,
            ..TrainConfig::default()
        },
        workers: args.workers,
        trials: args.trials,
        time_budget: args.time_budget,
        objectives: objectives.clone(),
        reward: match args.reward {
            RewardArg::Accuracy => Reward::Accuracy,
            RewardArg::Mnas => Reward::Mnas,
        },
        latency_limit_ms: args.latency_limit,
        resume: args.resume,
        out: args.out.clone(),
        device,
        latency_table: match &args.lut {
            None => TableChoice::Default(crate::common::workspace_root()),
            Some(p) if p.as_os_str() == "off" => TableChoice::Off,
            Some(p) => TableChoice::Given(p.clone()),
        },
        supernet: args.supernet.clone(),
        few_shot: args.few_shot,
        fine_tune: FineTune {
            epochs: args.fine_tune,
            all: args.fine_tune_all,
            ..FineTune::default()
        },
        warm_start: !args.no_warm_start,
        interrupt: interrupt.clone(),
        precision: args.precision,
        journal,
    };
    if uses_supernet && request.supernet.is_none() {
        cached_supernet(&args, &mut request)?;
    }
    catch_ctrl_c(interrupt, holds_power_mode);
    let bar = match args.trials {
        Some(n) => ProgressBar::new(n as u64),
        None => ProgressBar::new_spinner(),
    };
    bar.set_style(
        ProgressStyle::with_template("[{elapsed_precise}] {bar:30} {pos}/{len} trials | {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.enable_steady_tick(Duration::from_millis(500));
    let progress = Bar(bar);
    let outcome = search(request, &progress, &mut |line| eprintln!("{line}"));
    progress.0.finish();
    let outcome = outcome?;
    outcome.summary_lines().iter().for_each(|l| println!("{l}"));
    if outcome.files.front.is_empty() && !outcome.interrupted {
        let journal = kiln_search::Journal::open(&args.out)?;
        bail!("{}", impossible_message(&journal.trials()?, &target.name));
    }
    if outcome.interrupted {
        eprintln!(
            "interrupted: {} trial(s) went back to pending; the same command with --resume continues the search",
            outcome.summary.requeued_now
        );
        // 130: the shell's status for a command stopped by SIGINT.
        std::process::exit(130);
    }
    Ok(())
}

/// Ctrl-C stops a search in order: the first press stops asking for new
/// trials and lets the running ones finish (one whose build or benchmark the
/// press killed goes back to pending, see `SearchConfig::interrupt`), then the
/// report is written and the device's power mode restored. A second press
/// exits at once; the journal stays consistent (running trials are
/// evaluated again on `--resume`).
fn catch_ctrl_c(flag: Arc<AtomicBool>, holds_power_mode: bool) {
    let held = |words: &'static str| if holds_power_mode { words } else { "" };
    let and_power_mode = held(" and the device's power mode");
    let power_mode_left = held("; the device's power mode is NOT restored");
    let set = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!(
                "\nsecond Ctrl-C: stopping now; running trials are evaluated again on --resume{power_mode_left}"
            );
            std::process::exit(130);
        }
        eprintln!(
            "\nCtrl-C: no new trials; finishing the running ones, then the report{and_power_mode} (Ctrl-C again stops at once)"
        );
    });
    if let Err(e) = set {
        eprintln!("warning: Ctrl-C cannot be caught ({e}); it will stop the search at once");
    }
}

/// Gives `request` the supernet of `--evaluator supernet` without `--supernet DIR`: the
/// cached one for this space and data, trained first when the cache lacks it (with a
/// progress bar) but only after the search's settings passed the preflight.
fn cached_supernet(args: &Args, request: &mut SearchRequest) -> Result<()> {
    let config = kiln_supernet::SupernetConfig {
        epochs: args.supernet_epochs,
        // a step's random sub-networks beside its largest and smallest (2 at most)
        threads: args.workers.clamp(1, 2),
        ..Default::default()
    };
    let cache = crate::common::workspace_root().join(&args.supernet_cache);
    let split = kiln_pipeline::supernet_cache::settle_few_shot(request)?;
    let (space, data, id) = (&request.space_path, &request.data, args.data.identity());
    let dir = kiln_pipeline::supernet_cache::dir_for(&cache, space, split, data, &config)?;
    // minutes of training to come: refuse bad settings (a resume of another run) first
    request.supernet = Some(dir);
    kiln_pipeline::preflight::preflight(request)?;
    let (bar, mut report) = crate::supernet::epoch_bar();
    let cached = kiln_pipeline::supernet_cache::ensure(
        &cache,
        &request.space_path,
        split,
        &request.data,
        &id,
        &config,
        &mut report,
        &mut |note| eprintln!("{note}"),
    )?;
    bar.finish_and_clear();
    eprintln!("{cached}");
    Ok(())
}

/// The device a search measures on, from `--device`/`--serial`.
fn device_for(args: &Args, target: &kiln_target::Target) -> Result<Option<SearchDeviceChoice>> {
    let spec = args.dev.spec();
    if !spec.given()? {
        return Ok(None);
    }
    let (warmup, runs) = (args.device_warmup, args.device_runs);
    Ok(Some(SearchDeviceChoice::new(
        target,
        &spec.flags("--device"),
        warmup,
        runs,
    )?))
}
