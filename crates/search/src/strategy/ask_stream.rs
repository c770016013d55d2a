//! Random streams of asks that a journal can rebuild.
//!
//! A journal holds each distinct point once, not the asks that repeated one
//! (the driver tells those again and moves on), so a strategy that drew
//! every ask from one stream could not find its place on resume. Here ask
//! number `k` after `r` repeats since the last new point draws from its own
//! ChaCha8 stream seeded by (seed, k, r): after a journal of N distinct
//! points the next ask is (N, 0), as in the run that wrote the journal.

use std::collections::HashSet;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// SplitMix64's finaliser (Steele et al. 2014): a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Counts distinct points proposed and repeats since the last one.
#[derive(Debug, Clone)]
pub(crate) struct AskStream {
    seed: u64,
    proposed: HashSet<String>,
    repeats: u64,
}

impl AskStream {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            seed,
            proposed: HashSet::new(),
            repeats: 0,
        }
    }

    /// The stream of the next ask.
    pub(crate) fn rng(&self) -> ChaCha8Rng {
        let k = self.proposed.len() as u64;
        ChaCha8Rng::seed_from_u64(mix(mix(self.seed ^ mix(k)) ^ self.repeats))
    }

    /// Whether any point was proposed (or replayed) yet.
    pub(crate) fn any(&self) -> bool {
        !self.proposed.is_empty() || self.repeats > 0
    }

    /// Whether the point with content id `id` was proposed before.
    pub(crate) fn seen(&self, id: &str) -> bool {
        self.proposed.contains(id)
    }

    /// Records a proposal: a new id moves to the next ask number, a repeat
    /// to the next repeat of this one.
    pub(crate) fn proposed(&mut self, id: String) {
        if self.proposed.insert(id) {
            self.repeats = 0;
        } else {
            self.repeats += 1;
        }
    }

    /// Records a journal's points (each distinct) as proposed, in order.
    pub(crate) fn replay(&mut self, ids: impl IntoIterator<Item = String>) {
        for id in ids {
            self.proposed.insert(id);
        }
        self.repeats = 0;
    }
}
