//! Search-space files: the decisions a genome makes and the choices for each.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{Precision, SpaceError};

/// The activation a block (or the stem or head) uses after its convolutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// min(max(x, 0), 6), as in MobileNetV2 (Sandler et al., 2018).
    Relu6,
    /// x * relu6(x + 3) / 6, as in MobileNetV3 (Howard et al., 2019).
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
///
/// Every choice list is non-empty once the space is loaded ([`Space::from_toml`] checks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Space {
    /// The space's name; a genome names the space it belongs to.
    pub name: String,
    /// The first convolution.
    pub stem: StemSpace,
    /// The stages of inverted-residual blocks, input to output (`[[stage]]` in TOML).
    #[serde(rename = "stage")]
    pub stages: Vec<StageSpace>,
    /// The optional 1x1 conv before global pooling.
    pub head: HeadSpace,
    /// Input resolution choices, square sides in pixels (`resolution = [64, 96]`), as
    /// Once-for-All searches 128-224: each genome then picks one and its network takes
    /// `side x side` images. `None` (no `resolution` key): the data's resolution, and genomes
    /// carry no resolution (their ids are those of a space without the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Vec<usize>>,
    /// Number format choices (`precision = ["f32", "int8"]`, any non-empty subset without
    /// repeats): each genome then picks one and is built and measured in it (int8: quantized
    /// by kiln-quant first). `None` (no `precision` key): the search-wide `--precision`, and
    /// genomes carry no precision (their ids are those of a space without the key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Vec<Precision>>,
}

/// The first convolution: fixed kernel, stride and activation, a choice of width.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StemSpace {
    /// Output channel choices, each at least 1.
    pub widths: Vec<usize>,
    /// Square kernel size in pixels: odd, 1 to 11.
    pub kernel: usize,
    /// Stride in pixels: 1 or 2.
    pub stride: usize,
    /// The activation after batch norm.
    pub activation: Activation,
}

/// One stage of inverted-residual blocks. The first block applies `stride`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageSpace {
    /// Stride of the stage's first block, in pixels: 1 or 2.
    pub stride: usize,
    /// Choices for the number of blocks, each at least 1.
    pub depth: Vec<usize>,
    /// Output channel choices (the width of every block of the stage), each at least 1.
    pub widths: Vec<usize>,
    /// Depthwise kernel size choices per block: odd, 1 to 11.
    pub kernels: Vec<usize>,
    /// Expand-ratio choices per block (hidden channels = input channels x ratio; 1 = no
    /// expand conv), each at least 1.
    pub expand: Vec<usize>,
    /// Squeeze-excite choices per block.
    pub se: Vec<bool>,
    /// Activation choices per block.
    pub activations: Vec<Activation>,
}

/// The optional 1x1 conv before global pooling (width 0 = none).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadSpace {
    /// Output channel choices; 0 means no head conv.
    pub widths: Vec<usize>,
    /// The activation after the head's batch norm.
    pub activation: Activation,
}

impl Space {
    /// Reads and validates a space file.
    ///
    /// Errors: [`SpaceError::Io`] when the file cannot be read, otherwise as for
    /// [`Space::from_toml`] with the path as origin.
    pub fn load(path: &Path) -> Result<Space, SpaceError> {
        let text = std::fs::read_to_string(path).map_err(|source| SpaceError::Io {
            path: path.to_owned(),
            source,
        })?;
        Space::from_toml(&text, &path.display().to_string())
    }

    /// Parses and validates a space from TOML text; `origin` names it in errors.
    ///
    /// Errors: [`SpaceError::Parse`] for invalid TOML or a missing, unknown or mistyped
    /// field; [`SpaceError::Invalid`] naming the field (e.g. `stage[1].kernels`) for an
    /// empty choice list, a choice listed twice, a zero width or depth, a width above 4,096,
    /// a depth above 32, an expand ratio above 16, an even kernel or a stride other than 1
    /// or 2.
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
        choices(&self.stem.widths, false, MAX_WIDTH).map_err(|m| bad("stem.widths".into(), m))?;
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
            choices(&s.depth, false, MAX_DEPTH).map_err(|m| bad(f("depth"), m))?;
            choices(&s.widths, false, MAX_WIDTH).map_err(|m| bad(f("widths"), m))?;
            choices(&s.expand, false, MAX_EXPAND).map_err(|m| bad(f("expand"), m))?;
            choices(&s.kernels, false, usize::MAX).map_err(|m| bad(f("kernels"), m))?;
            for &k in &s.kernels {
                check_kernel(k).map_err(|m| bad(f("kernels"), m))?;
            }
            if s.se.is_empty() {
                return Err(bad(f("se"), "needs at least one choice".into()));
            }
            distinct(&s.se).map_err(|m| bad(f("se"), m))?;
            if s.activations.is_empty() {
                return Err(bad(f("activations"), "needs at least one choice".into()));
            }
            distinct(&s.activations).map_err(|m| bad(f("activations"), m))?;
        }
        choices(&self.head.widths, true, MAX_WIDTH).map_err(|m| bad("head.widths".into(), m))?;
        if let Some(sides) = &self.resolution {
            choices(sides, false, usize::MAX).map_err(|m| bad("resolution".into(), m))?;
            if let Some(s) = sides.iter().find(|&&s| !(8..=1024).contains(&s)) {
                return Err(bad(
                    "resolution".into(),
                    format!("side {s} must be between 8 and 1024 pixels"),
                ));
            }
        }
        if let Some(formats) = &self.precision {
            if formats.is_empty() {
                return Err(bad("precision".into(), "needs at least one choice".into()));
            }
            distinct(formats).map_err(|m| bad("precision".into(), m))?;
        }
        Ok(())
    }
}

