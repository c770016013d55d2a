//! The crate's error type.

use std::path::PathBuf;

/// Everything that can be wrong with a space file, a genome or an input shape.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// A space or genome file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML/JSON, or a field is missing, unknown or of the wrong type.
    #[error("{origin}: {message}")]
    Parse {
        /// The file path, or the name the caller gave the text.
        origin: String,
        /// The parser's message (it names the field and position).
        message: String,
    },
    /// A field parsed but its value is not allowed.
    #[error("{origin}: field `{field}`: {message}")]
    Invalid {
        /// The file path, or the name the caller gave the text.
        origin: String,
        /// The field's path, e.g. `stage[1].kernels` or `stages[0].blocks[2].expand`.
        field: String,
        /// Why the value is not allowed.
        message: String,
    },
    /// The genome and the input shape cannot make a network.
    #[error("the genome does not fit the input {input}: {message}")]
    DoesNotFit {
        /// The input, as [`crate::InputSpec`] displays it (`1x28x28 (10 classes)`).
        input: String,
        /// Why it does not fit (e.g. the space downsamples more than the input allows).
        message: String,
    },
}
