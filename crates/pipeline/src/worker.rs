//! Searches across machines: a search whose journal is a PostgreSQL
//! database (`--journal postgres://...`), and the workers that join it
//! (`cargo xtask worker`).
//!
//! The search stores what a worker needs beside the run's identity: the
//! space file (`space.toml`, checked against the identity's fingerprint) and
//! the kiln runtime's fingerprint. A worker rebuilds the evaluator from them
//! (target profile by name from its own `targets/`, training settings from
//! the identity, its own copy of the data, which must have the run's
//! identity) and refuses to join when its runtime differs. It also stores
//! how it asks (`ask.json`: strategy, its settings, budget), so a worker
//! takes the ask side over when the search process dies
//! (kiln-search's `driver::work_with_takeover`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use kiln_data::Dataset;
use kiln_search::driver::{
    Takeover, WorkConfig, WorkSummary, run_shared_search, work_with_takeover,
};
use kiln_search::journal::{LeaseOptions, Location, shared_runs};
use kiln_search::strategy::EvolutionConfig;
use kiln_search::{
    Evaluator, Fitness, GenomeSpace, Journal, Progress, RunMeta, SearchConfig, SearchError,
    SearchSummary, Strategy, StrategyKind,
};
use kiln_space::{Genome, Space};
use kiln_train::TrainConfig;
use serde::{Deserialize, Serialize};

use crate::PipelineError;
use crate::build::content_id;
use crate::device::{DeviceSpec, SearchDeviceChoice};

/// The run file holding the space's TOML text.
const SPACE_FILE: &str = "space.toml";

/// The run file holding how the search asks ([`AskPlan`] as JSON).
const ASK_FILE: &str = "ask.json";

/// How a shared run's search asks: what a worker needs to go on asking when the
/// search process dies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AskPlan {
    /// [`StrategyKind::name`].
    strategy: String,
    /// Aging evolution's population, tournament and crossover probability.
    evolution: (usize, usize, f64),
    /// The budget in evaluated trials.
    trials: Option<usize>,
    /// The time budget, seconds from `started_at`.
    time_budget_s: Option<f64>,
    /// When the search (re)started, Unix seconds.
    started_at: f64,
    /// MnasNet's reward (T ms, w), or accuracy alone.
    mnas: Option<(f64, f64)>,
}

impl AskPlan {
    /// The plan of a search asking with `strategy` and `evolution` under `config`.
    pub(crate) fn new(
        strategy: StrategyKind,
        evolution: EvolutionConfig,
        config: &SearchConfig,
    ) -> Self {
        AskPlan {
            strategy: strategy.name().into(),
            evolution: (
                evolution.population,
                evolution.tournament,
                evolution.crossover,
            ),
            trials: config.trials,
            time_budget_s: config.time_budget.map(|d| d.as_secs_f64()),
            started_at: unix_now(),
            mnas: match config.fitness {
                Fitness::Mnas { target_ms, w } => Some((target_ms, w)),
                Fitness::Accuracy => None,
            },
        }
    }

