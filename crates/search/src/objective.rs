//! Objectives of the Pareto ranking and the scalar fitness of the strategy.

use std::collections::BTreeMap;

use crate::Metric;
use crate::pareto::Direction;

/// Metric names every evaluator reports (keys of [`crate::Evaluation::metrics`]).
pub mod keys {
    /// Top-1 on the validation split, in [0, 1] (what the search ranks by).
    pub const ACCURACY: &str = "accuracy";
    /// Top-1 on the test split, in [0, 1] (reported, never used to choose).
    pub const TEST_ACCURACY: &str = "test_accuracy";
    /// Latency (p50, ms) at the chosen power mode: the device's (`device`)
    /// when the search measures on one, else the simulation's (`sim`).
    pub const LATENCY_MS: &str = "latency_ms";
    /// p95 latency (ms), from the same source as [`LATENCY_MS`].
    pub const LATENCY_P95_MS: &str = "latency_p95_ms";
    /// The simulated p50 latency (ms, `sim`), always (beside a device's).
    pub const SIM_LATENCY_MS: &str = "sim_latency_ms";
    /// Size in bytes of the binary built for the target's triple, or of the
    /// wasm build when there is none (`host`: the file as built).
    pub const SIZE_BYTES: &str = "size_bytes";
    /// Peak memory in bytes while running one inference (`sim`).
    pub const PEAK_MEMORY_BYTES: &str = "peak_memory_bytes";
    /// The latency lookup table's prediction (ms, `predicted`) at the power mode the
    /// analytic precheck uses, recorded beside the measured latency when a table is
    /// in use.
    pub const PREDICTED_LATENCY_MS: &str = "predicted_latency_ms";
}

/// One axis of the Pareto ranking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// Validation accuracy, maximised.
    Accuracy,
    /// Latency (ms, p50) at the chosen power mode, minimised.
    Latency,
    /// Binary size (bytes), minimised.
    Size,
    /// Peak memory (bytes), minimised.
    PeakMemory,
}

impl Objective {
    /// Every objective, in the order accuracy, latency, size, memory.
    pub const ALL: [Objective; 4] = [
        Objective::Accuracy,
        Objective::Latency,
        Objective::Size,
        Objective::PeakMemory,
    ];

    /// The metric key the objective reads (see [`keys`]).
    pub fn key(self) -> &'static str {
        match self {
            Objective::Accuracy => keys::ACCURACY,
            Objective::Latency => keys::LATENCY_MS,
            Objective::Size => keys::SIZE_BYTES,
            Objective::PeakMemory => keys::PEAK_MEMORY_BYTES,
        }
    }

    /// Maximise for accuracy, minimise for the others.
    pub fn direction(self) -> Direction {
        match self {
            Objective::Accuracy => Direction::Maximize,
            _ => Direction::Minimize,
        }
    }

    /// Reads `accuracy`, `latency`, `size`, `memory` (or `peak-memory`);
    /// `None` for any other name.
    pub fn parse(s: &str) -> Option<Objective> {
        match s {
            "accuracy" => Some(Objective::Accuracy),
            "latency" => Some(Objective::Latency),
            "size" => Some(Objective::Size),
            "memory" | "peak-memory" => Some(Objective::PeakMemory),
            _ => None,
        }
    }

    /// Parses a list of names (`accuracy,latency`), dropping repeats.
    ///
    /// Errors: an unknown name, or an empty list; the message (a plain
    /// `String`, not a [`crate::SearchError`]) names the known ones.
    pub fn parse_list<S: AsRef<str>>(names: &[S]) -> Result<Vec<Objective>, String> {
        let mut out = Vec::new();
        for n in names {
            let n = n.as_ref().trim();
            let o = Objective::parse(n).ok_or_else(|| {
                format!("unknown objective `{n}` (accuracy, latency, size, memory)")
            })?;
            if !out.contains(&o) {
                out.push(o);
            }
        }
        if out.is_empty() {
            return Err("give at least one of accuracy, latency, size, memory".into());
        }
        Ok(out)
    }

    /// The name [`Objective::parse`] reads.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Accuracy => "accuracy",
            Objective::Latency => "latency",
            Objective::Size => "size",
            Objective::PeakMemory => "memory",
        }
    }
}

