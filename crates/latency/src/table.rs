//! The table file: per-layer figures keyed by [`LayerKey`], and what they were measured
//! for. JSON, versioned ([`FORMAT_VERSION`]); this module is its one reader and writer.

use std::collections::{BTreeMap, HashMap};

use kiln_metric::{Metric, Source, Unit};
use kiln_space::{InputSpec, LayerKey, Precision};
use serde::{Deserialize, Serialize};

use crate::LatencyError;

/// The table file's format version; a file of another version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// What a table was measured for. A table is used only where every field matches
/// ([`LatencyTable::check_identity`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableIdentity {
    /// Where the entries were measured: `sim` (wasm fuel), `host` (native wall clock on
    /// this machine) or `device`.
    pub source: Source,
    /// The space's name.
    pub space: String,
    /// The space file's content id (SHA-256 of its text).
    pub space_fingerprint: String,
    /// Input shape and class count the layers were enumerated for.
    pub input: InputSpec,
    /// The device profile's name.
    pub target: String,
    /// kiln-codegen's runtime fingerprint: a changed kernel or emitter gives another one.
    pub runtime: String,
    /// For `sim` tables: device cycles per fuel and the power modes' clocks the
    /// milliseconds were derived with; empty for other sources.
    pub sim_modes: Vec<SimMode>,
    /// For `device` tables: the device measured, as reached (`host:port` or
    /// `adb:SERIAL`; no user, key or option).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// For `device` tables: the program the device ran the builds under (the
    /// profile's runner; `qemu-aarch64` means the figures are emulated), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    /// For `device` tables: the power mode the device ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_mode: Option<String>,
}

/// One power mode of a `sim` table: latency (ms) = fuel x `cycles_per_fuel` / (`clock_mhz`
/// x 1000), the profile's sim model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimMode {
    /// The power mode's name (`10W`).
    pub name: String,
    /// Its CPU clock, MHz.
    pub clock_mhz: f64,
    /// The profile's device cycles per unit of fuel.
    pub cycles_per_fuel: f64,
}

/// One layer's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The layer.
    pub key: LayerKey,
    /// The additive figure the predictor sums: fuel (`sim`) or the median of the timed
    /// runs in microseconds (`host`, `device`). The program's input and output copies
    /// are not in it (measured apart and subtracted).
    pub cost: Metric,
    /// `host` and `device`: the best of the timed runs, microseconds.
    pub best: Option<Metric>,
    /// `sim`: the layer's latency per power mode, ms.
    pub per_mode_ms: BTreeMap<String, Metric>,
}

/// The line that turns the sum of a network's layer entries into its whole-program
/// figure: `scale x sum + per_layer x layers + cost`. The constant is what every network adds (the input
/// layout, the input normalisation, the output copy, calls); the scale is how a model
/// built alone (as the search builds it) differs from its layers measured in a bundle
/// (the compiler specialises a kernel that a single model calls with constant
/// arguments; in a bundle of hundreds of layers it cannot). Fitted on whole networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overhead {
    /// The per-network constant, in the cost's unit.
    pub cost: Metric,
    /// The factor on the sum of the entries (1 when fitted on too few networks).
    #[serde(default = "one")]
    pub scale: f64,
    /// Added per layer of the network, in the cost's unit (0 when fitted on too few
    /// networks): a layer measured alone in a bundle costs a little more than inside a
    /// network.
    #[serde(default)]
    pub per_layer: f64,
    /// How many whole networks it was fitted on.
    pub fitted_on: usize,
    /// The largest |predicted - measured| / measured over those networks, with the
    /// constant applied.
    pub max_relative_error: f64,
}

/// How the predictor agreed with whole-network measurements (`cargo xtask lut check`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agreement {
    /// Genomes sampled and measured whole.
    pub samples: usize,
    /// The sampling seed.
    pub seed: u64,
    /// Share of genomes predicted within 5% of their measurement (0..=1).
    pub within_5: f64,
    /// Share within 10% (0..=1).
    pub within_10: f64,
    /// The largest |predicted - measured| / measured.
    pub max_relative_error: f64,
    /// Kendall's tau-b between the predicted and the measured ranking.
    pub kendall_tau: f64,
    /// When it was checked (UTC, RFC 3339 date).
    pub date: String,
}

