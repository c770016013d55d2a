//! Ask/tell search strategies.
//!
//! A strategy proposes points (`ask`) and learns outcomes (`tell`); it never
//! sees how points are evaluated or stored. Outcomes may arrive in any order
//! (several workers evaluate at once).

use std::collections::VecDeque;
use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::pareto::{Direction, crowding_distance, non_dominated_sort};
use crate::{CategoricalSpace, Objective, SearchSpace};

mod ask_stream;
mod learned;
mod reinforce;
#[cfg(test)]
mod toy_tests;
mod tpe;

pub use learned::Learned;
pub use reinforce::{Reinforce, ReinforceConfig};
pub use tpe::{Tpe, TpeConfig};

/// What became of an evaluated point.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Met every hard constraint.
    Feasible {
        /// The trial's [`crate::Fitness`], larger is better; a non-finite
        /// value never joins a population.
        fitness: f64,
        /// The trial's objective values in the order of
        /// [`crate::SearchConfig::objectives`], each in its metric's unit
        /// (accuracy a fraction, latency ms); empty when one is missing.
        objectives: Vec<f64>,
    },
    /// Broke a hard constraint: never a parent.
    Infeasible,
    /// Could not be evaluated (build error, trap): never a parent.
    Failed,
}

/// How a proposed point was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Sampled uniformly from the space.
    Random,
    /// A mutant of one tournament winner.
    Mutation,
    /// A crossover of two tournament winners, then mutated.
    Crossover,
    /// Drawn from a learned distribution ([`Reinforce`]'s policy, [`Tpe`]'s
    /// density of good points).
    Model,
}

impl Outcome {
    /// A feasible outcome with a fitness and no objective values.
    pub fn feasible(fitness: f64) -> Outcome {
        Outcome::Feasible {
            fitness,
            objectives: Vec::new(),
        }
    }
}

impl Origin {
    /// `random`, `mutation`, `crossover` or `model` (the journal's `origin` column).
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Random => "random",
            Origin::Mutation => "mutation",
            Origin::Crossover => "crossover",
            Origin::Model => "model",
        }
    }
}

/// The ask/tell interface.
pub trait Strategy<P>: Send {
    /// Proposes the next point and how it was made. May repeat a point
    /// already in the journal (the driver then tells it the stored outcome
    /// again, if the trial has finished).
    fn ask(&mut self) -> (P, Origin);
    /// Reports what became of a point, in any order relative to `ask`.
    fn tell(&mut self, point: &P, outcome: Outcome);
    /// Rebuilds state from a journal's history (in the order trials were
    /// asked): counts each as asked and tells its outcome when it has one.
    fn replay(&mut self, history: &[(P, Option<Outcome>)]);
}

/// Which strategy a search uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrategyKind {
    /// [`AgingEvolution`] with tournaments on the scalar fitness.
    Evolution,
    /// [`RandomSearch`].
    Random,
    /// [`AgingEvolution`] with NSGA-II parent selection
    /// ([`AgingEvolution::with_pareto_selection`]).
    Nsga2,
    /// [`Reinforce`], MnasNet's policy-gradient controller.
    Reinforce,
    /// [`Tpe`], the Tree-structured Parzen Estimator.
    Tpe,
    /// [`Learned`] from FBNet's differentiable search (kiln-supernet's `dnas`).
    Dnas,
}

impl StrategyKind {
    /// Every strategy, in the order of [`StrategyKind::name`]'s list.
    pub const ALL: [StrategyKind; 6] = [
        StrategyKind::Evolution,
        StrategyKind::Random,
        StrategyKind::Nsga2,
        StrategyKind::Reinforce,
        StrategyKind::Tpe,
        StrategyKind::Dnas,
    ];

