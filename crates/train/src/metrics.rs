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
    /// Top-1 on the validation split after the epoch (eval mode); `None` if it is empty.
    pub validation_top1: Option<f64>,
    /// Seconds spent in training steps (not evaluation).
    pub train_seconds: f64,
    pub images_per_second: f64,
}

/// How the model's input must be prepared; the exported ONNX expects normalised input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputNormalization {
    /// `x = (pixel * scale - mean[c]) / std[c]`.
    pub scale: f32,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    /// `"onnx"`: the exported model applies the transform in its first two ops (Add, Mul),
    /// so deployed models take raw pixels. The burn network takes normalised input.
    pub applied_by: String,
    /// What the exported model's input is ([`crate::ONNX_INPUT`]).
    pub onnx_input: String,
}

impl InputNormalization {
    pub fn from_data(norm: &Normalization) -> InputNormalization {
        InputNormalization {
            scale: norm.scale,
            mean: norm.mean.clone(),
            std: norm.std.clone(),
            applied_by: "onnx".into(),
            onnx_input: crate::ONNX_INPUT.into(),
        }
    }

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
    pub dataset: String,
    pub input: InputSpec,
    pub genome_id: String,
    pub params: u64,
    pub macs: u64,
    pub train_images: usize,
    pub validation_images: usize,
    pub test_images: usize,
    pub config: TrainConfig,
    pub normalization: InputNormalization,
    pub epochs: Vec<EpochMetrics>,
    /// Final top-1 on the validation split (what a search ranks by); `None` if it is empty.
    pub validation_top1: Option<f64>,
    /// Top-1 on the test split, computed once after training.
    pub test_top1: f64,
    pub train_seconds: f64,
    /// Training images processed per second over all epochs (one thread unless `config.threads`).
    pub train_images_per_second: f64,
}
