//! `cargo xtask lut`: latency lookup tables (build, check).

use std::path::PathBuf;

use anyhow::{Result, bail};
use kiln_pipeline::lut::{self, LutEvent, LutRequest, MeasurePath};

use crate::common::{DeviceArgs, InputArgs, load_space, space_path, targets_dir, workspace_root};

/// Latency lookup tables: per-layer figures measured on a target's path, from which a
/// search predicts a candidate's latency in microseconds instead of building it.
#[derive(clap::Subcommand)]
pub enum LutCommand {
    /// Measure every layer configuration the space can produce at the input shape
    /// (one generated bundle per batch of layers, each timed on its own), fit the
    /// per-network constant, and write the table. An interrupted build resumes.
    Build(Args),
    /// Sample genomes, build and measure them whole on the same path, and print
    /// predicted vs measured, the share within 5% and 10%, the largest error and
    /// Kendall's tau; the largest error becomes the margin the search rejects with.
    Check(CheckArgs),
}

/// What a table is for and where it lives.
#[derive(clap::Args)]
pub struct Args {
    /// Device profile: a name from targets/ or a profile file.
    #[arg(long)]
    target: String,
    /// Search space file (default: spaces/mobile.toml).
    #[arg(long)]
    space: Option<PathBuf>,
    #[command(flatten)]
    input: InputArgs,
    /// Where layers are measured: `sim` (wasm fuel, deterministic), `host` (this
    /// machine's wall clock; only for a target whose programs run here) or `device`
    /// (the profile's device over ssh/adb, as `flash` reaches it: --device USER@ADDR
    /// [--port --identity --ssh-option], or --serial for adb).
    #[arg(long, default_value = "sim")]
    source: String,
    #[command(flatten)]
    dev: DeviceArgs,
    /// Table file (default: tables/<source>-<target>-<space>-<CxHxW>-<classes>.json;
    /// device tables: tables/device-<target>-<host_port>-...).
    #[arg(long)]
    table: Option<PathBuf>,
    /// Layers per generated bundle (one build each).
    #[arg(long, default_value_t = 200)]
    batch: usize,
    /// Whole networks the per-network constant is fitted on.
    #[arg(long, default_value_t = 8)]
    fit: usize,
    /// Timed runs per layer for `host` and `device` tables (the median is the entry).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Seed of the layers' random weights and of the fit networks.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// int8: also measure every layer in int8, for `search --precision int8`.
    #[arg(long, default_value = "f32", value_parser = kiln_pipeline::Precision::parse)]
    precision: kiln_pipeline::Precision,
}

/// `lut check`: the table's arguments plus the sample.
#[derive(clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    table: Args,
    /// Genomes to sample and measure whole.
    #[arg(long, default_value_t = 50)]
    samples: usize,
    /// Seed of the sample (other than the build's, whose networks fitted the constant).
    #[arg(long = "sample-seed", default_value_t = 1)]
    sample_seed: u64,
    /// Also write the report here as JSON (default: beside the table, `.check.json`).
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also fit the profile's sim model (`cycles_per_fuel`) to native runs of the same
    /// networks on this machine and write it beside the profile
    /// (`<profile>.calibration.json`); only for a target whose programs run here.
    #[arg(long)]
    calibrate: bool,
}

pub fn run(cmd: LutCommand) -> Result<()> {
    match cmd {
        LutCommand::Build(args) => {
            let req = request(&args)?;
            let started = std::time::Instant::now();
            let table = lut::build_table(&req, &mut print_event)?;
            println!(
                "{}: {} layers, built in {:.0} s (host wall clock)",
                req.table_path.display(),
                table.entries.len(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        LutCommand::Check(args) => {
            lut::check_samples(args.samples)?;
            let req = request(&args.table)?;
            let mut table = lut::build_table(&req, &mut print_event)?;
            let report = lut::check_table(
                &req,
                &mut table,
                args.samples,
                args.sample_seed,
                &lut::today(),
            )?;
            print!("{}", report.to_text());
            let json = args
                .json
                .unwrap_or_else(|| req.table_path.with_extension("check.json"));
            std::fs::write(&json, serde_json::to_string_pretty(&report)? + "\n")?;
            println!("report: {}", json.display());
            if args.calibrate {
                let profile = kiln_target::profile_path(&targets_dir(), &args.table.target);
                let c = lut::calibrate(
                    &req,
                    &profile,
                    args.samples,
                    args.sample_seed,
                    &lut::today(),
                )?;
                println!("{}", lut::calibration_text(&c, &req.target.name, &profile));
            }
            Ok(())
        }
    }
}

fn request(args: &Args) -> Result<LutRequest> {
    let target = kiln_target::load(&targets_dir(), &args.target)?;
    let space_file = args.space.clone().unwrap_or_else(|| space_path("mobile"));
    let space = load_space(Some(&space_file))?;
    let input = args.input.spec()?;
    let path = match args.source.as_str() {
        "sim" => MeasurePath::Sim,
        "host" if target.triple.is_host() => MeasurePath::Host {
            warmup: 5,
            runs: args.runs,
        },
        "host" => bail!(
            "--source host: {} programs ({}) do not run natively here, and times under an \
             emulator are not device latency; use --source sim",
            target.name,
            target.triple
        ),
        "device" => {
            let spec = args.dev.spec();
            lut::device_path(&target, &spec.flags("--device"), 5, args.runs)?
        }
        other => bail!("--source `{other}`: expected sim, host or device"),
    };
    if !matches!(path, MeasurePath::Device(_))
        && (args.dev.spec().is_given() || args.dev.port.is_some())
    {
        bail!("--device, --serial and --port are for --source device");
    }
    let root = workspace_root();
    let table_path = args
        .table
        .clone()
        .unwrap_or_else(|| lut::default_path_for(&root, &path, &target.name, &space.name, input));
    let space = lut::space_for_precision(space, args.precision, &space_file, &table_path)?;
    Ok(LutRequest {
        space_path: space_file,
        space,
        input,
        work_dir: root.join("runs/lut").join(path.source().to_string()),
        target,
        path,
        table_path,
        batch: args.batch,
        fit_networks: args.fit,
        seed: args.seed,
    })
}

fn print_event(e: LutEvent) {
    eprintln!("{e}");
}
