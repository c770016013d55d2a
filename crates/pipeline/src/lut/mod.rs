//! Latency lookup tables built on a target's measurement path (`cargo xtask lut build`)
//! and checked against whole networks (`cargo xtask lut check`).
//!
//! Build: every [`LayerKey`] the space can produce at the input shape
//! ([`Space::layer_keys`]) is written alone as ONNX ([`kiln_onnx::export_layer`]; an int8
//! key, of a space that lists int8 in `precision`, quantized by kiln-quant: [`layer_model`]); a
//! batch of them becomes one generated bundle, built once; each member is measured whole
//! and its I/O alone, and the difference is the layer's entry. The table is written
//! (atomically) after every batch, so an interrupted build resumes where it stopped.
//! Then a few whole networks, sampled with the build's seed, are built and measured the
//! same way and the per-network constant is fitted on them.
//!
//! A `device` table is measured on the device itself, over the deploy path (`device`
//! module): a batch's bundle travels once and each layer is timed there; its identity
//! names the device, the runner (an emulator's figures say so) and the power mode.
//!
//! A `sim` table's fuel does not depend on the device: a table of the same space, input
//! and runtime built for another target lends its entries (only the milliseconds are
//! derived again), so `lut build --target pixel` after `--target jetson` measures nothing.

mod bundle;
mod calibrate;
mod check;
mod device;
mod int8;

use std::path::{Path, PathBuf};

use kiln_latency::{LatencyTable, SimMode, TableIdentity, fit_overhead, sum_of_layers};
use kiln_metric::{Metric, Source, Unit};
use kiln_onnx::{ExportOptions, Normalization, Weights};
use kiln_space::{Architecture, Genome, InputSpec, LayerKey, Precision, Space};
use kiln_target::Target;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use bundle::{MeasurePath, MemberCost, measure_alone, measure_models};
pub use calibrate::{calibrate, calibration_text};
pub use check::{CheckReport, CheckRow, RejectionAt, check_samples, check_table, today};
pub use device::{OnDevice, device_name, device_path};
pub use int8::{CALIBRATION_INPUTS, layer_model, space_for_precision};

use crate::PipelineError;
use crate::build::content_id;

/// What `lut build` and `lut check` need.
#[derive(Debug, Clone)]
pub struct LutRequest {
    /// The space file (its text is fingerprinted).
    pub space_path: PathBuf,
    /// The space it holds.
    pub space: Space,
    /// Input shape and classes the layers are enumerated for.
    pub input: InputSpec,
    /// The device profile.
    pub target: Target,
    /// Where layers are measured: `Sim` (wasm fuel), `Host` (native wall clock) or
    /// `Device` (wall clock on the device, over ssh/adb).
    pub path: MeasurePath,
    /// The table file.
    pub table_path: PathBuf,
    /// Generated bundles and their builds go here.
    pub work_dir: PathBuf,
    /// Layers per generated bundle.
    pub batch: usize,
    /// Whole networks the per-network constant is fitted on.
    pub fit_networks: usize,
    /// Seed of the layers' random weights and of the fit networks.
    pub seed: u64,
}

/// What a build did, for the progress line.
#[derive(Debug, Clone, PartialEq)]
pub enum LutEvent {
    /// Entries found in the table file (resumed) or lent by another target's table.
    Reused {
        /// Entries taken over.
        entries: usize,
        /// Where from.
        from: PathBuf,
    },
    /// The table file was measured with another runtime (a kernel or the emitter
    /// changed): it is measured again from scratch.
    Stale {
        /// The file.
        path: PathBuf,
    },
    /// A batch was measured and the table written.
    Batch {
        /// Entries in the table now.
        done: usize,
        /// Keys the space has.
        total: usize,
    },
    /// The line from the sum of entries to the whole program was fitted.
    Fitted {
        /// The precision of the networks (an int8 table has a line of each).
        precision: Precision,
        /// Networks fitted on.
        networks: usize,
        /// The factor on the sum.
        scale: f64,
        /// The constant, in the cost unit.
        overhead: Metric,
        /// Largest relative error left on them.
        max_relative_error: f64,
    },
}

