//! Device profiles: one TOML file per device under `targets/`.
//!
//! A profile names the Rust target triple a model is built for, the hard
//! constraints a model must meet there, the device's power modes, a model
//! that turns simulated wasm fuel into device time, and how kiln deploys to
//! it. Loading checks every field and names the file and field at fault.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod calibration;
pub mod constraints;
mod triple;

pub use calibration::Calibration;
pub use constraints::{BYTES_PER_MB, Constraint, ConstraintCheck, Figures};
pub use kiln_metric::{Metric, Source, Unit};
pub use triple::{Triple, UnsupportedTriple};

/// A device profile. `name` is the file stem (`targets/jetson.toml` -> `jetson`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    /// The file stem: `targets/jetson.toml` is `jetson`.
    pub name: String,
    /// One line for listings.
    pub description: String,
    /// What programs for this device are built as.
    pub triple: Triple,
    /// Hard constraints a model must meet.
    pub constraints: Constraints,
    /// The device's power modes (at least one).
    pub power_modes: Vec<PowerMode>,
    /// How simulated fuel becomes device time.
    pub sim: SimModel,
    /// How a model reaches the device.
    pub deploy: Deploy,
}

/// Hard constraints; an absent one does not constrain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Constraints {
    /// Median latency limit, ms (MnasNet's phone: 80).
    pub max_latency_p50_ms: Option<f64>,
    /// 95th-percentile latency limit, ms (MnasNet's phone: 120).
    pub max_latency_p95_ms: Option<f64>,
    /// Largest binary, weights included, in SI megabytes (1 MB = 1,000,000
    /// bytes: the stricter reading of "MB", so a model within it is within
    /// the limit whichever reading was meant).
    pub max_size_mb: Option<f64>,
    /// Largest peak memory while running, in SI megabytes like `max_size_mb`.
    pub max_peak_memory_mb: Option<f64>,
    /// The power budget: only power modes within it may be used.
    pub max_power_w: Option<f64>,
    /// Fewest inferences per second (a Jetson at 30 FPS).
    pub min_fps: Option<f64>,
}

/// One power mode of the device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerMode {
    /// The mode's name, e.g. `10W`.
    pub name: String,
    /// Board power in this mode, used for energy per inference.
    pub watts: f64,
    /// Active CPU cores.
    pub cores: u32,
    /// CPU clock, MHz.
    pub clock_mhz: f64,
    /// `nvpmodel -m N` selects this mode on Jetson boards.
    pub nvpmodel_id: Option<u32>,
}

/// How simulated wasm fuel becomes device time: latency (sim) =
/// fuel x cycles_per_fuel / clock of the power mode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimModel {
    /// Device cycles per unit of wasm fuel (uncalibrated profiles say so). With a
    /// calibration file beside the profile, its fitted value.
    pub cycles_per_fuel: f64,
    /// The calibration applied, if any (read from `<profile>.calibration.json`, never
    /// from the TOML).
    #[serde(skip_deserializing, default)]
    pub calibration: Option<Calibration>,
}

impl SimModel {
    /// Simulated latency in milliseconds of `fuel` on a core at `clock_mhz`:
    /// fuel x cycles_per_fuel / (clock_mhz x 1000).
    pub fn latency_ms(&self, fuel: u64, clock_mhz: f64) -> f64 {
        fuel as f64 * self.cycles_per_fuel / (clock_mhz * 1e3)
    }
}

/// How a model reaches the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployMethod {
    /// scp + ssh, for Linux boards (Jetson).
    Ssh,
    /// adb push + adb shell, for Android phones.
    Adb,
    /// Run under wasmtime in-process: the simulated device.
    Wasmtime,
}

impl fmt::Display for DeployMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeployMethod::Ssh => "ssh",
            DeployMethod::Adb => "adb",
            DeployMethod::Wasmtime => "wasmtime",
        })
    }
}

/// The `[deploy]` table of a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// ssh, adb or wasmtime (the simulated device).
    pub method: DeployMethod,
    /// Folder on the device that holds kiln's programs.
    pub dir: Option<String>,
    /// A program that runs the binary on the device (e.g. `qemu-aarch64` for
    /// an emulated device reached over ssh).
    pub runner: Option<String>,
    /// sysfs files read for power (milliwatts) while a benchmark runs.
    #[serde(default)]
    pub power_rails: Vec<String>,
}

