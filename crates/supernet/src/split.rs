//! A few-shot split's folder (Zhao et al., ICML 2021; the parts are
//! [`kiln_space::SplitBy::parts`]): `split.json` says what was split by which decision,
//! and each part is a supernet folder of its own, `DIR/<label>/` (`DIR/head128/`), trained
//! on its part of the space as [`crate::train`] trains any supernet, with the same
//! settings. `split.json` is written first (atomically), so a split killed in any part
//! resumes there; each part resumes from its own last epoch.

use std::path::{Path, PathBuf};

use kiln_data::Dataset;
use kiln_space::{Space, SpacePart, SplitBy};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{STATE_FILE, SupernetIdentity, io, write_atomic};
use crate::init::{FromTensors, Sliced};
use crate::{Progress, SuperNet, SupernetConfig, SupernetError};

/// The folder of a split's shared supernet ([`SupernetConfig::shared_epochs`]).
pub const SHARED_DIR: &str = "shared";

/// The file that makes a folder a split: `DIR/split.json`.
pub const SPLIT_FILE: &str = "split.json";

/// Version of `split.json`; another is refused.
pub const SPLIT_VERSION: u32 = 1;

/// `split.json`: what a split folder holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitManifest {
    /// [`SPLIT_VERSION`].
    pub format_version: u32,
    /// The decision the space was split by.
    pub by: SplitBy,
    /// The whole space (each part's own space is in its `supernet.json`).
    pub space: Space,
    /// The parts' labels, each the name of its folder beside `split.json`.
    pub parts: Vec<String>,
}

impl SplitManifest {
    /// The manifest of `space` split by `by`.
    ///
    /// Errors: [`SupernetError::Config`] when the decision has fewer than two choices.
    pub fn of(space: &Space, by: SplitBy) -> Result<SplitManifest, SupernetError> {
        let parts = by.parts(space).map_err(space_error)?;
        Ok(SplitManifest::with_parts(space, by, &parts))
    }

    fn with_parts(space: &Space, by: SplitBy, parts: &[SpacePart]) -> SplitManifest {
        SplitManifest {
            format_version: SPLIT_VERSION,
            by,
            space: space.clone(),
            parts: parts.iter().map(|p| p.label.clone()).collect(),
        }
    }

    /// Refuses the split in `dir` (this manifest) for a run of another `space`.
    ///
    /// Errors: [`SupernetError::Mismatch`] naming the field `space`.
    pub fn check_space(&self, space: &Space, dir: &Path) -> Result<(), SupernetError> {
        if self.space == *space {
            return Ok(());
        }
        let (ours, by) = (&self.space.name, self.by);
        let (supernet, wanted) = match crate::checkpoint::first_difference(&self.space, space) {
            Some((at, a, b)) if *ours == space.name => (
                format!("space `{ours}` with {at} = {a}, split by `{by}`"),
                format!("{at} = {b}"),
            ),
            _ => (
                format!("space `{ours}` (split by `{by}`)"),
                format!("space `{}` (or another definition of it)", space.name),
            ),
        };
        Err(SupernetError::Mismatch {
            path: dir.display().to_string(),
            field: "space",
            supernet,
            wanted,
        })
    }
}

fn space_error(e: kiln_space::SpaceError) -> SupernetError {
    SupernetError::Config(e.to_string())
}

/// The folder of part `label` of the split in `dir`.
pub fn part_dir(dir: &Path, label: &str) -> PathBuf {
    dir.join(label)
}

/// The folder of every supernet in `dir`: a few-shot split's parts in its manifest's order,
/// or `dir` itself when it holds no split.
///
/// Errors: as [`read_split`].
pub fn supernet_dirs(dir: &Path) -> Result<Vec<PathBuf>, SupernetError> {
    Ok(match read_split(dir)? {
        Some(m) => m.parts.iter().map(|label| part_dir(dir, label)).collect(),
        None => vec![dir.to_path_buf()],
    })
}

