//! int8 entries of a latency table. An int8 layer key (a space that lists `int8` in
//! `precision`) is measured as the search builds an int8 candidate: the layer alone in
//! f32 ([`kiln_onnx::export_layer`]), quantized by kiln-quant (min/max, weights per output
//! channel, activations per tensor) on seeded random calibration inputs, then lowered
//! to int8 kernels, bundled and measured like an f32 key. The whole networks the table's
//! line is fitted and checked on are quantized the same way when their genome is int8.
//! Fuel does not depend on the values (the kernels have no data-dependent branches), so
//! the inputs only have to give the quantizer ranges.

use kiln_quant::QuantizeOptions;
use kiln_space::{LayerKey, Precision};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::PipelineError;

/// Seeded inputs the quantizer calibrates a layer or network of a table on.
pub const CALIBRATION_INPUTS: usize = 8;

/// A layer's input range for calibration: after batch norm, about unit variance.
const LAYER_RANGE: (f32, f32) = (-3.0, 3.0);

/// A network's input range: raw pixels (the normalisation is in the model).
pub(crate) const PIXEL_RANGE: (f32, f32) = (0.0, 255.0);

/// The model a table measures for `key`: the layer alone with weights seeded by `seed`,
/// in f32, or for an int8 key quantized by kiln-quant on [`CALIBRATION_INPUTS`] seeded
/// inputs of its input shape.
///
/// Errors: the quantizer's, naming the key and the node ([`PipelineError::Invalid`]).
pub fn layer_model(key: &LayerKey, seed: u64) -> Result<Vec<u8>, PipelineError> {
    let onnx = kiln_onnx::export_layer(key, seed);
    match key.precision() {
        Precision::F32 => Ok(onnx),
        Precision::Int8 => quantize_seeded(
            &onnx,
            key.input_shape(),
            LAYER_RANGE,
            seed,
            &key.to_string(),
        ),
    }
}

/// `onnx` (input `[1, C, H, W]` = `[1, chw...]`) quantized by kiln-quant, calibrated on
/// [`CALIBRATION_INPUTS`] inputs drawn uniformly from `range` with `seed`; `what` names
/// the model in errors.
///
/// Errors: the quantizer's, naming `what` and the node.
pub(crate) fn quantize_seeded(
    onnx: &[u8],
    [c, h, w]: [usize; 3],
    (lo, hi): (f32, f32),
    seed: u64,
    what: &str,
) -> Result<Vec<u8>, PipelineError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let images: Vec<Vec<f32>> = (0..CALIBRATION_INPUTS)
        .map(|_| (0..c * h * w).map(|_| rng.random_range(lo..hi)).collect())
        .collect();
    kiln_quant::quantize(onnx, &[1, c, h, w], &images, &QuantizeOptions::default())
        .map(|q| q.onnx)
        .map_err(|e| PipelineError::Invalid(format!("{what}: int8 quantization: {e}")))
}

/// The space a table is built for when its searches build every genome in `search_wide`
/// (`--precision` of `lut build`): for int8, a space without the `precision` key is
/// enumerated as if it listed `["f32", "int8"]`, so every layer is measured in both and
/// a line fitted for each (the f32 search still finds its entries; a search-wide int8
/// one predicts on the int8 entries and line). The space file's text, and so the table's
/// identity, does not change. A table file at `table` that already has an int8 line
/// keeps it: it is built and checked in both precisions without the flag (a rebuild
/// after a runtime change, a `lut check` of the committed table). `path` names the
/// space file in errors.
///
/// Errors: `int8` for a space that lists precisions itself (its list decides what is
/// measured) ([`PipelineError::Invalid`]).
pub fn space_for_precision(
    mut space: kiln_space::Space,
    search_wide: Precision,
    path: &std::path::Path,
    table: &std::path::Path,
) -> Result<kiln_space::Space, PipelineError> {
    let has_int8_line = || {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        let origin = table.display().to_string();
        kiln_latency::LatencyTable::from_json(&text, &origin)
            .is_ok_and(|t| t.overhead_of(Precision::Int8).is_some())
    };
    let search_wide = match search_wide {
        Precision::F32 if space.precision.is_none() && has_int8_line() => Precision::Int8,
        p => p,
    };
    match (&space.precision, search_wide) {
        (_, Precision::F32) => {}
        (Some(listed), Precision::Int8) => {
            return Err(PipelineError::Invalid(format!(
                "{}: --precision int8, but the space chooses the precision per genome ({}) and \
                 its table measures each listed precision: drop --precision",
                path.display(),
                crate::precision::per_genome_identity(listed)
            )));
        }
        (None, Precision::Int8) => space.precision = Some(vec![Precision::F32, Precision::Int8]),
    }
    Ok(space)
}
