//! `cargo xtask train`: train a genome on real data and export the trained model.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kiln_train::{
    Metrics, OptimizerConfig, ProgressBars, Silent, TrainConfig, architecture_for, train,
};

use crate::common::{DataArgs, load_genome};

/// Train the network a genome describes on real data (burn, flex CPU backend) and write
/// RUN_DIR/model.onnx (normalisation baked in: input is raw pixels 0..255),
/// RUN_DIR/metrics.json (per-epoch loss and accuracy, test top-1, time, images/s),
/// RUN_DIR/genome.json and RUN_DIR/weights.safetensors.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Genome JSON file, or `-` for standard input.
    #[arg(long)]
    pub genome: PathBuf,
    /// Space file (default: spaces/<the genome's space>.toml).
    #[arg(long)]
    pub space: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Training epochs.
    #[arg(long, default_value_t = 10)]
    pub epochs: usize,
    /// Seed of weight initialisation, batch order and augmentation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Images per training batch.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Optimiser; the learning rate follows a cosine schedule after a short warm-up.
    #[arg(long, value_enum, default_value = "adam")]
    pub optimizer: OptimizerArg,
    /// Peak learning rate (default 0.005 for adam, 0.05 for sgd).
    #[arg(long)]
    pub lr: Option<f64>,
    /// L2 weight decay.
    #[arg(long, default_value_t = 0.0)]
    pub weight_decay: f32,
    /// Cross-entropy label smoothing (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub label_smoothing: f32,
    /// Random-shift augmentation of training images, in pixels (0 = off).
    #[arg(long, default_value_t = 2)]
    pub shift: usize,
    /// Worker threads for training; with 1 a seed gives identical runs.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Measure training throughput only: train, print one JSON line with images/s
    /// (labelled host), write nothing.
    #[arg(long)]
    pub bench: bool,
    /// int8: also quantize (calibrated on training images) to model.int8.onnx and write its
    /// top-1 through its build beside the f32 figures (metrics.int8.json).
    #[arg(long, default_value = "f32", value_parser = kiln_pipeline::Precision::parse)]
    pub precision: kiln_pipeline::Precision,
    /// Run directory for model.onnx, metrics.json, genome.json, weights.safetensors.
    #[arg(
        short = 'o',
        long = "out",
        value_name = "RUN_DIR",
        required_unless_present = "bench"
    )]
    pub out: Option<PathBuf>,
}

/// `--optimizer` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerArg {
    Adam,
    /// SGD with Nesterov momentum 0.9.
    Sgd,
}

impl Args {
    fn config(&self) -> TrainConfig {
        let (optimizer, lr) = match self.optimizer {
            OptimizerArg::Adam => (
                OptimizerConfig::Adam {
                    weight_decay: self.weight_decay,
                },
                0.005,
            ),
            OptimizerArg::Sgd => (
                OptimizerConfig::Sgd {
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: self.weight_decay,
                },
                0.05,
            ),
        };
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch_size,
            optimizer,
            lr: self.lr.unwrap_or(lr),
            label_smoothing: self.label_smoothing,
            augment: (self.shift > 0).then_some(kiln_data::Augment {
                max_shift: self.shift,
            }),
            seed: self.seed,
            threads: self.threads,
            ..TrainConfig::default()
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let (genome, space) = load_genome(&args.genome, args.space.as_deref())?;
    let data = args.data.load()?;
    eprintln!(
        "data {}: {} train, {} validation, {} test images of {}, {} classes",
        data.name,
        data.train.len(),
        data.validation.len(),
        data.test.len(),
        data.shape,
        data.classes
    );
    let arch = architecture_for(&space, &genome, &data)
        .with_context(|| format!("genome {} on data set {}", genome.id(), data.name))?;
    let totals = arch.totals();
    eprintln!(
        "genome {}: {} params, {} MACs (predicted from the genome)",
        genome.id(),
        totals.params,
        totals.macs
    );
    let config = args.config();
    if args.bench {
        let trained = train(&arch, &genome.id(), &data, &config, &mut Silent)?;
        let m = &trained.metrics;
        println!(
            "{}",
            serde_json::json!({
                "source": "host",
                "what": "training throughput",
                "genome_id": m.genome_id,
                "params": m.params,
                "macs": m.macs,
                "threads": config.threads,
                "batch_size": config.batch_size,
                "epochs": config.epochs,
                "images": m.train_images * config.epochs,
                "train_seconds": m.train_seconds,
                "images_per_second": m.train_images_per_second,
            })
        );
        return Ok(());
    }
    let Some(out) = &args.out else {
        bail!("--out RUN_DIR is required unless --bench is given");
    };
    let metrics = kiln_pipeline::train::train_run(
        &arch,
        &genome,
        &data,
        &config,
        &mut ProgressBars::default(),
        out,
    )?;
    print_summary(&metrics, out);
    if args.precision == kiln_pipeline::Precision::Int8 {
        eprintln!("quantizing, building the int8 model for wasm32 and measuring its top-1 ...");
        let int8 = kiln_pipeline::precision::quantize_run(&metrics, &data, out)?;
        int8.lines().iter().for_each(|l| println!("{l}"));
        println!(
            "wrote {}/{{model.int8.onnx, metrics.int8.json}}",
            out.display()
        );
    }
    Ok(())
}

fn print_summary(m: &Metrics, out: &Path) {
    let val = m
        .validation_top1
        .map(|v| format!(", validation top-1 {:.2}%", v * 100.0))
        .unwrap_or_default();
    println!(
        "test top-1 {:.2}% on {} images (burn, eval mode){val}",
        m.test_top1 * 100.0,
        m.test_images
    );
    println!(
        "trained {} epochs in {:.1} s, {:.0} images/s on {} thread(s) (host)",
        m.epochs.len(),
        m.train_seconds,
        m.train_images_per_second,
        m.config.threads
    );
    println!(
        "wrote {}/{{model.onnx, metrics.json, genome.json, weights.safetensors}}",
        out.display()
    );
}