    /// The strategy (replayed from the journal by the driver) and the settings to go on
    /// asking with, the time budget shortened by what has passed since `started_at`.
    fn resume(
        &self,
        space: Arc<GenomeSpace>,
        meta: &RunMeta,
        interrupt: Arc<AtomicBool>,
    ) -> Result<(Box<dyn Strategy<Genome>>, SearchConfig), SearchError> {
        let kind = StrategyKind::parse(&self.strategy).map_err(SearchError::Config)?;
        if kind == StrategyKind::Dnas {
            return Err(SearchError::Config(
                "dnas asks from a supernet's distribution, which workers do not have".into(),
            ));
        }
        let (population, tournament, crossover) = self.evolution;
        let evolution = EvolutionConfig {
            population,
            tournament,
            crossover,
        };
        let seed = meta.get("seed").and_then(|s| s.parse().ok()).unwrap_or(0);
        let objectives = meta.objectives();
        let strategy =
            kiln_search::strategy::build(kind, space, evolution, &objectives, None, seed);
        let spent = (unix_now() - self.started_at).max(0.0);
        let config = SearchConfig {
            trials: self.trials,
            time_budget: self
                .time_budget_s
                .map(|b| Duration::from_secs_f64((b - spent).max(0.0))),
            workers: 0,
            fitness: match self.mnas {
                Some((target_ms, w)) => Fitness::Mnas { target_ms, w },
                None => Fitness::Accuracy,
            },
            objectives,
            interrupt: Some(interrupt),
            ..SearchConfig::default()
        };
        Ok((strategy, config))
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Grace period and attempts of a shared run: 60 s and 3, or
/// `KILN_JOURNAL_GRACE_S` seconds (tests shorten it).
pub fn lease_options() -> LeaseOptions {
    let grace = std::env::var("KILN_JOURNAL_GRACE_S")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .filter(|d| !d.is_zero())
        .unwrap_or(Duration::from_secs(60));
    LeaseOptions {
        grace,
        ..LeaseOptions::default()
    }
}

fn runtime_fingerprint() -> Result<String, PipelineError> {
    Ok(kiln_codegen::runtime_fingerprint(
        &kiln_codegen::default_runtime_path(),
    )?)
}

/// Opens the journal of a search: `run_dir`'s SQLite journal, or with `url`
/// the run named after `run_dir`'s folder in that database (its identity
/// gains the runtime fingerprint; the space file is stored for workers).
///
/// Errors: as [`Journal::create`] / [`Journal::resume`]; a shared run with a
/// supernet (workers cannot judge by one yet).
pub(crate) fn search_journal(
    url: Option<&str>,
    run_dir: &Path,
    resume: bool,
    meta: RunMeta,
    space_text: &str,
) -> Result<Journal, PipelineError> {
    let Some(url) = url else {
        return Ok(if resume {
            Journal::resume(run_dir, &meta)?
        } else {
            Journal::create(run_dir, &meta)?
        });
    };
    // a shared run with a supernet was refused by `preflight::check`
    let location = Location::of_run(run_dir, Some(url), None)?;
    let meta = meta.with("runtime", runtime_fingerprint()?);
    let journal = if resume {
        Journal::resume_at(&location, &meta, &lease_options())?
    } else {
        Journal::create_at(&location, &meta, &lease_options())?
    };
    journal.put_file(SPACE_FILE, space_text.as_bytes())?;
    Ok(journal)
}

/// Runs the search's driver: [`kiln_search::run_search`] on a folder journal,
/// the ask side of a shared run ([`run_shared_search`]) otherwise.
///
/// Errors: the driver's.
#[allow(clippy::too_many_arguments)]
pub(crate) fn drive<E: Evaluator<Genome>>(
    shared: bool,
    space: &GenomeSpace,
    strategy: &mut dyn Strategy<Genome>,
    evaluator: &E,
    journal: &Journal,
    run_dir: &Path,
    config: &SearchConfig,
    plan: AskPlan,
    progress: &dyn Progress,
) -> Result<SearchSummary, SearchError> {
    if shared {
        let text = serde_json::to_string(&plan).unwrap_or_default();
        journal.put_file(ASK_FILE, text.as_bytes())?;
        run_shared_search(
            space, strategy, evaluator, journal, run_dir, config, progress,
        )
    } else {
        kiln_search::run_search(
            space, strategy, evaluator, journal, run_dir, config, progress,
        )
    }
}

/// A worker joining a shared run.
#[derive(Debug)]
pub struct WorkerRequest {
    /// The database (`postgres://USER@HOST/DB`).
    pub journal: String,
    /// The run to join; `None` for the only unfinished run in the database.
    pub run: Option<String>,
    /// This machine's copy of the run's data.
    pub data: Dataset,
    /// Its identity, which must equal the run's unless its content id does (the same
    /// files in another folder).
    pub data_identity: String,
    /// Where device profiles are found (the run's target by name).
    pub targets_dir: PathBuf,
    /// Candidates evaluated at once.
    pub threads: usize,
    /// Where trial folders are written (`DIR/<run>/trials/...`).
    pub work_dir: PathBuf,
    /// Set by a Ctrl-C handler: claim nothing more.
    pub interrupt: Arc<AtomicBool>,
    /// This worker's device, which a run that measures on devices needs (and a run
    /// that does not refuses).
    pub device: DeviceSpec,
}

/// Joins the run and evaluates its trials until it is finished.
///
/// Errors: no run or several unfinished ones without `run`; a worker whose
/// kiln runtime, data or space differ from the run's (naming both sides); an
/// unknown target; the journal's errors.
pub fn worker(
    req: WorkerRequest,
    progress: &dyn Progress,
    note: &mut dyn FnMut(&str),
) -> Result<WorkSummary, PipelineError> {
    let run = match req.run.clone() {
        Some(run) => run,
        None => only_active_run(&req.journal)?,
    };
    let location = Location::parse(&req.journal, &run)?;
    let journal = Journal::join(&location, &lease_options())?;
    let meta = journal.meta()?;
    let content = req.data.content_id();
    let space_text = check_join(&journal, &meta, &req, &content, &location)?;
    if field(&meta, "data_content") != content {
        // said, not refused: a JPEG decoder's SIMD paths on another CPU may round a
        // pixel otherwise, so a worker on other hardware may load the same files as
        // other bytes; other files under the same name land here too
        note(&format!(
            "warning: this worker's data `{}` loads as content id {content}, the run's as {}: \
             other files under the same name, or the same images decoded otherwise on this \
             CPU; its trials train and validate on what it loaded",
            req.data_identity,
            field(&meta, "data_content"),
        ));
    }
    let space = Space::from_toml(&space_text, &format!("{} (run {run})", SPACE_FILE))?;
    let mut target = kiln_target::load(&req.targets_dir, field(&meta, "target"))
        .map_err(|e| PipelineError::Invalid(format!("run {run}: {e}")))?;
    if let Some(ms) = meta.get("latency_limit_ms").and_then(|v| v.parse().ok()) {
        target.constraints.set_latency_limit_ms(ms);
    }
    let number = |k: &str| -> Result<u64, PipelineError> {
        let value = field(&meta, k);
        value.parse().map_err(|_| {
            PipelineError::Invalid(format!("run {run}: `{k}` is `{value}`, not a number"))
        })
    };
    let train = TrainConfig {
        epochs: number("epochs")? as usize,
        batch_size: number("batch_size")? as usize,
        seed: number("seed")?,
        threads: 1,
        ..TrainConfig::default()
    };
    let report_target = target.clone();
    let mut evaluator =
        crate::evaluate::PipelineEvaluator::new(space.clone(), target, Arc::new(req.data), train);
    // An int8 run's trials are quantized by every worker alike.
    if let Some(p) = meta.get("precision") {
        evaluator.precision = crate::precision::search_wide_of_identity(p)
            .map_err(|e| PipelineError::Invalid(format!("run {run}: {e}")))?;
    }
    let device = worker_device(&req.device, &report_target, &meta)?;
    let held = device.and_then(|d| crate::search::attach_device(&mut evaluator, d, note));
    let work_dir = req.work_dir.join(&run);
    note(&format!(
        "joined {} as {} with {} thread(s); trial folders in {}",
        location.display(),
        journal.holder().describe(),
        req.threads.max(1),
        work_dir.display()
    ));
    let config = WorkConfig {
        threads: req.threads,
        interrupt: Some(req.interrupt.clone()),
        ..WorkConfig::default()
    };
    // A run whose search stored how it asks can be taken over if that process dies.
    let plan: Option<AskPlan> = journal
        .file(ASK_FILE)?
        .and_then(|b| serde_json::from_slice(&b).ok());
    let genome_space = Arc::new(GenomeSpace::new(space));
    let interrupt = req.interrupt.clone();
    let factory = |plan: &AskPlan| plan.resume(genome_space.clone(), &meta, interrupt.clone());
    let strategy = plan.as_ref().map(|p| move || factory(p));
    let takeover = strategy.as_ref().map(|f| Takeover {
        location: &location,
        meta: &meta,
        options: lease_options(),
        strategy: f,
    });
    let outcome = work_with_takeover(
        genome_space.as_ref(),
        &evaluator,
        &journal,
        &work_dir,
        &config,
        progress,
        takeover,
    );
    if let Some((mut d, before)) = held {
        d.restore_power_mode(before).iter().for_each(|n| note(n));
    }
    let outcome = outcome?;
    if let Some(asked) = &outcome.asked {
        let files = kiln_search::report::write_report(
            &work_dir,
            &journal,
            Some(&report_target),
            &meta.objectives(),
        )?;
        note(&format!(
            "this worker asked after the search process died ({}); the report is in {} ({} \
             models on the front)",
            asked.stopped,
            files.report_html.display(),
            files.front.len()
        ));
    }
    Ok(outcome.work)
}

/// The run's space file, once this worker may join: its runtime, data (by name, or by
/// `content`, its content id, when the name differs), space and device must fit the run's.
///
/// Errors: [`PipelineError::Invalid`] naming every difference, both sides.
fn check_join(
    journal: &Journal,
    meta: &RunMeta,
    req: &WorkerRequest,
    content: &str,
    location: &Location,
) -> Result<String, PipelineError> {
    let mut differences = Vec::new();
    let runtime = runtime_fingerprint()?;
    if field(meta, "runtime") != runtime {
        differences.push(format!(
            "kiln runtime: the run's is {}, this worker's is {runtime} (build the same kiln \
             commit on both machines)",
            field(meta, "runtime")
        ));
    }
    // the same files in another folder may serve; other files in another folder not
    if field(meta, "data") != req.data_identity && field(meta, "data_content") != content {
        differences.push(format!(
            "data: the run's is `{}` (content id {}), this worker's is `{}` (content id \
             {content})",
            field(meta, "data"),
            field(meta, "data_content"),
            req.data_identity
        ));
    }
    if meta.get("evaluator").is_some() {
        differences.push("the run judges by a supernet, which workers cannot".into());
    }
    match (meta.get("device").is_some(), req.device.is_given()) {
        (true, false) => differences.push(format!(
            "the run measures every trial on a `{}` device: join with this worker's own, \
             --device USER@ADDR (ssh boards) or --serial S (adb phones)",
            field(meta, "target")
        )),
        (false, true) => differences
            .push("the run does not measure on devices: join without --device/--serial".into()),
        _ => {}
    }
    let space_text = journal
        .file(SPACE_FILE)?
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    if content_id(space_text.as_bytes()) != field(meta, "space_file") {
        differences.push("space: the stored space file does not match the run's".into());
    }
    if !differences.is_empty() {
        return Err(PipelineError::Invalid(format!(
            "this worker cannot join {}: {}",
            location.display(),
            differences.join("; ")
        )));
    }
    Ok(space_text)
}

/// The run's `key` field as its journal holds it, empty when the run has none.
fn field<'a>(meta: &'a RunMeta, key: &str) -> &'a str {
    meta.get(key).unwrap_or("")
}

