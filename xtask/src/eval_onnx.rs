//! `cargo xtask eval-onnx`: top-1 of an ONNX model on a data set's test split.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use kiln_codegen::{BuildTarget, GenerateOptions};
use kiln_data::Dataset;
use kiln_lower::LowerOptions;
use tract_onnx::prelude::*;

use crate::train::DataArgs;

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
    /// Where the generated crate goes (default: kiln-model/ next to the model).
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
    let meta = Metadata::read(&bytes, &name)?;
    if meta.input.is_none() {
        eprintln!(
            "note: {name} has no kiln.input metadata; feeding raw pixel values 0..255 as f32"
        );
    }

    let runtime = match args.engine {
        Engine::Runtime | Engine::Both => {
            let dir = args.work_dir.clone().unwrap_or_else(|| {
                args.model
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join("kiln-model")
            });
            Some(run_runtime(&bytes, &name, &dir, &data, n)?)
        }
        Engine::Tract => None,
    };
    let tract = match args.engine {
        Engine::Tract | Engine::Both => Some(run_tract(&bytes, &name, &data, n)?),
        Engine::Runtime => None,
    };

    let mut report = serde_json::json!({
        "source": "host",
        "model": name,
        "dataset": data.name,
        "images": n,
    });
    for (engine, logits) in [("kiln-runtime", &runtime), ("tract", &tract)] {
        if let Some(l) = logits {
            let top1 = top1(l, &data, n);
            println!(
                "{engine}: test top-1 {:.2}% ({} of {n} images)",
                top1 * 100.0,
                (top1 * n as f64).round()
            );
            report[format!("{engine}_top1")] = top1.into();
        }
    }
    if let (Some(a), Some(b)) = (&runtime, &tract) {
        let classes = data.classes;
        let agree = (0..n)
            .filter(|&i| {
                argmax(&a[i * classes..(i + 1) * classes])
                    == argmax(&b[i * classes..(i + 1) * classes])
            })
            .count();
        let max_diff = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        println!(
            "kiln-runtime and tract agree on {agree} of {n} predictions; largest logit difference {max_diff:.2e}"
        );
        report["agreement"] = (agree as f64 / n as f64).into();
        report["max_logit_difference"] = f64::from(max_diff).into();
    }
    // burn's figure from training, when this is the same test split.
    if let (Some(burn), Some(trained_on)) = (meta.test_top1, &meta.dataset)
        && *trained_on == data.name
        && n == data.test.len()
    {
        report["burn_top1"] = burn.into();
        let ours = runtime
            .as_ref()
            .or(tract.as_ref())
            .map(|l| top1(l, &data, n));
        if let Some(ours) = ours {
            println!(
                "burn (at training): test top-1 {:.2}%; difference {:+.2} points",
                burn * 100.0,
                (ours - burn) * 100.0
            );
            report["difference_points"] = ((ours - burn) * 100.0).into();
        }
    }
    println!("{report}");
    Ok(())
}

/// kiln metadata of a trained model (absent in models from elsewhere).
struct Metadata {
    input: Option<String>,
    dataset: Option<String>,
    test_top1: Option<f64>,
}

impl Metadata {
    fn read(bytes: &[u8], name: &str) -> Result<Metadata> {
        let model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .with_context(|| format!("{name}: tract cannot read the model"))?;
        let prop = |key: &str| {
            model
                .properties
                .get(&format!("onnx.metadata_props.{key}"))
                .and_then(|t| {
                    t.to_plain_array_view::<String>()
                        .ok()?
                        .iter()
                        .next()
                        .cloned()
                })
        };
        Ok(Metadata {
            input: prop("kiln.input"),
            dataset: prop("kiln.dataset"),
            test_top1: prop("kiln.test_top1").and_then(|s| s.parse().ok()),
        })
    }
}

fn raw_image(data: &Dataset, i: usize) -> Vec<f32> {
    data.test.image(i).iter().map(|&p| f32::from(p)).collect()
}

fn run_runtime(bytes: &[u8], name: &str, dir: &Path, data: &Dataset, n: usize) -> Result<Vec<f32>> {
    let graph = kiln_lower::lower_bytes(bytes, name, &LowerOptions::default())
        .with_context(|| format!("lowering {name}"))?;
    let generated = kiln_codegen::generate(&graph, dir, &GenerateOptions::new(name))
        .with_context(|| format!("generating the model crate in {}", dir.display()))?;
    check_lengths(generated.input_len, generated.output_len, data, name)?;
    eprintln!("building {} for this host ...", dir.display());
    let binary = kiln_codegen::build(dir, BuildTarget::Host, &kiln_codegen::default_target_dir())
        .with_context(|| format!("building {}", dir.display()))?;
    let mut logits = Vec::with_capacity(n * data.classes);
    for i in 0..n {
        let out = kiln_measure::host::run(&binary, &raw_image(data, i))
            .with_context(|| format!("running {} on test image {i}", binary.display()))?;
        logits.extend(out);
    }
    Ok(logits)
}

fn run_tract(bytes: &[u8], name: &str, data: &Dataset, n: usize) -> Result<Vec<f32>> {
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .with_context(|| format!("{name}: tract cannot load the model"))?;
    let s = data.shape;
    let mut logits = Vec::with_capacity(n * data.classes);
    for i in 0..n {
        let x = tract_ndarray::Array4::from_shape_vec(
            [1, s.channels, s.height, s.width],
            raw_image(data, i),
        )?;
        let out = model
            .run(tvec!(Tensor::from(x).into()))
            .with_context(|| format!("{name}: tract failed on test image {i}"))?;
        let view = out[0].to_plain_array_view::<f32>()?;
        if view.len() != data.classes {
            bail!(
                "{name}: {} outputs, but data set {} has {} classes",
                view.len(),
                data.name,
                data.classes
            );
        }
        logits.extend(view.iter().copied());
    }
    Ok(logits)
}

fn check_lengths(input_len: usize, output_len: usize, data: &Dataset, name: &str) -> Result<()> {
    if input_len != data.shape.len() {
        bail!(
            "{name}: the model takes {input_len} input values, data set {} has images of {} ({} values)",
            data.name,
            data.shape,
            data.shape.len()
        );
    }
    if output_len != data.classes {
        bail!(
            "{name}: {output_len} outputs, but data set {} has {} classes",
            data.name,
            data.classes
        );
    }
    Ok(())
}

fn argmax(row: &[f32]) -> usize {
    kiln_train::argmax(row)
}

fn top1(logits: &[f32], data: &Dataset, n: usize) -> f64 {
    let c = data.classes;
    let correct = (0..n)
        .filter(|&i| argmax(&logits[i * c..(i + 1) * c]) == data.test.label(i))
        .count();
    correct as f64 / n as f64
}
