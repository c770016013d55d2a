//! Genomes: one choice per decision of a space; sampling, mutation and crossover.

use std::fmt;
use std::path::Path;

use rand::Rng;
use rand::seq::IndexedRandom;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{Activation, InputSpec, Precision, Space, SpaceError, StageSpace};

/// One candidate: a choice for every decision of a [`Space`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genome {
    /// The name of the space this genome belongs to.
    pub space: String,
    /// Output channels of the stem conv.
    pub stem_width: usize,
    /// One entry per stage of the space, in order.
    pub stages: Vec<StageGene>,
    /// Output channels of the 1x1 head conv; 0 = no head conv.
    pub head_width: usize,
    /// Input side in pixels (square images), one of the space's `resolution` choices; `None`
    /// in a space without them (then absent from the JSON, so the id is unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<usize>,
    /// The number format it is built and measured in, one of the space's `precision`
    /// choices; `None` in a space without them (then absent from the JSON, so the id is
    /// unchanged, and the search-wide precision applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
}

/// The choices of one stage; its depth is the number of blocks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageGene {
    /// Output channels of every block of the stage.
    pub width: usize,
    /// The stage's blocks, input to output; the first applies the stage's stride.
    pub blocks: Vec<BlockGene>,
}

/// The choices of one inverted-residual block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockGene {
    /// Depthwise kernel size in pixels (square, odd).
    pub kernel: usize,
    /// Expand ratio: hidden channels = input channels x `expand`; 1 = no expand conv.
    pub expand: usize,
    /// Whether the block has squeeze-excite after the depthwise conv.
    pub se: bool,
    /// The activation after the expand and depthwise convs.
    pub activation: Activation,
}