    /// `evolution`, `random`, `nsga2`, `reinforce`, `tpe` or `dnas` (the journal's
    /// `strategy` field).
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Evolution => "evolution",
            StrategyKind::Random => "random",
            StrategyKind::Nsga2 => "nsga2",
            StrategyKind::Reinforce => "reinforce",
            StrategyKind::Tpe => "tpe",
            StrategyKind::Dnas => "dnas",
        }
    }

    /// The strategy [`StrategyKind::name`] names.
    ///
    /// Errors: any other name; the message lists the known ones.
    pub fn parse(name: &str) -> Result<StrategyKind, String> {
        let known = Self::ALL.map(|k| k.name());
        Self::ALL
            .into_iter()
            .find(|k| k.name() == name.trim())
            .ok_or_else(|| format!("unknown strategy `{name}` ({})", known.join(", ")))
    }

    /// Whether it is the aging evolution (either parent selection), whose
    /// [`EvolutionConfig`] belongs to the run's identity.
    pub fn is_evolution(self) -> bool {
        matches!(self, StrategyKind::Evolution | StrategyKind::Nsga2)
    }
}

/// The strategy `kind` over `space`, seeded with `seed`: `evolution` for the
/// aging evolution's settings, `objectives` (the run's, in
/// [`crate::SearchConfig::objectives`]'s order) for NSGA-II's ranking, `learned`
/// for `dnas` (its search's distribution; without one, `dnas` draws uniformly).
pub fn build<S: CategoricalSpace + 'static>(
    kind: StrategyKind,
    space: Arc<S>,
    evolution: EvolutionConfig,
    objectives: &[Objective],
    learned: Option<Vec<Vec<f64>>>,
    seed: u64,
) -> Box<dyn Strategy<S::Point>> {
    match kind {
        StrategyKind::Evolution => Box::new(AgingEvolution::new(space, evolution, seed)),
        StrategyKind::Random => Box::new(RandomSearch::new(space, seed)),
        StrategyKind::Nsga2 => Box::new(
            AgingEvolution::new(space, evolution, seed)
                .with_pareto_selection(objectives.iter().map(|o| o.direction()).collect()),
        ),
        StrategyKind::Reinforce => {
            Box::new(Reinforce::new(space, ReinforceConfig::default(), seed))
        }
        StrategyKind::Tpe => Box::new(Tpe::new(space, TpeConfig::default(), seed)),
        StrategyKind::Dnas => Box::new(Learned::new(space, learned.unwrap_or_default(), seed)),
    }
}

/// Uniform random sampling: the baseline every strategy must beat.
pub struct RandomSearch<S: SearchSpace> {
    space: Arc<S>,
    rng: ChaCha8Rng,
}

