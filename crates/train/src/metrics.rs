//! What a training run reports (`metrics.json`).

use kiln_data::Normalization;
use kiln_space::InputSpec;
use serde::{Deserialize, Serialize};

use crate::TrainConfig;

/// One epoch's figures. Accuracies are fractions in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Learning rate at the epoch's last step.
    pub lr: f64,
    /// Mean training loss over the epoch's batches (with augmentation and label smoothing).
    pub train_loss: f64,
    /// Top-1 on the training batches as seen during the epoch (train-mode batch norm).
    pub train_top1: f64,
    /// Top-1 on the validation split after the epoch (eval mode); `None` if it is empty. The
    /// last epoch's figure is taken after batch-norm recalibration, when that is on.
    pub validation_top1: Option<f64>,
    /// Seconds spent in training steps (not evaluation).
    pub train_seconds: f64,
    /// Training throughput of the epoch: images / `train_seconds`.
    pub images_per_second: f64,
}

/// How the network's input is prepared from raw pixels, and who does it: the burn network
/// expects normalised input; the exported ONNX normalises raw pixels itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputNormalization {
    /// `x = (pixel * scale - mean[c]) / std[c]`; 1/255 for `u8` pixels.
    pub scale: f32,
    /// Per-channel mean of the scaled (0..1) training pixels.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation of the scaled (0..1) training pixels.
    pub std: Vec<f32>,
    /// `"onnx"`: the exported model applies the transform in its first two ops (Add, Mul),
    /// so deployed models take raw pixels. The burn network takes normalised input.
    pub applied_by: String,
    /// What the exported model's input is ([`crate::ONNX_INPUT`]).
    pub onnx_input: String,
}

impl InputNormalization {
    /// The record of `norm` for a model exported by [`crate::export_onnx`]
    /// (`applied_by: "onnx"`).
    pub fn from_data(norm: &Normalization) -> InputNormalization {
        InputNormalization {
            scale: norm.scale,
            mean: norm.mean.clone(),
            std: norm.std.clone(),
            applied_by: "onnx".into(),
            onnx_input: crate::ONNX_INPUT.into(),
        }
    }

    /// The transform itself, as kiln-data applies it to `u8` images.
    pub fn to_data(&self) -> Normalization {
        Normalization {
            scale: self.scale,
            mean: self.mean.clone(),
            std: self.std.clone(),
        }
    }
}

/// `metrics.json`: everything a training run measured. Times and rates are measured on this
/// machine (`source: "host"`); parameter and MAC counts are analytic (from the architecture).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Where the timings come from: `"host"`.
    pub source: String,
    /// What computed the accuracies: `"burn (flex backend), eval mode"`.
    pub accuracy_engine: String,
    /// The data set's name (`mnist-5k`, `idx:DIR`, `cifar10:DIR`).
    pub dataset: String,
    /// The network's input shape and class count.
    pub input: InputSpec,
    /// The name of each class, in output order (`kiln_data::Dataset::class_names`); empty in
    /// metrics written before class names were recorded.
    #[serde(default)]
    pub class_names: Vec<String>,
    /// The genome's content id (`kiln_space::Genome::id`), or the caller's label.
    pub genome_id: String,
    /// Trainable parameters (analytic, `kiln_space::Totals::params`).
    pub params: u64,
    /// Multiply-accumulates per image (analytic, `kiln_space::Totals::macs`).
    pub macs: u64,
    /// Images in the training split (after the validation holdout and any limit).
    pub train_images: usize,
    /// Images in the validation split.
    pub validation_images: usize,
    /// Images in the test split.
    pub test_images: usize,
    /// The settings the run used.
    pub config: TrainConfig,
    /// The input normalisation, computed on the training split.
    pub normalization: InputNormalization,
    /// One entry per epoch, in order.
    pub epochs: Vec<EpochMetrics>,
    /// Final top-1 (fraction) on the validation split, after batch-norm recalibration if
    /// that is on (what a search ranks by); `None` if it is empty.
    pub validation_top1: Option<f64>,
    /// Top-1 (fraction) on the test split, computed once after training.
    pub test_top1: f64,
    /// Seconds spent in training steps over all epochs (not evaluation or recalibration).
    pub train_seconds: f64,
    /// Training images processed per second over all epochs (one thread unless `config.threads`).
    pub train_images_per_second: f64,
}
