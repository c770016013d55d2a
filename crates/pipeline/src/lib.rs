//! kiln-pipeline: the one composer of a candidate's path.
//!
//! ```text
//! ONNX bytes, or a genome -> trained weights -> ONNX       (evaluate: kiln-train)
//!   -> kiln IR -> generated crate -> builds               (build: kiln-lower, kiln-codegen)
//!   -> labelled figures                                   (kiln-measure: host, sim; kiln-deploy: device)
//!   -> constraints judged once                            (judge: kiln-target's Constraints::check)
//! ```
//!
//! Every command that turns a model into built, measured or flashed
//! artefacts calls this crate: `search` ([`search::search`] with the real
//! [`PipelineEvaluator`]), `measure`, `sizes`, `run-onnx`, `eval-onnx`
//! ([`build::build_model`]), `flash` ([`flash::flash`]). The command line
//! (xtask) only parses flags, calls one function here and prints.

pub mod bench;
pub mod build;
mod confirm;
pub mod device;
pub mod dnas;
pub mod eval;
mod evaluate;
mod files;
pub mod finetune;
mod finetune_ahead;
pub mod finetune_store;
pub mod flash;
mod inherit;
pub mod judge;
pub mod judgments;
pub mod lut;
pub mod npy;
pub mod precision;
pub mod preflight;
pub mod resolution;
pub mod run;
pub mod search;
mod search_device;
mod summary;
pub mod supernet_cache;
mod supernets;
pub mod train;
mod warm_start;
pub mod worker;

use std::path::PathBuf;

pub use build::{
    BuiltModel, ModelSource, build_file, build_model, build_target, content_dir, content_id,
    graph_warnings, nonfinite_warnings,
};
pub use evaluate::PipelineEvaluator;
pub use inherit::{Inherited, SupernetJudge};
pub use precision::Precision;
pub use search_device::SearchDevice;
pub use supernets::Supernets;

/// What went wrong along the pipeline; each stage's error names its file,
/// node, field or program.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Lowering the ONNX model (names the node and op type).
    #[error(transparent)]
    Lower(#[from] kiln_lower::LowerError),
    /// Generating or building the crate.
    #[error(transparent)]
    Codegen(#[from] kiln_codegen::CodegenError),
    /// Running or reading a built program.
    #[error(transparent)]
    Measure(#[from] kiln_measure::MeasureError),
    /// Reaching or using the device.
    #[error(transparent)]
    Deploy(#[from] kiln_deploy::DeployError),
    /// The search, its journal or its report.
    #[error(transparent)]
    Search(#[from] kiln_search::SearchError),
    /// The search space file.
    #[error(transparent)]
    Space(#[from] kiln_space::SpaceError),
    /// Post-training quantization (names the node).
    #[error(transparent)]
    Quant(#[from] kiln_quant::QuantError),
    /// Training settings or training itself.
    #[error(transparent)]
    Train(#[from] kiln_train::TrainError),
    /// A supernet's checkpoint, identity (a mismatch names the field) or split.
    #[error(transparent)]
    Supernet(#[from] kiln_supernet::SupernetError),
    /// Reading or writing a file.
    #[error("{path}: {message}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        message: String,
    },
    /// A request that cannot be carried out, in the user's words.
    #[error("{0}")]
    Invalid(String),
}

impl From<kiln_measure::sim::SimError> for PipelineError {
    fn from(e: kiln_measure::sim::SimError) -> Self {
        PipelineError::Measure(e.into())
    }
}

impl From<kiln_measure::size::SizeError> for PipelineError {
    fn from(e: kiln_measure::size::SizeError) -> Self {
        PipelineError::Measure(e.into())
    }
}

/// `error` and its causes as one line for the user, `a: b: c`, each cause left out when
/// the text before already says it: kiln's errors name their io cause in their own
/// message (`cannot read F: No such file...`) and also give it as their source, so
/// printing the whole chain would say it twice.
pub fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let said = c.to_string();
        // said as a clause of its own: after `: ` and ending the text or a clause
        let clause = format!(": {said}");
        let already = text.match_indices(&clause).any(|(i, _)| {
            let after = &text[i + clause.len()..];
            after.is_empty() || after.starts_with([' ', ':', ';', ','])
        });
        if !already {
            text = format!("{text}: {said}");
        }
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod error_text_tests {
    #[test]
    fn a_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = kiln_space::SpaceError::Io {
            path: "spaces/x.toml".into(),
            source: io,
        };
        assert_eq!(
            super::error_text(&e),
            "cannot read spaces/x.toml: no such file"
        );
        let wrapped = super::PipelineError::Invalid("bad flag".into());
        assert_eq!(super::error_text(&wrapped), "bad flag");
        // a cause that only appears inside a longer phrase is still said
        #[derive(Debug, thiserror::Error)]
        #[error("the invalid data set was refused")]
        struct Refused(#[source] std::io::Error);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid data");
        assert_eq!(
            super::error_text(&Refused(io)),
            "the invalid data set was refused: invalid data"
        );
    }
}
