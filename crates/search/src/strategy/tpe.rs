//! The Tree-structured Parzen Estimator over a space's categorical decisions.

use std::collections::HashSet;
use std::sync::Arc;

use rand::Rng;

use super::ask_stream::AskStream;
use super::reinforce::draw;
use super::{Origin, Outcome, Strategy};
use crate::CategoricalSpace;

/// Settings of [`Tpe`] (defaults: Optuna's `TPESampler`).
#[derive(Debug, Clone, Copy)]
pub struct TpeConfig {
    /// Points observed before the densities are used; until then asks are
    /// uniform random (Optuna: `n_startup_trials = 10`).
    pub startup: usize,
    /// Candidates drawn from the good density per ask; the one with the
    /// largest `l(x) / g(x)` is proposed (Optuna: `n_ei_candidates = 24`).
    pub candidates: usize,
    /// Weight of the uniform prior mixed into each decision's counts
    /// (Optuna: `prior_weight = 1.0`).
    pub prior_weight: f64,
}

impl Default for TpeConfig {
    fn default() -> Self {
        Self {
            startup: 10,
            candidates: 24,
            prior_weight: 1.0,
        }
    }
}

/// The Tree-structured Parzen Estimator (Bergstra et al. 2011, "Algorithms
/// for Hyper-Parameter Optimization"; Optuna's default sampler) over the
/// space's categorical decisions.
///
/// Observed points are split by quality: the best `gamma(n) = min(ceil(0.1
/// n), 25)` of the n observations (Optuna's default gamma) are good, the rest
/// bad. Per decision d, `l_d(k) = (good points with option k + w/K) / (good
/// points using d + w)`, `g_d` likewise over the bad ones (K options, w the
/// prior weight): smoothed categorical densities, independent per decision
/// (the "tree" is the conditional structure: a block slot's decisions count
/// only for points deep enough to use it). Each ask draws
/// [`TpeConfig::candidates`] points from `l` and proposes the one that
/// maximises `sum_d log l_d(x_d) - log g_d(x_d)` over the decisions it uses
/// (the expected-improvement criterion of the paper), preferring points not
/// proposed before. Observation weights (Optuna's down-weighting of old
/// trials) are not used.
///
/// Constraints: an infeasible trial is always in the bad group, ranked below
/// every feasible one, as Optuna's constrained TPE ranks infeasible trials
/// below feasible ones; it is informative (its decisions are what to avoid),
/// and kiln often rejects it by predicted latency without an accuracy to rank
/// it by. A good group has only feasible points (it is empty until one
/// exists, and `l` is then the uniform prior). Failed trials are ignored.
///
/// Resume: as [`super::Reinforce`], asks draw from
/// [`super::ask_stream`]'s streams and the state is the set of observations,
/// so a replayed journal continues with the asks of the uninterrupted run.
pub struct Tpe<S: CategoricalSpace> {
    space: Arc<S>,
    config: TpeConfig,
    counts: Vec<usize>,
    /// Told points: option per decision, and fitness (`None`: infeasible).
    observations: Vec<(Vec<Option<usize>>, Option<f64>)>,
    stream: AskStream,
    told: HashSet<String>,
}

/// Optuna's default split: the best `min(ceil(0.1 n), 25)` of `n` are good.
pub fn gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

impl<S: CategoricalSpace> Tpe<S> {
    /// No observations yet over `space`, seeded with `seed`.
    pub fn new(space: Arc<S>, config: TpeConfig, seed: u64) -> Self {
        let counts = space
            .choice_counts()
            .into_iter()
            .map(|n| n.max(1))
            .collect();
        Self {
            space,
            config,
            counts,
            observations: Vec::new(),
            stream: AskStream::new(seed),
            told: HashSet::new(),
        }
    }

    /// The good and bad observations' indices (best first in the good group).
    fn split(&self) -> (Vec<usize>, Vec<usize>) {
        let mut feasible: Vec<(usize, f64)> = self
            .observations
            .iter()
            .enumerate()
            .filter_map(|(i, (_, f))| f.map(|f| (i, f)))
            .collect();
        feasible.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let n_good = gamma(self.observations.len()).min(feasible.len());
        let good: Vec<usize> = feasible[..n_good].iter().map(|(i, _)| *i).collect();
        let bad = (0..self.observations.len())
            .filter(|i| !good.contains(i))
            .collect();
        (good, bad)
    }

    /// Per decision, the smoothed categorical density of the observations `group`.
    fn density(&self, group: &[usize]) -> Vec<Vec<f64>> {
        let w = self.config.prior_weight.max(1e-9);
        self.counts
            .iter()
            .enumerate()
            .map(|(d, &k)| {
                let mut c = vec![w / k as f64; k];
                let mut total = w;
                for &i in group {
                    if let Some(x) = self.observations[i].0.get(d).copied().flatten()
                        && x < k
                    {
                        c[x] += 1.0;
                        total += 1.0;
                    }
                }
                c.into_iter().map(|x| x / total).collect()
            })
            .collect()
    }
}

impl<S: CategoricalSpace> Strategy<S::Point> for Tpe<S> {
    fn ask(&mut self) -> (S::Point, Origin) {
        let mut rng = self.stream.rng();
        if self.observations.len() < self.config.startup {
            let choices: Vec<usize> = self
                .counts
                .iter()
                .map(|&k| rng.random_range(0..k))
                .collect();
            let point = self
                .space
                .decode(&choices)
                .unwrap_or_else(|| self.space.sample(&mut rng));
            self.stream.proposed(self.space.id(&point));
            return (point, Origin::Random);
        }
        let (good, bad) = self.split();
        let (l, g) = (self.density(&good), self.density(&bad));
        // (seen before, score, point): the largest tuple under (unseen first, score) wins.
        let mut best: Option<(bool, f64, S::Point)> = None;
        for _ in 0..self.config.candidates.max(1) {
            let choices: Vec<usize> = l.iter().map(|p| draw(p, &mut rng)).collect();
            let Some(point) = self.space.decode(&choices) else {
                continue;
            };
            let score: f64 = self
                .space
                .encode(&point)
                .iter()
                .enumerate()
                .filter_map(|(d, x)| x.map(|x| (d, x)))
                .map(|(d, x)| l[d][x].ln() - g[d][x].ln())
                .sum();
            let seen = self.stream.seen(&self.space.id(&point));
            if best
                .as_ref()
                .is_none_or(|(s, b, _)| (*s && !seen) || (*s == seen && score > *b))
            {
                best = Some((seen, score, point));
            }
        }
        let point = match best {
            Some((_, _, p)) => p,
            None => self.space.sample(&mut rng),
        };
        self.stream.proposed(self.space.id(&point));
        (point, Origin::Model)
    }

    fn tell(&mut self, point: &S::Point, outcome: Outcome) {
        if !self.told.insert(self.space.id(point)) {
            return;
        }
        let value = match outcome {
            Outcome::Feasible { fitness, .. } if fitness.is_finite() => Some(fitness),
            Outcome::Infeasible => None,
            Outcome::Feasible { .. } | Outcome::Failed => return,
        };
        self.observations.push((self.space.encode(point), value));
    }

    fn replay(&mut self, history: &[(S::Point, Option<Outcome>)]) {
        self.stream
            .replay(history.iter().map(|(p, _)| self.space.id(p)));
        for (point, outcome) in history {
            if let Some(outcome) = outcome {
                self.tell(point, outcome.clone());
            }
        }
    }
}
