//! `cargo xtask quantize`: post-training static quantization (kiln-quant).

use std::path::PathBuf;

use anyhow::{Context, Result};
use kiln_quant::{Calibration, QuantizeOptions};

/// Quantize an f32 ONNX model to an int8 QDQ model, calibrated on training images.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The f32 ONNX model (e.g. RUN_DIR/model.onnx).
    pub model: PathBuf,
    #[command(flatten)]
    pub data: crate::common::DataArgs,
    /// Where the QDQ model goes.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Calibrate on the first N training images.
    #[arg(long, default_value_t = 500)]
    pub calibration_images: usize,
    /// Percentile range (e.g. 99.99) instead of min/max.
    #[arg(long)]
    pub percentile: Option<f64>,
}

pub fn run(a: Args) -> Result<()> {
    let bytes =
        std::fs::read(&a.model).with_context(|| format!("cannot read {}", a.model.display()))?;
    let (shape, images) = kiln_quant::calibration_images(&a.data.load()?, a.calibration_images);
    let calibration = a
        .percentile
        .map_or(Calibration::MinMax, Calibration::Percentile);
    let options = QuantizeOptions {
        calibration,
        ..Default::default()
    };
    let q = kiln_quant::quantize(&bytes, &shape, &images, &options)?;
    q.warnings.iter().for_each(|w| eprintln!("warning: {w}"));
    std::fs::write(&a.output, &q.onnx)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    println!(
        "{} ({} images, {calibration:?}); wrote {}",
        q.summary(),
        images.len(),
        a.output.display()
    );
    Ok(())
}
