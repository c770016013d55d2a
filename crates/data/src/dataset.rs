//! Splits of `u8` images, the data set they make up, and the per-channel normalisation.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::DataError;

/// Images are `channels x height x width`, stored channel-major (CHW) as in ONNX's NCHW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageShape {
    /// Colour channels (C): 1 for MNIST, 3 (RGB) for CIFAR-10.
    pub channels: usize,
    /// Rows (H), in pixels.
    pub height: usize,
    /// Columns (W), in pixels.
    pub width: usize,
}

impl ImageShape {
    /// Values (bytes, as `u8`) per image: `channels * height * width`.
    pub fn len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// True when an image has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl std::fmt::Display for ImageShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.channels, self.height, self.width)
    }
}

/// How a data set is split. The split seed is separate from the training seed so that
/// every training run of a search sees the same validation and test images.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitOptions {
    /// Seed of the shuffles that choose the test (where the source has no test file)
    /// and validation images.
    pub seed: u64,
    /// Share of the training images held out as validation, stratified by class: a fraction
    /// in [0, 1) (0.1 = 10%), rounded to whole images. [`Dataset::from_splits`] rejects
    /// other values with [`DataError::BadSplit`].
    pub validation_fraction: f64,
    /// Keep only this many training images (after the validation holdout); for quick runs.
    pub train_limit: Option<usize>,
}

/// The split seed kiln uses unless told otherwise (the bytes of "kiln").
pub const DEFAULT_SPLIT_SEED: u64 = 0x6b69_6c6e;

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            seed: DEFAULT_SPLIT_SEED,
            validation_fraction: 0.1,
            train_limit: None,
        }
    }
}

/// Labelled images of one shape, `u8` pixels in CHW order.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    shape: ImageShape,
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Split {
    /// Builds a split; `images` holds `labels.len()` images of `shape`, back to back.
    pub fn new(shape: ImageShape, images: Vec<u8>, labels: Vec<u8>) -> Option<Split> {
        (images.len() == shape.len() * labels.len()).then_some(Split {
            shape,
            images,
            labels,
        })
    }

    /// The shape every image of the split has.
    pub fn shape(&self) -> ImageShape {
        self.shape
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split has no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The pixels of image `i` (CHW `u8`, [`ImageShape::len`] values). Panics if `i` is not
    /// below [`Split::len`].
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.shape.len();
        &self.images[i * n..(i + 1) * n]
    }

    /// The class of image `i`, in `0..classes`. Panics if `i` is not below [`Split::len`].
    pub fn label(&self, i: usize) -> usize {
        usize::from(self.labels[i])
    }

    /// Every image's class, in image order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The images at `indices`, in that order (repeats allowed). Panics on an index that is
    /// not below [`Split::len`].
    pub fn select(&self, indices: &[usize]) -> Split {
        let mut images = Vec::with_capacity(indices.len() * self.shape.len());
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Split {
            shape: self.shape,
            images,
            labels,
        }
    }

    /// How many images each class has, for classes `0..classes` (labels at or above `classes`
    /// are not counted).
    pub fn class_counts(&self, classes: usize) -> Vec<usize> {
        let mut counts = vec![0; classes];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }
}

/// Per-channel normalisation: `x = (pixel / 255 - mean[c]) / std[c]`.
///
/// Computed on the training split only and stored with every trained model: whoever feeds
/// the model (eval, the generated runtime, a user) applies the same transform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    /// Multiplies raw pixels before the mean is subtracted (1/255 for `u8` images).
    pub scale: f32,
    /// Per-channel mean of the scaled pixels (0..1 units), one value per channel.
    pub mean: Vec<f32>,
    /// Per-channel (population) standard deviation of the scaled pixels (0..1 units); never 0.
    pub std: Vec<f32>,
}

