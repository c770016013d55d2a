//! The supernet a weight-sharing search uses when none is given: trained once per space,
//! input, data and training settings, and kept in a cache folder, so a second search of
//! the same space (for another target, with another seed or strategy) starts judging at
//! once.
//!
//! The folder is `ROOT/<space>-<id>`, `id` the content id of the space file's text, the
//! input shape and classes, the data's content id (not its folder's name: the same files
//! elsewhere find the same supernet), the training settings but their thread count, and
//! kiln-supernet's `TRAINING_FORMAT`, and a few-shot split's decision when there is one:
//! anything that changes the supernet changes the folder. A training killed half-way
//! resumes from its last epoch's checkpoint (a split's, in the part it was training).

use std::path::{Path, PathBuf};

use kiln_data::Dataset;
use kiln_onnx::metadata::epochs_in_words;
use kiln_search::StrategyKind;
use kiln_space::{Space, SplitBy};
use kiln_supernet::{Progress, SupernetConfig};

use crate::PipelineError;
use crate::build::content_id;
use crate::search::SearchRequest;

/// Whether a search's supernet is a few-shot split (`--few-shot`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FewShot {
    /// The default (`auto`): a supernet trained for the search is split by the head conv
    /// when its space has two head widths or more and its strategy is not `dnas` (which
    /// learns its distribution on one supernet); else it is one supernet. A supernet given
    /// with `--supernet` is used as it is. [`settle_few_shot`] decides.
    ///
    /// Why the head conv: on Fashion-MNIST the split by it ranks 30 genomes with Kendall's
    /// tau-b 0.341 against their mean trained-from-scratch accuracy where single supernets
    /// score -0.046 to -0.002, and a split by another decision 0.021, each part trained 7
    /// epochs (0.161 at the search's default 2; docs/ranking/README.md; host).
    #[default]
    Auto,
    /// One supernet for the whole space (`none`).
    Off,
    /// This split; a search that cannot judge by a split is refused (the preflight).
    By(SplitBy),
}

/// A `--few-shot` value that is not `auto`, `none` or a split's name.
#[derive(Debug, thiserror::Error)]
#[error("unknown choice `{0}`; give auto, none or a split ({splits})", splits = SplitBy::ALL.map(SplitBy::name).join(", "))]
pub struct UnknownFewShot(pub String);

impl std::str::FromStr for FewShot {
    type Err = UnknownFewShot;

    /// `auto`, `none` or a split's name ([`SplitBy::parse`]).
    fn from_str(name: &str) -> Result<FewShot, Self::Err> {
        match name {
            "auto" => Ok(FewShot::Auto),
            "none" => Ok(FewShot::Off),
            by => SplitBy::parse(by)
                .map(FewShot::By)
                .map_err(|_| UnknownFewShot(by.to_owned())),
        }
    }
}

impl FewShot {
    /// What `none` or a split's name asks for (`Some(None)`: one supernet); `None` for
    /// `auto`, which the space or a given folder decides.
    pub fn named(self) -> Option<Option<SplitBy>> {
        match self {
            FewShot::Auto => None,
            FewShot::Off => Some(None),
            FewShot::By(by) => Some(Some(by)),
        }
    }

    /// The split a supernet trained for a search of `space` by `strategy` is (`auto`
    /// settled as [`FewShot::Auto`] says); `None`: one supernet.
    pub fn settle(self, space: &Space, strategy: StrategyKind) -> Option<SplitBy> {
        self.named().unwrap_or_else(|| {
            let splits = strategy != StrategyKind::Dnas && SplitBy::Head.parts(space).is_ok();
            splits.then_some(SplitBy::Head)
        })
    }
}

/// Settles `req.few_shot` for a supernet trained for the search ([`FewShot::settle`]:
/// `auto` becomes `none` or a split) and returns the split to train, what [`dir_for`] and
/// [`ensure`] take. A search resumed with the same settings settles the same way.
///
/// Errors: the space file cannot be read or parsed.
pub fn settle_few_shot(req: &mut SearchRequest) -> Result<Option<SplitBy>, PipelineError> {
    let path = &req.space_path;
    let text = std::fs::read_to_string(path).map_err(|e| io(path, e))?;
    let space = Space::from_toml(&text, &path.display().to_string())?;
    let split = req.few_shot.settle(&space, req.strategy);
    req.few_shot = split.map_or(FewShot::Off, FewShot::By);
    Ok(split)
}

