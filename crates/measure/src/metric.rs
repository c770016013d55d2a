//! A figure together with its unit and where it came from.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a figure came from. Never present one as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Measured on the target device itself.
    Device,
    /// Measured on this machine (wall clock of a native or emulated run, or
    /// read here from a built artifact, such as section sizes).
    Host,
    /// Derived from the wasm build run under wasmtime with fuel metering and
    /// the device profile's cycles per fuel and clock.
    Sim,
    /// Estimated by a model or a lookup table, not run at all.
    Predicted,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Device => "device",
            Source::Host => "host",
            Source::Sim => "sim",
            Source::Predicted => "predicted",
        })
    }
}

/// The unit of a [`Metric`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    Bytes,
    /// 1,000,000 bytes (SI); the profiles' `*_mb` limits are in these.
    Megabytes,
    Milliseconds,
    Microseconds,
    FramesPerSecond,
    Millijoules,
    Watts,
    /// wasmtime fuel units (about one per wasm instruction).
    Fuel,
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Unit::Bytes => "B",
            Unit::Megabytes => "MB",
            Unit::Milliseconds => "ms",
            Unit::Microseconds => "us",
            Unit::FramesPerSecond => "FPS",
            Unit::Millijoules => "mJ",
            Unit::Watts => "W",
            Unit::Fuel => "fuel",
        })
    }
}

/// One figure: value, unit and source travel together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub value: f64,
    pub unit: Unit,
    pub source: Source,
}

impl Metric {
    pub fn new(value: f64, unit: Unit, source: Source) -> Self {
        Self {
            value,
            unit,
            source,
        }
    }
}

impl fmt::Display for Metric {
    /// `12.34 ms [sim]`; byte counts are printed whole with a KiB figure.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            Unit::Bytes => write!(
                f,
                "{} B ({:.1} KiB) [{}]",
                self.value as u64,
                self.value / 1024.0,
                self.source
            ),
            Unit::Fuel => write!(f, "{} fuel [{}]", self.value as u64, self.source),
            _ => write!(f, "{:.3} {} [{}]", self.value, self.unit, self.source),
        }
    }
}
