//! `cargo xtask search --target T -o RUN_DIR`: the hardware-aware search.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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
use crate::flash;
use kiln_deploy::{BenchSettings, Device, PowerOutcome, PowerPlan, Transport};
use kiln_search::device::SearchDevice;

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
/// With --device (ssh boards) or --serial (adb phones) every candidate is also
/// flashed to that device and benchmarked there, as MnasNet did on phones:
/// latency p50/p95 and peak RSS labelled `device`, output checked against the
/// simulation; the latency constraints and the latency objective then use the
/// device's figures (the simulated ones stay beside them in the journal).
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
    /// Measure every candidate on this device: USER@ADDR of an ssh board, or
    /// `adb` for the only phone attached (see --serial).
    #[arg(long, value_name = "USER@ADDR | adb", help_heading = "Device")]
    pub device: Option<String>,
    /// ssh port of the device [default: 22].
    #[arg(long, help_heading = "Device")]
    pub port: Option<u16>,
    /// ssh private key file.
    #[arg(long, help_heading = "Device")]
    pub identity: Option<PathBuf>,
    /// Extra ssh/scp option, passed as `-o OPT` (repeatable).
    #[arg(long = "ssh-option", value_name = "OPT", help_heading = "Device")]
    pub ssh_options: Vec<String>,
    /// adb serial of the phone (adb profiles; implies measuring on it).
    #[arg(long, help_heading = "Device")]
    pub serial: Option<String>,
    /// Warm-up inferences per candidate on the device.
    #[arg(long, default_value_t = 5, help_heading = "Device")]
    pub device_warmup: u64,
    /// Timed inferences per candidate on the device (p50/p95 over these).
    #[arg(long, default_value_t = 30, help_heading = "Device")]
    pub device_runs: u64,
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

    let mut device = device_for(&args, &target)?;
    if let Some(d) = device.as_mut() {
        // Fail fast, before the journal and minutes of training, when the
        // device does not answer.
        d.device
            .check_reachable()
            .context("--device: the device must answer before the search starts")?;
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
    if let Some(d) = &device {
        meta = meta
            .with("device", d.device.name())
            .with(
                "device_bench",
                format!(
                    "warmup {}, runs {}{}",
                    d.bench.warmup,
                    d.bench.runs,
                    d.bench
                        .runner
                        .as_deref()
                        .map(|r| format!(", runner {r}"))
                        .unwrap_or_default()
                ),
            )
            .with("device_power_mode", &d.power_identity);
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
    let mut evaluator = PipelineEvaluator::new(space, target.clone(), Arc::new(data), train);
    let mut held_mode = None;
    if let Some(mut d) = device {
        let (before, power_mode) = d.hold_power_mode();
        let mut search_device = SearchDevice::new(d.device.clone(), d.bench.clone());
        search_device.power_mode = power_mode;
        eprintln!(
            "measuring every candidate on {} (folders {}, ...; latency labelled `device`)",
            search_device.name(),
            search_device.worker_dir(0)
        );
        evaluator.device = Some(search_device);
        held_mode = before.map(|before| (d, before));
    }
    let interrupt = Arc::new(AtomicBool::new(false));
    catch_ctrl_c(interrupt.clone(), held_mode.is_some());
    let config = SearchConfig {
        trials: args.trials,
        time_budget,
        workers: args.workers,
        fitness: reward,
        interrupt: Some(interrupt.clone()),
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
    );
    progress.0.finish();
    if let Some((mut d, before)) = held_mode {
        d.restore_power_mode(before);
    }
    let summary = match summary {
        Ok(s) => s,
        Err(e @ kiln_search::SearchError::Stopped { .. }) => {
            // What finished so far is reported; the rest waits for --resume.
            let _ = write_report(&args.out, &journal, Some(&target), &objectives);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
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
    let interrupted = interrupt.load(Ordering::SeqCst);
    if files.front.is_empty() && !interrupted {
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
    if interrupted {
        eprintln!(
            "interrupted: {} trial(s) went back to pending; the same command with --resume continues the search",
            summary.requeued_now
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
    let (and_power_mode, power_mode_left) = if holds_power_mode {
        (
            " and the device's power mode",
            "; the device's power mode is NOT restored",
        )
    } else {
        ("", "")
    };
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

/// The device a search measures on, from `--device`/`--serial`.
struct DeviceChoice {
    device: Device,
    bench: BenchSettings,
    /// The power mode the candidates run in, for the run identity.
    power_identity: String,
    /// The mode to hold for the whole search, when it can be set.
    plan: Option<PowerPlan>,
}

impl DeviceChoice {
    /// Sets the chosen power mode once for the whole search (not per
    /// candidate: switching modes before every benchmark would measure the
    /// clocks settling). Returns the mode to restore and what the device
    /// runs in, and says so.
    fn hold_power_mode(&mut self) -> (Option<u32>, String) {
        let Some(plan) = self.plan.clone() else {
            eprintln!("note: power mode {}", self.power_identity);
            return (None, self.power_identity.clone());
        };
        let mut outcome = PowerOutcome::default();
        let restore = self.device.set_power_mode(&plan, &mut outcome);
        let held = match outcome.nvpmodel_set {
            Some(id) => {
                let held = format!("{} (nvpmodel -m {id}, held for the search)", plan.mode);
                eprintln!(
                    "power mode {held}{}",
                    outcome
                        .nvpmodel_before
                        .filter(|b| *b != id)
                        .map(|b| format!("; mode {b} is restored at the end"))
                        .unwrap_or_default()
                );
                held
            }
            None => format!("as found on the device: {}", outcome.notes.join("; ")),
        };
        for n in &outcome.notes {
            eprintln!("note: {n}");
        }
        (restore, held)
    }

    fn restore_power_mode(&mut self, before: u32) {
        let mut outcome = PowerOutcome::default();
        self.device.restore_power_mode(before, &mut outcome);
        for n in &outcome.notes {
            eprintln!("note: {n}");
        }
    }
}

fn device_for(args: &Args, target: &kiln_target::Target) -> Result<Option<DeviceChoice>> {
    if args.device.is_none() && args.serial.is_none() {
        if args.port.is_some() || args.identity.is_some() || !args.ssh_options.is_empty() {
            bail!("--port, --identity and --ssh-option need --device USER@ADDR");
        }
        return Ok(None);
    }
    let transport = flash::transport(
        target,
        &flash::DeviceFlags {
            host_flag: "--device",
            host: args.device.as_deref(),
            port: args.port,
            identity: args.identity.as_deref(),
            ssh_options: &args.ssh_options,
            serial: args.serial.as_deref(),
        },
    )?;
    let is_adb = matches!(transport, Transport::Adb(_));
    let device = Device::new(transport, flash::device_dir(target));
    // The candidates run in the mode the sim figures are for: the fastest
    // within the power budget.
    let mode = target.modes_within_budget().first().map(|m| (*m).clone());
    let (power_identity, plan) = match mode {
        None => (
            "as found on the device (no power mode of the profile is within its budget)".into(),
            None,
        ),
        Some(m) if is_adb => (
            format!(
                "as found on the phone (kiln sets no phone modes; the sim figures are for mode {})",
                m.name
            ),
            None,
        ),
        Some(m) => {
            let identity = match m.nvpmodel_id {
                Some(id) => format!("{} (nvpmodel -m {id}, if the device has nvpmodel)", m.name),
                None => format!(
                    "as found on the device (mode {} has no nvpmodel_id in the profile)",
                    m.name
                ),
            };
            let plan = PowerPlan {
                mode: m.name.clone(),
                nvpmodel_id: m.nvpmodel_id,
                rails: Vec::new(),
            };
            (identity, Some(plan))
        }
    };
    if args.device_runs == 0 {
        bail!("--device-runs must be at least 1");
    }
    Ok(Some(DeviceChoice {
        device,
        bench: BenchSettings {
            warmup: args.device_warmup,
            runs: args.device_runs,
            runner: target.deploy.runner.clone(),
            power: None,
        },
        power_identity,
        plan,
    }))
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
