//! `cargo xtask sizes`: the generated program's sections with the weights
//! apart, and optionally the same figures for a static program that runs the
//! same ONNX file through tract, with the size ratio against the goal.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use kiln_measure::report::host_triple;
use kiln_measure::size::{BinaryFormat, ModelSize, SectionSizes, model_size, section_sizes};

use crate::common::{targets_dir, workspace_root};
use crate::measure::build_model;

/// The goals: generated code <= 64 KiB; generated program (weights
/// apart) <= 1/20 of the tract program.
const CODE_GOAL_BYTES: u64 = 64 * 1024;
const RATIO_GOAL: f64 = 1.0 / 20.0;

/// The cargo profile of the tract reference: release with the settings
/// kiln-codegen gives every generated crate (root Cargo.toml).
const TRACT_PROFILE: &str = "tract-size";
const TRACT_EXAMPLE: &str = "tract_infer";

/// What installs an aarch64 C compiler/assembler for tract-linalg's kernels.
const AARCH64_CC: &str = "aarch64-linux-gnu-gcc";
const AARCH64_CC_INSTALL: &str =
    "apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross";

/// Binary sizes of a model's generated program for a target, read from the
/// built file (`host`): text (code), rodata with the weights apart, data,
/// bss. With --vs-tract, also builds crates/lower/examples/tract_infer.rs (the
/// same job through tract: ONNX file in, LE f32 in, LE f32 out) for the same
/// triple with the same profile settings (opt-level 3, lto, codegen-units 1,
/// panic abort) and prints the ratio of the two sizes. Size means the bytes
/// the program occupies in the file: text + rodata + data (bss is zeroed
/// memory at run time, shown but not counted); the generated program's
/// weights are taken out, and tract's program reads its weights from the ONNX
/// file, so it holds none.
#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model (input [1,C,H,W] f32, one output).
    model: PathBuf,
    /// Device profile from targets/ (e.g. jetson).
    #[arg(long)]
    target: String,
    /// Also build the tract reference program and print the size ratio.
    /// Needs an aarch64 C compiler for aarch64 targets (tract-linalg's
    /// assembly kernels); slow on a cold build (all of tract, with LTO).
    #[arg(long)]
    vs_tract: bool,
    /// Full input shape N,C,H,W when the model has symbolic dimensions.
    #[arg(long, value_delimiter = ',')]
    input_shape: Option<Vec<usize>>,
    /// Folder for the generated crate (default: runs/sizes/<model name>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder of profiles (default: targets/ of the checkout).
    #[arg(long)]
    targets_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let dir = args.targets_dir.clone().unwrap_or_else(targets_dir);
    let target = kiln_target::load(&dir, &args.target)?;
    let is_wasm = target.triple.starts_with("wasm32");
    if args.vs_tract && is_wasm {
        bail!(
            "--vs-tract compares native programs; target {} builds {} (pick an aarch64 or host target, e.g. jetson)",
            target.name,
            target.triple
        );
    }
    // Checked before anything is built, so a missing compiler costs nothing.
    let toolchain_env = if args.vs_tract {
        cross_toolchain_env(&target.triple)?
    } else {
        Vec::new()
    };
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
        .unwrap_or_else(|| workspace_root().join("runs/sizes").join(&name));

    let built = build_model(
        &onnx,
        &args.model.display().to_string(),
        &crate_dir,
        &[target.triple.as_str()],
        args.input_shape.clone(),
    )?;
    let artifacts = built.for_target(&target);
    let program = if is_wasm {
        artifacts.wasm.clone()
    } else {
        artifacts
            .program
            .clone()
            .with_context(|| format!("no program was built for {}", target.triple))?
    };
    let generated = model_size(
        &program,
        Some(artifacts.weight_bytes),
        Some(artifacts.arena_bytes),
    )
    .with_context(|| format!("reading the sections of {}", program.display()))?;

    println!(
        "model {}, target {} ({}); figures read from the binaries [host]",
        args.model.display(),
        target.name,
        target.triple
    );
    println!(
        "\ngenerated program {} (opt-level 3, lto, codegen-units 1, panic abort)",
        program.display()
    );
    print_generated(&generated);
    let generated_bytes = size_without_weights(&generated);

    if args.vs_tract {
        let tract = build_tract_reference(&target.triple, &toolchain_env)?;
        let sections = section_sizes(&tract)
            .with_context(|| format!("reading the sections of {}", tract.display()))?;
        println!(
            "\ntract reference {} (profile {TRACT_PROFILE}: same settings; weights are read from the ONNX file at run time, so none are in the binary)",
            tract.display()
        );
        print_sections(&sections, None);
        let tract_bytes = file_backed(&sections);
        println!("  size (text + rodata + data)     {}", bytes(tract_bytes));
        let ratio = generated_bytes as f64 / tract_bytes.max(1) as f64;
        println!(
            "\nratio generated / tract = {ratio:.4} (1/{:.1}) [host]; goal <= 1/20 ({RATIO_GOAL:.3}): {}",
            1.0 / ratio.max(f64::MIN_POSITIVE),
            pass(ratio <= RATIO_GOAL)
        );
    }
    Ok(())
}