/// The most channels a layer may choose: far above mobile CNNs (MobileNetV2's widest layer
/// has 1,280) and below widths whose weights would not fit in memory.
const MAX_WIDTH: usize = 4096;
/// The most blocks a stage may choose (MobileNetV2's deepest stage has 4).
const MAX_DEPTH: usize = 32;
/// The largest expand ratio (MobileNetV2 uses 6).
const MAX_EXPAND: usize = 16;

/// A numeric choice list: not empty, no 0 unless `zero_ok`, none above `max`, none twice.
fn choices(values: &[usize], zero_ok: bool, max: usize) -> Result<(), String> {
    if values.is_empty() {
        return Err("needs at least one choice".into());
    }
    if !zero_ok && values.contains(&0) {
        return Err("choices must be at least 1".into());
    }
    if let Some(v) = values.iter().find(|&&v| v > max) {
        return Err(format!("{v} is above {max}, the most kiln builds"));
    }
    distinct(values)
}

/// A choice list that lists no choice twice (a genome's choice would be ambiguous, and a
/// sampler would weight it double).
fn distinct<T: PartialEq + fmt::Display>(values: &[T]) -> Result<(), String> {
    match (values.iter().enumerate()).find(|(i, v)| values[..*i].contains(v)) {
        Some((i, v)) => Err(format!("`{v}` is listed twice (choice {i})")),
        None => Ok(()),
    }
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
    fn choices_listed_twice_or_too_large_are_named() {
        for (from, to, field, needle) in [
            (
                "widths = [0, 128, 256]",
                "widths = [0, 128, 128]",
                "head.widths",
                "`128` is listed twice (choice 2)",
            ),
            (
                "depth = [1, 2]",
                "depth = [1, 100000]",
                "stage[0].depth",
                "100000 is above 32",
            ),
            (
                "se = [false, true]",
                "se = [true, true]",
                "se",
                "`true` is listed twice",
            ),
        ] {
            assert!(SPACE.contains(from), "{from}");
            let text = SPACE.replacen(from, to, 1);
            let err = Space::from_toml(&text, "s.toml").unwrap_err().to_string();
            assert!(err.contains(field) && err.contains(needle), "{err}");
        }
        let wide = SPACE.replacen("widths = [0, 128, 256]", "widths = [0, 100000000]", 1);
        let err = Space::from_toml(&wide, "s.toml").unwrap_err().to_string();
        assert!(err.contains("100000000 is above 4096"), "{err}");
    }

    #[test]
    fn resolution_choices_load_and_bad_ones_are_named() {
        let space = Space::from_toml(&format!("resolution = [64, 96]\n{SPACE}"), "r.toml").unwrap();
        assert_eq!(space.resolution, Some(vec![64, 96]));
        assert_eq!(Space::from_toml(SPACE, "s.toml").unwrap().resolution, None);
        for (list, needle) in [("[]", "at least one"), ("[96, 4]", "side 4")] {
            let text = format!("resolution = {list}\n{SPACE}");
            let err = Space::from_toml(&text, "r.toml").unwrap_err().to_string();
            assert!(err.contains("resolution") && err.contains(needle), "{err}");
        }
    }

    #[test]
    fn precision_choices_load_and_bad_ones_are_named() {
        let text = format!("precision = [\"f32\", \"int8\"]\n{SPACE}");
        let space = Space::from_toml(&text, "p.toml").unwrap();
        assert_eq!(space.precision, Some(vec![Precision::F32, Precision::Int8]));
        assert_eq!(Space::from_toml(SPACE, "s.toml").unwrap().precision, None);
        for (list, needle) in [
            ("[]", "at least one"),
            ("[\"int8\", \"int8\"]", "`int8` is listed twice"),
            ("[\"f32\", \"fp16\"]", "fp16"),
            ("\"int8\"", "sequence"),
        ] {
            let text = format!("precision = {list}\n{SPACE}");
            let err = Space::from_toml(&text, "p.toml").unwrap_err().to_string();
            assert!(
                err.contains("p.toml") && err.contains("precision") && err.contains(needle),
                "{err}"
            );
        }
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
