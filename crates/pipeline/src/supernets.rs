//! What a weight-sharing search judges with: one supernet's folder, or a few-shot split's
//! (`kiln_supernet::split`: the space divided by one decision, one supernet per part), in
//! which each genome is judged, exported and fine-tuned by the part that holds it.

use std::path::{Path, PathBuf};

use kiln_data::Dataset;
use kiln_space::{Genome, Space, SplitBy};
use kiln_supernet::split::{SplitManifest, part_dir, read_split};

use crate::PipelineError;
use crate::inherit::SupernetJudge;

/// `e` (loading the one supernet in `dir` for a run of `space`) or, where `dir` is a part
/// of a few-shot split of `space` itself, an error that says so: a part given for the
/// whole space is refused as trained for another space, true but not what to do.
fn part_of_split(dir: &Path, space: Option<&Space>, e: PipelineError) -> PipelineError {
    let (Some((dir, split, m)), Some(space)) = (split_holding(dir), space) else {
        return e;
    };
    if m.check_space(space, &split).is_err() {
        return e;
    }
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    PipelineError::Invalid(format!(
        "{} is part `{name}` of the few-shot split in {}: it holds only the genomes of that \
         part; give the split's folder for the whole space",
        dir.display(),
        split.display()
    ))
}

/// Where `dir` is a part of a few-shot split (its parent's `split.json` lists it): `dir`
/// and the split's folder (both canonical where they exist) and the split's manifest.
pub(crate) fn split_holding(dir: &Path) -> Option<(PathBuf, PathBuf, SplitManifest)> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let (parent, name) = (dir.parent()?, dir.file_name()?.to_string_lossy());
    let m = read_split(parent).ok()??;
    m.parts
        .iter()
        .any(|p| *p == name)
        .then(|| (dir.clone(), parent.to_path_buf(), m))
}

/// One supernet, or the parts of a few-shot split, loaded and checked against a run.
pub struct Supernets {
    /// The folder given: the supernet's, or the split's.
    pub dir: PathBuf,
    /// The decision the space was split by; `None`: one supernet.
    pub split: Option<SplitBy>,
    space: Space,
    /// Each with its label (`head128`; empty for one supernet).
    parts: Vec<(String, SupernetJudge)>,
}

impl Supernets {
    /// Loads the supernet or split in `dir`, refusing one trained for another space
    /// (`None`: its own), input or data ([`SupernetJudge::load`], for every part). A
    /// split's parts are the ones its space splits into, each in its folder.
    ///
    /// Errors: `split.json` or a part cannot be read; a mismatch, naming the field; a part
    /// that `split.json` lists and the space does not make, or the other way round.
    pub fn load(
        dir: &Path,
        space: Option<&Space>,
        data: &Dataset,
        data_identity: &str,
    ) -> Result<Supernets, PipelineError> {
        let Some(manifest) = read_split(dir)? else {
            let one = SupernetJudge::load(dir, space, data, data_identity)
                .map_err(|e| part_of_split(dir, space, e))?;
            return Ok(Supernets {
                dir: dir.to_path_buf(),
                split: None,
                space: one.space()?,
                parts: vec![(String::new(), one)],
            });
        };
        let wanted = space.unwrap_or(&manifest.space);
        manifest.check_space(wanted, dir)?;
        let parts = manifest.by.parts(wanted)?;
        let labels: Vec<&str> = parts.iter().map(|p| p.label.as_str()).collect();
        if labels != manifest.parts {
            let listed = match manifest.parts.is_empty() {
                true => "no parts".to_string(),
                false => format!("the parts {}", manifest.parts.join(", ")),
            };
            return Err(PipelineError::Invalid(format!(
                "{}: lists {listed} but the space split by `{}` makes {}",
                dir.join(kiln_supernet::split::SPLIT_FILE).display(),
                manifest.by,
                labels.join(", ")
            )));
        }
        let loaded = parts
            .into_iter()
            .map(|p| {
                let part = part_dir(dir, &p.label);
                if !part.join(kiln_supernet::STATE_FILE).is_file() {
                    return Err(PipelineError::Invalid(format!(
                        "the few-shot split in {} is not trained yet: part `{}` has no \
                         epoch ({} has no supernet.json); continue it with `cargo xtask \
                         supernet train --few-shot {} --resume -o {}`",
                        dir.display(),
                        p.label,
                        part.display(),
                        manifest.by,
                        dir.display()
                    )));
                }
                let judge = SupernetJudge::load(&part, Some(&p.space), data, data_identity)?;
                Ok((p.label, judge))
            })
            .collect::<Result<Vec<_>, PipelineError>>()?;
        Ok(Supernets {
            dir: dir.to_path_buf(),
            split: Some(manifest.by),
            space: wanted.clone(),
            parts: loaded,
        })
    }

    /// The genome in the JSON file `path`, read against the whole space these supernets
    /// hold.
    ///
    /// Errors: as [`Genome::load`]; for a part of a split loaded alone, a genome of
    /// another part says the folder is a part and names the split's folder.
    pub fn load_genome(&self, path: &Path) -> Result<Genome, PipelineError> {
        Genome::load(path, &self.space).map_err(|e| match split_holding(&self.dir) {
            Some((dir, split, _)) => PipelineError::Invalid(format!(
                "{e} ({} is part `{}` of the few-shot split in {}: give the split's folder \
                 for the whole space)",
                dir.display(),
                dir.file_name().unwrap_or_default().to_string_lossy(),
                split.display()
            )),
            None => e.into(),
        })
    }

