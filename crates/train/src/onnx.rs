//! The trained network as an ONNX model, through `kiln_onnx::export`.
//!
//! Normalisation is baked in: the model's first two ops are the exporter's per-channel
//! Add/Mul, so the ONNX input is raw pixel values (0..255 as f32, NCHW) and whoever deploys
//! the model (eval-onnx, the generated runtime) feeds images as they are.

use kiln_data::Normalization;
use kiln_onnx::{ExportOptions, Weights, metadata};
use kiln_space::Architecture;

use crate::{Network, TrainError, Trained, named_weights};

/// What the ONNX input is; recorded in metrics.json and the model's metadata.
pub const ONNX_INPUT: &str = "raw pixel values 0..255 as f32, NCHW, batch 1; per-channel normalisation is the model's first Add/Mul";

/// The weights of `network` as `kiln_onnx::Weights` (BN running statistics included), named
/// and shaped as `arch.parameters()` lists them (conv OIHW, classifier `[out, in]`).
///
/// Errors: [`TrainError::Export`] when network and architecture disagree or a shape does not
/// hold its data; [`TrainError::Tensor`] when burn cannot hand a tensor back.
pub fn onnx_weights(arch: &Architecture, network: &Network) -> Result<Weights, TrainError> {
    let mut weights = Weights::default();
    for (name, (shape, data)) in named_weights(arch, network)? {
        weights
            .insert(&name, shape, data)
            .map_err(|e| TrainError::Export(e.to_string()))?;
    }
    Ok(weights)
}

/// The normalisation in raw-pixel units (0..255), as the exporter's first Add/Mul apply it:
/// `mean / scale` and `std / scale` per channel, so `(pixel - mean') / std'` equals
/// `(pixel * scale - mean) / std`.
pub fn raw_pixel_normalization(norm: &Normalization) -> kiln_onnx::Normalization {
    kiln_onnx::Normalization {
        mean: norm.mean.iter().map(|m| m / norm.scale).collect(),
        std: norm.std.iter().map(|s| s / norm.scale).collect(),
    }
}

/// The ONNX model of a trained network, with metadata naming the genome, the data set,
/// the input convention, burn's test top-1 and the classes (`kiln.genome_id`, `kiln.dataset`,
/// `kiln.input`, `kiln.normalization` as JSON, `kiln.test_top1` as a fraction with four
/// decimals, `kiln.class_names` as a JSON array in output order, when known). Returns the bytes of a `.onnx` file (opset 17; input f32 `[1, C, H, W]` of raw
/// pixels, output `[1, classes]` logits).
///
/// Errors: as for [`onnx_weights`], and [`TrainError::Export`] when the exporter rejects the
/// weights or normalisation.
pub fn export_onnx(trained: &Trained) -> Result<Vec<u8>, TrainError> {
    let epochs = kiln_onnx::metadata::epochs_in_words(trained.metrics.config.epochs);
    let kind = format!("trained from scratch ({epochs})");
    export_onnx_as(trained, &kind)
}

/// [`export_onnx`] with `kiln.accuracy_kind` set to `accuracy_kind`, for a network not
/// trained from scratch (fine-tuned from inherited weights, say).
///
/// Errors: as for [`export_onnx`].
pub fn export_onnx_as(trained: &Trained, accuracy_kind: &str) -> Result<Vec<u8>, TrainError> {
    let m = &trained.metrics;
    let norm = m.normalization.to_data();
    let normalization_json =
        serde_json::to_string(&m.normalization).map_err(|e| TrainError::Export(e.to_string()))?;
    let mut options = ExportOptions {
        normalization: Some(raw_pixel_normalization(&norm)),
        metadata: vec![
            (metadata::GENOME_ID.into(), m.genome_id.clone()),
            (metadata::DATASET.into(), m.dataset.clone()),
            (metadata::INPUT.into(), ONNX_INPUT.into()),
            (metadata::NORMALIZATION.into(), normalization_json),
            (metadata::TEST_TOP1.into(), format!("{:.4}", m.test_top1)),
            (metadata::ACCURACY_KIND.into(), accuracy_kind.into()),
        ],
    };
    if !m.class_names.is_empty() {
        let names =
            serde_json::to_string(&m.class_names).map_err(|e| TrainError::Export(e.to_string()))?;
        options.metadata.push((metadata::CLASS_NAMES.into(), names));
    }
    let weights = onnx_weights(&trained.architecture, &trained.network)?;
    kiln_onnx::export(&trained.architecture, &weights, &options)
        .map_err(|e| TrainError::Export(e.to_string()))
}
