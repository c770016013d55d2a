//! kiln-metric: a figure together with its unit and where it came from.
//!
//! Every number kiln reports (a latency, a size, an accuracy) is a [`Metric`]:
//! value, [`Unit`] and [`Source`] travel together, so that a simulated
//! latency is never shown as a device latency. This crate is a leaf: it
//! depends on nothing of kiln, and every other crate takes its figures from
//! here.
//!
//! Serialised form (journals, `front.json`, `measure --json`): `{"value":
//! 12.5, "unit": "ms", "source": "sim"}`; units are written as their symbols
//! ([`Unit::symbol`]), sources in lower case.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a figure came from. Never present one as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Measured on the target device itself.
    Device,
    /// Measured on this machine (wall clock of a native or emulated run, or
    /// read here from a built artifact, such as section sizes; training
    /// accuracy computed here).
    Host,
    /// Derived from the wasm build run under wasmtime with fuel metering and
    /// the device profile's cycles per fuel and clock.
    Sim,
    /// Estimated by a model, a lookup table or an analytic bound, or taken
    /// from a profile (rated watts); not run at all.
    Predicted,
}

impl Source {
    /// The lower-case name used in reports and serialised files.
    pub fn name(self) -> &'static str {
        match self {
            Source::Device => "device",
            Source::Host => "host",
            Source::Sim => "sim",
            Source::Predicted => "predicted",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A [`Source`] or [`Unit`] name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName(pub String);

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown name `{}`", self.0)
    }
}

impl std::error::Error for UnknownName {}

impl FromStr for Source {
    type Err = UnknownName;
    /// Parses `device`, `host`, `sim` or `predicted`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Source::Device, Source::Host, Source::Sim, Source::Predicted]
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

/// The unit of a [`Metric`]. Serialised as its [`symbol`](Unit::symbol).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Unit {
    /// Bytes (`B`).
    #[serde(rename = "B")]
    Bytes,
    /// 1,000,000 bytes (SI, `MB`); the profiles' `*_mb` limits are in these.
    #[serde(rename = "MB")]
    Megabytes,
    /// Milliseconds (`ms`).
    #[serde(rename = "ms")]
    Milliseconds,
    /// Microseconds (`us`).
    #[serde(rename = "us")]
    Microseconds,
    /// Frames (inferences) per second (`FPS`).
    #[serde(rename = "FPS")]
    FramesPerSecond,
    /// Millijoules (`mJ`), e.g. energy per inference.
    #[serde(rename = "mJ")]
    Millijoules,
    /// Watts (`W`).
    #[serde(rename = "W")]
    Watts,
    /// wasmtime fuel units (about one per wasm instruction, `fuel`).
    #[serde(rename = "fuel")]
    Fuel,
    /// A plain count (`count`): parameters, multiply-accumulates.
    #[serde(rename = "count")]
    Count,
    /// A fraction in 0..=1 (`fraction`), e.g. top-1 accuracy; never percent.
    #[serde(rename = "fraction")]
    Fraction,
}

impl Unit {
    const ALL: [Unit; 10] = [
        Unit::Bytes,
        Unit::Megabytes,
        Unit::Milliseconds,
        Unit::Microseconds,
        Unit::FramesPerSecond,
        Unit::Millijoules,
        Unit::Watts,
        Unit::Fuel,
        Unit::Count,
        Unit::Fraction,
    ];

    /// The symbol printed after a value and used in serialised files.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::Bytes => "B",
            Unit::Megabytes => "MB",
            Unit::Milliseconds => "ms",
            Unit::Microseconds => "us",
            Unit::FramesPerSecond => "FPS",
            Unit::Millijoules => "mJ",
            Unit::Watts => "W",
            Unit::Fuel => "fuel",
            Unit::Count => "count",
            Unit::Fraction => "fraction",
        }
    }

    /// Whether values of this unit are whole numbers (printed without decimals).
    pub fn is_integral(self) -> bool {
        matches!(self, Unit::Bytes | Unit::Fuel | Unit::Count)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

impl FromStr for Unit {
    type Err = UnknownName;
    /// Parses a [`Unit::symbol`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Unit::ALL
            .into_iter()
            .find(|u| u.symbol() == s)
            .ok_or_else(|| UnknownName(s.to_string()))
    }
}

/// One figure: value, unit and source travel together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// The number, in `unit`.
    pub value: f64,
    /// What the number counts.
    pub unit: Unit,
    /// Where the number came from.
    pub source: Source,
}

impl Metric {
    /// A figure of `value` `unit` from `source`.
    pub fn new(value: f64, unit: Unit, source: Source) -> Self {
        Self {
            value,
            unit,
            source,
        }
    }

    /// The value and unit without the source: `722160 B`, `12.345 ms`,
    /// `0.9530 fraction`. Whole-number units print no decimals.
    pub fn value_with_unit(&self) -> String {
        if self.unit.is_integral() {
            format!("{} {}", self.value.round() as i64, self.unit)
        } else if self.unit == Unit::Fraction {
            format!("{:.4}", self.value)
        } else {
            format!("{:.3} {}", self.value, self.unit)
        }
    }
}

impl fmt::Display for Metric {
    /// `12.345 ms [sim]`; byte counts are printed whole with a KiB figure.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.unit {
            Unit::Bytes => write!(
                f,
                "{} B ({:.1} KiB) [{}]",
                self.value.round() as u64,
                self.value / 1024.0,
                self.source
            ),
            _ => write!(f, "{} [{}]", self.value_with_unit(), self.source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialised_with_symbols_and_lowercase_sources() {
        let m = Metric::new(12.5, Unit::Milliseconds, Source::Sim);
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"value":12.5,"unit":"ms","source":"sim"}"#);
        let back: Metric = serde_json::from_str(&json).unwrap();
        assert_eq!(back, m);
        for u in Unit::ALL {
            let text = serde_json::to_string(&u).unwrap();
            assert_eq!(text, format!("\"{}\"", u.symbol()));
            assert_eq!(u.symbol().parse::<Unit>(), Ok(u));
        }
    }

    #[test]
    fn only_four_sources_exist() {
        for name in ["device", "host", "sim", "predicted"] {
            assert_eq!(name.parse::<Source>().unwrap().name(), name);
        }
        assert!("none".parse::<Source>().is_err());
        assert!(serde_json::from_str::<Source>("\"none\"").is_err());
    }

    #[test]
    fn whole_units_print_as_integers() {
        let size = Metric::new(722160.0, Unit::Bytes, Source::Host);
        assert_eq!(size.value_with_unit(), "722160 B");
        assert_eq!(size.to_string(), "722160 B (705.2 KiB) [host]");
        let lat = Metric::new(12.3456, Unit::Milliseconds, Source::Device);
        assert_eq!(lat.to_string(), "12.346 ms [device]");
    }
}
