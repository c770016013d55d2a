//! Class-folder image data sets: `DIR/<class>/*.{jpg,jpeg,png}` (torchvision's ImageFolder
//! layout), or `DIR/train/<class>/...` and `DIR/test/<class>/...` when the folder gives the
//! split. Images are decoded with the `image` crate (in parallel), fitted to one resolution
//! and channel count, and cached on disk ([`ImageOptions::cache`]).

mod cache;
mod decode;
mod scan;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::dataset::stratified_split;
use crate::{DataError, Dataset, ImageShape, Split, SplitOptions};
use decode::{Decoded, Probe, Target};
use scan::Listing;

/// The largest side of the default resolution, in pixels.
pub const MAX_DEFAULT_SIDE: usize = 224;
/// Share of the images held out as the test split when the folder has no `train`/`test`.
pub const IMAGES_TEST_FRACTION: f64 = 0.2;
/// Largest share of image files that may fail to decode (skipped); beyond it the folder is
/// refused ([`DataError::TooManyBadFiles`]).
pub const MAX_BAD_FRACTION: f64 = 0.01;

/// An image size in pixels, written `HxW` (e.g. `96x96`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Resolution {
    /// Rows, in pixels.
    pub height: usize,
    /// Columns, in pixels.
    pub width: usize,
}

impl fmt::Display for Resolution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.height, self.width)
    }
}

impl FromStr for Resolution {
    type Err = String;

    /// `HxW` (`96x128`) or `N` for `NxN`; each side 1..=4096.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}`: expected HxW in pixels, e.g. 96x96 (each side 1..4096)");
        let sides: Vec<usize> = s
            .split('x')
            .map(|d| d.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        let (height, width) = match sides[..] {
            [n] => (n, n),
            [h, w] => (h, w),
            _ => return Err(bad()),
        };
        if !(1..=4096).contains(&height) || !(1..=4096).contains(&width) {
            return Err(bad());
        }
        Ok(Resolution { height, width })
    }
}

/// How an image of another aspect ratio is fitted to the resolution.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fit {
    /// Resize so the image covers the resolution, then cut the centre (nothing added, the
    /// edges of the longer side lost).
    #[default]
    Crop,
    /// Resize so the whole image fits, centred on black bars (nothing lost).
    Letterbox,
}

impl fmt::Display for Fit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fit::Crop => "crop",
            Fit::Letterbox => "letterbox",
        })
    }
}

impl FromStr for Fit {
    type Err = String;

    /// `crop` or `letterbox`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "crop" => Ok(Fit::Crop),
            "letterbox" => Ok(Fit::Letterbox),
            _ => Err(format!("`{s}`: expected crop or letterbox")),
        }
    }
}

/// How an image folder is read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageOptions {
    /// Every image is fitted to this size. `None`: the median height and width of the images,
    /// scaled down (aspect kept) so the longer side is at most [`MAX_DEFAULT_SIDE`], each
    /// rounded to a multiple of 8.
    pub resolution: Option<Resolution>,
    /// 1 (grey) or 3 (RGB); images of the other kind are converted. `None`: 1 when every
    /// image is grey, else 3.
    pub channels: Option<usize>,
    /// Crop or letterbox images of another aspect ratio.
    pub fit: Fit,
    /// Read and write the decoded images in `DIR/.kiln-cache/` (a folder that cannot be
    /// written is said and skipped).
    pub cache: bool,
}

impl Default for ImageOptions {
    fn default() -> Self {
        ImageOptions {
            resolution: None,
            channels: None,
            fit: Fit::Crop,
            cache: true,
        }
    }
}

impl ImageOptions {
    /// The options with the cache on.
    pub fn new(resolution: Option<Resolution>, channels: Option<usize>, fit: Fit) -> Self {
        ImageOptions {
            resolution,
            channels,
            fit,
            cache: true,
        }
    }