impl Deploy {
    /// The kiln folder on the device: the profile's `dir`, else
    /// `/data/local/tmp/kiln` for adb phones (the one folder an adb shell may
    /// write and execute in) and `/tmp/kiln` otherwise.
    pub fn device_dir(&self) -> String {
        self.dir.clone().unwrap_or_else(|| match self.method {
            DeployMethod::Adb => "/data/local/tmp/kiln".to_string(),
            _ => "/tmp/kiln".to_string(),
        })
    }
}

/// The file layout of a profile; `Target` adds the name.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    description: String,
    triple: String,
    #[serde(default)]
    constraints: Constraints,
    #[serde(rename = "power_mode")]
    power_modes: Vec<PowerMode>,
    sim: SimModel,
    deploy: Deploy,
}

/// Why a profile could not be loaded; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The profile file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or a field of the wrong type or unknown.
    #[error("{path}: {message}")]
    Parse {
        /// The profile file.
        path: PathBuf,
        /// The TOML parser's message (with line and column).
        message: String,
    },
    /// A field's value is out of range or contradicts another.
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        /// The profile file.
        path: PathBuf,
        /// The field, e.g. `power_mode[1].watts`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// No profile of that name in the profiles folder.
    #[error(
        "unknown target `{name}`; known targets: {known} (or give a profile file: --target ./myboard.toml)"
    )]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names that exist, comma-separated.
        known: String,
    },
}

impl Target {
    /// Parses and validates a profile; `path` names it in errors and its stem names the target.
    pub fn from_toml(text: &str, path: &Path) -> Result<Target, TargetError> {
        let file: TargetFile = toml::from_str(text).map_err(|e| TargetError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_owned();
        let triple = file
            .triple
            .parse::<Triple>()
            .map_err(|e| TargetError::Invalid {
                path: path.to_owned(),
                field: "triple".into(),
                message: e.to_string(),
            })?;
        let target = Target {
            name,
            description: file.description,
            triple,
            constraints: file.constraints,
            power_modes: file.power_modes,
            sim: file.sim,
            deploy: file.deploy,
        };
        target.check(path)?;
        Ok(target)
    }

    fn check(&self, path: &Path) -> Result<(), TargetError> {
        let bad = |field: &str, message: String| TargetError::Invalid {
            path: path.to_owned(),
            field: field.to_owned(),
            message,
        };
        let c = &self.constraints;
        for (field, value) in [
            ("constraints.max_latency_p50_ms", c.max_latency_p50_ms),
            ("constraints.max_latency_p95_ms", c.max_latency_p95_ms),
            ("constraints.max_size_mb", c.max_size_mb),
            ("constraints.max_peak_memory_mb", c.max_peak_memory_mb),
            ("constraints.max_power_w", c.max_power_w),
            ("constraints.min_fps", c.min_fps),
        ] {
            if let Some(v) = value {
                positive(v).map_err(|m| bad(field, m))?;
            }
        }
        if let (Some(p50), Some(p95)) = (c.max_latency_p50_ms, c.max_latency_p95_ms)
            && p95 < p50
        {
            return Err(bad(
                "constraints.max_latency_p95_ms",
                format!("{p95} is below max_latency_p50_ms {p50}"),
            ));
        }
        if self.power_modes.is_empty() {
            return Err(bad(
                "power_mode",
                "at least one [[power_mode]] is needed".into(),
            ));
        }
        for (i, m) in self.power_modes.iter().enumerate() {
            if m.name.trim().is_empty() {
                return Err(bad(
                    &format!("power_mode[{i}].name"),
                    "must not be empty".into(),
                ));
            }
            if self.power_modes[..i].iter().any(|o| o.name == m.name) {
                return Err(bad(
                    &format!("power_mode[{i}].name"),
                    format!("`{}` appears twice", m.name),
                ));
            }
            positive(m.watts).map_err(|e| bad(&format!("power_mode[{i}].watts"), e))?;
            positive(m.clock_mhz).map_err(|e| bad(&format!("power_mode[{i}].clock_mhz"), e))?;
            if m.cores == 0 {
                return Err(bad(
                    &format!("power_mode[{i}].cores"),
                    "must be at least 1".into(),
                ));
            }
        }
        if let Some(budget) = c.max_power_w
            && !self.power_modes.iter().any(|m| m.watts <= budget)
        {
            return Err(bad(
                "constraints.max_power_w",
                format!("no power mode fits the {budget} W budget"),
            ));
        }
        positive(self.sim.cycles_per_fuel).map_err(|m| bad("sim.cycles_per_fuel", m))?;
        let wasm = self.triple.is_wasm();
        if wasm != (self.deploy.method == DeployMethod::Wasmtime) {
            return Err(bad(
                "deploy.method",
                format!(
                    "`{}` does not go with triple {}",
                    self.deploy.method, self.triple
                ),
            ));
        }
        Ok(())
    }

    /// The power modes within the power budget, fastest clock first.
    pub fn modes_within_budget(&self) -> Vec<&PowerMode> {
        let mut modes: Vec<&PowerMode> = self
            .power_modes
            .iter()
            .filter(|m| self.constraints.max_power_w.is_none_or(|b| m.watts <= b))
            .collect();
        modes.sort_by(|a, b| b.clock_mhz.total_cmp(&a.clock_mhz));
        modes
    }

    /// The constraints as short human-readable clauses.
    pub fn constraint_summary(&self) -> String {
        let c = &self.constraints;
        let mut parts = Vec::new();
        if let Some(v) = c.max_latency_p50_ms {
            parts.push(format!("p50 < {v} ms"));
        }
        if let Some(v) = c.max_latency_p95_ms {
            parts.push(format!("p95 < {v} ms"));
        }
        if let Some(v) = c.min_fps {
            parts.push(format!(">= {v} FPS"));
        }
        if let Some(v) = c.max_power_w {
            parts.push(format!("<= {v} W"));
        }
        if let Some(v) = c.max_size_mb {
            parts.push(format!("size <= {v} MB"));
        }
        if let Some(v) = c.max_peak_memory_mb {
            parts.push(format!("memory <= {v} MB"));
        }
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }
}

fn positive(v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("{v} must be a positive number"))
    }
}

