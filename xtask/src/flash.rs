//! `cargo xtask flash`: builds a model for a device profile, puts it on the
//! device (ssh/scp or adb, see kiln-deploy), runs its benchmark there and
//! stores the `device` figures next to the `sim` and `host` figures of the
//! same model.

use std::path::PathBuf;

use kiln_pipeline::device::{DeviceFlags, device, power_plan};
use kiln_pipeline::flash::{FlashRequest, Flashed, flash, resolve_model};

use crate::common;

/// Deploy a model to a device, check its output there and measure it.
///
/// The program, a fixed input and the expected output (from the wasm
/// simulation) are uploaded to a temporary folder on the device, verified
/// with sha256sum, renamed into place (the previous version is kept for
/// rollback) and benchmarked. Figures go to OUT/metrics.json: `device` next
/// to `sim` and `host`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Device profile (a name from targets/, or a profile file); its deploy
    /// method must be ssh or adb.
    #[arg(long)]
    pub target: String,
    /// USER@ADDR of a device reached over ssh (Jetson-class boards).
    #[arg(long)]
    pub host: Option<String>,
    /// ssh port [default: 22].
    #[arg(long)]
    pub port: Option<u16>,
    /// ssh private key file.
    #[arg(long)]
    pub identity: Option<PathBuf>,
    /// Extra ssh/scp option, passed as `-o OPT` (repeatable), e.g.
    /// `StrictHostKeyChecking=accept-new` or `UserKnownHostsFile=FILE`.
    #[arg(long = "ssh-option", value_name = "OPT")]
    pub ssh_options: Vec<String>,
    /// adb serial of the phone (when several are attached).
    #[arg(long)]
    pub serial: Option<String>,
    /// A search run folder (its front's best model) or an ONNX file. Without
    /// it, the best model of the newest run under runs/ for this target.
    #[arg(long, value_name = "RUN_DIR | MODEL.onnx")]
    pub model: Option<PathBuf>,
    /// Power mode of the profile to benchmark in (Jetson: nvpmodel -m, power
    /// rails read during the run, the previous mode restored).
    #[arg(long)]
    pub power_mode: Option<String>,
    /// Print every device command instead of running it (the model is still built here).
    #[arg(long)]
    pub dry_run: bool,
    /// Warm-up inferences on the device.
    #[arg(long, default_value_t = 10)]
    pub warmup: u64,
    /// Timed inferences on the device.
    #[arg(long, default_value_t = 100)]
    pub runs: u64,
    /// Where the generated crate and metrics.json go [default: RUN_DIR/flash/<target>,
    /// or runs/flash/<target>/<model name>-<content hash> for an ONNX file].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Folder of device profiles [default: targets/ of the checkout].
    #[arg(long)]
    pub targets_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let targets_dir = args.targets_dir.clone().unwrap_or_else(common::targets_dir);
    let target = kiln_target::load(&targets_dir, &args.target)?;
    let flags = DeviceFlags {
        host_flag: "--host",
        host: args.host.as_deref(),
        port: args.port,
        identity: args.identity.as_deref(),
        ssh_options: &args.ssh_options,
        serial: args.serial.as_deref(),
    };
    let mut device = device(&target, &flags)?;
    device.dry_run = args.dry_run;
    let power = match &args.power_mode {
        Some(name) => Some(power_plan(&target, name)?),
        None => None,
    };
    let runs = common::workspace_root().join("runs");
    let (onnx, out) = resolve_model(
        args.model.as_deref(),
        args.out.as_deref(),
        &runs,
        &target.name,
    )?;
    eprintln!(
        "building {} for {} ({})",
        onnx.display(),
        target.name,
        target.triple
    );
    let outcome = flash(FlashRequest {
        target: &target,
        device,
        power,
        model: &onnx,
        out: &out,
        warmup: args.warmup,
        runs: args.runs,
        // A target dir of flash's own, so a flash does not wait for a search
        // building in the default one (kiln-codegen locks the dir per build).
        target_dir: &kiln_codegen::default_target_dir().join("flash"),
    });
    if args.dry_run {
        println!("dry run: commands for {}:", outcome.device);
        for c in &outcome.commands {
            println!("  {c}");
        }
    }
    if let Some(flashed) = outcome.result? {
        print_flashed(&flashed, &onnx, args.warmup, &target);
    }
    Ok(())
}

fn print_flashed(f: &Flashed, onnx: &std::path::Path, warmup: u64, target: &kiln_target::Target) {
    let (report, b, runner) = (&f.report, &f.bench, &target.deploy.runner);
    println!(
        "flashed {} to {} ({}/{}){}",
        onnx.display(),
        report.device,
        report.dir,
        report.version,
        report
            .previous
            .as_deref()
            .map(|p| format!(", previous version {p} kept"))
            .unwrap_or_default()
    );
    println!(
        "  latency [device]   p50 {:.1} us, p95 {:.1} us, min {:.1} us, max {:.1} us ({} runs after {warmup} warm-up{})",
        b.p50_us,
        b.p95_us,
        b.min_us,
        b.max_us,
        b.runs,
        runner
            .as_deref()
            .map(|r| format!("; run under {r}, emulated"))
            .unwrap_or_default()
    );
    match b.peak_rss_kib {
        Some(k) => println!(
            "  peak RSS [device]  {k} KiB{}",
            if runner.is_some() {
                " (includes the runner)"
            } else {
                ""
            }
        ),
        None => println!("  peak RSS [device]  not available (no VmHWM in /proc/self/status)"),
    }
    if let Some(c) = &b.output_check {
        println!(
            "  output check [device] max abs error {} vs the wasm sim's output (tolerance {:e}): {}",
            c.max_abs_err
                .map_or("NaN".to_string(), |e| format!("{e:.2e}")),
            c.tolerance,
            if c.passed { "PASS" } else { "FAIL" }
        );
    }
    let p = &report.power;
    if let Some(mode) = &p.requested_mode {
        let how = match (p.nvpmodel_set, p.nvpmodel_before) {
            (Some(id), Some(before)) => {
                let restored = if p.restored == Some(true) {
                    ", restored"
                } else {
                    ""
                };
                format!("-m {id} (was {before}{restored})")
            }
            (Some(id), None) => format!("-m {id}"),
            _ => "not set".to_string(),
        };
        println!("  power mode {mode}: nvpmodel {how}");
    }
    if let (Some(w), Some(e)) = (p.average_watts, p.energy_per_inference_mj) {
        println!(
            "  power [device]     {w:.2} W average over {} samples, {e:.3} mJ per inference (average W x p50)",
            p.samples
        );
    }
    for n in &p.notes {
        println!("  note: {n}");
    }
    if let Some(t) = &f.local.host_timing {
        println!(
            "  latency [{}] p50 {:.1} us (for comparison)",
            t.label(),
            t.p50.value
        );
    }
    if let Some(m) = f.local.power.modes.first() {
        println!(
            "  latency [sim]      p50=p95 {} at mode {}",
            m.latency_p50, m.mode
        );
    }
    println!("  figures: {}", f.metrics.display());
}
