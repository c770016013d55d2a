//! The checks a search runs before it writes or trains anything: the space against the
//! strategy and the data, the latency limit, the reward, the latency table, the precision,
//! the training settings, the device, a shared journal with a supernet.
//! [`search`](crate::search::search) runs them first; [`preflight`] runs them (and refuses
//! `--resume` without a journal) for a caller that trains a supernet before the search
//! (minutes on a fresh cache), so bad settings are refused before that training.
//! A caller of both runs the checks twice: a table load, a device echo, once a search.

use std::path::{Path, PathBuf};

use kiln_latency::LatencyTable;
use kiln_metric::Source;
use kiln_search::report::latency_limit_ms;
use kiln_search::{Fitness, Journal, SearchError, StrategyKind};
use kiln_space::{Precision, Space};

use crate::PipelineError;
use crate::device::SearchDeviceChoice;
use crate::lut;
use crate::search::{Reward, SearchRequest, TableChoice};
use crate::supernet_cache::FewShot;

/// More worker threads than this is a typo, not a machine.
const MAX_WORKERS: usize = 256;

/// What the checks found, for the search that follows them.
pub(crate) struct Checked {
    /// The space file's text (its fingerprint goes into the run identity).
    pub space_text: String,
    /// The space it parses to.
    pub space: Space,
    /// The device, once it answered.
    pub device: Option<SearchDeviceChoice>,
    /// What the strategy's comparisons use.
    pub fitness: Fitness,
    /// The latency table that judges candidates before they are built, if any.
    pub table: Option<LatencyTable>,
    /// Candidates are judged without being built (a supernet and a table).
    pub judge_only: bool,
}

/// The checks of [`crate::search::search`] that need neither the supernet's weights nor
/// the journal, for a caller that will train the supernet in `req.supernet` (its folder
/// is known before training: [`crate::supernet_cache::dir_for`]) after them; also
/// refuses `--resume` for a run folder without a journal, or whose journal's run identity
/// (the supernet's folder included) differs from this run's. Applies `--latency-limit`
/// to `req.target` as the search does (running both is fine). The journal's lease is
/// judged when the search opens it.
///
/// Errors: as [`crate::search::search`] before it writes anything.
pub fn preflight(req: &mut SearchRequest) -> Result<(), PipelineError> {
    let c = check(req, req.supernet.is_some(), &mut |_| {})?;
    if req.journal.is_some() || !req.resume {
        return Ok(());
    }
    let path = Journal::path_in(&req.out);
    if !path.is_file() {
        // the error the journal gives when it is opened for --resume
        return Err(SearchError::NothingToResume { path }.into());
    }
    let wanted =
        crate::search::run_identity(req, &c.space, &c.space_text, &c.fitness, c.judge_only);
    let mut stored = Journal::open(&req.out)?.meta()?;
    if stored.fields.is_empty() {
        // an empty file: as the journal says when it is resumed
        return Err(SearchError::NothingToResume { path }.into());
    }
    // the weights are known once the supernet is trained; the search compares them
    stored.fields.remove(crate::search::SUPERNET_WEIGHTS);
    let mut differences = kiln_search::journal::differences(&stored, &wanted);
    if differences.is_empty() {
        return Ok(());
    }
    let split = |m: &kiln_search::RunMeta| {
        m.fields
            .get("evaluator")
            .is_some_and(|e| e.contains(crate::search::SPLIT_IN_EVALUATOR))
    };
    if !split(&stored) && split(&wanted) {
        differences.push(
            "the search's supernet is a few-shot split by default since 2026-12-03: \
             `--few-shot none` resumes a run judged by one supernet (one given with \
             `--supernet DIR` resumes with that option again)"
                .into(),
        );
    }
    if let Some(hint) = other_settings_of_one_cache(&stored, &wanted) {
        differences.push(hint);
    }
    Err(SearchError::ResumeMismatch {
        path,
        differences: differences.join("; "),
    }
    .into())
}

