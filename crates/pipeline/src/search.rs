//! A whole search composed: the run's identity, the journal (new or
//! resumed), the strategy, the real evaluator, the device's power mode held
//! for the search, the driver, and the report.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kiln_data::Dataset;
use kiln_search::report::{ReportFiles, write_report};
use kiln_search::strategy::EvolutionConfig;
use kiln_search::{
    Fitness, GenomeSpace, Journal, Objective, Progress, RunMeta, SearchConfig, SearchError,
    SearchSummary, StrategyKind,
};
use kiln_space::Space;
use kiln_target::Target;
use kiln_train::TrainConfig;

use crate::PipelineError;
use crate::build::content_id;
use crate::device::SearchDeviceChoice;
use crate::evaluate::PipelineEvaluator;
use crate::finetune::{FineTune, FineTuned};
use crate::precision::Precision;
use crate::search_device::SearchDevice;
use crate::supernets::Supernets;
use crate::warm_start;

/// What the tournament of aging evolution compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reward {
    /// Validation accuracy.
    Accuracy,
    /// MnasNet's ACC x (LAT/T)^-0.07, T the profile's latency limit.
    Mnas,
}

/// Everything a search needs.
#[derive(Debug)]
pub struct SearchRequest {
    /// The device profile.
    pub target: Target,
    /// The search space file.
    pub space_path: PathBuf,
    /// The data every candidate trains on.
    pub data: Dataset,
    /// The data's identity for the journal (source, validation share, split
    /// seed, train limit): resuming with other data is refused.
    pub data_identity: String,
    /// The strategy (`reinforce` is rewarded with MnasNet's reward whenever the
    /// profile has a latency limit, whatever `reward` says).
    pub strategy: StrategyKind,
    /// Population, tournament and crossover of aging evolution.
    pub evolution: EvolutionConfig,
    /// Epochs, batch size and seed of each candidate's training.
    pub train: TrainConfig,
    /// Candidates evaluated at once.
    pub workers: usize,
    /// Stop after this many evaluated trials.
    pub trials: Option<usize>,
    /// Stop asking after this long. With neither it nor `trials`, [`budget_or_default`]'s
    /// default, or [`WARM_JUDGING`] when the warm start put candidates in.
    pub time_budget: Option<Duration>,
    /// Objectives of the Pareto front.
    pub objectives: Vec<Objective>,
    /// What the tournament compares.
    pub reward: Reward,
    /// Replaces the profile's latency limits with this many ms (p50, p95; FPS dropped)
    /// (see `kiln_target::Constraints::set_latency_limit_ms`); recorded in the run's
    /// identity as `latency_limit_ms`.
    pub latency_limit_ms: Option<f64>,
    /// Continue the journal in `out`.
    pub resume: bool,
    /// The run folder.
    pub out: PathBuf,
    /// Measure every candidate on this device too.
    pub device: Option<SearchDeviceChoice>,
    /// The latency lookup table: `Given(file)` must match the run (else an error naming
    /// the mismatch); `Default` uses `tables/sim-<target>-<space>-<input>.json` under
    /// `root` when it matches and says why not otherwise; `Off` uses none.
    pub latency_table: TableChoice,
    /// Inherit candidates' weights and accuracy from the supernet in this folder
    /// (`cargo xtask supernet train`, or [`crate::supernet_cache::ensure`]) instead of
    /// training each; it must have been trained for this space and data. With a latency
    /// table, candidates are then judged without being built (inherited accuracy,
    /// predicted latency) and only the front is built and measured, at the end; without
    /// one, every candidate is built and measured.
    pub supernet: Option<PathBuf>,
    /// Whether the search's supernet is a few-shot split (`--few-shot`): a split asked for
    /// by name is known before the cache's folder holds it, so the preflight refuses what
    /// cannot use a split (`--evaluator train`, `--strategy dnas`) before any training;
    /// [`crate::supernet_cache::settle_few_shot`] settles `auto` for a supernet trained
    /// for the search. A split's folder given as `supernet` is recognised by its
    /// `split.json`.
    pub few_shot: crate::supernet_cache::FewShot,
    /// With a supernet: how the front's models are fine-tuned from their inherited
    /// weights after it was measured.
    pub fine_tune: FineTune,
    /// A new judge-only search first puts in the front of what earlier searches judged on
    /// the supernet ([`crate::warm_start`]); `false` starts from nothing (to compare
    /// strategies, whose curves must be their own).
    pub warm_start: bool,
    /// Set by a Ctrl-C handler: no new trials, running ones finish.
    pub interrupt: Arc<AtomicBool>,
    /// [`Precision::Int8`]: every candidate built (and the front) is quantized first and
    /// its accuracy measured through the int8 build; recorded in the run's identity. A space
    /// that lists `precision` decides it per genome instead (then this must stay f32).
    pub precision: Precision,
    /// A shared journal (`postgres://...`, see [`crate::worker`]): the run is named after
    /// `out`'s folder and workers on other machines evaluate its trials. `None`: the run
    /// folder's journal.sqlite.
    pub journal: Option<String>,
}

