//! `cargo xtask supernet`: weight sharing (train once, judge and export sub-networks).

use std::path::PathBuf;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use kiln_supernet::{Progress, SupernetConfig};

use crate::common::{DataArgs, load_space};

/// Weight sharing: one supernet holding every choice of a space, trained once; any
/// genome of the space judged (inherited accuracy) in a second, and exported.
#[derive(clap::Subcommand)]
pub enum SupernetCommand {
    /// Train a supernet with the sandwich rule (largest, smallest and random
    /// sub-networks each step) and in-place distillation from the largest. Writes
    /// DIR/supernet-<epochs>.safetensors, supernet.json and metrics.json (per epoch: loss, the
    /// largest's and the smallest's validation top-1, inherited) after every epoch;
    /// `--resume` continues a killed run. With `--few-shot head`, a few-shot split:
    /// one supernet per head-conv width in DIR/head<width>/, and DIR/split.json.
    Train(TrainArgs),
    /// Judge a genome's sub-network (batch norm recalibrated) and write its ONNX model
    /// (inherited weights; the test top-1 in its metadata, so `eval-onnx` compares).
    Export(ExportArgs),
}

/// `supernet train`.
#[derive(clap::Args)]
pub struct TrainArgs {
    /// Search space file (default: spaces/mobile.toml).
    #[arg(long)]
    space: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    /// Passes over the training split.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Seed of the weights, batch order, shifts and random sub-networks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Adam's peak learning rate.
    #[arg(long, default_value_t = 0.003)]
    lr: f64,
    /// Threads: 2 trains a step's random sub-networks beside its largest and smallest
    /// (the same weights as 1, sooner; more than 2 are not used).
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Continue the checkpoint in DIR.
    #[arg(long)]
    resume: bool,
    /// `sandwich`: the largest, smallest and random sub-networks every step (BigNAS);
    /// `progressive`: Once-for-All's progressive shrinking (the largest alone, then
    /// elastic kernels, depths, everything; 30/20/25/25% of the steps).
    #[arg(long, default_value = "sandwich")]
    schedule: kiln_supernet::Schedule,
    /// A few-shot split (Zhao et al., 2021): the space divided by a decision (`head`: the
    /// head conv's width), one supernet per choice, each for --epochs; `auto`: `head` where
    /// the search's default would split (2+ widths); `none`: one supernet.
    #[arg(long = "few-shot", value_name = "DECISION", default_value = "none")]
    split: kiln_pipeline::supernet_cache::FewShot,
    /// With a split: first train one supernet of the whole space this many epochs
    /// (DIR/shared/), and start every part from its weights (0: from random weights).
    #[arg(long, default_value_t = 0)]
    shared_epochs: usize,
    /// A batch norm gamma and beta per activation in the blocks (no better: docs/ranking).
    #[arg(long)]
    bn_per_activation: bool,
    /// The supernet's folder.
    #[arg(short = 'o', long = "out", value_name = "DIR")]
    out: PathBuf,
}

/// `supernet export`.
#[derive(clap::Args)]
pub struct ExportArgs {
    /// The supernet's folder (`supernet train -o DIR`).
    #[arg(long, value_name = "DIR")]
    supernet: PathBuf,
    /// Genome JSON file of the supernet's space.
    #[arg(long)]
    genome: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Where to write the model.
    #[arg(short = 'o', long = "out", value_name = "MODEL.onnx")]
    out: PathBuf,
}

pub fn run(cmd: SupernetCommand) -> Result<()> {
    match cmd {
        SupernetCommand::Train(a) => train(a),
        SupernetCommand::Export(a) => export(a),
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let space = load_space(a.space.as_deref())?;
    let data = a.data.load()?;
    let config = SupernetConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        seed: a.seed,
        threads: a.threads,
        schedule: a.schedule,
        shared_epochs: a.shared_epochs,
        bn_per_activation: a.bn_per_activation,
        ..SupernetConfig::default()
    };
    let (bar, mut report) = epoch_bar();
    let trained = kiln_supernet::split::train_supernets(
        &space,
        a.split.settle(&space, kiln_search::StrategyKind::Evolution),
        &data,
        &a.data.identity(),
        &config,
        &a.out,
        a.resume,
        &mut report,
    )?;
    bar.finish_and_clear();
    if trained == 0 {
        println!("nothing to train: --epochs {} reached already", a.epochs);
    }
    println!("supernet: {}", a.out.display());
    Ok(())
}

/// A progress bar for supernet training and the reporter that drives it (per-epoch
/// lines; plain lines when the bar is hidden, output not a terminal).
pub fn epoch_bar() -> (ProgressBar, impl FnMut(Progress) + Send) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "epoch {prefix} [{elapsed_precise}] {bar:30} {pos}/{len} | {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let b = bar.clone();
    let say = move |line: String| {
        if b.is_hidden() {
            eprintln!("{line}");
        } else {
            b.println(line);
        }
    };
    let b = bar.clone();
    let report = move |p: Progress| match p {
        Progress::Step {
            epoch,
            epochs,
            step,
            steps,
            loss,
        } => {
            b.set_prefix(format!("{epoch}/{epochs}"));
            b.set_length(steps as u64);
            b.set_position(step as u64);
            b.set_message(format!("loss {loss:.4}"));
            // a hidden bar shows nothing: a plain line every tenth of an epoch
            if b.is_hidden() && step % (steps / 10).max(1) == 0 {
                eprintln!("supernet epoch {epoch}/{epochs}: step {step}/{steps}, loss {loss:.4}");
            }
        }
        Progress::Epoch(r) => say(format!(
            "supernet epoch {}: loss {:.4}, validation top-1 largest {:.2}%, smallest {:.2}% \
             (inherited, host), {:.0} s",
            r.epoch,
            r.loss,
            100.0 * r.largest_top1,
            100.0 * r.smallest_top1,
            r.seconds
        )),
        // only a split's part starting from its shared supernet has 0 epochs done
        Progress::Resumed(0) => say("part starts from the shared supernet's weights".into()),
        Progress::Resumed(done) => say(format!("supernet resumed after epoch {done}")),
        Progress::Part {
            label,
            index,
            parts,
        } => say(match index {
            0 => format!("few-shot split: first the whole space's supernet ({label}/)"),
            _ => format!("few-shot split: part {label} ({index} of {parts})"),
        }),
    };
    (bar, report)
}

fn export(a: ExportArgs) -> Result<()> {
    let data = a.data.load()?;
    let supernets = kiln_pipeline::Supernets::load(&a.supernet, None, &data, &a.data.identity())?;
    // the supernet's own space judges the genome: the one it was trained on
    let genome = supernets.load_genome(&a.genome)?;
    let judge = supernets.for_genome(&genome)?;
    let judged = judge.judge(&genome, &data, true)?;
    let id = genome.id();
    let (test, onnx) = (judged.exported)
        .with_context(|| format!("the supernet judged genome {id} but wrote no model"))?;
    std::fs::write(&a.out, onnx).with_context(|| format!("cannot write {}", a.out.display()))?;
    println!(
        "genome {id}: validation top-1 {:.2}%, test top-1 {:.2}% ({}; host); model {}",
        100.0 * judged.validation_top1,
        100.0 * test,
        judge.accuracy_kind(&data),
        a.out.display()
    );
    Ok(())
}
