//! `cargo xtask measure`: build a model for device profiles and report its
//! labelled metrics and constraint checks.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use kiln_measure::report::{MeasureOptions, TargetReport, measure};
use kiln_measure::sim::SimLimits;
use kiln_pipeline::build_file;
use kiln_target::{Target, Triple};

use crate::common::{targets_dir, workspace_root};

/// Measure an ONNX model on device profiles: compile it to a no_std Rust
/// program, build it for each target's triple (and always for wasm32, the
/// simulated device), and report binary sizes (weights apart from code),
/// memory (arena, static data, wasm peak), simulated latency, FPS and energy
/// per power mode, host or qemu-emulated timings, and a PASS/FAIL line per
/// constraint. Every figure is labelled: `host` (measured or read here),
/// `sim` (wasm fuel x the profile's cycles per fuel / clock), `predicted`
/// (a figure from the profile). Emulated timings are never device latency.
#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model (input [1,C,H,W] f32, one output).
    model: PathBuf,
    /// Device profiles: names from targets/ or profile files (repeat or
    /// comma-separate: jetson,pixel,wasm-sim,./myboard.toml).
    #[arg(long = "target", required = true, value_delimiter = ',')]
    targets: Vec<String>,
    /// Print the reports as JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Timed runs of the native or emulated program (0 skips timing).
    #[arg(long, default_value_t = 30)]
    runs: u64,
    /// Warm-up runs before timing.
    #[arg(long, default_value_t = 5)]
    warmup: u64,
    /// Fuel budget of one simulated inference.
    #[arg(long, default_value_t = SimLimits::default().fuel)]
    fuel_limit: u64,
    /// Full input shape N,C,H,W when the model has symbolic dimensions.
    #[arg(long, value_delimiter = ',')]
    input_shape: Option<Vec<usize>>,
    /// Folder for the generated crate (default: runs/measure/<model name>-<content hash>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder of profiles (default: targets/ of the checkout).
    #[arg(long)]
    targets_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let dir = args.targets_dir.clone().unwrap_or_else(targets_dir);
    let targets = args
        .targets
        .iter()
        .map(|name| kiln_target::load(&dir, name))
        .collect::<Result<Vec<Target>, _>>()?;
    let mut triples = vec![Triple::Wasm32];
    triples.extend(targets.iter().map(|t| t.triple));
    let name = args.model.display().to_string();
    let started = Instant::now();
    let built = build_file(
        &args.model,
        &workspace_root().join("runs/measure"),
        args.out.as_deref(),
        args.input_shape.clone(),
        &triples,
    )?;
    let build_time = started.elapsed();

    let options = MeasureOptions {
        sim_limits: SimLimits {
            fuel: args.fuel_limit,
            ..SimLimits::default()
        },
        warmup: args.warmup,
        runs: args.runs,
    };
    let measuring = Instant::now();
    let reports = targets
        .iter()
        .map(|t| {
            measure(t, &built.artifacts_for(t)?, &options)
                .with_context(|| format!("measuring {name} for target {}", t.name))
        })
        .collect::<Result<Vec<TargetReport>>>()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        println!(
            "model {name} (generated crate {})",
            built.crate_dir.display()
        );
        for report in &reports {
            println!("\n{report}");
        }
    }
    eprintln!(
        "build {:.1} s / measure {:.1} s (host wall clock)",
        build_time.as_secs_f64(),
        measuring.elapsed().as_secs_f64()
    );
    Ok(())
}