/// Which latency lookup table a search uses (see [`SearchRequest::latency_table`]).
#[derive(Debug, Clone, PartialEq)]
pub enum TableChoice {
    /// This file; a table for another space, input, target or runtime is an error.
    Given(PathBuf),
    /// The default `sim` table of the checkout at this root, if there is a matching one.
    Default(PathBuf),
    /// No table: latency is judged before training by the MAC bound only.
    Off,
}

/// What a finished (or interrupted) search left.
#[derive(Debug)]
pub struct SearchOutcome {
    /// The driver's counts and why it stopped.
    pub summary: SearchSummary,
    /// The report files and the front.
    pub files: ReportFiles,
    /// Whether Ctrl-C stopped it.
    pub interrupted: bool,
    /// Whether candidates inherited their accuracy from a supernet.
    pub weight_sharing: bool,
    /// Whether candidates were judged without being built (a supernet and a table).
    pub judge_only: bool,
    /// Front candidates built and measured after a judge-only search (0 otherwise).
    pub confirmed: usize,
    /// Front models fine-tuned from their inherited weights, of those how many reused an
    /// earlier search's fine-tuning of the same sub-network (kept in the supernet's
    /// folder), and how many were left inherited.
    pub fine_tuned: FineTuned,
    /// Candidates whose inherited accuracy earlier searches on its supernet measured
    /// (put in first by the warm start, or proposed again), read back from its
    /// `judged.jsonl`; front members among them are still built and measured.
    pub judgments_reused: usize,
}

