//! Calibration of a profile's sim model: `cycles_per_fuel` fitted to latencies measured
//! on the host or the device (`cargo xtask lut check --calibrate`), kept in
//! `<profile>.calibration.json` beside the profile so the hand-written TOML stays as
//! its author wrote it. [`crate::load_file`] applies it: sim figures then track what was
//! measured, and say so.

use std::path::{Path, PathBuf};

use kiln_metric::Source;
use serde::{Deserialize, Serialize};

use crate::TargetError;

/// A fitted sim model and how well it fits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// The fitted device cycles per unit of fuel: the median over the sampled networks
    /// of measured ms x clock (MHz) x 1000 / fuel.
    pub cycles_per_fuel: f64,
    /// The profile's own (assumed) value it replaces.
    pub assumed_cycles_per_fuel: f64,
    /// Where the latencies were measured (`host` or `device`).
    pub measured_on: Source,
    /// The power mode (and so the clock) the measurements were taken in.
    pub power_mode: String,
    /// Networks measured.
    pub samples: usize,
    /// Median |sim - measured| / measured with the fitted value.
    pub median_relative_error: f64,
    /// Largest |sim - measured| / measured with the fitted value.
    pub max_relative_error: f64,
    /// Kendall's tau-b between fuel and measured latency: how well the sim ranks
    /// networks by speed (a constant factor cannot change it).
    pub kendall_tau: f64,
    /// When (UTC date).
    pub date: String,
}

impl Calibration {
    /// The calibration file of the profile at `profile`: `<stem>.calibration.json` in
    /// its folder.
    pub fn path_for(profile: &Path) -> PathBuf {
        let stem = profile
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        profile.with_file_name(format!("{stem}.calibration.json"))
    }

    /// Reads the calibration beside `profile`, if there is one.
    ///
    /// Errors: [`TargetError::Io`] when it exists but cannot be read;
    /// [`TargetError::Parse`] when it is not a calibration; [`TargetError::Invalid`] for a
    /// `cycles_per_fuel` that is not a positive number.
    pub fn load_beside(profile: &Path) -> Result<Option<Calibration>, TargetError> {
        let path = Calibration::path_for(profile);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(TargetError::Io { path, source }),
        };
        let c: Calibration = serde_json::from_str(&text).map_err(|e| TargetError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        if !(c.cycles_per_fuel.is_finite() && c.cycles_per_fuel > 0.0) {
            return Err(TargetError::Invalid {
                path,
                field: "cycles_per_fuel".into(),
                message: format!("{} must be a positive number", c.cycles_per_fuel),
            });
        }
        Ok(Some(c))
    }

    /// The file's text (pretty JSON).
    pub fn to_json(&self) -> String {
        // numbers and strings only: cannot fail
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calibration(cpf: f64) -> Calibration {
        Calibration {
            cycles_per_fuel: cpf,
            assumed_cycles_per_fuel: 0.5,
            measured_on: Source::Host,
            power_mode: "default".into(),
            samples: 12,
            median_relative_error: 0.1,
            max_relative_error: 0.3,
            kendall_tau: 0.7,
            date: "2026-11-30".into(),
        }
    }

    #[test]
    fn a_calibration_beside_the_profile_replaces_the_assumed_value() {
        let dir = tempfile::tempdir().unwrap();
        let profile = dir.path().join("board.toml");
        let bundled = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../targets/host.toml");
        std::fs::copy(&bundled, &profile).unwrap();
        let plain = crate::load_file(&profile).unwrap();
        assert_eq!(plain.sim.cycles_per_fuel, 0.5);
        assert!(plain.sim.calibration.is_none());

        let path = Calibration::path_for(&profile);
        assert_eq!(path, dir.path().join("board.calibration.json"));
        std::fs::write(&path, calibration(0.02).to_json()).unwrap();
        let t = crate::load_file(&profile).unwrap();
        assert_eq!(t.sim.cycles_per_fuel, 0.02);
        assert_eq!(t.sim.calibration, Some(calibration(0.02)));
        // the folder listing still holds one profile
        assert_eq!(crate::load_all(dir.path()).unwrap().len(), 1);

        std::fs::write(&path, calibration(-1.0).to_json()).unwrap();
        let err = crate::load_file(&profile).unwrap_err().to_string();
        assert!(
            err.contains("board.calibration.json: field `cycles_per_fuel`"),
            "{err}"
        );
        std::fs::write(&path, "{").unwrap();
        let err = crate::load_file(&profile).unwrap_err().to_string();
        assert!(err.contains("board.calibration.json"), "{err}");
    }
}