/// Reads `dir/split.json`; `None` when there is none (`dir` is one supernet's folder, or
/// nothing yet).
///
/// Errors: [`SupernetError::Checkpoint`] naming the file: unreadable, not a manifest,
/// another format version, or a part label that is not a plain folder name.
pub fn read_split(dir: &Path) -> Result<Option<SplitManifest>, SupernetError> {
    let path = dir.join(SPLIT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path, e)),
    };
    let manifest: SplitManifest = serde_json::from_str(&text).map_err(|e| io(&path, e))?;
    if manifest.format_version != SPLIT_VERSION {
        return Err(io(
            &path,
            format!(
                "format version {}, this kiln reads {SPLIT_VERSION}",
                manifest.format_version
            ),
        ));
    }
    if let Some(bad) = manifest
        .parts
        .iter()
        .find(|l| l.is_empty() || l.contains(['/', '\\']) || l.starts_with('.'))
    {
        return Err(io(&path, format!("part `{bad}` is not a folder name")));
    }
    Ok(Some(manifest))
}

/// Whether `dir` holds a split whose every part has trained `epochs` epochs.
pub fn split_complete(dir: &Path, epochs: usize) -> bool {
    match read_split(dir) {
        Ok(Some(m)) => m.parts.iter().all(|label| {
            crate::epochs_done(&part_dir(dir, label)).is_ok_and(|done| done >= epochs)
        }),
        _ => false,
    }
}

/// Trains `space` split by `by` into `dir`: one supernet per part, one after the other,
/// each for `config.epochs` epochs with `config` (so a split of three parts costs three
/// supernets' training). With `resume`, a split already in `dir` continues where it
/// stopped (refused when it split another space or by another decision). `progress`
/// hears [`Progress::Part`] before each part, then that part's steps and epochs.
///
/// Errors: a decision with one choice; a split in `dir` that does not match; `split.json`
/// cannot be written; each part's training errors ([`crate::train`]).
#[allow(clippy::too_many_arguments)]
pub fn train_split(
    space: &Space,
    by: SplitBy,
    data: &Dataset,
    data_identity: &str,
    config: &SupernetConfig,
    dir: &Path,
    resume: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), SupernetError> {
    config.validate()?;
    crate::train::has_validation(data)?;
    let parts = by.parts(space).map_err(space_error)?;
    if dir.join(STATE_FILE).is_file() {
        return Err(io(
            dir,
            "holds one supernet (supernet.json): train the few-shot split in another folder",
        ));
    }
    if !resume && dir.join(SPLIT_FILE).exists() {
        return Err(io(
            dir,
            "holds a few-shot split (split.json): --resume continues it (to --epochs); train a \
             new one in another folder (or delete this one)",
        ));
    }
    if !dir.join(SPLIT_FILE).is_file() {
        // trained afresh, with --resume or without
        crate::checkpoint::new_folder(dir)?;
    }
    if let Some(found) = if resume { read_split(dir)? } else { None } {
        if found.by != by {
            return Err(SupernetError::Mismatch {
                path: dir.display().to_string(),
                field: "split",
                supernet: format!("split by `{}`", found.by),
                wanted: format!("split by `{by}`"),
            });
        }
        found.check_space(space, dir)?;
        check_parts_resume(&parts, data, data_identity, config, dir)?;
    }
    let manifest = SplitManifest::with_parts(space, by, &parts);
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| io(dir, e))?;
    write_atomic(&dir.join(SPLIT_FILE), text.as_bytes())?;
    let shared = (config.shared_epochs > 0)
        .then(|| {
            train_shared(
                space,
                data,
                data_identity,
                config,
                dir,
                parts.len(),
                progress,
            )
        })
        .transpose()?;
    for (i, part) in parts.iter().enumerate() {
        progress(Progress::Part {
            label: part.label.clone(),
            index: i + 1,
            parts: parts.len(),
        });
        let part_dir = part_dir(dir, &part.label);
        if let Some(shared) = &shared
            && !part_dir.join(STATE_FILE).is_file()
        {
            start_from_shared(shared, &part.space, data, data_identity, config, &part_dir)?;
        }
        let resume_part = part_dir.join(STATE_FILE).is_file() && (resume || shared.is_some());
        crate::train(
            &part.space,
            data,
            data_identity,
            config,
            &part_dir,
            resume_part,
            progress,
        )?;
    }
    Ok(())
}

