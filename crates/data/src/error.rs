use std::path::PathBuf;

/// Everything that can be wrong with a data set on disk. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The message includes the I/O error (not chained as a source, so it prints once).
    #[error("cannot read {}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file ends before the data its header (or its record size) promises.
    #[error("{} is truncated: {message}", path.display())]
    Truncated { path: PathBuf, message: String },
    /// The first four bytes of an IDX file are not the magic number for its kind.
    #[error("{} has magic number {found:#010x}, expected {expected:#010x} ({kind})", path.display())]
    BadMagic {
        path: PathBuf,
        expected: u32,
        found: u32,
        kind: &'static str,
    },
    /// A label is not one of the data set's classes.
    #[error("{}: record {record} has label {label}, but the data set has {classes} classes (labels 0..{})", path.display(), classes - 1)]
    LabelOutOfRange {
        path: PathBuf,
        record: usize,
        label: u64,
        classes: usize,
    },
    /// Image dimensions or counts do not match what was declared or what a sibling file says.
    #[error("{}: shape mismatch: {message}", path.display())]
    ShapeMismatch { path: PathBuf, message: String },
    /// A CSV line that is not a row of integers of the expected length and range.
    #[error("{}: line {line}: {message}", path.display())]
    Csv {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The options cannot produce the requested splits.
    #[error("{origin}: {message}")]
    BadSplit { origin: String, message: String },
}
