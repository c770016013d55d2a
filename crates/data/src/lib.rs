//! Image classification data for kiln: where the images come from and how they are split.
//!
//! - [`Source`] names a data set: the bundled 5,000-image MNIST subset ([`Source::Mnist5k`],
//!   embedded in the crate, no download), a directory of IDX files (MNIST, Fashion-MNIST), of
//!   CIFAR-10 binary batches, or of PNG/JPEG images in one folder per class
//!   ([`Source::Images`], decoded once and cached on disk).
//! - [`load`] reads it into a [`Dataset`]: train / validation / test [`Split`]s of `u8`
//!   images in CHW order, the input shape and class count (they feed the search space),
//!   the class names, and the per-channel [`Normalization`] computed on the training split.
//! - [`Split::batch`] turns images into normalised `f32` batches, optionally with a random
//!   shift ([`Augment`]).
//!
//! Images stay `u8` until batched: CIFAR-10 as `f32` would be 600 MB.

mod batch;
mod cifar;
mod dataset;
mod error;
mod idx;
mod images;
mod io;
mod mnist5k;
mod resize;

pub use batch::{Augment, Batch};
pub use cifar::{load_cifar10, read_batch as read_cifar_batch};
pub use dataset::{DEFAULT_SPLIT_SEED, Dataset, ImageShape, Normalization, Split, SplitOptions};
pub use error::DataError;
pub use idx::{IDX_CLASSES, load_idx, load_idx_with_classes, read_idx_images, read_idx_labels};
pub use images::{
    Fit, IMAGES_TEST_FRACTION, ImageEvent, ImageOptions, MAX_BAD_FRACTION, MAX_DEFAULT_SIDE,
    Resolution, load_images, stderr_report,
};
pub use mnist5k::{MNIST_5K_GZ, load_mnist_5k, load_mnist_csv, parse_mnist_csv};

use std::path::PathBuf;

/// Where a data set comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The bundled 5,000-image MNIST subset (train 4,000 / test 1,000).
    Mnist5k,
    /// The bundled MNIST subset resized to `side x side` pixels ([`Dataset::resized`]): an
    /// upscaled stand-in for a data set at a resolution where the hardware constraints bind
    /// (the digits hold no more detail than at 28x28; its name says so in every output).
    Mnist5kUpscaled(usize),
    /// A directory with `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
    /// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` (each optionally `.gz`).
    Idx(PathBuf),
    /// A directory with CIFAR-10's `data_batch_{1..5}.bin` and `test_batch.bin`
    /// (or its `cifar-10-batches-bin` subdirectory).
    Cifar10(PathBuf),
    /// A folder of PNG/JPEG images, one subfolder per class (`DIR/<class>/*.png`), or
    /// `DIR/train/<class>/...` and `DIR/test/<class>/...`; see [`load_images`].
    Images(PathBuf, ImageOptions),
}

impl Source {
    /// A short name for logs and metrics: `mnist-5k`, `idx:DIR`, `cifar10:DIR`,
    /// `images:DIR (resolution HxW|auto, channels C|auto, crop|letterbox)`.
    pub fn name(&self) -> String {
        match self {
            Source::Mnist5k => "mnist-5k".to_string(),
            Source::Mnist5kUpscaled(side) => upscaled_name(*side),
            Source::Idx(dir) => format!("idx:{}", dir.display()),
            Source::Cifar10(dir) => format!("cifar10:{}", dir.display()),
            Source::Images(dir, o) => format!("images:{} ({})", dir.display(), o.describe()),
        }
    }

    /// The data's identity with its split, as a search journal records it (resuming with
    /// other data is refused): `NAME (validation F, split seed S, train limit N|none)`.
    pub fn identity(&self, options: &SplitOptions) -> String {
        format!(
            "{} (validation {}, split seed {}, train limit {})",
            self.name(),
            options.validation_fraction,
            options.seed,
            options.train_limit.map_or("none".into(), |n| n.to_string())
        )
    }
}

/// `mnist-5k upscaled to NxN (stand-in: 28x28 digits)`.
fn upscaled_name(side: usize) -> String {
    format!("mnist-5k upscaled to {side}x{side} (stand-in: 28x28 digits)")
}

/// Reads a data set and splits it as `options` say. An image folder reports its decoding
/// progress and warnings on standard error ([`stderr_report`]); [`load_images`] takes
/// another reporter.
///
/// Errors: a [`DataError`] naming the file that is missing, truncated or malformed, or
/// [`DataError::BadSplit`] when `options` cannot produce the splits.
pub fn load(source: &Source, options: &SplitOptions) -> Result<Dataset, DataError> {
    match source {
        Source::Mnist5k => load_mnist_5k(options),
        Source::Mnist5kUpscaled(side) => {
            let side = (*side).clamp(1, 4096);
            let data = load_mnist_5k(options)?.resized(Resolution {
                height: side,
                width: side,
            });
            Ok(Dataset {
                name: upscaled_name(side),
                ..data
            })
        }
        Source::Idx(dir) => load_idx(dir, options),
        Source::Cifar10(dir) => load_cifar10(dir, options),
        Source::Images(dir, o) => load_images(dir, o, options, &mut stderr_report()),
    }
}
