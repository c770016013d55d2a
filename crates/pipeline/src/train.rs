//! A training run's folder (`cargo xtask train -o RUN_DIR`): trains a
//! genome's network and writes `model.onnx` (normalisation baked in: it takes
//! raw pixels 0..255), `weights.safetensors`, `genome.json` and
//! `metrics.json` (accuracy `host`, trained from scratch). Each file is
//! written atomically.

use std::path::Path;

use kiln_data::Dataset;
use kiln_space::{Architecture, Genome};
use kiln_train::{Metrics, Observer, TrainConfig};

use crate::PipelineError;
use crate::files::write;

/// Trains `arch` (the network of `genome` for `data`) and writes the run
/// folder `out`. Returns the training metrics.
///
/// Errors: `out` holds a supernet or a search run (their `metrics.json` would be
/// overwritten); training's, the export's, or a file that cannot be written.
pub fn train_run(
    arch: &Architecture,
    genome: &Genome,
    data: &Dataset,
    config: &TrainConfig,
    progress: &mut dyn Observer,
    out: &Path,
) -> Result<Metrics, PipelineError> {
    let (supernet, split) = (kiln_supernet::STATE_FILE, kiln_supernet::split::SPLIT_FILE);
    let another = [
        out.join(supernet),
        out.join(split),
        kiln_search::Journal::path_in(out),
    ];
    if let Some(file) = another.iter().find(|f| f.exists()) {
        return Err(PipelineError::Invalid(format!(
            "--out {}: holds {}, another tool's folder: give the training a folder of its own",
            out.display(),
            file.file_name().unwrap_or_default().to_string_lossy()
        )));
    }
    let trained = kiln_train::train(arch, &genome.id(), data, config, progress)?;
    let onnx = kiln_train::export_onnx(&trained)?;
    let weights = kiln_train::onnx_weights(&trained.architecture, &trained.network)?
        .to_safetensors()
        .map_err(|e| PipelineError::Invalid(format!("encoding the trained weights: {e}")))?;
    let metrics = serde_json::to_string_pretty(&trained.metrics)
        .map_err(|e| PipelineError::Invalid(format!("metrics.json: {e}")))?;
    write(&out.join("model.onnx"), &onnx)?;
    write(&out.join("weights.safetensors"), &weights)?;
    write(&out.join("genome.json"), genome.to_json().as_bytes())?;
    write(&out.join("metrics.json"), metrics.as_bytes())?;
    Ok(trained.metrics)
}
