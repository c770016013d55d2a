use std::path::PathBuf;

/// Everything that can be wrong with a space file, a genome or an input shape.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML/JSON, or a field is missing, unknown or of the wrong type.
    #[error("{origin}: {message}")]
    Parse { origin: String, message: String },
    /// A field parsed but its value is not allowed.
    #[error("{origin}: field `{field}`: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
    /// The genome and the input shape cannot make a network.
    #[error("the genome does not fit the input {input}: {message}")]
    DoesNotFit { input: String, message: String },
}
