//! The two ends of the sandwich rule: the largest and the smallest sub-network of a space.

use kiln_space::{Activation, BlockGene, Genome, Space, StageGene};

fn max(v: &[usize]) -> usize {
    v.iter().copied().max().unwrap_or(0)
}

fn min(v: &[usize]) -> usize {
    v.iter().copied().min().unwrap_or(0)
}

/// Every choice at its largest: widest, deepest, largest kernel and expand ratio,
/// squeeze-excite where offered; each block's first activation choice.
pub fn largest(space: &Space) -> Genome {
    end(space, true)
}

/// Every choice at its smallest: narrowest, shallowest, smallest kernel and expand ratio,
/// no squeeze-excite where that may be chosen; each block's first activation choice.
pub fn smallest(space: &Space) -> Genome {
    end(space, false)
}

fn end(space: &Space, big: bool) -> Genome {
    let pick = |v: &[usize]| if big { max(v) } else { min(v) };
    Genome {
        space: space.name.clone(),
        stem_width: pick(&space.stem.widths),
        stages: space
            .stages
            .iter()
            .map(|s| StageGene {
                width: pick(&s.widths),
                blocks: (0..pick(&s.depth))
                    .map(|_| BlockGene {
                        kernel: pick(&s.kernels),
                        expand: pick(&s.expand),
                        se: if big {
                            s.se.contains(&true)
                        } else {
                            !s.se.contains(&false)
                        },
                        activation: s.activations.first().copied().unwrap_or(Activation::Relu6),
                    })
                    .collect(),
            })
            .collect(),
        head_width: pick(&space.head.widths),
        resolution: space.resolution.as_ref().map(|r| pick(r)),
        // Weight sharing trains f32 weights: precision does not change the sub-network.
        precision: space.precision.as_ref().and_then(|p| p.first().copied()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_belong_to_the_space() {
        let space = Space::from_toml(include_str!("../../../spaces/mobile.toml"), "m").unwrap();
        let (l, s) = (largest(&space), smallest(&space));
        l.validate(&space, "largest").unwrap();
        s.validate(&space, "smallest").unwrap();
        assert_eq!(l.stem_width, 16);
        assert_eq!(l.stages[2].blocks.len(), 4);
        assert!(l.stages[0].blocks[0].se && !s.stages[0].blocks[0].se);
        assert_eq!(s.head_width, 0);
    }
}