/// The cache folder of the supernet (`split`: the few-shot split by that decision) for
/// this space file, data (its content, [`Dataset::content_id`], which follows the split
/// too) and settings under `root`.
pub fn cache_dir(
    root: &Path,
    space: &Space,
    space_text: &str,
    split: Option<SplitBy>,
    data: &Dataset,
    config: &SupernetConfig,
) -> PathBuf {
    // threads do not change the weights (kiln-supernet tests it), so they do not change
    // the folder either
    let config = SupernetConfig {
        threads: 1,
        ..config.clone()
    };
    let mut key = serde_json::json!({
        "space_file": space_text,
        "input": kiln_train::input_spec(data).to_string(),
        // the files, not their folder's name: the same name over changed files is other
        // data, the same files moved are not
        "data_content": data.content_id(),
        "config": config,
        "training_format": kiln_supernet::TRAINING_FORMAT,
    });
    // only when split, so one supernet's folder is where it was before splits existed
    if let Some(by) = split {
        key["split"] = by.name().into();
    }
    let id = content_id(key.to_string().as_bytes());
    let split = split.map_or(String::new(), |by| format!("-split-{by}"));
    root.join(format!("{}{split}-{}", space.name, &id[..12]))
}

/// [`cache_dir`] for the space file at `space_path`: where [`ensure`] keeps (or trains)
/// this supernet, known before any training (a search's run identity names it).
///
/// Errors: the space file cannot be read or parsed.
pub fn dir_for(
    root: &Path,
    space_path: &Path,
    split: Option<SplitBy>,
    data: &Dataset,
    config: &SupernetConfig,
) -> Result<PathBuf, PipelineError> {
    let text = std::fs::read_to_string(space_path).map_err(|e| io(space_path, e))?;
    let space = Space::from_toml(&text, &space_path.display().to_string())?;
    Ok(cache_dir(root, &space, &text, split, data, config))
}

/// The content id of the weights the supernet in `dir` holds now (the file its
/// `supernet.json` names; a split's folder: its parts' ids, joined by commas):
/// [`kiln_supernet::weights_id`], what runs and benchmarks name a supernet by.
///
/// Errors: `supernet.json` or `split.json` (kiln-supernet's, naming the file); the
/// weights file.
pub fn weights_id(dir: &Path) -> Result<String, PipelineError> {
    Ok(kiln_supernet::weights_id(dir)?)
}

/// What [`ensure`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedSupernet {
    /// The supernet's folder.
    pub dir: PathBuf,
    /// Epochs trained by this call, over all parts of a split (0: the cached one was
    /// complete).
    pub trained_epochs: usize,
    /// The few-shot split it is, if it is one.
    pub split: Option<SplitBy>,
}

impl std::fmt::Display for CachedSupernet {
    /// `supernet DIR: cached, reused`, `... trained 2 epochs`, or for a split `... a
    /// few-shot split by `head`, trained 4 epochs over its parts`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "supernet {}: ", self.dir.display())?;
        if let Some(by) = self.split {
            write!(f, "a few-shot split by `{by}`, ")?;
        }
        match (self.trained_epochs, self.split) {
            (0, _) => write!(f, "cached, reused"),
            (n, None) => write!(f, "trained {}", epochs_in_words(n)),
            (n, Some(_)) => write!(f, "trained {} over its parts", epochs_in_words(n)),
        }
    }
}

/// The supernet of [`cache_dir`] for the space file at `space_path` (with `split`, the
/// few-shot split by that decision: every part `config.epochs` epochs), trained first (or
/// its training resumed) when the cache does not hold all `config.epochs` epochs.
/// `progress` hears each step and epoch of any training. Two searches that want the
/// same supernet train it once: the second waits (and says so through `note`) on the
/// first's lock on `train.lock` in the folder, which the operating system releases when
/// the first ends, however it ends, then reuses or resumes what it left. Where the file
/// system has no locks, `note` says so and training goes on unlocked.
///
/// Errors: the space file; the folder or its lock file; a checkpoint in the folder
/// that cannot be read or that was trained for something else; training errors.
#[allow(clippy::too_many_arguments)]
pub fn ensure(
    root: &Path,
    space_path: &Path,
    split: Option<SplitBy>,
    data: &Dataset,
    data_identity: &str,
    config: &SupernetConfig,
    progress: &mut (dyn FnMut(Progress) + Send),
    note: &mut dyn FnMut(&str),
) -> Result<CachedSupernet, PipelineError> {
    let text = std::fs::read_to_string(space_path).map_err(|e| io(space_path, e))?;
    let space = Space::from_toml(&text, &space_path.display().to_string())?;
    let dir = cache_dir(root, &space, &text, split, data, config);
    let state = dir.join(kiln_supernet::STATE_FILE);
    let complete = || match split {
        None => epochs_done(&state) >= Some(config.epochs),
        Some(_) => kiln_supernet::split::split_complete(&dir, config.epochs),
    };
    // complete: loading it (and checking its identity) is the search's job
    let reused = CachedSupernet {
        dir: dir.clone(),
        trained_epochs: 0,
        split,
    };
    if complete() {
        return Ok(reused);
    }
    let _lock = lock(&dir, note)?;
    if complete() {
        return Ok(reused);
    }
    let resume = match split {
        None => state.is_file(),
        Some(_) => dir.join(kiln_supernet::split::SPLIT_FILE).is_file(),
    };
    let trained_epochs = kiln_supernet::split::train_supernets(
        &space,
        split,
        data,
        data_identity,
        config,
        &dir,
        resume,
        progress,
    )
    .map_err(|e| PipelineError::Invalid(format!("supernet in {}: {e}", dir.display())))?;
    Ok(CachedSupernet {
        dir,
        trained_epochs,
        split,
    })
}