    /// The settings in words: `resolution 96x96, channels auto, crop`.
    pub fn describe(&self) -> String {
        let or_auto = |v: Option<String>| v.unwrap_or_else(|| "auto".into());
        format!(
            "resolution {}, channels {}, {}",
            or_auto(self.resolution.map(|r| r.to_string())),
            or_auto(self.channels.map(|c| c.to_string())),
            self.fit
        )
    }
}

/// What the image loader reports while it works.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageEvent {
    /// `done` of `total` images decoded.
    Progress {
        /// Images decoded so far.
        done: usize,
        /// Images to decode.
        total: usize,
    },
    /// Something the user should know (a skipped file, a conversion, upscaling); the data
    /// set still loads.
    Warning(String),
    /// The decoded images came from this cache file; nothing was decoded.
    CacheLoaded(PathBuf),
    /// The folder changed since this cache file was written; decoding again.
    CacheStale(PathBuf),
    /// The decoded images were written to this cache file.
    CacheWritten(PathBuf),
    /// The cache file could not be read or written (why); loading goes on without it.
    CacheFailed(PathBuf, String),
}

/// The decoded folder before the validation split: what the cache holds.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub shape: ImageShape,
    pub fit: Fit,
    pub class_names: Vec<String>,
    /// `[all]` or `[train, test]`.
    pub parts: Vec<Split>,
    /// Warnings of the decoding run, said again when the cache is used.
    pub notes: Vec<String>,
}

/// Reads the image folder `dir` into a [`Dataset`] (classes = the sorted class folder names;
/// without `train`/`test` folders, [`IMAGES_TEST_FRACTION`] of each class is held out as test
/// with `split.seed`), reporting progress and warnings to `report`.
///
/// Files that are not images or do not decode are skipped with a warning naming each, as
/// long as they are at most [`MAX_BAD_FRACTION`] of the files. Nothing is written unless the
/// whole folder loaded.
///
/// Errors: [`DataError::Io`] (a folder or file that cannot be read, e.g. no permission),
/// [`DataError::Layout`] (no class folders, train and test classes differ, more than 256
/// classes, channels not 1 or 3), [`DataError::TooFewClasses`], [`DataError::EmptyClass`],
/// [`DataError::TooManyBadFiles`], [`DataError::BadSplit`].
pub fn load_images(
    dir: &Path,
    options: &ImageOptions,
    split: &SplitOptions,
    report: &mut dyn FnMut(ImageEvent),
) -> Result<Dataset, DataError> {
    if let Some(c) = options.channels.filter(|c| ![1, 3].contains(c)) {
        return Err(DataError::Layout {
            path: dir.to_path_buf(),
            message: format!("{c} channels asked for; images have 1 (grey) or 3 (RGB)"),
        });
    }
    let listing = scan::scan(dir)?;
    let cache_path = cache::path(dir, options);
    let cached = match options.cache {
        true => cache::read(&cache_path, &listing.fingerprint),
        false => cache::Read::Missing,
    };
    let pool = match cached {
        cache::Read::Hit(pool) => {
            report(ImageEvent::CacheLoaded(cache_path));
            pool.notes
                .iter()
                .for_each(|n| report(ImageEvent::Warning(n.clone())));
            pool
        }
        other => {
            match other {
                cache::Read::Stale => report(ImageEvent::CacheStale(cache_path.clone())),
                cache::Read::Corrupt(why) => {
                    report(ImageEvent::CacheFailed(cache_path.clone(), why))
                }
                _ => {}
            }
            let pool = decode_folder(dir, &listing, options, report)?;
            if options.cache {
                match cache::write(&cache_path, &listing.fingerprint, &pool) {
                    Ok(()) => report(ImageEvent::CacheWritten(cache_path)),
                    Err(e) => report(ImageEvent::CacheFailed(cache_path, e.to_string())),
                }
            }
            pool
        }
    };
    into_dataset(dir, pool, split)
}