/// This worker's device for a run that measures on devices, reachable, benchmarking as
/// the run's search does (`device_bench`: warm-up and runs) in the run's power mode.
///
/// Errors: flags that do not fit the target, a device that does not answer, a power
/// mode other than the run's.
fn worker_device(
    spec: &DeviceSpec,
    target: &kiln_target::Target,
    meta: &RunMeta,
) -> Result<Option<SearchDeviceChoice>, PipelineError> {
    if !spec.given()? {
        return Ok(None);
    }
    // "warmup 5, runs 30[, runner ...]", as the search wrote it
    let bench = meta.get("device_bench").unwrap_or("");
    let count = |name: &str| {
        bench
            .split(", ")
            .find_map(|part| part.strip_prefix(name)?.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                PipelineError::Invalid(format!("the run's device_bench `{bench}` has no {name}"))
            })
    };
    let mut choice = SearchDeviceChoice::new(
        target,
        &spec.flags("--device"),
        count("warmup ")?,
        count("runs ")?,
    )?;
    let run_mode = meta.get("device_power_mode").unwrap_or("");
    if choice.power_identity != run_mode {
        return Err(PipelineError::Invalid(format!(
            "this worker's device would run in power mode `{}`, the run's in `{run_mode}`",
            choice.power_identity
        )));
    }
    choice.device.check_reachable().map_err(|e| {
        PipelineError::Invalid(format!(
            "--device: the device must answer before joining: {e}"
        ))
    })?;
    Ok(Some(choice))
}

fn only_active_run(url: &str) -> Result<String, PipelineError> {
    let runs = shared_runs(url)?;
    let active: Vec<&String> = runs.iter().filter(|r| !r.1).map(|r| &r.0).collect();
    match active.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(PipelineError::Invalid(format!(
            "{}: no unfinished run to join; start one with `cargo xtask search --journal URL -o \
             RUN_DIR` (the run is named after RUN_DIR)",
            kiln_search::journal::redact(url)
        ))),
        many => Err(PipelineError::Invalid(format!(
            "{}: several unfinished runs ({}); choose one with --run NAME",
            kiln_search::journal::redact(url),
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