/// Loads one profile file and applies the calibration beside it, if any
/// ([`Calibration::load_beside`]).
pub fn load_file(path: &Path) -> Result<Target, TargetError> {
    let text = std::fs::read_to_string(path).map_err(|source| TargetError::Io {
        path: path.to_owned(),
        source,
    })?;
    let mut target = Target::from_toml(&text, path)?;
    if let Some(c) = Calibration::load_beside(path)? {
        target.sim.cycles_per_fuel = c.cycles_per_fuel;
        target.sim.calibration = Some(c);
    }
    Ok(target)
}

/// Whether `--target NAME` names a profile file (it contains `/` or ends in `.toml`)
/// rather than a profile in the targets folder.
fn is_file_name(name: &str) -> bool {
    name.contains('/') || name.ends_with(".toml")
}

/// The profile file `name` stands for: `name` itself when it is a path (it contains `/`
/// or ends in `.toml`), else `dir/<name>.toml`.
pub fn profile_path(dir: &Path, name: &str) -> PathBuf {
    if is_file_name(name) {
        PathBuf::from(name)
    } else {
        dir.join(format!("{name}.toml"))
    }
}

/// Loads `dir/<name>.toml`; an unknown name lists the known ones. A `name`
/// that is a path to a file (it contains `/` or ends in `.toml`) loads that
/// file instead: a user's own board profile.
pub fn load(dir: &Path, name: &str) -> Result<Target, TargetError> {
    let path = profile_path(dir, name);
    if is_file_name(name) {
        return load_file(&path);
    }
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name || !path.is_file() {
        let known = load_all(dir)?
            .iter()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(TargetError::Unknown {
            name: name.to_owned(),
            known,
        });
    }
    load_file(&path)
}

