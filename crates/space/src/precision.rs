//! The number format a candidate is built and measured in: a search-wide setting
//! (`--precision`) or, when a space lists `precision = ["f32", "int8"]`, one more decision
//! of the genome.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The number format a model is built and measured in (serialised `f32`, `int8`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// As trained: f32 weights and activations.
    #[default]
    F32,
    /// Post-training static quantization (kiln-quant) before the build: int8
    /// weights per output channel, int8 activations per tensor, int32 biases.
    Int8,
}

impl Precision {
    /// `f32` or `int8`, as the command line, space files and the run identity spell it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Int8 => "int8",
        }
    }

    /// Bytes per weight and activation value: 4 or 1 (the analytic size and
    /// memory bounds of the precheck scale with it).
    pub fn bytes_per_value(self) -> u32 {
        match self {
            Precision::F32 => 4,
            Precision::Int8 => 1,
        }
    }

    /// Whether this is f32 (the format a key or genome without one is in).
    pub fn is_f32(&self) -> bool {
        *self == Precision::F32
    }

    /// Reads `f32` or `int8`.
    ///
    /// Errors: any other word (quoted, with the two choices).
    pub fn parse(s: &str) -> Result<Precision, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "int8" => Ok(Precision::Int8),
            other => Err(format!("unknown precision `{other}`: f32 or int8")),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_reads_as_written_and_names_a_wrong_word() {
        assert_eq!(Precision::parse("int8"), Ok(Precision::Int8));
        assert_eq!(Precision::parse("f32"), Ok(Precision::F32));
        assert_eq!(Precision::Int8.name(), "int8");
        assert_eq!(serde_json::to_string(&Precision::Int8).unwrap(), "\"int8\"");
        let e = Precision::parse("fp16").unwrap_err();
        assert!(e.contains("`fp16`") && e.contains("int8"), "{e}");
    }
}