impl std::fmt::Display for LutEvent {
    /// The progress line the command line prints.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LutEvent::Reused { entries, from } => {
                write!(f, "{entries} entries from {}", from.display())
            }
            LutEvent::Stale { path } => write!(
                f,
                "{} was measured with another runtime (a kernel or the code generator \
                 changed): measuring it again",
                path.display()
            ),
            LutEvent::Batch { done, total } => write!(f, "measured {done} of {total} layers"),
            LutEvent::Fitted {
                precision,
                networks,
                scale,
                overhead,
                max_relative_error,
            } => write!(
                f,
                "whole {precision} program = {scale:.4} x sum of layers + {:.0} {}, fitted on \
                 {networks} networks built alone (largest error {:.2}%)",
                overhead.value,
                overhead.unit.symbol(),
                100.0 * max_relative_error
            ),
        }
    }
}

/// The table file's default place: `tables/<source>-<target>-<space>-<C>x<H>x<W>-<classes>.json`
/// under `root`.
pub fn default_table_path(
    root: &Path,
    source: Source,
    target: &str,
    space: &str,
    input: InputSpec,
) -> PathBuf {
    root.join("tables").join(format!(
        "{source}-{target}-{space}-{}x{}x{}-{}.json",
        input.channels, input.height, input.width, input.classes
    ))
}

/// The table file's default place for `path`: [`default_table_path`], and for a device
/// table `tables/device-<target>-<device>-<space>-<C>x<H>x<W>-<classes>.json`, the
/// device's name ([`device_name`]) with characters other than letters, digits, `.` and
/// `-` as `_`, so tables of two devices (or of the sim and the host) never share a file.
pub fn default_path_for(
    root: &Path,
    path: &MeasurePath,
    target: &str,
    space: &str,
    input: InputSpec,
) -> PathBuf {
    let MeasurePath::Device(on) = path else {
        return default_table_path(root, path.source(), target, space, input);
    };
    let device: String = device_name(&on.choice.device)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    default_table_path(
        root,
        Source::Device,
        &format!("{target}-{device}"),
        space,
        input,
    )
}

/// The identity `req`'s table has: [`identity`], and for a device table the device,
/// runner and power mode it is measured with.
///
/// Errors: as [`identity`].
pub fn request_identity(req: &LutRequest) -> Result<TableIdentity, PipelineError> {
    let mut id = identity(
        &req.space_path,
        &req.space,
        req.input,
        &req.target,
        req.path.source(),
    )?;
    if let MeasurePath::Device(on) = &req.path {
        id.device = Some(device_name(&on.choice.device));
        id.runner = on.choice.bench.runner.clone();
        id.power_mode = Some(on.choice.power_identity.clone());
    }
    Ok(id)
}

/// The identity a table for this space file, input, target and measurement path has
/// (no device fields: see [`request_identity`]).
///
/// Errors: the space file or the runtime cannot be read.
pub fn identity(
    space_path: &Path,
    space: &Space,
    input: InputSpec,
    target: &Target,
    source: Source,
) -> Result<TableIdentity, PipelineError> {
    let text = crate::files::read(space_path)?;
    let runtime = kiln_codegen::runtime_fingerprint(&kiln_codegen::default_runtime_path())?;
    let sim_modes = match source {
        Source::Sim => target
            .power_modes
            .iter()
            .map(|m| SimMode {
                name: m.name.clone(),
                clock_mhz: m.clock_mhz,
                cycles_per_fuel: target.sim.cycles_per_fuel,
            })
            .collect(),
        _ => Vec::new(),
    };
    Ok(TableIdentity {
        source,
        space: space.name.clone(),
        space_fingerprint: content_id(&text),
        input,
        target: target.name.clone(),
        runtime,
        sim_modes,
        device: None,
        runner: None,
        power_mode: None,
    })
}

