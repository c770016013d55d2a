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
//! The burn network takes *normalised* images; the exported ONNX takes raw pixel values
//! (0..255 as f32) and normalises them in its first two ops ([`ONNX_INPUT`]). The
//! normalisation is also recorded in `metrics.json` and in the ONNX metadata.

mod activation;
mod batchnorm;
mod config;
mod conv;
mod depthwise;
mod error;
mod export;
mod flex;
mod import;
mod metrics;
mod model;
mod onnx;
mod pointwise;
mod progress;
mod shard;
mod train;

pub use activation::activate;
pub use batchnorm::{batch_norm, batch_norm_train};
pub use config::{OptimizerConfig, TrainConfig};
pub use conv::conv2d_no_bias;
pub use depthwise::depthwise_conv2d;
pub use error::TrainError;
pub use export::{NamedWeights, named_weights};
pub use metrics::{EpochMetrics, InputNormalization, Metrics};
pub use model::{BN_EPSILON, BlockLayer, ConvBnLayer, Network, SeLayer};
pub use onnx::{ONNX_INPUT, export_onnx, export_onnx_as, onnx_weights, raw_pixel_normalization};
pub use pointwise::pointwise_conv2d;
pub use progress::{Observer, ProgressBars, Silent};
pub use train::{
    Trained, architecture_for, argmax, device, evaluate, input_spec, logits, train, train_from,
    values, with_threads,
};