/// When the two runs' evaluators name supernets of one cache folder kept apart only by the
/// settings' id (`<space>-<id>`, `<space>-split-head-<id>`), a hint at the setting most
/// likely to differ: the search's default epochs.
fn other_settings_of_one_cache(
    stored: &kiln_search::RunMeta,
    wanted: &kiln_search::RunMeta,
) -> Option<String> {
    // `supernet DIR( (few-shot split by ...))?(, judge only)?, fine-tune ...`, as
    // `crate::search::run_identity` writes it
    let folder = |m: &kiln_search::RunMeta| {
        let rest = m.fields.get("evaluator")?.strip_prefix("supernet ")?;
        let end = [" (", ", judge only", ", fine-tune"]
            .iter()
            .filter_map(|at| rest.find(at))
            .min()?;
        Some(PathBuf::from(&rest[..end]))
    };
    let (was, now) = (folder(stored)?, folder(wanted)?);
    let kind = |p: &Path| {
        Some((
            p.parent()?.to_owned(),
            p.file_name()?.to_str()?.rsplit_once('-')?.0.to_owned(),
        ))
    };
    (was != now && kind(&was)? == kind(&now)?).then(|| {
        "the cached supernets differ in their training settings: since 2026-12-04 the search \
         trains 4 epochs a part by default (2 before), so `--supernet-epochs 2` resumes a run \
         begun before then with the default"
            .into()
    })
}

/// Every check before the journal, in the order a user would fix them.
pub(crate) fn check(
    req: &mut SearchRequest,
    with_supernet: bool,
    note: &mut dyn FnMut(&str),
) -> Result<Checked, PipelineError> {
    let space_text = std::fs::read_to_string(&req.space_path).map_err(|e| PipelineError::Io {
        path: req.space_path.clone(),
        message: e.to_string(),
    })?;
    let space = Space::from_toml(&space_text, &req.space_path.display().to_string())?;
    if req.journal.is_some() && with_supernet {
        return Err(PipelineError::Invalid(
            "--journal postgres://... (or KILN_JOURNAL): workers train candidates on their \
             own machine; a supernet is not shared with them yet (search with --evaluator \
             train, or with the run folder's journal)"
                .into(),
        ));
    }
    if req.workers > MAX_WORKERS {
        let n = req.workers;
        return Err(PipelineError::Invalid(format!(
            "--workers {n}: at most {MAX_WORKERS} (a thread each)"
        )));
    }
    if req.workers == 0 && req.journal.is_none() {
        return Err(PipelineError::Invalid(
            "--workers must be at least 1".into(),
        ));
    }
    if req.trials == Some(0) {
        return Err(PipelineError::Invalid("--trials must be at least 1".into()));
    }
    req.evolution.validate().map_err(PipelineError::Invalid)?;
    if req.data.validation.is_empty() {
        return Err(PipelineError::Invalid(
            "no validation split (--validation 0, or too few training images to hold one \
             out): a search ranks candidates on it, and without one it would choose them by \
             the test images it then reports: give a share above 0 (default 0.1) or more \
             images"
                .into(),
        ));
    }
    if !req.resume && req.journal.is_none() {
        new_run_folder(&req.out)?;
    }
    given_folder_agrees(req.supernet.as_deref(), req.few_shot)?;
    if let Some(by) = few_shot(req) {
        if req.few_shot == FewShot::By(by) {
            // asked for by name: the space must have two choices to split
            by.parts(&space)?;
        }
        let why = match (with_supernet, req.strategy) {
            (false, _) => Some("is judged by inheritance (not with --evaluator train)"),
            (true, StrategyKind::Dnas) => Some(
                "is searched by another strategy: --strategy dnas learns its distribution on \
                 one supernet",
            ),
            _ => None,
        };
        if let Some(why) = why {
            return Err(PipelineError::Invalid(format!(
                "a few-shot split (by `{by}`) {why}"
            )));
        }
    }
    if req.strategy == StrategyKind::Dnas {
        let what = "the differentiable search (--strategy dnas)";
        crate::resolution::refuse_with_resolutions(&space, &req.space_path, what)?;
        crate::precision::refuse_precision_decision(&space, &req.space_path, what)?;
    }
    override_latency_limit(req)?;
    crate::resolution::check_space_fits(&space, &req.space_path, &req.data, req.train.seed)?;
    let device = reachable_device(req)?;
    let fitness = fitness(req)?;
    let found = latency_table(req, &space, note)?;
    let judge_only = with_supernet && found.is_some();
    check_precision(req, &space, found.as_ref(), judge_only, note)?;
    let table = found.map(|(t, _)| t);
    req.train.validate()?;
    Ok(Checked {
        space_text,
        space,
        device,
        fitness,
        table,
        judge_only,
    })
}

