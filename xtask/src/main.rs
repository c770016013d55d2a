//! `cargo xtask`: kiln's command line. Each subcommand is a module holding a
//! clap `Args` struct (its doc comments are the `--help` text) and a `run`
//! function that calls into the library crates; no logic lives here that a
//! library could own.

use std::io::ErrorKind;

use clap::{Parser, Subcommand};

mod bench;
mod common;
mod compare;
mod eval_onnx;
mod export_onnx;
mod flash;
mod lower;
mod lut;
mod measure;
mod quantize;
mod report;
mod run_onnx;
mod search;
mod sizes;
mod space;
mod supernet;
mod targets;
mod train;
mod worker;

/// kiln: hardware-aware neural architecture search for embedded devices.
///
/// kiln searches a space of MobileNet-style CNNs, trains candidates on real
/// data, compiles each into a small no_std Rust program, measures it for a
/// device and keeps only the models that meet the device's constraints.
#[derive(Parser)]
#[command(name = "cargo xtask", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sample genomes from a search space and inspect them.
    #[command(subcommand)]
    Space(space::SpaceCommand),
    /// Write a genome's network as an ONNX model (random or given weights).
    ExportOnnx(export_onnx::Args),
    /// List the device profiles in targets/ with their constraints.
    Targets(targets::Args),
    /// Train a genome on a data set and write model.onnx and metrics.json.
    Train(train::Args),
    /// Top-1 accuracy of an ONNX model on a data set's test split.
    EvalOnnx(eval_onnx::Args),
    /// Post-training int8 quantization of an ONNX model (a QDQ model out).
    Quantize(quantize::Args),
    /// Lower an ONNX model to kiln's IR and write the generated crate.
    Lower(lower::LowerArgs),
    /// Print the table of ONNX ops kiln lowers (docs/onnx-ops.md), from kiln-lower's own list.
    OnnxOps,
    /// Lower, generate, build and run an ONNX model on an input (.npy).
    RunOnnx(run_onnx::RunOnnxArgs),
    /// Build an ONNX model for a target and report size, memory and latency
    /// per power mode, each figure labelled with its source.
    Measure(measure::Args),
    /// The CI benchmark: a fixed suite on the simulated device, compared with
    /// the committed baseline.
    Bench(bench::Args),
    /// Search the space for models that meet every constraint of a target.
    Search(search::Args),
    /// Regenerate a search run's report from its journal.
    Report(report::Args),
    /// Compare finished searches (evolution vs random, fronts vs a baseline).
    Compare(compare::Args),
    /// Deploy a model to a device, check its output and measure it there.
    Flash(flash::Args),
    /// Binary sizes of the generated program (weights apart), optionally vs tract.
    Sizes(sizes::Args),
    /// Weight sharing: train a supernet once, judge and export its sub-networks.
    #[command(subcommand)]
    Supernet(supernet::SupernetCommand),
    /// Join a search run across machines (a PostgreSQL journal) and evaluate its trials.
    Worker(worker::Args),
    /// Latency lookup tables: build one per target, check it against whole networks.
    #[command(subcommand)]
    Lut(lut::LutCommand),
}

/// Output piped into a reader that stops early (`cargo xtask targets | head`, stdout or
/// stderr) ends the command quietly with the shell's status for SIGPIPE, as Unix tools
/// end, instead of panicking in `println!`.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>();
        let closed = |m: &String| m.starts_with("failed printing to std") && m.contains("pipe");
        if message.is_some_and(closed) {
            std::process::exit(141);
        }
        default(info)
    }));
}

fn main() {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Space(cmd) => space::run(cmd),
        Command::ExportOnnx(args) => export_onnx::run(args),
        Command::Targets(args) => targets::run(args),
        Command::Train(args) => train::run(args),
        Command::EvalOnnx(args) => eval_onnx::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Lower(args) => lower::run(args),
        Command::OnnxOps => kiln_lower::ops::write_markdown(std::io::stdout()).map_err(Into::into),
        Command::RunOnnx(args) => run_onnx::run(args),
        Command::Measure(args) => measure::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Search(args) => search::run(args),
        Command::Report(args) => report::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Flash(args) => flash::run(args),
        Command::Sizes(args) => sizes::run(args),
        Command::Lut(cmd) => lut::run(cmd),
        Command::Supernet(cmd) => supernet::run(cmd),
        Command::Worker(args) => worker::run(args),
    };
    if let Err(e) = result {
        let pipe = |c: &(dyn std::error::Error + 'static)| {
            (c.downcast_ref::<std::io::Error>()).is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
        };
        if e.chain().any(pipe) {
            std::process::exit(141); // as quiet_on_closed_stdout
        }
        eprintln!("error: {}", kiln_pipeline::error_text(e.as_ref()));
        std::process::exit(1);
    }
}
