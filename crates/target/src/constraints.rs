//! Judging a model's figures against a profile's hard constraints: the one
//! place kiln decides whether a model fits a device.
//!
//! Callers bring [`Figures`] (measured, simulated or analytic bounds, each a
//! [`Metric`] with its source) and get one [`ConstraintCheck`] per constraint
//! the profile sets. A figure that was not measured never passes.

use std::fmt;

use kiln_metric::{Metric, Unit};
use serde::{Deserialize, Serialize};

use crate::Constraints;

/// Bytes in the profiles' megabytes (`max_size_mb`, `max_peak_memory_mb`):
/// SI megabytes. Of the two readings of "MB" this is the stricter limit, so a
/// model that passes meets it whichever one the profile's author meant.
pub const BYTES_PER_MB: f64 = 1_000_000.0;

/// One hard constraint of a profile, named as its field in the TOML file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Constraint {
    /// `max_latency_p50_ms`: median latency, ms.
    MaxLatencyP50Ms,
    /// `max_latency_p95_ms`: 95th-percentile latency, ms.
    MaxLatencyP95Ms,
    /// `min_fps`: inferences per second.
    MinFps,
    /// `max_power_w`: the power mode's watts.
    MaxPowerW,
    /// `max_size_mb`: the deployed binary, weights included, SI MB.
    MaxSizeMb,
    /// `max_peak_memory_mb`: peak memory while running, SI MB.
    MaxPeakMemoryMb,
}

impl Constraint {
    /// Every constraint, in report order.
    pub const ALL: [Constraint; 6] = [
        Constraint::MaxLatencyP50Ms,
        Constraint::MaxLatencyP95Ms,
        Constraint::MinFps,
        Constraint::MaxPowerW,
        Constraint::MaxSizeMb,
        Constraint::MaxPeakMemoryMb,
    ];

    /// The profile's field name, e.g. `max_latency_p50_ms`.
    pub fn field(self) -> &'static str {
        match self {
            Constraint::MaxLatencyP50Ms => "max_latency_p50_ms",
            Constraint::MaxLatencyP95Ms => "max_latency_p95_ms",
            Constraint::MinFps => "min_fps",
            Constraint::MaxPowerW => "max_power_w",
            Constraint::MaxSizeMb => "max_size_mb",
            Constraint::MaxPeakMemoryMb => "max_peak_memory_mb",
        }
    }

    /// The unit the limit is written in.
    pub fn unit(self) -> Unit {
        match self {
            Constraint::MaxLatencyP50Ms | Constraint::MaxLatencyP95Ms => Unit::Milliseconds,
            Constraint::MinFps => Unit::FramesPerSecond,
            Constraint::MaxPowerW => Unit::Watts,
            Constraint::MaxSizeMb | Constraint::MaxPeakMemoryMb => Unit::Megabytes,
        }
    }

    /// The constraints a latency measurement decides (p50, p95, FPS): a
    /// device's figures replace the simulation's for these.
    pub fn is_latency(self) -> bool {
        matches!(
            self,
            Constraint::MaxLatencyP50Ms | Constraint::MaxLatencyP95Ms | Constraint::MinFps
        )
    }

    fn holds(self, actual: f64, limit: f64) -> bool {
        match self {
            Constraint::MinFps => actual >= limit,
            _ => actual <= limit,
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field())
    }
}

/// The figures a profile's constraints are judged on; `None` = not measured.
/// Sizes are in bytes (compared in SI MB), latencies in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Figures {
    /// Median latency in the power mode judged, ms.
    pub latency_p50: Option<Metric>,
    /// 95th-percentile latency, ms.
    pub latency_p95: Option<Metric>,
    /// Inferences per second.
    pub fps: Option<Metric>,
    /// Watts of the power mode judged.
    pub power_w: Option<Metric>,
    /// The deployed binary's file size, bytes.
    pub size_bytes: Option<Metric>,
    /// Peak memory while running, bytes.
    pub peak_memory_bytes: Option<Metric>,
}

impl Figures {
    fn get(&self, c: Constraint) -> Option<Metric> {
        let in_mb = |m: Metric| Metric::new(m.value / BYTES_PER_MB, Unit::Megabytes, m.source);
        match c {
            Constraint::MaxLatencyP50Ms => self.latency_p50,
            Constraint::MaxLatencyP95Ms => self.latency_p95,
            Constraint::MinFps => self.fps,
            Constraint::MaxPowerW => self.power_w,
            // Compared in MB, keeping the byte figure's source.
            Constraint::MaxSizeMb => self.size_bytes.map(in_mb),
            Constraint::MaxPeakMemoryMb => self.peak_memory_bytes.map(in_mb),
        }
    }
}

