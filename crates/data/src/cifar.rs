//! CIFAR-10's binary format: records of one label byte then 3x32x32 pixels (R, G, B planes).

use std::path::Path;

use crate::io::read_bytes;
use crate::{DataError, Dataset, ImageShape, Split, SplitOptions};

const SHAPE: ImageShape = ImageShape {
    channels: 3,
    height: 32,
    width: 32,
};
const CLASSES: usize = 10;
/// CIFAR-10's classes in label order (`batches.meta.txt`).
const CLASS_NAMES: [&str; CLASSES] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
const TEST_FILE: &str = "test_batch.bin";

/// Loads CIFAR-10 from `dir` (or `dir/cifar-10-batches-bin`, as the archive unpacks):
/// the five `data_batch_N.bin` are the training images, `test_batch.bin` the test split.
/// Images are `3 x 32 x 32` `u8` (RGB planes, CHW), ten classes.
///
/// Errors: as for [`read_batch`], naming the batch file, and [`DataError::BadSplit`] for
/// split options that cannot work.
pub fn load_cifar10(dir: &Path, options: &SplitOptions) -> Result<Dataset, DataError> {
    let nested = dir.join("cifar-10-batches-bin");
    let base = if !dir.join(TEST_FILE).exists() && nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    };
    let mut train_images = Vec::new();
    let mut train_labels = Vec::new();
    for name in TRAIN_FILES {
        let (images, labels) = read_batch(&base.join(name))?;
        train_images.extend(images);
        train_labels.extend(labels);
    }
    let (test_images, test_labels) = read_batch(&base.join(TEST_FILE))?;
    let train = split(train_images, train_labels, &base.join(TRAIN_FILES[0]))?;
    let test = split(test_images, test_labels, &base.join(TEST_FILE))?;
    Dataset::from_splits(
        format!("cifar10:{}", dir.display()),
        CLASS_NAMES.iter().map(|n| n.to_string()).collect(),
        train,
        test,
        options,
    )
}

fn split(images: Vec<u8>, labels: Vec<u8>, path: &Path) -> Result<Split, DataError> {
    Split::new(SHAPE, images, labels).ok_or_else(|| DataError::ShapeMismatch {
        path: path.to_path_buf(),
        message: "pixel count does not match record count".into(),
    })
}

/// Reads one batch file: (pixels, labels). The pixels are the N images of `3 x 32 x 32` `u8`
/// back to back, each in CHW order (R, G, B planes); the labels are N classes in 0..10.
///
/// Errors: [`DataError::Io`] (unreadable), [`DataError::Truncated`] (empty, or not a whole
/// number of 3,073-byte records), [`DataError::LabelOutOfRange`] (label byte 10 or more).
pub fn read_batch(path: &Path) -> Result<(Vec<u8>, Vec<u8>), DataError> {
    let bytes = read_bytes(path)?;
    let record = 1 + SHAPE.len();
    if bytes.is_empty() {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            message: "the file is empty".into(),
        });
    }
    if bytes.len() % record != 0 {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            message: format!(
                "{} bytes is not a whole number of {record}-byte records (1 label byte + {} image); the last record has {} bytes",
                bytes.len(),
                SHAPE,
                bytes.len() % record
            ),
        });
    }
    let n = bytes.len() / record;
    let mut images = Vec::with_capacity(n * SHAPE.len());
    let mut labels = Vec::with_capacity(n);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        if usize::from(rec[0]) >= CLASSES {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                record: i,
                label: u64::from(rec[0]),
                classes: CLASSES,
            });
        }
        labels.push(rec[0]);
        images.extend_from_slice(&rec[1..]);
    }
    Ok((images, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize, first_label: u8) -> Vec<u8> {
        let mut v = Vec::new();
        for i in 0..n {
            v.push((first_label as usize + i) as u8 % 10);
            // Red plane 200, green 100, blue 0.
            v.extend(std::iter::repeat_n(200u8, 1024));
            v.extend(std::iter::repeat_n(100u8, 1024));
            v.extend(std::iter::repeat_n(0u8, 1024));
        }
        v
    }

    fn write_set(dir: &Path) {
        for (i, name) in TRAIN_FILES.iter().enumerate() {
            std::fs::write(dir.join(name), batch(4, i as u8)).unwrap();
        }
        std::fs::write(dir.join(TEST_FILE), batch(3, 0)).unwrap();
    }

    #[test]
    fn loads_batches_from_dir_or_archive_subdir() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("cifar-10-batches-bin");
        std::fs::create_dir(&nested).unwrap();
        write_set(&nested);
        let data = load_cifar10(dir.path(), &SplitOptions::default()).unwrap();
        assert_eq!(data.input_shape(), (3, 32, 32));
        assert_eq!(data.test.len(), 3);
        assert_eq!(data.train.len() + data.validation.len(), 20);
        assert_eq!(data.test.image(0)[0], 200);
        assert_eq!(data.test.image(0)[1024], 100);
        assert_eq!(data.test.image(0)[3071], 0);
        let norm = &data.normalization;
        assert!((norm.mean[0] - 200.0 / 255.0).abs() < 1e-5);
        assert!((norm.mean[1] - 100.0 / 255.0).abs() < 1e-5);
        assert_eq!(norm.mean[2], 0.0);
    }

    #[test]
    fn missing_batch_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path());
        std::fs::remove_file(dir.path().join("data_batch_3.bin")).unwrap();
        let err = load_cifar10(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }), "{err:?}");
        assert!(err.to_string().contains("data_batch_3.bin"), "{err}");
    }

    #[test]
    fn truncated_batch_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path());
        let mut bytes = batch(3, 0);
        bytes.truncate(bytes.len() - 100);
        std::fs::write(dir.path().join(TEST_FILE), bytes).unwrap();
        let err = load_cifar10(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        assert!(err.to_string().contains("test_batch.bin"), "{err}");
    }

    #[test]
    fn label_out_of_range_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path());
        let mut bytes = batch(4, 0);
        bytes[2 * 3073] = 10;
        std::fs::write(dir.path().join("data_batch_2.bin"), bytes).unwrap();
        let err = load_cifar10(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    record: 2,
                    label: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("data_batch_2.bin"), "{err}");
    }
}