/// Reads the table at `path`, refusing one measured for anything but `wanted` (a `sim`
/// table of another target lends its fuel: its milliseconds are derived for `wanted`).
///
/// Errors: the file cannot be read; [`kiln_latency::LatencyError`] (as
/// [`PipelineError::Invalid`]) for a corrupt file or a mismatch, naming each field.
pub fn load_table(path: &Path, wanted: &TableIdentity) -> Result<LatencyTable, PipelineError> {
    adopt(read_table(path)?, wanted, path)
}

/// Reads the table file at `path`.
///
/// Errors: the file cannot be read, or is not a table of this format (naming it).
fn read_table(path: &Path) -> Result<LatencyTable, PipelineError> {
    let text = String::from_utf8_lossy(&crate::files::read(path)?).into_owned();
    LatencyTable::from_json(&text, &path.display().to_string()).map_err(invalid)
}

/// `table` under `wanted`'s identity (its costs lent, see [`LatencyTable::retarget`]),
/// or the mismatch naming every field, `path` as the file.
fn adopt(
    table: LatencyTable,
    wanted: &TableIdentity,
    path: &Path,
) -> Result<LatencyTable, PipelineError> {
    match table.retarget(wanted) {
        Some(t) => Ok(t),
        None => {
            // not lendable: the identity differs in a field that matters, named here
            table
                .check_identity(wanted, &path.display().to_string())
                .map_err(invalid)?;
            Ok(table)
        }
    }
}

fn invalid(e: kiln_latency::LatencyError) -> PipelineError {
    PipelineError::Invalid(e.to_string())
}

fn save(table: &LatencyTable, path: &Path) -> Result<(), PipelineError> {
    crate::files::write(path, table.to_json().as_bytes())
}

/// Builds (or resumes, or completes from another target's `sim` table) the table of
/// `req`, writing it after every batch; see the module docs. On a device, its power mode
/// is held while measuring and put back afterwards, also after a failure.
///
/// Errors: a table file of another identity at `req.table_path` (naming each field; it
/// is left alone), lowering, building or measuring a layer (naming it); a device that
/// stops answering (the table keeps every batch measured before, and says how to
/// resume).
pub fn build_table(
    req: &LutRequest,
    progress: &mut dyn FnMut(LutEvent),
) -> Result<LatencyTable, PipelineError> {
    let wanted = request_identity(req)?;
    let mut table = start_table(req, &wanted, progress)?;
    let keys: Vec<LayerKey> = req.space.layer_keys(req.input)?.into_iter().collect();
    let missing: Vec<LayerKey> = keys
        .iter()
        .filter(|k| table.get(k).is_none())
        .copied()
        .collect();
    if missing.is_empty() && unfitted(&req.space, &table).is_empty() {
        return Ok(table);
    }
    let on_device = match &req.path {
        MeasurePath::Device(on) => Some((on, on.begin()?)),
        _ => None,
    };
    let result = measure_missing(req, &mut table, &keys, &missing, progress);
    if let Some((on, restore)) = on_device {
        on.end(restore);
        if let Err(e) = &result {
            return Err(PipelineError::Invalid(format!(
                "{e}\n{} keeps the {} layers measured so far (of {}): run the same command \
                 again to resume",
                req.table_path.display(),
                table.entries.len(),
                keys.len()
            )));
        }
    }
    result.map(|()| table)
}

