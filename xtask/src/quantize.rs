//! `cargo xtask quantize`: post-training static quantization (kiln-quant).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kiln_quant::{Calibration, QuantizeOptions, quantize};

use crate::common::DataArgs;

/// Quantize an f32 ONNX model to an int8 QDQ model, calibrated on training images.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The f32 ONNX model (e.g. RUN_DIR/model.onnx).
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Where the QDQ model goes.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Calibration images (the first N of the training split).
    #[arg(long, default_value_t = 500)]
    pub calibration_images: usize,
    /// Percentile range (e.g. 99.99) instead of min/max.
    #[arg(long)]
    pub percentile: Option<f64>,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("cannot read {}", args.model.display()))?;
    let data = args.data.load()?;
    let n = args.calibration_images.min(data.train.len());
    if n == 0 {
        bail!("data set {}: the training split is empty", data.name);
    }
    let s = &data.shape;
    let shape = [1, s.channels, s.height, s.width];
    let images: Vec<Vec<f32>> = (0..n)
        .map(|i| data.train.image(i).iter().map(|p| *p as f32).collect())
        .collect();
    let calibration = args
        .percentile
        .map_or(Calibration::MinMax, Calibration::Percentile);
    let q = quantize(
        &bytes,
        &shape,
        &images,
        &QuantizeOptions {
            calibration,
            ..Default::default()
        },
    )
    .with_context(|| format!("quantizing {}", args.model.display()))?;
    for w in &q.warnings {
        eprintln!("warning: {w}");
    }
    std::fs::write(&args.output, &q.onnx)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let (f, i) = q.weight_bytes;
    println!(
        "quantized {} weight tensors and {} activations on {n} calibration images ({calibration:?}); weights {f} B f32 -> {i} B int8/int32/scales ({:.2}x smaller); wrote {}",
        q.weights,
        q.activations,
        f as f64 / i.max(1) as f64,
        args.output.display()
    );
    Ok(())
}
