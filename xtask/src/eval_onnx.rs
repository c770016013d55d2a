//! `cargo xtask eval-onnx`: top-1 of an ONNX model on a data set's test split.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kiln_pipeline::eval::{Engines, evaluate};

use crate::common::DataArgs;

/// Run the test split of a data set through an ONNX model and print top-1.
///
/// The default engine is kiln's own: the model is lowered, generated as a no_std crate,
/// built for this host, and the program runs once per image (the same path a device
/// deployment takes). `--engine tract` runs tract-onnx instead (the reference);
/// `--engine both` runs both and reports how far they agree. Images go in as raw pixel
/// values (0..255 as f32, NCHW): models from `cargo xtask train` normalise in their first ops.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The ONNX model (e.g. RUN_DIR/model.onnx from `cargo xtask train`).
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Which engine computes the logits.
    #[arg(long, value_enum, default_value = "runtime")]
    pub engine: Engine,
    /// Evaluate only the first N test images.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// The f32 model an int8 model was quantized from: its top-1 is printed beside the
    /// int8 one (default: X.onnx beside X.int8.onnx, when it exists).
    #[arg(long, value_name = "MODEL")]
    pub f32: Option<PathBuf>,
    /// Where the generated crate goes (default: kiln-model/<name>-<content hash>
    /// next to the model).
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

/// `--engine` values.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// kiln's generated no_std program, built for this host.
    Runtime,
    /// tract-onnx (reference).
    Tract,
    /// Both, with their agreement.
    Both,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = std::fs::read(&args.model)
        .with_context(|| format!("cannot read {}", args.model.display()))?;
    let name = args.model.display().to_string();
    let data = args.data.load()?;
    let n = args.limit.unwrap_or(data.test.len()).min(data.test.len());
    if n == 0 {
        bail!("data set {}: the test split is empty", data.name);
    }
    let work_dir = args.work_dir.clone().unwrap_or_else(|| {
        let parent = args.model.parent().unwrap_or(Path::new("."));
        kiln_pipeline::content_dir(&parent.join("kiln-model"), &args.model, &bytes, None)
    });
    let engines = Engines {
        runtime: args.engine != Engine::Tract,
        tract: args.engine != Engine::Runtime,
    };
    if engines.runtime {
        eprintln!("building {} for this host ...", work_dir.display());
    }
    let r = evaluate(&bytes, &name, &data, n, engines, &work_dir)?;
    if r.metadata.input.is_none() {
        eprintln!("note: {name} has no kiln.input metadata; fed raw pixel values 0..255 as f32");
    }
    let mut report = serde_json::json!({
        "source": "host",
        "model": name,
        "dataset": data.name,
        "images": n,
    });
    for (engine, top1) in [("kiln-runtime", r.runtime_top1), ("tract", r.tract_top1)] {
        if let Some(top1) = top1 {
            println!(
                "{engine}: test top-1 {:.2}% ({} of {n} images)",
                top1 * 100.0,
                (top1 * n as f64).round()
            );
            report[format!("{engine}_top1")] = top1.into();
        }
    }
    println!("per class: {}", r.per_class_line());
    report["per_class"] = serde_json::to_value(&r.per_class)?;
    if let (Some(agree), Some(diff)) = (r.agreement, r.max_logit_difference) {
        println!(
            "kiln-runtime and tract agree on {} of {n} predictions; largest logit difference {diff:.2e}",
            (agree * n as f64).round()
        );
        report["agreement"] = agree.into();
        report["max_logit_difference"] = diff.into();
    }
    // burn's figure from training, when this is the same test split.
    if let (Some(burn), Some(trained_on)) = (r.metadata.test_top1, &r.metadata.dataset)
        && *trained_on == data.name
        && n == data.test.len()
    {
        report["burn_top1"] = burn.into();
        if let Some(ours) = r.runtime_top1.or(r.tract_top1) {
            let kind = r
                .metadata
                .accuracy_kind
                .as_deref()
                .unwrap_or("burn, at training");
            println!(
                "when written ({kind}): test top-1 {:.2}%; difference {:+.2} points",
                burn * 100.0,
                (ours - burn) * 100.0
            );
            report["difference_points"] = ((ours - burn) * 100.0).into();
        }
    }
    let twin = args.f32.clone();
    if let Some(f32_path) = twin.or_else(|| kiln_pipeline::eval::f32_twin(&args.model)) {
        let f32_bytes = std::fs::read(&f32_path)
            .with_context(|| format!("--f32: cannot read {}", f32_path.display()))?;
        let dir = work_dir.with_file_name(format!("f32-{}", kiln_pipeline::content_id(&f32_bytes)));
        let name = f32_path.display().to_string();
        let f = evaluate(&f32_bytes, &name, &data, n, engines, &dir)?;
        for (engine, (int8, f32)) in [
            ("kiln-runtime", (r.runtime_top1, f.runtime_top1)),
            ("tract", (r.tract_top1, f.tract_top1)),
        ] {
            if let (Some(q), Some(f)) = (int8, f32) {
                let d = (q - f) * 100.0;
                println!(
                    "{engine}: test top-1 int8 {:.2}% vs f32 {:.2}% ({name}): {d:+.2} points",
                    q * 100.0,
                    f * 100.0
                );
                report[format!("{engine}_f32_top1")] = f.into();
            }
        }
        report["f32_model"] = name.into();
    }
    println!("{report}");
    Ok(())
}