/// Refuses a resume whose settings a part already trained would refuse, before any part
/// (or the shared supernet) trains on: a larger `--shared-epochs` would otherwise train
/// the shared supernet further only for the first part begun to refuse it.
///
/// Errors: as [`SupernetIdentity::check_resume`]'s.
fn check_parts_resume(
    parts: &[SpacePart],
    data: &Dataset,
    data_identity: &str,
    config: &SupernetConfig,
    dir: &Path,
) -> Result<(), SupernetError> {
    // the data's content is hashed once, not once per part
    let mut wanted: Option<SupernetIdentity> = None;
    for part in parts {
        let part_dir = part_dir(dir, &part.label);
        if part_dir.join(STATE_FILE).is_file() {
            let found = crate::identity(&part_dir)?;
            let wanted = wanted.get_or_insert_with(|| {
                SupernetIdentity::of(&part.space, data, data_identity, config)
            });
            wanted.space = part.space.clone();
            found.check_resume(wanted, &part_dir)?;
        }
    }
    Ok(())
}

/// The whole space's supernet a split's parts start from ([`SupernetConfig::shared_epochs`]),
/// trained (or continued) in `dir/shared/`; returns that folder.
///
/// Errors: as [`crate::train`]'s.
fn train_shared(
    space: &Space,
    data: &Dataset,
    data_identity: &str,
    config: &SupernetConfig,
    dir: &Path,
    parts: usize,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<PathBuf, SupernetError> {
    let shared_dir = dir.join(SHARED_DIR);
    progress(Progress::Part {
        label: SHARED_DIR.into(),
        index: 0,
        parts,
    });
    let whole = SupernetConfig {
        epochs: config.shared_epochs,
        shared_epochs: 0,
        ..config.clone()
    };
    let resume = shared_dir.join(STATE_FILE).is_file();
    let done = if resume {
        crate::epochs_done(&shared_dir)?
    } else {
        0
    };
    if done > config.shared_epochs {
        // the parts would start from more epochs than they record
        return Err(io(
            &shared_dir,
            format!(
                "holds a shared supernet trained {done} epochs, more than --shared-epochs {}: \
                 give at least that many (or train the split in another folder)",
                config.shared_epochs
            ),
        ));
    }
    crate::train(
        space,
        data,
        data_identity,
        &whole,
        &shared_dir,
        resume,
        progress,
    )?;
    Ok(shared_dir)
}

/// Writes into `part_dir` an epoch-0 checkpoint of the part's supernet whose weights are
/// the shared supernet's, sliced to the part's space, so its training continues from them.
///
/// Errors: the shared weights cannot be read or do not hold the part's tensors.
fn start_from_shared(
    shared_dir: &Path,
    part_space: &Space,
    data: &Dataset,
    data_identity: &str,
    config: &SupernetConfig,
    part_dir: &Path,
) -> Result<(), SupernetError> {
    let file = crate::weights_path(shared_dir)?;
    let weights = kiln_onnx::Weights::load(&file).map_err(|e| io(&file, e))?;
    let origin = file.display().to_string();
    // every part keeps the whole space's activation choices (a split by the head conv),
    // so a part has a hswish pair exactly where the shared supernet has one
    let mut init = Sliced(FromTensors {
        tensors: &weights.tensors,
        origin: &origin,
    });
    let identity = SupernetIdentity::of(part_space, data, data_identity, config);
    let (input, per_activation) = (identity.input, config.bn_per_activation);
    let net = SuperNet::build(
        part_space,
        input,
        per_activation,
        &mut init,
        &kiln_train::device(),
    )?;
    crate::save(part_dir, &net, &identity, 0, &Default::default())
}

/// [`crate::train`] into `dir` without `split`, [`train_split`] with it: what the command
/// line and the supernet cache train. Returns the epochs trained by this call, over all
/// parts of a split (0: `resume` found every epoch trained).
///
/// Errors: as theirs.
#[allow(clippy::too_many_arguments)]
pub fn train_supernets(
    space: &Space,
    split: Option<SplitBy>,
    data: &Dataset,
    data_identity: &str,
    config: &SupernetConfig,
    dir: &Path,
    resume: bool,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<usize, SupernetError> {
    let mut trained = 0;
    let progress = &mut |p: Progress| {
        trained += usize::from(matches!(p, Progress::Epoch(_)));
        progress(p)
    };
    match split {
        None if config.shared_epochs > 0 => Err(SupernetError::Config(
            "shared epochs train what a few-shot split's parts start from: give a split \
             (--few-shot head)"
                .into(),
        )),
        None => crate::train(space, data, data_identity, config, dir, resume, progress).map(drop),
        Some(by) => train_split(
            space,
            by,
            data,
            data_identity,
            config,
            dir,
            resume,
            progress,
        ),
    }?;
    Ok(trained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{data, one_epoch, space};

    /// [`train_split`] by the head conv, the data named `t`.
    fn split_by_head(
        space: &Space,
        data: &Dataset,
        config: &SupernetConfig,
        dir: &Path,
        resume: bool,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), SupernetError> {
        train_split(
            space,
            SplitBy::Head,
            data,
            "t",
            config,
            dir,
            resume,
            progress,
        )
    }

    /// With shared epochs, one supernet of the whole space trains first and each part
    /// starts from its weights, sliced (a stem the same, a head conv its first channels).
    #[test]
    fn parts_start_from_the_shared_supernets_weights() {
        let data = data();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("split");
        let config = SupernetConfig {
            shared_epochs: 2,
            ..one_epoch(48)
        };
        let alone = train_supernets(
            &space(),
            None,
            &data,
            "t",
            &config,
            &dir,
            false,
            &mut |_| {},
        );
        let e = alone.unwrap_err().to_string();
        assert!(e.contains("--few-shot head") && !dir.exists(), "{e}");
        // each part as it begins, with the epochs its steps say it trains to
        let mut parts: Vec<String> = Vec::new();
        let mut record = |p: Progress| match p {
            Progress::Part { label, index, .. } => parts.push(format!("{label} {index}")),
            Progress::Step {
                epochs, step: 1, ..
            } => {
                let last = parts.last_mut().unwrap();
                if !last.contains('/') {
                    last.push_str(&format!(" /{epochs}"));
                }
            }
            _ => {}
        };
        let space = space();
        split_by_head(&space, &data, &config, &dir, false, &mut record).unwrap();
        assert_eq!(parts, ["shared 0 /2", "head0 1 /1", "head32 2 /1"]);
        let shared = dir.join(SHARED_DIR);
        assert_eq!(crate::epochs_done(&shared).unwrap(), 2);
        // the error of resuming the split with other shared epochs
        let resume_with = |shared_epochs| {
            let other = SupernetConfig {
                shared_epochs,
                ..config.clone()
            };
            let run = split_by_head(&space, &data, &other, &dir, true, &mut |_| {});
            run.unwrap_err().to_string()
        };
        // a resume with more shared epochs is refused before the shared supernet trains on
        let e = resume_with(3);
        assert!(e.contains("shared epochs 2, not 3"), "{e}");
        assert_eq!(crate::epochs_done(&shared).unwrap(), 2);
        assert_eq!(crate::identity(&shared).unwrap().config.shared_epochs, 0);
        let part = part_dir(&dir, "head32");
        assert_eq!(crate::identity(&part).unwrap().config, config);
        // the part's starting point, written again beside it, is the shared weights
        let start = tmp.path().join("start");
        start_from_shared(
            &shared,
            &crate::identity(&part).unwrap().space,
            &data,
            "t",
            &config,
            &start,
        )
        .unwrap();
        let load = |d: &Path| kiln_onnx::Weights::load(&crate::weights_path(d).unwrap()).unwrap();
        let (whole, first) = (load(&shared), load(&start));
        assert_eq!(first.tensors["stem.weight"], whole.tensors["stem.weight"]);
        let head = &first.tensors["head.weight"];
        let n = head.data.len();
        assert_eq!(head.data, whole.tensors["head.weight"].data[..n]);
        // the head-less part's classifier is a true slice: its first input rows
        let headless = tmp.path().join("headless");
        let space0 = crate::identity(&part_dir(&dir, "head0")).unwrap().space;
        start_from_shared(&shared, &space0, &data, "t", &config, &headless).unwrap();
        let (part0, parent) = (&load(&headless).tensors, &whole.tensors);
        let (c0, c) = (&part0["classifier.weight"], &parent["classifier.weight"]);
        assert!(c0.shape[0] < c.shape[0], "{:?} {:?}", c0.shape, c.shape);
        assert_eq!(c0.data, c.data[..c0.data.len()]);
        assert_ne!(
            load(&part).tensors["stem.weight"],
            whole.tensors["stem.weight"],
            "trained on"
        );
        // killed before any part began, then resumed with fewer shared epochs: the parts
        // would start from 2 epochs of training while recording 1, so it is refused
        for label in ["head0", "head32"] {
            std::fs::remove_dir_all(part_dir(&dir, label)).unwrap();
        }
        let e = resume_with(1);
        assert!(
            e.contains("trained 2 epochs, more than --shared-epochs 1"),
            "{e}"
        );
        assert!(!part_dir(&dir, "head0").exists());
    }

    #[test]
    fn a_split_trains_one_supernet_per_part_and_resumes_only_itself() {
        let data = data();
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("split");
        let config = one_epoch(48);
        let mut parts = Vec::new();
        let mut record = |p: Progress| {
            if let Progress::Part {
                label,
                index,
                parts: n,
            } = p
            {
                parts.push(format!("{label} {index}/{n}"));
            }
        };
        let space = space();
        split_by_head(&space, &data, &config, &dir, false, &mut record).unwrap();
        assert_eq!(parts, ["head0 1/2", "head32 2/2"]);
        let manifest = read_split(&dir).unwrap().unwrap();
        assert_eq!(manifest, SplitManifest::of(&space, SplitBy::Head).unwrap());
        for (label, width) in [("head0", 0), ("head32", 32)] {
            let identity = crate::identity(&part_dir(&dir, label)).unwrap();
            assert_eq!(identity.space.head.widths, [width]);
            assert_eq!(identity.config, config);
        }
        assert!(split_complete(&dir, 1));
        assert!(!split_complete(&dir, 2));
        // a split is named by its parts' weights, in order, each as one supernet's is
        let ids: Vec<String> = ["head0", "head32"]
            .map(|label| crate::weights_id(&part_dir(&dir, label)).unwrap())
            .into();
        assert_eq!(crate::weights_id(&dir).unwrap(), ids.join(","));
        // kiln's content id of the weights file: the first 16 hex digits of its SHA-256
        let file = std::fs::read(crate::weights_path(&part_dir(&dir, "head0")).unwrap());
        let sha = <sha2::Sha256 as sha2::Digest>::digest(file.unwrap());
        let hex: String = sha[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(ids[0], hex);
        assert!(
            !split_complete(tmp.path(), 1),
            "a folder without split.json"
        );

        // resuming it for another space is refused, naming the field
        let mut other = space.clone();
        other.stem.widths = vec![4];
        let e = split_by_head(&other, &data, &config, &dir, true, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(e.contains("another space") && e.contains("split"), "{e}");

        // one supernet and a split never share a folder, and a tool that reads one
        // supernet says what a split's folder is
        let e = crate::train(&space, &data, "t", &config, &dir, true, &mut |_| {});
        let e = e.err().unwrap().to_string();
        assert!(e.contains("holds a few-shot split"), "{e}");
        let e = crate::load(&dir, &kiln_train::device())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("is a few-shot split") && e.contains("head0"),
            "{e}"
        );
        let one = part_dir(&dir, "head32");
        let e = split_by_head(&space, &data, &config, &one, false, &mut |_| {});
        let e = e.unwrap_err().to_string();
        assert!(e.contains("holds one supernet"), "{e}");
        // a trained split is not trained over without --resume, nor a damaged one (whose
        // --resume names the file)
        let again = |resume: bool| {
            let e = split_by_head(&space, &data, &config, &dir, resume, &mut |_| {});
            e.unwrap_err().to_string()
        };
        let e = again(false);
        assert!(
            e.contains("holds a few-shot split") && e.contains("--resume"),
            "{e}"
        );
        std::fs::write(dir.join(SPLIT_FILE), "{").unwrap();
        assert!(read_split(&dir).is_err());
        assert!(again(false).contains("holds a few-shot split"));
        assert!(again(true).contains("split.json"));
        assert_eq!(
            crate::epochs_done(&one).unwrap(),
            1,
            "the trained part is kept"
        );
    }

    #[test]
    fn a_damaged_manifest_is_an_error_naming_it() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(read_split(tmp.path()).unwrap().is_none());
        let path = tmp.path().join(SPLIT_FILE);
        std::fs::write(&path, "{").unwrap();
        let e = read_split(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("split.json"), "{e}");
        let mut m = SplitManifest::of(&space(), SplitBy::Head).unwrap();
        m.parts[1] = "../elsewhere".into();
        std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
        let e = read_split(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("not a folder name"), "{e}");
        m.parts[1] = "head32".into();
        m.format_version = 9;
        std::fs::write(&path, serde_json::to_string(&m).unwrap()).unwrap();
        let e = read_split(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("format version 9"), "{e}");
    }
}