impl<S: SearchSpace> RandomSearch<S> {
    /// Samples `space` from a ChaCha8 stream seeded with `seed`.
    pub fn new(space: Arc<S>, seed: u64) -> Self {
        Self {
            space,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }
}

impl<S: SearchSpace> Strategy<S::Point> for RandomSearch<S> {
    fn ask(&mut self) -> (S::Point, Origin) {
        (self.space.sample(&mut self.rng), Origin::Random)
    }
    fn tell(&mut self, _point: &S::Point, _outcome: Outcome) {}
    fn replay(&mut self, history: &[(S::Point, Option<Outcome>)]) {
        // Advance the stream past the points already drawn, so a resumed run
        // continues the same sequence instead of repeating it.
        for _ in history {
            let _ = self.space.sample(&mut self.rng);
        }
    }
}

/// Settings of aging evolution.
#[derive(Debug, Clone, Copy)]
pub struct EvolutionConfig {
    /// Members kept alive; the first `population` asks are random samples.
    pub population: usize,
    /// Members drawn (with replacement) per tournament; the fittest is a parent.
    pub tournament: usize,
    /// Probability that a child is a crossover of two tournament winners
    /// (then mutated) rather than a mutant of one.
    pub crossover: f64,
}

impl EvolutionConfig {
    /// Refuses settings evolution cannot run with, naming the flag: a population or a
    /// tournament of 0, a crossover probability outside 0..=1.
    ///
    /// Errors: the message.
    pub fn validate(&self) -> Result<(), String> {
        if self.population == 0 {
            return Err("--population must be at least 1".into());
        }
        if self.tournament == 0 {
            return Err("--tournament must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.crossover) {
            return Err(format!(
                "--crossover is a probability, 0 to 1, not {}",
                self.crossover
            ));
        }
        Ok(())
    }
}

impl Default for EvolutionConfig {
    fn default() -> Self {
        Self {
            population: 16,
            tournament: 4,
            crossover: 0.0,
        }
    }
}

/// Regularized (aging) evolution (Real et al. 2019, "Regularized Evolution
/// for Image Classifier Architecture Search"): children come from tournament
/// winners, and the oldest member leaves when a child joins, so no
/// architecture survives long on one lucky evaluation. Only feasible points
/// with a finite fitness join the population.
pub struct AgingEvolution<S: SearchSpace> {
    space: Arc<S>,
    config: EvolutionConfig,
    rng: ChaCha8Rng,
    /// Feasible members, oldest first.
    population: VecDeque<(S::Point, f64)>,
    /// The members' objective values (same order as `population`).
    objectives: VecDeque<Vec<f64>>,
    /// NSGA-II parent selection over these objectives' directions.
    pareto: Option<Vec<Direction>>,
    asked: usize,
}

impl<S: SearchSpace> AgingEvolution<S> {
    /// An empty population over `space`, seeded with `seed`. `population` and
    /// `tournament` below 1 are raised to 1, `crossover` clamped to 0..1.
    pub fn new(space: Arc<S>, config: EvolutionConfig, seed: u64) -> Self {
        Self {
            space,
            config: EvolutionConfig {
                population: config.population.max(1),
                tournament: config.tournament.max(1),
                crossover: config.crossover.clamp(0.0, 1.0),
            },
            rng: ChaCha8Rng::seed_from_u64(seed),
            population: VecDeque::new(),
            objectives: VecDeque::new(),
            pareto: None,
            asked: 0,
        }
    }

    /// NSGA-II parent selection (Deb et al. 2002, "A fast and elitist
    /// multiobjective genetic algorithm: NSGA-II"): each parent is the winner
    /// of a binary tournament under the crowded-comparison order (lower
    /// Pareto rank, then larger crowding distance) over the population's
    /// objective values ([`Outcome::Feasible`]'s `objectives`, one
    /// `directions` entry each), so the whole front breeds, not only the
    /// fittest point. Survival stays aging (the oldest member leaves), not
    /// NSGA-II's elitist truncation. A member told without objective values
    /// is ranked on its fitness alone (with every member).
    pub fn with_pareto_selection(mut self, directions: Vec<Direction>) -> Self {
        self.pareto = Some(directions);
        self
    }

    /// The current members with their fitness, oldest first.
    pub fn population(&self) -> impl Iterator<Item = &(S::Point, f64)> {
        self.population.iter()
    }

    fn tournament(&mut self) -> S::Point {
        if let Some(directions) = &self.pareto {
            let winner = pareto_tournament(
                &self.population,
                &self.objectives,
                directions,
                &mut self.rng,
            );
            return self.population[winner].0.clone();
        }
        let mut best: Option<&(S::Point, f64)> = None;
        for _ in 0..self.config.tournament {
            let i = self.rng.random_range(0..self.population.len());
            let m = &self.population[i];
            if best.is_none_or(|b| m.1 > b.1) {
                best = Some(m);
            }
        }
        // The population is not empty here (checked by the caller).
        best.map(|b| b.0.clone())
            .unwrap_or_else(|| self.population[0].0.clone())
    }

