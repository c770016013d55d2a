//! `cargo xtask flash`: builds a model for a device profile, puts it on the
//! device (ssh/scp or adb, see kiln-deploy), runs its benchmark there and
//! stores the `device` figures next to the `sim` and `host` figures of the
//! same model.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kiln_codegen::BuildTarget;
use kiln_deploy::{AdbTarget, BenchSettings, Bundle, Device, PowerPlan, SshTarget, Transport};
use kiln_target::DeployMethod;

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
    /// Device profile (targets/<T>.toml); its deploy method must be ssh or adb.
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
    /// or runs/flash/<target>/<model name> for an ONNX file].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Folder of device profiles [default: targets/ of the checkout].
    #[arg(long)]
    pub targets_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let targets_dir = args.targets_dir.clone().unwrap_or_else(common::targets_dir);
    let target = kiln_target::load(&targets_dir, &args.target)?;
    let transport = transport(
        &target,
        &DeviceFlags {
            host_flag: "--host",
            host: args.host.as_deref(),
            port: args.port,
            identity: args.identity.as_deref(),
            ssh_options: &args.ssh_options,
            serial: args.serial.as_deref(),
        },
    )?;
    let dir = device_dir(&target);
    let power = match &args.power_mode {
        None => None,
        Some(name) => {
            let mode = target
                .power_modes
                .iter()
                .find(|m| &m.name == name)
                .with_context(|| {
                    let known: Vec<&str> =
                        target.power_modes.iter().map(|m| m.name.as_str()).collect();
                    format!(
                        "--power-mode {name}: target {} has modes {}",
                        target.name,
                        known.join(", ")
                    )
                })?;
            Some(PowerPlan {
                mode: mode.name.clone(),
                nvpmodel_id: mode.nvpmodel_id,
                rails: target.deploy.power_rails.clone(),
            })
        }
    };
    let (onnx, out) = resolve_model(&args, &target.name)?;
    let mut device = Device::new(transport, dir);
    device.dry_run = args.dry_run;
    // Fail fast, before minutes of building, when the device does not answer.
    if !args.dry_run {
        device.check_reachable()?;
    }

    // Build here: the device program, and the wasm simulation whose output
    // the device must reproduce.
    let build_target = if target.triple == kiln_measure::report::host_triple() {
        BuildTarget::Host
    } else if target.triple == "aarch64-unknown-linux-musl" {
        BuildTarget::Aarch64Musl
    } else {
        bail!(
            "target {}: kiln cannot build {} programs for a device",
            target.name,
            target.triple
        );
    };
    eprintln!(
        "building {} for {} ({})",
        onnx.display(),
        target.name,
        target.triple
    );
    let graph = kiln_lower::lower_file(&onnx, &kiln_lower::LowerOptions::default())?;
    let crate_dir = out.join("crate");
    let generated = kiln_codegen::generate(
        &graph,
        &crate_dir,
        &kiln_codegen::GenerateOptions::new(onnx.display().to_string()),
    )?;
    // A target dir of flash's own, so a flash does not wait for a search
    // building in the default one (kiln-codegen locks the dir per build).
    let target_dir = kiln_codegen::default_target_dir().join("flash");
    let program = kiln_codegen::build(&crate_dir, build_target, &target_dir)?;
    let wasm = kiln_codegen::build(&crate_dir, BuildTarget::Wasm32, &target_dir)?;
    let input = kiln_measure::report::fixed_input(generated.input_len);
    let sim = kiln_measure::sim::SimModule::load(&wasm)?
        .run(&input, &kiln_measure::sim::SimLimits::default())?;
    let input_path = out.join("input.bin");
    let expected_path = out.join("expected.bin");
    write(&input_path, &kiln_measure::host::encode_f32_le(&input))?;
    write(
        &expected_path,
        &kiln_measure::host::encode_f32_le(&sim.output),
    )?;

    // sim and host figures of the same model (host under qemu for aarch64).
    let artifacts = kiln_measure::report::Artifacts {
        wasm: wasm.clone(),
        program: Some(program.clone()),
        weight_bytes: generated.weight_bytes as u64,
        arena_bytes: generated.plan.arena_len as u64 * 4,
        input_len: generated.input_len,
        output_len: generated.output_len,
    };
    let local_options = kiln_measure::report::MeasureOptions {
        warmup: args.warmup.min(3),
        runs: args.runs.clamp(1, 10),
        ..Default::default()
    };
    let local = kiln_measure::report::measure(&target, &artifacts, &local_options)?;
    // Never ship a program that already disagrees with the simulation here.
    if let Some(check) = local.output_check.as_ref().filter(|c| !c.passed) {
        bail!(
            "not flashing {}: {} differ by {:.2e} (tolerance {:.0e}) here already; rebuild (another build may have replaced the shared artifact)",
            program.display(),
            check.compared,
            check.max_abs_diff,
            check.tolerance
        );
    }

    let bench = BenchSettings {
        warmup: args.warmup,
        runs: args.runs,
        runner: target.deploy.runner.clone(),
        power,
    };
    let bundle = Bundle {
        program,
        input: input_path,
        expected: expected_path,
    };
    let result = device.flash(&bundle, &bench);
    if args.dry_run {
        println!("dry run: commands for {}:", device.name());
        for c in device.commands() {
            println!("  {c}");
        }
    }
    let report =
        result.with_context(|| format!("flashing {} to {}", onnx.display(), device.name()))?;
    if args.dry_run {
        return Ok(());
    }
    let Some(b) = &report.bench else {
        bail!("the device returned no benchmark figures");
    };
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
        "  latency [device]   p50 {:.1} us, p95 {:.1} us, min {:.1} us, max {:.1} us ({} runs after {} warm-up{})",
        b.p50_us,
        b.p95_us,
        b.min_us,
        b.max_us,
        b.runs,
        args.warmup,
        target
            .deploy
            .runner
            .as_deref()
            .map(|r| format!("; run under {r}, emulated"))
            .unwrap_or_default()
    );
    match b.peak_rss_kib {
        Some(k) => println!(
            "  peak RSS [device]  {k} KiB{}",
            if target.deploy.runner.is_some() {
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
        println!(
            "  power mode {mode}: nvpmodel {}",
            match (p.nvpmodel_set, p.nvpmodel_before) {
                (Some(id), Some(before)) => format!(
                    "-m {id} (was {before}{})",
                    if p.restored == Some(true) {
                        ", restored"
                    } else {
                        ""
                    }
                ),
                (Some(id), None) => format!("-m {id}"),
                _ => "not set".to_string(),
            }
        );
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
    if let Some(t) = &local.host_timing {
        println!(
            "  latency [{}] p50 {:.1} us (for comparison)",
            t.label(),
            t.p50.value
        );
    }
    if let Some(m) = local.power.modes.first() {
        println!(
            "  latency [sim]      p50=p95 {} at mode {}",
            m.latency_p50, m.mode
        );
    }
    let metrics = serde_json::json!({
        "model": onnx.display().to_string(),
        "target": target.name,
        "device": {
            "source": "device",
            "address": report.device,
            "version": report.version,
            "previous": report.previous,
            "runner": target.deploy.runner,
            "bench": b,
            "power": report.power,
        },
        "local": local,
    });
    let path = out.join("metrics.json");
    write(&path, serde_json::to_string_pretty(&metrics)?.as_bytes())?;
    println!("  figures: {}", path.display());
    Ok(())
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// The device flags of a command line (`flash --host`, `search --device`).
pub(crate) struct DeviceFlags<'a> {
    /// How the USER@ADDR flag is spelled in messages.
    pub host_flag: &'static str,
    pub host: Option<&'a str>,
    pub port: Option<u16>,
    pub identity: Option<&'a Path>,
    pub ssh_options: &'a [String],
    pub serial: Option<&'a str>,
}

/// The kiln folder on the device: the profile's, else a default per method.
pub(crate) fn device_dir(target: &kiln_target::Target) -> String {
    target
        .deploy
        .dir
        .clone()
        .unwrap_or_else(|| match target.deploy.method {
            DeployMethod::Adb => "/data/local/tmp/kiln".to_string(),
            _ => "/tmp/kiln".to_string(),
        })
}

/// How the profile's device is reached, from the flags given.
pub(crate) fn transport(
    target: &kiln_target::Target,
    f: &DeviceFlags<'_>,
) -> anyhow::Result<Transport> {
    let (name, host_flag) = (&target.name, f.host_flag);
    match target.deploy.method {
        DeployMethod::Ssh => {
            if f.serial.is_some() {
                bail!(
                    "--serial is for adb devices; target {name} deploys over ssh (give {host_flag} USER@ADDR)"
                );
            }
            let Some(host) = f.host else {
                bail!(
                    "target {name} deploys over ssh: give {host_flag} USER@ADDR (and --port, --identity if needed)"
                );
            };
            if host.starts_with('-') || host.contains(char::is_whitespace) {
                bail!("{host_flag} `{host}`: expected USER@ADDR");
            }
            Ok(Transport::Ssh(SshTarget {
                destination: host.to_string(),
                port: f.port,
                identity: f.identity.map(Path::to_path_buf),
                options: f.ssh_options.to_vec(),
            }))
        }
        DeployMethod::Adb => {
            // `search --device adb` means the only attached phone.
            let host_given = f
                .host
                .is_some_and(|h| !(host_flag == "--device" && h == "adb"));
            if host_given || f.port.is_some() || f.identity.is_some() || !f.ssh_options.is_empty() {
                bail!(
                    "target {name} deploys with adb: use --serial SERIAL, not {host_flag} USER@ADDR/--port/--identity/--ssh-option"
                );
            }
            Ok(Transport::Adb(AdbTarget {
                serial: f.serial.map(str::to_string),
            }))
        }
        DeployMethod::Wasmtime => bail!(
            "target {name} is the simulated device (wasmtime); nothing to flash: `cargo xtask measure MODEL.onnx --target {name}` measures it"
        ),
    }
}

/// The ONNX model to flash and the folder its figures go to.
fn resolve_model(args: &Args, target: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    let run_dir = match &args.model {
        Some(p) if p.is_file() => {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into());
            let out = args.out.clone().unwrap_or_else(|| {
                common::workspace_root()
                    .join("runs/flash")
                    .join(target)
                    .join(stem)
            });
            return Ok((p.clone(), out));
        }
        Some(p) if p.is_dir() => p.clone(),
        Some(p) => bail!("--model {}: no such file or folder", p.display()),
        None => latest_run(&common::workspace_root().join("runs"), target)?,
    };
    let onnx = best_of_front(&run_dir)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| run_dir.join("flash").join(target));
    Ok((onnx, out))
}