/// The few-shot split of the search's supernet: the one [`SearchRequest::few_shot`] names,
/// none for `none`, else (`auto`, a supernet given with `--supernet`) the one its folder
/// holds (`None` also when its `split.json` cannot be read: loading the supernet says
/// why).
pub(crate) fn few_shot(req: &SearchRequest) -> Option<kiln_space::SplitBy> {
    req.few_shot.named().unwrap_or_else(|| {
        let dir = req.supernet.as_deref()?;
        Some(kiln_supernet::split::read_split(dir).ok()??.by)
    })
}

/// A supernet given with `--supernet` is used as it is: a `--few-shot` that names
/// another split than its folder `dir` holds (`none` for a split's folder, a split for one
/// supernet's) is refused, as asking for a supernet the run would not use; `auto` takes
/// the folder as it is.
///
/// Errors: [`PipelineError::Invalid`] naming the folder and what it holds.
fn given_folder_agrees(dir: Option<&Path>, few_shot: FewShot) -> Result<(), PipelineError> {
    let (Some(dir), Some(asked)) = (dir, few_shot.named()) else {
        return Ok(());
    };
    if crate::supernets::split_holding(dir).is_some() {
        // loading it says it is a part and names the split's folder to give instead
        return Ok(());
    }
    // an unreadable split.json is left to loading the supernet, which says why
    let Ok(held) = kiln_supernet::split::read_split(dir).map(|m| m.map(|m| m.by)) else {
        return Ok(());
    };
    // a cached folder not trained yet becomes what the search settled; a given one that
    // holds no supernet is refused by loading it
    let trained = held.is_some() || dir.join(kiln_supernet::STATE_FILE).is_file();
    if held == asked || !trained {
        return Ok(());
    }
    let holds = held.map_or("one supernet".to_string(), |by| {
        format!("a few-shot split by `{by}`")
    });
    let asked = asked.map_or("none".to_string(), |by| by.to_string());
    Err(PipelineError::Invalid(format!(
        "--few-shot {asked}, but --supernet {} holds {holds}: a given supernet is used as it \
         is; leave out --few-shot (or give `auto`)",
        dir.display()
    )))
}

/// A new search's folder `out` holds no other kind of kiln output: not a supernet's (its
/// files would be mixed with the run's), nor a search's outputs whose journal is gone (its
/// trials would sit beside the new run's, and its report be overwritten). A folder that
/// holds a journal is left to the journal, which refuses it without `--resume`.
///
/// Errors: [`PipelineError::Invalid`] naming the folder and what it holds.
fn new_run_folder(out: &Path) -> Result<(), PipelineError> {
    let holds = |name: &str| out.join(name).exists();
    let why = if holds(kiln_supernet::STATE_FILE) || holds(kiln_supernet::split::SPLIT_FILE) {
        "holds a supernet: give the search a folder of its own".to_string()
    } else if Journal::path_in(out).exists() {
        return Ok(());
    } else if let Some(name) = ["front.json", "trials.csv", "report.html", "trials", "front"]
        .into_iter()
        .find(|name| holds(name))
    {
        format!(
            "holds a search's {name} but no journal, so that run can be neither resumed nor \
             added to: give another folder, or delete its outputs"
        )
    } else {
        return Ok(());
    };
    Err(PipelineError::Invalid(format!(
        "-o {}: {why}",
        out.display()
    )))
}

/// The search's device, once it answers: fail fast, before the journal and minutes of
/// training.
///
/// Errors: [`PipelineError::Invalid`] when it does not answer.
fn reachable_device(req: &SearchRequest) -> Result<Option<SearchDeviceChoice>, PipelineError> {
    let mut device = req.device.clone();
    if let Some(d) = device.as_mut() {
        d.device.check_reachable().map_err(|e| {
            PipelineError::Invalid(format!(
                "--device: the device must answer before the search starts: {e}"
            ))
        })?;
    }
    Ok(device)
}

