//! A distribution learned elsewhere: the result of FBNet's differentiable search
//! (kiln-supernet's `dnas`), one categorical distribution per decision.

use std::sync::Arc;

use super::ask_stream::AskStream;
use super::reinforce::draw;
use super::{Origin, Outcome, Strategy};
use crate::CategoricalSpace;

/// Asks the most probable option of every decision first (the architecture FBNet's
/// search returns), then points drawn from the distribution (FBNet samples its final
/// candidates from it). Outcomes teach it nothing: the distribution was learned by
/// gradient descent before the search, through the supernet and the latency table.
///
/// Resume: asks draw from [`super::ask_stream`]'s streams, so after
/// [`Strategy::replay`] the next asks are those of the uninterrupted run.
pub struct Learned<S: CategoricalSpace> {
    space: Arc<S>,
    probabilities: Vec<Vec<f64>>,
    stream: AskStream,
}

impl<S: CategoricalSpace> Learned<S> {
    /// `probabilities[d][i]`: option `i` of decision `d` (`choice_counts` order). A
    /// decision whose row is missing, of another length or not summing to a positive
    /// number is drawn uniformly.
    pub fn new(space: Arc<S>, probabilities: Vec<Vec<f64>>, seed: u64) -> Self {
        let counts = space.choice_counts();
        let probabilities = counts
            .iter()
            .enumerate()
            .map(|(d, &n)| match probabilities.get(d) {
                Some(p) if p.len() == n && p.iter().all(|v| v.is_finite() && *v >= 0.0) => {
                    let sum: f64 = p.iter().sum();
                    if sum > 0.0 {
                        p.iter().map(|v| v / sum).collect()
                    } else {
                        vec![1.0 / n as f64; n]
                    }
                }
                _ => vec![1.0 / n.max(1) as f64; n.max(1)],
            })
            .collect();
        Self {
            space,
            probabilities,
            stream: AskStream::new(seed),
        }
    }
}

/// The first most probable option.
fn argmax(p: &[f64]) -> usize {
    let mut at = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[at] {
            at = i;
        }
    }
    at
}

impl<S: CategoricalSpace> Strategy<S::Point> for Learned<S> {
    fn ask(&mut self) -> (S::Point, Origin) {
        let mut rng = self.stream.rng();
        let first = !self.stream.any();
        let choices: Vec<usize> = self
            .probabilities
            .iter()
            .map(|p| if first { argmax(p) } else { draw(p, &mut rng) })
            .collect();
        let point = self
            .space
            .decode(&choices)
            .unwrap_or_else(|| self.space.sample(&mut rng));
        self.stream.proposed(self.space.id(&point));
        (point, Origin::Model)
    }

    fn tell(&mut self, _point: &S::Point, _outcome: Outcome) {}

    fn replay(&mut self, history: &[(S::Point, Option<Outcome>)]) {
        self.stream
            .replay(history.iter().map(|(p, _)| self.space.id(p)));
    }
}
