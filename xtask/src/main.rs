//! `cargo xtask`: kiln's command line. Each subcommand is a module holding a
//! clap `Args` struct (its doc comments are the `--help` text) and a `run`
//! function that calls into the library crates; no logic lives here that a
//! library could own.

use clap::{Parser, Subcommand};

mod common;
mod export_onnx;
mod space;
mod targets;

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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Space(cmd) => space::run(cmd),
        Command::ExportOnnx(args) => export_onnx::run(args),
        Command::Targets(args) => targets::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