    /// The supernet that holds `genome`: the one, or the part of the split its choice
    /// names.
    ///
    /// Errors: a genome whose choice no part holds (it is outside the space).
    pub fn for_genome(&self, genome: &Genome) -> Result<&SupernetJudge, PipelineError> {
        let Some(by) = self.split else {
            return Ok(&self.parts[0].1);
        };
        let label = by.label(genome);
        self.parts
            .iter()
            .find(|(l, _)| *l == label)
            .map(|(_, judge)| judge)
            .ok_or_else(|| {
                PipelineError::Invalid(format!(
                    "genome {} is not a sub-network of the split in {}: it belongs to part \
                     `{label}`, and the split has {}",
                    genome.id(),
                    self.dir.display(),
                    self.labels().join(", ")
                ))
            })
    }

    /// The content ids of the weights that judge ([`SupernetJudge::weights_id`]), a split's
    /// parts' in order, joined by commas: what a run or a benchmark names its supernet by.
    pub fn weights_id(&self) -> String {
        let ids: Vec<&str> = self.parts().map(|j| j.weights_id.as_str()).collect();
        ids.join(",")
    }

    /// Every supernet: the one, or each part of the split.
    pub fn parts(&self) -> impl Iterator<Item = &SupernetJudge> {
        self.parts.iter().map(|(_, judge)| judge)
    }

    /// The whole space (genomes are read against it).
    pub fn space(&self) -> &Space {
        &self.space
    }

    fn labels(&self) -> Vec<&str> {
        self.parts.iter().map(|(l, _)| l.as_str()).collect()
    }

    /// What judges, in words: `the supernet in DIR (2 epochs)`, or `the few-shot split
    /// of DIR by `head` (head0, head128, head256; 7 epochs each)`.
    pub fn describe(&self) -> String {
        let epochs: Vec<usize> = self.parts().map(|j| j.epochs).collect();
        let plural = |n: usize| if n == 1 { "epoch" } else { "epochs" };
        let each = if epochs.iter().all(|&e| e == epochs[0]) {
            format!("{} {} each", epochs[0], plural(epochs[0]))
        } else {
            let e: Vec<String> = epochs.iter().map(usize::to_string).collect();
            format!("{} epochs", e.join("/"))
        };
        match self.split {
            None => format!(
                "the supernet in {} ({} {})",
                self.dir.display(),
                epochs[0],
                plural(epochs[0])
            ),
            Some(by) => format!(
                "the few-shot split of {} by `{by}` ({}; {each})",
                self.dir.display(),
                self.labels().join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_supernet::SupernetConfig;
    use rand::SeedableRng;

    fn space() -> Space {
        let text = include_str!("../../../tests/fixtures/tiny-space.toml");
        Space::from_toml(text, "tiny").unwrap()
    }

    fn data() -> Dataset {
        let options = kiln_data::SplitOptions {
            seed: kiln_data::DEFAULT_SPLIT_SEED,
            validation_fraction: 0.1,
            train_limit: Some(96),
        };
        kiln_data::load(&kiln_data::Source::Mnist5k, &options).unwrap()
    }

    #[test]
    fn each_genome_is_judged_by_the_part_of_the_split_that_holds_it() {
        let (space, data) = (space(), data());
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("split");
        let config = SupernetConfig {
            epochs: 1,
            recalibration_images: 48,
            ..SupernetConfig::default()
        };
        kiln_supernet::split::train_split(
            &space,
            SplitBy::Head,
            &data,
            "t",
            &config,
            &dir,
            false,
            &mut |_| {},
        )
        .unwrap();
        let split = Supernets::load(&dir, Some(&space), &data, "t").unwrap();
        assert_eq!(split.split, Some(SplitBy::Head));
        assert_eq!(split.space(), &space);
        assert!(
            split
                .describe()
                .contains("by `head` (head0, head32; 1 epoch each)")
        );
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..6 {
            let g = Genome::sample(&space, &mut rng);
            let label = format!("head{}", g.head_width);
            let judge = split.for_genome(&g).unwrap();
            assert_eq!(judge.dir, dir.join(&label));
            // the part, loaded alone for its own space, judges the same
            let part_space = &SplitBy::Head.parts(&space).unwrap();
            let own = &part_space.iter().find(|p| p.label == label).unwrap().space;
            let alone = SupernetJudge::load(&judge.dir, Some(own), &data, "t").unwrap();
            let (a, b) = (judge.judge(&g, &data, false), alone.judge(&g, &data, false));
            assert_eq!(a.unwrap().validation_top1, b.unwrap().validation_top1);
            seen.insert(label);
        }
        assert_eq!(seen.len(), 2, "the sample reached both parts: {seen:?}");

        // a genome no part holds
        let mut outside = Genome::sample(&space, &mut rng);
        outside.head_width = 64;
        let e = split.for_genome(&outside).err().unwrap().to_string();
        assert!(
            e.contains("part `head64`") && e.contains("head0, head32"),
            "{e}"
        );
        // another space
        let mut other = space.clone();
        other.stem.widths = vec![4];
        let e = Supernets::load(&dir, Some(&other), &data, "t")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("another space"), "{e}");
        // one part alone is one supernet
        let one = Supernets::load(&dir.join("head32"), None, &data, "t").unwrap();
        assert_eq!(one.split, None);
        assert!(one.describe().starts_with("the supernet in"));
        // a manifest whose parts are not the space's
        let path = dir.join(kiln_supernet::split::SPLIT_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("\"head32\"", "\"head16\"")).unwrap();
        let e = Supernets::load(&dir, Some(&space), &data, "t")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("lists the parts head0, head16"), "{e}");
        // a split killed before a part's first epoch says how to continue it
        std::fs::write(&path, text).unwrap();
        std::fs::remove_file(dir.join("head32/supernet.json")).unwrap();
        let e = Supernets::load(&dir, Some(&space), &data, "t")
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("part `head32` has no epoch") && e.contains("--resume"),
            "{e}"
        );
    }
}
