//! The ranking benchmark's pairs file, the one owner of its format: the judge bench
//! (`benches/judge.rs`) writes it, the bench's later sittings and the pipeline's `ranking`
//! and `fine_tune` examples read it.
//!
//! ```text
//! data,IDENTITY                     the data and split (kiln_data's identity line)
//! scored,IMAGES                     only when scored on held-out images, not the validation split
//! done,INDEX,GENOME,INHERITED,STAND_ALONE,WEIGHTS   one line a genome, as it finishes (any order)
//! ```
//!
//! `INDEX` is the genome's position in [`crate::ranking_genomes`]'s sample of the space the
//! bench drew from (the supernet's, or its `--space`), `GENOME` its id,
//! the two accuracies top-1 fractions (`host`): inherited from the supernet (batch norm
//! recalibrated) and trained from scratch, `WEIGHTS` the content id of the supernet that
//! judged it ([`crate::weights_id`]; for a split, the part's). A file written before the
//! bench wrote a `data` line holds the bundled digits' pairs; lines written before it wrote
//! `WEIGHTS` (four fields after `done`) name their supernet only in the docs beside them.

use std::path::{Path, PathBuf};

use kiln_data::{Dataset, Source, Split, SplitOptions};
use kiln_space::Genome;

/// How a pairs file names accuracies measured on the validation split (the default; a file
/// without a `scored` line holds these).
pub const VALIDATION: &str = "the validation split";

/// A pairs file that cannot be read or used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum PairsError {
    /// The file cannot be read.
    #[error("{path}: {message}")]
    Read {
        /// The pairs file.
        path: String,
        /// The I/O error.
        message: String,
    },
    /// A `done` line without five or six fields or with a field that is not a number.
    #[error("{path}:{line}: expected done,index,genome,inherited,stand_alone[,weights]")]
    Line {
        /// The pairs file.
        path: String,
        /// 1-based line number.
        line: usize,
    },
    /// `--held-out` images that cannot score a ranking: unreadable, of another shape or
    /// class count, or shared with the training or validation images.
    #[error("--held-out {dir}: {message}")]
    HeldOut {
        /// The IDX folder, as given.
        dir: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file measured on other data or other images than the run that uses it.
    #[error("{path}: pairs {field} {theirs}, but this run {wanted}")]
    Mismatch {
        /// The pairs file.
        path: String,
        /// `measured on` (the data line), `scored on` (the scored line) or `inherited from
        /// supernet weights` (a pair's weights).
        field: &'static str,
        /// The file's value.
        theirs: String,
        /// This run's, in words (`reads ...`, `scores on ...`).
        wanted: String,
    },
    /// A genome that is not the sample's at its index: a file of another space.
    #[error(
        "{path}:{line}: genome {theirs} at index {index}, but this run's is {ours} (a file of \
         another space: the judge bench draws from the supernet's space, or from --space)"
    )]
    Genome {
        /// The pairs file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The index on that line.
        index: usize,
        /// The file's genome id.
        theirs: String,
        /// This run's genome id at that index.
        ours: String,
    },
}

/// One finished genome of a pairs file.
#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    /// Its index in the ranking sample.
    pub index: usize,
    /// Its genome id.
    pub genome: String,
    /// Inherited top-1, a fraction.
    pub inherited: f64,
    /// Stand-alone top-1 (trained from scratch), a fraction.
    pub stand_alone: f64,
    /// The 1-based line it was read from (0 for a pair not read from a file).
    pub line: usize,
    /// The content id of the supernet that judged it ([`crate::weights_id`]; a split's
    /// part's), `None` for a line written before pairs named it.
    pub weights: Option<String>,
}

impl Pair {
    /// Its `done,...` line (accuracies to 4 decimals, as the bench has always written them).
    pub fn to_line(&self) -> String {
        let (i, g) = (self.index, &self.genome);
        let w = self
            .weights
            .as_ref()
            .map_or(String::new(), |w| format!(",{w}"));
        format!(
            "done,{i},{g},{:.4},{:.4}{w}",
            self.inherited, self.stand_alone
        )
    }
}

/// A whole pairs file, read once.
#[derive(Debug, Clone, PartialEq)]
pub struct PairsFile {
    /// The file it was read from (named in errors).
    pub path: PathBuf,
    /// The data and split its pairs were measured on (its `data,` line, or the bundled
    /// digits' identity for a file without one).
    pub data: String,
    /// Its `scored,` line (e.g. `the test images of idx:data/fashion-5k-heldout (...)`), or
    /// `None` for `data`'s validation split.
    pub scored: Option<String>,
    /// Its pairs in index order.
    pub pairs: Vec<Pair>,
}