/// A latency lookup table (see the crate docs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LatencyTable {
    /// [`FORMAT_VERSION`] when written.
    pub format_version: u32,
    /// What the table was measured for.
    pub identity: TableIdentity,
    /// The per-network constant, once fitted (of f32 networks).
    pub overhead: Option<Overhead>,
    /// The line of int8 networks, once fitted, for a space that lists int8 in `precision`
    /// (an int8 layer measured alone carries its own input quantize and output dequantize,
    /// which a whole int8 network has once, so its line differs). Absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_overhead: Option<Overhead>,
    /// The last whole-network check's agreement over its f32 networks, if any (a table
    /// checked before `int8_agreement` existed: over all its networks).
    pub agreement: Option<Agreement>,
    /// The last check's agreement over its int8 networks, when it sampled any: int8
    /// predictions err more than f32 ones, so each precision has its own margin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub int8_agreement: Option<Agreement>,
    /// One entry per layer key, sorted by key.
    pub entries: Vec<Entry>,
    #[serde(skip)]
    index: HashMap<LayerKey, usize>,
}

/// One field in which a table differs from what was asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldMismatch {
    /// The field (`space_fingerprint`, `input`, ...).
    pub field: &'static str,
    /// The table's value.
    pub table: String,
    /// The wanted value.
    pub wanted: String,
}

