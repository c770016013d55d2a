//! The crate's error type.

use std::path::PathBuf;

/// What can stop a training run or an export.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A training setting that cannot work.
    #[error("training config: field `{field}`: {message}")]
    Config {
        /// The [`crate::TrainConfig`] field, e.g. `batch_size`.
        field: String,
        /// Why the value cannot work.
        message: String,
    },
    /// The genome cannot make a network for this data set's input.
    #[error(transparent)]
    Space(#[from] kiln_space::SpaceError),
    /// The architecture was built for another input than the data set has.
    #[error("the architecture expects input {expected}, but data set {dataset} has {found}")]
    InputMismatch {
        /// The architecture's input, as `kiln_space::InputSpec` displays it.
        expected: String,
        /// The data set's input, in the same form.
        found: String,
        /// The data set's name.
        dataset: String,
    },
    /// A split has no images to train or evaluate on.
    #[error("data set {dataset}: the {split} split is empty")]
    EmptySplit {
        /// The data set's name.
        dataset: String,
        /// `train` or `test`.
        split: &'static str,
    },
    /// Reading tensor values back from burn failed.
    #[error("reading tensor `{what}` from burn: {message}")]
    Tensor {
        /// The tensor, e.g. `logits` or `s0.b0.dw.bn.running_var`.
        what: String,
        /// burn's error.
        message: String,
    },
    /// Training diverged (loss is NaN or infinite).
    #[error(
        "training diverged at epoch {epoch}, batch {batch}: loss is {loss}; lower the learning rate"
    )]
    Diverged {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based batch within the epoch.
        batch: usize,
        /// The loss value (NaN or infinite).
        loss: f32,
    },
    /// The exporter rejected the weights, or the network and its architecture disagree.
    #[error("ONNX export: {0}")]
    Export(String),
    /// A file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The rayon pool for the tensor kernels cannot be built.
    #[error("cannot start the tensor worker threads: {0}")]
    Threads(String),
}
