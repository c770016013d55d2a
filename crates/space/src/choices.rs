//! A space's decisions as a fixed list of categorical choices, and genomes as
//! choice vectors: the encoding of policy-gradient and Bayesian strategies
//! (one categorical distribution per decision, as MnasNet's controller and
//! TPE's categorical densities use).
//!
//! The list, in order: stem width; per stage, its depth, its width, then for
//! every block slot up to the stage's largest depth the slot's kernel, expand
//! ratio, squeeze-excite and activation; head width; the input resolution when the space
//! lists resolutions, then the precision when it lists precisions (last, so other spaces'
//! lists are unchanged). A slot beyond a genome's
//! depth is inactive: [`Genome::choices`] gives `None` there and
//! [`Genome::from_choices`] ignores it.

use crate::{BlockGene, Genome, Space, SpaceError, StageGene};

impl Space {
    /// The number of options of every decision, in the order of the module
    /// docs (`spaces/mobile.toml`: stem and head, 2 per stage, 4 per block slot
    /// of 12 slots up to each stage's largest depth: 2 + 8 + 48 = 58).
    pub fn choice_counts(&self) -> Vec<usize> {
        let mut out = vec![self.stem.widths.len()];
        for s in &self.stages {
            out.push(s.depth.len());
            out.push(s.widths.len());
            let slots = s.depth.iter().copied().max().unwrap_or(0);
            for _ in 0..slots {
                out.extend([
                    s.kernels.len(),
                    s.expand.len(),
                    s.se.len(),
                    s.activations.len(),
                ]);
            }
        }
        out.push(self.head.widths.len());
        if let Some(sides) = &self.resolution {
            out.push(sides.len());
        }
        if let Some(formats) = &self.precision {
            out.push(formats.len());
        }
        out
    }
}

impl Genome {
    /// The genome made of one option index per decision of
    /// [`Space::choice_counts`] (indices into the space's lists; inactive
    /// block slots are read but unused).
    ///
    /// Errors: [`SpaceError::Invalid`] when `choices` has another length than
    /// the space's decision list or an index is out of its decision's range
    /// (the field names the decision's position).
    pub fn from_choices(space: &Space, choices: &[usize]) -> Result<Genome, SpaceError> {
        let counts = space.choice_counts();
        let bad = |field: String, message: String| SpaceError::Invalid {
            origin: "choice vector".into(),
            field,
            message,
        };
        if choices.len() != counts.len() {
            return Err(bad(
                "length".into(),
                format!(
                    "{} choices for a space of {} decisions",
                    choices.len(),
                    counts.len()
                ),
            ));
        }
        if let Some((i, (c, n))) = choices
            .iter()
            .zip(&counts)
            .enumerate()
            .find(|(_, (c, n))| c >= n)
        {
            return Err(bad(format!("[{i}]"), format!("option {c} of {n}")));
        }
        let mut next = choices.iter().copied();
        // The length and every index were checked above.
        let mut take = || next.next().unwrap_or(0);
        let stem_width = space.stem.widths[take()];
        let mut stages = Vec::with_capacity(space.stages.len());
        for s in &space.stages {
            let depth = s.depth[take()];
            let width = s.widths[take()];
            let slots = s.depth.iter().copied().max().unwrap_or(0);
            let mut blocks = Vec::with_capacity(depth);
            for j in 0..slots {
                let block = BlockGene {
                    kernel: s.kernels[take()],
                    expand: s.expand[take()],
                    se: s.se[take()],
                    activation: s.activations[take()],
                };
                if j < depth {
                    blocks.push(block);
                }
            }
            stages.push(StageGene { width, blocks });
        }
        let head_width = space.head.widths[take()];
        let resolution = space.resolution.as_ref().map(|sides| sides[take()]);
        let precision = space.precision.as_ref().map(|formats| formats[take()]);
        Ok(Genome {
            space: space.name.clone(),
            stem_width,
            stages,
            head_width,
            resolution,
            precision,
        })
    }

    /// One option index per decision of [`Space::choice_counts`]; `None` for
    /// the block slots beyond a stage's depth.
    ///
    /// Errors: [`SpaceError::Invalid`] when the genome does not belong to
    /// `space` (as [`Genome::validate`] says).
    pub fn choices(&self, space: &Space) -> Result<Vec<Option<usize>>, SpaceError> {
        self.validate(space, "genome")?;
        fn index<T: PartialEq>(value: &T, options: &[T]) -> Option<usize> {
            options.iter().position(|o| o == value)
        }
        let mut out = vec![index(&self.stem_width, &space.stem.widths)];
        for (gene, s) in self.stages.iter().zip(&space.stages) {
            out.push(index(&gene.blocks.len(), &s.depth));
            out.push(index(&gene.width, &s.widths));
            let slots = s.depth.iter().copied().max().unwrap_or(0);
            for j in 0..slots {
                match gene.blocks.get(j) {
                    Some(b) => out.extend([
                        index(&b.kernel, &s.kernels),
                        index(&b.expand, &s.expand),
                        index(&b.se, &s.se),
                        index(&b.activation, &s.activations),
                    ]),
                    None => out.extend([None; 4]),
                }
            }
        }
        out.push(index(&self.head_width, &space.head.widths));
        if let (Some(r), Some(sides)) = (self.resolution, &space.resolution) {
            out.push(index(&r, sides));
        }
        if let (Some(p), Some(formats)) = (self.precision, &space.precision) {
            out.push(index(&p, formats));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn mobile() -> Space {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../spaces/mobile.toml");
        Space::load(&path).expect("bundled space")
    }

    #[test]
    fn sampled_genomes_round_trip_through_their_choices() {
        let space = mobile();
        assert_eq!(space.choice_counts().len(), 2 + 4 * 2 + 4 * (2 + 3 + 4 + 3));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        for _ in 0..50 {
            let g = Genome::sample(&space, &mut rng);
            let c = g.choices(&space).expect("own space");
            let active: usize = g
                .stages
                .iter()
                .map(|s| 4 * s.blocks.len() + 2)
                .sum::<usize>()
                + 2;
            assert_eq!(c.iter().flatten().count(), active);
            let filled: Vec<usize> = c.iter().map(|x| x.unwrap_or(0)).collect();
            assert_eq!(Genome::from_choices(&space, &filled).expect("in range"), g);
        }
    }

    #[test]
    fn wrong_lengths_and_indices_are_refused() {
        let space = mobile();
        let n = space.choice_counts().len();
        let err = Genome::from_choices(&space, &vec![0; n - 1]).unwrap_err();
        assert!(
            err.to_string().contains("57 choices for a space of 58"),
            "{err}"
        );
        let mut c = vec![0; n];
        c[0] = 3;
        let err = Genome::from_choices(&space, &c).unwrap_err();
        assert!(err.to_string().contains("`[0]`: option 3 of 3"), "{err}");
    }
}