impl Genome {
    /// Reads a genome from a JSON file and checks it against `space`.
    ///
    /// Errors: [`SpaceError::Io`] when the file cannot be read, otherwise as for
    /// [`Genome::from_json`] with the path as origin.
    pub fn load(path: &Path, space: &Space) -> Result<Genome, SpaceError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpaceError::Io {
            path: path.to_owned(),
            source,
        })?;
        Genome::from_json(&text, &path.display().to_string(), space)
    }

    /// Parses a genome from JSON and checks it against `space`; `origin` names it in errors.
    ///
    /// Errors: [`SpaceError::Parse`] for invalid JSON or a missing or unknown field; as
    /// [`Genome::validate`] for a choice the space does not offer.
    pub fn from_json(text: &str, origin: &str, space: &Space) -> Result<Genome, SpaceError> {
        let genome: Genome = serde_json::from_str(text).map_err(|e| SpaceError::Parse {
            origin: origin.to_owned(),
            message: e.to_string(),
        })?;
        genome.validate(space, origin)?;
        Ok(genome)
    }

    /// The genome as pretty JSON, the form users read and edit.
    pub fn to_json(&self) -> String {
        // A Genome holds only strings, integers, booleans and enums: serialising cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// A stable content id: the first 16 hex digits of the SHA-256 of the
    /// canonical (compact) JSON. Identical genomes share an id.
    pub fn id(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        let digest = Sha256::digest(&canonical);
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Checks every decision against the space; the error names the first
    /// decision out of range, e.g. `stages[1].blocks[0].kernel`.
    ///
    /// Errors: [`SpaceError::Invalid`] with that field path, for another space's name, a
    /// stage count that differs from the space's, or a value not among the choices.
    pub fn validate(&self, space: &Space, origin: &str) -> Result<(), SpaceError> {
        let bad = |field: String, message: String| SpaceError::Invalid {
            origin: origin.to_owned(),
            field,
            message,
        };
        if self.space != space.name {
            return Err(bad(
                "space".into(),
                format!("genome is for space `{}`, not `{}`", self.space, space.name),
            ));
        }
        check_choice(self.stem_width, &space.stem.widths)
            .map_err(|m| bad("stem_width".into(), m))?;
        check_choice(self.head_width, &space.head.widths)
            .map_err(|m| bad("head_width".into(), m))?;
        check_optional(self.resolution, &space.resolution, "resolutions")
            .map_err(|m| bad("resolution".into(), m))?;
        check_optional(self.precision, &space.precision, "precision")
            .map_err(|m| bad("precision".into(), m))?;
        if self.stages.len() != space.stages.len() {
            return Err(bad(
                "stages".into(),
                format!(
                    "has {} stages, the space has {}",
                    self.stages.len(),
                    space.stages.len()
                ),
            ));
        }
        for (i, (stage, choices)) in self.stages.iter().zip(&space.stages).enumerate() {
            check_choice(stage.width, &choices.widths)
                .map_err(|m| bad(format!("stages[{i}].width"), m))?;
            check_choice(stage.blocks.len(), &choices.depth)
                .map_err(|m| bad(format!("stages[{i}].blocks"), format!("depth {m}")))?;
            for (j, block) in stage.blocks.iter().enumerate() {
                let f = |name: &str| format!("stages[{i}].blocks[{j}].{name}");
                check_choice(block.kernel, &choices.kernels).map_err(|m| bad(f("kernel"), m))?;
                check_choice(block.expand, &choices.expand).map_err(|m| bad(f("expand"), m))?;
                check_choice(block.se, &choices.se).map_err(|m| bad(f("se"), m))?;
                check_choice(block.activation, &choices.activations)
                    .map_err(|m| bad(f("activation"), m))?;
            }
        }
        Ok(())
    }

    /// Draws every decision uniformly from its choices (block decisions for as many blocks as
    /// the drawn depth). The same `rng` state gives the same genome.
    pub fn sample(space: &Space, rng: &mut impl Rng) -> Genome {
        Genome {
            space: space.name.clone(),
            stem_width: pick(&space.stem.widths, rng),
            stages: space
                .stages
                .iter()
                .map(|s| {
                    let depth = pick(&s.depth, rng);
                    StageGene {
                        width: pick(&s.widths, rng),
                        blocks: (0..depth).map(|_| sample_block(s, rng)).collect(),
                    }
                })
                .collect(),
            head_width: pick(&space.head.widths, rng),
            // Drawn last, and only when the space lists resolutions: a space without them
            // samples exactly the genomes it sampled before the decision existed.
            resolution: space.resolution.as_ref().map(|sides| pick(sides, rng)),
            // Drawn after the resolution, for the same reason.
            precision: space.precision.as_ref().map(|formats| pick(formats, rng)),
        }
    }

    /// The genome's own precision when its space chooses one, else `search_wide`.
    pub fn precision_or(&self, search_wide: Precision) -> Precision {
        self.precision.unwrap_or(search_wide)
    }

    /// `input` at this genome's resolution (`side x side`) when it has one, else `input`.
    pub fn input(&self, input: InputSpec) -> InputSpec {
        match self.resolution {
            Some(side) => InputSpec {
                height: side,
                width: side,
                ..input
            },
            None => input,
        }
    }

    /// Returns a copy in which each decision was redrawn with probability
    /// `rate` (to a different value where there is one). If that changed
    /// nothing, one decision that has alternatives is changed, so a mutant
    /// always differs from its parent unless the space has a single point. `rate` is a
    /// probability (clamped to [0, 1]); a deeper stage gets freshly sampled blocks.
    pub fn mutate(&self, space: &Space, rate: f64, rng: &mut impl Rng) -> Genome {
        let rate = rate.clamp(0.0, 1.0);
        let mut child = self.clone();
        let decisions = child.decisions(space);
        for d in &decisions {
            if rng.random_bool(rate) {
                child.redraw(space, *d, rng);
            }
        }
        if child == *self {
            let open: Vec<Decision> = decisions
                .into_iter()
                .filter(|d| d.choice_count(space) > 1)
                .collect();
            if let Some(d) = open.choose(rng) {
                child.redraw(space, *d, rng);
            }
        }
        child
    }

    /// Uniform crossover: each decision comes from one parent or the other.
    /// A block slot that only one parent has is taken from that parent. Both parents must
    /// belong to the same space; the child takes `self`'s space name.
    pub fn crossover(&self, other: &Genome, rng: &mut impl Rng) -> Genome {
        let stages = self
            .stages
            .iter()
            .zip(&other.stages)
            .map(|(a, b)| {
                let depth = either(a.blocks.len(), b.blocks.len(), rng);
                let blocks = (0..depth)
                    .map(|j| match (a.blocks.get(j), b.blocks.get(j)) {
                        (Some(x), Some(y)) => BlockGene {
                            kernel: either(x.kernel, y.kernel, rng),
                            expand: either(x.expand, y.expand, rng),
                            se: either(x.se, y.se, rng),
                            activation: either(x.activation, y.activation, rng),
                        },
                        (Some(x), None) | (None, Some(x)) => *x,
                        (None, None) => unreachable!("depth is one of the parents' depths"),
                    })
                    .collect();
                StageGene {
                    width: either(a.width, b.width, rng),
                    blocks,
                }
            })
            .collect();
        Genome {
            space: self.space.clone(),
            stem_width: either(self.stem_width, other.stem_width, rng),
            stages,
            head_width: either(self.head_width, other.head_width, rng),
            resolution: match (self.resolution, other.resolution) {
                (Some(a), Some(b)) => Some(either(a, b, rng)),
                (a, b) => a.or(b),
            },
            precision: match (self.precision, other.precision) {
                (Some(a), Some(b)) => Some(either(a, b, rng)),
                (a, b) => a.or(b),
            },
        }
    }

    fn decisions(&self, space: &Space) -> Vec<Decision> {
        let mut out = vec![Decision::StemWidth, Decision::HeadWidth];
        if space.resolution.is_some() {
            out.push(Decision::Resolution);
        }
        if space.precision.is_some() {
            out.push(Decision::Precision);
        }
        for (i, stage) in self.stages.iter().enumerate().take(space.stages.len()) {
            out.push(Decision::Depth(i));
            out.push(Decision::Width(i));
            for j in 0..stage.blocks.len() {
                out.extend([
                    Decision::Kernel(i, j),
                    Decision::Expand(i, j),
                    Decision::Se(i, j),
                    Decision::Activation(i, j),
                ]);
            }
        }
        out
    }

    fn redraw(&mut self, space: &Space, decision: Decision, rng: &mut impl Rng) {
        match decision {
            Decision::StemWidth => {
                self.stem_width = pick_other(self.stem_width, &space.stem.widths, rng)
            }
            Decision::HeadWidth => {
                self.head_width = pick_other(self.head_width, &space.head.widths, rng)
            }
            Decision::Resolution => {
                if let (Some(r), Some(sides)) = (self.resolution, &space.resolution) {
                    self.resolution = Some(pick_other(r, sides, rng));
                }
            }
            Decision::Precision => {
                if let (Some(p), Some(formats)) = (self.precision, &space.precision) {
                    self.precision = Some(pick_other(p, formats, rng));
                }
            }
            Decision::Depth(i) => {
                let s = &space.stages[i];
                let blocks = &mut self.stages[i].blocks;
                let depth = pick_other(blocks.len(), &s.depth, rng);
                // Shallower: drop the last blocks. Deeper: new blocks are drawn fresh.
                blocks.truncate(depth);
                while blocks.len() < depth {
                    blocks.push(sample_block(s, rng));
                }
            }
            Decision::Width(i) => {
                self.stages[i].width =
                    pick_other(self.stages[i].width, &space.stages[i].widths, rng)
            }
            Decision::Kernel(i, j) => {
                // A depth mutation earlier in the same pass may have removed block j.
                if let Some(b) = self.stages[i].blocks.get_mut(j) {
                    b.kernel = pick_other(b.kernel, &space.stages[i].kernels, rng);
                }
            }
            Decision::Expand(i, j) => {
                if let Some(b) = self.stages[i].blocks.get_mut(j) {
                    b.expand = pick_other(b.expand, &space.stages[i].expand, rng);
                }
            }
            Decision::Se(i, j) => {
                if let Some(b) = self.stages[i].blocks.get_mut(j) {
                    b.se = pick_other(b.se, &space.stages[i].se, rng);
                }
            }
            Decision::Activation(i, j) => {
                if let Some(b) = self.stages[i].blocks.get_mut(j) {
                    b.activation = pick_other(b.activation, &space.stages[i].activations, rng);
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Decision {
    StemWidth,
    HeadWidth,
    Resolution,
    Precision,
    Depth(usize),
    Width(usize),
    Kernel(usize, usize),
    Expand(usize, usize),
    Se(usize, usize),
    Activation(usize, usize),
}

impl Decision {
    fn choice_count(self, space: &Space) -> usize {
        match self {
            Decision::StemWidth => space.stem.widths.len(),
            Decision::HeadWidth => space.head.widths.len(),
            Decision::Resolution => space.resolution.as_ref().map_or(1, Vec::len),
            Decision::Precision => space.precision.as_ref().map_or(1, Vec::len),
            Decision::Depth(i) => space.stages[i].depth.len(),
            Decision::Width(i) => space.stages[i].widths.len(),
            Decision::Kernel(i, _) => space.stages[i].kernels.len(),
            Decision::Expand(i, _) => space.stages[i].expand.len(),
            Decision::Se(i, _) => space.stages[i].se.len(),
            Decision::Activation(i, _) => space.stages[i].activations.len(),
        }
    }
}

fn sample_block(s: &StageSpace, rng: &mut impl Rng) -> BlockGene {
    BlockGene {
        kernel: pick(&s.kernels, rng),
        expand: pick(&s.expand, rng),
        se: pick(&s.se, rng),
        activation: pick(&s.activations, rng),
    }
}

fn either<T>(a: T, b: T, rng: &mut impl Rng) -> T {
    if rng.random_bool(0.5) { a } else { b }
}

/// Space validation guarantees non-empty choice lists.
fn pick<T: Copy>(choices: &[T], rng: &mut impl Rng) -> T {
    *choices
        .choose(rng)
        .expect("space validation rejects empty choice lists")
}

fn pick_other<T: Copy + PartialEq>(current: T, choices: &[T], rng: &mut impl Rng) -> T {
    let others: Vec<T> = choices.iter().copied().filter(|c| *c != current).collect();
    others.choose(rng).copied().unwrap_or(current)
}

/// A decision only some spaces make (`what`: resolutions, precision): absent from both the
/// genome and the space, or the genome's value among the space's choices.
fn check_optional<T: PartialEq + fmt::Debug + fmt::Display>(
    value: Option<T>,
    choices: &Option<Vec<T>>,
    what: &str,
) -> Result<(), String> {
    match (value, choices) {
        (None, None) => Ok(()),
        (Some(v), Some(c)) => check_choice(v, c),
        (None, Some(c)) => Err(format!("missing; the space chooses one of {c:?}")),
        (Some(v), None) => Err(format!("`{v}`, but the space lists no {what}")),
    }
}

fn check_choice<T: PartialEq + std::fmt::Debug>(value: T, choices: &[T]) -> Result<(), String> {
    if choices.contains(&value) {
        Ok(())
    } else {
        Err(format!("{value:?} is not one of {choices:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn space() -> Space {
        Space::from_toml(include_str!("../../../spaces/mobile.toml"), "mobile.toml").unwrap()
    }

    #[test]
    fn same_seed_same_genome() {
        let space = space();
        let a = Genome::sample(&space, &mut ChaCha8Rng::seed_from_u64(1));
        let b = Genome::sample(&space, &mut ChaCha8Rng::seed_from_u64(1));
        let c = Genome::sample(&space, &mut ChaCha8Rng::seed_from_u64(2));
        assert_eq!(a, b);
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), c.id());
    }

    #[test]
    fn samples_mutants_and_children_are_valid() {
        let space = space();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200 {
            let a = Genome::sample(&space, &mut rng);
            let b = Genome::sample(&space, &mut rng);
            a.validate(&space, "sample").unwrap();
            let m = a.mutate(&space, 0.1, &mut rng);
            m.validate(&space, "mutant").unwrap();
            assert_ne!(m, a, "a mutant differs from its parent");
            let child = a.crossover(&b, &mut rng);
            child.validate(&space, "child").unwrap();
        }
    }

    #[test]
    fn crossover_takes_each_decision_from_a_parent() {
        let space = space();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let a = Genome::sample(&space, &mut rng);
        let b = Genome::sample(&space, &mut rng);
        for _ in 0..50 {
            let c = a.crossover(&b, &mut rng);
            assert!(c.stem_width == a.stem_width || c.stem_width == b.stem_width);
            for (i, s) in c.stages.iter().enumerate() {
                assert!(s.width == a.stages[i].width || s.width == b.stages[i].width);
                assert!(
                    s.blocks.len() == a.stages[i].blocks.len()
                        || s.blocks.len() == b.stages[i].blocks.len()
                );
            }
        }
    }

    #[test]
    fn resolution_is_a_decision_only_where_the_space_lists_it() {
        let plain = space();
        let text = format!(
            "resolution = [64, 96, 128]\n{}",
            include_str!("../../../spaces/mobile.toml")
        );
        let sized = Space::from_toml(&text, "r.toml").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let a = Genome::sample(&sized, &mut rng);
            let b = Genome::sample(&sized, &mut rng);
            seen.insert(a.resolution.unwrap());
            a.mutate(&sized, 0.3, &mut rng)
                .validate(&sized, "m")
                .unwrap();
            let child = a.crossover(&b, &mut rng);
            assert!([a.resolution, b.resolution].contains(&child.resolution));
            let json = a.to_json();
            assert!(json.contains("\"resolution\""), "{json}");
            assert_eq!(Genome::from_json(&json, "g", &sized).unwrap(), a);
            // Its network takes side x side images.
            let input = a.input(InputSpec::MNIST);
            assert_eq!(
                (input.height, input.width),
                (a.resolution.unwrap(), a.resolution.unwrap())
            );
        }
        assert_eq!(seen.len(), 3, "{seen:?}");
        // Without the key: no resolution in the genome, the JSON or the id; the same draws.
        let g = Genome::sample(&plain, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(g.resolution, None);
        assert!(!g.to_json().contains("resolution"));
        assert_eq!(g.input(InputSpec::MNIST), InputSpec::MNIST);
        // A genome of one kind is refused by a space of the other, naming the field.
        let err = Genome::from_json(
            &g.to_json(),
            "g.json",
            &Space {
                name: "mobile".into(),
                ..sized.clone()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("resolution") && err.contains("[64, 96, 128]"),
            "{err}"
        );
        let sized_genome = Genome::sample(&sized, &mut rng);
        let err = sized_genome.validate(&plain, "g").unwrap_err().to_string();
        assert!(err.contains("lists no resolutions"), "{err}");
    }

    #[test]
    fn precision_is_a_decision_only_where_the_space_lists_it() {
        let plain = space();
        let text = format!(
            "precision = [\"f32\", \"int8\"]\n{}",
            include_str!("../../../spaces/mobile.toml")
        );
        let q = Space::from_toml(&text, "q.toml").unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let a = Genome::sample(&q, &mut rng);
            let b = Genome::sample(&q, &mut rng);
            seen.insert(a.precision.unwrap());
            // Every decision redrawn: the precision has one other choice, so it flips.
            let m = a.mutate(&q, 1.0, &mut rng);
            m.validate(&q, "m").unwrap();
            assert_ne!(m.precision, a.precision);
            let child = a.crossover(&b, &mut rng);
            assert!([a.precision, b.precision].contains(&child.precision));
            let json = a.to_json();
            assert!(json.contains(&format!("\"precision\": \"{}\"", a.precision.unwrap())));
            let back = Genome::from_json(&json, "g", &q).unwrap();
            assert_eq!((back.id(), &back), (a.id(), &a));
            // The choice vector carries it, last.
            let c = a.choices(&q).unwrap();
            let p = usize::from(a.precision == Some(Precision::Int8));
            assert_eq!(c.last(), Some(&Some(p)));
            let filled: Vec<usize> = c.iter().map(|x| x.unwrap_or(0)).collect();
            assert_eq!(Genome::from_choices(&q, &filled).unwrap(), a);
        }
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(q.choice_counts().len(), plain.choice_counts().len() + 1);
        // A genome whose precision decision is its only open one still mutates.
        let mut single = q.clone();
        single.stem.widths.truncate(1);
        single.head.widths.truncate(1);
        for s in &mut single.stages {
            for v in [&mut s.depth, &mut s.widths, &mut s.expand, &mut s.kernels] {
                v.truncate(1);
            }
            s.se.truncate(1);
            s.activations.truncate(1);
        }
        let g = Genome::sample(&single, &mut rng);
        assert_ne!(g.mutate(&single, 0.0, &mut rng).precision, g.precision);
        // The int8 genome's precision wins over the search-wide one; without one it applies.
        let int8 = Genome {
            precision: Some(Precision::Int8),
            ..g.clone()
        };
        assert_eq!(int8.precision_or(Precision::F32), Precision::Int8);
        let g = Genome::sample(&plain, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(g.precision_or(Precision::Int8), Precision::Int8);
        // A genome of one kind is refused by a space of the other, naming the field.
        let err = g.validate(&q, "g.json").unwrap_err().to_string();
        assert!(
            err.contains("precision") && err.contains("missing"),
            "{err}"
        );
        let err = int8.validate(&plain, "g").unwrap_err().to_string();
        assert!(
            err.contains("precision") && err.contains("lists no precision"),
            "{err}"
        );
    }

    #[test]
    fn a_genome_without_precision_keeps_its_id() {
        // crates/train/genomes/tiny.json, committed before the precision decision existed;
        // its id is the SHA-256 of its compact JSON as written then (computed outside kiln).
        let text = include_str!("../../../crates/train/genomes/tiny.json");
        let g = Genome::from_json(text, "tiny.json", &space()).unwrap();
        assert_eq!(g.precision, None);
        assert!(!g.to_json().contains("precision"));
        assert_eq!(g.id(), "e0329de740a2c298");
        // And a space without the key draws the genomes it drew before (same stream).
        let text = format!(
            "precision = [\"int8\"]\n{}",
            include_str!("../../../spaces/mobile.toml")
        );
        let q = Space::from_toml(&text, "q.toml").unwrap();
        let a = Genome::sample(&space(), &mut ChaCha8Rng::seed_from_u64(9));
        let b = Genome::sample(&q, &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(
            Genome {
                precision: None,
                ..b
            },
            a
        );
    }

    #[test]
    fn json_round_trip_keeps_id() {
        let space = space();
        let g = Genome::sample(&space, &mut ChaCha8Rng::seed_from_u64(5));
        let back = Genome::from_json(&g.to_json(), "g.json", &space).unwrap();
        assert_eq!(back.id(), g.id());
    }

    #[test]
    fn out_of_range_decision_is_named() {
        let space = space();
        let mut g = Genome::sample(&space, &mut ChaCha8Rng::seed_from_u64(5));
        g.stages[1].blocks[0].kernel = 9;
        let err = Genome::from_json(&g.to_json(), "g.json", &space)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("g.json") && err.contains("stages[1].blocks[0].kernel"),
            "{err}"
        );

        let text = Genome::sample(&space, &mut ChaCha8Rng::seed_from_u64(5))
            .to_json()
            .replacen("\"stem_width\"", "\"stem_widht\"", 1);
        let err = Genome::from_json(&text, "g.json", &space)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("g.json") && err.contains("stem_widht"),
            "{err}"
        );

        let err = Genome::from_json("{", "g.json", &space)
            .unwrap_err()
            .to_string();
        assert!(err.contains("g.json"), "{err}");
    }
}
