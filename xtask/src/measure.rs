//! `cargo xtask measure`: build a model for device profiles and report its
//! labelled metrics and constraint checks.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_measure::report::{Artifacts, MeasureOptions, TargetReport, host_triple, measure};
use kiln_measure::sim::SimLimits;
use kiln_target::Target;

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
    /// Device profiles from targets/ (repeat or comma-separate: jetson,pixel,wasm-sim).
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
    /// Folder for the generated crate (default: runs/measure/<model name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder of profiles (default: targets/ of the checkout).
    #[arg(long)]
    targets_dir: Option<PathBuf>,
}

/// A generated model built for the triples a set of targets needs.
pub struct BuiltModel {
    pub artifacts: Artifacts,
    /// Program per triple (aarch64 musl, host); the wasm is in `artifacts`.
    pub programs: Vec<(String, PathBuf)>,
}

impl BuiltModel {
    /// The artifacts for `target`: its triple's program, if it has one.
    pub fn for_target(&self, target: &Target) -> Artifacts {
        let mut artifacts = self.artifacts.clone();
        artifacts.program = self
            .programs
            .iter()
            .find(|(triple, _)| *triple == target.triple)
            .map(|(_, p)| p.clone());
        artifacts
    }
}

/// Lowers `onnx`, writes the generated crate into `crate_dir`, and builds it
/// for wasm32 plus every non-wasm triple in `triples`.
pub fn build_model(
    onnx: &[u8],
    name: &str,
    crate_dir: &Path,
    triples: &[&str],
    input_shape: Option<Vec<usize>>,
) -> Result<BuiltModel> {
    let options = kiln_lower::LowerOptions { input_shape };
    let graph = kiln_lower::lower_bytes(onnx, name, &options)
        .with_context(|| format!("lowering {name}"))?;
    let generated = kiln_codegen::generate(&graph, crate_dir, &GenerateOptions::new(name))
        .with_context(|| format!("generating the crate for {name}"))?;
    let target_dir = model_target_dir(crate_dir);
    let wasm = build_for(crate_dir, BuildTarget::Wasm32, &target_dir)?;
    let mut programs = Vec::new();
    for triple in triples {
        if *triple == "wasm32-unknown-unknown" || programs.iter().any(|(t, _)| t == triple) {
            continue;
        }
        let build_target = if *triple == host_triple() {
            BuildTarget::Host
        } else {
            BuildTarget::parse(triple)
                .with_context(|| format!("kiln cannot build for triple {triple}"))?
        };
        programs.push((
            triple.to_string(),
            build_for(crate_dir, build_target, &target_dir)?,
        ));
    }
    Ok(BuiltModel {
        artifacts: Artifacts {
            wasm,
            program: None,
            weight_bytes: generated.weight_bytes as u64,
            arena_bytes: generated.plan.arena_bytes() as u64,
            input_len: generated.input_len,
            output_len: generated.output_len,
        },
        programs,
    })
}

/// A target dir of its own for each generated crate, inside the shared one.
///
/// Every generated crate is package `kiln-model`; in one shared target dir
/// the file kiln-codegen copies out (`release/kiln-model`, `kiln_model.wasm`)
/// is whichever model was built last, and cargo does not rewrite it for a
/// crate that is already fresh, so a second model would silently be measured
/// with the first one's binary. To be removed once kiln-codegen takes the
/// artifact path from cargo's JSON messages.
fn model_target_dir(crate_dir: &Path) -> PathBuf {
    let name = crate_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    kiln_codegen::default_target_dir()
        .join("per-model")
        .join(name)
}

/// Builds, turning a missing Rust target into the command that installs it.
fn build_for(crate_dir: &Path, target: BuildTarget, target_dir: &Path) -> Result<PathBuf> {
    match kiln_codegen::build(crate_dir, target, target_dir) {
        Ok(path) => Ok(path),
        Err(e) => {
            let text = e.to_string();
            let missing = text.contains("may not be installed")
                || text.contains("can't find crate for `core`");
            match target.triple() {
                Some(triple) if missing => {
                    bail!(
                        "{text}\nthe Rust target {triple} is missing; install it with `rustup target add {triple}`"
                    )
                }
                _ => Err(e.into()),
            }
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let dir = args.targets_dir.clone().unwrap_or_else(targets_dir);
    let targets = args
        .targets
        .iter()
        .map(|name| kiln_target::load(&dir, name))
        .collect::<Result<Vec<Target>, _>>()?;
    let onnx = std::fs::read(&args.model)
        .with_context(|| format!("cannot read model {}", args.model.display()))?;
    let name = args
        .model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let crate_dir = args
        .out
        .clone()
        .unwrap_or_else(|| workspace_root().join("runs/measure").join(&name));
    let triples: Vec<&str> = targets.iter().map(|t| t.triple.as_str()).collect();

    let started = Instant::now();
    let built = build_model(
        &onnx,
        &args.model.display().to_string(),
        &crate_dir,
        &triples,
        args.input_shape.clone(),
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
            measure(t, &built.for_target(t), &options).with_context(|| {
                format!("measuring {} for target {}", args.model.display(), t.name)
            })
        })
        .collect::<Result<Vec<TargetReport>>>()?;
    let measure_time = measuring.elapsed();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    } else {
        println!(
            "model {} (generated crate {})",
            args.model.display(),
            crate_dir.display()
        );
        for report in &reports {
            println!("\n{report}");
        }
    }
    eprintln!(
        "build {} / measure {} (host wall clock)",
        seconds(build_time),
        seconds(measure_time)
    );
    Ok(())
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}