impl PairsFile {
    /// Parses `text`, the contents of the pairs file `origin` (named in errors). Lines other
    /// than `data,`, `scored,` and `done,` are skipped.
    ///
    /// Errors: [`PairsError::Line`] for a malformed `done` line.
    pub fn parse(text: &str, origin: &Path) -> Result<PairsFile, PairsError> {
        let header = |prefix: &str| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix(prefix).map(str::to_owned))
        };
        let mut pairs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let fields: Vec<&str> = line.trim().split(',').collect();
            if fields.first() != Some(&"done") {
                continue;
            }
            let bad = || PairsError::Line {
                path: origin.display().to_string(),
                line: n + 1,
            };
            let (index, genome, inherited, stand_alone, weights) = match fields[..] {
                [_, i, g, a, b] => (i, g, a, b, None),
                [_, i, g, a, b, w] => (i, g, a, b, Some(w.to_owned())),
                _ => return Err(bad()),
            };
            pairs.push(Pair {
                index: index.parse().map_err(|_| bad())?,
                genome: genome.to_owned(),
                inherited: inherited.parse().map_err(|_| bad())?,
                stand_alone: stand_alone.parse().map_err(|_| bad())?,
                line: n + 1,
                weights,
            });
        }
        pairs.sort_by_key(|p| p.index);
        Ok(PairsFile {
            path: origin.to_path_buf(),
            data: header("data,").unwrap_or_else(bundled_digits),
            scored: header("scored,"),
            pairs,
        })
    }

    /// Reads and parses the pairs file at `path`.
    ///
    /// Errors: [`PairsError::Read`] when it cannot be read; as [`PairsFile::parse`].
    pub fn read(path: &Path) -> Result<PairsFile, PairsError> {
        let text = std::fs::read_to_string(path).map_err(|e| PairsError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        PairsFile::parse(&text, path)
    }

    /// What its accuracies were measured on, in words.
    pub fn scored_on(&self) -> String {
        self.scored
            .clone()
            .unwrap_or_else(|| format!("{VALIDATION} of {}", self.data))
    }

    /// Refuses a run that would judge a genome this file holds with other weights than
    /// judged it: `judges[i]` is the content id of the supernet that judges genome `i` in
    /// this run (`None`: none holds it). Pairs of genomes no supernet of this run holds (a
    /// hand-made split's other parts), and lines that name no weights, are not checked.
    ///
    /// Errors: [`PairsError::Mismatch`] naming both weights.
    pub fn check_judged_by(&self, judges: &[Option<&str>]) -> Result<(), PairsError> {
        let other = self.pairs.iter().find_map(|p| {
            let (theirs, ours) = (p.weights.as_deref()?, (*judges.get(p.index)?)?);
            (theirs != ours).then(|| (theirs.to_owned(), ours))
        });
        let Some((theirs, ours)) = other else {
            return Ok(());
        };
        Err(PairsError::Mismatch {
            path: self.path.display().to_string(),
            field: "inherited from supernet weights",
            theirs,
            wanted: format!(
                "judges the same genomes with weights {ours} (a supernet trained further or \
                 again, or another one: give another --pairs file)"
            ),
        })
    }

    /// Its pairs, checked against a run that reads `data` (an identity line), scores on
    /// `scored_on` ([`VALIDATION`] or a `scored` line) and samples `genomes`; pairs past
    /// the sample's end are left out (a file of more candidates: the first are this run's).
    ///
    /// Errors: [`PairsError::Mismatch`] for other data or other scored images,
    /// [`PairsError::Genome`] for a genome that is not the sample's at its index.
    pub fn for_run(
        &self,
        data: &str,
        scored_on: &str,
        genomes: &[Genome],
    ) -> Result<&[Pair], PairsError> {
        let path = self.path.display().to_string();
        if self.data != data {
            let wanted = format!("reads {data}");
            let (theirs, field) = (self.data.clone(), "measured on");
            return Err(PairsError::Mismatch {
                path,
                field,
                theirs,
                wanted,
            });
        }
        let theirs = self.scored.as_deref().unwrap_or(VALIDATION);
        if theirs != scored_on {
            let (theirs, wanted) = (theirs.to_owned(), format!("scores on {scored_on}"));
            let field = "scored on";
            return Err(PairsError::Mismatch {
                path,
                field,
                theirs,
                wanted,
            });
        }
        let within = self.pairs.partition_point(|p| p.index < genomes.len());
        for p in &self.pairs[..within] {
            let ours = genomes[p.index].id();
            if ours != p.genome {
                let (line, index, theirs) = (p.line, p.index, p.genome.clone());
                return Err(PairsError::Genome {
                    path,
                    line,
                    index,
                    theirs,
                    ours,
                });
            }
        }
        Ok(&self.pairs[..within])
    }
}