impl LatencyTable {
    /// An empty table for `identity`.
    pub fn new(identity: TableIdentity) -> LatencyTable {
        LatencyTable {
            format_version: FORMAT_VERSION,
            identity,
            overhead: None,
            int8_overhead: None,
            agreement: None,
            int8_agreement: None,
            entries: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Reads a table; `origin` (the file) names it in errors.
    ///
    /// Errors: [`LatencyError::Corrupt`] for text that is not a table (with serde's line
    /// and column) or a key listed twice; [`LatencyError::Version`] for another format
    /// version.
    pub fn from_json(text: &str, origin: &str) -> Result<LatencyTable, LatencyError> {
        #[derive(Deserialize)]
        struct Version {
            format_version: u32,
        }
        let corrupt = |message: String| LatencyError::Corrupt {
            origin: origin.into(),
            message,
        };
        let v: Version = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        if v.format_version != FORMAT_VERSION {
            return Err(LatencyError::Version {
                origin: origin.into(),
                found: v.format_version,
                expected: FORMAT_VERSION,
            });
        }
        let mut table: LatencyTable =
            serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        let entries = std::mem::take(&mut table.entries);
        for e in entries {
            if table.index.contains_key(&e.key) {
                return Err(corrupt(format!("layer `{}` is listed twice", e.key)));
            }
            table.insert(e);
        }
        Ok(table)
    }

    /// The table as pretty JSON, entries sorted by key.
    pub fn to_json(&self) -> String {
        let mut sorted = self.clone();
        sorted.entries.sort_by_key(|e| e.key);
        // Plain data (numbers, strings, enums): serialising cannot fail.
        serde_json::to_string_pretty(&sorted).unwrap_or_default() + "\n"
    }

    /// Adds or replaces the entry of its key.
    pub fn insert(&mut self, entry: Entry) {
        match self.index.get(&entry.key) {
            Some(&i) => self.entries[i] = entry,
            None => {
                self.index.insert(entry.key, self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    /// The entry of `key`, if measured.
    pub fn get(&self, key: &LayerKey) -> Option<&Entry> {
        self.index.get(key).map(|&i| &self.entries[i])
    }

    /// Every field in which the table differs from `wanted` (empty: it may be used).
    pub fn mismatches(&self, wanted: &TableIdentity) -> Vec<FieldMismatch> {
        let t = &self.identity;
        let mut out = Vec::new();
        let mut cmp = |field, a: String, b: String| {
            if a != b {
                out.push(FieldMismatch {
                    field,
                    table: a,
                    wanted: b,
                });
            }
        };
        cmp("source", t.source.to_string(), wanted.source.to_string());
        cmp("space", t.space.clone(), wanted.space.clone());
        cmp(
            "space_fingerprint",
            t.space_fingerprint.clone(),
            wanted.space_fingerprint.clone(),
        );
        cmp("input", t.input.to_string(), wanted.input.to_string());
        cmp("target", t.target.clone(), wanted.target.clone());
        cmp("runtime", t.runtime.clone(), wanted.runtime.clone());
        cmp("sim_modes", modes(&t.sim_modes), modes(&wanted.sim_modes));
        let text = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
        cmp("device", text(&t.device), text(&wanted.device));
        cmp("runner", text(&t.runner), text(&wanted.runner));
        cmp("power_mode", text(&t.power_mode), text(&wanted.power_mode));
        out
    }

    /// Refuses a table measured for anything else than `wanted`.
    ///
    /// Errors: [`LatencyError::Mismatch`] naming every differing field with both values.
    pub fn check_identity(&self, wanted: &TableIdentity, origin: &str) -> Result<(), LatencyError> {
        let fields = self.mismatches(wanted);
        if fields.is_empty() {
            return Ok(());
        }
        Err(LatencyError::Mismatch {
            origin: origin.into(),
            details: fields
                .iter()
                .map(|f| format!("{}: table {}, wanted {}", f.field, f.table, f.wanted))
                .collect::<Vec<_>>()
                .join("; "),
        })
    }

    /// Whether this table's costs can be reused for `wanted` without measuring again:
    /// fuel does not depend on the device, so a `sim` table of the same space, input and
    /// runtime serves any target (only its milliseconds are derived again).
    pub fn costs_reusable_for(&self, wanted: &TableIdentity) -> bool {
        self.mismatches(wanted).iter().all(|f| {
            self.identity.source == Source::Sim && matches!(f.field, "target" | "sim_modes")
        })
    }

    /// This table's costs under `wanted`'s identity, the milliseconds derived again from
    /// its sim modes, the fitted constant and the last check kept; `None` unless
    /// [`LatencyTable::costs_reusable_for`] allows it.
    pub fn retarget(&self, wanted: &TableIdentity) -> Option<LatencyTable> {
        if !self.costs_reusable_for(wanted) {
            return None;
        }
        let mut out = LatencyTable::new(wanted.clone());
        for e in &self.entries {
            let entry = out.entry(e.key, e.cost, e.best);
            out.insert(entry);
        }
        out.overhead = self.overhead.clone();
        out.int8_overhead = self.int8_overhead.clone();
        out.agreement = self.agreement.clone();
        out.int8_agreement = self.int8_agreement.clone();
        Some(out)
    }

    /// The relative error band used to reject a `precision` network by prediction: the
    /// last check's largest error over networks of that precision, else that precision's
    /// line fit's, else `None` (not fitted). An int8 line never checked on its own (a
    /// table checked before `int8_agreement` existed) takes the larger of its fit's
    /// error and the whole check's: its fit is in-sample, on 8 networks.
    pub fn margin_of(&self, precision: Precision) -> Option<f64> {
        let fit = self.overhead_of(precision).map(|o| o.max_relative_error);
        let checked = |a: &Option<Agreement>| a.as_ref().map(|a| a.max_relative_error);
        match precision {
            Precision::F32 => checked(&self.agreement).or(fit),
            Precision::Int8 => checked(&self.int8_agreement)
                .or_else(|| Some(fit?.max(checked(&self.agreement).unwrap_or(0.0)))),
        }
    }

    /// The larger of the precisions' margins ([`LatencyTable::margin_of`]), `None` when
    /// neither is fitted.
    pub fn margin(&self) -> Option<f64> {
        [Precision::F32, Precision::Int8]
            .into_iter()
            .filter_map(|p| self.margin_of(p))
            .reduce(f64::max)
    }

    /// The fitted line of networks in `precision`, if fitted.
    pub fn overhead_of(&self, precision: Precision) -> Option<&Overhead> {
        match precision {
            Precision::F32 => self.overhead.as_ref(),
            Precision::Int8 => self.int8_overhead.as_ref(),
        }
    }

    /// Sets the fitted line of networks in `precision`.
    pub fn set_overhead(&mut self, precision: Precision, overhead: Overhead) {
        match precision {
            Precision::F32 => self.overhead = Some(overhead),
            Precision::Int8 => self.int8_overhead = Some(overhead),
        }
    }

    /// An entry for `key` with `cost` (fuel for `sim`, median microseconds otherwise),
    /// its per-mode milliseconds derived from this table's sim modes.
    pub fn entry(&self, key: LayerKey, cost: Metric, best: Option<Metric>) -> Entry {
        let per_mode_ms = self
            .identity
            .sim_modes
            .iter()
            .map(|m| {
                let ms = cost.value * m.cycles_per_fuel / (m.clock_mhz * 1e3);
                (
                    m.name.clone(),
                    Metric::new(ms, Unit::Milliseconds, Source::Sim),
                )
            })
            .collect();
        Entry {
            key,
            cost,
            best,
            per_mode_ms,
        }
    }
}

fn one() -> f64 {
    1.0
}

fn modes(m: &[SimMode]) -> String {
    m.iter()
        .map(|m| {
            format!(
                "{} {} MHz x {} cycles/fuel",
                m.name, m.clock_mhz, m.cycles_per_fuel
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}