/// Checks the request, loads the supernet, opens the journal and runs the search to
/// its end, then writes the report. `note` receives messages for the user (power
/// mode, where candidates are measured). Nothing is written before the supernet
/// loaded, so a refused one leaves no run folder behind.
///
/// Errors: a space that does not fit the data, a device that does not
/// answer, `--reward mnas` without a latency limit, a supernet trained for another
/// space, input or data, a journal that holds a
/// different search, and a search stopped by its device (the report of what
/// finished is written first; `--resume` continues).
pub fn search(
    mut req: SearchRequest,
    progress: &dyn Progress,
    note: &mut dyn FnMut(&str),
) -> Result<SearchOutcome, PipelineError> {
    let with_supernet = req.supernet.is_some();
    let crate::preflight::Checked {
        space_text,
        space,
        device,
        fitness,
        table,
        judge_only,
    } = crate::preflight::check(&mut req, with_supernet, note)?;
    let table = table.map(Arc::new);
    let meta = run_identity(&req, &space, &space_text, &fitness, judge_only);
    // Ctrl-C during the checks above: stop before anything is written.
    if req.interrupt.load(Ordering::SeqCst) {
        return Err(PipelineError::Invalid(
            "interrupted before the search started; nothing was written".into(),
        ));
    }
    let genome_space = Arc::new(GenomeSpace::new(space.clone()));
    let mut evaluator = PipelineEvaluator::new(
        space.clone(),
        req.target.clone(),
        Arc::new(req.data),
        req.train.clone(),
    );
    evaluator.latency_table = table;
    evaluator.precision = req.precision;
    if let Some(n) = precision_note(req.precision, &space, judge_only) {
        note(&n);
    }
    let meta = match &req.supernet {
        Some(dir) => {
            let at = (&space, req.data_identity.as_str(), judge_only);
            attach_supernet(&mut evaluator, dir, at, note)?;
            with_supernet_weights(meta, &evaluator, req.resume, &req.out)?
        }
        None => meta,
    };
    // the journal only once the supernet loaded: a supernet refused (another space, data,
    // a part of a split) leaves no run behind that would block the corrected command
    let journal = crate::worker::search_journal(
        req.journal.as_deref(),
        &req.out,
        req.resume,
        meta.clone(),
        &space_text,
    )?;
    // after the journal, the settings and the supernet's identity are checked, so a run
    // refused for any of those costs no search
    let learned = match req.strategy {
        StrategyKind::Dnas => {
            let run = crate::dnas::DnasRun {
                supernet: req.supernet.as_deref(),
                out: &req.out,
                resume: req.resume,
                target: &req.target,
                seed: req.train.seed,
                precision: req.precision,
                interrupt: &req.interrupt,
                data: &evaluator.data,
            };
            let table = evaluator.latency_table.as_deref();
            Some(crate::dnas::distribution(&run, table, note)?)
        }
        _ => None,
    };
    let mut strategy = kiln_search::strategy::build(
        req.strategy,
        genome_space.clone(),
        req.evolution,
        &req.objectives,
        learned,
        req.train.seed,
    );
    let held_mode = device.and_then(|d| attach_device(&mut evaluator, d, note));
    let target = &req.target.name;
    let warmed = match req.warm_start {
        true => {
            warm_start::warm_start(&journal, &evaluator, req.trials, target, req.strategy, note)?
        }
        false => 0,
    };
    let ask = (req.time_budget, req.trials, req.supernet.is_some());
    let time_budget = warm_start::judging_budget(ask, warmed, note);
    note(&format!(
        "searching {} for `{}` ({}); run folder {}",
        meta.get("space").unwrap_or("?"),
        req.target.name,
        req.target.constraint_summary(),
        req.out.display()
    ));
    let config = SearchConfig {
        trials: req.trials,
        time_budget,
        workers: req.workers,
        fitness,
        objectives: req.objectives.clone(),
        interrupt: Some(req.interrupt.clone()),
        ..SearchConfig::default()
    };
    let summary = crate::worker::drive(
        req.journal.is_some(),
        &genome_space,
        strategy.as_mut(),
        &evaluator,
        &journal,
        &req.out,
        &config,
        crate::worker::AskPlan::new(req.strategy, req.evolution, &config),
        progress,
    );
    if let Some((mut d, before)) = held_mode {
        d.restore_power_mode(before).iter().for_each(|n| note(n));
    }
    let summary = match summary {
        Ok(s) => s,
        Err(e @ SearchError::Stopped { .. }) => {
            // What finished so far is reported; the rest waits for --resume.
            let _ = write_report(&req.out, &journal, Some(&req.target), &req.objectives);
            return Err(e.into());
        }
        Err(e) => return Err(e.into()),
    };
    let phase = FrontPhase {
        out: &req.out,
        objectives: &req.objectives,
        workers: req.workers.max(1),
        fine_tune: req.fine_tune,
        interrupt: &req.interrupt,
    };
    let (confirmed, fine_tuned) = finish_front(&phase, &journal, &mut evaluator, note)?;
    warm_start::say_not_kept(&journal, note);
    let files = write_report(&req.out, &journal, Some(&req.target), &req.objectives)?;
    Ok(SearchOutcome {
        summary,
        files,
        interrupted: req.interrupt.load(Ordering::SeqCst),
        weight_sharing: req.supernet.is_some(),
        judge_only,
        confirmed,
        fine_tuned,
        judgments_reused: warm_start::reused(&journal)?,
    })
}