/// The header a new pairs file starts with: its `data,` line and, for held-out scoring, its
/// `scored,` line, each ending in a newline.
pub fn header(data: &str, scored: Option<&str>) -> String {
    match scored {
        Some(images) => format!("data,{data}\nscored,{images}\n"),
        None => format!("data,{data}\n"),
    }
}

/// The test images of the IDX folder `dir` (`named` as the user gave it, from where the
/// commands are typed) that stand in for `data`'s test split when a ranking is scored on
/// held-out images (`--held-out`), split as `split`, and the `scored` line that names them
/// (`the test images of idx:NAMED (N images, content ID)`): many more images than the
/// validation split holds, none of them seen in training.
///
/// Errors: [`PairsError::HeldOut`] (naming `dir`) when the folder does not load, holds images of another
/// shape or class count than `data`, or shares an image with `data`'s training or
/// validation images (byte for byte).
pub fn held_out_images(
    dir: &Path,
    named: &str,
    data: &Dataset,
    split: &SplitOptions,
) -> Result<(Split, String), PairsError> {
    let source = Source::Idx(dir.into());
    let wrong = |message: String| PairsError::HeldOut {
        dir: source.name(),
        message,
    };
    let theirs = kiln_data::load(&source, split).map_err(|e| wrong(e.to_string()))?;
    if theirs.shape != data.shape || theirs.classes != data.classes {
        return Err(wrong(format!(
            "{:?} images of {} classes, but the supernet's data has {:?} of {}",
            theirs.input_shape(),
            theirs.classes,
            data.input_shape(),
            data.classes
        )));
    }
    let seen: std::collections::HashSet<&[u8]> = [&data.train, &data.validation]
        .into_iter()
        .flat_map(|s| (0..s.len()).map(|i| s.image(i)))
        .collect();
    let shared = (0..theirs.test.len())
        .filter(|&i| seen.contains(theirs.test.image(i)))
        .count();
    if shared > 0 {
        return Err(wrong(format!(
            "{shared} of its test images are training or validation images"
        )));
    }
    let scored = format!(
        "the test images of {} ({} images, content {})",
        Source::Idx(named.into()).name(),
        theirs.test.len(),
        theirs.content_id()
    );
    Ok((theirs.test, scored))
}

/// The mean of one genome's accuracies from several trainings (fractions, as a pairs file
/// gives them to 4 decimals), rounded to 1e-6, so two genomes whose accuracies sum alike
/// tie exactly whatever order floating point added them in (unrounded, a tie can become a
/// concordant or discordant pair by an ulp and move Kendall's tau-b). `NaN` for none.
pub fn mean_accuracy(accuracies: &[f64]) -> f64 {
    let mean = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
    (mean * 1e6).round() / 1e6
}

