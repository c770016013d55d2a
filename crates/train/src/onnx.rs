//! The trained network as an ONNX model, through `kiln_onnx::export`.
//!
//! Normalisation is baked in: the model's first two ops are the exporter's per-channel
//! Add/Mul, so the ONNX input is raw pixel values (0..255 as f32, NCHW) and whoever deploys
//! the model (eval-onnx, the generated runtime) feeds images as they are.

use kiln_data::Normalization;
use kiln_onnx::{ExportOptions, Weights};
use kiln_space::Architecture;

use crate::{Network, TrainError, Trained, named_weights};

/// What the ONNX input is; recorded in metrics.json and the model's metadata.
pub const ONNX_INPUT: &str = "raw pixel values 0..255 as f32, NCHW, batch 1; per-channel normalisation is the model's first Add/Mul";

/// The weights of `network` as `kiln_onnx::Weights` (BN running statistics included).
pub fn onnx_weights(arch: &Architecture, network: &Network) -> Result<Weights, TrainError> {
    let mut weights = Weights::default();
    for (name, (shape, data)) in named_weights(arch, network)? {
        weights
            .insert(&name, shape, data)
            .map_err(|e| TrainError::Export(e.to_string()))?;
    }
    Ok(weights)
}

/// The normalisation in raw-pixel units, as the exporter's first Add/Mul apply it.
pub fn raw_pixel_normalization(norm: &Normalization) -> kiln_onnx::Normalization {
    kiln_onnx::Normalization {
        mean: norm.mean.iter().map(|m| m / norm.scale).collect(),
        std: norm.std.iter().map(|s| s / norm.scale).collect(),
    }
}

/// The ONNX model of a trained network, with metadata naming the genome, the data set,
/// the input convention and burn's test top-1.
pub fn export_onnx(trained: &Trained) -> Result<Vec<u8>, TrainError> {
    let m = &trained.metrics;
    let norm = m.normalization.to_data();
    let normalization_json =
        serde_json::to_string(&m.normalization).map_err(|e| TrainError::Export(e.to_string()))?;
    let options = ExportOptions {
        normalization: Some(raw_pixel_normalization(&norm)),
        metadata: vec![
            ("kiln.genome_id".into(), m.genome_id.clone()),
            ("kiln.dataset".into(), m.dataset.clone()),
            ("kiln.input".into(), ONNX_INPUT.into()),
            ("kiln.normalization".into(), normalization_json),
            ("kiln.test_top1".into(), format!("{:.4}", m.test_top1)),
        ],
    };
    let weights = onnx_weights(&trained.architecture, &trained.network)?;
    kiln_onnx::export(&trained.architecture, &weights, &options)
        .map_err(|e| TrainError::Export(e.to_string()))
}