/// The objective vector of a trial's metrics (values in each metric's own
/// unit, in the order of `objectives`), `None` if one is missing.
pub fn objective_vector(
    metrics: &BTreeMap<String, Metric>,
    objectives: &[Objective],
) -> Option<Vec<f64>> {
    objectives
        .iter()
        .map(|o| metrics.get(o.key()).map(|f| f.value))
        .collect()
}

/// The scalar a strategy's tournament compares (larger is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fitness {
    /// Validation accuracy (a fraction in 0..1).
    Accuracy,
    /// MnasNet's soft reward ACC x (LAT / T)^w (Tan et al. 2019, "MnasNet:
    /// Platform-Aware Neural Architecture Search for Mobile"): ACC the
    /// validation accuracy, LAT the latency ([`keys::LATENCY_MS`]); below the
    /// target T earns a little, above it costs a little.
    Mnas {
        /// T, the target latency in ms (kiln-pipeline passes the profile's
        /// tightest limit, [`crate::report::latency_limit_ms`]).
        target_ms: f64,
        /// The exponent w; the paper's soft constraint uses [`Fitness::MNAS_W`].
        w: f64,
    },
}

impl Fitness {
    /// w = -0.07, the exponent of MnasNet's soft latency reward (Tan et al. 2019).
    pub const MNAS_W: f64 = -0.07;

    /// The fitness of a trial's metrics. `None` when accuracy is missing, or
    /// for [`Fitness::Mnas`] when latency is missing or latency or target is
    /// not above 0.
    pub fn of(&self, metrics: &BTreeMap<String, Metric>) -> Option<f64> {
        let acc = metrics.get(keys::ACCURACY)?.value;
        match *self {
            Fitness::Accuracy => Some(acc),
            Fitness::Mnas { target_ms, w } => {
                let lat = metrics.get(keys::LATENCY_MS)?.value;
                (lat > 0.0 && target_ms > 0.0).then(|| acc * (lat / target_ms).powf(w))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Source, Unit};

    fn m(acc: f64, lat: f64) -> BTreeMap<String, Metric> {
        let mut out = BTreeMap::new();
        out.insert(
            keys::ACCURACY.into(),
            Metric::new(acc, Unit::Fraction, Source::Host),
        );
        out.insert(
            keys::LATENCY_MS.into(),
            Metric::new(lat, Unit::Milliseconds, Source::Sim),
        );
        out
    }

    #[test]
    fn mnas_reward_trades_accuracy_for_latency() {
        let f = Fitness::Mnas {
            target_ms: 80.0,
            w: Fitness::MNAS_W,
        };
        // At the target the reward is the accuracy.
        assert!((f.of(&m(0.9, 80.0)).unwrap() - 0.9).abs() < 1e-12);
        // Twice as fast is worth about 5% (2^0.07 = 1.0497).
        let faster = f.of(&m(0.9, 40.0)).unwrap();
        assert!((faster / 0.9 - 2f64.powf(0.07)).abs() < 1e-12);
        // A slower model needs more accuracy to win.
        assert!(f.of(&m(0.9, 160.0)).unwrap() < f.of(&m(0.88, 80.0)).unwrap());
    }

    #[test]
    fn missing_metrics_give_no_vector() {
        let metrics = m(0.5, 3.0);
        assert_eq!(
            objective_vector(&metrics, &[Objective::Accuracy, Objective::Latency]),
            Some(vec![0.5, 3.0])
        );
        assert_eq!(objective_vector(&metrics, &[Objective::Size]), None);
    }
}
