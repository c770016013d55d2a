//! What a training run does: optimiser, schedule, batch size, epochs, augmentation, seed.

use kiln_data::Augment;
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// The optimiser; the learning rate follows a cosine schedule from `lr` down to `lr * min_lr_ratio`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// Adam (Kingma and Ba, 2015) with burn's defaults: betas (0.9, 0.999), epsilon 1e-5.
    Adam {
        /// L2 penalty added to the gradient (0 for none).
        weight_decay: f32,
    },
    /// Stochastic gradient descent with momentum (no dampening).
    Sgd {
        /// Momentum factor, e.g. 0.9.
        momentum: f64,
        /// Nesterov momentum instead of the classical form.
        nesterov: bool,
        /// L2 penalty added to the gradient (0 for none).
        weight_decay: f32,
    },
}

/// A training run's settings. `Default` is the setting kiln trains search candidates with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainConfig {
    /// Passes over the training split; at least 1.
    pub epochs: usize,
    /// Images per training step; at least 2 (batch norm needs two). A last batch of one
    /// image is dropped.
    pub batch_size: usize,
    /// The optimiser and its settings.
    pub optimizer: OptimizerConfig,
    /// Peak learning rate (reached after `warmup_epochs`, then cosine decay).
    pub lr: f64,
    /// The schedule ends at `lr * min_lr_ratio`.
    pub min_lr_ratio: f64,
    /// Linear warm-up from `lr / 10` over this many epochs (may be fractional).
    pub warmup_epochs: f64,
    /// Cross-entropy label smoothing (Szegedy et al., 2016), a fraction in [0, 1); 0 turns it
    /// off.
    pub label_smoothing: f32,
    /// Random shifts of the training images; `None` turns augmentation off.
    pub augment: Option<Augment>,
    /// Seeds weight initialisation, batch order and augmentation.
    pub seed: u64,
    /// Worker threads: with 2 or more a batch's [`shards`](Self::shards) run at once, each
    /// on a thread of its own. burn's flex kernels run on the calling thread (burn is built
    /// without its `rayon` feature), so with 1 shard more threads train no faster. The
    /// weights a seed gives do not depend on it.
    pub threads: usize,
    /// Each batch is split into this many contiguous shards (fewer when a shard would hold
    /// fewer than 2 images) whose gradients are summed: data parallelism, each shard
    /// normalised by its own batch-norm statistics ("ghost batch norm", Hoffer et al.,
    /// 2017). The weights a seed gives depend on it; 1 (the default) trains on whole
    /// batches. Left out of the serialised form when 1, so settings written before it
    /// existed read and identify as before.
    #[serde(skip_serializing_if = "is_one")]
    pub shards: usize,
    /// Images per evaluation batch (memory only; results do not depend on it).
    pub eval_batch_size: usize,
    /// After training, recompute the batch-norm running statistics as the plain average over
    /// this many training images (no augmentation, weights fixed); 0 keeps the moving
    /// averages. Short runs profit most: their moving averages lag the fast-moving weights.
    pub bn_recalibration_images: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 10,
            batch_size: 16,
            optimizer: OptimizerConfig::Adam { weight_decay: 0.0 },
            lr: 0.005,
            min_lr_ratio: 0.01,
            warmup_epochs: 0.3,
            label_smoothing: 0.0,
            augment: Some(Augment { max_shift: 2 }),
            seed: 0,
            threads: 1,
            shards: 1,
            eval_batch_size: 250,
            bn_recalibration_images: 1024,
        }
    }
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

