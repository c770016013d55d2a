//! IDX files (`*-ubyte`, as MNIST and Fashion-MNIST ship them), gzip'd or not.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::dataset::numbered_classes;
use crate::io::read_maybe_gzipped;
use crate::{DataError, Dataset, ImageShape, Split, SplitOptions};

/// IDX magic: two zero bytes, type 0x08 (unsigned byte), then the number of dimensions.
const IMAGES_MAGIC: u32 = 0x0000_0803;
const LABELS_MAGIC: u32 = 0x0000_0801;

/// The class count [`load_idx`] assumes: MNIST and Fashion-MNIST both have ten classes.
pub const IDX_CLASSES: usize = 10;

/// Loads `train-*` and `t10k-*` IDX files from `dir` (MNIST, Fashion-MNIST), ten classes.
/// The test files are the test split; validation is held out of the training files.
/// Images are one channel (`1 x H x W`, `u8`), H and W as the files say.
///
/// Errors ([`DataError`], naming the file): a missing file ([`DataError::Io`]), a file shorter
/// than its header promises or a cut gzip stream ([`DataError::Truncated`]), a wrong magic
/// number ([`DataError::BadMagic`]), a label out of range ([`DataError::LabelOutOfRange`]),
/// label and image counts or train and test image sizes that differ
/// ([`DataError::ShapeMismatch`]), or split options that cannot work ([`DataError::BadSplit`]).
pub fn load_idx(dir: &Path, options: &SplitOptions) -> Result<Dataset, DataError> {
    load_idx_with_classes(dir, IDX_CLASSES, options)
}

/// [`load_idx`] for IDX data sets with another class count (every label must be below
/// `classes`); errors as for [`load_idx`].
pub fn load_idx_with_classes(
    dir: &Path,
    classes: usize,
    options: &SplitOptions,
) -> Result<Dataset, DataError> {
    let train_images = find(dir, "train-images-idx3-ubyte")?;
    let train_labels = find(dir, "train-labels-idx1-ubyte")?;
    let test_images = find(dir, "t10k-images-idx3-ubyte")?;
    let test_labels = find(dir, "t10k-labels-idx1-ubyte")?;
    let train = read_pair(&train_images, &train_labels, classes)?;
    let test = read_pair(&test_images, &test_labels, classes)?;
    if test.shape() != train.shape() {
        return Err(DataError::ShapeMismatch {
            path: test_images,
            message: format!(
                "test images are {}, training images ({}) are {}",
                test.shape(),
                train_images.display(),
                train.shape()
            ),
        });
    }
    Dataset::from_splits(
        format!("idx:{}", dir.display()),
        numbered_classes(classes),
        train,
        test,
        options,
    )
}

fn read_pair(images: &Path, labels: &Path, classes: usize) -> Result<Split, DataError> {
    let (shape, pixels, count) = read_idx_images(images)?;
    let label_values = read_idx_labels(labels, classes)?;
    if label_values.len() != count {
        return Err(DataError::ShapeMismatch {
            path: labels.to_path_buf(),
            message: format!(
                "{} labels, but {} holds {} images",
                label_values.len(),
                images.display(),
                count
            ),
        });
    }
    Split::new(shape, pixels, label_values).ok_or_else(|| DataError::ShapeMismatch {
        path: images.to_path_buf(),
        message: "pixel count does not match image count".into(),
    })
}

