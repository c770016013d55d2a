//! What the judge bench judges with and on: one supernet or each part of a few-shot split,
//! the space its candidates are drawn from and which supernet holds each, the data
//! (checked against every supernet's identity), held-out images, training from scratch.

use std::path::{Path, PathBuf};

use kiln_data::{Dataset, Source, SplitOptions};
use kiln_space::{Architecture, Genome, Space};
use kiln_supernet::SupernetIdentity;
use kiln_supernet::split::{SPLIT_FILE, part_dir, read_split};

use super::{fail, from_root};

/// The supernets that judge, and what the candidates are drawn from.
pub struct Judges {
    /// One supernet's folder, or each part's of a split (in `split.json`'s order).
    pub parts: Vec<PathBuf>,
    /// In words, for the report: `supernet DIR` or `few-shot split DIR by `head``.
    pub what: String,
    /// The space the candidates are drawn from when it is not the one supernet's own
    /// (`--space`, or a split's whole space), with the file named in messages.
    pub drawn: Option<(Space, String)>,
}

/// The supernets in `dir`: the one, or every part of the split it holds; the candidates
/// drawn from `space_file`'s space when given, else from the split's whole space (its
/// `split.json`) or the one supernet's.
///
/// Exits with an error naming the file when `split.json` or `space_file` does not load, or
/// when `space_file` is not the space the split was made from.
pub fn judges(dir: &Path, space_file: Option<&Path>) -> Judges {
    let split = read_split(dir).unwrap_or_else(|e| fail(&e.to_string()));
    let given = space_file.map(|f| {
        let space = Space::load(f).unwrap_or_else(|e| fail(&e.to_string()));
        (space, f.display().to_string())
    });
    let Some(m) = split else {
        return Judges {
            parts: vec![dir.to_path_buf()],
            what: format!("supernet {}", dir.display()),
            drawn: given,
        };
    };
    if let Some((space, file)) = &given
        && *space != m.space
    {
        fail(&format!(
            "{file}: not the space the few-shot split in {} was made from (its {SPLIT_FILE} \
             holds that one): leave out --space",
            dir.display()
        ));
    }
    let whole = (m.space.clone(), dir.join(SPLIT_FILE).display().to_string());
    Judges {
        parts: m.parts.iter().map(|label| part_dir(dir, label)).collect(),
        what: format!(
            "few-shot split {} by `{}` ({})",
            dir.display(),
            m.by,
            m.parts.join(", ")
        ),
        drawn: Some(given.unwrap_or(whole)),
    }
}

/// Which of `genomes` (drawn from `drawn`'s space, or the supernet's own without it) the
/// supernet of `identity` holds, and the reason the first of the others is not held.
///
/// Exits with an error when a genome it holds would be another network in the supernet's
/// space than in the drawn one (fixed settings such as strides differ).
pub fn held_by(
    identity: &SupernetIdentity,
    drawn: Option<&(Space, String)>,
    genomes: &[Genome],
) -> (Vec<bool>, Option<String>) {
    let Some((space, file)) = drawn else {
        return (vec![true; genomes.len()], None);
    };
    let ours = &identity.space;
    let mut first_reason = None;
    let held = genomes
        .iter()
        .map(|g| match g.validate(ours, "the supernet's space") {
            Ok(()) => {
                let arch = |s| Architecture::new(s, g, identity.input).ok();
                if arch(ours) != arch(space) {
                    fail(&format!(
                        "{file}: genome {} is another network in the supernet's space than in \
                         this one: the two spaces differ beyond their choices",
                        g.id()
                    ));
                }
                true
            }
            Err(e) => {
                first_reason.get_or_insert(e.to_string());
                false
            }
        })
        .collect();
    (held, first_reason)
}

/// Top-1 of genome `g` trained from scratch with `seed` on `data`'s training images: on
/// the validation split, or with `held_out` on the test split (which then holds the
/// held-out images; training reports its test top-1 once, at the end).
pub fn train_alone(
    net: &kiln_supernet::SuperNet,
    g: &Genome,
    seed: u64,
    epochs: usize,
    data: &Dataset,
    held_out: bool,
) -> f64 {
    let config = kiln_train::TrainConfig {
        epochs,
        seed,
        ..Default::default()
    };
    let arch = net.architecture(g).expect("architecture");
    let t = kiln_train::train(&arch, &g.id(), data, &config, &mut kiln_train::Silent)
        .expect("training");
    let validation = t.metrics.validation_top1.unwrap_or(t.metrics.test_top1);
    if held_out {
        // the same training's validation top-1, to set the two measures side by side
        eprintln!("validation,{},{validation:.4}", g.id());
        t.metrics.test_top1
    } else {
        validation
    }
}

/// The data a supernet is judged on and its identity string (the folder as `supernet
/// train --idx` was given it): the bundled digits, or the IDX folder `idx`, split by
/// `split`. Exits naming the source when it does not load.
pub fn load_data(idx: Option<&str>, split: &SplitOptions) -> (Dataset, String) {
    let named = idx.map_or(Source::Mnist5k, |d| Source::Idx(d.into()));
    let data_identity = named.identity(split);
    let source = idx.map_or(Source::Mnist5k, |d| Source::Idx(from_root(d)));
    let data = kiln_data::load(&source, split)
        .unwrap_or_else(|e| fail(&format!("{}: {e}", source.name())));
    (data, data_identity)
}

/// A supernet's weights are judged on the data they were trained on or not at all: exits
/// with an error saying so when `identity` (the supernet's in `dir`) does not match `data`
/// (named `data_identity`), by the supernet's own check: its content where it recorded
/// one (the same files in another folder pass), its name where not.
pub fn check_data(dir: &Path, identity: &SupernetIdentity, data: &Dataset, data_identity: &str) {
    let read_now = SupernetIdentity {
        data: data_identity.to_owned(),
        data_content: Some(data.content_id()),
        ..identity.clone()
    };
    if let Err(e) = identity.check(&read_now, dir) {
        fail(&format!(
            "{e}. The bench reads the bundled digits or --idx DIR, with --validation SHARE, \
             the default split seed and no train limit: give --idx and --validation as \
             `supernet train` was given them"
        ));
    }
}

/// `data` as the bench scores it: with `--held-out DIR`, DIR's test images stand in for its
/// test split (training reads no test image) and every accuracy is measured on them, with
/// the `scored` line a pairs file names them by
/// ([`kiln_supernet::pairs::held_out_images`]); else unchanged.
pub fn with_held_out(
    data: Dataset,
    held_out_dir: Option<&str>,
    split: &SplitOptions,
) -> (Dataset, Option<String>) {
    let Some(dir) = held_out_dir else {
        return (data, None);
    };
    let (test, name) = kiln_supernet::pairs::held_out_images(&from_root(dir), dir, &data, split)
        .unwrap_or_else(|e| fail(&e.to_string()));
    (Dataset { test, ..data }, Some(name))
}