/// The table of [`SearchRequest::latency_table`], loaded and checked, with a note saying
/// which table judges latency before training.
fn latency_table(
    req: &SearchRequest,
    space: &Space,
    note: &mut dyn FnMut(&str),
) -> Result<Option<(LatencyTable, PathBuf)>, PipelineError> {
    let input = kiln_train::input_spec(&req.data);
    let wanted = || lut::identity(&req.space_path, space, input, &req.target, Source::Sim);
    let found = match &req.latency_table {
        TableChoice::Off => return Ok(None),
        TableChoice::Given(path) => (lut::load_table(path, &wanted()?)?, path.clone()),
        TableChoice::Default(root) => {
            let path =
                lut::default_table_path(root, Source::Sim, &req.target.name, &space.name, input);
            match lut::find_table(&path, &wanted()?) {
                Ok(Some(found)) => found,
                Ok(None) => {
                    note(&format!(
                        "no latency table for {} at {} (`cargo xtask lut build --target {}` \
                         builds one in a few minutes); latency is judged before training by \
                         the MAC bound only",
                        req.target.name,
                        path.display(),
                        req.target.name
                    ));
                    return Ok(None);
                }
                Err(e) => {
                    note(&format!("latency table not used: {e}"));
                    return Ok(None);
                }
            }
        }
    };
    let (table, path) = found;
    // the margin that applies: the search-wide precision's, or each listed one's
    let listed = space.precision.clone().unwrap_or(vec![req.precision]);
    let margins: Vec<String> = (listed.iter())
        .map(|&p| match table.margin_of(p) {
            Some(m) if listed.len() > 1 => format!("{:.2}% {p}", 100.0 * m),
            Some(m) => format!("{:.2}%", 100.0 * m),
            None => format!("unfitted {p}"),
        })
        .collect();
    let margin = margins.join(", ");
    note(&format!(
        "latency table {} ({} layers, error margin {margin}, milliseconds for {}): a \
         candidate whose predicted latency breaks a limit by more than the margin is not \
         trained",
        path.display(),
        table.entries.len(),
        req.target.name
    ));
    Ok(Some((table, path)))
}

/// Applies [`SearchRequest::latency_limit_ms`] to the request's profile.
///
/// Errors: a limit that is not a number of ms above 0.
fn override_latency_limit(req: &mut SearchRequest) -> Result<(), PipelineError> {
    if let Some(ms) = req.latency_limit_ms {
        if !(ms.is_finite() && ms > 0.0) {
            return Err(PipelineError::Invalid(format!(
                "--latency-limit must be a number of ms above 0, not {ms}"
            )));
        }
        req.target.constraints.set_latency_limit_ms(ms);
    }
    Ok(())
}

fn fitness(req: &SearchRequest) -> Result<Fitness, PipelineError> {
    let reinforce =
        req.strategy == StrategyKind::Reinforce && latency_limit_ms(&req.target).is_some();
    Ok(match req.reward {
        Reward::Accuracy if !reinforce => Fitness::Accuracy,
        Reward::Accuracy | Reward::Mnas => Fitness::Mnas {
            target_ms: latency_limit_ms(&req.target).ok_or_else(|| {
                PipelineError::Invalid(format!(
                    "--reward mnas needs a latency limit, and `{}` has none",
                    req.target.name
                ))
            })?,
            w: Fitness::MNAS_W,
        },
    })
}

/// [`crate::precision::check_precision_decision`] for `req`'s precision, space file and
/// table (and its file); a judge-only search's table judges. A search that builds every
/// candidate with an f32-only table is told the MAC bound judges its int8 candidates'
/// latency.
fn check_precision(
    req: &SearchRequest,
    space: &Space,
    found: Option<&(LatencyTable, PathBuf)>,
    judge_only: bool,
    note: &mut dyn FnMut(&str),
) -> Result<(), PipelineError> {
    let table = found.map(|(t, _)| t);
    let lut_build = lut_build_command(req);
    let judging = table.filter(|_| judge_only);
    let path = &req.space_path;
    crate::precision::check_precision_decision(space, path, req.precision, judging, &lut_build)
        .map_err(|e| match found {
            // the table the refusal is about, by file
            Some((_, file)) if judging.is_some() => {
                PipelineError::Invalid(format!("{}: {e}", file.display()))
            }
            _ => e,
        })?;
    let f32_only = table.is_some_and(|t| t.overhead_of(Precision::Int8).is_none());
    if req.precision == Precision::Int8 && !judge_only && f32_only {
        note(&format!(
            "the latency table has no int8 entries: each int8 candidate's latency is judged \
             by the MAC bound until it is built (`{lut_build} --precision int8` measures them)"
        ));
    }
    Ok(())
}