fn into_dataset(dir: &Path, pool: Pool, split: &SplitOptions) -> Result<Dataset, DataError> {
    let name = format!("images:{} ({}, {})", dir.display(), pool.shape, pool.fit);
    let mut parts = pool.parts.into_iter();
    let (Some(first), second) = (parts.next(), parts.next()) else {
        return Err(DataError::Layout {
            path: dir.to_path_buf(),
            message: "no images".into(),
        });
    };
    let (train, test) = match second {
        Some(test) => (first, test),
        None => {
            let held = ((first.len() as f64 * IMAGES_TEST_FRACTION).round() as usize).max(1);
            let mut rng = ChaCha8Rng::seed_from_u64(split.seed);
            let classes = pool.class_names.len();
            let (train_idx, test_idx) = stratified_split(first.labels(), classes, held, &mut rng);
            (first.select(&train_idx), first.select(&test_idx))
        }
    };
    Dataset::from_splits(name, pool.class_names, train, test, split)
}

/// Probes every file, settles the resolution and channels, decodes in parallel.
fn decode_folder(
    dir: &Path,
    listing: &Listing,
    options: &ImageOptions,
    report: &mut dyn FnMut(ImageEvent),
) -> Result<Pool, DataError> {
    let files: Vec<&scan::ImageFile> = listing.parts.iter().flat_map(|p| &p.files).collect();
    let probes: Vec<Result<Probe, String>> = files
        .par_iter()
        .map(|f| decode::probe(&f.path))
        .collect::<Result<_, _>>()?;
    let mut bad: Vec<(usize, String)> = probes
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.as_ref().err().map(|e| (i, e.clone())))
        .collect();
    check_bad(dir, &files, &bad)?;
    let good: Vec<Probe> = probes
        .iter()
        .filter_map(|p| p.as_ref().ok())
        .copied()
        .collect();
    let mut notes = Vec::new();
    let grey = good.iter().filter(|p| p.channels == 1).count();
    let channels = options
        .channels
        .unwrap_or(if grey == good.len() { 1 } else { 3 });
    if grey > 0 && grey < good.len() {
        notes.push(format!(
            "mixed channel counts: {grey} grey and {} colour images; all converted to {}",
            good.len() - grey,
            if channels == 1 {
                "grey (1 channel)"
            } else {
                "RGB (3 channels)"
            }
        ));
    }
    let target = Target {
        resolution: options
            .resolution
            .unwrap_or_else(|| default_resolution(&good)),
        channels,
        fit: options.fit,
    };
    let todo: Vec<usize> = (0..files.len()).filter(|&i| probes[i].is_ok()).collect();
    let mut decoded: Vec<Option<Decoded>> = vec![None; files.len()];
    report(ImageEvent::Progress {
        done: 0,
        total: todo.len(),
    });
    for (n, chunk) in todo.chunks(64).enumerate() {
        let out: Vec<Result<Decoded, String>> = chunk
            .par_iter()
            .map(|&i| decode::decode(&files[i].path, &target))
            .collect::<Result<_, _>>()?;
        for (&i, d) in chunk.iter().zip(out) {
            match d {
                Ok(d) => decoded[i] = Some(d),
                Err(e) => bad.push((i, e)),
            }
        }
        report(ImageEvent::Progress {
            done: (n * 64 + chunk.len()).min(todo.len()),
            total: todo.len(),
        });
    }
    check_bad(dir, &files, &bad)?;
    bad.sort();
    for (i, why) in &bad {
        notes.push(format!("skipped {}: {why}", files[*i].path.display()));
    }
    if !bad.is_empty() {
        notes.push(format!(
            "skipped {} of {} image files that are not images or do not decode",
            bad.len(),
            files.len()
        ));
    }
    let upscaled: Vec<&Path> = (0..files.len())
        .filter(|&i| decoded[i].as_ref().is_some_and(|d| d.upscaled))
        .map(|i| files[i].path.as_path())
        .collect();
    if let Some(first) = upscaled.first() {
        notes.push(format!(
            "{} of {} images are smaller than {} and were upscaled (e.g. {})",
            upscaled.len(),
            files.len() - bad.len(),
            target.resolution,
            first.display()
        ));
    }
    let shape = ImageShape {
        channels,
        height: target.resolution.height,
        width: target.resolution.width,
    };
    let parts = assemble(listing, &files, decoded, shape)?;
    notes
        .iter()
        .for_each(|n| report(ImageEvent::Warning(n.clone())));
    Ok(Pool {
        shape,
        fit: options.fit,
        class_names: listing.class_names.clone(),
        parts,
        notes,
    })
}