    fn join(&mut self, point: &S::Point, outcome: &Outcome) {
        if let Outcome::Feasible {
            fitness,
            objectives,
        } = outcome
            && fitness.is_finite()
        {
            self.population.push_back((point.clone(), *fitness));
            self.objectives.push_back(objectives.clone());
            while self.population.len() > self.config.population {
                self.population.pop_front();
                self.objectives.pop_front();
            }
        }
    }
}

impl<S: SearchSpace> Strategy<S::Point> for AgingEvolution<S> {
    fn ask(&mut self) -> (S::Point, Origin) {
        self.asked += 1;
        if self.asked <= self.config.population || self.population.is_empty() {
            return (self.space.sample(&mut self.rng), Origin::Random);
        }
        let parent = self.tournament();
        if self.config.crossover > 0.0 && self.rng.random_bool(self.config.crossover) {
            let other = self.tournament();
            let child = self.space.crossover(&parent, &other, &mut self.rng);
            (self.space.mutate(&child, &mut self.rng), Origin::Crossover)
        } else {
            (self.space.mutate(&parent, &mut self.rng), Origin::Mutation)
        }
    }

    fn tell(&mut self, point: &S::Point, outcome: Outcome) {
        self.join(point, &outcome);
    }

    fn replay(&mut self, history: &[(S::Point, Option<Outcome>)]) {
        self.asked += history.len();
        // A different stream than the original run's from here on: the
        // original interleaving of asks and tells is not recorded.
        self.rng = ChaCha8Rng::seed_from_u64(self.rng.random::<u64>() ^ history.len() as u64);
        for (point, outcome) in history {
            if let Some(outcome) = outcome {
                self.join(point, outcome);
            }
        }
    }
}

/// The index of the winner of one binary tournament under NSGA-II's
/// crowded-comparison order (Deb et al. 2002): two members drawn with
/// replacement; the lower non-domination rank wins, then the larger crowding
/// distance, then the first drawn. Members' objective vectors of another
/// length than `directions` make every member ranked on its fitness alone.
fn pareto_tournament<P>(
    population: &VecDeque<(P, f64)>,
    objectives: &VecDeque<Vec<f64>>,
    directions: &[Direction],
    rng: &mut ChaCha8Rng,
) -> usize {
    let complete = objectives.iter().all(|o| o.len() == directions.len()) && !directions.is_empty();
    let (points, dirs): (Vec<Vec<f64>>, Vec<Direction>) = if complete {
        (objectives.iter().cloned().collect(), directions.to_vec())
    } else {
        (
            population.iter().map(|(_, f)| vec![*f]).collect(),
            vec![Direction::Maximize],
        )
    };
    let mut rank = vec![0usize; points.len()];
    let mut crowding = vec![0.0; points.len()];
    for (r, front) in non_dominated_sort(&points, &dirs).into_iter().enumerate() {
        for (i, d) in front.iter().zip(crowding_distance(&front, &points)) {
            rank[*i] = r;
            crowding[*i] = d;
        }
    }
    let a = rng.random_range(0..points.len());
    let b = rng.random_range(0..points.len());
    let better = rank[b] < rank[a] || (rank[b] == rank[a] && crowding[b] > crowding[a]);
    if better { b } else { a }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Bit strings of length N; fitness = number of ones (OneMax) or a
    /// deceptive variant. A known landscape for strategy tests.
    pub struct Bits(pub usize);

    impl SearchSpace for Bits {
        type Point = Vec<bool>;
        fn sample(&self, rng: &mut ChaCha8Rng) -> Vec<bool> {
            (0..self.0).map(|_| rng.random_bool(0.5)).collect()
        }
        fn mutate(&self, parent: &Vec<bool>, rng: &mut ChaCha8Rng) -> Vec<bool> {
            let mut c = parent.clone();
            let i = rng.random_range(0..self.0);
            c[i] = !c[i];
            c
        }
        fn crossover(&self, a: &Vec<bool>, b: &Vec<bool>, rng: &mut ChaCha8Rng) -> Vec<bool> {
            a.iter()
                .zip(b)
                .map(|(x, y)| if rng.random_bool(0.5) { *x } else { *y })
                .collect()
        }
        fn id(&self, p: &Vec<bool>) -> String {
            p.iter().map(|b| if *b { '1' } else { '0' }).collect()
        }
    }

    fn ones(p: &[bool]) -> f64 {
        p.iter().filter(|b| **b).count() as f64
    }

    fn best_after(strategy: &mut dyn Strategy<Vec<bool>>, budget: usize) -> f64 {
        let mut best = f64::MIN;
        for _ in 0..budget {
            let (p, _) = strategy.ask();
            let f = ones(&p);
            best = best.max(f);
            strategy.tell(&p, Outcome::feasible(f));
        }
        best
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }

    #[test]
    fn evolution_settings_it_cannot_run_with_are_named() {
        assert!(EvolutionConfig::default().validate().is_ok());
        for (config, flag) in [
            (
                EvolutionConfig {
                    population: 0,
                    ..Default::default()
                },
                "--population",
            ),
            (
                EvolutionConfig {
                    tournament: 0,
                    ..Default::default()
                },
                "--tournament",
            ),
            (
                EvolutionConfig {
                    crossover: 2.0,
                    ..Default::default()
                },
                "--crossover",
            ),
            (
                EvolutionConfig {
                    crossover: -0.5,
                    ..Default::default()
                },
                "--crossover",
            ),
            (
                EvolutionConfig {
                    crossover: f64::NAN,
                    ..Default::default()
                },
                "--crossover",
            ),
        ] {
            assert!(config.validate().unwrap_err().starts_with(flag));
        }
    }

    #[test]
    fn evolution_beats_random_on_onemax_across_seeds() {
        let space = Arc::new(Bits(40));
        let config = EvolutionConfig {
            population: 20,
            tournament: 5,
            crossover: 0.0,
        };
        let mut evo = Vec::new();
        let mut rnd = Vec::new();
        for seed in 0..5 {
            evo.push(best_after(
                &mut AgingEvolution::new(space.clone(), config, seed),
                200,
            ));
            rnd.push(best_after(&mut RandomSearch::new(space.clone(), seed), 200));
        }
        // Random search's best of 200 draws of 40 fair bits is near 28;
        // evolution climbs well past it.
        assert!(
            median(evo.clone()) >= median(rnd.clone()) + 5.0,
            "evolution {evo:?} vs random {rnd:?}"
        );
    }

    #[test]
    fn seeded_strategies_are_reproducible() {
        let space = Arc::new(Bits(16));
        let run = |seed| {
            let mut s = AgingEvolution::new(
                space.clone(),
                EvolutionConfig {
                    population: 4,
                    tournament: 2,
                    crossover: 0.5,
                },
                seed,
            );
            (0..30)
                .map(|_| {
                    let (p, _) = s.ask();
                    s.tell(&p, Outcome::feasible(ones(&p)));
                    space.id(&p)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn infeasible_and_failed_points_never_become_parents() {
        let space = Arc::new(Bits(12));
        let mut s = AgingEvolution::new(
            space.clone(),
            EvolutionConfig {
                population: 3,
                tournament: 3,
                crossover: 0.0,
            },
            1,
        );
        let mut feasible = Vec::new();
        for i in 0..40 {
            let (p, _) = s.ask();
            let outcome = match i % 3 {
                0 => Outcome::Infeasible,
                1 => Outcome::Failed,
                _ => {
                    feasible.push(p.clone());
                    Outcome::feasible(ones(&p))
                }
            };
            s.tell(&p, outcome);
            for (member, _) in s.population() {
                assert!(feasible.contains(member));
            }
        }
        // The oldest leaves: never more than `population` members.
        assert!(s.population().count() <= 3);
    }

    #[test]
    fn children_are_mutants_after_the_random_warm_up() {
        let space = Arc::new(Bits(12));
        let mut s = AgingEvolution::new(
            space,
            EvolutionConfig {
                population: 5,
                tournament: 2,
                crossover: 0.0,
            },
            3,
        );
        for i in 0..12 {
            let (p, origin) = s.ask();
            let expected = if i < 5 {
                Origin::Random
            } else {
                Origin::Mutation
            };
            assert_eq!(origin, expected, "ask {i}");
            s.tell(&p, Outcome::feasible(ones(&p)));
        }
    }
}
