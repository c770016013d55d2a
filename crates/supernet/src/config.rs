//! How a supernet is trained: [`SupernetConfig`], its checks, and its learning rate.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::SupernetError;
use crate::schedule::Schedule;

/// How a supernet is trained. `Default` is what `cargo xtask supernet train --threads 1`
/// uses.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SupernetConfig {
    /// Passes over the training split.
    pub epochs: usize,
    /// Images per step (at least 2).
    pub batch_size: usize,
    /// Adam's peak learning rate (linear warm-up over the first 5% of steps, cosine decay
    /// to 1% of it).
    pub lr: f64,
    /// Random sub-networks per step besides the largest and the smallest (BigNAS uses 2).
    pub random_subnets: usize,
    /// Largest random shift of a training image, pixels (0: none).
    pub max_shift: usize,
    /// Seeds the weights, the batch order, the shifts and the random sub-networks.
    pub seed: u64,
    /// Threads of a step: 2 or more runs the random sub-networks' forward and backward
    /// passes beside the largest's and the smallest's (more than 2 are not used; burn's
    /// CPU kernels are built without rayon). The weights do not depend on it.
    pub threads: usize,
    /// Training images the batch-norm statistics of a judged sub-network are
    /// recalibrated on (default 250: against 1,000 images, 30 sub-networks of the
    /// default space rank with Kendall's tau 0.87 at 250 and 0.85 at 500, whose
    /// largest difference is 1.5 points against 2.75: the 400 validation images'
    /// own granularity dominates either way, and 250 is one batch, half the work).
    pub recalibration_images: usize,
    /// Which sub-networks each step trains ([`Schedule`]); left out of the JSON when the
    /// sandwich rule, so older supernets' settings read and hash as before.
    #[serde(skip_serializing_if = "Schedule::is_sandwich")]
    pub schedule: Schedule,
    /// A few-shot split's parts only: epochs of one supernet of the whole space (these
    /// settings otherwise) that every part starts from, its weights sliced to the part's
    /// (few-shot NAS, Zhao et al., ICML 2021, splits a trained one-shot supernet); 0 (the
    /// default, left out of the JSON): each part from seeded random weights.
    #[serde(skip_serializing_if = "is_zero")]
    pub shared_epochs: usize,
    /// A batch norm gamma and beta per activation in the blocks' expand and depthwise
    /// convs where a stage offers more than one (after slimmable networks' switchable
    /// batch norm, Yu et al., ICLR 2019, which keeps one per width): relu6 and hswish then
    /// share the conv weights but not the scale and shift. `false` (the default, left out
    /// of the JSON): one pair for both.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub bn_per_activation: bool,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Default for SupernetConfig {
    fn default() -> Self {
        SupernetConfig {
            epochs: 10,
            batch_size: 32,
            lr: 0.003,
            random_subnets: 2,
            max_shift: 2,
            seed: 0,
            threads: 1,
            recalibration_images: 250,
            schedule: Schedule::Sandwich,
            shared_epochs: 0,
            bn_per_activation: false,
        }
    }
}

impl SupernetConfig {
    pub(crate) fn validate(&self) -> Result<(), SupernetError> {
        let bad = |m: &str| Err(SupernetError::Config(m.into()));
        if self.epochs == 0 {
            return bad("epochs must be at least 1");
        }
        if self.batch_size < 2 {
            return bad("batch_size must be at least 2 (batch norm needs two images)");
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr must be a positive number");
        }
        if self.threads == 0 {
            return bad("threads must be at least 1");
        }
        Ok(())
    }

    /// Refuses to continue a supernet in `dir` trained with these settings with `other`
    /// ones: a resumed run goes on as it began. Only `epochs` (training further; not under
    /// progressive shrinking) and `threads` (the same weights either way) may differ.
    ///
    /// Errors: [`SupernetError::Checkpoint`] naming the folder and every setting that
    /// differs, the supernet's and the run's.
    pub(crate) fn check_resumed_with(&self, other: &Self, dir: &Path) -> Result<(), SupernetError> {
        let (a, b) = (self, other);
        let mut differ = Vec::new();
        let mut compare = |name: &str, ours: String, theirs: String| {
            if ours != theirs {
                differ.push(format!("{name} {ours}, not {theirs}"));
            }
        };
        compare(
            "batch size",
            a.batch_size.to_string(),
            b.batch_size.to_string(),
        );
        compare("lr", a.lr.to_string(), b.lr.to_string());
        compare(
            "random sub-networks",
            a.random_subnets.to_string(),
            b.random_subnets.to_string(),
        );
        compare("shift", a.max_shift.to_string(), b.max_shift.to_string());
        compare("seed", a.seed.to_string(), b.seed.to_string());
        let recal = |c: &Self| c.recalibration_images.to_string();
        compare("recalibration images", recal(a), recal(b));
        compare("schedule", a.schedule.to_string(), b.schedule.to_string());
        let shared = |c: &Self| c.shared_epochs.to_string();
        compare("shared epochs", shared(a), shared(b));
        let per = |c: &Self| c.bn_per_activation.to_string();
        compare("batch norm per activation", per(a), per(b));
        if a.schedule == Schedule::Progressive {
            // its phases are shares of all epochs: more epochs would reopen a phase
            compare("epochs", a.epochs.to_string(), b.epochs.to_string());
        }
        if differ.is_empty() {
            return Ok(());
        }
        Err(crate::checkpoint::io(
            dir,
            format!(
                "--resume continues a supernet with the settings it began with: it was trained \
                 with {}: give those (or train a new one in another folder)",
                differ.join(", ")
            ),
        ))
    }

    pub(crate) fn lr_at(&self, step: usize, total: usize) -> f64 {
        let warm = (total / 20).max(1);
        if step < warm {
            return self.lr * (0.1 + 0.9 * step as f64 / warm as f64);
        }
        let t = (step - warm) as f64 / (total - warm).max(1) as f64;
        self.lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
    }
}