/// The `lut build` command that writes the table this search reads: its target, space
/// file, input shape (when not the bundled data's) and `--table` for `--lut FILE`.
fn lut_build_command(req: &SearchRequest) -> String {
    let mut cmd = format!(
        "cargo xtask lut build --target {} --space {}",
        req.target.name,
        req.space_path.display()
    );
    let input = kiln_train::input_spec(&req.data);
    if input != kiln_space::InputSpec::MNIST {
        let [c, h, w] = [input.channels, input.height, input.width];
        cmd += &format!(" --input {c}x{h}x{w} --classes {}", input.classes);
    }
    if let TableChoice::Given(path) = &req.latency_table {
        cmd += &format!(" --table {}", path.display());
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_space::SplitBy;

    #[test]
    fn a_given_supernet_is_used_as_it_is_and_a_contradicting_few_shot_refused() {
        // a folder without split.json: one supernet
        let one = tempfile::tempdir().unwrap();
        let dir = Some(one.path());
        // not trained yet (the cache's, trained after the preflight as settled)
        assert!(given_folder_agrees(dir, FewShot::By(SplitBy::Head)).is_ok());
        std::fs::write(one.path().join(kiln_supernet::STATE_FILE), "{}").unwrap();
        assert!(given_folder_agrees(dir, FewShot::Auto).is_ok());
        assert_eq!(FewShot::Auto.named(), None);
        assert!(given_folder_agrees(dir, FewShot::Off).is_ok());
        assert!(given_folder_agrees(None, FewShot::By(SplitBy::Head)).is_ok());
        let e = given_folder_agrees(dir, FewShot::By(SplitBy::Head)).unwrap_err();
        let says = format!(
            "--few-shot head, but --supernet {} holds one supernet",
            one.path().display()
        );
        assert!(e.to_string().contains(&says), "{e}");
    }

    #[test]
    fn a_new_search_refuses_a_supernets_folder_or_a_run_without_its_journal() {
        let out = tempfile::tempdir().unwrap();
        let folder = out.path();
        assert!(new_run_folder(folder).is_ok(), "an empty folder");
        std::fs::write(folder.join("notes.txt"), "mine").unwrap();
        assert!(new_run_folder(folder).is_ok(), "a user's own file");
        std::fs::create_dir(folder.join("trials")).unwrap();
        let e = new_run_folder(folder).unwrap_err().to_string();
        assert!(e.contains("holds a search's trials but no journal"), "{e}");
        std::fs::write(Journal::path_in(folder), "").unwrap();
        assert!(new_run_folder(folder).is_ok(), "left to the journal");
        std::fs::write(folder.join(kiln_supernet::STATE_FILE), "{}").unwrap();
        let e = new_run_folder(folder).unwrap_err().to_string();
        assert!(e.contains("holds a supernet"), "{e}");
    }

    #[test]
    fn resuming_against_another_cached_supernet_of_the_space_hints_at_the_epochs() {
        let meta = |dir: &str| {
            let e =
                format!("supernet {dir} (few-shot split by `head`), fine-tune 2 epochs x 5 models");
            kiln_search::RunMeta::default().with("evaluator", e)
        };
        let (was, now) = (
            meta("runs/supernets/mobile-split-head-8fb5"),
            meta("runs/supernets/mobile-split-head-6d65"),
        );
        let hint = other_settings_of_one_cache(&was, &now).unwrap();
        assert!(hint.contains("`--supernet-epochs 2` resumes"), "{hint}");
        // the same folder, another space's, a given folder elsewhere, no supernet: no hint
        assert_eq!(other_settings_of_one_cache(&was, &was), None);
        let other_space = meta("runs/supernets/wide-split-head-6d65");
        assert_eq!(other_settings_of_one_cache(&was, &other_space), None);
        assert_eq!(
            other_settings_of_one_cache(&was, &meta("mine/mobile-split-head-6d65")),
            None
        );
        assert_eq!(
            other_settings_of_one_cache(&was, &kiln_search::RunMeta::default()),
            None
        );
    }
}