impl Normalization {
    /// Mean and (population) standard deviation of each channel of `split`, on pixels
    /// scaled to 0..1. A channel with (almost) no spread gets std 1 so nothing divides by 0.
    pub fn compute(split: &Split) -> Normalization {
        let shape = split.shape();
        let plane = shape.height * shape.width;
        let mut sum = vec![0f64; shape.channels];
        let mut sum_sq = vec![0f64; shape.channels];
        for i in 0..split.len() {
            for (c, values) in split.image(i).chunks_exact(plane.max(1)).enumerate() {
                for &v in values {
                    let x = f64::from(v) / 255.0;
                    sum[c] += x;
                    sum_sq[c] += x * x;
                }
            }
        }
        let count = (split.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
        let std = sum_sq
            .iter()
            .zip(&mean)
            .map(|(sq, m)| {
                let var = (sq / count - m * m).max(0.0);
                let sd = var.sqrt();
                if sd < 1e-6 { 1.0 } else { sd as f32 }
            })
            .collect();
        Normalization {
            scale: 1.0 / 255.0,
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// Scale to 0..1 and nothing else (mean 0, std 1 for each of `channels`), for tests.
    pub fn unit(channels: usize) -> Normalization {
        Normalization {
            scale: 1.0 / 255.0,
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// Writes the normalised `image` (CHW `u8`) into `out` (CHW `f32`, as many values).
    /// The channel count is `mean.len()`; each channel is `image.len() / channels` values.
    pub fn apply(&self, image: &[u8], out: &mut [f32]) {
        let channels = self.mean.len().max(1);
        let plane = image.len() / channels;
        for (c, (src, dst)) in image
            .chunks(plane.max(1))
            .zip(out.chunks_mut(plane.max(1)))
            .enumerate()
        {
            let m = self.mean.get(c).copied().unwrap_or(0.0);
            let inv = 1.0 / self.std.get(c).copied().unwrap_or(1.0);
            for (s, d) in src.iter().zip(dst) {
                *d = (f32::from(*s) * self.scale - m) * inv;
            }
        }
    }
}

/// A loaded, split data set.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// `mnist-5k`, `idx:DIR`, `cifar10:DIR`, `images:DIR (CxHxW, fit)`.
    pub name: String,
    /// The shape of every image (train, validation and test agree).
    pub shape: ImageShape,
    /// Number of classes; labels are `0..classes`.
    pub classes: usize,
    /// The name of each class, label `i` is `class_names[i]` (`classes` names): the digits
    /// `"0"`..`"9"` for MNIST and IDX, CIFAR-10's ten names, the sorted folder names of an
    /// image folder. Recorded with every trained model.
    pub class_names: Vec<String>,
    /// The images training sees (validation already held out).
    pub train: Split,
    /// Held out of the training images; what a search ranks candidates by.
    pub validation: Split,
    /// Never seen during training or search; reported once per trained model.
    pub test: Split,
    /// Computed on `train` only, so no test or validation statistics leak into training.
    pub normalization: Normalization,
}

impl Dataset {
    /// Holds out validation images from `train_all` (stratified by class, seeded),
    /// applies the training limit and computes the normalisation on what is left.
    /// `name` names the data set in metrics and errors; there are `class_names.len()`
    /// classes, label `i` named `class_names[i]`.
    ///
    /// Errors with [`DataError::BadSplit`] when `options.validation_fraction` is not in
    /// [0, 1) or no training images are left.
    pub fn from_splits(
        name: String,
        class_names: Vec<String>,
        train_all: Split,
        test: Split,
        options: &SplitOptions,
    ) -> Result<Dataset, DataError> {
        let classes = class_names.len();
        if !(0.0..1.0).contains(&options.validation_fraction) {
            return Err(DataError::BadSplit {
                origin: name,
                message: format!(
                    "validation_fraction {} is not in [0, 1)",
                    options.validation_fraction
                ),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ 0x7661_6c69);
        let held_out = (train_all.len() as f64 * options.validation_fraction).round() as usize;
        let (train_idx, val_idx) =
            stratified_split(train_all.labels(), classes, held_out, &mut rng);
        let mut train_idx = train_idx;
        if let Some(limit) = options.train_limit {
            train_idx.truncate(limit);
        }
        if train_idx.is_empty() {
            return Err(DataError::BadSplit {
                origin: name,
                message: "no training images are left after the validation holdout".into(),
            });
        }
        let train = train_all.select(&train_idx);
        let validation = train_all.select(&val_idx);
        let normalization = Normalization::compute(&train);
        Ok(Dataset {
            name,
            shape: train_all.shape(),
            classes,
            class_names,
            train,
            validation,
            test,
            normalization,
        })
    }

    /// `(channels, height, width)` of every image, in pixels.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        (self.shape.channels, self.shape.height, self.shape.width)
    }

    /// The content id of what was loaded: 16 hex digits of a SHA-256 over the image
    /// shape, the class names and every split's images and labels, in order. Two loads
    /// share it exactly when training, validation and test would see the same images and
    /// labels, so it follows the split options (seed, validation share, training limit) as
    /// well as the files, wherever they lie. The [`crate::Source::identity`] string names
    /// the data for people; this tells whether a cached result was made on these bytes
    /// (the same folder with other images in it has another content id).
    pub fn content_id(&self) -> String {
        let mut hash = Sha256::new();
        for n in [self.shape.channels, self.shape.height, self.shape.width] {
            hash.update((n as u64).to_le_bytes());
        }
        for name in &self.class_names {
            // length-prefixed, so ["ab", "c"] and ["a", "bc"] differ
            hash.update((name.len() as u64).to_le_bytes());
            hash.update(name.as_bytes());
        }
        for split in [&self.train, &self.validation, &self.test] {
            hash.update((split.len() as u64).to_le_bytes());
            hash.update(&split.labels);
            hash.update(&split.images);
        }
        let digest = hash.finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Class names `"0"`, `"1"`, ... for data sets whose classes are numbered (MNIST, IDX).
pub(crate) fn numbered_classes(classes: usize) -> Vec<String> {
    (0..classes).map(|c| c.to_string()).collect()
}

/// Splits indices `0..labels.len()` into (rest, chosen) where `chosen` has `k` indices with
/// each class represented in proportion to its count. Both lists come out shuffled.
pub(crate) fn stratified_split(
    labels: &[u8],
    classes: usize,
    k: usize,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<usize>) {
    let n = labels.len();
    let k = k.min(n);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in labels.iter().enumerate() {
        if let Some(list) = by_class.get_mut(usize::from(l)) {
            list.push(i);
        }
    }
    // Quotas by largest remainder so they sum to k exactly.
    let mut quotas: Vec<usize> = by_class.iter().map(|c| c.len() * k / n.max(1)).collect();
    let mut short = k - quotas.iter().sum::<usize>();
    let mut order: Vec<usize> = (0..classes).collect();
    order.sort_by_key(|&c| std::cmp::Reverse((by_class[c].len() * k) % n.max(1)));
    for &c in order.iter().cycle().take(classes * 2) {
        if short == 0 {
            break;
        }
        if quotas[c] < by_class[c].len() {
            quotas[c] += 1;
            short -= 1;
        }
    }
    let mut rest = Vec::with_capacity(n - k);
    let mut chosen = Vec::with_capacity(k);
    for (list, quota) in by_class.iter_mut().zip(quotas) {
        list.shuffle(rng);
        chosen.extend_from_slice(&list[..quota]);
        rest.extend_from_slice(&list[quota..]);
    }
    rest.shuffle(rng);
    chosen.shuffle(rng);
    (rest, chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_keeps_class_balance() {
        let labels: Vec<u8> = (0..10u8).flat_map(|c| std::iter::repeat_n(c, 50)).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (rest, chosen) = stratified_split(&labels, 10, 100, &mut rng);
        assert_eq!(chosen.len(), 100);
        assert_eq!(rest.len(), 400);
        let mut counts = [0; 10];
        for &i in &chosen {
            counts[usize::from(labels[i])] += 1;
        }
        assert_eq!(counts, [10; 10]);
        let mut all: Vec<usize> = rest.iter().chain(&chosen).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..500).collect::<Vec<_>>());
    }

    #[test]
    fn stratified_split_hits_exact_count_with_uneven_classes() {
        let labels: Vec<u8> = [0u8; 7]
            .iter()
            .chain(&[1u8; 5])
            .chain(&[2u8; 3])
            .copied()
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (rest, chosen) = stratified_split(&labels, 3, 4, &mut rng);
        assert_eq!(chosen.len(), 4);
        assert_eq!(rest.len(), 11);
    }

    #[test]
    fn normalization_of_constant_channel_has_unit_std() {
        let shape = ImageShape {
            channels: 2,
            height: 1,
            width: 2,
        };
        let split = Split::new(shape, vec![0, 255, 51, 51, 255, 0, 51, 51], vec![0, 0]).unwrap();
        let norm = Normalization::compute(&split);
        assert!((norm.mean[0] - 0.5).abs() < 1e-6);
        assert!((norm.std[0] - 0.5).abs() < 1e-6);
        assert!((norm.mean[1] - 0.2).abs() < 1e-6);
        assert_eq!(norm.std[1], 1.0);
        let mut out = [0f32; 4];
        norm.apply(split.image(0), &mut out);
        assert_eq!(out[0], -1.0);
        assert_eq!(out[1], 1.0);
    }

    /// 40 one-pixel images of 4 classes, pixel = index; the test split is the first 4.
    fn tiny(train: Split, seed: u64) -> Dataset {
        let test = train.select(&[0, 1, 2, 3]);
        let options = SplitOptions {
            seed,
            validation_fraction: 0.25,
            train_limit: None,
        };
        Dataset::from_splits("tiny".into(), numbered_classes(4), train, test, &options).unwrap()
    }

    #[test]
    fn content_id_follows_images_labels_and_split() {
        let shape = ImageShape {
            channels: 1,
            height: 1,
            width: 1,
        };
        let pixels: Vec<u8> = (0..40).collect();
        let labels: Vec<u8> = (0..40).map(|i| i % 4).collect();
        let split = |p: &[u8], l: &[u8]| Split::new(shape, p.to_vec(), l.to_vec()).unwrap();
        let base = tiny(split(&pixels, &labels), 1).content_id();
        assert_eq!(base.len(), 16);
        assert!(base.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(tiny(split(&pixels, &labels), 1).content_id(), base);
        // another split of the same files holds out other validation images
        assert_ne!(tiny(split(&pixels, &labels), 2).content_id(), base);
        let mut one_pixel = pixels.clone();
        one_pixel[39] = 200;
        assert_ne!(tiny(split(&one_pixel, &labels), 1).content_id(), base);
        let mut one_label = labels.clone();
        one_label[39] = 0;
        assert_ne!(tiny(split(&pixels, &one_label), 1).content_id(), base);
        // the name is for people: the same bytes under another name are the same data
        let renamed = Dataset {
            name: "elsewhere".into(),
            ..tiny(split(&pixels, &labels), 1)
        };
        assert_eq!(renamed.content_id(), base);
    }
}
