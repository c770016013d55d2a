use std::path::PathBuf;

/// What can stop a training run or an export.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A training setting that cannot work.
    #[error("training config: field `{field}`: {message}")]
    Config { field: String, message: String },
    /// The genome cannot make a network for this data set's input.
    #[error(transparent)]
    Space(#[from] kiln_space::SpaceError),
    /// The architecture was built for another input than the data set has.
    #[error("the architecture expects input {expected}, but data set {dataset} has {found}")]
    InputMismatch {
        expected: String,
        found: String,
        dataset: String,
    },
    /// A split has no images to train or evaluate on.
    #[error("data set {dataset}: the {split} split is empty")]
    EmptySplit {
        dataset: String,
        split: &'static str,
    },
    /// Reading tensor values back from burn failed.
    #[error("reading tensor `{what}` from burn: {message}")]
    Tensor { what: String, message: String },
    /// Training diverged (loss is NaN or infinite).
    #[error(
        "training diverged at epoch {epoch}, batch {batch}: loss is {loss}; lower the learning rate"
    )]
    Diverged {
        epoch: usize,
        batch: usize,
        loss: f32,
    },
    /// The exporter rejected the weights.
    #[error("ONNX export: {0}")]
    Export(String),
    #[error("cannot write {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the tensor worker threads: {0}")]
    Threads(String),
}
