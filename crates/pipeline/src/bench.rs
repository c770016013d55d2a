//! The CI benchmark's suite, built and run on the simulated device: the
//! MobileNetV2-0.5 baseline at 3x96x96 and three seeded genomes of the
//! default space at 3x32x32, with seeded random weights. Every figure is
//! `sim` (fuel is deterministic, so the committed baseline's tolerances can
//! be tight). Comparing with the baseline is kiln-measure's
//! ([`kiln_measure::bench`]).

use std::path::Path;

use kiln_measure::bench::BenchEntry;
use kiln_measure::report::fixed_input;
use kiln_measure::sim::{SimLimits, SimModule};
use kiln_measure::size::section_sizes;
use kiln_onnx::{ExportOptions, Weights};
use kiln_space::{Architecture, Genome, InputSpec, Space};
use kiln_target::Triple;
use rand::SeedableRng;

use crate::PipelineError;
use crate::build::{ModelSource, build_model};

/// One member of the fixed suite.
#[derive(Debug, Clone)]
pub struct SuiteModel {
    /// Its name in the baseline file.
    pub name: String,
    /// What it is (genome id, input, weight seed): a changed identity is a
    /// suite mismatch, not a regression.
    pub identity: String,
    /// The exported ONNX model.
    pub onnx: Vec<u8>,
}

fn export(
    space: &Space,
    genome: &Genome,
    input: InputSpec,
    seed: u64,
) -> Result<Vec<u8>, PipelineError> {
    let arch = Architecture::new(space, genome, input)?;
    let weights = Weights::random(&arch, seed);
    kiln_onnx::export(&arch, &weights, &ExportOptions::default())
        .map_err(|e| PipelineError::Invalid(format!("exporting the bench suite: {e}")))
}

/// The suite, from the spaces of the kiln checkout at `root`.
///
/// Errors: a space or genome file of the checkout missing or invalid.
pub fn suite(root: &Path) -> Result<Vec<SuiteModel>, PipelineError> {
    let spaces = root.join("spaces");
    let v2_space = Space::load(&spaces.join("mobilenetv2.toml"))?;
    let v2 = Genome::load(&spaces.join("mobilenetv2-0.5.json"), &v2_space)?;
    let image = |side: usize| InputSpec {
        channels: 3,
        height: side,
        width: side,
        classes: 10,
    };
    let mut models = vec![SuiteModel {
        name: "mobilenetv2-0.5".into(),
        identity: format!("{} 3x96x96/10 seed 7", v2.id()),
        onnx: export(&v2_space, &v2, image(96), 7)?,
    }];
    let space = Space::load(&spaces.join("mobile.toml"))?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
    for i in 0..3u64 {
        let genome = Genome::sample(&space, &mut rng);
        models.push(SuiteModel {
            name: format!("mobile-genome-{i}"),
            identity: format!("{} 3x32x32/10 seed {i}", genome.id()),
            onnx: export(&space, &genome, image(32), i)?,
        });
    }
    Ok(models)
}

/// Builds each suite model for wasm32 (crates under `work_dir/<name>`) and
/// runs it under the simulated device; `progress` gets one line per model.
pub fn measure_suite(
    root: &Path,
    work_dir: &Path,
    target_dir: &Path,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<BenchEntry>, PipelineError> {
    let mut entries = Vec::new();
    for model in suite(root)? {
        let built = build_model(
            &ModelSource {
                onnx: &model.onnx,
                name: &model.name,
                crate_dir: &work_dir.join(&model.name),
                target_dir,
                input_shape: None,
            },
            &[Triple::Wasm32],
        )?;
        let wasm = built.wasm()?;
        let sizes = section_sizes(wasm)?;
        let run =
            SimModule::load(wasm)?.run(&fixed_input(built.input_len), &SimLimits::default())?;
        progress(&format!("{:<20} fuel {} [sim]", model.name, run.fuel));
        entries.push(BenchEntry {
            name: model.name,
            identity: model.identity,
            fuel: run.fuel,
            wasm_code_bytes: sizes.text,
            wasm_data_bytes: sizes.data,
            arena_bytes: built.arena_bytes,
            peak_memory_bytes: run.peak_memory_bytes,
        });
    }
    Ok(entries)
}