/// Loads every `*.toml` in `dir`, sorted by name.
pub fn load_all(dir: &Path) -> Result<Vec<Target>, TargetError> {
    let entries = std::fs::read_dir(dir).map_err(|source| TargetError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    let mut targets = paths
        .iter()
        .map(|p| load_file(p))
        .collect::<Result<Vec<_>, _>>()?;
    targets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../targets")
    }

    #[test]
    fn the_bundled_profiles_load() {
        let all = load_all(&targets_dir()).unwrap();
        let names: Vec<&str> = all.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "host",
                "jetson",
                "jetson-orin",
                "pixel",
                "qemu-aarch64",
                "wasm-sim"
            ]
        );
        let jetson = load(&targets_dir(), "jetson").unwrap();
        assert_eq!(jetson.triple, Triple::Aarch64LinuxMusl);
        assert_eq!(jetson.constraints.min_fps, Some(30.0));
        assert_eq!(jetson.modes_within_budget()[0].name, "10W");
        let pixel = load(&targets_dir(), "pixel").unwrap();
        assert_eq!(pixel.constraints.max_latency_p50_ms, Some(80.0));
        assert_eq!(pixel.constraints.max_latency_p95_ms, Some(120.0));
        assert_eq!(pixel.constraints.max_size_mb, Some(20.0));
    }

    #[test]
    fn unknown_target_lists_known_ones() {
        let err = load(&targets_dir(), "iphone").unwrap_err().to_string();
        assert!(err.contains("iphone") && err.contains("jetson"), "{err}");
        let err = load(&targets_dir(), "bad name").unwrap_err().to_string();
        assert!(err.contains("unknown target"), "{err}");
    }

    #[test]
    fn a_path_loads_a_users_own_profile() {
        let dir = tempfile::tempdir().unwrap();
        let mine = dir.path().join("myboard.toml");
        std::fs::write(&mine, jetson_text()).unwrap();
        let t = load(&targets_dir(), &mine.display().to_string()).unwrap();
        assert_eq!(t.name, "myboard");
        assert_eq!(t.triple, Triple::Aarch64LinuxMusl);
        let missing = dir.path().join("nope.toml");
        let err = load(&targets_dir(), &missing.display().to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope.toml"), "{err}");
    }

    fn jetson_text() -> String {
        std::fs::read_to_string(targets_dir().join("jetson.toml")).unwrap()
    }

    fn err_of(text: &str) -> String {
        Target::from_toml(text, Path::new("targets/x.toml"))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_field_is_named() {
        let err =
            err_of(&jetson_text().replace("min_fps = 30.0", "min_fps = 30.0\nmax_fps = 60.0"));
        assert!(
            err.contains("targets/x.toml") && err.contains("max_fps"),
            "{err}"
        );
    }

    #[test]
    fn missing_field_is_named() {
        let err = err_of(&jetson_text().replace("cycles_per_fuel = 0.25", ""));
        assert!(err.contains("cycles_per_fuel"), "{err}");
        let err = err_of(&jetson_text().replace("triple = \"aarch64-unknown-linux-musl\"\n", ""));
        assert!(err.contains("triple"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let err = err_of(&jetson_text().replace("max_power_w = 10.0", "max_power_w = -1.0"));
        assert!(err.contains("constraints.max_power_w"), "{err}");
        let err = err_of(&jetson_text().replace("clock_mhz = 918", "clock_mhz = 0"));
        assert!(err.contains("power_mode[1].clock_mhz"), "{err}");
        let err = err_of(
            &jetson_text().replace("aarch64-unknown-linux-musl", "riscv64gc-unknown-linux-gnu"),
        );
        assert!(err.contains("triple") && err.contains("riscv64gc"), "{err}");
        let err = err_of(&jetson_text().replace("max_power_w = 10.0", "max_power_w = 2.0"));
        assert!(err.contains("no power mode fits"), "{err}");
        let err = err_of(&jetson_text().replace("method = \"ssh\"", "method = \"telnet\""));
        assert!(err.contains("telnet"), "{err}");
        let err = err_of(&jetson_text().replace("watts = 5.0", "watts = \"five\""));
        assert!(err.contains("watts"), "{err}");
    }
}
