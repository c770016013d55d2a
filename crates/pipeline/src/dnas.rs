//! `--strategy dnas`: FBNet's differentiable search (kiln-supernet's `dnas`) run on the
//! search's supernet and latency table before the first ask. Its distribution is kept
//! in the run folder (`dnas.json`, one owner: this module), so a resumed search asks
//! what the first run would have asked instead of searching again.

use kiln_target::Target;

use crate::PipelineError;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_data::Dataset;
use kiln_latency::LatencyTable;
use kiln_metric::Source;
use kiln_space::{LayerKey, Precision};
use kiln_supernet::dnas::{DnasResult, DnasSettings, LatencyLimit};

/// The file in the run folder.
pub const DNAS_FILE: &str = "dnas.json";

/// A layer's latency in `table`, ms, in `mode` (a `sim` table's figure for that power
/// mode; a `host` or `device` table's median in microseconds, converted).
fn layer_ms(table: &LatencyTable, mode: &str, key: &LayerKey) -> Option<f64> {
    let e = table.get(key)?;
    match table.identity.source {
        Source::Sim => e.per_mode_ms.get(mode).map(|m| m.value),
        _ => Some(e.cost.value / 1000.0),
    }
}

/// The target's latency limit (the tightest of p50, p95 and 1000 / min FPS) as the
/// search's hinge, in the terms of `table`'s fitted predictor of `precision` networks in
/// `mode` (a table not fitted yet: the plain layer sum). `None` when the target limits no
/// latency.
fn hinge(
    table: &LatencyTable,
    target: &Target,
    mode: &str,
    precision: Precision,
) -> Option<LatencyLimit> {
    let ms = kiln_search::report::latency_limit_ms(target)?;
    let (scale, per_layer, constant) = table
        .overhead_of(precision)
        .map_or((1.0, 0.0, 0.0), |o| (o.scale, o.per_layer, o.cost.value));
    Some(LatencyLimit {
        ms,
        scale,
        per_layer_ms: kiln_latency::cost_ms(table, mode, per_layer).ok()?,
        constant_ms: kiln_latency::cost_ms(table, mode, constant).ok()?,
        weight: 1.0,
    })
}

/// FBNet's search (kiln-supernet's default settings, seeded with `seed`) on the supernet
/// in `supernet`, trained for `data`, with each layer's latency from `table` in the
/// target's first power mode within its budget, at `precision` (a search-wide
/// `--precision int8` prices every layer by its int8 entry). `note` hears its progress.
///
/// Errors: the supernet, a layer the table lacks, divergence
/// ([`PipelineError::Invalid`] naming the cause).
pub fn run(
    supernet: &Path,
    table: &LatencyTable,
    target: &Target,
    data: &Dataset,
    (seed, precision): (u64, Precision),
    stop: Option<&AtomicBool>,
    note: &mut dyn FnMut(&str),
) -> Result<DnasResult, PipelineError> {
    let mode = target
        .modes_within_budget()
        .first()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    if table.identity.source == Source::Sim
        && !table.identity.sim_modes.iter().any(|m| m.name == mode)
    {
        return Err(PipelineError::Invalid(format!(
            "dnas: the latency table has no power mode `{mode}` of `{}` (it has {}): build it \
             for this target with `cargo xtask lut build --target {}`",
            target.name,
            table
                .identity
                .sim_modes
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            target.name
        )));
    }
    let settings = DnasSettings {
        seed,
        limit: hinge(table, target, &mode, precision),
        ..DnasSettings::default()
    };
    let limit = settings.limit.as_ref().map_or(String::new(), |l| {
        format!(", a hinge at the limit {} ms (predicted)", l.ms)
    });
    note(&format!(
        "dnas: FBNet's differentiable search on the supernet ({} epoch(s), alpha {}, beta {}, \
         latency from the table in mode `{mode}`{limit})",
        settings.epochs, settings.alpha, settings.beta
    ));
    let cost = |key: &LayerKey| layer_ms(table, &mode, &key.at(precision));
    let mut last = 0;
    kiln_supernet::dnas::search(supernet, data, &cost, &settings, &mut |step, steps, ce| {
        if step == steps || step >= last + 25 {
            last = step;
            note(&format!("dnas: step {step}/{steps}, cross-entropy {ce:.4}"));
        }
        !stop.is_some_and(|s| s.load(Ordering::SeqCst))
    })
    .map_err(|e| PipelineError::Invalid(format!("dnas: {e}")))
}

/// The learned distribution (per decision, per option) for a search of `out`: read
/// from `out/dnas.json` when resuming a run that has one, otherwise searched on the
/// supernet in `supernet` with `table` (in the target's first power mode within its
/// budget) and written there. `note` hears what it does.
///
/// Errors: no supernet or table (the search needs both); the supernet, a layer the
/// table lacks, or divergence ([`PipelineError::Invalid`] with the cause); the file.
/// What [`distribution`] needs of the search's request.
pub(crate) struct DnasRun<'a> {
    /// The supernet's folder (`None`: no weight sharing, an error).
    pub supernet: Option<&'a Path>,
    /// The run folder.
    pub out: &'a Path,
    /// Whether the search resumes.
    pub resume: bool,
    /// The target (its first power mode within budget prices the layers).
    pub target: &'a Target,
    /// The search's seed.
    pub seed: u64,
    /// The search-wide precision the layers are priced at.
    pub precision: Precision,
    /// Set by Ctrl-C.
    pub interrupt: &'a AtomicBool,
    /// The data the supernet was trained on.
    pub data: &'a Dataset,
}

pub(crate) fn distribution(
    req: &DnasRun,
    table: Option<&LatencyTable>,
    note: &mut dyn FnMut(&str),
) -> Result<Vec<Vec<f64>>, PipelineError> {
    let (Some(dir), Some(table)) = (req.supernet, table) else {
        return Err(PipelineError::Invalid(
            "--strategy dnas needs a supernet (the default evaluator, or --supernet DIR) and \
             a latency table for the target (`cargo xtask lut build --target ...`)"
                .into(),
        ));
    };
    let path = req.out.join(DNAS_FILE);
    if req.resume && path.is_file() {
        let text = std::fs::read_to_string(&path).map_err(|e| PipelineError::Io {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let found: DnasResult = serde_json::from_str(&text).map_err(|e| PipelineError::Io {
            path: path.clone(),
            message: format!("not a differentiable search's result: {e}"),
        })?;
        note(&format!(
            "dnas: the distribution of {} (found {})",
            path.display(),
            found.genome.id()
        ));
        return Ok(found.probabilities);
    }
    let found = run(
        dir,
        table,
        req.target,
        req.data,
        (req.seed, req.precision),
        Some(req.interrupt),
        note,
    )?;
    let text = serde_json::to_string_pretty(&found).unwrap_or_default() + "\n";
    crate::files::write(&path, text.as_bytes())?;
    let latency = match found.predicted_ms {
        Some(ms) => format!("{ms:.2} ms predicted"),
        None => format!(
            "table latency {:.2} ms, predicted, without the per-network constant",
            found.latency_ms
        ),
    };
    note(&format!(
        "dnas: found {} ({latency}); further candidates are drawn from the learned \
         distribution ({})",
        found.genome.id(),
        path.display()
    ));
    Ok(found.probabilities)
}