/// Measures the `missing` layers batch by batch, saving the table after each, then fits
/// the constant if it is not fitted yet.
fn measure_missing(
    req: &LutRequest,
    table: &mut LatencyTable,
    keys: &[LayerKey],
    missing: &[LayerKey],
    progress: &mut dyn FnMut(LutEvent),
) -> Result<(), PipelineError> {
    let source = req.path.source();
    // a folder of this process's own: two builds at once must not rewrite each other's
    // bundle (the shared target dir is locked per build)
    let crate_dir = req.work_dir.join(format!("layers-{}", std::process::id()));
    let target_dir = req.work_dir.join("target");
    for (i, batch) in missing.chunks(req.batch.max(1)).enumerate() {
        if let (MeasurePath::Device(on), true) = (&req.path, i > 0) {
            // before minutes of building, not after
            on.check_reachable()?;
        }
        let models = batch
            .iter()
            .map(|k| Ok((k.to_string(), layer_model(k, req.seed)?)))
            .collect::<Result<Vec<(String, Vec<u8>)>, PipelineError>>()?;
        let costs = measure_models(&models, &crate_dir, &target_dir, &req.path)?;
        for (key, c) in batch.iter().zip(costs) {
            let entry = match source {
                Source::Sim => table.entry(*key, Metric::new(c.ops(), Unit::Fuel, source), None),
                _ => table.entry(
                    *key,
                    Metric::new(c.ops(), Unit::Microseconds, source),
                    Some(Metric::new(c.ops_best(), Unit::Microseconds, source)),
                ),
            };
            table.insert(entry);
        }
        save(table, &req.table_path)?;
        progress(LutEvent::Batch {
            done: keys.iter().filter(|k| table.get(k).is_some()).count(),
            total: keys.len(),
        });
    }
    for precision in unfitted(&req.space, table) {
        fit(req, table, precision, progress)?;
        save(table, &req.table_path)?;
    }
    Ok(())
}

/// The precisions of `space`'s networks (f32 when it lists none) whose line `table` has
/// not fitted yet.
fn unfitted(space: &Space, table: &LatencyTable) -> Vec<Precision> {
    let all = space.precision.clone().unwrap_or(vec![Precision::F32]);
    all.into_iter()
        .filter(|&p| table.overhead_of(p).is_none())
        .collect()
}

/// The table to continue: the file at `req.table_path` (resumed when it matches, its
/// fuel lent when only the target differs, measured again when only the runtime
/// differs), else a sibling `sim` table's fuel, else an empty table.
fn start_table(
    req: &LutRequest,
    wanted: &TableIdentity,
    progress: &mut dyn FnMut(LutEvent),
) -> Result<LatencyTable, PipelineError> {
    let path = &req.table_path;
    let found = if path.exists() {
        let table = read_table(path)?;
        if stale_runtime_only(&table, wanted) {
            // kernels changed since it was measured: everything in it is out of date
            progress(LutEvent::Stale { path: path.clone() });
            return Ok(LatencyTable::new(wanted.clone()));
        }
        Some((adopt(table, wanted, path)?, path.clone()))
    } else {
        sibling_table(path, wanted)
    };
    let Some((table, from)) = found else {
        return Ok(LatencyTable::new(wanted.clone()));
    };
    progress(LutEvent::Reused {
        entries: table.entries.len(),
        from: from.clone(),
    });
    if from != *path {
        save(&table, path)?;
    }
    Ok(table)
}

/// Whether `table` differs from `wanted` in the runtime fingerprint and otherwise only
/// in the target or sim model (which a rebuild sets anyway).
fn stale_runtime_only(table: &LatencyTable, wanted: &TableIdentity) -> bool {
    let fields = table.mismatches(wanted);
    fields.iter().any(|f| f.field == "runtime")
        && fields
            .iter()
            .all(|f| matches!(f.field, "runtime" | "target" | "sim_modes"))
}

/// The table for `wanted`: the file at `path` when it matches or can lend its costs
/// (a `sim` table of another target or sim model, retargeted), else the first table
/// beside it that can lend its costs, with the file it came from. `None` when there is
/// none.
///
/// Errors: the file at `path` is corrupt, or was measured for another space, input,
/// runtime or source (naming each field).
pub fn find_table(
    path: &Path,
    wanted: &TableIdentity,
) -> Result<Option<(LatencyTable, PathBuf)>, PipelineError> {
    if path.exists() {
        return Ok(Some((load_table(path, wanted)?, path.to_path_buf())));
    }
    Ok(sibling_table(path, wanted))
}

