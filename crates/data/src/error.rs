use std::path::PathBuf;

/// Everything that can be wrong with a data set on disk. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file cannot be read (missing, unreadable, ...). The message includes the I/O error
    /// (not chained as a source, so it prints once).
    #[error("cannot read {}: {error}", path.display())]
    Io {
        /// The file (for a missing IDX file: the first name looked for).
        path: PathBuf,
        /// What the operating system (or the gzip decoder) reported.
        error: std::io::Error,
    },
    /// The file ends before the data its header (or its record size) promises.
    #[error("{} is truncated: {message}", path.display())]
    Truncated {
        /// The truncated file.
        path: PathBuf,
        /// What was expected and what the file holds, in bytes.
        message: String,
    },
    /// The first four bytes of an IDX file are not the magic number for its kind.
    #[error("{} has magic number {found:#010x}, expected {expected:#010x} ({kind})", path.display())]
    BadMagic {
        /// The IDX file.
        path: PathBuf,
        /// The magic number this kind of file must start with (big-endian u32).
        expected: u32,
        /// The magic number the file starts with.
        found: u32,
        /// The kind of file expected, e.g. "IDX images: unsigned bytes, 3 dimensions".
        kind: &'static str,
    },
    /// A label is not one of the data set's classes.
    #[error("{}: record {record} has label {label}, but the data set has {classes} classes (labels 0..{})", path.display(), classes - 1)]
    LabelOutOfRange {
        /// The file holding the label.
        path: PathBuf,
        /// 0-based index of the image (record, CSV data row) with the bad label.
        record: usize,
        /// The label found.
        label: u64,
        /// The data set's class count; labels must be below it.
        classes: usize,
    },
    /// Image dimensions or counts do not match what was declared or what a sibling file says.
    #[error("{}: shape mismatch: {message}", path.display())]
    ShapeMismatch {
        /// The file whose shape or count disagrees.
        path: PathBuf,
        /// What disagrees with what.
        message: String,
    },
    /// A CSV line that is not a row of integers of the expected length and range.
    #[error("{}: line {line}: {message}", path.display())]
    Csv {
        /// The CSV file (for the bundled set: `data/mnist_5k.csv.gz (bundled)`).
        path: PathBuf,
        /// 1-based line number; 0 when the file as a whole is bad (not UTF-8).
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// The options cannot produce the requested splits.
    #[error("{origin}: {message}")]
    BadSplit {
        /// The data set's name (`mnist-5k`, `idx:DIR`, ...).
        origin: String,
        /// Which option is out of range, or which split would be empty.
        message: String,
    },
    /// A class folder of an image folder holds no image file (or none that decodes).
    #[error("class folder {} has no usable .jpg, .jpeg or .png image{}", path.display(), detail)]
    EmptyClass {
        /// The class folder.
        path: PathBuf,
        /// What else the folder held, e.g. " (2 other files ignored)"; may be empty.
        detail: String,
    },
    /// An image folder with fewer than two classes: nothing to classify.
    #[error("{} has {} class folder{} ({}); a classifier needs at least two (one folder per class: DIR/<class>/*.jpg)", path.display(), found.len(), if found.len() == 1 { "" } else { "s" }, found.join(", "))]
    TooFewClasses {
        /// The image folder (or its `train` folder).
        path: PathBuf,
        /// The class folders found.
        found: Vec<String>,
    },
    /// More than 1% of an image folder's files are not images or do not decode.
    #[error("{}: {bad} of {total} image files are not images or do not decode (more than 1%), e.g. {}", path.display(), examples.join("; "))]
    TooManyBadFiles {
        /// The image folder.
        path: PathBuf,
        /// Files that failed.
        bad: usize,
        /// Image files (by extension) in the folder.
        total: usize,
        /// The first few bad files, each with its reason.
        examples: Vec<String>,
    },
    /// An image folder that is not laid out as `DIR/<class>/*.png|jpg` or
    /// `DIR/{train,test}/<class>/...`, or options that do not fit it.
    #[error("{}: {message}", path.display())]
    Layout {
        /// The folder at fault.
        path: PathBuf,
        /// What is wrong and what is expected.
        message: String,
    },
}