/// The exclusive lock on `dir/train.lock`, held until the returned file is dropped
/// (`None`: the file system cannot lock); `note` hears why it waits or goes unlocked.
///
/// Errors: the folder or the lock file cannot be created.
fn lock(dir: &Path, note: &mut dyn FnMut(&str)) -> Result<Option<std::fs::File>, PipelineError> {
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let path = dir.join("train.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| io(&path, e))?;
    let unlocked = |e: std::io::Error, note: &mut dyn FnMut(&str)| {
        note(&format!(
            "cannot lock {} ({e}): a second search of this space and data at the same time \
             would train the same supernet",
            path.display()
        ));
        None
    };
    Ok(match file.try_lock() {
        Ok(()) => Some(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            note(&format!(
                "another search is training the supernet in {}; waiting for it",
                dir.display()
            ));
            match file.lock() {
                Ok(()) => Some(file),
                Err(e) => unlocked(e, note),
            }
        }
        Err(std::fs::TryLockError::Error(e)) => unlocked(e, note),
    })
}

fn io(path: &Path, e: std::io::Error) -> PipelineError {
    PipelineError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Epochs a checkpoint's `supernet.json` says are done; `None` when there is none or it
/// cannot be read (training then says why).
fn epochs_done(state: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(state).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("epochs_done")?.as_u64().map(|n| n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_folder_changes_with_anything_that_changes_the_supernet() {
        let text = include_str!("../../../tests/fixtures/tiny-space.toml");
        let space = Space::from_toml(text, "tiny").unwrap();
        let options = |limit| kiln_data::SplitOptions {
            seed: kiln_data::DEFAULT_SPLIT_SEED,
            validation_fraction: 0.1,
            train_limit: Some(limit),
        };
        let load = |limit| kiln_data::load(&kiln_data::Source::Mnist5k, &options(limit)).unwrap();
        let data = load(100);
        let config = SupernetConfig::default();
        let root = Path::new("cache");
        let dir = |text: &str, data: &Dataset, config: &SupernetConfig| {
            cache_dir(root, &space, text, None, data, config)
        };
        let base = dir(text, &data, &config);
        assert!(base.starts_with(root));
        assert!(
            base.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("tiny-")
        );
        assert_eq!(base, dir(text, &data, &config));
        assert_ne!(base, dir(text, &load(200), &config));
        assert_ne!(base, dir(&format!("{text}\n# edited"), &data, &config));
        let longer = SupernetConfig {
            epochs: 3,
            ..config.clone()
        };
        assert_ne!(base, dir(text, &data, &longer));
        // a few-shot split of the space is another folder, named so
        let split = cache_dir(root, &space, text, Some(SplitBy::Head), &data, &config);
        assert_ne!(base, split);
        let name = split.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with("tiny-split-head-"), "{name}");
        // the weights do not depend on the thread count, so neither does the folder
        let two_threads = SupernetConfig {
            threads: 2,
            ..config.clone()
        };
        assert_eq!(base, dir(text, &data, &two_threads));
        // the same data name over other images (a folder whose files changed)
        let t = &data.test;
        let flipped = (0..t.len()).flat_map(|i| t.image(i).iter().map(|p| p ^ 1));
        let test = kiln_data::Split::new(t.shape(), flipped.collect(), t.labels().to_vec());
        let changed = kiln_data::Dataset {
            test: test.unwrap(),
            ..data.clone()
        };
        assert_ne!(base, dir(text, &changed, &config));
        // the same images under another name (the folder moved) find the same supernet
        let renamed = kiln_data::Dataset {
            name: "idx:/elsewhere".into(),
            ..data.clone()
        };
        assert_eq!(base, dir(text, &renamed, &config));
    }

    #[test]
    fn auto_splits_by_the_head_conv_where_a_split_can_judge_the_search() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spaces");
        let load = |name: &str| {
            let text = std::fs::read_to_string(root.join(name)).unwrap();
            Space::from_toml(&text, name).unwrap()
        };
        let (mobile, v2) = (load("mobile.toml"), load("mobilenetv2.toml"));
        let head = Some(SplitBy::Head);
        // three head widths: split; dnas learns on one supernet; one head width: nothing
        assert_eq!(FewShot::Auto.settle(&mobile, StrategyKind::Evolution), head);
        assert_eq!(FewShot::Auto.settle(&mobile, StrategyKind::Dnas), None);
        assert_eq!(FewShot::Auto.settle(&v2, StrategyKind::Random), None);
        // asked for by name: kept (the preflight refuses what cannot use it)
        assert_eq!(FewShot::Off.settle(&mobile, StrategyKind::Evolution), None);
        assert_eq!(
            FewShot::By(SplitBy::Head).settle(&v2, StrategyKind::Dnas),
            head
        );
        let parsed: Vec<FewShot> = ["auto", "none", "head"].map(|s| s.parse().unwrap()).into();
        assert_eq!(
            parsed,
            [FewShot::Auto, FewShot::Off, FewShot::By(SplitBy::Head)]
        );
        let wrong = "depth".parse::<FewShot>().unwrap_err().to_string();
        assert!(
            wrong.contains("`depth`; give auto, none or a split (head)"),
            "{wrong}"
        );
    }

    #[test]
    fn a_cached_split_is_trained_once_then_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let space_path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-space.toml");
        let options = kiln_data::SplitOptions {
            seed: kiln_data::DEFAULT_SPLIT_SEED,
            validation_fraction: 0.1,
            train_limit: Some(64),
        };
        let data = kiln_data::load(&kiln_data::Source::Mnist5k, &options).unwrap();
        let config = SupernetConfig {
            epochs: 1,
            recalibration_images: 32,
            ..SupernetConfig::default()
        };
        let ensure_split = || {
            let (mut parts, mut progress) = (Vec::new(), Vec::new());
            let cached = ensure(
                tmp.path(),
                &space_path,
                Some(SplitBy::Head),
                &data,
                "t",
                &config,
                &mut |p| progress.push(p),
                &mut |_| {},
            )
            .unwrap();
            for p in progress {
                if let Progress::Part { label, .. } = p {
                    parts.push(label);
                }
            }
            (cached, parts)
        };
        let (first, parts) = ensure_split();
        assert_eq!(parts, ["head0", "head32"]);
        assert_eq!(first.trained_epochs, 2, "one epoch per part");
        let wanted = dir_for(tmp.path(), &space_path, Some(SplitBy::Head), &data, &config);
        assert_eq!(first.dir, wanted.unwrap());
        assert!(kiln_supernet::split::split_complete(&first.dir, 1));
        let (second, parts) = ensure_split();
        assert_eq!((second.dir, second.trained_epochs), (first.dir, 0));
        assert!(parts.is_empty());
    }

    #[test]
    fn a_second_holder_of_the_training_lock_waits_for_the_first() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("tiny-0123");
        let mut told = Vec::new();
        let first = lock(&dir, &mut |m| told.push(m.to_string())).unwrap();
        assert!(told.is_empty());
        let (tx, rx) = std::sync::mpsc::channel();
        let second = {
            let dir = dir.clone();
            std::thread::spawn(move || {
                let held = lock(&dir, &mut |m| {
                    assert!(m.contains("waiting for it"), "{m}");
                    tx.send("waiting").unwrap()
                })
                .unwrap();
                tx.send("locked").unwrap();
                drop(held);
            })
        };
        assert_eq!(rx.recv().unwrap(), "waiting");
        let still = rx.recv_timeout(std::time::Duration::from_millis(200));
        assert!(still.is_err(), "{still:?}: the second took a held lock");
        drop(first);
        assert_eq!(rx.recv().unwrap(), "locked");
        second.join().unwrap();
    }

    #[test]
    fn a_checkpoint_says_how_many_epochs_are_done() {
        let tmp = tempfile::tempdir().unwrap();
        let state = tmp.path().join("supernet.json");
        assert_eq!(epochs_done(&state), None);
        std::fs::write(&state, r#"{"format_version": 1, "epochs_done": 2}"#).unwrap();
        assert_eq!(epochs_done(&state), Some(2));
        std::fs::write(&state, "{").unwrap();
        assert_eq!(epochs_done(&state), None);
    }
}
