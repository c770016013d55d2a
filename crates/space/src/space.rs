use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::SpaceError;

/// The activation a block (or the stem or head) uses after its convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// min(max(x, 0), 6), as in MobileNetV2.
    Relu6,
    /// x * relu6(x + 3) / 6, as in MobileNetV3.
    Hswish,
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Activation::Relu6 => "relu6",
            Activation::Hswish => "hswish",
        })
    }
}

/// A search space: the decisions a genome makes and the choices for each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Space {
    pub name: String,
    pub stem: StemSpace,
    #[serde(rename = "stage")]
    pub stages: Vec<StageSpace>,
    pub head: HeadSpace,
}

/// The first convolution: fixed kernel, stride and activation, a choice of width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemSpace {
    pub widths: Vec<usize>,
    pub kernel: usize,
    pub stride: usize,
    pub activation: Activation,
}

/// One stage of inverted-residual blocks. The first block applies `stride`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpace {
    pub stride: usize,
    pub depth: Vec<usize>,
    pub widths: Vec<usize>,
    pub kernels: Vec<usize>,
    pub expand: Vec<usize>,
    pub se: Vec<bool>,
    pub activations: Vec<Activation>,
}

/// The optional 1x1 conv before global pooling (width 0 = none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpace {
    pub widths: Vec<usize>,
    pub activation: Activation,
}

impl Space {
    /// Reads and validates a space file.
    pub fn load(path: &Path) -> Result<Space, SpaceError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpaceError::Io {
            path: path.to_owned(),
            source,
        })?;
        Space::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates a space from TOML text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Space, SpaceError> {
        let space: Space = toml::from_str(text).map_err(|e| SpaceError::Parse {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        space.check(origin)?;
        Ok(space)
    }

    fn check(&self, origin: &str) -> Result<(), SpaceError> {
        let bad = |field: String, message: String| SpaceError::Invalid {
            origin: origin.to_owned(),
            field,
            message,
        };
        if self.name.trim().is_empty() {
            return Err(bad("name".into(), "must not be empty".into()));
        }
        nonempty_positive(&self.stem.widths, "stem.widths", false)
            .map_err(|m| bad("stem.widths".into(), m))?;
        check_kernel(self.stem.kernel).map_err(|m| bad("stem.kernel".into(), m))?;
        check_stride(self.stem.stride).map_err(|m| bad("stem.stride".into(), m))?;
        if self.stages.is_empty() {
            return Err(bad(
                "stage".into(),
                "at least one [[stage]] is needed".into(),
            ));
        }
        for (i, s) in self.stages.iter().enumerate() {
            let f = |name: &str| format!("stage[{i}].{name}");
            check_stride(s.stride).map_err(|m| bad(f("stride"), m))?;
            nonempty_positive(&s.depth, "depth", false).map_err(|m| bad(f("depth"), m))?;
            nonempty_positive(&s.widths, "widths", false).map_err(|m| bad(f("widths"), m))?;
            nonempty_positive(&s.expand, "expand", false).map_err(|m| bad(f("expand"), m))?;
            nonempty_positive(&s.kernels, "kernels", false).map_err(|m| bad(f("kernels"), m))?;
            for &k in &s.kernels {
                check_kernel(k).map_err(|m| bad(f("kernels"), m))?;
            }
            if s.se.is_empty() {
                return Err(bad(f("se"), "needs at least one choice".into()));
            }
            if s.activations.is_empty() {
                return Err(bad(f("activations"), "needs at least one choice".into()));
            }
        }
        nonempty_positive(&self.head.widths, "head.widths", true)
            .map_err(|m| bad("head.widths".into(), m))?;
        Ok(())
    }

    /// The number of decisions a genome of this space makes at its largest depth.
    pub fn decision_count(&self) -> usize {
        2 + self
            .stages
            .iter()
            .map(|s| 2 + 4 * s.depth.iter().copied().max().unwrap_or(0))
            .sum::<usize>()
    }
}

fn nonempty_positive(values: &[usize], _name: &str, zero_ok: bool) -> Result<(), String> {
    if values.is_empty() {
        return Err("needs at least one choice".into());
    }
    if !zero_ok && values.contains(&0) {
        return Err("choices must be at least 1".into());
    }
    Ok(())
}

fn check_kernel(k: usize) -> Result<(), String> {
    if k == 0 || k.is_multiple_of(2) || k > 11 {
        return Err(format!("kernel {k} must be odd and between 1 and 11"));
    }
    Ok(())
}

fn check_stride(s: usize) -> Result<(), String> {
    if !(1..=2).contains(&s) {
        return Err(format!("stride {s} must be 1 or 2"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPACE: &str = include_str!("../../../spaces/mobile.toml");

    #[test]
    fn bundled_space_loads() {
        let space = Space::from_toml(SPACE, "mobile.toml").unwrap();
        assert_eq!(space.name, "mobile");
        assert_eq!(space.stages.len(), 4);
    }

    #[test]
    fn unknown_field_is_named() {
        let text = SPACE.replace("kernel = 3\n", "kernel = 3\nkernal = 5\n");
        let err = Space::from_toml(&text, "s.toml").unwrap_err().to_string();
        assert!(err.contains("s.toml") && err.contains("kernal"), "{err}");
    }

    #[test]
    fn missing_field_is_named() {
        let text = SPACE.replace(
            "stride = 1\nactivation = \"relu6\"\n",
            "activation = \"relu6\"\n",
        );
        let err = Space::from_toml(&text, "s.toml").unwrap_err().to_string();
        assert!(err.contains("stride"), "{err}");
    }

    #[test]
    fn bad_values_are_named() {
        let text = SPACE.replacen("kernels = [3, 5, 7]", "kernels = [3, 4]", 1);
        let err = Space::from_toml(&text, "s.toml").unwrap_err().to_string();
        assert!(
            err.contains("stage[0].kernels") && err.contains("odd"),
            "{err}"
        );

        let text = SPACE.replacen("stride = 2", "stride = 3", 1);
        let err = Space::from_toml(&text, "s.toml").unwrap_err().to_string();
        assert!(err.contains("stage[0].stride"), "{err}");

        let text = SPACE.replacen("depth = [1, 2]", "depth = []", 1);
        let err = Space::from_toml(&text, "s.toml").unwrap_err().to_string();
        assert!(err.contains("stage[0].depth"), "{err}");

        let text = SPACE.replacen(
            "activations = [\"relu6\", \"hswish\"]",
            "activations = [\"gelu\"]",
            1,
        );
        let err = Space::from_toml(&text, "s.toml").unwrap_err().to_string();
        assert!(err.contains("gelu"), "{err}");
    }
}