/// The front's best model: of the entries of front.json's `front` list
/// (kiln-search writes them fastest first), the most accurate; its folder
/// holds `model.onnx`.
fn best_of_front(run_dir: &Path) -> anyhow::Result<PathBuf> {
    let path = run_dir.join("front.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "{} has no front.json (a search run folder); give --model MODEL.onnx instead",
            run_dir.display()
        )
    })?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let entries = json
        .get("front")
        .and_then(|f| f.as_array())
        .with_context(|| format!("{}: field `front`: expected a list", path.display()))?;
    let accuracy = |e: &serde_json::Value| {
        e.pointer("/metrics/accuracy/value")
            .and_then(|v| v.as_f64())
            .unwrap_or(f64::NEG_INFINITY)
    };
    let mut best: Option<&serde_json::Value> = None;
    for e in entries {
        if best.is_none_or(|b| accuracy(e) > accuracy(b)) {
            best = Some(e);
        }
    }
    let folder = best
        .and_then(|e| e.get("folder"))
        .and_then(|f| f.as_str())
        .with_context(|| {
            format!(
                "{}: the front is empty (no model met every constraint)",
                path.display()
            )
        })?;
    let onnx = run_dir.join(folder).join("model.onnx");
    if !onnx.is_file() {
        bail!(
            "{}: the best model {} does not exist",
            path.display(),
            onnx.display()
        );
    }
    Ok(onnx)
}

/// The newest run folder under `runs/` whose front.json is for `target`.
fn latest_run(runs: &Path, target: &str) -> anyhow::Result<PathBuf> {
    let none = || {
        anyhow::anyhow!(
            "no search run for target {target} with a front.json under {}; give --model MODEL.onnx (or a run folder)",
            runs.display()
        )
    };
    let entries = std::fs::read_dir(runs).map_err(|_| none())?;
    let mut best: Option<(std::time::SystemTime, PathBuf)> = None;
    for e in entries.flatten() {
        let front = e.path().join("front.json");
        let Ok(text) = std::fs::read_to_string(&front) else {
            continue;
        };
        let for_target = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|j| {
                j.pointer("/run/target")
                    .and_then(|t| t.as_str().map(str::to_string))
            })
            .is_some_and(|t| t == target);
        let Ok(modified) = front.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        if for_target && best.as_ref().is_none_or(|(t, _)| modified > *t) {
            best = Some((modified, e.path()));
        }
    }
    best.map(|(_, p)| p).ok_or_else(none)
}