/// The first table in `path`'s folder (by name) that can lend its costs to `wanted`;
/// files that are not tables are passed over.
fn sibling_table(path: &Path, wanted: &TableIdentity) -> Option<(LatencyTable, PathBuf)> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut siblings: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    siblings.sort();
    siblings.into_iter().find_map(|sibling| {
        let other = read_table(&sibling).ok()?;
        let lent = other.retarget(wanted).filter(|t| !t.entries.is_empty())?;
        Some((lent, sibling))
    })
}

/// Whole networks sampled with `seed`, exported as a search candidate is (seeded random
/// weights, the input normalisation in the model), with their architectures; an int8
/// genome's model is quantized (kiln-quant on seeded pixel inputs, see the `int8` module).
pub fn sample_networks(
    space: &Space,
    input: InputSpec,
    n: usize,
    seed: u64,
) -> Result<Vec<(Genome, Architecture, Vec<u8>)>, PipelineError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let options = ExportOptions {
        normalization: Some(Normalization {
            mean: vec![127.5; input.channels],
            std: vec![64.0; input.channels],
        }),
        metadata: Vec::new(),
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let g = Genome::sample(space, &mut rng);
        let arch = Architecture::new(space, &g, input)?;
        let onnx = kiln_onnx::export(&arch, &Weights::random(&arch, seed ^ i as u64), &options)
            .map_err(|e| PipelineError::Invalid(format!("export of genome {}: {e}", g.id())))?;
        let onnx = match arch.precision {
            kiln_space::Precision::F32 => onnx,
            kiln_space::Precision::Int8 => {
                let at = arch.input;
                let shape = [at.channels, at.height, at.width];
                let name = format!("genome {}", g.id());
                int8::quantize_seeded(&onnx, shape, int8::PIXEL_RANGE, seed ^ i as u64, &name)?
            }
        };
        out.push((g, arch, onnx));
    }
    Ok(out)
}

/// Builds each network alone, as the search builds a candidate, and measures the whole
/// program ([`measure_alone`]): fuel (`Sim`) or median microseconds (`Host`).
pub fn measure_networks(
    nets: &[(Genome, Architecture, Vec<u8>)],
    work_dir: &Path,
    path: &MeasurePath,
) -> Result<Vec<f64>, PipelineError> {
    let models: Vec<(String, Vec<u8>)> = nets
        .iter()
        .map(|(g, _, onnx)| (format!("genome {}", g.id()), onnx.clone()))
        .collect();
    measure_alone(&models, work_dir, path)
}

/// Fits the line from the sum of entries to the whole program on `req.fit_networks`
/// networks in `precision` sampled with `req.seed`, each built alone as the search builds
/// it (an int8 one quantized).
fn fit(
    req: &LutRequest,
    table: &mut LatencyTable,
    precision: Precision,
    progress: &mut dyn FnMut(LutEvent),
) -> Result<(), PipelineError> {
    // A space that chooses the precision: its genomes, all drawn in `precision`.
    let mut space = req.space.clone();
    if space.precision.is_some() {
        space.precision = Some(vec![precision]);
    }
    let nets = sample_networks(&space, req.input, req.fit_networks.max(1), req.seed)?;
    let measured = measure_networks(&nets, &req.work_dir, &req.path)?;
    let sums = nets
        .iter()
        .map(|(_, a, _)| sum_of_layers(a, table))
        .collect::<Result<Vec<f64>, _>>()
        .map_err(invalid)?;
    let unit = match req.path {
        MeasurePath::Sim => Unit::Fuel,
        _ => Unit::Microseconds,
    };
    let layers: Vec<usize> = nets.iter().map(|(_, a, _)| a.layer_keys().len()).collect();
    let overhead = fit_overhead(&sums, &layers, &measured, unit).ok_or_else(|| {
        PipelineError::Invalid(format!(
            "{}: the networks measured to fit the table's line did not all measure above \
             zero",
            req.table_path.display()
        ))
    })?;
    progress(LutEvent::Fitted {
        precision,
        networks: overhead.fitted_on,
        scale: overhead.scale,
        overhead: overhead.cost,
        max_relative_error: overhead.max_relative_error,
    });
    table.set_overhead(precision, overhead);
    Ok(())
}