/// `stem` in `dir`, or `stem.gz`, or the `train-images.idx3-ubyte` spelling of either.
fn find(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    let dotted = stem.replacen("-idx", ".idx", 1);
    let candidates = [
        stem.to_string(),
        format!("{stem}.gz"),
        dotted.clone(),
        format!("{dotted}.gz"),
    ];
    for name in &candidates {
        let path = dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(DataError::Io {
        path: dir.join(stem),
        error: std::io::Error::new(
            ErrorKind::NotFound,
            format!("not found (also looked for {})", candidates[1..].join(", ")),
        ),
    })
}

/// Reads an IDX image file (`[N, H, W]` of u8, gzip'd or not): returns the shape (one
/// channel), the pixels (N images of H x W, back to back) and N.
///
/// Errors: [`DataError::Io`] (unreadable), [`DataError::Truncated`] (header or pixels cut
/// short, or a cut gzip stream), [`DataError::BadMagic`] (not `0x00000803`),
/// [`DataError::ShapeMismatch`] (more bytes than the header promises).
pub fn read_idx_images(path: &Path) -> Result<(ImageShape, Vec<u8>, usize), DataError> {
    let bytes = read_maybe_gzipped(path)?;
    let (dims, offset) = header(
        &bytes,
        path,
        IMAGES_MAGIC,
        "IDX images: unsigned bytes, 3 dimensions",
    )?;
    let [n, h, w] = dims[..] else {
        unreachable!("header() checked the dimension count")
    };
    let shape = ImageShape {
        channels: 1,
        height: h,
        width: w,
    };
    let pixels = payload(
        &bytes,
        offset,
        n * h * w,
        path,
        &format!("{n} images of {h}x{w}"),
    )?;
    Ok((shape, pixels, n))
}

/// Reads an IDX label file (`[N]` of u8, gzip'd or not); every label must be below `classes`.
///
/// Errors as for [`read_idx_images`] (the magic is `0x00000801`), plus
/// [`DataError::LabelOutOfRange`] with the record index of the first bad label.
pub fn read_idx_labels(path: &Path, classes: usize) -> Result<Vec<u8>, DataError> {
    let bytes = read_maybe_gzipped(path)?;
    let (dims, offset) = header(
        &bytes,
        path,
        LABELS_MAGIC,
        "IDX labels: unsigned bytes, 1 dimension",
    )?;
    let n = dims[0];
    let labels = payload(&bytes, offset, n, path, &format!("{n} labels"))?;
    if let Some((record, &label)) = labels
        .iter()
        .enumerate()
        .find(|&(_, &l)| usize::from(l) >= classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            record,
            label: u64::from(label),
            classes,
        });
    }
    Ok(labels)
}

/// Checks the magic and returns the dimensions and where the data starts.
fn header(
    bytes: &[u8],
    path: &Path,
    magic: u32,
    kind: &'static str,
) -> Result<(Vec<usize>, usize), DataError> {
    let ndims = (magic & 0xff) as usize;
    let found = be_u32(bytes, 0).ok_or_else(|| DataError::Truncated {
        path: path.to_path_buf(),
        message: format!(
            "{} bytes, shorter than the 4-byte IDX magic number",
            bytes.len()
        ),
    })?;
    if found != magic {
        return Err(DataError::BadMagic {
            path: path.to_path_buf(),
            expected: magic,
            found,
            kind,
        });
    }
    let dims = (0..ndims)
        .map(|d| be_u32(bytes, 4 + 4 * d).map(|v| v as usize))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| DataError::Truncated {
            path: path.to_path_buf(),
            message: format!("the header of {ndims} dimensions is cut off"),
        })?;
    Ok((dims, 4 + 4 * ndims))
}

