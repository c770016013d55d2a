//! `cargo xtask run-onnx MODEL.onnx --input X.npy --output Y.npy [--target host]`:
//! lowers, generates, builds (release) and runs the program on the input.

use std::path::PathBuf;

use anyhow::Context;
use kiln_pipeline::ModelSource;
use kiln_pipeline::run::Program;
use kiln_target::Triple;

use crate::common::workspace_root;

#[derive(clap::Args, Debug)]
pub struct RunOnnxArgs {
    /// The ONNX model.
    pub model: PathBuf,
    /// Input tensor (.npy, f32, the model's input shape; its first axis is the batch).
    #[arg(long)]
    pub input: PathBuf,
    /// Where to write the output tensor (.npy, f32).
    #[arg(long)]
    pub output: PathBuf,
    /// `host` or `aarch64-unknown-linux-musl` (run under qemu-aarch64).
    #[arg(long, default_value = "host")]
    pub target: String,
    /// Folder for the generated crate [default: runs/run-onnx/<model name>-<content hash>].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

pub fn run(args: RunOnnxArgs) -> anyhow::Result<()> {
    let triple: Triple = args
        .target
        .parse()
        .with_context(|| format!("--target {}", args.target))?;
    let (shape, input) = kiln_pipeline::npy::read(&args.input)?;
    let onnx = std::fs::read(&args.model)
        .with_context(|| format!("cannot read {}", args.model.display()))?;
    let work = args.work_dir.clone().unwrap_or_else(|| {
        let base = workspace_root().join("runs/run-onnx");
        kiln_pipeline::content_dir(&base, &args.model, &onnx, Some(&shape))
    });
    let name = args.model.display().to_string();
    let program = Program::build(
        &ModelSource {
            onnx: &onnx,
            name: &name,
            crate_dir: &work,
            target_dir: &kiln_codegen::default_target_dir(),
            // The .npy shape fixes any symbolic input dimension.
            input_shape: Some(shape.clone()),
        },
        triple,
    )
    .with_context(|| {
        format!(
            "building {name} for the input {} (shape {shape:?})",
            args.input.display()
        )
    })?;
    for w in &program.built.warnings {
        eprintln!("warning: {w}");
    }
    let output = program.run(&input, &args.input.display().to_string())?;
    let out_shape = &program.built.output_shape;
    kiln_pipeline::npy::write(&args.output, out_shape, &output)?;
    eprintln!(
        "{} -> {} ({} values, shape {:?}); generated crate in {}",
        args.input.display(),
        args.output.display(),
        output.len(),
        out_shape,
        work.display()
    );
    Ok(())
}
