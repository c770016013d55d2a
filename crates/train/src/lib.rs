//! Training for kiln: a burn network built from a `kiln_space::Architecture`, trained on a
//! `kiln_data::Dataset`, evaluated (top-1 on validation and test) and exported with its
//! batch-norm statistics under the weight names the ONNX exporter expects.
//!
//! - [`Network::new`] builds the layers (stem, MBConv blocks with optional expand and
//!   squeeze-excite, optional head, GAP, linear) with seeded He initialisation.
//! - [`train`] runs Adam or SGD with a cosine schedule on burn's flex CPU backend, on a
//!   thread pool of `config.threads` workers; with one thread a seed gives identical runs.
//! - [`named_weights`] reads the trained weights out for `kiln_onnx`.
//!
//! The model's input is the *normalised* image (see [`InputNormalization`]); the exported
//! ONNX does not contain the normalisation, it is recorded in `metrics.json` and in the
//! ONNX file's metadata.

mod config;
mod error;
mod export;
mod metrics;
mod model;
mod progress;
mod train;

pub use config::{OptimizerConfig, TrainConfig};
pub use error::TrainError;
pub use export::{NamedWeights, named_weights};
pub use metrics::{EpochMetrics, InputNormalization, Metrics};
pub use model::{BN_EPSILON, BlockLayer, ConvBnLayer, Network, SeLayer};
pub use progress::{Observer, ProgressBars, Silent};
pub use train::{Trained, argmax, device, evaluate, input_spec, logits, train, values, with_threads};
