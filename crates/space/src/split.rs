//! Few-shot splits of a space (Zhao et al., "Few-shot Neural Architecture Search", ICML
//! 2021): the space divided by one decision into parts, each the space with that decision
//! fixed at one of its choices, so every genome of the space belongs to exactly one part.
//! One supernet is trained per part; a sub-network then shares weights only with genomes
//! that made the same choice.

use serde::{Deserialize, Serialize};

use crate::{Genome, Space, SpaceError};

/// The decision a space is split by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitBy {
    /// The width of the 1x1 head conv (`[head] widths`; 0, no head conv, is a part too).
    /// On Fashion-MNIST it is the decision that trained-from-scratch accuracy follows most
    /// and one supernet ranks backwards (docs/ranking/README.md).
    Head,
}

impl SplitBy {
    /// Every split, by name.
    pub const ALL: [SplitBy; 1] = [SplitBy::Head];

    /// The name a command line and `split.json` use (`head`).
    pub fn name(self) -> &'static str {
        match self {
            SplitBy::Head => "head",
        }
    }

    /// The split called `name`.
    ///
    /// Errors: [`SpaceError::Parse`] naming the splits there are.
    pub fn parse(name: &str) -> Result<SplitBy, SpaceError> {
        SplitBy::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| SpaceError::Parse {
                origin: "split".into(),
                message: format!(
                    "unknown split `{name}`; the splits are: {}",
                    SplitBy::ALL.map(SplitBy::name).join(", ")
                ),
            })
    }

    /// The label of the part `genome` belongs to (`head128`; a folder name).
    pub fn label(self, genome: &Genome) -> String {
        match self {
            SplitBy::Head => format!("head{}", genome.head_width),
        }
    }

    /// `space`'s parts, in the order of the decision's choices in the space file. Each
    /// keeps the space's name, so its genomes keep their ids.
    ///
    /// Errors: [`SpaceError::Invalid`] when the decision has fewer than two choices (there
    /// is nothing to split).
    pub fn parts(self, space: &Space) -> Result<Vec<SpacePart>, SpaceError> {
        let parts: Vec<SpacePart> = match self {
            SplitBy::Head => unique(&space.head.widths)
                .into_iter()
                .map(|w| {
                    let mut part = space.clone();
                    part.head.widths = vec![w];
                    SpacePart {
                        label: format!("head{w}"),
                        space: part,
                    }
                })
                .collect(),
        };
        if parts.len() < 2 {
            return Err(SpaceError::Invalid {
                origin: format!("space `{}`", space.name),
                field: "head.widths".into(),
                message: format!(
                    "a split by `{}` needs at least two choices; the space has {}",
                    self.name(),
                    parts.len()
                ),
            });
        }
        Ok(parts)
    }
}

/// `values` without repeats, in their first order (a space may list a choice twice; it is
/// one part).
fn unique<T: PartialEq + Copy>(values: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for &v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

impl std::str::FromStr for SplitBy {
    type Err = SpaceError;

    fn from_str(name: &str) -> Result<SplitBy, SpaceError> {
        SplitBy::parse(name)
    }
}

impl std::fmt::Display for SplitBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One part of a split space.
#[derive(Debug, Clone, PartialEq)]
pub struct SpacePart {
    /// Its label ([`SplitBy::label`] of each of its genomes).
    pub label: String,
    /// The space with the split's decision fixed.
    pub space: Space,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn mobile() -> Space {
        Space::from_toml(include_str!("../../../spaces/mobile.toml"), "mobile").unwrap()
    }

    #[test]
    fn every_genome_belongs_to_exactly_the_part_its_label_names() {
        let space = mobile();
        let parts = SplitBy::Head.parts(&space).unwrap();
        let labels: Vec<&str> = parts.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["head0", "head128", "head256"]);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..50 {
            let g = Genome::sample(&space, &mut rng);
            let holders: Vec<&str> = parts
                .iter()
                .filter(|p| g.validate(&p.space, "genome").is_ok())
                .map(|p| p.label.as_str())
                .collect();
            assert_eq!(holders, [SplitBy::Head.label(&g)]);
        }
        // a part is the space but for the decision split by
        let mut back = parts[1].space.clone();
        back.head.widths = space.head.widths.clone();
        assert_eq!(back, space);
    }

    #[test]
    fn the_measured_split_is_the_one_the_command_trains() {
        // docs/ranking's few-shot figures came from hand-written part spaces: they are the
        // parts `--few-shot head` trains, so those figures are this split's
        let parts = SplitBy::Head.parts(&mobile()).unwrap();
        let committed = [
            include_str!("../../../docs/ranking/fashion/few-shot-head/mobile-head0.toml"),
            include_str!("../../../docs/ranking/fashion/few-shot-head/mobile-head128.toml"),
            include_str!("../../../docs/ranking/fashion/few-shot-head/mobile-head256.toml"),
        ];
        for (part, text) in parts.iter().zip(committed) {
            assert_eq!(part.space, Space::from_toml(text, &part.label).unwrap());
        }
    }

    #[test]
    fn a_decision_with_one_choice_cannot_be_split_and_names_are_checked() {
        let mut space = mobile();
        space.head.widths = vec![0, 128, 0];
        let labels: Vec<String> = SplitBy::Head
            .parts(&space)
            .unwrap()
            .into_iter()
            .map(|p| p.label)
            .collect();
        assert_eq!(labels, ["head0", "head128"]);
        space.head.widths = vec![128, 128];
        let e = SplitBy::Head.parts(&space).unwrap_err().to_string();
        assert!(
            e.contains("head.widths") && e.contains("at least two"),
            "{e}"
        );
        assert_eq!(SplitBy::parse("head").unwrap(), SplitBy::Head);
        let e = SplitBy::parse("depth").unwrap_err().to_string();
        assert!(
            e.contains("unknown split `depth`") && e.contains("head"),
            "{e}"
        );
    }
}