fn payload(
    bytes: &[u8],
    offset: usize,
    expected: usize,
    path: &Path,
    what: &str,
) -> Result<Vec<u8>, DataError> {
    let actual = bytes.len() - offset;
    if actual < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            message: format!(
                "the header promises {what} ({expected} bytes), the file holds {actual}"
            ),
        });
    }
    if actual > expected {
        return Err(DataError::ShapeMismatch {
            path: path.to_path_buf(),
            message: format!(
                "the header promises {what} ({expected} bytes), the file holds {actual}: {} bytes too many",
                actual - expected
            ),
        });
    }
    Ok(bytes[offset..].to_vec())
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let b = bytes.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn idx_images(n: u32, h: u32, w: u32, fill: u8) -> Vec<u8> {
        let mut v = IMAGES_MAGIC.to_be_bytes().to_vec();
        for d in [n, h, w] {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend(std::iter::repeat_n(fill, (n * h * w) as usize));
        v
    }

    fn idx_labels(labels: &[u8]) -> Vec<u8> {
        let mut v = LABELS_MAGIC.to_be_bytes().to_vec();
        v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
        v.extend_from_slice(labels);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    /// A little MNIST-shaped data set: 20 train and 10 test images of 4x5.
    fn write_set(dir: &Path, gzip: bool) {
        let labels: Vec<u8> = (0..20).map(|i| (i % 10) as u8).collect();
        let files = [
            ("train-images-idx3-ubyte", idx_images(20, 4, 5, 7)),
            ("train-labels-idx1-ubyte", idx_labels(&labels)),
            ("t10k-images-idx3-ubyte", idx_images(10, 4, 5, 9)),
            ("t10k-labels-idx1-ubyte", idx_labels(&labels[..10])),
        ];
        for (name, bytes) in files {
            if gzip {
                std::fs::write(dir.join(format!("{name}.gz")), gz(&bytes)).unwrap();
            } else {
                std::fs::write(dir.join(name), bytes).unwrap();
            }
        }
    }

    #[test]
    fn loads_plain_and_gzipped_sets() {
        for gzip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            write_set(dir.path(), gzip);
            let data = load_idx(dir.path(), &SplitOptions::default()).unwrap();
            assert_eq!(data.input_shape(), (1, 4, 5));
            assert_eq!(data.classes, 10);
            assert_eq!(data.test.len(), 10);
            assert_eq!(data.train.len() + data.validation.len(), 20);
            assert_eq!(data.validation.len(), 2);
            assert_eq!(data.test.image(3), &[9u8; 20][..]);
        }
    }

    #[test]
    fn missing_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), false);
        std::fs::remove_file(dir.path().join("t10k-labels-idx1-ubyte")).unwrap();
        let err = load_idx(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Io { .. }));
        assert!(err.to_string().contains("t10k-labels-idx1-ubyte"), "{err}");
    }

    #[test]
    fn wrong_magic_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), false);
        // A label file where the image file should be.
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte"),
            idx_labels(&[1, 2]),
        )
        .unwrap();
        let err = load_idx(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::BadMagic {
                    found: 0x801,
                    expected: 0x803,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");
    }

    #[test]
    fn truncated_files_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), false);
        let path = dir.path().join("train-images-idx3-ubyte");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, bytes).unwrap();
        let err = load_idx(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        assert!(err.to_string().contains("train-images-idx3-ubyte"), "{err}");

        // Cut inside the header, and a gzip stream cut short.
        std::fs::write(&path, &IMAGES_MAGIC.to_be_bytes()[..]).unwrap();
        let err = load_idx(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        std::fs::remove_file(&path).unwrap();
        let zipped = gz(&idx_images(20, 4, 5, 7));
        std::fs::write(
            dir.path().join("train-images-idx3-ubyte.gz"),
            &zipped[..zipped.len() / 2],
        )
        .unwrap();
        let err = load_idx(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::Truncated { .. }), "{err:?}");
        assert!(
            err.to_string().contains("train-images-idx3-ubyte.gz"),
            "{err}"
        );
    }

    #[test]
    fn label_out_of_range_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), false);
        let mut labels: Vec<u8> = (0..10).collect();
        labels[6] = 12;
        std::fs::write(
            dir.path().join("t10k-labels-idx1-ubyte"),
            idx_labels(&labels),
        )
        .unwrap();
        let err = load_idx(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    record: 6,
                    label: 12,
                    classes: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("t10k-labels-idx1-ubyte"), "{err}");
    }

    #[test]
    fn shape_mismatches_are_reported() {
        // Test images of another size than the training images.
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), false);
        std::fs::write(
            dir.path().join("t10k-images-idx3-ubyte"),
            idx_images(10, 5, 4, 0),
        )
        .unwrap();
        let err = load_idx(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::ShapeMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains("t10k-images-idx3-ubyte"), "{err}");

        // Fewer labels than images.
        let dir = tempfile::tempdir().unwrap();
        write_set(dir.path(), false);
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte"),
            idx_labels(&[0; 19]),
        )
        .unwrap();
        let err = load_idx(dir.path(), &SplitOptions::default()).unwrap_err();
        assert!(matches!(err, DataError::ShapeMismatch { .. }), "{err:?}");
        assert!(err.to_string().contains("train-labels-idx1-ubyte"), "{err}");
    }
}
