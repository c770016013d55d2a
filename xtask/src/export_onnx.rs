//! `cargo xtask export-onnx`: a genome's network as an ONNX model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use kiln_onnx::{ExportOptions, Weights, export, metadata};
use kiln_space::Architecture;

use crate::common::{InputArgs, load_genome};

/// Write the network a genome describes as an ONNX model (opset 17, input
/// `input` [1,C,H,W], output `logits` [1,classes]). Weights are seeded random
/// (He init) unless a safetensors file from training is given.
#[derive(clap::Args)]
pub struct Args {
    /// Genome JSON file, or `-` for standard input.
    #[arg(long)]
    genome: PathBuf,
    /// Trained weights (safetensors), named as the architecture's parameters.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Seed for random weights (ignored with --weights).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Space file (default: spaces/<the genome's space>.toml).
    #[arg(long)]
    space: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
    /// Where to write the model.
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let (genome, space) = load_genome(&args.genome, args.space.as_deref())?;
    let arch = Architecture::new(&space, &genome, args.input.spec()?)?;
    let weights = match &args.weights {
        Some(path) => Weights::load(path)?,
        None => Weights::random(&arch, args.seed),
    };
    let options = ExportOptions {
        normalization: None,
        metadata: vec![
            (metadata::GENOME_ID.into(), genome.id()),
            (metadata::GENOME.into(), serde_json::to_string(&genome)?),
        ],
    };
    let what = match &args.weights {
        Some(p) => format!("weights from {}", p.display()),
        None => format!("random weights, seed {}", args.seed),
    };
    let bytes = export(&arch, &weights, &options)
        .with_context(|| format!("exporting genome {} with {what}", genome.id()))?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "wrote {} ({} bytes, genome {}, {what})",
        args.output.display(),
        bytes.len(),
        genome.id()
    );
    Ok(())
}
