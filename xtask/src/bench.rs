//! `cargo xtask bench`: the CI benchmark on the simulated device.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kiln_measure::bench::{Baseline, BenchEntry, Tolerances, Verdict, compare};
use kiln_measure::report::fixed_input;
use kiln_measure::sim::{SimLimits, SimModule};
use kiln_measure::size::section_sizes;
use kiln_onnx::{ExportOptions, Weights};
use kiln_space::{Architecture, Genome, InputSpec, Space};
use rand::SeedableRng;

use crate::common::{space_path, workspace_root};
use crate::measure::build_model;

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

/// One member of the fixed suite.
struct SuiteModel {
    name: String,
    identity: String,
    onnx: Vec<u8>,
}

fn suite() -> Result<Vec<SuiteModel>> {
    let export = |space: &Space, genome: &Genome, input: InputSpec, seed: u64| -> Result<Vec<u8>> {
        let arch = Architecture::new(space, genome, input)?;
        let weights = Weights::random(&arch, seed);
        Ok(kiln_onnx::export(
            &arch,
            &weights,
            &ExportOptions::default(),
        )?)
    };
    let mut models = Vec::new();
    let v2_space = Space::load(&space_path("mobilenetv2"))?;
    let v2 = Genome::load(
        &workspace_root().join("spaces/mobilenetv2-0.5.json"),
        &v2_space,
    )?;
    let v2_input = InputSpec {
        channels: 3,
        height: 96,
        width: 96,
        classes: 10,
    };
    models.push(SuiteModel {
        name: "mobilenetv2-0.5".into(),
        identity: format!("{} 3x96x96/10 seed 7", v2.id()),
        onnx: export(&v2_space, &v2, v2_input, 7)?,
    });
    let space = Space::load(&space_path("mobile"))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    let input = InputSpec {
        channels: 3,
        height: 32,
        width: 32,
        classes: 10,
    };
    for i in 0..3u64 {
        let genome = Genome::sample(&space, &mut rng);
        models.push(SuiteModel {
            name: format!("mobile-genome-{i}"),
            identity: format!("{} 3x32x32/10 seed {i}", genome.id()),
            onnx: export(&space, &genome, input, i)?,
        });
    }
    Ok(models)
}

fn measure_suite() -> Result<Vec<BenchEntry>> {
    let mut entries = Vec::new();
    for model in suite()? {
        let crate_dir = workspace_root().join("runs/bench").join(&model.name);
        let built = build_model(&model.onnx, &model.name, &crate_dir, &[], None)
            .with_context(|| format!("building suite model {}", model.name))?;
        let a = &built.artifacts;
        let sizes = section_sizes(&a.wasm)?;
        let run =
            SimModule::load(&a.wasm)?.run(&fixed_input(a.input_len), &SimLimits::default())?;
        eprintln!("{:<20} fuel {} [sim]", model.name, run.fuel);
        entries.push(BenchEntry {
            name: model.name,
            identity: model.identity,
            fuel: run.fuel,
            wasm_code_bytes: sizes.text,
            wasm_data_bytes: sizes.data,
            arena_bytes: a.arena_bytes,
            peak_memory_bytes: run.peak_memory_bytes,
        });
    }
    Ok(entries)
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
    let path = args
        .baseline
        .clone()
        .unwrap_or_else(|| workspace_root().join(format!("bench/baseline-{}.json", args.target)));
    let current = measure_suite()?;

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
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "current": current, "comparison": comparison })
            )?
        );
    } else {
        println!(
            "bench {} against {} (all figures sim)",
            args.target,
            path.display()
        );
        print!("{comparison}");
    }

    if args.self_test {
        self_test(&baseline, &current)?;
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

/// Plants a regression just past the fuel tolerance and checks it is caught.
fn self_test(baseline: &Baseline, current: &[BenchEntry]) -> Result<()> {
    let mut planted = current.to_vec();
    let Some(first) = planted.first_mut() else {
        bail!("self-test: the suite is empty");
    };
    let name = first.name.clone();
    let base_fuel = baseline
        .entries
        .iter()
        .find(|b| b.name == name)
        .map(|b| b.fuel)
        .unwrap_or(first.fuel);
    let tolerances: Tolerances = baseline.tolerances;
    let raise_pct = 2.0 * tolerances.fuel_pct.max(0.01);
    first.fuel = (base_fuel as f64 * (1.0 + raise_pct / 100.0)).ceil() as u64;
    let caught = compare(baseline, &planted)
        .regressions()
        .any(|c| c.model == name && c.figure == "fuel" && c.verdict == Verdict::Regressed);
    if !caught {
        bail!("self-test FAILED: a planted fuel regression on {name} was not caught");
    }
    println!("self-test: a planted fuel regression on {name} (+{raise_pct:.2}%) is caught");
    Ok(())
}