/// Judges candidates by inheritance from the supernet in `dir` (checked against the
/// run's space and data), and says how.
///
/// Errors: the supernet cannot be loaded or was trained for something else.
fn attach_supernet(
    evaluator: &mut PipelineEvaluator,
    dir: &Path,
    (space, data_identity, judge_only): (&Space, &str, bool),
    note: &mut dyn FnMut(&str),
) -> Result<(), PipelineError> {
    let judge = Supernets::load(dir, Some(space), &evaluator.data, data_identity)?;
    for part in judge.parts().filter(|p| p.epochs < p.planned_epochs) {
        let (n, of) = (part.epochs, part.planned_epochs);
        let out = match crate::supernets::split_holding(&part.dir) {
            Some((_, split, m)) => format!("--few-shot {} -o {}", m.by, split.display()),
            None => format!("-o {}", part.dir.display()),
        };
        note(&format!(
            "warning: the supernet in {} trained {n} of its {of} epochs (its training was \
             stopped): `cargo xtask supernet train --resume --epochs {of} {out}`, with the \
             space, data and settings it began with, finishes it",
            part.dir.display()
        ));
    }
    note(&format!(
        "candidates inherit weights and accuracy from {}; {}",
        judge.describe(),
        if judge_only {
            "they are judged without being built (latency predicted by the table); the \
             front is built and measured at the end"
        } else {
            "each is still built and measured (no latency table to predict from)"
        }
    ));
    evaluator.supernet = Some(Arc::new(judge));
    evaluator.judge_only = judge_only;
    Ok(())
}

/// The run identity field of the supernet weights a search judges with.
pub(crate) const SUPERNET_WEIGHTS: &str = "supernet_weights";

/// `meta` with the content ids of the weights that judge the run ([`SUPERNET_WEIGHTS`]:
/// one supernet's, or a split's parts' in order, [`crate::supernet_cache::weights_id`]):
/// a folder trained again (more epochs, another seed) holds other weights under the same
/// name, and a run resumed on them would mix two supernets' judgments. A run begun before
/// the field (its journal lacks it) resumes as its folder names it.
///
/// Errors: a weights file that cannot be read; the journal's, when resuming.
fn with_supernet_weights(
    meta: RunMeta,
    evaluator: &PipelineEvaluator,
    resume: bool,
    run_dir: &Path,
) -> Result<RunMeta, PipelineError> {
    let Some(judges) = &evaluator.supernet else {
        return Ok(meta);
    };
    let ids = judges.weights_id();
    // (a shared journal is refused with a supernet by the preflight)
    if resume && Journal::path_in(run_dir).is_file() {
        let mut stored = Journal::open(run_dir)?.meta()?;
        let began = stored.fields.remove(SUPERNET_WEIGHTS);
        // other differences first: the journal names them all (the evaluator among them)
        let alike = kiln_search::journal::differences(&stored, &meta).is_empty();
        match began {
            None => return Ok(meta),
            Some(began) if alike && began != ids => {
                return Err(PipelineError::Invalid(format!(
                    "--resume: {} holds other weights than the run in {} began with \
                     (weights {began}, now {ids}): it was trained further or again since. \
                     Resume with the supernet the run began with, or search into another \
                     folder (-o)",
                    judges.describe(),
                    run_dir.display()
                )));
            }
            Some(_) => {}
        }
    }
    Ok(meta.with(SUPERNET_WEIGHTS, ids))
}

/// Measures every candidate on the search's device, its power mode held for the run;
/// returns the device and the mode to restore afterwards, if one was changed.
pub(crate) fn attach_device(
    evaluator: &mut PipelineEvaluator,
    mut d: SearchDeviceChoice,
    note: &mut dyn FnMut(&str),
) -> Option<(SearchDeviceChoice, u32)> {
    let (before, power_mode, notes) = d.hold_power_mode();
    notes.iter().for_each(|n| note(n));
    let mut search_device = SearchDevice::new(d.device.clone(), d.bench.clone());
    search_device.power_mode = power_mode;
    note(&format!(
        "measuring every candidate on {} (folders {}, ...; latency labelled `device`)",
        search_device.name(),
        search_device.worker_dir(0)
    ));
    evaluator.device = Some(search_device);
    before.map(|before| (d, before))
}

/// What the last phases of a search need of its request.
struct FrontPhase<'a> {
    out: &'a Path,
    objectives: &'a [Objective],
    workers: usize,
    fine_tune: FineTune,
    interrupt: &'a AtomicBool,
}