fn bundled_digits() -> String {
    Source::Mnist5k.identity(&SplitOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path() -> &'static Path {
        Path::new("runs/pairs.csv")
    }

    #[test]
    fn means_of_equal_sums_tie_whatever_the_order() {
        // two genomes' four trainings (docs/ranking/fashion/held-out*): equal sums whose
        // unrounded means differ by an ulp
        let (a, b) = (
            [0.8582, 0.851, 0.8472, 0.847],
            [0.8507, 0.8582, 0.8413, 0.8532],
        );
        let unrounded = |v: &[f64]| v.iter().sum::<f64>() / 4.0;
        assert_ne!(unrounded(&a), unrounded(&b));
        assert_eq!(mean_accuracy(&a), mean_accuracy(&b));
        assert_eq!(mean_accuracy(&[0.85, 0.86]), 0.855);
        assert!(mean_accuracy(&[]).is_nan());
    }

    #[test]
    fn written_lines_read_back_in_index_order() {
        let a = Pair {
            index: 1,
            genome: "bb".into(),
            inherited: 0.8002,
            stand_alone: 0.8469,
            line: 0,
            weights: Some("0123".into()),
        };
        let b = Pair {
            index: 0,
            genome: "aa".into(),
            weights: None,
            ..a.clone()
        };
        let text = format!(
            "{}{}\n{}\n",
            header("idx:x", Some("held-out y")),
            a.to_line(),
            b.to_line()
        );
        let file = PairsFile::parse(&text, path()).unwrap();
        assert_eq!(file.data, "idx:x");
        assert_eq!(file.scored_on(), "held-out y");
        let ids: Vec<&str> = file.pairs.iter().map(|p| p.genome.as_str()).collect();
        assert_eq!(ids, ["aa", "bb"]);
        assert_eq!(file.pairs[1].to_line(), "done,1,bb,0.8002,0.8469,0123");
        assert_eq!(file.pairs[0].to_line(), "done,0,aa,0.8002,0.8469");
        assert_eq!(file.pairs[1].line, 3);
    }

    #[test]
    fn a_genome_judged_by_other_weights_is_not_judged_again_into_the_file() {
        let text =
            "data,idx:x\ndone,0,aa,0.5,0.6,aaaa\ndone,1,bb,0.5,0.6,cccc\ndone,2,cc,0.5,0.6\n";
        let file = PairsFile::parse(text, path()).unwrap();
        assert!(file.check_judged_by(&[Some("aaaa"), None, None]).is_ok());
        let err = file.check_judged_by(&[Some("bbbb"), None, None]);
        let err = err.unwrap_err().to_string();
        assert!(
            err.starts_with("runs/pairs.csv: pairs inherited from supernet weights aaaa, but this run judges the same genomes with weights bbbb"),
            "{err}"
        );
        // another part of a hand-made split holds other genomes; a line that names no
        // weights is not checked
        assert!(
            file.check_judged_by(&[None, Some("cccc"), Some("dddd")])
                .is_ok()
        );
    }

    #[test]
    fn a_file_without_header_holds_the_bundled_digits_on_validation() {
        let file = PairsFile::parse("done,0,aa,0.5,0.6\n", path()).unwrap();
        assert_eq!(file.data, bundled_digits());
        assert!(file.scored_on().starts_with("the validation split of "));
    }

    #[test]
    fn a_malformed_line_names_file_and_line() {
        let err = PairsFile::parse("data,x\ndone,0,aa,0.5\n", path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "runs/pairs.csv:2: expected done,index,genome,inherited,stand_alone[,weights]"
        );
        let err = PairsFile::parse("done,0,aa,0.5,high\n", path()).unwrap_err();
        assert!(matches!(err, PairsError::Line { line: 1, .. }), "{err}");
    }

    #[test]
    fn a_run_refuses_other_data_scoring_or_space() {
        let text = include_str!("../../../spaces/mobile.toml");
        let space = kiln_space::Space::from_toml(text, "spaces/mobile.toml").unwrap();
        let genomes = crate::ranking_genomes(&space, 2);
        let (g0, g1) = (genomes[0].id(), genomes[1].id());
        let text = format!("data,idx:x\ndone,1,{g1},0.5,0.6\ndone,0,{g0},0.5,0.6\ndone,2,zz,0,0\n");
        let file = PairsFile::parse(&text, path()).unwrap();
        let ok = file.for_run("idx:x", VALIDATION, &genomes).unwrap();
        assert_eq!(ok.len(), 2, "the pair past the sample is left out");
        let err = file.for_run("idx:y", VALIDATION, &genomes).unwrap_err();
        assert_eq!(
            err.to_string(),
            "runs/pairs.csv: pairs measured on idx:x, but this run reads idx:y"
        );
        let err = file.for_run("idx:x", "held-out", &genomes).unwrap_err();
        assert!(
            matches!(
                err,
                PairsError::Mismatch {
                    field: "scored on",
                    ..
                }
            ),
            "{err}"
        );
        let swapped = text.replace(&format!("0,{g0}"), &format!("0,{g1}"));
        let file = PairsFile::parse(&swapped, path()).unwrap();
        let err = file.for_run("idx:x", VALIDATION, &genomes).unwrap_err();
        assert!(
            matches!(
                err,
                PairsError::Genome {
                    line: 3,
                    index: 0,
                    ..
                }
            ),
            "{err}"
        );
    }
}