/// One split per part; a class whose every file failed is [`DataError::EmptyClass`].
fn assemble(
    listing: &Listing,
    files: &[&scan::ImageFile],
    mut decoded: Vec<Option<Decoded>>,
    shape: ImageShape,
) -> Result<Vec<Split>, DataError> {
    let mut parts = Vec::new();
    let mut start = 0;
    for part in &listing.parts {
        let range = start..start + part.files.len();
        start = range.end;
        let mut counts = vec![0usize; listing.class_names.len()];
        let mut images = Vec::with_capacity(part.files.len() * shape.len());
        let mut labels = Vec::with_capacity(part.files.len());
        for i in range {
            if let Some(d) = decoded[i].take() {
                counts[usize::from(files[i].label)] += 1;
                images.extend_from_slice(&d.pixels);
                labels.push(files[i].label);
            }
        }
        if let Some(c) = counts.iter().position(|&n| n == 0) {
            return Err(DataError::EmptyClass {
                path: part.dir.join(&listing.class_names[c]),
                detail: " (every image file in it failed to decode)".into(),
            });
        }
        parts.push(
            Split::new(shape, images, labels).ok_or_else(|| DataError::ShapeMismatch {
                path: part.dir.clone(),
                message: "decoded images differ in size".into(),
            })?,
        );
    }
    Ok(parts)
}

fn check_bad(
    dir: &Path,
    files: &[&scan::ImageFile],
    bad: &[(usize, String)],
) -> Result<(), DataError> {
    if bad.len() as f64 > files.len() as f64 * MAX_BAD_FRACTION {
        let mut sorted = bad.to_vec();
        sorted.sort();
        return Err(DataError::TooManyBadFiles {
            path: dir.to_path_buf(),
            bad: bad.len(),
            total: files.len(),
            examples: sorted
                .iter()
                .take(3)
                .map(|(i, why)| format!("{}: {why}", files[*i].path.display()))
                .collect(),
        });
    }
    Ok(())
}

/// The median height and width, scaled down (aspect kept) so the longer side is at most
/// [`MAX_DEFAULT_SIDE`], each rounded to a multiple of 8 (at least 8).
fn default_resolution(probes: &[Probe]) -> Resolution {
    let median = |mut v: Vec<u32>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().map_or(8.0, f64::from)
    };
    let h = median(probes.iter().map(|p| p.height).collect());
    let w = median(probes.iter().map(|p| p.width).collect());
    let scale = (MAX_DEFAULT_SIDE as f64 / h.max(w)).min(1.0);
    let round8 = |x: f64| (((x * scale) / 8.0).round() as usize * 8).max(8);
    Resolution {
        height: round8(h),
        width: round8(w),
    }
}

/// A reporter that writes to standard error: one progress line, rewritten in place at most
/// every 200 ms, then one line per warning and cache event.
pub fn stderr_report() -> impl FnMut(ImageEvent) {
    let mut last = std::time::Instant::now();
    move |event| match event {
        ImageEvent::Progress { done, total } => {
            if done == total || last.elapsed().as_millis() >= 200 {
                last = std::time::Instant::now();
                let end = if done == total { "\n" } else { "" };
                eprint!("\rdecoding images: {done}/{total}{end}");
            }
        }
        ImageEvent::Warning(w) => eprintln!("warning: {w}"),
        ImageEvent::CacheLoaded(p) => eprintln!("images loaded from the cache {}", p.display()),
        ImageEvent::CacheStale(p) => {
            eprintln!(
                "the folder changed since {} was written; decoding again",
                p.display()
            )
        }
        ImageEvent::CacheWritten(p) => eprintln!("decoded images cached in {}", p.display()),
        ImageEvent::CacheFailed(p, why) => {
            eprintln!("warning: image cache {} not used: {why}", p.display())
        }
    }
}