/// Whether one constraint of the profile holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConstraintCheck {
    /// Which constraint.
    pub constraint: Constraint,
    /// The profile's limit, in `limit_unit`.
    pub limit: f64,
    /// The unit of `limit` (and of `actual`).
    pub limit_unit: Unit,
    /// The figure compared, with its source; `None` when it was not measured.
    pub actual: Option<Metric>,
    /// `None` when the figure was not measured (never counted as a pass).
    pub passed: Option<bool>,
}

impl ConstraintCheck {
    /// A check of `constraint` at `limit` that `actual` failed (for callers
    /// that judge elsewhere, such as tests and synthetic evaluators).
    pub fn failed(constraint: Constraint, limit: f64, actual: Metric) -> Self {
        Self {
            constraint,
            limit,
            limit_unit: constraint.unit(),
            actual: Some(actual),
            passed: Some(false),
        }
    }

    /// Measured and within the limit.
    pub fn holds(&self) -> bool {
        self.passed == Some(true)
    }
}

impl fmt::Display for ConstraintCheck {
    /// `max_latency_p50_ms: 12.300 ms (sim) vs limit 10 ms`, or
    /// `max_size_mb: not measured (limit 20)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.actual {
            Some(a) => write!(
                f,
                "{}: {:.3} {} ({}) vs limit {} {}",
                self.constraint, a.value, self.limit_unit, a.source, self.limit, self.limit_unit
            ),
            None => write!(
                f,
                "{}: not measured (limit {})",
                self.constraint, self.limit
            ),
        }
    }
}

impl Constraints {
    /// Replaces every latency limit with `ms` milliseconds (a search's
    /// `--latency-limit`): p50 and p95 at most `ms`; the FPS limit is dropped
    /// (p50 <= `ms` says the same), so none of the profile's own is tighter.
    pub fn set_latency_limit_ms(&mut self, ms: f64) {
        self.max_latency_p50_ms = Some(ms);
        self.max_latency_p95_ms = Some(ms);
        self.min_fps = None;
    }

    /// The limit the profile sets for `c`, if any.
    pub fn limit(&self, c: Constraint) -> Option<f64> {
        match c {
            Constraint::MaxLatencyP50Ms => self.max_latency_p50_ms,
            Constraint::MaxLatencyP95Ms => self.max_latency_p95_ms,
            Constraint::MinFps => self.min_fps,
            Constraint::MaxPowerW => self.max_power_w,
            Constraint::MaxSizeMb => self.max_size_mb,
            Constraint::MaxPeakMemoryMb => self.max_peak_memory_mb,
        }
    }

    /// One check per constraint the profile sets, in [`Constraint::ALL`]
    /// order. A figure that is `None` gives `passed: None` (never a pass).
    pub fn check(&self, figures: &Figures) -> Vec<ConstraintCheck> {
        Constraint::ALL
            .into_iter()
            .filter_map(|c| {
                let limit = self.limit(c)?;
                let actual = figures.get(c);
                Some(ConstraintCheck {
                    constraint: c,
                    limit,
                    limit_unit: c.unit(),
                    passed: actual.map(|a| c.holds(a.value, limit)),
                    actual,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_metric::Source;

    #[test]
    fn judged_in_si_megabytes_and_unmeasured_never_passes() {
        let c = Constraints {
            max_size_mb: Some(1.0),
            min_fps: Some(30.0),
            max_latency_p50_ms: Some(10.0),
            ..Constraints::default()
        };
        let figures = Figures {
            // 1,000,001 bytes is over 1 MB (SI) though under 1 MiB.
            size_bytes: Some(Metric::new(1_000_001.0, Unit::Bytes, Source::Host)),
            fps: Some(Metric::new(30.0, Unit::FramesPerSecond, Source::Device)),
            ..Figures::default()
        };
        let checks = c.check(&figures);
        let by = |k: Constraint| checks.iter().find(|x| x.constraint == k).unwrap();
        assert_eq!(by(Constraint::MaxSizeMb).passed, Some(false));
        assert_eq!(
            by(Constraint::MaxSizeMb).actual.unwrap().source,
            Source::Host
        );
        assert_eq!(by(Constraint::MinFps).passed, Some(true));
        assert_eq!(by(Constraint::MaxLatencyP50Ms).passed, None);
        assert!(!by(Constraint::MaxLatencyP50Ms).holds());
        assert_eq!(checks.len(), 3);
        let json = serde_json::to_string(by(Constraint::MaxSizeMb)).unwrap();
        assert!(json.contains("\"max_size_mb\""), "{json}");
    }

    #[test]
    fn a_latency_limit_replaces_every_latency_limit() {
        let mut c = Constraints {
            max_latency_p50_ms: Some(100.0),
            min_fps: Some(30.0),
            max_size_mb: Some(5.0),
            ..Constraints::default()
        };
        c.set_latency_limit_ms(50.0);
        assert_eq!(c.max_latency_p50_ms, Some(50.0));
        assert_eq!(c.max_latency_p95_ms, Some(50.0));
        assert_eq!(c.min_fps, None);
        assert_eq!(c.max_size_mb, Some(5.0));
    }
}
