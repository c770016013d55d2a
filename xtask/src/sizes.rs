//! `cargo xtask sizes`: the generated program's sections with the weights
//! apart, and optionally the same figures for a static program that runs the
//! same ONNX file through tract, with the size ratio against the goal.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use kiln_codegen::reference::{TRACT_PROFILE, build_tract_reference, tract_toolchain_env};
use kiln_measure::size::{BinaryFormat, ModelSize, SectionSizes, model_size, section_sizes};
use kiln_pipeline::build_file;
use kiln_target::Triple;

use crate::common::{targets_dir, workspace_root};

/// The goals: generated code <= 64 KiB; generated program (weights
/// apart) <= 1/20 of the tract program.
const CODE_GOAL_BYTES: u64 = 64 * 1024;
const RATIO_GOAL: f64 = 1.0 / 20.0;

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
    /// Device profile: a name from targets/ (e.g. jetson) or a profile file.
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
    /// Folder for the generated crate (default: runs/sizes/<model name>-<content hash>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Folder of profiles (default: targets/ of the checkout).
    #[arg(long)]
    targets_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let dir = args.targets_dir.clone().unwrap_or_else(targets_dir);
    let target = kiln_target::load(&dir, &args.target)?;
    let is_wasm = target.triple.is_wasm();
    if args.vs_tract && is_wasm {
        bail!(
            "--vs-tract compares native programs; target {} builds {} (pick an aarch64 or host target, e.g. jetson)",
            target.name,
            target.triple
        );
    }
    // Checked before anything is built, so a missing compiler costs nothing.
    let toolchain_env = if args.vs_tract {
        tract_toolchain_env(target.triple.as_str(), target.triple.is_host())?
    } else {
        Vec::new()
    };
    let name = args.model.display().to_string();
    let built = build_file(
        &args.model,
        &workspace_root().join("runs/sizes"),
        args.out.as_deref(),
        args.input_shape.clone(),
        &[Triple::Wasm32, target.triple],
    )?;
    let program = match is_wasm {
        true => built.wasm()?,
        false => built
            .program(target.triple)
            .with_context(|| format!("no program was built for {}", target.triple))?,
    }
    .to_path_buf();
    let generated = model_size(&program, Some(built.weight_bytes), Some(built.arena_bytes))
        .with_context(|| format!("reading the sections of {}", program.display()))?;

    println!(
        "model {name}, target {} ({}); figures read from the binaries [host]",
        target.name, target.triple
    );
    println!(
        "\ngenerated program {} (opt-level 3, lto, codegen-units 1, panic abort)",
        program.display()
    );
    print_generated(&generated);
    let generated_bytes = size_without_weights(&generated);

    if args.vs_tract {
        eprintln!(
            "building the tract reference for {} (profile {TRACT_PROFILE}; minutes when cold)...",
            target.triple
        );
        let target_dir = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace_root().join("target"));
        let tract = build_tract_reference(
            &workspace_root(),
            target.triple.as_str(),
            &target_dir,
            &toolchain_env,
        )?;
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