impl TrainConfig {
    /// Rejects settings that cannot train.
    ///
    /// Errors: [`TrainError::Config`] naming the first bad field (zero epochs, threads, shards or
    /// evaluation batch, a batch below 2, a learning rate that is not positive, a ratio or
    /// smoothing outside its range, a negative warm-up).
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |field: &str, message: String| {
            Err(TrainError::Config {
                field: field.to_string(),
                message,
            })
        };
        if self.epochs == 0 {
            return bad("epochs", "must be at least 1".into());
        }
        if self.batch_size < 2 {
            return bad(
                "batch_size",
                format!(
                    "{} is too small for batch norm; use at least 2",
                    self.batch_size
                ),
            );
        }
        if self.eval_batch_size == 0 {
            return bad("eval_batch_size", "must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("{} is not a positive number", self.lr));
        }
        if !(0.0..=1.0).contains(&self.min_lr_ratio) {
            return bad(
                "min_lr_ratio",
                format!("{} is not in [0, 1]", self.min_lr_ratio),
            );
        }
        if !(self.warmup_epochs.is_finite() && self.warmup_epochs >= 0.0) {
            return bad(
                "warmup_epochs",
                format!("{} is not a non-negative number", self.warmup_epochs),
            );
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return bad(
                "label_smoothing",
                format!("{} is not in [0, 1)", self.label_smoothing),
            );
        }
        if self.threads == 0 {
            return bad("threads", "must be at least 1".into());
        }
        if self.shards == 0 {
            return bad("shards", "must be at least 1".into());
        }
        Ok(())
    }

    /// Learning rate at `step` (0-based) of `total` steps (`steps_per_epoch` converts
    /// warm-up epochs): linear from `lr / 10` to `lr` over the warm-up, then cosine decay
    /// (Loshchilov and Hutter, SGDR, 2017, without restarts) to `lr * min_lr_ratio`.
    pub fn lr_at(&self, step: usize, total: usize, steps_per_epoch: usize) -> f64 {
        let warmup = (self.warmup_epochs * steps_per_epoch as f64).round() as usize;
        if step < warmup {
            let t = (step + 1) as f64 / warmup as f64;
            return self.lr * (0.1 + 0.9 * t);
        }
        let span = total.saturating_sub(warmup).max(1) as f64;
        let t = ((step - warmup) as f64 / span).min(1.0);
        let min = self.lr * self.min_lr_ratio;
        min + 0.5 * (self.lr - min) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_schedule_warms_up_peaks_and_decays_to_the_floor() {
        let c = TrainConfig {
            lr: 0.1,
            min_lr_ratio: 0.01,
            warmup_epochs: 1.0,
            ..TrainConfig::default()
        };
        let (total, per_epoch) = (100, 10);
        assert!((c.lr_at(0, total, per_epoch) - 0.019).abs() < 1e-9);
        assert!((c.lr_at(9, total, per_epoch) - 0.1).abs() < 1e-9);
        assert!((c.lr_at(10, total, per_epoch) - 0.1).abs() < 1e-9);
        let mid = c.lr_at(55, total, per_epoch);
        assert!((mid - (0.001 + 0.5 * 0.099)).abs() < 1e-9, "{mid}");
        assert!(c.lr_at(99, total, per_epoch) < 0.0011);
        let lrs: Vec<f64> = (10..100).map(|s| c.lr_at(s, total, per_epoch)).collect();
        assert!(lrs.windows(2).all(|w| w[1] <= w[0]));
    }

    #[test]
    fn bad_settings_name_the_field() {
        let c = TrainConfig {
            batch_size: 1,
            ..TrainConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("batch_size"), "{err}");
        let c = TrainConfig {
            label_smoothing: 1.5,
            ..TrainConfig::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("label_smoothing")
        );
        assert!(TrainConfig::default().validate().is_ok());
    }

    #[test]
    fn config_reads_from_partial_json() {
        let c: TrainConfig = serde_json::from_str(r#"{"epochs": 3, "optimizer": {"kind": "sgd", "momentum": 0.9, "nesterov": true, "weight_decay": 0.0001}}"#).unwrap();
        assert_eq!(c.epochs, 3);
        assert_eq!(c.batch_size, 16);
        assert!(matches!(
            c.optimizer,
            OptimizerConfig::Sgd { nesterov: true, .. }
        ));
        assert!(serde_json::from_str::<TrainConfig>(r#"{"epoch": 3}"#).is_err());
    }
}