/// The weight-sharing search's last phases: the judged-only front built and measured
/// until every member is, then its most accurate models fine-tuned, each by as many
/// workers as judged. Returns (built and measured, fine-tuned).
///
/// Errors: the journal; an evaluation that stops the search.
fn finish_front(
    p: &FrontPhase,
    journal: &Journal,
    evaluator: &mut PipelineEvaluator,
    note: &mut dyn FnMut(&str),
) -> Result<(usize, FineTuned), PipelineError> {
    let (mut confirmed, mut fine_tuned) = (0, FineTuned::default());
    if evaluator.judge_only && !p.interrupt.load(Ordering::SeqCst) {
        evaluator.judge_only = false;
        confirmed = crate::confirm::confirm_front(
            p.out,
            journal,
            evaluator,
            p.objectives,
            p.workers,
            note,
        )?;
    }
    let ft = p.fine_tune;
    if evaluator.supernet.is_some() && ft.epochs > 0 && !p.interrupt.load(Ordering::SeqCst) {
        evaluator.fine_tune_epochs = ft.epochs;
        fine_tuned = crate::finetune::fine_tune_front(
            p.out,
            journal,
            evaluator,
            p.objectives,
            ft,
            p.workers,
            note,
        )?;
    }
    Ok((confirmed, fine_tuned))
}

/// How long a search asks for candidates: the `given` budget; with neither it nor a
/// trial count, 3 minutes of judging with weight sharing (263-762 candidates in the
/// README's searches), else 30 minutes of training each candidate; with a trial count
/// alone, no limit.
pub fn budget_or_default(
    given: Option<Duration>,
    trials: Option<usize>,
    weight_sharing: bool,
) -> Option<Duration> {
    let minutes = if weight_sharing { 3 } else { 30 };
    given.or(trials.is_none().then(|| Duration::from_secs(minutes * 60)))
}

/// How long a search that the warm start put candidates in judges when the user gave neither
/// a time budget nor a trial count: half of a first search's 3 minutes
/// ([`budget_or_default`]).
///
/// Measured (2026-12-02, host, `search --target pixel` after `--target jetson` on the same
/// supernet, 3 minutes of judging each): the hypervolume of the pixel search's inherited
/// front (accuracy, latency over the limit) and the mean of its five most accurate
/// candidates, the ones fine-tuned, stopped moving after 250 of its 545 candidates (about
/// 80 s): 0.88569 then, 0.88589 at the end; top five 91.35% then, 91.40% at the end.
pub const WARM_JUDGING: Duration = Duration::from_secs(90);

/// A time budget such as `30m`, `90s`, `1h30m`, `1.5h`; a bare number is
/// minutes.
///
/// Errors: a unit other than h, m or s, a number without a unit after
/// others, a zero or out-of-range duration (the message quotes the input).
pub fn parse_budget(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let seconds = match s.parse::<f64>() {
        Ok(minutes) => minutes * 60.0,
        Err(_) => {
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
            total
        }
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("`{s}` must be a duration longer than zero")),
    }
}

/// The space file's fingerprint in the run identity: its content id. A run
/// journalled before this fingerprint (FNV-1a of the text) resumes with the
/// fingerprint it has, when the file is unchanged.
fn space_fingerprint(req: &SearchRequest, space_text: &str) -> String {
    let legacy = {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in space_text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{h:016x}")
    };
    let journalled = req
        .resume
        .then(|| Journal::open(&req.out).and_then(|j| j.meta()).ok())
        .flatten();
    match journalled {
        Some(meta) if meta.get("space_file") == Some(legacy.as_str()) => legacy,
        _ => content_id(space_text.as_bytes()),
    }
}

/// The precision in the run's identity: always (the space's list when it chooses it per
/// genome), except for an f32 search resuming a journal written before the field (f32).
fn precision_identity(req: &SearchRequest, space: &Space) -> Option<String> {
    if let Some(formats) = &space.precision {
        return Some(crate::precision::per_genome_identity(formats));
    }
    let legacy = req.precision == Precision::F32
        && req.resume
        && Journal::open(&req.out)
            .and_then(|j| j.meta())
            .is_ok_and(|m| m.get("precision").is_none());
    (!legacy).then(|| req.precision.name().to_owned())
}

