//! Listing an image folder: its layout (`DIR/<class>/` or `DIR/{train,test}/<class>/`), the
//! classes (folder names, sorted), the image files of each, and a fingerprint of them all
//! (relative paths, sizes, modification times) that keys the cache.

use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::DataError;

/// The file name extensions read as images (compared case-insensitively).
pub(crate) const EXTENSIONS: [&str; 3] = ["jpg", "jpeg", "png"];

/// One image file and its class.
#[derive(Debug, Clone)]
pub(crate) struct ImageFile {
    pub path: PathBuf,
    pub label: u8,
}

/// The files of one part of the folder: `train`, `test`, or the whole folder.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    /// The part's folder (`DIR`, `DIR/train`, `DIR/test`).
    pub dir: PathBuf,
    /// Image files, by class then by file name.
    pub files: Vec<ImageFile>,
}

/// What [`scan`] found.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    /// Class folder names, sorted; label `i` is `class_names[i]`.
    pub class_names: Vec<String>,
    /// `[all]`, or `[train, test]` when the folder gives the split.
    pub parts: Vec<Part>,
    /// SHA-256 (hex) of every image file's relative path, size and modification time.
    pub fingerprint: String,
}

/// Lists `dir`. Hidden entries (names starting with `.`, such as the cache folder) and files
/// with other extensions are ignored.
///
/// Errors: [`DataError::Io`] for a folder or file that cannot be read or stat'ed (naming it),
/// [`DataError::Layout`] when there are no class folders, a name is not UTF-8, there are more
/// than 256 classes or train and test disagree on the classes, [`DataError::TooFewClasses`]
/// for one class, [`DataError::EmptyClass`] for a class folder with no image file.
pub(crate) fn scan(dir: &Path) -> Result<Listing, DataError> {
    let subdirs = subfolders(dir)?;
    let has = |name: &str| subdirs.iter().any(|s| s == name);
    let part_dirs = if has("train") && has("test") {
        vec![dir.join("train"), dir.join("test")]
    } else {
        vec![dir.to_path_buf()]
    };
    let class_names = classes_of(&part_dirs[0])?;
    if let Some(test) = part_dirs.get(1) {
        let test_classes = classes_of(test)?;
        if test_classes != class_names {
            return Err(DataError::Layout {
                path: test.clone(),
                message: format!(
                    "the test classes ({}) differ from the training classes ({}); both folders need the same class folders",
                    test_classes.join(", "),
                    class_names.join(", ")
                ),
            });
        }
    }
    let mut hasher = Sha256::new();
    let mut parts = Vec::new();
    for part_dir in part_dirs {
        let mut files = Vec::new();
        for (label, class) in class_names.iter().enumerate() {
            let class_dir = part_dir.join(class);
            for (path, meta) in images_in(&class_dir)? {
                let relative = path.strip_prefix(dir).unwrap_or(&path);
                hasher.update(relative.to_string_lossy().as_bytes());
                hasher.update([0]);
                hasher.update(meta.len().to_le_bytes());
                let mtime = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .unwrap_or_default();
                hasher.update(mtime.as_nanos().to_le_bytes());
                // At most 256 classes (checked in classes_of), so the label fits.
                let label = u8::try_from(label).unwrap_or(u8::MAX);
                files.push(ImageFile { path, label });
            }
        }
        parts.push(Part {
            dir: part_dir,
            files,
        });
    }
    let fingerprint = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(Listing {
        class_names,
        parts,
        fingerprint,
    })
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DataError + '_ {
    move |error| DataError::Io {
        path: path.to_path_buf(),
        error,
    }
}

/// The entries of `dir` that are not hidden, with their metadata (symbolic links followed).
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf, Metadata)>, DataError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
        let entry = entry.map_err(io_error(dir))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            return Err(DataError::Layout {
                path,
                message: "the name is not UTF-8; rename it".into(),
            });
        };
        if name.starts_with('.') {
            continue;
        }
        let meta = std::fs::metadata(&path).map_err(io_error(&path))?;
        out.push((name, path, meta));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

fn subfolders(dir: &Path) -> Result<Vec<String>, DataError> {
    Ok(entries(dir)?
        .into_iter()
        .filter(|(_, _, meta)| meta.is_dir())
        .map(|(name, _, _)| name)
        .collect())
}

/// The class folder names under `dir`, sorted; at least two, at most 256.
fn classes_of(dir: &Path) -> Result<Vec<String>, DataError> {
    let classes = subfolders(dir)?;
    match classes.len() {
        0 => Err(DataError::Layout {
            path: dir.to_path_buf(),
            message: "no class folders: expected one folder of images per class (DIR/<class>/*.jpg, *.jpeg, *.png), or DIR/train/<class>/... and DIR/test/<class>/...".into(),
        }),
        1 => Err(DataError::TooFewClasses {
            path: dir.to_path_buf(),
            found: classes,
        }),
        n if n > 256 => Err(DataError::Layout {
            path: dir.to_path_buf(),
            message: format!("{n} class folders; kiln supports at most 256 classes"),
        }),
        _ => Ok(classes),
    }
}

/// The image files (by extension) in `class_dir`, sorted by name; at least one.
fn images_in(class_dir: &Path) -> Result<Vec<(PathBuf, Metadata)>, DataError> {
    let mut images = Vec::new();
    let mut other = 0;
    for (_, path, meta) in entries(class_dir)? {
        let is_image = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)));
        if is_image && meta.is_file() {
            images.push((path, meta));
        } else {
            other += 1;
        }
    }
    if images.is_empty() {
        return Err(DataError::EmptyClass {
            path: class_dir.to_path_buf(),
            detail: match other {
                0 => " (the folder is empty)".into(),
                n => format!(" ({n} other entries ignored)"),
            },
        });
    }
    Ok(images)
}