fn print_generated(size: &ModelSize) {
    let weights = size.weights.map_or(0, |w| w.value as u64);
    print_sections(&size.sections, Some(weights));
    println!(
        "  size without weights (text + rodata other than weights + data)  {}",
        bytes(size_without_weights(size))
    );
    if size.sections.format == BinaryFormat::Elf {
        println!(
            "  goal: text <= {} KiB: {}",
            CODE_GOAL_BYTES / 1024,
            pass(size.sections.text <= CODE_GOAL_BYTES)
        );
    }
}

/// Prints text / rodata / data / bss; `weights` (bytes) are shown apart from
/// the rodata (ELF) or data section (wasm) that holds them.
fn print_sections(s: &SectionSizes, weights: Option<u64>) {
    let weight_section = match s.format {
        BinaryFormat::Elf => s.rodata,
        BinaryFormat::Wasm => s.data,
    };
    let apart = |section: u64| match weights {
        Some(w) if section == weight_section => format!(
            "  = weights {} + other {}",
            bytes(w),
            bytes(section.saturating_sub(w))
        ),
        _ => String::new(),
    };
    println!("  text (code)                     {}", bytes(s.text));
    println!(
        "  rodata                          {}{}",
        bytes(s.rodata),
        if s.format == BinaryFormat::Elf {
            apart(s.rodata)
        } else {
            String::new()
        }
    );
    println!(
        "  data                            {}{}",
        bytes(s.data),
        if s.format == BinaryFormat::Wasm {
            apart(s.data)
        } else {
            String::new()
        }
    );
    println!("  bss (zeroed at run time)        {}", bytes(s.bss));
    println!("  file                            {}", bytes(s.file_bytes));
}

/// Bytes the program holds in its file: text + rodata + data.
fn file_backed(s: &SectionSizes) -> u64 {
    s.text + s.rodata + s.data
}

fn size_without_weights(size: &ModelSize) -> u64 {
    let weights = size.weights.map_or(0, |w| w.value as u64);
    file_backed(&size.sections).saturating_sub(weights)
}

fn bytes(n: u64) -> String {
    format!("{n} B ({:.1} KiB)", n as f64 / 1024.0)
}

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// Builds the tract reference example for `triple` into the shared target
/// dir and returns the binary's path. The toolchain invocation mirrors
/// kiln-codegen's: release-grade profile, rust-lld, static musl for aarch64;
/// `toolchain_env` comes from [`cross_toolchain_env`].
fn build_tract_reference(triple: &str, toolchain_env: &[(String, String)]) -> Result<PathBuf> {
    let root = workspace_root();
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // Run from the checkout so its .cargo/config.toml (rust-lld, self-contained
    // musl) applies; variables an outer cargo sets must not leak in.
    cmd.current_dir(&root);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    cmd.args([
        "build",
        "--quiet",
        "--package",
        "kiln-lower",
        "--example",
        TRACT_EXAMPLE,
        "--profile",
        TRACT_PROFILE,
        "--target",
        triple,
        "--manifest-path",
    ])
    .arg(root.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir);
    cmd.envs(toolchain_env.iter().map(|(k, v)| (k, v)));
    eprintln!(
        "building the tract reference for {triple} (profile {TRACT_PROFILE}; minutes when cold)..."
    );
    let out = cmd.output().context("cannot run cargo")?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let missing = ["may not be installed", "can't find crate for `core`"]
            .iter()
            .any(|m| stderr.contains(m));
        let hint = if missing {
            format!(
                "\nthe Rust target {triple} is missing; install it with `rustup target add {triple}`"
            )
        } else if stderr.contains("failed to find tool")
            || stderr.contains("No such file or directory")
        {
            format!(
                "\nan aarch64 C compiler may be missing; install one with `{AARCH64_CC_INSTALL}`"
            )
        } else {
            String::new()
        };
        bail!(
            "building the tract reference failed ({}):\n{}{hint}",
            out.status,
            tail.join("\n")
        );
    }
    let binary = target_dir
        .join(triple)
        .join(TRACT_PROFILE)
        .join("examples")
        .join(TRACT_EXAMPLE);
    if !binary.is_file() {
        bail!(
            "cargo built the tract reference but {} is missing",
            binary.display()
        );
    }
    Ok(binary)
}

/// The variables cargo needs to build tract for `triple`: rust-lld for aarch64
/// and, since tract-linalg assembles its NEON kernels (and compiles SVE ones)
/// with the `cc` crate, an aarch64 C compiler unless the user has set one.
fn cross_toolchain_env(triple: &str) -> Result<Vec<(String, String)>> {
    if !triple.starts_with("aarch64") || triple == host_triple() {
        return Ok(Vec::new());
    }
    let env_triple = triple.replace('-', "_");
    let mut env = vec![(
        format!("CARGO_TARGET_{}_LINKER", env_triple.to_uppercase()),
        "rust-lld".to_string(),
    )];
    let cc_var = format!("CC_{env_triple}");
    if std::env::var_os(&cc_var).is_some() || std::env::var_os("TARGET_CC").is_some() {
        return Ok(env);
    }
    if !on_path(AARCH64_CC) {
        bail!(
            "building tract for {triple} needs an aarch64 C compiler for tract-linalg's assembly kernels, and {AARCH64_CC} is not on PATH; install it with `{AARCH64_CC_INSTALL}` (or set {cc_var} to another aarch64 compiler)"
        );
    }
    env.push((cc_var, AARCH64_CC.to_string()));
    env.push((
        format!("AR_{env_triple}"),
        "aarch64-linux-gnu-ar".to_string(),
    ));
    Ok(env)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| Path::new(&dir).join(program).is_file())
    })
}
