//! MnasNet's controller as a factorised policy trained by REINFORCE.

use std::collections::HashSet;
use std::sync::Arc;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::ask_stream::AskStream;
use super::{Origin, Outcome, Strategy};
use crate::CategoricalSpace;

/// Settings of [`Reinforce`].
#[derive(Debug, Clone, Copy)]
pub struct ReinforceConfig {
    /// Step size on the logits per told point, per unit of normalised advantage.
    pub learning_rate: f64,
    /// Decay of the moving-average baseline and of the advantages' moving
    /// mean square (0.9: about the last ten rewards).
    pub baseline_decay: f64,
}

impl Default for ReinforceConfig {
    fn default() -> Self {
        Self {
            learning_rate: 0.3,
            baseline_decay: 0.9,
        }
    }
}

/// The policy-gradient search of MnasNet (Tan et al. 2019, "MnasNet:
/// Platform-Aware Neural Architecture Search for Mobile", after Zoph & Le
/// 2017): a policy with one categorical distribution (softmax over logits,
/// all zero at first: uniform) per decision of the space, sampled
/// independently; each told point moves the logits of the decisions it uses
/// by REINFORCE (Williams 1992): `theta_d += lr * A * (onehot(x_d) - softmax(theta_d))`.
/// MnasNet's controller is an RNN trained with PPO; this is the factorised
/// form with plain REINFORCE.
///
/// Reward: the trial's fitness, which kiln-pipeline makes MnasNet's
/// `ACC x (LAT/T)^-0.07` for this strategy ([`crate::Fitness::Mnas`]).
/// Infeasible trials get reward 0. MnasNet's hard-constraint setting (§3:
/// `alpha = 0, beta = -1`) would give `ACC x (LAT/T)^-1` beyond T, but kiln
/// rejects most such candidates by predicted latency before judging them, so
/// their accuracy is unknown; 0 is that penalty's limit for a large excess,
/// and it also covers the other hard constraints (size, memory). Failed trials
/// say nothing about the architecture and are not learnt from.
///
/// Advantage `A = (r - b) / rms`: `b` the moving average of rewards (the
/// first reward starts it), `rms` the moving root mean square of `r - b`, so
/// the reward's scale does not set the step size.
///
/// Resume: asks draw from [`super::ask_stream`]'s streams, and each point is
/// learnt from once (a repeat told again changes nothing), so after
/// [`Strategy::replay`] of a journal written by one worker the next asks are
/// those of the uninterrupted run. With several workers, tells came in
/// completion order and replay uses ask order: the state is close, not equal.
pub struct Reinforce<S: CategoricalSpace> {
    space: Arc<S>,
    config: ReinforceConfig,
    logits: Vec<Vec<f64>>,
    baseline: Option<f64>,
    mean_square: f64,
    stream: AskStream,
    told: HashSet<String>,
}

impl<S: CategoricalSpace> Reinforce<S> {
    /// A uniform policy over `space`'s decisions, seeded with `seed`.
    pub fn new(space: Arc<S>, config: ReinforceConfig, seed: u64) -> Self {
        let logits = space
            .choice_counts()
            .into_iter()
            .map(|n| vec![0.0; n.max(1)])
            .collect();
        Self {
            space,
            config,
            logits,
            baseline: None,
            mean_square: 0.0,
            stream: AskStream::new(seed),
            told: HashSet::new(),
        }
    }

    /// The policy's probabilities, one vector per decision (each sums to 1).
    pub fn probabilities(&self) -> Vec<Vec<f64>> {
        self.logits.iter().map(|l| softmax(l)).collect()
    }

    fn learn(&mut self, point: &S::Point, reward: f64) {
        let Some(b) = self.baseline else {
            self.baseline = Some(reward);
            return;
        };
        let decay = self.config.baseline_decay.clamp(0.0, 1.0);
        let diff = reward - b;
        self.mean_square = if self.mean_square > 0.0 {
            decay * self.mean_square + (1.0 - decay) * diff * diff
        } else {
            diff * diff
        };
        self.baseline = Some(decay * b + (1.0 - decay) * reward);
        if self.mean_square <= 0.0 {
            return;
        }
        let advantage = diff / self.mean_square.sqrt();
        let step = self.config.learning_rate * advantage;
        for (logits, choice) in self.logits.iter_mut().zip(self.space.encode(point)) {
            let Some(x) = choice.filter(|x| *x < logits.len()) else {
                continue;
            };
            let p = softmax(logits);
            for (k, (l, pk)) in logits.iter_mut().zip(p).enumerate() {
                *l += step * (f64::from(u8::from(k == x)) - pk);
            }
        }
    }
}

/// Softmax of `logits` (shifted by their maximum, so it does not overflow).
pub(crate) fn softmax(logits: &[f64]) -> Vec<f64> {
    let top = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = logits.iter().map(|l| (l - top).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

/// The index a uniform draw in [0, 1) falls on under `probabilities`.
pub(crate) fn draw(probabilities: &[f64], rng: &mut ChaCha8Rng) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (k, p) in probabilities.iter().enumerate() {
        acc += p;
        if u < acc {
            return k;
        }
    }
    probabilities.len().saturating_sub(1)
}

impl<S: CategoricalSpace> Strategy<S::Point> for Reinforce<S> {
    fn ask(&mut self) -> (S::Point, Origin) {
        let mut rng = self.stream.rng();
        let choices: Vec<usize> = self
            .logits
            .iter()
            .map(|l| draw(&softmax(l), &mut rng))
            .collect();
        let point = self
            .space
            .decode(&choices)
            .unwrap_or_else(|| self.space.sample(&mut rng));
        self.stream.proposed(self.space.id(&point));
        (point, Origin::Model)
    }

    fn tell(&mut self, point: &S::Point, outcome: Outcome) {
        if !self.told.insert(self.space.id(point)) {
            return;
        }
        match outcome {
            Outcome::Feasible { fitness, .. } if fitness.is_finite() => self.learn(point, fitness),
            Outcome::Infeasible => self.learn(point, 0.0),
            Outcome::Feasible { .. } | Outcome::Failed => {}
        }
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
