//! What a strategy needs of a search space.

use kiln_space::{Genome, Space};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A space a strategy can explore. Points are serde values so the journal
/// can store them; `id` is a content id: equal points have equal ids.
pub trait SearchSpace: Send + Sync {
    /// One candidate (a genome for [`GenomeSpace`]), stored in the journal
    /// as JSON.
    type Point: Clone + Send + Sync + Serialize + DeserializeOwned;
    /// A point drawn at random from the space.
    fn sample(&self, rng: &mut ChaCha8Rng) -> Self::Point;
    /// A point that differs from `parent` (unless the space has one point).
    fn mutate(&self, parent: &Self::Point, rng: &mut ChaCha8Rng) -> Self::Point;
    /// A point that mixes the decisions of `a` and `b`.
    fn crossover(&self, a: &Self::Point, b: &Self::Point, rng: &mut ChaCha8Rng) -> Self::Point;
    /// The point's content id (the journal's key: a point is evaluated once).
    fn id(&self, point: &Self::Point) -> String;
}

/// A space whose points are one option per categorical decision, for
/// strategies that keep a distribution per decision ([`crate::strategy::Reinforce`],
/// [`crate::strategy::Tpe`]).
pub trait CategoricalSpace: SearchSpace {
    /// The number of options of each decision, in a fixed order (every entry at least 1).
    fn choice_counts(&self) -> Vec<usize>;
    /// A point's option per decision; `None` for a decision the point does
    /// not use (a block slot beyond its stage's depth), or for every decision
    /// of a point from another space.
    fn encode(&self, point: &Self::Point) -> Vec<Option<usize>>;
    /// The point of one option index per decision (`choice_counts()`'s
    /// length, each below its count); `None` for any other vector.
    fn decode(&self, choices: &[usize]) -> Option<Self::Point>;
}

/// A kiln-space search space of genomes.
pub struct GenomeSpace {
    /// The space file the genomes come from.
    pub space: Space,
    /// Probability that each decision is redrawn by a mutation (at least one always is).
    pub mutation_rate: f64,
}

impl GenomeSpace {
    /// Wraps `space` with a mutation rate of 0.05 per decision.
    pub fn new(space: Space) -> Self {
        // About one or two of the ~30 decisions of spaces/mobile.toml per child:
        // small steps, as in regularized evolution.
        Self {
            space,
            mutation_rate: 0.05,
        }
    }
}

impl SearchSpace for GenomeSpace {
    type Point = Genome;
    fn sample(&self, rng: &mut ChaCha8Rng) -> Genome {
        Genome::sample(&self.space, rng)
    }
    fn mutate(&self, parent: &Genome, rng: &mut ChaCha8Rng) -> Genome {
        parent.mutate(&self.space, self.mutation_rate, rng)
    }
    fn crossover(&self, a: &Genome, b: &Genome, rng: &mut ChaCha8Rng) -> Genome {
        a.crossover(b, rng)
    }
    fn id(&self, point: &Genome) -> String {
        point.id()
    }
}

impl CategoricalSpace for GenomeSpace {
    fn choice_counts(&self) -> Vec<usize> {
        self.space.choice_counts()
    }
    fn encode(&self, point: &Genome) -> Vec<Option<usize>> {
        point
            .choices(&self.space)
            .unwrap_or_else(|_| vec![None; self.space.choice_counts().len()])
    }
    fn decode(&self, choices: &[usize]) -> Option<Genome> {
        Genome::from_choices(&self.space, choices).ok()
    }
}