/// What an int8 search, or one over a space that chooses the precision, does, for the
/// user; `None` for an f32 search.
fn precision_note(precision: Precision, space: &Space, judge_only: bool) -> Option<String> {
    if let Some(formats) = &space.precision {
        return Some(crate::precision::per_genome_note(formats));
    }
    if precision == Precision::F32 {
        return None;
    }
    let when = if judge_only {
        "candidates are judged by their f32 inherited accuracy and their int8 latency \
         predicted from the table's int8 entries; each front model is"
    } else {
        "every candidate is"
    };
    Some(format!(
        "precision int8: {when} quantized (kiln-quant, {} training images for calibration) \
         before it is built and measured, and its accuracy measured through the int8 build on \
         the validation split; f32 figures stay beside as f32_*",
        crate::precision::CALIBRATION_IMAGES
    ))
}

/// What the run identity's `evaluator` says of a few-shot split (`... (few-shot split by
/// `head`) ...`), absent for one supernet; the preflight looks for it too.
pub(crate) const SPLIT_IN_EVALUATOR: &str = "few-shot split by";

/// The run's identity, stored in the journal: resuming with any field
/// different is refused, naming the field.
pub(crate) fn run_identity(
    req: &SearchRequest,
    space: &Space,
    space_text: &str,
    fitness: &Fitness,
    judge_only: bool,
) -> RunMeta {
    let objectives: Vec<&str> = req.objectives.iter().map(|o| o.name()).collect();
    let mut meta = RunMeta::default()
        .with("target", &req.target.name)
        .with("space", &space.name)
        .with("space_file", space_fingerprint(req, space_text))
        .with("data", &req.data_identity)
        // the same name over changed files is other data (journals before this field
        // are not resumed: they cannot say what they judged on)
        .with("data_content", req.data.content_id())
        .with("seed", req.train.seed)
        .with("strategy", req.strategy.name())
        .with("epochs", req.train.epochs)
        .with("batch_size", req.train.batch_size)
        .with("objectives", objectives.join(","))
        .with("reward", format!("{fitness:?}"));
    if let Some(dir) = &req.supernet {
        let mode = if judge_only { ", judge only" } else { "" };
        // one supernet's runs keep the identity they had before splits existed
        let split = crate::preflight::few_shot(req).map_or(String::new(), |by| {
            format!(" ({SPLIT_IN_EVALUATOR} `{by}`)")
        });
        let ft = req.fine_tune;
        meta = meta.with(
            "evaluator",
            format!(
                "supernet {}{split}{mode}, fine-tune {} epochs x {} models",
                dir.display(),
                ft.epochs,
                ft.models
            ),
        );
    }
    if let Some(ms) = req.latency_limit_ms {
        meta = meta.with("latency_limit_ms", ms);
    }
    if let Some(p) = precision_identity(req, space) {
        meta = meta.with("precision", p);
    }
    if judge_only && req.precision == Precision::Int8 && space.precision.is_none() {
        // runs before this field judged int8 candidates on f32 entries: not resumed into
        meta = meta.with("int8_latency", "the table's int8 entries and line");
    }
    if req.strategy.is_evolution() {
        let e = &req.evolution;
        meta = meta.with(
            "evolution",
            format!(
                "population {}, tournament {}, crossover {}",
                e.population, e.tournament, e.crossover
            ),
        );
    }
    if let Some(d) = &req.device {
        let runner = d
            .bench
            .runner
            .as_deref()
            .map(|r| format!(", runner {r}"))
            .unwrap_or_default();
        meta = meta
            .with("device", d.device.name())
            .with(
                "device_bench",
                format!("warmup {}, runs {}{runner}", d.bench.warmup, d.bench.runs),
            )
            .with("device_power_mode", &d.power_identity);
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_read_as_a_user_writes_them() {
        assert_eq!(parse_budget("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_budget("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_budget("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_budget("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_budget("2"), Ok(Duration::from_secs(120)));
        assert!(parse_budget("5x").unwrap_err().contains("unknown unit `x`"));
        assert!(parse_budget("30M").is_err());
        assert!(parse_budget("0").is_err());
        assert!(parse_budget("1e300").is_err());
        assert!(parse_budget("-5").is_err());
    }
}
