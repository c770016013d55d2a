//! `cargo xtask bench`: the CI benchmark on the simulated device.

use std::path::PathBuf;

use anyhow::{Result, bail};
use kiln_measure::bench::{Baseline, compare, self_test};

use crate::common::workspace_root;

/// The CI benchmark: lower, build and run a fixed suite (the MobileNetV2-0.5
/// baseline at 3x96x96 and three fixed genomes of the default space at
/// 3x32x32) under the simulated device (wasm32 under wasmtime), and compare
/// fuel, wasm code/data bytes, arena bytes and peak linear memory with the
/// committed baseline. Fails when a figure grows beyond its tolerance (stated
/// in the baseline file: fuel 0.5 %, code 2 %, data 1 %, arena and memory
/// exact). All figures are `sim`.
#[derive(clap::Args)]
pub struct Args {
    /// Only `wasm-sim` has a CI benchmark (fuel is deterministic there).
    #[arg(long, default_value = "wasm-sim")]
    target: String,
    /// Rewrite the baseline with this run's figures.
    #[arg(long)]
    update: bool,
    /// Also check that the comparison catches a planted regression (fuel of
    /// the first model raised past its tolerance); fails if it does not.
    #[arg(long)]
    self_test: bool,
    /// Baseline file (default: bench/baseline-<target>.json).
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Print this run's figures and the comparison as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    if args.target != "wasm-sim" {
        bail!(
            "`--target {}`: the CI benchmark runs on `wasm-sim` only (fuel is deterministic there); \
             use `cargo xtask measure MODEL.onnx --target {}` for other targets",
            args.target,
            args.target
        );
    }
    let root = workspace_root();
    let path = args
        .baseline
        .clone()
        .unwrap_or_else(|| root.join(format!("bench/baseline-{}.json", args.target)));
    let current = kiln_pipeline::bench::measure_suite(
        &root,
        &root.join("runs/bench"),
        &kiln_codegen::default_target_dir(),
        &mut |line| eprintln!("{line}"),
    )?;
    if args.update {
        let tolerances = Baseline::load(&path)
            .map(|b| b.tolerances)
            .unwrap_or_default();
        Baseline::new(&args.target, tolerances, current).save(&path)?;
        println!("wrote {}", path.display());
        return Ok(());
    }
    let baseline = Baseline::load(&path)?;
    let comparison = compare(&baseline, &current);
    if args.json {
        let json = serde_json::json!({ "current": current, "comparison": comparison });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "bench {} against {} (all figures sim)",
            args.target,
            path.display()
        );
        print!("{comparison}");
    }
    if args.self_test {
        println!(
            "{}",
            self_test(&baseline, &current).map_err(anyhow::Error::msg)?
        );
    }
    if !comparison.passes() {
        let n = comparison.regressions().count();
        bail!(
            "{n} figure(s) regressed beyond tolerance or the suite changed; fix it, or run \
             `cargo xtask bench --update` if the change is intended"
        );
    }
    println!("no regression");
    Ok(())
}
